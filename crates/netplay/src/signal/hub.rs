//! The lobby server: connections, lobbies, ids, relaying, sealing, limits and timeouts.
//!
//! A deterministic state machine. It owns no socket, reads no clock (every call takes the
//! current `Instant`), starts no thread, and draws lobby names and peer ids from the [`Rng`] given to
//! [`Hub::new`]. A driver calls [`Hub::connect`], [`Hub::receive_text`],
//! [`Hub::receive_binary`] and [`Hub::disconnect`] as its transport reports events, calls
//! [`Hub::handle_timeout`] when [`Hub::poll_timeout`] is due, and after each call drains
//! [`Hub::poll_transmit`], writing every [`Transmit::Send`] as a text message and acting on every
//! [`Transmit::Close`] by closing the connection, then reporting it with [`Hub::disconnect`].
//!
//! # Connection life
//!
//! A connection is *waiting* until it joins a lobby, then a *member*, until the hub closes it
//! or the driver reports it gone. Once the hub has emitted [`Transmit::Close`] for a connection,
//! the connection is out of its lobby (the others are told as if it had disconnected), nothing
//! more is sent to it, and everything it sends is ignored; it still counts towards
//! [`HubConfig::max_peers`] until [`Hub::disconnect`]. Connection ids must not be reused before
//! that call; [`Hub::connect`] ignores an id it already knows.
//!
//! # Ids
//!
//! The creator of a lobby is its host and has id 1. Everyone else gets, when joining, an id
//! drawn uniformly from `2..=i32::MAX` that no other member of the lobby has (redrawn on a
//! collision). The reference server draws `abs(random int32)` at connection time, which can be 0
//! or 1 (ids with a fixed meaning in Godot) or 2^31 (not an `i32`), and does not check
//! collisions; here none of that can happen. Ids are unique per lobby, not across the hub.
//!
//! # Announcements
//!
//! When a peer joins, it is sent [`MessageType::Id`], then for each member already there (in
//! joining order, host first) that member is told PEER_CONNECT(newcomer) and the newcomer is told
//! PEER_CONNECT(member), then the newcomer is sent the JOIN reply with the lobby name. In a mesh
//! lobby everyone is announced to everyone. In a server/client lobby the host and each client are
//! always announced to each other, and clients to each other only when
//! [`HubConfig::announce_clients_to_each_other`] is set (the default, as the reference Node
//! server does; clear it for the reference GDScript server's behaviour). When a member other than
//! the host leaves, PEER_DISCONNECT goes to exactly the members it was announced to.
//!
//! # Relay
//!
//! OFFER, ANSWER and CANDIDATE are forwarded to the member whose id is the message's `id` (1 is
//! the host) with `id` replaced by the sender's; `data` is forwarded as the JSON literal it
//! arrived as. Any member may address any other member of its lobby, announced or not (as both
//! reference servers allow). An id that is not another member of the sender's lobby, the
//! sender's own id included, is [`Error::InvalidDestination`]. A relayed message is not
//! otherwise inspected: the SDP and candidate payloads are the peers' business.
//!
//! # Decisions where the reference servers are silent or disagree
//!
//! * The mode of a lobby (mesh or server/client) is set by the JOIN that creates it. A joiner's
//!   JOIN `id` is ignored and the ID message tells it the lobby's real mode, as the reference
//!   Node server does.
//! * Any JOIN from a member is [`Error::AlreadyInLobby`] (the reference only checks it when
//!   creating).
//! * OFFER, ANSWER, CANDIDATE or SEAL before joining is [`Error::NotInLobby`] with the
//!   reference Node server's text "Invalid message when not in a lobby". ID, PEER_CONNECT and
//!   PEER_DISCONNECT from a client are [`Error::InvalidCommand`] whether or not it joined.
//! * A client-given lobby name must be 1 to [`HubConfig::max_lobby_name_len`] characters of
//!   `[A-Za-z0-9_-]`, or [`Error::InvalidLobbyName`]; a valid name of no open lobby is
//!   [`Error::LobbyDoesNotExist`]. Clients cannot choose a new lobby's name: an empty name
//!   creates a lobby with a generated name of 16 characters of `[A-Za-z0-9]`.
//! * A second SEAL from the host of a sealed lobby is ignored (the close timer keeps running from
//!   the first).
//! * When the seal timeout runs out, every member, host included, is closed with 1000
//!   "Seal complete" and the lobby is gone at once: nobody is told "Room host has disconnected".
//! * A member leaving a sealed lobby still gives PEER_DISCONNECT, as in the reference Node server.
//! * The rate limit counts every text message a connection sends, before it is parsed.
//! * A text message longer than [`HubConfig::max_message_size`] is closed with 1009 "Message too
//!   big"; the WebSocket layer normally refuses it first with the same code.

