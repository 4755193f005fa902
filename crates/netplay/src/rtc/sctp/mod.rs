//! A sans-IO SCTP association for WebRTC data channels: RFC 9260 SCTP carried in DTLS
//! (RFC 8261), with partial reliability (RFC 3758 FORWARD-TSN) and stream resets (RFC 6525
//! RE-CONFIG), as RFC 8831 data channels need it.
//!
//! This is a fully deterministic implementation of the protocol logic. It contains no
//! networking code and does not read the clock: every packet is handed in by
//! [`Association::handle_packet`] (the plaintext of one DTLS record), every packet to send is
//! taken out by [`Association::poll_transmit`], and time is the `now: Instant` passed to each
//! call. The driver's loop is the one of the other cores in this crate:
//!
//! ```text
//! on a DTLS record:   assoc.handle_packet(&plaintext, now)
//! on a timer:         if assoc.poll_timeout() <= now { assoc.handle_timeout(now) }
//! always after:       while assoc.poll_transmit(now, &mut buf) { dtls.send(&buf) }
//!                     while let Some(event) = assoc.poll_event() { ... }
//! ```
//!
//! What it owns: the handshake (INIT, INIT-ACK with a State Cookie, COOKIE-ECHO, COOKIE-ACK,
//! including the simultaneous open that WebRTC stacks perform), DATA fragmentation,
//! bundling, reassembly and ordering, SACKs, congestion control (slow start, congestion
//! avoidance, fast retransmit and fast recovery), retransmission timers, tail loss probes
//! that spare a lost SACK the wait for the retransmission timer, the peer's and our
//! receive windows, abandoning messages by retransmission count or lifetime with
//! FORWARD-TSN, outgoing and incoming stream resets, ABORT and the receiving side of
//! SHUTDOWN, and a CRC32c on every packet.
//!
//! What it does not do: the data channel protocol (DCEP, RFC 8832) and the channel states
//! above it, DTLS and ICE below it, multi-homing (SCTP over DTLS has one path), I-DATA
//! (RFC 8260, not offered), restarts of a live association (a peer that restarts is reported
//! as [`SctpEvent::Closed`]), HEARTBEATs of our own (DTLS and ICE watch the path; the peer's
//! are answered), and the zero-checksum extension (RFC 9653).
//!
//! Cost: the hot path is O(1) amortized per chunk. A message is copied once into a shared
//! buffer when it is queued; its fragments are ranges of that buffer; packets are written
//! straight into the caller's buffer. Chunks in flight sit in a deque indexed by TSN, so a
//! SACK costs the chunks it newly acknowledges plus its gap blocks; chunks to retransmit are
//! queued by TSN when they are marked, never searched for.
//!
//! Limits that hold whatever the peer sends: reassembly and reordering buffers are bounded by
//! our receive window (data beyond it is dropped and acknowledged later, after the
//! retransmission), the out-of-order TSN set by [`MAX_GAP_RANGES`] ranges within 65535 TSNs
//! of the cumulative TSN, duplicate reports by 16, queued control answers by small fixed
//! counts. A malformed packet is discarded with an [`SctpError`] and the association goes on.

mod assoc;
mod chunk;
// The SSE4.2 fast path is the crate's only unsafe code: the `crc32` instruction behind a
// run-time CPU feature check.
#[allow(unsafe_code)]
mod crc32c;
mod reconfig;
mod recv;
mod send;
#[cfg(test)]
mod tests;

use crate::time::Duration;

pub(crate) use assoc::Association;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use crc32c::crc32c;

/// The SCTP port WebRTC uses unless the SDP's `a=sctp-port` says otherwise (RFC 8841).
pub(crate) const DEFAULT_PORT: u16 = 5000;

/// At most this many ranges of out-of-order TSNs are remembered (and reported as gap ack
/// blocks); a DATA chunk that would open one more is dropped until the holes fill.
pub(crate) const MAX_GAP_RANGES: usize = 128;

