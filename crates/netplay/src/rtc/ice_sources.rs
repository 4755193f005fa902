//! The candidate sources behind [`PeerConfig::ice_servers`]: server-reflexive candidates from
//! `stun:` servers and relayed (plus server-reflexive) candidates from `turn:` servers, both
//! over UDP from the host candidates' own sockets.
//!
//! [`StunSource`] sends one Binding request from each host socket to each STUN server and
//! turns the XOR-MAPPED-ADDRESS of the answer into a `srflx` candidate. [`TurnSource`] keeps
//! one [`TurnClient`] allocation per host socket and TURN server for the connection's
//! lifetime: its relayed address becomes a `relay` candidate, the ICE agent's datagrams from
//! that address are wrapped for the server, and the data the server relays is unwrapped for
//! the ICE agent. Both are driven by the peer connection's `poll()` through
//! [`CandidateSource`], with the time passed in; neither touches a socket.
//!
//! This module does not own the STUN and TURN protocols ([`stun`](crate::stun) does), the
//! sockets ([`gather`](super::gather)), nor the relay-only policy (the peer connection
//! decides which candidates it announces). Host names are resolved with the system resolver
//! when gathering starts, which blocks that call while the resolver works.

use crate::time::{Duration, Instant};
use std::collections::VecDeque;
use std::net::{SocketAddr, ToSocketAddrs};

use super::config::{IceScheme, IceServerUrl, PeerConfig};
use super::gather::{
    CandidateError, CandidateKind, CandidateSource, Intercept, LocalCandidate, SourceTransmit,
};
use crate::stun::turn::{TurnConfig, TurnEvent};
use crate::stun::{
    is_stun, Action, Class, ClientTransaction, Handled, Message, Method, PacketKind,
    RetransmitSchedule, TurnClient, TurnState,
};

/// RFC 8489's initial retransmission timeout.
const INITIAL_RTO: Duration = Duration::from_millis(500);
/// RFC 8489's default number of transmissions of a request.
const MAX_SENDS: u32 = 7;

/// The sources for `config`'s ICE servers (`urls` is what [`PeerConfig::validate`] returned):
/// a [`StunSource`] if there is a `stun:` server, a [`TurnSource`] if there is a `turn:` one.
pub(crate) fn sources_for(
    urls: &[IceServerUrl],
    config: &PeerConfig,
) -> Vec<Box<dyn CandidateSource>> {
    let mut sources: Vec<Box<dyn CandidateSource>> = Vec::new();
    let schedule = schedule_within(config.ice_server_timeout);
    let stun: Vec<IceServerUrl> = urls
        .iter()
        .filter(|u| u.scheme == IceScheme::Stun)
        .cloned()
        .collect();
    let turn: Vec<IceServerUrl> = urls
        .iter()
        .filter(|u| u.scheme == IceScheme::Turn)
        .cloned()
        .collect();
    if !stun.is_empty() {
        sources.push(Box::new(StunSource::new(stun, schedule)));
    }
    if !turn.is_empty() {
        sources.push(Box::new(TurnSource::new(turn, schedule)));
    }
    sources
}

/// The RFC 8489 §6.2.1 schedule (RTO 500 ms, doubling, at most Rc = 7 sends) with Rc and Rm
/// chosen so the transaction gives up at `timeout` (rounded up to a whole RTO): the default
/// 39.5 s gives RFC 8489's own Rc = 7, Rm = 16.
pub(crate) fn schedule_within(timeout: Duration) -> RetransmitSchedule {
    let rto = INITIAL_RTO.min(timeout).max(Duration::from_millis(1));
    let full = RetransmitSchedule {
        rto,
        rc: MAX_SENDS,
        rm: 1,
    };
    let mut schedule = RetransmitSchedule { rto, rc: 1, rm: 1 };
    while full.send_at(schedule.rc).is_some_and(|at| at < timeout) {
        schedule.rc += 1;
    }
    let last = schedule.send_at(schedule.rc - 1).unwrap_or_default();
    let rest = timeout.saturating_sub(last).as_nanos();
    let rm = rest.div_ceil(rto.as_nanos()).max(1);
    schedule.rm = u32::try_from(rm).unwrap_or(u32::MAX);
    schedule
}

