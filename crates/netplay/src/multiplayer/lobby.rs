//! The lobby mesh: a signaling lobby turned into a [`MultiplayerPeer`], the glue Godot's
//! `webrtc_signaling` demo writes by hand.
//!
//! Owns the loop between a signaling client (`signal::Client` over a WebSocket, or a
//! [`LocalClient`](crate::signal::LocalClient)) and a [`WebRtcMultiplayerPeer`]: the lobby's
//! id message picks the topology (a mesh lobby makes a mesh; otherwise the host, id 1, is the
//! server and the others are clients), every peer announced in the lobby gets a
//! [`PeerConnection`] with Godot's channels, descriptions and candidates go through the
//! signaling server, and a peer that leaves the lobby is removed. The rule for who offers is
//! the demo's (`multiplayer_client.gd`, `_create_peer`): the peer with the larger id offers,
//! so the lobby's host never does.
//!
//! What it does not own: the signaling protocol ([`signal`](crate::signal)) and the data
//! channels ([`WebRtcMultiplayerPeer`]).

use std::collections::VecDeque;

use super::{
    ConnectionStatus, Error, MultiplayerPeer, Packet, PeerEvent, SendOptions, TransferMode,
    WebRtcMultiplayerPeer, SERVER_ID,
};
use crate::rtc::{Event, PeerConfig, PeerConnection, SdpKind};
use crate::signal::{ClientEvent, LocalSignaling, Signaling};

/// Godot's default `unreliable_lifetime` for `add_peer`, in milliseconds.
const UNRELIABLE_LIFETIME_MS: u16 = 1;

/// What kind of lobby to create (joining takes the lobby's own kind).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LobbyMode {
    /// Every peer connects to every other (Godot's `create_mesh`).
    #[default]
    Mesh,
    /// The host is the server (id 1), the others its clients (`create_server`,
    /// `create_client`); clients reach each other through the server's relay.
    ServerClient,
}

/// What happens in the lobby beyond peers connecting and leaving.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LobbyEvent {
    /// The server gave this peer its id (the host's is 1), in a mesh lobby or not.
    Id {
        /// The id, which is also this peer's multiplayer id.
        id: i32,
        /// A mesh lobby.
        mesh: bool,
    },
    /// In the lobby `lobby` (its name is the invitation).
    Joined {
        /// The name.
        lobby: String,
    },
    /// The host sealed the lobby: nobody else can join; the server closes the signaling
    /// connection soon, and the connections made stay.
    Sealed,
    /// The signaling connection ended (for example 4000 "Room host has disconnected", or
    /// "Invalid lobby" for an unknown name); the connections made stay.
    SignalingClosed {
        /// The close code (-1: not clean).
        code: i32,
        /// The reason the server gave.
        reason: String,
    },
    /// Something the lobby could not do (a description that did not apply, a peer the
    /// topology does not take); the rest goes on.
    Error(String),
}

/// A signaling lobby as a [`MultiplayerPeer`]: peers appear and leave as the lobby changes.
///
/// ```no_run
/// use netplay::multiplayer::{Lobby, LobbyEvent, LobbyMode, MultiplayerPeer, PeerEvent};
/// use netplay::rtc::PeerConfig;
/// let mut lobby = Lobby::connect("ws://127.0.0.1:9080", "", LobbyMode::Mesh, PeerConfig::default())?;
/// loop {
///     lobby.poll();
///     while let Some(e) = lobby.poll_lobby_event() {
///         if let LobbyEvent::Joined { lobby } = e { println!("invite: {lobby}"); }
///     }
///     while let Some(PeerEvent::PeerConnected(id)) = lobby.poll_event() { println!("+ {id}"); }
///     while let Some(p) = lobby.get_packet() { println!("{}: {:?}", p.from, p.data); }
///     std::thread::sleep(std::time::Duration::from_millis(5));
/// }
/// # Ok::<(), netplay::multiplayer::Error>(())
/// ```
pub struct Lobby {
    signal: Box<dyn Signaling>,
    rtc: WebRtcMultiplayerPeer,
    config: PeerConfig,
    channels: Vec<TransferMode>,
    lobby_name: Option<String>,
    events: VecDeque<LobbyEvent>,
    signaling_open: bool,
}

impl std::fmt::Debug for Lobby {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lobby")
            .field("lobby", &self.lobby_name)
            .field("rtc", &self.rtc)
            .finish()
    }
}

