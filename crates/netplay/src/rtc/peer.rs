//! The peer connection: Godot's `WebRTCPeerConnection`, a polled driver around str0m's
//! sans-IO `Rtc` (ICE, DTLS, SCTP) that owns the UDP sockets, the signaling state machine,
//! the connection-state timers and the data channels.
//!
//! Nothing runs between two calls: `poll()` reads the sockets, feeds the engine, sends what it
//! produces and turns its events into [`Event`]s. Signaling (carrying descriptions and
//! candidates to the other side) is the application's job.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, IceConnectionState, Input, Output, Rtc};

use super::channel::{ChannelEntry, ChannelId, DataChannel, ReadyState};
use super::config::{
    DataChannelOptions, IceServerUrl, PeerConfig, DEFAULT_REMOTE_MAX_MESSAGE_SIZE,
};
use super::error::{Error, Result};
use super::gather::{
    CandidateError, CandidateKind, CandidateSource, Intercept, LocalCandidate, Sockets,
};
use super::ice_sources;

/// Most datagrams kept while waiting for the answer to our offer.
const MAX_EARLY_DATAGRAMS: usize = 64;
/// Datagrams fed to the engine between two drains of its output.
const DRAIN_EVERY: usize = 32;
/// Datagrams read from one socket in one `poll()` at most, so a flood cannot hold it.
const MAX_DATAGRAMS_PER_POLL: usize = 4096;
/// Engine outputs handled in one drain at most (a guard, never reached in practice).
const MAX_OUTPUTS_PER_DRAIN: usize = 1 << 20;

/// The type of a session description (Godot passes it as the string `"offer"` or
/// `"answer"`; [`FromStr`] and [`SdpKind::as_str`] convert).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SdpKind {
    /// `"offer"`.
    Offer,
    /// `"answer"`.
    Answer,
}

impl SdpKind {
    /// The JSEP name: `"offer"` or `"answer"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SdpKind::Offer => "offer",
            SdpKind::Answer => "answer",
        }
    }
}

impl fmt::Display for SdpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SdpKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<SdpKind> {
        match s {
            "offer" => Ok(SdpKind::Offer),
            "answer" => Ok(SdpKind::Answer),
            other => Err(Error::UnsupportedSdpKind(other.to_owned())),
        }
    }
}

/// Godot's `WebRTCPeerConnection.ConnectionState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// `STATE_NEW = 0`: nothing negotiated yet.
    New,
    /// `STATE_CONNECTING = 1`: negotiating, checking candidate pairs, DTLS handshake.
    Connecting,
    /// `STATE_CONNECTED = 2`: ICE and DTLS are up.
    Connected,
    /// `STATE_DISCONNECTED = 3`: nothing heard from the remote peer for
    /// [`PeerConfig::ice_disconnected_timeout`]; may come back.
    Disconnected,
    /// `STATE_FAILED = 4`: gave up (silence for [`PeerConfig::ice_failed_timeout`], no
    /// connection within [`PeerConfig::connect_timeout`], or a rejected description). Final.
    Failed,
    /// `STATE_CLOSED = 5`: closed by either side. Final.
    Closed,
}

impl ConnectionState {
    /// Godot's integer value.
    pub fn godot_value(self) -> i32 {
        self as i32
    }
}

/// Godot's `WebRTCPeerConnection.GatheringState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GatheringState {
    /// `GATHERING_STATE_NEW = 0`: gathering has not started.
    New,
    /// `GATHERING_STATE_GATHERING = 1`: candidates are being gathered.
    Gathering,
    /// `GATHERING_STATE_COMPLETE = 2`: every candidate has been announced.
    Complete,
}

impl GatheringState {
    /// Godot's integer value.
    pub fn godot_value(self) -> i32 {
        self as i32
    }
}

/// Godot's `WebRTCPeerConnection.SignalingState` (the provisional-answer states are never
/// entered: provisional answers are not supported).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignalingState {
    /// `SIGNALING_STATE_STABLE = 0`.
    Stable,
    /// `SIGNALING_STATE_HAVE_LOCAL_OFFER = 1`.
    HaveLocalOffer,
    /// `SIGNALING_STATE_HAVE_REMOTE_OFFER = 2`.
    HaveRemoteOffer,
    /// `SIGNALING_STATE_CLOSED = 5`.
    Closed,
}

impl SignalingState {
    /// Godot's integer value.
    pub fn godot_value(self) -> i32 {
        match self {
            SignalingState::Stable => 0,
            SignalingState::HaveLocalOffer => 1,
            SignalingState::HaveRemoteOffer => 2,
            SignalingState::Closed => 5,
        }
    }
}

/// What happened during `poll()` or a signaling call: Godot's signals, as values drained with
/// [`PeerConnection::poll_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// `session_description_created`: send it to the remote peer (and, as in Godot, pass it
    /// to [`PeerConnection::set_local_description`]).
    SessionDescriptionCreated {
        /// Offer or answer.
        kind: SdpKind,
        /// The SDP text.
        sdp: String,
    },
    /// `ice_candidate_created`: send it to the remote peer, which passes it to
    /// [`PeerConnection::add_ice_candidate`].
    IceCandidateCreated {
        /// The `sdpMid` of the data m-line.
        mid: String,
        /// The `sdpMLineIndex` (always 0: there is one m-line).
        index: u32,
        /// The candidate line, `candidate:...` without `a=`.
        candidate: String,
    },
    /// `data_channel_received`: the remote peer opened an in-band channel.
    DataChannelReceived(ChannelId),
    /// A channel became open.
    DataChannelOpen(ChannelId),
    /// A channel became closed.
    DataChannelClosed(ChannelId),
    /// The connection state changed.
    ConnectionStateChanged(ConnectionState),
    /// The gathering state changed.
    GatheringStateChanged(GatheringState),
    /// The signaling state changed.
    SignalingStateChanged(SignalingState),
    /// A STUN or TURN server of [`PeerConfig::ice_servers`] gave no candidate (a browser's
    /// `icecandidateerror`): wrong TURN credentials (code 401), no answer in time (701, after
    /// [`PeerConfig::ice_server_timeout`]), or a refused request. Gathering goes on without
    /// it; later, a TURN allocation that is lost is reported the same way.
    IceCandidateError(CandidateError),
}

