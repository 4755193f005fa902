//! `netplay serve`, the signaling server, driven by real WebSocket clients (netplay's polled
//! peer) and plain HTTP: lobbies, relaying with id rewriting, sealing, bad input, /healthz,
//! /metrics, the demo page and graceful shutdown.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::gen_certs;
use common::s;
use common::signal::{http_get, http_get_bytes, start, Client};
use netplay::signal::{CandidatePayload, Message, MessageType};
use netplay::ws::{ReadyState, WebSocketPeer};

#[test]
fn mesh_lobby_join_relay_and_seal() {
    let server = start(&["--seal-close-timeout-ms", "300"]);
    let mut host = Client::connect(server.port);
    host.send(&Message::join("", true));
    let id = host.recv();
    assert_eq!(
        (id.kind, id.id, id.data.as_str()),
        (MessageType::Id, 1, "true")
    );
    let joined = host.recv();
    assert_eq!(joined.kind, MessageType::Join);
    let lobby = joined.data.clone();
    assert_eq!(lobby.len(), 16);

    let mut guest = Client::connect(server.port);
    guest.send(&Message::join(lobby.clone(), true));
    let gid = guest.recv();
    assert_eq!(gid.kind, MessageType::Id);
    assert!(gid.id >= 2);
    assert_eq!(guest.recv(), Message::peer_connect(1));
    assert_eq!(guest.recv(), Message::join_reply(lobby.clone()));
    assert_eq!(host.recv(), Message::peer_connect(gid.id));

    // Relay: the destination id is rewritten to the sender's.
    guest.send(&Message::offer(1, "v=0 offer"));
    assert_eq!(host.recv(), Message::offer(gid.id, "v=0 offer"));
    host.send(&Message::answer(gid.id, "v=0 answer"));
    assert_eq!(guest.recv(), Message::answer(1, "v=0 answer"));
    let cand = CandidatePayload {
        mid: "0".into(),
        index: 0,
        candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host".into(),
    };
    host.send(&Message::candidate(gid.id, &cand));
    let got = guest.recv();
    assert_eq!(got.kind, MessageType::Candidate);
    assert_eq!(got.id, 1);
    assert_eq!(CandidatePayload::decode(&got.data).unwrap(), cand);

    // Only the host seals; everyone hears it and is closed with 1000 after the timeout.
    host.send(&Message::seal());
    assert_eq!(host.recv(), Message::seal());
    assert_eq!(guest.recv(), Message::seal());
    let late = {
        let mut c = Client::connect(server.port);
        c.send(&Message::join(lobby, true));
        c.closed()
    };
    assert_eq!(late, (4000, "Lobby is sealed".to_string()));
    assert_eq!(host.closed(), (1000, "Seal complete".to_string()));
    assert_eq!(guest.closed(), (1000, "Seal complete".to_string()));
    drop(server);
}

#[test]
fn bad_input_gets_4000_with_a_reason_and_others_keep_working() {
    let server = start(&[]);
    let mut good = Client::connect(server.port);
    good.send(&Message::join("", false));
    assert_eq!(good.recv().id, 1);

    let mut binary = Client::connect(server.port);
    binary.ws.put_packet(b"\x00\x01").unwrap();
    assert_eq!(
        binary.closed(),
        (4000, "Invalid transfer mode, must be text".to_string())
    );
    let mut junk = Client::connect(server.port);
    junk.ws.send_text("this is not json").unwrap();
    assert_eq!(junk.closed(), (4000, "Invalid message format".to_string()));
    let mut silent = Client::connect(server.port);
    assert_eq!(
        silent.closed(),
        (4000, "Have not joined lobby yet".to_string())
    );
    let mut guest = Client::connect(server.port);
    guest.send(&Message::join("no-such-lobby", false));
    assert_eq!(guest.closed(), (4000, "Lobby does not exists".to_string()));

    // The first client's lobby still works.
    assert_eq!(good.recv().kind, MessageType::Join);
    let health = http_get(server.port, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let metrics = http_get(server.port, "/metrics");
    assert!(metrics.contains("netplay_signal_lobbies 1"), "{metrics}");
    assert!(
        metrics.contains("netplay_signal_errors_total{reason=\"Invalid message format\"} 1"),
        "{metrics}"
    );
    drop(server);
}

#[test]
fn demo_page_and_unknown_paths() {
    let server = start(&[]);
    // The page, its JavaScript glue and its WebAssembly module (the demo built for the
    // browser, crates/netplay-demo), each with its type.
    let page = http_get(server.port, "/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("./netplay_demo.js"), "{page}");
    let js = http_get(server.port, "/netplay_demo.js");
    assert!(
        js.starts_with("HTTP/1.1 200"),
        "{}",
        &js[..200.min(js.len())]
    );
    assert!(js
        .to_ascii_lowercase()
        .contains("content-type: text/javascript"));
    assert!(js.ends_with(netplay_server::DEMO_JS));
    let wasm = http_get_bytes(server.port, "/netplay_demo_bg.wasm");
    let head_end = wasm.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&wasm[..head_end]).to_ascii_lowercase();
    assert!(head.contains("content-type: application/wasm"), "{head}");
    assert_eq!(&wasm[head_end..], netplay_server::DEMO_WASM);
    assert!(http_get(server.port, "/../etc/passwd").starts_with("HTTP/1.1 404"));
    drop(server);
}

#[test]
fn sigterm_closes_members_with_1001_and_exits() {
    let mut server = start(&[]);
    let mut host = Client::connect(server.port);
    host.send(&Message::join("", true));
    assert_eq!(host.recv().id, 1);
    let pid = server.service.guard.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    assert_eq!(host.closed(), (1001, "Server shutting down".to_string()));
    let exit = server.service.guard.wait_timeout(Duration::from_secs(10));
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}");
}

