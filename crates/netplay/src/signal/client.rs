//! The client side of the signaling protocol: the sans-IO [`Session`] and an in-process "local
//! signaling" over a [`Hub`]; the polled client over a WebSocket (`Client`) gives the same
//! [`ClientEvent`]s.
//!
//! Owns turning server messages into events and requests into messages ([`Session`], sans-IO),
//! and the in-process transport. What to do with offers and candidates (a WebRTC peer connection) is
//! the caller's.

use crate::time::Instant;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use super::hub::{ConnId, Hub, HubConfig, Transmit};
use super::message::{CandidatePayload, Message, MessageType};
use crate::random::Rng;
use crate::ws::Error;

/// What the signaling server told this client.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// Our id in the lobby (the host's is 1) and whether the lobby is a mesh.
    Id {
        /// The id.
        id: i32,
        /// Mesh lobby (every peer connects to every other).
        mesh: bool,
    },
    /// We are in the lobby `lobby` (comes after `Id` and the first `PeerConnected`s).
    Joined {
        /// The lobby's name (generated when we created it).
        lobby: String,
    },
    /// A peer is in the lobby: open a WebRTC connection to it (the larger id offers).
    PeerConnected(i32),
    /// A peer left.
    PeerDisconnected(i32),
    /// A session offer from peer `from`.
    Offer {
        /// The sender.
        from: i32,
        /// The SDP.
        sdp: String,
    },
    /// A session answer from peer `from`.
    Answer {
        /// The sender.
        from: i32,
        /// The SDP.
        sdp: String,
    },
    /// An ICE candidate from peer `from`.
    Candidate {
        /// The sender.
        from: i32,
        /// The candidate (media id, m-line index, candidate line).
        candidate: CandidatePayload,
    },
    /// The host sealed the lobby: no one else can join; the server will close us soon.
    Sealed,
    /// The signaling connection ended (code -1: not cleanly).
    Closed {
        /// The close code.
        code: i32,
        /// The reason the server gave.
        reason: String,
    },
}

/// The protocol state of one client, without I/O: parses what the server sends and formats
/// what the client asks.
#[derive(Clone, Debug, Default)]
pub struct Session {
    id: Option<i32>,
    mesh: bool,
    lobby: Option<String>,
    sealed: bool,
}

impl Session {
    /// The JOIN to send first: `lobby` "" creates a lobby; `mesh` picks the lobby kind.
    pub fn join(lobby: &str, mesh: bool) -> String {
        Message::join(lobby, mesh).to_json()
    }

    /// Turns a text message from the server into an event. A message that breaks the protocol
    /// is an error (the caller should close the connection).
    pub fn on_text(&mut self, text: &str) -> Result<ClientEvent, super::Error> {
        let m = Message::parse(text)?;
        Ok(match m.kind {
            MessageType::Id => {
                self.id = Some(m.id);
                self.mesh = m.data == "true";
                ClientEvent::Id {
                    id: m.id,
                    mesh: self.mesh,
                }
            }
            MessageType::Join => {
                self.lobby = Some(m.data.clone());
                ClientEvent::Joined { lobby: m.data }
            }
            MessageType::PeerConnect => ClientEvent::PeerConnected(m.id),
            MessageType::PeerDisconnect => ClientEvent::PeerDisconnected(m.id),
            MessageType::Offer => ClientEvent::Offer {
                from: m.id,
                sdp: m.data,
            },
            MessageType::Answer => ClientEvent::Answer {
                from: m.id,
                sdp: m.data,
            },
            MessageType::Candidate => ClientEvent::Candidate {
                from: m.id,
                candidate: CandidatePayload::decode(&m.data)?,
            },
            MessageType::Seal => {
                self.sealed = true;
                ClientEvent::Sealed
            }
        })
    }

    /// Our id, once assigned.
    pub fn id(&self) -> Option<i32> {
        self.id
    }

    /// Whether the lobby is a mesh.
    pub fn is_mesh(&self) -> bool {
        self.mesh
    }

    /// The lobby's name, once joined.
    pub fn lobby(&self) -> Option<&str> {
        self.lobby.as_deref()
    }

    /// Whether the host sealed the lobby.
    pub fn is_sealed(&self) -> bool {
        self.sealed
    }
}

