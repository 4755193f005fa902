//! Godot's `WebRTCPeerConnection`, declared once for every platform.
//!
//! This module owns the public API of a peer connection and its documentation. Each method
//! forwards to the platform's connection, chosen at compile time: natively the engine over
//! UDP sockets (`native`). A platform implements the same methods, and one that misses a
//! method fails to compile here. What only one platform can do says so in its
//! documentation.

use std::fmt;
use std::net::SocketAddr;

use super::channel::{ChannelId, DataChannel};
use super::config::{DataChannelOptions, IceServerUrl, PeerConfig};
#[cfg(not(target_arch = "wasm32"))]
use super::engine::Engine;
#[cfg(doc)]
use super::error::Error;
use super::error::Result;
#[cfg(not(target_arch = "wasm32"))]
use super::gather::CandidateSource;
use super::state::{
    ConnectionState, Event, GatheringState, SdpKind, SessionDescription, SignalingState, Stats,
};
#[cfg(not(target_arch = "wasm32"))]
use crate::time::Duration;
use crate::time::Instant;

/// The connection of the platform this build targets.
#[cfg(not(target_arch = "wasm32"))]
type Platform = super::native::NativePeer;
#[cfg(target_arch = "wasm32")]
type Platform = super::web::WebPeer;

/// Godot's `WebRTCPeerConnection`, driven by [`poll`](PeerConnection::poll).
///
/// See the [module documentation](super) for the run loop. Natively everything but the
/// sockets is the sans-IO [`Engine`]; [`poll_at`](PeerConnection::poll_at) drives it with the
/// caller's clock and [`wait`](PeerConnection::wait) blocks until there is work.
pub struct PeerConnection {
    inner: Platform,
}

impl fmt::Debug for PeerConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

/// Godot's class name for [`PeerConnection`].
pub type WebRtcPeerConnection = PeerConnection;

impl PeerConnection {
    /// A new connection in [`ConnectionState::New`]. Fails when the configuration is invalid
    /// (for example, a malformed ICE server URL). No socket is opened until gathering starts
    /// (`create_offer` or a remote offer).
    pub fn new(config: PeerConfig) -> Result<PeerConnection> {
        Ok(PeerConnection {
            inner: Platform::new(config)?,
        })
    }

    /// Godot's `initialize()`: closes this connection and starts over with `config`. As in
    /// Godot, the channels of the old connection are gone.
    pub fn initialize(&mut self, config: PeerConfig) -> Result<()> {
        self.inner.initialize(config)
    }

