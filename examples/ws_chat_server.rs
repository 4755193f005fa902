//! The chat server of Godot's `websocket_chat` demo, with netplay's polled API: clients speak
//! the "demo-chat" sub-protocol; every line a client sends goes to all the others as
//! `[id] Says: ...`, and joins and leaves are announced.
//!
//! `cargo run --example ws_chat_server -- 127.0.0.1:8000`

use std::time::Duration;

use netplay::ws::{PeerOptions, ReadyState, TcpServer, WebSocketPeer};

struct Peer {
    id: u32,
    ws: WebSocketPeer,
    announced: bool,
}

fn broadcast(peers: &mut [Peer], except: u32, text: &str) {
    for p in peers.iter_mut().filter(|p| p.id != except && p.announced) {
        let _ = p.ws.send_text(text);
    }
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8000".to_string());
    let mut server = TcpServer::new();
    server
        .listen(addr.parse().expect("an address like 127.0.0.1:8000"))
        .expect("listen");
    println!("listening on ws://{}", server.local_addr().unwrap());
    let options = PeerOptions {
        supported_protocols: vec!["demo-chat".into()],
        // The demo drops clients that have not finished their handshake after 3 s.
        handshake_timeout: Duration::from_secs(3),
        ..PeerOptions::default()
    };
    let mut peers: Vec<Peer> = Vec::new();
    let mut next_id = 2u32;
    loop {
        while let Some(stream) = server.take_connection() {
            let mut ws = WebSocketPeer::with_options(options.clone());
            if ws.accept_stream(stream, None).is_ok() {
                peers.push(Peer {
                    id: next_id,
                    ws,
                    announced: false,
                });
                next_id += 1;
            }
        }
        let mut said = Vec::new();
        for p in &mut peers {
            p.ws.poll();
            if p.ws.ready_state() == ReadyState::Open && !p.announced {
                p.announced = true;
                said.push((p.id, format!("Peer {} connected", p.id)));
            }
            while let Some(packet) = p.ws.get_packet() {
                let line = String::from_utf8_lossy(&packet).into_owned();
                said.push((p.id, format!("[{}] Says: {line}", p.id)));
            }
        }
        for p in peers
            .iter()
            .filter(|p| p.ws.ready_state() == ReadyState::Closed)
        {
            if p.announced {
                said.push((p.id, format!("Peer {} disconnected", p.id)));
            }
        }
        peers.retain(|p| p.ws.ready_state() != ReadyState::Closed);
        for (from, text) in said {
            println!("{text}");
            broadcast(&mut peers, from, &text);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
