//! The tokio driver: the same protocol core serving many connections from one process.
//!
//! Owns async I/O for server-side connections (plain TCP or TLS over TCP). An idle connection
//! holds no read or write buffer: it waits for readiness, then reads into a per-thread scratch
//! buffer, so memory grows with traffic and shrinks back when the traffic stops.

use std::cell::RefCell;
use std::io::{self, IoSlice};
#[cfg(feature = "tls")]
use std::io::{Read, Write};
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll};

use ::tokio::io::{AsyncRead, ReadBuf};
use ::tokio::net::TcpStream;

use netplay::ws::handshake::{self, Request};
use netplay::ws::protocol::{CloseState, Config, Connection, Event, MessageKind, KEEP_CAPACITY};
use netplay::ws::Error;

#[cfg(feature = "deflate")]
use netplay::ws::deflate::DeflateConfig;
#[cfg(feature = "tls")]
use netplay::ws::tls::TlsOptions;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0u8; 64 * 1024]);
}

/// How long a closed connection keeps reading (and discarding) while it waits for the peer to
/// close its side.
pub const LINGER: Duration = Duration::from_secs(2);

/// When the first ping of a connection is due: one interval plus up to a quarter more, drawn at
/// random, so connections that opened together (after a restart, say) do not all ping at once.
fn first_ping(interval: Duration) -> ::tokio::time::Instant {
    let r = netplay::random::u64().to_le_bytes();
    let frac = u16::from_le_bytes([r[0], r[1]]) as u32; // 0..65536
    let jitter = interval / 4 * frac / 65536;
    ::tokio::time::Instant::now() + interval + jitter
}

/// A connection quiet for this long gives back its large buffers.
pub const RELEASE_AFTER: Duration = Duration::from_secs(1);

/// Settings for accepted connections.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Sub-protocols accepted, in the server's order; empty accepts any client (none selected).
    pub supported_protocols: Vec<String>,
    /// Extra header lines for the 101 response.
    pub handshake_headers: Vec<String>,
    /// Largest inbound message; above it the connection closes with 1009.
    pub max_message_size: usize,
    /// Largest HTTP header block.
    pub max_handshake_size: usize,
    /// Longest time for the TLS and HTTP handshakes.
    pub handshake_timeout: Duration,
    /// Send a ping this often; a peer that has not answered the previous one by then is
    /// dropped (`next_event` returns an error). `None`: no heartbeat.
    pub heartbeat_interval: Option<Duration>,
    /// permessage-deflate to accept, if any.
    #[cfg(feature = "deflate")]
    pub compression: Option<DeflateConfig>,
    /// TLS server options, if any.
    #[cfg(feature = "tls")]
    pub tls: Option<TlsOptions>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            supported_protocols: Vec::new(),
            handshake_headers: Vec::new(),
            max_message_size: 64 << 20,
            max_handshake_size: handshake::DEFAULT_MAX_HANDSHAKE_SIZE,
            handshake_timeout: Duration::from_secs(10),
            heartbeat_interval: None,
            #[cfg(feature = "deflate")]
            compression: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// A TCP stream with optional TLS, read and written without per-connection buffers.
struct Io {
    tcp: TcpStream,
    #[cfg(feature = "tls")]
    tls: Option<Box<rustls::ServerConnection>>,
}

/// `std::io::Read` over `AsyncRead::poll_read` within one poll: `Pending` becomes WouldBlock
/// (with the waker registered).
#[cfg(feature = "tls")]
struct PollRead<'a, 'b> {
    tcp: &'a mut TcpStream,
    cx: &'a mut Context<'b>,
}

#[cfg(feature = "tls")]
impl Read for PollRead<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut rb = ReadBuf::new(buf);
        match Pin::new(&mut *self.tcp).poll_read(self.cx, &mut rb) {
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Ready(Ok(())) => Ok(rb.filled().len()),
        }
    }
}

/// `std::io` view of a tokio socket that never blocks (WouldBlock instead), for rustls.
#[cfg(feature = "tls")]
struct Sync<'a>(&'a TcpStream);

#[cfg(feature = "tls")]
impl Read for Sync<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

