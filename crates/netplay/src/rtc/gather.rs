//! ICE candidate gathering: which host addresses to bind (one socket each), the candidates
//! they give, and the hook through which other candidate sources (server-reflexive via STUN,
//! relayed via TURN) add candidates and see the datagrams meant for them.
//!
//! This module owns address selection and the candidate-source contract. The sockets
//! themselves are [`udp`](super::udp)'s; ICE checks are str0m's; STUN and TURN are spoken by
//! a [`CandidateSource`].

use crate::time::Instant;
use std::net::SocketAddr;
#[cfg(not(target_arch = "wasm32"))]
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[cfg(not(target_arch = "wasm32"))]
use super::config::PeerConfig;

/// The kind of a local ICE candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CandidateKind {
    /// An address of a local interface.
    Host,
    /// The address a STUN server saw (the public side of a NAT).
    ServerReflexive,
    /// An address allocated on a TURN server.
    Relayed,
}

/// A candidate found by a [`CandidateSource`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LocalCandidate {
    /// The kind.
    pub kind: CandidateKind,
    /// The address the remote peer sends to.
    pub address: SocketAddr,
    /// The local socket it belongs to (for a relayed candidate: the socket that talks to the
    /// TURN server).
    pub base: SocketAddr,
}

/// A datagram a [`CandidateSource`] wants sent from one of the local sockets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceTransmit {
    /// The local socket to send from (one of the addresses given to
    /// [`CandidateSource::start`]).
    pub local: SocketAddr,
    /// Where to send it.
    pub destination: SocketAddr,
    /// The bytes.
    pub contents: Vec<u8>,
}

/// What a [`CandidateSource`] does with an incoming datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Intercept {
    /// Not for this source: offer it to the next source, then to the ICE agent.
    Pass,
    /// Taken (a STUN or TURN response to the source's own request).
    Consumed,
    /// Data a TURN server relayed, unwrapped: give it to the ICE agent as received from
    /// `source` on the relayed address `destination`.
    Deliver {
        /// The remote peer's address.
        source: SocketAddr,
        /// The relayed candidate's address.
        destination: SocketAddr,
        /// The payload.
        contents: Vec<u8>,
    },
}

/// A STUN or TURN server that gave no candidate, as a browser's `icecandidateerror` event
/// reports it: from [`CandidateSource::poll_error`], announced as
/// `Event::IceCandidateError`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CandidateError {
    /// The server's URL, as `stun:host:port` or `turn:host:port`.
    pub url: String,
    /// The local socket that asked.
    pub local: SocketAddr,
    /// The STUN error code of the server's answer (300..=699, for example 401 for refused
    /// credentials), or [`CandidateError::UNREACHABLE`].
    pub error_code: u16,
    /// What went wrong, for people.
    pub error_text: String,
}

impl CandidateError {
    /// The W3C code for "the server could not be reached": no answer in time, no usable local
    /// socket, a host name that does not resolve, or an answer that made no sense.
    pub const UNREACHABLE: u16 = 701;
}