use crate::time::{Duration, Instant};
use std::collections::{BTreeSet, HashMap, VecDeque};

use super::error::CloseReason;
use super::message::{message_with_literal, Frame, Message, MessageType};
use super::rate::RateLimiter;
use super::Error;
use crate::random::Rng;

/// Identifies one transport connection (one WebSocket), chosen by the driver.
pub type ConnId = u64;

/// Length of generated lobby names.
pub const GENERATED_NAME_LEN: usize = 16;

/// The characters of generated lobby names.
const NAME_ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Limits and behaviour of a [`Hub`]. The defaults are the reference server's values where it
/// has one.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Most connections at once, joined or not, including those closed but not yet reported
    /// gone. One more is closed with 4000 "Too many peers connected". Default 4096.
    pub max_peers: usize,
    /// Most lobbies open at once. Creating one more is closed with 4000 "Too many lobbies open,
    /// disconnecting". Default 1024.
    pub max_lobbies: usize,
    /// Most members of one lobby, host included; a join beyond is closed with 4000 "Lobby is
    /// full". `None` (the default, as the reference) leaves only `max_peers` as the bound. The
    /// creator of a lobby is always admitted, so `Some(0)` acts as `Some(1)`.
    pub max_lobby_members: Option<usize>,
    /// Time from connecting to joining a lobby; a connection still waiting then is closed with
    /// 4000 "Have not joined lobby yet". Default 1 s.
    pub join_timeout: Duration,
    /// Time from sealing a lobby until all its members are closed with 1000 "Seal complete".
    /// Default 10 s.
    pub seal_close_timeout: Duration,
    /// Longest lobby name a client may send in JOIN, in characters. Values below
    /// [`GENERATED_NAME_LEN`] are taken as that, so generated names can always be joined.
    /// Default 32.
    pub max_lobby_name_len: usize,
    /// Longest text message in bytes. The WebSocket layer should be given the same limit; the
    /// hub closes a longer message with 1009 "Message too big". Default 64 KiB, which holds any
    /// SDP a browser or Godot produces.
    pub max_message_size: usize,
    /// Sustained messages per second per connection; 0 means no limit. Default 100.
    pub max_messages_per_second: u32,
    /// Messages a connection may send at once before the rate applies (the bucket size).
    /// Default 500: enough for a newcomer answering 30 mesh peers with a dozen candidates each.
    /// Over the limit the connection is closed with 4000 "Too many messages".
    pub message_burst: u32,
    /// In server/client lobbies, whether clients are announced to each other (PEER_CONNECT and
    /// PEER_DISCONNECT) as well as to the host. Default `true`, the reference Node server's
    /// behaviour; `false` is the reference GDScript server's. Mesh lobbies announce everyone.
    pub announce_clients_to_each_other: bool,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            max_peers: 4096,
            max_lobbies: 1024,
            max_lobby_members: None,
            join_timeout: Duration::from_millis(1000),
            seal_close_timeout: Duration::from_secs(10),
            max_lobby_name_len: 32,
            max_message_size: 64 * 1024,
            max_messages_per_second: 100,
            message_burst: 500,
            announce_clients_to_each_other: true,
        }
    }
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Send `text` to `conn` as a WebSocket text message.
    Send {
        /// The connection.
        conn: ConnId,
        /// The JSON message.
        text: String,
    },
    /// Close `conn` with this code and reason, then report it with [`Hub::disconnect`].
    Close {
        /// The connection.
        conn: ConnId,
        /// The WebSocket close code: 4000, 1000 or 1009.
        code: u16,
        /// The close reason, for the client to show.
        reason: String,
    },
}

