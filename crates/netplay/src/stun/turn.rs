//! A TURN client over UDP (RFC 8656): one allocation on one server, its permissions and channel
//! bindings, and the relayed data.
//!
//! [`TurnClient`] is a fully deterministic state machine. It contains no networking code and
//! never reads a clock: the caller owns the UDP socket and passes in every datagram from the
//! server and the current [`Instant`], and sends what [`TurnClient::poll_transmit`] hands out.
//! Nothing happens between calls, so tests drive it faster than real time.
//!
//! This module owns the allocation's life: Allocate with the 401 realm/nonce challenge and the
//! long-term credential, 438 Stale Nonce retries, Refresh before LIFETIME runs out,
//! CreatePermission and ChannelBind with their own refreshes, Send/Data indications and
//! ChannelData, and deallocation. It does not own the wire format (the rest of
//! [`stun`](super)), the socket, nor ICE: the relayed address it reports becomes a `relay`
//! candidate in the WebRTC layer, which sends its checks and DTLS through
//! [`TurnClient::send_to`].
//!
//! Not supported: TCP/TLS transports to the server, TCP allocations (RFC 6062), dual-stack
//! allocations (ADDITIONAL-ADDRESS-FAMILY), EVEN-PORT/RESERVATION-TOKEN and 300 Try Alternate
//! redirects (reported as a failure with the error code).
//!
//! # The run loop
//!
//! ```no_run
//! use std::net::UdpSocket;
//! use std::time::Instant;
//! use netplay::stun::turn::{Handled, TurnClient, TurnEvent};
//!
//! let socket = UdpSocket::bind("0.0.0.0:0")?;
//! let server = "192.0.2.10:3478".parse().unwrap();
//! let mut turn = TurnClient::new(server, "user", "secret", Instant::now());
//! let mut buf = [0u8; 2048];
//! loop {
//!     while let Some(t) = turn.poll_transmit() {
//!         socket.send_to(&t.contents, t.destination)?;
//!     }
//!     while let Some(event) = turn.poll_event() {
//!         match event {
//!             TurnEvent::Allocated { relayed, .. } => {
//!                 println!("relayed at {relayed}");
//!                 let peer = "198.51.100.4:5000".parse().unwrap();
//!                 turn.bind_channel(peer, Instant::now()).ok();
//!             }
//!             TurnEvent::Data { peer, data } => println!("{peer} sent {} bytes", data.len()),
//!             other => println!("{other:?}"),
//!         }
//!     }
//!     let wait = turn.poll_timeout().map(|t| t.saturating_duration_since(Instant::now()));
//!     socket.set_read_timeout(Some(wait.unwrap_or_default().max(std::time::Duration::from_millis(1))))?;
//!     match socket.recv_from(&mut buf) {
//!         Ok((n, from)) => {
//!             if turn.handle_datagram(from, &buf[..n], Instant::now()) == Handled::NotMine {
//!                 // ICE, DTLS... on the same socket.
//!             }
//!         }
//!         Err(_) => turn.handle_timeout(Instant::now()),
//!     }
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

use crate::time::{Duration, Instant};
use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::{
    classify, verify_integrity, Action, Attribute, ChannelData, Class, ClientTransaction, Error,
    ErrorCode, Key, Message, Method, PacketKind, RetransmitSchedule, TransactionId,
    CHANNEL_NUMBERS, REQUESTED_TRANSPORT_UDP,
};

/// How long a permission lasts on the server (RFC 8656 §9): 300 s.
pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);

/// How long a channel binding lasts on the server (RFC 8656 §12): 600 s.
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);

/// When an installed permission is refreshed: a minute before it would lapse.
pub const PERMISSION_REFRESH: Duration = Duration::from_secs(240);

/// When a bound channel is refreshed: a minute before it would lapse.
pub const CHANNEL_REFRESH: Duration = Duration::from_secs(540);

/// The allocation lifetime assumed when a success response carries no LIFETIME (RFC 8656 §7.2's
/// default).
const DEFAULT_LIFETIME: u32 = 600;

/// How many 438 Stale Nonce answers one request may get before it counts as failed.
const MAX_STALE_NONCE_RETRIES: u8 = 3;

/// How many recently finished transaction IDs are remembered, so late duplicate responses are
/// recognised as this client's and dropped instead of passed on.
const RECENT_TRANSACTIONS: usize = 16;

/// The limits on the client's tables and queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TurnLimits {
    /// Peer IP addresses with a permission (or one being created).
    pub permissions: usize,
    /// Channel bindings.
    pub channels: usize,
    /// Requests in flight at once.
    pub transactions: usize,
    /// Datagrams waiting for [`TurnClient::poll_transmit`]. Past this, [`TurnClient::send_to`]
    /// fails and control messages wait for their retransmission.
    pub transmits: usize,
    /// Events waiting for [`TurnClient::poll_event`]. Past this, received data is dropped
    /// (counted by [`TurnClient::dropped_data`]); control events always fit, the oldest data
    /// event giving way.
    pub events: usize,
}

