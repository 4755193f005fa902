//! The Data Channel Establishment Protocol (RFC 8832) and the payload protocol identifiers of
//! data channel messages (RFC 8831 §8): the wire format only. Which stream a channel gets and
//! when it opens is the peer connection's business.

/// PPID of DCEP messages.
pub(crate) const PPID_DCEP: u32 = 50;
/// PPID of a non-empty text message.
pub(crate) const PPID_STRING: u32 = 51;
/// PPID of a non-empty binary message.
pub(crate) const PPID_BINARY: u32 = 53;
/// PPID of an empty text message (sent as one zero byte).
pub(crate) const PPID_STRING_EMPTY: u32 = 56;
/// PPID of an empty binary message (sent as one zero byte).
pub(crate) const PPID_BINARY_EMPTY: u32 = 57;
/// Deprecated PPID of a text message part (RFC 8831 §8), taken as a whole message.
pub(crate) const PPID_STRING_PARTIAL: u32 = 52;
/// Deprecated PPID of a binary message part, taken as a whole message.
pub(crate) const PPID_BINARY_PARTIAL: u32 = 54;

const DATA_CHANNEL_ACK: u8 = 0x02;
const DATA_CHANNEL_OPEN: u8 = 0x03;
const OPEN_HEADER: usize = 12;

/// The PPID and the bytes on the wire of one message.
pub(crate) fn message_ppid(binary: bool, empty: bool) -> u32 {
    match (binary, empty) {
        (false, false) => PPID_STRING,
        (true, false) => PPID_BINARY,
        (false, true) => PPID_STRING_EMPTY,
        (true, true) => PPID_BINARY_EMPTY,
    }
}

/// What a received message's PPID says: `Some((binary, empty))` for a user message, `None`
/// for anything else.
pub(crate) fn message_kind(ppid: u32) -> Option<(bool, bool)> {
    match ppid {
        PPID_STRING | PPID_STRING_PARTIAL => Some((false, false)),
        PPID_BINARY | PPID_BINARY_PARTIAL => Some((true, false)),
        PPID_STRING_EMPTY => Some((false, true)),
        PPID_BINARY_EMPTY => Some((true, true)),
        _ => None,
    }
}

/// A channel's reliability, as DCEP carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChannelReliability {
    /// Retransmit until acknowledged.
    Reliable,
    /// At most this many retransmissions.
    MaxRetransmits(u16),
    /// Retransmit for at most this many milliseconds.
    MaxLifetimeMs(u16),
}

/// DATA_CHANNEL_OPEN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Open {
    /// Delivered in order.
    pub(crate) ordered: bool,
    /// Reliability.
    pub(crate) reliability: ChannelReliability,
    /// Priority (carried, not used).
    pub(crate) priority: u16,
    /// The label.
    pub(crate) label: String,
    /// The sub-protocol.
    pub(crate) protocol: String,
}

/// A DCEP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Message {
    /// DATA_CHANNEL_OPEN.
    Open(Open),
    /// DATA_CHANNEL_ACK.
    Ack,
}

/// Why a DCEP message was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DcepError {
    /// Shorter than its header or its lengths say.
    #[error("truncated DCEP message")]
    Truncated,
    /// An unknown message or channel type.
    #[error("unknown DCEP {0}")]
    Unknown(&'static str),
    /// The label or protocol is not UTF-8.
    #[error("DCEP label or protocol is not UTF-8")]
    NotUtf8,
}

impl Open {
    /// The wire form.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let (kind, parameter) = match self.reliability {
            ChannelReliability::Reliable => (0x00, 0u32),
            ChannelReliability::MaxRetransmits(n) => (0x01, u32::from(n)),
            ChannelReliability::MaxLifetimeMs(ms) => (0x02, u32::from(ms)),
        };
        let kind = if self.ordered { kind } else { kind | 0x80 };
        let label = self.label.as_bytes();
        let protocol = self.protocol.as_bytes();
        let label_len = label.len().min(u16::MAX as usize);
        let protocol_len = protocol.len().min(u16::MAX as usize);
        let mut out = Vec::with_capacity(OPEN_HEADER + label_len + protocol_len);
        out.push(DATA_CHANNEL_OPEN);
        out.push(kind);
        out.extend_from_slice(&self.priority.to_be_bytes());
        out.extend_from_slice(&parameter.to_be_bytes());
        out.extend_from_slice(&(label_len as u16).to_be_bytes());
        out.extend_from_slice(&(protocol_len as u16).to_be_bytes());
        out.extend_from_slice(&label[..label_len]);
        out.extend_from_slice(&protocol[..protocol_len]);
        out
    }
}

