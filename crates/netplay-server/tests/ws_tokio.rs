//! The tokio server driver against the polled client: echo, plain HTTP on the same port,
//! refused upgrades, the handshake timeout and the inbound limit.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use netplay::ws::{Event, PeerOptions, ReadyState, WebSocketPeer};
use netplay_server::ws::{accept, Accepted, ServerConfig};

/// Starts a tokio echo server on its own thread; returns its port.
fn start_server(config: ServerConfig) -> u16 {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap().port()).unwrap();
            let config = std::sync::Arc::new(config);
            loop {
                let (tcp, _) = l.accept().await.unwrap();
                let config = config.clone();
                tokio::spawn(async move {
                    match accept(tcp, &config).await {
                        Ok(Accepted::WebSocket(mut ws)) => {
                            while let Ok(Some(ev)) = ws.next_event().await {
                                if let Event::Message { kind, data } = ev {
                                    if data == b"server-close" {
                                        let _ =
                                            ws.close(4002, "asked", Duration::from_secs(2)).await;
                                        break;
                                    }
                                    ws.queue_owned(kind, data).unwrap();
                                }
                            }
                        }
                        Ok(Accepted::Http(http)) => {
                            let body = format!("path={}", http.request().path);
                            let _ = http.respond(200, "OK", "text/plain", body.as_bytes()).await;
                        }
                        Err(_) => {}
                    }
                });
            }
        });
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap()
}

fn connect(port: u16, opts: PeerOptions) -> WebSocketPeer {
    let mut c = WebSocketPeer::with_options(opts);
    c.connect_to_url(&format!("ws://127.0.0.1:{port}/"), None)
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while c.ready_state() == ReadyState::Connecting {
        assert!(Instant::now() < until);
        c.poll();
        std::thread::sleep(Duration::from_millis(1));
    }
    c
}

fn wait(c: &mut WebSocketPeer, mut f: impl FnMut(&mut WebSocketPeer) -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !f(c) {
        assert!(Instant::now() < until, "timed out in {:?}", c.ready_state());
        c.poll();
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn tokio_server_echoes_text_and_binary_in_order() {
    let port = start_server(ServerConfig::default());
    let mut c = connect(
        port,
        PeerOptions {
            outbound_buffer_size: 1 << 24,
            inbound_buffer_size: 1 << 24,
            ..Default::default()
        },
    );
    assert_eq!(c.ready_state(), ReadyState::Open);
    for i in 0..200u32 {
        if i % 2 == 0 {
            c.send_text(&format!("msg {i}")).unwrap();
        } else {
            c.put_packet(&i.to_le_bytes()).unwrap();
        }
    }
    let big: Vec<u8> = (0..4_000_000u32).map(|i| (i * 31) as u8).collect();
    c.put_packet(&big).unwrap();
    let mut got = Vec::new();
    wait(&mut c, |c| {
        while let Some(p) = c.get_packet() {
            got.push((p, c.was_string_packet()));
        }
        got.len() == 201
    });
    for (i, (p, text)) in got.iter().take(200).enumerate() {
        if i % 2 == 0 {
            assert!(*text);
            assert_eq!(p, format!("msg {i}").as_bytes());
        } else {
            assert!(!*text);
            assert_eq!(p, &(i as u32).to_le_bytes());
        }
    }
    assert_eq!(got[200].0, big);
}

#[test]
fn tokio_server_close_reaches_the_client_with_code_and_reason() {
    let port = start_server(ServerConfig::default());
    let mut c = connect(port, PeerOptions::default());
    c.put_packet(b"server-close").unwrap();
    wait(&mut c, |c| c.ready_state() == ReadyState::Closed);
    assert_eq!(c.close_code(), 4002);
    assert_eq!(c.close_reason(), "asked");
}

#[test]
fn plain_http_requests_are_handed_to_the_application() {
    let port = start_server(ServerConfig::default());
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
    assert!(resp.ends_with("path=/healthz"), "{resp}");
}

#[test]
fn a_broken_upgrade_gets_400() {
    let port = start_server(ServerConfig::default());
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 7\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
}

#[test]
fn silent_clients_are_dropped_after_the_handshake_timeout() {
    let port = start_server(ServerConfig {
        handshake_timeout: Duration::from_millis(300),
        ..Default::default()
    });
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the server closes without answering");
    assert!(start.elapsed() >= Duration::from_millis(250));
    assert!(start.elapsed() < Duration::from_secs(4));
}

#[test]
fn oversized_message_closes_with_1009_and_the_server_keeps_serving() {
    let port = start_server(ServerConfig {
        max_message_size: 1000,
        ..Default::default()
    });
    let mut c = connect(port, PeerOptions::default());
    c.put_packet(&[1; 1001]).unwrap();
    wait(&mut c, |c| c.ready_state() == ReadyState::Closed);
    assert_eq!(c.close_code(), 1009);
    assert_eq!(c.close_reason(), "Message too big");
    let mut c2 = connect(port, PeerOptions::default());
    c2.put_packet(&[2; 1000]).unwrap();
    wait(&mut c2, |c| c.available_packet_count() == 1);
    assert!(c2.last_error().is_none());
}

#[test]
fn tokio_server_speaks_wss() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let server_tls = netplay::ws::TlsOptions::server(
        cert.signing_key.serialize_pem().as_bytes(),
        cert.cert.pem().as_bytes(),
    )
    .unwrap();
    let port = start_server(ServerConfig {
        tls: Some(server_tls),
        ..Default::default()
    });
    let client_tls =
        netplay::ws::TlsOptions::client(Some(cert.cert.pem().as_bytes()), None).unwrap();
    let mut c = WebSocketPeer::with_options(PeerOptions {
        outbound_buffer_size: 1 << 22,
        inbound_buffer_size: 1 << 22,
        ..Default::default()
    });
    c.connect_to_url(&format!("wss://localhost:{port}/"), Some(client_tls))
        .unwrap();
    wait(&mut c, |c| c.ready_state() != ReadyState::Connecting);
    assert_eq!(c.ready_state(), ReadyState::Open, "{:?}", c.last_error());
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    c.put_packet(&big).unwrap();
    c.send_text("small").unwrap();
    let mut got = Vec::new();
    wait(&mut c, |c| {
        while let Some(p) = c.get_packet() {
            got.push(p);
        }
        got.len() == 2
    });
    assert_eq!(got[0], big);
    assert_eq!(got[1], b"small");
    c.put_packet(b"server-close").unwrap();
    wait(&mut c, |c| c.ready_state() == ReadyState::Closed);
    assert_eq!(c.close_code(), 4002);
}

#[test]
fn heartbeat_drops_a_peer_that_never_answers_pings_and_keeps_one_that_does() {
    let port = start_server(ServerConfig {
        heartbeat_interval: Some(Duration::from_millis(100)),
        ..Default::default()
    });
    // A raw client: handshake, then silence.
    let mut raw = TcpStream::connect(("127.0.0.1", port)).unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    let mut pings = 0;
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    loop {
        match raw.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                seen.extend_from_slice(&buf[..n]);
                pings = seen.windows(2).filter(|w| w == &[0x89, 0x00]).count();
            }
        }
    }
    assert!(pings >= 1, "the server pinged");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // A polled netplay client answers pings and stays open.
    let mut c = connect(port, PeerOptions::default());
    let until = Instant::now() + Duration::from_millis(600);
    while Instant::now() < until {
        c.poll();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(c.ready_state(), ReadyState::Open);
}
