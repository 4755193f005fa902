//! The browser's `WebSocketPeer`: one client WebSocket over the browser's own `WebSocket`
//! object, for `wasm32-unknown-unknown`.
//!
//! Owns the JS socket and its four handlers, and the polled contract on top of them: the
//! handlers only queue into an inbox shared with this value, and `poll()` is where the state
//! changes. It keeps Godot's limits where a browser allows it: a message over
//! `inbound_buffer_size`, or more than `max_queued_packets` waiting, closes the connection
//! (a browser cannot stop reading, so it cannot push back as the native peer does); a send
//! that would take the browser's buffered amount over `outbound_buffer_size` is refused. The
//! browser's rules for `close` (code 1000 or 3000–4999, reason of at most 123 bytes) are
//! checked here and become errors, never JS exceptions.
//!
//! It does not own the public API or its docs (declared once in [`super::peer`]), nor the
//! framing, the handshake or TLS, which are the browser's.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;

use js_sys::{Array, ArrayBuffer, Uint8Array};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{BinaryType, CloseEvent, Event, MessageEvent, WebSocket};

use crate::api::{ReadyState, WriteMode};
use crate::time::{Duration, Instant};

use super::handshake::Request;
use super::peer::PeerOptions;
use super::url::WsUrl;
use super::{Error, ProtocolError};

/// The wire codes of a close this side starts because a limit was hit: a browser may only send
/// 1000 or 3000–4999, so the RFC's 1009 and 1008 travel as 4009 and 4008 (the local
/// `close_code()` says 1009 and 1008, as on native).
const WIRE_TOO_BIG: u16 = 4009;
const WIRE_TOO_MANY: u16 = 4008;

/// What the handlers saw, in order.
enum Seen {
    Open,
    Message(Vec<u8>, bool),
    Error,
    Close {
        code: u16,
        reason: String,
        clean: bool,
    },
}

/// Shared between the handlers and the peer.
#[derive(Default)]
struct Inbox {
    seen: VecDeque<Seen>,
    /// Messages in `seen` plus those already moved to the peer's queue.
    queued: usize,
    max_message: usize,
    max_queued: usize,
    /// A limit the remote broke; the next `poll()` closes.
    broken: Option<ProtocolError>,
}

