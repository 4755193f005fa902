//! The receiving side of an association: which TSNs arrived (the cumulative TSN plus a
//! bounded set of out-of-order ranges, reported in SACKs with duplicates), reassembly of
//! fragments into messages, per-stream ordering by SSN, FORWARD-TSN skipping (RFC 3758 3.6)
//! and the deferred part of incoming stream resets (RFC 6525 5.2.2).
//!
//! Fragments that arrive in TSN order are appended straight to their message's buffer (one
//! copy); only fragments that arrive ahead of their predecessor are stored on their own
//! until it comes. Everything held here counts against the receive window we advertise.

use std::collections::{BTreeMap, VecDeque};

use super::chunk::{put_sack, Data};
use super::send::unwrap_tsn;
use super::{SctpEvent, MAX_GAP_RANGES};

/// A DATA chunk more than this many TSNs beyond the cumulative TSN is dropped (gap ack
/// block offsets are 16 bits).
const MAX_TSN_AHEAD: u64 = 65_535;
/// Duplicate TSNs remembered for the next SACK.
const MAX_DUPS: usize = 16;
/// Messages being reassembled at once.
const MAX_PARTIALS: usize = 256;

/// Events waiting for [`Association::poll_event`](super::Association::poll_event), with
/// the bytes of their messages (which count against our receive window until drained).
#[derive(Debug, Default)]
pub(super) struct EventQueue {
    events: VecDeque<SctpEvent>,
    message_bytes: usize,
}

impl EventQueue {
    pub(super) fn push(&mut self, event: SctpEvent) {
        if let SctpEvent::Message { data, .. } = &event {
            self.message_bytes += data.len();
        }
        self.events.push_back(event);
    }

    pub(super) fn pop(&mut self) -> Option<SctpEvent> {
        let event = self.events.pop_front()?;
        if let SctpEvent::Message { data, .. } = &event {
            self.message_bytes -= data.len();
        }
        Some(event)
    }

    pub(super) fn message_bytes(&self) -> usize {
        self.message_bytes
    }
}

/// What happened to a DATA chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DataVerdict {
    /// Accepted (new TSN).
    New,
    /// Already received.
    Duplicate,
    /// Not accepted (window full or tracking limits); the peer will send it again.
    Dropped,
    /// Accepted as a TSN but discarded: the stream is beyond the negotiated count.
    InvalidStream,
}

/// The peer sent a message larger than our maximum message size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct MessageTooLarge;

/// A message being reassembled from consecutive TSNs.
#[derive(Debug)]
struct Partial {
    first_tsn: u64,
    next_tsn: u64,
    stream: u16,
    ssn: u16,
    ppid: u32,
    unordered: bool,
    data: Vec<u8>,
}

impl Partial {
    fn continues_with(&self, stream: u16, ssn: u16, flags_unordered: bool) -> bool {
        self.stream == stream
            && self.unordered == flags_unordered
            && (self.unordered || self.ssn == ssn)
    }
}

/// A fragment that arrived before its predecessor.
#[derive(Debug)]
struct Frag {
    stream: u16,
    ssn: u16,
    ppid: u32,
    flags: u8,
    data: Vec<u8>,
}

/// A complete message.
#[derive(Debug)]
struct Message {
    first_tsn: u64,
    stream: u16,
    ssn: u16,
    ppid: u32,
    unordered: bool,
    data: Vec<u8>,
}

/// Per-stream ordering state.
#[derive(Debug, Default)]
struct RxStream {
    next_ssn: u16,
    /// Complete ordered messages waiting for an earlier SSN.
    waiting: BTreeMap<u16, (u32, Vec<u8>)>,
}

/// An incoming SSN reset that waits for the cumulative TSN to reach the peer's last TSN.
#[derive(Debug)]
struct PendingReset {
    last_tsn: u64,
    streams: Vec<u16>,
    /// Ordered messages of those streams sent after the reset, held until it is performed.
    held: Vec<Message>,
}

