//! The WebRTC engine's timers in virtual time: two sans-IO engines joined by an in-memory
//! network, a clock that only moves when the test moves it. Seconds of protocol time pass in
//! milliseconds, and nothing depends on the machine's load.
#![cfg(feature = "webrtc")]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use netplay::rtc::{
    CandidateKind, ChannelId, ConnectionState, DataChannelOptions, Engine, Event, LocalCandidate,
    PeerConfig, ReadyState,
};

/// Documentation addresses (RFC 5737): they only name the two ends; no socket is involved.
const A: &str = "192.0.2.1:5000";
const B: &str = "192.0.2.2:5000";
/// The clock's step.
const TICK: Duration = Duration::from_millis(5);

struct Net {
    a: Engine,
    b: Engine,
    now: Instant,
    /// Datagrams in flight: (from, to, bytes).
    wire: VecDeque<(SocketAddr, SocketAddr, Vec<u8>)>,
    /// Which datagrams the network loses: called with (from, index of the datagram).
    lose: Box<dyn FnMut(SocketAddr, u64) -> bool>,
    sent: u64,
    events_a: Vec<Event>,
    events_b: Vec<Event>,
    relay_candidates: bool,
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn host(address: SocketAddr) -> LocalCandidate {
    LocalCandidate {
        kind: CandidateKind::Host,
        address,
        base: address,
    }
}

impl Net {
    fn new(config: PeerConfig) -> Net {
        let now = Instant::now();
        Net {
            a: Engine::new(config.clone(), now).unwrap(),
            b: Engine::new(config, now).unwrap(),
            now,
            wire: VecDeque::new(),
            lose: Box::new(|_, _| false),
            sent: 0,
            events_a: Vec::new(),
            events_b: Vec::new(),
            relay_candidates: true,
        }
    }

    /// `a` offers with a negotiated channel on both sides; returns the channels.
    fn start(&mut self) -> (ChannelId, ChannelId) {
        let ca = self
            .a
            .create_data_channel("chat", DataChannelOptions::negotiated(1))
            .unwrap();
        let cb = self
            .b
            .create_data_channel("chat", DataChannelOptions::negotiated(1))
            .unwrap();
        self.a.create_offer(self.now).unwrap();
        self.a.add_local_candidate(host(addr(A)));
        self.signal();
        (ca, cb)
    }

    /// Carries descriptions and candidates between the two, as a signaling server would.
    fn signal(&mut self) {
        let now = self.now;
        for from_a in [true, false] {
            let (from, to, log) = if from_a {
                (&mut self.a, &mut self.b, &mut self.events_a)
            } else {
                (&mut self.b, &mut self.a, &mut self.events_b)
            };
            let mut answered = false;
            while let Some(event) = from.poll_event() {
                match &event {
                    Event::SessionDescriptionCreated { kind, sdp } => {
                        from.set_local_description(*kind, sdp).unwrap();
                        to.set_remote_description(*kind, sdp, now).unwrap();
                        answered |= !from_a;
                    }
                    Event::IceCandidateCreated {
                        mid,
                        index,
                        candidate,
                    } if self.relay_candidates => {
                        to.add_ice_candidate(mid, *index, candidate).unwrap();
                    }
                    _ => {}
                }
                log.push(event);
            }
            if !from_a && answered {
                // The answerer's host candidate, once it has answered.
                from.add_local_candidate(host(addr(B)));
            }
        }
    }

    /// One tick: timers of both, then everything on the wire is delivered (or lost).
    fn step(&mut self) {
        self.now += TICK;
        let now = self.now;
        self.a.handle_timeout(now);
        self.b.handle_timeout(now);
        for _ in 0..8 {
            for engine in [&mut self.a, &mut self.b] {
                while let Some(t) = engine.poll_transmit() {
                    self.wire
                        .push_back((t.source, t.destination, t.contents.clone()));
                    engine.recycle(t.contents);
                }
            }
            if self.wire.is_empty() {
                break;
            }
            while let Some((from, to, data)) = self.wire.pop_front() {
                let index = self.sent;
                self.sent += 1;
                if (self.lose)(from, index) {
                    continue;
                }
                let engine = if to == addr(A) {
                    &mut self.a
                } else {
                    &mut self.b
                };
                engine.handle_datagram(from, to, &data, now);
            }
            self.a.handle_timeout(now);
            self.b.handle_timeout(now);
        }
        self.signal();
    }

