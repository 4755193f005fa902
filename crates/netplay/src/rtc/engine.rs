//! The WebRTC engine: everything a peer connection does except sockets and candidate
//! gathering, sans-IO. Datagrams and time go in, datagrams and [`Event`]s come out.
//!
//! Owns the offer/answer state machine, the [transport](super::transport) (ICE, DTLS, SCTP),
//! the data channels (their streams, DCEP and the close handshake), the connection-state
//! timers (connect timeout, Disconnected, Failed) and the statistics. It opens no socket,
//! reads no clock (every call that needs the time takes it, and a channel's send uses the
//! latest time given) and starts no thread, so it runs in virtual time in tests. The native
//! [`PeerConnection`](super::PeerConnection) is this engine plus UDP sockets, host candidates
//! and the STUN/TURN candidate sources.

use crate::time::{Duration, Instant};
use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;

use str0m::{Candidate, IceConnectionState, IceCreds};

use super::channel::{ChannelId, DataChannel};
use super::channels::Channels;
use super::config::{DataChannelOptions, PeerConfig, DEFAULT_REMOTE_MAX_MESSAGE_SIZE};
use super::dcep;
use super::engine_channel::{ChannelEntry, ChannelState, EngineChannel};
use super::error::{Error, Result};
use super::gather::{CandidateError, CandidateKind, LocalCandidate};
use super::sctp::{Reliability, SctpConfig, SctpEvent, SendError};
use super::sdp::{self, LocalDescription, RemoteDescription, SdpError, Setup};
use super::state::{
    CandidatePair, ConnectionState, Event, GatheringState, SdpKind, SessionDescription,
    SignalingState, Stats,
};
use super::transport::{RemoteParams, Transport, TransportEvent};

pub use super::transport::Datagram;

/// Most datagrams kept while waiting for the answer to our offer.
const MAX_EARLY_DATAGRAMS: usize = 64;
/// Datagrams fed to the transport between two drains of its output.
const DRAIN_EVERY: usize = 32;
/// The SCTP port of every association (RFC 8841 default).
const SCTP_PORT: u16 = 5000;

/// The sans-IO WebRTC engine of one peer connection: everything but sockets and gathering.
///
/// A driver feeds it every datagram that arrives with [`handle_datagram`](Engine::handle_datagram),
/// calls [`handle_timeout`](Engine::handle_timeout) after each batch and whenever
/// [`poll_timeout`](Engine::poll_timeout) is due, then sends every
/// [`poll_transmit`](Engine::poll_transmit) and drains [`poll_event`](Engine::poll_event).
/// It tells the engine its local candidates ([`add_local_candidate`](Engine::add_local_candidate))
/// and how gathering goes ([`set_gathering_state`](Engine::set_gathering_state)). The
/// signaling calls are the ones of [`PeerConnection`](super::PeerConnection), each with the
/// current time.
pub struct Engine {
    config: PeerConfig,
    pub(crate) transport: Transport,
    pub(crate) channels: Channels,
    events: VecDeque<Event>,
    state: ConnectionState,
    gathering: GatheringState,
    signaling: SignalingState,
    /// Our offer is out and its answer not applied yet.
    awaiting_answer: bool,
    local_description: Option<(SdpKind, String)>,
    /// A description was created or applied: no second exchange.
    negotiated: bool,
    /// The association is up: channels open on it at once.
    established: bool,
    /// Datagrams that arrived while this side's offer waited for its answer (the remote peer
    /// starts ICE and DTLS as soon as it has answered, and its first flights can outrun the
    /// answer through signaling); fed to the engine once the answer is applied.
    early_datagrams: VecDeque<(SocketAddr, SocketAddr, Vec<u8>)>,
    mid: String,
    session_id: u64,
    remote_max_message_size: usize,
    negotiated_at: Option<Instant>,
    last_received: Option<Instant>,
    disconnected_since: Option<Instant>,
    ice_disconnected: bool,
    dtls_connected: bool,
    stats: Stats,
    /// Received bytes the channels hold, last told to the association.
    held_reported: usize,
    /// Datagrams fed since the transport's output was last drained.
    undrained: usize,
    /// The latest time given to the engine: the time of a channel's sends.
    pub(crate) now: Instant,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("state", &self.state)
            .field("gathering", &self.gathering)
            .field("signaling", &self.signaling)
            .field("channels", &self.channels.len())
            .finish()
    }
}

