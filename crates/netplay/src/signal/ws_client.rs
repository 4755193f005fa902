//! The polled signaling client: platform-free code over [`WebSocketPeer`], so it works wherever
//! `WebSocketPeer` does.
//!
//! Owns the WebSocket transport of a signaling client: connecting, sending JOIN once open,
//! turning text messages into [`ClientEvent`]s through a [`Session`]. The protocol itself is the
//! session's.

use std::collections::VecDeque;

use super::{ClientEvent, Message, Session, Signaling};
use crate::ws::{Error, ReadyState, WebSocketPeer};

/// A signaling client over a WebSocket, driven by [`Client::poll`] like every netplay peer.
///
/// ```no_run
/// use netplay::signal::{Client, ClientEvent, Signaling};
/// let mut client = Client::connect("ws://127.0.0.1:9080", "", true).unwrap();
/// loop {
///     client.poll();
///     while let Some(event) = client.poll_event() {
///         match event {
///             ClientEvent::Joined { lobby } => println!("in lobby {lobby}"),
///             ClientEvent::Offer { from, sdp } => { /* give it to a PeerConnection */ }
///             ClientEvent::Closed { .. } => return,
///             _ => {}
///         }
///     }
///     # break;
/// }
/// ```
pub struct Client {
    ws: WebSocketPeer,
    session: Session,
    join: Option<String>,
    events: VecDeque<ClientEvent>,
    closed: bool,
}

impl Client {
    /// Connects to a signaling server and joins `lobby` ("" creates one) once connected.
    pub fn connect(url: &str, lobby: &str, mesh: bool) -> Result<Client, Error> {
        Client::with_peer(WebSocketPeer::new(), url, lobby, mesh)
    }

    /// Like [`Client::connect`] with a configured peer (TLS options go through `connect_to_url`
    /// for `wss://`: use [`Client::from_peer`] for those).
    pub fn with_peer(
        mut ws: WebSocketPeer,
        url: &str,
        lobby: &str,
        mesh: bool,
    ) -> Result<Client, Error> {
        ws.connect_to_url(url, None)?;
        Ok(Client::from_peer(ws, lobby, mesh))
    }

    /// Wraps a peer already connecting (or open); JOIN is sent once it is open.
    pub fn from_peer(ws: WebSocketPeer, lobby: &str, mesh: bool) -> Client {
        Client {
            ws,
            session: Session::default(),
            join: Some(Session::join(lobby, mesh)),
            events: VecDeque::new(),
            closed: false,
        }
    }

    /// Drives the connection and turns what arrived into events.
    pub fn poll(&mut self) {
        self.ws.poll();
        if self.ws.ready_state() == ReadyState::Open {
            if let Some(join) = self.join.take() {
                if self.ws.send_text(&join).is_err() {
                    self.join = Some(join);
                }
                self.ws.poll();
            }
        }
        while let Some(p) = self.ws.get_packet() {
            let parsed = std::str::from_utf8(&p)
                .ok()
                .filter(|_| self.ws.was_string_packet())
                .map(|t| self.session.on_text(t));
            match parsed {
                Some(Ok(ev)) => self.events.push_back(ev),
                _ => {
                    let _ = self.ws.close(4000, "Invalid message format");
                }
            }
        }
        if self.ws.ready_state() == ReadyState::Closed && !self.closed {
            self.closed = true;
            self.events.push_back(ClientEvent::Closed {
                code: self.ws.close_code(),
                reason: self.ws.close_reason().to_string(),
            });
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// The protocol state (id, lobby, mesh, sealed).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The WebSocket underneath.
    pub fn peer(&self) -> &WebSocketPeer {
        &self.ws
    }

    /// Leaves: closes the signaling connection.
    pub fn close(&mut self) {
        let _ = self.ws.close(1000, "");
    }
}

impl Signaling for Client {
    fn poll(&mut self) {
        Client::poll(self);
    }

    fn poll_event(&mut self) -> Option<ClientEvent> {
        Client::poll_event(self)
    }

    fn send_message(&mut self, message: &Message) -> Result<(), Error> {
        self.ws.send_text(&message.to_json())
    }
}
