//! The native `WebSocketPeer`: one WebSocket over non-blocking std sockets, client or server side.
//!
//! Owns the connection life cycle: name resolution, TCP connect, TLS (rustls), the opening
//! handshake, reading and writing, Godot's buffer and queue limits, heartbeat, timeouts and the
//! close. Nothing happens between two calls to `poll()`; no call blocks. Framing rules live in
//! [`super::protocol`].
//!
//! It does not own the public API or its docs: those are declared once in [`super::peer`], whose
//! `WebSocketPeer` forwards every method to a [`Peer`] of the same name and signature.

use crate::time::{Duration, Instant};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;

use crate::api::{ReadyState, WriteMode};

use super::handshake::{self, ClientHandshake, Request};
use super::peer::PeerOptions;
use super::protocol::{CloseState, Config, Connection, Event, MessageKind, Role, KEEP_CAPACITY};
use super::transport::{ReadResult, Transport};
use super::url::WsUrl;
use super::Error;

#[cfg(feature = "deflate")]
use super::deflate::PerMessageDeflate;
#[cfg(feature = "tls")]
use super::tls::TlsOptions;

enum Side {
    Client(ClientHandshake),
    Server,
}

enum Phase {
    /// Closed (or never used).
    Idle,
    Resolving {
        rx: mpsc::Receiver<io::Result<Vec<SocketAddr>>>,
        url: WsUrl,
    },
    Connecting {
        addrs: Vec<SocketAddr>,
        next: usize,
        sock: Option<TcpStream>,
        url: WsUrl,
        last_err: Option<io::Error>,
    },
    Handshake {
        transport: Transport,
        side: Side,
        inbuf: Vec<u8>,
        out: Vec<u8>,
        /// The server refused the request: flush `out` then close.
        refusing: bool,
    },
    Open {
        transport: Transport,
        conn: Box<Connection>,
    },
}

thread_local! {
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0u8; 64 * 1024]);
}

/// A connection quiet for this long gives back its large buffers.
const RELEASE_AFTER: Duration = Duration::from_secs(1);

/// Most bytes read from the socket in one `poll()`, so one busy peer cannot starve a game loop.
const READ_BUDGET: usize = 4 << 20;

/// The native platform value behind `WebSocketPeer`.
pub(crate) struct Peer {
    options: PeerOptions,
    phase: Phase,
    inbound: VecDeque<(Vec<u8>, bool)>,
    was_string: bool,
    close_code: i32,
    close_reason: String,
    last_error: Option<Error>,
    requested_url: String,
    selected_protocol: String,
    remote: Option<SocketAddr>,
    request: Option<Request>,
    deadline: Option<Instant>,
    next_ping: Option<Instant>,
    awaiting_pong: bool,
    /// Our side of the TCP stream is shut down (after the close frame went out).
    half_closed: bool,
    /// When bytes last moved, to release large buffers once the connection is quiet.
    last_traffic: Instant,
    /// The latest time this peer was given (a poll, or a call that starts a timer): the time
    /// of the timers that calls between polls start.
    now: Instant,
    out_messages: usize,
    no_delay: bool,
    #[cfg(feature = "tls")]
    tls: Option<TlsOptions>,
}

/// Each `pub(crate)` method is the [`WebSocketPeer`](super::WebSocketPeer) method of the same
/// name and signature; the documentation is there.
impl Peer {
    pub(crate) fn new() -> Peer {
        Peer::with_options(PeerOptions::default())
    }

