//! Tests of the association, a test per rule: two associations wired through an in-memory
//! link with a deterministic RNG for loss, reordering and duplication, and a fake clock that
//! jumps to the next timer or delivery whenever nothing else is left to do.

use crate::time::{Duration, Instant};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::assoc::Association;
use super::chunk;
use super::{Reliability, SctpConfig, SctpError, SctpEvent, SendError};

const PPID_BINARY: u32 = 53;
const MS: Duration = Duration::from_millis(1);

/// xorshift64*: small, deterministic.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    /// True with probability `per_mille` / 1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// A one-way in-memory link.
#[derive(Debug, Clone, Copy, Default)]
struct LinkConfig {
    delay: Duration,
    /// Extra random delay up to this much (reorders packets).
    jitter: Duration,
    loss_per_mille: u64,
    dup_per_mille: u64,
}

type Filter = Box<dyn FnMut(&[u8]) -> bool>;

struct Link {
    cfg: LinkConfig,
    rng: Rng,
    queue: BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>>,
    seq: u64,
    /// Drops the packets for which it returns true (deterministic losses).
    drop_if: Option<Filter>,
    /// Keeps a copy of every packet sent.
    capture: Option<Vec<Vec<u8>>>,
    sent: u64,
    lost: u64,
}

impl Link {
    fn new(cfg: LinkConfig, seed: u64) -> Link {
        Link {
            cfg,
            rng: Rng::new(seed),
            queue: BinaryHeap::new(),
            seq: 0,
            drop_if: None,
            capture: None,
            sent: 0,
            lost: 0,
        }
    }

    fn send(&mut self, now: Instant, packet: &[u8]) {
        self.sent += 1;
        if let Some(capture) = &mut self.capture {
            capture.push(packet.to_vec());
        }
        if self.drop_if.as_mut().is_some_and(|f| f(packet))
            || self.rng.chance(self.cfg.loss_per_mille)
        {
            self.lost += 1;
            return;
        }
        let copies = if self.rng.chance(self.cfg.dup_per_mille) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let jitter = self.cfg.jitter.as_micros() as u64;
            let at = now + self.cfg.delay + Duration::from_micros(self.rng.below(jitter + 1));
            self.seq += 1;
            self.queue.push(Reverse((at, self.seq, packet.to_vec())));
        }
    }

    fn next_delivery(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((at, _, _))| *at)
    }

    fn recv(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.next_delivery()? > now {
            return None;
        }
        self.queue.pop().map(|Reverse((_, _, p))| p)
    }
}

/// One endpoint and what it received.
struct Side {
    assoc: Association,
    events: Vec<SctpEvent>,
    messages: Vec<(u16, u32, Vec<u8>)>,
    errors: Vec<SctpError>,
    established: bool,
    closed: Option<Option<String>>,
}

impl Side {
    fn new(assoc: Association) -> Side {
        Side {
            assoc,
            events: Vec::new(),
            messages: Vec::new(),
            errors: Vec::new(),
            established: false,
            closed: None,
        }
    }

    fn drain(&mut self) {
        while let Some(event) = self.assoc.poll_event() {
            match &event {
                SctpEvent::Established => self.established = true,
                SctpEvent::Message { stream, ppid, data } => {
                    self.messages.push((*stream, *ppid, data.clone()));
                    continue;
                }
                SctpEvent::Closed { error } => self.closed = Some(error.clone()),
                _ => {}
            }
            self.events.push(event);
        }
    }

    fn messages_on(&self, stream: u16) -> Vec<&[u8]> {
        self.messages
            .iter()
            .filter(|m| m.0 == stream)
            .map(|m| m.2.as_slice())
            .collect()
    }
}

/// Two associations and the links between them.
struct Net {
    now: Instant,
    a: Side,
    b: Side,
    ab: Link,
    ba: Link,
    buf: Vec<u8>,
}

fn config() -> SctpConfig {
    SctpConfig {
        rto_initial: Duration::from_millis(100),
        rto_min: Duration::from_millis(20),
        rto_max: Duration::from_secs(2),
        ..SctpConfig::default()
    }
}

fn responder() -> SctpConfig {
    SctpConfig {
        initiate: false,
        ..config()
    }
}

fn link(delay_ms: u64) -> LinkConfig {
    LinkConfig {
        delay: Duration::from_millis(delay_ms),
        ..LinkConfig::default()
    }
}

impl Net {
    fn new(a: SctpConfig, b: SctpConfig, ab: LinkConfig, ba: LinkConfig, seed: u64) -> Net {
        let now = Instant::now();
        Net {
            now,
            a: Side::new(Association::with_seed(a, now, seed)),
            b: Side::new(Association::with_seed(b, now, seed ^ 0xABCD_EF01)),
            ab: Link::new(ab, seed.wrapping_add(1)),
            ba: Link::new(ba, seed.wrapping_add(2)),
            buf: Vec::new(),
        }
    }

    /// A pair where A initiates, over symmetric links, established.
    fn established(link_cfg: LinkConfig, seed: u64) -> Net {
        Net::established_with(config(), responder(), link_cfg, seed)
    }

    fn established_with(a: SctpConfig, b: SctpConfig, link_cfg: LinkConfig, seed: u64) -> Net {
        let mut net = Net::new(a, b, link_cfg, link_cfg, seed);
        assert!(
            net.run(Duration::from_secs(30), |n| n.a.established
                && n.b.established),
            "handshake"
        );
        net
    }

    /// Moves packets until nothing is sent or delivered at the current time.
    fn pump(&mut self) -> bool {
        let mut progress = false;
        for _ in 0..10_000 {
            let mut moved = false;
            while self.a.assoc.poll_transmit(self.now, &mut self.buf) {
                self.ab.send(self.now, &self.buf);
                moved = true;
            }
            while self.b.assoc.poll_transmit(self.now, &mut self.buf) {
                self.ba.send(self.now, &self.buf);
                moved = true;
            }
            while let Some(p) = self.ab.recv(self.now) {
                if let Err(e) = self.b.assoc.handle_packet(&p, self.now) {
                    self.b.errors.push(e);
                }
                moved = true;
            }
            while let Some(p) = self.ba.recv(self.now) {
                if let Err(e) = self.a.assoc.handle_packet(&p, self.now) {
                    self.a.errors.push(e);
                }
                moved = true;
            }
            self.a.drain();
            self.b.drain();
            if !moved {
                break;
            }
            progress = true;
        }
        progress
    }

    /// Jumps the clock to the next timer or delivery and runs the timers. False if there is
    /// nothing left to wait for.
    fn advance(&mut self) -> bool {
        let next = [
            self.a.assoc.poll_timeout(),
            self.b.assoc.poll_timeout(),
            self.ab.next_delivery(),
            self.ba.next_delivery(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else {
            return false;
        };
        self.now = self.now.max(next);
        self.a.assoc.handle_timeout(self.now);
        self.b.assoc.handle_timeout(self.now);
        self.a.drain();
        self.b.drain();
        true
    }

    /// Runs until `step` returns true (it is called between rounds and may send more), or
    /// `limit` of simulated time passes, or nothing is left to do.
    fn run(&mut self, limit: Duration, mut step: impl FnMut(&mut Net) -> bool) -> bool {
        let deadline = self.now + limit;
        loop {
            if step(self) {
                return true;
            }
            if self.now > deadline {
                return false;
            }
            if !self.pump() && !self.advance() {
                return step(self);
            }
        }
    }

    /// Runs for `d` of simulated time.
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run(d + MS, |n| n.now >= end);
    }

    fn settle(&mut self) {
        self.run(Duration::from_secs(60), |_| false);
    }
}

/// A message whose bytes depend on its stream, index and length.
fn payload(stream: u16, index: u32, len: usize) -> Vec<u8> {
    let mut rng = Rng::new((u64::from(stream) << 48) ^ (u64::from(index) << 16) ^ len as u64);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The chunk types in a packet.
fn chunk_types(packet: &[u8]) -> Vec<u8> {
    match chunk::parse_packet(packet) {
        Ok((_, chunks)) => chunks.flatten().map(|c| c.kind).collect(),
        Err(_) => Vec::new(),
    }
}

fn has_chunk(packet: &[u8], kind: u8) -> bool {
    chunk_types(packet).contains(&kind)
}

/// Builds a packet from raw chunks with a correct checksum.
fn packet(vtag: u32, chunks: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    chunk::put_common_header(&mut out, 5000, 5000, vtag);
    for c in chunks {
        out.extend_from_slice(c);
        chunk::pad(&mut out);
    }
    chunk::finish_packet(&mut out);
    out
}

fn raw_chunk(kind: u8, flags: u8, value: &[u8]) -> Vec<u8> {
    let mut c = Vec::new();
    chunk::put_chunk(&mut c, kind, flags, value);
    c
}

/// The verification tag of a captured packet.
fn vtag_of(packet: &[u8]) -> u32 {
    u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]])
}

fn refresh_checksum(packet: &mut [u8]) {
    if packet.len() >= 12 {
        packet[8..12].fill(0);
        chunk::finish_packet(packet);
    }
}

// ---------------------------------------------------------------------------------------
// Handshake

#[test]
fn handshake_completes_when_one_side_initiates() {
    let mut net = Net::new(config(), responder(), link(10), link(10), 1);
    assert!(net.run(Duration::from_secs(5), |n| n.a.established
        && n.b.established));
    assert!(net.a.assoc.is_established() && net.b.assoc.is_established());
    // INIT, COOKIE ECHO (+ nothing else) one way; INIT ACK, COOKIE ACK the other.
    assert_eq!(net.ab.sent, 2);
    assert_eq!(net.ba.sent, 2);
    assert!(
        net.a.errors.is_empty() && net.b.errors.is_empty(),
        "{:?} {:?}",
        net.a.errors,
        net.b.errors
    );
}

