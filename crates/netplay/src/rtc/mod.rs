//! Native WebRTC: Godot's `WebRTCPeerConnection` and `WebRTCDataChannel`, polled, without
//! threads.
//!
//! [`PeerConnection`] drives a sans-IO stack: str0m's ICE agent and DTLS (its `rust-crypto`
//! provider, no OpenSSL), netplay's own SCTP association (built for throughput: no per-packet
//! scans of what is in flight) and DCEP, and netplay's own SDP for data-only sessions. It owns
//! the UDP sockets and candidate gathering, the offer/answer state machine with Godot's
//! events, and the connection-state timers (Disconnected, Failed). Data channels are
//! [`DataChannel`] views borrowed from their connection, addressed by [`ChannelId`].
//!
//! Candidates: host candidates from the local sockets; server-reflexive ones from the `stun:`
//! servers of [`PeerConfig::ice_servers`] (a Binding request from each socket); relayed ones
//! from its `turn:` servers (an allocation per socket, built on [`stun::turn`](crate::stun::turn),
//! refreshed for the connection's lifetime and released on close). Fill `ice_servers` as in
//! Godot and the connection does the rest; a server that gives nothing is reported as
//! [`Event::IceCandidateError`] and gathering completes without it.
//! [`PeerConfig::relay_only`] (W3C `iceTransportPolicy: "relay"`) announces relayed
//! candidates only. Other sources plug in as a [`CandidateSource`].
//!
//! What this module does not do: signaling (carry the descriptions and candidates to the other
//! peer yourself, as in Godot, for example over [`signal`](crate::signal)) and media.
//!
//! The API is the one a browser `RTCPeerConnection` offers, so it can be implemented over one:
//! signals become [`Event`]s drained after [`PeerConnection::poll`], Godot's states keep
//! their integer values (`godot_value()`). [`PeerConnection`] and [`DataChannel`] are declared
//! once, with their documentation (`peer`, `channel`, and the states and events in `state`);
//! each forwards to the platform's connection, natively the [`Engine`] over UDP sockets
//! (`native`, `engine_channel`, `udp`); on `wasm32-unknown-unknown`, the browser's own
//! `RTCPeerConnection` (`web`), where ICE, DTLS and SCTP are the browser's and the native-only
//! parts (`PeerConnection::engine`, `PeerConnection::wait`, candidate sources, the `Engine`
//! itself) are absent.
//!
//! Differences from Godot, all on the side of not failing silently: errors are typed
//! ([`Error`]); an oversized message or a full send buffer is an error instead of a lost
//! message; a full inbound queue pauses reading (back pressure to the sender) instead of
//! dropping; a remote peer that vanishes turns the connection
//! [`Disconnected`](ConnectionState::Disconnected), then
//! [`Failed`](ConnectionState::Failed) after [`PeerConfig::ice_failed_timeout`].
//!
//! Known limits: one offer/answer exchange per connection (no renegotiation or ICE restart;
//! channels added later need none); ICE over UDP only (TCP candidates are ignored, mDNS
//! `.local` candidates are refused with [`Error::UnsupportedCandidate`]). STUN and
//! TURN servers are reached over UDP only: `stuns:`, `turns:` and `?transport=tcp` URLs are
//! refused by [`PeerConnection::new`] with [`Error::UnsupportedIceServer`]; a server's host
//! name is resolved by the system resolver when gathering starts (that call blocks meanwhile);
//! an unanswered server holds gathering back for [`PeerConfig::ice_server_timeout`] (39.5 s
//! by default, as in browsers); a server-reflexive candidate equal to a host candidate is not
//! announced, and relayed candidates carry `raddr 0.0.0.0`.
//!
//! # The run loop
//!
//! Two peers in one process, wired directly (a real application sends the descriptions and
//! candidates through a signaling server):
//!
//! ```
//! use std::time::{Duration, Instant};
//! use netplay::rtc::{DataChannelOptions, Event, PeerConfig, PeerConnection, ReadyState};
//!
//! // Signaling: what one peer creates, the other one applies.
//! fn relay(from: &mut PeerConnection, to: &mut PeerConnection) -> netplay::rtc::Result<()> {
//!     while let Some(event) = from.poll_event() {
//!         match event {
//!             Event::SessionDescriptionCreated { kind, sdp } => {
//!                 from.set_local_description(kind, &sdp)?;
//!                 to.set_remote_description(kind, &sdp)?;
//!             }
//!             Event::IceCandidateCreated { mid, index, candidate } => {
//!                 to.add_ice_candidate(&mid, index, &candidate)?;
//!             }
//!             _ => {}
//!         }
//!     }
//!     Ok(())
//! }
//!
//! let mut p1 = PeerConnection::new(PeerConfig::loopback())?;
//! let mut p2 = PeerConnection::new(PeerConfig::loopback())?;
//! let ch1 = p1.create_data_channel("chat", DataChannelOptions::negotiated(1))?;
//! let ch2 = p2.create_data_channel("chat", DataChannelOptions::negotiated(1))?;
//! p1.create_offer()?;
//!
//! let deadline = Instant::now() + Duration::from_secs(10);
//! let mut sent = false;
//! let mut received = None;
//! while received.is_none() && Instant::now() < deadline {
//!     p1.poll();
//!     p2.poll();
//!     relay(&mut p1, &mut p2)?;
//!     relay(&mut p2, &mut p1)?;
//!     let mut c1 = p1.channel(ch1).unwrap();
//!     if !sent && c1.ready_state() == ReadyState::Open {
//!         c1.put_packet(b"Hi from P1")?;
//!         sent = true;
//!     }
//!     received = p2.channel(ch2).unwrap().get_packet();
//!     std::thread::sleep(Duration::from_millis(1));
//! }
//! assert_eq!(received.as_deref(), Some(&b"Hi from P1"[..]));
//! # Ok::<(), netplay::rtc::Error>(())
//! ```

