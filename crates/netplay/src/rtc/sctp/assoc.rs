//! The association: its states and the handshake (RFC 9260 5, including the collision
//! cases of 5.2.1 and 5.2.4), verification tags (8.5), the dispatch of received chunks,
//! timers, SHUTDOWN and ABORT, and the packing of outgoing chunks into packets.
//!
//! The sending side lives in [`send`](super::send), the receiving side in
//! [`recv`](super::recv), stream resets in [`reconfig`](super::reconfig).

use crate::time::{Duration, Instant};
use std::collections::VecDeque;

use super::chunk::{self, Chunk, CommonHeader, Init, Params, Reader, COMMON_HEADER_LEN};
use super::reconfig::Reconfig;
use super::recv::{DataVerdict, EventQueue, Receiver};
use super::send::Sender;
use super::{Reliability, SctpConfig, SctpError, SctpEvent, SctpStats, SendError, DEFAULT_PORT};
use crate::random::Rng;

/// Streams we offer in both directions (the most SCTP can count), so the negotiated counts
/// are the peer's.
const MAX_STREAMS: u16 = u16::MAX;
/// Identifies our State Cookies.
const COOKIE_MAGIC: [u8; 4] = *b"NPsc";
const COOKIE_LEN: usize = 44;
/// Answers queued for the peer (INIT ACKs, HEARTBEAT ACKs, ERRORs); more are dropped.
const MAX_QUEUED_ANSWERS: usize = 4;
/// Bytes of an unrecognized chunk or parameter echoed back in a report.
const MAX_REPORT: usize = 256;
/// Upper bound of the delayed SACK (RFC 9260 6.2: at most 500 ms; 200 ms is usual).
const MAX_SACK_DELAY: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No association yet; waiting for the peer's INIT (we do not initiate).
    Idle,
    CookieWait,
    CookieEchoed,
    Established,
    /// Our shutdown: waiting for our data to be acknowledged. Entered by `shutdown()`, which
    /// only the tests use so far (a peer connection closes with ABORT).
    #[cfg_attr(not(test), allow(dead_code))]
    ShutdownPending,
    ShutdownSent,
    /// The peer's shutdown: sending what we still have.
    ShutdownReceived,
    ShutdownAckSent,
    Closed,
}

/// A retransmission timer with its own backoff (T1 and T2).
#[derive(Debug, Clone, Copy)]
struct Timer {
    deadline: Option<Instant>,
    count: u32,
    rto: Duration,
}

impl Timer {
    fn new(rto: Duration) -> Timer {
        Timer {
            deadline: None,
            count: 0,
            rto,
        }
    }

    fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|t| t <= now)
    }
}

/// What the peer told us in its INIT or INIT ACK (or what our cookie remembers of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Peer {
    tag: u32,
    initial_tsn: u32,
    a_rwnd: u32,
    outbound_streams: u16,
    inbound_streams: u16,
    forward_tsn: bool,
    reconfig: bool,
}

/// The extensions and unrecognized parameters of an INIT or INIT ACK.
#[derive(Debug, Default)]
struct InitParams<'a> {
    forward_tsn: bool,
    reconfig: bool,
    cookie: Option<&'a [u8]>,
    /// Unrecognized parameters to report (whole, header included).
    reported: Vec<&'a [u8]>,
}

/// One SCTP association over one DTLS connection. See the [module documentation](super).
#[derive(Debug)]
pub(crate) struct Association {
    pub(super) cfg: SctpConfig,
    state: State,
    my_tag: u32,
    my_initial_tsn: u32,
    secret: [u8; 8],
    local_port: u16,
    peer_port: u16,
    peer: Option<Peer>,
    pub(super) tx: Sender,
    pub(super) rx: Receiver,
    pub(super) reconfig: Reconfig,
    pub(super) events: EventQueue,
    held: usize,
    t1: Timer,
    init_due: bool,
    cookie: Vec<u8>,
    cookie_echo_due: bool,
    cookie_ack_due: bool,
    /// INIT ACKs to send: (verification tag, chunk).
    init_acks: VecDeque<(u32, Vec<u8>)>,
    t2: Timer,
    shutdown_due: bool,
    shutdown_ack_due: bool,
    /// SHUTDOWN COMPLETE to send: (verification tag, T flag).
    shutdown_complete_due: Option<(u32, bool)>,
    sack_now: bool,
    sack_deadline: Option<Instant>,
    sack_delay: Duration,
    data_packets_since_sack: u32,
    last_advertised: u32,
    /// Whole chunks to send (HEARTBEAT ACKs, ERRORs).
    control: VecDeque<Vec<u8>>,
    /// ABORT to send: (verification tag, chunk).
    abort_due: Option<(u32, Vec<u8>)>,
    pub(super) assoc_errors: u32,
    packets_sent: u64,
    packets_received: u64,
    bytes_sent: u64,
    bytes_received: u64,
    sacks_sent: u64,
}

impl Association {
    /// A new association. With [`SctpConfig::initiate`] it sends INIT at the first
    /// [`poll_transmit`](Self::poll_transmit); either way it answers the peer's INIT.
    /// Its verification tag, Initial TSN and cookie secret come from `rng`.
    pub(crate) fn new(config: SctpConfig, now: Instant, rng: &mut Rng) -> Association {
        let mut my_tag = rng.next_u32();
        if my_tag == 0 {
            my_tag = 1;
        }
        let my_initial_tsn = rng.next_u32();
        let mut secret = [0u8; 8];
        rng.fill(&mut secret);
        Association::with_params(config, now, my_tag, my_initial_tsn, secret)
    }