#[test]
fn handshake_completes_when_both_sides_initiate_simultaneously() {
    for seed in 0..20 {
        let mut net = Net::new(config(), config(), link(10), link(10), seed);
        assert!(
            net.run(Duration::from_secs(5), |n| n.a.established
                && n.b.established),
            "seed {seed}"
        );
        assert_eq!(
            net.a
                .events
                .iter()
                .filter(|e| **e == SctpEvent::Established)
                .count(),
            1
        );
        assert_eq!(
            net.b
                .events
                .iter()
                .filter(|e| **e == SctpEvent::Established)
                .count(),
            1
        );
        // Data flows both ways after a collision.
        net.a
            .assoc
            .send(
                1,
                PPID_BINARY,
                true,
                Reliability::Reliable,
                b"from a",
                net.now,
            )
            .unwrap();
        net.b
            .assoc
            .send(
                2,
                PPID_BINARY,
                true,
                Reliability::Reliable,
                b"from b",
                net.now,
            )
            .unwrap();
        net.settle();
        assert_eq!(
            net.b.messages,
            vec![(1, PPID_BINARY, b"from a".to_vec())],
            "seed {seed}"
        );
        assert_eq!(
            net.a.messages,
            vec![(2, PPID_BINARY, b"from b".to_vec())],
            "seed {seed}"
        );
        assert!(net.a.closed.is_none() && net.b.closed.is_none());
    }
}

#[test]
fn handshake_collision_works_with_skewed_start_and_asymmetric_delays() {
    for (seed, d1, d2) in [(1, 1, 30), (2, 30, 1), (3, 0, 0), (4, 5, 6)] {
        let mut net = Net::new(config(), config(), link(d1), link(d2), seed);
        // B starts a little later: its INIT crosses A's INIT ACK.
        net.b.assoc = Association::with_seed(config(), net.now, seed + 100);
        assert!(
            net.run(Duration::from_secs(5), |n| n.a.established
                && n.b.established),
            "seed {seed}"
        );
        net.a
            .assoc
            .send(0, PPID_BINARY, true, Reliability::Reliable, b"x", net.now)
            .unwrap();
        net.settle();
        assert_eq!(net.b.messages.len(), 1);
    }
}

#[test]
fn init_is_retransmitted_on_t1_when_lost() {
    let mut net = Net::new(config(), responder(), link(10), link(10), 2);
    let mut dropped = 0;
    net.ab.drop_if = Some(Box::new(move |p| {
        if has_chunk(p, chunk::INIT) && dropped < 2 {
            dropped += 1;
            return true;
        }
        false
    }));
    assert!(net.run(Duration::from_secs(5), |n| n.a.established
        && n.b.established));
    // Two INITs lost, the third got through after 100 ms and 200 ms of T1.
    assert_eq!(net.ab.lost, 2);
    assert_eq!(net.a.assoc.stats().packets_sent, 4);
}

#[test]
fn cookie_echo_is_retransmitted_on_t1_when_lost() {
    let mut net = Net::new(config(), responder(), link(10), link(10), 3);
    let mut dropped = false;
    net.ab.drop_if = Some(Box::new(move |p| {
        if has_chunk(p, chunk::COOKIE_ECHO) && !dropped {
            dropped = true;
            return true;
        }
        false
    }));
    assert!(net.run(Duration::from_secs(5), |n| n.a.established
        && n.b.established));
    assert_eq!(net.ab.lost, 1);
}

#[test]
fn cookie_ack_lost_is_recovered_by_the_retransmitted_cookie_echo() {
    let mut net = Net::new(config(), responder(), link(10), link(10), 4);
    let mut dropped = false;
    net.ba.drop_if = Some(Box::new(move |p| {
        if has_chunk(p, chunk::COOKIE_ACK) && !dropped {
            dropped = true;
            return true;
        }
        false
    }));
    assert!(net.run(Duration::from_secs(5), |n| n.a.established
        && n.b.established));
    assert_eq!(
        net.b
            .events
            .iter()
            .filter(|e| **e == SctpEvent::Established)
            .count(),
        1
    );
}

#[test]
fn handshake_gives_up_after_max_init_retransmits() {
    let cfg = SctpConfig {
        max_init_retransmits: 3,
        ..config()
    };
    let mut net = Net::new(cfg, responder(), link(10), link(10), 5);
    net.ab.drop_if = Some(Box::new(|_| true));
    net.run(Duration::from_secs(60), |n| n.a.closed.is_some());
    let error = net
        .a
        .closed
        .clone()
        .expect("closed")
        .expect("with an error");
    assert!(error.contains("INIT"), "{error}");
    // The first INIT and three retransmissions.
    assert_eq!(net.ab.sent, 4);
    assert!(net.a.assoc.poll_timeout().is_none());
}

#[test]
fn init_carries_supported_extensions_and_forward_tsn_but_not_i_data() {
    let mut a = Association::with_seed(config(), Instant::now(), 6);
    let mut out = Vec::new();
    assert!(a.poll_transmit(Instant::now(), &mut out));
    let (header, mut chunks) = chunk::parse_packet(&out).unwrap();
    assert_eq!(
        (header.src_port, header.dst_port, header.vtag),
        (5000, 5000, 0)
    );
    let init = chunks.next().unwrap().unwrap();
    assert_eq!(init.kind, chunk::INIT);
    assert!(chunks.next().is_none());
    let fixed = chunk::Init::parse(&init).unwrap();
    assert_eq!(
        (fixed.outbound_streams, fixed.inbound_streams),
        (65535, 65535)
    );
    let mut extensions = Vec::new();
    let mut fwd = false;
    for p in chunk::Params::new(fixed.params, chunk::INIT) {
        let p = p.unwrap();
        match p.kind {
            chunk::PARAM_SUPPORTED_EXTENSIONS => extensions.extend_from_slice(p.value),
            chunk::PARAM_FORWARD_TSN_SUPPORTED => fwd = true,
            other => panic!("unexpected parameter {other:#x}"),
        }
    }
    assert!(fwd);
    assert_eq!(extensions, vec![chunk::RE_CONFIG, chunk::FORWARD_TSN]);
    assert!(!extensions.contains(&0x40), "no I-DATA");
}

#[test]
fn ports_are_taken_from_the_peers_init() {
    let now = Instant::now();
    let mut b = Association::with_seed(responder(), now, 7);
    let mut init = Vec::new();
    let start = chunk::put_init_fixed(&mut init, chunk::INIT, 0x1234_5678, 100_000, 10, 1000);
    chunk::put_extension_params(&mut init);
    chunk::end_chunk(&mut init, start);
    let mut p = Vec::new();
    chunk::put_common_header(&mut p, 6000, 7000, 0);
    p.extend_from_slice(&init);
    chunk::finish_packet(&mut p);
    b.handle_packet(&p, now).unwrap();
    let mut out = Vec::new();
    assert!(b.poll_transmit(now, &mut out));
    let (header, mut chunks) = chunk::parse_packet(&out).unwrap();
    assert_eq!(
        (header.src_port, header.dst_port, header.vtag),
        (7000, 6000, 0x1234_5678)
    );
    assert_eq!(chunks.next().unwrap().unwrap().kind, chunk::INIT_ACK);
}

#[test]
fn unknown_init_parameters_are_skipped_or_reported_by_their_upper_bits() {
    let now = Instant::now();
    let mut b = Association::with_seed(responder(), now, 8);
    let mut init = Vec::new();
    let start = chunk::put_init_fixed(&mut init, chunk::INIT, 99, 100_000, 10, 1000);
    chunk::put_param(&mut init, 0x8123, b"skip"); // 10: skip silently
    chunk::put_param(&mut init, 0xC123, b"report"); // 11: skip and report
    chunk::put_extension_params(&mut init);
    chunk::end_chunk(&mut init, start);
    b.handle_packet(&packet(0, &[&init]), now).unwrap();
    let mut out = Vec::new();
    assert!(b.poll_transmit(now, &mut out));
    let (_, mut chunks) = chunk::parse_packet(&out).unwrap();
    let ack = chunks.next().unwrap().unwrap();
    let fixed = chunk::Init::parse(&ack).unwrap();
    let reported: Vec<_> = chunk::Params::new(fixed.params, chunk::INIT_ACK)
        .flatten()
        .filter(|p| p.kind == chunk::PARAM_UNRECOGNIZED)
        .map(|p| p.value.to_vec())
        .collect();
    assert_eq!(reported.len(), 1);
    assert_eq!(&reported[0][..2], &0xC123u16.to_be_bytes());
    // 00: stop processing the INIT's parameters (the extensions after it are not seen).
    let mut b = Association::with_seed(responder(), now, 9);
    let mut init = Vec::new();
    let start = chunk::put_init_fixed(&mut init, chunk::INIT, 99, 100_000, 10, 1000);
    chunk::put_param(&mut init, 0x0123, b"stop");
    chunk::put_extension_params(&mut init);
    chunk::end_chunk(&mut init, start);
    b.handle_packet(&packet(0, &[&init]), now).unwrap();
    assert!(b.poll_transmit(now, &mut out));
}

// ---------------------------------------------------------------------------------------
// Data transfer

#[test]
fn messages_of_1_byte_to_256_kib_arrive_intact_ordered_per_stream() {
    let mut net = Net::established(link(5), 10);
    let sizes = [
        1usize,
        2,
        3,
        7,
        8,
        100,
        1131,
        1132,
        1133,
        2264,
        4000,
        65_536,
        100_000,
        256 * 1024,
    ];
    let mut expected: HashMap<(u16, bool), Vec<Vec<u8>>> = HashMap::new();
    let mut index = 0;
    for round in 0..2 {
        for &size in &sizes {
            for (stream, ordered) in [(1u16, true), (2, true), (3, false)] {
                let data = payload(stream, index, size);
                index += 1;
                let now = net.now;
                match net.a.assoc.send(
                    stream,
                    PPID_BINARY,
                    ordered,
                    Reliability::Reliable,
                    &data,
                    now,
                ) {
                    Ok(()) => expected.entry((stream, ordered)).or_default().push(data),
                    Err(SendError::BufferFull) => {
                        net.run(Duration::from_secs(10), |n| n.a.assoc.total_buffered() == 0);
                        net.a
                            .assoc
                            .send(
                                stream,
                                PPID_BINARY,
                                ordered,
                                Reliability::Reliable,
                                &data,
                                net.now,
                            )
                            .unwrap();
                        expected.entry((stream, ordered)).or_default().push(data);
                    }
                    Err(e) => panic!("round {round} size {size}: {e}"),
                }
            }
        }
    }
    net.settle();
    for ((stream, ordered), sent) in &expected {
        let got = net.b.messages_on(*stream);
        if *ordered {
            assert!(
                got.len() == sent.len() && got.iter().zip(sent).all(|(g, s)| *g == s.as_slice()),
                "stream {stream}"
            );
        } else {
            let mut got: Vec<_> = got.iter().map(|g| g.to_vec()).collect();
            let mut sent = sent.clone();
            got.sort();
            sent.sort();
            assert_eq!(got, sent, "unordered stream {stream}");
        }
    }
    assert!(net.b.messages.iter().all(|m| m.1 == PPID_BINARY));
    assert_eq!(net.a.assoc.total_buffered(), 0);
    assert!(net.a.errors.is_empty() && net.b.errors.is_empty());
}

