//! The secure transport under the data channels, sans-IO: str0m's ICE agent (connectivity
//! checks and nomination), a DTLS 1.2 session from str0m's `rust-crypto` provider (dimpl), and
//! netplay's own SCTP association ([`super::sctp`]), wired together.
//!
//! This module owns datagram demultiplexing (RFC 7983: STUN, DTLS, nothing else), the DTLS
//! role and the remote fingerprint check, the path datagrams leave on, and the hand-over of
//! SCTP packets to and from DTLS records. It does not own sockets, candidates' gathering,
//! SDP, data channels or connection-state timers: the peer connection does.

use crate::time::{Duration, Instant};
use std::collections::VecDeque;
use std::net::SocketAddr;

use str0m::crypto::dtls::{DtlsCert, DtlsInstance, DtlsOutput, DtlsVersion};
use str0m::crypto::CryptoProvider;
use str0m::ice::{IceAgent, IceAgentEvent, StunMessage, StunPacket};
use str0m::net::Protocol;
use str0m::{Candidate, IceConnectionState, IceCreds};

use super::error::{Error, Result};
use super::sctp::{Association, SctpConfig, SctpEvent};

/// DTLS records kept while no path to the remote peer is nominated yet.
const MAX_HELD_RECORDS: usize = 64;
/// Remote addresses remembered as verified by ICE.
const MAX_REMOTE_ADDRESSES: usize = 20;
/// The largest DTLS output buffer grown on the backend's request.
const MAX_DTLS_BUFFER: usize = 1 << 17;
/// The DTLS records the backend aims at (our SCTP packets plus the record overhead fit).
const DTLS_MTU: usize = 1200;
/// Spare datagram buffers kept for reuse.
const MAX_SPARE_BUFFERS: usize = 256;

/// One UDP datagram to send.
#[derive(Debug)]
pub struct Datagram {
    /// The local address to send from.
    pub source: SocketAddr,
    /// The remote address.
    pub destination: SocketAddr,
    /// The payload.
    pub contents: Vec<u8>,
}

/// What the transport reports.
#[derive(Debug)]
pub(crate) enum TransportEvent {
    /// The ICE agent's state changed.
    Ice(IceConnectionState),
    /// DTLS is up, the remote certificate matches its fingerprint, and the SCTP association
    /// has been created.
    Secure,
    /// Something from the SCTP association.
    Sctp(SctpEvent),
    /// Broken for good (a fingerprint mismatch, a DTLS failure): why.
    Failed(String),
    /// The remote peer closed DTLS (close_notify).
    Closed,
}

/// What the transport needs to know of the remote peer, from its description.
#[derive(Debug, Clone)]
pub(crate) struct RemoteParams {
    /// Its ICE credentials.
    pub(crate) creds: IceCreds,
    /// The SHA-256 fingerprint of its DTLS certificate.
    pub(crate) fingerprint: Vec<u8>,
    /// Whether this side controls ICE nomination.
    pub(crate) controlling: bool,
    /// Whether this side is the DTLS client.
    pub(crate) dtls_client: bool,
}

/// ICE + DTLS + SCTP for one peer connection.
pub(crate) struct Transport {
    provider: CryptoProvider,
    ice: IceAgent,
    cert: DtlsCert,
    fingerprint: [u8; 32],
    dtls: Option<Box<dyn DtlsInstance>>,
    dtls_client: bool,
    dtls_timeout: Option<Instant>,
    remote_fingerprint: Option<Vec<u8>>,
    fingerprint_checked: bool,
    sctp_config: SctpConfig,
    sctp: Option<Association>,
    send_path: Option<(SocketAddr, SocketAddr)>,
    remote_addrs: Vec<SocketAddr>,
    held: VecDeque<Vec<u8>>,
    out: VecDeque<Datagram>,
    spare: Vec<Vec<u8>>,
    events: VecDeque<TransportEvent>,
    dead: bool,
    dtls_buf: Vec<u8>,
    sctp_buf: Vec<u8>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("send_path", &self.send_path)
            .field("secure", &self.sctp.is_some())
            .field("dead", &self.dead)
            .finish()
    }
}

