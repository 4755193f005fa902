//! Godot's `SceneMultiplayer` protocol: admission (with and without authentication), the
//! server's peer announcements, relaying between clients, and raw packets.
//!
//! [`SceneCore`] is the protocol, sans-IO: it is told which transport peers connect and leave
//! and what they send, and gives back what to send to whom ([`SceneTransmit`]) and what the game
//! should hear ([`SceneEvent`]). [`SceneMultiplayer`] runs it over any [`MultiplayerPeer`].
//!
//! On the wire (Godot 4's `modules/multiplayer/scene_multiplayer.cpp`, read at commit
//! 1e0b41ab, and `scene_multiplayer.h` at 311a2728): the first byte of every packet holds the
//! command in its low 3 bits. `SYS` (7) packets are `07 <sub> <i32 le>`: `AUTH` (0) carries
//! authentication bytes, or nothing to say "done"; `ADD_PEER` (1) and `DEL_PEER` (2) tell clients
//! of the server who else is connected; `RELAY` (3) wraps a packet for other clients, with the
//! destination from a client and the source from the server. `RAW` (3) packets are
//! `send_bytes` payloads. Remote calls, path caching, spawn, despawn and sync (Godot's scene
//! replication) are not netplay's: they arrive as [`SceneEvent::Unsupported`], never an error
//! of the connection.
//!
//! What it does not own: the transport (ids, connections, reliability are the
//! [`MultiplayerPeer`]'s) and the game's scene tree.

use std::collections::VecDeque;

use super::{
    ConnectionStatus, Error, MultiplayerPeer, SendOptions, Target, TransferMode, SERVER_ID,
};
use crate::time::{Duration, Instant};

/// The command numbers of the first byte (`SceneMultiplayer::NetworkCommands`).
mod cmd {
    pub(super) const MASK: u8 = 0x07;
    pub(super) const RAW: u8 = 3;
    pub(super) const SYS: u8 = 7;
    pub(super) const SYS_AUTH: u8 = 0;
    pub(super) const SYS_ADD_PEER: u8 = 1;
    pub(super) const SYS_DEL_PEER: u8 = 2;
    pub(super) const SYS_RELAY: u8 = 3;
    /// `SYS_CMD_SIZE`: command, sub-command and a 32-bit id.
    pub(super) const SYS_SIZE: usize = 6;
}

/// Godot's default `auth_timeout`: 3 seconds.
pub const DEFAULT_AUTH_TIMEOUT: Duration = Duration::from_secs(3);

/// What a [`SceneCore`] needs sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SceneTransmit {
    /// Send `data` to transport peer `to` with this mode and channel.
    Packet {
        /// The transport peer.
        to: i32,
        /// How.
        mode: TransferMode,
        /// On which channel.
        channel: u32,
        /// The whole packet, command byte first.
        data: Vec<u8>,
    },
    /// Disconnect transport peer `id` (authentication failed or timed out, or the game asked).
    Disconnect(i32),
}

/// What the game hears from the scene multiplayer: Godot's `SceneMultiplayer` signals.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SceneEvent {
    /// `peer_connected`: a peer is admitted (directly connected, or announced by the server).
    PeerConnected(i32),
    /// `peer_disconnected`.
    PeerDisconnected(i32),
    /// `connected_to_server`: a client was admitted by the server.
    ConnectedToServer,
    /// `connection_failed`: a client's transport never connected.
    ConnectionFailed,
    /// `server_disconnected`: a client's transport lost the server.
    ServerDisconnected,
    /// `peer_authenticating`: a transport peer connected and waits for authentication.
    PeerAuthenticating(i32),
    /// Authentication bytes from a peer that is authenticating (what Godot gives its
    /// `auth_callback`).
    AuthData {
        /// The sender.
        from: i32,
        /// The bytes.
        data: Vec<u8>,
    },
    /// `peer_authentication_failed`: the peer left or timed out before both sides completed.
    AuthenticationFailed(i32),
    /// `peer_packet`: bytes sent with `send_bytes`.
    Packet {
        /// The original sender (for a relayed packet, not the server).
        from: i32,
        /// How it travelled (the last hop).
        mode: TransferMode,
        /// On which channel.
        channel: u32,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A packet of Godot's scene replication or remote calls (commands 0, 1, 2, 4, 5, 6),
    /// which netplay does not run.
    Unsupported {
        /// The sender.
        from: i32,
        /// The command number.
        command: u8,
        /// The packet.
        data: Vec<u8>,
    },
    /// A packet that breaks the protocol, dropped (Godot logs these): the reason says which
    /// rule.
    Malformed {
        /// The sender (the transport peer).
        from: i32,
        /// Why it was dropped.
        reason: &'static str,
    },
}

/// A peer waiting for authentication.
#[derive(Debug)]
struct Pending {
    id: i32,
    since: Instant,
    local_done: bool,
    remote_done: bool,
}