/// The JS socket and the handlers it calls; dropping it detaches them and closes the socket.
struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut(Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(Event)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Socket {
    fn open(url: &str, protocols: &[String], inbox: &Rc<RefCell<Inbox>>) -> Result<Socket, Error> {
        let list = Array::new();
        for p in protocols {
            list.push(&JsValue::from_str(p));
        }
        let ws = WebSocket::new_with_str_sequence(url, &list)
            .map_err(|e| Error::InvalidUrl(js_text(&e)))?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let i = inbox.clone();
        let on_open = Closure::new(move |_: Event| i.borrow_mut().seen.push_back(Seen::Open));
        let i = inbox.clone();
        let on_message = Closure::new(move |e: MessageEvent| receive(&i, e.data()));
        let i = inbox.clone();
        let on_error = Closure::new(move |_: Event| i.borrow_mut().seen.push_back(Seen::Error));
        let i = inbox.clone();
        let on_close = Closure::new(move |e: CloseEvent| {
            i.borrow_mut().seen.push_back(Seen::Close {
                code: e.code(),
                reason: e.reason(),
                clean: e.was_clean(),
            })
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok(Socket {
            ws,
            _on_open: on_open,
            _on_message: on_message,
            _on_error: on_error,
            _on_close: on_close,
        })
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // Detach first: a handler called after its closure is dropped would throw.
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onerror(None);
        self.ws.set_onclose(None);
        if matches!(
            self.ws.ready_state(),
            WebSocket::CONNECTING | WebSocket::OPEN
        ) {
            let _ = self.ws.close();
        }
    }
}

/// The message handler: checks the limits before copying anything out of JS.
fn receive(inbox: &Rc<RefCell<Inbox>>, data: JsValue) {
    let mut i = inbox.borrow_mut();
    if i.broken.is_some() {
        return;
    }
    if i.queued >= i.max_queued {
        i.broken = Some(ProtocolError::new(1008, "inbound queue full"));
        return;
    }
    let message = if let Some(text) = data.as_string() {
        (text.len() <= i.max_message).then(|| (text.into_bytes(), true))
    } else if let Ok(buffer) = data.dyn_into::<ArrayBuffer>() {
        (buffer.byte_length() as usize <= i.max_message)
            .then(|| (Uint8Array::new(&buffer).to_vec(), false))
    } else {
        // A Blob: binaryType is set to arraybuffer before anything can arrive.
        return;
    };
    match message {
        Some((bytes, text)) => {
            i.queued += 1;
            i.seen.push_back(Seen::Message(bytes, text));
        }
        None => i.broken = Some(ProtocolError::new(1009, "message too big")),
    }
}

/// A JS error value as text.
fn js_text(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "JavaScript error".to_string())
}

enum Phase {
    Idle,
    Connecting { deadline: Option<Instant> },
    Open,
    Closing { deadline: Instant },
}

/// The browser platform value behind `WebSocketPeer`.
pub(crate) struct Peer {
    options: PeerOptions,
    phase: Phase,
    socket: Option<Socket>,
    inbox: Rc<RefCell<Inbox>>,
    inbound: VecDeque<(Vec<u8>, bool)>,
    was_string: bool,
    close_code: i32,
    close_reason: String,
    last_error: Option<Error>,
    requested_url: String,
    selected_protocol: String,
    compressed: bool,
}

impl Peer {
    pub(crate) fn new() -> Peer {
        Peer::with_options(PeerOptions::default())
    }

    pub(crate) fn with_options(options: PeerOptions) -> Peer {
        Peer {
            options,
            phase: Phase::Idle,
            socket: None,
            inbox: Rc::default(),
            inbound: VecDeque::new(),
            was_string: false,
            close_code: -1,
            close_reason: String::new(),
            last_error: None,
            requested_url: String::new(),
            selected_protocol: String::new(),
            compressed: false,
        }
    }

    pub(crate) fn options(&self) -> &PeerOptions {
        &self.options
    }

    pub(crate) fn options_mut(&mut self) -> &mut PeerOptions {
        &mut self.options
    }

    pub(crate) fn set_heartbeat_interval(&mut self, interval: Option<Duration>) {
        self.options.heartbeat_interval = interval;
    }

    pub(crate) fn connect_to_url(&mut self, url: &str, tls: Option<()>) -> Result<(), Error> {
        let _ = tls;
        if !matches!(self.phase, Phase::Idle) {
            return Err(Error::AlreadyInUse);
        }
        // The same URL rules as native, before the browser sees it.
        WsUrl::parse(url)?;
        if !self.options.handshake_headers.is_empty() {
            return Err(Error::InvalidParameter(
                "a browser's WebSocket sends no handshake headers of the caller's".into(),
            ));
        }
        let inbox = Rc::new(RefCell::new(Inbox {
            max_message: self.options.inbound_buffer_size,
            max_queued: self.options.max_queued_packets,
            ..Inbox::default()
        }));
        let socket = Socket::open(url, &self.options.supported_protocols, &inbox)?;
        self.inbox = inbox;
        self.socket = Some(socket);
        self.inbound.clear();
        self.was_string = false;
        self.close_code = -1;
        self.close_reason.clear();
        self.last_error = None;
        self.requested_url = url.to_string();
        self.selected_protocol.clear();
        self.compressed = false;
        let timeout = self.options.handshake_timeout;
        self.phase = Phase::Connecting {
            deadline: (!timeout.is_zero()).then(|| Instant::now() + timeout),
        };
        Ok(())
    }

    pub(crate) fn accept_stream(
        &mut self,
        stream: TcpStream,
        tls: Option<()>,
    ) -> Result<(), Error> {
        let _ = (stream, tls);
        Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "a browser cannot accept connections",
        )))
    }

    pub(crate) fn ready_state(&self) -> ReadyState {
        match self.phase {
            Phase::Idle => ReadyState::Closed,
            Phase::Connecting { .. } => ReadyState::Connecting,
            Phase::Open => ReadyState::Open,
            Phase::Closing { .. } => ReadyState::Closing,
        }
    }

    pub(crate) fn poll(&mut self) {
        self.poll_at(Instant::now())
    }

    pub(crate) fn poll_at(&mut self, now: Instant) {
        let (seen, broken) = {
            let mut inbox = self.inbox.borrow_mut();
            (std::mem::take(&mut inbox.seen), inbox.broken.take())
        };
        for s in seen {
            match s {
                Seen::Open => {
                    if let Some(socket) = &self.socket {
                        self.selected_protocol = socket.ws.protocol();
                        self.compressed = socket.ws.extensions().contains("permessage-deflate");
                    }
                    if matches!(self.phase, Phase::Connecting { .. }) {
                        self.phase = Phase::Open;
                    }
                }
                Seen::Message(data, text) => {
                    if matches!(self.phase, Phase::Open) {
                        self.inbound.push_back((data, text));
                    } else {
                        self.inbox.borrow_mut().queued -= 1;
                    }
                }
                // The close event that follows says how it ended.
                Seen::Error => {}
                Seen::Close {
                    code,
                    reason,
                    clean,
                } => {
                    let opened = !matches!(self.phase, Phase::Connecting { .. });
                    self.finish(
                        if clean { i32::from(code) } else { -1 },
                        if clean { reason } else { String::new() },
                    );
                    if !opened {
                        self.last_error = Some(Error::Handshake(
                            "the browser could not open the WebSocket".into(),
                        ));
                    } else if !clean {
                        self.last_error = Some(Error::Io(std::io::Error::new(
                            std::io::ErrorKind::ConnectionAborted,
                            "the connection ended without a close frame",
                        )));
                    }
                    break;
                }
            }
        }
        if let Some(e) = broken {
            if self.socket.is_some() {
                let wire = if e.code == 1009 {
                    WIRE_TOO_BIG
                } else {
                    WIRE_TOO_MANY
                };
                if let Some(socket) = &self.socket {
                    let _ = socket.ws.close_with_code_and_reason(wire, e.reason);
                }
                self.finish(i32::from(e.code), e.reason.to_string());
                self.last_error = Some(Error::Protocol(e));
            }
        }
        match self.phase {
            Phase::Connecting {
                deadline: Some(deadline),
            } if now >= deadline => {
                self.finish(-1, String::new());
                self.last_error = Some(Error::HandshakeTimeout);
            }
            Phase::Closing { deadline } if now >= deadline => self.finish(-1, String::new()),
            _ => {}
        }
    }

    /// Closed: the socket and its handlers are gone; what was received stays readable.
    fn finish(&mut self, code: i32, reason: String) {
        self.socket = None;
        self.phase = Phase::Idle;
        self.close_code = code;
        self.close_reason = reason;
    }

    pub(crate) fn send(&mut self, data: &[u8], mode: WriteMode) -> Result<(), Error> {
        let text = match mode {
            WriteMode::Text => Some(std::str::from_utf8(data).map_err(|_| Error::InvalidUtf8)?),
            WriteMode::Binary => None,
        };
        let (Phase::Open, Some(socket)) = (&self.phase, &self.socket) else {
            return Err(Error::NotOpen);
        };
        let queued = socket.ws.buffered_amount() as usize;
        if queued + data.len() > self.options.outbound_buffer_size {
            return Err(Error::OutboundFull {
                queued,
                size: data.len(),
                limit: self.options.outbound_buffer_size,
            });
        }
        let sent = match text {
            Some(text) => socket.ws.send_with_str(text),
            None => socket.ws.send_with_u8_array(data),
        };
        sent.map_err(|e| {
            Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                js_text(&e),
            ))
        })
    }

    pub(crate) fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.send(text.as_bytes(), WriteMode::Text)
    }

    pub(crate) fn put_packet(&mut self, data: &[u8]) -> Result<(), Error> {
        self.send(data, WriteMode::Binary)
    }

    pub(crate) fn get_packet(&mut self) -> Option<Vec<u8>> {
        let (data, text) = self.inbound.pop_front()?;
        self.was_string = text;
        let mut inbox = self.inbox.borrow_mut();
        inbox.queued = inbox.queued.saturating_sub(1);
        Some(data)
    }

    pub(crate) fn was_string_packet(&self) -> bool {
        self.was_string
    }

    pub(crate) fn available_packet_count(&self) -> usize {
        self.inbound.len()
    }

    pub(crate) fn close(&mut self, code: i32, reason: &str) -> Result<(), Error> {
        if code >= 0 && code != 1000 && !(3000..=4999).contains(&code) {
            return Err(Error::InvalidParameter(format!(
                "a browser sends close code 1000 or 3000-4999, not {code}"
            )));
        }
        if reason.len() > 123 {
            return Err(Error::InvalidParameter(format!(
                "a close reason is at most 123 bytes, not {}",
                reason.len()
            )));
        }
        let dropped = self.inbound.len();
        self.inbound.clear();
        {
            let mut inbox = self.inbox.borrow_mut();
            inbox.queued = inbox.queued.saturating_sub(dropped);
        }
        match self.phase {
            Phase::Idle | Phase::Closing { .. } => Ok(()),
            Phase::Connecting { .. } => {
                // Nothing to tell the peer yet.
                self.finish(-1, String::new());
                Ok(())
            }
            Phase::Open if code < 0 => {
                // Godot's "close at once": the browser still ends with a close frame of its
                // own, without a status code.
                self.finish(-1, String::new());
                Ok(())
            }
            Phase::Open => {
                let Some(socket) = &self.socket else {
                    return Err(Error::NotOpen);
                };
                socket
                    .ws
                    .close_with_code_and_reason(code as u16, reason)
                    .map_err(|e| Error::InvalidParameter(js_text(&e)))?;
                self.phase = Phase::Closing {
                    deadline: Instant::now() + self.options.close_timeout,
                };
                Ok(())
            }
        }
    }

    pub(crate) fn close_code(&self) -> i32 {
        self.close_code
    }

    pub(crate) fn close_reason(&self) -> &str {
        &self.close_reason
    }

    pub(crate) fn last_error(&self) -> Option<&Error> {
        self.last_error.as_ref()
    }

    pub(crate) fn requested_url(&self) -> &str {
        &self.requested_url
    }

    pub(crate) fn selected_protocol(&self) -> &str {
        &self.selected_protocol
    }

    pub(crate) fn handshake_request(&self) -> Option<&Request> {
        None
    }

    pub(crate) fn connected_addr(&self) -> Option<SocketAddr> {
        None
    }

    pub(crate) fn connected_host(&self) -> String {
        String::new()
    }

    pub(crate) fn connected_port(&self) -> u16 {
        0
    }

    pub(crate) fn current_outbound_buffered_amount(&self) -> usize {
        self.socket
            .as_ref()
            .map_or(0, |s| s.ws.buffered_amount() as usize)
    }

    pub(crate) fn is_compressed(&self) -> bool {
        self.compressed
    }

    pub(crate) fn set_no_delay(&mut self, enabled: bool) {
        let _ = enabled;
    }
}
