//! Why the signaling server closes a connection: the protocol errors a client can commit and the
//! two closes that are not errors (the host left, the seal completed).
//!
//! Every reason here is the exact text of the reference server's close frame where the reference
//! has one, so a Godot client shows the same message whichever server it talks to.

/// A protocol error. The connection that commits it is closed with [`Error::code`] and
/// [`Error::reason`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not JSON, not an object, a field missing or of the wrong type, `data` not a string, a
    /// negative or fractional `type`, or an `id` outside `0..=i32::MAX`.
    #[error("Invalid message format")]
    InvalidFormat,
    /// A `type` the server never accepts from a client: ID, PEER_CONNECT, PEER_DISCONNECT or a
    /// number above 7.
    #[error("Invalid command")]
    InvalidCommand,
    /// OFFER, ANSWER or CANDIDATE to an id that is not another member of the sender's lobby.
    #[error("Invalid destination")]
    InvalidDestination,
    /// OFFER, ANSWER, CANDIDATE or SEAL before the connection joined a lobby.
    #[error("Invalid message when not in a lobby")]
    NotInLobby,
    /// A second JOIN from a connection that is in a lobby.
    #[error("Already in a lobby")]
    AlreadyInLobby,
    /// JOIN with the name of no open lobby. The wording is the reference server's.
    #[error("Lobby does not exists")]
    LobbyDoesNotExist,
    /// JOIN of a lobby whose host sent SEAL.
    #[error("Lobby is sealed")]
    LobbyIsSealed,
    /// JOIN of a lobby that has [`HubConfig::max_lobby_members`](super::HubConfig::max_lobby_members)
    /// members.
    #[error("Lobby is full")]
    LobbyFull,
    /// JOIN with a lobby name that is too long or has a character outside `[A-Za-z0-9_-]`.
    #[error("Invalid lobby name")]
    InvalidLobbyName,
    /// SEAL from a member that is not the lobby's host.
    #[error("Only host can seal the lobby")]
    OnlyHostCanSeal,
    /// JOIN creating a lobby while [`HubConfig::max_lobbies`](super::HubConfig::max_lobbies)
    /// are open.
    #[error("Too many lobbies open, disconnecting")]
    TooManyLobbies,
    /// A connection beyond [`HubConfig::max_peers`](super::HubConfig::max_peers).
    #[error("Too many peers connected")]
    TooManyPeers,
    /// No JOIN within [`HubConfig::join_timeout`](super::HubConfig::join_timeout) of connecting.
    #[error("Have not joined lobby yet")]
    JoinTimeout,
    /// Messages faster than the connection's rate limit allows.
    #[error("Too many messages")]
    TooManyMessages,
    /// A text message longer than
    /// [`HubConfig::max_message_size`](super::HubConfig::max_message_size) (closed with 1009,
    /// as the WebSocket layer would).
    #[error("Message too big")]
    MessageTooBig,
    /// A binary message: the protocol is text only.
    #[error("Invalid transfer mode, must be text")]
    InvalidTransferMode,
}

impl Error {
    /// Every error, in declaration order (for metrics with a fixed set of labels).
    pub const ALL: [Error; 16] = [
        Error::InvalidFormat,
        Error::InvalidCommand,
        Error::InvalidDestination,
        Error::NotInLobby,
        Error::AlreadyInLobby,
        Error::LobbyDoesNotExist,
        Error::LobbyIsSealed,
        Error::LobbyFull,
        Error::InvalidLobbyName,
        Error::OnlyHostCanSeal,
        Error::TooManyLobbies,
        Error::TooManyPeers,
        Error::JoinTimeout,
        Error::TooManyMessages,
        Error::MessageTooBig,
        Error::InvalidTransferMode,
    ];

    /// The reason sent in the close frame; the same text as `Display`.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidFormat => "Invalid message format",
            Error::InvalidCommand => "Invalid command",
            Error::InvalidDestination => "Invalid destination",
            Error::NotInLobby => "Invalid message when not in a lobby",
            Error::AlreadyInLobby => "Already in a lobby",
            Error::LobbyDoesNotExist => "Lobby does not exists",
            Error::LobbyIsSealed => "Lobby is sealed",
            Error::LobbyFull => "Lobby is full",
            Error::InvalidLobbyName => "Invalid lobby name",
            Error::OnlyHostCanSeal => "Only host can seal the lobby",
            Error::TooManyLobbies => "Too many lobbies open, disconnecting",
            Error::TooManyPeers => "Too many peers connected",
            Error::JoinTimeout => "Have not joined lobby yet",
            Error::TooManyMessages => "Too many messages",
            Error::MessageTooBig => "Message too big",
            Error::InvalidTransferMode => "Invalid transfer mode, must be text",
        }
    }

    /// The WebSocket close code: 4000 for all but [`Error::MessageTooBig`] (1009).
    pub fn code(&self) -> u16 {
        match self {
            Error::MessageTooBig => 1009,
            _ => 4000,
        }
    }
}

/// Why the hub closed a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum CloseReason {
    /// The connection broke the protocol or a limit.
    Error(Error),
    /// The host of the connection's lobby left: 4000 "Room host has disconnected".
    HostDisconnected,
    /// The lobby was sealed and its close timeout ran out: 1000 "Seal complete".
    SealComplete,
}

impl CloseReason {
    /// Every reason, errors first in [`Error::ALL`] order.
    pub fn all() -> impl Iterator<Item = CloseReason> {
        Error::ALL
            .into_iter()
            .map(CloseReason::Error)
            .chain([CloseReason::HostDisconnected, CloseReason::SealComplete])
    }

    /// The WebSocket close code.
    pub fn code(&self) -> u16 {
        match self {
            CloseReason::Error(e) => e.code(),
            CloseReason::HostDisconnected => 4000,
            CloseReason::SealComplete => 1000,
        }
    }

    /// The reason sent in the close frame.
    pub fn reason(&self) -> &'static str {
        match self {
            CloseReason::Error(e) => e.reason(),
            CloseReason::HostDisconnected => "Room host has disconnected",
            CloseReason::SealComplete => "Seal complete",
        }
    }

    /// A dense index, `0..CloseReason::COUNT`, in [`CloseReason::all`] order.
    pub(crate) fn index(&self) -> usize {
        match self {
            CloseReason::Error(e) => *e as usize,
            CloseReason::HostDisconnected => Error::ALL.len(),
            CloseReason::SealComplete => Error::ALL.len() + 1,
        }
    }

    /// How many reasons there are.
    pub(crate) const COUNT: usize = Error::ALL.len() + 2;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_close_reason() {
        for e in Error::ALL {
            assert_eq!(e.to_string(), e.reason());
        }
    }

    #[test]
    fn all_lists_every_error_at_its_discriminant() {
        for (i, e) in Error::ALL.into_iter().enumerate() {
            assert_eq!(e as usize, i);
        }
        let all: Vec<CloseReason> = CloseReason::all().collect();
        assert_eq!(all.len(), CloseReason::COUNT);
        for (i, r) in all.into_iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn protocol_errors_close_with_4000_except_too_big() {
        for e in Error::ALL {
            let expected = if e == Error::MessageTooBig {
                1009
            } else {
                4000
            };
            assert_eq!(e.code(), expected, "{e:?}");
        }
        assert_eq!(CloseReason::HostDisconnected.code(), 4000);
        assert_eq!(
            CloseReason::HostDisconnected.reason(),
            "Room host has disconnected"
        );
        assert_eq!(CloseReason::SealComplete.code(), 1000);
        assert_eq!(CloseReason::SealComplete.reason(), "Seal complete");
    }
}
