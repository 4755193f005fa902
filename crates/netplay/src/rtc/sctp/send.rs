//! The sending side of an association: per-stream queues and sequence numbers, fragmentation
//! into DATA chunks, the chunks in flight, SACK processing, congestion control (RFC 9260
//! 7.2), retransmission timing (6.3), tail loss probes (after RFC 8985) and partial
//! reliability (RFC 3758).
//!
//! Chunks in flight live in a deque indexed by TSN (`tsn - front_tsn`), so everything a SACK
//! touches is reached without searching: the cumulative ack pops from the front, gap blocks
//! index directly, and only the part of a gap block not already known to be acked is
//! walked. Chunks marked for retransmission are queued by TSN; counters (bytes in flight,
//! bytes outstanding, chunks marked, chunks acked) are kept up to date on every state change
//! so that nothing is ever recounted.
//!
//! TSNs are kept as 64-bit numbers that never wrap; the wire carries their low 32 bits.

use crate::time::{Duration, Instant};
use std::collections::VecDeque;
use std::sync::Arc;

use super::chunk::{
    padded, put_data, put_forward_tsn, DATA_HEADER_LEN, FLAG_BEGIN, FLAG_END, FLAG_IMMEDIATE,
    FLAG_UNORDERED,
};
use super::{Reliability, SendError};

/// A fragment smaller than this is not started at the end of a packet that already holds
/// something; the next packet gets a full-size one instead.
const MIN_FRAGMENT: usize = 128;

/// Miss indications that trigger a fast retransmit (RFC 9260 7.2.4).
const FAST_RETRANSMIT_MISSES: u8 = 3;

/// Lower bound of the tail loss probe timeout.
const PTO_MIN: Duration = Duration::from_millis(10);

/// What the probe timeout allows for a peer that delays its SACK (RFC 9260 6.2: 200 ms is
/// usual) when only one packet's worth is in flight.
const PEER_SACK_DELAY: Duration = Duration::from_millis(200);

/// The TSN nearest to `near` whose low 32 bits are `tsn`.
pub(super) fn unwrap_tsn(near: u64, tsn: u32) -> u64 {
    let diff = i64::from(tsn.wrapping_sub(near as u32) as i32);
    (near as i64 + diff) as u64
}

/// A message waiting in its stream's queue, stored once and shared by its fragments.
#[derive(Debug)]
struct OutMessage {
    data: Arc<[u8]>,
    ppid: u32,
    ordered: bool,
    max_rtx: Option<u16>,
    /// A partially reliable message's lifetime, which starts at the first transmit pass
    /// after it was queued ([`Sender::stamp`]).
    lifetime: Option<Duration>,
    expires: Option<Instant>,
}

impl OutMessage {
    fn expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|t| t <= now)
    }
}

/// Per-stream sending state.
#[derive(Debug, Default)]
struct StreamTx {
    next_ssn: u16,
    queue: VecDeque<OutMessage>,
    /// How many messages at the back of `queue` have a lifetime that has not started.
    unstamped: usize,
    /// Bytes queued plus bytes in flight and not yet acknowledged.
    buffered: usize,
    /// Being reset: `send` refuses new messages.
    resetting: bool,
}

/// The message being cut into fragments. Fragments of one message take consecutive TSNs, so
/// it is finished before another message starts.
#[derive(Debug)]
struct Current {
    stream: u16,
    ssn: u16,
    msg: OutMessage,
    offset: usize,
    first_tsn: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Sent, counted in flight.
    Outstanding,
    /// Marked for retransmission (and queued in `rtx`), not counted in flight.
    Retransmit,
    /// Acknowledged by a gap block; kept until the cumulative ack passes it.
    Acked,
    /// Given up (RFC 3758); kept until the cumulative ack passes it.
    Abandoned,
}

/// A DATA chunk that has a TSN: a range of its message's buffer.
#[derive(Debug)]
struct Sent {
    data: Arc<[u8]>,
    offset: u32,
    len: u32,
    ppid: u32,
    stream: u16,
    ssn: u16,
    flags: u8,
    state: ChunkState,
    /// Transmissions so far.
    nsent: u16,
    /// Miss indications since the last transmission (RFC 9260 7.2.4).
    misses: u8,
    /// `next_tsn` right after the last transmission: a SACK that newly acknowledges a TSN at
    /// or above it proves that a packet sent after this chunk arrived.
    sent_before: u64,
    max_rtx: Option<u16>,
    expires: Option<Instant>,
}

impl Sent {
    fn payload(&self) -> &[u8] {
        let start = self.offset as usize;
        &self.data[start..start + self.len as usize]
    }
}

/// Sender counters reported in [`SctpStats`](super::SctpStats).
#[derive(Debug, Default, Clone)]
pub(super) struct SendStats {
    pub(super) data_chunks_sent: u64,
    pub(super) retransmitted_chunks: u64,
    pub(super) fast_retransmits: u64,
    pub(super) t3_expirations: u64,
    pub(super) abandoned_messages: u64,
    pub(super) forward_tsns_sent: u64,
    pub(super) tail_loss_probes: u64,
}

/// What a SACK changed, for the association.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct SackOutcome {
    /// Some DATA was acknowledged for the first time.
    pub(super) newly_acked: bool,
}