#[test]
fn small_messages_are_bundled_and_a_sack_rides_along() {
    let mut net = Net::established(link(5), 11);
    let before = net.ab.sent;
    for i in 0..20 {
        net.a
            .assoc
            .send(
                1,
                PPID_BINARY,
                true,
                Reliability::Reliable,
                &payload(1, i, 40),
                net.now,
            )
            .unwrap();
    }
    let mut out = Vec::new();
    assert!(net.a.assoc.poll_transmit(net.now, &mut out));
    let types = chunk_types(&out);
    assert_eq!(
        types.iter().filter(|&&t| t == chunk::DATA).count(),
        20,
        "{types:?}"
    );
    assert!(out.len() <= 1160);
    net.ab.send(net.now, &out);
    net.settle();
    assert_eq!(net.b.messages.len(), 20);
    assert!(net.ab.sent - before <= 3);
    // B answers data with data: its SACK is bundled with its DATA.
    net.a
        .assoc
        .send(
            1,
            PPID_BINARY,
            true,
            Reliability::Reliable,
            b"ping",
            net.now,
        )
        .unwrap();
    net.run(Duration::from_secs(1), |n| n.b.messages.len() == 21);
    net.b
        .assoc
        .send(
            1,
            PPID_BINARY,
            true,
            Reliability::Reliable,
            b"pong",
            net.now,
        )
        .unwrap();
    assert!(net.b.assoc.poll_transmit(net.now, &mut out));
    assert_eq!(chunk_types(&out), vec![chunk::SACK, chunk::DATA]);
}

#[test]
fn large_messages_are_fragmented_to_fit_max_packet_size() {
    let cfg = SctpConfig {
        max_packet_size: 600,
        ..config()
    };
    let mut net = Net::established_with(
        cfg.clone(),
        SctpConfig {
            initiate: false,
            ..cfg
        },
        link(5),
        12,
    );
    net.ab.capture = Some(Vec::new());
    let data = payload(5, 0, 50_000);
    net.a
        .assoc
        .send(5, PPID_BINARY, true, Reliability::Reliable, &data, net.now)
        .unwrap();
    net.settle();
    assert_eq!(net.b.messages_on(5), vec![data.as_slice()]);
    let captured = net.ab.capture.take().unwrap();
    assert!(captured.iter().all(|p| p.len() <= 600));
    assert!(captured.len() >= 50_000 / 600);
}

#[test]
fn sack_is_sent_for_every_second_data_packet_and_delayed_otherwise() {
    let mut net = Net::established(link(5), 13);
    net.ba.capture = Some(Vec::new());
    // One packet: the SACK waits for the delayed-ack timer (here min(200 ms, rto_min / 2)).
    net.a
        .assoc
        .send(1, PPID_BINARY, true, Reliability::Reliable, b"one", net.now)
        .unwrap();
    let sent_at = net.now;
    net.run(Duration::from_secs(1), |n| {
        n.ba.capture.as_ref().is_some_and(|c| !c.is_empty())
    });
    let waited = net.now.duration_since(sent_at);
    assert!(
        waited >= Duration::from_millis(5 + 10),
        "SACK after {waited:?}"
    );
    net.settle();
    // Two full packets at once: a SACK without delay.
    net.ba.capture = Some(Vec::new());
    net.a
        .assoc
        .send(
            1,
            PPID_BINARY,
            true,
            Reliability::Reliable,
            &payload(1, 1, 2000),
            net.now,
        )
        .unwrap();
    let sent_at = net.now;
    net.run(Duration::from_secs(1), |n| {
        n.ba.capture.as_ref().is_some_and(|c| !c.is_empty())
    });
    assert_eq!(net.now.duration_since(sent_at), Duration::from_millis(5));
}

#[test]
fn twenty_megabytes_survive_five_percent_loss_reordering_and_duplication() {
    let lossy = LinkConfig {
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(4),
        loss_per_mille: 50,
        dup_per_mille: 10,
    };
    let mut net = Net::established(lossy, 14);
    let total = 20 * 1024 * 1024;
    let mut sent = 0usize;
    let mut index = 0u32;
    let sizes = [1000usize, 64 * 1024, 300, 20_000, 1200];
    let mut expected = Vec::new();
    let done = net.run(Duration::from_secs(3600), |n| {
        while sent < total {
            let len = sizes[index as usize % sizes.len()];
            let data = payload(7, index, len);
            if n.a
                .assoc
                .send(7, PPID_BINARY, true, Reliability::Reliable, &data, n.now)
                .is_err()
            {
                break;
            }
            expected.push(data);
            sent += len;
            index += 1;
        }
        sent >= total && n.b.messages.len() == expected.len()
    });
    assert!(
        done,
        "transfer stalled: {} of {} messages",
        net.b.messages.len(),
        expected.len()
    );
    assert!(
        net.b.messages.iter().map(|m| &m.2).eq(expected.iter()),
        "data corrupted or reordered"
    );
    let stats = net.a.assoc.stats();
    assert!(
        stats.retransmitted_chunks > 0 && stats.fast_retransmits > 0,
        "{stats:?}"
    );
    assert!(net.a.closed.is_none() && net.b.closed.is_none());
    assert!(net.b.assoc.stats().duplicate_chunks_received > 0);
}

#[test]
fn a_single_loss_is_repaired_by_fast_retransmit_without_timeout() {
    let mut net = Net::established(link(10), 15);
    let mut n = 0;
    net.ab.drop_if = Some(Box::new(move |p| {
        if has_chunk(p, chunk::DATA) {
            n += 1;
            return n == 3;
        }
        false
    }));
    for i in 0..40 {
        net.a
            .assoc
            .send(
                1,
                PPID_BINARY,
                true,
                Reliability::Reliable,
                &payload(1, i, 1000),
                net.now,
            )
            .unwrap();
    }
    net.run(Duration::from_secs(10), |n| n.b.messages.len() == 40);
    let stats = net.a.assoc.stats();
    assert_eq!(stats.t3_expirations, 0, "{stats:?}");
    assert_eq!(stats.fast_retransmits, 1, "{stats:?}");
    assert_eq!(stats.retransmitted_chunks, 1, "{stats:?}");
    assert!(net
        .b
        .messages
        .iter()
        .enumerate()
        .all(|(i, m)| m.2 == payload(1, i as u32, 1000)));
}

#[test]
fn a_lost_tail_is_repaired_by_the_t3_timer_and_rtt_is_measured() {
    let mut net = Net::established(link(10), 16);
    let mut n = 0;
    net.ab.drop_if = Some(Box::new(move |p| {
        if has_chunk(p, chunk::DATA) {
            n += 1;
            return n == 1;
        }
        false
    }));
    net.a
        .assoc
        .send(
            1,
            PPID_BINARY,
            true,
            Reliability::Reliable,
            b"tail",
            net.now,
        )
        .unwrap();
    net.run(Duration::from_secs(10), |n| n.b.messages.len() == 1);
    let stats = net.a.assoc.stats();
    assert_eq!(stats.t3_expirations, 1);
    assert_eq!(stats.retransmitted_chunks, 1);
    net.a
        .assoc
        .send(
            1,
            PPID_BINARY,
            true,
            Reliability::Reliable,
            b"next",
            net.now,
        )
        .unwrap();
    net.settle();
    let srtt = net.a.assoc.stats().srtt.expect("RTT measured");
    assert!(
        srtt >= Duration::from_millis(20) && srtt < Duration::from_millis(200),
        "{srtt:?}"
    );
}

#[test]
fn tsns_and_ssns_wrap_around() {
    let now = Instant::now();
    let mut net = Net::new(config(), responder(), link(1), link(1), 17);
    net.a.assoc = Association::with_params(config(), now, 77, u32::MAX - 50, [1; 8]);
    net.b.assoc = Association::with_params(responder(), now, 88, u32::MAX - 3, [2; 8]);
    assert!(net.run(Duration::from_secs(5), |n| n.a.established
        && n.b.established));
    let mut expected = Vec::new();
    for i in 0..70_000u32 {
        let data = payload(0, i, 1 + (i as usize % 5));
        if net
            .a
            .assoc
            .send(0, PPID_BINARY, true, Reliability::Reliable, &data, net.now)
            .is_err()
        {
            net.run(Duration::from_secs(10), |n| n.a.assoc.total_buffered() == 0);
            net.a
                .assoc
                .send(0, PPID_BINARY, true, Reliability::Reliable, &data, net.now)
                .unwrap();
        }
        expected.push(data);
        if i % 1000 == 0 {
            net.b
                .assoc
                .send(
                    0,
                    PPID_BINARY,
                    false,
                    Reliability::Reliable,
                    b"back",
                    net.now,
                )
                .unwrap();
        }
    }
    net.settle();
    assert_eq!(net.b.messages.len(), expected.len());
    assert!(net.b.messages.iter().map(|m| &m.2).eq(expected.iter()));
    assert_eq!(net.a.messages.len(), 70);
}

// ---------------------------------------------------------------------------------------
// Partial reliability