    /// Steps until `done`, at most `limit` of virtual time; returns the virtual time taken.
    fn until(
        &mut self,
        what: &str,
        limit: Duration,
        mut done: impl FnMut(&mut Net) -> bool,
    ) -> Duration {
        let start = self.now;
        while !done(self) {
            assert!(
                self.now - start < limit,
                "no {what} within {limit:?} of virtual time: {:?} / {:?}",
                self.events_a,
                self.events_b
            );
            self.step();
        }
        self.now - start
    }

    fn state_changes(events: &[Event]) -> Vec<ConnectionState> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::ConnectionStateChanged(s) => Some(*s),
                _ => None,
            })
            .collect()
    }
}

fn open_channels(net: &mut Net, ca: ChannelId, cb: ChannelId) {
    net.until("open channels", Duration::from_secs(5), |n| {
        n.a.channel(ca).unwrap().ready_state() == ReadyState::Open
            && n.b.channel(cb).unwrap().ready_state() == ReadyState::Open
    });
}

#[test]
fn two_engines_connect_and_exchange_a_message_in_virtual_time() {
    let wall = Instant::now();
    let mut net = Net::new(PeerConfig::loopback());
    let (ca, cb) = net.start();
    open_channels(&mut net, ca, cb);
    net.a.channel(ca).unwrap().put_packet(b"virtual").unwrap();
    net.until("the message", Duration::from_secs(1), |n| {
        n.b.channel(cb).unwrap().available_packet_count() == 1
    });
    assert_eq!(net.b.channel(cb).unwrap().get_packet().unwrap(), b"virtual");
    assert_eq!(net.a.connection_state(), ConnectionState::Connected);
    assert!(wall.elapsed() < Duration::from_secs(5));
}

#[test]
fn an_idle_connection_stays_connected_for_a_minute_on_consent_checks() {
    let config = PeerConfig {
        ice_disconnected_timeout: Duration::from_secs(5),
        ice_failed_timeout: Duration::from_secs(15),
        ..PeerConfig::loopback()
    };
    let mut net = Net::new(config);
    let (ca, cb) = net.start();
    open_channels(&mut net, ca, cb);
    let wall = Instant::now();
    let start = net.now;
    // No application data for 60 s: only the ICE checks keep the path alive.
    while net.now - start < Duration::from_secs(60) {
        net.step();
        assert_eq!(net.a.connection_state(), ConnectionState::Connected);
        assert_eq!(net.b.connection_state(), ConnectionState::Connected);
    }
    assert!(
        wall.elapsed() < Duration::from_secs(30),
        "60 virtual seconds took {:?}",
        wall.elapsed()
    );
}

#[test]
fn a_silent_remote_turns_the_connection_disconnected_then_failed_on_time() {
    let config = PeerConfig {
        ice_disconnected_timeout: Duration::from_secs(2),
        ice_failed_timeout: Duration::from_secs(6),
        ..PeerConfig::loopback()
    };
    let mut net = Net::new(config);
    let (ca, cb) = net.start();
    open_channels(&mut net, ca, cb);
    // From now on b's datagrams are lost.
    let b = addr(B);
    net.lose = Box::new(move |from, _| from == b);
    let disconnected = net.until("Disconnected", Duration::from_secs(10), |n| {
        n.a.connection_state() == ConnectionState::Disconnected
    });
    let failed = net.until("Failed", Duration::from_secs(20), |n| {
        n.a.connection_state() == ConnectionState::Failed
    }) + disconnected;
    // The last datagram from b came at most one ICE check interval before the silence.
    assert!(
        disconnected >= Duration::from_millis(1500) && disconnected <= Duration::from_millis(2600),
        "Disconnected after {disconnected:?}"
    );
    assert!(
        failed >= Duration::from_millis(5500) && failed <= Duration::from_millis(6600),
        "Failed after {failed:?}"
    );
    let states = Net::state_changes(&net.events_a);
    assert_eq!(
        &states[states.len() - 3..],
        [
            ConnectionState::Connected,
            ConnectionState::Disconnected,
            ConnectionState::Failed
        ]
    );
    assert_eq!(net.a.channel(ca).unwrap().ready_state(), ReadyState::Closed);
}