impl Lobby {
    /// Joins `lobby` ("" creates one, of kind `mode`) on the signaling server at `url`; every
    /// connection is made with `config` (its ICE servers, its limits).
    pub fn connect(
        url: &str,
        lobby: &str,
        mode: LobbyMode,
        config: PeerConfig,
    ) -> Result<Lobby, Error> {
        let client = crate::signal::Client::connect(url, lobby, mode == LobbyMode::Mesh)
            .map_err(|e| Error::Transport(e.to_string()))?;
        Ok(Lobby::with_signaling(Box::new(client), config))
    }

    /// Joins `lobby` on an in-process signaling.
    pub fn local(
        signaling: &LocalSignaling,
        lobby: &str,
        mode: LobbyMode,
        config: PeerConfig,
    ) -> Lobby {
        let client = signaling.join(lobby, mode == LobbyMode::Mesh);
        Lobby::with_signaling(Box::new(client), config)
    }

    /// A lobby over any signaling client that has sent (or will send) its JOIN.
    pub fn with_signaling(signal: Box<dyn Signaling>, config: PeerConfig) -> Lobby {
        Lobby {
            signal,
            rtc: WebRtcMultiplayerPeer::new(),
            config,
            channels: Vec::new(),
            lobby_name: None,
            events: VecDeque::new(),
            signaling_open: true,
        }
    }

    /// Extra channels for every connection (Godot's `channels_config`); before the lobby's
    /// id arrives.
    pub fn set_channels(&mut self, channels: &[TransferMode]) {
        self.channels = channels.to_vec();
    }

    /// The lobby's name, once joined.
    pub fn lobby_name(&self) -> Option<&str> {
        self.lobby_name.as_deref()
    }

    /// The multiplayer peer underneath.
    pub fn rtc(&self) -> &WebRtcMultiplayerPeer {
        &self.rtc
    }

    /// The multiplayer peer underneath, for its connections.
    pub fn rtc_mut(&mut self) -> &mut WebRtcMultiplayerPeer {
        &mut self.rtc
    }

    /// Seals the lobby (host only): nobody else joins.
    pub fn seal(&mut self) -> Result<(), Error> {
        self.signal
            .seal()
            .map_err(|e| Error::Transport(e.to_string()))
    }

    /// The next lobby event.
    pub fn poll_lobby_event(&mut self) -> Option<LobbyEvent> {
        self.events.pop_front()
    }

    fn fail(&mut self, what: impl Into<String>) {
        self.events.push_back(LobbyEvent::Error(what.into()));
    }

    fn on_signal(&mut self, event: ClientEvent) {
        match event {
            ClientEvent::Id { id, mesh } => {
                let result = if mesh {
                    self.rtc.create_mesh(id, &self.channels)
                } else if id == SERVER_ID {
                    self.rtc.create_server(&self.channels)
                } else {
                    self.rtc.create_client(id, &self.channels)
                };
                match result {
                    Ok(()) => self.events.push_back(LobbyEvent::Id { id, mesh }),
                    Err(e) => self.fail(format!("lobby id {id}: {e}")),
                }
            }
            ClientEvent::Joined { lobby } => {
                self.lobby_name = Some(lobby.clone());
                self.events.push_back(LobbyEvent::Joined { lobby });
            }
            ClientEvent::PeerConnected(id) => self.add(id),
            ClientEvent::PeerDisconnected(id) => self.rtc.remove_peer(id),
            ClientEvent::Offer { from, sdp } => self.describe(from, SdpKind::Offer, &sdp),
            ClientEvent::Answer { from, sdp } => self.describe(from, SdpKind::Answer, &sdp),
            ClientEvent::Candidate { from, candidate } => {
                let result = match self.rtc.get_peer_mut(from) {
                    Some(pc) => pc
                        .add_ice_candidate(&candidate.mid, candidate.index, &candidate.candidate)
                        .map_err(|e| e.to_string()),
                    None => Err("no connection".into()),
                };
                if let Err(e) = result {
                    self.fail(format!("candidate from {from}: {e}"));
                }
            }
            ClientEvent::Sealed => self.events.push_back(LobbyEvent::Sealed),
            ClientEvent::Closed { code, reason } => {
                self.signaling_open = false;
                self.events
                    .push_back(LobbyEvent::SignalingClosed { code, reason });
            }
        }
    }