#[test]
fn max_retransmits_zero_never_retransmits_under_loss_and_later_messages_arrive() {
    let lossy = LinkConfig {
        delay: Duration::from_millis(10),
        loss_per_mille: 100,
        ..LinkConfig::default()
    };
    let mut net = Net::established(lossy, 18);
    for i in 0..500 {
        let data = payload(3, i, 200 + (i as usize % 3) * 1000);
        net.a
            .assoc
            .send(
                3,
                PPID_BINARY,
                true,
                Reliability::MaxRetransmits(0),
                &data,
                net.now,
            )
            .unwrap();
        if i % 50 == 0 {
            net.run_for(Duration::from_millis(20));
        }
    }
    net.run(Duration::from_secs(30), |n| n.a.assoc.total_buffered() == 0);
    let stats = net.a.assoc.stats();
    assert_eq!(stats.retransmitted_chunks, 0, "{stats:?}");
    assert!(
        stats.abandoned_messages > 0 && stats.forward_tsns_sent > 0,
        "{stats:?}"
    );
    // A reliable ordered message on the same stream, after the abandoned ones, arrives.
    net.a
        .assoc
        .send(
            3,
            PPID_BINARY,
            true,
            Reliability::Reliable,
            b"last",
            net.now,
        )
        .unwrap();
    assert!(net.run(Duration::from_secs(30), |n| n
        .b
        .messages
        .last()
        .is_some_and(|m| m.2 == b"last")));
    // What arrived, arrived intact and in order.
    let got = net.b.messages_on(3);
    assert!(got.len() > 250 && got.len() < 500, "{}", got.len());
    let mut last_index = None;
    for m in &got[..got.len() - 1] {
        let index = (0..500u32)
            .find(|&i| payload(3, i, m.len()) == *m)
            .expect("intact");
        assert!(last_index.is_none_or(|l| index > l), "in order");
        last_index = Some(index);
    }
}

#[test]
fn max_retransmits_limits_retransmissions_per_message() {
    let mut net = Net::established(link(10), 19);
    let mut data_packets = 0;
    net.ab.drop_if = Some(Box::new(move |p| {
        if has_chunk(p, chunk::DATA) {
            data_packets += 1;
            return data_packets <= 3;
        }
        false
    }));
    net.a
        .assoc
        .send(
            1,
            PPID_BINARY,
            false,
            Reliability::MaxRetransmits(2),
            b"doomed",
            net.now,
        )
        .unwrap();
    net.run(Duration::from_secs(10), |n| n.a.assoc.total_buffered() == 0);
    let stats = net.a.assoc.stats();
    assert_eq!(stats.retransmitted_chunks, 2, "{stats:?}");
    assert_eq!(stats.abandoned_messages, 1);
    net.a
        .assoc
        .send(
            1,
            PPID_BINARY,
            false,
            Reliability::Reliable,
            b"next",
            net.now,
        )
        .unwrap();
    net.settle();
    assert_eq!(net.b.messages_on(1), vec![b"next".as_slice()]);
}

#[test]
fn lifetime_expiry_abandons_messages_and_later_messages_arrive() {
    let lossy = LinkConfig {
        delay: Duration::from_millis(20),
        loss_per_mille: 100,
        ..LinkConfig::default()
    };
    let mut net = Net::established(lossy, 20);
    let lifetime = Reliability::MaxLifetime(Duration::from_millis(30));
    for i in 0..400 {
        let data = payload(4, i, 500 + (i as usize % 4) * 700);
        net.a
            .assoc
            .send(4, PPID_BINARY, true, lifetime, &data, net.now)
            .unwrap();
        if i % 40 == 0 {
            net.run_for(Duration::from_millis(10));
        }
    }
    net.run(Duration::from_secs(30), |n| n.a.assoc.total_buffered() == 0);
    let stats = net.a.assoc.stats();
    assert!(stats.abandoned_messages > 0, "{stats:?}");
    net.a
        .assoc
        .send(
            4,
            PPID_BINARY,
            true,
            Reliability::Reliable,
            b"last",
            net.now,
        )
        .unwrap();
    assert!(net.run(Duration::from_secs(30), |n| n
        .b
        .messages
        .last()
        .is_some_and(|m| m.2 == b"last")));
    assert!(net.b.messages_on(4).len() < 401);
}

#[test]
fn lifetime_counts_from_send_so_messages_expire_in_the_queue() {
    let mut net = Net::established(link(10), 21);
    // Hold B's window shut so that nothing can be sent for a while.
    net.b.assoc.set_held_bytes(10 * 1024 * 1024);
    net.a
        .assoc
        .send(
            2,
            PPID_BINARY,
            true,
            Reliability::Reliable,
            &payload(2, 0, 200_000),
            net.now,
        )
        .unwrap();
    net.run_for(Duration::from_millis(100));
    let short = Reliability::MaxLifetime(Duration::from_millis(50));
    for i in 1..=10 {
        net.a
            .assoc
            .send(2, PPID_BINARY, true, short, &payload(2, i, 100), net.now)
            .unwrap();
    }
    net.run_for(Duration::from_millis(200));
    net.b.assoc.set_held_bytes(0);
    net.a
        .assoc
        .send(
            2,
            PPID_BINARY,
            true,
            Reliability::Reliable,
            b"after",
            net.now,
        )
        .unwrap();
    net.settle();
    let got = net.b.messages_on(2);
    assert_eq!(got.len(), 2, "the expired messages were never sent");
    assert_eq!(got[1], b"after");
    assert_eq!(net.a.assoc.total_buffered(), 0);
}

#[test]
fn forward_tsn_skips_a_partially_received_message() {
    let mut net = Net::established(link(10), 22);
    // Lose the middle of a fragmented unreliable message.
    let mut n = 0;
    net.ab.drop_if = Some(Box::new(move |p| {
        if has_chunk(p, chunk::DATA) {
            n += 1;
            return n == 2;
        }
        false
    }));
    net.a
        .assoc
        .send(
            6,
            PPID_BINARY,
            true,
            Reliability::MaxRetransmits(0),
            &payload(6, 0, 5000),
            net.now,
        )
        .unwrap();
    net.a
        .assoc
        .send(
            6,
            PPID_BINARY,
            true,
            Reliability::Reliable,
            b"after",
            net.now,
        )
        .unwrap();
    net.settle();
    assert_eq!(net.b.messages_on(6), vec![b"after".as_slice()]);
    assert_eq!(net.a.assoc.total_buffered(), 0);
    // Nothing left over in B's reassembly: its window is whole again.
    assert_eq!(
        net.b.assoc.stats().advertised_rwnd,
        net.b.assoc.cfg.receive_window
    );
}

// ---------------------------------------------------------------------------------------
// Stream reset

#[test]
fn stream_reset_both_ways_reports_events_on_both_sides_and_restarts_ssns() {
    let mut net = Net::established(link(10), 23);
    for i in 0..5 {
        net.a
            .assoc
            .send(
                1,
                PPID_BINARY,
                true,
                Reliability::Reliable,
                &payload(1, i, 3000),
                net.now,
            )
            .unwrap();
        net.b
            .assoc
            .send(
                1,
                PPID_BINARY,
                true,
                Reliability::Reliable,
                &payload(1, 100 + i, 10),
                net.now,
            )
            .unwrap();
    }
    // A closes its side while data is still queued: the request waits for it.
    net.a.assoc.reset_streams(&[1]);
    assert_eq!(
        net.a
            .assoc
            .send(1, PPID_BINARY, true, Reliability::Reliable, b"x", net.now),
        Err(SendError::StreamResetting(1))
    );
    net.settle();
    assert!(
        net.a
            .events
            .contains(&SctpEvent::OutgoingStreamsReset(vec![1])),
        "{:?}",
        net.a.events
    );
    assert!(
        net.b
            .events
            .contains(&SctpEvent::IncomingStreamsReset(vec![1])),
        "{:?}",
        net.b.events
    );
    assert_eq!(
        net.b.messages_on(1).len(),
        5,
        "all data before the reset arrived"
    );
    // B answers by resetting its side too (as data channels close).
    net.b.assoc.reset_streams(&[1]);
    net.settle();
    assert!(net
        .b
        .events
        .contains(&SctpEvent::OutgoingStreamsReset(vec![1])));
    assert!(net
        .a
        .events
        .contains(&SctpEvent::IncomingStreamsReset(vec![1])));
    // The stream is reused from SSN 0.
    net.a
        .assoc
        .send(1, PPID_BINARY, true, Reliability::Reliable, b"new", net.now)
        .unwrap();
    net.b
        .assoc
        .send(
            1,
            PPID_BINARY,
            true,
            Reliability::Reliable,
            b"new too",
            net.now,
        )
        .unwrap();
    net.settle();
    assert_eq!(net.b.messages_on(1).last(), Some(&b"new".as_slice()));
    assert_eq!(net.a.messages_on(1).last(), Some(&b"new too".as_slice()));
}

#[test]
fn incoming_reset_is_deferred_until_the_last_tsn_arrives() {
    let mut net = Net::established(link(10), 24);
    // Lose A's first data packet so that the reset request overtakes it.
    let mut n = 0;
    net.ab.drop_if = Some(Box::new(move |p| {
        if has_chunk(p, chunk::DATA) {
            n += 1;
            return n == 1;
        }
        false
    }));
    net.a
        .assoc
        .send(
            2,
            PPID_BINARY,
            true,
            Reliability::Reliable,
            b"before reset",
            net.now,
        )
        .unwrap();
    net.a.assoc.reset_streams(&[2]);
    net.settle();
    assert_eq!(net.b.messages_on(2), vec![b"before reset".as_slice()]);
    let reset_at = net
        .b
        .events
        .iter()
        .position(|e| *e == SctpEvent::IncomingStreamsReset(vec![2]));
    assert!(reset_at.is_some(), "{:?}", net.b.events);
    assert!(
        net.a
            .events
            .contains(&SctpEvent::OutgoingStreamsReset(vec![2])),
        "{:?}",
        net.a.events
    );
    net.a
        .assoc
        .send(
            2,
            PPID_BINARY,
            true,
            Reliability::Reliable,
            b"after reset",
            net.now,
        )
        .unwrap();
    net.settle();
    assert_eq!(
        net.b.messages_on(2),
        vec![b"before reset".as_slice(), b"after reset".as_slice()]
    );
}

#[test]
fn reset_request_is_retransmitted_when_lost() {
    let mut net = Net::established(link(10), 25);
    let mut dropped = false;
    net.ab.drop_if = Some(Box::new(move |p| {
        if has_chunk(p, chunk::RE_CONFIG) && !dropped {
            dropped = true;
            return true;
        }
        false
    }));
    net.a.assoc.reset_streams(&[3, 4]);
    net.settle();
    assert!(net
        .a
        .events
        .contains(&SctpEvent::OutgoingStreamsReset(vec![3, 4])));
    assert_eq!(
        net.b
            .events
            .iter()
            .filter(|e| matches!(e, SctpEvent::IncomingStreamsReset(_)))
            .count(),
        1
    );
}

