//! The minimal WebSocket client of Godot's "Using WebSockets" page, with netplay.
//!
//! Connects, sends "Test packet" once open, prints everything that arrives, and prints the close
//! code when the connection ends. With `--once` it closes after the first reply.
//!
//! `cargo run --example ws_client -- ws://127.0.0.1:9080 --once`

use std::time::Duration;

use netplay::ws::{ReadyState, WebSocketPeer};

fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "ws://127.0.0.1:9080".to_string());
    let once = args.any(|a| a == "--once");

    let mut socket = WebSocketPeer::new();
    if let Err(e) = socket.connect_to_url(&url, None) {
        eprintln!("Unable to connect: {e}");
        std::process::exit(1);
    }
    let mut sent = false;
    loop {
        // Call poll() regularly: it drives the connection.
        socket.poll();
        match socket.ready_state() {
            ReadyState::Open => {
                if !sent {
                    socket.send_text("Test packet").expect("send");
                    sent = true;
                }
                while let Some(packet) = socket.get_packet() {
                    println!("Got data from server: {}", String::from_utf8_lossy(&packet));
                    if once {
                        let _ = socket.close(1000, "done");
                    }
                }
            }
            ReadyState::Closing => {}
            ReadyState::Closed => {
                println!(
                    "WebSocket closed with code: {}, reason {}. Clean: {}",
                    socket.close_code(),
                    socket.close_reason(),
                    socket.close_code() != -1
                );
                if let Some(e) = socket.last_error() {
                    println!("Error: {e}");
                }
                break;
            }
            ReadyState::Connecting => {}
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