/// The sending side. See the module documentation.
#[derive(Debug)]
pub(super) struct Sender {
    mtu: usize,
    /// The send budget (queued plus unacknowledged bytes).
    max_buffered: usize,
    streams: Vec<StreamTx>,
    /// Streams with queued messages, served round-robin one message at a time.
    active: VecDeque<u16>,
    current: Option<Current>,
    total_buffered: usize,
    inflight: VecDeque<Sent>,
    /// TSN of `inflight[0]`; the cumulative ack point is `front_tsn - 1`.
    front_tsn: u64,
    next_tsn: u64,
    /// TSNs marked for retransmission, oldest mark first; entries whose chunk was acked or
    /// abandoned meanwhile are skipped when reached.
    rtx: VecDeque<u64>,
    /// Chunks in state `Retransmit`.
    marked: usize,
    /// Chunks in state `Acked`.
    acked: usize,
    /// Bytes in state `Outstanding`.
    flight: usize,
    /// Bytes in states `Outstanding` and `Retransmit` (sent, not acknowledged).
    outstanding: usize,
    cwnd: usize,
    ssthresh: usize,
    partial_bytes_acked: usize,
    /// In fast recovery until the cumulative ack reaches this TSN.
    recovery: Option<u64>,
    /// One packet of retransmissions may ignore cwnd (fast retransmit).
    fast_rtx_packet: bool,
    peer_arwnd: u32,
    /// Gap-acked ranges of the last SACK, above its cumulative TSN.
    known_gaps: Vec<(u64, u64)>,
    scratch: Vec<(u64, u64)>,
    /// RFC 3758 Advanced.Peer.Ack.Point.
    adv_point: u64,
    /// Everything in (`adv_point`, `adv_scanned`] is `Acked`.
    adv_scanned: u64,
    forward_tsn_due: bool,
    fwd_pairs: Vec<(u16, u16)>,
    /// One chunk timed per round trip (Karn: only chunks sent once).
    rtt_probe: Option<(u64, Instant)>,
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
    rto_min: Duration,
    rto_max: Duration,
    t3: Option<Instant>,
    /// The tail loss probe timer (see [`Sender::on_pto`]).
    pto: Option<Instant>,
    /// A probe may be sent: no probe since a SACK last acknowledged new data.
    probe_allowed: bool,
    /// The chunk to send again as a probe.
    probe_tsn: Option<u64>,
    /// Send a FORWARD TSN at the cumulative ack point as a probe (RFC 3758 3.6: the peer
    /// answers an outdated FORWARD TSN with a SACK).
    forward_tsn_probe: bool,
    last_send: Option<Instant>,
    sack_since_t3: bool,
    peer_forward_tsn: bool,
    outbound_streams: u16,
    /// Streams with messages whose lifetime has not started.
    unstamped: Vec<u16>,
    pub(super) stats: SendStats,
}

impl Sender {
    pub(super) fn new(
        mtu: usize,
        max_buffered: usize,
        initial_tsn: u32,
        rto_initial: Duration,
        rto_min: Duration,
        rto_max: Duration,
    ) -> Sender {
        let tsn = (1u64 << 32) + u64::from(initial_tsn);
        Sender {
            mtu,
            max_buffered,
            streams: Vec::new(),
            active: VecDeque::new(),
            current: None,
            total_buffered: 0,
            inflight: VecDeque::new(),
            front_tsn: tsn,
            next_tsn: tsn,
            rtx: VecDeque::new(),
            marked: 0,
            acked: 0,
            flight: 0,
            outstanding: 0,
            cwnd: initial_cwnd(mtu),
            ssthresh: usize::MAX,
            partial_bytes_acked: 0,
            recovery: None,
            fast_rtx_packet: false,
            peer_arwnd: 0,
            known_gaps: Vec::new(),
            scratch: Vec::new(),
            adv_point: tsn - 1,
            adv_scanned: tsn - 1,
            forward_tsn_due: false,
            fwd_pairs: Vec::new(),
            rtt_probe: None,
            srtt: None,
            rttvar: Duration::ZERO,
            rto: rto_initial.clamp(rto_min, rto_max),
            rto_min,
            rto_max,
            t3: None,
            pto: None,
            probe_allowed: true,
            probe_tsn: None,
            forward_tsn_probe: false,
            last_send: None,
            sack_since_t3: false,
            peer_forward_tsn: false,
            outbound_streams: u16::MAX,
            unstamped: Vec::new(),
            stats: SendStats::default(),
        }
    }

    /// Takes the peer's parameters from the handshake (RFC 9260 7.2.1: ssthresh starts at the
    /// peer's window).
    pub(super) fn start(&mut self, peer_arwnd: u32, outbound_streams: u16, peer_forward_tsn: bool) {
        self.peer_arwnd = peer_arwnd;
        self.ssthresh = (peer_arwnd as usize).max(4 * self.mtu);
        self.outbound_streams = outbound_streams;
        self.peer_forward_tsn = peer_forward_tsn;
    }

    pub(super) fn outbound_streams(&self) -> u16 {
        self.outbound_streams
    }

    fn stream_mut(&mut self, stream: u16) -> &mut StreamTx {
        let i = usize::from(stream);
        if i >= self.streams.len() {
            self.streams.resize_with(i + 1, StreamTx::default);
        }
        &mut self.streams[i]
    }

    /// Queues a message (the checks that depend on the association's state are done by the
    /// caller).
    pub(super) fn queue(
        &mut self,
        stream: u16,
        ppid: u32,
        ordered: bool,
        reliability: Reliability,
        data: &[u8],
        now: Instant,
    ) -> Result<(), SendError> {
        if self
            .streams
            .get(usize::from(stream))
            .is_some_and(|s| s.resetting)
        {
            return Err(SendError::StreamResetting(stream));
        }
        if self.total_buffered + data.len() > self.max_buffered {
            return Err(SendError::BufferFull);
        }
        let _ = now;
        let (max_rtx, lifetime) = match reliability {
            Reliability::Reliable => (None, None),
            Reliability::MaxRetransmits(n) => (Some(n), None),
            Reliability::MaxLifetime(d) => (None, Some(d)),
        };
        let msg = OutMessage {
            data: Arc::from(data),
            ppid,
            ordered,
            max_rtx,
            lifetime,
            expires: None,
        };
        let len = data.len();
        let s = self.stream_mut(stream);
        let was_idle = s.queue.is_empty();
        s.queue.push_back(msg);
        if lifetime.is_some() {
            s.unstamped += 1;
            if s.unstamped == 1 {
                self.unstamped.push(stream);
            }
        }
        let s = self.stream_mut(stream);
        s.buffered += len;
        self.total_buffered += len;
        // A stream is in `active` exactly while its queue is not empty.
        if was_idle {
            self.active.push_back(stream);
        }
        Ok(())
    }

