//! netplay: Godot 4's web networking stack in Rust.
//!
//! * [`ws`]: WebSocket (RFC 6455 with RFC 7692 compression): a sans-IO protocol core and
//!   Godot's polled [`ws::WebSocketPeer`]: client and server over std sockets, client over the
//!   browser's `WebSocket` on the web.
//! * [`stun`]: a sans-IO STUN (RFC 8489) and TURN (RFC 8656) message codec, the building block
//!   of ICE candidate gathering.
//! * [`rtc`] (feature `webrtc`): Godot's `WebRTCPeerConnection` and `WebRTCDataChannel`,
//!   native, polled (str0m's ICE and DTLS, netplay's own SCTP): negotiated and in-band data
//!   channels in every reliability mode.
//! * [`signal`]: Godot's `webrtc_signaling` demo protocol: the sans-IO lobby core of its
//!   server, the polled client and an in-process signaling.
//! * [`multiplayer`]: Godot's `MultiplayerPeer`, with ids, targets, transfer modes and
//!   channels, over WebSocket ([`multiplayer::WebSocketMultiplayerPeer`]).
//! * [`time`] and [`random`]: the crate-wide `Instant` (which also works in the browser) and
//!   the one source of randomness.
//!
//! The servers that run these protocols at scale (the tokio WebSocket driver, the signaling
//! server and its Redis scale-out) are in the `netplay-server` crate: a game does not link
//! them.
//!
//! # Platforms
//!
//! The protocol cores (WebSocket, STUN/TURN, SCTP, SDP, the signaling hub) are sans-IO and
//! build for every target, `wasm32-unknown-unknown` included. The game-facing types are declared
//! once and backed by a platform: [`ws::WebSocketPeer`], [`signal::Client`], `rtc::PeerConnection`
//! and the multiplayer peers on them run natively (std sockets, netplay's WebRTC stack) and in
//! the browser (its own `WebSocket` and `RTCPeerConnection`). A browser cannot listen, send
//! handshake headers or pings, pick TLS roots or gather candidates of the caller's, and the
//! methods for those say "native only"; `TcpServer` and the WebSocket server are native.
//!
//! # Conventions
//!
//! * Draining: `poll_event()` gives what happened (every module), `poll_transmit()` what to
//!   send; a core says when it needs the time again with `poll_timeout()` and is given it with
//!   `handle_timeout(now)`. Every `now` is a [`time::Instant`]; the polled types read the clock
//!   in `poll()` and take the caller's in `poll_at(now)`.
//! * Errors: each module's is `Error` ([`ws::Error`], [`stun::Error`], [`signal::Error`], and
//!   `rtc::Error`); a part with errors of its own names them after itself where they stand
//!   beside the module's (`stun::TurnError`, `ws::deflate::DeflateError`). Nothing a peer sends panics:
//!   it is a typed error, or a close with a code and a reason.
//! * Godot's enums keep Godot's integer values, given by `godot_value()`.
//! * Randomness comes from [`random`] (the operating system's source, or a seeded [`random::Rng`]
//!   in tests).
//!
//! # The run loop
//!
//! As in Godot, nothing happens between two calls to `poll()`: call it every frame, then read
//! the state and drain the packets. A server accepts TCP streams from a [`ws::TcpServer`] and
//! hands each to its own peer:
//!
//! ```no_run
//! use netplay::ws::{ReadyState, TcpServer, WebSocketPeer, WriteMode};
//!
//! let mut server = TcpServer::new();
//! server.listen("127.0.0.1:9080".parse().unwrap())?;
//! let mut peers: Vec<WebSocketPeer> = Vec::new();
//! loop {
//!     while let Some(stream) = server.take_connection() {
//!         let mut peer = WebSocketPeer::new();
//!         peer.accept_stream(stream, None).ok();
//!         peers.push(peer);
//!     }
//!     for peer in &mut peers {
//!         peer.poll();
//!         while let Some(packet) = peer.get_packet() {
//!             let mode = if peer.was_string_packet() { WriteMode::Text } else { WriteMode::Binary };
//!             peer.send(&packet, mode).ok(); // echo
//!         }
//!     }
//!     peers.retain(|p| p.ready_state() != ReadyState::Closed);
//!     std::thread::sleep(std::time::Duration::from_millis(1));
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use api::{ReadyState, WriteMode};

mod api;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz;
pub mod multiplayer;
pub mod random;
#[cfg(feature = "webrtc")]
#[cfg_attr(docsrs, doc(cfg(feature = "webrtc")))]
pub mod rtc;
pub mod signal;
pub mod stun;
pub mod time;
pub mod ws;

/// The README's examples compile as doc tests, so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