/// A source of local candidates beyond the host ones, driven by the peer connection's
/// `poll()` like everything else (no threads, time passed in).
///
/// Plug one in with [`PeerConnection::add_candidate_source`](super::PeerConnection::add_candidate_source)
/// before gathering starts. The peer connection then:
/// 1. calls [`start`](Self::start) with the addresses of its sockets when gathering starts;
/// 2. offers every received datagram to [`handle_datagram`](Self::handle_datagram) before the
///    ICE agent sees it;
/// 3. on every `poll()` calls [`handle_timeout`](Self::handle_timeout) and sends what
///    [`poll_transmit`](Self::poll_transmit) returns, and announces what
///    [`poll_candidate`](Self::poll_candidate) returns (to the ICE agent and as
///    `Event::IceCandidateCreated`);
/// 4. offers every datagram the ICE agent sends to [`drop_transmit`](Self::drop_transmit)
///    (a test impairment may lose it), then to [`wrap_transmit`](Self::wrap_transmit), so a
///    TURN source can wrap data sent from its relayed address;
/// 5. reports gathering complete once every source [`is_complete`](Self::is_complete);
/// 6. announces what [`poll_error`](Self::poll_error) returns as `Event::IceCandidateError`;
/// 7. calls [`close`](Self::close) when the connection closes or fails, and sends what
///    [`poll_transmit`](Self::poll_transmit) then returns, once, before the sockets go.
pub trait CandidateSource {
    /// Gathering starts on these local sockets.
    fn start(&mut self, sockets: &[SocketAddr], now: Instant);
    /// A datagram arrived on the socket `local` from `from`.
    fn handle_datagram(
        &mut self,
        local: SocketAddr,
        from: SocketAddr,
        contents: &[u8],
        now: Instant,
    ) -> Intercept;
    /// Time passes (retransmissions, refreshes).
    fn handle_timeout(&mut self, now: Instant);
    /// The next datagram to send, if any.
    fn poll_transmit(&mut self) -> Option<SourceTransmit>;
    /// The next candidate found, if any.
    fn poll_candidate(&mut self) -> Option<LocalCandidate>;
    /// Whether this source will find no more candidates (done or given up).
    fn is_complete(&self) -> bool;
    /// A datagram the ICE agent sends from `source`: return `true` to lose it, as the path
    /// might. For tests that impair a connection (the peer connection counts it as sent and
    /// offers it to no other source). The default keeps every datagram.
    fn drop_transmit(
        &mut self,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) -> bool {
        let _ = (source, destination, contents);
        false
    }
    /// A datagram the ICE agent sends from `source`: return `Some` to send the returned
    /// datagram instead (for example, wrapped for a TURN relay), `None` to let it go as is.
    fn wrap_transmit(
        &mut self,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) -> Option<SourceTransmit> {
        let _ = (source, destination, contents);
        None
    }
    /// The next server that gave up, if any.
    fn poll_error(&mut self) -> Option<CandidateError> {
        None
    }
    /// The connection is over: release what the servers hold (a TURN allocation), as far as
    /// one last round of [`poll_transmit`](Self::poll_transmit) can.
    fn close(&mut self, now: Instant) {
        let _ = now;
    }
}

/// The IP addresses to gather host candidates on.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn host_addresses(config: &PeerConfig) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    if !config.bind_addresses.is_empty() {
        for ip in &config.bind_addresses {
            if !out.contains(ip) {
                out.push(*ip);
            }
        }
        return out;
    }
    if config.gather_non_loopback {
        if let Ok(interfaces) = if_addrs::get_if_addrs() {
            for interface in interfaces {
                let ip = interface.ip();
                if ip.is_loopback() || !usable(ip, config) || out.contains(&ip) {
                    continue;
                }
                out.push(ip);
            }
        }
    }
    if config.gather_loopback {
        out.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
        if config.gather_ipv6 {
            out.push(IpAddr::V6(Ipv6Addr::LOCALHOST));
        }
    }
    out
}

#[cfg(not(target_arch = "wasm32"))]
fn usable(ip: IpAddr, config: &PeerConfig) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_unspecified() && !v4.is_multicast() && !v4.is_broadcast(),
        // Link-local IPv6 needs a scope id that candidates cannot carry.
        IpAddr::V6(v6) => {
            config.gather_ipv6
                && !v6.is_unspecified()
                && !v6.is_multicast()
                && (v6.segments()[0] & 0xffc0) != 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_config_gathers_only_127_0_0_1() {
        let addrs = host_addresses(&PeerConfig::loopback());
        assert_eq!(addrs, vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    }

    #[test]
    fn explicit_bind_addresses_win() {
        let config = PeerConfig {
            bind_addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST); 2],
            ..PeerConfig::default()
        };
        assert_eq!(host_addresses(&config).len(), 1);
    }
}