    /// Starts the lifetime of the messages queued since the last pass: a message sent
    /// between two polls lives its whole lifetime from the poll that can first send it,
    /// however long ago the time given last was (a lifetime of 1 ms is Godot's default).
    pub(super) fn stamp(&mut self, now: Instant) {
        for stream in std::mem::take(&mut self.unstamped) {
            let s = self.stream_mut(stream);
            let n = std::mem::take(&mut s.unstamped).min(s.queue.len());
            for msg in s.queue.iter_mut().rev().take(n) {
                if msg.expires.is_none() {
                    // A lifetime too long to represent is no lifetime.
                    msg.expires = msg.lifetime.and_then(|d| now.checked_add(d));
                }
            }
        }
    }

    pub(super) fn buffered(&self, stream: u16) -> usize {
        self.streams
            .get(usize::from(stream))
            .map_or(0, |s| s.buffered)
    }

    pub(super) fn total_buffered(&self) -> usize {
        self.total_buffered
    }

    /// Whether `stream` still has messages that have not all been given TSNs.
    pub(super) fn stream_has_queued(&self, stream: u16) -> bool {
        self.current.as_ref().is_some_and(|c| c.stream == stream)
            || self
                .streams
                .get(usize::from(stream))
                .is_some_and(|s| !s.queue.is_empty())
    }

    pub(super) fn set_resetting(&mut self, stream: u16, resetting: bool) {
        self.stream_mut(stream).resetting = resetting;
    }

    pub(super) fn is_resetting(&self, stream: u16) -> bool {
        self.streams
            .get(usize::from(stream))
            .is_some_and(|s| s.resetting)
    }

    /// Outgoing SSN reset performed: the stream starts again at SSN 0.
    pub(super) fn reset_ssn(&mut self, stream: u16) {
        let s = self.stream_mut(stream);
        s.next_ssn = 0;
        s.resetting = false;
    }

    /// The last TSN given to a chunk (RFC 6525 "Sender's Last Assigned TSN").
    pub(super) fn last_assigned_tsn(&self) -> u32 {
        (self.next_tsn - 1) as u32
    }

    /// The cumulative ack point (the highest TSN acknowledged with everything before it).
    #[cfg(test)]
    pub(super) fn cum_ack(&self) -> u32 {
        (self.front_tsn - 1) as u32
    }

    /// Nothing queued and nothing in flight.
    pub(super) fn is_drained(&self) -> bool {
        self.current.is_none() && self.active.is_empty() && self.inflight.is_empty()
    }

    pub(super) fn t3(&self) -> Option<Instant> {
        self.t3
    }

    pub(super) fn pto(&self) -> Option<Instant> {
        self.pto
    }

    pub(super) fn rto(&self) -> Duration {
        self.rto
    }

    pub(super) fn forward_tsn_due(&self) -> bool {
        self.forward_tsn_due || self.forward_tsn_probe
    }

    /// The peer's window as last advertised.
    pub(super) fn peer_arwnd(&self) -> u32 {
        self.peer_arwnd
    }

    pub(super) fn peer_rwnd(&self) -> usize {
        (self.peer_arwnd as usize).saturating_sub(self.outstanding)
    }

    /// (srtt, cwnd, ssthresh, flight) for statistics.
    pub(super) fn congestion(&self) -> (Option<Duration>, usize, usize, usize) {
        (self.srtt, self.cwnd, self.ssthresh, self.flight)
    }

    /// Whether a DATA chunk could go out now (used to bundle a delayed SACK with it).
    pub(super) fn has_data_to_send(&self) -> bool {
        if self.probe_tsn.is_some() {
            return true;
        }
        if self.marked > 0 {
            return self.flight < self.cwnd || self.fast_rtx_packet;
        }
        (self.current.is_some() || !self.active.is_empty())
            && self.flight < self.cwnd
            && (self.peer_rwnd() > 0 || self.outstanding == 0)
    }

    fn index(&self, tsn: u64) -> Option<usize> {
        let i = tsn.checked_sub(self.front_tsn)?;
        (i < self.inflight.len() as u64).then_some(i as usize)
    }

    /// Appends DATA chunks to the packet in `out` while they fit in `max_len` bytes and the
    /// windows allow: retransmissions first, then new data. Returns how many were written.
    pub(super) fn write_data(&mut self, out: &mut Vec<u8>, max_len: usize, now: Instant) -> usize {
        let mut written = 0;
        if let Some(tsn) = self.probe_tsn {
            written += self.write_probe(tsn, out, max_len, now);
        }
        while self.marked > 0 && (self.flight < self.cwnd || self.fast_rtx_packet) {
            let Some(&tsn) = self.rtx.front() else {
                break;
            };
            let Some(i) = self
                .index(tsn)
                .filter(|&i| self.inflight[i].state == ChunkState::Retransmit)
            else {
                self.rtx.pop_front();
                continue;
            };
            if self.should_abandon(i, now) {
                self.rtx.pop_front();
                self.abandon_message(i, now);
                continue;
            }
            let e = &mut self.inflight[i];
            if out.len() + DATA_HEADER_LEN + padded(e.len as usize) > max_len {
                break;
            }
            self.rtx.pop_front();
            put_data(
                out,
                e.flags,
                tsn as u32,
                e.stream,
                e.ssn,
                e.ppid,
                e.payload(),
            );
            e.state = ChunkState::Outstanding;
            e.nsent = e.nsent.saturating_add(1);
            e.misses = 0;
            e.sent_before = self.next_tsn;
            self.flight += e.len as usize;
            self.marked -= 1;
            self.stats.retransmitted_chunks += 1;
            if self.rtt_probe.is_some_and(|(t, _)| t == tsn) {
                self.rtt_probe = None;
            }
            if tsn == self.front_tsn {
                // 7.2.4: retransmitting the first outstanding chunk restarts T3.
                self.t3 = Some(now + self.rto);
            }
            written += 1;
        }
        if written > 0 || self.marked == 0 {
            self.fast_rtx_packet = false;
        }
        if self.marked == 0 {
            // What is left are marks of chunks acked or abandoned since.
            self.rtx.clear();
            written += self.write_new_data(out, max_len, now);
        }
        if written > 0 {
            if self.t3.is_none() {
                self.t3 = Some(now + self.rto);
            }
            self.last_send = Some(now);
            self.arm_pto(now);
        }
        written
    }