/// Godot's `SceneMultiplayer` protocol, sans-IO.
///
/// Feed it the transport's news ([`handle_peer_connected`](Self::handle_peer_connected),
/// [`handle_peer_disconnected`](Self::handle_peer_disconnected),
/// [`handle_packet`](Self::handle_packet), [`handle_status`](Self::handle_status),
/// [`handle_timeout`](Self::handle_timeout)), then send every
/// [`poll_transmit`](Self::poll_transmit) and drain [`poll_event`](Self::poll_event).
#[derive(Debug)]
pub struct SceneCore {
    /// This peer's id (1 for a server, 0 while a client has none).
    local_id: i32,
    /// Whether the transport lets the server relay (server/client topologies).
    relay_supported: bool,
    /// Godot's `server_relay` (default true): announce peers and relay between clients.
    server_relay: bool,
    /// Authentication on: peers wait for both sides' `complete_auth`.
    auth: bool,
    auth_timeout: Duration,
    /// Admitted peers, in Godot's `HashSet` iteration order (insertion order; removal moves
    /// the last one into the hole), which is the order of the server's announcements.
    connected: Vec<i32>,
    pending: Vec<Pending>,
    transmits: VecDeque<SceneTransmit>,
    events: VecDeque<SceneEvent>,
    status: ConnectionStatus,
}

impl Default for SceneCore {
    fn default() -> Self {
        SceneCore::new()
    }
}

impl SceneCore {
    /// A core with Godot's defaults: server relay on, no authentication, a 3 s auth timeout.
    pub fn new() -> SceneCore {
        SceneCore {
            local_id: 0,
            relay_supported: false,
            server_relay: true,
            auth: false,
            auth_timeout: DEFAULT_AUTH_TIMEOUT,
            connected: Vec::new(),
            pending: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            status: ConnectionStatus::Disconnected,
        }
    }

    /// Godot's `server_relay`: with it off, a server neither announces peers nor relays, and
    /// clients see only the server.
    pub fn set_server_relay(&mut self, on: bool) {
        self.server_relay = on;
    }

    /// Authentication on or off (Godot: an `auth_callback` set or not). With it on, a new
    /// transport peer is [`SceneEvent::PeerAuthenticating`] until both sides called
    /// [`complete_auth`](Self::complete_auth).
    pub fn set_auth(&mut self, on: bool) {
        self.auth = on;
    }

    /// Godot's `auth_timeout` (zero: none).
    pub fn set_auth_timeout(&mut self, timeout: Duration) {
        self.auth_timeout = timeout;
    }

    /// Tells the core what the transport says of itself: this peer's id and whether it
    /// supports a relaying server.
    pub fn set_local(&mut self, id: i32, relay_supported: bool) {
        self.local_id = id;
        self.relay_supported = relay_supported;
    }

    /// The admitted peers (for a client with relay: the server and the peers it announced).
    pub fn peers(&self) -> &[i32] {
        &self.connected
    }

