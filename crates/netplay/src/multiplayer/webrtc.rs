//! Godot's `WebRTCMultiplayerPeer`: one [`PeerConnection`] per remote peer, in a mesh or a
//! star around a server, with Godot's negotiated channel layout.
//!
//! Owns the map from peer ids to connections (in the order they were added, which is the
//! round-robin order of receiving), the channels each connection gets, the mapping of
//! transfer modes and channels to them, and the connect and disconnect events. It does not
//! signal: descriptions and candidates travel however the game likes (the lobby mesh does it
//! over the `webrtc_signaling` protocol), through [`get_peer_mut`](WebRtcMultiplayerPeer::get_peer_mut).
//!
//! The channels follow Godot 4's `modules/webrtc/webrtc_multiplayer_peer.cpp` (read at commit
//! 309d7eb7: `add_peer`, `_initialize`, `put_packet`, `poll`): negotiated out of band, stream
//! 1 `"reliable"` (ordered), 2 `"ordered"` (unreliable ordered), 3 `"unreliable"` (unordered),
//! then one per extra channel of `channels_config`, stream 4 and up, labelled with its stream
//! number. Godot writes the lifetime option as `maxPacketLifetime`, a key neither of its
//! backends reads, so a Godot peer sends reliably on streams 2 and 3; the streams are what
//! must match, and each side picks how it sends. netplay sends as the mode says: on stream 2
//! and 3 messages are given up after `unreliable_lifetime` milliseconds, on the extra
//! unreliable channels after 1 ms (Godot's constant).
//!
//! Where netplay differs from Godot, on purpose: a connection that is Disconnected (ICE
//! consent lost for a moment) stays; it is removed once Failed or Closed. A client whose
//! server connection fails before its channels open becomes Disconnected (Godot's stays
//! Connecting).

use std::collections::VecDeque;

use super::{
    ConnectionStatus, Error, MultiplayerPeer, Packet, PeerEvent, SendOptions, Target, TransferMode,
    SERVER_ID,
};
use crate::rtc::{
    ChannelId, ConnectionState, DataChannelOptions, GatheringState, PeerConnection, ReadyState,
    SignalingState,
};

/// Godot's `get_max_packet_size` for WebRTC: what fits one datagram.
pub const MAX_PACKET_SIZE: usize = 1200;

/// Packets taken from the channels and not yet read, at most; beyond, the channels keep
/// theirs (and their limits hold the network back).
const MAX_QUEUED_PACKETS: usize = 4096;

/// The lifetime in milliseconds Godot gives the extra unreliable channels.
const EXTRA_CHANNEL_LIFETIME_MS: u16 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Idle,
    Server,
    Client,
    Mesh,
}

struct Remote {
    id: i32,
    connection: PeerConnection,
    /// Index = Godot's channel index: reliable, ordered, unreliable, then the extra ones.
    channels: Vec<ChannelId>,
    connected: bool,
}

/// Godot's `WebRTCMultiplayerPeer`, polled.
///
/// Create it as a server, a client or a mesh member, then [`add_peer`](Self::add_peer) a new
/// [`PeerConnection`] for each remote peer and carry its descriptions and candidates
/// yourself (drain them from [`get_peer_mut`](Self::get_peer_mut)`(id).poll_event()`), or let
/// the lobby mesh do it. A peer is connected once all its channels are open.
pub struct WebRtcMultiplayerPeer {
    mode: Mode,
    unique_id: i32,
    status: ConnectionStatus,
    /// Godot's `channels_config`: the modes of the extra channels.
    extra: Vec<TransferMode>,
    send: SendOptions,
    refuse: bool,
    remotes: Vec<Remote>,
    packets: VecDeque<Packet>,
    events: VecDeque<PeerEvent>,
    /// Where the next round of receiving starts (the peer after the last one read).
    next_reader: usize,
}

impl Default for WebRtcMultiplayerPeer {
    fn default() -> Self {
        WebRtcMultiplayerPeer::new()
    }
}