    pub(crate) fn with_options(options: PeerOptions) -> Peer {
        Peer {
            options,
            phase: Phase::Idle,
            inbound: VecDeque::new(),
            was_string: false,
            close_code: -1,
            close_reason: String::new(),
            last_error: None,
            requested_url: String::new(),
            selected_protocol: String::new(),
            remote: None,
            request: None,
            deadline: None,
            next_ping: None,
            awaiting_pong: false,
            half_closed: false,
            last_traffic: Instant::now(),
            now: Instant::now(),
            out_messages: 0,
            no_delay: true,
            #[cfg(feature = "tls")]
            tls: None,
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
        self.next_ping = None;
    }

    /// An IP literal connects at once; a hostname resolves on a short-lived thread first.
    pub(crate) fn connect_to_url(
        &mut self,
        url: &str,
        #[cfg(feature = "tls")] tls: Option<TlsOptions>,
        #[cfg(not(feature = "tls"))] tls: Option<()>,
    ) -> Result<(), Error> {
        if !matches!(self.phase, Phase::Idle) {
            return Err(Error::AlreadyInUse);
        }
        let parsed = WsUrl::parse(url)?;
        #[cfg(feature = "tls")]
        {
            if tls.as_ref().is_some_and(|t| t.is_server()) {
                return Err(Error::InvalidParameter(
                    "server TLS options given to connect_to_url".into(),
                ));
            }
            self.tls = if parsed.tls {
                Some(match tls {
                    Some(t) => t,
                    None => TlsOptions::client(None, None)?,
                })
            } else {
                None
            };
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = tls;
            if parsed.tls {
                return Err(Error::InvalidUrl(
                    "wss:// needs the `tls` feature".to_string(),
                ));
            }
        }
        self.reset_session();
        self.requested_url = url.to_string();
        self.start_deadline();
        let host = parsed.host.clone();
        let port = parsed.port;
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            self.phase = Phase::Connecting {
                addrs: vec![SocketAddr::new(ip, port)],
                next: 0,
                sock: None,
                url: parsed,
                last_err: None,
            };
        } else {
            // Name resolution blocks in the OS resolver, so it runs on a short-lived thread and
            // poll() picks up the answer.
            let (tx, rx) = mpsc::channel();
            std::thread::Builder::new()
                .name("netplay-dns".into())
                .spawn(move || {
                    let r = (host.as_str(), port)
                        .to_socket_addrs()
                        .map(|a| a.collect::<Vec<_>>());
                    let _ = tx.send(r);
                })
                .map_err(Error::Io)?;
            self.phase = Phase::Resolving { rx, url: parsed };
        }
        Ok(())
    }

    /// Makes an accepted stream non-blocking and starts the server handshake on it.
    pub(crate) fn accept_stream(
        &mut self,
        stream: TcpStream,
        #[cfg(feature = "tls")] tls: Option<&TlsOptions>,
        #[cfg(not(feature = "tls"))] tls: Option<()>,
    ) -> Result<(), Error> {
        if !matches!(self.phase, Phase::Idle) {
            return Err(Error::AlreadyInUse);
        }
        stream.set_nonblocking(true)?;
        let _ = stream.set_nodelay(self.no_delay);
        self.reset_session();
        self.remote = stream.peer_addr().ok();
        #[cfg(feature = "tls")]
        let transport = match tls {
            Some(t) => Transport::Tls(Box::new(super::transport::TlsTransport {
                tcp: stream,
                conn: rustls::Connection::Server(t.server_connection()?),
                eof: false,
            })),
            None => Transport::Plain(stream),
        };
        #[cfg(not(feature = "tls"))]
        let transport = {
            let _ = tls;
            Transport::Plain(stream)
        };
        #[cfg(feature = "tls")]
        {
            self.tls = tls.cloned();
        }
        self.start_deadline();
        self.phase = Phase::Handshake {
            transport,
            side: Side::Server,
            inbuf: Vec::new(),
            out: Vec::new(),
            refusing: false,
        };
        Ok(())
    }

    fn reset_session(&mut self) {
        self.inbound.clear();
        self.was_string = false;
        self.close_code = -1;
        self.close_reason.clear();
        self.last_error = None;
        self.requested_url.clear();
        self.selected_protocol.clear();
        self.remote = None;
        self.request = None;
        self.deadline = None;
        self.next_ping = None;
        self.awaiting_pong = false;
        self.half_closed = false;
        self.out_messages = 0;
    }

    fn start_deadline(&mut self) {
        self.now = self.now.max(Instant::now());
        self.deadline = if self.options.handshake_timeout.is_zero() {
            None
        } else {
            Some(self.now + self.options.handshake_timeout)
        };
    }

    pub(crate) fn ready_state(&self) -> ReadyState {
        match &self.phase {
            Phase::Idle => ReadyState::Closed,
            Phase::Resolving { .. } | Phase::Connecting { .. } | Phase::Handshake { .. } => {
                ReadyState::Connecting
            }
            Phase::Open { conn, .. } => match conn.close_state() {
                CloseState::Open => ReadyState::Open,
                _ => ReadyState::Closing,
            },
        }
    }

    pub(crate) fn poll(&mut self) {
        self.poll_at(Instant::now());
    }