#[test]
fn reset_response_lost_is_answered_again_without_resetting_twice() {
    let mut net = Net::established(link(10), 26);
    let mut dropped = false;
    net.ba.drop_if = Some(Box::new(move |p| {
        if has_chunk(p, chunk::RE_CONFIG) && !dropped {
            dropped = true;
            return true;
        }
        false
    }));
    net.a.assoc.reset_streams(&[9]);
    net.settle();
    assert!(net
        .a
        .events
        .contains(&SctpEvent::OutgoingStreamsReset(vec![9])));
    assert_eq!(
        net.b
            .events
            .iter()
            .filter(|e| matches!(e, SctpEvent::IncomingStreamsReset(_)))
            .count(),
        1
    );
}

/// A pair with known tags and Initial TSNs: A (tag 0xA, TSN 1000) initiates, B (tag 0xB,
/// TSN 5000) answers.
fn known_pair(seed: u64) -> Net {
    let mut net = Net::new(config(), responder(), link(1), link(1), seed);
    net.a.assoc = Association::with_params(config(), net.now, 0xA, 1000, [1; 8]);
    net.b.assoc = Association::with_params(responder(), net.now, 0xB, 5000, [2; 8]);
    assert!(net.run(Duration::from_secs(5), |n| n.a.established
        && n.b.established));
    net
}

/// The Re-configuration Responses (sequence number, result) in a packet.
fn reconfig_responses(packet: &[u8]) -> Vec<(u32, u32)> {
    let Ok((_, chunks)) = chunk::parse_packet(packet) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for c in chunks.flatten().filter(|c| c.kind == chunk::RE_CONFIG) {
        for p in chunk::Params::new(c.value, chunk::RE_CONFIG).flatten() {
            if p.kind == chunk::PARAM_RECONFIG_RESPONSE && p.value.len() >= 8 {
                let v = p.value;
                out.push((
                    u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
                    u32::from_be_bytes([v[4], v[5], v[6], v[7]]),
                ));
            }
        }
    }
    out
}

fn reconfig_chunk(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut c = Vec::new();
    chunk::put_chunk_header(&mut c, chunk::RE_CONFIG, 0, 0);
    chunk::put_param(&mut c, kind, value);
    chunk::end_chunk(&mut c, 0);
    c
}

#[test]
fn peer_incoming_reset_requests_are_denied_and_bad_sequence_numbers_reported() {
    let mut net = known_pair(27);
    // B's request sequence numbers start at its Initial TSN, 5000.
    let mut value = 5000u32.to_be_bytes().to_vec();
    value.extend_from_slice(&1u16.to_be_bytes());
    let request = reconfig_chunk(chunk::PARAM_INCOMING_RESET, &value);
    net.a
        .assoc
        .handle_packet(&packet(0xA, &[&request]), net.now)
        .unwrap();
    let mut out = Vec::new();
    assert!(net.a.assoc.poll_transmit(net.now, &mut out));
    assert_eq!(reconfig_responses(&out), vec![(5000, 2)], "Denied");
    // The same request again gets the same answer; a sequence number out of line gets
    // Error - Bad Sequence Number.
    net.a
        .assoc
        .handle_packet(&packet(0xA, &[&request]), net.now)
        .unwrap();
    let mut value = 7777u32.to_be_bytes().to_vec();
    value.extend_from_slice(&1u16.to_be_bytes());
    let wrong = reconfig_chunk(chunk::PARAM_INCOMING_RESET, &value);
    net.a
        .assoc
        .handle_packet(&packet(0xA, &[&wrong]), net.now)
        .unwrap();
    assert!(net.a.assoc.poll_transmit(net.now, &mut out));
    assert_eq!(reconfig_responses(&out), vec![(5000, 2), (7777, 5)]);
}

#[test]
fn outgoing_reset_request_is_answered_in_progress_then_performed() {
    let mut net = known_pair(42);
    // B's last assigned TSN is 5001, but A has only received up to 4999.
    let mut value = Vec::new();
    value.extend_from_slice(&5000u32.to_be_bytes()); // request sequence number
    value.extend_from_slice(&999u32.to_be_bytes()); // response sequence number
    value.extend_from_slice(&5001u32.to_be_bytes()); // sender's last assigned TSN
    value.extend_from_slice(&3u16.to_be_bytes());
    let request = reconfig_chunk(chunk::PARAM_OUTGOING_RESET, &value);
    net.a
        .assoc
        .handle_packet(&packet(0xA, &[&request]), net.now)
        .unwrap();
    let mut out = Vec::new();
    assert!(net.a.assoc.poll_transmit(net.now, &mut out));
    assert_eq!(reconfig_responses(&out), vec![(5000, 6)], "In progress");
    net.a.drain();
    assert!(!net
        .a
        .events
        .iter()
        .any(|e| matches!(e, SctpEvent::IncomingStreamsReset(_))));
    // TSN 5001 (stream 3, SSN 0) arrives before 5000, then 5000: the reset happens in
    // between, and the message sent after it is delivered after the reset event.
    let data = |tsn: u32, stream: u16, ssn: u16, text: &[u8]| {
        let mut c = Vec::new();
        chunk::put_data(
            &mut c,
            chunk::FLAG_BEGIN | chunk::FLAG_END,
            tsn,
            stream,
            ssn,
            PPID_BINARY,
            text,
        );
        c
    };
    net.a
        .assoc
        .handle_packet(&packet(0xA, &[&data(5001, 3, 0, b"new")]), net.now)
        .unwrap();
    net.a
        .assoc
        .handle_packet(&packet(0xA, &[&data(5000, 3, 7, b"old")]), net.now)
        .unwrap();
    net.a.drain();
    let reset_at = net
        .a
        .events
        .iter()
        .position(|e| *e == SctpEvent::IncomingStreamsReset(vec![3]));
    assert!(reset_at.is_some(), "{:?}", net.a.events);
    assert_eq!(
        net.a.messages_on(3),
        vec![b"new".as_slice()],
        "SSN 7 of the old stream was not next"
    );
    let mut responses = Vec::new();
    while net.a.assoc.poll_transmit(net.now, &mut out) {
        responses.extend(reconfig_responses(&out));
    }
    assert_eq!(responses, vec![(5000, 1)], "Success - Performed");
    // A retransmission of the request is answered with the same result.
    net.a
        .assoc
        .handle_packet(&packet(0xA, &[&request]), net.now)
        .unwrap();
    assert!(net.a.assoc.poll_transmit(net.now, &mut out));
    assert_eq!(reconfig_responses(&out), vec![(5000, 1)]);
}

#[test]
fn a_cookie_not_issued_by_us_is_rejected() {
    let mut net = known_pair(43);
    let echo = raw_chunk(chunk::COOKIE_ECHO, 0, &[0x55; 40]);
    assert!(matches!(
        net.a.assoc.handle_packet(&packet(0xA, &[&echo]), net.now),
        Err(SctpError::Malformed {
            chunk: chunk::COOKIE_ECHO,
            ..
        })
    ));
    assert!(net.a.assoc.is_established());
}

#[test]
fn a_peer_restart_closes_the_association() {
    let mut net = known_pair(44);
    // A new INIT from the peer with a new tag, then the COOKIE ECHO of our answer.
    let mut init = Vec::new();
    let start = chunk::put_init_fixed(&mut init, chunk::INIT, 0xBB, 100_000, 100, 9000);
    chunk::end_chunk(&mut init, start);
    net.a
        .assoc
        .handle_packet(&packet(0, &[&init]), net.now)
        .unwrap();
    let mut out = Vec::new();
    assert!(net.a.assoc.poll_transmit(net.now, &mut out));
    let (_, chunks) = chunk::parse_packet(&out).unwrap();
    let ack = chunks.flatten().next().unwrap();
    let fixed = chunk::Init::parse(&ack).unwrap();
    assert_eq!(
        (fixed.initiate_tag, fixed.initial_tsn),
        (0xA, 1000),
        "our tags are kept"
    );
    let cookie = chunk::Params::new(fixed.params, chunk::INIT_ACK)
        .flatten()
        .find(|p| p.kind == chunk::PARAM_STATE_COOKIE)
        .unwrap()
        .value
        .to_vec();
    let echo = raw_chunk(chunk::COOKIE_ECHO, 0, &cookie);
    net.a
        .assoc
        .handle_packet(&packet(0xA, &[&echo]), net.now)
        .unwrap();
    net.a.drain();
    assert!(net.a.closed.clone().unwrap().unwrap().contains("restarted"));
}

// ---------------------------------------------------------------------------------------
// Closing

#[test]
fn abort_closes_both_sides_with_the_reason() {
    let mut net = Net::established(link(10), 28);
    net.a.assoc.abort("game over");
    net.a.drain();
    assert_eq!(net.a.closed, Some(None));
    net.settle();
    let error = net
        .b
        .closed
        .clone()
        .expect("B closed")
        .expect("with the cause");
    assert!(
        error.contains("User-Initiated Abort") && error.contains("game over"),
        "{error}"
    );
    assert!(net.a.assoc.is_closed() && net.b.assoc.is_closed());
    assert_eq!(
        net.a
            .assoc
            .send(0, PPID_BINARY, true, Reliability::Reliable, b"x", net.now),
        Err(SendError::NotOpen)
    );
    assert!(net.a.assoc.poll_timeout().is_none());
}

#[test]
fn shutdown_completes_after_queued_data_is_delivered() {
    let mut net = Net::established(link(10), 29);
    for i in 0..20 {
        net.a
            .assoc
            .send(
                1,
                PPID_BINARY,
                true,
                Reliability::Reliable,
                &payload(1, i, 5000),
                net.now,
            )
            .unwrap();
    }
    net.a.assoc.shutdown();
    assert_eq!(
        net.a
            .assoc
            .send(1, PPID_BINARY, true, Reliability::Reliable, b"x", net.now),
        Err(SendError::NotOpen)
    );
    net.settle();
    assert_eq!(net.b.messages.len(), 20);
    assert_eq!(net.a.closed, Some(None));
    assert_eq!(net.b.closed, Some(None));
}