impl std::fmt::Debug for WebRtcMultiplayerPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcMultiplayerPeer")
            .field("mode", &self.mode)
            .field("unique_id", &self.unique_id)
            .field("status", &self.status)
            .field(
                "peers",
                &self.remotes.iter().map(|r| r.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// (channel, mode) of Godot channel index `i`, as `get_packet_channel`/`_mode` report it;
/// `extra` is the `channels_config`.
fn describe(extra: &[TransferMode], i: usize) -> (u32, TransferMode) {
    match i {
        0 => (0, TransferMode::Reliable),
        1 => (0, TransferMode::UnreliableOrdered),
        2 => (0, TransferMode::Unreliable),
        i => (
            (i - 2) as u32,
            extra.get(i - 3).copied().unwrap_or_default(),
        ),
    }
}

fn valid_id(id: i32) -> bool {
    id >= 1
}

impl WebRtcMultiplayerPeer {
    /// An inactive peer.
    pub fn new() -> WebRtcMultiplayerPeer {
        WebRtcMultiplayerPeer {
            mode: Mode::Idle,
            unique_id: 0,
            status: ConnectionStatus::Disconnected,
            extra: Vec::new(),
            send: SendOptions::default(),
            refuse: false,
            remotes: Vec::new(),
            packets: VecDeque::new(),
            events: VecDeque::new(),
            next_reader: 0,
        }
    }

    fn start(&mut self, mode: Mode, id: i32, channels: &[TransferMode]) -> Result<(), Error> {
        if self.mode != Mode::Idle {
            return Err(Error::AlreadyActive);
        }
        if !valid_id(id) {
            return Err(Error::InvalidId(id));
        }
        self.mode = mode;
        self.unique_id = id;
        self.extra = channels.to_vec();
        self.status = if mode == Mode::Client {
            ConnectionStatus::Connecting
        } else {
            ConnectionStatus::Connected
        };
        Ok(())
    }

    /// Godot's `create_server`: id 1, connected at once; peers are clients (2 and up).
    /// `channels` adds one extra channel per mode (Godot's `channels_config`).
    pub fn create_server(&mut self, channels: &[TransferMode]) -> Result<(), Error> {
        self.start(Mode::Server, SERVER_ID, channels)
    }

    /// Godot's `create_client`: this peer's id (2 and up); the only peer to add is the server
    /// (1), and this peer is connected once the server's channels are open.
    pub fn create_client(&mut self, id: i32, channels: &[TransferMode]) -> Result<(), Error> {
        if id == SERVER_ID {
            return Err(Error::InvalidId(id));
        }
        self.start(Mode::Client, id, channels)
    }

    /// Godot's `create_mesh`: this peer's id (1 and up), connected at once; every other
    /// peer is added directly. A mesh has no relaying server.
    pub fn create_mesh(&mut self, id: i32, channels: &[TransferMode]) -> Result<(), Error> {
        self.start(Mode::Mesh, id, channels)
    }

    /// Godot's `add_peer`: takes a new connection (nothing done on it yet) for peer `id` and
    /// creates Godot's negotiated channels on it; the unreliable ones give up on a message
    /// after `unreliable_lifetime` ms (Godot's default is 1). The offer, the answer and the
    /// candidates are the caller's to exchange.
    ///
    /// Fails with [`Error::NotConnected`] before a `create_*`, [`Error::WrongMode`] for a peer
    /// the topology does not take (a client takes only 1; a server never 1),
    /// [`Error::InvalidId`] for an id below 1, this peer's own or one in use,
    /// [`Error::Refused`] while refusing, and [`Error::Transport`] for a connection that is
    /// not new.
    pub fn add_peer(
        &mut self,
        mut connection: PeerConnection,
        id: i32,
        unreliable_lifetime: u16,
    ) -> Result<(), Error> {
        match self.mode {
            Mode::Idle => return Err(Error::NotConnected),
            Mode::Client if id != SERVER_ID => {
                return Err(Error::WrongMode("a client takes only the server, peer 1"))
            }
            Mode::Server if id == SERVER_ID => {
                return Err(Error::WrongMode("a server takes clients, not peer 1"))
            }
            _ => {}
        }
        if !valid_id(id) || id == self.unique_id || self.remotes.iter().any(|r| r.id == id) {
            return Err(Error::InvalidId(id));
        }
        if self.refuse {
            return Err(Error::Refused);
        }
        if connection.connection_state() != ConnectionState::New
            || connection.signaling_state() != SignalingState::Stable
            || connection.gathering_state() != GatheringState::New
        {
            return Err(Error::Transport(
                "the connection is not new (an offer or answer was made)".into(),
            ));
        }
        let mut layout: Vec<(String, DataChannelOptions)> = vec![
            ("reliable".into(), DataChannelOptions::negotiated(1)),
            (
                "ordered".into(),
                DataChannelOptions {
                    max_packet_life_time: Some(unreliable_lifetime),
                    ..DataChannelOptions::negotiated(2)
                },
            ),
            (
                "unreliable".into(),
                DataChannelOptions {
                    ordered: false,
                    max_packet_life_time: Some(unreliable_lifetime),
                    ..DataChannelOptions::negotiated(3)
                },
            ),
        ];
        for (i, mode) in self.extra.iter().enumerate() {
            let stream = u16::try_from(4 + i).map_err(|_| Error::InvalidChannel(i as u32 + 1))?;
            let mut options = DataChannelOptions::negotiated(stream);
            if *mode != TransferMode::Reliable {
                options.max_packet_life_time = Some(EXTRA_CHANNEL_LIFETIME_MS);
            }
            if *mode == TransferMode::Unreliable {
                options.ordered = false;
            }
            layout.push((stream.to_string(), options));
        }
        let mut channels = Vec::with_capacity(layout.len());
        for (label, options) in layout {
            let channel = connection
                .create_data_channel(&label, options)
                .map_err(|e| Error::Transport(e.to_string()))?;
            channels.push(channel);
        }
        self.remotes.push(Remote {
            id,
            connection,
            channels,
            connected: false,
        });
        Ok(())
    }

    /// Godot's `remove_peer`: closes and forgets the connection; a connected peer gives
    /// [`PeerEvent::PeerDisconnected`].
    pub fn remove_peer(&mut self, id: i32) {
        if let Some(i) = self.remotes.iter().position(|r| r.id == id) {
            self.remove_at(i, true);
        }
    }

    /// Godot's `has_peer`.
    pub fn has_peer(&self, id: i32) -> bool {
        self.remotes.iter().any(|r| r.id == id)
    }

    /// The connection of peer `id` (Godot's `get_peer(id)["connection"]`).
    pub fn get_peer(&self, id: i32) -> Option<&PeerConnection> {
        self.remotes
            .iter()
            .find(|r| r.id == id)
            .map(|r| &r.connection)
    }

    /// The connection of peer `id`, to carry its signaling.
    pub fn get_peer_mut(&mut self, id: i32) -> Option<&mut PeerConnection> {
        self.remotes
            .iter_mut()
            .find(|r| r.id == id)
            .map(|r| &mut r.connection)
    }

    /// Whether peer `id` has all its channels open (Godot's `get_peer(id)["connected"]`).
    pub fn is_peer_connected(&self, id: i32) -> bool {
        self.remotes.iter().any(|r| r.id == id && r.connected)
    }

    /// The ids of the added peers, in the order they were added (Godot's `get_peers`).
    pub fn peer_ids(&self) -> impl Iterator<Item = i32> + '_ {
        self.remotes.iter().map(|r| r.id)
    }

    /// The channels of peer `id`, in Godot's order (Godot's `get_peer(id)["channels"]`).
    pub fn peer_channels(&self, id: i32) -> Option<&[ChannelId]> {
        self.remotes
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.channels.as_slice())
    }

    fn remove_at(&mut self, i: usize, announce: bool) {
        let mut remote = self.remotes.remove(i);
        remote.connection.close();
        if self.next_reader > i {
            self.next_reader -= 1;
        }
        if announce && remote.connected {
            self.events
                .push_back(PeerEvent::PeerDisconnected(remote.id));
        }
        if self.mode == Mode::Client && remote.id == SERVER_ID {
            self.status = ConnectionStatus::Disconnected;
        }
    }

    /// The Godot channel index for the current send options.
    fn channel_index(&self, options: SendOptions) -> Result<usize, Error> {
        if options.channel == 0 {
            return Ok(match options.mode {
                TransferMode::Reliable => 0,
                TransferMode::UnreliableOrdered => 1,
                TransferMode::Unreliable => 2,
            });
        }
        let i = options.channel as usize;
        if i > self.extra.len() {
            return Err(Error::InvalidChannel(options.channel));
        }
        Ok(i + 2)
    }

    fn send_on(remote: &mut Remote, index: usize, data: &[u8]) -> Result<(), Error> {
        let channel = *remote
            .channels
            .get(index)
            .ok_or(Error::InvalidChannel(index as u32))?;
        let mut ch = remote
            .connection
            .channel(channel)
            .ok_or(Error::UnknownPeer(remote.id))?;
        ch.send_binary(data)
            .map_err(|e| Error::Transport(e.to_string()))?;
        // As Godot's peers do, the packet leaves now, not at the next poll.
        remote.connection.flush();
        Ok(())
    }

    /// Takes packets from the channels into the queue, one per peer in turn (starting after
    /// the last peer read), each from its lowest non-empty channel.
    fn receive(&mut self) {
        let n = self.remotes.len();
        if n == 0 {
            return;
        }
        let mut idle_rounds = 0;
        let mut k = self.next_reader % n;
        while self.packets.len() < MAX_QUEUED_PACKETS && idle_rounds < n {
            let remote = &mut self.remotes[k];
            let mut got = false;
            if remote.connected {
                for (index, &channel) in remote.channels.iter().enumerate() {
                    let Some(mut ch) = remote.connection.channel(channel) else {
                        continue;
                    };
                    if let Some(data) = ch.get_packet() {
                        let (channel, mode) = describe(&self.extra, index);
                        self.packets.push_back(Packet {
                            from: remote.id,
                            channel,
                            mode,
                            data,
                        });
                        got = true;
                        break;
                    }
                }
            }
            idle_rounds = if got { 0 } else { idle_rounds + 1 };
            k = (k + 1) % n;
            if got {
                self.next_reader = k;
            }
        }
    }
}

