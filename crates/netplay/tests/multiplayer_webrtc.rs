//! `WebRtcMultiplayerPeer` on 127.0.0.1, with the signaling done in memory: Godot's negotiated
//! channel layout, mesh and server/client topologies, transfer modes and channels, routing,
//! refusals and removal.
//!
//! The layout is Godot 4's `modules/webrtc/webrtc_multiplayer_peer.cpp` (commit 309d7eb7,
//! `add_peer` and `_initialize`): stream 1 "reliable", 2 "ordered", 3 "unreliable", then one
//! channel per `channels_config` entry from stream 4, labelled with its number; channel 0 of
//! `put_packet` picks among the first three by transfer mode, channel N is stream N + 3.
//! Who offers follows Godot's demo (`multiplayer_client.gd`, `_create_peer`: the peer with the
//! larger id offers).

use std::time::{Duration, Instant};

use netplay::multiplayer::{
    ConnectionStatus, Error, MultiplayerPeer, Packet, PeerEvent, TransferMode,
    WebRtcMultiplayerPeer,
};
use netplay::rtc::{PeerConfig, PeerConnection};

mod common;
use common::mp::{link, signal};

fn run(
    peers: &mut [WebRtcMultiplayerPeer],
    events: &mut [Vec<PeerEvent>],
    packets: &mut [Vec<Packet>],
    mut done: impl FnMut(&[WebRtcMultiplayerPeer], &[Vec<PeerEvent>], &[Vec<Packet>]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done(peers, events, packets) {
        assert!(Instant::now() < deadline, "timed out: {events:?}");
        for p in peers.iter_mut() {
            p.poll();
        }
        for i in 0..peers.len() {
            for j in i + 1..peers.len() {
                let (left, right) = peers.split_at_mut(j);
                signal(&mut left[i], &mut right[0]);
            }
        }
        for (i, p) in peers.iter_mut().enumerate() {
            events[i].extend(std::iter::from_fn(|| p.poll_event()));
            packets[i].extend(std::iter::from_fn(|| p.get_packet()));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn mesh(ids: &[i32], extra: &[TransferMode]) -> Vec<WebRtcMultiplayerPeer> {
    ids.iter()
        .map(|&id| {
            let mut p = WebRtcMultiplayerPeer::new();
            p.create_mesh(id, extra).unwrap();
            p
        })
        .collect()
}

/// A channel's label, stream id, negotiated, ordered, lifetime and retransmit limit.
type Layout = (String, Option<u16>, bool, bool, Option<u16>, Option<u16>);

#[test]
fn add_peer_creates_godots_negotiated_channels_in_order() {
    let mut p = WebRtcMultiplayerPeer::new();
    p.create_mesh(
        5,
        &[
            TransferMode::Reliable,
            TransferMode::Unreliable,
            TransferMode::UnreliableOrdered,
        ],
    )
    .unwrap();
    p.add_peer(PeerConnection::new(PeerConfig::loopback()).unwrap(), 9, 30)
        .unwrap();
    let channels = p.peer_channels(9).unwrap().to_vec();
    let pc = p.get_peer_mut(9).unwrap();
    let got: Vec<Layout> = channels
        .iter()
        .map(|&c| {
            let ch = pc.channel(c).unwrap();
            (
                ch.label().to_owned(),
                ch.id(),
                ch.is_negotiated(),
                ch.is_ordered(),
                ch.max_packet_life_time(),
                ch.max_retransmits(),
            )
        })
        .collect();
    let want = |l: &str, id, ordered, life| (l.to_owned(), Some(id), true, ordered, life, None);
    assert_eq!(
        got,
        vec![
            want("reliable", 1, true, None),
            want("ordered", 2, true, Some(30)),
            want("unreliable", 3, false, Some(30)),
            want("4", 4, true, None),
            want("5", 5, false, Some(1)),
            want("6", 6, true, Some(1)),
        ]
    );
}

#[test]
fn a_mesh_of_three_connects_every_pair_and_reports_sender_channel_and_mode() {
    let ids = [1, 7, 12];
    let mut peers = mesh(&ids, &[TransferMode::Reliable]);
    assert!(peers.iter().all(|p| !p.is_server_relay_supported()));
    link(&mut peers, &[(0, 1), (0, 2), (1, 2)]);
    let mut events = vec![Vec::new(); 3];
    let mut packets = vec![Vec::new(); 3];
    run(&mut peers, &mut events, &mut packets, |_, e, _| {
        e.iter().all(|e| e.len() == 2)
    });
    for (i, e) in events.iter().enumerate() {
        let mut got: Vec<i32> = e
            .iter()
            .map(|e| match e {
                PeerEvent::PeerConnected(id) => *id,
                other => panic!("{other:?}"),
            })
            .collect();
        got.sort();
        let want: Vec<i32> = ids.iter().copied().filter(|&id| id != ids[i]).collect();
        assert_eq!(got, want);
    }

    // Peer 7 broadcasts on each default channel and on extra channel 1; peer 12 sends to 1
    // only.
    for (mode, channel, tag) in [
        (TransferMode::Reliable, 0, b'R'),
        (TransferMode::UnreliableOrdered, 0, b'O'),
        (TransferMode::Unreliable, 0, b'U'),
        (TransferMode::Unreliable, 1, b'X'),
    ] {
        peers[1].set_transfer_mode(mode);
        peers[1].set_transfer_channel(channel);
        peers[1].set_target_peer(0);
        peers[1].put_packet(&[tag]).unwrap();
    }
    peers[2].set_target_peer(1);
    peers[2].put_packet(b"only 1").unwrap();
    peers[2].set_transfer_channel(2);
    assert_eq!(peers[2].put_packet(b"?"), Err(Error::InvalidChannel(2)));
    peers[2].set_transfer_channel(0);
    peers[2].set_target_peer(99);
    assert_eq!(peers[2].put_packet(b"?"), Err(Error::UnknownPeer(99)));
    run(&mut peers, &mut events, &mut packets, |_, _, p| {
        p[0].len() == 5 && p[2].len() == 4
    });
    let summary = |ps: &[Packet]| {
        let mut v: Vec<(i32, u32, TransferMode, Vec<u8>)> = ps
            .iter()
            .map(|p| (p.from, p.channel, p.mode, p.data.clone()))
            .collect();
        v.sort_by(|a, b| a.3.cmp(&b.3));
        v
    };
    let from7 = vec![
        (7, 0, TransferMode::UnreliableOrdered, b"O".to_vec()),
        (7, 0, TransferMode::Reliable, b"R".to_vec()),
        (7, 0, TransferMode::Unreliable, b"U".to_vec()),
        (7, 1, TransferMode::Reliable, b"X".to_vec()),
    ];
    let mut at1 = from7.clone();
    at1.push((12, 0, TransferMode::Reliable, b"only 1".to_vec()));
    at1.sort_by(|a, b| a.3.cmp(&b.3));
    assert_eq!(summary(&packets[0]), at1);
    assert_eq!(summary(&packets[2]), from7);
    assert!(packets[1].is_empty());
}

#[test]
fn a_client_is_connecting_until_the_servers_channels_open() {
    let mut peers: Vec<WebRtcMultiplayerPeer> =
        (0..3).map(|_| WebRtcMultiplayerPeer::new()).collect();
    peers[0].create_server(&[]).unwrap();
    peers[1].create_client(2, &[]).unwrap();
    peers[2].create_client(3, &[]).unwrap();
    assert_eq!(peers[1].connection_status(), ConnectionStatus::Connecting);
    assert!(peers.iter().all(|p| p.is_server_relay_supported()));
    link(&mut peers, &[(0, 1), (0, 2)]);
    let mut events = vec![Vec::new(); 3];
    let mut packets = vec![Vec::new(); 3];
    run(&mut peers, &mut events, &mut packets, |p, _, _| {
        p[1..]
            .iter()
            .all(|c| c.connection_status() == ConnectionStatus::Connected)
            && p[0].peer_ids().all(|id| p[0].is_peer_connected(id))
    });
    assert_eq!(events[1], vec![PeerEvent::PeerConnected(1)]);
    // Clients reach only the server.
    peers[1].set_target_peer(1);
    peers[1].put_packet(b"up").unwrap();
    run(&mut peers, &mut events, &mut packets, |_, _, p| {
        p[0].len() == 1
    });
    assert_eq!(
        (packets[0][0].from, &packets[0][0].data[..]),
        (2, &b"up"[..])
    );
}

#[test]
fn add_peer_refuses_what_the_topology_or_the_state_does_not_allow() {
    let pc = || PeerConnection::new(PeerConfig::loopback()).unwrap();
    let mut idle = WebRtcMultiplayerPeer::new();
    assert_eq!(idle.add_peer(pc(), 2, 1), Err(Error::NotConnected));
    let mut client = WebRtcMultiplayerPeer::new();
    assert_eq!(client.create_client(1, &[]), Err(Error::InvalidId(1)));
    client.create_client(4, &[]).unwrap();
    assert!(matches!(
        client.add_peer(pc(), 2, 1),
        Err(Error::WrongMode(_))
    ));
    let mut server = WebRtcMultiplayerPeer::new();
    server.create_server(&[]).unwrap();
    assert!(matches!(
        server.add_peer(pc(), 1, 1),
        Err(Error::WrongMode(_))
    ));
    assert_eq!(server.create_server(&[]), Err(Error::AlreadyActive));
    server.add_peer(pc(), 2, 1).unwrap();
    assert_eq!(server.add_peer(pc(), 2, 1), Err(Error::InvalidId(2)));
    assert_eq!(server.add_peer(pc(), 0, 1), Err(Error::InvalidId(0)));
    assert_eq!(server.add_peer(pc(), -3, 1), Err(Error::InvalidId(-3)));
    server.set_refuse_new_connections(true);
    assert_eq!(server.add_peer(pc(), 3, 1), Err(Error::Refused));
    server.set_refuse_new_connections(false);
    let mut used = pc();
    used.create_data_channel("x", Default::default()).unwrap();
    used.create_offer().unwrap();
    assert!(matches!(
        server.add_peer(used, 3, 1),
        Err(Error::Transport(_))
    ));
    let mut mesh = WebRtcMultiplayerPeer::new();
    mesh.create_mesh(1, &[]).unwrap();
    assert_eq!(mesh.add_peer(pc(), 1, 1), Err(Error::InvalidId(1)));
}

#[test]
fn a_peer_that_leaves_is_reported_gone_everywhere_and_a_forced_removal_is_silent() {
    let ids = [1, 2, 3];
    let mut peers = mesh(&ids, &[]);
    link(&mut peers, &[(0, 1), (0, 2), (1, 2)]);
    let mut events = vec![Vec::new(); 3];
    let mut packets = vec![Vec::new(); 3];
    run(&mut peers, &mut events, &mut packets, |_, e, _| {
        e.iter().all(|e| e.len() == 2)
    });
    for e in events.iter_mut() {
        e.clear();
    }
    // Peer 3 goes away (its connections are dropped, which closes them).
    let left = Instant::now();
    drop(peers.pop());
    events.pop();
    packets.pop();
    run(&mut peers, &mut events, &mut packets, |_, e, _| {
        e.iter()
            .all(|e| e.contains(&PeerEvent::PeerDisconnected(3)))
    });
    assert!(
        left.elapsed() < Duration::from_secs(5),
        "{:?}",
        left.elapsed()
    );
    // Forced: gone at once, no event.
    peers[0].disconnect_peer(2, true);
    assert!(!peers[0].has_peer(2));
    for _ in 0..20 {
        peers[0].poll();
    }
    assert!(peers[0].poll_event().is_none());
}

/// Godot's peers send a packet when `put_packet` is called; netplay's do too: once connected,
/// the sender is never polled again and the receiver still gets every packet, on the reliable
/// and the unreliable channel.
#[test]
fn put_packet_sends_at_once_without_waiting_for_the_senders_next_poll() {
    let mut peers = mesh(&[1, 2], &[]);
    link(&mut peers, &[(0, 1)]);
    let mut events = vec![Vec::new(); 2];
    let mut packets = vec![Vec::new(); 2];
    run(&mut peers, &mut events, &mut packets, |_, e, _| {
        e.iter().all(|e| !e.is_empty())
    });
    let (sender, receiver) = peers.split_at_mut(1);
    let (sender, receiver) = (&mut sender[0], &mut receiver[0]);
    sender.set_target_peer(2);
    for (i, mode) in [TransferMode::Reliable, TransferMode::Unreliable]
        .into_iter()
        .cycle()
        .take(10)
        .enumerate()
    {
        sender.set_transfer_mode(mode);
        sender.put_packet(&[i as u8; 20]).unwrap();
    }
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < 10 {
        assert!(Instant::now() < deadline, "received only {got:?}");
        receiver.poll();
        got.extend(std::iter::from_fn(|| receiver.get_packet()).map(|p| p.data[0]));
        std::thread::sleep(Duration::from_millis(1));
    }
    got.sort_unstable();
    assert_eq!(got, (0..10).collect::<Vec<u8>>());
}
