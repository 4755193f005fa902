//! The error type of the WebRTC module: every way a call on a peer connection or data channel
//! can fail, typed, so nothing fails silently.

use std::io;

/// Why a call on a [`PeerConnection`](super::PeerConnection) or a
/// [`DataChannel`](super::DataChannel) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An ICE server URL is not a valid `stun:`, `stuns:`, `turn:` or `turns:` URI.
    #[error("invalid ICE server URL {url:?}: {reason}")]
    InvalidIceServerUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A valid ICE server URL this implementation cannot use: `stuns:`, `turns:` or
    /// `?transport=tcp` (only STUN and TURN over UDP are supported).
    #[error("unsupported ICE server URL {url:?}: {reason}")]
    UnsupportedIceServer {
        /// The URL as given.
        url: String,
        /// What is not supported.
        reason: &'static str,
    },
    /// A configuration value is out of range or inconsistent with another.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    /// Both `max_retransmits` and `max_packet_life_time` were given for one channel.
    #[error("a data channel takes max_retransmits or max_packet_life_time, not both")]
    BothReliabilityOptions,
    /// A data channel option is out of range (label or protocol too long, id 65535).
    #[error("invalid data channel option: {0}")]
    InvalidChannelOption(&'static str),
    /// A negotiated data channel with this SCTP stream id already exists.
    #[error("a data channel with stream id {0} already exists")]
    DuplicateChannelId(u16),
    /// The connection has [`PeerConfig::max_channels`](super::PeerConfig) channels already.
    #[error("too many data channels: at most {max} per connection")]
    TooManyChannels {
        /// The limit.
        max: usize,
    },
    /// `create_offer` was called without any data channel to negotiate.
    #[error("create_offer needs at least one data channel")]
    NoDataChannels,
    /// The call is not allowed in the current signaling or connection state.
    #[error("{operation} is not allowed now: {reason}")]
    InvalidState {
        /// The call that was refused.
        operation: &'static str,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A session description type other than `offer` or `answer`.
    #[error("unsupported session description type {0:?} (only \"offer\" and \"answer\")")]
    UnsupportedSdpKind(String),
    /// The session description could not be parsed.
    #[error("malformed session description: {0}")]
    InvalidSdp(String),
    /// The session description parsed but could not be applied (for example, no
    /// `a=fingerprint`, or an answer that does not match the offer).
    #[error("session description rejected: {0}")]
    SdpRejected(String),
    /// `set_local_description` was given a description that this peer did not create.
    #[error("set_local_description does not match the description this peer created")]
    LocalDescriptionMismatch,
    /// An ICE candidate line could not be parsed.
    #[error("malformed ICE candidate: {0}")]
    InvalidCandidate(String),
    /// The ICE candidate is valid but cannot be used natively (an mDNS `.local` host name).
    #[error("unsupported ICE candidate: {0}")]
    UnsupportedCandidate(String),
    /// No local socket could be bound for gathering.
    #[error("no local UDP socket could be bound for ICE gathering")]
    NoLocalAddresses,
    /// The message is larger than the maximum message size agreed with the remote peer.
    #[error("message of {size} bytes exceeds the maximum message size of {max} bytes")]
    MessageTooLarge {
        /// The size of the refused message.
        size: usize,
        /// The largest message that may be sent.
        max: usize,
    },
    /// The send buffer has no room for the message: wait until `buffered_amount()` drops.
    #[error("send buffer full: {size} bytes do not fit (buffered: {buffered} bytes)")]
    BufferFull {
        /// The size of the refused message.
        size: usize,
        /// The bytes already waiting to be sent and acknowledged on this channel.
        buffered: usize,
    },
    /// The data channel is not open (still connecting, closing or closed).
    #[error("data channel is not open")]
    ChannelNotOpen,
    /// The peer connection is closed or failed.
    #[error("peer connection is closed")]
    Closed,
    /// An operating system error on a socket.
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    /// The WebRTC engine refused an operation for a reason not covered above.
    #[error("WebRTC engine error: {0}")]
    Engine(String),
}

/// The result type of the WebRTC module.
pub type Result<T, E = Error> = std::result::Result<T, E>;
