//! Configuration of a peer connection and of its data channels: ICE servers (with their URLs
//! parsed and checked), the native gathering knobs, timeouts and buffer limits.
//!
//! This module owns validation only; it opens no socket.

use crate::time::Duration;
use std::net::IpAddr;
use std::ops::RangeInclusive;

use super::error::{Error, Result};

/// The default STUN/TURN port (RFC 7064, RFC 7065).
pub const DEFAULT_STUN_PORT: u16 = 3478;
/// The default port of STUN and TURN over TLS (`stuns:`, `turns:`).
pub const DEFAULT_STUNS_PORT: u16 = 5349;
/// The default of [`PeerConfig::max_channels`].
pub const DEFAULT_MAX_CHANNELS: usize = 1024;

/// Godot's `network/limits/webrtc/max_channel_in_buffer_kb` default: 64 KiB.
pub const DEFAULT_MAX_CHANNEL_IN_BUFFER: usize = 64 * 1024;
/// The largest message this implementation receives (the `a=max-message-size` it announces).
pub const MAX_RECEIVE_MESSAGE_SIZE: usize = 256 * 1024;
/// The maximum message size assumed for a remote peer whose description announces none
/// (RFC 8841 §6).
pub const DEFAULT_REMOTE_MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// One entry of Godot's `iceServers` list, as a browser's `RTCIceServer`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:host[:port]`, `stuns:host[:port]`, `turn:host[:port][?transport=udp|tcp]` or
    /// `turns:host[:port][?transport=tcp]`.
    pub urls: Vec<String>,
    /// The TURN user name (required for `turn:` and `turns:`).
    pub username: Option<String>,
    /// The TURN password (required for `turn:` and `turns:`).
    pub credential: Option<String>,
}

impl IceServer {
    /// A STUN server without credentials.
    pub fn stun(url: impl Into<String>) -> IceServer {
        IceServer {
            urls: vec![url.into()],
            ..IceServer::default()
        }
    }

    /// A TURN server with its long-term credentials.
    pub fn turn(
        url: impl Into<String>,
        username: impl Into<String>,
        credential: impl Into<String>,
    ) -> IceServer {
        IceServer {
            urls: vec![url.into()],
            username: Some(username.into()),
            credential: Some(credential.into()),
        }
    }

    /// Parses every URL of this server, attaching the credentials to TURN URLs.
    pub fn parse(&self) -> Result<Vec<IceServerUrl>> {
        self.urls
            .iter()
            .map(|url| {
                let mut parsed = IceServerUrl::parse(url)?;
                if parsed.scheme.is_turn() {
                    match (&self.username, &self.credential) {
                        (Some(u), Some(c)) => {
                            parsed.username = Some(u.clone());
                            parsed.credential = Some(c.clone());
                        }
                        _ => {
                            return Err(Error::InvalidIceServerUrl {
                                url: url.clone(),
                                reason: "a TURN server needs a username and a credential",
                            })
                        }
                    }
                }
                Ok(parsed)
            })
            .collect()
    }
}

/// The scheme of an ICE server URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IceScheme {
    /// `stun:` (RFC 7064).
    Stun,
    /// `stuns:`, STUN over TLS (RFC 7064).
    Stuns,
    /// `turn:` (RFC 7065).
    Turn,
    /// `turns:`, TURN over TLS (RFC 7065).
    Turns,
}

impl IceScheme {
    /// Whether this is a TURN scheme (which needs credentials).
    pub fn is_turn(self) -> bool {
        matches!(self, IceScheme::Turn | IceScheme::Turns)
    }

    /// Whether this scheme runs over TLS.
    pub fn is_secure(self) -> bool {
        matches!(self, IceScheme::Stuns | IceScheme::Turns)
    }
}

/// The transport used to reach an ICE server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IceTransport {
    /// UDP (the default of `stun:` and `turn:`).
    Udp,
    /// TCP, or TLS over TCP for `stuns:` and `turns:`.
    Tcp,
}