/// Receiver counters.
#[derive(Debug, Default, Clone)]
pub(super) struct RecvStats {
    pub(super) messages_received: u64,
    pub(super) duplicates: u64,
    pub(super) dropped: u64,
}

/// The receiving side. See the module documentation.
#[derive(Debug)]
pub(super) struct Receiver {
    window: usize,
    max_message_size: usize,
    inbound_streams: u16,
    cum: u64,
    /// Received TSN ranges above `cum + 1`, sorted and disjoint.
    gaps: Vec<(u64, u64)>,
    highest: u64,
    dups: Vec<u32>,
    partials: Vec<Partial>,
    stored: BTreeMap<u64, Frag>,
    streams: Vec<RxStream>,
    /// Bytes held in partials, stored fragments, waiting and held messages.
    buffered: usize,
    pending_reset: Option<PendingReset>,
    pub(super) stats: RecvStats,
}

impl Receiver {
    pub(super) fn new(window: usize, max_message_size: usize) -> Receiver {
        Receiver {
            window,
            max_message_size,
            inbound_streams: u16::MAX,
            cum: 1 << 32,
            gaps: Vec::new(),
            highest: 1 << 32,
            dups: Vec::new(),
            partials: Vec::new(),
            stored: BTreeMap::new(),
            streams: Vec::new(),
            buffered: 0,
            pending_reset: None,
            stats: RecvStats::default(),
        }
    }

    /// Starts TSN tracking at the peer's Initial TSN.
    pub(super) fn start(&mut self, peer_initial_tsn: u32, inbound_streams: u16) {
        self.cum = (1u64 << 32) + u64::from(peer_initial_tsn) - 1;
        self.highest = self.cum;
        self.inbound_streams = inbound_streams;
    }

    /// The receive window to advertise.
    pub(super) fn a_rwnd(&self, event_bytes: usize, held: usize) -> u32 {
        let used = self.buffered + event_bytes + held;
        self.window.saturating_sub(used).min(u32::MAX as usize) as u32
    }

    /// Whether out-of-order TSNs are outstanding (a SACK then goes out at once).
    pub(super) fn has_gaps(&self) -> bool {
        !self.gaps.is_empty()
    }

    pub(super) fn has_dups(&self) -> bool {
        !self.dups.is_empty()
    }

    pub(super) fn cum_tsn(&self) -> u32 {
        self.cum as u32
    }

    /// Whether the cumulative TSN has reached `tsn`.
    pub(super) fn reached(&self, tsn: u32) -> bool {
        unwrap_tsn(self.cum, tsn) <= self.cum
    }

    fn in_gaps(&self, tsn: u64) -> bool {
        let i = self.gaps.partition_point(|&(_, hi)| hi < tsn);
        self.gaps.get(i).is_some_and(|&(lo, _)| lo <= tsn)
    }

    /// Handles one DATA chunk (RFC 9260 6.2). `held` is what the application holds.
    pub(super) fn on_data(
        &mut self,
        d: &Data<'_>,
        events: &mut EventQueue,
        held: usize,
    ) -> Result<DataVerdict, MessageTooLarge> {
        let tsn = unwrap_tsn(self.cum, d.tsn);
        if tsn <= self.cum || self.in_gaps(tsn) {
            if self.dups.len() < MAX_DUPS {
                self.dups.push(d.tsn);
            }
            self.stats.duplicates += 1;
            return Ok(DataVerdict::Duplicate);
        }
        let len = d.payload.len();
        let used = self.buffered + events.message_bytes() + held;
        let beyond_window =
            used + len > self.window && (tsn > self.highest || used + len > 2 * self.window);
        let too_far = tsn - self.cum > MAX_TSN_AHEAD;
        let too_many_partials = d.begins()
            && !d.ends()
            && self.partials.len() >= MAX_PARTIALS
            && !self.partials.iter().any(|p| p.next_tsn == tsn);
        if beyond_window || too_far || too_many_partials || !self.record(tsn) {
            self.stats.dropped += 1;
            return Ok(DataVerdict::Dropped);
        }
        self.highest = self.highest.max(tsn);
        if d.stream >= self.inbound_streams {
            return Ok(DataVerdict::InvalidStream);
        }
        let result = self.reassemble(tsn, d, events);
        self.purge();
        result.map(|()| DataVerdict::New)
    }