    /// A new association whose verification tag, Initial TSN and cookie secret derive from
    /// `seed` (tests use fixed seeds to be reproducible).
    #[cfg(test)]
    pub(super) fn with_seed(config: SctpConfig, now: Instant, seed: u64) -> Association {
        Association::new(config, now, &mut Rng::seeded(seed))
    }

    pub(super) fn with_params(
        mut cfg: SctpConfig,
        _now: Instant,
        my_tag: u32,
        my_initial_tsn: u32,
        secret: [u8; 8],
    ) -> Association {
        cfg.max_packet_size = cfg.max_packet_size.clamp(256, 65_535);
        cfg.max_message_size = cfg.max_message_size.max(1);
        let min_window = cfg.max_message_size.saturating_add(cfg.max_packet_size);
        cfg.receive_window = cfg
            .receive_window
            .max(min_window.min(u32::MAX as usize) as u32);
        cfg.rto_min = cfg.rto_min.max(Duration::from_millis(1));
        cfg.rto_max = cfg.rto_max.max(cfg.rto_min);
        cfg.rto_initial = cfg.rto_initial.clamp(cfg.rto_min, cfg.rto_max);
        let mtu = cfg.max_packet_size;
        let tx = Sender::new(
            mtu,
            cfg.max_buffered_amount,
            my_initial_tsn,
            cfg.rto_initial,
            cfg.rto_min,
            cfg.rto_max,
        );
        let rx = Receiver::new(cfg.receive_window as usize, cfg.max_message_size);
        let state = if cfg.initiate {
            State::CookieWait
        } else {
            State::Idle
        };
        Association {
            state,
            my_tag,
            my_initial_tsn,
            secret,
            local_port: DEFAULT_PORT,
            peer_port: DEFAULT_PORT,
            peer: None,
            tx,
            rx,
            reconfig: Reconfig::new(my_initial_tsn),
            events: EventQueue::default(),
            held: 0,
            t1: Timer::new(cfg.rto_initial),
            init_due: cfg.initiate,
            cookie: Vec::new(),
            cookie_echo_due: false,
            cookie_ack_due: false,
            init_acks: VecDeque::new(),
            t2: Timer::new(cfg.rto_initial),
            shutdown_due: false,
            shutdown_ack_due: false,
            shutdown_complete_due: None,
            sack_now: false,
            sack_deadline: None,
            sack_delay: MAX_SACK_DELAY.min(cfg.rto_min / 2),
            data_packets_since_sack: 0,
            last_advertised: cfg.receive_window,
            control: VecDeque::new(),
            abort_due: None,
            assoc_errors: 0,
            packets_sent: 0,
            packets_received: 0,
            bytes_sent: 0,
            bytes_received: 0,
            sacks_sent: 0,
            cfg,
        }
    }

    /// Whether the handshake completed and the association is not closing.
    #[cfg(test)]
    pub(crate) fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// Whether the association is over ([`SctpEvent::Closed`] was emitted).
    pub(crate) fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Queues one message on `stream`. `ordered` and `reliability` apply to this message
    /// only (so a DCEP message can go ordered and reliable on a channel that is not).
    ///
    /// Messages may be queued before the association is established; they go out once it is.
    /// Errors ([`SendError`]): closed or shutting down, larger than
    /// [`SctpConfig::max_message_size`], the send budget
    /// ([`SctpConfig::max_buffered_amount`]) would overflow, the stream is being reset or is
    /// beyond the negotiated count, empty data. Nothing is queued on error.
    pub(crate) fn send(
        &mut self,
        stream: u16,
        ppid: u32,
        ordered: bool,
        reliability: Reliability,
        data: &[u8],
        now: Instant,
    ) -> Result<(), SendError> {
        match self.state {
            State::Idle | State::CookieWait | State::CookieEchoed | State::Established => {}
            _ => return Err(SendError::NotOpen),
        }
        if data.is_empty() {
            return Err(SendError::Empty);
        }
        if data.len() > self.cfg.max_message_size {
            return Err(SendError::TooLarge {
                size: data.len(),
                max: self.cfg.max_message_size,
            });
        }
        if self.state == State::Established && stream >= self.tx.outbound_streams() {
            return Err(SendError::InvalidStream(stream));
        }
        self.tx.queue(stream, ppid, ordered, reliability, data, now)
    }

    /// Bytes of `stream` queued or in flight and not yet acknowledged.
    pub(crate) fn buffered_amount(&self, stream: u16) -> usize {
        self.tx.buffered(stream)
    }

    /// Whether a SACK is due now (RFC 9260 6.2: every second DATA packet, or at once on a gap,
    /// a duplicate or the I bit): a driver that batches received packets should send before
    /// reading more.
    pub(crate) fn sack_due(&self) -> bool {
        self.sack_now
    }

    /// Bytes queued or in flight and not yet acknowledged, over all streams.
    pub(crate) fn total_buffered(&self) -> usize {
        self.tx.total_buffered()
    }

    /// Bytes the application holds (delivered, not yet consumed). They are subtracted from
    /// the receive window we advertise, so a slow reader slows the peer down. Call it after
    /// draining events whenever the amount changes.
    pub(crate) fn set_held_bytes(&mut self, bytes: usize) {
        self.held = bytes;
    }