    /// The engine underneath (states, channels and statistics are its). Native only: a
    /// browser's connection has no engine of netplay's.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn engine(&self) -> &Engine {
        self.inner.engine()
    }

    /// The configuration.
    pub fn config(&self) -> &PeerConfig {
        self.inner.config()
    }

    /// The ICE servers of the configuration, parsed. The connection gathers from them by
    /// itself (server-reflexive and relayed candidates).
    pub fn ice_servers(&self) -> &[IceServerUrl] {
        self.inner.ice_servers()
    }

    /// Adds a source of candidates beyond the host ones and those of
    /// [`PeerConfig::ice_servers`]. Only before gathering starts. With
    /// [`PeerConfig::relay_only`], only its relayed candidates are announced. Native only: a
    /// browser gathers by itself.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn add_candidate_source(&mut self, source: Box<dyn CandidateSource>) -> Result<()> {
        self.inner.add_candidate_source(source)
    }

    /// The connection state.
    pub fn connection_state(&self) -> ConnectionState {
        self.inner.connection_state()
    }

    /// The gathering state.
    pub fn gathering_state(&self) -> GatheringState {
        self.inner.gathering_state()
    }

    /// The signaling state.
    pub fn signaling_state(&self) -> SignalingState {
        self.inner.signaling_state()
    }

    /// The addresses of the local sockets (empty before gathering starts). Native only: a
    /// browser does not show its sockets.
    pub fn local_addresses(&self) -> Vec<SocketAddr> {
        self.inner.local_addresses()
    }

    /// The largest message a channel may send now: the configured maximum, lowered by the
    /// remote peer's `a=max-message-size`.
    pub fn max_message_size(&self) -> usize {
        self.inner.max_message_size()
    }

    /// Statistics. In a browser, the transport's part comes from `getStats()`, asked at most
    /// once a second while this is called (so it may be a second old); discarded packets,
    /// retransmissions and abandoned messages are not told by a browser and stay 0.
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// Takes the next event, or `None`.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.inner.poll_event()
    }

    /// Godot's `create_data_channel`. Before the first offer/answer the channel is announced
    /// in the description; afterwards it is opened on the running association at once (no
    /// renegotiation is needed for data channels), which Godot does not allow but browsers do.
    ///
    /// Fails with [`Error::BothReliabilityOptions`], [`Error::DuplicateChannelId`] (a
    /// negotiated id already in use), [`Error::InvalidChannelOption`],
    /// [`Error::TooManyChannels`] or [`Error::Closed`].
    pub fn create_data_channel(
        &mut self,
        label: &str,
        options: DataChannelOptions,
    ) -> Result<ChannelId> {
        self.inner.create_data_channel(label, options)
    }

    /// The channel behind `id`, borrowing this connection; `None` for a handle this
    /// connection never gave, or for a channel that closed and was forgotten (see
    /// [`DataChannel`]).
    pub fn channel(&mut self, id: ChannelId) -> Option<DataChannel<'_>> {
        self.inner.channel(id)
    }

    /// The handles of every channel, in creation order.
    pub fn channel_ids(&self) -> impl Iterator<Item = ChannelId> + '_ {
        self.inner.channel_ids()
    }

    /// How many channels exist: open, opening, closing, or closed and not yet forgotten.
    pub fn channel_count(&self) -> usize {
        self.inner.channel_count()
    }

    /// Godot's `create_offer`: needs at least one data channel and a new connection. Starts
    /// gathering and queues [`Event::SessionDescriptionCreated`] with the offer, then the
    /// candidates.
    pub fn create_offer(&mut self) -> Result<()> {
        self.inner.create_offer()
    }

    /// Godot's `set_local_description`. The description was already applied when it was
    /// created (as in Godot's native plugin), so this only checks that it is the one this
    /// peer created.
    pub fn set_local_description(&mut self, kind: SdpKind, sdp: &str) -> Result<()> {
        self.inner.set_local_description(kind, sdp)
    }

    /// The description this peer created, if any.
    pub fn local_description(&self) -> Option<SessionDescription<'_>> {
        self.inner.local_description()
    }

    /// Godot's `set_remote_description`. A remote offer starts gathering and queues
    /// [`Event::SessionDescriptionCreated`] with the answer.
    ///
    /// Fails with [`Error::InvalidSdp`] when the text does not parse (nothing changes: a
    /// corrected description can be given), [`Error::SdpRejected`] when it parses but cannot
    /// be applied (an answer that cannot be applied fails the connection), and
    /// [`Error::InvalidState`] for an offer after the first exchange or an answer without an
    /// offer.
    pub fn set_remote_description(&mut self, kind: SdpKind, sdp: &str) -> Result<()> {
        self.inner.set_remote_description(kind, sdp)
    }

    /// Godot's `add_ice_candidate`. The candidate line is accepted with or without the `a=`
    /// and `candidate:` prefixes; an empty line means the end of the remote candidates. `mid`
    /// and `index` are not needed (there is one m-line), as in Godot's native plugin.
    ///
    /// TCP candidates are ignored (this implementation speaks ICE over UDP only). An mDNS
    /// host name gives [`Error::UnsupportedCandidate`], anything malformed
    /// [`Error::InvalidCandidate`].
    pub fn add_ice_candidate(&mut self, mid: &str, index: u32, candidate: &str) -> Result<()> {
        self.inner.add_ice_candidate(mid, index, candidate)
    }

    /// Godot's `close()`: closes every channel and the connection, telling the remote peer
    /// (SCTP shutdown, DTLS close_notify), and releases the sockets. Final: start over with
    /// [`initialize`](Self::initialize).
    pub fn close(&mut self) {
        self.inner.close()
    }

    /// Godot's `poll()`: reads every socket without blocking, feeds the engine, runs the
    /// timers and candidate sources, sends what is due and queues the events. Call it often
    /// (every frame); nothing happens between two calls.
    pub fn poll(&mut self) {
        self.inner.poll()
    }

    /// [`poll`](Self::poll) with the caller's clock: every timer of the connection runs on
    /// the `now` given here (and on the calls' own reading of the clock for signaling).
    /// In a browser, only netplay's own timers (the connect and failed timeouts) run on it;
    /// the browser keeps the connection's time itself.
    pub fn poll_at(&mut self, now: Instant) {
        self.inner.poll_at(now)
    }

    /// Sends at once what the channels were given since the last poll (natively: packs it
    /// into datagrams and writes them), without reading or running timers; `poll()` does
    /// the same as part of its work. Call it after a burst of sends to spare them the wait
    /// until the next poll (`WebRtcMultiplayerPeer::put_packet` does). In a browser, messages
    /// leave at once anyway.
    pub fn flush(&mut self) {
        self.inner.send_now()
    }

    /// When [`poll`](Self::poll) must run next at the latest for the connection's timers;
    /// `None` once it is closed or failed. Datagrams that arrive earlier need a poll too:
    /// [`wait`](Self::wait) waits for both. In a browser: netplay's own timers only (the
    /// connect and failed timeouts).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    /// Blocks the calling thread until a datagram arrives for this connection, its next timer
    /// is due ([`poll_timeout`](Self::poll_timeout)) or `timeout` passes, whichever comes
    /// first; then [`poll`](Self::poll) has work. Returns whether a datagram waits.
    ///
    /// For a thread that runs connections and nothing else (a server, a benchmark, a test):
    /// `loop { pc.wait(max); pc.poll(); ... }` uses the CPU only when there is work, where a
    /// loop of `poll()` alone would spin. A game polls once per frame and needs no wait.
    /// While a channel's receive buffer is full ([`PeerConfig::max_channel_in_buffer`]) the
    /// sockets are not read, so only the timers end the wait: drain the channels. Native
    /// only: a page must not block; the browser's event loop wakes it.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn wait(&self, timeout: Duration) -> bool {
        self.inner.wait(timeout)
    }
}
