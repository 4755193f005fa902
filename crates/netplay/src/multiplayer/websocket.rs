//! Godot's `WebSocketMultiplayerPeer`: a server and its clients over WebSocket, byte-compatible
//! with Godot 4.
//!
//! Owns the topology over [`WebSocketPeer`]s: the listener and the handshakes still pending, the
//! 4-byte id message that admits a client, the map from ids to connections, the handshake
//! timeout, and the packet queue. Packets travel as they are, one binary WebSocket message
//! each, reliable and ordered, with no header: a client only ever talks to the server (source
//! 1), the server knows the sender by the connection. Relaying between clients is the layer
//! above's (`SceneMultiplayer`), which is why
//! [`is_server_relay_supported`](MultiplayerPeer::is_server_relay_supported) is true.
//!
//! The wire format follows Godot's `modules/websocket/websocket_multiplayer_peer.cpp` (read at
//! commit 054ded4a, a 4.x version: `_poll_server`, `_poll_client`, `put_packet`,
//! `get_max_packet_size`). Where netplay differs, it is on the side of telling: a server
//! takes every waiting connection per poll (Godot one), never gives two peers one id, closes
//! a refused handshake with a close frame, and reports a failed send to a peer.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
#[cfg(not(target_arch = "wasm32"))]
use std::net::{IpAddr, TcpStream};

#[cfg(not(target_arch = "wasm32"))]
use super::{generate_unique_id, Target};
use super::{
    ConnectionStatus, Error, MultiplayerPeer, Packet, PeerEvent, SendOptions, TransferMode,
    SERVER_ID,
};
use crate::random::Rng;
use crate::time::{Duration, Instant};
#[cfg(not(target_arch = "wasm32"))]
use crate::ws::TcpServer;
#[cfg(all(feature = "tls", not(target_arch = "wasm32")))]
use crate::ws::TlsOptions;
use crate::ws::{PeerOptions, ReadyState, WebSocketPeer, WriteMode};

/// Bytes Godot subtracts from `outbound_buffer_size` for the largest packet (the size of the
/// per-packet header Godot 3 had; `WebSocketMultiplayerPeer::get_max_packet_size`).
const PROTO_SIZE: usize = 9;

/// Godot's default `handshake_timeout`: 3 seconds.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// The TLS options argument: [`TlsOptions`] with the `tls` feature (natively).
#[cfg(all(feature = "tls", not(target_arch = "wasm32")))]
pub type Tls = TlsOptions;
/// The TLS options argument: nothing to give without the `tls` feature, or in a browser (which
/// uses its own TLS and trusted roots).
#[cfg(not(all(feature = "tls", not(target_arch = "wasm32"))))]
pub type Tls = ();

/// A connection that has not sent or received its id yet.
#[cfg(not(target_arch = "wasm32"))]
struct Pending {
    id: i32,
    ws: WebSocketPeer,
    since: Instant,
}

enum Role {
    Idle,
    #[cfg(not(target_arch = "wasm32"))]
    Server {
        listener: TcpServer,
        #[cfg_attr(not(feature = "tls"), allow(dead_code))]
        tls: Option<Tls>,
        pending: Vec<Pending>,
    },
    /// A client: its connection waits here until the id message admits it, then lives in
    /// `peers` under the server's id.
    Client {
        handshake: Option<Box<(WebSocketPeer, Instant)>>,
    },
}

/// Godot's `WebSocketMultiplayerPeer`: a server (`create_server`) or a client
/// (`create_client`), polled like every netplay peer.
///
/// ```no_run
/// use netplay::multiplayer::{MultiplayerPeer, PeerEvent, WebSocketMultiplayerPeer};
/// let mut server = WebSocketMultiplayerPeer::new();
/// server.create_server(9081, None, None).unwrap();
/// loop {
///     server.poll();
///     while let Some(event) = server.poll_event() {
///         if let PeerEvent::PeerConnected(id) = event {
///             println!("peer {id} joined");
///         }
///     }
///     while let Some(packet) = server.get_packet() {
///         server.set_target_peer(-packet.from); // everyone else
///         server.put_packet(&packet.data).ok();
///     }
///     std::thread::sleep(std::time::Duration::from_millis(5));
/// }
/// ```
pub struct WebSocketMultiplayerPeer {
    role: Role,
    options: PeerOptions,
    handshake_timeout: Duration,
    unique_id: i32,
    status: ConnectionStatus,
    send: SendOptions,
    refuse: bool,
    peers: BTreeMap<i32, WebSocketPeer>,
    packets: VecDeque<Packet>,
    events: VecDeque<PeerEvent>,
    /// Ids of a server's clients.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    rng: Rng,
}