impl Engine {
    /// A new engine in [`ConnectionState::New`] at time `now`. Fails when the configuration
    /// is invalid. The engine uses the configuration's limits and timeouts; its ICE servers,
    /// addresses and ports are the driver's business.
    pub fn new(config: PeerConfig, now: Instant) -> Result<Engine> {
        config.validate()?;
        // The engine checks the nominated pair at least every `max_rto`: three checks per
        // disconnection timeout keep a healthy but idle connection from looking silent.
        let max_rto = (config.ice_disconnected_timeout / 3)
            .clamp(Duration::from_millis(50), Duration::from_secs(3));
        let sctp = SctpConfig {
            max_message_size: config.max_message_size,
            max_buffered_amount: config.max_buffered_amount,
            ..SctpConfig::default()
        };
        let transport = Transport::new((max_rto.min(Duration::from_millis(250)), max_rto), sctp)?;
        let mut id = [0u8; 8];
        crate::random::fill(&mut id);
        Ok(Engine {
            transport,
            channels: Channels::new(config.max_channels, config.max_channel_in_buffer),
            events: VecDeque::new(),
            state: ConnectionState::New,
            gathering: GatheringState::New,
            signaling: SignalingState::Stable,
            awaiting_answer: false,
            local_description: None,
            negotiated: false,
            established: false,
            early_datagrams: VecDeque::new(),
            mid: String::from("0"),
            session_id: u64::from_be_bytes(id) >> 2,
            remote_max_message_size: DEFAULT_REMOTE_MAX_MESSAGE_SIZE,
            negotiated_at: None,
            last_received: None,
            disconnected_since: None,
            ice_disconnected: false,
            dtls_connected: false,
            stats: Stats::default(),
            held_reported: 0,
            undrained: 0,
            now,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PeerConfig {
        &self.config
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
        stats.rtt = self.transport.rtt().or(stats.rtt);
        stats.selected_pair = self
            .transport
            .send_path()
            .map(|(local, remote)| CandidatePair { local, remote });
        if let Some(sctp) = self.transport.sctp_ref() {
            let s = sctp.stats();
            stats.retransmissions = s.retransmitted_chunks;
            stats.abandoned_messages = s.abandoned_messages;
        }
        for c in self.channels.iter() {
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
            if self.channels.stream_in_use(id) {
                return Err(Error::DuplicateChannelId(id));
            }
        }
        if !self.channels.has_room() {
            return Err(Error::TooManyChannels {
                max: self.channels.max(),
            });
        }
        // On a running association it opens at the next `poll()`.
        Ok(self
            .channels
            .insert(ChannelEntry::new(label.to_owned(), &options)))
    }

    /// The channel behind `id`, borrowing this connection; `None` for a handle this
    /// connection never gave, or for a channel that closed and was forgotten (see
    /// [`DataChannel`]).
    pub fn channel(&mut self, id: ChannelId) -> Option<DataChannel<'_>> {
        self.channels.get(id)?;
        Some(DataChannel::from_platform(EngineChannel { pc: self, id }))
    }

    /// The handles of every channel, in creation order.
    pub fn channel_ids(&self) -> impl Iterator<Item = ChannelId> + '_ {
        self.channels.ids()
    }

    /// How many channels exist: open, opening, closing, or closed and not yet forgotten.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Godot's `create_offer`: needs at least one data channel and a new connection. Queues
    /// [`Event::SessionDescriptionCreated`] with the offer; the candidates follow as the
    /// driver gathers them.
    pub fn create_offer(&mut self, now: Instant) -> Result<()> {
        self.check_offer()?;
        self.now = now;
        let sdp = self.write_description(Setup::ActPass, None);
        self.negotiated = true;
        self.awaiting_answer = true;
        self.local_description = Some((SdpKind::Offer, sdp.clone()));
        self.set_signaling(SignalingState::HaveLocalOffer);
        self.events.push_back(Event::SessionDescriptionCreated {
            kind: SdpKind::Offer,
            sdp,
        });
        Ok(())
    }

    /// Whether [`create_offer`](Self::create_offer) would be accepted now: the same errors,
    /// nothing changed (a driver checks before it opens sockets).
    pub fn check_offer(&self) -> Result<()> {
        if self.is_finished() {
            return Err(Error::Closed);
        }
        if self.signaling != SignalingState::Stable || self.negotiated {
            return Err(Error::InvalidState {
                operation: "create_offer",
                reason: "only one offer/answer exchange per connection is supported",
            });
        }
        if !self.channels.any_waiting() {
            return Err(Error::NoDataChannels);
        }
        Ok(())
    }

    /// Whether a remote offer may still be applied (no exchange happened yet).
    pub fn accepts_offer(&self) -> bool {
        !self.is_finished() && self.signaling == SignalingState::Stable && !self.negotiated
    }

    fn write_description(&self, setup: Setup, offer: Option<&RemoteDescription>) -> String {
        let creds: &IceCreds = self.transport.local_credentials();
        let local = LocalDescription {
            session_id: self.session_id,
            ice_ufrag: &creds.ufrag,
            ice_pwd: &creds.pass,
            fingerprint_sha256: self.transport.fingerprint(),
            setup,
            mid: &self.mid,
            sctp_port: SCTP_PORT,
            max_message_size: self.config.max_message_size as u64,
            candidates: &[],
            end_of_candidates: false,
        };
        match offer {
            None => sdp::write_offer(&local),
            Some(offer) => sdp::write_answer(&local, offer),
        }
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
    pub fn local_description(&self) -> Option<SessionDescription<'_>> {
        self.local_description
            .as_ref()
            .map(|(kind, sdp)| SessionDescription { kind: *kind, sdp })
    }

    /// Godot's `set_remote_description`. A remote offer queues
    /// [`Event::SessionDescriptionCreated`] with the answer (the driver then gathers).
    ///
    /// Fails with [`Error::InvalidSdp`] when the text does not parse (nothing changes: a
    /// corrected description can be given), [`Error::SdpRejected`] when it parses but cannot
    /// be applied (an answer that cannot be applied fails the connection), and
    /// [`Error::InvalidState`] for an offer after the first exchange or an answer without an
    /// offer.
    pub fn set_remote_description(&mut self, kind: SdpKind, sdp: &str, now: Instant) -> Result<()> {
        if self.is_finished() {
            return Err(Error::Closed);
        }
        self.now = now;
        match kind {
            SdpKind::Offer => {
                if self.signaling != SignalingState::Stable || self.negotiated {
                    return Err(Error::InvalidState {
                        operation: "set_remote_description(offer)",
                        reason: "only one offer/answer exchange per connection is supported",
                    });
                }
                let offer = sdp::parse(sdp, true).map_err(sdp_error)?;
                // JSEP: the answerer takes the DTLS role the offer leaves open (the client,
                // as browsers do) and is the controlled ICE agent.
                let (setup, dtls_client) = match offer.setup {
                    Setup::Active => (Setup::Passive, false),
                    Setup::Passive | Setup::ActPass => (Setup::Active, true),
                };
                self.mid = offer.mid.clone();
                let answer = self.write_description(setup, Some(&offer));
                self.apply_remote(&offer, false, dtls_client, now)?;
                self.negotiated = true;
                self.local_description = Some((SdpKind::Answer, answer.clone()));
                self.set_signaling(SignalingState::HaveRemoteOffer);
                self.events.push_back(Event::SessionDescriptionCreated {
                    kind: SdpKind::Answer,
                    sdp: answer,
                });
                self.set_signaling(SignalingState::Stable);
                self.start_negotiation(now);
                Ok(())
            }
            SdpKind::Answer => {
                if self.signaling != SignalingState::HaveLocalOffer || !self.awaiting_answer {
                    return Err(Error::InvalidState {
                        operation: "set_remote_description(answer)",
                        reason: "no local offer is waiting for an answer",
                    });
                }
                let answer = sdp::parse(sdp, false).map_err(sdp_error)?;
                // The answer says which DTLS role it took; ours is the other one.
                let dtls_client = answer.setup == Setup::Passive;
                if let Err(e) = self.apply_remote(&answer, true, dtls_client, now) {
                    self.fail();
                    return Err(e);
                }
                self.awaiting_answer = false;
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

    /// Starts the transport with a remote description and adds the candidates it carries.
    fn apply_remote(
        &mut self,
        remote: &RemoteDescription,
        offerer: bool,
        dtls_client: bool,
        now: Instant,
    ) -> Result<()> {
        self.transport.start(
            RemoteParams {
                creds: IceCreds {
                    ufrag: remote.ice_ufrag.clone(),
                    pass: remote.ice_pwd.clone(),
                },
                fingerprint: remote.fingerprint.bytes.clone(),
                // The offerer controls, unless the other side is a full agent facing our
                // lite one (never: we are full) or is lite itself (then we must control).
                controlling: offerer || remote.ice_lite,
                dtls_client,
            },
            now,
        )?;
        self.remote_max_message_size = remote_max_message_size(remote.max_message_size);
        for line in &remote.candidates {
            if let Ok(Some(candidate)) = parse_candidate(line) {
                self.transport.add_remote_candidate(candidate);
            }
        }
        Ok(())
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
        self.transport.add_remote_candidate(candidate);
        Ok(())
    }

    /// Godot's `close()`: closes every channel and the connection, telling the remote peer
    /// (SCTP shutdown, DTLS close_notify, in datagrams [`poll_transmit`](Self::poll_transmit)
    /// then gives). Final.
    pub fn close(&mut self, now: Instant) {
        if self.state == ConnectionState::Closed {
            return;
        }
        self.now = now;
        if self.transport.is_alive() {
            self.transport.close(now);
        }
        self.transport.disconnect();
        self.close_all_channels();
        self.set_signaling(SignalingState::Closed);
        self.set_state(ConnectionState::Closed);
        self.awaiting_answer = false;
    }

    /// Tells the remote peer that this side goes away (as [`close`](Self::close) does on the
    /// wire), without the events: for a driver being dropped.
    pub fn shut_down(&mut self, now: Instant) {
        if !self.is_finished() && self.transport.is_alive() {
            self.transport.close(now);
        }
    }

    /// Runs what is due at `now`: the transport's timers (ICE checks, DTLS and SCTP
    /// retransmissions), the output of the datagrams fed since the last call, the channels
    /// waiting to open, and the connection-state timers. Call it after every batch of
    /// [`handle_datagram`](Self::handle_datagram) and whenever
    /// [`poll_timeout`](Self::poll_timeout) is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.is_finished() {
            return;
        }
        self.channels.sweep();
        self.transport.handle_timeout(now);
        self.drain_output(now);
        self.check_timers(now);
    }

    /// Packs what the channels were given since the last [`handle_timeout`](Self::handle_timeout)
    /// into datagrams, for [`poll_transmit`](Self::poll_transmit), without running the
    /// timers or ICE: a driver's "send now" after a burst of messages.
    pub fn send_queued(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
        if self.is_finished() || !self.established {
            return;
        }
        self.transport.send_acks(self.now);
    }

    /// When [`handle_timeout`](Self::handle_timeout) must run next at the latest. The ICE
    /// agent's checks and consent run on every call, so a driver that waits longer than
    /// this delays them.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_finished() {
            return None;
        }
        let tick = match self.state {
            ConnectionState::New | ConnectionState::Connecting => Duration::from_millis(10),
            _ => Duration::from_millis(50),
        };
        Some(self.now + tick)
    }

