//! WebSocket (RFC 6455, RFC 7692): the sans-IO protocol core and the Godot-style peers on top.
//!
//! * [`protocol`], [`frame`], [`handshake`], [`utf8`] and `deflate` are the sans-IO core: bytes
//!   in, bytes and events out, no sockets, no clocks, no threads.
//! * [`WebSocketPeer`] is Godot's polled `WebSocketPeer`. It is declared once in `peer` (API and
//!   docs); platforms implement it: `native` (client and server, non-blocking std sockets, TLS
//!   through rustls) and, on `wasm32-unknown-unknown`, `web` (a client over the browser's own
//!   `WebSocket`).
//!
//! The `netplay-server` crate drives the same core on tokio for servers with many connections.

pub mod frame;
pub mod handshake;
mod outbuf;
pub mod protocol;
pub mod utf8;

#[cfg(feature = "deflate")]
pub mod deflate;

mod error;
pub use error::{Error, ProtocolError};
pub use protocol::{Config, Connection, Event, MessageKind, Role};

#[cfg(not(target_arch = "wasm32"))]
mod native;
mod peer;
#[cfg(not(target_arch = "wasm32"))]
mod tcp_server;
#[cfg(all(feature = "tls", not(target_arch = "wasm32")))]
pub mod tls;
#[cfg(not(target_arch = "wasm32"))]
mod transport;
pub mod url;
#[cfg(target_arch = "wasm32")]
mod web;

pub use crate::api::{ReadyState, WriteMode};
#[cfg(feature = "deflate")]
pub use deflate::DeflateConfig;
pub use peer::{PeerOptions, WebSocketPeer};
#[cfg(not(target_arch = "wasm32"))]
pub use tcp_server::TcpServer;
#[cfg(all(feature = "tls", not(target_arch = "wasm32")))]
pub use tls::TlsOptions;