#[test]
fn without_candidates_the_connection_fails_at_the_connect_timeout() {
    let config = PeerConfig {
        connect_timeout: Duration::from_secs(30),
        ..PeerConfig::loopback()
    };
    let mut net = Net::new(config);
    net.relay_candidates = false;
    net.start();
    let took = net.until("Failed", Duration::from_secs(40), |n| {
        n.a.connection_state() == ConnectionState::Failed
            && n.b.connection_state() == ConnectionState::Failed
    });
    assert!(
        took >= Duration::from_secs(29) && took <= Duration::from_millis(30_100),
        "failed after {took:?} of virtual time"
    );
}

#[test]
fn a_lost_message_is_retransmitted_after_the_sctp_timeout() {
    let mut net = Net::new(PeerConfig::loopback());
    let (ca, cb) = net.start();
    open_channels(&mut net, ca, cb);
    // Lose everything a sends for the next 300 ms: the message and its first retries.
    let a = addr(A);
    let until = net.now + Duration::from_millis(300);
    let clock = std::rc::Rc::new(std::cell::Cell::new(net.now));
    let seen = clock.clone();
    net.lose = Box::new(move |from, _| from == a && seen.get() < until);
    net.a.channel(ca).unwrap().put_packet(b"again").unwrap();
    let start = net.now;
    loop {
        clock.set(net.now);
        if net.b.channel(cb).unwrap().available_packet_count() == 1 {
            break;
        }
        assert!(
            net.now - start < Duration::from_secs(10),
            "never retransmitted"
        );
        net.step();
    }
    let took = net.now - start;
    assert!(took >= Duration::from_millis(300), "arrived after {took:?}");
    assert_eq!(net.b.channel(cb).unwrap().get_packet().unwrap(), b"again");
    assert!(net.a.stats().retransmissions >= 1);
}

#[test]
fn a_message_with_a_1_ms_lifetime_goes_out_with_the_next_poll_however_late_then_expires() {
    // Godot's WebRTCMultiplayerPeer gives its unreliable channels a 1 ms lifetime. A polled
    // engine sends at the next poll, so the lifetime starts there, not at the engine's last
    // time (which is a whole frame old when a game sends).
    let mut net = Net::new(PeerConfig::loopback());
    let short = DataChannelOptions {
        ordered: false,
        max_packet_life_time: Some(1),
        ..DataChannelOptions::negotiated(3)
    };
    let ua = net
        .a
        .create_data_channel("unreliable", short.clone())
        .unwrap();
    let ub = net.b.create_data_channel("unreliable", short).unwrap();
    let (ca, cb) = net.start();
    open_channels(&mut net, ca, cb);
    open_channels(&mut net, ua, ub);

    // 50 ms without a poll, then a send: delivered by the next step.
    net.now += Duration::from_millis(50);
    net.a.channel(ua).unwrap().put_packet(b"late").unwrap();
    net.until("the late message", Duration::from_millis(20), |n| {
        n.b.channel(ub).unwrap().available_packet_count() == 1
    });
    assert_eq!(net.b.channel(ub).unwrap().get_packet().unwrap(), b"late");

    // Lost on its first transmission: abandoned after its millisecond, never retransmitted;
    // the next message still arrives.
    let a = addr(A);
    let lose_until = net.now + Duration::from_millis(400);
    let clock = std::rc::Rc::new(std::cell::Cell::new(net.now));
    let seen = clock.clone();
    net.lose = Box::new(move |from, _| from == a && seen.get() < lose_until);
    net.a.channel(ua).unwrap().put_packet(b"lost").unwrap();
    let start = net.now;
    while net.now - start < Duration::from_secs(2) {
        clock.set(net.now);
        net.step();
    }
    assert_eq!(net.b.channel(ub).unwrap().available_packet_count(), 0);
    assert!(net.a.stats().abandoned_messages >= 1);
    net.a.channel(ua).unwrap().put_packet(b"next").unwrap();
    net.until("the next message", Duration::from_millis(50), |n| {
        n.b.channel(ub).unwrap().available_packet_count() == 1
    });
    assert_eq!(net.b.channel(ub).unwrap().get_packet().unwrap(), b"next");
}

