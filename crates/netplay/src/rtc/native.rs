//! The native platform of [`PeerConnection`](super::PeerConnection): the sans-IO [`Engine`]
//! driven over UDP sockets.
//!
//! Owns the I/O around the engine: the sockets (bound when gathering starts), host
//! candidates, the candidate sources (STUN, TURN and custom ones, which see datagrams before
//! the engine and may wrap what it sends), the clock, and the `poll()` loop. Everything else
//! (offer/answer, ICE, DTLS, SCTP, channels, timers) is the engine's.
//!
//! Nothing runs between two calls: `poll()` reads the sockets, feeds the engine, sends what it
//! produces and leaves its events to be drained. Signaling (carrying descriptions and
//! candidates to the other side) is the application's job. The public API and its
//! documentation are [`super::peer`]'s, which forwards here.

use std::fmt;
use std::net::SocketAddr;

use super::channel::{ChannelId, DataChannel};
use super::config::{DataChannelOptions, IceServerUrl, PeerConfig};
use super::engine::Engine;
use super::error::{Error, Result};
use super::gather::{CandidateKind, CandidateSource, Intercept, LocalCandidate};
use super::ice_sources;
use super::state::{
    ConnectionState, Event, GatheringState, SdpKind, SessionDescription, SignalingState, Stats,
};
use super::udp::{RecvBatch, Sockets};
use crate::time::{Duration, Instant};

/// Receive calls on one socket in one `poll()` at most (each brings up to a few hundred
/// datagrams), so a flood cannot hold it.
const MAX_RECEIVES_PER_POLL: usize = 64;

/// The native platform of [`PeerConnection`](super::PeerConnection): the engine, its sockets and
/// candidate sources.
pub(crate) struct NativePeer {
    engine: Engine,
    ice_servers: Vec<IceServerUrl>,
    sockets: Sockets,
    sources: Vec<Box<dyn CandidateSource>>,
    /// The sources were told to release what they hold (the connection ended).
    sources_closed: bool,
    /// Datagrams and bytes the candidate sources sent themselves (STUN, TURN requests).
    source_packets: u64,
    source_bytes: u64,
    received: RecvBatch,
}

impl fmt::Debug for NativePeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NativePeer")
            .field("engine", &self.engine)
            .field("sockets", &self.sockets.addresses())
            .finish()
    }
}

impl NativePeer {
    /// A new connection in [`ConnectionState::New`]. Fails when the configuration is invalid
    /// (for example, a malformed ICE server URL). No socket is opened until gathering starts
    /// (`create_offer` or a remote offer).
    pub(crate) fn new(config: PeerConfig) -> Result<NativePeer> {
        let ice_servers = config.validate()?;
        let sources = ice_sources::sources_for(&ice_servers, &config);
        Ok(NativePeer {
            engine: Engine::new(config, Instant::now())?,
            ice_servers,
            sockets: Sockets::empty(),
            sources,
            sources_closed: false,
            source_packets: 0,
            source_bytes: 0,
            received: RecvBatch::new(),
        })
    }

    pub(crate) fn initialize(&mut self, config: PeerConfig) -> Result<()> {
        let fresh = NativePeer::new(config)?;
        self.close();
        *self = fresh;
        Ok(())
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn config(&self) -> &PeerConfig {
        self.engine.config()
    }

    pub(crate) fn ice_servers(&self) -> &[IceServerUrl] {
        &self.ice_servers
    }

    pub(crate) fn add_candidate_source(&mut self, source: Box<dyn CandidateSource>) -> Result<()> {
        if self.engine.gathering_state() != GatheringState::New {
            return Err(Error::InvalidState {
                operation: "add_candidate_source",
                reason: "gathering has started",
            });
        }
        self.sources.push(source);
        Ok(())
    }

    pub(crate) fn connection_state(&self) -> ConnectionState {
        self.engine.connection_state()
    }

    pub(crate) fn gathering_state(&self) -> GatheringState {
        self.engine.gathering_state()
    }

    pub(crate) fn signaling_state(&self) -> SignalingState {
        self.engine.signaling_state()
    }

    pub(crate) fn local_addresses(&self) -> Vec<SocketAddr> {
        self.sockets.addresses()
    }

    pub(crate) fn max_message_size(&self) -> usize {
        self.engine.max_message_size()
    }

    pub(crate) fn stats(&self) -> Stats {
        let mut stats = self.engine.stats();
        stats.packets_sent += self.source_packets;
        stats.bytes_sent += self.source_bytes;
        stats
    }

    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        self.engine.poll_event()
    }