    /// The next datagram to send: from `source` (one of the local candidates' bases) to
    /// `destination`. Give the buffer back with [`recycle`](Self::recycle) once sent.
    pub fn poll_transmit(&mut self) -> Option<Datagram> {
        let t = self.transport.poll_transmit()?;
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += t.contents.len() as u64;
        Some(t)
    }

    /// Returns a sent datagram's buffer for reuse.
    pub fn recycle(&mut self, buffer: Vec<u8>) {
        self.transport.recycle(buffer);
    }

    /// Whether the engine takes more datagrams now. `false` while a channel holds
    /// [`PeerConfig::max_channel_in_buffer`] received bytes and nothing this side sent awaits
    /// acknowledgement: a driver then leaves datagrams in its socket, so the back pressure
    /// reaches the sender. While something awaits acknowledgement the datagrams are read (its
    /// SACKs are among them: two peers that echo each other would otherwise wait on each
    /// other for good), and what the channels hold counts against the advertised receive
    /// window, which bounds them.
    pub fn wants_input(&self) -> bool {
        !self.channels.any_full()
            || self
                .transport
                .sctp_ref()
                .is_some_and(|sctp| sctp.total_buffered() > 0)
    }

    /// Tells the engine that a local candidate was gathered (its base is the socket address
    /// datagrams from it are sent from); queues [`Event::IceCandidateCreated`].
    pub fn add_local_candidate(&mut self, local: LocalCandidate) {
        self.announce(local);
    }

