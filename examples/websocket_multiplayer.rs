//! Godot's `websocket_multiplayer` demo, headless: a WebSocket multiplayer server and clients
//! with Godot's SceneMultiplayer on top, so clients reach each other through the server.
//!
//! ```text
//! cargo run --example websocket_multiplayer                 # a server and two clients in one process
//! cargo run --example websocket_multiplayer -- server 9081  # a server (a Godot client can join)
//! cargo run --example websocket_multiplayer -- client ws://127.0.0.1:9081
//! ```
//!
//! Every peer greets each peer that connects and prints what it receives.

use std::time::{Duration, Instant};

use netplay::multiplayer::{
    SceneEvent, SceneMultiplayer, Target, TransferMode, WebSocketMultiplayerPeer,
};

type Peer = SceneMultiplayer<WebSocketMultiplayerPeer>;

/// Polls `peer` once and prints what happened; greets everyone when admitted.
fn step(name: &str, peer: &mut Peer) -> usize {
    peer.poll();
    let mut received = 0;
    while let Some(event) = peer.poll_event() {
        match event {
            SceneEvent::PeerConnected(id) => {
                println!("{name}: peer {id} connected");
                // A client reaches another client through the server's relay.
                let hello = format!("hello from {}", peer.unique_id());
                let sent = peer.send_bytes(
                    hello.as_bytes(),
                    Target::Peer(id),
                    TransferMode::Reliable,
                    0,
                );
                if let Err(e) = sent {
                    println!("{name}: could not greet {id}: {e}");
                }
            }
            SceneEvent::PeerDisconnected(id) => println!("{name}: peer {id} disconnected"),
            SceneEvent::Packet { from, data, .. } => {
                received += 1;
                println!("{name}: {from} says {}", String::from_utf8_lossy(&data));
            }
            SceneEvent::ConnectionFailed | SceneEvent::ServerDisconnected => {
                println!("{name}: disconnected from the server");
            }
            _ => {}
        }
    }
    received
}

fn server(port: u16) -> Peer {
    let mut ws = WebSocketMultiplayerPeer::new();
    ws.create_server(port, None, None).expect("listen");
    println!("server: listening on port {}", ws.local_port());
    SceneMultiplayer::new(ws)
}

fn client(url: &str) -> Peer {
    let mut ws = WebSocketMultiplayerPeer::new();
    ws.create_client(url, None).expect("connect");
    SceneMultiplayer::new(ws)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("server") => {
            let port = args.get(1).and_then(|p| p.parse().ok()).unwrap_or(9081);
            let mut s = server(port);
            loop {
                step("server", &mut s);
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Some("client") => {
            let url = args.get(1).map_or("ws://127.0.0.1:9081", String::as_str);
            let mut c = client(url);
            loop {
                step("client", &mut c);
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        _ => {
            // Everything in one process: a server and two clients; ends once every peer has
            // heard from the two others.
            let mut peers = vec![("server".to_owned(), server(0))];
            let url = format!("ws://127.0.0.1:{}", peers[0].1.peer().local_port());
            for i in 1..=2 {
                peers.push((format!("client {i}"), client(&url)));
            }
            let mut heard = [0; 3];
            let deadline = Instant::now() + Duration::from_secs(10);
            while heard.iter().any(|&n| n < 2) {
                assert!(Instant::now() < deadline, "timed out");
                for (i, (name, peer)) in peers.iter_mut().enumerate() {
                    heard[i] += step(name, peer);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            println!("done");
        }
    }
}