    /// Records a new TSN as received. False if it would need one gap range too many.
    fn record(&mut self, tsn: u64) -> bool {
        if tsn == self.cum + 1 {
            self.cum = tsn;
            if self.gaps.first().is_some_and(|&(lo, _)| lo == self.cum + 1) {
                self.cum = self.gaps.remove(0).1;
            }
            return true;
        }
        let i = self.gaps.partition_point(|&(_, hi)| hi + 1 < tsn);
        if let Some(&(lo, hi)) = self.gaps.get(i) {
            if hi + 1 == tsn {
                self.gaps[i].1 = tsn;
                if self
                    .gaps
                    .get(i + 1)
                    .is_some_and(|&(next_lo, _)| next_lo == tsn + 1)
                {
                    self.gaps[i].1 = self.gaps.remove(i + 1).1;
                }
                return true;
            }
            if lo == tsn + 1 {
                self.gaps[i].0 = tsn;
                return true;
            }
        }
        if self.gaps.len() >= MAX_GAP_RANGES {
            return false;
        }
        self.gaps.insert(i, (tsn, tsn));
        true
    }

    fn reassemble(
        &mut self,
        tsn: u64,
        d: &Data<'_>,
        events: &mut EventQueue,
    ) -> Result<(), MessageTooLarge> {
        let unordered = d.unordered();
        if let Some(p) = self.partials.iter().position(|p| p.next_tsn == tsn) {
            if !d.begins() && self.partials[p].continues_with(d.stream, d.ssn, unordered) {
                let partial = &mut self.partials[p];
                if partial.data.len() + d.payload.len() > self.max_message_size {
                    return Err(MessageTooLarge);
                }
                partial.data.extend_from_slice(d.payload);
                partial.next_tsn += 1;
                self.buffered += d.payload.len();
                if d.ends() {
                    self.finish_partial(p, events);
                    return Ok(());
                }
                return self.pull(p, events);
            }
            // The fragment contradicts the message it should continue: drop that message.
            self.discard_partial(p);
        }
        if d.begins() && d.ends() {
            let msg = Message {
                first_tsn: tsn,
                stream: d.stream,
                ssn: d.ssn,
                ppid: d.ppid,
                unordered,
                data: d.payload.to_vec(),
            };
            self.complete(msg, events);
            return Ok(());
        }
        if d.begins() {
            if d.payload.len() > self.max_message_size {
                return Err(MessageTooLarge);
            }
            let mut data = Vec::with_capacity((d.payload.len() * 4).min(self.max_message_size));
            data.extend_from_slice(d.payload);
            self.buffered += data.len();
            self.partials.push(Partial {
                first_tsn: tsn,
                next_tsn: tsn + 1,
                stream: d.stream,
                ssn: d.ssn,
                ppid: d.ppid,
                unordered,
                data,
            });
            return self.pull(self.partials.len() - 1, events);
        }
        self.buffered += d.payload.len();
        let frag = Frag {
            stream: d.stream,
            ssn: d.ssn,
            ppid: d.ppid,
            flags: d.flags,
            data: d.payload.to_vec(),
        };
        self.stored.insert(tsn, frag);
        Ok(())
    }

