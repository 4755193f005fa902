//! Godot's high-level multiplayer: `MultiplayerPeer` and what rides on it.
//!
//! This module owns the contract every multiplayer transport keeps ([`MultiplayerPeer`]: peer
//! ids, targets, transfer modes and channels, packets with their sender, connect and
//! disconnect events), its transports ([`WebSocketMultiplayerPeer`] and
//! `WebRtcMultiplayerPeer`, natively and in the browser; a WebSocket server is native only),
//! the lobby mesh (`Lobby`: a signaling lobby as a
//! multiplayer peer), the
//! `SceneMultiplayer` protocol Godot runs on top ([`SceneMultiplayer`]: admission, peer
//! announcements, relaying, `send_bytes`) and Godot's Variant binary format for
//! `put_var`/`get_var` ([`variant`]).
//!
//! What it does not own: the sockets and connections (those are [`ws`](crate::ws) and
//! `rtc`'s), and signaling ([`signal`](crate::signal)).
//!
//! Ids follow Godot: the server is always 1, every other peer an id in 2..=2^31-1 drawn from a
//! CSPRNG ([`generate_unique_id`]). A target of 0 means every peer, 1 the server, N one peer and
//! -N every peer but N ([`Target`]).

#[cfg(feature = "ggrs")]
mod ggrs;
mod scene;
pub mod variant;
mod websocket;
pub use websocket::{Tls, WebSocketMultiplayerPeer, DEFAULT_HANDSHAKE_TIMEOUT};
#[cfg(feature = "webrtc")]
mod lobby;
#[cfg(feature = "webrtc")]
pub use lobby::{Lobby, LobbyEvent, LobbyMode};
#[cfg(feature = "webrtc")]
mod webrtc;
#[cfg(feature = "webrtc")]
pub use webrtc::{WebRtcMultiplayerPeer, MAX_PACKET_SIZE as WEBRTC_MAX_PACKET_SIZE};

#[cfg(feature = "ggrs")]
#[cfg_attr(docsrs, doc(cfg(feature = "ggrs")))]
pub use self::ggrs::GgrsSocket;
use crate::random::Rng;
pub use scene::{SceneCore, SceneEvent, SceneMultiplayer, SceneTransmit, DEFAULT_AUTH_TIMEOUT};
pub use variant::Variant;

/// The id of the server in every topology (Godot's `TARGET_PEER_SERVER`).
pub const SERVER_ID: i32 = 1;

/// How a packet travels, with Godot's integer values
/// ([`godot_value`](TransferMode::godot_value)), ordered as those values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransferMode {
    /// `TRANSFER_MODE_UNRELIABLE = 0`: may be lost, may arrive out of order.
    Unreliable,
    /// `TRANSFER_MODE_UNRELIABLE_ORDERED = 1`: may be lost; what arrives is in order (a late
    /// packet is dropped).
    UnreliableOrdered,
    /// `TRANSFER_MODE_RELIABLE = 2`: arrives, in order. Godot's default.
    #[default]
    Reliable,
}

impl TransferMode {
    /// Godot's integer value.
    pub fn godot_value(self) -> i32 {
        match self {
            TransferMode::Unreliable => 0,
            TransferMode::UnreliableOrdered => 1,
            TransferMode::Reliable => 2,
        }
    }

    /// The mode for Godot's integer value, or `None` for another value.
    pub fn from_godot(value: i32) -> Option<TransferMode> {
        match value {
            0 => Some(TransferMode::Unreliable),
            1 => Some(TransferMode::UnreliableOrdered),
            2 => Some(TransferMode::Reliable),
            _ => None,
        }
    }
}

/// Where a multiplayer peer stands, with Godot's integer values
/// ([`godot_value`](ConnectionStatus::godot_value)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConnectionStatus {
    /// `CONNECTION_DISCONNECTED = 0`: not started, failed, or closed.
    #[default]
    Disconnected,
    /// `CONNECTION_CONNECTING = 1`: a client on its way to the server.
    Connecting,
    /// `CONNECTION_CONNECTED = 2`: a server or mesh peer from the start, a client once the
    /// server accepted it.
    Connected,
}

impl ConnectionStatus {
    /// Godot's integer value.
    pub fn godot_value(self) -> i32 {
        match self {
            ConnectionStatus::Disconnected => 0,
            ConnectionStatus::Connecting => 1,
            ConnectionStatus::Connected => 2,
        }
    }
}

/// Whom a packet goes to: Godot's `target_peer` integer as a type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Target {
    /// 0: every connected peer (Godot's `TARGET_PEER_BROADCAST`), the default.
    #[default]
    Broadcast,
    /// N > 0: that peer; 1 is the server.
    Peer(i32),
    /// -N: every connected peer but N.
    AllExcept(i32),
}

impl Target {
    /// The target for Godot's integer (`i32::MIN`, which has no positive counterpart, is
    /// every peer but none: a broadcast).
    pub fn from_godot(value: i32) -> Target {
        match value {
            0 | i32::MIN => Target::Broadcast,
            n if n > 0 => Target::Peer(n),
            n => Target::AllExcept(-n),
        }
    }