impl Transmit {
    /// The close of `conn` for `reason`, with its code and text.
    pub fn close(conn: ConnId, reason: CloseReason) -> Transmit {
        Transmit::Close {
            conn,
            code: reason.code(),
            reason: reason.reason().to_owned(),
        }
    }
}

/// Counters and gauges of a [`Hub`], for monitoring.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Connections the hub knows: waiting, members and closed ones not yet reported gone.
    pub connections: usize,
    /// Connections that have not joined a lobby.
    pub waiting: usize,
    /// Connections the hub closed that the driver has not reported gone yet.
    pub closing: usize,
    /// Open lobbies.
    pub lobbies: usize,
    /// Open lobbies that are sealed.
    pub sealed_lobbies: usize,
    /// Members of all open lobbies.
    pub members: usize,
    /// Connections accepted since the start (refused ones not counted).
    pub connections_accepted: u64,
    /// Lobbies created since the start.
    pub lobbies_created: u64,
    /// Successful JOINs since the start, creations included.
    pub joins: u64,
    /// Text messages received from open connections since the start.
    pub messages_received: u64,
    /// OFFER, ANSWER and CANDIDATE messages relayed since the start.
    pub messages_relayed: u64,
    /// Protocol errors since the start, for every error in [`Error::ALL`] order.
    pub errors: Vec<(Error, u64)>,
    /// Closes the hub asked for since the start, for every reason in [`CloseReason::all`] order.
    pub closes: Vec<(CloseReason, u64)>,
}

/// A snapshot of one lobby.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LobbyInfo {
    /// The lobby's name.
    pub name: String,
    /// Whether it is a mesh lobby.
    pub mesh: bool,
    /// Whether its host sealed it.
    pub sealed: bool,
    /// The host's connection.
    pub host: ConnId,
    /// The members and their ids in joining order; the host, with id 1, first.
    pub members: Vec<(ConnId, i32)>,
}

type LobbyKey = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Waiting,
    Member(LobbyKey),
    /// The hub emitted `Transmit::Close`; waiting for `disconnect`.
    Closed,
}

#[derive(Debug)]
struct Conn {
    phase: Phase,
    /// The id in its lobby, while a member.
    peer_id: i32,
    /// When the join timeout fires, while waiting (`None` if it never does).
    join_deadline: Option<Instant>,
    rate: RateLimiter,
}

#[derive(Debug)]
struct Lobby {
    name: String,
    mesh: bool,
    /// Whether every pair of members is announced, not only pairs with the host.
    announce_all: bool,
    host: ConnId,
    /// Members in joining order, the host first.
    members: Vec<(ConnId, i32)>,
    ids: HashMap<i32, ConnId>,
    sealed: bool,
    seal_deadline: Option<Instant>,
}