    /// The next event, if any.
    pub(crate) fn poll_event(&mut self) -> Option<SctpEvent> {
        self.events.pop()
    }

    /// Aborts the association: an ABORT with a User-Initiated Abort cause carrying `reason`
    /// goes out at the next [`poll_transmit`](Self::poll_transmit), and
    /// [`SctpEvent::Closed`] (without error) is emitted.
    pub(crate) fn abort(&mut self, reason: &str) {
        if self.state == State::Closed {
            return;
        }
        let mut reason = reason.as_bytes();
        reason = &reason[..reason.len().min(MAX_REPORT)];
        self.queue_abort(chunk::CAUSE_USER_INITIATED_ABORT, reason);
        self.close(None);
    }

    /// Starts a graceful shutdown (RFC 9260 9.2): no more messages are accepted, what is
    /// queued is delivered, then SHUTDOWN; [`SctpEvent::Closed`] without error follows the
    /// peer's SHUTDOWN ACK.
    #[cfg(test)]
    pub(crate) fn shutdown(&mut self) {
        match self.state {
            State::Established => self.state = State::ShutdownPending,
            State::Idle | State::CookieWait | State::CookieEchoed => {
                self.queue_abort(
                    chunk::CAUSE_USER_INITIATED_ABORT,
                    b"shutdown before established",
                );
                self.close(None);
            }
            _ => {}
        }
        self.check_shutdown();
    }

    /// Counters and congestion state.
    pub(crate) fn stats(&self) -> SctpStats {
        let (srtt, cwnd, ssthresh, flight_bytes) = self.tx.congestion();
        let tx = &self.tx.stats;
        SctpStats {
            srtt,
            rto: self.tx.rto(),
            cwnd,
            ssthresh,
            flight_bytes,
            peer_rwnd: self.tx.peer_rwnd().min(u32::MAX as usize) as u32,
            advertised_rwnd: self.last_advertised,
            packets_sent: self.packets_sent,
            packets_received: self.packets_received,
            bytes_sent: self.bytes_sent,
            bytes_received: self.bytes_received,
            data_chunks_sent: tx.data_chunks_sent,
            retransmitted_chunks: tx.retransmitted_chunks,
            fast_retransmits: tx.fast_retransmits,
            t3_expirations: tx.t3_expirations,
            abandoned_messages: tx.abandoned_messages,
            forward_tsns_sent: tx.forward_tsns_sent,
            tail_loss_probes: tx.tail_loss_probes,
            messages_received: self.rx.stats.messages_received,
            sacks_sent: self.sacks_sent,
            duplicate_chunks_received: self.rx.stats.duplicates,
            dropped_chunks: self.rx.stats.dropped,
        }
    }

    pub(super) fn peer_supports_reconfig(&self) -> bool {
        self.peer.is_some_and(|p| p.reconfig)
    }

    /// Whether DATA, SACK and the like flow in this state.
    fn data_state(&self) -> bool {
        matches!(
            self.state,
            State::Established
                | State::ShutdownPending
                | State::ShutdownSent
                | State::ShutdownReceived
        )
    }

    pub(super) fn close(&mut self, error: Option<String>) {
        if self.state == State::Closed {
            return;
        }
        match &error {
            Some(e) => tracing::debug!(error = %e, "SCTP association closed"),
            None => tracing::debug!("SCTP association closed"),
        }
        self.state = State::Closed;
        self.t1.deadline = None;
        self.t2.deadline = None;
        self.sack_deadline = None;
        self.events.push(SctpEvent::Closed { error });
    }

    /// Queues an ABORT with one error cause, addressed as well as the state allows.
    fn queue_abort(&mut self, cause: u16, info: &[u8]) {
        let mut chunk = Vec::new();
        let start = chunk.len();
        let (vtag, t) = match self.peer {
            Some(peer) => (peer.tag, false),
            // The peer may know our tag from our INIT or INIT ACK: reflect it.
            None if self.state != State::Idle => (self.my_tag, true),
            None => return,
        };
        chunk::put_chunk_header(
            &mut chunk,
            chunk::ABORT,
            if t { chunk::FLAG_T } else { 0 },
            0,
        );
        chunk::put_param(&mut chunk, cause, info);
        chunk::end_chunk(&mut chunk, start);
        self.abort_due = Some((vtag, chunk));
    }

    /// Aborts because the peer broke the protocol.
    pub(super) fn abort_violation(&mut self, what: &str) {
        self.queue_abort(chunk::CAUSE_PROTOCOL_VIOLATION, what.as_bytes());
        self.close(Some(format!("protocol violation: {what}")));
    }

    fn queue_control(&mut self, chunk: Vec<u8>) {
        if self.control.len() < MAX_QUEUED_ANSWERS {
            self.control.push_back(chunk);
        }
    }

    /// Queues an ERROR chunk with one cause.
    fn queue_error(&mut self, cause: u16, info: &[u8]) {
        let mut chunk = Vec::new();
        chunk::put_chunk_header(&mut chunk, chunk::ERROR, 0, 0);
        // Small enough to fit in any packet we may send.
        let limit = MAX_REPORT.min(self.cfg.max_packet_size - COMMON_HEADER_LEN - 8);
        chunk::put_param(&mut chunk, cause, &info[..info.len().min(limit)]);
        chunk::end_chunk(&mut chunk, 0);
        self.queue_control(chunk);
    }
}