    /// Godot's integer.
    pub fn godot_value(self) -> i32 {
        match self {
            Target::Broadcast => 0,
            Target::Peer(n) => n,
            Target::AllExcept(n) => n.saturating_neg(),
        }
    }

    /// Whether a packet for this target goes to peer `id`.
    pub fn includes(self, id: i32) -> bool {
        match self {
            Target::Broadcast => true,
            Target::Peer(n) => n == id,
            Target::AllExcept(n) => n != id,
        }
    }
}

/// How the next [`put_packet`](MultiplayerPeer::put_packet) sends: Godot's `target_peer`,
/// `transfer_mode` and `transfer_channel` properties.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SendOptions {
    /// Whom to (default: every peer).
    pub target: Target,
    /// How (default: reliable).
    pub mode: TransferMode,
    /// On which channel: 0 is the default channel of each mode; 1 and up are the extra
    /// channels a transport was configured with.
    pub channel: u32,
}

/// A received packet with what Godot's `get_packet_peer`, `get_packet_channel` and
/// `get_packet_mode` tell about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// The sender's id.
    pub from: i32,
    /// The channel it came on (0: the default channel of its mode).
    pub channel: u32,
    /// How it travelled.
    pub mode: TransferMode,
    /// The bytes.
    pub data: Vec<u8>,
}

/// A change in the set of connected peers: Godot's `peer_connected` and `peer_disconnected`
/// signals, drained with [`MultiplayerPeer::poll_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerEvent {
    /// The peer with this id is connected.
    PeerConnected(i32),
    /// The peer with this id is gone.
    PeerDisconnected(i32),
}

