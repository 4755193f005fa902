//! The polled WebSocketPeer, client against server in one process: Godot's semantics for
//! messages, sub-protocols, close codes, limits, timeouts and bad input.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use netplay::ws::{
    Error, PeerOptions, ReadyState, TcpServer, TlsOptions, WebSocketPeer, WriteMode,
};

/// Polls both peers until `done` holds, failing after 10 s.
fn pump(
    a: &mut WebSocketPeer,
    b: &mut WebSocketPeer,
    mut done: impl FnMut(&mut WebSocketPeer, &mut WebSocketPeer) -> bool,
) {
    let until = Instant::now() + Duration::from_secs(10);
    while !done(a, b) {
        assert!(
            Instant::now() < until,
            "timed out: a={:?} b={:?}",
            a.ready_state(),
            b.ready_state()
        );
        a.poll();
        b.poll();
        std::thread::sleep(Duration::from_millis(1));
    }
}

struct Pair {
    client: WebSocketPeer,
    server: WebSocketPeer,
}

fn pair_with(client_opts: PeerOptions, server_opts: PeerOptions) -> Pair {
    let mut listener = TcpServer::new();
    listener.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let url = format!("ws://127.0.0.1:{}/game?x=1", listener.local_port());
    let mut client = WebSocketPeer::with_options(client_opts);
    client.connect_to_url(&url, None).unwrap();
    assert_eq!(client.ready_state(), ReadyState::Connecting);
    let mut server = WebSocketPeer::with_options(server_opts);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        client.poll();
        if let Some(s) = listener.take_connection() {
            server.accept_stream(s, None).unwrap();
            break;
        }
        assert!(Instant::now() < until);
        std::thread::sleep(Duration::from_millis(1));
    }
    pump(&mut client, &mut server, |c, s| {
        c.ready_state() != ReadyState::Connecting && s.ready_state() != ReadyState::Connecting
    });
    Pair { client, server }
}

fn pair() -> Pair {
    let p = pair_with(PeerOptions::default(), PeerOptions::default());
    assert_eq!(p.client.ready_state(), ReadyState::Open);
    assert_eq!(p.server.ready_state(), ReadyState::Open);
    p
}

#[test]
fn text_and_binary_messages_keep_their_kind() {
    let Pair {
        mut client,
        mut server,
    } = pair();
    client.send_text("héllo").unwrap();
    client.put_packet(&[0, 1, 2, 255]).unwrap();
    pump(&mut client, &mut server, |_, s| {
        s.available_packet_count() == 2
    });
    assert_eq!(server.get_packet().unwrap(), "héllo".as_bytes());
    assert!(server.was_string_packet());
    assert_eq!(server.get_packet().unwrap(), vec![0, 1, 2, 255]);
    assert!(!server.was_string_packet());
    server.send(b"back", WriteMode::Text).unwrap();
    pump(&mut client, &mut server, |c, _| {
        c.available_packet_count() == 1
    });
    assert_eq!(client.get_packet().unwrap(), b"back");
    assert!(client.was_string_packet());
    assert_eq!(
        server.requested_url(),
        format!(
            "ws://127.0.0.1:{}/game?x=1",
            server
                .connected_addr()
                .map(|_| client.connected_port())
                .unwrap()
        )
    );
    assert_eq!(client.connected_host(), "127.0.0.1");
}

#[test]
fn invalid_utf8_text_is_refused_before_sending() {
    let Pair { mut client, .. } = pair();
    assert!(matches!(
        client.send(&[0xff, 0xfe], WriteMode::Text),
        Err(Error::InvalidUtf8)
    ));
}

#[test]
fn server_selects_the_first_offered_protocol_it_supports() {
    let p = pair_with(
        PeerOptions {
            supported_protocols: vec!["x".into(), "chat".into()],
            ..Default::default()
        },
        PeerOptions {
            supported_protocols: vec!["chat".into(), "x".into()],
            ..Default::default()
        },
    );
    assert_eq!(p.client.selected_protocol(), "x");
    assert_eq!(p.server.selected_protocol(), "x");
}

#[test]
fn no_common_protocol_fails_the_handshake_on_both_sides() {
    let p = pair_with(
        PeerOptions {
            supported_protocols: vec!["a".into()],
            ..Default::default()
        },
        PeerOptions {
            supported_protocols: vec!["b".into()],
            ..Default::default()
        },
    );
    assert_eq!(p.client.ready_state(), ReadyState::Closed);
    assert_eq!(p.client.close_code(), -1);
    assert!(
        matches!(p.client.last_error(), Some(Error::Handshake(_))),
        "{:?}",
        p.client.last_error()
    );
    assert_eq!(p.server.ready_state(), ReadyState::Closed);
}

