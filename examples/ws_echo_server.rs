//! The minimal WebSocket server of Godot's "Using WebSockets" page, with the polled API:
//! a `TcpServer`, one `WebSocketPeer` per client, every message echoed, close reasons printed.
//!
//! `cargo run --example ws_echo_server -- 127.0.0.1:9080 [--exit-after N]`
//! With `--exit-after N` it stops once N clients have come and gone.

use std::time::Duration;

use netplay::ws::{ReadyState, TcpServer, WebSocketPeer, WriteMode};

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9080".to_string());
    let mut exit_after = None;
    while let Some(a) = args.next() {
        if a == "--exit-after" {
            exit_after = args.next().and_then(|n| n.parse::<usize>().ok());
        }
    }

    let mut server = TcpServer::new();
    server
        .listen(addr.parse().expect("an address like 127.0.0.1:9080"))
        .expect("listen");
    println!("listening on ws://{}", server.local_addr().unwrap());

    let mut peers: Vec<(u32, WebSocketPeer)> = Vec::new();
    let mut next_id = 1u32;
    let mut finished = 0usize;
    loop {
        while let Some(stream) = server.take_connection() {
            let mut peer = WebSocketPeer::new();
            if peer.accept_stream(stream, None).is_ok() {
                peers.push((next_id, peer));
                next_id += 1;
            }
        }
        for (id, peer) in &mut peers {
            peer.poll();
            while let Some(packet) = peer.get_packet() {
                let mode = if peer.was_string_packet() {
                    WriteMode::Text
                } else {
                    WriteMode::Binary
                };
                println!("Peer {id} sent {} bytes", packet.len());
                if let Err(e) = peer.send(&packet, mode) {
                    println!("Peer {id}: cannot echo: {e}");
                }
            }
            if peer.ready_state() == ReadyState::Closed {
                println!(
                    "Peer {id} closed with code: {}, reason: {}",
                    peer.close_code(),
                    peer.close_reason()
                );
            }
        }
        let before = peers.len();
        peers.retain(|(_, p)| p.ready_state() != ReadyState::Closed);
        finished += before - peers.len();
        if exit_after.is_some_and(|n| finished >= n) {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
