//! Godot's `WebSocketPeer`: one WebSocket, client or server side, driven by [`WebSocketPeer::poll`].
//!
//! The public API is declared here once: [`PeerOptions`], the [`WebSocketPeer`] struct, every
//! method's signature and documentation. The struct holds the value of the platform it is built
//! for and each method forwards to the method of the same name on it, so a platform that lacks
//! one fails to compile here; setters of options that only take effect at the next connection
//! write the options directly. Native builds use `native` (non-blocking std sockets, rustls);
//! `wasm32` builds use `web` (the browser's `WebSocket`). Framing rules live in
//! [`super::protocol`].

use crate::time::{Duration, Instant};
use std::net::{SocketAddr, TcpStream};

use crate::api::{ReadyState, WriteMode};

use super::handshake::{self, Request};
use super::Error;

#[cfg(feature = "deflate")]
use super::deflate::DeflateConfig;
#[cfg(all(feature = "tls", not(target_arch = "wasm32")))]
use super::tls::TlsOptions;

/// The platform value a [`WebSocketPeer`] forwards to.
#[cfg(not(target_arch = "wasm32"))]
type Platform = super::native::Peer;
#[cfg(target_arch = "wasm32")]
type Platform = super::web::Peer;

/// Options that are fixed once a connection starts (Godot's properties, plus netplay's own).
#[derive(Clone, Debug)]
pub struct PeerOptions {
    /// Sub-protocols requested (client) or accepted (server). Godot default: empty.
    pub supported_protocols: Vec<String>,
    /// Extra `Name: value` header lines for the request (client) or the 101 response (server).
    pub handshake_headers: Vec<String>,
    /// Largest inbound message in bytes; a larger one closes with 1009. Godot default: 65535.
    pub inbound_buffer_size: usize,
    /// Most bytes that may wait to be sent; `send` fails beyond it. Godot default: 65535.
    pub outbound_buffer_size: usize,
    /// Most messages queued in each direction. Godot default: 4096.
    pub max_queued_packets: usize,
    /// Interval between pings; a ping unanswered by the next tick closes uncleanly. `None`:
    /// no heartbeat (Godot's 0, and the default).
    pub heartbeat_interval: Option<Duration>,
    /// netplay: the longest the connect + TLS + HTTP handshake may take. Zero: no limit.
    pub handshake_timeout: Duration,
    /// netplay: the longest to wait for the peer's close frame after ours (then close unclean).
    pub close_timeout: Duration,
    /// netplay: the largest HTTP header block accepted in the handshake.
    pub max_handshake_size: usize,
    /// netplay: permessage-deflate (RFC 7692) to offer (client) or accept (server); `None`: off,
    /// which is Godot's behaviour.
    #[cfg(feature = "deflate")]
    pub compression: Option<DeflateConfig>,
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            supported_protocols: Vec::new(),
            handshake_headers: Vec::new(),
            inbound_buffer_size: 65535,
            outbound_buffer_size: 65535,
            max_queued_packets: 4096,
            heartbeat_interval: None,
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            max_handshake_size: handshake::DEFAULT_MAX_HANDSHAKE_SIZE,
            #[cfg(feature = "deflate")]
            compression: None,
        }
    }
}

/// A polled WebSocket, client or server side (Godot's `WebSocketPeer`).
///
/// ```no_run
/// use netplay::ws::{ReadyState, WebSocketPeer};
/// let mut ws = WebSocketPeer::new();
/// ws.connect_to_url("ws://127.0.0.1:9080", None).unwrap();
/// loop {
///     ws.poll();
///     match ws.ready_state() {
///         ReadyState::Open => {
///             while let Some(packet) = ws.get_packet() {
///                 println!("got {} bytes", packet.len());
///             }
///         }
///         ReadyState::Closed => break,
///         _ => {}
///     }
///     std::thread::sleep(std::time::Duration::from_millis(10));
/// }
/// ```
pub struct WebSocketPeer {
    inner: Platform,
}

impl Default for WebSocketPeer {
    fn default() -> Self {
        WebSocketPeer::new()
    }
}