    /// A peer in the lobby: a connection with Godot's channels; the larger id offers.
    fn add(&mut self, id: i32) {
        let pc = match PeerConnection::new(self.config.clone()) {
            Ok(pc) => pc,
            Err(e) => return self.fail(format!("connection to {id}: {e}")),
        };
        if let Err(e) = self.rtc.add_peer(pc, id, UNRELIABLE_LIFETIME_MS) {
            return self.fail(format!("peer {id}: {e}"));
        }
        if id < self.rtc.unique_id() {
            if let Some(Err(e)) = self.rtc.get_peer_mut(id).map(|pc| pc.create_offer()) {
                self.fail(format!("offer to {id}: {e}"));
            }
        }
    }

    fn describe(&mut self, from: i32, kind: SdpKind, sdp: &str) {
        let result = match self.rtc.get_peer_mut(from) {
            Some(pc) => pc
                .set_remote_description(kind, sdp)
                .map_err(|e| e.to_string()),
            None => Err("no connection".into()),
        };
        if let Err(e) = result {
            self.fail(format!("{kind} from {from}: {e}"));
        }
    }

    /// Sends what the connections created (descriptions, candidates) through the lobby.
    fn relay_signaling(&mut self) {
        let ids: Vec<i32> = self.rtc.peer_ids().collect();
        for id in ids {
            let Some(pc) = self.rtc.get_peer_mut(id) else {
                continue;
            };
            let mut out = Vec::new();
            while let Some(event) = pc.poll_event() {
                match event {
                    Event::SessionDescriptionCreated { kind, sdp }
                        if pc.set_local_description(kind, &sdp).is_ok() =>
                    {
                        out.push(Event::SessionDescriptionCreated { kind, sdp });
                    }
                    e @ Event::IceCandidateCreated { .. } => out.push(e),
                    _ => {}
                }
            }
            for event in out {
                let sent = match event {
                    Event::SessionDescriptionCreated {
                        kind: SdpKind::Offer,
                        sdp,
                    } => self.signal.send_offer(id, &sdp),
                    Event::SessionDescriptionCreated { sdp, .. } => {
                        self.signal.send_answer(id, &sdp)
                    }
                    Event::IceCandidateCreated {
                        mid,
                        index,
                        candidate,
                    } => self.signal.send_candidate(id, &mid, index, &candidate),
                    _ => Ok(()),
                };
                // After the lobby closed, what is left to say cannot be said; the
                // connections made keep going.
                if let Err(e) = sent {
                    if self.signaling_open {
                        self.fail(format!("signaling to {id}: {e}"));
                    }
                }
            }
        }
    }
}

impl MultiplayerPeer for Lobby {
    fn poll(&mut self) {
        self.signal.poll();
        while let Some(event) = self.signal.poll_event() {
            self.on_signal(event);
        }
        self.rtc.poll();
        self.relay_signaling();
    }

    fn poll_event(&mut self) -> Option<PeerEvent> {
        self.rtc.poll_event()
    }

    fn put_packet(&mut self, data: &[u8]) -> Result<(), Error> {
        self.rtc.put_packet(data)
    }

    fn get_packet(&mut self) -> Option<Packet> {
        self.rtc.get_packet()
    }

    fn available_packet_count(&self) -> usize {
        self.rtc.available_packet_count()
    }

    fn send_options(&self) -> SendOptions {
        self.rtc.send_options()
    }

    fn set_send_options(&mut self, options: SendOptions) {
        self.rtc.set_send_options(options);
    }

    fn unique_id(&self) -> i32 {
        self.rtc.unique_id()
    }

    /// Connecting until the lobby gave this peer its id (and, for a client, until the
    /// server's channels are open).
    fn connection_status(&self) -> ConnectionStatus {
        match self.rtc.connection_status() {
            ConnectionStatus::Disconnected if self.signaling_open && self.rtc.unique_id() == 0 => {
                ConnectionStatus::Connecting
            }
            status => status,
        }
    }

    fn set_refuse_new_connections(&mut self, refuse: bool) {
        self.rtc.set_refuse_new_connections(refuse);
    }

    fn is_refusing_new_connections(&self) -> bool {
        self.rtc.is_refusing_new_connections()
    }

    fn disconnect_peer(&mut self, id: i32, force: bool) {
        self.rtc.disconnect_peer(id, force);
    }

    fn close(&mut self) {
        self.rtc.close();
    }

    fn is_server_relay_supported(&self) -> bool {
        self.rtc.is_server_relay_supported()
    }

    fn max_packet_size(&self) -> usize {
        self.rtc.max_packet_size()
    }
}