    /// The peers still authenticating.
    pub fn authenticating(&self) -> impl Iterator<Item = i32> + '_ {
        self.pending.iter().map(|p| p.id)
    }

    fn relaying(&self) -> bool {
        self.server_relay && self.relay_supported
    }

    /// The transport's status changed: a client's failure or loss of the server is told, and
    /// everything is forgotten once disconnected.
    pub fn handle_status(&mut self, status: ConnectionStatus) {
        let before = std::mem::replace(&mut self.status, status);
        if status == ConnectionStatus::Disconnected && before != status {
            self.events
                .push_back(if before == ConnectionStatus::Connecting {
                    SceneEvent::ConnectionFailed
                } else {
                    SceneEvent::ServerDisconnected
                });
            self.connected.clear();
            self.pending.clear();
            self.transmits.clear();
        }
    }

    /// A transport peer connected: admitted at once, or pending authentication.
    pub fn handle_peer_connected(&mut self, id: i32, now: Instant) {
        if self.auth {
            self.pending.push(Pending {
                id,
                since: now,
                local_done: false,
                remote_done: false,
            });
            self.events.push_back(SceneEvent::PeerAuthenticating(id));
        } else {
            self.admit(id);
        }
    }

    /// A transport peer left.
    pub fn handle_peer_disconnected(&mut self, id: i32) {
        self.remove(id);
    }

    /// Godot's `send_auth`: authentication bytes to a peer that is authenticating.
    pub fn send_auth(&mut self, id: i32, data: &[u8]) -> Result<(), Error> {
        let p = self
            .pending
            .iter()
            .find(|p| p.id == id)
            .ok_or(Error::UnknownPeer(id))?;
        if p.local_done || p.remote_done || data.is_empty() {
            return Err(Error::WrongMode("authentication is over for this peer"));
        }
        let mut packet = vec![cmd::SYS, cmd::SYS_AUTH];
        packet.extend_from_slice(data);
        self.push(id, TransferMode::Reliable, 0, packet);
        Ok(())
    }

    /// Godot's `complete_auth`: this side is done with `id`; it is admitted once the other
    /// side is done too.
    pub fn complete_auth(&mut self, id: i32) -> Result<(), Error> {
        let i = self
            .pending
            .iter()
            .position(|p| p.id == id)
            .ok_or(Error::UnknownPeer(id))?;
        if self.pending[i].local_done {
            return Err(Error::WrongMode("authentication already completed"));
        }
        self.push(id, TransferMode::Reliable, 0, vec![cmd::SYS, cmd::SYS_AUTH]);
        self.pending[i].local_done = true;
        if self.pending[i].remote_done {
            self.pending.swap_remove(i);
            self.admit(id);
        }
        Ok(())
    }

    /// Godot's `send_bytes`: `data` (not empty) to `target` (0 every peer, N one peer, -N all
    /// but N). A client with a relaying server sends everything not for the server through it.
    pub fn send_bytes(
        &mut self,
        data: &[u8],
        target: Target,
        mode: TransferMode,
        channel: u32,
    ) -> Result<(), Error> {
        if data.is_empty() {
            return Err(Error::WrongMode("send_bytes needs at least one byte"));
        }
        let mut packet = Vec::with_capacity(data.len() + 1);
        packet.push(cmd::RAW);
        packet.extend_from_slice(data);
        self.send_command(target, mode, channel, packet)
    }

    /// Godot's `SceneMultiplayer::disconnect_peer`: forgets the peer (a server tells the
    /// others) and asks the transport to disconnect it.
    pub fn disconnect_peer(&mut self, id: i32) {
        self.remove(id);
        self.transmits.push_back(SceneTransmit::Disconnect(id));
    }

    /// A packet from transport peer `from`.
    pub fn handle_packet(&mut self, from: i32, mode: TransferMode, channel: u32, data: &[u8]) {
        let Some(&first) = data.first() else {
            return self.malformed(from, "empty packet");
        };
        let is_auth = first & cmd::MASK == cmd::SYS && data.get(1) == Some(&cmd::SYS_AUTH);
        if let Some(i) = self.pending.iter().position(|p| p.id == from) {
            if !is_auth {
                return self.malformed(from, "a packet before authentication completed");
            }
            if data.len() == 2 {
                self.pending[i].remote_done = true;
                if self.pending[i].local_done {
                    self.pending.swap_remove(i);
                    self.admit(from);
                }
            } else {
                self.events.push_back(SceneEvent::AuthData {
                    from,
                    data: data[2..].to_vec(),
                });
            }
            return;
        }
        if !self.connected.contains(&from) {
            return self.malformed(from, "a packet from a peer that is not connected");
        }
        if is_auth {
            // Late authentication bytes from an admitted peer; a lone "done" is harmless.
            if data.len() > 2 {
                self.malformed(from, "authentication data after admission");
            }
            return;
        }
        self.process(from, mode, channel, data, true);
    }

    /// Runs the auth timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.auth_timeout.is_zero() {
            return;
        }
        let mut i = 0;
        while i < self.pending.len() {
            if now.saturating_duration_since(self.pending[i].since) > self.auth_timeout {
                let id = self.pending.swap_remove(i).id;
                self.transmits.push_back(SceneTransmit::Disconnect(id));
                self.events.push_back(SceneEvent::AuthenticationFailed(id));
            } else {
                i += 1;
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.auth_timeout.is_zero() {
            return None;
        }
        self.pending
            .iter()
            .map(|p| p.since + self.auth_timeout)
            .min()
    }

    /// The next packet to send, or disconnection to make.
    pub fn poll_transmit(&mut self) -> Option<SceneTransmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<SceneEvent> {
        self.events.pop_front()
    }

    fn malformed(&mut self, from: i32, reason: &'static str) {
        self.events
            .push_back(SceneEvent::Malformed { from, reason });
    }

    fn push(&mut self, to: i32, mode: TransferMode, channel: u32, data: Vec<u8>) {
        push(&mut self.transmits, to, mode, channel, data);
    }

    fn sys(sub: u8, id: i32) -> Vec<u8> {
        let mut p = vec![cmd::SYS, sub];
        p.extend_from_slice(&id.to_le_bytes());
        p
    }

    /// Godot's `_admit_peer`: a relaying server tells the new peer of every other one and every
    /// other one of it, pair by pair, reliable on channel 0.
    fn admit(&mut self, id: i32) {
        if self.connected.contains(&id) {
            return;
        }
        if self.relaying() && self.local_id == SERVER_ID {
            for &p in &self.connected {
                let out = &mut self.transmits;
                push(
                    out,
                    p,
                    TransferMode::Reliable,
                    0,
                    Self::sys(cmd::SYS_ADD_PEER, id),
                );
                push(
                    out,
                    id,
                    TransferMode::Reliable,
                    0,
                    Self::sys(cmd::SYS_ADD_PEER, p),
                );
            }
        }
        self.connected.push(id);
        if id == SERVER_ID && self.local_id != SERVER_ID {
            self.events.push_back(SceneEvent::ConnectedToServer);
        }
        self.events.push_back(SceneEvent::PeerConnected(id));
    }

    /// Godot's `_del_peer`.
    fn remove(&mut self, id: i32) {
        if let Some(i) = self.pending.iter().position(|p| p.id == id) {
            self.pending.swap_remove(i);
            self.events.push_back(SceneEvent::AuthenticationFailed(id));
            return;
        }
        let Some(i) = self.connected.iter().position(|&p| p == id) else {
            return;
        };
        self.connected.swap_remove(i);
        if self.relaying() && self.local_id == SERVER_ID {
            for &p in &self.connected {
                let gone = Self::sys(cmd::SYS_DEL_PEER, id);
                push(&mut self.transmits, p, TransferMode::Reliable, 0, gone);
            }
        }
        self.events.push_back(SceneEvent::PeerDisconnected(id));
    }

    /// Godot's `send_command`.
    fn send_command(
        &mut self,
        target: Target,
        mode: TransferMode,
        channel: u32,
        packet: Vec<u8>,
    ) -> Result<(), Error> {
        if self.status != ConnectionStatus::Connected {
            return Err(Error::NotConnected);
        }
        if self.relaying() && self.local_id != SERVER_ID && target != Target::Peer(SERVER_ID) {
            let mut relay = Self::sys(cmd::SYS_RELAY, target.godot_value());
            relay.extend_from_slice(&packet);
            self.push(SERVER_ID, mode, channel, relay);
            return Ok(());
        }
        match target {
            Target::Peer(id) => {
                if !self.connected.contains(&id) {
                    return Err(Error::UnknownPeer(id));
                }
                self.push(id, mode, channel, packet);
            }
            target => {
                for &id in self.connected.iter().filter(|&&id| target.includes(id)) {
                    push(&mut self.transmits, id, mode, channel, packet.clone());
                }
            }
        }
        Ok(())
    }

    /// Godot's `_process_packet` for an admitted sender (`direct`: not from inside a relay).
    fn process(&mut self, from: i32, mode: TransferMode, channel: u32, data: &[u8], direct: bool) {
        let Some(&first) = data.first() else {
            return self.malformed(from, "empty packet");
        };
        match first & cmd::MASK {
            cmd::RAW => {
                if data.len() < 2 {
                    return self.malformed(from, "a raw packet without payload");
                }
                self.events.push_back(SceneEvent::Packet {
                    from,
                    mode,
                    channel,
                    data: data[1..].to_vec(),
                });
            }
            cmd::SYS if direct => self.process_sys(from, mode, channel, data),
            cmd::SYS => self.malformed(from, "a system packet inside a relay"),
            command => self.events.push_back(SceneEvent::Unsupported {
                from,
                command,
                data: data.to_vec(),
            }),
        }
    }

    /// Godot's `_process_sys`.
    fn process_sys(&mut self, from: i32, mode: TransferMode, channel: u32, data: &[u8]) {
        let Some(id_bytes) = data.get(2..cmd::SYS_SIZE) else {
            return self.malformed(from, "a system packet shorter than 6 bytes");
        };
        let mut id = [0; 4];
        id.copy_from_slice(id_bytes);
        let id = i32::from_le_bytes(id);
        let sub = data[1];
        match sub {
            cmd::SYS_ADD_PEER | cmd::SYS_DEL_PEER => {
                if !self.relaying() || self.local_id == SERVER_ID || from != SERVER_ID {
                    return self.malformed(from, "a peer announcement not from a relaying server");
                }
                if id < 2 || id == self.local_id {
                    return self.malformed(from, "a peer announcement with an invalid id");
                }
                if sub == cmd::SYS_ADD_PEER {
                    self.admit(id);
                } else {
                    self.remove(id);
                }
            }
            cmd::SYS_RELAY => {
                if !self.relaying() {
                    return self.malformed(from, "a relay without a relaying server");
                }
                let inner = &data[cmd::SYS_SIZE..];
                if inner.is_empty() {
                    return self.malformed(from, "a relay without a packet");
                }
                if self.local_id == SERVER_ID {
                    let target = Target::from_godot(id);
                    let mut relayed = Self::sys(cmd::SYS_RELAY, from);
                    relayed.extend_from_slice(inner);
                    match target {
                        Target::Peer(dest) => {
                            // A peer that left while the packet travelled: dropped, as Godot does.
                            if dest != from && self.connected.contains(&dest) {
                                self.push(dest, mode, channel, relayed);
                            }
                        }
                        target => {
                            let others = self
                                .connected
                                .iter()
                                .filter(|&&p| p != from && target.includes(p));
                            for &p in others {
                                push(&mut self.transmits, p, mode, channel, relayed.clone());
                            }
                            // The server is among "everyone" unless excluded (-1).
                            if target.includes(SERVER_ID) {
                                self.process(from, mode, channel, inner, false);
                            }
                        }
                    }
                } else {
                    if from != SERVER_ID {
                        return self.malformed(from, "a relayed packet not from the server");
                    }
                    self.process(id, mode, channel, inner, false);
                }
            }
            _ => self.malformed(from, "an unknown system command"),
        }
    }
}