/// Whether to go on with the packet's next chunk (unknown chunk types may say no).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

impl Association {
    /// Handles one SCTP packet (the plaintext of one DTLS record).
    ///
    /// A packet that fails its checksum or verification tag is discarded whole; a malformed
    /// chunk is skipped (or, if its framing is broken, ends the packet). Either way the error
    /// says what was wrong and the association carries on.
    pub(crate) fn handle_packet(&mut self, packet: &[u8], now: Instant) -> Result<(), SctpError> {
        self.packets_received += 1;
        self.bytes_received += packet.len() as u64;
        if self.state == State::Closed {
            // 8.4 item 5: a SHUTDOWN ACK after the end gets a reflected SHUTDOWN COMPLETE.
            if let Ok((header, chunks)) = chunk::parse_packet(packet) {
                if chunks
                    .peek()
                    .is_some_and(|(kind, _)| kind == chunk::SHUTDOWN_ACK)
                {
                    self.shutdown_complete_due = Some((header.vtag, true));
                }
            }
            return Err(SctpError::Closed);
        }
        let (header, chunks) = chunk::parse_packet(packet)?;
        let Some((first, flags)) = chunks.peek() else {
            return Err(SctpError::TooShort(packet.len()));
        };
        // Verification tags (RFC 9260 8.5, 8.5.1).
        match first {
            chunk::INIT => {
                if header.vtag != 0 {
                    return Err(SctpError::VerificationTag);
                }
                if chunks.clone().nth(1).is_some() {
                    return Err(SctpError::malformed(
                        chunk::INIT,
                        "INIT bundled with other chunks",
                    ));
                }
            }
            chunk::ABORT | chunk::SHUTDOWN_COMPLETE if flags & chunk::FLAG_T != 0 => {
                if self.peer.is_none_or(|p| p.tag != header.vtag) {
                    return Err(SctpError::VerificationTag);
                }
            }
            _ => {
                if header.vtag != self.my_tag {
                    return Err(SctpError::VerificationTag);
                }
            }
        }
        let had_gaps = self.rx.has_gaps();
        let mut got_data = false;
        let mut result = Ok(());
        for chunk in chunks {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            match self.handle_chunk(&header, &chunk, now, &mut got_data) {
                Ok(Flow::Continue) => {}
                Ok(Flow::Stop) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "SCTP chunk discarded");
                    if result.is_ok() {
                        result = Err(e);
                    }
                }
            }
            if self.state == State::Closed {
                return result;
            }
        }
        if got_data {
            self.data_packets_since_sack += 1;
            if had_gaps
                || self.rx.has_gaps()
                || self.rx.has_dups()
                || self.data_packets_since_sack >= 2
            {
                self.sack_now = true;
            }
            if !self.sack_now && self.sack_deadline.is_none() {
                self.sack_deadline = Some(now + self.sack_delay);
            }
            if self.state == State::ShutdownSent {
                // 9.2: answer DATA with SHUTDOWN while waiting for the SHUTDOWN ACK.
                self.shutdown_due = true;
            }
        }
        if self.rx.has_pending_reset() && self.rx.poll_deferred_reset(&mut self.events) {
            self.reconfig.deferred_reset_performed();
        }
        self.check_shutdown();
        result
    }

    /// Whether the peer's DATA is accepted in this state.
    fn receiving(&self) -> bool {
        self.peer.is_some()
            && !matches!(self.state, State::Idle | State::CookieWait | State::Closed)
    }

    fn handle_chunk(
        &mut self,
        header: &CommonHeader,
        c: &Chunk<'_>,
        now: Instant,
        got_data: &mut bool,
    ) -> Result<Flow, SctpError> {
        match c.kind {
            chunk::DATA => {
                if self.receiving() {
                    let d = chunk::Data::parse(c)?;
                    *got_data = true;
                    self.on_data(&d);
                }
            }
            chunk::SACK => {
                if self.data_state() {
                    let sack = chunk::Sack::parse(c)?;
                    let outcome =
                        self.tx
                            .on_sack(sack.cum_tsn, sack.a_rwnd, sack.gaps(), true, now);
                    if outcome.newly_acked {
                        self.assoc_errors = 0;
                    }
                }
            }
            chunk::FORWARD_TSN => {
                if self.receiving() {
                    let f = chunk::ForwardTsn::parse(c)?;
                    self.rx
                        .on_forward_tsn(f.new_cum_tsn, f.pairs(), &mut self.events);
                    *got_data = true;
                    self.sack_now = true;
                }
            }
            chunk::RE_CONFIG => {
                if self.data_state() {
                    self.on_reconfig(c, now)?;
                }
            }
            chunk::INIT => self.on_init(header, c)?,
            chunk::INIT_ACK => self.on_init_ack(header, c)?,
            chunk::COOKIE_ECHO => self.on_cookie_echo(header, c)?,
            chunk::COOKIE_ACK => {
                if self.state == State::CookieEchoed {
                    self.enter_established();
                }
            }
            chunk::HEARTBEAT => {
                if self.peer.is_some()
                    && c.raw.len() + COMMON_HEADER_LEN + 3 <= self.cfg.max_packet_size
                {
                    let mut ack = Vec::with_capacity(c.raw.len() + 3);
                    chunk::put_chunk(&mut ack, chunk::HEARTBEAT_ACK, 0, c.value);
                    self.queue_control(ack);
                }
            }
            chunk::HEARTBEAT_ACK => {}
            chunk::ABORT => self.on_abort(header, c),
            chunk::SHUTDOWN => self.on_shutdown(c, now)?,
            chunk::SHUTDOWN_ACK => self.on_shutdown_ack(header),
            chunk::SHUTDOWN_COMPLETE => {
                if self.state == State::ShutdownAckSent {
                    self.close(None);
                }
            }
            chunk::ERROR => self.on_error(c),
            _ => return Ok(self.on_unknown_chunk(c)),
        }
        Ok(Flow::Continue)
    }

    fn on_data(&mut self, d: &chunk::Data<'_>) {
        match self.rx.on_data(d, &mut self.events, self.held) {
            Ok(DataVerdict::New) => {
                if d.flags & chunk::FLAG_IMMEDIATE != 0 {
                    self.sack_now = true;
                }
            }
            Ok(DataVerdict::Duplicate | DataVerdict::Dropped) => self.sack_now = true,
            Ok(DataVerdict::InvalidStream) => {
                let [a, b] = d.stream.to_be_bytes();
                self.queue_error(chunk::CAUSE_INVALID_STREAM, &[a, b, 0, 0]);
                self.sack_now = true;
            }
            Err(_) => {
                let max = self.cfg.max_message_size;
                self.abort_violation(&format!("message larger than the maximum of {max} bytes"));
            }
        }
    }

    /// Unknown chunk types, by their two upper bits (RFC 9260 3.2).
    fn on_unknown_chunk(&mut self, c: &Chunk<'_>) -> Flow {
        let action = c.kind >> 6;
        tracing::debug!(kind = c.kind, "unknown SCTP chunk type");
        if action & 1 != 0 && self.peer.is_some() {
            self.queue_error(chunk::CAUSE_UNRECOGNIZED_CHUNK, c.raw);
        }
        if action & 2 != 0 {
            Flow::Continue
        } else {
            Flow::Stop
        }
    }

    fn on_abort(&mut self, header: &CommonHeader, c: &Chunk<'_>) {
        let reflected = c.flags & chunk::FLAG_T != 0;
        let ours = if reflected {
            self.peer.is_some_and(|p| p.tag == header.vtag)
        } else {
            header.vtag == self.my_tag
        };
        if !ours {
            return;
        }
        let causes = chunk::describe_causes(c.value, chunk::ABORT);
        self.close(Some(format!("peer aborted: {causes}")));
    }

    fn on_shutdown(&mut self, c: &Chunk<'_>, now: Instant) -> Result<(), SctpError> {
        let Some(cum) = Reader::new(c.value).u32() else {
            return Err(SctpError::malformed(chunk::SHUTDOWN, "SHUTDOWN truncated"));
        };
        let a_rwnd = self.tx.peer_arwnd();
        match self.state {
            State::Established | State::ShutdownPending | State::ShutdownReceived => {
                self.tx.on_sack(cum, a_rwnd, std::iter::empty(), false, now);
                self.state = State::ShutdownReceived;
                self.check_shutdown();
            }
            State::ShutdownSent => {
                // Both sides shut down at once (9.2).
                self.state = State::ShutdownAckSent;
                self.shutdown_due = false;
                self.shutdown_ack_due = true;
                self.t2 = Timer::new(self.tx.rto());
            }
            State::ShutdownAckSent => self.shutdown_ack_due = true,
            _ => {}
        }
        Ok(())
    }

    fn on_shutdown_ack(&mut self, header: &CommonHeader) {
        match self.state {
            State::ShutdownSent | State::ShutdownAckSent => {
                if let Some(peer) = self.peer {
                    self.shutdown_complete_due = Some((peer.tag, false));
                }
                self.close(None);
            }
            // Out of the blue (8.4 item 5): answer with a reflected SHUTDOWN COMPLETE.
            State::CookieWait | State::CookieEchoed => {
                self.shutdown_complete_due = Some((header.vtag, true));
            }
            _ => {}
        }
    }

    fn on_error(&mut self, c: &Chunk<'_>) {
        let causes = chunk::describe_causes(c.value, chunk::ERROR);
        tracing::debug!(causes = %causes, "SCTP ERROR chunk received");
        let stale_cookie = Params::new(c.value, chunk::ERROR)
            .flatten()
            .any(|cause| cause.kind == 3);
        if stale_cookie && self.state == State::CookieEchoed {
            // 5.2.6: start over with a new INIT.
            self.state = State::CookieWait;
            self.peer = None;
            self.cookie_echo_due = false;
            self.init_due = true;
            self.t1.deadline = None;
        }
    }

    /// Moves to SHUTDOWN-SENT or SHUTDOWN-ACK-SENT once everything we sent is acknowledged.
    fn check_shutdown(&mut self) {
        match self.state {
            State::ShutdownPending if self.tx.is_drained() => {
                self.state = State::ShutdownSent;
                self.shutdown_due = true;
                self.t2 = Timer::new(self.tx.rto());
            }
            State::ShutdownReceived if self.tx.is_drained() => {
                self.state = State::ShutdownAckSent;
                self.shutdown_ack_due = true;
                self.t2 = Timer::new(self.tx.rto());
            }
            _ => {}
        }
    }
}