#[test]
fn clean_close_reports_code_and_reason_on_both_sides() {
    let Pair {
        mut client,
        mut server,
    } = pair();
    client.close(4001, "bye now").unwrap();
    assert_eq!(client.ready_state(), ReadyState::Closing);
    pump(&mut client, &mut server, |c, s| {
        c.ready_state() == ReadyState::Closed && s.ready_state() == ReadyState::Closed
    });
    assert_eq!(server.close_code(), 4001);
    assert_eq!(server.close_reason(), "bye now");
    // The server echoed the code.
    assert_eq!(client.close_code(), 4001);
}

#[test]
fn negative_close_code_closes_at_once_and_the_peer_sees_unclean() {
    let Pair {
        mut client,
        mut server,
    } = pair();
    client.close(-1, "").unwrap();
    assert_eq!(client.ready_state(), ReadyState::Closed);
    assert_eq!(client.close_code(), -1);
    pump(&mut client, &mut server, |_, s| {
        s.ready_state() == ReadyState::Closed
    });
    assert_eq!(server.close_code(), -1);
}

#[test]
fn close_code_1009_when_message_exceeds_inbound_buffer_size() {
    let Pair {
        mut client,
        mut server,
    } = pair_with(
        PeerOptions {
            outbound_buffer_size: 1 << 20,
            ..Default::default()
        },
        PeerOptions {
            inbound_buffer_size: 1000,
            ..Default::default()
        },
    );
    client.put_packet(&[7; 1001]).unwrap();
    pump(&mut client, &mut server, |c, s| {
        c.ready_state() == ReadyState::Closed && s.ready_state() == ReadyState::Closed
    });
    assert_eq!(server.close_code(), 1009);
    assert_eq!(server.close_reason(), "Message too big");
    assert_eq!(client.close_code(), 1009);
    assert_eq!(client.close_reason(), "Message too big");
}