    /// Sends the chunk `tsn` again as a tail loss probe, with the I bit (RFC 7053) so that
    /// the peer answers at once, if it is still outstanding and fits. Returns how many
    /// chunks it wrote (0 or 1).
    fn write_probe(&mut self, tsn: u64, out: &mut Vec<u8>, max_len: usize, now: Instant) -> usize {
        let Some(i) = self
            .index(tsn)
            .filter(|&i| self.inflight[i].state == ChunkState::Outstanding)
        else {
            self.probe_tsn = None;
            return 0;
        };
        let e = &mut self.inflight[i];
        if out.len() + DATA_HEADER_LEN + padded(e.len as usize) > max_len {
            return 0;
        }
        self.probe_tsn = None;
        put_data(
            out,
            e.flags | FLAG_IMMEDIATE,
            tsn as u32,
            e.stream,
            e.ssn,
            e.ppid,
            e.payload(),
        );
        // Still counted in flight: it was never marked lost.
        e.nsent = e.nsent.saturating_add(1);
        e.misses = 0;
        e.sent_before = self.next_tsn;
        self.stats.retransmitted_chunks += 1;
        if self.rtt_probe.is_some_and(|(t, _)| t == tsn) {
            self.rtt_probe = None;
        }
        if tsn == self.front_tsn {
            self.t3 = Some(now + self.rto);
        }
        1
    }

    /// Starts the tail loss probe timer, if a probe is allowed and would come before T3.
    ///
    /// RFC 9260 leaves a sender whose last SACK was lost (or whose last packets were) with
    /// nothing but T3: with the window full nothing else makes the peer SACK again. T3 is
    /// at least `rto_min`, hundreds of round trips on a short path, and it collapses cwnd to
    /// one packet. Like TCP's tail loss probe (RFC 8985 7), the sender instead sends one
    /// packet that makes the peer SACK after two smoothed round trips without a SACK; what
    /// that SACK reports is then repaired by fast retransmit or FORWARD TSN, and T3 stays
    /// the fallback when the probe is lost too.
    fn arm_pto(&mut self, now: Instant) {
        self.pto = None;
        let (Some(t3), Some(srtt)) = (self.t3, self.srtt) else {
            return;
        };
        if !self.probe_allowed {
            return;
        }
        let mut timeout = (srtt * 2).max(PTO_MIN);
        if self.flight <= self.mtu && self.known_gaps.is_empty() {
            // A single packet may be waiting for the peer's delayed SACK (a peer that
            // reported a gap SACKs every packet at once, RFC 9260 6.7).
            timeout += PEER_SACK_DELAY;
        }
        let at = now + timeout;
        if at < t3 {
            self.pto = Some(at);
        }
    }

    /// The tail loss probe timer expired: chooses what to send so that the peer SACKs at
    /// once. A FORWARD TSN that is due (the last one may be what was lost); else one packet
    /// of the chunks marked for retransmission, whatever cwnd says (as for a fast
    /// retransmit); else the highest outstanding chunk again, if its reliability allows
    /// another transmission; else a FORWARD TSN at the cumulative ack point.
    pub(super) fn on_pto(&mut self, now: Instant) {
        self.pto = None;
        if self.t3.is_none() {
            return;
        }
        self.probe_allowed = false;
        self.stats.tail_loss_probes += 1;
        if self.adv_point > self.front_tsn - 1 {
            self.forward_tsn_due = true;
            return;
        }
        if self.marked > 0 {
            self.fast_rtx_packet = true;
            return;
        }
        let last = (0..self.inflight.len())
            .rev()
            .find(|&i| self.inflight[i].state == ChunkState::Outstanding);
        match last {
            Some(i) if !self.should_abandon(i, now) => {
                self.probe_tsn = Some(self.front_tsn + i as u64);
            }
            _ => self.forward_tsn_probe = self.peer_forward_tsn,
        }
    }