impl MultiplayerPeer for WebRtcMultiplayerPeer {
    fn poll(&mut self) {
        let mut i = 0;
        while i < self.remotes.len() {
            let remote = &mut self.remotes[i];
            remote.connection.poll();
            match remote.connection.connection_state() {
                ConnectionState::Failed | ConnectionState::Closed => {
                    self.remove_at(i, true);
                    continue;
                }
                ConnectionState::Connected | ConnectionState::Disconnected => {
                    let mut open = true;
                    let mut broken = false;
                    for &channel in &remote.channels {
                        match remote.connection.channel(channel).map(|c| c.ready_state()) {
                            Some(ReadyState::Open) => {}
                            Some(ReadyState::Connecting) => open = false,
                            _ => broken = true,
                        }
                    }
                    if broken {
                        self.remove_at(i, true);
                        continue;
                    }
                    if open && !remote.connected {
                        remote.connected = true;
                        self.events.push_back(PeerEvent::PeerConnected(remote.id));
                        if self.mode == Mode::Client && remote.id == SERVER_ID {
                            self.status = ConnectionStatus::Connected;
                        }
                    }
                }
                _ => {}
            }
            i += 1;
        }
        self.receive();
    }

    fn poll_event(&mut self) -> Option<PeerEvent> {
        self.events.pop_front()
    }