    pub(crate) fn create_data_channel(
        &mut self,
        label: &str,
        options: DataChannelOptions,
    ) -> Result<ChannelId> {
        self.engine.create_data_channel(label, options)
    }

    pub(crate) fn channel(&mut self, id: ChannelId) -> Option<DataChannel<'_>> {
        self.engine.channel(id)
    }

    pub(crate) fn channel_ids(&self) -> impl Iterator<Item = ChannelId> + '_ {
        self.engine.channel_ids()
    }

    pub(crate) fn channel_count(&self) -> usize {
        self.engine.channel_count()
    }

    pub(crate) fn create_offer(&mut self) -> Result<()> {
        self.engine.check_offer()?;
        self.bind_sockets()?;
        let now = Instant::now();
        self.engine.create_offer(now)?;
        self.start_gathering(now);
        Ok(())
    }

    pub(crate) fn set_local_description(&mut self, kind: SdpKind, sdp: &str) -> Result<()> {
        self.engine.set_local_description(kind, sdp)
    }

    pub(crate) fn local_description(&self) -> Option<SessionDescription<'_>> {
        self.engine.local_description()
    }

    pub(crate) fn set_remote_description(&mut self, kind: SdpKind, sdp: &str) -> Result<()> {
        let now = Instant::now();
        if kind == SdpKind::Offer && self.engine.accepts_offer() {
            // Sockets first: an offer that cannot be answered for want of them changes nothing.
            self.bind_sockets()?;
        }
        let result = self.engine.set_remote_description(kind, sdp, now);
        match kind {
            SdpKind::Offer if result.is_ok() => self.start_gathering(now),
            // The answer lets the datagrams kept for it through: send what they caused.
            _ => self.flush(),
        }
        self.end_if_finished(now);
        result
    }

    pub(crate) fn add_ice_candidate(
        &mut self,
        mid: &str,
        index: u32,
        candidate: &str,
    ) -> Result<()> {
        self.engine.add_ice_candidate(mid, index, candidate)
    }

    pub(crate) fn close(&mut self) {
        if self.engine.connection_state() == ConnectionState::Closed {
            return;
        }
        let now = Instant::now();
        self.engine.close(now);
        self.flush();
        self.end_if_finished(now);
        self.sockets = Sockets::empty();
    }

    pub(crate) fn poll(&mut self) {
        self.poll_at(Instant::now());
    }

    pub(crate) fn poll_at(&mut self, now: Instant) {
        if self.engine.is_finished() {
            return;
        }
        self.read_sockets(now);
        self.run_sources(now);
        self.engine.handle_timeout(now);
        self.flush();
        self.end_if_finished(now);
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.engine.poll_timeout()
    }

    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        let mut timeout = timeout;
        match self.engine.poll_timeout() {
            Some(due) => {
                timeout = timeout.min(due.saturating_duration_since(Instant::now()));
            }
            // Closed or failed: nothing will arrive.
            None => return false,
        }
        self.sockets.wait(timeout, self.engine.wants_input())
    }

    fn bind_sockets(&mut self) -> Result<()> {
        if self.sockets.len() == 0 {
            self.sockets = Sockets::bind(self.engine.config())?;
        }
        Ok(())
    }

    /// Announces the host candidates and starts the other sources.
    fn start_gathering(&mut self, now: Instant) {
        if self.engine.gathering_state() != GatheringState::New {
            return;
        }
        self.engine.set_gathering_state(GatheringState::Gathering);
        let addresses = self.sockets.addresses();
        // Relay only: the host sockets are the TURN clients' bases, never candidates.
        if !self.engine.config().relay_only {
            for address in &addresses {
                self.engine.add_local_candidate(LocalCandidate {
                    kind: CandidateKind::Host,
                    address: *address,
                    base: *address,
                });
            }
        }
        for source in &mut self.sources {
            source.start(&addresses, now);
        }
        self.run_sources(now);
    }

    /// Drives the candidate sources. They keep running after gathering completes: a TURN
    /// source refreshes its allocation and relays data for the connection's lifetime.
    fn run_sources(&mut self, now: Instant) {
        if self.engine.gathering_state() == GatheringState::New {
            return;
        }
        let mut found = Vec::new();
        for source in &mut self.sources {
            source.handle_timeout(now);
            while let Some(c) = source.poll_candidate() {
                found.push(c);
            }
            while let Some(e) = source.poll_error() {
                self.engine.report_candidate_error(e);
            }
        }
        self.send_source_transmits();
        let relay_only = self.engine.config().relay_only;
        for c in found {
            if !relay_only || c.kind == CandidateKind::Relayed {
                self.engine.add_local_candidate(c);
            }
        }
        if self.sources.iter().all(|s| s.is_complete()) {
            self.engine.set_gathering_state(GatheringState::Complete);
        }
    }

    /// Sends what the candidate sources want sent (requests, and the rest of what a wrapped
    /// transmit queued).
    fn send_source_transmits(&mut self) {
        for source in &mut self.sources {
            while let Some(t) = source.poll_transmit() {
                if self.sockets.send(t.local, t.destination, &t.contents) {
                    self.source_packets += 1;
                    self.source_bytes += t.contents.len() as u64;
                }
            }
        }
    }

    /// Once the engine is finished (closed or failed): lets the sources release what servers
    /// hold for them (TURN allocations), with one last round of transmits.
    fn end_if_finished(&mut self, now: Instant) {
        if self.engine.is_finished() {
            self.close_sources(now);
        }
    }

    /// Lets the sources release what servers hold for them, once, with one last round of
    /// transmits.
    fn close_sources(&mut self, now: Instant) {
        if !self.sources_closed {
            self.sources_closed = true;
            for source in &mut self.sources {
                source.close(now);
            }
            self.send_source_transmits();
        }
    }

    fn read_sockets(&mut self, now: Instant) {
        let mut batch = std::mem::replace(&mut self.received, RecvBatch::new());
        // The engine's output is sent once per receive call (up to a few hundred datagrams),
        // not once per datagram. The inbound limit is checked before each call, so at most
        // one call's worth of datagrams goes beyond it.
        'sockets: for index in 0..self.sockets.len() {
            let Some(local) = self.sockets.local(index) else {
                continue;
            };
            for _ in 0..MAX_RECEIVES_PER_POLL {
                if !self.engine.wants_input() {
                    break 'sockets;
                }
                if self.sockets.recv(index, &mut batch) == 0 {
                    break;
                }
                for (from, data) in batch.datagrams() {
                    self.handle_datagram(local, from, data, now);
                }
                self.flush();
            }
        }
        self.received = batch;
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
                self.engine
                    .handle_datagram(source, destination, &contents, now);
            }
            None => self.engine.handle_datagram(from, local, data, now),
        }
    }

    /// `PeerConnection::flush`: packs what the channels were given and sends it now.
    pub(crate) fn send_now(&mut self) {
        self.engine.send_queued(Instant::now());
        self.flush();
    }

    /// Sends the engine's datagrams, through a TURN relay where the path is relayed, less
    /// those a source drops (a test impairment), then what the sources queued.
    fn flush(&mut self) {
        while let Some(t) = self.engine.poll_transmit() {
            if self
                .sources
                .iter_mut()
                .any(|s| s.drop_transmit(t.source, t.destination, &t.contents))
            {
                // Lost on the path, as far as this side can tell.
                self.engine.recycle(t.contents);
                continue;
            }
            let mut wrapped = None;
            for source in &mut self.sources {
                if let Some(w) = source.wrap_transmit(t.source, t.destination, &t.contents) {
                    wrapped = Some(w);
                    break;
                }
            }
            match &wrapped {
                Some(w) => {
                    self.sockets.send(w.local, w.destination, &w.contents);
                }
                None => self.sockets.queue(t.source, t.destination, &t.contents),
            };
            self.engine.recycle(t.contents);
        }
        self.sockets.send_batch();
        self.send_source_transmits();
    }
}

impl Drop for NativePeer {
    fn drop(&mut self) {
        // Tell the remote peer, as `close()` does, so it does not wait for a timeout.
        let now = Instant::now();
        self.engine.shut_down(now);
        self.flush();
        self.close_sources(now);
    }
}