impl Association {
    fn peer_from_init(init: &Init<'_>, params: &InitParams<'_>) -> Peer {
        Peer {
            tag: init.initiate_tag,
            initial_tsn: init.initial_tsn,
            a_rwnd: init.a_rwnd,
            outbound_streams: init.outbound_streams,
            inbound_streams: init.inbound_streams,
            forward_tsn: params.forward_tsn,
            reconfig: params.reconfig,
        }
    }

    fn adopt_peer(&mut self, peer: Peer) {
        self.peer = Some(peer);
        self.rx.start(peer.initial_tsn, peer.outbound_streams);
        self.reconfig.start(peer.initial_tsn);
    }

    fn enter_established(&mut self) {
        let Some(peer) = self.peer else {
            return;
        };
        if !matches!(
            self.state,
            State::Idle | State::CookieWait | State::CookieEchoed
        ) {
            return;
        }
        self.state = State::Established;
        self.t1.deadline = None;
        self.init_due = false;
        self.cookie_echo_due = false;
        self.tx
            .start(peer.a_rwnd, peer.inbound_streams, peer.forward_tsn);
        self.events.push(SctpEvent::Established);
    }

    /// INIT (5.1, 5.2.1, 5.2.2): always answered with an INIT ACK carrying our tag and TSN
    /// and a cookie that remembers the peer's INIT; no state changes until COOKIE ECHO.
    fn on_init(&mut self, header: &CommonHeader, c: &Chunk<'_>) -> Result<(), SctpError> {
        let init = Init::parse(c)?;
        let params = parse_init_params(init.params, chunk::INIT)?;
        if matches!(self.state, State::Idle | State::CookieWait) {
            self.local_port = header.dst_port;
            self.peer_port = header.src_port;
        }
        let peer = Self::peer_from_init(&init, &params);
        let cookie = self.make_cookie(&peer);
        let mut ack = Vec::with_capacity(128);
        let a_rwnd = self.rx.a_rwnd(self.events.message_bytes(), self.held);
        let start = chunk::put_init_fixed(
            &mut ack,
            chunk::INIT_ACK,
            self.my_tag,
            a_rwnd,
            MAX_STREAMS,
            self.my_initial_tsn,
        );
        chunk::put_param(&mut ack, chunk::PARAM_STATE_COOKIE, &cookie);
        chunk::put_extension_params(&mut ack);
        for raw in &params.reported {
            chunk::put_param(&mut ack, chunk::PARAM_UNRECOGNIZED, raw);
        }
        chunk::end_chunk(&mut ack, start);
        if self.init_acks.len() >= 2 {
            self.init_acks.pop_front();
        }
        self.init_acks.push_back((init.initiate_tag, ack));
        Ok(())
    }