/// A candidate pair carrying the traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CandidatePair {
    /// The local address.
    pub local: SocketAddr,
    /// The remote address.
    pub remote: SocketAddr,
}

/// Statistics of a peer connection (what Godot does not expose).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// The latest round-trip time of an ICE check on the selected pair (updated once a
    /// second).
    pub rtt: Option<Duration>,
    /// The selected candidate pair (updated once a second).
    pub selected_pair: Option<CandidatePair>,
    /// UDP datagrams sent.
    pub packets_sent: u64,
    /// UDP datagrams received and accepted by the connection.
    pub packets_received: u64,
    /// UDP payload bytes sent.
    pub bytes_sent: u64,
    /// UDP payload bytes received and accepted.
    pub bytes_received: u64,
    /// Datagrams dropped on arrival: malformed, or from an address that is not the remote
    /// peer's.
    pub packets_discarded: u64,
    /// Data channel messages sent.
    pub messages_sent: u64,
    /// Data channel messages received.
    pub messages_received: u64,
    /// Data channel payload bytes sent.
    pub message_bytes_sent: u64,
    /// Data channel payload bytes received.
    pub message_bytes_received: u64,
}

/// Godot's `WebRTCPeerConnection`, native, driven by [`poll`](PeerConnection::poll).
///
/// See the [module documentation](super) for the run loop.
pub struct PeerConnection {
    config: PeerConfig,
    ice_servers: Vec<IceServerUrl>,
    pub(crate) rtc: Rtc,
    pub(crate) channels: Vec<ChannelEntry>,
    events: VecDeque<Event>,
    state: ConnectionState,
    gathering: GatheringState,
    signaling: SignalingState,
    sockets: Sockets,
    sources: Vec<Box<dyn CandidateSource>>,
    pending_offer: Option<SdpPendingOffer>,
    local_description: Option<(SdpKind, String)>,
    /// A description was created or applied: the engine has (or will have) an SCTP
    /// association, so channels go straight to it.
    engine_has_app: bool,
    remote_applied: bool,
    /// Datagrams that arrived while this side's offer waited for its answer (the remote peer
    /// starts ICE and DTLS as soon as it has answered, and its first flights can outrun the
    /// answer through signaling); fed to the engine once the answer is applied.
    early_datagrams: VecDeque<(SocketAddr, SocketAddr, Vec<u8>)>,
    mid: String,
    remote_max_message_size: usize,
    negotiated_at: Option<Instant>,
    last_received: Option<Instant>,
    disconnected_since: Option<Instant>,
    ice_disconnected: bool,
    dtls_connected: bool,
    stats: Stats,
    buf: Vec<u8>,
}

impl fmt::Debug for PeerConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerConnection")
            .field("state", &self.state)
            .field("gathering", &self.gathering)
            .field("signaling", &self.signaling)
            .field("channels", &self.channels.len())
            .field("sockets", &self.sockets.addresses())
            .finish()
    }
}

/// Godot's class name for [`PeerConnection`].
pub type WebRtcPeerConnection = PeerConnection;

impl PeerConnection {
    /// A new connection in [`ConnectionState::New`]. Fails when the configuration is invalid
    /// (for example, a malformed ICE server URL). No socket is opened until gathering starts
    /// (`create_offer` or a remote offer).
    pub fn new(config: PeerConfig) -> Result<PeerConnection> {
        let ice_servers = config.validate()?;
        let now = Instant::now();
        // The engine checks the nominated pair at least every `max_rto`: three checks per
        // disconnection timeout keep a healthy but idle connection from looking silent.
        let max_rto = (config.ice_disconnected_timeout / 3)
            .clamp(Duration::from_millis(50), Duration::from_secs(3));
        let mut engine = Rtc::builder()
            .set_sctp_max_buffered_amount(config.max_buffered_amount)
            .set_stats_interval(Some(Duration::from_secs(1)));
        engine.set_initial_stun_rto(max_rto.min(Duration::from_millis(250)));
        engine.set_max_stun_rto(max_rto);
        let sources = ice_sources::sources_for(&ice_servers, &config);
        Ok(PeerConnection {
            rtc: engine.build(now),
            ice_servers,
            channels: Vec::new(),
            events: VecDeque::new(),
            state: ConnectionState::New,
            gathering: GatheringState::New,
            signaling: SignalingState::Stable,
            sockets: Sockets::empty(),
            sources,
            pending_offer: None,
            local_description: None,
            engine_has_app: false,
            remote_applied: false,
            early_datagrams: VecDeque::new(),
            mid: String::from("0"),
            remote_max_message_size: DEFAULT_REMOTE_MAX_MESSAGE_SIZE,
            negotiated_at: None,
            last_received: None,
            disconnected_since: None,
            ice_disconnected: false,
            dtls_connected: false,
            stats: Stats::default(),
            buf: vec![0; 65536],
            config,
        })
    }