#[test]
fn retransmissions_without_answer_close_the_association() {
    let cfg = SctpConfig {
        max_association_retransmits: 4,
        ..config()
    };
    let mut net = Net::established_with(cfg, responder(), link(10), 30);
    net.ab.drop_if = Some(Box::new(|_| true));
    net.a
        .assoc
        .send(
            0,
            PPID_BINARY,
            true,
            Reliability::Reliable,
            b"void",
            net.now,
        )
        .unwrap();
    net.run(Duration::from_secs(120), |n| n.a.closed.is_some());
    let error = net.a.closed.clone().unwrap().unwrap();
    assert!(error.contains("unreachable"), "{error}");
    assert_eq!(net.a.assoc.stats().t3_expirations, 5);
}

#[test]
fn a_message_larger_than_the_maximum_from_the_peer_aborts() {
    let big = SctpConfig {
        max_message_size: 100_000,
        ..config()
    };
    let small = SctpConfig {
        initiate: false,
        max_message_size: 10_000,
        ..config()
    };
    let mut net = Net::established_with(big, small, link(5), 31);
    net.a
        .assoc
        .send(
            0,
            PPID_BINARY,
            true,
            Reliability::Reliable,
            &payload(0, 0, 20_000),
            net.now,
        )
        .unwrap();
    net.settle();
    let error = net.b.closed.clone().unwrap().unwrap();
    assert!(error.contains("larger"), "{error}");
    assert!(net
        .a
        .closed
        .clone()
        .unwrap()
        .unwrap()
        .contains("Protocol Violation"));
}

// ---------------------------------------------------------------------------------------
// Send budget and windows

#[test]
fn send_refuses_beyond_max_buffered_amount_and_accepts_again_after_acks() {
    let cfg = SctpConfig {
        max_buffered_amount: 100_000,
        ..config()
    };
    let mut net = Net::established_with(cfg, responder(), link(10), 32);
    let mut accepted = 0;
    while net
        .a
        .assoc
        .send(
            1,
            PPID_BINARY,
            true,
            Reliability::Reliable,
            &[7; 10_000],
            net.now,
        )
        .is_ok()
    {
        accepted += 1;
    }
    assert_eq!(accepted, 10);
    assert_eq!(net.a.assoc.total_buffered(), 100_000);
    assert_eq!(net.a.assoc.buffered_amount(1), 100_000);
    assert_eq!(net.a.assoc.buffered_amount(2), 0);
    assert_eq!(
        net.a.assoc.send(
            2,
            PPID_BINARY,
            true,
            Reliability::Reliable,
            &[7; 1],
            net.now
        ),
        Err(SendError::BufferFull)
    );
    net.settle();
    assert_eq!(net.a.assoc.total_buffered(), 0);
    net.a
        .assoc
        .send(
            1,
            PPID_BINARY,
            true,
            Reliability::Reliable,
            &[7; 10_000],
            net.now,
        )
        .unwrap();
    net.settle();
    assert_eq!(net.b.messages.len(), 11);
}

#[test]
fn send_refuses_empty_oversized_and_out_of_range_messages() {
    let mut net = Net::established(link(1), 33);
    let now = net.now;
    let a = &mut net.a.assoc;
    assert_eq!(
        a.send(0, PPID_BINARY, true, Reliability::Reliable, &[], now),
        Err(SendError::Empty)
    );
    let huge = vec![0; 256 * 1024 + 1];
    assert!(matches!(
        a.send(0, PPID_BINARY, true, Reliability::Reliable, &huge, now),
        Err(SendError::TooLarge { .. })
    ));
    assert_eq!(a.total_buffered(), 0);
}

#[test]
fn messages_queued_before_establishment_go_out_once_established() {
    let mut net = Net::new(config(), responder(), link(10), link(10), 34);
    net.a
        .assoc
        .send(
            1,
            PPID_BINARY,
            true,
            Reliability::Reliable,
            b"early",
            net.now,
        )
        .unwrap();
    net.settle();
    assert_eq!(net.b.messages_on(1), vec![b"early".as_slice()]);
}

#[test]
fn held_bytes_shrink_the_window_and_the_sender_stalls_then_resumes() {
    let cfg = SctpConfig {
        receive_window: 300_000,
        initiate: false,
        ..config()
    };
    let mut net = Net::established_with(config(), cfg, link(10), 35);
    let mut sent = 0;
    for i in 0..100 {
        if net
            .a
            .assoc
            .send(
                1,
                PPID_BINARY,
                true,
                Reliability::Reliable,
                &payload(1, i, 10_000),
                net.now,
            )
            .is_ok()
        {
            sent += 1;
        }
    }
    assert_eq!(sent, 100);
    // The application keeps everything it receives: the window closes.
    let end = net.now + Duration::from_secs(3);
    net.run(Duration::from_secs(4), |n| {
        let held: usize = n.b.messages.iter().map(|m| m.2.len()).sum();
        n.b.assoc.set_held_bytes(held);
        n.now >= end
    });
    let held: usize = net.b.messages.iter().map(|m| m.2.len()).sum();
    assert!((250_000..=300_000).contains(&held), "held {held}");
    assert!(net.b.assoc.stats().advertised_rwnd < 20_000);
    assert!(net.a.assoc.stats().t3_expirations > 0, "zero window probes");
    assert!(
        net.a.closed.is_none(),
        "window probes that are answered are not errors"
    );
    // The application consumes: the window opens and the transfer finishes.
    net.b.assoc.set_held_bytes(0);
    assert!(net.run(Duration::from_secs(30), |n| n.b.messages.len() == sent));
    assert!(net
        .b
        .messages
        .iter()
        .enumerate()
        .all(|(i, m)| m.2 == payload(1, i as u32, 10_000)));
}

#[test]
fn undrained_events_count_against_the_receive_window() {
    let cfg = SctpConfig {
        receive_window: 300_000,
        initiate: false,
        ..config()
    };
    let mut net = Net::established_with(config(), cfg, link(10), 36);
    for i in 0..100 {
        net.a
            .assoc
            .send(
                1,
                PPID_BINARY,
                true,
                Reliability::Reliable,
                &payload(1, i, 10_000),
                net.now,
            )
            .unwrap();
    }
    // Deliver to B without draining its events.
    let mut buf = Vec::new();
    for _ in 0..200 {
        while net.a.assoc.poll_transmit(net.now, &mut buf) {
            let _ = net.b.assoc.handle_packet(&buf, net.now);
        }
        while net.b.assoc.poll_transmit(net.now, &mut buf) {
            let _ = net.a.assoc.handle_packet(&buf, net.now);
        }
        net.now += MS;
        net.a.assoc.handle_timeout(net.now);
        net.b.assoc.handle_timeout(net.now);
    }
    let mut undrained = 0;
    while let Some(event) = net.b.assoc.poll_event() {
        if let SctpEvent::Message { data, .. } = event {
            undrained += data.len();
        }
    }
    assert!(undrained <= 300_000 + 2 * 1160, "{undrained}");
    assert!(undrained >= 250_000, "{undrained}");
}

// ---------------------------------------------------------------------------------------
// Control chunks

#[test]
fn heartbeat_is_answered_with_its_info() {
    let mut net = Net::established(link(1), 37);
    let mut out = Vec::new();
    net.b
        .assoc
        .send(0, PPID_BINARY, true, Reliability::Reliable, b"x", net.now)
        .unwrap();
    assert!(net.b.assoc.poll_transmit(net.now, &mut out));
    let a_tag = vtag_of(&out);
    net.settle();
    let mut hb = Vec::new();
    chunk::put_chunk_header(&mut hb, chunk::HEARTBEAT, 0, 0);
    chunk::put_param(&mut hb, chunk::PARAM_HEARTBEAT_INFO, b"opaque info");
    chunk::end_chunk(&mut hb, 0);
    net.a
        .assoc
        .handle_packet(&packet(a_tag, &[&hb]), net.now)
        .unwrap();
    assert!(net.a.assoc.poll_transmit(net.now, &mut out));
    let (_, chunks) = chunk::parse_packet(&out).unwrap();
    let ack = chunks
        .flatten()
        .find(|c| c.kind == chunk::HEARTBEAT_ACK)
        .expect("HEARTBEAT ACK");
    let hb_len = usize::from(u16::from_be_bytes([hb[2], hb[3]]));
    assert_eq!(ack.value, &hb[4..hb_len]);
}

#[test]
fn unknown_chunk_types_are_handled_by_their_upper_bits() {
    let mut net = Net::established(link(1), 38);
    let mut out = Vec::new();
    net.b
        .assoc
        .send(0, PPID_BINARY, true, Reliability::Reliable, b"x", net.now)
        .unwrap();
    assert!(net.b.assoc.poll_transmit(net.now, &mut out));
    let a_tag = vtag_of(&out);
    net.settle();
    let heartbeat = {
        let mut hb = Vec::new();
        chunk::put_chunk_header(&mut hb, chunk::HEARTBEAT, 0, 0);
        chunk::put_param(&mut hb, chunk::PARAM_HEARTBEAT_INFO, b"i");
        chunk::end_chunk(&mut hb, 0);
        hb
    };
    // (type, chunk after it processed, ERROR reported)
    for (kind, continues, reports) in [
        (0x3f, false, false),
        (0x7f, false, true),
        (0xbf, true, false),
        (0xff, true, true),
    ] {
        let unknown = raw_chunk(kind, 0, b"whatever");
        net.a
            .assoc
            .handle_packet(&packet(a_tag, &[&unknown, &heartbeat]), net.now)
            .unwrap();
        let mut types = Vec::new();
        while net.a.assoc.poll_transmit(net.now, &mut out) {
            types.extend(chunk_types(&out));
        }
        assert_eq!(
            types.contains(&chunk::HEARTBEAT_ACK),
            continues,
            "type {kind:#x}: {types:?}"
        );
        assert_eq!(
            types.contains(&chunk::ERROR),
            reports,
            "type {kind:#x}: {types:?}"
        );
    }
    assert!(net.a.assoc.is_established());
}

