//! WebSocket (RFC 6455, RFC 7692): the sans-IO protocol core and the Godot-style peers on top.
//!
//! * [`protocol`], [`frame`], [`handshake`], [`utf8`] and `deflate` are the sans-IO core: bytes
//!   in, bytes and events out, no sockets, no clocks, no threads.
//! * [`WebSocketPeer`] is Godot's polled `WebSocketPeer` over non-blocking std sockets (client
//!   and server side), with TLS through rustls.
//! * `tokio` (feature `tokio`) drives the same core for servers with many connections.

pub mod frame;
pub mod handshake;
mod outbuf;
pub mod protocol;
pub(crate) mod random;
pub mod utf8;

#[cfg(feature = "deflate")]
pub mod deflate;

mod error;
pub use error::{Error, ProtocolError};
pub use protocol::{Config, Connection, Event, MessageKind, Role};

mod peer;
mod tcp_server;
#[cfg(feature = "tls")]
pub mod tls;
mod transport;
pub mod url;

#[cfg(feature = "deflate")]
pub use deflate::DeflateConfig;
pub use peer::{PeerOptions, ReadyState, WebSocketPeer, WriteMode};
pub use tcp_server::TcpServer;
#[cfg(feature = "tls")]
pub use tls::TlsOptions;
#[cfg(feature = "tokio")]
pub mod tokio;
#[cfg(feature = "tokio")]
pub(crate) use random::fill as random_fill;