    /// Godot's `initialize()`: closes this connection and starts over with `config`. As in
    /// Godot, the channels of the old connection are gone.
    pub fn initialize(&mut self, config: PeerConfig) -> Result<()> {
        let fresh = PeerConnection::new(config)?;
        self.close();
        *self = fresh;
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &PeerConfig {
        &self.config
    }

    /// The ICE servers of the configuration, parsed. The connection gathers from them by
    /// itself (server-reflexive and relayed candidates).
    pub fn ice_servers(&self) -> &[IceServerUrl] {
        &self.ice_servers
    }

    /// Adds a source of candidates beyond the host ones and those of
    /// [`PeerConfig::ice_servers`]. Only before gathering starts. With
    /// [`PeerConfig::relay_only`], only its relayed candidates are announced.
    pub fn add_candidate_source(&mut self, source: Box<dyn CandidateSource>) -> Result<()> {
        if self.gathering != GatheringState::New {
            return Err(Error::InvalidState {
                operation: "add_candidate_source",
                reason: "gathering has started",
            });
        }
        self.sources.push(source);
        Ok(())
    }

    /// The connection state.
    pub fn connection_state(&self) -> ConnectionState {
        self.state
    }

    /// The gathering state.
    pub fn gathering_state(&self) -> GatheringState {
        self.gathering
    }

    /// The signaling state.
    pub fn signaling_state(&self) -> SignalingState {
        self.signaling
    }

    /// The addresses of the local sockets (empty before gathering starts).
    pub fn local_addresses(&self) -> Vec<SocketAddr> {
        self.sockets.addresses()
    }

    /// The largest message a channel may send now: the configured maximum, lowered by the
    /// remote peer's `a=max-message-size`.
    pub fn max_message_size(&self) -> usize {
        self.config
            .max_message_size
            .min(self.remote_max_message_size)
    }

    /// Statistics.
    pub fn stats(&self) -> Stats {
        let mut stats = self.stats;
        for c in &self.channels {
            stats.messages_sent += c.messages_sent;
            stats.messages_received += c.messages_received;
            stats.message_bytes_sent += c.bytes_sent;
            stats.message_bytes_received += c.bytes_received;
        }
        stats
    }

    /// Takes the next event, or `None`.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Godot's `create_data_channel`. Before the first offer/answer the channel is announced
    /// in the description; afterwards it is opened on the running association at once (no
    /// renegotiation is needed for data channels), which Godot does not allow but browsers do.
    ///
    /// Fails with [`Error::BothReliabilityOptions`], [`Error::DuplicateChannelId`] (a
    /// negotiated id already in use), [`Error::InvalidChannelOption`] or [`Error::Closed`].
    pub fn create_data_channel(
        &mut self,
        label: &str,
        options: DataChannelOptions,
    ) -> Result<ChannelId> {
        if self.is_finished() {
            return Err(Error::Closed);
        }
        options.validate(label)?;
        if let Some(id) = options.negotiated_id {
            if self.negotiated_id_in_use(id) {
                return Err(Error::DuplicateChannelId(id));
            }
        }
        let mut entry = ChannelEntry::new(label.to_owned(), &options);
        if self.engine_has_app {
            entry.engine_id = Some(
                self.rtc
                    .direct_api()
                    .create_data_channel(entry.engine_config()),
            );
        }
        let id = ChannelId(self.channels.len() as u32);
        self.channels.push(entry);
        Ok(id)
    }

    fn negotiated_id_in_use(&mut self, id: u16) -> bool {
        if self
            .rtc
            .direct_api()
            .channel_id_by_sctp_stream_id(id)
            .is_some()
        {
            return true;
        }
        // A channel handed to the engine stays allocated there until its stream reset
        // completes, which the engine reports only as the stream id being free above.
        self.channels.iter().any(|c| {
            (c.negotiated == Some(id) || c.stream_id == Some(id))
                && (c.state != ReadyState::Closed || c.engine_id.is_some())
        })
    }

    /// The channel behind `id`, borrowing this connection.
    pub fn channel(&mut self, id: ChannelId) -> Option<DataChannel<'_>> {
        let index = id.0 as usize;
        if index < self.channels.len() {
            Some(DataChannel { pc: self, index })
        } else {
            None
        }
    }