fn low_events(events: &[Event], channel: ChannelId) -> usize {
    events
        .iter()
        .filter(|e| **e == Event::BufferedAmountLow(channel))
        .count()
}

/// Sends 16 KiB messages on `ca` until the send buffer is full; returns the bytes sent.
fn fill(net: &mut Net, ca: ChannelId) -> usize {
    let message = vec![7u8; 16 * 1024];
    let mut sent = 0;
    while net.a.channel(ca).unwrap().put_packet(&message).is_ok() {
        sent += message.len();
    }
    sent
}

/// Steps while `b` reads what arrives, until `a` has nothing buffered; returns the bytes read.
fn drain(net: &mut Net, ca: ChannelId, cb: ChannelId) -> usize {
    let mut read = 0;
    net.until("everything acknowledged", Duration::from_secs(10), |n| {
        while let Some(p) = n.b.channel(cb).unwrap().get_packet() {
            read += p.len();
        }
        n.a.channel(ca).unwrap().buffered_amount() == 0
    });
    read
}

#[test]
fn buffered_amount_low_is_queued_once_when_the_buffered_amount_falls_to_the_threshold() {
    let mut net = Net::new(PeerConfig::loopback());
    let (ca, cb) = net.start();
    open_channels(&mut net, ca, cb);
    let threshold = 64 * 1024;
    net.a
        .channel(ca)
        .unwrap()
        .set_buffered_amount_low_threshold(threshold);
    assert_eq!(
        net.a.channel(ca).unwrap().buffered_amount_low_threshold(),
        threshold
    );

    let sent = fill(&mut net, ca);
    assert!(net.a.channel(ca).unwrap().buffered_amount() > threshold);
    assert_eq!(low_events(&net.events_a, ca), 0);
    let mut read = 0;
    net.until("bufferedamountlow", Duration::from_secs(10), |n| {
        while let Some(p) = n.b.channel(cb).unwrap().get_packet() {
            read += p.len();
        }
        low_events(&n.events_a, ca) == 1
    });
    // Reported on the fall, while some of the burst may still be in flight.
    assert!(net.a.channel(ca).unwrap().buffered_amount() <= threshold);
    read += drain(&mut net, ca, cb);
    assert_eq!(read, sent);
    // Once per fall: an idle channel reports nothing more.
    for _ in 0..40 {
        net.step();
    }
    assert_eq!(low_events(&net.events_a, ca), 1);
}

#[test]
fn a_threshold_raised_over_the_buffered_amount_reports_nothing_and_lowering_it_rearms() {
    let mut net = Net::new(PeerConfig::loopback());
    let (ca, cb) = net.start();
    open_channels(&mut net, ca, cb);

    // Over what is buffered: no fall to report.
    let sent = fill(&mut net, ca);
    net.a
        .channel(ca)
        .unwrap()
        .set_buffered_amount_low_threshold(usize::MAX);
    assert_eq!(drain(&mut net, ca, cb), sent);
    assert_eq!(low_events(&net.events_a, ca), 0);

    // Under what is buffered: the fall to it is reported.
    fill(&mut net, ca);
    net.a
        .channel(ca)
        .unwrap()
        .set_buffered_amount_low_threshold(0);
    drain(&mut net, ca, cb);
    net.step();
    assert_eq!(low_events(&net.events_a, ca), 1);
}