/// Queues a packet for transport peer `to` (a free function, so that loops over the connected
/// peers can borrow them while the queue grows).
fn push(
    transmits: &mut VecDeque<SceneTransmit>,
    to: i32,
    mode: TransferMode,
    channel: u32,
    data: Vec<u8>,
) {
    transmits.push_back(SceneTransmit::Packet {
        to,
        mode,
        channel,
        data,
    });
}

/// Godot's `SceneMultiplayer` for raw packets over any [`MultiplayerPeer`]: the transport's
/// peers admitted (with optional authentication), a server's announcements and relaying, and
/// `send_bytes`.
///
/// ```no_run
/// use netplay::multiplayer::{SceneEvent, SceneMultiplayer, Target, TransferMode, WebSocketMultiplayerPeer};
/// let mut client = WebSocketMultiplayerPeer::new();
/// client.create_client("ws://127.0.0.1:9081", None).unwrap();
/// let mut scene = SceneMultiplayer::new(client);
/// loop {
///     scene.poll();
///     while let Some(event) = scene.poll_event() {
///         match event {
///             SceneEvent::ConnectedToServer => {
///                 scene.send_bytes(b"hello, everyone", Target::Broadcast, TransferMode::Reliable, 0).ok();
///             }
///             SceneEvent::Packet { from, data, .. } => println!("{from}: {data:?}"),
///             _ => {}
///         }
///     }
///     std::thread::sleep(std::time::Duration::from_millis(5));
/// }
/// ```
#[derive(Debug)]
pub struct SceneMultiplayer<P> {
    peer: P,
    core: SceneCore,
}