/// A signaling client, polled: `Client` (over a WebSocket, native) and [`LocalClient`] (in
/// process). Code written against it (the multiplayer lobby) takes either.
pub trait Signaling {
    /// Sends one protocol message.
    fn send_message(&mut self, message: &Message) -> Result<(), Error>;

    /// Drives the connection; events are ready after it.
    fn poll(&mut self);

    /// The next event, if any.
    fn poll_event(&mut self) -> Option<ClientEvent>;

    /// Sends a session offer to peer `to`.
    fn send_offer(&mut self, to: i32, sdp: &str) -> Result<(), Error> {
        self.send_message(&Message::offer(to, sdp))
    }

    /// Sends a session answer to peer `to`.
    fn send_answer(&mut self, to: i32, sdp: &str) -> Result<(), Error> {
        self.send_message(&Message::answer(to, sdp))
    }

    /// Sends an ICE candidate to peer `to`.
    fn send_candidate(
        &mut self,
        to: i32,
        mid: &str,
        index: u32,
        candidate: &str,
    ) -> Result<(), Error> {
        self.send_message(&Message::candidate(
            to,
            &CandidatePayload {
                mid: mid.to_string(),
                index,
                candidate: candidate.to_string(),
            },
        ))
    }

    /// Seals the lobby (host only).
    fn seal(&mut self) -> Result<(), Error> {
        self.send_message(&Message::seal())
    }
}

struct LocalInner {
    hub: Hub,
    queues: HashMap<ConnId, VecDeque<ClientEvent>>,
    sessions: HashMap<ConnId, Session>,
    next: ConnId,
}

impl LocalInner {
    fn pump(&mut self, now: Instant) {
        if self.hub.poll_timeout().is_some_and(|t| t <= now) {
            self.hub.handle_timeout(now);
        }
        while let Some(out) = self.hub.poll_transmit() {
            match out {
                Transmit::Send { conn, text } => {
                    let Some(session) = self.sessions.get_mut(&conn) else {
                        continue;
                    };
                    if let Ok(ev) = session.on_text(&text) {
                        self.queues.entry(conn).or_default().push_back(ev);
                    }
                }
                Transmit::Close { conn, code, reason } => {
                    self.queues
                        .entry(conn)
                        .or_default()
                        .push_back(ClientEvent::Closed {
                            code: code as i32,
                            reason,
                        });
                    self.hub.disconnect(conn, now);
                }
            }
        }
    }
}

/// In-process signaling: the server's lobby logic with no network, for tests and
/// single-process demos (Godot's "local signaling server" singleton, generalized to lobbies).
///
/// ```
/// use netplay::signal::{ClientEvent, LocalSignaling};
/// let local = LocalSignaling::new();
/// let mut host = local.join("", true);
/// host.poll();
/// assert_eq!(host.poll_event(), Some(ClientEvent::Id { id: 1, mesh: true }));
/// ```
#[derive(Clone)]
pub struct LocalSignaling {
    inner: Rc<RefCell<LocalInner>>,
}

impl Default for LocalSignaling {
    fn default() -> Self {
        LocalSignaling::new()
    }
}

impl LocalSignaling {
    /// A new local signaling with the server's default limits (join timeout, seal timeout...)
    /// and ids and lobby names from the operating system's random source.
    pub fn new() -> LocalSignaling {
        LocalSignaling::with_config(HubConfig::default(), Rng::os())
    }

    /// A local signaling with `config`, drawing ids and names from `rng` ([`Rng::seeded`] in
    /// tests that want the same ones every run).
    pub fn with_config(config: HubConfig, rng: Rng) -> LocalSignaling {
        LocalSignaling {
            inner: Rc::new(RefCell::new(LocalInner {
                hub: Hub::new(config, rng),
                queues: HashMap::new(),
                sessions: HashMap::new(),
                next: 1,
            })),
        }
    }

    /// A new client that joins `lobby` ("" creates one).
    pub fn join(&self, lobby: &str, mesh: bool) -> LocalClient {
        let mut inner = self.inner.borrow_mut();
        let conn = inner.next;
        inner.next += 1;
        let now = Instant::now();
        inner.sessions.insert(conn, Session::default());
        inner.hub.connect(conn, now);
        inner
            .hub
            .receive_text(conn, &Session::join(lobby, mesh), now);
        inner.pump(now);
        LocalClient {
            inner: self.inner.clone(),
            conn,
            closed: false,
        }
    }
}

