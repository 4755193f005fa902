//! Peer connections gathering from the ICE servers of their configuration: server-reflexive
//! candidates from STUN, relayed candidates from TURN, relay-only connections, and servers
//! that refuse, stay silent or talk nonsense. Everything runs on 127.0.0.1.
//!
//! The real server is coturn (it answers STUN Binding requests too), started per test on a
//! free loopback port with a long-term user and stopped at the end. The binary is found
//! through `$NETPLAY_TURNSERVER` or on `PATH` (Debian package `coturn`, installed by
//! `scripts/setup-system.sh`); without it the tests fail. A fake STUN server on a test socket
//! gives the answers coturn cannot give on loopback (a mapped address other than the host's).
#![cfg(feature = "webrtc")]

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use netplay::rtc::{
    CandidateError, ChannelId, ConnectionState, DataChannelOptions, Error, Event, GatheringState,
    IceServer, PeerConfig, PeerConnection, ReadyState,
};
use netplay::stun::{
    Action, Attribute, Class, ClientTransaction, Message, MessageType, Method, TransactionId,
};

const USER: &str = "netplay";
const PASS: &str = "correct horse";
const REALM: &str = "netplay.test";
const DEADLINE: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------
// coturn

/// The `turnserver` binary: `$NETPLAY_TURNSERVER`, else the first on `PATH`.
fn turnserver_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NETPLAY_TURNSERVER") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "NETPLAY_TURNSERVER={} is not a file",
            path.display()
        );
        return path;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("turnserver"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no `turnserver` on PATH and NETPLAY_TURNSERVER is not set: install coturn \
                 (scripts/setup-system.sh does)"
            )
        })
}

/// A running coturn, killed and reaped on drop; its log is printed if the test failed.
struct Coturn {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Coturn {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("turnserver.log")).unwrap_or_default()
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            if let Ok(log) = std::fs::read_to_string(self.dir.join("turnserver.log")) {
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                eprintln!("--- turnserver log (last lines) ---");
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Starts coturn on 127.0.0.1 with user `USER`:`PASS` in realm `REALM`, relaying on loopback
/// only, with `extra` flags, and waits until it answers a Binding request. A port taken
/// between choosing and binding it (tests run in parallel) means another try on another port.
fn start_coturn_with(extra: &[&str]) -> Coturn {
    for _ in 0..3 {
        let mut server = spawn_coturn(extra);
        if wait_ready(&mut server) {
            return server;
        }
        eprintln!(
            "turnserver did not answer on {}; trying another port",
            server.addr
        );
    }
    panic!("turnserver did not answer on three ports");
}

fn start_coturn() -> Coturn {
    start_coturn_with(&[])
}

fn spawn_coturn(extra: &[&str]) -> Coturn {
    static SERVERS: AtomicU16 = AtomicU16::new(0);
    let n = SERVERS.fetch_add(1, Ordering::Relaxed) % 20;
    let binary = turnserver_binary();
    let dir = std::env::temp_dir().join(format!(
        "netplay-ice-servers-{}-{n}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    let port = free_port();
    // A relay port range of its own per server, below the ephemeral ports.
    let base = 12_000 + ((std::process::id() % 20) as u16 * 20 + n) * 50;
    let log = std::fs::File::create(dir.join("turnserver.log")).expect("create the log file");
    let path = |name: &str| dir.join(name).display().to_string();
    let mut cmd = Command::new(&binary);
    cmd.args([
        "-n",
        "--listening-ip=127.0.0.1",
        "--relay-ip=127.0.0.1",
        &format!("--listening-port={port}"),
        &format!("--min-port={base}"),
        &format!("--max-port={}", base + 49),
        "--lt-cred-mech",
        &format!("--user={USER}:{PASS}"),
        &format!("--realm={REALM}"),
        "--allow-loopback-peers",
        "--no-tls",
        "--no-dtls",
        "--no-tcp-relay",
        "--no-cli",
        "--no-rfc5780",
        &format!("--userdb={}", path("turndb")),
        &format!("--pidfile={}", path("turnserver.pid")),
        "--log-file=stdout",
        "--simple-log",
    ])
    .args(extra)
    .stdin(Stdio::null())
    .stdout(log.try_clone().expect("clone the log file"))
    .stderr(log);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
    Coturn {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        dir,
    }
}

/// Whether the server answers a Binding request within 10 s.
fn wait_ready(server: &mut Coturn) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("turnserver exited at start: {status}");
        }
        let mut tx = ClientTransaction::binding();
        let Action::Transmit(request) = tx.poll(Duration::ZERO) else {
            unreachable!()
        };
        let _ = socket.send_to(request, server.addr);
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            if Message::decode(&buf[..n]).is_ok_and(|m| tx.handle_response(&m)) {
                return true;
            }
        }
    }
    false
}

