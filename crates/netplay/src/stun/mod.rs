//! STUN (RFC 8489) and TURN (RFC 8656) messages: a sans-IO codec for the WebRTC transport.
//!
//! This module owns the wire format of STUN messages and TURN ChannelData frames, and nothing
//! that touches a socket or a clock:
//!
//! * [`Message`], [`MessageType`], [`TransactionId`] and [`Attribute`] encode and decode STUN
//!   messages, with MESSAGE-INTEGRITY (HMAC-SHA1) and FINGERPRINT (CRC-32) computed on encode and
//!   checked on decode ([`verify_integrity`], [`Message::decode_verified`]).
//!   MESSAGE-INTEGRITY-SHA256 is decoded but neither computed nor verified: the crate carries no
//!   SHA-256, and RFC 8489 keeps HMAC-SHA1 as the baseline that ICE and TURN servers accept.
//! * [`Key`] derives the HMAC key from short-term (ICE) or long-term (TURN) credentials.
//! * [`ChannelData`] frames application data on a TURN channel (RFC 8656 §12.4).
//! * [`classify`], [`is_stun`] and [`frame_len`] tell STUN, ChannelData and DTLS apart on one
//!   socket (RFC 7983) and cut a byte stream (TCP/TLS transports) into messages.
//! * [`ClientTransaction`] is the client side of one request over UDP: the retransmission
//!   schedule of RFC 8489 §6.2.1 as data, with the time passed in by the caller.
//! * [`turn::TurnClient`] is a TURN client over UDP built on these pieces: the allocation, its
//!   401 realm/nonce exchange, refreshes, permissions, channel bindings and relayed data, with
//!   the socket and the clock left to the caller.
//!
//! # Getting a server-reflexive address
//!
//! ```
//! use std::time::Instant;
//! use netplay::stun::{Action, ClientTransaction, Message};
//! # use netplay::stun::{Attribute, Class, MessageType, Method};
//!
//! let mut tx = ClientTransaction::binding();
//! // The caller owns the clock: it passes the time, and polls again at `tx.next_timeout()` or
//! // when a datagram arrives.
//! match tx.poll(Instant::now()) {
//!     Action::Transmit(bytes) => { /* socket.send_to(bytes, stun_server) */ let _ = bytes; }
//!     other => unreachable!("{other:?}"),
//! }
//! # let success = MessageType::new(Class::Success, Method::Binding);
//! # let datagram = Message::new(success, tx.transaction_id())
//! #     .with(Attribute::XorMappedAddress("192.0.2.1:32853".parse().unwrap()))
//! #     .encode(None, true)
//! #     .unwrap();
//! // For each datagram received from the server:
//! if let Ok(response) = Message::decode(&datagram) {
//!     if tx.handle_response(&response) {
//!         let mapped = response.reflexive_address();
//!         assert_eq!(mapped, Some("192.0.2.1:32853".parse().unwrap()));
//!     }
//! }
//! ```

mod attribute;
mod channel;
mod crypto;
mod demux;
mod error;
mod key;
mod message;
mod transaction;
pub mod turn;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod turn_tests;

pub use attribute::{Attribute, AttributeType, ErrorCode, MAX_TEXT_LEN, REQUESTED_TRANSPORT_UDP};
pub use channel::{ChannelData, CHANNEL_NUMBERS};
pub use demux::{classify, frame_len, is_stun, PacketKind};
pub use error::Error;
pub use key::Key;
pub use message::{
    verify_integrity, Class, Message, MessageType, Method, TransactionId, HEADER_LEN, MAGIC_COOKIE,
    MAX_ATTRIBUTES,
};
pub use transaction::{Action, ClientTransaction, RetransmitSchedule, TransactionState};
pub use turn::{Handled, TurnClient, TurnConfig, TurnError, TurnEvent, TurnFailure, TurnState};