impl Default for WebSocketMultiplayerPeer {
    fn default() -> Self {
        WebSocketMultiplayerPeer::new()
    }
}

impl std::fmt::Debug for WebSocketMultiplayerPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketMultiplayerPeer")
            .field("unique_id", &self.unique_id)
            .field("status", &self.status)
            .field("peers", &self.peers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl WebSocketMultiplayerPeer {
    /// An inactive peer with Godot's defaults: the buffer and queue sizes of
    /// [`PeerOptions::default`] and a 3 s handshake timeout.
    pub fn new() -> WebSocketMultiplayerPeer {
        WebSocketMultiplayerPeer {
            role: Role::Idle,
            options: PeerOptions::default(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            unique_id: 0,
            status: ConnectionStatus::Disconnected,
            send: SendOptions::default(),
            refuse: false,
            peers: BTreeMap::new(),
            packets: VecDeque::new(),
            events: VecDeque::new(),
            rng: Rng::os(),
        }
    }

    /// The options each connection is created with (Godot's `supported_protocols`,
    /// `handshake_headers`, `inbound_buffer_size`, `outbound_buffer_size`,
    /// `max_queued_packets`); changes apply to connections made afterwards.
    pub fn peer_options_mut(&mut self) -> &mut PeerOptions {
        &mut self.options
    }

    /// The options each connection is created with.
    pub fn peer_options(&self) -> &PeerOptions {
        &self.options
    }

    /// Godot's `handshake_timeout`: how long a connection may take from TCP to the id
    /// message. A client past it gives up; a server drops the connection.
    pub fn set_handshake_timeout(&mut self, timeout: Duration) {
        self.handshake_timeout = timeout;
    }

    /// The handshake timeout.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// Godot's `create_server`: listens on `port` at `bind` (`None`: every address) and is at
    /// once connected, with id 1. `tls` must be server options (see
    /// [`TlsOptions::server`](crate::ws::TlsOptions::server)).
    ///
    /// Native only: a browser cannot listen.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn create_server(
        &mut self,
        port: u16,
        bind: Option<IpAddr>,
        tls: Option<Tls>,
    ) -> Result<(), Error> {
        if !matches!(self.role, Role::Idle) {
            return Err(Error::AlreadyActive);
        }
        #[cfg(feature = "tls")]
        if tls.as_ref().is_some_and(|t| !t.is_server()) {
            return Err(Error::WrongMode("create_server needs server TLS options"));
        }
        let ip = bind.unwrap_or(IpAddr::from([0u8; 16]));
        let mut listener = TcpServer::new();
        let bound = listener
            .listen(SocketAddr::new(ip, port))
            .or_else(|e| match bind {
                // "*": every address; fall back to IPv4 where IPv6 is missing.
                None => listener.listen(SocketAddr::new(IpAddr::from([0u8; 4]), port)),
                Some(_) => Err(e),
            });
        bound.map_err(|e| Error::Transport(format!("listen: {e}")))?;
        self.clear();
        self.role = Role::Server {
            listener,
            tls,
            pending: Vec::new(),
        };
        self.unique_id = SERVER_ID;
        self.status = ConnectionStatus::Connected;
        Ok(())
    }

    /// Godot's `create_client`: starts connecting to a `ws://` or `wss://` URL. The status is
    /// [`Connecting`](ConnectionStatus::Connecting) until the server's id message arrives;
    /// a failure shows later as [`Disconnected`](ConnectionStatus::Disconnected).
    pub fn create_client(&mut self, url: &str, tls: Option<Tls>) -> Result<(), Error> {
        if !matches!(self.role, Role::Idle) {
            return Err(Error::AlreadyActive);
        }
        let mut ws = WebSocketPeer::with_options(self.options.clone());
        #[cfg(all(feature = "tls", not(target_arch = "wasm32")))]
        let result = ws.connect_to_url(url, tls);
        #[cfg(not(all(feature = "tls", not(target_arch = "wasm32"))))]
        let result = ws.connect_to_url(url, tls.map(|_| ()));
        result.map_err(|e| Error::Transport(e.to_string()))?;
        self.clear();
        self.role = Role::Client {
            handshake: Some(Box::new((ws, Instant::now()))),
        };
        self.unique_id = 0;
        self.status = ConnectionStatus::Connecting;
        Ok(())
    }

    /// The local port of a server (0 otherwise).
    pub fn local_port(&self) -> u16 {
        match &self.role {
            #[cfg(not(target_arch = "wasm32"))]
            Role::Server { listener, .. } => listener.local_port(),
            _ => 0,
        }
    }

    /// Godot's `get_peer`: the connection of a connected peer (for a client, the server's is 1).
    pub fn get_peer(&self, id: i32) -> Option<&WebSocketPeer> {
        self.peers.get(&id)
    }

    /// Godot's `get_peer_address`: the remote address of a connected peer.
    pub fn peer_address(&self, id: i32) -> Option<SocketAddr> {
        self.peers.get(&id).and_then(|ws| ws.connected_addr())
    }

    /// The ids of the connected peers.
    pub fn peer_ids(&self) -> impl Iterator<Item = i32> + '_ {
        self.peers.keys().copied()
    }

    /// [`poll`](MultiplayerPeer::poll) with the caller's clock.
    pub fn poll_at(&mut self, now: Instant) {
        match &mut self.role {
            Role::Idle => {}
            #[cfg(not(target_arch = "wasm32"))]
            Role::Server { .. } => self.poll_server(now),
            Role::Client { .. } => self.poll_client(now),
        }
    }

    fn clear(&mut self) {
        self.role = Role::Idle;
        self.peers.clear();
        self.packets.clear();
        self.events.clear();
        self.unique_id = 0;
        self.status = ConnectionStatus::Disconnected;
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn poll_server(&mut self, now: Instant) {
        let Role::Server {
            listener,
            tls,
            pending,
        } = &mut self.role
        else {
            return;
        };
        // Refusing leaves new connections in the listener's backlog, as Godot does.
        while !self.refuse {
            let Some(stream) = listener.take_connection() else {
                break;
            };
            let id = loop {
                let id = generate_unique_id(&mut self.rng);
                if !self.peers.contains_key(&id) && pending.iter().all(|p| p.id != id) {
                    break id;
                }
            };
            let mut ws = WebSocketPeer::with_options(self.options.clone());
            if accept(&mut ws, stream, tls.as_ref()).is_ok() {
                pending.push(Pending { id, ws, since: now });
            }
        }
        let mut i = 0;
        while i < pending.len() {
            let p = &mut pending[i];
            p.ws.poll_at(now);
            match p.ws.ready_state() {
                ReadyState::Open if self.refuse => {
                    let _ = p.ws.close(1000, "");
                    pending.swap_remove(i);
                }
                ReadyState::Open => {
                    let Pending { id, mut ws, .. } = pending.swap_remove(i);
                    // The id message: the new peer's id, 4 bytes little-endian, binary.
                    if ws.send(&id.to_le_bytes(), WriteMode::Binary).is_ok() {
                        self.peers.insert(id, ws);
                        self.events.push_back(PeerEvent::PeerConnected(id));
                    }
                }
                ReadyState::Connecting
                    if now.saturating_duration_since(p.since) <= self.handshake_timeout =>
                {
                    i += 1
                }
                _ => {
                    pending.swap_remove(i);
                }
            }
        }
        let mut gone = Vec::new();
        for (&id, ws) in &mut self.peers {
            ws.poll_at(now);
            while let Some(data) = ws.get_packet() {
                self.packets.push_back(Packet {
                    from: id,
                    channel: 0,
                    mode: TransferMode::Reliable,
                    data,
                });
            }
            if ws.ready_state() != ReadyState::Open {
                gone.push(id);
            }
        }
        for id in gone {
            self.peers.remove(&id);
            self.events.push_back(PeerEvent::PeerDisconnected(id));
        }
    }

    fn poll_client(&mut self, now: Instant) {
        let Role::Client { handshake } = &mut self.role else {
            return;
        };
        if let Some(pending) = handshake {
            let (ws, since) = &mut **pending;
            ws.poll_at(now);
            let timed_out = now.saturating_duration_since(*since) > self.handshake_timeout;
            let admitted = match ws.ready_state() {
                ReadyState::Open => match ws.get_packet() {
                    // The id message: exactly 4 bytes, a client's id (2 and up).
                    Some(message) => match <[u8; 4]>::try_from(message.as_slice()) {
                        Ok(bytes) if i32::from_le_bytes(bytes) >= 2 => {
                            Some(i32::from_le_bytes(bytes))
                        }
                        _ => None,
                    },
                    None if !timed_out => return,
                    None => None,
                },
                ReadyState::Connecting if !timed_out => return,
                _ => None,
            };
            let Some(pending) = handshake.take() else {
                return;
            };
            let (mut ws, _) = *pending;
            let Some(id) = admitted else {
                let _ = ws.close(1000, "");
                self.clear();
                return;
            };
            self.peers.insert(SERVER_ID, ws);
            self.unique_id = id;
            self.status = ConnectionStatus::Connected;
            self.events.push_back(PeerEvent::PeerConnected(SERVER_ID));
        }
        let Some(server) = self.peers.get_mut(&SERVER_ID) else {
            return;
        };
        // The poll above already read what came with the id message.
        server.poll_at(now);
        while let Some(data) = server.get_packet() {
            self.packets.push_back(Packet {
                from: SERVER_ID,
                channel: 0,
                mode: TransferMode::Reliable,
                data,
            });
        }
        if server.ready_state() != ReadyState::Open {
            let packets = std::mem::take(&mut self.packets);
            let events = std::mem::take(&mut self.events);
            self.clear();
            // What arrived before the close stays readable, and undrained events stay.
            self.packets = packets;
            self.events = events;
            self.events
                .push_back(PeerEvent::PeerDisconnected(SERVER_ID));
        }
    }

    fn send_to(&mut self, id: i32, data: &[u8]) -> Result<(), Error> {
        let ws = self.peers.get_mut(&id).ok_or(Error::UnknownPeer(id))?;
        send_binary(ws, data)
    }
}

/// One packet: one binary message.
fn send_binary(ws: &mut WebSocketPeer, data: &[u8]) -> Result<(), Error> {
    ws.send(data, WriteMode::Binary)
        .map_err(|e| Error::Transport(e.to_string()))
}

#[cfg(all(feature = "tls", not(target_arch = "wasm32")))]
fn accept(
    ws: &mut WebSocketPeer,
    stream: TcpStream,
    tls: Option<&Tls>,
) -> Result<(), crate::ws::Error> {
    ws.accept_stream(stream, tls)
}

#[cfg(all(not(feature = "tls"), not(target_arch = "wasm32")))]
fn accept(
    ws: &mut WebSocketPeer,
    stream: TcpStream,
    _tls: Option<&Tls>,
) -> Result<(), crate::ws::Error> {
    ws.accept_stream(stream, None)
}

impl MultiplayerPeer for WebSocketMultiplayerPeer {
    fn poll(&mut self) {
        self.poll_at(Instant::now());
    }

    fn poll_event(&mut self) -> Option<PeerEvent> {
        self.events.pop_front()
    }

    /// A client sends to the server whatever the target (the layer above relays); a server
    /// sends to the target's peers. One binary message per packet; the mode and channel do
    /// not change how it travels (WebSocket is reliable and ordered).
    fn put_packet(&mut self, data: &[u8]) -> Result<(), Error> {
        let max = self.max_packet_size();
        if data.len() > max {
            return Err(Error::PacketTooLarge {
                size: data.len(),
                max,
            });
        }
        match self.role {
            Role::Idle => Err(Error::NotConnected),
            Role::Client { .. } => {
                if self.status != ConnectionStatus::Connected {
                    return Err(Error::NotConnected);
                }
                self.send_to(SERVER_ID, data)
            }
            #[cfg(not(target_arch = "wasm32"))]
            Role::Server { .. } => match self.send.target {
                Target::Peer(id) => self.send_to(id, data),
                target => {
                    let mut first_error = None;
                    for (_, ws) in self.peers.iter_mut().filter(|(&id, _)| target.includes(id)) {
                        if let Err(e) = send_binary(ws, data) {
                            first_error.get_or_insert(e);
                        }
                    }
                    first_error.map_or(Ok(()), Err)
                }
            },
        }
    }

    fn get_packet(&mut self) -> Option<Packet> {
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
        if let Some(ws) = self.peers.get_mut(&id) {
            let _ = ws.close(1000, "");
            if force {
                self.peers.remove(&id);
                if matches!(self.role, Role::Client { .. }) {
                    self.clear();
                }
            }
        }
    }

    fn close(&mut self) {
        for ws in self.peers.values_mut() {
            let _ = ws.close(1000, "");
        }
        #[cfg(not(target_arch = "wasm32"))]
        if let Role::Server { pending, .. } = &mut self.role {
            for p in pending {
                let _ = p.ws.close(1000, "");
            }
        }
        if let Role::Client {
            handshake: Some(pending),
        } = &mut self.role
        {
            let _ = pending.0.close(1000, "");
        }
        self.clear();
    }

    fn is_server_relay_supported(&self) -> bool {
        true
    }

    fn max_packet_size(&self) -> usize {
        self.options.outbound_buffer_size.saturating_sub(PROTO_SIZE)
    }
}