/// Settings of an [`Association`]. [`Default`] gives the values WebRTC uses.
#[derive(Debug, Clone)]
pub(crate) struct SctpConfig {
    /// Send INIT ourselves. The glue sets it for the DTLS client; a peer's INIT is always
    /// answered, so both sides may set it (simultaneous open, as usrsctp and dcsctp do).
    pub initiate: bool,
    /// Largest SCTP packet we emit, in bytes (DTLS adds about 37 more). At least 256.
    pub max_packet_size: usize,
    /// Largest message we accept from [`Association::send`] and reassemble from the peer; a
    /// peer that sends a larger one is aborted with a Protocol Violation cause.
    pub max_message_size: usize,
    /// Our receive window (a_rwnd) in bytes: what we buffer for reassembly and reordering,
    /// plus undrained [`SctpEvent::Message`]s, plus [`Association::set_held_bytes`]. Raised to
    /// at least `max_message_size` plus one packet, or a large message could never complete.
    pub receive_window: u32,
    /// Send budget: bytes queued plus bytes in flight and not yet acknowledged, over all
    /// streams. [`Association::send`] refuses a message that would go beyond it.
    pub max_buffered_amount: usize,
    /// Retransmission timeout before the first RTT measurement.
    pub rto_initial: Duration,
    /// Lower bound of the retransmission timeout.
    pub rto_min: Duration,
    /// Upper bound of the retransmission timeout (also of the backed-off INIT timer).
    pub rto_max: Duration,
    /// INIT or COOKIE-ECHO retransmissions before giving up with [`SctpEvent::Closed`].
    pub max_init_retransmits: u32,
    /// Consecutive timeouts (DATA, RE-CONFIG, SHUTDOWN) without an answer from the peer
    /// before giving up with [`SctpEvent::Closed`].
    pub max_association_retransmits: u32,
}

impl Default for SctpConfig {
    fn default() -> Self {
        SctpConfig {
            initiate: true,
            max_packet_size: 1160,
            max_message_size: 256 * 1024,
            receive_window: 1024 * 1024,
            max_buffered_amount: 2 * 1024 * 1024,
            rto_initial: Duration::from_secs(1),
            rto_min: Duration::from_millis(200),
            rto_max: Duration::from_secs(10),
            max_init_retransmits: 8,
            max_association_retransmits: 10,
        }
    }
}

/// How hard the association tries to deliver one message (RFC 3758 partial reliability).
///
/// A message that is given up ("abandoned") is never delivered; the receiver is told with a
/// FORWARD-TSN to move on, so the messages after it still arrive. Without FORWARD-TSN support
/// in the peer every message is sent [`Reliable`](Reliability::Reliable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reliability {
    /// Retransmitted until acknowledged.
    Reliable,
    /// Retransmitted at most this many times; `MaxRetransmits(0)` is sent once.
    MaxRetransmits(u16),
    /// Abandoned once this much time has passed since [`Association::send`], whether or not
    /// it was sent by then.
    MaxLifetime(Duration),
}

/// What the association reports, drained with [`Association::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SctpEvent {
    /// The handshake completed; data flows both ways.
    Established,
    /// A complete message. Ordered messages of one stream come in the order they were sent.
    Message {
        /// The stream (the data channel's id).
        stream: u16,
        /// The payload protocol identifier (RFC 8831: 50 DCEP, 51 string, 53 binary, ...).
        ppid: u32,
        /// The message.
        data: Vec<u8>,
    },
    /// The peer reset its outgoing side of these streams (RFC 6525): their sequence numbers
    /// start again at 0. Empty means all streams.
    IncomingStreamsReset(Vec<u16>),
    /// Our reset of these streams ([`Association::reset_streams`]) was performed by the peer;
    /// they can be used again, from sequence number 0.
    OutgoingStreamsReset(Vec<u16>),
    /// The peer refused our reset of these streams, or cannot reset streams at all. They can
    /// be used again, with their sequence numbers unchanged.
    OutgoingStreamsResetFailed(Vec<u16>),
    /// The association is over: `error` is `None` after a SHUTDOWN exchange or our own
    /// [`Association::abort`], otherwise it says why (the peer's ABORT and its cause, too
    /// many retransmissions, a protocol violation).
    Closed {
        /// Why it closed, if not cleanly.
        error: Option<String>,
    },
}