#[cfg(feature = "tls")]
impl Write for Sync<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Io {
    /// Waits until input is there, then reads what is available into `sink` through the
    /// per-thread scratch buffer (no buffer is held while waiting). Returns `Ok(true)` at the
    /// end of the stream.
    ///
    /// Reads go through `AsyncRead::poll_read`, which clears the socket's readiness after a
    /// short read, so a wait never costs an extra `recv` that only returns EAGAIN.
    async fn read_with<F>(&mut self, mut sink: F) -> io::Result<bool>
    where
        F: FnMut(&[u8]) -> Result<(), Error>,
    {
        loop {
            let r = std::future::poll_fn(|cx| {
                SCRATCH.with(|s| {
                    let mut buf = s.borrow_mut();
                    self.poll_read_once(cx, &mut buf, &mut sink)
                })
            })
            .await;
            #[cfg(feature = "tls")]
            self.flush_tls().await?;
            match r {
                Ok(Some(eof)) => return Ok(eof),
                Ok(None) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// One read attempt. `Ok(None)`: bytes arrived but gave no plaintext (TLS records).
    fn poll_read_once<F>(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        sink: &mut F,
    ) -> Poll<io::Result<Option<bool>>>
    where
        F: FnMut(&[u8]) -> Result<(), Error>,
    {
        let to_io = |e: Error| match e {
            Error::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        };
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_mut() {
            let mut reader = PollRead {
                tcp: &mut self.tcp,
                cx,
            };
            let eof = match tls.read_tls(&mut reader) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(e)),
            };
            if let Err(e) = tls.process_new_packets() {
                let _ = tls.write_tls(&mut Sync(&self.tcp));
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
            }
            let mut got = false;
            loop {
                match tls.reader().read(buf) {
                    Ok(0) => return Poll::Ready(Ok(Some(true))),
                    Ok(n) => {
                        got = true;
                        if let Err(e) = sink(&buf[..n]) {
                            return Poll::Ready(Err(to_io(e)));
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        return Poll::Ready(Ok(Some(true)))
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            return Poll::Ready(Ok(if eof {
                Some(true)
            } else if got {
                Some(false)
            } else {
                None
            }));
        }
        let mut rb = ReadBuf::new(buf);
        match Pin::new(&mut self.tcp).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    return Poll::Ready(Ok(Some(true)));
                }
                Poll::Ready(sink(&buf[..n]).map(|()| Some(false)).map_err(to_io))
            }
        }
    }

    #[cfg(feature = "tls")]
    async fn flush_tls(&mut self) -> io::Result<()> {
        if let Some(tls) = self.tls.as_mut() {
            while tls.wants_write() {
                match tls.write_tls(&mut Sync(&self.tcp)) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.tcp.writable().await?,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Writes all of `data`.
    async fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            while !data.is_empty() {
                let n = self
                    .tls
                    .as_mut()
                    .map_or(Ok(0), |t| t.writer().write(data))?;
                data = &data[n..];
                self.flush_tls().await?;
            }
            return Ok(());
        }
        while !data.is_empty() {
            match self.tcp.try_write(data) {
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.tcp.writable().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn shutdown(&mut self) {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_mut() {
            tls.send_close_notify();
            let _ = self.flush_tls().await;
        }
        let _ = ::tokio::io::AsyncWriteExt::shutdown(&mut self.tcp).await;
    }
}

/// What [`accept`] found on a new connection.
pub enum Accepted {
    /// A WebSocket, open.
    WebSocket(Box<WebSocket>),
    /// A plain HTTP request (not an upgrade); answer it with [`HttpConnection::respond`].
    Http(HttpConnection),
}

/// A non-WebSocket HTTP request on the WebSocket port (health checks, metrics, files).
pub struct HttpConnection {
    io: Io,
    request: Request,
}

impl HttpConnection {
    /// The request.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Sends a complete response and closes the connection.
    pub async fn respond(
        mut self,
        status: u16,
        reason: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<(), Error> {
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        self.io.write_all(head.as_bytes()).await?;
        self.io.write_all(body).await?;
        self.io.shutdown().await;
        Ok(())
    }
}

/// Runs the TLS and HTTP handshakes on an accepted TCP connection.
///
/// A WebSocket upgrade that fails validation is answered with a 4xx response and an error; a
/// request that is not an upgrade is returned as [`Accepted::Http`].
pub async fn accept(tcp: TcpStream, config: &ServerConfig) -> Result<Accepted, Error> {
    // Boxed: the handshake's state is large and would otherwise stay inlined in every
    // connection's task for its whole life.
    let handshake = Box::pin(accept_inner(tcp, config));
    match ::tokio::time::timeout(config.handshake_timeout, handshake).await {
        Ok(r) => r,
        Err(_) => Err(Error::HandshakeTimeout),
    }
}

async fn accept_inner(tcp: TcpStream, config: &ServerConfig) -> Result<Accepted, Error> {
    let _ = tcp.set_nodelay(true);
    let mut io = Io {
        tcp,
        #[cfg(feature = "tls")]
        tls: match &config.tls {
            Some(t) => Some(Box::new(t.server_connection()?)),
            None => None,
        },
    };
    let mut inbuf = Vec::new();
    let (req, consumed) = loop {
        let limit = config.max_handshake_size + 1;
        let eof = io
            .read_with(|b| {
                if inbuf.len() + b.len() > limit {
                    return Err(Error::Handshake(format!(
                        "HTTP header block larger than {} bytes",
                        config.max_handshake_size
                    )));
                }
                inbuf.extend_from_slice(b);
                Ok(())
            })
            .await;
        match eof {
            Ok(false) => {}
            Ok(true) => {
                return Err(Error::Handshake(
                    "the connection closed during the handshake".into(),
                ))
            }
            Err(e) => {
                let resp = handshake::error_response(
                    431,
                    "Request Header Fields Too Large",
                    &e.to_string(),
                );
                let _ = io.write_all(&resp).await;
                io.shutdown().await;
                return Err(e.into());
            }
        }
        match handshake::parse_request(&inbuf, config.max_handshake_size) {
            Ok(Some(r)) => break r,
            Ok(None) => {}
            Err(e) => {
                let resp = handshake::error_response(400, "Bad Request", &e.to_string());
                let _ = io.write_all(&resp).await;
                io.shutdown().await;
                return Err(e);
            }
        }
    };
    if !req.is_upgrade() {
        return Ok(Accepted::Http(HttpConnection { io, request: req }));
    }
    let upgrade = match handshake::accept_upgrade(
        &req,
        &config.supported_protocols,
        #[cfg(feature = "deflate")]
        config.compression.as_ref(),
        &config.handshake_headers,
        Config {
            max_message_size: config.max_message_size,
            max_queued_events: 1024,
        },
    ) {
        Ok(u) => u,
        Err((e, resp)) => {
            let _ = io.write_all(&resp).await;
            io.shutdown().await;
            return Err(e);
        }
    };
    let (conn, protocol, resp) = (upgrade.conn, upgrade.protocol, upgrade.response);
    io.write_all(&resp).await?;
    let mut ws = WebSocket {
        io,
        conn,
        protocol,
        request: req,
        done: false,
        heartbeat_interval: config.heartbeat_interval,
        next_ping: config.heartbeat_interval.map(first_ping),
        awaiting_pong: false,
    };
    if consumed < inbuf.len() {
        if let Err(e) = ws.conn.receive(&inbuf[consumed..]) {
            ws.flush().await?;
            return Err(e.into());
        }
    }
    Ok(Accepted::WebSocket(Box::new(ws)))
}

/// An open server-side WebSocket on tokio.
pub struct WebSocket {
    io: Io,
    conn: Connection,
    protocol: Option<String>,
    request: Request,
    done: bool,
    heartbeat_interval: Option<Duration>,
    next_ping: Option<::tokio::time::Instant>,
    awaiting_pong: bool,
}

impl WebSocket {
    /// The client's handshake request.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The selected sub-protocol, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// Whether permessage-deflate is in use.
    pub fn is_compressed(&self) -> bool {
        self.conn.is_compressed()
    }

    /// The next event from the peer. Pings are answered before they are returned. After the
    /// peer's close (returned as [`Event::Close`]) or an error, returns `Ok(None)`.
    ///
    /// Output queued with [`WebSocket::queue`] is written before this waits for input.
    pub async fn next_event(&mut self) -> Result<Option<Event>, Error> {
        loop {
            if let Some(ev) = self.conn.poll_event() {
                if matches!(ev, Event::Pong(_)) {
                    self.awaiting_pong = false;
                }
                return Ok(Some(ev));
            }
            if self.conn.close_state() == CloseState::Closed {
                self.flush().await?;
                self.finish().await;
                return Ok(None);
            }
            self.conn.resume()?;
            if self.conn.queued_events() > 0 {
                continue;
            }
            self.flush().await?;
            let holding = self.conn.retained_memory() > KEEP_CAPACITY;
            let conn = &mut self.conn;
            let mut proto = None;
            let read = self.io.read_with(|b| {
                if proto.is_none() {
                    if let Err(e) = conn.receive(b) {
                        proto = Some(e);
                    }
                }
                Ok(())
            });
            // Wake up for the heartbeat, and to give back large buffers (kept while traffic
            // flows) once the connection is quiet.
            let release_at = holding.then(|| ::tokio::time::Instant::now() + RELEASE_AFTER);
            let wake = match (release_at, self.next_ping) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let r = match wake {
                Some(at) => match ::tokio::time::timeout_at(at, read).await {
                    Ok(r) => r,
                    Err(_) => {
                        if release_at.is_some_and(|r| r <= ::tokio::time::Instant::now()) {
                            self.conn.release_memory();
                        }
                        self.heartbeat().await?;
                        continue;
                    }
                },
                None => read.await,
            };
            if let Some(e) = proto {
                let _ = self.flush().await;
                self.finish().await;
                return Err(e.into());
            }
            match r {
                Ok(false) => {}
                Ok(true) => {
                    self.done = true;
                    if self.conn.queued_events() > 0 {
                        continue;
                    }
                    return if self.conn.close_state() == CloseState::Closed {
                        Ok(None)
                    } else {
                        Err(Error::Io(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the connection closed without a close frame",
                        )))
                    };
                }
                Err(e) => {
                    self.done = true;
                    return Err(e.into());
                }
            }
        }
    }

    /// Sends the next heartbeat ping when it is due; a ping still unanswered by then means the
    /// peer is gone: the connection ends with an error.
    async fn heartbeat(&mut self) -> Result<(), Error> {
        let (Some(at), Some(interval)) = (self.next_ping, self.heartbeat_interval) else {
            return Ok(());
        };
        if at > ::tokio::time::Instant::now() || self.conn.close_state() != CloseState::Open {
            return Ok(());
        }
        if self.awaiting_pong {
            self.done = true;
            self.io.shutdown().await;
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                "no pong before the next heartbeat",
            )));
        }
        self.conn.ping(b"")?;
        self.awaiting_pong = true;
        self.next_ping = Some(at + interval);
        self.flush().await
    }

    /// Shuts our side down, then reads and discards until the peer closes too (bounded by
    /// [`LINGER`]): closing a socket with unread input makes the kernel send a reset, which can
    /// destroy the close frame we just sent.
    async fn finish(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        self.io.shutdown().await;
        let io = &mut self.io;
        let _ = ::tokio::time::timeout(LINGER, async {
            while let Ok(false) = io.read_with(|_| Ok(())).await {}
        })
        .await;
    }

    /// Queues a message without writing it yet (it goes out on the next flush or read).
    pub fn queue(&mut self, kind: MessageKind, data: &[u8]) -> Result<(), Error> {
        self.conn.send(kind, data)
    }

    /// Queues a message it takes ownership of: large payloads are written from `data` itself,
    /// without a copy (see [`Connection::send_owned`]).
    pub fn queue_owned(&mut self, kind: MessageKind, data: Vec<u8>) -> Result<(), Error> {
        self.conn.send_owned(kind, data)
    }

    /// Sends a message and writes it out.
    pub async fn send(&mut self, kind: MessageKind, data: &[u8]) -> Result<(), Error> {
        self.conn.send(kind, data)?;
        self.flush().await
    }

    /// Bytes queued but not written.
    pub fn buffered_amount(&self) -> usize {
        self.conn.output_len()
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        while self.conn.output_len() > 0 {
            #[cfg(feature = "tls")]
            if self.io.tls.is_some() {
                let n = self.conn.pending_output().len();
                self.io.write_all(self.conn.pending_output()).await?;
                self.conn.consume_output(n);
                continue;
            }
            // Header and owned payloads leave together in one vectored write.
            let written = {
                let mut slices = [IoSlice::new(&[]); 16];
                let k = self.conn.pending_output_vectored(&mut slices);
                self.io.tcp.try_write_vectored(&slices[..k])
            };
            match written {
                Ok(n) => self.conn.consume_output(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.io.tcp.writable().await?,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Sends a close frame, then waits (up to `wait`) for the peer's and closes the socket.
    pub async fn close(&mut self, code: u16, reason: &str, wait: Duration) -> Result<(), Error> {
        self.conn.close(code, reason)?;
        self.flush().await?;
        let _ = ::tokio::time::timeout(wait, async {
            while let Ok(Some(_)) = self.next_event().await {}
        })
        .await;
        self.finish().await;
        Ok(())
    }
}