    /// Appends the stored fragments that continue partial `p`.
    fn pull(&mut self, mut p: usize, events: &mut EventQueue) -> Result<(), MessageTooLarge> {
        while !self.stored.is_empty() {
            let next = self.partials[p].next_tsn;
            let Some(frag) = self.stored.remove(&next) else {
                return Ok(());
            };
            let unordered = frag.flags & super::chunk::FLAG_UNORDERED != 0;
            let begins = frag.flags & super::chunk::FLAG_BEGIN != 0;
            let ends = frag.flags & super::chunk::FLAG_END != 0;
            if begins || !self.partials[p].continues_with(frag.stream, frag.ssn, unordered) {
                // The partial ends without its last fragment: drop it.
                self.discard_partial(p);
                self.buffered -= frag.data.len();
                if !begins {
                    return Ok(());
                }
                // The stored fragment starts a message of its own.
                let partial = Partial {
                    first_tsn: next,
                    next_tsn: next + 1,
                    stream: frag.stream,
                    ssn: frag.ssn,
                    ppid: frag.ppid,
                    unordered,
                    data: frag.data,
                };
                self.buffered += partial.data.len();
                if ends {
                    self.partials.push(partial);
                    self.finish_partial(self.partials.len() - 1, events);
                    return Ok(());
                }
                self.partials.push(partial);
                p = self.partials.len() - 1;
                continue;
            }
            let partial = &mut self.partials[p];
            if partial.data.len() + frag.data.len() > self.max_message_size {
                return Err(MessageTooLarge);
            }
            partial.data.extend_from_slice(&frag.data);
            partial.next_tsn += 1;
            if ends {
                self.finish_partial(p, events);
                return Ok(());
            }
        }
        Ok(())
    }

    fn discard_partial(&mut self, p: usize) {
        let partial = self.partials.swap_remove(p);
        self.buffered -= partial.data.len();
    }

    fn finish_partial(&mut self, p: usize, events: &mut EventQueue) {
        let partial = self.partials.swap_remove(p);
        self.buffered -= partial.data.len();
        let msg = Message {
            first_tsn: partial.first_tsn,
            stream: partial.stream,
            ssn: partial.ssn,
            ppid: partial.ppid,
            unordered: partial.unordered,
            data: partial.data,
        };
        self.complete(msg, events);
    }

    /// Delivers a complete message, or holds it until the SSNs before it are delivered.
    fn complete(&mut self, msg: Message, events: &mut EventQueue) {
        if msg.unordered {
            self.deliver(msg.stream, msg.ppid, msg.data, events);
            return;
        }
        if let Some(reset) = &mut self.pending_reset {
            if msg.first_tsn > reset.last_tsn
                && (reset.streams.is_empty() || reset.streams.contains(&msg.stream))
            {
                self.buffered += msg.data.len();
                reset.held.push(msg);
                return;
            }
        }
        let index = usize::from(msg.stream);
        if index >= self.streams.len() {
            self.streams.resize_with(index + 1, RxStream::default);
        }
        let next = self.streams[index].next_ssn;
        if msg.ssn == next {
            self.streams[index].next_ssn = next.wrapping_add(1);
            self.deliver(msg.stream, msg.ppid, msg.data, events);
            self.deliver_waiting(msg.stream, events);
        } else if msg.ssn.wrapping_sub(next) < 0x8000 {
            if let std::collections::btree_map::Entry::Vacant(slot) =
                self.streams[index].waiting.entry(msg.ssn)
            {
                self.buffered += msg.data.len();
                slot.insert((msg.ppid, msg.data));
            }
        } else {
            tracing::debug!(
                stream = msg.stream,
                ssn = msg.ssn,
                "SCTP message with an old SSN dropped"
            );
        }
    }

    /// Delivers the waiting messages of `stream` that are next in order.
    fn deliver_waiting(&mut self, stream: u16, events: &mut EventQueue) {
        let Some(s) = self.streams.get_mut(usize::from(stream)) else {
            return;
        };
        while let Some((ppid, data)) = s.waiting.remove(&s.next_ssn) {
            s.next_ssn = s.next_ssn.wrapping_add(1);
            self.buffered -= data.len();
            self.stats.messages_received += 1;
            events.push(SctpEvent::Message { stream, ppid, data });
        }
    }