/// The URL as a browser reports it in `icecandidateerror`: `stun:host:port`.
fn display_url(url: &IceServerUrl) -> String {
    let scheme = match url.scheme {
        IceScheme::Stun => "stun",
        IceScheme::Stuns => "stuns",
        IceScheme::Turn => "turn",
        IceScheme::Turns => "turns",
    };
    if url.host.contains(':') {
        format!("{scheme}:[{}]:{}", url.host, url.port)
    } else {
        format!("{scheme}:{}:{}", url.host, url.port)
    }
}

/// Resolves a server's host (an IP literal needs no resolver).
fn resolve(url: &IceServerUrl) -> Vec<SocketAddr> {
    match (url.host.as_str(), url.port).to_socket_addrs() {
        Ok(addresses) => addresses.collect(),
        Err(_) => Vec::new(),
    }
}

/// The server address the socket `local` can reach: one of its IP family, and not a remote
/// address from a loopback socket (the kernel would refuse to route it).
fn reachable_from(local: SocketAddr, servers: &[SocketAddr]) -> Option<SocketAddr> {
    servers.iter().copied().find(|server| {
        server.is_ipv4() == local.is_ipv4()
            && (server.ip().is_loopback() || !local.ip().is_loopback())
    })
}

/// The error for a server no socket could ask.
fn unreachable(url: &str, local: SocketAddr, resolved: bool) -> CandidateError {
    CandidateError {
        url: url.to_owned(),
        local,
        error_code: CandidateError::UNREACHABLE,
        error_text: if resolved {
            "the server has no address this socket can reach".into()
        } else {
            "the server's host name does not resolve".into()
        },
    }
}

/// One Binding request from one host socket to one STUN server.
struct Probe {
    url: String,
    local: SocketAddr,
    server: SocketAddr,
    tx: ClientTransaction,
    done: bool,
}

/// Server-reflexive candidates from `stun:` servers: a Binding request from every host socket
/// to every server, retransmitted on the RFC 8489 schedule. A mapped address equal to the host
/// address (no NAT in between) gives no candidate, as in browsers; an error answer or no
/// answer in time gives up on that server with a [`CandidateError`]. Complete once every
/// request is answered or given up.
pub(crate) struct StunSource {
    servers: Vec<IceServerUrl>,
    schedule: RetransmitSchedule,
    started: bool,
    probes: Vec<Probe>,
    transmits: VecDeque<SourceTransmit>,
    candidates: VecDeque<LocalCandidate>,
    found: Vec<LocalCandidate>,
    errors: VecDeque<CandidateError>,
}

impl StunSource {
    /// A source for these `stun:` servers, each request giving up on `schedule`.
    pub(crate) fn new(servers: Vec<IceServerUrl>, schedule: RetransmitSchedule) -> StunSource {
        StunSource {
            servers,
            schedule,
            started: false,
            probes: Vec::new(),
            transmits: VecDeque::new(),
            candidates: VecDeque::new(),
            found: Vec::new(),
            errors: VecDeque::new(),
        }
    }

    fn answer(&mut self, index: usize, message: &Message) {
        let probe = &self.probes[index];
        let (url, local) = (probe.url.clone(), probe.local);
        let fail = |code: u16, text: String| CandidateError {
            url: url.clone(),
            local,
            error_code: code,
            error_text: text,
        };
        match message.typ.class {
            Class::Success => {
                if !message.unknown_comprehension_required().is_empty() {
                    self.errors.push_back(fail(
                        CandidateError::UNREACHABLE,
                        "the answer has unknown comprehension-required attributes".into(),
                    ));
                    return;
                }
                match message.reflexive_address() {
                    None => self.errors.push_back(fail(
                        CandidateError::UNREACHABLE,
                        "the answer carries no mapped address".into(),
                    )),
                    Some(mapped) if mapped.is_ipv4() != local.is_ipv4() => {
                        self.errors.push_back(fail(
                            CandidateError::UNREACHABLE,
                            format!("the mapped address {mapped} is of another IP family"),
                        ))
                    }
                    // No NAT: the host candidate says it all.
                    Some(mapped) if mapped == local => {}
                    Some(mapped) => {
                        let candidate = LocalCandidate {
                            kind: CandidateKind::ServerReflexive,
                            address: mapped,
                            base: local,
                        };
                        // Two servers may well agree.
                        if !self.found.contains(&candidate) {
                            self.found.push(candidate);
                            self.candidates.push_back(candidate);
                        }
                    }
                }
            }
            _ => {
                let (code, text) = match message.error_code() {
                    Some(e) => (e.code, format!("{} {}", e.code, e.reason)),
                    None => (
                        CandidateError::UNREACHABLE,
                        "an error answer without ERROR-CODE".into(),
                    ),
                };
                self.errors.push_back(fail(code, text));
            }
        }
    }
}

