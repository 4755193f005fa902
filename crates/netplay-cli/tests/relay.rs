//! `netplay relay`: clients of Godot's `WebSocketMultiplayerPeer` with `SceneMultiplayer` meet
//! in sessions named by the URL path and reach each other through the relay (peer 1).
//!
//! Wire facts, from Godot's source: the server's first message to a client is the client's id
//! as 4 little-endian bytes (`modules/websocket/websocket_multiplayer_peer.cpp` @ 054ded4a,
//! `_send_sys`/`poll`); the server announces peers with `SYS ADD_PEER`/`DEL_PEER` (`07 01 id`,
//! `07 02 id`) and passes a client's `SYS RELAY` (`07 03 target packet`) on as
//! `07 03 source packet` (`modules/multiplayer/scene_multiplayer.cpp` @ 1e0b41ab,
//! `_admit_peer`, `_del_peer`, `_process_sys`). The SceneMultiplayer clients here are netplay's;
//! the raw-byte tests stand in for Godot's clients byte for byte, once on netplay's WebSocket
//! and once on Python's `websockets` (`tests/interop/relay_clients.py`).

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::signal::http_get;
use common::{netplay_bin, Service, STARTUP_TIMEOUT};
use netplay::multiplayer::{
    SceneEvent, SceneMultiplayer, Target, TransferMode, WebSocketMultiplayerPeer,
};
use netplay::ws::{ReadyState, WebSocketPeer};

type Scene = SceneMultiplayer<WebSocketMultiplayerPeer>;

const WAIT: Duration = Duration::from_secs(10);
/// How long a leave may take to reach the other clients of a session.
const LEAVE_BOUND: Duration = Duration::from_secs(3);

struct Relay {
    /// Kept running until the test ends.
    _service: Service,
    port: u16,
}

fn relay(extra: &[&str]) -> Relay {
    let mut cmd = Command::new(netplay_bin());
    cmd.args(["relay", "--listen", "127.0.0.1:0", "--seed", "5"])
        .args(extra);
    let mut service = Service::spawn("netplay relay", &mut cmd, false);
    let port = service.wait_for_line(STARTUP_TIMEOUT, "`listening on ws://...`", |line| {
        let rest = line.strip_prefix("listening on ws://127.0.0.1:")?;
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    });
    Relay {
        _service: service,
        port,
    }
}

impl Relay {
    fn url(&self, session: &str) -> String {
        format!("ws://127.0.0.1:{}{session}", self.port)
    }

