//! Errors of the STUN and TURN codec.
//!
//! One enum for everything the codec refuses, on decode (malformed or forged input from a peer)
//! and on encode (values that do not fit the wire format).

use super::AttributeType;

/// Why a STUN message or ChannelData frame was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Fewer bytes than the 20-byte STUN header.
    #[error("{len} bytes is shorter than the 20-byte STUN header")]
    TooShort {
        /// How many bytes there were.
        len: usize,
    },
    /// The first two bits are not zero, so this is not a STUN message (RFC 8489 §5).
    #[error("not a STUN message: the first two bits are not zero")]
    NotStun,
    /// The magic cookie is not 0x2112A442.
    #[error("wrong magic cookie {0:#010x}")]
    BadMagicCookie(u32),
    /// The header's message length is not a multiple of 4.
    #[error("message length {0} is not a multiple of 4")]
    UnalignedLength(u16),
    /// The header's message length disagrees with the bytes that follow the header.
    #[error("the header announces {declared} bytes of attributes but {actual} follow")]
    LengthMismatch {
        /// The length in the header.
        declared: usize,
        /// The bytes after the header.
        actual: usize,
    },
    /// An attribute's length runs past the end of the message.
    #[error("the attribute at byte {offset} runs past the end of the message")]
    TruncatedAttribute {
        /// Where the attribute's header starts in the message.
        offset: usize,
    },
    /// More attributes than [`MAX_ATTRIBUTES`](super::MAX_ATTRIBUTES).
    #[error("more than {max} attributes")]
    TooManyAttributes {
        /// The limit.
        max: usize,
    },
    /// A known attribute whose value does not follow its format.
    #[error("malformed {typ} attribute: {reason}")]
    InvalidAttribute {
        /// The attribute.
        typ: AttributeType,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An attribute where the rules of RFC 8489 §14.5-§14.7 forbid one: anything but
    /// MESSAGE-INTEGRITY-SHA256 and FINGERPRINT after MESSAGE-INTEGRITY, anything but
    /// FINGERPRINT after MESSAGE-INTEGRITY-SHA256, anything at all after FINGERPRINT.
    #[error("{typ} attribute after {after}")]
    MisplacedAttribute {
        /// The attribute out of place.
        typ: AttributeType,
        /// The attribute it follows.
        after: AttributeType,
    },
    /// The FINGERPRINT attribute does not match the CRC-32 of the message.
    #[error("FINGERPRINT does not match the message")]
    FingerprintMismatch,
    /// Integrity was required but the message has no MESSAGE-INTEGRITY attribute.
    #[error("the message has no MESSAGE-INTEGRITY attribute")]
    MissingIntegrity,
    /// MESSAGE-INTEGRITY does not match the message under the key.
    #[error("MESSAGE-INTEGRITY does not match")]
    IntegrityMismatch,
    /// A value to encode is longer than the wire format or the RFC allows.
    #[error("{what} is {len} bytes, over the limit of {max}")]
    TooLong {
        /// What is too long.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// A value to encode is out of its range.
    #[error("invalid {what}")]
    InvalidValue {
        /// What is out of range.
        what: &'static str,
    },
    /// A TURN channel number outside 0x4000..=0x4FFF (RFC 8656 §12).
    #[error("channel number {0:#06x} is outside 0x4000..=0x4FFF")]
    InvalidChannel(u16),
    /// A ChannelData frame whose length field disagrees with the bytes present.
    #[error("ChannelData announces {declared} bytes of data but {actual} bytes follow its header")]
    ChannelDataLength {
        /// The length in the ChannelData header.
        declared: usize,
        /// The bytes after the header.
        actual: usize,
    },
    /// A client transaction was given a message that is not a request.
    #[error("a client transaction needs a request, not a {0:?}")]
    NotARequest(super::Class),
}