impl CandidateSource for StunSource {
    fn start(&mut self, sockets: &[SocketAddr], now: Instant) {
        if self.started {
            return;
        }
        self.started = true;
        for url in std::mem::take(&mut self.servers) {
            let text = display_url(&url);
            let resolved = resolve(&url);
            for &local in sockets {
                let Some(server) = reachable_from(local, &resolved) else {
                    self.errors
                        .push_back(unreachable(&text, local, !resolved.is_empty()));
                    continue;
                };
                match ClientTransaction::new(
                    &Message::request(Method::Binding),
                    None,
                    self.schedule,
                ) {
                    Ok(tx) => self.probes.push(Probe {
                        url: text.clone(),
                        local,
                        server,
                        tx,
                        done: false,
                    }),
                    Err(e) => self.errors.push_back(CandidateError {
                        url: text.clone(),
                        local,
                        error_code: CandidateError::UNREACHABLE,
                        error_text: format!("the request does not encode: {e}"),
                    }),
                }
            }
        }
        self.handle_timeout(now);
    }

    fn handle_datagram(
        &mut self,
        local: SocketAddr,
        from: SocketAddr,
        contents: &[u8],
        _now: Instant,
    ) -> Intercept {
        if !is_stun(contents) || !self.probes.iter().any(|p| p.server == from) {
            return Intercept::Pass;
        }
        let Ok(message) = Message::decode(contents) else {
            return Intercept::Pass;
        };
        let Some(index) = self
            .probes
            .iter()
            .position(|p| p.local == local && p.server == from && p.tx.matches(&message))
        else {
            return Intercept::Pass;
        };
        let probe = &mut self.probes[index];
        // A late duplicate of an answer already taken, or one after giving up: still ours.
        if probe.tx.handle_response(&message) && !probe.done {
            probe.done = true;
            self.answer(index, &message);
        }
        Intercept::Consumed
    }

    fn handle_timeout(&mut self, now: Instant) {
        for probe in self.probes.iter_mut().filter(|p| !p.done) {
            // A send, then a wait: two rounds suffice; the bound keeps a bad clock harmless.
            for _ in 0..4 {
                match probe.tx.poll(now) {
                    Action::Transmit(bytes) => self.transmits.push_back(SourceTransmit {
                        local: probe.local,
                        destination: probe.server,
                        contents: bytes.to_vec(),
                    }),
                    Action::TimedOut => {
                        probe.done = true;
                        self.errors.push_back(CandidateError {
                            url: probe.url.clone(),
                            local: probe.local,
                            error_code: CandidateError::UNREACHABLE,
                            error_text: format!(
                                "no answer from the STUN server {} in time",
                                probe.server
                            ),
                        });
                        break;
                    }
                    Action::WaitUntil(_) | Action::Completed => break,
                }
            }
        }
    }

    fn poll_transmit(&mut self) -> Option<SourceTransmit> {
        self.transmits.pop_front()
    }

    fn poll_candidate(&mut self) -> Option<LocalCandidate> {
        self.candidates.pop_front()
    }

    fn is_complete(&self) -> bool {
        self.started && self.probes.iter().all(|p| p.done)
    }

    fn poll_error(&mut self) -> Option<CandidateError> {
        self.errors.pop_front()
    }
}

/// One allocation: a TURN client on one host socket.
struct Allocation {
    url: String,
    local: SocketAddr,
    client: TurnClient,
    relayed: Option<SocketAddr>,
    /// Allocated or failed: nothing more to gather from it.
    settled: bool,
}

/// Relayed candidates from `turn:` servers (over UDP): one allocation per host socket and
/// server, made with the long-term credentials, kept refreshed for the connection's lifetime
/// and released when it closes.
///
/// An allocation gives a `relay` candidate (based on its host socket) and, from the mapped
/// address in the same answer, a `srflx` candidate unless that equals the host address. The
/// ICE agent's datagrams from the relayed address are sent to the server in Send indications,
/// and in ChannelData once a channel is bound (bound for each peer that DTLS goes to);
/// permissions are created for each peer on the first datagram to it. A refused or unanswered
/// Allocate gives up on that server with a [`CandidateError`] (401 for wrong credentials).
pub(crate) struct TurnSource {
    servers: Vec<IceServerUrl>,
    config: TurnConfig,
    started: bool,
    now: Option<Instant>,
    allocations: Vec<Allocation>,
    candidates: VecDeque<LocalCandidate>,
    errors: VecDeque<CandidateError>,
}