impl<P: MultiplayerPeer> SceneMultiplayer<P> {
    /// The scene multiplayer over `peer`, with Godot's defaults (see [`SceneCore::new`]).
    pub fn new(peer: P) -> SceneMultiplayer<P> {
        let mut core = SceneCore::new();
        core.set_local(peer.unique_id(), peer.is_server_relay_supported());
        core.status = peer.connection_status();
        SceneMultiplayer { peer, core }
    }

    /// The transport.
    pub fn peer(&self) -> &P {
        &self.peer
    }

    /// The transport, to configure or query it.
    pub fn peer_mut(&mut self) -> &mut P {
        &mut self.peer
    }

    /// The protocol core, for its settings (relay, authentication, timeout).
    pub fn core_mut(&mut self) -> &mut SceneCore {
        &mut self.core
    }

    /// This peer's id.
    pub fn unique_id(&self) -> i32 {
        self.peer.unique_id()
    }

    /// The admitted peers.
    pub fn peers(&self) -> &[i32] {
        self.core.peers()
    }

    /// Polls the transport and runs the protocol; events wait in
    /// [`poll_event`](Self::poll_event).
    pub fn poll(&mut self) {
        self.poll_at(Instant::now());
    }

    /// [`poll`](Self::poll) with the caller's clock for the auth timeout.
    pub fn poll_at(&mut self, now: Instant) {
        self.peer.poll();
        self.core
            .set_local(self.peer.unique_id(), self.peer.is_server_relay_supported());
        while let Some(event) = self.peer.poll_event() {
            match event {
                super::PeerEvent::PeerConnected(id) => self.core.handle_peer_connected(id, now),
                super::PeerEvent::PeerDisconnected(id) => self.core.handle_peer_disconnected(id),
            }
        }
        while let Some(packet) = self.peer.get_packet() {
            self.core
                .handle_packet(packet.from, packet.mode, packet.channel, &packet.data);
        }
        self.core.handle_status(self.peer.connection_status());
        self.core.handle_timeout(now);
        self.flush();
    }

    /// Godot's `send_bytes`.
    pub fn send_bytes(
        &mut self,
        data: &[u8],
        target: Target,
        mode: TransferMode,
        channel: u32,
    ) -> Result<(), Error> {
        self.core.send_bytes(data, target, mode, channel)?;
        self.flush();
        Ok(())
    }

    /// Godot's `send_auth`.
    pub fn send_auth(&mut self, id: i32, data: &[u8]) -> Result<(), Error> {
        self.core.send_auth(id, data)?;
        self.flush();
        Ok(())
    }

    /// Godot's `complete_auth`.
    pub fn complete_auth(&mut self, id: i32) -> Result<(), Error> {
        self.core.complete_auth(id)?;
        self.flush();
        Ok(())
    }

