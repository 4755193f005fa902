//! Errors of the WebSocket core and peers.

/// A protocol violation and the close code it is answered with (RFC 6455 §7.4.1).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("WebSocket protocol error {code}: {reason}")]
pub struct ProtocolError {
    /// The close code sent to the peer: 1002 (protocol), 1007 (bad data), 1009 (too big)...
    pub code: u16,
    /// A short reason, also sent in the close frame.
    pub reason: &'static str,
}

impl ProtocolError {
    /// A new protocol error.
    pub const fn new(code: u16, reason: &'static str) -> ProtocolError {
        ProtocolError { code, reason }
    }
}

/// Everything that can go wrong with a WebSocket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL could not be used (Godot: ERR_INVALID_PARAMETER).
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// An argument is out of range or not allowed here (Godot: ERR_INVALID_PARAMETER).
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// The peer is busy with another connection (Godot: ERR_ALREADY_IN_USE).
    #[error("the peer is already connecting or connected")]
    AlreadyInUse,
    /// The operation needs an open connection (Godot: ERR_UNCONFIGURED / FAILED).
    #[error("the connection is not open")]
    NotOpen,
    /// The opening handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// The handshake did not finish in time.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The peer broke the protocol; the connection was closed with `code`.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// An outgoing message does not fit the outbound buffer (Godot: ERR_OUT_OF_MEMORY).
    #[error("outbound buffer full: {queued} bytes queued + {size} > limit {limit}")]
    OutboundFull {
        /// Bytes already queued.
        queued: usize,
        /// Size of the message that was refused.
        size: usize,
        /// The limit (`outbound_buffer_size`).
        limit: usize,
    },
    /// Too many outgoing messages are queued (Godot: ERR_OUT_OF_MEMORY).
    #[error("outbound queue full ({0} messages)")]
    QueueFull(usize),
    /// A text message is not valid UTF-8.
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
    /// TLS failed or is misconfigured.
    #[error("TLS: {0}")]
    Tls(String),
    /// An I/O error from the socket.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}