    fn write_new_data(&mut self, out: &mut Vec<u8>, max_len: usize, now: Instant) -> usize {
        if self.outstanding == 0 {
            self.decay_idle_cwnd(now);
        }
        let mut written = 0;
        while self.flight < self.cwnd {
            let room = max_len.saturating_sub(out.len());
            if room < DATA_HEADER_LEN + 4 {
                break;
            }
            let max_payload = (room - DATA_HEADER_LEN) & !3;
            if !self.prepare_current(now) {
                break;
            }
            let peer_rwnd = self.peer_rwnd();
            let Some(cur) = self.current.as_mut() else {
                break;
            };
            let remaining = cur.msg.data.len() - cur.offset;
            let len = remaining.min(max_payload);
            if len < remaining && len < MIN_FRAGMENT && out.len() > super::chunk::COMMON_HEADER_LEN
            {
                break;
            }
            // The peer's window (RFC 9260 6.1 A); with nothing outstanding one chunk may
            // probe a closed window.
            if len > peer_rwnd && self.outstanding > 0 {
                break;
            }
            let mut flags = 0;
            if cur.offset == 0 {
                flags |= FLAG_BEGIN;
            }
            if len == remaining {
                flags |= FLAG_END;
            }
            if !cur.msg.ordered {
                flags |= FLAG_UNORDERED;
            }
            let (max_rtx, expires) = if self.peer_forward_tsn {
                (cur.msg.max_rtx, cur.msg.expires)
            } else {
                (None, None)
            };
            let tsn = self.next_tsn;
            let sent = Sent {
                data: Arc::clone(&cur.msg.data),
                offset: cur.offset as u32,
                len: len as u32,
                ppid: cur.msg.ppid,
                stream: cur.stream,
                ssn: cur.ssn,
                flags,
                state: ChunkState::Outstanding,
                nsent: 1,
                misses: 0,
                sent_before: tsn + 1,
                max_rtx,
                expires,
            };
            cur.offset += len;
            self.next_tsn += 1;
            put_data(
                out,
                flags,
                tsn as u32,
                sent.stream,
                sent.ssn,
                sent.ppid,
                sent.payload(),
            );
            self.inflight.push_back(sent);
            self.flight += len;
            self.outstanding += len;
            if flags & FLAG_END != 0 {
                self.current = None;
            }
            if self.rtt_probe.is_none() {
                self.rtt_probe = Some((tsn, now));
            }
            self.stats.data_chunks_sent += 1;
            written += 1;
        }
        written
    }

    /// Makes sure `current` holds a message with bytes left to send, taking the next one
    /// round-robin over the streams and dropping messages whose lifetime ended in the queue.
    fn prepare_current(&mut self, now: Instant) -> bool {
        if let Some(cur) = &self.current {
            if !cur.msg.expired(now) {
                return true;
            }
            if cur.offset == 0 {
                self.drop_current();
            } else if self.peer_forward_tsn {
                // Expired part-way: abandon what was sent and the rest.
                self.abandon_current(now);
            } else {
                return true;
            }
        }
        while let Some(stream) = self.active.pop_front() {
            let outbound = self.outbound_streams;
            let s = self.stream_mut(stream);
            let Some(msg) = s.queue.pop_front() else {
                continue;
            };
            let has_more = !s.queue.is_empty();
            let len = msg.data.len();
            if msg.expired(now) || stream >= outbound {
                if stream >= outbound {
                    tracing::warn!(
                        stream,
                        outbound,
                        "SCTP message dropped: stream beyond the negotiated count"
                    );
                }
                s.buffered -= len;
                self.total_buffered -= len;
                if has_more {
                    self.active.push_front(stream);
                }
                continue;
            }
            let ssn = if msg.ordered {
                let ssn = s.next_ssn;
                s.next_ssn = ssn.wrapping_add(1);
                ssn
            } else {
                0
            };
            if has_more {
                self.active.push_back(stream);
            }
            self.current = Some(Current {
                stream,
                ssn,
                msg,
                offset: 0,
                first_tsn: self.next_tsn,
            });
            return true;
        }
        false
    }

    /// Drops the unsent rest of the current message from the buffered counts. A message
    /// that never got a TSN gives its SSN back: the peer never heard of it, and no later
    /// message of its stream has an SSN yet.
    fn drop_current(&mut self) {
        if let Some(cur) = self.current.take() {
            let rest = cur.msg.data.len() - cur.offset;
            if let Some(s) = self.streams.get_mut(usize::from(cur.stream)) {
                s.buffered -= rest;
                if cur.offset == 0 && cur.msg.ordered {
                    s.next_ssn = cur.ssn;
                }
            }
            self.total_buffered -= rest;
        }
    }

    /// RFC 9260 7.2.1: after an idle RTO, cwnd halves per RTO, down to 4 MTU.
    fn decay_idle_cwnd(&mut self, now: Instant) {
        let Some(last) = self.last_send else {
            return;
        };
        let idle = now.saturating_duration_since(last);
        let mut periods = 0;
        let mut t = self.rto;
        while idle > t && periods < 16 {
            periods += 1;
            t += self.rto;
        }
        for _ in 0..periods {
            if self.cwnd <= 4 * self.mtu {
                break;
            }
            self.cwnd = (self.cwnd / 2).max(4 * self.mtu);
        }
        if periods > 0 {
            self.last_send = Some(now);
        }
    }

    fn should_abandon(&self, i: usize, now: Instant) -> bool {
        let e = &self.inflight[i];
        e.max_rtx.is_some_and(|m| e.nsent > m) || e.expires.is_some_and(|t| t <= now)
    }

    /// Abandons the message that the chunk at index `i` belongs to: all its fragments in
    /// flight, and its unsent rest if it is still being fragmented.
    fn abandon_message(&mut self, i: usize, now: Instant) {
        let mut lo = i;
        while lo > 0 && self.inflight[lo].flags & FLAG_BEGIN == 0 {
            lo -= 1;
        }
        let mut hi = i;
        while hi + 1 < self.inflight.len() && self.inflight[hi].flags & FLAG_END == 0 {
            hi += 1;
        }
        for j in lo..=hi {
            self.abandon_chunk(j);
        }
        if self.inflight[hi].flags & FLAG_END == 0 {
            let hi_tsn = self.front_tsn + hi as u64;
            if self.current.as_ref().is_some_and(|c| c.first_tsn <= hi_tsn) {
                self.abandon_current_rest(now);
            }
        }
        self.stats.abandoned_messages += 1;
        self.advance_ack_point();
    }

    /// Abandons the message being fragmented: its fragments still in flight and its rest.
    fn abandon_current(&mut self, now: Instant) {
        let Some(cur) = &self.current else {
            return;
        };
        for tsn in cur.first_tsn.max(self.front_tsn)..self.next_tsn {
            if let Some(i) = self.index(tsn) {
                self.abandon_chunk(i);
            }
        }
        self.abandon_current_rest(now);
        self.stats.abandoned_messages += 1;
        self.advance_ack_point();
    }