    /// Godot's `disconnect_peer`.
    pub fn disconnect_peer(&mut self, id: i32) {
        self.core.disconnect_peer(id);
        self.flush();
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<SceneEvent> {
        self.core.poll_event()
    }

    fn flush(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            match t {
                SceneTransmit::Packet {
                    to,
                    mode,
                    channel,
                    data,
                } => {
                    let options = SendOptions {
                        target: Target::Peer(to),
                        mode,
                        channel,
                    };
                    // A peer that left meanwhile: its disconnection is already on its way.
                    let _ = self.peer.put_packet_with(&data, options);
                }
                SceneTransmit::Disconnect(id) => self.peer.disconnect_peer(id, false),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Byte-level tests of the protocol, each against the rule of Godot's
    //! `scene_multiplayer.cpp` (commit 1e0b41ab) it names.

    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    fn server() -> SceneCore {
        let mut c = SceneCore::new();
        c.set_local(1, true);
        c.handle_status(ConnectionStatus::Connected);
        c
    }

    fn client(id: i32) -> SceneCore {
        let mut c = SceneCore::new();
        c.set_local(id, true);
        c.handle_status(ConnectionStatus::Connecting);
        c.handle_status(ConnectionStatus::Connected);
        c.handle_peer_connected(1, Instant::now());
        drain_events(&mut c);
        c
    }

    fn drain_events(c: &mut SceneCore) -> Vec<SceneEvent> {
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    fn drain(c: &mut SceneCore) -> Vec<(i32, Vec<u8>)> {
        std::iter::from_fn(|| c.poll_transmit())
            .map(|t| match t {
                SceneTransmit::Packet { to, data, .. } => (to, data),
                SceneTransmit::Disconnect(id) => (-id, Vec::new()),
            })
            .collect()
    }

    #[test]
    fn a_relaying_server_announces_each_new_peer_pair_by_pair_in_admission_order() {
        // `_admit_peer`: for each connected P, ADD_PEER(new) to P, then ADD_PEER(P) to new.
        let mut s = server();
        let now = Instant::now();
        for id in [5, 6, 7] {
            s.handle_peer_connected(id, now);
        }
        assert_eq!(
            drain(&mut s),
            vec![
                (5, hex("07 01 06 00 00 00")),
                (6, hex("07 01 05 00 00 00")),
                (5, hex("07 01 07 00 00 00")),
                (7, hex("07 01 05 00 00 00")),
                (6, hex("07 01 07 00 00 00")),
                (7, hex("07 01 06 00 00 00")),
            ]
        );
        assert_eq!(
            drain_events(&mut s),
            vec![
                SceneEvent::PeerConnected(5),
                SceneEvent::PeerConnected(6),
                SceneEvent::PeerConnected(7)
            ]
        );
    }

    #[test]
    fn a_leaving_peer_is_announced_to_the_others_in_hash_set_order() {
        // `_del_peer`: DEL_PEER to every other connected peer. Godot's HashSet erase moves the
        // last key into the hole, so after 5 leaves the order is 7, 6.
        let mut s = server();
        for id in [5, 6, 7] {
            s.handle_peer_connected(id, Instant::now());
        }
        drain(&mut s);
        drain_events(&mut s);
        s.handle_peer_disconnected(5);
        assert_eq!(
            drain(&mut s),
            vec![(7, hex("07 02 05 00 00 00")), (6, hex("07 02 05 00 00 00"))]
        );
        assert_eq!(drain_events(&mut s), vec![SceneEvent::PeerDisconnected(5)]);
        assert_eq!(s.peers(), &[7, 6]);
    }

    #[test]
    fn a_client_wraps_every_packet_not_for_the_server_in_one_relay() {
        // `send_command`: with server relay, anything not for peer 1 goes to 1 as
        // `07 03 <target i32 le> <packet>`; a packet for 1 goes as it is.
        let mut c = client(9);
        c.send_bytes(b"hi", Target::Peer(12345), TransferMode::Reliable, 0)
            .unwrap();
        c.send_bytes(b"hi", Target::Broadcast, TransferMode::Reliable, 0)
            .unwrap();
        c.send_bytes(b"hi", Target::AllExcept(5), TransferMode::Reliable, 0)
            .unwrap();
        c.send_bytes(b"hi", Target::Peer(1), TransferMode::Reliable, 0)
            .unwrap();
        assert_eq!(
            drain(&mut c),
            vec![
                (1, hex("07 03 39 30 00 00 03 68 69")),
                (1, hex("07 03 00 00 00 00 03 68 69")),
                (1, hex("07 03 fb ff ff ff 03 68 69")),
                (1, hex("03 68 69")),
            ]
        );
    }

    #[test]
    fn the_server_relays_with_the_source_id_and_the_original_mode_and_channel() {
        let mut s = server();
        for id in [777, 12345, 5] {
            s.handle_peer_connected(id, Instant::now());
        }
        drain(&mut s);
        drain_events(&mut s);
        // Unicast: re-wrapped with the source, same mode and channel, not processed here.
        s.handle_packet(
            777,
            TransferMode::Unreliable,
            2,
            &hex("07 03 39 30 00 00 03 68 69"),
        );
        assert_eq!(
            s.poll_transmit(),
            Some(SceneTransmit::Packet {
                to: 12345,
                mode: TransferMode::Unreliable,
                channel: 2,
                data: hex("07 03 09 03 00 00 03 68 69"),
            })
        );
        assert!(drain_events(&mut s).is_empty());
        // Broadcast: every other client, and the server processes it too.
        s.handle_packet(
            777,
            TransferMode::Reliable,
            0,
            &hex("07 03 00 00 00 00 03 68 69"),
        );
        assert_eq!(
            drain(&mut s),
            vec![
                (12345, hex("07 03 09 03 00 00 03 68 69")),
                (5, hex("07 03 09 03 00 00 03 68 69"))
            ]
        );
        assert_eq!(
            drain_events(&mut s),
            vec![SceneEvent::Packet {
                from: 777,
                mode: TransferMode::Reliable,
                channel: 0,
                data: b"hi".to_vec()
            }]
        );
        // All but the server (-1): relayed, not processed. All but 5: not to 5.
        s.handle_packet(
            777,
            TransferMode::Reliable,
            0,
            &hex("07 03 ff ff ff ff 03 68 69"),
        );
        assert_eq!(drain(&mut s).len(), 2);
        assert!(drain_events(&mut s).is_empty());
        s.handle_packet(
            777,
            TransferMode::Reliable,
            0,
            &hex("07 03 fb ff ff ff 03 68 69"),
        );
        assert_eq!(
            drain(&mut s),
            vec![(12345, hex("07 03 09 03 00 00 03 68 69"))]
        );
        // ... and the server, not excluded, processes it.
        assert_eq!(drain_events(&mut s).len(), 1);
        // To a peer that is gone: dropped without a word, as Godot does.
        s.handle_packet(
            777,
            TransferMode::Reliable,
            0,
            &hex("07 03 63 00 00 00 03 68 69"),
        );
        assert!(drain(&mut s).is_empty());
        assert!(drain_events(&mut s).is_empty());
    }

    #[test]
    fn a_client_takes_announcements_and_relayed_packets_from_the_server_only() {
        let mut c = client(9);
        c.handle_packet(1, TransferMode::Reliable, 0, &hex("07 01 39 30 00 00"));
        assert_eq!(drain_events(&mut c), vec![SceneEvent::PeerConnected(12345)]);
        c.handle_packet(
            1,
            TransferMode::Unreliable,
            1,
            &hex("07 03 39 30 00 00 03 68 69"),
        );
        assert_eq!(
            drain_events(&mut c),
            vec![SceneEvent::Packet {
                from: 12345,
                mode: TransferMode::Unreliable,
                channel: 1,
                data: b"hi".to_vec()
            }]
        );
        c.handle_packet(1, TransferMode::Reliable, 0, &hex("07 02 39 30 00 00"));
        assert_eq!(
            drain_events(&mut c),
            vec![SceneEvent::PeerDisconnected(12345)]
        );
        assert_eq!(c.peers(), &[1]);
        assert!(
            drain(&mut c).is_empty(),
            "a client never answers announcements"
        );
    }

    #[test]
    fn broken_packets_are_dropped_with_a_reason_and_the_next_one_works() {
        let mut s = server();
        s.handle_peer_connected(5, Instant::now());
        s.handle_peer_connected(6, Instant::now());
        drain(&mut s);
        drain_events(&mut s);
        let broken: [&[u8]; 8] = [
            &[],
            &[0x03],
            &[0x07, 0x03, 0x06, 0x00, 0x00],
            &[0x07, 0x03, 0x06, 0x00, 0x00, 0x00],
            &[
                0x07, 0x03, 0x00, 0x00, 0x00, 0x00, 0x07, 0x01, 0x05, 0, 0, 0,
            ],
            &[0x07, 0x09, 0x06, 0x00, 0x00, 0x00],
            &[0x07, 0x01, 0x06, 0x00, 0x00, 0x00],
            &[0x07, 0x00, 0x01],
        ];
        for bad in broken {
            s.handle_packet(5, TransferMode::Reliable, 0, bad);
            let events = drain_events(&mut s);
            assert!(
                matches!(events.as_slice(), [SceneEvent::Malformed { from: 5, .. }]),
                "{bad:02x?}: {events:?}"
            );
        }
        // A SYS inside a broadcast relay was relayed before the server looked inside; nothing
        // else left the server.
        let sent = drain(&mut s);
        assert!(sent.iter().all(|(to, _)| *to == 6), "{sent:?}");
        // From a peer the server does not know.
        s.handle_packet(99, TransferMode::Reliable, 0, b"\x03x");
        assert!(matches!(
            drain_events(&mut s).as_slice(),
            [SceneEvent::Malformed { from: 99, .. }]
        ));
        s.handle_packet(5, TransferMode::Reliable, 0, b"\x03ok");
        assert_eq!(
            drain_events(&mut s),
            vec![SceneEvent::Packet {
                from: 5,
                mode: TransferMode::Reliable,
                channel: 0,
                data: b"ok".to_vec()
            }]
        );
    }

    #[test]
    fn remote_calls_and_replication_are_reported_unsupported() {
        let mut s = server();
        s.handle_peer_connected(5, Instant::now());
        drain_events(&mut s);
        for (packet, command) in [
            (hex("00 01 00 01 02 01"), 0u8),
            (hex("01 00"), 1),
            (hex("02 01 00 00 00 00"), 2),
            (hex("04 00"), 4),
            (hex("05 01 00 00 00"), 5),
            (hex("16 00 00"), 6),
        ] {
            s.handle_packet(5, TransferMode::Reliable, 0, &packet);
            assert_eq!(
                drain_events(&mut s),
                vec![SceneEvent::Unsupported {
                    from: 5,
                    command,
                    data: packet.clone()
                }]
            );
        }
    }

    #[test]
    fn without_authentication_a_peer_is_admitted_with_no_packet_exchanged() {
        // `_add_peer` without an auth callback calls `_admit_peer` at once.
        let mut c = SceneCore::new();
        c.set_local(9, true);
        c.handle_status(ConnectionStatus::Connecting);
        c.handle_status(ConnectionStatus::Connected);
        c.handle_peer_connected(1, Instant::now());
        assert!(drain(&mut c).is_empty());
        assert_eq!(
            drain_events(&mut c),
            vec![SceneEvent::ConnectedToServer, SceneEvent::PeerConnected(1)]
        );
    }

    #[test]
    fn with_authentication_a_peer_is_admitted_once_both_sides_completed() {
        let mut s = server();
        s.set_auth(true);
        let t0 = Instant::now();
        s.handle_peer_connected(5, t0);
        assert_eq!(
            drain_events(&mut s),
            vec![SceneEvent::PeerAuthenticating(5)]
        );
        // Anything but AUTH is dropped while authenticating.
        s.handle_packet(5, TransferMode::Reliable, 0, b"\x03early");
        assert!(matches!(
            drain_events(&mut s).as_slice(),
            [SceneEvent::Malformed { from: 5, .. }]
        ));
        s.handle_packet(5, TransferMode::Reliable, 0, &hex("07 00 aa bb"));
        assert_eq!(
            drain_events(&mut s),
            vec![SceneEvent::AuthData {
                from: 5,
                data: vec![0xaa, 0xbb]
            }]
        );
        s.send_auth(5, &[0xcc]).unwrap();
        s.complete_auth(5).unwrap();
        assert_eq!(drain(&mut s), vec![(5, hex("07 00 cc")), (5, hex("07 00"))]);
        assert!(
            drain_events(&mut s).is_empty(),
            "the other side is not done"
        );
        s.handle_packet(5, TransferMode::Reliable, 0, &hex("07 00"));
        assert_eq!(drain_events(&mut s), vec![SceneEvent::PeerConnected(5)]);

        // A peer that does not finish in time is disconnected.
        s.handle_peer_connected(6, t0);
        drain_events(&mut s);
        assert_eq!(s.poll_timeout(), Some(t0 + DEFAULT_AUTH_TIMEOUT));
        s.handle_timeout(t0 + DEFAULT_AUTH_TIMEOUT);
        assert!(drain(&mut s).is_empty());
        s.handle_timeout(t0 + DEFAULT_AUTH_TIMEOUT + Duration::from_millis(1));
        assert_eq!(drain(&mut s), vec![(-6, Vec::new())]);
        assert_eq!(
            drain_events(&mut s),
            vec![SceneEvent::AuthenticationFailed(6)]
        );
    }

    #[test]
    fn a_client_hears_whether_its_connection_failed_or_was_lost() {
        let mut c = SceneCore::new();
        c.handle_status(ConnectionStatus::Connecting);
        c.handle_status(ConnectionStatus::Disconnected);
        assert_eq!(drain_events(&mut c), vec![SceneEvent::ConnectionFailed]);
        let mut c = client(9);
        c.handle_peer_disconnected(1);
        c.handle_status(ConnectionStatus::Disconnected);
        assert_eq!(
            drain_events(&mut c),
            vec![
                SceneEvent::PeerDisconnected(1),
                SceneEvent::ServerDisconnected
            ]
        );
        assert_eq!(
            c.send_bytes(b"x", Target::Broadcast, TransferMode::Reliable, 0),
            Err(Error::NotConnected)
        );
    }
}