impl Default for TurnLimits {
    fn default() -> Self {
        TurnLimits {
            permissions: 128,
            channels: 128,
            transactions: 64,
            transmits: 256,
            events: 256,
        }
    }
}

/// How a [`TurnClient`] behaves. The default: the RFC 8489 retransmission schedule, the
/// server's default lifetime, no SOFTWARE, the default [`TurnLimits`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TurnConfig {
    /// The retransmission schedule of every request (RFC 8489 §6.2.1): by default a request
    /// gives up after 39.5 s.
    pub schedule: RetransmitSchedule,
    /// The allocation lifetime to ask for in seconds, or `None` for the server's default
    /// (600 s on most servers). The server may grant less.
    pub lifetime: Option<u32>,
    /// A SOFTWARE attribute for requests, or `None`.
    pub software: Option<String>,
    /// The limits on tables and queues.
    pub limits: TurnLimits,
}

/// One datagram to send to the TURN server from the socket the client is driven by.
#[derive(Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it: always the server's address.
    pub destination: SocketAddr,
    /// The datagram: a STUN message or a ChannelData frame.
    pub contents: Vec<u8>,
}

impl fmt::Debug for Transmit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transmit")
            .field("destination", &self.destination)
            .field("len", &self.contents.len())
            .finish()
    }
}

/// Where the allocation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TurnState {
    /// The Allocate request (and its credential retry) is in flight.
    Allocating,
    /// The server holds an allocation; data can be relayed.
    Allocated,
    /// [`TurnClient::close`] was called; the deallocating Refresh is in flight.
    Closing,
    /// Deallocated after [`TurnClient::close`].
    Closed,
    /// The Allocate request failed; see [`TurnEvent::AllocationFailed`].
    Failed,
    /// The allocation was lost: a Refresh was refused, or none succeeded before the lifetime
    /// ran out.
    Expired,
}

/// Why a request to the server failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TurnFailure {
    /// The server refused the credentials: 401 Unauthenticated to a request that carried them,
    /// or 441 Wrong Credentials. A wrong username or password.
    Unauthenticated(ErrorCode),
    /// Any other error response, with its code and reason phrase: 403 Forbidden (peer address
    /// not allowed), 437 Allocation Mismatch, 486 Allocation Quota Reached, 508 Insufficient
    /// Capacity, 438 after repeated stale nonces, 300 Try Alternate...
    Rejected(ErrorCode),
    /// No response within the retransmission schedule.
    Timeout,
    /// A response that authenticated but makes no sense: a success without the attribute it must
    /// carry, an error without ERROR-CODE, unknown comprehension-required attributes.
    InvalidResponse(&'static str),
    /// The request could not be encoded (credentials or SOFTWARE too long).
    Encode(Error),
}

impl fmt::Display for TurnFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TurnFailure::Unauthenticated(e) => {
                write!(f, "credentials refused: {} {}", e.code, e.reason)
            }
            TurnFailure::Rejected(e) => write!(f, "refused: {} {}", e.code, e.reason),
            TurnFailure::Timeout => f.write_str("no response from the TURN server"),
            TurnFailure::InvalidResponse(why) => write!(f, "invalid response: {why}"),
            TurnFailure::Encode(e) => write!(f, "request does not encode: {e}"),
        }
    }
}

impl TurnFailure {
    /// The error code of the server's response, if the failure was one.
    pub fn error_code(&self) -> Option<u16> {
        match self {
            TurnFailure::Unauthenticated(e) | TurnFailure::Rejected(e) => Some(e.code),
            _ => None,
        }
    }
}

/// Why a call on a [`TurnClient`] was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TurnError {
    /// The allocation is not ready yet (still [`TurnState::Allocating`]).
    #[error("the TURN allocation is not ready yet")]
    NotAllocated,
    /// The allocation is over: closing, closed, failed or expired.
    #[error("the TURN allocation is over ({0:?})")]
    Inactive(TurnState),
    /// The peer's address family differs from the relayed address's: a relayed IPv4 address
    /// reaches IPv4 peers only.
    #[error("peer {0} is not of the relayed address's family")]
    AddressFamily(SocketAddr),
    /// The permission table is full.
    #[error("more than {0} permissions")]
    TooManyPermissions(usize),
    /// The channel table is full, or every channel number has been used.
    #[error("no channel available (limit {0})")]
    TooManyChannels(usize),
    /// Too many requests are in flight.
    #[error("more than {0} requests in flight")]
    TooManyTransactions(usize),
    /// The transmit queue is full: drain [`TurnClient::poll_transmit`] first.
    #[error("the transmit queue is full ({0} datagrams)")]
    QueueFull(usize),
    /// The data does not fit a Send indication or ChannelData frame.
    #[error("data does not encode: {0}")]
    Encode(Error),
}