/// The wire form of DATA_CHANNEL_ACK.
pub(crate) fn encode_ack() -> Vec<u8> {
    vec![DATA_CHANNEL_ACK]
}

/// Parses a DCEP message.
pub(crate) fn parse(data: &[u8]) -> Result<Message, DcepError> {
    match data.first() {
        None => Err(DcepError::Truncated),
        Some(&DATA_CHANNEL_ACK) => Ok(Message::Ack),
        Some(&DATA_CHANNEL_OPEN) => parse_open(data).map(Message::Open),
        Some(_) => Err(DcepError::Unknown("message type")),
    }
}

fn parse_open(data: &[u8]) -> Result<Open, DcepError> {
    if data.len() < OPEN_HEADER {
        return Err(DcepError::Truncated);
    }
    let kind = data[1];
    let priority = u16::from_be_bytes([data[2], data[3]]);
    let parameter = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
    let label_len = usize::from(u16::from_be_bytes([data[8], data[9]]));
    let protocol_len = usize::from(u16::from_be_bytes([data[10], data[11]]));
    let body = &data[OPEN_HEADER..];
    if body.len() < label_len + protocol_len {
        return Err(DcepError::Truncated);
    }
    let clamp = |v: u32| v.min(u32::from(u16::MAX)) as u16;
    let reliability = match kind & 0x7f {
        0x00 => ChannelReliability::Reliable,
        0x01 => ChannelReliability::MaxRetransmits(clamp(parameter)),
        0x02 => ChannelReliability::MaxLifetimeMs(clamp(parameter)),
        _ => return Err(DcepError::Unknown("channel type")),
    };
    let label = std::str::from_utf8(&body[..label_len]).map_err(|_| DcepError::NotUtf8)?;
    let protocol = std::str::from_utf8(&body[label_len..label_len + protocol_len])
        .map_err(|_| DcepError::NotUtf8)?;
    Ok(Open {
        ordered: kind & 0x80 == 0,
        reliability,
        priority,
        label: label.to_owned(),
        protocol: protocol.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_round_trips_every_channel_type() {
        for ordered in [true, false] {
            for reliability in [
                ChannelReliability::Reliable,
                ChannelReliability::MaxRetransmits(3),
                ChannelReliability::MaxLifetimeMs(150),
            ] {
                let open = Open {
                    ordered,
                    reliability,
                    priority: 256,
                    label: "chat é".into(),
                    protocol: "json".into(),
                };
                assert_eq!(parse(&open.encode()), Ok(Message::Open(open.clone())));
            }
        }
    }

    #[test]
    fn open_wire_format_is_rfc_8832() {
        let open = Open {
            ordered: false,
            reliability: ChannelReliability::MaxRetransmits(5),
            priority: 0,
            label: "a".into(),
            protocol: "".into(),
        };
        assert_eq!(open.encode(), [3, 0x81, 0, 0, 0, 0, 0, 5, 0, 1, 0, 0, b'a']);
        assert_eq!(parse(&[2]), Ok(Message::Ack));
    }

    #[test]
    fn malformed_dcep_messages_are_errors() {
        assert_eq!(parse(&[]), Err(DcepError::Truncated));
        assert_eq!(parse(&[3, 0, 0]), Err(DcepError::Truncated));
        assert_eq!(parse(&[9]), Err(DcepError::Unknown("message type")));
        let mut bad = Open {
            ordered: true,
            reliability: ChannelReliability::Reliable,
            priority: 0,
            label: "ab".into(),
            protocol: String::new(),
        }
        .encode();
        bad[1] = 0x07;
        assert_eq!(parse(&bad), Err(DcepError::Unknown("channel type")));
        bad[1] = 0;
        bad[9] = 200;
        assert_eq!(parse(&bad), Err(DcepError::Truncated));
        bad[9] = 2;
        bad[12] = 0xff;
        assert_eq!(parse(&bad), Err(DcepError::NotUtf8));
    }

    #[test]
    fn ppids_keep_text_binary_and_empty() {
        for binary in [false, true] {
            for empty in [false, true] {
                assert_eq!(
                    message_kind(message_ppid(binary, empty)),
                    Some((binary, empty))
                );
            }
        }
        assert_eq!(message_kind(PPID_DCEP), None);
        assert_eq!(message_kind(52), Some((false, false)));
    }
}
