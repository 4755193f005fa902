//! `SceneMultiplayer` over `WebSocketMultiplayerPeer` on 127.0.0.1: a server and three clients
//! that see each other through the server's announcements and exchange `send_bytes` packets
//! relayed by it, as a Godot game's clients do (`scene_multiplayer.cpp`, `_admit_peer`,
//! `send_command`, `_process_sys`).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use netplay::multiplayer::{
    SceneEvent, SceneMultiplayer, Target, TransferMode, WebSocketMultiplayerPeer,
};

type Scene = SceneMultiplayer<WebSocketMultiplayerPeer>;

fn poll_all(all: &mut [Scene], events: &mut [Vec<SceneEvent>]) {
    for (s, e) in all.iter_mut().zip(events.iter_mut()) {
        s.poll();
        e.extend(std::iter::from_fn(|| s.poll_event()));
    }
    std::thread::sleep(Duration::from_millis(1));
}

fn until(
    all: &mut [Scene],
    events: &mut [Vec<SceneEvent>],
    mut done: impl FnMut(&[Scene], &[Vec<SceneEvent>]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(all, events) {
        assert!(Instant::now() < deadline, "timed out; events: {events:?}");
        poll_all(all, events);
    }
}

#[test]
fn clients_of_a_relaying_server_see_each_other_and_exchange_bytes_through_it() {
    let mut server = WebSocketMultiplayerPeer::new();
    server
        .create_server(0, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), None)
        .unwrap();
    let url = format!("ws://127.0.0.1:{}", server.local_port());
    let mut all = vec![SceneMultiplayer::new(server)];
    for _ in 0..3 {
        let mut c = WebSocketMultiplayerPeer::new();
        c.create_client(&url, None).unwrap();
        all.push(SceneMultiplayer::new(c));
    }
    let mut events = vec![Vec::new(); 4];
    // Everyone knows everyone: the server its 3 clients, each client the server and the 2
    // others (announced by the server, not connected to them).
    until(&mut all, &mut events, |all, _| {
        all[0].peers().len() == 3 && all[1..].iter().all(|c| c.peers().len() == 3)
    });
    let ids: Vec<i32> = all.iter().map(|s| s.unique_id()).collect();
    assert_eq!(ids[0], 1);
    for (i, s) in all.iter().enumerate() {
        let seen: BTreeSet<i32> = s.peers().iter().copied().collect();
        let expected: BTreeSet<i32> = ids.iter().copied().filter(|&id| id != ids[i]).collect();
        assert_eq!(seen, expected, "peer {}", ids[i]);
    }
    for e in &events[1..] {
        assert_eq!(
            e.iter()
                .filter(|e| **e == SceneEvent::ConnectedToServer)
                .count(),
            1
        );
    }
    for e in events.iter_mut() {
        e.clear();
    }

    // Each client broadcasts (the server takes broadcasts too); one also sends to one other
    // client only.
    for i in 1..4 {
        let text = format!("hello from {}", ids[i]);
        all[i]
            .send_bytes(
                text.as_bytes(),
                Target::Broadcast,
                TransferMode::Reliable,
                0,
            )
            .unwrap();
    }
    all[1]
        .send_bytes(
            b"just you",
            Target::Peer(ids[2]),
            TransferMode::Unreliable,
            1,
        )
        .unwrap();
    until(&mut all, &mut events, |_, events| {
        events.iter().enumerate().all(|(i, e)| {
            let packets = e
                .iter()
                .filter(|e| matches!(e, SceneEvent::Packet { .. }))
                .count();
            packets == [3, 2, 3, 2][i]
        })
    });
    for (i, e) in events.iter().enumerate() {
        let got: BTreeSet<(i32, Vec<u8>)> = e
            .iter()
            .filter_map(|e| match e {
                SceneEvent::Packet { from, data, .. } => Some((*from, data.clone())),
                _ => None,
            })
            .collect();
        let mut expected: BTreeSet<(i32, Vec<u8>)> = (1..4)
            .filter(|&j| j != i)
            .map(|j| (ids[j], format!("hello from {}", ids[j]).into_bytes()))
            .collect();
        if i == 2 {
            expected.insert((ids[1], b"just you".to_vec()));
        }
        assert_eq!(got, expected, "at peer {}", ids[i]);
    }

    // A client leaves: the server tells the others.
    let gone = ids[3];
    all.pop();
    events.pop();
    until(&mut all, &mut events, |_, events| {
        events
            .iter()
            .all(|e| e.contains(&SceneEvent::PeerDisconnected(gone)))
    });
    assert!(all.iter().all(|s| !s.peers().contains(&gone)));
}
