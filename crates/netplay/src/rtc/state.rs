//! A peer connection's states, events and statistics: the values every platform reports,
//! with Godot's names and integer values.
//!
//! Owns only these types. What produces them is the [engine](super::Engine) natively (and a
//! browser's `RTCPeerConnection` on the web); how they reach a game is
//! [`PeerConnection::poll_event`](super::PeerConnection::poll_event).

use crate::time::Duration;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use super::channel::ChannelId;
use super::error::{Error, Result};
use super::gather::CandidateError;
#[cfg(doc)]
use super::PeerConfig;

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
/// [`PeerConnection::poll_event`](super::PeerConnection::poll_event).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// `session_description_created`: send it to the remote peer (and, as in Godot, pass it
    /// to [`PeerConnection::set_local_description`](super::PeerConnection::set_local_description)).
    SessionDescriptionCreated {
        /// Offer or answer.
        kind: SdpKind,
        /// The SDP text.
        sdp: String,
    },
    /// `ice_candidate_created`: send it to the remote peer, which passes it to
    /// [`PeerConnection::add_ice_candidate`](super::PeerConnection::add_ice_candidate).
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
    /// The channel's [`buffered_amount`](super::DataChannel::buffered_amount) fell from over
    /// its [`buffered_amount_low_threshold`](super::DataChannel::buffered_amount_low_threshold)
    /// to at or under it (a browser's `bufferedamountlow`): there is room to send again.
    BufferedAmountLow(ChannelId),
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

/// A session description this peer created ([`PeerConnection::local_description`](super::PeerConnection::local_description)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionDescription<'a> {
    /// Offer or answer.
    pub kind: SdpKind,
    /// The SDP text.
    pub sdp: &'a str,
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
    /// The round-trip time of the latest ICE check on the selected pair.
    pub rtt: Option<Duration>,
    /// The selected candidate pair.
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
    /// SCTP data chunks sent again because they were lost (or late).
    pub retransmissions: u64,
    /// Messages of partially reliable channels given up (retransmission or lifetime limit).
    pub abandoned_messages: u64,
}