impl std::fmt::Debug for WebSocketPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketPeer")
            .field("ready_state", &self.ready_state())
            .field("requested_url", &self.requested_url())
            .field("remote", &self.connected_addr())
            .finish()
    }
}

impl WebSocketPeer {
    /// A closed peer with Godot's default options.
    pub fn new() -> WebSocketPeer {
        WebSocketPeer {
            inner: Platform::new(),
        }
    }

    /// A closed peer with `options`.
    pub fn with_options(options: PeerOptions) -> WebSocketPeer {
        WebSocketPeer {
            inner: Platform::with_options(options),
        }
    }

    /// The options; changes apply to the next connection.
    pub fn options(&self) -> &PeerOptions {
        self.inner.options()
    }

    /// Mutable options; changes apply to the next connection.
    pub fn options_mut(&mut self) -> &mut PeerOptions {
        self.inner.options_mut()
    }

    /// Sets the sub-protocols to request (client) or accept (server).
    pub fn set_supported_protocols<I: IntoIterator<Item = S>, S: Into<String>>(&mut self, p: I) {
        self.inner.options_mut().supported_protocols = p.into_iter().map(Into::into).collect();
    }

    /// Sets extra handshake header lines (`"Name: value"`).
    ///
    /// Native only: a browser's WebSocket sends no headers of the caller's.
    pub fn set_handshake_headers<I: IntoIterator<Item = S>, S: Into<String>>(&mut self, h: I) {
        self.inner.options_mut().handshake_headers = h.into_iter().map(Into::into).collect();
    }

    /// Sets the largest inbound message (Godot's `inbound_buffer_size`).
    pub fn set_inbound_buffer_size(&mut self, bytes: usize) {
        self.inner.options_mut().inbound_buffer_size = bytes;
    }

    /// Sets the outbound byte limit (Godot's `outbound_buffer_size`).
    pub fn set_outbound_buffer_size(&mut self, bytes: usize) {
        self.inner.options_mut().outbound_buffer_size = bytes;
    }

    /// Sets the message-queue limit (Godot's `max_queued_packets`).
    pub fn set_max_queued_packets(&mut self, n: usize) {
        self.inner.options_mut().max_queued_packets = n.max(1);
    }

    /// Sets the heartbeat interval; `None` turns it off.
    ///
    /// Native only: a browser's WebSocket cannot send pings.
    pub fn set_heartbeat_interval(&mut self, interval: Option<Duration>) {
        self.inner.set_heartbeat_interval(interval)
    }

    /// Sets permessage-deflate (RFC 7692) for the next connection; `None` turns it off.
    ///
    /// Native only: a browser negotiates compression itself.
    #[cfg(feature = "deflate")]
    pub fn set_compression(&mut self, config: Option<DeflateConfig>) {
        self.inner.options_mut().compression = config;
    }

    /// Starts connecting to a `ws://` or `wss://` URL. Returns at once; `poll()` does the rest.
    ///
    /// `tls`: client TLS options for `wss://` (default: verify against the Mozilla roots).
    /// The `tls` argument is native only: a browser uses its own TLS and trusted roots.
    pub fn connect_to_url(
        &mut self,
        url: &str,
        #[cfg(all(feature = "tls", not(target_arch = "wasm32")))] tls: Option<TlsOptions>,
        #[cfg(not(all(feature = "tls", not(target_arch = "wasm32"))))] tls: Option<()>,
    ) -> Result<(), Error> {
        self.inner.connect_to_url(url, tls)
    }

    /// Server side: takes a TCP stream accepted from a listener and runs the server handshake
    /// on it (with TLS when `tls` holds server options).
    ///
    /// Native only: a browser cannot accept connections.
    pub fn accept_stream(
        &mut self,
        stream: TcpStream,
        #[cfg(all(feature = "tls", not(target_arch = "wasm32")))] tls: Option<&TlsOptions>,
        #[cfg(not(all(feature = "tls", not(target_arch = "wasm32"))))] tls: Option<()>,
    ) -> Result<(), Error> {
        self.inner.accept_stream(stream, tls)
    }

    /// The state, as Godot's `get_ready_state()`.
    pub fn ready_state(&self) -> ReadyState {
        self.inner.ready_state()
    }

