//! The lobby mesh over an in-process signaling (the same lobby logic `netplay serve` runs):
//! a mesh of four, a server with clients and `SceneMultiplayer` relaying on top, a peer
//! leaving, a sealed lobby and an unknown one.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use netplay::multiplayer::{
    ConnectionStatus, Lobby, LobbyEvent, LobbyMode, MultiplayerPeer, Packet, PeerEvent, SceneEvent,
    SceneMultiplayer, Target, TransferMode,
};
use netplay::rtc::PeerConfig;
use netplay::signal::LocalSignaling;

fn poll_until<P: MultiplayerPeer>(
    peers: &mut [P],
    what: &str,
    mut done: impl FnMut(&mut [P]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(peers) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        for p in peers.iter_mut() {
            p.poll();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The host's lobby name, once it has one.
fn lobby_name(host: &mut Lobby) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        host.poll();
        while let Some(e) = host.poll_lobby_event() {
            if let LobbyEvent::Joined { lobby } = e {
                return lobby;
            }
        }
        assert!(Instant::now() < deadline);
    }
}

fn drain_events<P: MultiplayerPeer>(p: &mut P) -> Vec<PeerEvent> {
    std::iter::from_fn(|| p.poll_event()).collect()
}

#[test]
fn four_peers_in_a_mesh_lobby_connect_pairwise_and_broadcast_on_both_channels() {
    let signaling = LocalSignaling::new();
    let mut host = Lobby::local(&signaling, "", LobbyMode::Mesh, PeerConfig::loopback());
    let name = lobby_name(&mut host);
    let mut peers = vec![host];
    for _ in 0..3 {
        peers.push(Lobby::local(
            &signaling,
            &name,
            LobbyMode::Mesh,
            PeerConfig::loopback(),
        ));
    }
    let mut connected: Vec<BTreeSet<i32>> = vec![BTreeSet::new(); 4];
    poll_until(&mut peers, "a full mesh", |peers| {
        for (i, p) in peers.iter_mut().enumerate() {
            for e in drain_events(p) {
                if let PeerEvent::PeerConnected(id) = e {
                    connected[i].insert(id);
                }
            }
        }
        connected.iter().all(|c| c.len() == 3)
    });
    let ids: Vec<i32> = peers.iter().map(|p| p.unique_id()).collect();
    assert_eq!(ids[0], 1, "the lobby's creator is 1");
    assert!(peers.iter().all(|p| !p.is_server_relay_supported()));
    for (i, c) in connected.iter().enumerate() {
        let others: BTreeSet<i32> = ids.iter().copied().filter(|&id| id != ids[i]).collect();
        assert_eq!(c, &others);
    }

    for p in peers.iter_mut() {
        let me = p.unique_id();
        p.set_target_peer(0);
        p.set_transfer_mode(TransferMode::Reliable);
        p.put_packet(format!("chat from {me}").as_bytes()).unwrap();
        p.set_transfer_mode(TransferMode::Unreliable);
        p.put_packet(format!("pos from {me}").as_bytes()).unwrap();
    }
    let mut got: Vec<Vec<Packet>> = vec![Vec::new(); 4];
    poll_until(&mut peers, "every packet", |peers| {
        for (i, p) in peers.iter_mut().enumerate() {
            got[i].extend(std::iter::from_fn(|| p.get_packet()));
        }
        got.iter().all(|g| g.len() == 6)
    });
    for (i, g) in got.iter().enumerate() {
        let seen: BTreeSet<(i32, TransferMode, String)> = g
            .iter()
            .map(|p| (p.from, p.mode, String::from_utf8(p.data.clone()).unwrap()))
            .collect();
        let want: BTreeSet<(i32, TransferMode, String)> = ids
            .iter()
            .filter(|&&id| id != ids[i])
            .flat_map(|&id| {
                [
                    (id, TransferMode::Reliable, format!("chat from {id}")),
                    (id, TransferMode::Unreliable, format!("pos from {id}")),
                ]
            })
            .collect();
        assert_eq!(seen, want);
    }

    // A peer leaves: the lobby tells the others, which drop its connection.
    let gone = ids[3];
    let left = Instant::now();
    drop(peers.pop());
    let mut seen_gone = [false; 3];
    poll_until(&mut peers, "the leave", |peers| {
        for (i, p) in peers.iter_mut().enumerate() {
            seen_gone[i] |= drain_events(p).contains(&PeerEvent::PeerDisconnected(gone));
        }
        seen_gone.iter().all(|&s| s)
    });
    assert!(
        left.elapsed() < Duration::from_secs(2),
        "{:?}",
        left.elapsed()
    );
}

#[test]
fn a_server_lobby_with_scene_multiplayer_relays_between_clients() {
    let signaling = LocalSignaling::new();
    let mut host = Lobby::local(
        &signaling,
        "",
        LobbyMode::ServerClient,
        PeerConfig::loopback(),
    );
    let name = lobby_name(&mut host);
    let mut scenes = vec![SceneMultiplayer::new(host)];
    for _ in 0..2 {
        let c = Lobby::local(
            &signaling,
            &name,
            LobbyMode::ServerClient,
            PeerConfig::loopback(),
        );
        scenes.push(SceneMultiplayer::new(c));
    }
    let mut events: Vec<Vec<SceneEvent>> = vec![Vec::new(); 3];
    let deadline = Instant::now() + Duration::from_secs(20);
    while !scenes.iter().all(|s| s.peers().len() == 2) {
        assert!(Instant::now() < deadline, "{events:?}");
        for (i, s) in scenes.iter_mut().enumerate() {
            s.poll();
            events[i].extend(std::iter::from_fn(|| s.poll_event()));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(scenes[0].peer().is_server_relay_supported());
    assert_eq!(scenes[0].unique_id(), 1);
    for s in &scenes[1..] {
        assert_eq!(s.peer().connection_status(), ConnectionStatus::Connected);
        // A client is connected to the server only; it knows the other client from the
        // server's announcement.
        assert_eq!(s.peer().rtc().peer_ids().collect::<Vec<_>>(), vec![1]);
    }
    let (a, b) = (scenes[1].unique_id(), scenes[2].unique_id());
    scenes[1]
        .send_bytes(
            b"through the server",
            Target::Peer(b),
            TransferMode::Reliable,
            0,
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let packet = loop {
        assert!(Instant::now() < deadline);
        for s in scenes.iter_mut() {
            s.poll();
        }
        if let Some(p) = std::iter::from_fn(|| scenes[2].poll_event()).find_map(|e| match e {
            SceneEvent::Packet { from, data, .. } => Some((from, data)),
            _ => None,
        }) {
            break p;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(packet, (a, b"through the server".to_vec()));
}

#[test]
fn a_sealed_lobby_keeps_its_peers_and_refuses_newcomers_and_an_unknown_lobby_is_reported() {
    let signaling = LocalSignaling::new();
    let mut host = Lobby::local(&signaling, "", LobbyMode::Mesh, PeerConfig::loopback());
    let name = lobby_name(&mut host);
    let guest = Lobby::local(&signaling, &name, LobbyMode::Mesh, PeerConfig::loopback());
    let mut peers = vec![host, guest];
    poll_until(&mut peers, "the pair", |p| {
        p[0].rtc().is_peer_connected(p[1].unique_id()) && p[1].rtc().is_peer_connected(1)
    });
    peers[0].seal().unwrap();
    let mut late = Lobby::local(&signaling, &name, LobbyMode::Mesh, PeerConfig::loopback());
    let deadline = Instant::now() + Duration::from_secs(5);
    let closed = loop {
        assert!(Instant::now() < deadline);
        for p in peers.iter_mut() {
            p.poll();
        }
        late.poll();
        if let Some(LobbyEvent::SignalingClosed { reason, .. }) =
            std::iter::from_fn(|| late.poll_lobby_event())
                .find(|e| matches!(e, LobbyEvent::SignalingClosed { .. }))
        {
            break reason;
        }
    };
    assert!(!closed.is_empty());
    assert_eq!(late.unique_id(), 0);
    assert_eq!(late.connection_status(), ConnectionStatus::Disconnected);
    assert!(std::iter::from_fn(|| peers[1].poll_lobby_event()).any(|e| e == LobbyEvent::Sealed));
    // The sealed pair still talks.
    peers[1].set_target_peer(1);
    peers[1].put_packet(b"still here").unwrap();
    poll_until(&mut peers, "the packet", |p| {
        p[0].available_packet_count() == 1
    });

    let mut lost = Lobby::local(
        &signaling,
        "NOSUCHLOBBY",
        LobbyMode::Mesh,
        PeerConfig::loopback(),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline);
        lost.poll();
        if std::iter::from_fn(|| lost.poll_lobby_event())
            .any(|e| matches!(e, LobbyEvent::SignalingClosed { code: 4000, .. }))
        {
            break;
        }
    }
}

/// A peer whose network vanishes while its signaling stays (here: it is no longer polled, so
/// it answers no datagram and sends no PEER_DISCONNECT) leaves every other peer when their
/// ICE gives up: within `ice_failed_timeout` of silence, plus one consent check.
#[test]
fn a_peer_lost_to_ice_failure_leaves_every_other_peer_within_the_failed_timeout() {
    let mut config = PeerConfig::loopback();
    config.ice_disconnected_timeout = Duration::from_millis(600);
    config.ice_failed_timeout = Duration::from_millis(1500);
    let bound = config.ice_failed_timeout + Duration::from_secs(1);
    let signaling = LocalSignaling::new();
    let mut host = Lobby::local(&signaling, "", LobbyMode::Mesh, config.clone());
    let name = lobby_name(&mut host);
    let mut peers = vec![host];
    for _ in 0..2 {
        peers.push(Lobby::local(
            &signaling,
            &name,
            LobbyMode::Mesh,
            config.clone(),
        ));
    }
    let mut connected = [0usize; 3];
    poll_until(&mut peers, "a mesh of three", |peers| {
        for (i, p) in peers.iter_mut().enumerate() {
            for e in drain_events(p) {
                if let PeerEvent::PeerConnected(_) = e {
                    connected[i] += 1;
                }
            }
        }
        connected.iter().all(|&c| c == 2)
    });
    // The third peer goes silent; it stays in the lobby as far as signaling knows.
    let silent = peers.pop().unwrap();
    let lost = silent.unique_id();
    let t0 = Instant::now();
    let mut left = [None::<Duration>; 2];
    while left.iter().any(Option::is_none) {
        assert!(
            t0.elapsed() < bound + Duration::from_secs(5),
            "no PeerDisconnected({lost}) after {:?}: {left:?}",
            t0.elapsed()
        );
        for (i, p) in peers.iter_mut().enumerate() {
            p.poll();
            for e in drain_events(p) {
                if e == PeerEvent::PeerDisconnected(lost) {
                    left[i] = Some(t0.elapsed());
                }
                assert!(
                    !matches!(e, PeerEvent::PeerDisconnected(id) if id != lost),
                    "{e:?}"
                );
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    eprintln!("the lost peer left after {left:?}");
    for t in left.iter().flatten() {
        assert!(*t <= bound, "left after {t:?}, over the bound {bound:?}");
        // Not before the connection could have failed: ICE, not something else, removed it.
        assert!(*t >= config.ice_disconnected_timeout, "{t:?}");
    }
    // The two that remain still talk to each other.
    let other = peers[1].unique_id();
    peers[0].set_target_peer(other);
    peers[0].put_packet(b"still here").unwrap();
    let mut got = None;
    poll_until(&mut peers, "a packet after the loss", |peers| {
        if let Some(p) = peers[1].get_packet() {
            got = Some(p);
        }
        got.is_some()
    });
    assert_eq!(got.unwrap().data, b"still here");
    drop(silent);
}