/// A parsed and checked ICE server URL: what a STUN or TURN candidate gatherer needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IceServerUrl {
    /// The scheme.
    pub scheme: IceScheme,
    /// The host: a DNS name or an IP literal (without brackets).
    pub host: String,
    /// The port, defaulted from the scheme when the URL has none.
    pub port: u16,
    /// The transport, from `?transport=` or the scheme's default.
    pub transport: IceTransport,
    /// The TURN user name.
    pub username: Option<String>,
    /// The TURN password.
    pub credential: Option<String>,
}

impl IceServerUrl {
    /// Parses one URL (without credentials), following RFC 7064 and RFC 7065.
    pub fn parse(url: &str) -> Result<IceServerUrl> {
        let bad = |reason| Error::InvalidIceServerUrl {
            url: url.to_owned(),
            reason,
        };
        let (scheme, rest) = url.split_once(':').ok_or(bad("missing scheme"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "stun" => IceScheme::Stun,
            "stuns" => IceScheme::Stuns,
            "turn" => IceScheme::Turn,
            "turns" => IceScheme::Turns,
            _ => return Err(bad("the scheme must be stun, stuns, turn or turns")),
        };
        if rest.starts_with("//") {
            return Err(bad("no \"//\" after the scheme"));
        }
        let (authority, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let mut transport = if scheme.is_secure() {
            IceTransport::Tcp
        } else {
            IceTransport::Udp
        };
        if let Some(query) = query {
            if !scheme.is_turn() {
                return Err(bad("a STUN URL takes no query"));
            }
            transport = match query.to_ascii_lowercase().as_str() {
                "transport=udp" if scheme == IceScheme::Turn => IceTransport::Udp,
                "transport=tcp" => IceTransport::Tcp,
                "transport=udp" => return Err(bad("turns: runs over TCP only")),
                _ => return Err(bad("the only query is transport=udp or transport=tcp")),
            };
        }
        let bracketed = authority.starts_with('[');
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (ip, after) = v6.split_once(']').ok_or(bad("unclosed '[' in the host"))?;
            ip.parse::<std::net::Ipv6Addr>()
                .map_err(|_| bad("invalid IPv6 literal"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or(bad("junk after the IPv6 literal"))?,
                ),
            };
            (ip, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        if !bracketed && host.contains(['@', '/', ' ', ':', '[', ']']) {
            return Err(bad("invalid character in the host"));
        }
        let port = match port {
            None => {
                if scheme.is_secure() {
                    DEFAULT_STUNS_PORT
                } else {
                    DEFAULT_STUN_PORT
                }
            }
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p != 0 => p,
                _ => return Err(bad("the port must be 1..=65535")),
            },
        };
        Ok(IceServerUrl {
            scheme,
            host: host.to_owned(),
            port,
            transport,
            username: None,
            credential: None,
        })
    }
}

/// The configuration of a [`PeerConnection`](super::PeerConnection): Godot's `initialize()`
/// dictionary plus the knobs a native implementation needs.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// STUN and TURN servers (Godot's `iceServers`), over UDP: `stun:` servers give
    /// server-reflexive candidates, `turn:` servers relayed ones (and server-reflexive ones
    /// from the same answer). They are parsed and checked by
    /// [`PeerConnection::new`](super::PeerConnection::new), which refuses `stuns:`, `turns:`
    /// and `?transport=tcp` with [`Error::UnsupportedIceServer`].
    pub ice_servers: Vec<IceServer>,
    /// Announce relayed candidates only (W3C `iceTransportPolicy: "relay"`): the remote peer
    /// never learns a local or server-reflexive address, and all traffic goes through a TURN
    /// server. Needs a `turn:` server in `ice_servers`. Default `false`.
    pub relay_only: bool,
    /// How long a STUN or TURN server may leave a request unanswered before it is given up
    /// (reported as `Event::IceCandidateError` with code 701). The request is retransmitted
    /// on the RFC 8489 schedule (500 ms, doubling) until then. Default 39.5 s, RFC 8489's own
    /// (browsers wait as long); a shorter time lets gathering complete sooner when a server is
    /// down.
    pub ice_server_timeout: Duration,
    /// Local addresses to gather host candidates on. Empty means: enumerate the interfaces,
    /// filtered by `gather_loopback`, `gather_non_loopback` and `gather_ipv6`.
    pub bind_addresses: Vec<IpAddr>,
    /// The UDP ports to bind (Godot's `portRangeBegin..=portRangeEnd`); `None` lets the
    /// system pick.
    pub port_range: Option<RangeInclusive<u16>>,
    /// Gather on loopback addresses (127.0.0.1, ::1). Off by default; tests turn it on.
    pub gather_loopback: bool,
    /// Gather on the other interfaces (LAN, public). On by default.
    pub gather_non_loopback: bool,
    /// Gather on IPv6 addresses too.
    pub gather_ipv6: bool,
    /// Silence (no datagram from the remote peer) after which a connected peer becomes
    /// [`Disconnected`](super::ConnectionState::Disconnected). Default 5 s.
    pub ice_disconnected_timeout: Duration,
    /// Silence after which the connection is [`Failed`](super::ConnectionState::Failed).
    /// Must be longer than `ice_disconnected_timeout`. Default 15 s.
    pub ice_failed_timeout: Duration,
    /// Time from the moment both descriptions are applied until the connection must be up, or
    /// it fails. Default 30 s.
    pub connect_timeout: Duration,
    /// The largest message this side sends; the remote peer's `a=max-message-size` lowers it.
    /// Default 256 KiB.
    pub max_message_size: usize,
    /// Bytes the data channels of this connection may hold unacknowledged for sending
    /// (the budget behind `buffered_amount`). Default 1 MiB, at least `max_message_size`.
    /// It bounds what can be in flight, so it caps throughput at budget / round trip (1 MiB
    /// over 50 ms is about 20 MB/s): raise it for faster or longer paths. A larger budget
    /// costs memory, not CPU (on loopback 320 KiB, 1 MiB and 2 MiB move the same).
    pub max_buffered_amount: usize,
    /// Bytes of received messages a channel may hold before `poll()` stops reading the
    /// sockets until the application drains it (Godot's `max_channel_in_buffer_kb`, 64 KiB);
    /// not while data this side sent awaits acknowledgement (the held bytes then shrink the
    /// advertised receive window). Nothing is dropped: the sender's SCTP stack sees the back
    /// pressure. In a browser, which cannot stop reading, a channel whose unread messages
    /// pass 64 times the larger of this and `max_message_size` (16 MiB by default) is closed
    /// instead.
    pub max_channel_in_buffer: usize,
    /// The most data channels this connection holds at once, whoever opened them: one
    /// created beyond it is refused with [`Error::TooManyChannels`](super::Error), one the
    /// remote peer opens beyond it is refused by resetting its stream. Closed channels are
    /// forgotten once drained, so they do not count for long. Default 1024 (the stream count
    /// browsers offer).
    pub max_channels: usize,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            ice_servers: Vec::new(),
            relay_only: false,
            ice_server_timeout: Duration::from_millis(39_500),
            bind_addresses: Vec::new(),
            port_range: None,
            gather_loopback: false,
            gather_non_loopback: true,
            gather_ipv6: true,
            ice_disconnected_timeout: Duration::from_secs(5),
            ice_failed_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(30),
            max_message_size: MAX_RECEIVE_MESSAGE_SIZE,
            max_buffered_amount: 1024 * 1024,
            max_channel_in_buffer: DEFAULT_MAX_CHANNEL_IN_BUFFER,
            max_channels: DEFAULT_MAX_CHANNELS,
        }
    }
}