#[test]
fn error_chunks_are_logged_and_ignored() {
    let mut net = Net::established(link(1), 39);
    let mut out = Vec::new();
    net.b
        .assoc
        .send(0, PPID_BINARY, true, Reliability::Reliable, b"x", net.now)
        .unwrap();
    assert!(net.b.assoc.poll_transmit(net.now, &mut out));
    let a_tag = vtag_of(&out);
    net.settle();
    let mut e = Vec::new();
    chunk::put_chunk_header(&mut e, chunk::ERROR, 0, 0);
    chunk::put_param(&mut e, chunk::CAUSE_INVALID_STREAM, &[0, 9, 0, 0]);
    chunk::end_chunk(&mut e, 0);
    net.a
        .assoc
        .handle_packet(&packet(a_tag, &[&e]), net.now)
        .unwrap();
    assert!(net.a.assoc.is_established());
}

// ---------------------------------------------------------------------------------------
// Malformed input

/// Exchanges a few messages both ways and checks they arrive.
fn assert_still_works(net: &mut Net, tag: &str) {
    let (na, nb) = (net.a.messages.len(), net.b.messages.len());
    for i in 0..3 {
        net.a
            .assoc
            .send(
                11,
                PPID_BINARY,
                true,
                Reliability::Reliable,
                &payload(11, i, 3000),
                net.now,
            )
            .unwrap();
        net.b
            .assoc
            .send(
                12,
                PPID_BINARY,
                false,
                Reliability::Reliable,
                &payload(12, i, 30),
                net.now,
            )
            .unwrap();
    }
    assert!(
        net.run(Duration::from_secs(60), |n| n.a.messages.len() == na + 3
            && n.b.messages.len() == nb + 3),
        "{tag}: association stopped working"
    );
    assert!(
        net.b.messages[nb..]
            .iter()
            .enumerate()
            .all(|(i, m)| m.2 == payload(11, i as u32, 3000)),
        "{tag}"
    );
}

#[test]
fn malformed_input_is_rejected_with_errors_and_the_association_keeps_working() {
    let mut net = Net::established(link(5), 40);
    net.ab.capture = Some(Vec::new());
    assert_still_works(&mut net, "baseline");
    let real = net.ab.capture.take().unwrap();
    let b_tag = vtag_of(&real[0]);
    let now = net.now;
    let b = &mut net.b.assoc;
    let mut rng = Rng::new(99);
    // Random bytes.
    for len in 0..200 {
        let junk = rng.bytes(len);
        assert!(b.handle_packet(&junk, now).is_err());
    }
    // Too short.
    assert_eq!(b.handle_packet(&[0; 15], now), Err(SctpError::TooShort(15)));
    // Wrong checksum.
    let mut bad = real[1].clone();
    bad[8] ^= 1;
    assert_eq!(b.handle_packet(&bad, now), Err(SctpError::Checksum));
    // Wrong verification tag.
    let mut bad = real[1].clone();
    bad[4] ^= 0x80;
    refresh_checksum(&mut bad);
    assert_eq!(b.handle_packet(&bad, now), Err(SctpError::VerificationTag));
    // Truncated chunks.
    for p in real.iter().take(20) {
        for cut in 13..p.len() {
            let mut t = p[..cut].to_vec();
            refresh_checksum(&mut t);
            let _ = b.handle_packet(&t, now);
        }
    }
    // Huge and tiny length fields.
    for len in [0u16, 1, 3, 5, 0xffff, 0x8000] {
        let mut p = Vec::new();
        chunk::put_common_header(&mut p, 5000, 5000, b_tag);
        p.extend_from_slice(&[chunk::DATA, 3]);
        p.extend_from_slice(&len.to_be_bytes());
        p.extend_from_slice(&[0; 20]);
        chunk::finish_packet(&mut p);
        assert!(
            matches!(b.handle_packet(&p, now), Err(SctpError::Malformed { .. })),
            "length {len}"
        );
    }
    // Every chunk type with garbage bodies, framed correctly, except those that end the
    // association by design.
    for kind in 0..=255u8 {
        if matches!(
            kind,
            chunk::ABORT | chunk::SHUTDOWN | chunk::SHUTDOWN_ACK | chunk::SHUTDOWN_COMPLETE
        ) {
            continue;
        }
        for len in [0usize, 1, 3, 4, 7, 12, 16, 17, 40] {
            let body = rng.bytes(len);
            let c = raw_chunk(kind, rng.next() as u8, &body);
            let vtag = if kind == chunk::INIT { 0 } else { b_tag };
            let _ = b.handle_packet(&packet(vtag, &[&c]), now);
        }
    }
    let mut out = Vec::new();
    while b.poll_transmit(now, &mut out) {}
    assert!(!b.is_closed());
    assert_still_works(&mut net, "after malformed input");
}

#[test]
fn a_thousand_mutated_copies_of_real_packets_never_panic() {
    let mut net = Net::established(link(5), 41);
    net.ab.capture = Some(Vec::new());
    net.ba.capture = Some(Vec::new());
    assert_still_works(&mut net, "baseline");
    net.a.assoc.reset_streams(&[11]);
    net.settle();
    let mut real = net.ab.capture.take().unwrap();
    real.extend(net.ba.capture.take().unwrap());
    let mut rng = Rng::new(4242);
    let mut rejected = 0;
    for i in 0..1000 {
        let mut p = real[rng.below(real.len() as u64) as usize].clone();
        match rng.below(4) {
            0 => {
                // Flip a few bytes anywhere.
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(p.len() as u64) as usize;
                    p[at] ^= 1 << rng.below(8);
                }
            }
            1 => {
                // Overwrite a byte in the chunk area with a random value.
                let at = 12 + rng.below((p.len() - 12) as u64) as usize;
                p[at] = rng.next() as u8;
            }
            2 => {
                // Truncate or extend.
                if rng.chance(500) {
                    p.truncate(12 + rng.below((p.len() - 11) as u64) as usize);
                } else {
                    let n = 1 + rng.below(64) as usize;
                    p.extend(rng.bytes(n));
                }
            }
            _ => {
                // Corrupt a 16-bit length-like field.
                let at = 12 + 2 + (rng.below(((p.len() - 14) / 4).max(1) as u64) as usize) * 4;
                if at + 2 <= p.len() {
                    p[at..at + 2].copy_from_slice(&(rng.next() as u16).to_be_bytes());
                }
            }
        }
        if rng.chance(900) {
            refresh_checksum(&mut p);
        }
        // Half go to each side; the one whose tag the packet carries will parse it.
        let target = if i % 2 == 0 {
            &mut net.a.assoc
        } else {
            &mut net.b.assoc
        };
        if target.handle_packet(&p, net.now).is_err() {
            rejected += 1;
        }
        net.pump();
        if i % 100 == 0 {
            net.advance();
        }
    }
    assert!(rejected > 100, "{rejected}");
    // Whatever state the mutations led to, the associations keep running timers and
    // packets without panicking.
    net.run_for(Duration::from_secs(5));
}

#[test]
fn random_chunks_with_valid_framing_never_panic() {
    let mut rng = Rng::new(7);
    for round in 0..20 {
        let mut net = Net::established(link(2), 100 + round);
        for i in 0..30 {
            net.a
                .assoc
                .send(
                    1,
                    PPID_BINARY,
                    i % 2 == 0,
                    Reliability::MaxRetransmits(1),
                    &payload(1, i, 2500),
                    net.now,
                )
                .unwrap();
        }
        net.pump();
        let mut out = Vec::new();
        net.b
            .assoc
            .send(0, PPID_BINARY, true, Reliability::Reliable, b"x", net.now)
            .unwrap();
        net.b.assoc.poll_transmit(net.now, &mut out);
        let a_tag = vtag_of(&out);
        let a_cum = net.a.assoc.tx.cum_ack();
        for _ in 0..300 {
            let kind = [
                chunk::DATA,
                chunk::SACK,
                chunk::FORWARD_TSN,
                chunk::RE_CONFIG,
                chunk::COOKIE_ECHO,
                chunk::INIT_ACK,
            ][rng.below(6) as usize];
            let mut body = Vec::new();
            match kind {
                chunk::SACK => {
                    // Cumulative TSNs near the real one, random gap blocks and duplicates.
                    body.extend_from_slice(
                        &(a_cum.wrapping_add(rng.below(40) as u32).wrapping_sub(5)).to_be_bytes(),
                    );
                    body.extend_from_slice(&(rng.next() as u32).to_be_bytes());
                    let gaps = rng.below(6) as u16;
                    let dups = rng.below(3) as u16;
                    body.extend_from_slice(&gaps.to_be_bytes());
                    body.extend_from_slice(&dups.to_be_bytes());
                    for _ in 0..gaps + dups {
                        body.extend_from_slice(&((rng.below(50)) as u16).to_be_bytes());
                        body.extend_from_slice(&((rng.below(50)) as u16).to_be_bytes());
                    }
                }
                chunk::FORWARD_TSN => {
                    body.extend_from_slice(&(rng.next() as u32).to_be_bytes());
                    for _ in 0..rng.below(4) {
                        body.extend_from_slice(&(rng.below(4) as u16).to_be_bytes());
                        body.extend_from_slice(&(rng.next() as u16).to_be_bytes());
                    }
                }
                chunk::DATA => {
                    body.extend_from_slice(&(rng.next() as u32).to_be_bytes());
                    body.extend_from_slice(&(rng.below(4) as u16).to_be_bytes());
                    body.extend_from_slice(&(rng.below(4) as u16).to_be_bytes());
                    body.extend_from_slice(&53u32.to_be_bytes());
                    let n = 1 + rng.below(100) as usize;
                    body.extend(rng.bytes(n));
                }
                chunk::RE_CONFIG => {
                    let mut param = Vec::new();
                    for _ in 0..rng.below(4) {
                        param.extend_from_slice(&(rng.next() as u32).to_be_bytes());
                    }
                    chunk::put_param(&mut body, 13 + rng.below(6) as u16, &param);
                }
                _ => {
                    let n = rng.below(60) as usize;
                    body.extend(rng.bytes(n));
                }
            }
            let c = raw_chunk(kind, rng.next() as u8 & 0x0f, &body);
            let _ = net.a.assoc.handle_packet(&packet(a_tag, &[&c]), net.now);
            net.pump();
        }
        net.run_for(Duration::from_secs(2));
    }
}

// ---------------------------------------------------------------------------------------
// Throughput

