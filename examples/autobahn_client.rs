//! Drives the Autobahn|Testsuite fuzzing server with netplay's polled client: asks for the case
//! count, runs every case as an echo client, then asks the server to write its reports.
//!
//! `cargo run --release --example autobahn_client -- --url ws://127.0.0.1:9001 --agent netplay`

use std::time::{Duration, Instant};

use netplay::ws::{DeflateConfig, PeerOptions, ReadyState, WebSocketPeer, WriteMode};

fn options() -> PeerOptions {
    PeerOptions {
        inbound_buffer_size: 64 << 20,
        outbound_buffer_size: 128 << 20,
        // Offering client_no_context_takeover (a promise we keep) and client_max_window_bits
        // lets the fuzzing server pick any of the configurations its 13.x cases test.
        compression: Some(DeflateConfig {
            client_no_context_takeover: true,
            ..DeflateConfig::default()
        }),
        ..PeerOptions::default()
    }
}

/// Connects to `url` and echoes until the connection closes; returns the text messages seen.
fn run(url: &str, echo: bool) -> Vec<String> {
    let mut ws = WebSocketPeer::with_options(options());
    let mut texts = Vec::new();
    if let Err(e) = ws.connect_to_url(url, None) {
        eprintln!("{url}: {e}");
        return texts;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        ws.poll();
        let mut busy = false;
        while let Some(packet) = ws.get_packet() {
            busy = true;
            let text = ws.was_string_packet();
            if echo {
                let mode = if text {
                    WriteMode::Text
                } else {
                    WriteMode::Binary
                };
                let _ = ws.send(&packet, mode);
            } else if text {
                texts.push(String::from_utf8_lossy(&packet).into_owned());
            }
        }
        if ws.ready_state() == ReadyState::Closed || Instant::now() > deadline {
            break;
        }
        if !busy {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    texts
}

fn main() {
    let mut url = "ws://127.0.0.1:9001".to_string();
    let mut agent = "netplay".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--url" => url = args.next().expect("--url URL"),
            "--agent" => agent = args.next().expect("--agent NAME"),
            other => panic!("unknown argument {other}"),
        }
    }
    let count: usize = run(&format!("{url}/getCaseCount"), false)
        .first()
        .and_then(|t| t.trim().parse().ok())
        .expect("the server sends the case count");
    println!("{count} cases");
    for case in 1..=count {
        run(&format!("{url}/runCase?case={case}&agent={agent}"), true);
    }
    run(&format!("{url}/updateReports?agent={agent}"), false);
    println!("done");
}
