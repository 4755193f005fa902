//! The sans-IO TURN client against coturn, a TURN server that is not ours, over real UDP
//! sockets on 127.0.0.1.
//!
//! Each test starts its own `turnserver` on a free loopback port with a long-term user and stops
//! it at the end. The binary is found through `$NETPLAY_TURNSERVER` or on `PATH` (Debian package
//! `coturn`, installed by `scripts/setup-system.sh`); without it the tests fail.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::coturn::{Coturn, PASS, USER};
use netplay::stun::turn::{Handled, TurnClient, TurnConfig, TurnEvent, TurnFailure, TurnState};
use netplay::stun::{Class, Message};

/// One TURN client on its own socket, with what it has seen.
struct Endpoint {
    name: &'static str,
    socket: UdpSocket,
    turn: TurnClient,
    events: Vec<TurnEvent>,
    /// Every ERROR-CODE the server sent this client, read off the wire.
    error_codes: Vec<u16>,
}

impl Endpoint {
    fn new(name: &'static str, server: &Coturn, password: &str) -> Endpoint {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let config = TurnConfig {
            software: Some("netplay turn test".into()),
            ..TurnConfig::default()
        };
        let turn = TurnClient::with_config(server.addr, USER, password, config, Instant::now());
        Endpoint {
            name,
            socket,
            turn,
            events: Vec::new(),
            error_codes: Vec::new(),
        }
    }

    /// Sends what is queued, reads what arrived, runs the timers.
    fn step(&mut self) {
        while let Some(t) = self.turn.poll_transmit() {
            self.socket.send_to(&t.contents, t.destination).unwrap();
        }
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = self.socket.recv_from(&mut buf) {
            if let Ok(m) = Message::decode(&buf[..n]) {
                if m.typ.class == Class::Error {
                    self.error_codes.extend(m.error_code().map(|e| e.code));
                }
            }
            let handled = self.turn.handle_datagram(from, &buf[..n], Instant::now());
            assert_eq!(handled, Handled::Consumed, "{}: from {from}", self.name);
        }
        self.turn.handle_timeout(Instant::now());
        while let Some(t) = self.turn.poll_transmit() {
            self.socket.send_to(&t.contents, t.destination).unwrap();
        }
        self.events
            .extend(std::iter::from_fn(|| self.turn.poll_event()));
    }

    /// Removes and returns the first event `f` accepts.
    fn take(&mut self, f: impl Fn(&TurnEvent) -> bool) -> Option<TurnEvent> {
        let i = self.events.iter().position(f)?;
        Some(self.events.remove(i))
    }
}