impl Lobby {
    fn announced(&self, a: ConnId, b: ConnId) -> bool {
        self.announce_all || a == self.host || b == self.host
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Join(ConnId),
    Seal(LobbyKey),
}

/// The signaling server core. See the module documentation.
#[derive(Debug)]
pub struct Hub {
    config: HubConfig,
    rng: Rng,
    conns: HashMap<ConnId, Conn>,
    lobbies: HashMap<LobbyKey, Lobby>,
    names: HashMap<String, LobbyKey>,
    next_lobby: LobbyKey,
    timers: BTreeSet<(Instant, Timer)>,
    out: VecDeque<Transmit>,
    counters: Counters,
}

#[derive(Debug, Default)]
struct Counters {
    connections_accepted: u64,
    lobbies_created: u64,
    joins: u64,
    messages_received: u64,
    messages_relayed: u64,
    errors: [u64; Error::ALL.len()],
    closes: [u64; CloseReason::COUNT],
}

impl Hub {
    /// A hub with no connections, drawing lobby names and peer ids from `rng`. A server passes
    /// [`Rng::os()`], since lobby names are what keeps strangers out; tests pass
    /// [`Rng::seeded`] to get the same names every run.
    pub fn new(config: HubConfig, rng: Rng) -> Hub {
        Hub {
            config,
            rng,
            conns: HashMap::new(),
            lobbies: HashMap::new(),
            names: HashMap::new(),
            next_lobby: 0,
            timers: BTreeSet::new(),
            out: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// A transport connection opened. Over [`HubConfig::max_peers`]: an immediate
    /// [`Transmit::Close`], and the hub forgets the connection. An id already known is ignored.
    pub fn connect(&mut self, conn: ConnId, now: Instant) {
        if self.conns.contains_key(&conn) {
            return;
        }
        if self.conns.len() >= self.config.max_peers {
            let error = Error::TooManyPeers;
            self.counters.errors[error as usize] += 1;
            self.emit_close(conn, CloseReason::Error(error));
            return;
        }
        let join_deadline = now.checked_add(self.config.join_timeout);
        if let Some(deadline) = join_deadline {
            self.timers.insert((deadline, Timer::Join(conn)));
        }
        let rate = RateLimiter::new(
            self.config.max_messages_per_second,
            self.config.message_burst,
            now,
        );
        self.conns.insert(
            conn,
            Conn {
                phase: Phase::Waiting,
                peer_id: 0,
                join_deadline,
                rate,
            },
        );
        self.counters.connections_accepted += 1;
    }

    /// A text message arrived on `conn`. Ignored for unknown or closed connections.
    pub fn receive_text(&mut self, conn: ConnId, text: &str, now: Instant) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.phase == Phase::Closed {
            return;
        }
        self.counters.messages_received += 1;
        let result = if !c.rate.allow(now) {
            Err(Error::TooManyMessages)
        } else if text.len() > self.config.max_message_size {
            Err(Error::MessageTooBig)
        } else {
            Frame::parse(text).and_then(|frame| self.dispatch(conn, frame, now))
        };
        if let Err(error) = result {
            self.fail(conn, error);
        }
    }

    /// A binary message arrived on `conn`: closed with 4000 "Invalid transfer mode, must be
    /// text". Ignored for unknown or closed connections.
    pub fn receive_binary(&mut self, conn: ConnId, _now: Instant) {
        self.fail(conn, Error::InvalidTransferMode);
    }

    /// The transport connection is gone (after a Close output or on its own). Idempotent.
    pub fn disconnect(&mut self, conn: ConnId, _now: Instant) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        match c.phase {
            Phase::Waiting => self.cancel_join_timer(conn, c.join_deadline),
            Phase::Member(key) => self.leave(conn, key),
            Phase::Closed => {}
        }
    }