impl TurnSource {
    /// A source for these `turn:` servers, each request giving up on `schedule`.
    pub(crate) fn new(servers: Vec<IceServerUrl>, schedule: RetransmitSchedule) -> TurnSource {
        TurnSource {
            servers,
            config: TurnConfig {
                schedule,
                ..TurnConfig::default()
            },
            started: false,
            now: None,
            allocations: Vec::new(),
            candidates: VecDeque::new(),
            errors: VecDeque::new(),
        }
    }

    /// Takes the allocation's events: candidates, failures, and the relayed data of the last
    /// datagram, which is returned.
    fn take_events(&mut self, index: usize) -> Option<(SocketAddr, Vec<u8>)> {
        let mut data = None;
        let a = &mut self.allocations[index];
        while let Some(event) = a.client.poll_event() {
            match event {
                TurnEvent::Allocated {
                    relayed, mapped, ..
                } => {
                    a.settled = true;
                    a.relayed = Some(relayed);
                    self.candidates.push_back(LocalCandidate {
                        kind: CandidateKind::Relayed,
                        address: relayed,
                        base: a.local,
                    });
                    if let Some(mapped) = mapped {
                        if mapped != a.local && mapped.is_ipv4() == a.local.is_ipv4() {
                            self.candidates.push_back(LocalCandidate {
                                kind: CandidateKind::ServerReflexive,
                                address: mapped,
                                base: a.local,
                            });
                        }
                    }
                }
                TurnEvent::AllocationFailed(failure) => {
                    a.settled = true;
                    self.errors.push_back(CandidateError {
                        url: a.url.clone(),
                        local: a.local,
                        error_code: failure.error_code().unwrap_or(CandidateError::UNREACHABLE),
                        error_text: failure.to_string(),
                    });
                }
                TurnEvent::Expired => {
                    self.errors.push_back(CandidateError {
                        url: a.url.clone(),
                        local: a.local,
                        error_code: CandidateError::UNREACHABLE,
                        error_text: "the TURN allocation expired (refresh failed)".into(),
                    });
                }
                TurnEvent::Data { peer, data: bytes } => {
                    // One datagram carries one payload; keep the first if ever more.
                    data.get_or_insert((peer, bytes));
                }
                _ => {}
            }
        }
        data
    }
}

impl CandidateSource for TurnSource {
    fn start(&mut self, sockets: &[SocketAddr], now: Instant) {
        if self.started {
            return;
        }
        self.started = true;
        self.now = Some(now);
        for url in std::mem::take(&mut self.servers) {
            let text = display_url(&url);
            let resolved = resolve(&url);
            let username = url.username.as_deref().unwrap_or_default();
            let password = url.credential.as_deref().unwrap_or_default();
            for &local in sockets {
                let Some(server) = reachable_from(local, &resolved) else {
                    self.errors
                        .push_back(unreachable(&text, local, !resolved.is_empty()));
                    continue;
                };
                let client =
                    TurnClient::with_config(server, username, password, self.config.clone(), now);
                self.allocations.push(Allocation {
                    url: text.clone(),
                    local,
                    client,
                    relayed: None,
                    settled: false,
                });
            }
        }
        for index in 0..self.allocations.len() {
            self.take_events(index);
        }
    }

    fn handle_datagram(
        &mut self,
        local: SocketAddr,
        from: SocketAddr,
        contents: &[u8],
        now: Instant,
    ) -> Intercept {
        self.now = Some(now);
        for index in 0..self.allocations.len() {
            let a = &mut self.allocations[index];
            if a.local != local {
                continue;
            }
            match a.client.handle_datagram(from, contents, now) {
                Handled::NotMine => continue,
                Handled::Dropped => {
                    self.take_events(index);
                    return Intercept::Consumed;
                }
                Handled::Consumed => {
                    let relayed = self.allocations[index].relayed;
                    return match (self.take_events(index), relayed) {
                        (Some((source, data)), Some(destination)) => Intercept::Deliver {
                            source,
                            destination,
                            contents: data,
                        },
                        _ => Intercept::Consumed,
                    };
                }
            }
        }
        Intercept::Pass
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.now = Some(now);
        for index in 0..self.allocations.len() {
            let a = &mut self.allocations[index];
            if a.client.poll_timeout().is_some_and(|t| t <= now) {
                a.client.handle_timeout(now);
            }
            self.take_events(index);
        }
    }