impl PeerConfig {
    /// A configuration that gathers on 127.0.0.1 only: for tests and same-machine examples.
    pub fn loopback() -> PeerConfig {
        PeerConfig {
            gather_loopback: true,
            gather_non_loopback: false,
            gather_ipv6: false,
            ..PeerConfig::default()
        }
    }

    /// Checks the values and parses the ICE server URLs.
    pub fn validate(&self) -> Result<Vec<IceServerUrl>> {
        if self.ice_disconnected_timeout.is_zero() {
            return Err(Error::InvalidConfig(
                "ice_disconnected_timeout must not be zero",
            ));
        }
        if self.ice_failed_timeout <= self.ice_disconnected_timeout {
            return Err(Error::InvalidConfig(
                "ice_failed_timeout must be longer than ice_disconnected_timeout",
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err(Error::InvalidConfig("connect_timeout must not be zero"));
        }
        if self.max_message_size == 0 {
            return Err(Error::InvalidConfig("max_message_size must not be zero"));
        }
        if self.max_buffered_amount < self.max_message_size {
            return Err(Error::InvalidConfig(
                "max_buffered_amount must be at least max_message_size",
            ));
        }
        if self.max_channel_in_buffer == 0 {
            return Err(Error::InvalidConfig(
                "max_channel_in_buffer must not be zero",
            ));
        }
        if self.max_channels == 0 {
            return Err(Error::InvalidConfig("max_channels must not be zero"));
        }
        if let Some(range) = &self.port_range {
            if range.is_empty() || *range.start() == 0 {
                return Err(Error::InvalidConfig(
                    "port_range must be a non-empty range of non-zero ports",
                ));
            }
        }
        if !self.gather_loopback && !self.gather_non_loopback && self.bind_addresses.is_empty() {
            return Err(Error::InvalidConfig(
                "gathering excludes both loopback and non-loopback interfaces",
            ));
        }
        if self.ice_server_timeout.is_zero() {
            return Err(Error::InvalidConfig("ice_server_timeout must not be zero"));
        }
        let mut urls = Vec::new();
        for server in &self.ice_servers {
            let parsed = server.parse()?;
            for (text, url) in server.urls.iter().zip(&parsed) {
                let reason = if url.scheme.is_secure() {
                    "STUN and TURN over TLS (stuns:, turns:) are not supported"
                } else if url.transport == IceTransport::Tcp {
                    "TURN over TCP is not supported"
                } else {
                    continue;
                };
                return Err(Error::UnsupportedIceServer {
                    url: text.clone(),
                    reason,
                });
            }
            urls.extend(parsed);
        }
        if self.relay_only && !urls.iter().any(|u| u.scheme.is_turn()) {
            return Err(Error::InvalidConfig("relay_only needs a turn: server"));
        }
        Ok(urls)
    }
}

/// Options of [`PeerConnection::create_data_channel`](super::PeerConnection::create_data_channel),
/// Godot's options dictionary (`negotiated` + `id`, `ordered`, `maxRetransmits`,
/// `maxPacketLifeTime`, `protocol`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataChannelOptions {
    /// `Some(id)`: a channel negotiated out of band with this SCTP stream id, which the remote
    /// side creates with the same id. `None`: announced in band (DCEP), and the remote side
    /// receives it as [`Event::DataChannelReceived`](super::Event::DataChannelReceived).
    pub negotiated_id: Option<u16>,
    /// Deliver messages in order (default `true`).
    pub ordered: bool,
    /// Give up on a message after this many retransmissions (unreliable channel).
    pub max_retransmits: Option<u16>,
    /// Give up on a message after this many milliseconds (unreliable channel).
    pub max_packet_life_time: Option<u16>,
    /// The sub-protocol name.
    pub protocol: String,
}

impl Default for DataChannelOptions {
    fn default() -> Self {
        DataChannelOptions {
            negotiated_id: None,
            ordered: true,
            max_retransmits: None,
            max_packet_life_time: None,
            protocol: String::new(),
        }
    }
}

impl DataChannelOptions {
    /// Options of a reliable, ordered channel negotiated out of band with stream id `id`.
    pub fn negotiated(id: u16) -> DataChannelOptions {
        DataChannelOptions {
            negotiated_id: Some(id),
            ..DataChannelOptions::default()
        }
    }