    fn metric(&self, name: &str) -> u64 {
        let text = http_get(self.port, "/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    }
}

fn client(url: &str) -> Scene {
    let mut peer = WebSocketMultiplayerPeer::new();
    peer.create_client(url, None).unwrap();
    SceneMultiplayer::new(peer)
}

/// Polls every client until `done`, collecting their events.
fn until(
    all: &mut [Scene],
    events: &mut [Vec<SceneEvent>],
    timeout: Duration,
    what: &str,
    mut done: impl FnMut(&[Scene], &[Vec<SceneEvent>]) -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !done(all, events) {
        assert!(
            Instant::now() < deadline,
            "{what}: timed out; events: {events:?}"
        );
        for (s, e) in all.iter_mut().zip(events.iter_mut()) {
            s.poll();
            e.extend(std::iter::from_fn(|| s.poll_event()));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `n` clients of one session, each knowing the relay and the others.
fn session(relay: &Relay, name: &str, n: usize) -> (Vec<Scene>, Vec<Vec<SceneEvent>>) {
    let mut all: Vec<Scene> = (0..n).map(|_| client(&relay.url(name))).collect();
    let mut events = vec![Vec::new(); n];
    until(&mut all, &mut events, WAIT, "session forms", |all, _| {
        all.iter().all(|c| c.peers().len() == n)
    });
    (all, events)
}

fn packets(events: &[SceneEvent]) -> BTreeSet<(i32, Vec<u8>)> {
    events
        .iter()
        .filter_map(|e| match e {
            SceneEvent::Packet { from, data, .. } => Some((*from, data.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn clients_of_one_session_see_each_other_and_exchange_bytes_through_the_relay() {
    let relay = relay(&[]);
    let (mut all, mut events) = session(&relay, "/arena", 3);
    let ids: Vec<i32> = all.iter().map(|s| s.unique_id()).collect();
    for (i, s) in all.iter().enumerate() {
        assert!(ids[i] >= 2);
        let seen: BTreeSet<i32> = s.peers().iter().copied().collect();
        let mut expected: BTreeSet<i32> = ids.iter().copied().filter(|&id| id != ids[i]).collect();
        expected.insert(1);
        assert_eq!(seen, expected, "client {}", ids[i]);
    }
    for e in events.iter_mut() {
        assert_eq!(
            e.iter()
                .filter(|e| **e == SceneEvent::ConnectedToServer)
                .count(),
            1
        );
        e.clear();
    }

    // Everyone broadcasts; client 0 also sends to client 1 alone, unreliably on channel 2.
    for (i, s) in all.iter_mut().enumerate() {
        let text = format!("hello from {}", ids[i]);
        s.send_bytes(
            text.as_bytes(),
            Target::Broadcast,
            TransferMode::Reliable,
            0,
        )
        .unwrap();
    }
    all[0]
        .send_bytes(
            b"just you",
            Target::Peer(ids[1]),
            TransferMode::Unreliable,
            2,
        )
        .unwrap();
    until(&mut all, &mut events, WAIT, "packets", |_, events| {
        events
            .iter()
            .enumerate()
            .all(|(i, e)| packets(e).len() == if i == 1 { 3 } else { 2 })
    });
    for (i, e) in events.iter().enumerate() {
        let mut expected: BTreeSet<(i32, Vec<u8>)> = (0..3)
            .filter(|&j| j != i)
            .map(|j| (ids[j], format!("hello from {}", ids[j]).into_bytes()))
            .collect();
        if i == 1 {
            expected.insert((ids[0], b"just you".to_vec()));
        }
        assert_eq!(packets(e), expected, "at client {}", ids[i]);
    }
    // The relay reads the broadcasts addressed to it too, and runs no game: they are counted.
    assert_eq!(relay.metric("netplay_relay_packets_to_server_total"), 3);
    assert_eq!(relay.metric("netplay_relay_sessions"), 1);
    assert_eq!(relay.metric("netplay_relay_peers"), 3);
}

#[test]
fn sessions_are_separate_and_a_leaving_client_is_announced_within_the_bound() {
    let relay = relay(&[]);
    let (mut a, mut a_events) = session(&relay, "/a", 3);
    let (mut b, mut b_events) = session(&relay, "/b?token=ignored", 2);
    assert_eq!(relay.metric("netplay_relay_sessions"), 2);
    assert_eq!(relay.metric("netplay_relay_peers"), 5);
    // Each session's clients know only their own.
    let a_ids: BTreeSet<i32> = a.iter().map(|s| s.unique_id()).collect();
    for s in &b {
        assert!(
            s.peers().iter().all(|p| !a_ids.contains(p)),
            "{:?}",
            s.peers()
        );
    }
    b[0].send_bytes(b"only b", Target::Broadcast, TransferMode::Reliable, 0)
        .unwrap();
    let b1 = b[0].unique_id();
    until(&mut b, &mut b_events, WAIT, "b's packet", |_, e| {
        packets(&e[1]).contains(&(b1, b"only b".to_vec()))
    });
    // A client of /a leaves: the other two hear it (DEL_PEER), /b does not.
    let gone = a.pop().unwrap();
    let gone_id = gone.unique_id();
    a_events.pop();
    drop(gone);
    let t0 = Instant::now();
    until(&mut a, &mut a_events, LEAVE_BOUND, "leave heard", |_, e| {
        e.iter()
            .all(|e| e.contains(&SceneEvent::PeerDisconnected(gone_id)))
    });
    eprintln!("leave heard by both after {:?}", t0.elapsed());
    for s in &a {
        assert!(!s.peers().contains(&gone_id));
    }
    for _ in 0..50 {
        for (s, e) in b.iter_mut().zip(b_events.iter_mut()) {
            s.poll();
            e.extend(std::iter::from_fn(|| s.poll_event()));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(b_events
        .iter()
        .flatten()
        .all(|e| !matches!(e, SceneEvent::PeerDisconnected(_))));
    drop(a);
    drop(b);
    // Empty sessions close.
    let deadline = Instant::now() + WAIT;
    while relay.metric("netplay_relay_sessions") != 0 {
        assert!(Instant::now() < deadline, "sessions stay open");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A raw WebSocket client standing in for a Godot client.
struct Raw {
    ws: WebSocketPeer,
}

impl Raw {
    fn connect(url: &str) -> Raw {
        let mut ws = WebSocketPeer::new();
        ws.connect_to_url(url, None).unwrap();
        Raw { ws }
    }

    fn recv(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + WAIT;
        loop {
            self.ws.poll();
            if let Some(p) = self.ws.get_packet() {
                return p;
            }
            assert!(
                self.ws.ready_state() != ReadyState::Closed,
                "closed: {} {}",
                self.ws.close_code(),
                self.ws.close_reason()
            );
            assert!(Instant::now() < deadline, "no packet");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn send(&mut self, data: &[u8]) {
        self.ws.put_packet(data).unwrap();
        self.ws.poll();
    }

    /// The id message: exactly 4 bytes, little-endian.
    fn id(&mut self) -> i32 {
        let m = self.recv();
        assert_eq!(m.len(), 4, "the id message is 4 bytes: {m:?}");
        let id = i32::from_le_bytes([m[0], m[1], m[2], m[3]]);
        assert!(id >= 2, "{id}");
        id
    }

    fn closed(&mut self) -> (i32, String) {
        let deadline = Instant::now() + WAIT;
        while self.ws.ready_state() != ReadyState::Closed {
            assert!(Instant::now() < deadline, "not closed");
            self.ws.poll();
            let _ = self.ws.get_packet();
            std::thread::sleep(Duration::from_millis(1));
        }
        (self.ws.close_code(), self.ws.close_reason().to_string())
    }
}

fn sys(sub: u8, id: i32, inner: &[u8]) -> Vec<u8> {
    let mut p = vec![7, sub];
    p.extend_from_slice(&id.to_le_bytes());
    p.extend_from_slice(inner);
    p
}

#[test]
fn the_relay_speaks_godots_bytes_id_message_announcements_and_relay() {
    let relay = relay(&[]);
    let url = relay.url("/bytes");
    let mut a = Raw::connect(&url);
    let id_a = a.id();
    let mut b = Raw::connect(&url);
    let id_b = b.id();
    // _admit_peer: the newcomer hears of each connected peer, the others of the newcomer.
    assert_eq!(b.recv(), sys(1, id_a, &[]));
    assert_eq!(a.recv(), sys(1, id_b, &[]));
    // A RELAY to b arrives at b re-wrapped with a's id; the inner packet is untouched.
    a.send(&sys(3, id_b, &[3, b'h', b'i']));
    assert_eq!(b.recv(), sys(3, id_a, &[3, b'h', b'i']));
    // A broadcast RELAY (target 0) reaches b and the relay (counted, not read further).
    a.send(&sys(3, 0, &[3, b'!']));
    assert_eq!(b.recv(), sys(3, id_a, &[3, b'!']));
    // b leaves: a hears DEL_PEER.
    b.ws.close(1000, "bye").unwrap();
    let _ = b.closed();
    assert_eq!(a.recv(), sys(2, id_b, &[]));
    assert_eq!(relay.metric("netplay_relay_packets_to_server_total"), 1);
}

#[test]
fn bad_packets_are_counted_and_dropped_and_the_session_goes_on() {
    let relay = relay(&["--max-message", "1024"]);
    let url = relay.url("/bad");
    let mut bad = Raw::connect(&url);
    let id_bad = bad.id();
    let mut good = Raw::connect(&url);
    let id_good = good.id();
    assert_eq!(good.recv(), sys(1, id_bad, &[]));
    assert_eq!(bad.recv(), sys(1, id_good, &[]));
    let malformed: [&[u8]; 5] = [
        &[],                          // empty
        &[7, 3, 1],                   // SYS shorter than 6 bytes
        &[7, 3, 0, 0, 0, 0],          // RELAY without a packet
        &[7, 1, 9, 0, 0, 0],          // ADD_PEER from a client
        &[7, 9, 0, 0, 0, 0, 3, b'x'], // unknown SYS command
    ];
    for m in malformed {
        bad.send(m);
    }
    bad.send(&[0, 1, 2, 3]); // a remote call: not run by the relay
    bad.send(&sys(3, 123_456, &[3, b'x'])); // RELAY to nobody: dropped
                                            // The good client still gets bad's next packet, and nothing before it.
    bad.send(&sys(3, id_good, &[3, b'o', b'k']));
    assert_eq!(good.recv(), sys(3, id_bad, &[3, b'o', b'k']));
    assert_eq!(relay.metric("netplay_relay_malformed_total"), 5);
    assert_eq!(relay.metric("netplay_relay_unsupported_total"), 1);
    // Over --max-message: closed with 1009, and the other client hears it leave.
    bad.send(&[3; 2000]);
    assert_eq!(bad.closed().0, 1009);
    assert_eq!(good.recv(), sys(2, id_bad, &[]));
    assert_eq!(relay.metric("netplay_relay_peers"), 1);
}

#[test]
fn session_and_peer_limits_close_newcomers_with_1013() {
    let relay = relay(&["--max-peers", "2", "--max-sessions", "2"]);
    let mut a1 = Raw::connect(&relay.url("/one"));
    a1.id();
    let mut a2 = Raw::connect(&relay.url("/one"));
    let id_a2 = a2.id();
    let mut a3 = Raw::connect(&relay.url("/one"));
    assert_eq!(a3.closed(), (1013, "Session full".to_string()));
    let mut b1 = Raw::connect(&relay.url("/two"));
    b1.id();
    let mut c1 = Raw::connect(&relay.url("/three"));
    assert_eq!(c1.closed(), (1013, "Too many sessions".to_string()));
    assert_eq!(relay.metric("netplay_relay_refused_full_total"), 2);
    // A place freed is a place to take.
    assert_eq!(a1.recv(), sys(1, id_a2, &[]));
    a2.ws.close(1000, "").unwrap();
    a2.closed();
    assert_eq!(a1.recv(), sys(2, id_a2, &[]));
    let mut a4 = Raw::connect(&relay.url("/one"));
    let id_a4 = a4.id();
    assert_eq!(a1.recv(), sys(1, id_a4, &[]));
}

#[test]
fn health_metrics_and_tokens() {
    let relay = relay(&["--auth-token", "s3cret"]);
    let health = http_get(relay.port, "/healthz");
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"),
        "{health}"
    );
    let mut no_token = Raw::connect(&relay.url("/room"));
    assert_eq!(no_token.closed(), (1008, "Invalid token".to_string()));
    let mut with_token = Raw::connect(&relay.url("/room?token=s3cret"));
    with_token.id();
    assert_eq!(relay.metric("netplay_unauthorized_total"), 1);
    assert_eq!(relay.metric("netplay_relay_connections_total"), 1);
    assert!(http_get(relay.port, "/nothing").starts_with("HTTP/1.1 404"));
}

#[test]
fn python_websockets_clients_speaking_godots_bytes_meet_through_the_relay() {
    let relay = relay(&[]);
    let mut cmd = Command::new(common::venv_python());
    cmd.arg(common::interop_dir().join("relay_clients.py"))
        .arg(relay.url("/py"));
    let out = common::run_bounded(&mut cmd, Duration::from_secs(60));
    assert!(out.success(), "{}", out.report());
    let passed = common::passed_checks(&out);
    assert_eq!(passed.len(), 7, "{}", out.report());
}

/// A browser client: netplay's `WebSocketMultiplayerPeer` and `SceneMultiplayer` built for
/// wasm32, over the browser's WebSocket, in a session with a native client.
#[test]
fn a_browser_client_and_a_native_client_meet_through_the_relay() {
    let relay = relay(&[]);
    // The browser first: the native client's handshake timeout runs while it is not polled.
    let mut browser = common::web::Browser::start();
    let mut all = [client(&relay.url("/mixed"))];
    let mut events = [Vec::new()];
    until(
        &mut all,
        &mut events,
        WAIT,
        "the native client joins",
        |_, e| e[0].contains(&SceneEvent::ConnectedToServer),
    );
    browser.ok(&format!("mp connect {}", relay.url("/mixed")));
    let web_id: i32 = browser
        .lines
        .wait(common::web::WAIT, "`mp connected id=N`", |l| {
            l.strip_prefix("tab 1 mp connected id=")?.parse().ok()
        });
    browser.expect("mp + 1");
    until(
        &mut all,
        &mut events,
        WAIT,
        "the browser's arrival",
        |_, e| e[0].contains(&SceneEvent::PeerConnected(web_id)),
    );
    let native_id = all[0].unique_id();
    browser.expect(&format!("mp + {native_id}"));

    browser.ok("mp send hello from the browser");
    until(
        &mut all,
        &mut events,
        WAIT,
        "the browser's packet",
        |_, e| packets(&e[0]).contains(&(web_id, b"hello from the browser".to_vec())),
    );
    all[0]
        .send_bytes(
            "héllo, browser".as_bytes(),
            Target::Peer(web_id),
            TransferMode::Reliable,
            0,
        )
        .unwrap();
    for _ in 0..20 {
        all[0].poll();
    }
    browser.expect(&format!("mp packet {native_id} héllo, browser"));

    // The tab goes away: the relay announces it.
    browser.lines.write_line("close 1");
    until(
        &mut all,
        &mut events,
        LEAVE_BOUND,
        "the browser's leave",
        |_, e| e[0].contains(&SceneEvent::PeerDisconnected(web_id)),
    );
    browser.assert_no_page_errors();
}