    fn put_packet(&mut self, data: &[u8]) -> Result<(), Error> {
        if self.status == ConnectionStatus::Disconnected {
            return Err(Error::NotConnected);
        }
        let index = self.channel_index(self.send)?;
        match self.send.target {
            Target::Peer(id) => {
                let remote = self
                    .remotes
                    .iter_mut()
                    .find(|r| r.id == id)
                    .ok_or(Error::UnknownPeer(id))?;
                Self::send_on(remote, index, data)
            }
            target => {
                // As Godot: every added peer but the excluded one; a peer whose channels are
                // not open yet just misses it.
                for remote in self.remotes.iter_mut().filter(|r| target.includes(r.id)) {
                    let _ = Self::send_on(remote, index, data);
                }
                Ok(())
            }
        }
    }

    fn get_packet(&mut self) -> Option<Packet> {
        if self.packets.is_empty() {
            self.receive();
        }
        self.packets.pop_front()
    }

    fn available_packet_count(&self) -> usize {
        self.packets.len()
    }

    fn send_options(&self) -> SendOptions {
        self.send
    }

    fn set_send_options(&mut self, options: SendOptions) {
        self.send = options;
    }

    fn unique_id(&self) -> i32 {
        self.unique_id
    }

    fn connection_status(&self) -> ConnectionStatus {
        self.status
    }

    fn set_refuse_new_connections(&mut self, refuse: bool) {
        self.refuse = refuse;
    }

    fn is_refusing_new_connections(&self) -> bool {
        self.refuse
    }

    fn disconnect_peer(&mut self, id: i32, force: bool) {
        let Some(i) = self.remotes.iter().position(|r| r.id == id) else {
            return;
        };
        if force {
            self.remove_at(i, false);
        } else {
            // Closed now; removed, with its event, by the next poll.
            self.remotes[i].connection.close();
        }
    }

    fn close(&mut self) {
        for remote in &mut self.remotes {
            remote.connection.close();
        }
        *self = WebRtcMultiplayerPeer {
            refuse: self.refuse,
            ..WebRtcMultiplayerPeer::new()
        };
    }

    fn is_server_relay_supported(&self) -> bool {
        matches!(self.mode, Mode::Server | Mode::Client)
    }

    fn max_packet_size(&self) -> usize {
        MAX_PACKET_SIZE
    }
}