    /// The handles of every channel, in creation order.
    pub fn channel_ids(&self) -> impl Iterator<Item = ChannelId> + '_ {
        (0..self.channels.len() as u32).map(ChannelId)
    }

    /// Godot's `create_offer`: needs at least one data channel and a new connection. Starts
    /// gathering and queues [`Event::SessionDescriptionCreated`] with the offer, then the
    /// candidates.
    pub fn create_offer(&mut self) -> Result<()> {
        if self.is_finished() {
            return Err(Error::Closed);
        }
        if self.signaling != SignalingState::Stable || self.engine_has_app {
            return Err(Error::InvalidState {
                operation: "create_offer",
                reason: "only one offer/answer exchange per connection is supported",
            });
        }
        let pending: Vec<usize> = (0..self.channels.len())
            .filter(|&i| {
                self.channels[i].engine_id.is_none()
                    && self.channels[i].state == ReadyState::Connecting
            })
            .collect();
        if pending.is_empty() {
            return Err(Error::NoDataChannels);
        }
        self.bind_sockets()?;
        let now = Instant::now();
        let mut api = self.rtc.sdp_api();
        let mut ids = Vec::with_capacity(pending.len());
        for &i in &pending {
            ids.push(api.add_channel_with_config(self.channels[i].engine_config()));
        }
        let (offer, pending_offer) = api
            .apply()
            .ok_or_else(|| Error::Engine("the engine produced no offer".into()))?;
        for (&i, id) in pending.iter().zip(ids) {
            self.channels[i].engine_id = Some(id);
        }
        self.engine_has_app = true;
        self.pending_offer = Some(pending_offer);
        let sdp = offer.to_sdp_string();
        self.mid = application_mid(&sdp).unwrap_or_else(|| "0".into());
        self.local_description = Some((SdpKind::Offer, sdp.clone()));
        self.set_signaling(SignalingState::HaveLocalOffer);
        self.events.push_back(Event::SessionDescriptionCreated {
            kind: SdpKind::Offer,
            sdp,
        });
        self.start_gathering(now);
        Ok(())
    }

    /// Godot's `set_local_description`. The description was already applied when it was
    /// created (as in Godot's native plugin), so this only checks that it is the one this
    /// peer created.
    pub fn set_local_description(&mut self, kind: SdpKind, sdp: &str) -> Result<()> {
        match &self.local_description {
            Some((k, s)) if *k == kind && s.trim_end() == sdp.trim_end() => Ok(()),
            _ => Err(Error::LocalDescriptionMismatch),
        }
    }

    /// The description this peer created, if any.
    pub fn local_description(&self) -> Option<(SdpKind, &str)> {
        self.local_description
            .as_ref()
            .map(|(k, s)| (*k, s.as_str()))
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
        if self.is_finished() {
            return Err(Error::Closed);
        }
        let now = Instant::now();
        match kind {
            SdpKind::Offer => {
                if self.signaling != SignalingState::Stable || self.engine_has_app {
                    return Err(Error::InvalidState {
                        operation: "set_remote_description(offer)",
                        reason: "only one offer/answer exchange per connection is supported",
                    });
                }
                let offer =
                    SdpOffer::from_sdp_string(sdp).map_err(|e| Error::InvalidSdp(e.to_string()))?;
                check_fingerprint(sdp)?;
                self.bind_sockets()?;
                let answer = match self.rtc.sdp_api().accept_offer(offer) {
                    Ok(answer) => answer,
                    Err(e) => {
                        if !self.rtc.is_alive() {
                            self.fail();
                        }
                        return Err(Error::SdpRejected(e.to_string()));
                    }
                };
                self.remote_max_message_size = remote_max_message_size(sdp);
                self.engine_has_app = true;
                self.remote_applied = true;
                for i in 0..self.channels.len() {
                    if self.channels[i].engine_id.is_none()
                        && self.channels[i].state == ReadyState::Connecting
                    {
                        let config = self.channels[i].engine_config();
                        self.channels[i].engine_id =
                            Some(self.rtc.direct_api().create_data_channel(config));
                    }
                }
                let answer = answer.to_sdp_string();
                self.mid = application_mid(&answer).unwrap_or_else(|| "0".into());
                self.local_description = Some((SdpKind::Answer, answer.clone()));
                self.set_signaling(SignalingState::HaveRemoteOffer);
                self.events.push_back(Event::SessionDescriptionCreated {
                    kind: SdpKind::Answer,
                    sdp: answer,
                });
                self.set_signaling(SignalingState::Stable);
                self.start_negotiation(now);
                self.start_gathering(now);
                Ok(())
            }
            SdpKind::Answer => {
                if self.signaling != SignalingState::HaveLocalOffer || self.pending_offer.is_none()
                {
                    return Err(Error::InvalidState {
                        operation: "set_remote_description(answer)",
                        reason: "no local offer is waiting for an answer",
                    });
                }
                let answer = SdpAnswer::from_sdp_string(sdp)
                    .map_err(|e| Error::InvalidSdp(e.to_string()))?;
                check_fingerprint(sdp)?;
                let pending = self.pending_offer.take().expect("checked above");
                if let Err(e) = self.rtc.sdp_api().accept_answer(pending, answer) {
                    self.fail();
                    return Err(Error::SdpRejected(e.to_string()));
                }
                self.remote_max_message_size = remote_max_message_size(sdp);
                self.remote_applied = true;
                self.set_signaling(SignalingState::Stable);
                self.start_negotiation(now);
                while let Some((source, destination, data)) = self.early_datagrams.pop_front() {
                    self.feed(source, destination, &data, now);
                }
                self.drain_output(now);
                Ok(())
            }
        }
    }

    /// Godot's `add_ice_candidate`. The candidate line is accepted with or without the `a=`
    /// and `candidate:` prefixes; an empty line means the end of the remote candidates. `mid`
    /// and `index` are not needed (there is one m-line), as in Godot's native plugin.
    ///
    /// TCP candidates are ignored (this implementation speaks ICE over UDP only). An mDNS
    /// host name gives [`Error::UnsupportedCandidate`], anything malformed
    /// [`Error::InvalidCandidate`].
    pub fn add_ice_candidate(&mut self, mid: &str, index: u32, candidate: &str) -> Result<()> {
        let _ = (mid, index);
        if self.is_finished() {
            return Err(Error::Closed);
        }
        let Some(candidate) = parse_candidate(candidate)? else {
            return Ok(());
        };
        self.rtc.add_remote_candidate(candidate);
        Ok(())
    }

    /// Godot's `close()`: closes every channel and the connection, telling the remote peer
    /// (SCTP shutdown, DTLS close_notify), and releases the sockets. Final: start over with
    /// [`initialize`](Self::initialize).
    pub fn close(&mut self) {
        if self.state == ConnectionState::Closed {
            return;
        }
        let now = Instant::now();
        if self.rtc.is_alive() {
            let _ = self.rtc.close();
            self.drain_output(now);
        }
        self.rtc.disconnect();
        self.close_sources(now);
        self.close_all_channels();
        self.set_signaling(SignalingState::Closed);
        self.set_state(ConnectionState::Closed);
        self.sockets = Sockets::empty();
        self.pending_offer = None;
    }

    /// Godot's `poll()`: reads every socket without blocking, feeds the engine, runs the
    /// timers and candidate sources, sends what is due and queues the events. Call it often
    /// (every frame); nothing happens between two calls.
    pub fn poll(&mut self) {
        self.poll_at(Instant::now());
    }

    fn poll_at(&mut self, now: Instant) {
        if self.is_finished() {
            return;
        }
        self.read_sockets(now);
        self.run_sources(now);
        if self.rtc.is_alive() {
            if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                self.engine_error(e);
            }
        }
        self.drain_output(now);
        self.check_timers(now);
    }

    fn is_finished(&self) -> bool {
        matches!(
            self.state,
            ConnectionState::Closed | ConnectionState::Failed
        )
    }

    fn set_state(&mut self, state: ConnectionState) {
        if self.state != state {
            self.state = state;
            self.events.push_back(Event::ConnectionStateChanged(state));
        }
    }

    fn set_signaling(&mut self, state: SignalingState) {
        if self.signaling != state {
            self.signaling = state;
            self.events.push_back(Event::SignalingStateChanged(state));
        }
    }

    fn set_gathering(&mut self, state: GatheringState) {
        if self.gathering != state {
            self.gathering = state;
            self.events.push_back(Event::GatheringStateChanged(state));
        }
    }

    fn start_negotiation(&mut self, now: Instant) {
        self.negotiated_at = Some(now);
        if self.state == ConnectionState::New {
            self.set_state(ConnectionState::Connecting);
        }
    }

    fn bind_sockets(&mut self) -> Result<()> {
        if self.sockets.len() == 0 {
            self.sockets = Sockets::bind(&self.config)?;
        }
        Ok(())
    }

    /// Announces the host candidates and starts the other sources.
    fn start_gathering(&mut self, now: Instant) {
        if self.gathering != GatheringState::New {
            return;
        }
        self.set_gathering(GatheringState::Gathering);
        let addresses = self.sockets.addresses();
        // Relay only: the host sockets are the TURN clients' bases, never candidates.
        let hosts = if self.config.relay_only {
            &[][..]
        } else {
            &addresses[..]
        };
        for address in hosts {
            self.announce(LocalCandidate {
                kind: CandidateKind::Host,
                address: *address,
                base: *address,
            });
        }
        for source in &mut self.sources {
            source.start(&addresses, now);
        }
        self.run_sources(now);
    }

    fn announce(&mut self, local: LocalCandidate) {
        let candidate = match local.kind {
            CandidateKind::Host => Candidate::host(local.address, "udp"),
            CandidateKind::ServerReflexive => {
                Candidate::server_reflexive(local.address, local.base, "udp")
            }
            CandidateKind::Relayed => Candidate::relayed(local.address, local.base, "udp"),
        };
        let Ok(candidate) = candidate else {
            return;
        };
        if let Some(added) = self.rtc.add_local_candidate(candidate) {
            let mut line = added.to_sdp_string();
            if local.kind == CandidateKind::ServerReflexive {
                // The engine writes 0.0.0.0; the base is no secret next to the host candidate
                // (and a srflx candidate is never announced without it).
                line = with_related_address(&line, local.base);
            }
            self.events.push_back(Event::IceCandidateCreated {
                mid: self.mid.clone(),
                index: 0,
                candidate: line,
            });
        }
    }

    /// Drives the candidate sources. They keep running after gathering completes: a TURN
    /// source refreshes its allocation and relays data for the connection's lifetime.
    fn run_sources(&mut self, now: Instant) {
        if self.gathering == GatheringState::New {
            return;
        }
        let mut found = Vec::new();
        for source in &mut self.sources {
            source.handle_timeout(now);
            while let Some(c) = source.poll_candidate() {
                found.push(c);
            }
            while let Some(e) = source.poll_error() {
                self.events.push_back(Event::IceCandidateError(e));
            }
        }
        self.send_source_transmits();
        for c in found {
            if !self.config.relay_only || c.kind == CandidateKind::Relayed {
                self.announce(c);
            }
        }
        if self.sources.iter().all(|s| s.is_complete()) {
            self.set_gathering(GatheringState::Complete);
        }
    }

    /// Sends what the candidate sources want sent (requests, and the rest of what a wrapped
    /// transmit queued).
    fn send_source_transmits(&mut self) {
        for source in &mut self.sources {
            while let Some(t) = source.poll_transmit() {
                if self.sockets.send(t.local, t.destination, &t.contents) {
                    self.stats.packets_sent += 1;
                    self.stats.bytes_sent += t.contents.len() as u64;
                }
            }
        }
    }

    /// Lets the sources release what servers hold for them (TURN allocations), with one last
    /// round of transmits.
    fn close_sources(&mut self, now: Instant) {
        for source in &mut self.sources {
            source.close(now);
        }
        self.send_source_transmits();
    }

    /// Whether some channel holds more received bytes than allowed: reading then waits, so
    /// the kernel buffer and then the sender's SCTP window take the back pressure.
    fn inbound_full(&self) -> bool {
        let limit = self.config.max_channel_in_buffer;
        self.channels.iter().any(|c| c.inbound_bytes >= limit)
    }

    fn read_sockets(&mut self, now: Instant) {
        let mut buf = std::mem::take(&mut self.buf);
        // Draining the engine walks its whole send queue, so it runs once per batch of
        // datagrams, not once per datagram; the inbound limit is checked per batch too, so a
        // channel can go over it by at most one batch.
        let mut undrained = 0;
        'sockets: for index in 0..self.sockets.len() {
            for _ in 0..MAX_DATAGRAMS_PER_POLL {
                if undrained >= DRAIN_EVERY {
                    self.drain_output(now);
                    undrained = 0;
                }
                if undrained == 0 && self.inbound_full() {
                    break 'sockets;
                }
                match self.sockets.recv(index, &mut buf) {
                    Ok(Some((local, n, from))) => {
                        self.handle_datagram(local, from, &buf[..n], now);
                        undrained += 1;
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
        // The last batch is drained by `poll_at`, together with the timeout.
        self.buf = buf;
    }

    fn handle_datagram(&mut self, local: SocketAddr, from: SocketAddr, data: &[u8], now: Instant) {
        let mut delivered = None;
        for source in &mut self.sources {
            match source.handle_datagram(local, from, data, now) {
                Intercept::Pass => continue,
                Intercept::Consumed => return,
                Intercept::Deliver {
                    source,
                    destination,
                    contents,
                } => {
                    delivered = Some((source, destination, contents));
                    break;
                }
            }
        }
        match delivered {
            Some((source, destination, contents)) => {
                self.feed(source, destination, &contents, now);
            }
            None => self.feed(from, local, data, now),
        }
    }

    fn feed(&mut self, source: SocketAddr, destination: SocketAddr, data: &[u8], now: Instant) {
        if !self.rtc.is_alive() {
            return;
        }
        if self.pending_offer.is_some() {
            // Our offer is out, its answer not applied yet: keep what the answerer sends
            // (ICE checks, the DTLS ClientHello) for then, instead of making it retransmit.
            if self.early_datagrams.len() < MAX_EARLY_DATAGRAMS && data.len() <= 2048 {
                self.early_datagrams
                    .push_back((source, destination, data.to_vec()));
            } else {
                self.stats.packets_discarded += 1;
            }
            return;
        }
        let Ok(receive) = Receive::new(Protocol::Udp, source, destination, data) else {
            self.stats.packets_discarded += 1;
            return;
        };
        let input = Input::Receive(now, receive);
        if !self.rtc.accepts(&input) {
            self.stats.packets_discarded += 1;
            return;
        }
        match self.rtc.handle_input(input) {
            Ok(()) => {
                self.stats.packets_received += 1;
                self.stats.bytes_received += data.len() as u64;
                self.last_received = Some(now);
            }
            Err(e) => {
                self.stats.packets_discarded += 1;
                self.engine_error(e);
            }
        }
    }

    fn engine_error(&mut self, _error: str0m::RtcError) {
        if !self.rtc.is_alive() && !self.is_finished() {
            self.fail();
        }
    }

    fn drain_output(&mut self, now: Instant) {
        for _ in 0..MAX_OUTPUTS_PER_DRAIN {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(_)) => break,
                Ok(Output::Transmit(t)) => {
                    let mut wrapped = None;
                    for source in &mut self.sources {
                        if let Some(w) = source.wrap_transmit(t.source, t.destination, &t.contents)
                        {
                            wrapped = Some(w);
                            break;
                        }
                    }
                    let sent = match &wrapped {
                        Some(w) => self.sockets.send(w.local, w.destination, &w.contents),
                        None => self.sockets.send(t.source, t.destination, &t.contents),
                    };
                    if sent {
                        self.stats.packets_sent += 1;
                        self.stats.bytes_sent += t.contents.len() as u64;
                    }
                }
                Ok(Output::Event(e)) => self.handle_engine_event(e, now),
                Err(e) => {
                    self.engine_error(e);
                    break;
                }
            }
        }
        self.send_source_transmits();
    }

    fn entry_by_engine_id(&self, id: str0m::channel::ChannelId) -> Option<usize> {
        self.channels.iter().position(|c| c.engine_id == Some(id))
    }

    fn handle_engine_event(&mut self, event: str0m::Event, now: Instant) {
        match event {
            str0m::Event::Connected => {
                self.dtls_connected = true;
                self.last_received = Some(now);
                if !self.is_finished() {
                    self.set_state(ConnectionState::Connected);
                }
            }
            str0m::Event::IceConnectionStateChange(ice) => match ice {
                IceConnectionState::Checking if self.state == ConnectionState::New => {
                    self.set_state(ConnectionState::Connecting);
                }
                IceConnectionState::Disconnected => self.ice_disconnected = true,
                IceConnectionState::Connected | IceConnectionState::Completed => {
                    self.ice_disconnected = false;
                }
                _ => {}
            },
            str0m::Event::ChannelOpen(id, _label) => {
                let index = match self.entry_by_engine_id(id) {
                    Some(index) => index,
                    None => {
                        let Some(config) = self.rtc.channel(id).and_then(|c| c.config().cloned())
                        else {
                            return;
                        };
                        self.channels.push(ChannelEntry::from_remote(&config, id));
                        let handle = ChannelId(self.channels.len() as u32 - 1);
                        self.events.push_back(Event::DataChannelReceived(handle));
                        self.channels.len() - 1
                    }
                };
                let stream = self.rtc.direct_api().sctp_stream_id_by_channel_id(id);
                let entry = &mut self.channels[index];
                if entry.stream_id.is_none() {
                    entry.stream_id = stream;
                }
                if entry.state == ReadyState::Connecting || entry.state == ReadyState::Open {
                    entry.state = ReadyState::Open;
                    self.events
                        .push_back(Event::DataChannelOpen(ChannelId(index as u32)));
                }
            }
            str0m::Event::ChannelData(data) => {
                if let Some(index) = self.entry_by_engine_id(data.id) {
                    self.channels[index].push_inbound(data.data, data.binary);
                }
            }
            str0m::Event::ChannelClose(id) => {
                if let Some(index) = self.entry_by_engine_id(id) {
                    self.mark_channel_closed(index);
                }
            }
            str0m::Event::Closed => {
                self.close_all_channels();
                self.set_signaling(SignalingState::Closed);
                self.set_state(ConnectionState::Closed);
            }
            str0m::Event::PeerStats(s) => {
                if let Some(rtt) = s.rtt {
                    self.stats.rtt = Some(rtt);
                }
                if let Some(pair) = s.selected_candidate_pair {
                    if let Some(rtt) = pair.current_round_trip_time {
                        self.stats.rtt = Some(rtt);
                    }
                    self.stats.selected_pair = Some(CandidatePair {
                        local: pair.local.addr,
                        remote: pair.remote.addr,
                    });
                }
            }
            _ => {}
        }
    }

    fn mark_channel_closed(&mut self, index: usize) {
        let entry = &mut self.channels[index];
        if entry.state != ReadyState::Closed {
            entry.state = ReadyState::Closed;
            self.events
                .push_back(Event::DataChannelClosed(ChannelId(index as u32)));
        }
    }

    fn close_all_channels(&mut self) {
        for index in 0..self.channels.len() {
            self.mark_channel_closed(index);
        }
    }

    pub(crate) fn close_channel(&mut self, index: usize) {
        let entry = &self.channels[index];
        match (entry.state, entry.engine_id) {
            (ReadyState::Closed | ReadyState::Closing, _) => {}
            (ReadyState::Open, Some(id)) if self.rtc.is_alive() => {
                self.rtc.direct_api().close_data_channel(id);
                self.channels[index].state = ReadyState::Closing;
            }
            (_, Some(id)) if self.rtc.is_alive() => {
                // Not open yet: the engine drops it once the stream exists.
                self.rtc.direct_api().close_data_channel(id);
                self.mark_channel_closed(index);
            }
            _ => self.mark_channel_closed(index),
        }
    }

    fn fail(&mut self) {
        if self.is_finished() {
            return;
        }
        self.rtc.disconnect();
        self.close_sources(Instant::now());
        self.close_all_channels();
        self.set_state(ConnectionState::Failed);
    }

    fn check_timers(&mut self, now: Instant) {
        if self.is_finished() {
            return;
        }
        if !self.rtc.is_alive() {
            self.fail();
            return;
        }
        match self.state {
            ConnectionState::New | ConnectionState::Connecting => {
                if let Some(at) = self.negotiated_at {
                    if now.saturating_duration_since(at) >= self.config.connect_timeout {
                        self.fail();
                    }
                }
            }
            ConnectionState::Connected | ConnectionState::Disconnected => {
                let last = self.last_received.unwrap_or(now);
                let silence = now.saturating_duration_since(last);
                let lost = self.ice_disconnected || silence >= self.config.ice_disconnected_timeout;
                if lost {
                    let since = *self.disconnected_since.get_or_insert_with(|| {
                        if self.ice_disconnected {
                            now
                        } else {
                            last + self.config.ice_disconnected_timeout
                        }
                    });
                    let grace =
                        self.config.ice_failed_timeout - self.config.ice_disconnected_timeout;
                    if now.saturating_duration_since(since) >= grace {
                        self.fail();
                    } else {
                        self.set_state(ConnectionState::Disconnected);
                    }
                } else {
                    self.disconnected_since = None;
                    if self.dtls_connected {
                        self.set_state(ConnectionState::Connected);
                    }
                }
            }
            ConnectionState::Failed | ConnectionState::Closed => {}
        }
    }
}