    fn deliver(&mut self, stream: u16, ppid: u32, data: Vec<u8>, events: &mut EventQueue) {
        self.stats.messages_received += 1;
        events.push(SctpEvent::Message { stream, ppid, data });
    }

    /// Drops what can no longer complete once the cumulative TSN passed it: partials whose
    /// next fragment was received as something else, fragments whose message start is gone.
    fn purge(&mut self) {
        let cum = self.cum;
        let mut i = 0;
        while i < self.partials.len() {
            if self.partials[i].next_tsn <= cum {
                self.discard_partial(i);
            } else {
                i += 1;
            }
        }
        while let Some(entry) = self.stored.first_entry() {
            if *entry.key() > cum {
                break;
            }
            self.buffered -= entry.remove().data.len();
        }
    }

    /// RFC 3758 3.6: the peer abandoned everything up to `new_cum`.
    pub(super) fn on_forward_tsn(
        &mut self,
        new_cum: u32,
        pairs: impl Iterator<Item = (u16, u16)>,
        events: &mut EventQueue,
    ) {
        let new = unwrap_tsn(self.cum, new_cum);
        if new <= self.cum || new - self.cum > MAX_TSN_AHEAD {
            return;
        }
        self.cum = new;
        while let Some(&(lo, hi)) = self.gaps.first() {
            if lo > self.cum + 1 {
                break;
            }
            self.cum = self.cum.max(hi);
            self.gaps.remove(0);
        }
        self.highest = self.highest.max(self.cum);
        // Messages that started at or before the new cumulative TSN were abandoned.
        let mut i = 0;
        while i < self.partials.len() {
            if self.partials[i].first_tsn <= new {
                self.discard_partial(i);
            } else {
                i += 1;
            }
        }
        self.purge();
        for (stream, ssn) in pairs {
            if stream < self.inbound_streams {
                self.skip_to(stream, ssn, events);
            }
        }
    }

    /// Ordered stream `stream` skips everything up to `ssn`: complete messages up to it are
    /// delivered in order, then those that follow it.
    fn skip_to(&mut self, stream: u16, ssn: u16, events: &mut EventQueue) {
        let index = usize::from(stream);
        if index >= self.streams.len() {
            self.streams.resize_with(index + 1, RxStream::default);
        }
        let next = self.streams[index].next_ssn;
        if ssn.wrapping_sub(next) >= 0x8000 {
            return;
        }
        // The waiting SSNs in [next, ssn], in serial order: at most two key ranges.
        let ranges = if next <= ssn {
            [(next, ssn), (1, 0)]
        } else {
            [(next, u16::MAX), (0, ssn)]
        };
        for (lo, hi) in ranges {
            if lo > hi {
                continue;
            }
            loop {
                let waiting = &mut self.streams[index].waiting;
                let Some(key) = waiting.range(lo..=hi).next().map(|(k, _)| *k) else {
                    break;
                };
                let Some((ppid, data)) = waiting.remove(&key) else {
                    break;
                };
                self.buffered -= data.len();
                self.deliver(stream, ppid, data, events);
            }
        }
        self.streams[index].next_ssn = ssn.wrapping_add(1);
        self.deliver_waiting(stream, events);
    }

    /// Appends a SACK reporting what arrived, at most `room` bytes long.
    pub(super) fn write_sack(&mut self, out: &mut Vec<u8>, a_rwnd: u32, room: usize) {
        let blocks = room.saturating_sub(16) / 4;
        let ngaps = self.gaps.len().min(blocks);
        let ndups = self.dups.len().min(blocks - ngaps);
        let cum = self.cum;
        let gaps = self.gaps[..ngaps]
            .iter()
            .map(|&(lo, hi)| ((lo - cum) as u16, (hi - cum) as u16));
        put_sack(out, cum as u32, a_rwnd, gaps, &self.dups[..ndups]);
        self.dups.clear();
    }