/// One client of a [`LocalSignaling`].
pub struct LocalClient {
    inner: Rc<RefCell<LocalInner>>,
    conn: ConnId,
    closed: bool,
}

impl LocalClient {
    /// Runs the lobby's timers; events are ready after it.
    pub fn poll(&mut self) {
        self.inner.borrow_mut().pump(Instant::now());
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        let ev = self
            .inner
            .borrow_mut()
            .queues
            .get_mut(&self.conn)
            .and_then(|q| q.pop_front());
        if matches!(ev, Some(ClientEvent::Closed { .. })) {
            self.closed = true;
        }
        ev
    }

    /// Our id, once assigned.
    pub fn id(&self) -> Option<i32> {
        self.inner
            .borrow()
            .sessions
            .get(&self.conn)
            .and_then(Session::id)
    }

    /// Leaves the lobby.
    pub fn close(&mut self) {
        let mut inner = self.inner.borrow_mut();
        let now = Instant::now();
        inner.hub.disconnect(self.conn, now);
        inner.pump(now);
        inner.sessions.remove(&self.conn);
        inner.queues.remove(&self.conn);
        self.closed = true;
    }
}

impl Drop for LocalClient {
    fn drop(&mut self) {
        if !self.closed {
            self.close();
        }
    }
}

impl Signaling for LocalClient {
    fn poll(&mut self) {
        LocalClient::poll(self);
    }

    fn poll_event(&mut self) -> Option<ClientEvent> {
        LocalClient::poll_event(self)
    }

    fn send_message(&mut self, message: &Message) -> Result<(), Error> {
        if self.closed {
            return Err(Error::NotOpen);
        }
        let mut inner = self.inner.borrow_mut();
        let now = Instant::now();
        inner.hub.receive_text(self.conn, &message.to_json(), now);
        inner.pump(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(c: &mut LocalClient) -> Vec<ClientEvent> {
        c.poll();
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    #[test]
    fn local_signaling_creates_joins_and_relays() {
        let local = LocalSignaling::new();
        let mut host = local.join("", true);
        let ev = drain(&mut host);
        assert_eq!(ev[0], ClientEvent::Id { id: 1, mesh: true });
        let ClientEvent::Joined { lobby } = &ev[1] else {
            panic!("{ev:?}")
        };
        let mut guest = local.join(lobby, true);
        let ev = drain(&mut guest);
        let ClientEvent::Id {
            id: gid,
            mesh: true,
        } = ev[0]
        else {
            panic!("{ev:?}")
        };
        assert_eq!(ev[1], ClientEvent::PeerConnected(1));
        assert_eq!(drain(&mut host), vec![ClientEvent::PeerConnected(gid)]);
        guest.send_offer(1, "sdp-offer").unwrap();
        assert_eq!(
            drain(&mut host),
            vec![ClientEvent::Offer {
                from: gid,
                sdp: "sdp-offer".into()
            }]
        );
        host.send_candidate(gid, "0", 0, "candidate:1 1 udp 1 127.0.0.1 9 typ host")
            .unwrap();
        let ev = drain(&mut guest);
        assert!(
            matches!(&ev[0], ClientEvent::Candidate { from: 1, candidate } if candidate.mid == "0")
        );
        drop(guest);
        assert_eq!(drain(&mut host), vec![ClientEvent::PeerDisconnected(gid)]);
    }

    #[test]
    fn local_errors_close_with_the_server_reason() {
        let local = LocalSignaling::new();
        let mut c = local.join("missing", true);
        assert_eq!(
            drain(&mut c),
            vec![ClientEvent::Closed {
                code: 4000,
                reason: "Lobby does not exists".into()
            }]
        );
        assert!(c.send_offer(1, "x").is_err());
    }

    #[test]
    fn session_rejects_malformed_server_messages() {
        let mut s = Session::default();
        assert!(s.on_text("nope").is_err());
        assert!(s.on_text(r#"{"type":6,"id":1,"data":"bad"}"#).is_err());
        assert_eq!(
            s.on_text(r#"{"type":1,"id":5,"data":""}"#).unwrap(),
            ClientEvent::Id { id: 5, mesh: false }
        );
        assert_eq!(s.id(), Some(5));
    }
}