    /// INIT ACK in COOKIE-WAIT (5.1 C): remember the peer, echo its cookie.
    fn on_init_ack(&mut self, header: &CommonHeader, c: &Chunk<'_>) -> Result<(), SctpError> {
        if self.state != State::CookieWait {
            return Ok(());
        }
        let init = Init::parse(c)?;
        let params = parse_init_params(init.params, chunk::INIT_ACK)?;
        let Some(cookie) = params.cookie else {
            return Err(SctpError::malformed(
                chunk::INIT_ACK,
                "INIT ACK without State Cookie",
            ));
        };
        self.local_port = header.dst_port;
        self.peer_port = header.src_port;
        self.adopt_peer(Self::peer_from_init(&init, &params));
        self.cookie = cookie.to_vec();
        self.state = State::CookieEchoed;
        self.cookie_echo_due = true;
        self.t1 = Timer::new(self.cfg.rto_initial);
        if !params.reported.is_empty() {
            // 3.2.2: report them in an ERROR bundled with the COOKIE ECHO.
            let all: Vec<u8> = params.reported.concat();
            self.queue_error(8, &all);
        }
        Ok(())
    }

    /// COOKIE ECHO (5.1 D, 5.2.4). The packet's tag is ours (checked), and so is the tag in
    /// any cookie we issued; what decides is the peer's tag: new to us means a fresh
    /// association or a collision (action B), the known one means a duplicate or the other
    /// half of a collision (action D). A different peer tag on a live association is a
    /// restart, which is not supported.
    fn on_cookie_echo(&mut self, header: &CommonHeader, c: &Chunk<'_>) -> Result<(), SctpError> {
        let Some(peer) = self.parse_cookie(c.value) else {
            return Err(SctpError::malformed(
                chunk::COOKIE_ECHO,
                "State Cookie not issued by us",
            ));
        };
        let known = self.peer.map(|p| p.tag) == Some(peer.tag);
        match self.state {
            State::Idle | State::CookieWait | State::CookieEchoed => {
                if !known {
                    self.local_port = header.dst_port;
                    self.peer_port = header.src_port;
                    self.adopt_peer(peer);
                }
                self.enter_established();
                self.cookie_ack_due = true;
            }
            State::Closed => {}
            _ => {
                if known {
                    self.cookie_ack_due = true;
                } else {
                    self.peer = Some(peer);
                    self.queue_abort(
                        chunk::CAUSE_PROTOCOL_VIOLATION,
                        b"association restart not supported",
                    );
                    self.close(Some("the peer restarted the association".into()));
                }
            }
        }
        Ok(())
    }