    /// Drives everything: connect, handshake, reads, writes, heartbeat, timeouts, the close.
    pub fn poll(&mut self) {
        self.inner.poll()
    }

    /// [`poll`](Self::poll) with the caller's clock: the heartbeat, the handshake and close
    /// timeouts and the release of idle buffers run on the `now` given here (which must not
    /// go backwards), so a test can move time forward without waiting.
    pub fn poll_at(&mut self, now: Instant) {
        self.inner.poll_at(now)
    }

    /// Sends a message as text or binary. Text must be valid UTF-8.
    pub fn send(&mut self, data: &[u8], mode: WriteMode) -> Result<(), Error> {
        self.inner.send(data, mode)
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.inner.send_text(text)
    }

    /// Sends a binary message (Godot's `put_packet`).
    pub fn put_packet(&mut self, data: &[u8]) -> Result<(), Error> {
        self.inner.put_packet(data)
    }

    /// Pops the next received message, if any.
    pub fn get_packet(&mut self) -> Option<Vec<u8>> {
        self.inner.get_packet()
    }

    /// Whether the last message popped by [`WebSocketPeer::get_packet`] was text.
    pub fn was_string_packet(&self) -> bool {
        self.inner.was_string_packet()
    }

    /// Number of received messages waiting.
    pub fn available_packet_count(&self) -> usize {
        self.inner.available_packet_count()
    }

    /// Starts the close handshake with `code` and `reason` (at most 123 bytes). A negative code
    /// closes at once without telling the peer (Godot's semantics). Clears the inbound queue.
    pub fn close(&mut self, code: i32, reason: &str) -> Result<(), Error> {
        self.inner.close(code, reason)
    }

    /// The close code: the one received (or sent, after a protocol error), or -1 when the close
    /// was not clean. Meaningful in [`ReadyState::Closed`].
    pub fn close_code(&self) -> i32 {
        self.inner.close_code()
    }

    /// The close reason that goes with [`WebSocketPeer::close_code`].
    pub fn close_reason(&self) -> &str {
        self.inner.close_reason()
    }

    /// netplay: why the connection ended or failed, when it was not a normal close.
    pub fn last_error(&self) -> Option<&Error> {
        self.inner.last_error()
    }

    /// Client: the URL passed to `connect_to_url`. Server: `ws(s)://` + Host + path.
    pub fn requested_url(&self) -> &str {
        self.inner.requested_url()
    }

    /// The negotiated sub-protocol, or "".
    pub fn selected_protocol(&self) -> &str {
        self.inner.selected_protocol()
    }

    /// Server: the client's handshake request (path, headers), once received.
    ///
    /// Native only: a browser cannot accept connections, so it never receives a request.
    pub fn handshake_request(&self) -> Option<&Request> {
        self.inner.handshake_request()
    }

    /// The remote address, once connected.
    ///
    /// Native only: a browser does not expose the remote address.
    pub fn connected_addr(&self) -> Option<SocketAddr> {
        self.inner.connected_addr()
    }

    /// The remote IP as text ("" when not connected), as Godot's `get_connected_host()`.
    ///
    /// Native only: a browser does not expose the remote address.
    pub fn connected_host(&self) -> String {
        self.inner.connected_host()
    }

    /// The remote port (0 when not connected), as Godot's `get_connected_port()`.
    ///
    /// Native only: a browser does not expose the remote address.
    pub fn connected_port(&self) -> u16 {
        self.inner.connected_port()
    }

    /// Bytes queued to send, as Godot's `get_current_outbound_buffered_amount()`.
    pub fn current_outbound_buffered_amount(&self) -> usize {
        self.inner.current_outbound_buffered_amount()
    }

    /// Whether permessage-deflate is in use on this connection.
    pub fn is_compressed(&self) -> bool {
        self.inner.is_compressed()
    }

    /// Sets TCP_NODELAY (on by default, as in Godot).
    ///
    /// Native only: a browser does not expose its TCP socket.
    pub fn set_no_delay(&mut self, enabled: bool) {
        self.inner.set_no_delay(enabled)
    }
}
