//! netplay: Godot 4's web networking stack in Rust.
//!
//! * [`ws`]: WebSocket (RFC 6455 with RFC 7692 compression): a sans-IO protocol core, Godot's
//!   polled `WebSocketPeer` (client and server) over std sockets, and a tokio driver for servers.
#![warn(missing_docs)]

pub mod ws;