    fn make_cookie(&self, peer: &Peer) -> [u8; COOKIE_LEN] {
        let mut c = [0u8; COOKIE_LEN];
        c[0..4].copy_from_slice(&COOKIE_MAGIC);
        c[4..12].copy_from_slice(&self.secret);
        c[12..16].copy_from_slice(&self.my_tag.to_be_bytes());
        c[16..20].copy_from_slice(&peer.tag.to_be_bytes());
        c[20..24].copy_from_slice(&self.my_initial_tsn.to_be_bytes());
        c[24..28].copy_from_slice(&peer.initial_tsn.to_be_bytes());
        c[28..32].copy_from_slice(&peer.a_rwnd.to_be_bytes());
        c[32..34].copy_from_slice(&peer.outbound_streams.to_be_bytes());
        c[34..36].copy_from_slice(&peer.inbound_streams.to_be_bytes());
        c[36] = u8::from(peer.forward_tsn) | u8::from(peer.reconfig) << 1;
        c
    }

    /// The peer remembered in one of our cookies, if it is ours and for this association.
    fn parse_cookie(&self, value: &[u8]) -> Option<Peer> {
        let c: &[u8; COOKIE_LEN] = value.try_into().ok()?;
        if c[0..4] != COOKIE_MAGIC || c[4..12] != self.secret {
            return None;
        }
        let u32_at = |i: usize| u32::from_be_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
        let u16_at = |i: usize| u16::from_be_bytes([c[i], c[i + 1]]);
        if u32_at(12) != self.my_tag || u32_at(20) != self.my_initial_tsn {
            return None;
        }
        Some(Peer {
            tag: u32_at(16),
            initial_tsn: u32_at(24),
            a_rwnd: u32_at(28),
            outbound_streams: u16_at(32),
            inbound_streams: u16_at(34),
            forward_tsn: c[36] & 1 != 0,
            reconfig: c[36] & 2 != 0,
        })
    }
}

/// Reads the parameters of an INIT or INIT ACK: the extensions, the cookie, and the
/// unrecognized parameters to report (RFC 9260 3.2.1, by their two upper bits).
fn parse_init_params(params: &[u8], kind: u8) -> Result<InitParams<'_>, SctpError> {
    let mut out = InitParams::default();
    for p in Params::new(params, kind) {
        let p = p?;
        match p.kind {
            chunk::PARAM_STATE_COOKIE => out.cookie = Some(p.value),
            chunk::PARAM_FORWARD_TSN_SUPPORTED => out.forward_tsn = true,
            chunk::PARAM_SUPPORTED_EXTENSIONS => {
                for &c in p.value {
                    match c {
                        chunk::FORWARD_TSN => out.forward_tsn = true,
                        chunk::RE_CONFIG => out.reconfig = true,
                        _ => {}
                    }
                }
            }
            chunk::PARAM_IPV4
            | chunk::PARAM_IPV6
            | chunk::PARAM_COOKIE_PRESERVATIVE
            | chunk::PARAM_HOST_NAME
            | chunk::PARAM_SUPPORTED_ADDRESS_TYPES
            | chunk::PARAM_UNRECOGNIZED
            | chunk::PARAM_ECN
            | chunk::PARAM_HEARTBEAT_INFO => {}
            other => {
                let action = other >> 14;
                if action & 1 != 0 && out.reported.len() < 4 && p.raw.len() <= MAX_REPORT {
                    out.reported.push(p.raw);
                }
                if action & 2 == 0 {
                    break;
                }
            }
        }
    }
    Ok(out)
}