mod channel;
#[cfg(not(target_arch = "wasm32"))]
mod channels;
mod config;
#[cfg(not(target_arch = "wasm32"))]
mod dcep;
#[cfg(not(target_arch = "wasm32"))]
mod engine;
#[cfg(not(target_arch = "wasm32"))]
mod engine_channel;
mod error;
mod gather;
#[cfg(not(target_arch = "wasm32"))]
mod ice_sources;
#[cfg(not(target_arch = "wasm32"))]
mod impair;
#[cfg(not(target_arch = "wasm32"))]
mod native;
mod peer;
#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod sctp;
#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod sdp;
mod state;
#[cfg(not(target_arch = "wasm32"))]
mod transport;
#[cfg(not(target_arch = "wasm32"))]
mod udp;
#[cfg(target_arch = "wasm32")]
mod web;

pub use channel::{ChannelCounters, ChannelId, DataChannel, ReadyState, WriteMode};
pub use config::{
    DataChannelOptions, IceScheme, IceServer, IceServerUrl, IceTransport, PeerConfig,
    DEFAULT_MAX_CHANNELS, DEFAULT_MAX_CHANNEL_IN_BUFFER, DEFAULT_REMOTE_MAX_MESSAGE_SIZE,
    DEFAULT_STUNS_PORT, DEFAULT_STUN_PORT, MAX_RECEIVE_MESSAGE_SIZE,
};
#[cfg(not(target_arch = "wasm32"))]
pub use engine::{Datagram, Engine};
pub use error::{Error, Result};
pub use gather::{
    CandidateError, CandidateKind, CandidateSource, Intercept, LocalCandidate, SourceTransmit,
};
#[cfg(not(target_arch = "wasm32"))]
pub use impair::{DropCounts, DropEvery};
pub use peer::{PeerConnection, WebRtcPeerConnection};
pub use state::{
    CandidatePair, ConnectionState, Event, GatheringState, SdpKind, SessionDescription,
    SignalingState, Stats,
};

/// Godot's class name for [`DataChannel`].
pub type WebRtcDataChannel<'a> = DataChannel<'a>;
