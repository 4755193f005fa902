//! Lobby meshes of 2, 4 and 8 peers through `netplay serve`, and a peer whose process is
//! killed: every remaining peer hears of it within a stated bound.

mod common;

use std::time::{Duration, Instant};

use common::signal::{chat, start};
use netplay::multiplayer::{Lobby, LobbyEvent, LobbyMode, MultiplayerPeer, PeerEvent};
use netplay::rtc::PeerConfig;

/// How long a mesh may take to form, and a leave to be heard.
const FORM: Duration = Duration::from_secs(60);
const LEAVE_BOUND: Duration = Duration::from_secs(3);

fn join(port: u16, lobby: &str) -> Lobby {
    Lobby::connect(
        &format!("ws://127.0.0.1:{port}"),
        lobby,
        LobbyMode::Mesh,
        PeerConfig::loopback(),
    )
    .unwrap()
}

/// A new lobby on the server at `port`: its creator and its name.
fn create(port: u16) -> (Lobby, String) {
    let mut host = join(port, "");
    let deadline = Instant::now() + FORM;
    loop {
        assert!(Instant::now() < deadline, "no lobby name");
        host.poll();
        if let Some(LobbyEvent::Joined { lobby }) = host.poll_lobby_event() {
            return (host, lobby);
        }
    }
}

fn mesh_of(n: usize) {
    let server = start(&["--max-peers", "16"]);
    let (host, name) = create(server.port);
    let mut peers = vec![host];
    for _ in 1..n {
        peers.push(join(server.port, &name));
    }
    let mut connected = vec![0usize; n];
    let deadline = Instant::now() + FORM;
    while connected.iter().any(|&c| c < n - 1) {
        assert!(Instant::now() < deadline, "mesh of {n}: {connected:?}");
        for (i, p) in peers.iter_mut().enumerate() {
            p.poll();
            while let Some(e) = p.poll_event() {
                if let PeerEvent::PeerConnected(_) = e {
                    connected[i] += 1;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // Everyone sends to everyone on the reliable channel.
    for p in peers.iter_mut() {
        let me = p.unique_id();
        p.set_target_peer(0);
        p.put_packet(&me.to_le_bytes()).unwrap();
    }
    let mut got = vec![0usize; n];
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.iter().any(|&g| g < n - 1) {
        assert!(Instant::now() < deadline, "packets of {n}: {got:?}");
        for (i, p) in peers.iter_mut().enumerate() {
            p.poll();
            while p.get_packet().is_some() {
                got[i] += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // The last one leaves (its connections and its signaling close): everyone hears of it.
    let gone = peers.last().unwrap().unique_id();
    drop(peers.pop());
    let left = Instant::now();
    let mut heard = vec![false; n - 1];
    while heard.iter().any(|h| !h) {
        assert!(
            left.elapsed() < LEAVE_BOUND,
            "leave of {gone} in a mesh of {n}: {heard:?}"
        );
        for (i, p) in peers.iter_mut().enumerate() {
            p.poll();
            while let Some(e) = p.poll_event() {
                heard[i] |= e == PeerEvent::PeerDisconnected(gone);
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_mesh_of_2_forms_exchanges_and_hears_a_leave() {
    mesh_of(2);
}

#[test]
fn a_mesh_of_4_forms_exchanges_and_hears_a_leave() {
    mesh_of(4);
}

#[test]
fn a_mesh_of_8_forms_exchanges_and_hears_a_leave() {
    mesh_of(8);
}

#[test]
fn a_killed_peer_is_gone_at_every_other_peer_within_the_bound() {
    let server = start(&[]);
    let (mut host, name) = create(server.port);
    let mut other = join(server.port, &name);
    let mut victim = chat(server.port, &["--lobby", &name], "chat (killed)");
    let victim_id: i32 = victim.wait_for_line(FORM, "`joined as ID`", |l| {
        l.strip_prefix("joined as ")?.parse().ok()
    });
    let mut peers = [&mut host, &mut other];
    let mut seen = [false; 2];
    let deadline = Instant::now() + FORM;
    while seen.iter().any(|s| !s) {
        assert!(Instant::now() < deadline);
        for (i, p) in peers.iter_mut().enumerate() {
            p.poll();
            while let Some(e) = p.poll_event() {
                seen[i] |= e == PeerEvent::PeerConnected(victim_id);
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    victim.guard.kill();
    let killed = Instant::now();
    let mut gone = [false; 2];
    while gone.iter().any(|g| !g) {
        assert!(killed.elapsed() < LEAVE_BOUND, "{gone:?}");
        for (i, p) in peers.iter_mut().enumerate() {
            p.poll();
            while let Some(e) = p.poll_event() {
                gone[i] |= e == PeerEvent::PeerDisconnected(victim_id);
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