impl Transport {
    /// A transport with fresh ICE credentials and a fresh self-signed certificate. `stun_rto`
    /// is the ICE agent's (initial, maximum) check retransmission time.
    pub(crate) fn new(stun_rto: (Duration, Duration), sctp_config: SctpConfig) -> Result<Self> {
        let provider = str0m::crypto::from_feature_flags();
        let cert = provider
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| Error::Engine("no DTLS certificate could be generated".into()))?;
        let fingerprint = provider.sha256_provider.sha256(&cert.certificate);
        let mut ice = IceAgent::with_hmac(IceCreds::new(), provider.sha1_hmac_provider);
        ice.set_initial_stun_rto(stun_rto.0);
        ice.set_max_stun_rto(stun_rto.1);
        Ok(Transport {
            provider,
            ice,
            cert,
            fingerprint,
            dtls: None,
            dtls_client: false,
            dtls_timeout: None,
            remote_fingerprint: None,
            fingerprint_checked: false,
            sctp_config,
            sctp: None,
            send_path: None,
            remote_addrs: Vec::new(),
            held: VecDeque::new(),
            out: VecDeque::new(),
            spare: Vec::new(),
            events: VecDeque::new(),
            dead: false,
            dtls_buf: vec![0; 4096],
            sctp_buf: Vec::with_capacity(2048),
        })
    }

    /// This side's ICE credentials.
    pub(crate) fn local_credentials(&self) -> &IceCreds {
        self.ice.local_credentials()
    }

    /// The SHA-256 fingerprint of this side's certificate.
    pub(crate) fn fingerprint(&self) -> &[u8; 32] {
        &self.fingerprint
    }

    /// Whether the transport still works (not failed, not closed).
    pub(crate) fn is_alive(&self) -> bool {
        !self.dead
    }

    /// Whether this side is the DTLS client (known once [`start`](Self::start) ran).
    pub(crate) fn is_dtls_client(&self) -> bool {
        self.dtls_client
    }

    /// Starts ICE checks and DTLS with what the remote description said.
    pub(crate) fn start(&mut self, remote: RemoteParams, now: Instant) -> Result<()> {
        if self.dtls.is_some() {
            return Err(Error::InvalidState {
                operation: "start",
                reason: "the transport has started",
            });
        }
        self.ice.set_controlling(remote.controlling);
        self.ice.set_remote_credentials(remote.creds);
        self.remote_fingerprint = Some(remote.fingerprint);
        let mut dtls = self
            .provider
            .dtls_provider
            .new_dtls(&self.cert, now, DtlsVersion::Dtls12, Some(DTLS_MTU))
            .map_err(|e| Error::Engine(format!("DTLS: {e}")))?;
        dtls.set_active(remote.dtls_client);
        dtls.handle_timeout(now)
            .map_err(|e| Error::Engine(format!("DTLS: {e}")))?;
        if remote.dtls_client {
            // An empty input makes the client produce its ClientHello.
            let _ = dtls.handle_packet(&[]);
        }
        self.dtls_client = remote.dtls_client;
        self.dtls = Some(dtls);
        self.drive(now);
        Ok(())
    }

    /// Adds a local candidate; returns it as the ICE agent keeps it (with its priority and
    /// foundation), or `None` when the agent refuses it (a duplicate).
    pub(crate) fn add_local_candidate(&mut self, candidate: Candidate) -> Option<Candidate> {
        self.ice.add_local_candidate(candidate).cloned()
    }

    /// Adds a remote candidate.
    pub(crate) fn add_remote_candidate(&mut self, candidate: Candidate) {
        self.ice.add_remote_candidate(candidate);
    }

    /// Feeds one received datagram. Returns whether it belonged to this connection (false:
    /// neither an ICE check for us nor DTLS from a verified address).
    pub(crate) fn handle_datagram(
        &mut self,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
        now: Instant,
    ) -> bool {
        if self.dead || data.is_empty() {
            return false;
        }
        match data[0] {
            0..=3 => {
                let Ok(message) = StunMessage::parse(data) else {
                    return false;
                };
                if !self.ice.accepts_message(&message) {
                    return false;
                }
                let accepted = self.ice.handle_packet(
                    now,
                    StunPacket {
                        proto: Protocol::Udp,
                        source,
                        destination,
                        message,
                    },
                );
                self.drive_ice();
                accepted
            }
            20..=63 => {
                if !self.is_verified(source) {
                    return false;
                }
                let Some(dtls) = self.dtls.as_mut() else {
                    return false;
                };
                if dtls.handle_packet(data).is_err() {
                    // A record that does not decrypt or parse: dropped, the session goes on.
                    return false;
                }
                self.drive_dtls(now);
                true
            }
            _ => false,
        }
    }

    fn is_verified(&self, source: SocketAddr) -> bool {
        self.send_path.is_some_and(|(_, d)| d == source)
            || self.remote_addrs.contains(&source)
            || self.ice.has_viable_remote_candidate(source)
    }

    /// Runs what is due at `now`: ICE checks, DTLS and SCTP retransmissions. Cheap when
    /// nothing is due.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.dead {
            return;
        }
        // Always: the agent sends triggered checks and nominations from here, not only at
        // the deadline it reports.
        self.ice.handle_timeout(now);
        if self.dtls_timeout.is_some_and(|t| t <= now) {
            self.dtls_timeout = None;
            if let Some(dtls) = self.dtls.as_mut() {
                if let Err(e) = dtls.handle_timeout(now) {
                    self.fail(format!("DTLS: {e}"));
                    return;
                }
            }
        }
        if let Some(sctp) = self.sctp.as_mut() {
            if sctp.poll_timeout().is_some_and(|t| t <= now) {
                sctp.handle_timeout(now);
            }
        }
        self.drive(now);
    }

    /// Whether the association has a SACK to send now: then the driver should take the
    /// datagrams out (after [`send_acks`](Self::send_acks)) before reading more, so the peer
    /// hears as often as RFC 9260 6.2 says.
    pub(crate) fn sack_due(&self) -> bool {
        self.sctp.as_ref().is_some_and(Association::sack_due)
    }

    /// Lets the association send what is due (its SACK, and data the SACKs made room for),
    /// without the rest of [`drive`](Self::drive).
    pub(crate) fn send_acks(&mut self, now: Instant) {
        self.drive_sctp(now);
    }

    /// Sends what the association has to send: call after queueing messages.
    pub(crate) fn drive(&mut self, now: Instant) {
        if self.dead {
            return;
        }
        self.drive_ice();
        self.drive_dtls(now);
        self.drive_sctp(now);
    }

    /// The next datagram to send.
    pub(crate) fn poll_transmit(&mut self) -> Option<Datagram> {
        self.out.pop_front()
    }

    /// Gives a sent datagram's buffer back for reuse.
    pub(crate) fn recycle(&mut self, mut buffer: Vec<u8>) {
        if self.spare.len() < MAX_SPARE_BUFFERS {
            buffer.clear();
            self.spare.push(buffer);
        }
    }

    /// The next event.
    pub(crate) fn poll_event(&mut self) -> Option<TransportEvent> {
        self.events.pop_front()
    }

    /// The association, once DTLS is up.
    pub(crate) fn sctp(&mut self) -> Option<&mut Association> {
        self.sctp.as_mut()
    }

    /// The association, read only.
    pub(crate) fn sctp_ref(&self) -> Option<&Association> {
        self.sctp.as_ref()
    }

    /// The nominated pair: (local, remote).
    pub(crate) fn send_path(&self) -> Option<(SocketAddr, SocketAddr)> {
        self.send_path
    }

    /// The round-trip time of the last ICE check on the nominated pair.
    pub(crate) fn rtt(&self) -> Option<Duration> {
        self.ice.nominated_pair_rtt()
    }

    /// Closes: an SCTP ABORT and a DTLS close_notify go out (poll them with
    /// [`poll_transmit`](Self::poll_transmit)); the transport is dead afterwards.
    pub(crate) fn close(&mut self, now: Instant) {
        if self.dead {
            return;
        }
        if let Some(sctp) = self.sctp.as_mut() {
            sctp.abort("peer connection closed");
        }
        self.drive(now);
        if let Some(dtls) = self.dtls.as_mut() {
            let _ = dtls.close();
        }
        self.drive_dtls(now);
        self.dead = true;
    }

    /// Stops everything without telling the remote peer.
    pub(crate) fn disconnect(&mut self) {
        self.dead = true;
        self.held.clear();
    }

    fn fail(&mut self, reason: String) {
        if !self.dead {
            self.dead = true;
            self.events.push_back(TransportEvent::Failed(reason));
        }
    }

    fn drive_ice(&mut self) {
        while let Some(event) = self.ice.poll_event() {
            match event {
                IceAgentEvent::IceConnectionStateChange(state) => {
                    self.events.push_back(TransportEvent::Ice(state));
                }
                IceAgentEvent::DiscoveredRecv { source, .. } => {
                    if !self.remote_addrs.contains(&source) {
                        if self.remote_addrs.len() >= MAX_REMOTE_ADDRESSES {
                            self.remote_addrs.remove(0);
                        }
                        self.remote_addrs.push(source);
                    }
                }
                IceAgentEvent::NominatedSend {
                    source,
                    destination,
                    ..
                } => {
                    self.send_path = Some((source, destination));
                    while let Some(record) = self.held.pop_front() {
                        self.out.push_back(Datagram {
                            source,
                            destination,
                            contents: record,
                        });
                    }
                }
                IceAgentEvent::IceRestart(_) => {}
            }
        }
        while let Some(t) = self.ice.poll_transmit() {
            self.out.push_back(Datagram {
                source: t.source,
                destination: t.destination,
                contents: t.contents.into(),
            });
        }
    }

    /// Takes everything DTLS has to give, up to its next timeout.
    fn drive_dtls(&mut self, now: Instant) {
        let Some(dtls) = self.dtls.as_mut() else {
            return;
        };
        let mut connected = false;
        loop {
            match dtls.poll_output(&mut self.dtls_buf) {
                DtlsOutput::Packet(record) => {
                    let mut contents = self.spare.pop().unwrap_or_default();
                    contents.extend_from_slice(record);
                    match self.send_path {
                        Some((source, destination)) => self.out.push_back(Datagram {
                            source,
                            destination,
                            contents,
                        }),
                        None if self.held.len() < MAX_HELD_RECORDS => {
                            self.held.push_back(contents);
                        }
                        None => {}
                    }
                }
                DtlsOutput::BufferTooSmall { needed } => {
                    if needed > MAX_DTLS_BUFFER || needed <= self.dtls_buf.len() {
                        self.fail(format!("DTLS wants a {needed} byte buffer"));
                        return;
                    }
                    self.dtls_buf.resize(needed, 0);
                }
                DtlsOutput::Timeout(t) => {
                    self.dtls_timeout = Some(t);
                    break;
                }
                DtlsOutput::Connected => connected = true,
                DtlsOutput::PeerCert(der) => {
                    let seen = self.provider.sha256_provider.sha256(der);
                    if self.remote_fingerprint.as_deref() != Some(&seen[..]) {
                        self.fail(
                            "the remote DTLS certificate does not match a=fingerprint".into(),
                        );
                        return;
                    }
                    self.fingerprint_checked = true;
                }
                DtlsOutput::ApplicationData(packet) => {
                    if let Some(sctp) = self.sctp.as_mut() {
                        if let Err(e) = sctp.handle_packet(packet, now) {
                            tracing::debug!("SCTP packet dropped: {e}");
                        }
                    }
                }
                DtlsOutput::CloseNotify => {
                    self.dead = true;
                    self.events.push_back(TransportEvent::Closed);
                    return;
                }
                _ => {}
            }
        }
        if connected && self.sctp.is_none() {
            if !self.fingerprint_checked {
                self.fail("DTLS connected without a remote certificate".into());
                return;
            }
            let mut config = self.sctp_config.clone();
            config.initiate = self.dtls_client;
            self.sctp = Some(Association::new(config, now, &mut crate::random::Rng::os()));
            self.events.push_back(TransportEvent::Secure);
        }
    }

    /// Encrypts what the association sends, then takes its events.
    fn drive_sctp(&mut self, now: Instant) {
        loop {
            if self.dead {
                return;
            }
            let (Some(sctp), Some(dtls)) = (self.sctp.as_mut(), self.dtls.as_mut()) else {
                return;
            };
            if !sctp.poll_transmit(now, &mut self.sctp_buf) {
                break;
            }
            if let Err(e) = dtls.send_application_data(&self.sctp_buf) {
                tracing::debug!("DTLS refused an SCTP packet: {e}");
                break;
            }
            // Each packet becomes one record: take it out at once.
            self.drive_dtls(now);
        }
        if let Some(sctp) = self.sctp.as_mut() {
            while let Some(event) = sctp.poll_event() {
                self.events.push_back(TransportEvent::Sctp(event));
            }
        }
    }
}