    /// Drops the unsent rest of a message that has fragments on the wire, and gives that
    /// rest one TSN that is never sent, already abandoned. The peer may hold every fragment
    /// that was sent; only a FORWARD TSN over a TSN it lacks tells it to drop them and skip
    /// the message's SSN.
    fn abandon_current_rest(&mut self, now: Instant) {
        let Some(cur) = &self.current else {
            return;
        };
        let flags = FLAG_END | if cur.msg.ordered { 0 } else { FLAG_UNORDERED };
        let placeholder = Sent {
            data: Arc::clone(&cur.msg.data),
            offset: cur.msg.data.len() as u32,
            len: 0,
            ppid: cur.msg.ppid,
            stream: cur.stream,
            ssn: cur.ssn,
            flags,
            state: ChunkState::Abandoned,
            nsent: 0,
            misses: 0,
            sent_before: self.next_tsn + 1,
            max_rtx: None,
            expires: None,
        };
        self.drop_current();
        self.inflight.push_back(placeholder);
        self.next_tsn += 1;
        if self.t3.is_none() {
            self.t3 = Some(now + self.rto);
        }
    }

    fn abandon_chunk(&mut self, j: usize) {
        let e = &mut self.inflight[j];
        let len = e.len as usize;
        match e.state {
            ChunkState::Outstanding => {
                self.flight -= len;
                self.outstanding -= len;
            }
            ChunkState::Retransmit => {
                self.outstanding -= len;
                self.marked -= 1;
            }
            ChunkState::Acked | ChunkState::Abandoned => return,
        }
        e.state = ChunkState::Abandoned;
        let stream = e.stream;
        if let Some(s) = self.streams.get_mut(usize::from(stream)) {
            s.buffered -= len;
        }
        self.total_buffered -= len;
    }

    /// RFC 3758 3.5 C1/C2: moves the Advanced.Peer.Ack.Point over abandoned chunks (and
    /// over chunks the peer already has, when an abandoned one follows them).
    fn advance_ack_point(&mut self) {
        let cum = self.front_tsn - 1;
        self.adv_point = self.adv_point.max(cum);
        self.adv_scanned = self.adv_scanned.max(self.adv_point);
        while let Some(i) = self.index(self.adv_scanned + 1) {
            match self.inflight[i].state {
                ChunkState::Abandoned => {
                    self.adv_scanned += 1;
                    self.adv_point = self.adv_scanned;
                }
                ChunkState::Acked => self.adv_scanned += 1,
                _ => break,
            }
        }
        if self.adv_point > cum {
            self.forward_tsn_due = true;
        }
    }

    /// Appends a FORWARD TSN chunk if one is due and fits. Returns whether it did.
    pub(super) fn write_forward_tsn(&mut self, out: &mut Vec<u8>, max_len: usize) -> bool {
        let cum = self.front_tsn - 1;
        let room = max_len.saturating_sub(out.len());
        if self.adv_point <= cum {
            self.forward_tsn_due = false;
            if self.forward_tsn_probe && room >= 8 {
                self.forward_tsn_probe = false;
                put_forward_tsn(out, cum as u32, &[]);
                self.stats.forward_tsns_sent += 1;
                return true;
            }
            return false;
        }
        if room < 12 {
            return false;
        }
        let max_pairs = (room - 8) / 4;
        let mut pairs = std::mem::take(&mut self.fwd_pairs);
        pairs.clear();
        let mut new_cum = self.adv_point;
        for tsn in self.front_tsn..=self.adv_point {
            let Some(i) = self.index(tsn) else {
                break;
            };
            let e = &self.inflight[i];
            if e.state != ChunkState::Abandoned || e.flags & FLAG_UNORDERED != 0 {
                continue;
            }
            if let Some(p) = pairs.iter_mut().find(|p| p.0 == e.stream) {
                if e.ssn.wrapping_sub(p.1) < 0x8000 {
                    p.1 = e.ssn;
                }
            } else if pairs.len() < max_pairs {
                pairs.push((e.stream, e.ssn));
            } else {
                new_cum = tsn - 1;
                break;
            }
        }
        let wrote = new_cum > cum;
        if wrote {
            put_forward_tsn(out, new_cum as u32, &pairs);
            self.stats.forward_tsns_sent += 1;
            self.forward_tsn_due = false;
            self.forward_tsn_probe = false;
        }
        self.fwd_pairs = pairs;
        wrote
    }