/// Something that happened to the allocation, from [`TurnClient::poll_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TurnEvent {
    /// The server granted an allocation.
    Allocated {
        /// The relayed transport address: the `relay` ICE candidate.
        relayed: SocketAddr,
        /// The client's address as the server saw it (XOR-MAPPED-ADDRESS): a server-reflexive
        /// (`srflx`) candidate for free. `None` if the server did not send it.
        mapped: Option<SocketAddr>,
        /// The lifetime the server granted; the client refreshes it by itself.
        lifetime: Duration,
    },
    /// The allocation could not be made; the client is [`TurnState::Failed`].
    AllocationFailed(TurnFailure),
    /// A Refresh succeeded.
    Refreshed {
        /// The lifetime granted from now.
        lifetime: Duration,
    },
    /// The first permission for this peer IP was installed (refreshes are silent).
    PermissionCreated {
        /// The peer's IP address; any port of it may now send to the relayed address.
        peer: IpAddr,
    },
    /// A CreatePermission failed (403 for a peer the server does not relay to, say).
    PermissionFailed {
        /// The peer's IP address.
        peer: IpAddr,
        /// Why.
        reason: TurnFailure,
    },
    /// A channel binding was confirmed: [`TurnClient::send_to`] now uses ChannelData for this
    /// peer (refreshes are silent).
    ChannelBound {
        /// The peer.
        peer: SocketAddr,
        /// The channel number, in [`CHANNEL_NUMBERS`].
        channel: u16,
    },
    /// A ChannelBind failed, or its refresh did; data to the peer goes in Send indications.
    ChannelBindFailed {
        /// The peer.
        peer: SocketAddr,
        /// Why.
        reason: TurnFailure,
    },
    /// A peer sent data to the relayed address (a Data indication or ChannelData).
    Data {
        /// The peer's address.
        peer: SocketAddr,
        /// The payload.
        data: Vec<u8>,
    },
    /// The allocation was lost: a Refresh was refused, or none succeeded in time. The client is
    /// [`TurnState::Expired`]; make a new one to go on relaying.
    Expired,
    /// The allocation was released after [`TurnClient::close`].
    Closed,
}

/// What [`TurnClient::handle_datagram`] did with a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    /// The datagram was this client's and was processed: poll events and transmits.
    Consumed,
    /// The datagram came from the server but was refused: malformed, a response whose integrity
    /// does not check (the request keeps retransmitting), data on an unknown channel, a late
    /// duplicate. It must not be handed on.
    Dropped,
    /// Not this client's: another source, or a STUN message that answers none of its requests.
    /// Hand it to the next protocol on the socket (ICE, DTLS).
    NotMine,
}

/// What a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    Allocate,
    Refresh { lifetime: u32 },
    Permission { peer: SocketAddr },
    Bind { peer: SocketAddr, channel: u16 },
}