    fn poll_transmit(&mut self) -> Option<SourceTransmit> {
        self.allocations.iter_mut().find_map(|a| {
            a.client.poll_transmit().map(|t| SourceTransmit {
                local: a.local,
                destination: t.destination,
                contents: t.contents,
            })
        })
    }

    fn poll_candidate(&mut self) -> Option<LocalCandidate> {
        self.candidates.pop_front()
    }

    fn is_complete(&self) -> bool {
        self.started && self.allocations.iter().all(|a| a.settled)
    }

    fn wrap_transmit(
        &mut self,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) -> Option<SourceTransmit> {
        let now = self.now?;
        let a = self
            .allocations
            .iter_mut()
            .find(|a| a.relayed == Some(source))?;
        if a.client.state() != TurnState::Allocated {
            return None;
        }
        // DTLS goes to the nominated peer only: worth a channel (4 bytes of overhead instead
        // of 36). ICE checks go to every remote candidate and stay in Send indications.
        if crate::stun::classify(contents) == PacketKind::Dtls
            && a.client.channel(destination).is_none()
        {
            let _ = a.client.bind_channel(destination, now);
        }
        // On failure (queue full, other IP family) the datagram is lost, as UDP may lose it:
        // the protocols above retransmit.
        let _ = a.client.send_to(destination, contents, now);
        let local = a.local;
        // The oldest first, so a new permission goes out before the data that needs it; the
        // peer connection sends the rest through `poll_transmit` right after.
        a.client.poll_transmit().map(|t| SourceTransmit {
            local,
            destination: t.destination,
            contents: t.contents,
        })
    }

    fn poll_error(&mut self) -> Option<CandidateError> {
        self.errors.pop_front()
    }

