//! Godot's `webrtc_signaling` demo, headless: peers meet in a lobby of a signaling server and
//! become a WebRTC mesh, each connected to every other.
//!
//! ```text
//! cargo run --example webrtc_lobby                                   # three peers, in-process signaling
//! cargo run --example webrtc_lobby -- ws://127.0.0.1:9080            # create a lobby on `netplay serve`
//! cargo run --example webrtc_lobby -- ws://127.0.0.1:9080 LOBBYNAME  # join it
//! ```
//!
//! Each peer sends "ping from ID" to every peer once a second and prints what it receives.

use std::time::{Duration, Instant};

use netplay::multiplayer::{Lobby, LobbyEvent, LobbyMode, MultiplayerPeer, PeerEvent};
use netplay::rtc::PeerConfig;
use netplay::signal::LocalSignaling;

/// Polls the lobby once and prints what happened; returns the pings received.
fn step(lobby: &mut Lobby) -> usize {
    lobby.poll();
    let me = lobby.unique_id();
    while let Some(event) = lobby.poll_lobby_event() {
        match event {
            LobbyEvent::Joined { lobby } => println!("{me}: in lobby {lobby}"),
            LobbyEvent::SignalingClosed { code, reason } => {
                println!("{me}: signaling closed ({code} {reason})")
            }
            LobbyEvent::Error(e) => println!("{me}: {e}"),
            _ => {}
        }
    }
    while let Some(event) = lobby.poll_event() {
        match event {
            PeerEvent::PeerConnected(id) => println!("{me}: + {id}"),
            PeerEvent::PeerDisconnected(id) => println!("{me}: - {id}"),
            _ => {}
        }
    }
    let mut pings = 0;
    while let Some(packet) = lobby.get_packet() {
        pings += 1;
        println!("{me}: {}", String::from_utf8_lossy(&packet.data));
    }
    pings
}

fn ping(lobby: &mut Lobby) {
    let text = format!("ping from {}", lobby.unique_id());
    lobby.set_target_peer(0);
    lobby.put_packet(text.as_bytes()).ok();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(url) = args.first() {
        let name = args.get(1).map_or("", String::as_str);
        let mut lobby =
            Lobby::connect(url, name, LobbyMode::Mesh, PeerConfig::default()).expect("connect");
        let mut last = Instant::now();
        loop {
            step(&mut lobby);
            if last.elapsed() >= Duration::from_secs(1) {
                ping(&mut lobby);
                last = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // In-process: three peers, until each has heard from both others.
    let signaling = LocalSignaling::new();
    let mut peers = vec![Lobby::local(
        &signaling,
        "",
        LobbyMode::Mesh,
        PeerConfig::loopback(),
    )];
    let name = loop {
        step(&mut peers[0]);
        if let Some(name) = peers[0].lobby_name() {
            break name.to_owned();
        }
    };
    for _ in 0..2 {
        peers.push(Lobby::local(
            &signaling,
            &name,
            LobbyMode::Mesh,
            PeerConfig::loopback(),
        ));
    }
    let mut heard = [0; 3];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = Instant::now();
    while heard.iter().any(|&n| n < 2) {
        assert!(Instant::now() < deadline, "timed out");
        for (i, p) in peers.iter_mut().enumerate() {
            heard[i] += step(p);
        }
        if last.elapsed() >= Duration::from_millis(100) {
            for p in &mut peers {
                ping(p);
            }
            last = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    println!("done");
}