/// A request in flight.
struct Pending {
    purpose: Purpose,
    tx: ClientTransaction,
    /// The key it was signed with, which its response must be signed with.
    key: Option<Key>,
    stale_retries: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Install {
    /// The first request is in flight.
    Pending,
    /// Installed (a refresh may be in flight).
    Installed,
    /// The last request failed.
    Failed,
}

struct Permission {
    ip: IpAddr,
    /// The address the permission was asked for, sent again in its refreshes.
    peer: SocketAddr,
    state: Install,
    refresh_at: Option<Instant>,
    in_flight: bool,
}

struct Channel {
    peer: SocketAddr,
    number: u16,
    state: Install,
    refresh_at: Option<Instant>,
    in_flight: bool,
}

/// A TURN client over UDP: one allocation on one server. See the [module docs](self).
pub struct TurnClient {
    server: SocketAddr,
    username: String,
    password: String,
    config: TurnConfig,
    state: TurnState,
    close_requested: bool,
    realm: Option<String>,
    nonce: Option<String>,
    key: Option<Key>,
    relayed: Option<SocketAddr>,
    mapped: Option<SocketAddr>,
    refresh_at: Option<Instant>,
    expires_at: Option<Instant>,
    refresh_in_flight: bool,
    pending: Vec<Pending>,
    recent: VecDeque<TransactionId>,
    permissions: Vec<Permission>,
    channels: Vec<Channel>,
    next_channel: u16,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TurnEvent>,
    dropped_data: u64,
}

impl fmt::Debug for TurnClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnClient")
            .field("server", &self.server)
            .field("state", &self.state)
            .field("relayed", &self.relayed)
            .field("permissions", &self.permissions.len())
            .field("channels", &self.channels.len())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl TurnClient {
    /// A client that starts allocating at `now` on `server` with long-term credentials: the
    /// first Allocate is ready in [`TurnClient::poll_transmit`].
    pub fn new(server: SocketAddr, username: &str, password: &str, now: Instant) -> TurnClient {
        TurnClient::with_config(server, username, password, TurnConfig::default(), now)
    }

    /// [`TurnClient::new`] with a configuration.
    pub fn with_config(
        server: SocketAddr,
        username: &str,
        password: &str,
        config: TurnConfig,
        now: Instant,
    ) -> TurnClient {
        let mut client = TurnClient {
            server,
            username: username.to_owned(),
            password: password.to_owned(),
            config,
            state: TurnState::Allocating,
            close_requested: false,
            realm: None,
            nonce: None,
            key: None,
            relayed: None,
            mapped: None,
            refresh_at: None,
            expires_at: None,
            refresh_in_flight: false,
            pending: Vec::new(),
            recent: VecDeque::new(),
            permissions: Vec::new(),
            channels: Vec::new(),
            next_channel: *CHANNEL_NUMBERS.start(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            dropped_data: 0,
        };
        if let Err(failure) = client.start(Purpose::Allocate, 0, now) {
            client.fail(Purpose::Allocate, failure, now);
        }
        client
    }

    /// The server's address: where every transmit goes and the source of its datagrams.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// Where the allocation stands.
    pub fn state(&self) -> TurnState {
        self.state
    }

    /// The relayed transport address, once allocated.
    pub fn relayed_address(&self) -> Option<SocketAddr> {
        self.relayed
    }

    /// The client's address as the server saw it, once allocated (if the server reported it).
    pub fn mapped_address(&self) -> Option<SocketAddr> {
        self.mapped
    }

    /// The realm the server challenged with, once it did.
    pub fn realm(&self) -> Option<&str> {
        self.realm.as_deref()
    }

    /// Whether a permission for `ip` is installed on the server.
    pub fn has_permission(&self, ip: IpAddr) -> bool {
        self.permissions
            .iter()
            .any(|p| p.ip == ip && p.state == Install::Installed)
    }

    /// The channel confirmed for `peer`, if any: data to it goes as ChannelData.
    pub fn channel(&self, peer: SocketAddr) -> Option<u16> {
        self.channels
            .iter()
            .find(|c| c.peer == peer && c.state == Install::Installed)
            .map(|c| c.number)
    }

    /// How many received datagrams were dropped because the event queue was full.
    pub fn dropped_data(&self) -> u64 {
        self.dropped_data
    }

    /// The next datagram to send to the server.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<TurnEvent> {
        self.events.pop_front()
    }

    /// When [`TurnClient::handle_timeout`] has something to do: a retransmission, a request
    /// giving up, a refresh due, the allocation expiring. `None` once the allocation is over.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for p in &self.pending {
            consider(p.tx.next_timeout());
        }
        if self.state == TurnState::Allocated {
            if !self.refresh_in_flight {
                consider(self.refresh_at);
            }
            consider(self.expires_at);
            for p in self.permissions.iter().filter(|p| !p.in_flight) {
                consider(p.refresh_at);
            }
            for c in self.channels.iter().filter(|c| !c.in_flight) {
                consider(c.refresh_at);
            }
        }
        next
    }

    /// Advances the clock to `now`: retransmits, gives up on requests, refreshes the
    /// allocation, permissions and channels when due, and notices expiry. Call it at
    /// [`TurnClient::poll_timeout`]; calling it at other times is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.drive(now);
        if self.state != TurnState::Allocated {
            return;
        }
        if self.expires_at.is_some_and(|t| now >= t) {
            self.expire();
            return;
        }
        if !self.refresh_in_flight && self.refresh_at.is_some_and(|t| now >= t) {
            let lifetime = self.config.lifetime.unwrap_or(DEFAULT_LIFETIME).max(1);
            self.start_or_report(Purpose::Refresh { lifetime }, now);
        }
        let due: Vec<SocketAddr> = self
            .permissions
            .iter()
            .filter(|p| !p.in_flight && p.refresh_at.is_some_and(|t| now >= t))
            .map(|p| p.peer)
            .collect();
        for peer in due {
            self.start_or_report(Purpose::Permission { peer }, now);
        }
        let due: Vec<(SocketAddr, u16)> = self
            .channels
            .iter()
            .filter(|c| !c.in_flight && c.refresh_at.is_some_and(|t| now >= t))
            .map(|c| (c.peer, c.number))
            .collect();
        for (peer, channel) in due {
            self.start_or_report(Purpose::Bind { peer, channel }, now);
        }
    }

    /// Offers a datagram received on the socket from `from`. Datagrams from anyone but the
    /// server, and STUN messages that answer none of this client's requests, are
    /// [`Handled::NotMine`]: hand them on to ICE or DTLS. Never panics, whatever the bytes.
    pub fn handle_datagram(&mut self, from: SocketAddr, bytes: &[u8], now: Instant) -> Handled {
        if from != self.server {
            return Handled::NotMine;
        }
        match classify(bytes) {
            PacketKind::ChannelData => self.handle_channel_data(bytes),
            PacketKind::Stun => self.handle_stun(bytes, now),
            _ => Handled::NotMine,
        }
    }

    /// Asks the server to let `peer`'s IP address (any port) send to the relayed address, and
    /// keeps the permission refreshed. Nothing is sent if one exists already.
    /// [`TurnClient::send_to`] and [`TurnClient::bind_channel`] call this themselves.
    pub fn create_permission(&mut self, peer: SocketAddr, now: Instant) -> Result<(), TurnError> {
        self.check_peer(peer)?;
        let ip = peer.ip();
        if let Some(p) = self.permissions.iter().find(|p| p.ip == ip) {
            if p.state != Install::Failed || p.in_flight {
                return Ok(());
            }
        } else if self.permissions.len() >= self.config.limits.permissions {
            return Err(TurnError::TooManyPermissions(
                self.config.limits.permissions,
            ));
        }
        self.check_transaction_room()?;
        if !self.permissions.iter().any(|p| p.ip == ip) {
            self.permissions.push(Permission {
                ip,
                peer,
                state: Install::Pending,
                refresh_at: None,
                in_flight: false,
            });
        }
        self.start_or_report(Purpose::Permission { peer }, now);
        Ok(())
    }

    /// Binds a channel to `peer` (and creates a permission for its IP), so data to and from it
    /// travels as ChannelData, 4 bytes of overhead instead of 36. Until
    /// [`TurnEvent::ChannelBound`], [`TurnClient::send_to`] uses Send indications. Returns the
    /// channel number; binding a peer that has one returns it.
    pub fn bind_channel(&mut self, peer: SocketAddr, now: Instant) -> Result<u16, TurnError> {
        self.check_peer(peer)?;
        if let Some(c) = self.channels.iter().find(|c| c.peer == peer) {
            return Ok(c.number);
        }
        let limit = self.config.limits.channels;
        if self.channels.len() >= limit || self.next_channel > *CHANNEL_NUMBERS.end() {
            return Err(TurnError::TooManyChannels(limit));
        }
        self.create_permission(peer, now)?;
        self.check_transaction_room()?;
        // Numbers are never reused: RFC 8656 §12 keeps a number tied to its peer for five
        // minutes after the binding lapses.
        let channel = self.next_channel;
        self.next_channel += 1;
        self.channels.push(Channel {
            peer,
            number: channel,
            state: Install::Pending,
            refresh_at: None,
            in_flight: false,
        });
        self.start_or_report(Purpose::Bind { peer, channel }, now);
        Ok(channel)
    }

    /// Relays `data` to `peer` from the relayed address: as ChannelData on a confirmed channel,
    /// otherwise in a Send indication. Creates a permission for the peer's IP first if there is
    /// none; the server drops data to a peer until its permission is installed, which is fine for
    /// ICE checks (they retransmit).
    pub fn send_to(
        &mut self,
        peer: SocketAddr,
        data: &[u8],
        now: Instant,
    ) -> Result<(), TurnError> {
        self.check_peer(peer)?;
        if self.transmits.len() >= self.config.limits.transmits {
            return Err(TurnError::QueueFull(self.config.limits.transmits));
        }
        if !self.permissions.iter().any(|p| p.ip == peer.ip()) {
            self.create_permission(peer, now)?;
        }
        let contents = match self.channel(peer) {
            Some(channel) => ChannelData { channel, data }.encode(false),
            None => Message::indication(Method::Send)
                .with(Attribute::XorPeerAddress(peer))
                .with(Attribute::Data(data.to_vec()))
                .encode(None, false),
        }
        .map_err(TurnError::Encode)?;
        if self.transmits.len() >= self.config.limits.transmits {
            return Err(TurnError::QueueFull(self.config.limits.transmits));
        }
        self.transmits.push_back(Transmit {
            destination: self.server,
            contents,
        });
        Ok(())
    }

    /// Releases the allocation: a Refresh with LIFETIME 0, then [`TurnEvent::Closed`] when the
    /// server answers or the request gives up. Permissions and channels are dropped at once.
    /// During allocation, the allocation is released as soon as it is granted.
    pub fn close(&mut self, now: Instant) {
        match self.state {
            TurnState::Allocating => {
                self.close_requested = true;
                self.state = TurnState::Closing;
            }
            TurnState::Allocated => {
                self.forget_pending();
                self.permissions.clear();
                self.channels.clear();
                self.refresh_in_flight = false;
                self.state = TurnState::Closing;
                self.start_or_report(Purpose::Refresh { lifetime: 0 }, now);
            }
            _ => {}
        }
    }

    // ------------------------------------------------------------------------------------------

    fn check_peer(&self, peer: SocketAddr) -> Result<(), TurnError> {
        match self.state {
            TurnState::Allocated => {}
            TurnState::Allocating => return Err(TurnError::NotAllocated),
            other => return Err(TurnError::Inactive(other)),
        }
        match self.relayed {
            Some(relayed) if relayed.is_ipv4() == peer.is_ipv4() => Ok(()),
            _ => Err(TurnError::AddressFamily(peer)),
        }
    }

    fn check_transaction_room(&self) -> Result<(), TurnError> {
        if self.pending.len() >= self.config.limits.transactions {
            return Err(TurnError::TooManyTransactions(
                self.config.limits.transactions,
            ));
        }
        Ok(())
    }

    /// The request for `purpose`, with the credentials if the server has challenged.
    fn build(&self, purpose: Purpose) -> Message {
        let mut m = Message::request(match purpose {
            Purpose::Allocate => Method::Allocate,
            Purpose::Refresh { .. } => Method::Refresh,
            Purpose::Permission { .. } => Method::CreatePermission,
            Purpose::Bind { .. } => Method::ChannelBind,
        });
        match purpose {
            Purpose::Allocate => {
                m = m.with(Attribute::RequestedTransport(REQUESTED_TRANSPORT_UDP));
                if let Some(lifetime) = self.config.lifetime {
                    m = m.with(Attribute::Lifetime(lifetime));
                }
            }
            Purpose::Refresh { lifetime } => m = m.with(Attribute::Lifetime(lifetime)),
            Purpose::Permission { peer } => m = m.with(Attribute::XorPeerAddress(peer)),
            Purpose::Bind { peer, channel } => {
                m = m
                    .with(Attribute::ChannelNumber(channel))
                    .with(Attribute::XorPeerAddress(peer));
            }
        }
        if let Some(software) = &self.config.software {
            m = m.with(Attribute::Software(software.clone()));
        }
        if let (Some(realm), Some(nonce)) = (&self.realm, &self.nonce) {
            m = m
                .with(Attribute::Username(self.username.clone()))
                .with(Attribute::Realm(realm.clone()))
                .with(Attribute::Nonce(nonce.clone()));
        }
        m
    }

    /// Starts a request and sends its first transmission.
    fn start(
        &mut self,
        purpose: Purpose,
        stale_retries: u8,
        now: Instant,
    ) -> Result<(), TurnFailure> {
        let message = self.build(purpose);
        let key = self.key.clone();
        let tx = ClientTransaction::new(&message, key.as_ref(), self.config.schedule)
            .map_err(TurnFailure::Encode)?;
        match purpose {
            Purpose::Refresh { .. } => self.refresh_in_flight = true,
            Purpose::Permission { peer } => {
                if let Some(p) = self.permissions.iter_mut().find(|p| p.ip == peer.ip()) {
                    p.in_flight = true;
                }
            }
            Purpose::Bind { channel, .. } => {
                if let Some(c) = self.channels.iter_mut().find(|c| c.number == channel) {
                    c.in_flight = true;
                }
            }
            Purpose::Allocate => {}
        }
        self.pending.push(Pending {
            purpose,
            tx,
            key,
            stale_retries,
        });
        self.drive(now);
        Ok(())
    }

    /// [`TurnClient::start`], reporting a request that does not encode as its failure.
    fn start_or_report(&mut self, purpose: Purpose, now: Instant) {
        if let Err(failure) = self.start(purpose, 0, now) {
            self.fail(purpose, failure, now);
        }
    }

    /// Runs every transaction's schedule up to `now`.
    fn drive(&mut self, now: Instant) {
        let mut timed_out = Vec::new();
        let limit = self.config.limits.transmits;
        for (i, p) in self.pending.iter_mut().enumerate() {
            loop {
                match p.tx.poll(now) {
                    Action::Transmit(bytes) => {
                        // A full queue loses this copy; the next retransmission makes up for it.
                        if self.transmits.len() < limit {
                            self.transmits.push_back(Transmit {
                                destination: self.server,
                                contents: bytes.to_vec(),
                            });
                        }
                    }
                    Action::WaitUntil(_) | Action::Completed => break,
                    Action::TimedOut => {
                        timed_out.push(i);
                        break;
                    }
                }
            }
        }
        for i in timed_out.into_iter().rev() {
            let p = self.pending.remove(i);
            self.remember(p.tx.transaction_id());
            self.fail(p.purpose, TurnFailure::Timeout, now);
        }
    }

    /// Abandons every request in flight, remembering their IDs so late answers are dropped.
    fn forget_pending(&mut self) {
        for p in std::mem::take(&mut self.pending) {
            self.remember(p.tx.transaction_id());
        }
    }

    fn remember(&mut self, id: TransactionId) {
        if self.recent.len() >= RECENT_TRANSACTIONS {
            self.recent.pop_front();
        }
        self.recent.push_back(id);
    }

    fn handle_channel_data(&mut self, bytes: &[u8]) -> Handled {
        let Ok(frame) = ChannelData::decode(bytes) else {
            return Handled::Dropped;
        };
        if !matches!(self.state, TurnState::Allocated) {
            return Handled::Dropped;
        }
        // A frame may beat the ChannelBind success response, so a pending binding counts.
        let Some(peer) = self
            .channels
            .iter()
            .find(|c| c.number == frame.channel && c.state != Install::Failed)
            .map(|c| c.peer)
        else {
            return Handled::Dropped;
        };
        self.push_data(peer, frame.data.to_vec());
        Handled::Consumed
    }

    fn handle_stun(&mut self, bytes: &[u8], now: Instant) -> Handled {
        let Ok(message) = Message::decode(bytes) else {
            return Handled::Dropped;
        };
        match message.typ.class {
            Class::Indication if message.typ.method == Method::Data => {
                if self.state != TurnState::Allocated {
                    return Handled::Dropped;
                }
                match (message.xor_peer_address(), message.data()) {
                    (Some(peer), Some(data)) => {
                        self.push_data(peer, data.to_vec());
                        Handled::Consumed
                    }
                    _ => Handled::Dropped,
                }
            }
            Class::Success | Class::Error => self.handle_response(bytes, &message, now),
            _ => Handled::NotMine,
        }
    }

    fn handle_response(&mut self, bytes: &[u8], message: &Message, now: Instant) -> Handled {
        let Some(i) = self.pending.iter().position(|p| p.tx.matches(message)) else {
            if self.recent.contains(&message.transaction_id) {
                return Handled::Dropped;
            }
            return Handled::NotMine;
        };
        if !authentic(bytes, message, self.pending[i].key.as_ref()) {
            return Handled::Dropped;
        }
        let mut p = self.pending.remove(i);
        p.tx.handle_response(message);
        self.remember(p.tx.transaction_id());
        self.clear_in_flight(p.purpose);
        if !message.unknown_comprehension_required().is_empty() {
            let failure = TurnFailure::InvalidResponse("unknown comprehension-required attribute");
            self.fail(p.purpose, failure, now);
            return Handled::Consumed;
        }
        if message.typ.class == Class::Success {
            self.succeed(p.purpose, message, now);
            return Handled::Consumed;
        }
        let Some(error) = message.error_code().cloned() else {
            let failure = TurnFailure::InvalidResponse("error response without ERROR-CODE");
            self.fail(p.purpose, failure, now);
            return Handled::Consumed;
        };
        match error.code {
            ErrorCode::UNAUTHENTICATED if p.key.is_none() => {
                match (message.realm(), message.nonce()) {
                    (Some(realm), Some(nonce)) => {
                        self.key = Some(Key::long_term(&self.username, realm, &self.password));
                        self.realm = Some(realm.to_owned());
                        self.nonce = Some(nonce.to_owned());
                        self.retry(p.purpose, p.stale_retries, now);
                    }
                    _ => self.fail(
                        p.purpose,
                        TurnFailure::InvalidResponse("401 without REALM and NONCE"),
                        now,
                    ),
                }
            }
            ErrorCode::UNAUTHENTICATED | ErrorCode::WRONG_CREDENTIALS => {
                self.fail(p.purpose, TurnFailure::Unauthenticated(error), now);
            }
            ErrorCode::STALE_NONCE if p.stale_retries < MAX_STALE_NONCE_RETRIES => {
                let Some(nonce) = message.nonce() else {
                    let failure = TurnFailure::InvalidResponse("438 without NONCE");
                    self.fail(p.purpose, failure, now);
                    return Handled::Consumed;
                };
                self.nonce = Some(nonce.to_owned());
                if let Some(realm) = message.realm() {
                    if self.realm.as_deref() != Some(realm) {
                        self.key = Some(Key::long_term(&self.username, realm, &self.password));
                        self.realm = Some(realm.to_owned());
                    }
                }
                self.retry(p.purpose, p.stale_retries + 1, now);
            }
            _ => self.fail(p.purpose, TurnFailure::Rejected(error), now),
        }
        Handled::Consumed
    }

    fn retry(&mut self, purpose: Purpose, stale_retries: u8, now: Instant) {
        if let Err(failure) = self.start(purpose, stale_retries, now) {
            self.fail(purpose, failure, now);
        }
    }

    fn clear_in_flight(&mut self, purpose: Purpose) {
        match purpose {
            Purpose::Refresh { .. } => self.refresh_in_flight = false,
            Purpose::Permission { peer } => {
                if let Some(p) = self.permissions.iter_mut().find(|p| p.ip == peer.ip()) {
                    p.in_flight = false;
                }
            }
            Purpose::Bind { channel, .. } => {
                if let Some(c) = self.channels.iter_mut().find(|c| c.number == channel) {
                    c.in_flight = false;
                }
            }
            Purpose::Allocate => {}
        }
    }

    fn succeed(&mut self, purpose: Purpose, message: &Message, now: Instant) {
        match purpose {
            Purpose::Allocate => {
                let Some(relayed) = message.xor_relayed_address() else {
                    let failure = TurnFailure::InvalidResponse("no XOR-RELAYED-ADDRESS");
                    self.fail(purpose, failure, now);
                    return;
                };
                self.relayed = Some(relayed);
                self.mapped = message.xor_mapped_address();
                if self.close_requested {
                    // Allocated after close(): release it at once.
                    self.start_or_report(Purpose::Refresh { lifetime: 0 }, now);
                    return;
                }
                let lifetime =
                    self.set_lifetime(message.lifetime().unwrap_or(DEFAULT_LIFETIME), now);
                self.state = TurnState::Allocated;
                self.push_event(TurnEvent::Allocated {
                    relayed,
                    mapped: self.mapped,
                    lifetime,
                });
            }
            Purpose::Refresh { lifetime: 0 } => self.finish_close(),
            Purpose::Refresh { lifetime } => {
                if self.state != TurnState::Allocated {
                    return;
                }
                let granted = message.lifetime().unwrap_or(lifetime);
                if granted == 0 {
                    self.expire();
                    return;
                }
                let lifetime = self.set_lifetime(granted, now);
                self.push_event(TurnEvent::Refreshed { lifetime });
            }
            Purpose::Permission { peer } => {
                let Some(p) = self.permissions.iter_mut().find(|p| p.ip == peer.ip()) else {
                    return;
                };
                let first = p.state != Install::Installed;
                p.state = Install::Installed;
                p.refresh_at = now.checked_add(PERMISSION_REFRESH);
                if first {
                    self.push_event(TurnEvent::PermissionCreated { peer: peer.ip() });
                }
            }
            Purpose::Bind { peer, channel } => {
                let Some(c) = self.channels.iter_mut().find(|c| c.number == channel) else {
                    return;
                };
                let first = c.state != Install::Installed;
                c.state = Install::Installed;
                c.refresh_at = now.checked_add(CHANNEL_REFRESH);
                if first {
                    self.push_event(TurnEvent::ChannelBound { peer, channel });
                }
            }
        }
    }

    /// Records a granted lifetime in seconds and schedules the refresh: at half of it, which
    /// for any lifetime of two minutes or more is also the sooner of half and a minute before it
    /// lapses (for shorter ones, a minute before would leave too little or no time), and never
    /// sooner than a second from now.
    fn set_lifetime(&mut self, seconds: u32, now: Instant) -> Duration {
        let lifetime = Duration::from_secs(u64::from(seconds));
        let refresh_in = refresh_delay(lifetime);
        self.expires_at = now.checked_add(lifetime);
        self.refresh_at = now.checked_add(refresh_in);
        lifetime
    }

    fn fail(&mut self, purpose: Purpose, failure: TurnFailure, now: Instant) {
        self.clear_in_flight(purpose);
        match purpose {
            Purpose::Allocate => {
                self.forget_pending();
                if self.close_requested {
                    self.finish_close();
                } else {
                    self.state = TurnState::Failed;
                    self.push_event(TurnEvent::AllocationFailed(failure));
                }
            }
            Purpose::Refresh { lifetime: 0 } => self.finish_close(),
            Purpose::Refresh { .. } => {
                if self.state != TurnState::Allocated {
                    return;
                }
                match failure {
                    // Lost in the network: try again until the lifetime runs out.
                    TurnFailure::Timeout if self.expires_at.is_some_and(|t| now < t) => {
                        self.refresh_at = Some(now);
                    }
                    _ => self.expire(),
                }
            }
            Purpose::Permission { peer } => {
                let Some(p) = self.permissions.iter_mut().find(|p| p.ip == peer.ip()) else {
                    return;
                };
                p.state = Install::Failed;
                p.refresh_at = None;
                self.push_event(TurnEvent::PermissionFailed {
                    peer: peer.ip(),
                    reason: failure,
                });
            }
            Purpose::Bind { peer, channel } => {
                self.channels.retain(|c| c.number != channel);
                self.push_event(TurnEvent::ChannelBindFailed {
                    peer,
                    reason: failure,
                });
            }
        }
    }

    fn expire(&mut self) {
        self.clear_allocation();
        self.state = TurnState::Expired;
        self.push_event(TurnEvent::Expired);
    }

    fn finish_close(&mut self) {
        self.clear_allocation();
        self.state = TurnState::Closed;
        self.push_event(TurnEvent::Closed);
    }

    fn clear_allocation(&mut self) {
        self.forget_pending();
        self.permissions.clear();
        self.channels.clear();
        self.refresh_at = None;
        self.expires_at = None;
        self.refresh_in_flight = false;
    }

    fn push_data(&mut self, peer: SocketAddr, data: Vec<u8>) {
        // Room is kept for the control events, which are few.
        let room = self
            .config
            .limits
            .events
            .saturating_sub(self.config.limits.events / 8);
        if self.events.len() >= room {
            self.dropped_data += 1;
            return;
        }
        self.events.push_back(TurnEvent::Data { peer, data });
    }

    fn push_event(&mut self, event: TurnEvent) {
        if self.events.len() >= self.config.limits.events.max(1) {
            let oldest_data = self
                .events
                .iter()
                .position(|e| matches!(e, TurnEvent::Data { .. }))
                .unwrap_or(0);
            if matches!(
                self.events.remove(oldest_data),
                Some(TurnEvent::Data { .. })
            ) {
                self.dropped_data += 1;
            }
        }
        self.events.push_back(event);
    }
}

/// When to refresh an allocation granted for `lifetime`: see `TurnClient::set_lifetime`.
fn refresh_delay(lifetime: Duration) -> Duration {
    (lifetime / 2).max(Duration::from_secs(1))
}

/// Whether a response may be believed (RFC 8489 §9.2.5): to a request signed with `key`, a
/// response must carry a MESSAGE-INTEGRITY that checks under the same key, except 401 and 438,
/// which a server sends unsigned when it rejects the credentials or the nonce. A response to an
/// unsigned request has nothing to check.
fn authentic(bytes: &[u8], message: &Message, key: Option<&Key>) -> bool {
    let Some(key) = key else {
        return true;
    };
    if message.has_integrity() {
        return verify_integrity(bytes, key);
    }
    message.typ.class == Class::Error
        && matches!(
            message.error_code().map(|e| e.code),
            Some(ErrorCode::UNAUTHENTICATED | ErrorCode::STALE_NONCE)
        )
}