    fn close(&mut self, now: Instant) {
        for a in &mut self.allocations {
            a.client.close(now);
            a.relayed = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stun::{Attribute, ErrorCode, MessageType};

    fn url(text: &str) -> IceServerUrl {
        IceServerUrl::parse(text).unwrap()
    }

    fn local() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    #[test]
    fn default_timeout_is_rfc_8489_schedule() {
        let s = schedule_within(Duration::from_millis(39_500));
        assert_eq!(s, RetransmitSchedule::default());
        assert_eq!(s.timeout_at(), Duration::from_millis(39_500));
    }

    #[test]
    fn short_timeouts_cut_the_schedule() {
        for ms in [1u64, 100, 499, 500, 501, 1_500, 2_000, 10_000, 100_000] {
            let timeout = Duration::from_millis(ms);
            let s = schedule_within(timeout);
            assert!(s.timeout_at() >= timeout, "{ms}: {s:?}");
            assert!(s.timeout_at() < timeout + s.rto, "{ms}: {s:?}");
            assert!(s.rc >= 1 && s.rc <= MAX_SENDS, "{ms}: {s:?}");
        }
        let s = schedule_within(Duration::from_secs(2));
        // Sends at 0, 0.5 and 1.5 s, gives up at 2 s.
        assert_eq!((s.rc, s.rm), (3, 1));
    }

    #[test]
    fn urls_are_reported_as_browsers_do() {
        assert_eq!(
            display_url(&url("stun:example.org")),
            "stun:example.org:3478"
        );
        assert_eq!(display_url(&url("stun:[::1]:9")), "stun:[::1]:9");
    }

    #[test]
    fn loopback_socket_does_not_ask_remote_servers() {
        let remote: SocketAddr = "192.0.2.1:3478".parse().unwrap();
        let v6: SocketAddr = "[::1]:3478".parse().unwrap();
        assert_eq!(reachable_from(local(), &[v6, remote]), None);
        let lo: SocketAddr = "127.0.0.1:3478".parse().unwrap();
        assert_eq!(reachable_from(local(), &[v6, lo]), Some(lo));
    }

    fn started_stun(server: &str) -> (StunSource, SourceTransmit, Instant) {
        let now = Instant::now();
        let mut source = StunSource::new(
            vec![url(&format!("stun:{server}"))],
            schedule_within(Duration::from_secs(2)),
        );
        source.start(&[local()], now);
        let request = source.poll_transmit().unwrap();
        assert_eq!(request.local, local());
        assert_eq!(request.destination, server.parse().unwrap());
        (source, request, now)
    }

    fn answer(request: &[u8], class: Class, attribute: Attribute) -> Vec<u8> {
        let request = Message::decode(request).unwrap();
        Message::new(
            MessageType::new(class, Method::Binding),
            request.transaction_id,
        )
        .with(attribute)
        .encode(None, true)
        .unwrap()
    }

    #[test]
    fn mapped_address_becomes_srflx_candidate() {
        let (mut source, request, now) = started_stun("127.0.0.1:3478");
        assert!(!source.is_complete());
        let mapped: SocketAddr = "192.0.2.9:1234".parse().unwrap();
        let bytes = answer(
            &request.contents,
            Class::Success,
            Attribute::XorMappedAddress(mapped),
        );
        let from = request.destination;
        assert_eq!(
            source.handle_datagram(local(), from, &bytes, now),
            Intercept::Consumed
        );
        assert_eq!(
            source.poll_candidate(),
            Some(LocalCandidate {
                kind: CandidateKind::ServerReflexive,
                address: mapped,
                base: local(),
            })
        );
        assert!(source.is_complete());
        // A duplicate answer is still taken, and gives nothing more.
        assert_eq!(
            source.handle_datagram(local(), from, &bytes, now),
            Intercept::Consumed
        );
        assert_eq!(source.poll_candidate(), None);
        assert_eq!(source.poll_error(), None);
    }

    #[test]
    fn mapped_address_equal_to_host_gives_no_candidate() {
        let (mut source, request, now) = started_stun("127.0.0.1:3478");
        let bytes = answer(
            &request.contents,
            Class::Success,
            Attribute::XorMappedAddress(local()),
        );
        source.handle_datagram(local(), request.destination, &bytes, now);
        assert!(source.is_complete());
        assert_eq!(source.poll_candidate(), None);
        assert_eq!(source.poll_error(), None);
    }

    #[test]
    fn error_answer_gives_up_with_its_code() {
        let (mut source, request, now) = started_stun("127.0.0.1:3478");
        let bytes = answer(
            &request.contents,
            Class::Error,
            Attribute::ErrorCode(ErrorCode::new(400, "Bad Request")),
        );
        source.handle_datagram(local(), request.destination, &bytes, now);
        assert!(source.is_complete());
        let error = source.poll_error().unwrap();
        assert_eq!(error.error_code, 400);
        assert_eq!(error.url, "stun:127.0.0.1:3478");
    }

    #[test]
    fn silence_gives_up_with_701_at_the_timeout() {
        let (mut source, _request, now) = started_stun("127.0.0.1:3478");
        let mut sends = 1;
        let mut t = now;
        while !source.is_complete() {
            t += Duration::from_millis(10);
            assert!(t < now + Duration::from_secs(3));
            source.handle_timeout(t);
            while source.poll_transmit().is_some() {
                sends += 1;
            }
        }
        assert_eq!(sends, 3);
        assert!(t >= now + Duration::from_secs(2));
        assert_eq!(
            source.poll_error().unwrap().error_code,
            CandidateError::UNREACHABLE
        );
    }

    #[test]
    fn garbage_and_strangers_pass_and_never_panic() {
        let (mut source, request, now) = started_stun("127.0.0.1:3478");
        let stranger: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let good = answer(
            &request.contents,
            Class::Success,
            Attribute::XorMappedAddress("192.0.2.9:1234".parse().unwrap()),
        );
        assert_eq!(
            source.handle_datagram(local(), stranger, &good, now),
            Intercept::Pass
        );
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for round in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut bytes = good.clone();
            let i = (seed as usize) % bytes.len();
            bytes[i] = (seed >> 32) as u8;
            bytes.truncate(bytes.len() - (round % 5));
            let _ = source.handle_datagram(local(), request.destination, &bytes, now);
            let _ = source.poll_candidate();
            let _ = source.poll_error();
        }
    }

    #[test]
    fn unresolvable_or_unreachable_server_completes_at_once() {
        let now = Instant::now();
        let mut source = StunSource::new(
            vec![url("stun:192.0.2.1:3478")],
            schedule_within(Duration::from_secs(2)),
        );
        source.start(&[local()], now);
        assert!(source.is_complete());
        assert_eq!(source.poll_transmit(), None);
        assert_eq!(
            source.poll_error().unwrap().error_code,
            CandidateError::UNREACHABLE
        );
        let mut turn = TurnSource::new(
            vec![IceServerUrl {
                username: Some("u".into()),
                credential: Some("p".into()),
                ..url("turn:192.0.2.1:3478")
            }],
            schedule_within(Duration::from_secs(2)),
        );
        turn.start(&[local()], now);
        assert!(turn.is_complete());
        assert!(turn.poll_error().is_some());
    }
}
