//! The data channel table of one peer connection: every channel by its handle, the ones
//! holding an SCTP stream by stream id, and the bounds that keep a remote peer from growing it.
//!
//! Owns which channels exist, which stream each holds, which wait to open, and the totals of
//! received bytes the channels hold (so that no per-poll work scans the table). It does not
//! own what happens on the wire (DCEP, stream resets: the peer connection) or a channel's
//! packets (`channel.rs`).
//!
//! Bounds: at most `max` channels exist at once (a channel created beyond it is refused with
//! [`Error::TooManyChannels`](super::Error::TooManyChannels), a remote one by resetting its
//! stream); a channel closed while the connection lives is forgotten once its stream is free
//! and its received messages are taken ([`Channels::sweep`]), so a remote peer that opens and
//! closes channels in a loop holds at most `max` of them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::channel::ChannelId;
use super::engine_channel::{ChannelEntry, ChannelState, Packet};

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Channels {
    entries: BTreeMap<u32, ChannelEntry>,
    /// Stream id → the channel holding it: from the moment the stream is chosen until it is
    /// reset both ways (or for good, when the peer refused the reset).
    by_stream: HashMap<u16, u32>,
    /// Channels in [`ChannelState::Connecting`], to open once the association runs.
    waiting: BTreeSet<u32>,
    /// Channels closed while the connection lives, to forget once their stream is free and
    /// their queue empty.
    closed: Vec<u32>,
    /// Channels whose buffered amount was over their low threshold when last seen: the only
    /// ones checked for [`Event::BufferedAmountLow`](super::Event::BufferedAmountLow).
    over_low: BTreeSet<u32>,
    next: u32,
    max: usize,
    /// Received bytes held by all channels together.
    held: usize,
    /// Channels holding at least `in_limit` received bytes.
    full: usize,
    in_limit: usize,
}

impl Channels {
    pub(crate) fn new(max: usize, in_limit: usize) -> Channels {
        Channels {
            entries: BTreeMap::new(),
            by_stream: HashMap::new(),
            waiting: BTreeSet::new(),
            closed: Vec::new(),
            over_low: BTreeSet::new(),
            next: 0,
            max,
            held: 0,
            full: 0,
            in_limit,
        }
    }

    /// How many channels exist.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether another channel may be added.
    pub(crate) fn has_room(&self) -> bool {
        self.entries.len() < self.max && self.next < u32::MAX
    }

    /// The most channels that may exist at once.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Adds a channel; the caller checked [`has_room`](Self::has_room) and, for one with a
    /// stream, that the stream is free.
    pub(crate) fn insert(&mut self, entry: ChannelEntry) -> ChannelId {
        let id = self.next;
        self.next += 1;
        if let Some(stream) = entry.stream_id {
            self.by_stream.insert(stream, id);
        }
        if entry.state == ChannelState::Connecting {
            self.waiting.insert(id);
        }
        self.entries.insert(id, entry);
        ChannelId(id)
    }

    pub(crate) fn get(&self, id: ChannelId) -> Option<&ChannelEntry> {
        self.entries.get(&id.0)
    }

    pub(crate) fn get_mut(&mut self, id: ChannelId) -> Option<&mut ChannelEntry> {
        self.entries.get_mut(&id.0)
    }