/// What a multiplayer call can fail with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The peer is not connected (or, for a client, not yet).
    NotConnected,
    /// The operation needs a peer that is not active (Godot's `ERR_ALREADY_IN_USE`).
    AlreadyActive,
    /// No connected peer has this id.
    UnknownPeer(i32),
    /// The id is not valid here (the server's 1 for a client's own id, 0, a negative id, or
    /// an id already in use).
    InvalidId(i32),
    /// The channel is not one this peer was configured with.
    InvalidChannel(u32),
    /// The packet is larger than [`MultiplayerPeer::max_packet_size`].
    PacketTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// New connections are refused ([`MultiplayerPeer::set_refuse_new_connections`]).
    Refused,
    /// The operation does not fit this peer's topology (for example, a second server peer
    /// for a client).
    WrongMode(&'static str),
    /// The transport underneath failed; the text says how.
    Transport(String),
    /// A value could not be written as a Variant.
    Variant(variant::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NotConnected => write!(f, "not connected"),
            Error::AlreadyActive => write!(f, "the multiplayer peer is already active"),
            Error::UnknownPeer(id) => write!(f, "no connected peer has id {id}"),
            Error::InvalidId(id) => write!(f, "invalid peer id {id}"),
            Error::InvalidChannel(c) => write!(f, "channel {c} is not configured"),
            Error::PacketTooLarge { size, max } => {
                write!(
                    f,
                    "packet of {size} bytes is larger than the limit of {max}"
                )
            }
            Error::Refused => write!(f, "new connections are refused"),
            Error::WrongMode(why) => write!(f, "not in this mode: {why}"),
            Error::Transport(why) => write!(f, "transport: {why}"),
            Error::Variant(e) => write!(f, "variant: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// Godot's `MultiplayerPeer`: a set of connected peers with ids, polled.
///
/// Implemented by the WebSocket and WebRTC multiplayer peers; the `SceneMultiplayer` layer and
/// games are written against it. The send options ([`SendOptions`]: target, mode, channel)
/// are kept by the implementation and apply to every following
/// [`put_packet`](Self::put_packet), as Godot's properties do.
pub trait MultiplayerPeer {
    /// Reads and writes the transports, admits and drops peers, queues packets and events.
    /// Nothing happens between two calls.
    fn poll(&mut self);

    /// Takes the next connect or disconnect event.
    fn poll_event(&mut self) -> Option<PeerEvent>;

    /// Sends `data` with the current [`SendOptions`].
    fn put_packet(&mut self, data: &[u8]) -> Result<(), Error>;

    /// Takes the next received packet, with its sender, channel and mode.
    fn get_packet(&mut self) -> Option<Packet>;

    /// How many packets [`get_packet`](Self::get_packet) has waiting.
    fn available_packet_count(&self) -> usize;

    /// The send options used by [`put_packet`](Self::put_packet).
    fn send_options(&self) -> SendOptions;

    /// Replaces the send options.
    fn set_send_options(&mut self, options: SendOptions);

    /// This peer's id: 1 for a server, 0 before a client knows its id.
    fn unique_id(&self) -> i32;

    /// Where this peer stands.
    fn connection_status(&self) -> ConnectionStatus;

    /// Godot's `refuse_new_connections`: a server (or mesh) with it set takes no new peer.
    fn set_refuse_new_connections(&mut self, refuse: bool);

    /// Whether new connections are refused.
    fn is_refusing_new_connections(&self) -> bool;

    /// Disconnects one peer. Unforced, the peer is closed properly and its
    /// [`PeerEvent::PeerDisconnected`] comes with a later poll; forced, it is dropped at once
    /// and no event follows (as in Godot).
    fn disconnect_peer(&mut self, id: i32, force: bool);

    /// Closes every connection at once, without events (as in Godot).
    fn close(&mut self);

    /// Whether the layer above may relay between clients through the server (true for
    /// server/client topologies, false for a mesh).
    fn is_server_relay_supported(&self) -> bool;

    /// Godot's `get_max_packet_size`: the largest packet this transport is made for (the
    /// WebSocket peer refuses larger ones; WebRTC's 1200 is what fits one datagram, and a
    /// reliable channel takes more).
    fn max_packet_size(&self) -> usize;

    /// Godot's `set_target_peer`: 0 every peer, 1 the server, N one peer, -N all but N.
    fn set_target_peer(&mut self, target: i32) {
        let mut options = self.send_options();
        options.target = Target::from_godot(target);
        self.set_send_options(options);
    }

    /// Godot's `transfer_mode` setter.
    fn set_transfer_mode(&mut self, mode: TransferMode) {
        let mut options = self.send_options();
        options.mode = mode;
        self.set_send_options(options);
    }

    /// Godot's `transfer_channel` setter.
    fn set_transfer_channel(&mut self, channel: u32) {
        let mut options = self.send_options();
        options.channel = channel;
        self.set_send_options(options);
    }

    /// Sends `data` with `options` for this packet only; the peer's own send options stay as
    /// they were.
    fn put_packet_with(&mut self, data: &[u8], options: SendOptions) -> Result<(), Error> {
        let saved = self.send_options();
        self.set_send_options(options);
        let result = self.put_packet(data);
        self.set_send_options(saved);
        result
    }

    /// Godot's `put_var`: sends `value` in the Variant binary format (`var_to_bytes`).
    fn put_var(&mut self, value: &Variant) -> Result<(), Error> {
        let bytes = variant::to_bytes(value).map_err(Error::Variant)?;
        self.put_packet(&bytes)
    }

    /// Godot's `get_var`: takes the next packet and reads it as a Variant (`bytes_to_var`,
    /// objects refused). `None` when no packet waits; otherwise the sender with the value, or
    /// with why the packet is not one.
    fn get_var(&mut self) -> Option<(i32, Result<Variant, variant::Error>)> {
        let packet = self.get_packet()?;
        Some((packet.from, variant::from_bytes(&packet.data)))
    }
}

/// A fresh peer id for a client: uniformly drawn from 2..=2^31-1 (Godot draws from its own
/// hash of the clock and addresses, masked to 31 bits, skipping 0 and 1; netplay uses the
/// CSPRNG).
pub fn generate_unique_id(rng: &mut Rng) -> i32 {
    // 2^31 - 2 values: 2..=i32::MAX.
    let n = rng.below((i32::MAX as u64) - 1);
    (n + 2) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_modes_and_statuses_keep_godots_values() {
        let modes = [
            TransferMode::Unreliable,
            TransferMode::UnreliableOrdered,
            TransferMode::Reliable,
        ];
        for (i, m) in modes.iter().enumerate() {
            assert_eq!(m.godot_value(), i as i32);
            assert_eq!(TransferMode::from_godot(i as i32), Some(*m));
        }
        assert_eq!(TransferMode::from_godot(3), None);
        assert_eq!(TransferMode::default(), TransferMode::Reliable);
        assert_eq!(ConnectionStatus::Disconnected.godot_value(), 0);
        assert_eq!(ConnectionStatus::Connecting.godot_value(), 1);
        assert_eq!(ConnectionStatus::Connected.godot_value(), 2);
    }

    #[test]
    fn targets_follow_godots_sign_rule() {
        assert_eq!(Target::from_godot(0), Target::Broadcast);
        assert_eq!(Target::from_godot(1), Target::Peer(1));
        assert_eq!(Target::from_godot(7), Target::Peer(7));
        assert_eq!(Target::from_godot(-7), Target::AllExcept(7));
        assert_eq!(Target::from_godot(i32::MIN), Target::Broadcast);
        for v in [0, 1, 7, -7, i32::MAX, -i32::MAX] {
            assert_eq!(Target::from_godot(v).godot_value(), v);
        }
        assert!(Target::AllExcept(7).includes(3) && !Target::AllExcept(7).includes(7));
        assert!(Target::Peer(3).includes(3) && !Target::Peer(3).includes(4));
        assert!(Target::Broadcast.includes(1));
    }

    #[test]
    fn generated_ids_are_never_0_or_1_and_fit_31_bits() {
        let mut rng = Rng::seeded(7);
        for _ in 0..10_000 {
            let id = generate_unique_id(&mut rng);
            assert!(id >= 2, "{id}");
        }
        // The extremes are reachable: the draw covers the whole range.
        let ids: Vec<i32> = (0..64).map(|_| generate_unique_id(&mut rng)).collect();
        assert!(ids.iter().any(|&i| i > 1 << 30));
    }
}