/// Sends `total` bytes in messages of `size` over a lossless zero-delay link and returns
/// the wall-clock rate in MB/s, both ends running in this one thread. Checks every message.
///
/// Measured in release mode (`cargo test --release -p netplay --lib sctp::tests::fifty --
/// --nocapture`) on a 2-core development VM: about 1800 MB/s with 1 KiB messages and about
/// 2500 MB/s with 64 KiB messages.
fn throughput(size: usize, total: usize) -> f64 {
    let cfg = SctpConfig {
        max_buffered_amount: 4 * 1024 * 1024,
        ..SctpConfig::default()
    };
    let mut net = Net::established_with(
        cfg,
        SctpConfig {
            initiate: false,
            ..SctpConfig::default()
        },
        link(0),
        50,
    );
    let data: Vec<Vec<u8>> = (0..16).map(|i| payload(1, i, size)).collect();
    let count = total / size;
    let started = std::time::Instant::now();
    let mut sent = 0;
    let mut checked = 0;
    let mut buf = Vec::new();
    while checked < count {
        while sent < count
            && net
                .a
                .assoc
                .send(
                    1,
                    PPID_BINARY,
                    true,
                    Reliability::Reliable,
                    &data[sent % 16],
                    net.now,
                )
                .is_ok()
        {
            sent += 1;
        }
        let mut moved = false;
        while net.a.assoc.poll_transmit(net.now, &mut buf) {
            net.b.assoc.handle_packet(&buf, net.now).unwrap();
            moved = true;
        }
        while net.b.assoc.poll_transmit(net.now, &mut buf) {
            net.a.assoc.handle_packet(&buf, net.now).unwrap();
            moved = true;
        }
        while let Some(event) = net.b.assoc.poll_event() {
            if let SctpEvent::Message { data: m, .. } = event {
                assert!(m == data[checked % 16], "message {checked} corrupted");
                checked += 1;
            }
        }
        if !moved {
            net.now += MS;
            net.a.assoc.handle_timeout(net.now);
            net.b.assoc.handle_timeout(net.now);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(net.a.assoc.stats().retransmitted_chunks, 0);
    total as f64 / secs / 1e6
}

#[test]
fn fifty_megabytes_in_memory_arrive_intact() {
    let small = throughput(1024, 25 * 1024 * 1024);
    let large = throughput(64 * 1024, 25 * 1024 * 1024);
    println!(
        "in-memory throughput: 1 KiB messages {small:.0} MB/s, 64 KiB messages {large:.0} MB/s"
    );
}

// ---------------------------------------------------------------------------------------
// Loss recovery without the retransmission timer

/// A pair with WebRTC's default timers (rto_min 200 ms) over a 0.15 ms link that loses every
/// `every`th packet in each direction, SACKs included: the loopback loss tests of the peer
/// connection, with a fake clock.
fn every_nth_lost(every: u64, seed: u64) -> Net {
    let cfg = SctpConfig {
        rto_initial: Duration::from_millis(200),
        ..SctpConfig::default()
    };
    let b = SctpConfig {
        initiate: false,
        ..cfg.clone()
    };
    let mut net = Net::established_with(cfg, b, link(0), seed);
    net.ab.cfg.delay = Duration::from_micros(150);
    net.ba.cfg.delay = Duration::from_micros(150);
    let (mut ab, mut ba) = (0, 0);
    net.ab.drop_if = Some(Box::new(move |_| {
        ab += 1;
        ab % every == 0
    }));
    net.ba.drop_if = Some(Box::new(move |_| {
        ba += 1;
        ba % every == 0
    }));
    net
}

/// Sends `count` messages of `size` bytes on stream 1 as fast as the send budget allows and
/// runs until all are acknowledged or abandoned. Returns the simulated time it took.
fn send_through_loss(net: &mut Net, count: u32, size: usize, reliability: Reliability) -> Duration {
    let started = net.now;
    let mut sent = 0;
    let done = net.run(Duration::from_secs(120), |n| {
        while sent < count {
            let data = payload(1, sent, size);
            if n.a
                .assoc
                .send(1, PPID_BINARY, true, reliability, &data, n.now)
                .is_err()
            {
                break;
            }
            sent += 1;
        }
        sent == count && n.a.assoc.total_buffered() == 0
    });
    assert!(done, "stalled: {:?}", net.a.assoc.stats());
    net.now - started
}

/// The TSN of a packet whose first chunk is DATA.
fn first_data_tsn(packet: &[u8]) -> Option<u32> {
    let c = packet.get(12..20)?;
    (c[0] == chunk::DATA).then(|| u32::from_be_bytes([c[4], c[5], c[6], c[7]]))
}

#[test]
fn five_percent_loss_both_ways_is_repaired_without_waiting_for_t3() {
    let mut net = every_nth_lost(20, 60);
    let took = send_through_loss(&mut net, 700, 3000, Reliability::Reliable);
    let stats = net.a.assoc.stats();
    assert!(net.ab.lost > 100 && net.ba.lost > 15, "{stats:?}");
    // Lost SACKs with the window full used to wait for T3 (22 times here, 4.5 s): now a
    // probe makes the peer SACK again, and fast retransmit repairs what it reports.
    assert_eq!(stats.t3_expirations, 0, "{stats:?}");
    assert!(stats.fast_retransmits >= 90, "{stats:?}");
    assert!(stats.tail_loss_probes > 0, "{stats:?}");
    assert!(took < Duration::from_millis(500), "{took:?} {stats:?}");
    assert_eq!(net.b.messages.len(), 700);
    assert!(net
        .b
        .messages
        .iter()
        .enumerate()
        .all(|(i, m)| m.2 == payload(1, i as u32, 3000)));
}

#[test]
fn five_percent_loss_on_max_retransmits_zero_abandons_only_lost_messages() {
    let mut net = every_nth_lost(20, 61);
    let took = send_through_loss(&mut net, 2000, 1000, Reliability::MaxRetransmits(0));
    let stats = net.a.assoc.stats();
    assert_eq!(stats.retransmitted_chunks, 0, "{stats:?}");
    // Each lost message is abandoned on miss indications and skipped with FORWARD TSN; T3
    // is left for a lost last message, which nothing after it can report.
    assert!(stats.t3_expirations <= 1, "{stats:?}");
    assert!(
        stats.abandoned_messages <= net.ab.lost && stats.abandoned_messages >= 90,
        "{} lost, {stats:?}",
        net.ab.lost
    );
    assert_eq!(
        net.b.messages.len() as u64 + stats.abandoned_messages,
        2000,
        "{stats:?}"
    );
    assert!(took < Duration::from_millis(700), "{took:?} {stats:?}");
}

#[test]
fn a_lost_sack_with_the_window_full_is_answered_after_a_tail_loss_probe() {
    let mut net = every_nth_lost(u64::MAX, 62);
    // Warm up: an RTT sample.
    send_through_loss(&mut net, 4, 1000, Reliability::Reliable);
    let mut sacks = 0;
    net.ba.drop_if = Some(Box::new(move |p| {
        if has_chunk(p, chunk::SACK) {
            sacks += 1;
            return sacks == 1;
        }
        false
    }));
    let took = send_through_loss(&mut net, 3, 1000, Reliability::Reliable);
    let stats = net.a.assoc.stats();
    assert_eq!(stats.t3_expirations, 0, "{stats:?}");
    assert_eq!(stats.tail_loss_probes, 1, "{stats:?}");
    // The probe repeats the last chunk, which the peer already has.
    assert_eq!(stats.retransmitted_chunks, 1, "{stats:?}");
    assert_eq!(net.b.assoc.stats().duplicate_chunks_received, 1);
    assert!(took < Duration::from_millis(20), "{took:?}");
}

#[test]
fn a_single_packet_waiting_for_a_delayed_sack_is_not_probed() {
    let mut net = every_nth_lost(u64::MAX, 63);
    send_through_loss(&mut net, 4, 1000, Reliability::Reliable);
    for i in 0..5 {
        send_through_loss(&mut net, 1, 100 + i, Reliability::Reliable);
        net.run_for(Duration::from_millis(300));
    }
    let stats = net.a.assoc.stats();
    assert_eq!(stats.tail_loss_probes, 0, "{stats:?}");
    assert_eq!(stats.retransmitted_chunks, 0, "{stats:?}");
}

#[test]
fn a_lost_fast_retransmission_is_fast_retransmitted_again_once_later_data_is_acked() {
    let cfg = SctpConfig {
        rto_initial: Duration::from_millis(200),
        ..SctpConfig::default()
    };
    let b = SctpConfig {
        initiate: false,
        ..cfg.clone()
    };
    let mut net = Net::established_with(cfg, b, link(10), 64);
    let mut victim = None;
    let mut seen = 0;
    net.ab.drop_if = Some(Box::new(move |p| {
        let Some(tsn) = first_data_tsn(p) else {
            return false;
        };
        let victim = *victim.get_or_insert(tsn.wrapping_add(2));
        if tsn == victim {
            seen += 1;
            // The first transmission and the fast retransmission.
            return seen <= 2;
        }
        false
    }));
    send_through_loss(&mut net, 60, 1000, Reliability::Reliable);
    let stats = net.a.assoc.stats();
    assert_eq!(stats.t3_expirations, 0, "{stats:?}");
    assert_eq!(stats.fast_retransmits, 2, "{stats:?}");
    assert_eq!(stats.retransmitted_chunks, 2, "{stats:?}");
    assert!(net
        .b
        .messages
        .iter()
        .enumerate()
        .all(|(i, m)| m.2 == payload(1, i as u32, 1000)));
}

#[test]
fn the_t3_backoff_is_undone_by_the_next_rtt_measurement() {
    let mut net = Net::established(link(10), 65);
    let mut n = 0;
    net.ab.drop_if = Some(Box::new(move |p| {
        if has_chunk(p, chunk::DATA) {
            n += 1;
            return n == 1;
        }
        false
    }));
    send_through_loss(&mut net, 1, 100, Reliability::Reliable);
    let backed_off = net.a.assoc.stats();
    assert_eq!(backed_off.t3_expirations, 1);
    assert_eq!(backed_off.rto, Duration::from_millis(200), "{backed_off:?}");
    send_through_loss(&mut net, 1, 100, Reliability::Reliable);
    let stats = net.a.assoc.stats();
    assert!(stats.srtt.is_some(), "{stats:?}");
    assert!(stats.rto < Duration::from_millis(100), "{stats:?}");
}