    /// Holds an incoming reset until the cumulative TSN reaches `last_tsn`.
    pub(super) fn defer_reset(&mut self, last_tsn: u32, streams: Vec<u16>) {
        let last_tsn = unwrap_tsn(self.cum, last_tsn);
        self.pending_reset = Some(PendingReset {
            last_tsn,
            streams,
            held: Vec::new(),
        });
    }

    pub(super) fn has_pending_reset(&self) -> bool {
        self.pending_reset.is_some()
    }

    /// Performs the deferred reset if the cumulative TSN has reached it, emitting
    /// [`SctpEvent::IncomingStreamsReset`] and then the messages held back for it. Returns
    /// whether it did.
    pub(super) fn poll_deferred_reset(&mut self, events: &mut EventQueue) -> bool {
        let Some(reset) = self.pending_reset.take_if(|r| r.last_tsn <= self.cum) else {
            return false;
        };
        self.reset_streams(&reset.streams);
        events.push(SctpEvent::IncomingStreamsReset(reset.streams));
        for msg in reset.held {
            self.buffered -= msg.data.len();
            self.complete(msg, events);
        }
        true
    }

    /// Incoming SSN reset of `streams` (all if empty): their SSNs start again at 0.
    pub(super) fn reset_streams(&mut self, streams: &[u16]) {
        let reset = |s: &mut RxStream, buffered: &mut usize| {
            s.next_ssn = 0;
            for (_, (_, data)) in std::mem::take(&mut s.waiting) {
                *buffered -= data.len();
            }
        };
        if streams.is_empty() {
            for s in &mut self.streams {
                reset(s, &mut self.buffered);
            }
        } else {
            for &stream in streams {
                if let Some(s) = self.streams.get_mut(usize::from(stream)) {
                    reset(s, &mut self.buffered);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtc::sctp::chunk::{FLAG_BEGIN, FLAG_END};

    fn data(tsn: u32, stream: u16, ssn: u16, flags: u8, payload: &[u8]) -> Data<'_> {
        Data {
            flags,
            tsn,
            stream,
            ssn,
            ppid: 53,
            payload,
        }
    }

    fn messages(events: &mut EventQueue) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(event) = events.pop() {
            if let SctpEvent::Message { data, .. } = event {
                out.push(data);
            }
        }
        out
    }

    #[test]
    fn forward_tsn_skips_ssns_across_the_16_bit_wrap_and_delivers_what_waited() {
        let mut rx = Receiver::new(1 << 20, 1 << 18);
        rx.start(100, 10);
        rx.streams.resize_with(1, RxStream::default);
        rx.streams[0].next_ssn = 65534;
        let mut events = EventQueue::default();
        let whole = FLAG_BEGIN | FLAG_END;
        // SSN 65534 (TSN 100) is lost; 65535, 0 and 2 arrive; 1 is lost too.
        for (tsn, ssn, text) in [(101, 65535, b"a"), (102, 0, b"b"), (104, 2, b"d")] {
            assert_eq!(
                rx.on_data(&data(tsn, 0, ssn, whole, text), &mut events, 0),
                Ok(DataVerdict::New)
            );
        }
        assert!(messages(&mut events).is_empty());
        // The peer abandoned TSN 100 (SSN 65534): 65535 and 0 follow.
        rx.on_forward_tsn(100, [(0, 65534)].into_iter(), &mut events);
        assert_eq!(messages(&mut events), vec![b"a".to_vec(), b"b".to_vec()]);
        // It abandoned TSN 103 (SSN 1) too: 2 follows.
        rx.on_forward_tsn(103, [(0, 1)].into_iter(), &mut events);
        assert_eq!(messages(&mut events), vec![b"d".to_vec()]);
        assert_eq!(rx.cum_tsn(), 104);
        assert_eq!(rx.buffered, 0);
    }

    #[test]
    fn fragments_arriving_in_any_order_reassemble_once_complete() {
        let mut rx = Receiver::new(1 << 20, 1 << 18);
        rx.start(1, 10);
        let mut events = EventQueue::default();
        let parts: [(u32, u8, &[u8]); 4] = [
            (1, FLAG_BEGIN, b"ab"),
            (2, 0, b"cd"),
            (3, 0, b"ef"),
            (4, FLAG_END, b"gh"),
        ];
        for order in [[3usize, 1, 0, 2], [0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 2, 0]] {
            let base = rx.cum_tsn() + 1;
            let ssn = rx.streams.get(2).map_or(0, |s| s.next_ssn);
            for i in order {
                let (tsn, flags, text) = parts[i];
                assert_eq!(
                    rx.on_data(&data(base + tsn - 1, 2, ssn, flags, text), &mut events, 0),
                    Ok(DataVerdict::New)
                );
            }
            assert_eq!(
                messages(&mut events),
                vec![b"abcdefgh".to_vec()],
                "order {order:?}"
            );
            assert_eq!(rx.buffered, 0);
        }
    }

    #[test]
    fn duplicates_are_reported_and_not_delivered_twice() {
        let mut rx = Receiver::new(1 << 20, 1 << 18);
        rx.start(1, 10);
        let mut events = EventQueue::default();
        let whole = FLAG_BEGIN | FLAG_END;
        assert_eq!(
            rx.on_data(&data(1, 0, 0, whole, b"x"), &mut events, 0),
            Ok(DataVerdict::New)
        );
        assert_eq!(
            rx.on_data(&data(3, 0, 2, whole, b"z"), &mut events, 0),
            Ok(DataVerdict::New)
        );
        assert_eq!(
            rx.on_data(&data(1, 0, 0, whole, b"x"), &mut events, 0),
            Ok(DataVerdict::Duplicate)
        );
        assert_eq!(
            rx.on_data(&data(3, 0, 2, whole, b"z"), &mut events, 0),
            Ok(DataVerdict::Duplicate)
        );
        assert_eq!(messages(&mut events), vec![b"x".to_vec()]);
        let mut sack = Vec::new();
        rx.write_sack(&mut sack, 1000, 1000);
        // cum 1, one gap block (2, 2), two duplicates.
        assert_eq!(&sack[4..16], &[0, 0, 0, 1, 0, 0, 3, 232, 0, 1, 0, 2]);
        assert_eq!(&sack[16..20], &[0, 2, 0, 2]);
    }

    #[test]
    fn data_beyond_the_window_is_dropped_unless_it_fills_a_hole() {
        let mut rx = Receiver::new(300_000, 1000);
        rx.start(1, 10);
        let mut events = EventQueue::default();
        let whole = FLAG_BEGIN | FLAG_END;
        let big = vec![0u8; 1000];
        assert_eq!(
            rx.on_data(&data(2, 0, 1, whole, &big), &mut events, 299_500),
            Ok(DataVerdict::Dropped)
        );
        assert_eq!(
            rx.on_data(&data(2, 0, 1, whole, &big), &mut events, 0),
            Ok(DataVerdict::New)
        );
        assert_eq!(
            rx.on_data(&data(3, 0, 2, whole, &big), &mut events, 299_500),
            Ok(DataVerdict::Dropped)
        );
        // TSN 1 fills the hole below the highest TSN received: accepted.
        assert_eq!(
            rx.on_data(&data(1, 0, 0, whole, &big), &mut events, 299_500),
            Ok(DataVerdict::New)
        );
        assert_eq!(messages(&mut events).len(), 2);
        assert_eq!(rx.a_rwnd(0, 299_500), 500);
    }
}