// ---------------------------------------------------------------------------------------------
// Peers

fn stun_config(server: SocketAddr) -> PeerConfig {
    PeerConfig {
        ice_servers: vec![IceServer::stun(format!("stun:{server}"))],
        ..PeerConfig::loopback()
    }
}

fn turn_config(server: SocketAddr, password: &str, relay_only: bool) -> PeerConfig {
    PeerConfig {
        ice_servers: vec![IceServer::turn(format!("turn:{server}"), USER, password)],
        relay_only,
        ..PeerConfig::loopback()
    }
}

/// The candidate lines among `events`.
fn candidates(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::IceCandidateCreated { candidate, .. } => Some(candidate.clone()),
            _ => None,
        })
        .collect()
}

fn candidate_errors(events: &[Event]) -> Vec<CandidateError> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::IceCandidateError(error) => Some(error.clone()),
            _ => None,
        })
        .collect()
}

/// A peer with one negotiated channel that has created its offer.
fn offering(config: PeerConfig) -> PeerConnection {
    let mut pc = PeerConnection::new(config).unwrap();
    pc.create_data_channel("chat", DataChannelOptions::negotiated(1))
        .unwrap();
    pc.create_offer().unwrap();
    pc
}

/// Polls `pc` until gathering completes; returns the events and how long it took.
fn gather(pc: &mut PeerConnection, limit: Duration) -> (Vec<Event>, Duration) {
    let start = Instant::now();
    let mut events = Vec::new();
    loop {
        pc.poll();
        events.extend(std::iter::from_fn(|| pc.poll_event()));
        if pc.gathering_state() == GatheringState::Complete {
            return (events, start.elapsed());
        }
        assert!(
            start.elapsed() < limit,
            "gathering did not complete within {limit:?}: {events:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Two peers with the signaling wired directly, and the events each produced.
struct Pair {
    p1: PeerConnection,
    p2: PeerConnection,
    events1: Vec<Event>,
    events2: Vec<Event>,
    ch1: ChannelId,
    ch2: ChannelId,
}

impl Pair {
    /// Two peers with a negotiated reliable channel; `p1` offers.
    fn new(config1: PeerConfig, config2: PeerConfig) -> Pair {
        let mut p1 = PeerConnection::new(config1).unwrap();
        let mut p2 = PeerConnection::new(config2).unwrap();
        let ch1 = p1
            .create_data_channel("chat", DataChannelOptions::negotiated(1))
            .unwrap();
        let ch2 = p2
            .create_data_channel("chat", DataChannelOptions::negotiated(1))
            .unwrap();
        p1.create_offer().unwrap();
        Pair {
            p1,
            p2,
            events1: Vec::new(),
            events2: Vec::new(),
            ch1,
            ch2,
        }
    }

    fn relay(from: &mut PeerConnection, to: &mut PeerConnection, log: &mut Vec<Event>) {
        while let Some(event) = from.poll_event() {
            match &event {
                Event::SessionDescriptionCreated { kind, sdp } => {
                    from.set_local_description(*kind, sdp).unwrap();
                    to.set_remote_description(*kind, sdp).unwrap();
                }
                Event::IceCandidateCreated {
                    mid,
                    index,
                    candidate,
                } => to.add_ice_candidate(mid, *index, candidate).unwrap(),
                _ => {}
            }
            log.push(event);
        }
    }

    fn step(&mut self) {
        self.p1.poll();
        self.p2.poll();
        Pair::relay(&mut self.p1, &mut self.p2, &mut self.events1);
        Pair::relay(&mut self.p2, &mut self.p1, &mut self.events2);
    }

    /// Steps until `done` holds; panics at the deadline.
    fn until(&mut self, what: &str, limit: Duration, mut done: impl FnMut(&mut Pair) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:?} / {:?}",
                self.events1,
                self.events2
            );
            self.step();
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    fn open(&mut self) {
        let (ch1, ch2) = (self.ch1, self.ch2);
        self.until("both channels open", DEADLINE, |p| {
            p.p1.channel(ch1).unwrap().ready_state() == ReadyState::Open
                && p.p2.channel(ch2).unwrap().ready_state() == ReadyState::Open
        });
    }

    /// Sends text, binary and a 256 KiB message from `p1` to `p2` (or back) and checks they
    /// arrive intact, in order, with their types.
    fn exchange(&mut self, forward: bool) {
        let big: Vec<u8> = (0..256 * 1024u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let (from, to) = if forward {
            (self.ch1, self.ch2)
        } else {
            (self.ch2, self.ch1)
        };
        {
            let sender = if forward { &mut self.p1 } else { &mut self.p2 };
            let mut c = sender.channel(from).unwrap();
            c.send_text("hello through the relay").unwrap();
            c.send_binary(&[0, 1, 2, 0xff]).unwrap();
            c.send_binary(&big).unwrap();
        }
        let mut got: Vec<(Vec<u8>, bool)> = Vec::new();
        self.until("three messages", DEADLINE, |p| {
            let receiver = if forward { &mut p.p2 } else { &mut p.p1 };
            let mut c = receiver.channel(to).unwrap();
            while let Some(packet) = c.get_packet() {
                got.push((packet, c.was_string_packet()));
            }
            got.len() >= 3
        });
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], (b"hello through the relay".to_vec(), true));
        assert_eq!(got[1], (vec![0, 1, 2, 0xff], false));
        assert!(!got[2].1);
        assert!(got[2].0 == big, "the 256 KiB message arrived altered");
    }
}

// ---------------------------------------------------------------------------------------------
// A fake STUN server

/// A Binding success answer to `request` carrying `mapped` as XOR-MAPPED-ADDRESS.
fn binding_answer(id: TransactionId, mapped: SocketAddr) -> Vec<u8> {
    Message::new(MessageType::new(Class::Success, Method::Binding), id)
        .with(Attribute::XorMappedAddress(mapped))
        .encode(None, true)
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Server-reflexive candidates

#[test]
fn stun_server_answers_and_gathering_completes_promptly() {
    let coturn = start_coturn();
    let mut pc = offering(stun_config(coturn.addr));
    // The default gives an unanswered server 39.5 s: completing in a few means it answered.
    assert_eq!(
        pc.config().ice_server_timeout,
        Duration::from_millis(39_500)
    );
    let (events, took) = gather(&mut pc, Duration::from_secs(10));
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(candidate_errors(&events).is_empty(), "{events:?}");
    // On loopback coturn maps the host address to itself: no srflx candidate, as browsers.
    let lines = candidates(&events);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("typ host"), "{lines:?}");
    // The request went out and its answer was taken, not handed to ICE.
    assert!(pc.stats().packets_sent >= 1);
    assert_eq!(pc.stats().packets_discarded, 0);
}

#[test]
fn mapped_address_other_than_host_is_announced_as_srflx_with_host_raddr() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server.set_nonblocking(true).unwrap();
    let mut pc = offering(stun_config(server.local_addr().unwrap()));
    let host = pc.local_addresses()[0];
    let mapped: SocketAddr = "127.0.0.9:4321".parse().unwrap();
    let start = Instant::now();
    let mut events = Vec::new();
    let mut buf = [0u8; 1500];
    let mut answered = false;
    while pc.gathering_state() != GatheringState::Complete {
        assert!(start.elapsed() < DEADLINE, "gathering never completed");
        pc.poll();
        events.extend(std::iter::from_fn(|| pc.poll_event()));
        if let Ok((n, from)) = server.recv_from(&mut buf) {
            assert_eq!(from, host);
            let request = Message::decode(&buf[..n]).unwrap();
            assert_eq!(
                request.typ,
                MessageType::new(Class::Request, Method::Binding)
            );
            if !answered {
                // Garbage from the server's address first: never a panic, never a candidate.
                let id = request.transaction_id;
                let mut wrong_id = id;
                wrong_id.0[0] ^= 0xff;
                let good = binding_answer(id, mapped);
                let junk: Vec<Vec<u8>> = vec![
                    vec![],
                    vec![0; 3],
                    vec![0xff; 40],
                    good[..good.len() - 7].to_vec(),
                    binding_answer(wrong_id, "127.0.0.8:1".parse().unwrap()),
                    Message::new(MessageType::new(Class::Success, Method::Binding), id)
                        .encode(None, false)
                        .map(|mut b| {
                            b[2] = 0xff;
                            b
                        })
                        .unwrap(),
                ];
                for bytes in &junk {
                    server.send_to(bytes, from).unwrap();
                }
                server.send_to(&good, from).unwrap();
                answered = true;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    events.extend(std::iter::from_fn(|| pc.poll_event()));
    assert!(answered);
    assert!(candidate_errors(&events).is_empty(), "{events:?}");
    let lines = candidates(&events);
    let srflx: Vec<&String> = lines.iter().filter(|l| l.contains("typ srflx")).collect();
    assert_eq!(srflx.len(), 1, "{lines:?}");
    let fields: Vec<&str> = srflx[0].split_whitespace().collect();
    assert_eq!(&fields[4..6], ["127.0.0.9", "4321"], "{srflx:?}");
    let raddr = fields.iter().position(|f| *f == "raddr").unwrap();
    assert_eq!(fields[raddr + 1], host.ip().to_string(), "{srflx:?}");
    assert_eq!(fields[raddr + 3], host.port().to_string(), "{srflx:?}");
    assert!(!lines.iter().any(|l| l.contains("127.0.0.8")), "{lines:?}");
}

#[test]
fn unreachable_stun_server_gives_up_at_ice_server_timeout() {
    // A port nobody listens on: requests vanish (no ICMP error reaches an unconnected socket).
    let closed = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut pc = offering(PeerConfig {
        ice_server_timeout: Duration::from_millis(1500),
        ..stun_config(closed)
    });
    let (events, took) = gather(&mut pc, Duration::from_secs(5));
    assert!(took >= Duration::from_millis(1400), "{took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    let errors = candidate_errors(&events);
    assert_eq!(errors.len(), 1, "{events:?}");
    assert_eq!(errors[0].error_code, CandidateError::UNREACHABLE);
    assert_eq!(errors[0].url, format!("stun:{closed}"));
    assert_eq!(errors[0].local, pc.local_addresses()[0]);
    // The host candidate was announced regardless, at once.
    assert_eq!(candidates(&events).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Relayed candidates

#[test]
fn turn_server_gives_relay_candidate_next_to_host() {
    let coturn = start_coturn();
    let mut pc = offering(turn_config(coturn.addr, PASS, false));
    let (events, took) = gather(&mut pc, Duration::from_secs(10));
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(candidate_errors(&events).is_empty(), "{events:?}");
    let lines = candidates(&events);
    assert!(lines[0].contains("typ host"), "{lines:?}");
    let relay: Vec<&String> = lines.iter().filter(|l| l.contains("typ relay")).collect();
    assert_eq!(relay.len(), 1, "{lines:?}");
    // The relayed address is coturn's, on loopback; not the host socket.
    let fields: Vec<&str> = relay[0].split_whitespace().collect();
    assert_eq!(fields[4], "127.0.0.1");
    assert_ne!(fields[5], pc.local_addresses()[0].port().to_string());
}

#[test]
fn stun_and_turn_on_one_server_share_the_host_socket() {
    // Browsers' usual configuration: the same server as `stun:` and `turn:`. Each answer goes
    // to the request it answers.
    let coturn = start_coturn();
    let mut pc = offering(PeerConfig {
        ice_servers: vec![
            IceServer::stun(format!("stun:{}", coturn.addr)),
            IceServer::turn(format!("turn:{}", coturn.addr), USER, PASS),
        ],
        ..PeerConfig::loopback()
    });
    let (events, took) = gather(&mut pc, Duration::from_secs(10));
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(candidate_errors(&events).is_empty(), "{events:?}");
    let lines = candidates(&events);
    let kinds: Vec<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().nth(7).unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["host", "relay"], "{lines:?}");
    assert_eq!(pc.stats().packets_discarded, 0);
}

#[test]
fn relay_only_peers_connect_through_coturn_and_carry_data_both_ways() {
    let coturn = start_coturn_with(&["--verbose"]);
    let mut pair = Pair::new(
        turn_config(coturn.addr, PASS, true),
        turn_config(coturn.addr, PASS, true),
    );
    pair.open();
    for (name, events) in [("p1", &pair.events1), ("p2", &pair.events2)] {
        let lines = candidates(events);
        assert!(!lines.is_empty(), "{name}: no candidates");
        assert!(
            lines.iter().all(|l| l.contains("typ relay")),
            "{name} announced more than relayed candidates: {lines:?}"
        );
        assert!(candidate_errors(events).is_empty(), "{name}: {events:?}");
    }
    assert_eq!(pair.p1.connection_state(), ConnectionState::Connected);
    pair.exchange(true);
    pair.exchange(false);
    // The selected pair runs between the two relayed addresses, not the host sockets.
    pair.until("stats of the selected pair", DEADLINE, |p| {
        p.p1.stats().selected_pair.is_some()
    });
    let selected = pair.p1.stats().selected_pair.unwrap();
    assert!(!pair.p1.local_addresses().contains(&selected.local));
    assert!(!pair.p2.local_addresses().contains(&selected.remote));
    // DTLS went to the peer on a bound channel (ChannelData), ICE checks in Send indications.
    let log = coturn.log();
    assert_eq!(
        log.matches("CHANNEL_BIND processed, success").count(),
        2,
        "{log}"
    );
    pair.p1.close();
    pair.until("p2 closed", DEADLINE, |p| {
        p.p2.connection_state() == ConnectionState::Closed
    });
}

/// Gathers on a fresh peer: whether it got a relayed candidate, and its errors' codes.
fn relay_gathered(server: SocketAddr) -> (PeerConnection, bool, Vec<u16>) {
    let mut pc = offering(turn_config(server, PASS, false));
    let (events, _) = gather(&mut pc, DEADLINE);
    let relayed = candidates(&events).iter().any(|l| l.contains("typ relay"));
    let codes = candidate_errors(&events)
        .iter()
        .map(|e| e.error_code)
        .collect();
    (pc, relayed, codes)
}

#[test]
fn close_and_drop_release_the_turn_allocation() {
    // One allocation at a time for the user: the next one succeeds only once the last is
    // released. coturn frees the quota a moment after the deallocation, not at once; without
    // it, only when the 600 s lifetime runs out.
    let coturn = start_coturn_with(&["--user-quota=1"]);
    let (mut first, relayed, codes) = relay_gathered(coturn.addr);
    assert!(relayed && codes.is_empty(), "{codes:?}");
    let (_, relayed, codes) = relay_gathered(coturn.addr);
    assert!(!relayed, "the quota is not enforced");
    assert_eq!(codes, [486]);
    let allocate_again = |what: &str| {
        let start = Instant::now();
        loop {
            let (pc, relayed, codes) = relay_gathered(coturn.addr);
            if relayed {
                return pc;
            }
            assert_eq!(codes, [486]);
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{what} kept the allocation"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    first.close();
    let second = allocate_again("close");
    drop(second);
    allocate_again("drop");
}

#[test]
fn allocation_is_refreshed_while_the_connection_lives() {
    // The server grants 3 s: without refreshes the relay would be gone before the end.
    let coturn = start_coturn_with(&["--max-allocate-lifetime=3", "--verbose"]);
    let mut pair = Pair::new(
        turn_config(coturn.addr, PASS, true),
        turn_config(coturn.addr, PASS, true),
    );
    pair.open();
    let start = Instant::now();
    let mut sent = 0u32;
    let mut received = 0u32;
    while start.elapsed() < Duration::from_secs(7) {
        pair.step();
        if start.elapsed().as_millis() as u32 / 100 > sent {
            sent += 1;
            let (ch1, ch2) = (pair.ch1, pair.ch2);
            pair.p1.channel(ch1).unwrap().send_text("tick").unwrap();
            pair.p2.channel(ch2).unwrap().send_text("tock").unwrap();
        }
        let (ch1, ch2) = (pair.ch1, pair.ch2);
        while pair.p2.channel(ch2).unwrap().get_packet().is_some() {
            received += 1;
        }
        while pair.p1.channel(ch1).unwrap().get_packet().is_some() {
            received += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    pair.until("the last ticks", DEADLINE, |p| {
        let (ch1, ch2) = (p.ch1, p.ch2);
        while p.p2.channel(ch2).unwrap().get_packet().is_some() {
            received += 1;
        }
        while p.p1.channel(ch1).unwrap().get_packet().is_some() {
            received += 1;
        }
        received == 2 * sent
    });
    assert_eq!(pair.p1.connection_state(), ConnectionState::Connected);
    let log = coturn.log();
    // Each peer refreshes at half the lifetime: at least twice in 7 s.
    assert!(log.matches("refreshed, ").count() >= 4, "{log}");
    assert!(pair
        .events1
        .iter()
        .all(|e| !matches!(e, Event::IceCandidateError(_))));
}

#[test]
fn relay_only_peer_connects_to_a_host_only_peer() {
    let coturn = start_coturn();
    let mut pair = Pair::new(turn_config(coturn.addr, PASS, true), PeerConfig::loopback());
    pair.open();
    assert!(candidates(&pair.events1)
        .iter()
        .all(|l| l.contains("typ relay")));
    pair.exchange(true);
    pair.exchange(false);
}

#[test]
fn wrong_turn_password_is_reported_and_gathering_completes_without_relay() {
    let coturn = start_coturn();
    let mut pc = offering(turn_config(coturn.addr, "wrong", false));
    let (events, took) = gather(&mut pc, Duration::from_secs(10));
    assert!(took < Duration::from_secs(5), "{took:?}");
    let lines = candidates(&events);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("typ host"), "{lines:?}");
    let errors = candidate_errors(&events);
    assert_eq!(errors.len(), 1, "{events:?}");
    assert_eq!(errors[0].error_code, 401, "{errors:?}");
    assert_eq!(errors[0].url, format!("turn:{}", coturn.addr));
}

#[test]
fn relay_only_with_wrong_turn_password_fails_within_connect_timeout() {
    let coturn = start_coturn();
    let connect_timeout = Duration::from_secs(2);
    let mut pair = Pair::new(
        PeerConfig {
            connect_timeout,
            ..turn_config(coturn.addr, "wrong", true)
        },
        PeerConfig {
            connect_timeout,
            ..PeerConfig::loopback()
        },
    );
    let start = Instant::now();
    pair.until("p1 failed", Duration::from_secs(6), |p| {
        p.p1.connection_state() == ConnectionState::Failed
    });
    assert!(start.elapsed() < connect_timeout + Duration::from_secs(2));
    // Nothing was announced: no host address leaked, no relay to offer.
    assert!(candidates(&pair.events1).is_empty(), "{:?}", pair.events1);
    assert!(pair
        .events1
        .contains(&Event::GatheringStateChanged(GatheringState::Complete)));
    let errors = candidate_errors(&pair.events1);
    assert_eq!(errors.len(), 1, "{:?}", pair.events1);
    assert_eq!(errors[0].error_code, 401);
}

// ---------------------------------------------------------------------------------------------
// Configuration

#[test]
fn tls_and_tcp_servers_are_refused_at_new() {
    for url in [
        "turns:127.0.0.1:5349",
        "turn:127.0.0.1:3478?transport=tcp",
        "stuns:127.0.0.1",
    ] {
        let config = PeerConfig {
            ice_servers: vec![IceServer::turn(url, USER, PASS)],
            ..PeerConfig::loopback()
        };
        let err = PeerConnection::new(config).unwrap_err();
        assert!(
            matches!(&err, Error::UnsupportedIceServer { url: u, .. } if u == url),
            "{url}: {err}"
        );
    }
    let config = PeerConfig {
        relay_only: true,
        ..stun_config("127.0.0.1:3478".parse().unwrap())
    };
    assert!(matches!(
        PeerConnection::new(config),
        Err(Error::InvalidConfig(_))
    ));
}
