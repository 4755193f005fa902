//! The engine's side of a data channel: its state, what the engine keeps about it, and the
//! calls on it through a borrowed [`EngineChannel`].
//!
//! Owns a channel's ready state, stream id, inbound queue, write mode, counters, the close
//! handshake's progress and the packet calls over the association. The public
//! [`DataChannel`](super::DataChannel) (API and docs) forwards to it; the SCTP stream itself
//! lives in the engine's association, which the view borrows for the time of a call, so
//! there is no shared ownership and no locking.

use crate::time::Duration;
use std::collections::VecDeque;
use std::fmt;

use super::channel::{ChannelCounters, ChannelId};
use super::dcep::{self, ChannelReliability};
use super::engine::Engine;
use super::error::{Error, Result};
use super::sctp::{Reliability, SendError};
use crate::api::{ReadyState, WriteMode};

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
    /// The buffered amount at or under which the channel reports
    /// [`Event::BufferedAmountLow`](super::Event::BufferedAmountLow) when it falls there.
    pub(crate) low_threshold: usize,
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
            low_threshold: 0,
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
            low_threshold: 0,
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

/// One channel of an [`Engine`], borrowing it for the time of a call: the native platform
/// of [`DataChannel`](super::DataChannel).
pub(crate) struct EngineChannel<'a> {
    pub(crate) pc: &'a mut Engine,
    pub(crate) id: ChannelId,
}

impl EngineChannel<'_> {
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

    pub(crate) fn handle(&self) -> ChannelId {
        self.id
    }

    pub(crate) fn put_packet(&mut self, data: &[u8]) -> Result<()> {
        let binary = self.entry().write_mode == WriteMode::Binary;
        self.send(data, binary)
    }

    pub(crate) fn send_text(&mut self, text: &str) -> Result<()> {
        self.send(text.as_bytes(), false)
    }

    pub(crate) fn send_binary(&mut self, data: &[u8]) -> Result<()> {
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
        let buffered = sctp.buffered_amount(stream);
        let entry = self.entry_mut();
        entry.messages_sent += 1;
        entry.bytes_sent += data.len() as u64;
        if buffered > entry.low_threshold {
            self.pc.channels.set_over_low(self.id, true);
        }
        Ok(())
    }

    pub(crate) fn get_packet(&mut self) -> Option<Vec<u8>> {
        let packet = self.pc.channels.pop_inbound(self.id)?;
        self.entry_mut().last_was_string = !packet.binary;
        Some(packet.data)
    }

    pub(crate) fn available_packet_count(&self) -> usize {
        self.entry().inbound.len()
    }

    pub(crate) fn available_bytes(&self) -> usize {
        self.entry().inbound_bytes
    }

    pub(crate) fn was_string_packet(&self) -> bool {
        self.entry().last_was_string
    }

    pub(crate) fn write_mode(&self) -> WriteMode {
        self.entry().write_mode
    }

    pub(crate) fn set_write_mode(&mut self, mode: WriteMode) {
        self.entry_mut().write_mode = mode;
    }

    pub(crate) fn ready_state(&self) -> ReadyState {
        self.entry().state.ready_state()
    }

    pub(crate) fn label(&self) -> &str {
        &self.entry().label
    }

    pub(crate) fn protocol(&self) -> &str {
        &self.entry().protocol
    }

    pub(crate) fn id(&self) -> Option<u16> {
        self.entry().stream_id
    }

    pub(crate) fn is_ordered(&self) -> bool {
        self.entry().ordered
    }

    pub(crate) fn is_negotiated(&self) -> bool {
        self.entry().negotiated.is_some()
    }

    pub(crate) fn max_retransmits(&self) -> Option<u16> {
        self.entry().max_retransmits
    }

    pub(crate) fn max_packet_life_time(&self) -> Option<u16> {
        self.entry().max_packet_life_time
    }

    pub(crate) fn buffered_amount(&self) -> usize {
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

    pub(crate) fn buffered_amount_low_threshold(&self) -> usize {
        self.entry().low_threshold
    }

    pub(crate) fn set_buffered_amount_low_threshold(&mut self, bytes: usize) {
        self.entry_mut().low_threshold = bytes;
        // Only a fall from over the threshold is reported, not a threshold raised over what
        // is buffered.
        let over = self.buffered_amount() > bytes;
        self.pc.channels.set_over_low(self.id, over);
    }

    pub(crate) fn counters(&self) -> ChannelCounters {
        let e = self.entry();
        ChannelCounters {
            messages_sent: e.messages_sent,
            bytes_sent: e.bytes_sent,
            messages_received: e.messages_received,
            bytes_received: e.bytes_received,
        }
    }

    pub(crate) fn close(&mut self) {
        self.pc.close_channel(self.id);
    }
}

impl fmt::Debug for EngineChannel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.entry();
        f.debug_struct("EngineChannel")
            .field("handle", &self.handle())
            .field("label", &e.label)
            .field("state", &e.state)
            .field("stream_id", &e.stream_id)
            .field("queued", &e.inbound.len())
            .finish()
    }
}
