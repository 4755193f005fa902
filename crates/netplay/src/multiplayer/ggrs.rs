//! GGRS rollback sessions over a [`MultiplayerPeer`] (feature `ggrs`).
//!
//! Owns the adapter between GGRS's socket contract (`ggrs::NonBlockingSocket`: unordered,
//! unreliable datagrams to addresses) and a multiplayer peer: GGRS's messages travel as the
//! peer's packets on its unreliable mode, channel 0 (or the mode and channel given to
//! [`GgrsSocket::with_channel`]; a WebSocket peer reports every packet as reliable), addressed
//! by peer id. Packets of other modes or channels are not GGRS's: they wait in
//! [`GgrsSocket::take_other_packet`].
//!
//! It does not own the session (GGRS does) or the connection of the peers: connect them first
//! (a [`Lobby`](super::Lobby), a [`WebRtcMultiplayerPeer`](super::WebRtcMultiplayerPeer)), then
//! hand the peer to the socket and the socket to `SessionBuilder::start_p2p_session`.

use std::collections::VecDeque;

use bincode::Options;

use super::{MultiplayerPeer, Packet, SendOptions, Target, TransferMode};

/// The largest GGRS message taken from the network; anything larger is not GGRS's and is
/// dropped without being decoded.
const MAX_MESSAGE: u64 = 64 * 1024;

/// Packets of other modes or channels kept for the game, at most; older ones are dropped first.
const MAX_OTHER_PACKETS: usize = 4096;

/// bincode as `bincode::serialize` writes it (fixed-width integers, little-endian), with a
/// size limit for what comes from the network.
fn codec() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .allow_trailing_bytes()
        .with_limit(MAX_MESSAGE)
}

/// A `ggrs::NonBlockingSocket<i32>` over a multiplayer peer: the address of a player is its
/// peer id.
///
/// ```no_run
/// # #[cfg(all(feature = "webrtc", not(target_arch = "wasm32")))]
/// # fn demo(lobby: netplay::multiplayer::Lobby, other: i32) -> Result<(), ggrs::GgrsError> {
/// use ggrs::{PlayerType, SessionBuilder};
/// use netplay::multiplayer::GgrsSocket;
/// # struct Game;
/// # impl ggrs::Config for Game {
/// #     type Input = u8;
/// #     type InputPredictor = ggrs::PredictRepeatLast;
/// #     type State = u64;
/// #     type Address = i32;
/// # }
/// // `lobby` is connected to peer `other` (see `Lobby`).
/// let session = SessionBuilder::<Game>::new()
///     .add_player(PlayerType::Local, 0)?
///     .add_player(PlayerType::Remote(other), 1)?
///     .start_p2p_session(GgrsSocket::new(lobby))?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct GgrsSocket<P> {
    peer: P,
    mode: TransferMode,
    channel: u32,
    others: VecDeque<Packet>,
    /// GGRS messages that did not decode.
    dropped: u64,
}

impl<P: MultiplayerPeer> GgrsSocket<P> {
    /// The socket over `peer`, which should be connected to the other players; GGRS's
    /// messages go unreliably on channel 0.
    pub fn new(peer: P) -> GgrsSocket<P> {
        GgrsSocket::with_channel(peer, TransferMode::Unreliable, 0)
    }

    /// The socket over `peer`, GGRS's messages on `mode` and `channel` (for a WebSocket peer:
    /// reliable, 0).
    pub fn with_channel(peer: P, mode: TransferMode, channel: u32) -> GgrsSocket<P> {
        GgrsSocket {
            peer,
            mode,
            channel,
            others: VecDeque::new(),
            dropped: 0,
        }
    }

    /// The peer underneath.
    pub fn peer(&self) -> &P {
        &self.peer
    }

    /// The peer underneath, to send the game's own packets (reliable chat, say) beside GGRS.
    pub fn peer_mut(&mut self) -> &mut P {
        &mut self.peer
    }

    /// The next packet that arrived on another mode or channel than GGRS's.
    pub fn take_other_packet(&mut self) -> Option<Packet> {
        self.others.pop_front()
    }

    /// How many packets on GGRS's channel did not decode as GGRS messages.
    pub fn dropped_messages(&self) -> u64 {
        self.dropped
    }

    /// The peer back.
    pub fn into_inner(self) -> P {
        self.peer
    }
}

impl<P: MultiplayerPeer> ggrs::NonBlockingSocket<i32> for GgrsSocket<P> {
    fn send_to(&mut self, msg: &ggrs::Message, addr: &i32) {
        let Ok(bytes) = codec().serialize(msg) else {
            return;
        };
        let options = SendOptions {
            target: Target::Peer(*addr),
            mode: self.mode,
            channel: self.channel,
        };
        // Unreliable by contract: a message that cannot go is lost, and GGRS sends again.
        let _ = self.peer.put_packet_with(&bytes, options);
    }

    fn receive_all_messages(&mut self) -> Vec<(i32, ggrs::Message)> {
        self.peer.poll();
        let mut out = Vec::new();
        while let Some(packet) = self.peer.get_packet() {
            if packet.mode != self.mode || packet.channel != self.channel {
                if self.others.len() == MAX_OTHER_PACKETS {
                    self.others.pop_front();
                }
                self.others.push_back(packet);
                continue;
            }
            match codec().deserialize::<ggrs::Message>(&packet.data) {
                Ok(msg) => out.push((packet.from, msg)),
                Err(_) => self.dropped += 1,
            }
        }
        out
    }
}