    /// Runs the phases until none makes progress, then checks the handshake or close deadline.
    pub(crate) fn poll_at(&mut self, now: Instant) {
        let now = now.max(self.now);
        self.now = now;
        loop {
            let progressed = match std::mem::replace(&mut self.phase, Phase::Idle) {
                Phase::Idle => false,
                Phase::Resolving { rx, url } => self.poll_resolving(rx, url),
                Phase::Connecting {
                    addrs,
                    next,
                    sock,
                    url,
                    last_err,
                } => self.poll_connecting(addrs, next, sock, url, last_err),
                Phase::Handshake {
                    transport,
                    side,
                    inbuf,
                    out,
                    refusing,
                } => self.poll_handshake(transport, side, inbuf, out, refusing),
                Phase::Open { transport, conn } => {
                    self.poll_open(transport, conn, now);
                    false
                }
            };
            if !progressed {
                break;
            }
        }
        if let (Some(d), false) = (self.deadline, matches!(self.phase, Phase::Idle)) {
            if now >= d {
                if let Phase::Open { conn, .. } = &self.phase {
                    if conn.close_state() == CloseState::Closed {
                        // Our close frame went out; the peer just never closed its side.
                        if let Phase::Open { transport, conn } =
                            std::mem::replace(&mut self.phase, Phase::Idle)
                        {
                            self.finish(transport, &conn);
                        }
                        return;
                    }
                }
                let err = if matches!(self.phase, Phase::Open { .. }) {
                    Error::Io(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the peer did not answer the close frame",
                    ))
                } else {
                    Error::HandshakeTimeout
                };
                self.abort(err);
            }
        }
    }

    /// Stops at once: closes the socket, marks the close unclean and records `err`.
    fn abort(&mut self, err: Error) {
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Handshake { mut transport, .. } | Phase::Open { mut transport, .. } => {
                transport.shutdown()
            }
            _ => {}
        }
        self.close_code = -1;
        if self.last_error.is_none() {
            self.last_error = Some(err);
        }
        self.deadline = None;
    }

    /// Like [`Peer::abort`] for a phase already taken apart: closes `transport`.
    fn abort_transport(&mut self, mut transport: Transport, err: Error) {
        transport.shutdown();
        self.phase = Phase::Idle;
        self.abort(err);
    }

    fn poll_resolving(
        &mut self,
        rx: mpsc::Receiver<io::Result<Vec<SocketAddr>>>,
        url: WsUrl,
    ) -> bool {
        match rx.try_recv() {
            Ok(Ok(addrs)) if !addrs.is_empty() => {
                self.phase = Phase::Connecting {
                    addrs,
                    next: 0,
                    sock: None,
                    url,
                    last_err: None,
                };
                true
            }
            Ok(Ok(_)) => {
                self.abort(Error::Io(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} has no address", url.host),
                )));
                false
            }
            Ok(Err(e)) => {
                self.abort(Error::Io(e));
                false
            }
            Err(mpsc::TryRecvError::Empty) => {
                self.phase = Phase::Resolving { rx, url };
                false
            }
            Err(mpsc::TryRecvError::Disconnected) => {
                self.abort(Error::Io(io::Error::other("the resolver thread stopped")));
                false
            }
        }
    }

    fn poll_connecting(
        &mut self,
        addrs: Vec<SocketAddr>,
        mut next: usize,
        sock: Option<TcpStream>,
        url: WsUrl,
        mut last_err: Option<io::Error>,
    ) -> bool {
        let sock = match sock {
            Some(s) => s,
            None => {
                // Start the next address, if any.
                loop {
                    let Some(addr) = addrs.get(next).copied() else {
                        let e = last_err.unwrap_or_else(|| {
                            io::Error::new(io::ErrorKind::ConnectionRefused, "connect failed")
                        });
                        self.abort(Error::Io(e));
                        return false;
                    };
                    next += 1;
                    match start_connect(addr) {
                        Ok(s) => break s,
                        Err(e) => last_err = Some(e),
                    }
                }
            }
        };
        // Connected once the socket has a peer address; failed once it holds an error.
        match sock.take_error() {
            Ok(Some(e)) | Err(e) => {
                self.phase = Phase::Connecting {
                    addrs,
                    next,
                    sock: None,
                    url,
                    last_err: Some(e),
                };
                return true;
            }
            Ok(None) => {}
        }
        match sock.peer_addr() {
            Ok(addr) => {
                self.remote = Some(addr);
                let _ = sock.set_nodelay(self.no_delay);
                match self.begin_client_handshake(sock, &url) {
                    Ok(phase) => {
                        self.phase = phase;
                        true
                    }
                    Err(e) => {
                        self.abort(e);
                        false
                    }
                }
            }
            Err(_) => {
                self.phase = Phase::Connecting {
                    addrs,
                    next,
                    sock: Some(sock),
                    url,
                    last_err,
                };
                false
            }
        }
    }

    fn begin_client_handshake(&mut self, sock: TcpStream, url: &WsUrl) -> Result<Phase, Error> {
        #[cfg(feature = "tls")]
        let transport = match &self.tls {
            Some(t) if url.tls => Transport::Tls(Box::new(super::transport::TlsTransport {
                tcp: sock,
                conn: rustls::Connection::Client(t.client_connection(&url.host)?),
                eof: false,
            })),
            _ => Transport::Plain(sock),
        };
        #[cfg(not(feature = "tls"))]
        let transport = Transport::Plain(sock);
        #[cfg(feature = "deflate")]
        let offer = self.options.compression.as_ref().map(|c| c.client_offer());
        #[cfg(not(feature = "deflate"))]
        let offer: Option<String> = None;
        let (hs, request) = ClientHandshake::new(
            &url.host_header(),
            &url.path,
            &self.options.supported_protocols,
            offer.as_deref(),
            &self.options.handshake_headers,
        );
        Ok(Phase::Handshake {
            transport,
            side: Side::Client(hs),
            inbuf: Vec::new(),
            out: request,
            refusing: false,
        })
    }

    fn poll_handshake(
        &mut self,
        mut transport: Transport,
        side: Side,
        mut inbuf: Vec<u8>,
        mut out: Vec<u8>,
        refusing: bool,
    ) -> bool {
        // Write what we have (the request, or the response).
        if let Err(e) = write_all_nonblocking(&mut transport, &mut out) {
            self.abort_transport(transport, Error::Io(e));
            return false;
        }
        if refusing {
            if out.is_empty() && !transport.has_pending_output() {
                transport.shutdown();
                self.close_code = -1;
                self.deadline = None;
                return false;
            }
            self.phase = Phase::Handshake {
                transport,
                side,
                inbuf,
                out,
                refusing,
            };
            return false;
        }
        // Read until the header block is complete.
        let limit = self.options.max_handshake_size;
        let mut eof = false;
        let read_err = READ_BUF.with(|b| {
            let mut b = b.borrow_mut();
            loop {
                let room = (limit + 1).saturating_sub(inbuf.len()).min(b.len());
                if room == 0 {
                    return Ok(());
                }
                match transport.read(&mut b[..room]) {
                    Ok(ReadResult::Data(n)) => inbuf.extend_from_slice(&b[..n]),
                    Ok(ReadResult::WouldBlock) => return Ok(()),
                    Ok(ReadResult::Eof) => {
                        eof = true;
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
            }
        });
        if let Err(e) = read_err {
            self.abort_transport(transport, Error::Io(e));
            return false;
        }
        let _ = transport.flush();
        let result = match &side {
            Side::Client(hs) => self.finish_client_handshake(hs, &inbuf),
            Side::Server => self.finish_server_handshake(&inbuf),
        };
        match result {
            Ok(Some((conn, consumed, response))) => {
                let mut conn = Box::new(conn);
                // Unsent handshake bytes (the server's 101) go out before any frame.
                conn.queue_raw(&out);
                conn.queue_raw(&response);
                let leftover = &inbuf[consumed..];
                self.deadline = None;
                self.phase = Phase::Open { transport, conn };
                if !leftover.is_empty() {
                    let leftover = leftover.to_vec();
                    if let Phase::Open { conn, .. } = &mut self.phase {
                        let _ = conn.receive(&leftover);
                    }
                }
                self.schedule_heartbeat();
                true
            }
            Ok(None) => {
                if eof {
                    self.abort_transport(
                        transport,
                        Error::Handshake("the connection closed during the handshake".into()),
                    );
                    return false;
                }
                self.phase = Phase::Handshake {
                    transport,
                    side,
                    inbuf,
                    out,
                    refusing,
                };
                false
            }
            Err((e, response)) => {
                self.last_error = Some(e);
                self.close_code = -1;
                if let Some(resp) = response {
                    // Tell the client why, then close.
                    self.phase = Phase::Handshake {
                        transport,
                        side,
                        inbuf: Vec::new(),
                        out: resp,
                        refusing: true,
                    };
                    return true;
                }
                transport.shutdown();
                self.deadline = None;
                false
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn finish_client_handshake(
        &mut self,
        hs: &ClientHandshake,
        inbuf: &[u8],
    ) -> Result<Option<(Connection, usize, Vec<u8>)>, (Error, Option<Vec<u8>>)> {
        let Some((accepted, n)) = hs
            .parse_response(inbuf, self.options.max_handshake_size)
            .map_err(|e| (e, None))?
        else {
            return Ok(None);
        };
        #[allow(unused_mut)]
        let mut conn = Connection::new(Role::Client, self.conn_config());
        #[cfg(feature = "deflate")]
        {
            let params = match &self.options.compression {
                Some(c) => c
                    .client_accept(accepted.extensions.as_deref())
                    .map_err(|e| (Error::Handshake(e.to_string()), None))?
                    .map(|p| (p, c)),
                None => None,
            };
            if params.is_none() && self.options.compression.is_none() {
                if let Some(ext) = &accepted.extensions {
                    return Err((
                        Error::Handshake(format!(
                            "the server enabled extensions that were not offered: {ext}"
                        )),
                        None,
                    ));
                }
            }
            conn.set_deflate(
                params.map(|(p, c)| PerMessageDeflate::new(p, false, c.level, c.min_compress_size)),
            );
        }
        #[cfg(not(feature = "deflate"))]
        if let Some(ext) = &accepted.extensions {
            return Err((
                Error::Handshake(format!(
                    "the server enabled extensions that were not offered: {ext}"
                )),
                None,
            ));
        }
        self.selected_protocol = accepted.protocol.unwrap_or_default();
        Ok(Some((conn, n, Vec::new())))
    }

    #[allow(clippy::type_complexity)]
    fn finish_server_handshake(
        &mut self,
        inbuf: &[u8],
    ) -> Result<Option<(Connection, usize, Vec<u8>)>, (Error, Option<Vec<u8>>)> {
        let parsed = handshake::parse_request(inbuf, self.options.max_handshake_size);
        let (req, n) = match parsed {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(None),
            Err(e) => {
                let body = e.to_string();
                let status = if body.contains("larger than") {
                    431
                } else {
                    400
                };
                let reason = if status == 431 {
                    "Request Header Fields Too Large"
                } else {
                    "Bad Request"
                };
                return Err((e, Some(handshake::error_response(status, reason, &body))));
            }
        };
        let upgrade = handshake::accept_upgrade(
            &req,
            &self.options.supported_protocols,
            #[cfg(feature = "deflate")]
            self.options.compression.as_ref(),
            &self.options.handshake_headers,
            self.conn_config(),
        )
        .map_err(|(e, resp)| (e, Some(resp)))?;
        #[cfg(feature = "tls")]
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        #[cfg(not(feature = "tls"))]
        let scheme = "ws";
        self.requested_url = format!(
            "{scheme}://{}{}",
            req.header("host").unwrap_or_default(),
            req.path
        );
        self.selected_protocol = upgrade.protocol.unwrap_or_default();
        self.request = Some(req);
        Ok(Some((upgrade.conn, n, upgrade.response)))
    }

    fn conn_config(&self) -> Config {
        Config {
            max_message_size: self.options.inbound_buffer_size,
            max_queued_events: 64,
        }
    }

    fn schedule_heartbeat(&mut self) {
        self.awaiting_pong = false;
        // A zero interval would ping on every poll: off, as in Godot.
        self.next_ping = self
            .options
            .heartbeat_interval
            .filter(|d| !d.is_zero())
            .map(|d| self.now + d);
    }

    fn poll_open(&mut self, mut transport: Transport, mut conn: Box<Connection>, now: Instant) {
        // 1. Read and decode, while the inbound queue has room.
        let mut read_bytes = 0usize;
        let mut eof = false;
        let mut io_err = None;
        let mut proto_err = None;
        READ_BUF.with(|b| {
            let mut b = b.borrow_mut();
            let mut budget = READ_BUDGET;
            loop {
                self.drain_events(&mut conn);
                if self.inbound.len() >= self.options.max_queued_packets
                    || conn.buffered_input() > 0
                {
                    if let Err(e) = conn.resume() {
                        proto_err = Some(e);
                        break;
                    }
                    self.drain_events(&mut conn);
                    if conn.buffered_input() > 0
                        && (self.inbound.len() >= self.options.max_queued_packets
                            || conn.queued_events() > 0)
                    {
                        break;
                    }
                }
                if budget == 0 {
                    break;
                }
                match transport.read(&mut b[..]) {
                    Ok(ReadResult::Data(n)) => {
                        budget = budget.saturating_sub(n);
                        read_bytes += n;
                        if let Err(e) = conn.receive(&b[..n]) {
                            proto_err = Some(e);
                            break;
                        }
                    }
                    Ok(ReadResult::WouldBlock) => break,
                    Ok(ReadResult::Eof) => {
                        eof = true;
                        break;
                    }
                    Err(e) => {
                        io_err = Some(e);
                        break;
                    }
                }
            }
        });
        self.drain_events(&mut conn);
        if let Some(e) = proto_err {
            self.close_code = e.code as i32;
            self.close_reason = e.reason.to_string();
            self.last_error = Some(Error::Protocol(e));
        }
        // 2. Heartbeat.
        if let Some(at) = self.next_ping {
            if now >= at && conn.close_state() == CloseState::Open {
                if self.awaiting_pong {
                    self.abort_transport(
                        transport,
                        Error::Io(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "no pong before the next heartbeat",
                        )),
                    );
                    return;
                }
                let _ = conn.ping(b"");
                self.awaiting_pong = true;
                self.next_ping = self.options.heartbeat_interval.map(|d| now + d);
            }
        }
        // 3. Write.
        let before = conn.output_len();
        if let Err(e) = flush_connection(&mut transport, &mut conn) {
            io_err.get_or_insert(e);
        }
        if conn.output_len() == 0 {
            self.out_messages = 0;
        }
        if read_bytes > 0 || conn.output_len() != before {
            self.last_traffic = now;
        } else if now.duration_since(self.last_traffic) >= RELEASE_AFTER
            && conn.retained_memory() > KEEP_CAPACITY
        {
            // Quiet for a while: give back the buffers large messages left behind.
            conn.release_memory();
        }
        if let Some(e) = io_err {
            self.abort_transport(transport, Error::Io(e));
            return;
        }
        // 4. The end of the connection.
        let flushed = conn.output_len() == 0 && !transport.has_pending_output();
        if conn.close_state() == CloseState::Closed && flushed {
            if eof {
                self.finish(transport, &conn);
                return;
            }
            if !self.half_closed {
                // Send FIN but keep reading: closing outright while the peer still sends would
                // make the kernel answer with a reset that can destroy our close frame.
                transport.shutdown_write();
                self.half_closed = true;
            }
        }
        if eof {
            if conn.close_state() != CloseState::Closed || conn.received_close().is_none() {
                // The peer vanished without a close handshake: unclean.
                self.abort_transport(
                    transport,
                    Error::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection closed without a close frame",
                    )),
                );
                return;
            }
            self.finish(transport, &conn);
            return;
        }
        if conn.close_state() == CloseState::Closed && self.deadline.is_none() {
            self.deadline = Some(now + self.options.close_timeout);
        }
        self.phase = Phase::Open { transport, conn };
    }

    /// Ends a connection whose close handshake is over (or that we failed): records the code
    /// and reason and closes the socket.
    fn finish(&mut self, mut transport: Transport, conn: &Connection) {
        if let Some((code, reason)) = conn.received_close() {
            if self.last_error.is_none() {
                self.close_code = code.map_or(1005, i32::from);
                self.close_reason = reason.to_string();
            }
        }
        transport.shutdown();
        self.phase = Phase::Idle;
        self.deadline = None;
        self.next_ping = None;
    }

    fn drain_events(&mut self, conn: &mut Connection) {
        while self.inbound.len() < self.options.max_queued_packets {
            match conn.poll_event() {
                Some(Event::Message { kind, data }) => {
                    self.inbound.push_back((data, kind == MessageKind::Text))
                }
                Some(Event::Pong(_)) => self.awaiting_pong = false,
                Some(Event::Ping(_)) => {}
                Some(Event::Close { .. }) => {
                    if self.deadline.is_none() {
                        self.deadline = Some(self.now + self.options.close_timeout);
                    }
                }
                None => break,
            }
        }
    }

    pub(crate) fn send(&mut self, data: &[u8], mode: WriteMode) -> Result<(), Error> {
        let kind = match mode {
            WriteMode::Text => {
                if simdutf8::basic::from_utf8(data).is_err() {
                    return Err(Error::InvalidUtf8);
                }
                MessageKind::Text
            }
            WriteMode::Binary => MessageKind::Binary,
        };
        let Phase::Open { conn, .. } = &mut self.phase else {
            return Err(Error::NotOpen);
        };
        let queued = conn.output_len();
        if queued + data.len() > self.options.outbound_buffer_size {
            return Err(Error::OutboundFull {
                queued,
                size: data.len(),
                limit: self.options.outbound_buffer_size,
            });
        }
        if self.out_messages >= self.options.max_queued_packets {
            return Err(Error::QueueFull(self.out_messages));
        }
        conn.send(kind, data)?;
        self.out_messages += 1;
        Ok(())
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
        Some(data)
    }

    pub(crate) fn was_string_packet(&self) -> bool {
        self.was_string
    }

    pub(crate) fn available_packet_count(&self) -> usize {
        self.inbound.len()
    }

    /// A negative code aborts without a close frame; while connecting there is no one to tell.
    pub(crate) fn close(&mut self, code: i32, reason: &str) -> Result<(), Error> {
        self.inbound.clear();
        if code < 0 {
            self.abort(Error::Io(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed locally without a close frame",
            )));
            self.last_error = None;
            return Ok(());
        }
        let code = u16::try_from(code)
            .map_err(|_| Error::InvalidParameter(format!("invalid close code {code}")))?;
        match &mut self.phase {
            Phase::Open { conn, .. } => {
                conn.close(code, reason)?;
                if self.deadline.is_none() {
                    self.deadline = Some(self.now + self.options.close_timeout);
                }
                Ok(())
            }
            Phase::Idle => Ok(()),
            _ => {
                // Still connecting: nothing to tell the peer yet.
                self.abort(Error::Io(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "closed while connecting",
                )));
                self.last_error = None;
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
        self.request.as_ref()
    }

    pub(crate) fn connected_addr(&self) -> Option<SocketAddr> {
        self.remote
    }

    pub(crate) fn connected_host(&self) -> String {
        self.remote.map(|a| a.ip().to_string()).unwrap_or_default()
    }

    pub(crate) fn connected_port(&self) -> u16 {
        self.remote.map_or(0, |a| a.port())
    }

    pub(crate) fn current_outbound_buffered_amount(&self) -> usize {
        match &self.phase {
            Phase::Open { conn, .. } => conn.output_len(),
            _ => 0,
        }
    }

    pub(crate) fn is_compressed(&self) -> bool {
        matches!(&self.phase, Phase::Open { conn, .. } if conn.is_compressed())
    }

    pub(crate) fn set_no_delay(&mut self, enabled: bool) {
        self.no_delay = enabled;
        let tcp = match &self.phase {
            Phase::Open { transport, .. } | Phase::Handshake { transport, .. } => {
                Some(transport.tcp())
            }
            _ => None,
        };
        if let Some(t) = tcp {
            let _ = t.set_nodelay(enabled);
        }
    }
}

fn start_connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let domain = socket2::Domain::for_address(addr);
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    s.set_nonblocking(true)?;
    match s.connect(&addr.into()) {
        Ok(()) => {}
        Err(e)
            if e.kind() == io::ErrorKind::WouldBlock
                || e.raw_os_error() == Some(libc_einprogress()) => {}
        Err(e) => return Err(e),
    }
    Ok(s.into())
}

/// EINPROGRESS on the platforms we build for.
fn libc_einprogress() -> i32 {
    if cfg!(any(
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd"
    )) {
        36
    } else if cfg!(windows) {
        10036
    } else {
        115
    }
}

/// Writes as much of `buf` as the socket takes now, removing what was written.
fn write_all_nonblocking(t: &mut Transport, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut pos = 0;
    while pos < buf.len() {
        let n = t.write(&buf[pos..])?;
        if n == 0 {
            break;
        }
        pos += n;
    }
    buf.drain(..pos);
    t.flush()
}

fn flush_connection(t: &mut Transport, conn: &mut Connection) -> io::Result<()> {
    while conn.output_len() > 0 {
        let n = t.write(conn.pending_output())?;
        if n == 0 {
            break;
        }
        conn.consume_output(n);
    }
    t.flush()
}