/// Steps every endpoint until `done` holds, for at most 10 s.
fn run_until(
    endpoints: &mut [&mut Endpoint],
    what: &str,
    mut done: impl FnMut(&mut [&mut Endpoint]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for e in endpoints.iter_mut() {
            e.step();
        }
        if done(endpoints) {
            return;
        }
        if Instant::now() > deadline {
            let seen: Vec<_> = endpoints.iter().map(|e| (e.name, &e.events)).collect();
            panic!("timed out waiting for {what}; events: {seen:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn allocate(endpoints: &mut [&mut Endpoint]) -> Vec<SocketAddr> {
    run_until(endpoints, "the allocations", |es| {
        es.iter().all(|e| {
            e.events
                .iter()
                .any(|ev| matches!(ev, TurnEvent::Allocated { .. }))
        })
    });
    endpoints
        .iter_mut()
        .map(|e| {
            let Some(TurnEvent::Allocated {
                relayed, mapped, ..
            }) = e.take(|ev| matches!(ev, TurnEvent::Allocated { .. }))
            else {
                unreachable!()
            };
            assert_eq!(relayed.ip(), e.socket.local_addr().unwrap().ip());
            assert_eq!(mapped, Some(e.socket.local_addr().unwrap()), "{}", e.name);
            assert_eq!(e.turn.state(), TurnState::Allocated);
            relayed
        })
        .collect()
}

/// Sends `data` from `from` to `to`'s relayed address until `to` receives it from `from`'s.
fn relay(
    from: &mut Endpoint,
    to: &mut Endpoint,
    from_relayed: SocketAddr,
    to_relayed: SocketAddr,
    data: &[u8],
) {
    let mut last_send = Instant::now() - Duration::from_secs(1);
    run_until(&mut [from, to], "relayed data", |es| {
        if last_send.elapsed() > Duration::from_millis(200) {
            es[0]
                .turn
                .send_to(to_relayed, data, Instant::now())
                .unwrap();
            last_send = Instant::now();
        }
        es[1]
            .take(|ev| matches!(ev, TurnEvent::Data { peer, data: d } if *peer == from_relayed && d == data))
            .is_some()
    });
}

#[test]
fn two_clients_relay_to_each_other_through_coturn() {
    let server = Coturn::start(&["--verbose"]);
    let mut a = Endpoint::new("a", &server, PASS);
    let mut b = Endpoint::new("b", &server, PASS);
    let relayed = allocate(&mut [&mut a, &mut b]);
    let (ra, rb) = (relayed[0], relayed[1]);
    assert_ne!(ra, rb);

    // Permissions both ways, then Send and Data indications.
    a.turn.create_permission(rb, Instant::now()).unwrap();
    b.turn.create_permission(ra, Instant::now()).unwrap();
    run_until(&mut [&mut a, &mut b], "the permissions", |es| {
        es.iter().all(|e| {
            e.events
                .iter()
                .any(|ev| matches!(ev, TurnEvent::PermissionCreated { .. }))
        })
    });
    assert!(a.turn.has_permission(rb.ip()) && b.turn.has_permission(ra.ip()));
    relay(&mut a, &mut b, ra, rb, b"a to b in a Send indication");
    relay(&mut b, &mut a, rb, ra, b"b to a in a Send indication");

    // Channels both ways, then ChannelData.
    let ca = a.turn.bind_channel(rb, Instant::now()).unwrap();
    let cb = b.turn.bind_channel(ra, Instant::now()).unwrap();
    run_until(&mut [&mut a, &mut b], "the channel bindings", |es| {
        es.iter().all(|e| {
            e.events
                .iter()
                .any(|ev| matches!(ev, TurnEvent::ChannelBound { .. }))
        })
    });
    assert_eq!(a.turn.channel(rb), Some(ca));
    assert_eq!(b.turn.channel(ra), Some(cb));
    let big = vec![0xA5; 1200];
    relay(&mut a, &mut b, ra, rb, b"a to b on a channel");
    relay(&mut b, &mut a, rb, ra, b"b to a on a channel");
    relay(&mut a, &mut b, ra, rb, &big);

    for e in [&a, &b] {
        assert!(
            !e.events.iter().any(|ev| matches!(
                ev,
                TurnEvent::PermissionFailed { .. } | TurnEvent::ChannelBindFailed { .. }
            )),
            "{}: {:?}",
            e.name,
            e.events
        );
        assert!(
            e.error_codes.iter().all(|&c| c == 401 || c == 438),
            "{}: {:?}",
            e.name,
            e.error_codes
        );
    }

    // Deallocation: Refresh with LIFETIME 0, answered.
    a.turn.close(Instant::now());
    b.turn.close(Instant::now());
    run_until(&mut [&mut a, &mut b], "the deallocations", |es| {
        es.iter().all(|e| e.events.contains(&TurnEvent::Closed))
    });
    assert_eq!(a.turn.state(), TurnState::Closed);
    assert_eq!(b.turn.state(), TurnState::Closed);
}

#[test]
fn wrong_password_fails_with_401_and_stale_nonce_is_retried() {
    // Nonces that go stale after 2 s, to see the client follow a 438.
    let server = Coturn::start(&["--verbose", "--stale-nonce=2"]);

    let mut wrong = Endpoint::new("wrong", &server, "not the password");
    run_until(&mut [&mut wrong], "the allocation to fail", |es| {
        es[0]
            .events
            .iter()
            .any(|ev| matches!(ev, TurnEvent::AllocationFailed(_)))
    });
    let failure = wrong
        .take(|ev| matches!(ev, TurnEvent::AllocationFailed(_)))
        .unwrap();
    assert!(
        matches!(&failure, TurnEvent::AllocationFailed(TurnFailure::Unauthenticated(e)) if e.code == 401),
        "{failure:?}"
    );
    assert_eq!(wrong.turn.state(), TurnState::Failed);

    let mut right = Endpoint::new("right", &server, PASS);
    let relayed = allocate(&mut [&mut right])[0];
    // coturn keeps time in whole seconds: past 3 s the 2 s nonce is surely stale.
    std::thread::sleep(Duration::from_millis(3200));
    let peer = SocketAddr::new(relayed.ip(), relayed.port() ^ 1);
    right.turn.create_permission(peer, Instant::now()).unwrap();
    run_until(&mut [&mut right], "the permission", |es| {
        es[0]
            .events
            .iter()
            .any(|ev| matches!(ev, TurnEvent::PermissionCreated { .. }))
    });
    assert!(
        right.error_codes.contains(&438),
        "coturn did not send 438: {:?}",
        right.error_codes
    );
}