impl Drop for PeerConnection {
    fn drop(&mut self) {
        // Tell the remote peer, as `close()` does, so it does not wait for a timeout.
        if !self.is_finished() && self.rtc.is_alive() {
            let _ = self.rtc.close();
            self.drain_output(Instant::now());
        }
        self.close_sources(Instant::now());
    }
}

/// A candidate line with its `raddr`/`rport` set to `related`.
fn with_related_address(line: &str, related: SocketAddr) -> String {
    let mut fields: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    for i in 0..fields.len().saturating_sub(1) {
        match fields[i].as_str() {
            "raddr" => fields[i + 1] = related.ip().to_string(),
            "rport" => fields[i + 1] = related.port().to_string(),
            _ => {}
        }
    }
    fields.join(" ")
}

/// Refuses a description without a DTLS fingerprint before the engine sees it (the engine
/// would shut itself down).
fn check_fingerprint(sdp: &str) -> Result<()> {
    if sdp
        .lines()
        .any(|l| l.trim_start().starts_with("a=fingerprint:"))
    {
        Ok(())
    } else {
        Err(Error::SdpRejected("missing a=fingerprint".into()))
    }
}

/// The `a=mid` of the first m-line of a description.
fn application_mid(sdp: &str) -> Option<String> {
    sdp.lines()
        .skip_while(|l| !l.starts_with("m="))
        .find_map(|l| l.trim_end().strip_prefix("a=mid:"))
        .map(str::to_owned)
}