#[test]
fn signaling_client_joins_and_relays_through_netplay_serve() {
    use netplay::signal::{Client as SignalClient, ClientEvent, Signaling};
    let server = start(&[]);
    let url = format!("ws://127.0.0.1:{}", server.port);
    let mut host = SignalClient::connect(&url, "", false).unwrap();
    let next = |c: &mut SignalClient| -> ClientEvent {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            c.poll();
            if let Some(ev) = c.poll_event() {
                return ev;
            }
            assert!(
                Instant::now() < deadline,
                "no event: {:?} {:?} {}",
                c.peer().ready_state(),
                c.peer().last_error(),
                c.peer().close_code()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    assert_eq!(next(&mut host), ClientEvent::Id { id: 1, mesh: false });
    let ClientEvent::Joined { lobby } = next(&mut host) else {
        panic!("no join reply")
    };
    let mut guest = SignalClient::connect(&url, &lobby, false).unwrap();
    let ClientEvent::Id {
        id: gid,
        mesh: false,
    } = next(&mut guest)
    else {
        panic!("no id")
    };
    assert_eq!(next(&mut guest), ClientEvent::PeerConnected(1));
    assert_eq!(next(&mut guest), ClientEvent::Joined { lobby });
    assert_eq!(next(&mut host), ClientEvent::PeerConnected(gid));
    guest.send_offer(1, "offer-sdp").unwrap();
    guest.poll();
    assert_eq!(
        next(&mut host),
        ClientEvent::Offer {
            from: gid,
            sdp: "offer-sdp".into()
        }
    );
    host.close();
    // Keep polling the host until its close frame is out, as with any peer.
    let deadline = Instant::now() + Duration::from_secs(10);
    let ev = loop {
        host.poll();
        guest.poll();
        if let Some(ev) = guest.poll_event() {
            break ev;
        }
        assert!(Instant::now() < deadline, "guest saw no close");
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(
        ev,
        ClientEvent::Closed {
            code: 4000,
            reason: "Room host has disconnected".into()
        }
    );
    drop(server);
}

#[test]
fn auth_token_and_per_ip_cap_are_enforced() {
    let server = start(&["--auth-token", "s3cret", "--max-connections-per-ip", "2"]);
    let connect_to = |path: &str| {
        let mut ws = WebSocketPeer::new();
        ws.connect_to_url(&format!("ws://127.0.0.1:{}{path}", server.port), None)
            .unwrap();
        let mut c = Client { ws };
        c.until(|ws| ws.ready_state() != ReadyState::Connecting);
        c
    };
    let mut wrong = connect_to("/?token=nope");
    assert_eq!(wrong.closed(), (4000, "Invalid token".to_string()));
    let mut none = connect_to("/");
    assert_eq!(none.closed(), (4000, "Invalid token".to_string()));
    let mut a = connect_to("/?room=x&token=s3cret");
    a.send(&Message::join("", true));
    assert_eq!(a.recv().id, 1);
    let b = connect_to("/?token=s3cret");
    assert_eq!(b.ws.ready_state(), ReadyState::Open);
    // A third connection from 127.0.0.1 is over the cap: dropped before the handshake.
    let mut c = WebSocketPeer::new();
    c.connect_to_url(
        &format!("ws://127.0.0.1:{}/?token=s3cret", server.port),
        None,
    )
    .unwrap();
    let mut c = Client { ws: c };
    assert_eq!(c.closed().0, -1);
    let metrics = {
        drop(b);
        std::thread::sleep(Duration::from_millis(200));
        http_get(server.port, "/metrics")
    };
    assert!(
        metrics.contains("netplay_refused_per_ip_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("netplay_unauthorized_total 2"),
        "{metrics}"
    );
    drop(server);
}

#[test]
fn serve_over_tls_speaks_wss_and_https() {
    let certs = gen_certs();
    let server = start(&["--tls-cert", s(&certs.cert), "--tls-key", s(&certs.key)]);
    let ca = std::fs::read(&certs.ca).unwrap();
    let tls = netplay::ws::TlsOptions::client(Some(&ca), None).unwrap();
    let mut ws = WebSocketPeer::new();
    ws.connect_to_url(&format!("wss://127.0.0.1:{}/", server.port), Some(tls))
        .unwrap();
    let mut c = Client { ws };
    c.until(|ws| ws.ready_state() != ReadyState::Connecting);
    assert_eq!(
        c.ws.ready_state(),
        ReadyState::Open,
        "{:?}",
        c.ws.last_error()
    );
    c.send(&Message::join("", true));
    assert_eq!(c.recv().id, 1);
    drop(server);
}
