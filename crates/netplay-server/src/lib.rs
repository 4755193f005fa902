//! netplay's server side: what runs a service, not what a game links.
//!
//! * [`ws`]: the tokio WebSocket driver, netplay's sans-IO WebSocket core
//!   ([`netplay::ws::Connection`]) serving many connections from one process, with optional TLS
//!   and plain HTTP on the same port.
//! * [`serve`]: the signaling server of Godot's `webrtc_signaling` demo protocol: a
//!   [`netplay::signal::Hub`] behind the tokio driver, with `/healthz`, `/metrics`, the demo page
//!   and static files.
//! * [`relay`](mod@relay): a headless `WebSocketMultiplayerPeer` server with Godot's `SceneMultiplayer`
//!   relay, one session per URL path, for games whose clients talk through a server.
//! * [`cluster`] and [`redis`]: several signaling servers sharing their lobbies through Redis.
//!
//! The protocol rules live in the `netplay` crate's sans-IO cores; this crate owns the runtime
//! (tokio), sockets and timers around them. A game, native or in the browser, depends on
//! `netplay` alone; the `netplay` command uses this crate for `serve`, `relay` and `echo`.
#![forbid(unsafe_code)]

pub mod cluster;
mod limits;
pub mod redis;
pub mod relay;
mod server;
pub mod ws;

pub use relay::{relay, RelayOptions};
pub use server::{serve, ServerOptions, DEMO_JS, DEMO_PAGE, DEMO_WASM};