    /// Processes a SACK (RFC 9260 6.2.1, 7.2; RFC 3758 3.5). `gaps` are the gap ack blocks;
    /// `has_gap_info` is false for the cumulative ack of a SHUTDOWN, which says nothing about
    /// gap-acked chunks.
    pub(super) fn on_sack(
        &mut self,
        cum_tsn: u32,
        a_rwnd: u32,
        gaps: impl Iterator<Item = (u16, u16)>,
        has_gap_info: bool,
        now: Instant,
    ) -> SackOutcome {
        let mut outcome = SackOutcome::default();
        let old_cum = self.front_tsn - 1;
        let cum = unwrap_tsn(old_cum, cum_tsn);
        if cum < old_cum {
            // An old SACK, overtaken by a newer one (6.2.1 D i).
            return outcome;
        }
        if cum >= self.next_tsn {
            tracing::debug!("SACK acknowledges a TSN never sent; ignored");
            return outcome;
        }
        self.sack_since_t3 = true;
        self.peer_arwnd = a_rwnd;
        let flight_before = self.flight;
        let mut newly_acked_bytes = 0usize;
        let mut htna: Option<u64> = None;
        let mut probe_acked = false;

        // Cumulative ack: pop from the front.
        while self.front_tsn <= cum {
            let Some(e) = self.inflight.pop_front() else {
                break;
            };
            let tsn = self.front_tsn;
            self.front_tsn += 1;
            let len = e.len as usize;
            match e.state {
                ChunkState::Outstanding | ChunkState::Retransmit => {
                    if e.state == ChunkState::Outstanding {
                        self.flight -= len;
                    } else {
                        self.marked -= 1;
                    }
                    self.outstanding -= len;
                    newly_acked_bytes += len;
                    htna = Some(tsn);
                    if self.rtt_probe.is_some_and(|(t, _)| t == tsn) && e.nsent == 1 {
                        probe_acked = true;
                    }
                }
                ChunkState::Acked => self.acked -= 1,
                ChunkState::Abandoned => continue,
            }
            if let Some(s) = self.streams.get_mut(usize::from(e.stream)) {
                s.buffered -= len;
            }
            self.total_buffered -= len;
        }
        let cum_advanced = cum > old_cum;

        if has_gap_info {
            // The gap blocks as TSN ranges, sorted, within what was sent.
            let mut new_gaps = std::mem::take(&mut self.scratch);
            new_gaps.clear();
            let last_sent = self.next_tsn - 1;
            for (start, end) in gaps {
                if start == 0 || start > end {
                    continue;
                }
                let lo = cum + u64::from(start);
                let hi = (cum + u64::from(end)).min(last_sent);
                if lo > hi || new_gaps.last().is_some_and(|&(_, h)| lo <= h) {
                    continue;
                }
                new_gaps.push((lo, hi));
            }
            let mut old_gaps = std::mem::take(&mut self.known_gaps);
            old_gaps.retain_mut(|r| {
                r.0 = r.0.max(cum + 1);
                r.0 <= r.1
            });
            // Newly gap-acked chunks: the new blocks minus what the last SACK reported.
            diff_ranges(&new_gaps, &old_gaps, |lo, hi| {
                for tsn in lo..=hi {
                    let Some(i) = self.index(tsn) else {
                        continue;
                    };
                    let e = &mut self.inflight[i];
                    let len = e.len as usize;
                    match e.state {
                        ChunkState::Outstanding => self.flight -= len,
                        ChunkState::Retransmit => self.marked -= 1,
                        ChunkState::Acked | ChunkState::Abandoned => continue,
                    }
                    e.state = ChunkState::Acked;
                    self.acked += 1;
                    self.outstanding -= len;
                    newly_acked_bytes += len;
                    htna = Some(htna.map_or(tsn, |h| h.max(tsn)));
                    if self.rtt_probe.is_some_and(|(t, _)| t == tsn) && e.nsent == 1 {
                        probe_acked = true;
                    }
                }
            });
            // Reneged chunks (reported before, not now): the peer dropped them; send again.
            let mut reneged = 0usize;
            diff_ranges(&old_gaps, &new_gaps, |lo, hi| {
                for tsn in lo..=hi {
                    let Some(i) = self.index(tsn) else {
                        continue;
                    };
                    let e = &mut self.inflight[i];
                    if e.state != ChunkState::Acked {
                        continue;
                    }
                    e.state = ChunkState::Retransmit;
                    self.acked -= 1;
                    self.marked += 1;
                    self.outstanding += e.len as usize;
                    self.rtx.push_back(tsn);
                    reneged += 1;
                }
            });
            if reneged > 0 {
                tracing::debug!(reneged, "SCTP peer reneged on gap-acked chunks");
            }
            self.scratch = old_gaps;
            self.known_gaps = new_gaps;
        }

        // Fast retransmit (7.2.4): miss indications for the holes below the highest newly
        // acked TSN (all reported holes when in fast recovery and the cum ack advanced).
        if let Some(htna) = htna.filter(|&h| h > cum) {
            let limit = match (self.recovery, self.known_gaps.last()) {
                (Some(_), Some(&(_, hi))) if cum_advanced => hi,
                _ => htna,
            };
            let mut newly_marked = false;
            let gaps = std::mem::take(&mut self.known_gaps);
            let mut hole_start = cum + 1;
            let mut k = 0;
            loop {
                let (next_lo, next_hi) = gaps.get(k).copied().unwrap_or((u64::MAX, u64::MAX));
                let hole_end = (next_lo - 1).min(limit - 1);
                for tsn in hole_start..=hole_end {
                    let Some(i) = self.index(tsn) else {
                        break;
                    };
                    let e = &mut self.inflight[i];
                    // 7.2.4 makes a fast-retransmitted chunk ineligible for another fast
                    // retransmit so that a retransmission still on its way is not sent
                    // again. Its misses count again once something sent after it is
                    // acknowledged, which proves the retransmission was lost too.
                    if e.state == ChunkState::Outstanding && (e.nsent == 1 || htna >= e.sent_before)
                    {
                        e.misses = e.misses.saturating_add(1);
                        if e.misses >= FAST_RETRANSMIT_MISSES {
                            self.mark_for_retransmit(i, now);
                            newly_marked = true;
                        }
                    }
                }
                if next_lo == u64::MAX || next_hi >= limit {
                    break;
                }
                hole_start = next_hi + 1;
                k += 1;
            }
            self.known_gaps = gaps;
            if newly_marked {
                self.stats.fast_retransmits += 1;
                if self.recovery.is_none() {
                    self.ssthresh = (self.cwnd / 2).max(4 * self.mtu);
                    self.cwnd = self.ssthresh;
                    self.partial_bytes_acked = 0;
                    self.recovery = Some(self.next_tsn - 1);
                }
                self.fast_rtx_packet = true;
            }
        }

        if self.recovery.is_some_and(|exit| cum >= exit) {
            self.recovery = None;
        }

        // Congestion window growth (7.2.1, 7.2.2).
        if cum_advanced && self.recovery.is_none() && flight_before + self.mtu >= self.cwnd {
            if self.cwnd <= self.ssthresh {
                self.cwnd += newly_acked_bytes.min(self.mtu);
            } else {
                self.partial_bytes_acked += newly_acked_bytes;
                if self.partial_bytes_acked >= self.cwnd {
                    self.partial_bytes_acked -= self.cwnd;
                    self.cwnd += self.mtu;
                }
            }
        }
        if self.outstanding == 0 {
            self.partial_bytes_acked = 0;
        }

        if probe_acked {
            if let Some((_, sent_at)) = self.rtt_probe.take() {
                self.rtt_sample(now.saturating_duration_since(sent_at));
            }
        } else if self.rtt_probe.is_some_and(|(t, _)| t < self.front_tsn) {
            self.rtt_probe = None;
        }

        // T3 (6.3.2 R2, R3).
        if self.inflight.len() == self.acked {
            self.t3 = None;
        } else if cum_advanced || self.t3.is_none() {
            self.t3 = Some(now + self.rto);
        }
        // The tail loss probe: again allowed and restarted once new data is acknowledged.
        if newly_acked_bytes > 0 {
            self.probe_allowed = true;
            self.arm_pto(now);
        } else if self.t3.is_none() {
            self.pto = None;
        }

        // RFC 3758 C1-C3.
        self.adv_point = self.adv_point.max(cum);
        self.advance_ack_point();
        if self.adv_point > cum {
            self.forward_tsn_due = true;
        }
        outcome.newly_acked = newly_acked_bytes > 0;
        outcome
    }

