//! The chat client of Godot's `websocket_chat` demo: connects with the "demo-chat"
//! sub-protocol, sends every line typed on standard input, prints what the server relays.
//! Closes when standard input ends.
//!
//! `cargo run --example ws_chat_client -- ws://127.0.0.1:8000/test/`

use std::io::BufRead;
use std::sync::mpsc;
use std::time::Duration;

use netplay::ws::{ReadyState, WebSocketPeer};

fn main() {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:8000/test/".to_string());
    let mut ws = WebSocketPeer::new();
    ws.set_supported_protocols(["demo-chat"]);
    ws.connect_to_url(&url, None).expect("connect");

    // Standard input blocks, so a thread reads it; the game loop below never blocks.
    let (tx, lines) = mpsc::channel::<Option<String>>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            let _ = tx.send(Some(line));
        }
        let _ = tx.send(None);
    });

    let mut was_open = false;
    loop {
        ws.poll();
        match ws.ready_state() {
            ReadyState::Open => {
                if !was_open {
                    was_open = true;
                    println!("Connected with protocol: {}", ws.selected_protocol());
                }
                while let Ok(line) = lines.try_recv() {
                    match line {
                        Some(text) => ws.send_text(&text).expect("send"),
                        None => {
                            let _ = ws.close(1000, "bye");
                        }
                    }
                }
                while let Some(packet) = ws.get_packet() {
                    println!("{}", String::from_utf8_lossy(&packet));
                }
            }
            ReadyState::Closed => {
                println!("Disconnected: {} {}", ws.close_code(), ws.close_reason());
                break;
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