    /// The handles of every channel, in creation order.
    pub(crate) fn ids(&self) -> impl Iterator<Item = ChannelId> + '_ {
        self.entries.keys().map(|&id| ChannelId(id))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &ChannelEntry> + '_ {
        self.entries.values()
    }

    /// Whether a stream id is taken.
    pub(crate) fn stream_in_use(&self, stream: u16) -> bool {
        self.by_stream.contains_key(&stream)
    }

    /// The channel open on `stream` (its stream in use on the wire), if any.
    pub(crate) fn on_stream(&self, stream: u16) -> Option<ChannelId> {
        let id = *self.by_stream.get(&stream)?;
        let entry = self.entries.get(&id)?;
        entry.state.stream_busy().then_some(ChannelId(id))
    }

    /// The streams in use on the wire.
    pub(crate) fn busy_streams(&self) -> Vec<u16> {
        self.by_stream
            .iter()
            .filter(|(_, id)| {
                self.entries
                    .get(id)
                    .is_some_and(|entry| entry.state.stream_busy())
            })
            .map(|(&stream, _)| stream)
            .collect()
    }

    /// The channels waiting to open, in creation order.
    pub(crate) fn waiting(&self) -> Vec<ChannelId> {
        self.waiting.iter().map(|&id| ChannelId(id)).collect()
    }

    /// Whether some channel waits to open.
    pub(crate) fn any_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Sets a channel's state, keeping the indexes in step: a channel leaving Connecting is no
    /// longer waiting, one that closes with its stream free gives the stream back.
    pub(crate) fn set_state(&mut self, id: ChannelId, state: ChannelState, live: bool) {
        let Some(entry) = self.entries.get_mut(&id.0) else {
            return;
        };
        entry.state = state;
        if state != ChannelState::Connecting {
            self.waiting.remove(&id.0);
        }
        if let ChannelState::Closed { stream_taken } = state {
            if !stream_taken {
                if let Some(stream) = entry.stream_id {
                    if self.by_stream.get(&stream) == Some(&id.0) {
                        self.by_stream.remove(&stream);
                    }
                }
            }
            if live {
                self.closed.push(id.0);
            }
        }
    }

    /// Notes whether a channel's buffered amount is over its low threshold: one that is will
    /// be checked by [`take_low`](Self::take_low).
    pub(crate) fn set_over_low(&mut self, id: ChannelId, over: bool) {
        if over {
            self.over_low.insert(id.0);
        } else {
            self.over_low.remove(&id.0);
        }
    }

    /// The channels over their low threshold whose buffered amount, as `buffered` tells it,
    /// is now at or under it: they are taken out of the set. Channels no longer open leave
    /// it without being returned.
    pub(crate) fn take_low(
        &mut self,
        mut buffered: impl FnMut(&ChannelEntry) -> usize,
    ) -> Vec<ChannelId> {
        let mut low = Vec::new();
        let entries = &self.entries;
        self.over_low.retain(|id| {
            let Some(entry) = entries.get(id) else {
                return false;
            };
            if !matches!(entry.state, ChannelState::Open { .. }) {
                return false;
            }
            if buffered(entry) > entry.low_threshold {
                return true;
            }
            low.push(ChannelId(*id));
            false
        });
        low
    }

    /// Whether some channel is over its low threshold.
    pub(crate) fn any_over_low(&self) -> bool {
        !self.over_low.is_empty()
    }

    /// Gives a waiting channel its stream.
    pub(crate) fn assign_stream(&mut self, id: ChannelId, stream: u16) {
        if let Some(entry) = self.entries.get_mut(&id.0) {
            entry.stream_id = Some(stream);
            self.by_stream.insert(stream, id.0);
        }
    }

    /// Queues a received message on a channel.
    pub(crate) fn push_inbound(&mut self, id: ChannelId, data: Vec<u8>, binary: bool) {
        let Some(entry) = self.entries.get_mut(&id.0) else {
            return;
        };
        let was_full = entry.inbound_bytes >= self.in_limit;
        self.held += data.len();
        entry.messages_received += 1;
        entry.bytes_received += data.len() as u64;
        entry.inbound_bytes += data.len();
        entry.inbound.push_back(Packet { data, binary });
        if !was_full && entry.inbound_bytes >= self.in_limit {
            self.full += 1;
        }
    }

    /// Takes a channel's next received message.
    pub(crate) fn pop_inbound(&mut self, id: ChannelId) -> Option<Packet> {
        let entry = self.entries.get_mut(&id.0)?;
        let packet = entry.inbound.pop_front()?;
        let was_full = entry.inbound_bytes >= self.in_limit;
        entry.inbound_bytes -= packet.data.len();
        self.held -= packet.data.len();
        if was_full && entry.inbound_bytes < self.in_limit {
            self.full -= 1;
        }
        Some(packet)
    }

    /// Received bytes held by all channels.
    pub(crate) fn held_bytes(&self) -> usize {
        self.held
    }

    /// Whether some channel holds at least the inbound limit.
    pub(crate) fn any_full(&self) -> bool {
        self.full > 0
    }

    /// Forgets the channels that closed while the connection lived, once their stream is
    /// free and their received messages are taken. Those still holding messages wait for
    /// the next sweep.
    pub(crate) fn sweep(&mut self) {
        let mut keep = Vec::new();
        for id in std::mem::take(&mut self.closed) {
            let Some(entry) = self.entries.get(&id) else {
                continue;
            };
            match entry.state {
                ChannelState::Closed {
                    stream_taken: false,
                } if entry.inbound.is_empty() => {
                    self.entries.remove(&id);
                }
                // The stream stays taken for good: so does the entry (at most one per stream).
                ChannelState::Closed { stream_taken: true } => {}
                _ => keep.push(id),
            }
        }
        self.closed = keep;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtc::DataChannelOptions;

    fn entry(negotiated: Option<u16>) -> ChannelEntry {
        let options = DataChannelOptions {
            negotiated_id: negotiated,
            ..DataChannelOptions::default()
        };
        ChannelEntry::new("c".into(), &options)
    }

    #[test]
    fn a_closed_channel_is_forgotten_once_its_stream_is_free_and_its_queue_empty() {
        let mut t = Channels::new(8, 100);
        let id = t.insert(entry(Some(3)));
        assert!(t.stream_in_use(3));
        t.set_state(
            id,
            ChannelState::Open {
                awaiting_ack: false,
            },
            true,
        );
        assert_eq!(t.on_stream(3), Some(id));
        t.push_inbound(id, vec![1, 2, 3], true);
        t.set_state(
            id,
            ChannelState::Closed {
                stream_taken: false,
            },
            true,
        );
        assert!(!t.stream_in_use(3), "the stream is free at once");
        t.sweep();
        assert!(t.get(id).is_some(), "kept while a message waits");
        assert_eq!(t.pop_inbound(id).unwrap().data, vec![1, 2, 3]);
        t.sweep();
        assert!(t.get(id).is_none());
        assert_eq!((t.len(), t.held_bytes()), (0, 0));
    }

    #[test]
    fn a_stream_whose_reset_was_refused_stays_taken() {
        let mut t = Channels::new(8, 100);
        let id = t.insert(entry(Some(5)));
        t.set_state(
            id,
            ChannelState::Open {
                awaiting_ack: false,
            },
            true,
        );
        t.set_state(id, ChannelState::Closed { stream_taken: true }, true);
        t.sweep();
        assert!(t.stream_in_use(5));
        assert_eq!(t.on_stream(5), Some(id));
    }

    #[test]
    fn the_table_refuses_room_beyond_its_maximum() {
        let mut t = Channels::new(2, 100);
        t.insert(entry(None));
        assert!(t.has_room());
        t.insert(entry(None));
        assert!(!t.has_room());
        assert_eq!(t.waiting().len(), 2);
    }

    #[test]
    fn held_and_full_totals_follow_pushes_and_pops() {
        let mut t = Channels::new(4, 10);
        let a = t.insert(entry(Some(0)));
        let b = t.insert(entry(Some(2)));
        t.push_inbound(a, vec![0; 6], true);
        assert!(!t.any_full());
        t.push_inbound(a, vec![0; 6], true);
        t.push_inbound(b, vec![0; 10], true);
        assert!(t.any_full());
        assert_eq!(t.held_bytes(), 22);
        t.pop_inbound(a);
        assert!(t.any_full(), "b is still full");
        t.pop_inbound(b);
        assert!(!t.any_full());
        assert_eq!(t.held_bytes(), 6);
    }
}