    fn mark_for_retransmit(&mut self, i: usize, now: Instant) {
        if self.should_abandon(i, now) {
            self.abandon_message(i, now);
            return;
        }
        let e = &mut self.inflight[i];
        if e.state != ChunkState::Outstanding {
            return;
        }
        e.state = ChunkState::Retransmit;
        self.flight -= e.len as usize;
        self.marked += 1;
        self.rtx.push_back(self.front_tsn + i as u64);
    }

    /// RFC 9260 6.3.3: the retransmission timer expired. Returns whether this counts as an
    /// unanswered retransmission for the association's error counter.
    pub(super) fn on_t3(&mut self, now: Instant) -> bool {
        self.t3 = None;
        self.pto = None;
        self.probe_tsn = None;
        if self.inflight.len() == self.acked {
            return false;
        }
        self.stats.t3_expirations += 1;
        // A zero window probe to a peer that keeps answering is not an error (6.1 A).
        let counts = !(self.sack_since_t3 && (self.peer_arwnd as usize) < self.mtu);
        self.sack_since_t3 = false;
        self.ssthresh = (self.cwnd / 2).max(4 * self.mtu);
        self.cwnd = self.mtu;
        self.partial_bytes_acked = 0;
        self.recovery = None;
        self.fast_rtx_packet = false;
        self.rto = (self.rto * 2).min(self.rto_max);
        self.rtt_probe = None;
        for i in 0..self.inflight.len() {
            if self.inflight[i].state == ChunkState::Outstanding {
                self.mark_for_retransmit(i, now);
            }
        }
        self.advance_ack_point();
        self.t3 = Some(now + self.rto);
        counts
    }

    /// RFC 9260 6.3.1.
    fn rtt_sample(&mut self, r: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(r);
                self.rttvar = self.rttvar * 3 / 4 + delta / 4;
                self.srtt = Some(srtt * 7 / 8 + r / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        let var = (self.rttvar * 4).max(Duration::from_millis(1));
        self.rto = (srtt + var).clamp(self.rto_min, self.rto_max);
    }
}

/// RFC 9260 7.2.1: min(4 MTU, max(2 MTU, 4380)).
fn initial_cwnd(mtu: usize) -> usize {
    (4 * mtu).min((2 * mtu).max(4380))
}

/// Calls `f(lo, hi)` for each part of the sorted, disjoint ranges `a` that no range of the
/// sorted, disjoint ranges `b` covers.
fn diff_ranges(a: &[(u64, u64)], b: &[(u64, u64)], mut f: impl FnMut(u64, u64)) {
    let mut j = 0;
    for &(lo, hi) in a {
        while j < b.len() && b[j].1 < lo {
            j += 1;
        }
        let mut start = lo;
        let mut k = j;
        loop {
            if k < b.len() && b[k].0 <= hi {
                let (blo, bhi) = b[k];
                if blo > start {
                    f(start, blo - 1);
                }
                if bhi >= hi {
                    break;
                }
                start = start.max(bhi + 1);
                k += 1;
            } else {
                f(start, hi);
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsn_unwrapping_follows_the_nearest_value_across_the_32_bit_wrap() {
        let near = (1u64 << 32) + u64::from(u32::MAX) - 1;
        assert_eq!(unwrap_tsn(near, u32::MAX), near + 1);
        assert_eq!(unwrap_tsn(near, 0), near + 2);
        assert_eq!(unwrap_tsn(near, 5), near + 7);
        assert_eq!(unwrap_tsn(near + 10, u32::MAX - 3), near - 2);
    }

    #[test]
    fn range_difference_yields_only_uncovered_parts() {
        let mut got = Vec::new();
        diff_ranges(
            &[(1, 10), (20, 30)],
            &[(3, 4), (8, 12), (25, 25)],
            |a, b| got.push((a, b)),
        );
        assert_eq!(got, vec![(1, 2), (5, 7), (20, 24), (26, 30)]);
        got.clear();
        diff_ranges(&[(5, 6)], &[(1, 100)], |a, b| got.push((a, b)));
        assert!(got.is_empty());
        diff_ranges(&[(5, 6)], &[], |a, b| got.push((a, b)));
        assert_eq!(got, vec![(5, 6)]);
    }
}
