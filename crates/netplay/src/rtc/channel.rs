//! Data channels: Godot's `WebRTCDataChannel` as a borrowing view into its peer connection.
//!
//! This module owns a channel's own state (ready state, stream id, inbound queue, write mode,
//! counters, the close handshake's progress) and the packet calls. The SCTP stream itself
//! lives in the peer connection's association; a [`DataChannel`] borrows the connection for
//! the time of a call, so there is no shared ownership and no locking.

use crate::time::Duration;
use std::collections::VecDeque;
use std::fmt;

use super::dcep::{self, ChannelReliability};
use super::engine::Engine;
pub use crate::api::{ReadyState, WriteMode};

use super::error::{Error, Result};
use super::sctp::{Reliability, SendError};

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

/// Where a channel is in its life, with what each stage needs to know. Godot's
/// [`ReadyState`] is derived from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChannelState {
    /// Not open on the wire yet: waits for the association, or for room to send its
    /// DATA_CHANNEL_OPEN.
    Connecting,
    /// Open on its stream. `awaiting_ack`: an in-band channel whose DATA_CHANNEL_OPEN is not
    /// acknowledged yet sends ordered (RFC 8832 §6), whatever it asked for.
    Open { awaiting_ack: bool },
    /// Our outgoing side's reset was asked for (RFC 8831 §6.7); closed once both sides of the
    /// stream are reset.
    Closing {
        incoming_reset: bool,
        outgoing_reset: bool,
    },
    /// Closed for good. `stream_taken`: the stream could not be reset (the peer refused, or
    /// the connection ended first) and is not free for another channel.
    Closed { stream_taken: bool },
}

impl ChannelState {
    pub(crate) fn ready_state(self) -> ReadyState {
        match self {
            ChannelState::Connecting => ReadyState::Connecting,
            ChannelState::Open { .. } => ReadyState::Open,
            ChannelState::Closing { .. } => ReadyState::Closing,
            ChannelState::Closed { .. } => ReadyState::Closed,
        }
    }

    /// Whether the channel's stream is in use in the association.
    pub(crate) fn stream_busy(self) -> bool {
        matches!(
            self,
            ChannelState::Open { .. }
                | ChannelState::Closing { .. }
                | ChannelState::Closed { stream_taken: true }
        )
    }
}

#[derive(Debug)]
pub(crate) struct Packet {
    pub(crate) data: Vec<u8>,
    pub(crate) binary: bool,
}

/// Everything the peer connection keeps about one channel.
#[derive(Debug)]
pub(crate) struct ChannelEntry {
    pub(crate) label: String,
    pub(crate) protocol: String,
    pub(crate) ordered: bool,
    pub(crate) negotiated: Option<u16>,
    pub(crate) max_retransmits: Option<u16>,
    pub(crate) max_packet_life_time: Option<u16>,
    /// The SCTP stream: the negotiated id, or the one given when the association came up.
    pub(crate) stream_id: Option<u16>,
    pub(crate) state: ChannelState,
    pub(crate) write_mode: WriteMode,
    pub(crate) inbound: VecDeque<Packet>,
    pub(crate) inbound_bytes: usize,
    pub(crate) last_was_string: bool,
    pub(crate) messages_sent: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) messages_received: u64,
    pub(crate) bytes_received: u64,
}

impl ChannelEntry {
    pub(crate) fn new(label: String, options: &super::DataChannelOptions) -> ChannelEntry {
        ChannelEntry {
            label,
            protocol: options.protocol.clone(),
            ordered: options.ordered,
            negotiated: options.negotiated_id,
            max_retransmits: options.max_retransmits,
            max_packet_life_time: options.max_packet_life_time,
            stream_id: options.negotiated_id,
            state: ChannelState::Connecting,
            write_mode: WriteMode::Binary,
            inbound: VecDeque::new(),
            inbound_bytes: 0,
            last_was_string: false,
            messages_sent: 0,
            bytes_sent: 0,
            messages_received: 0,
            bytes_received: 0,
        }
    }