    /// Tells the engine how gathering goes; queues [`Event::GatheringStateChanged`].
    pub fn set_gathering_state(&mut self, state: GatheringState) {
        self.set_gathering(state);
    }

    /// Queues [`Event::IceCandidateError`] for a candidate source's failure.
    pub fn report_candidate_error(&mut self, error: CandidateError) {
        self.events.push_back(Event::IceCandidateError(error));
    }

    /// Whether the connection is over (closed or failed).
    pub fn is_finished(&self) -> bool {
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
        if let Some(added) = self.transport.add_local_candidate(candidate) {
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

    /// Takes one datagram that arrived at `destination` (a local socket address) from
    /// `source`. The output it causes is drained every few datagrams and by
    /// [`handle_timeout`](Self::handle_timeout); a SACK that is due is queued at once.
    pub fn handle_datagram(
        &mut self,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
        now: Instant,
    ) {
        self.now = now;
        if self.is_finished() {
            return;
        }
        self.feed(source, destination, data, now);
        self.undrained += 1;
        if self.transport.sack_due() {
            // Acknowledge as often as RFC 9260 says, not once per batch: a lost SACK must
            // not be the only one the peer would get.
            self.transport.send_acks(now);
        }
        if self.undrained >= DRAIN_EVERY {
            self.drain_output(now);
        }
    }

    fn feed(&mut self, source: SocketAddr, destination: SocketAddr, data: &[u8], now: Instant) {
        if !self.transport.is_alive() {
            return;
        }
        if self.awaiting_answer {
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
        if self
            .transport
            .handle_datagram(source, destination, data, now)
        {
            self.stats.packets_received += 1;
            self.stats.bytes_received += data.len() as u64;
            self.last_received = Some(now);
        } else {
            self.stats.packets_discarded += 1;
        }
    }

    /// Lets the transport send, handles what it reports, opens waiting channels and sends
    /// what that queued.
    fn drain_output(&mut self, now: Instant) {
        self.undrained = 0;
        self.transport.drive(now);
        while let Some(event) = self.transport.poll_event() {
            self.handle_transport_event(event, now);
        }
        if self.established {
            self.open_waiting_channels(now);
            let held = self.channels.held_bytes();
            if held != self.held_reported {
                self.held_reported = held;
                if let Some(sctp) = self.transport.sctp() {
                    sctp.set_held_bytes(held);
                }
            }
            self.transport.drive(now);
            self.report_buffered_low();
        }
    }

    /// Queues [`Event::BufferedAmountLow`] for the channels whose buffered amount fell to
    /// their threshold since the last check. Only channels that were over it are looked at.
    fn report_buffered_low(&mut self) {
        if !self.channels.any_over_low() {
            return;
        }
        let Some(sctp) = self.transport.sctp_ref() else {
            return;
        };
        let low = self
            .channels
            .take_low(|entry| entry.stream_id.map_or(0, |s| sctp.buffered_amount(s)));
        self.events
            .extend(low.into_iter().map(Event::BufferedAmountLow));
    }

    fn handle_transport_event(&mut self, event: TransportEvent, now: Instant) {
        match event {
            TransportEvent::Secure => {
                self.dtls_connected = true;
                self.last_received = Some(now);
                if !self.is_finished() {
                    self.set_state(ConnectionState::Connected);
                }
            }
            TransportEvent::Ice(ice) => match ice {
                IceConnectionState::Checking if self.state == ConnectionState::New => {
                    self.set_state(ConnectionState::Connecting);
                }
                IceConnectionState::Disconnected => self.ice_disconnected = true,
                IceConnectionState::Connected | IceConnectionState::Completed => {
                    self.ice_disconnected = false;
                }
                _ => {}
            },
            TransportEvent::Sctp(event) => self.handle_sctp_event(event, now),
            TransportEvent::Failed(reason) => {
                tracing::debug!("peer connection failed: {reason}");
                self.fail();
            }
            TransportEvent::Closed => self.remote_closed(),
        }
    }

    fn remote_closed(&mut self) {
        self.transport.disconnect();
        self.close_all_channels();
        self.set_signaling(SignalingState::Closed);
        self.set_state(ConnectionState::Closed);
    }

    fn handle_sctp_event(&mut self, event: SctpEvent, now: Instant) {
        match event {
            SctpEvent::Established => {
                self.established = true;
                self.open_waiting_channels(now);
            }
            SctpEvent::Message { stream, ppid, data } => {
                self.handle_message(stream, ppid, data, now);
            }
            SctpEvent::IncomingStreamsReset(mut streams) => {
                if streams.is_empty() {
                    // Every stream.
                    streams = self.channels.busy_streams();
                }
                let mut reset = Vec::new();
                for stream in streams {
                    let Some(id) = self.channels.on_stream(stream) else {
                        continue;
                    };
                    let state = match self.channels.get(id).map(|c| c.state) {
                        // RFC 8831 §6.7: the remote peer closed; close our side too.
                        Some(ChannelState::Open { .. }) => {
                            reset.push(stream);
                            ChannelState::Closing {
                                incoming_reset: true,
                                outgoing_reset: false,
                            }
                        }
                        Some(ChannelState::Closing { outgoing_reset, .. }) => {
                            ChannelState::Closing {
                                incoming_reset: true,
                                outgoing_reset,
                            }
                        }
                        _ => continue,
                    };
                    self.set_channel_state(id, state);
                    self.settle_close(id);
                }
                if !reset.is_empty() {
                    if let Some(sctp) = self.transport.sctp() {
                        sctp.reset_streams(&reset);
                    }
                }
            }
            SctpEvent::OutgoingStreamsReset(streams) => {
                for stream in streams {
                    let Some(id) = self.channels.on_stream(stream) else {
                        continue;
                    };
                    if let Some(ChannelState::Closing { incoming_reset, .. }) =
                        self.channels.get(id).map(|c| c.state)
                    {
                        let state = ChannelState::Closing {
                            incoming_reset,
                            outgoing_reset: true,
                        };
                        self.set_channel_state(id, state);
                        self.settle_close(id);
                    }
                }
            }
            SctpEvent::OutgoingStreamsResetFailed(streams) => {
                // The peer cannot reset them: the channels are over for us, but their streams
                // stay taken (their sequence numbers were not reset).
                for stream in streams {
                    if let Some(id) = self.channels.on_stream(stream) {
                        self.mark_channel_closed(id);
                    }
                }
            }
            SctpEvent::Closed { error } => {
                tracing::debug!("SCTP association closed: {error:?}");
                self.remote_closed();
            }
        }
    }

    /// Marks a channel closed once its stream is reset both ways (or, when the remote peer
    /// closed it, once our side is reset too).
    fn settle_close(&mut self, id: ChannelId) {
        if let Some(ChannelState::Closing {
            incoming_reset: true,
            outgoing_reset: true,
        }) = self.channels.get(id).map(|c| c.state)
        {
            self.set_channel_state(
                id,
                ChannelState::Closed {
                    stream_taken: false,
                },
            );
            self.events.push_back(Event::DataChannelClosed(id));
        }
    }

    /// Sets a channel's state in the table; a channel closing while the connection lives is
    /// forgotten once drained.
    fn set_channel_state(&mut self, id: ChannelId, state: ChannelState) {
        let live = !self.is_finished();
        self.channels.set_state(id, state, live);
    }

    fn handle_message(&mut self, stream: u16, ppid: u32, data: Vec<u8>, now: Instant) {
        if ppid == dcep::PPID_DCEP {
            match dcep::parse(&data) {
                Ok(dcep::Message::Open(open)) => self.remote_opened(stream, &open, now),
                Ok(dcep::Message::Ack) => {
                    if let Some(id) = self.channels.on_stream(stream) {
                        self.acknowledged(id);
                    }
                }
                Err(e) => tracing::debug!("DCEP message on stream {stream} refused: {e}"),
            }
            return;
        }
        let Some((binary, empty)) = dcep::message_kind(ppid) else {
            tracing::debug!("message with unknown PPID {ppid} on stream {stream} dropped");
            return;
        };
        let Some(id) = self.channels.on_stream(stream) else {
            tracing::debug!("message on stream {stream} without a channel dropped");
            return;
        };
        // Any message from the other side acknowledges the channel (RFC 8832 §6).
        self.acknowledged(id);
        if matches!(
            self.channels.get(id).map(|c| c.state),
            Some(ChannelState::Closed { .. })
        ) {
            return;
        }
        let data = if empty { Vec::new() } else { data };
        self.channels.push_inbound(id, data, binary);
    }

    /// The remote peer acknowledged an in-band channel: it may send unordered now.
    fn acknowledged(&mut self, id: ChannelId) {
        if let Some(ChannelState::Open { awaiting_ack: true }) =
            self.channels.get(id).map(|c| c.state)
        {
            self.set_channel_state(
                id,
                ChannelState::Open {
                    awaiting_ack: false,
                },
            );
        }
    }

    /// A DATA_CHANNEL_OPEN from the remote peer: a new channel, acknowledged at once.
    fn remote_opened(&mut self, stream: u16, open: &dcep::Open, now: Instant) {
        if self.channels.stream_in_use(stream) {
            tracing::debug!("DATA_CHANNEL_OPEN on stream {stream}, which is in use: ignored");
            return;
        }
        if !self.channels.has_room() {
            // Refused the way a closed channel ends: by resetting the stream, which the
            // remote peer answers by closing its side.
            tracing::debug!(
                "DATA_CHANNEL_OPEN on stream {stream} refused: {} channels exist already",
                self.channels.len()
            );
            if let Some(sctp) = self.transport.sctp() {
                sctp.reset_streams(&[stream]);
            }
            return;
        }
        if let Err(e) = self.send_dcep(stream, &dcep::encode_ack(), now) {
            tracing::debug!("DATA_CHANNEL_ACK on stream {stream} not queued: {e}");
        }
        let handle = self
            .channels
            .insert(ChannelEntry::from_remote(open, stream));
        self.events.push_back(Event::DataChannelReceived(handle));
        self.events.push_back(Event::DataChannelOpen(handle));
    }

    /// Queues a DCEP message on `stream`: ordered and reliable whatever the channel is (RFC
    /// 8832 §6).
    fn send_dcep(
        &mut self,
        stream: u16,
        message: &[u8],
        now: Instant,
    ) -> std::result::Result<(), SendError> {
        let Some(sctp) = self.transport.sctp() else {
            return Err(SendError::NotOpen);
        };
        sctp.send(
            stream,
            dcep::PPID_DCEP,
            true,
            Reliability::Reliable,
            message,
            now,
        )
    }

    /// Opens the channels still waiting on a running association: negotiated ones at once,
    /// in-band ones with a DATA_CHANNEL_OPEN on a stream of our parity (RFC 8832 §6: the DTLS
    /// client takes even ids, the server odd ones).
    fn open_waiting_channels(&mut self, now: Instant) {
        if !self.channels.any_waiting() {
            return;
        }
        let client = self.transport.is_dtls_client();
        // In-band channels take the lowest free stream of our parity; the search goes on
        // from the last one taken in this pass.
        let mut candidate: u32 = if client { 0 } else { 1 };
        for id in self.channels.waiting() {
            let Some(entry) = self.channels.get(id) else {
                continue;
            };
            let (negotiated_stream, in_band) = (entry.stream_id, entry.negotiated.is_none());
            let stream = match negotiated_stream {
                Some(stream) => stream,
                None => {
                    while candidate <= u32::from(u16::MAX - 1)
                        && self.channels.stream_in_use(candidate as u16)
                    {
                        candidate += 2;
                    }
                    if candidate > u32::from(u16::MAX - 1) {
                        tracing::debug!("no free stream for a channel");
                        self.mark_channel_closed(id);
                        continue;
                    }
                    candidate as u16
                }
            };
            if in_band {
                let open = self.channels.get(id).map(|c| c.dcep_open().encode());
                match self.send_dcep(stream, &open.unwrap_or_default(), now) {
                    Ok(()) => {}
                    // No room now: try again at the next poll.
                    Err(SendError::BufferFull) => return,
                    Err(e) => {
                        tracing::debug!("channel on stream {stream} cannot open: {e}");
                        self.mark_channel_closed(id);
                        continue;
                    }
                }
                self.channels.assign_stream(id, stream);
            }
            self.set_channel_state(
                id,
                ChannelState::Open {
                    awaiting_ack: in_band,
                },
            );
            self.events.push_back(Event::DataChannelOpen(id));
        }
    }

    /// Closes a channel at once (no stream reset under way, or none possible any more).
    fn mark_channel_closed(&mut self, id: ChannelId) {
        let Some(state) = self.channels.get(id).map(|c| c.state) else {
            return;
        };
        if !matches!(state, ChannelState::Closed { .. }) {
            let stream_taken = state.stream_busy();
            self.set_channel_state(id, ChannelState::Closed { stream_taken });
            self.events.push_back(Event::DataChannelClosed(id));
        }
    }

    fn close_all_channels(&mut self) {
        for id in self.channels.ids().collect::<Vec<_>>() {
            self.mark_channel_closed(id);
        }
    }

    pub(crate) fn close_channel(&mut self, id: ChannelId) {
        let Some(entry) = self.channels.get(id) else {
            return;
        };
        match entry.state {
            ChannelState::Closed { .. } | ChannelState::Closing { .. } => {}
            ChannelState::Open { .. } if self.transport.is_alive() => {
                let stream = entry.stream_id.expect("an open channel has a stream");
                self.set_channel_state(
                    id,
                    ChannelState::Closing {
                        incoming_reset: false,
                        outgoing_reset: false,
                    },
                );
                if let Some(sctp) = self.transport.sctp() {
                    sctp.reset_streams(&[stream]);
                }
            }
            // Never opened on the wire: nothing to tell the remote peer.
            _ => self.mark_channel_closed(id),
        }
    }

    fn fail(&mut self) {
        if self.is_finished() {
            return;
        }
        self.transport.disconnect();
        self.close_all_channels();
        self.set_state(ConnectionState::Failed);
    }

    fn check_timers(&mut self, now: Instant) {
        if self.is_finished() {
            return;
        }
        if !self.transport.is_alive() {
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

/// The error of a remote description that does not parse, or cannot be used.
fn sdp_error(e: SdpError) -> Error {
    match e {
        SdpError::Malformed(m) => Error::InvalidSdp(m),
        SdpError::Unusable(m) => Error::SdpRejected(m),
    }
}

/// The remote `a=max-message-size`: absent means 64 KiB (RFC 8841 §6), 0 means no limit.
fn remote_max_message_size(value: Option<u64>) -> usize {
    match value {
        None => DEFAULT_REMOTE_MAX_MESSAGE_SIZE,
        Some(0) => usize::MAX,
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
    }
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
    use crate::rtc::PeerConnection;

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
        assert_eq!(remote_max_message_size(None), 65536);
        assert_eq!(remote_max_message_size(Some(262144)), 262144);
        assert_eq!(remote_max_message_size(Some(0)), usize::MAX);
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
        let sdp = pc.local_description().unwrap().sdp.to_owned();
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
