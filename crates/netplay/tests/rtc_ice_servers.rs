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

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::coturn::{free_port, Coturn, PASS, USER};
use common::rtc::{candidates, gather, gather_with, values, Pair};
use netplay::rtc::{
    CandidateError, ChannelId, ConnectionState, DataChannelOptions, Error, Event, GatheringState,
    IceServer, PeerConfig, PeerConnection,
};
use netplay::stun::{Attribute, Class, Message, MessageType, Method, TransactionId};

const DEADLINE: Duration = Duration::from_secs(15);

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

fn candidate_errors(events: &[Event]) -> Vec<CandidateError> {
    values!(events, Event::IceCandidateError)
}

/// A peer with one negotiated channel that has created its offer.
fn offering(config: PeerConfig) -> PeerConnection {
    let mut pc = PeerConnection::new(config).unwrap();
    pc.create_data_channel("chat", DataChannelOptions::negotiated(1))
        .unwrap();
    pc.create_offer().unwrap();
    pc
}

/// Two peers with a negotiated reliable channel, `p1` offering; its channels (p1's, p2's).
fn chat_pair(config1: PeerConfig, config2: PeerConfig) -> (Pair, ChannelId, ChannelId) {
    let mut pair = Pair::new(config1, config2);
    pair.deadline = DEADLINE;
    let (ch1, ch2) = pair.create_channel("chat", DataChannelOptions::negotiated(1));
    pair.offer();
    (pair, ch1, ch2)
}

/// Sends text, binary and a 256 KiB message from `p1` to `p2` (or back) and checks they
/// arrive intact, in order, with their types.
fn exchange(pair: &mut Pair, ch1: ChannelId, ch2: ChannelId, forward: bool) {
    let big: Vec<u8> = (0..256 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (from, to) = if forward { (ch1, ch2) } else { (ch2, ch1) };
    {
        let sender = if forward { &mut pair.p1 } else { &mut pair.p2 };
        let mut c = sender.channel(from).unwrap();
        c.send_text("hello through the relay").unwrap();
        c.send_binary(&[0, 1, 2, 0xff]).unwrap();
        c.send_binary(&big).unwrap();
    }
    let mut got: Vec<(Vec<u8>, bool)> = Vec::new();
    pair.until("three messages", |p| {
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
    let coturn = Coturn::start(&[]);
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
    let mut buf = [0u8; 1500];
    let mut answered = false;
    let (events, _) = gather_with(&mut pc, DEADLINE, |_| {
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
    });
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
    let coturn = Coturn::start(&[]);
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
    let coturn = Coturn::start(&[]);
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
    let coturn = Coturn::start(&["--verbose"]);
    let (mut pair, ch1, ch2) = chat_pair(
        turn_config(coturn.addr, PASS, true),
        turn_config(coturn.addr, PASS, true),
    );
    pair.open(ch1, ch2);
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
    exchange(&mut pair, ch1, ch2, true);
    exchange(&mut pair, ch1, ch2, false);
    // The selected pair runs between the two relayed addresses, not the host sockets.
    pair.until("stats of the selected pair", |p| {
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
    pair.until("p2 closed", |p| {
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
    let coturn = Coturn::start(&["--user-quota=1"]);
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
    let coturn = Coturn::start(&["--max-allocate-lifetime=3", "--verbose"]);
    let (mut pair, ch1, ch2) = chat_pair(
        turn_config(coturn.addr, PASS, true),
        turn_config(coturn.addr, PASS, true),
    );
    pair.open(ch1, ch2);
    // Every message either peer has received so far.
    let drain = |pair: &mut Pair| {
        let mut n = 0;
        while pair.p2.channel(ch2).unwrap().get_packet().is_some() {
            n += 1;
        }
        while pair.p1.channel(ch1).unwrap().get_packet().is_some() {
            n += 1;
        }
        n
    };
    let start = Instant::now();
    let mut sent = 0u32;
    let mut received = 0u32;
    while start.elapsed() < Duration::from_secs(7) {
        pair.step();
        if start.elapsed().as_millis() as u32 / 100 > sent {
            sent += 1;
            pair.p1.channel(ch1).unwrap().send_text("tick").unwrap();
            pair.p2.channel(ch2).unwrap().send_text("tock").unwrap();
        }
        received += drain(&mut pair);
        std::thread::sleep(Duration::from_millis(1));
    }
    pair.until("the last ticks", |p| {
        received += drain(p);
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
    let coturn = Coturn::start(&[]);
    let (mut pair, ch1, ch2) =
        chat_pair(turn_config(coturn.addr, PASS, true), PeerConfig::loopback());
    pair.open(ch1, ch2);
    assert!(candidates(&pair.events1)
        .iter()
        .all(|l| l.contains("typ relay")));
    exchange(&mut pair, ch1, ch2, true);
    exchange(&mut pair, ch1, ch2, false);
}

#[test]
fn wrong_turn_password_is_reported_and_gathering_completes_without_relay() {
    let coturn = Coturn::start(&[]);
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
    let coturn = Coturn::start(&[]);
    let connect_timeout = Duration::from_secs(2);
    let (mut pair, _, _) = chat_pair(
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
    pair.until_within("p1 failed", Duration::from_secs(6), |p| {
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