    /// An entry for a channel the remote peer announced in band on `stream`.
    pub(crate) fn from_remote(open: &dcep::Open, stream: u16) -> ChannelEntry {
        let (max_retransmits, max_packet_life_time) = match open.reliability {
            ChannelReliability::Reliable => (None, None),
            ChannelReliability::MaxRetransmits(n) => (Some(n), None),
            ChannelReliability::MaxLifetimeMs(ms) => (None, Some(ms)),
        };
        ChannelEntry {
            label: open.label.clone(),
            protocol: open.protocol.clone(),
            ordered: open.ordered,
            negotiated: None,
            max_retransmits,
            max_packet_life_time,
            stream_id: Some(stream),
            state: ChannelState::Open {
                awaiting_ack: false,
            },
            write_mode: WriteMode::Binary,
            inbound: VecDeque::new(),
            inbound_bytes: 0,
            last_was_string: false,
            messages_sent: 0,
            bytes_sent: 0,
            messages_received: 0,
            bytes_received: 0,
        }
    }

    /// The DATA_CHANNEL_OPEN announcing this channel.
    pub(crate) fn dcep_open(&self) -> dcep::Open {
        dcep::Open {
            ordered: self.ordered,
            reliability: match (self.max_retransmits, self.max_packet_life_time) {
                (Some(n), _) => ChannelReliability::MaxRetransmits(n),
                (None, Some(ms)) => ChannelReliability::MaxLifetimeMs(ms),
                (None, None) => ChannelReliability::Reliable,
            },
            priority: 256,
            label: self.label.clone(),
            protocol: self.protocol.clone(),
        }
    }

    /// The reliability of this channel's messages in the association.
    pub(crate) fn reliability(&self) -> Reliability {
        match (self.max_retransmits, self.max_packet_life_time) {
            (Some(n), _) => Reliability::MaxRetransmits(n),
            (None, Some(ms)) => Reliability::MaxLifetime(Duration::from_millis(u64::from(ms))),
            (None, None) => Reliability::Reliable,
        }
    }
}

/// Godot's `WebRTCDataChannel`: a view of one channel that borrows its [`PeerConnection`](super::PeerConnection).
///
/// Get it with [`PeerConnection::channel`](super::PeerConnection::channel) each time it is needed; keep the [`ChannelId`], not
/// the view. A channel that closed while its connection lives is forgotten at a later
/// `poll()`, once its stream is free and its received messages are taken: `channel()` then
/// returns `None` for it.
pub struct DataChannel<'a> {
    pub(crate) pc: &'a mut Engine,
    pub(crate) id: ChannelId,
}