    pub(crate) fn validate(&self, label: &str) -> Result<()> {
        if self.max_retransmits.is_some() && self.max_packet_life_time.is_some() {
            return Err(Error::BothReliabilityOptions);
        }
        if self.negotiated_id == Some(u16::MAX) {
            return Err(Error::InvalidChannelOption("stream id 65535 is reserved"));
        }
        if label.len() > usize::from(u16::MAX) {
            return Err(Error::InvalidChannelOption(
                "the label is longer than 65535 bytes",
            ));
        }
        if self.protocol.len() > usize::from(u16::MAX) {
            return Err(Error::InvalidChannelOption(
                "the protocol is longer than 65535 bytes",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_url_defaults_to_port_3478_over_udp() {
        let u = IceServerUrl::parse("stun:stun.example.org").unwrap();
        assert_eq!(u.scheme, IceScheme::Stun);
        assert_eq!(u.host, "stun.example.org");
        assert_eq!(u.port, 3478);
        assert_eq!(u.transport, IceTransport::Udp);
    }

    #[test]
    fn turns_url_defaults_to_port_5349_over_tcp() {
        let u = IceServerUrl::parse("turns:turn.example.org").unwrap();
        assert_eq!((u.port, u.transport), (5349, IceTransport::Tcp));
    }

    #[test]
    fn turn_url_takes_port_and_transport() {
        let u = IceServerUrl::parse("turn:192.0.2.7:3479?transport=tcp").unwrap();
        assert_eq!(u.host, "192.0.2.7");
        assert_eq!((u.port, u.transport), (3479, IceTransport::Tcp));
    }

    #[test]
    fn ipv6_literal_host_is_unbracketed() {
        let u = IceServerUrl::parse("stun:[2001:db8::1]:19302").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("2001:db8::1", 19302));
        let u = IceServerUrl::parse("stun:[::1]").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 3478));
    }

    #[test]
    fn malformed_urls_are_refused() {
        for url in [
            "stun",
            "http:example.org",
            "stun://example.org",
            "stun:",
            "stun:host:0",
            "stun:host:99999",
            "stun:host:port",
            "stun:host?transport=udp",
            "turns:host?transport=udp",
            "turn:host?transport=sctp",
            "stun:[::1",
            "stun:[nope]:1",
            "stun:user@host",
        ] {
            assert!(
                matches!(
                    IceServerUrl::parse(url),
                    Err(Error::InvalidIceServerUrl { .. })
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn turn_server_needs_credentials() {
        let server = IceServer {
            urls: vec!["turn:example.org".into()],
            ..IceServer::default()
        };
        assert!(server.parse().is_err());
        let parsed = IceServer::turn("turn:example.org", "u", "p")
            .parse()
            .unwrap();
        assert_eq!(parsed[0].username.as_deref(), Some("u"));
        assert_eq!(parsed[0].credential.as_deref(), Some("p"));
    }

    #[test]
    fn failed_timeout_must_exceed_disconnected_timeout() {
        let config = PeerConfig {
            ice_failed_timeout: Duration::from_secs(1),
            ice_disconnected_timeout: Duration::from_secs(1),
            ..PeerConfig::default()
        };
        assert!(matches!(config.validate(), Err(Error::InvalidConfig(_))));
    }

    #[test]
    fn tls_and_tcp_ice_servers_are_unsupported() {
        for url in [
            "stuns:example.org",
            "turns:example.org",
            "turn:example.org?transport=tcp",
        ] {
            let config = PeerConfig {
                ice_servers: vec![IceServer::turn(url, "u", "p")],
                ..PeerConfig::default()
            };
            assert!(
                matches!(config.validate(), Err(Error::UnsupportedIceServer { .. })),
                "{url}"
            );
        }
        let config = PeerConfig {
            ice_servers: vec![IceServer::turn("turn:example.org?transport=udp", "u", "p")],
            ..PeerConfig::default()
        };
        assert_eq!(config.validate().unwrap().len(), 1);
    }

    #[test]
    fn relay_only_needs_a_turn_server() {
        let config = PeerConfig {
            relay_only: true,
            ice_servers: vec![IceServer::stun("stun:example.org")],
            ..PeerConfig::default()
        };
        assert!(matches!(config.validate(), Err(Error::InvalidConfig(_))));
        let config = PeerConfig {
            relay_only: true,
            ice_servers: vec![IceServer::turn("turn:example.org", "u", "p")],
            ..PeerConfig::default()
        };
        assert!(config.validate().is_ok());
    }

    #[test]
    fn both_reliability_options_are_refused() {
        let options = DataChannelOptions {
            max_retransmits: Some(1),
            max_packet_life_time: Some(100),
            ..DataChannelOptions::default()
        };
        assert!(matches!(
            options.validate("x"),
            Err(Error::BothReliabilityOptions)
        ));
    }
}