/// The remote `a=max-message-size`: absent means 64 KiB (RFC 8841 §6), 0 means no limit.
fn remote_max_message_size(sdp: &str) -> usize {
    for line in sdp.lines() {
        if let Some(v) = line.trim_end().strip_prefix("a=max-message-size:") {
            return match v.trim().parse::<u64>() {
                Ok(0) => usize::MAX,
                Ok(n) => usize::try_from(n).unwrap_or(usize::MAX),
                Err(_) => DEFAULT_REMOTE_MAX_MESSAGE_SIZE,
            };
        }
    }
    DEFAULT_REMOTE_MAX_MESSAGE_SIZE
}

/// Parses a trickled candidate line. `Ok(None)`: nothing to add (end of candidates, or a TCP
/// candidate).
pub(crate) fn parse_candidate(line: &str) -> Result<Option<Candidate>> {
    let line = line.trim();
    let line = line.strip_prefix("a=").unwrap_or(line);
    if line.is_empty() {
        return Ok(None);
    }
    let body = line.strip_prefix("candidate:").unwrap_or(line);
    let fields: Vec<&str> = body.split_whitespace().collect();
    if fields.len() < 8 {
        return Err(Error::InvalidCandidate(format!("{line:?}: too few fields")));
    }
    if fields[2].eq_ignore_ascii_case("tcp") {
        return Ok(None);
    }
    if fields[4].parse::<std::net::IpAddr>().is_err() {
        if fields[4].ends_with(".local") {
            return Err(Error::UnsupportedCandidate(format!(
                "{}: mDNS host names cannot be resolved",
                fields[4]
            )));
        }
        return Err(Error::InvalidCandidate(format!(
            "{line:?}: the address is not an IP literal"
        )));
    }
    let normalized = format!("candidate:{body}");
    Candidate::from_sdp_string(&normalized)
        .map(Some)
        .map_err(|e| Error::InvalidCandidate(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host";

    #[test]
    fn candidate_accepted_with_or_without_prefixes() {
        for line in [
            LINE.to_owned(),
            format!("a={LINE}"),
            LINE.trim_start_matches("candidate:").to_owned(),
            format!("  {LINE}\r\n"),
        ] {
            let c = parse_candidate(&line).unwrap().unwrap();
            assert_eq!(c.addr(), "127.0.0.1:50000".parse().unwrap(), "{line}");
        }
    }

    #[test]
    fn empty_candidate_means_end_of_candidates() {
        assert!(parse_candidate("").unwrap().is_none());
        assert!(parse_candidate("a=").unwrap().is_none());
    }

    #[test]
    fn tcp_candidate_is_ignored() {
        let line = "candidate:2 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active";
        assert!(parse_candidate(line).unwrap().is_none());
    }

    #[test]
    fn mdns_candidate_is_unsupported() {
        let line = "candidate:1 1 udp 2130706431 0b1c2d3e-aaaa.local 50000 typ host";
        assert!(matches!(
            parse_candidate(line),
            Err(Error::UnsupportedCandidate(_))
        ));
    }

    #[test]
    fn malformed_candidates_are_errors() {
        for line in [
            "candidate:",
            "candidate:1 1 udp",
            "candidate:x y udp 1 127.0.0.1 5 typ host",
            "candidate:1 1 udp 1 127.0.0.1 99999 typ host",
            "candidate:1 1 udp 1 not-an-ip 5 typ host",
            "candidate:1 1 udp 1 127.0.0.1 5 typ nonsense",
            "\u{0}\u{1}\u{2}",
        ] {
            assert!(
                matches!(parse_candidate(line), Err(Error::InvalidCandidate(_))),
                "{line:?}"
            );
        }
    }

    #[test]
    fn sdp_kind_parses_godot_strings() {
        assert_eq!("offer".parse::<SdpKind>().unwrap(), SdpKind::Offer);
        assert_eq!("answer".parse::<SdpKind>().unwrap(), SdpKind::Answer);
        assert!(matches!(
            "pranswer".parse::<SdpKind>(),
            Err(Error::UnsupportedSdpKind(_))
        ));
    }

    #[test]
    fn godot_state_values() {
        assert_eq!(ConnectionState::New.godot_value(), 0);
        assert_eq!(ConnectionState::Closed.godot_value(), 5);
        assert_eq!(GatheringState::Complete.godot_value(), 2);
        assert_eq!(SignalingState::HaveRemoteOffer.godot_value(), 2);
        assert_eq!(SignalingState::Closed.godot_value(), 5);
    }

    #[test]
    fn remote_max_message_size_defaults_to_64_kib() {
        assert_eq!(remote_max_message_size("v=0\r\n"), 65536);
        assert_eq!(
            remote_max_message_size("a=max-message-size:262144\r\n"),
            262144
        );
        assert_eq!(
            remote_max_message_size("a=max-message-size:0\r\n"),
            usize::MAX
        );
    }

    #[test]
    fn malformed_remote_descriptions_are_typed_errors() {
        let mut pc = PeerConnection::new(PeerConfig::loopback()).unwrap();
        for sdp in ["", "garbage", "v=0\r\nm=nonsense\r\n", "v=0\r\n\u{0}"] {
            let err = pc.set_remote_description(SdpKind::Offer, sdp).unwrap_err();
            assert!(
                matches!(err, Error::InvalidSdp(_) | Error::SdpRejected(_)),
                "{sdp:?}: {err}"
            );
        }
        let err = pc
            .set_remote_description(SdpKind::Answer, "v=0\r\n")
            .unwrap_err();
        assert!(matches!(err, Error::InvalidState { .. }));
        // Nothing broke: the connection is still new.
        assert_eq!(pc.connection_state(), ConnectionState::New);
        assert_eq!(pc.signaling_state(), SignalingState::Stable);
    }

    #[test]
    fn create_offer_needs_a_channel() {
        let mut pc = PeerConnection::new(PeerConfig::loopback()).unwrap();
        assert!(matches!(pc.create_offer(), Err(Error::NoDataChannels)));
    }

    #[test]
    fn duplicate_negotiated_id_is_an_error_not_a_panic() {
        let mut pc = PeerConnection::new(PeerConfig::loopback()).unwrap();
        pc.create_data_channel("a", DataChannelOptions::negotiated(1))
            .unwrap();
        assert!(matches!(
            pc.create_data_channel("b", DataChannelOptions::negotiated(1)),
            Err(Error::DuplicateChannelId(1))
        ));
        pc.create_offer().unwrap();
        // After the offer the channels live in the engine, which would panic on a duplicate.
        assert!(matches!(
            pc.create_data_channel("c", DataChannelOptions::negotiated(1)),
            Err(Error::DuplicateChannelId(1))
        ));
        pc.create_data_channel("d", DataChannelOptions::negotiated(2))
            .unwrap();
    }

    #[test]
    fn offer_events_come_in_godot_order() {
        let mut pc = PeerConnection::new(PeerConfig::loopback()).unwrap();
        pc.create_data_channel("chat", DataChannelOptions::negotiated(1))
            .unwrap();
        pc.create_offer().unwrap();
        let events: Vec<Event> = std::iter::from_fn(|| pc.poll_event()).collect();
        assert!(matches!(
            events[0],
            Event::SignalingStateChanged(SignalingState::HaveLocalOffer)
        ));
        let Event::SessionDescriptionCreated { kind, sdp } = &events[1] else {
            panic!("{events:?}");
        };
        assert_eq!(*kind, SdpKind::Offer);
        pc.set_local_description(SdpKind::Offer, sdp).unwrap();
        assert!(pc.set_local_description(SdpKind::Answer, sdp).is_err());
        assert!(pc.set_local_description(SdpKind::Offer, "v=0").is_err());
        assert!(events.contains(&Event::GatheringStateChanged(GatheringState::Complete)));
        let candidates = events
            .iter()
            .filter(|e| matches!(e, Event::IceCandidateCreated { .. }))
            .count();
        assert_eq!(candidates, 1);
        assert!(matches!(pc.create_offer(), Err(Error::InvalidState { .. })));
    }

    #[test]
    fn garbage_candidates_and_descriptions_never_panic() {
        // A small deterministic fuzz: mutated real inputs.
        let mut pc = PeerConnection::new(PeerConfig::loopback()).unwrap();
        pc.create_data_channel("chat", DataChannelOptions::negotiated(1))
            .unwrap();
        pc.create_offer().unwrap();
        let sdp = pc.local_description().unwrap().1.to_owned();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..300 {
            let mut bytes = sdp.clone().into_bytes();
            for _ in 0..(next() % 8 + 1) {
                let i = (next() as usize) % bytes.len();
                bytes[i] = (next() % 128) as u8;
            }
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let mut other = PeerConnection::new(PeerConfig::loopback()).unwrap();
            let _ = other.set_remote_description(SdpKind::Offer, &text);
            let mut line = LINE.as_bytes().to_vec();
            let i = (next() as usize) % line.len();
            line[i] = (next() % 128) as u8;
            let _ = pc.add_ice_candidate("0", 0, &String::from_utf8_lossy(&line));
        }
    }
}