impl DataChannel<'_> {
    // A view exists only for a channel in the table, and nothing removes one while a view
    // borrows the connection (only `poll()` does).
    fn entry(&self) -> &ChannelEntry {
        self.pc
            .channels
            .get(self.id)
            .expect("a viewed channel exists")
    }

    fn entry_mut(&mut self) -> &mut ChannelEntry {
        self.pc
            .channels
            .get_mut(self.id)
            .expect("a viewed channel exists")
    }

    /// This channel's handle.
    pub fn handle(&self) -> ChannelId {
        self.id
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
        let binary = self.entry().write_mode == WriteMode::Binary;
        self.send(data, binary)
    }

    /// Sends one text message whatever the write mode.
    pub fn send_text(&mut self, text: &str) -> Result<()> {
        self.send(text.as_bytes(), false)
    }

    /// Sends one binary message whatever the write mode.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<()> {
        self.send(data, true)
    }

    fn send(&mut self, data: &[u8], binary: bool) -> Result<()> {
        let ChannelState::Open { awaiting_ack } = self.entry().state else {
            return Err(Error::ChannelNotOpen);
        };
        let max = self.pc.max_message_size();
        if data.len() > max {
            return Err(Error::MessageTooLarge {
                size: data.len(),
                max,
            });
        }
        let entry = self.entry();
        let stream = entry.stream_id.ok_or(Error::ChannelNotOpen)?;
        let ordered = entry.ordered || awaiting_ack;
        let reliability = entry.reliability();
        let ppid = dcep::message_ppid(binary, data.is_empty());
        // RFC 8831 §6.6: an empty message travels as one zero byte with its own PPID.
        let wire: &[u8] = if data.is_empty() { &[0] } else { data };
        let now = self.pc.now;
        let sctp = self.pc.transport.sctp().ok_or(Error::ChannelNotOpen)?;
        match sctp.send(stream, ppid, ordered, reliability, wire, now) {
            Ok(()) => {}
            Err(SendError::BufferFull) => {
                return Err(Error::BufferFull {
                    size: data.len(),
                    buffered: sctp.total_buffered(),
                });
            }
            Err(SendError::TooLarge { .. }) => {
                return Err(Error::MessageTooLarge {
                    size: data.len(),
                    max,
                });
            }
            Err(e) => return Err(Error::Engine(e.to_string())),
        }
        let entry = self.entry_mut();
        entry.messages_sent += 1;
        entry.bytes_sent += data.len() as u64;
        Ok(())
    }

    /// Takes the next received message, or `None`. Received messages stay readable after
    /// the channel closed.
    pub fn get_packet(&mut self) -> Option<Vec<u8>> {
        let packet = self.pc.channels.pop_inbound(self.id)?;
        self.entry_mut().last_was_string = !packet.binary;
        Some(packet.data)
    }

    /// The number of received messages waiting in [`get_packet`](Self::get_packet).
    pub fn available_packet_count(&self) -> usize {
        self.entry().inbound.len()
    }

    /// The bytes of the received messages waiting in [`get_packet`](Self::get_packet). While
    /// it is at least [`PeerConfig::max_channel_in_buffer`](super::PeerConfig), `poll()` reads
    /// nothing more from the network.
    pub fn available_bytes(&self) -> usize {
        self.entry().inbound_bytes
    }

    /// Whether the message last taken by [`get_packet`](Self::get_packet) was sent as text.
    pub fn was_string_packet(&self) -> bool {
        self.entry().last_was_string
    }

    /// How [`put_packet`](Self::put_packet) sends (Godot's `write_mode`, binary by default).
    pub fn write_mode(&self) -> WriteMode {
        self.entry().write_mode
    }

    /// Sets how [`put_packet`](Self::put_packet) sends.
    pub fn set_write_mode(&mut self, mode: WriteMode) {
        self.entry_mut().write_mode = mode;
    }

    /// The ready state.
    pub fn ready_state(&self) -> ReadyState {
        self.entry().state.ready_state()
    }

    /// The label given at creation.
    pub fn label(&self) -> &str {
        &self.entry().label
    }

    /// The sub-protocol given at creation.
    pub fn protocol(&self) -> &str {
        &self.entry().protocol
    }

    /// The SCTP stream id: known at once for negotiated channels, once the association is up
    /// for in-band ones (`None` until then, where Godot returns -1 or 65535).
    pub fn id(&self) -> Option<u16> {
        self.entry().stream_id
    }

    /// Whether messages arrive in order.
    pub fn is_ordered(&self) -> bool {
        self.entry().ordered
    }

    /// Whether the channel was negotiated out of band (both sides created it with one id).
    pub fn is_negotiated(&self) -> bool {
        self.entry().negotiated.is_some()
    }

    /// The retransmission limit of an unreliable channel (`None` where Godot returns -1).
    pub fn max_retransmits(&self) -> Option<u16> {
        self.entry().max_retransmits
    }

    /// The lifetime limit in milliseconds of an unreliable channel (`None` where Godot
    /// returns -1).
    pub fn max_packet_life_time(&self) -> Option<u16> {
        self.entry().max_packet_life_time
    }

    /// Bytes sent on this channel and not yet acknowledged by the remote peer: the back
    /// pressure signal. The send budget ([`PeerConfig::max_buffered_amount`](super::PeerConfig))
    /// is shared by all channels of the connection.
    pub fn buffered_amount(&self) -> usize {
        let entry = self.entry();
        if entry.state.ready_state() != ReadyState::Open {
            return 0;
        }
        let Some(stream) = entry.stream_id else {
            return 0;
        };
        self.pc
            .transport
            .sctp_ref()
            .map_or(0, |sctp| sctp.buffered_amount(stream))
    }

    /// Messages and bytes sent and received on this channel.
    pub fn counters(&self) -> ChannelCounters {
        let e = self.entry();
        ChannelCounters {
            messages_sent: e.messages_sent,
            bytes_sent: e.bytes_sent,
            messages_received: e.messages_received,
            bytes_received: e.bytes_received,
        }
    }

    /// Closes the channel: [`Closing`](ReadyState::Closing) until the remote side confirms
    /// the stream reset, then [`Closed`](ReadyState::Closed). Messages already received stay
    /// readable.
    pub fn close(&mut self) {
        self.pc.close_channel(self.id);
    }
}

impl fmt::Debug for DataChannel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.entry();
        f.debug_struct("DataChannel")
            .field("handle", &self.handle())
            .field("label", &e.label)
            .field("state", &e.state)
            .field("stream_id", &e.stream_id)
            .field("queued", &e.inbound.len())
            .finish()
    }
}