#[test]
fn send_fails_with_a_typed_error_when_the_outbound_buffer_is_full() {
    let Pair { mut client, .. } = pair();
    // Godot's default outbound_buffer_size is 65535.
    match client.put_packet(&vec![0; 70000]) {
        Err(Error::OutboundFull {
            size: 70000,
            limit: 65535,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    client.put_packet(&[0; 100]).unwrap();
}

#[test]
fn outbound_queue_is_capped_by_max_queued_packets() {
    let Pair { mut client, .. } = pair_with(
        PeerOptions {
            max_queued_packets: 3,
            ..Default::default()
        },
        PeerOptions::default(),
    );
    for _ in 0..3 {
        client.put_packet(b"x").unwrap();
    }
    assert!(matches!(client.put_packet(b"x"), Err(Error::QueueFull(3))));
}

#[test]
fn inbound_queue_is_capped_and_nothing_is_lost() {
    let Pair {
        mut client,
        mut server,
    } = pair_with(
        PeerOptions::default(),
        PeerOptions {
            max_queued_packets: 10,
            ..Default::default()
        },
    );
    for i in 0..50u8 {
        client.put_packet(&[i]).unwrap();
    }
    pump(&mut client, &mut server, |_, s| {
        s.available_packet_count() == 10
    });
    for _ in 0..20 {
        client.poll();
        server.poll();
    }
    assert_eq!(server.available_packet_count(), 10);
    let mut got = Vec::new();
    pump(&mut client, &mut server, |_, s| {
        while let Some(p) = s.get_packet() {
            got.push(p[0]);
        }
        got.len() == 50
    });
    assert_eq!(got, (0..50).collect::<Vec<u8>>());
}

#[test]
fn server_times_out_a_client_that_never_finishes_its_handshake() {
    let mut listener = TcpServer::new();
    listener.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut raw = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut server = WebSocketPeer::with_options(PeerOptions {
        handshake_timeout: Duration::from_millis(200),
        ..Default::default()
    });
    let until = Instant::now() + Duration::from_secs(5);
    let stream = loop {
        if let Some(s) = listener.take_connection() {
            break s;
        }
        assert!(Instant::now() < until);
    };
    server.accept_stream(stream, None).unwrap();
    let start = Instant::now();
    while server.ready_state() != ReadyState::Closed {
        assert!(start.elapsed() < Duration::from_secs(5));
        server.poll();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(start.elapsed() >= Duration::from_millis(150));
    assert!(matches!(server.last_error(), Some(Error::HandshakeTimeout)));
    assert_eq!(server.close_code(), -1);
}

#[test]
fn malformed_handshake_gets_a_400_and_the_server_peer_closes() {
    let mut listener = TcpServer::new();
    listener.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut raw = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n").unwrap();
    let mut server = WebSocketPeer::new();
    let stream = loop {
        if let Some(s) = listener.take_connection() {
            break s;
        }
    };
    server.accept_stream(stream, None).unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while server.ready_state() != ReadyState::Closed {
        assert!(Instant::now() < until);
        server.poll();
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut resp = String::new();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = raw.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("Sec-WebSocket-Key"), "{resp}");
}

#[test]
fn oversized_handshake_gets_a_431() {
    let mut listener = TcpServer::new();
    listener.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut raw = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let mut req = b"GET / HTTP/1.1\r\n".to_vec();
    while req.len() < 20000 {
        req.extend_from_slice(b"X-Junk: 0123456789012345678901234567890123456789\r\n");
    }
    let _ = raw.write_all(&req);
    let mut server = WebSocketPeer::new();
    let stream = loop {
        if let Some(s) = listener.take_connection() {
            break s;
        }
    };
    server.accept_stream(stream, None).unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while server.ready_state() != ReadyState::Closed {
        assert!(Instant::now() < until);
        server.poll();
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut resp = Vec::new();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = raw.read_to_end(&mut resp);
    assert!(
        resp.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&resp)
    );
}

/// A raw server's side of the opening handshake: accepts one client and answers 101.
fn raw_accept(l: &TcpListener) -> TcpStream {
    let (mut s, _) = l.accept().unwrap();
    let mut buf = [0u8; 4096];
    let mut req = Vec::new();
    while !req.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        req.extend_from_slice(&buf[..n]);
    }
    let req = String::from_utf8(req).unwrap();
    let key = req
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap();
    let accept = netplay::ws::handshake::accept_key(key);
    write!(s, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").unwrap();
    s
}

#[test]
fn a_peer_that_vanishes_mid_message_gives_an_unclean_close() {
    // A raw server completes the handshake, sends half a frame and drops the socket.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        let mut s = raw_accept(&l);
        s.write_all(&[0x82, 100, 1, 2, 3]).unwrap();
    });
    let mut client = WebSocketPeer::new();
    client
        .connect_to_url(&format!("ws://127.0.0.1:{port}"), None)
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while client.ready_state() != ReadyState::Closed {
        assert!(Instant::now() < until);
        client.poll();
        std::thread::sleep(Duration::from_millis(1));
    }
    t.join().unwrap();
    assert_eq!(client.close_code(), -1);
    assert_eq!(client.available_packet_count(), 0);
}

#[test]
fn heartbeat_closes_uncleanly_when_pongs_stop() {
    // A raw server that completes the handshake and then never answers anything.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        let mut s = raw_accept(&l);
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut buf = [0u8; 4096];
        let mut pings = 0;
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            pings += 1;
        }
        pings
    });
    let mut client = WebSocketPeer::new();
    // A real interval, in virtual time: the clock moves 100 ms per poll.
    client.set_heartbeat_interval(Some(Duration::from_secs(10)));
    client
        .connect_to_url(&format!("ws://127.0.0.1:{port}"), None)
        .unwrap();
    let wall = Instant::now();
    let mut now = Instant::now();
    while client.ready_state() != ReadyState::Open {
        assert!(wall.elapsed() < Duration::from_secs(5), "never opened");
        client.poll_at(now);
        std::thread::sleep(Duration::from_millis(1));
    }
    let opened = now;
    while client.ready_state() != ReadyState::Closed {
        assert!(now - opened < Duration::from_secs(60), "never closed");
        now += Duration::from_millis(100);
        client.poll_at(now);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(client.close_code(), -1);
    // A ping after 10 s, no pong by the next one 10 s later: closed then.
    let after = now - opened;
    assert!(
        after >= Duration::from_secs(20) && after <= Duration::from_millis(20_200),
        "closed after {after:?} of virtual time"
    );
    assert!(wall.elapsed() < Duration::from_secs(5));
    assert!(t.join().unwrap() >= 1, "the client sent a ping");
}

#[test]
fn heartbeat_keeps_a_responsive_connection_open() {
    let Pair {
        mut client,
        mut server,
    } = pair();
    client.set_heartbeat_interval(Some(Duration::from_secs(10)));
    let wall = Instant::now();
    let start = Instant::now();
    let mut now = start;
    // A minute of virtual time, six heartbeats; the server answers every ping.
    while now - start < Duration::from_secs(60) {
        now += Duration::from_millis(50);
        client.poll_at(now);
        server.poll_at(now);
        std::thread::sleep(Duration::from_micros(500));
    }
    assert_eq!(client.ready_state(), ReadyState::Open);
    assert!(wall.elapsed() < Duration::from_secs(10));
}