impl Association {
    /// Writes the next packet to send into `out` (cleared first). Returns false, with `out`
    /// empty, when nothing is due. Call it until it returns false after every input.
    pub(crate) fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        out.clear();
        self.tx.stamp(now);
        if self.build_packet(now, out) {
            chunk::finish_packet(out);
            self.packets_sent += 1;
            self.bytes_sent += out.len() as u64;
            true
        } else {
            out.clear();
            false
        }
    }

    fn build_packet(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        let (local, remote) = (self.local_port, self.peer_port);
        if let Some((vtag, abort)) = self.abort_due.take() {
            chunk::put_common_header(out, local, remote, vtag);
            out.extend_from_slice(&abort);
            return true;
        }
        if let Some((vtag, reflected)) = self.shutdown_complete_due.take() {
            chunk::put_common_header(out, local, remote, vtag);
            let flags = if reflected { chunk::FLAG_T } else { 0 };
            chunk::put_chunk(out, chunk::SHUTDOWN_COMPLETE, flags, &[]);
            return true;
        }
        if self.state == State::Closed {
            return false;
        }
        // INIT and INIT ACK travel alone.
        if self.init_due && self.state == State::CookieWait {
            self.init_due = false;
            chunk::put_common_header(out, local, remote, 0);
            let window = self.cfg.receive_window;
            let start = chunk::put_init_fixed(
                out,
                chunk::INIT,
                self.my_tag,
                window,
                MAX_STREAMS,
                self.my_initial_tsn,
            );
            chunk::put_extension_params(out);
            chunk::end_chunk(out, start);
            self.t1.deadline = Some(now + self.t1.rto);
            return true;
        }
        if let Some((vtag, ack)) = self.init_acks.pop_front() {
            chunk::put_common_header(out, local, remote, vtag);
            out.extend_from_slice(&ack);
            return true;
        }
        let Some(peer) = self.peer else {
            return false;
        };
        self.check_shutdown();
        let max = self.cfg.max_packet_size;
        chunk::put_common_header(out, local, remote, peer.tag);
        if self.cookie_echo_due && self.state == State::CookieEchoed {
            chunk::put_chunk(out, chunk::COOKIE_ECHO, 0, &self.cookie);
            self.cookie_echo_due = false;
            self.t1.deadline = Some(now + self.t1.rto);
        }
        if self.cookie_ack_due {
            chunk::put_chunk(out, chunk::COOKIE_ACK, 0, &[]);
            self.cookie_ack_due = false;
        }
        if self.shutdown_ack_due && self.state == State::ShutdownAckSent {
            chunk::put_chunk(out, chunk::SHUTDOWN_ACK, 0, &[]);
            self.shutdown_ack_due = false;
            self.t2.deadline = Some(now + self.t2.rto);
        }
        if self.shutdown_due && self.state == State::ShutdownSent {
            chunk::put_chunk(out, chunk::SHUTDOWN, 0, &self.rx.cum_tsn().to_be_bytes());
            self.shutdown_due = false;
            self.t2.deadline = Some(now + self.t2.rto);
        }
        while let Some(c) = self.control.front() {
            if out.len() + chunk::padded(c.len()) > max {
                break;
            }
            out.extend_from_slice(c);
            chunk::pad(out);
            self.control.pop_front();
        }
        if self.receiving() {
            if !self.sack_now && self.window_update_due() {
                self.sack_now = true;
            }
            let bundle = self.sack_deadline.is_some()
                && (out.len() > COMMON_HEADER_LEN
                    || self.data_state() && self.tx.has_data_to_send());
            if (self.sack_now || bundle) && out.len() + 16 <= max {
                let a_rwnd = self.rx.a_rwnd(self.events.message_bytes(), self.held);
                self.rx.write_sack(out, a_rwnd, max - out.len());
                self.sack_now = false;
                self.sack_deadline = None;
                self.data_packets_since_sack = 0;
                self.last_advertised = a_rwnd;
                self.sacks_sent += 1;
            }
        }
        if self.data_state() {
            if self.tx.forward_tsn_due() {
                self.tx.write_forward_tsn(out, max);
            }
            self.write_reconfig(out, max, now);
            if matches!(
                self.state,
                State::Established | State::ShutdownPending | State::ShutdownReceived
            ) {
                self.tx.write_data(out, max, now);
            }
        }
        out.len() > COMMON_HEADER_LEN
    }

    /// Whether our window opened enough since the last SACK that the peer should hear of it
    /// (it may be waiting on a closed window).
    fn window_update_due(&self) -> bool {
        let window = self.cfg.receive_window;
        let rwnd = self.rx.a_rwnd(self.events.message_bytes(), self.held);
        let step = (window / 8).max(self.cfg.max_packet_size as u32);
        self.last_advertised < window / 2 && rwnd >= self.last_advertised.saturating_add(step)
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        let (t3, pto) = if self.data_state() {
            (self.tx.t3(), self.tx.pto())
        } else {
            (None, None)
        };
        [
            self.t1.deadline,
            self.t2.deadline,
            t3,
            pto,
            self.sack_deadline,
            self.reconfig.timer(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the timers that are due at `now` (calling it early or twice is harmless).
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        if self.t1.expired(now) {
            self.t1.deadline = None;
            self.t1.count += 1;
            let what = if self.state == State::CookieEchoed {
                "COOKIE ECHO"
            } else {
                "INIT"
            };
            if self.t1.count > self.cfg.max_init_retransmits {
                let n = self.cfg.max_init_retransmits;
                self.close(Some(format!(
                    "no answer to {what} after {n} retransmissions"
                )));
                return;
            }
            self.t1.rto = (self.t1.rto * 2).min(self.cfg.rto_max);
            match self.state {
                State::CookieWait => self.init_due = true,
                State::CookieEchoed => self.cookie_echo_due = true,
                _ => {}
            }
        }
        if self.t2.expired(now) {
            self.t2.deadline = None;
            self.t2.count += 1;
            if self.t2.count > self.cfg.max_association_retransmits {
                self.close(Some("no answer to SHUTDOWN".into()));
                return;
            }
            self.t2.rto = (self.t2.rto * 2).min(self.cfg.rto_max);
            match self.state {
                State::ShutdownSent => self.shutdown_due = true,
                State::ShutdownAckSent => self.shutdown_ack_due = true,
                _ => {}
            }
        }
        if self.data_state()
            && self.tx.t3().is_some_and(|t| t <= now)
            && self.tx.on_t3(now)
            && self.count_error("DATA")
        {
            return;
        }
        if self.data_state() && self.tx.pto().is_some_and(|t| t <= now) {
            self.tx.on_pto(now);
        }
        if self.sack_deadline.is_some_and(|t| t <= now) {
            self.sack_deadline = None;
            self.sack_now = true;
        }
        self.reconfig_timeout(now);
    }

    /// Counts one unanswered retransmission; closes the association past the limit.
    /// Returns whether it closed.
    pub(super) fn count_error(&mut self, what: &str) -> bool {
        self.assoc_errors += 1;
        if self.assoc_errors > self.cfg.max_association_retransmits {
            let n = self.cfg.max_association_retransmits;
            self.close(Some(format!(
                "peer unreachable: {what} retransmitted {n} times without answer"
            )));
            return true;
        }
        false
    }
}
