//! The Godot-facing types that the WebSocket and WebRTC APIs share, declared once for every
//! platform.
//!
//! Godot's `WebSocketPeer.State` and `WebRTCDataChannel.ChannelState` have the same four
//! states with the same values, and both `WriteMode`s the same two modes: netplay has one
//! [`ReadyState`] and one [`WriteMode`], re-exported by [`ws`](crate::ws) and
//! [`rtc`](crate::rtc). Every Godot enum in netplay gives its integer with `godot_value()`.

/// The state of a WebSocket or a data channel, with Godot's integer values
/// ([`godot_value`](ReadyState::godot_value)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReadyState {
    /// `STATE_CONNECTING = 0`: not open yet (resolving, connecting, handshaking, opening).
    Connecting,
    /// `STATE_OPEN = 1`: messages flow both ways.
    Open,
    /// `STATE_CLOSING = 2`: closing was asked by one side and is under way; keep polling.
    Closing,
    /// `STATE_CLOSED = 3`: closed for good.
    Closed,
}

impl ReadyState {
    /// Godot's integer value.
    pub fn godot_value(self) -> i32 {
        match self {
            ReadyState::Connecting => 0,
            ReadyState::Open => 1,
            ReadyState::Closing => 2,
            ReadyState::Closed => 3,
        }
    }
}

/// How the next messages are sent, text or binary, with Godot's integer values
/// ([`godot_value`](WriteMode::godot_value)); binary by default, as in Godot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WriteMode {
    /// `WRITE_MODE_TEXT = 0`: a text message (the data must be UTF-8).
    Text,
    /// `WRITE_MODE_BINARY = 1`: a binary message.
    #[default]
    Binary,
}

impl WriteMode {
    /// Godot's integer value.
    pub fn godot_value(self) -> i32 {
        match self {
            WriteMode::Text => 0,
            WriteMode::Binary => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn godot_values_match_godot_enums() {
        let states = [
            ReadyState::Connecting,
            ReadyState::Open,
            ReadyState::Closing,
            ReadyState::Closed,
        ];
        let values: Vec<i32> = states.iter().map(|s| s.godot_value()).collect();
        assert_eq!(values, [0, 1, 2, 3]);
        assert_eq!(WriteMode::Text.godot_value(), 0);
        assert_eq!(WriteMode::Binary.godot_value(), 1);
        assert_eq!(WriteMode::default(), WriteMode::Binary);
    }
}