/// A packet given to [`Association::handle_packet`] was discarded, wholly or from the
/// offending chunk on. The association is unaffected and keeps working.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SctpError {
    /// Shorter than the 12-byte common header plus one chunk header.
    #[error("SCTP packet of {0} bytes is too short")]
    TooShort(usize),
    /// The CRC32c does not match the packet.
    #[error("SCTP checksum mismatch")]
    Checksum,
    /// The verification tag is not the one this association expects.
    #[error("SCTP verification tag mismatch")]
    VerificationTag,
    /// A chunk, parameter or field does not parse.
    #[error("malformed SCTP chunk (type {chunk}): {what}")]
    Malformed {
        /// The chunk type.
        chunk: u8,
        /// What is wrong with it.
        what: &'static str,
    },
    /// The association is closed.
    #[error("SCTP association is closed")]
    Closed,
}

impl SctpError {
    fn malformed(chunk: u8, what: &'static str) -> SctpError {
        SctpError::Malformed { chunk, what }
    }
}

/// Why [`Association::send`] refused a message. Nothing was queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SendError {
    /// The association is closed or shutting down.
    #[error("SCTP association is not open")]
    NotOpen,
    /// The message is larger than [`SctpConfig::max_message_size`].
    #[error("message of {size} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The message's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Queued and unacknowledged bytes would exceed [`SctpConfig::max_buffered_amount`].
    #[error("SCTP send buffer is full")]
    BufferFull,
    /// The stream is being reset ([`Association::reset_streams`]).
    #[error("stream {0} is being reset")]
    StreamResetting(u16),
    /// The stream id is not below the number of streams negotiated with the peer.
    #[error("stream {0} is beyond the negotiated stream count")]
    InvalidStream(u16),
    /// Empty messages cannot be sent in SCTP (data channels send one zero byte with PPID 56
    /// or 57 instead).
    #[error("empty SCTP message")]
    Empty,
}

/// Counters and the congestion state, for tests, benchmarks and debugging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SctpStats {
    /// Smoothed round-trip time, once measured.
    pub srtt: Option<Duration>,
    /// Current retransmission timeout.
    pub rto: Duration,
    /// Congestion window in bytes.
    pub cwnd: usize,
    /// Slow start threshold in bytes.
    pub ssthresh: usize,
    /// Bytes sent and neither acknowledged nor marked for retransmission.
    pub flight_bytes: usize,
    /// The peer's receive window as last advertised, minus what we sent since.
    pub peer_rwnd: u32,
    /// The receive window we advertised last.
    pub advertised_rwnd: u32,
    /// Packets emitted by `poll_transmit`.
    pub packets_sent: u64,
    /// Packets given to `handle_packet` (including discarded ones).
    pub packets_received: u64,
    /// Bytes of the packets emitted.
    pub bytes_sent: u64,
    /// Bytes of the packets received.
    pub bytes_received: u64,
    /// DATA chunks sent, first transmissions only.
    pub data_chunks_sent: u64,
    /// DATA chunks retransmitted (fast retransmit and timeouts).
    pub retransmitted_chunks: u64,
    /// Fast retransmit events (entries into fast recovery or not).
    pub fast_retransmits: u64,
    /// Expirations of the retransmission timer.
    pub t3_expirations: u64,
    /// Messages abandoned under partial reliability.
    pub abandoned_messages: u64,
    /// FORWARD-TSN chunks sent.
    pub forward_tsns_sent: u64,
    /// Tail loss probes sent: packets that make a silent peer SACK before T3 expires.
    pub tail_loss_probes: u64,
    /// Complete messages delivered to us.
    pub messages_received: u64,
    /// SACK chunks sent.
    pub sacks_sent: u64,
    /// DATA chunks received that were already received (duplicates).
    pub duplicate_chunks_received: u64,
    /// DATA chunks dropped because they did not fit our window or TSN tracking limits.
    pub dropped_chunks: u64,
}