#[test]
fn connecting_to_a_closed_port_ends_closed_with_an_io_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut client = WebSocketPeer::new();
    client
        .connect_to_url(&format!("ws://127.0.0.1:{port}"), None)
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while client.ready_state() != ReadyState::Closed {
        assert!(Instant::now() < until);
        client.poll();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(client.close_code(), -1);
    assert!(
        matches!(client.last_error(), Some(Error::Io(_))),
        "{:?}",
        client.last_error()
    );
}

#[test]
fn connect_to_url_rejects_bad_urls_and_busy_peers() {
    let mut client = WebSocketPeer::new();
    assert!(matches!(
        client.connect_to_url("http://x", None),
        Err(Error::InvalidUrl(_))
    ));
    client.connect_to_url("ws://127.0.0.1:9", None).unwrap();
    assert!(matches!(
        client.connect_to_url("ws://127.0.0.1:9", None),
        Err(Error::AlreadyInUse)
    ));
}

#[test]
fn localhost_is_resolved_without_blocking_poll() {
    let mut listener = TcpServer::new();
    listener.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut client = WebSocketPeer::new();
    client
        .connect_to_url(&format!("ws://localhost:{}", listener.local_port()), None)
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    let mut server = WebSocketPeer::new();
    loop {
        let t = Instant::now();
        client.poll();
        assert!(t.elapsed() < Duration::from_millis(200), "poll blocked");
        if let Some(s) = listener.take_connection() {
            server.accept_stream(s, None).unwrap();
            break;
        }
        assert!(Instant::now() < until);
        std::thread::sleep(Duration::from_millis(1));
    }
    pump(&mut client, &mut server, |c, s| {
        c.ready_state() == ReadyState::Open && s.ready_state() == ReadyState::Open
    });
}

#[test]
fn wss_round_trip_with_a_trusted_self_signed_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = cert.cert.pem();
    let key_pem = cert.signing_key.serialize_pem();
    let server_tls = TlsOptions::server(key_pem.as_bytes(), cert_pem.as_bytes()).unwrap();
    let client_tls = TlsOptions::client(Some(cert_pem.as_bytes()), None).unwrap();

    let mut listener = TcpServer::new();
    listener.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut client = WebSocketPeer::new();
    client.set_outbound_buffer_size(1 << 21);
    client
        .connect_to_url(
            &format!("wss://localhost:{}/", listener.local_port()),
            Some(client_tls),
        )
        .unwrap();
    let mut server = WebSocketPeer::new();
    server.set_inbound_buffer_size(1 << 21);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        client.poll();
        if let Some(s) = listener.take_connection() {
            server.accept_stream(s, Some(&server_tls)).unwrap();
            break;
        }
        assert!(Instant::now() < until);
        std::thread::sleep(Duration::from_millis(1));
    }
    pump(&mut client, &mut server, |c, s| {
        c.ready_state() == ReadyState::Open && s.ready_state() == ReadyState::Open
    });
    assert!(server.requested_url().starts_with("wss://localhost:"));
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    client.put_packet(&big).unwrap();
    pump(&mut client, &mut server, |_, s| {
        s.available_packet_count() == 1
    });
    assert_eq!(server.get_packet().unwrap(), big);
    client.close(1000, "").unwrap();
    pump(&mut client, &mut server, |c, s| {
        c.ready_state() == ReadyState::Closed && s.ready_state() == ReadyState::Closed
    });
    assert_eq!(server.close_code(), 1000);
}

#[test]
fn wss_with_an_untrusted_certificate_fails_unless_unsafe() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let server_tls = TlsOptions::server(
        cert.signing_key.serialize_pem().as_bytes(),
        cert.cert.pem().as_bytes(),
    )
    .unwrap();
    for (client_tls, should_open) in [
        (TlsOptions::client(None, None).unwrap(), false),
        (TlsOptions::client_unsafe(), true),
    ] {
        let mut listener = TcpServer::new();
        listener.listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut client = WebSocketPeer::new();
        client
            .connect_to_url(
                &format!("wss://localhost:{}/", listener.local_port()),
                Some(client_tls),
            )
            .unwrap();
        let mut server = WebSocketPeer::new();
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            client.poll();
            if let Some(s) = listener.take_connection() {
                server.accept_stream(s, Some(&server_tls)).unwrap();
                break;
            }
            assert!(Instant::now() < until);
        }
        pump(&mut client, &mut server, |c, _| {
            c.ready_state() != ReadyState::Connecting
        });
        assert_eq!(client.ready_state() == ReadyState::Open, should_open);
        if !should_open {
            assert!(
                matches!(client.last_error(), Some(Error::Io(_))),
                "{:?}",
                client.last_error()
            );
        }
    }
}