    /// The earliest instant at which [`Hub::handle_timeout`] has work: a join timeout or the
    /// end of a sealed lobby. The rate limit needs no timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, timer)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            match timer {
                Timer::Join(conn) => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        if c.phase == Phase::Waiting && c.join_deadline == Some(at) {
                            c.join_deadline = None;
                            self.fail(conn, Error::JoinTimeout);
                        }
                    }
                }
                Timer::Seal(key) => self.seal_complete(key),
            }
        }
    }

    /// The next thing for the driver to do, in order.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// Counters and gauges.
    pub fn stats(&self) -> HubStats {
        let c = &self.counters;
        HubStats {
            connections: self.conns.len(),
            waiting: self
                .conns
                .values()
                .filter(|c| c.phase == Phase::Waiting)
                .count(),
            closing: self
                .conns
                .values()
                .filter(|c| c.phase == Phase::Closed)
                .count(),
            lobbies: self.lobbies.len(),
            sealed_lobbies: self.lobbies.values().filter(|l| l.sealed).count(),
            members: self.lobbies.values().map(|l| l.members.len()).sum(),
            connections_accepted: c.connections_accepted,
            lobbies_created: c.lobbies_created,
            joins: c.joins,
            messages_received: c.messages_received,
            messages_relayed: c.messages_relayed,
            errors: Error::ALL
                .into_iter()
                .map(|e| (e, c.errors[e as usize]))
                .collect(),
            closes: CloseReason::all()
                .map(|r| (r, c.closes[r.index()]))
                .collect(),
        }
    }

    /// Whether `conn` is known and not closed by the hub.
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| c.phase != Phase::Closed)
    }

    /// The name of the lobby `conn` is a member of.
    pub fn lobby_of(&self, conn: ConnId) -> Option<&str> {
        match self.conns.get(&conn)?.phase {
            Phase::Member(key) => self.lobbies.get(&key).map(|l| l.name.as_str()),
            _ => None,
        }
    }

    /// The id of `conn` in its lobby (1 for the host).
    pub fn peer_id_of(&self, conn: ConnId) -> Option<i32> {
        let c = self.conns.get(&conn)?;
        matches!(c.phase, Phase::Member(_)).then_some(c.peer_id)
    }

    /// How many connections the hub knows (see [`HubStats::connections`]).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// How many lobbies are open.
    pub fn lobby_count(&self) -> usize {
        self.lobbies.len()
    }

    /// The names of the open lobbies, in no particular order.
    pub fn lobby_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.names.keys().map(String::as_str)
    }

    /// A snapshot of the lobby called `name`.
    pub fn lobby(&self, name: &str) -> Option<LobbyInfo> {
        let l = self.lobbies.get(self.names.get(name)?)?;
        Some(LobbyInfo {
            name: l.name.clone(),
            mesh: l.mesh,
            sealed: l.sealed,
            host: l.host,
            members: l.members.clone(),
        })
    }

    fn dispatch(&mut self, conn: ConnId, frame: Frame<'_>, now: Instant) -> Result<(), Error> {
        let phase = self.conns.get(&conn).map(|c| c.phase);
        match (frame.kind, phase) {
            (MessageType::Id | MessageType::PeerConnect | MessageType::PeerDisconnect, _) => {
                Err(Error::InvalidCommand)
            }
            (MessageType::Join, Some(Phase::Waiting)) => self.join(conn, &frame),
            (MessageType::Join, _) => Err(Error::AlreadyInLobby),
            (MessageType::Seal, Some(Phase::Member(key))) => self.seal(conn, key, now),
            (kind, Some(Phase::Member(key))) => self.relay(conn, key, kind, &frame),
            (_, _) => Err(Error::NotInLobby),
        }
    }

    fn join(&mut self, conn: ConnId, frame: &Frame<'_>) -> Result<(), Error> {
        if frame.data_is_empty() {
            return self.create(conn, frame.id == 0);
        }
        let name = frame.data_string()?;
        let max_len = self.config.max_lobby_name_len.max(GENERATED_NAME_LEN);
        if !is_valid_name(&name, max_len) {
            return Err(Error::InvalidLobbyName);
        }
        let key = *self.names.get(&name).ok_or(Error::LobbyDoesNotExist)?;
        let Some(lobby) = self.lobbies.get_mut(&key) else {
            return Err(Error::LobbyDoesNotExist);
        };
        if lobby.sealed {
            return Err(Error::LobbyIsSealed);
        }
        if self
            .config
            .max_lobby_members
            .is_some_and(|max| lobby.members.len() >= max)
        {
            return Err(Error::LobbyFull);
        }
        let id = loop {
            let id = 2 + self.rng.below(i32::MAX as u64 - 1) as i32;
            if !lobby.ids.contains_key(&id) {
                break id;
            }
        };
        send(
            &mut self.out,
            conn,
            Message::assigned_id(id, lobby.mesh).to_json(),
        );
        for &(member, member_id) in &lobby.members {
            if lobby.announced(member, conn) {
                send(&mut self.out, member, Message::peer_connect(id).to_json());
                send(
                    &mut self.out,
                    conn,
                    Message::peer_connect(member_id).to_json(),
                );
            }
        }
        send(
            &mut self.out,
            conn,
            Message::join_reply(&*lobby.name).to_json(),
        );
        lobby.members.push((conn, id));
        lobby.ids.insert(id, conn);
        tracing::debug!(conn, lobby = %lobby.name, id, members = lobby.members.len(), "joined");
        self.enter(conn, key, id);
        Ok(())
    }

    fn create(&mut self, conn: ConnId, mesh: bool) -> Result<(), Error> {
        if self.lobbies.len() >= self.config.max_lobbies {
            return Err(Error::TooManyLobbies);
        }
        let name = loop {
            let name: String = (0..GENERATED_NAME_LEN)
                .map(|_| NAME_ALPHABET[self.rng.below(NAME_ALPHABET.len() as u64) as usize] as char)
                .collect();
            if !self.names.contains_key(&name) {
                break name;
            }
        };
        let key = self.next_lobby;
        self.next_lobby += 1;
        send(&mut self.out, conn, Message::assigned_id(1, mesh).to_json());
        send(&mut self.out, conn, Message::join_reply(&*name).to_json());
        self.names.insert(name.clone(), key);
        self.lobbies.insert(
            key,
            Lobby {
                name,
                mesh,
                announce_all: mesh || self.config.announce_clients_to_each_other,
                host: conn,
                members: vec![(conn, 1)],
                ids: HashMap::from([(1, conn)]),
                sealed: false,
                seal_deadline: None,
            },
        );
        self.counters.lobbies_created += 1;
        tracing::info!(conn, lobby = %self.lobbies[&key].name, mesh, "lobby created");
        self.enter(conn, key, 1);
        Ok(())
    }

    /// Makes waiting `conn` a member of lobby `key` with `id` (the lobby already lists it).
    fn enter(&mut self, conn: ConnId, key: LobbyKey, id: i32) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.phase = Phase::Member(key);
            c.peer_id = id;
            let deadline = c.join_deadline.take();
            self.cancel_join_timer(conn, deadline);
        }
        self.counters.joins += 1;
    }

    fn seal(&mut self, conn: ConnId, key: LobbyKey, now: Instant) -> Result<(), Error> {
        let Some(lobby) = self.lobbies.get_mut(&key) else {
            return Err(Error::NotInLobby);
        };
        if lobby.host != conn {
            return Err(Error::OnlyHostCanSeal);
        }
        if lobby.sealed {
            return Ok(());
        }
        lobby.sealed = true;
        tracing::info!(lobby = %lobby.name, members = lobby.members.len(), "lobby sealed");
        lobby.seal_deadline = now.checked_add(self.config.seal_close_timeout);
        if let Some(deadline) = lobby.seal_deadline {
            self.timers.insert((deadline, Timer::Seal(key)));
        }
        let text = Message::seal().to_json();
        for &(member, _) in &lobby.members {
            send(&mut self.out, member, text.clone());
        }
        Ok(())
    }

    fn relay(
        &mut self,
        conn: ConnId,
        key: LobbyKey,
        kind: MessageType,
        frame: &Frame<'_>,
    ) -> Result<(), Error> {
        let lobby = self.lobbies.get(&key).ok_or(Error::NotInLobby)?;
        let dest = *lobby
            .ids
            .get(&frame.id)
            .filter(|dest| **dest != conn)
            .ok_or(Error::InvalidDestination)?;
        let from = self.conns.get(&conn).map_or(0, |c| c.peer_id);
        send(
            &mut self.out,
            dest,
            message_with_literal(kind, from, frame.data),
        );
        self.counters.messages_relayed += 1;
        Ok(())
    }

    /// Closes `conn` for a protocol error.
    fn fail(&mut self, conn: ConnId, error: Error) {
        if self.is_open(conn) {
            tracing::debug!(conn, reason = error.reason(), "protocol error, closing");
            self.counters.errors[error as usize] += 1;
            self.close(conn, CloseReason::Error(error));
        }
    }

    /// Closes open `conn` and takes it out of its lobby.
    fn close(&mut self, conn: ConnId, reason: CloseReason) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let phase = std::mem::replace(&mut c.phase, Phase::Closed);
        let deadline = c.join_deadline.take();
        match phase {
            Phase::Closed => return,
            Phase::Waiting => self.cancel_join_timer(conn, deadline),
            Phase::Member(_) => {}
        }
        self.emit_close(conn, reason);
        if let Phase::Member(key) = phase {
            self.leave(conn, key);
        }
    }

    /// Takes `conn` out of lobby `key` and tells the others; the host leaving ends the lobby.
    fn leave(&mut self, conn: ConnId, key: LobbyKey) {
        let Some(lobby) = self.lobbies.get_mut(&key) else {
            return;
        };
        let Some(pos) = lobby.members.iter().position(|(m, _)| *m == conn) else {
            return;
        };
        let (_, id) = lobby.members.remove(pos);
        lobby.ids.remove(&id);
        if conn == lobby.host {
            tracing::info!(lobby = %lobby.name, members = lobby.members.len(), "host left, lobby closed");
            let others = self.remove_lobby(key);
            for member in others {
                self.close_member(member, CloseReason::HostDisconnected);
            }
        } else {
            let text = Message::peer_disconnect(id).to_json();
            for &(member, _) in &lobby.members {
                if lobby.announced(conn, member) {
                    send(&mut self.out, member, text.clone());
                }
            }
        }
    }

    /// The seal timeout of lobby `key` ran out: close everyone, remove the lobby.
    fn seal_complete(&mut self, key: LobbyKey) {
        if let Some(lobby) = self.lobbies.get(&key) {
            tracing::info!(lobby = %lobby.name, members = lobby.members.len(), "seal complete, lobby closed");
        }
        for member in self.remove_lobby(key) {
            self.close_member(member, CloseReason::SealComplete);
        }
    }

    /// Removes lobby `key` with its name and timer; returns its members.
    fn remove_lobby(&mut self, key: LobbyKey) -> Vec<ConnId> {
        let Some(lobby) = self.lobbies.remove(&key) else {
            return Vec::new();
        };
        self.names.remove(&lobby.name);
        if let Some(deadline) = lobby.seal_deadline {
            self.timers.remove(&(deadline, Timer::Seal(key)));
        }
        lobby.members.into_iter().map(|(m, _)| m).collect()
    }

    /// Closes a member of a lobby that is already removed.
    fn close_member(&mut self, conn: ConnId, reason: CloseReason) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if c.phase != Phase::Closed {
                c.phase = Phase::Closed;
                self.emit_close(conn, reason);
            }
        }
    }

    fn cancel_join_timer(&mut self, conn: ConnId, deadline: Option<Instant>) {
        if let Some(deadline) = deadline {
            self.timers.remove(&(deadline, Timer::Join(conn)));
        }
    }

    fn emit_close(&mut self, conn: ConnId, reason: CloseReason) {
        self.counters.closes[reason.index()] += 1;
        self.out.push_back(Transmit::close(conn, reason));
    }
}

fn send(out: &mut VecDeque<Transmit>, conn: ConnId, text: String) {
    out.push_back(Transmit::Send { conn, text });
}

/// 1 to `max_len` characters of `[A-Za-z0-9_-]`.
fn is_valid_name(name: &str, max_len: usize) -> bool {
    !name.is_empty()
        && name.len() <= max_len
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests;
