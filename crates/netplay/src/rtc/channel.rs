//! Data channels: Godot's `WebRTCDataChannel` as a view that borrows its peer connection,
//! declared once for every platform.
//!
//! This module owns the public API and its documentation: [`DataChannel`], its handle
//! [`ChannelId`] and [`ChannelCounters`]. Each method forwards to the platform's channel,
//! chosen at compile time; natively that is the [engine](super::Engine)'s channel, whose
//! state and packet calls live in `engine_channel`. A platform implements the same methods,
//! and one that misses a method fails to compile here.

use std::fmt;

pub use crate::api::{ReadyState, WriteMode};

#[cfg(doc)]
use super::error::Error;
use super::error::Result;

/// The channel of the platform this build targets.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type PlatformChannel<'a> = super::engine_channel::EngineChannel<'a>;
#[cfg(target_arch = "wasm32")]
pub(crate) type PlatformChannel<'a> = super::web::WebChannel<'a>;

/// A data channel's handle, valid for the lifetime of its [`PeerConnection`](super::PeerConnection). Get the channel
/// with [`PeerConnection::channel`](super::PeerConnection::channel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId(pub(crate) u32);

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "channel#{}", self.0)
    }
}

/// Messages and bytes sent and received on one channel ([`DataChannel::counters`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelCounters {
    /// Messages given to the channel to send.
    pub messages_sent: u64,
    /// Payload bytes of those messages.
    pub bytes_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Payload bytes of those messages.
    pub bytes_received: u64,
}

/// Godot's `WebRTCDataChannel`: a view of one channel that borrows its [`PeerConnection`](super::PeerConnection).
///
/// Get it with [`PeerConnection::channel`](super::PeerConnection::channel) each time it is needed; keep the [`ChannelId`], not
/// the view. A channel that closed while its connection lives is forgotten at a later
/// `poll()`, once its stream is free and its received messages are taken: `channel()` then
/// returns `None` for it.
pub struct DataChannel<'a> {
    inner: PlatformChannel<'a>,
}

impl<'a> DataChannel<'a> {
    pub(crate) fn from_platform(inner: PlatformChannel<'a>) -> DataChannel<'a> {
        DataChannel { inner }
    }
}

impl DataChannel<'_> {
    /// This channel's handle.
    pub fn handle(&self) -> ChannelId {
        self.inner.handle()
    }

    /// Sends one message, as text or binary according to [`write_mode`](Self::write_mode).
    ///
    /// An empty message is sent as RFC 8831 says (one zero byte with the empty-message PPID)
    /// and arrives empty. Fails with [`Error::MessageTooLarge`] over the maximum message size
    /// agreed with the remote peer, with [`Error::BufferFull`] when the send buffer has no room (nothing is
    /// queued: retry when [`buffered_amount`](Self::buffered_amount) has dropped), and with
    /// [`Error::ChannelNotOpen`] unless the channel is open. The message leaves on the next
    /// `poll()`.
    pub fn put_packet(&mut self, data: &[u8]) -> Result<()> {
        self.inner.put_packet(data)
    }

    /// Sends one text message whatever the write mode.
    pub fn send_text(&mut self, text: &str) -> Result<()> {
        self.inner.send_text(text)
    }

    /// Sends one binary message whatever the write mode.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<()> {
        self.inner.send_binary(data)
    }

    /// Takes the next received message, or `None`. Received messages stay readable after
    /// the channel closed.
    pub fn get_packet(&mut self) -> Option<Vec<u8>> {
        self.inner.get_packet()
    }

    /// The number of received messages waiting in [`get_packet`](Self::get_packet).
    pub fn available_packet_count(&self) -> usize {
        self.inner.available_packet_count()
    }

    /// The bytes of the received messages waiting in [`get_packet`](Self::get_packet). While
    /// it is at least [`PeerConfig::max_channel_in_buffer`](super::PeerConfig), `poll()` reads
    /// nothing more from the network, unless data of this side awaits acknowledgement.
    pub fn available_bytes(&self) -> usize {
        self.inner.available_bytes()
    }

    /// Whether the message last taken by [`get_packet`](Self::get_packet) was sent as text.
    pub fn was_string_packet(&self) -> bool {
        self.inner.was_string_packet()
    }

    /// How [`put_packet`](Self::put_packet) sends (Godot's `write_mode`, binary by default).
    pub fn write_mode(&self) -> WriteMode {
        self.inner.write_mode()
    }

    /// Sets how [`put_packet`](Self::put_packet) sends.
    pub fn set_write_mode(&mut self, mode: WriteMode) {
        self.inner.set_write_mode(mode)
    }

    /// The ready state.
    pub fn ready_state(&self) -> ReadyState {
        self.inner.ready_state()
    }

    /// The label given at creation.
    pub fn label(&self) -> &str {
        self.inner.label()
    }

    /// The sub-protocol given at creation.
    pub fn protocol(&self) -> &str {
        self.inner.protocol()
    }

    /// The SCTP stream id: known at once for negotiated channels, once the association is up
    /// for in-band ones (`None` until then, where Godot returns -1 or 65535).
    pub fn id(&self) -> Option<u16> {
        self.inner.id()
    }

    /// Whether messages arrive in order.
    pub fn is_ordered(&self) -> bool {
        self.inner.is_ordered()
    }

    /// Whether the channel was negotiated out of band (both sides created it with one id).
    pub fn is_negotiated(&self) -> bool {
        self.inner.is_negotiated()
    }

    /// The retransmission limit of an unreliable channel (`None` where Godot returns -1).
    pub fn max_retransmits(&self) -> Option<u16> {
        self.inner.max_retransmits()
    }

    /// The lifetime limit in milliseconds of an unreliable channel (`None` where Godot
    /// returns -1).
    pub fn max_packet_life_time(&self) -> Option<u16> {
        self.inner.max_packet_life_time()
    }

    /// Bytes sent on this channel and not yet acknowledged by the remote peer: the back
    /// pressure signal. The send budget ([`PeerConfig::max_buffered_amount`](super::PeerConfig))
    /// is shared by all channels of the connection.
    pub fn buffered_amount(&self) -> usize {
        self.inner.buffered_amount()
    }

    /// The level of [`buffered_amount`](Self::buffered_amount) at or under which a fall
    /// from over it queues [`Event::BufferedAmountLow`](super::Event::BufferedAmountLow):
    /// 0 (everything acknowledged) until set.
    pub fn buffered_amount_low_threshold(&self) -> usize {
        self.inner.buffered_amount_low_threshold()
    }

    /// Sets the low-water mark of [`buffered_amount_low_threshold`](Self::buffered_amount_low_threshold)
    /// (a browser's `bufferedAmountLowThreshold`). A sender that fills the buffer until
    /// [`Error::BufferFull`] and waits for the event sends as fast as the path allows without
    /// polling the buffered amount. Setting it over what is buffered now queues no event:
    /// only a fall is reported.
    pub fn set_buffered_amount_low_threshold(&mut self, bytes: usize) {
        self.inner.set_buffered_amount_low_threshold(bytes)
    }

    /// Messages and bytes sent and received on this channel.
    pub fn counters(&self) -> ChannelCounters {
        self.inner.counters()
    }

    /// Closes the channel: [`Closing`](ReadyState::Closing) until the remote side confirms
    /// the stream reset, then [`Closed`](ReadyState::Closed). Messages already received stay
    /// readable.
    pub fn close(&mut self) {
        self.inner.close()
    }
}

impl fmt::Debug for DataChannel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}
