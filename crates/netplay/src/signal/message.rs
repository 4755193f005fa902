//! The signaling wire format: one JSON object per WebSocket text message,
//! `{"type": int, "id": int, "data": string}`.
//!
//! Owns parsing (through the strict reader of the `json` module), the hand-written writer
//! that emits messages (key order `type`, `id`, `data`, as the reference server's
//! `JSON.stringify` does), and the CANDIDATE payload. The hub relays OFFER, ANSWER and CANDIDATE by copying the `data` string literal as it
//! arrived into a new object with the sender's id, so a relayed SDP is parsed once (to validate
//! it) and never unescaped or escaped again.
//!
//! What [`Message::parse`] accepts:
//! * a JSON object (anything else, such as an array, is [`Error::InvalidFormat`]);
//! * `type` and `id` numbers with an integral value (`4`, `4.0` and `4e0` are all 4; `4.5` is
//!   refused, where the reference server would round it down);
//! * `type` not negative; a type above 7 is [`Error::InvalidCommand`];
//! * `id` in `0..=i32::MAX` (the reference refuses negative ids too);
//! * `data` a string; all three fields are required (the reference would default a missing
//!   `data` to `""`; Godot's clients always send it);
//! * other fields are ignored (but must be valid JSON, nested less than 128 deep); a
//!   duplicated field is refused.
//!
//! An escaped lone surrogate (`"\ud800"`) is valid JSON syntax but has no `String` form:
//! [`Message::parse`] refuses it, while the hub, which never decodes what it relays, forwards
//! such a literal unchanged.

use std::fmt::Write as _;

use super::json;
use super::Error;

/// The `type` of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// C→S: join (`id` 0: mesh, else server/client) the lobby named in `data`, or create one
    /// (`data` empty). S→C: the name of the lobby joined, after [`MessageType::Id`] and the
    /// [`MessageType::PeerConnect`]s.
    Join = 0,
    /// S→C: the id assigned to the receiver (1 for the host); `data` is `"true"` in a mesh lobby.
    Id = 1,
    /// S→C: the peer `id` is in the lobby.
    PeerConnect = 2,
    /// S→C: the peer `id` left the lobby.
    PeerDisconnect = 3,
    /// C→S→C: an SDP offer. Sent with the destination id, delivered with the sender's.
    Offer = 4,
    /// C→S→C: an SDP answer, addressed like [`MessageType::Offer`].
    Answer = 5,
    /// C→S→C: an ICE candidate ([`CandidatePayload`]), addressed like [`MessageType::Offer`].
    Candidate = 6,
    /// C→S from the host: seal the lobby. S→C: the lobby is sealed.
    Seal = 7,
}

impl MessageType {
    /// Every type, by code.
    pub const ALL: [MessageType; 8] = [
        MessageType::Join,
        MessageType::Id,
        MessageType::PeerConnect,
        MessageType::PeerDisconnect,
        MessageType::Offer,
        MessageType::Answer,
        MessageType::Candidate,
        MessageType::Seal,
    ];

    /// The type with this code, if any.
    pub fn from_code(code: i64) -> Option<MessageType> {
        usize::try_from(code)
            .ok()
            .and_then(|i| MessageType::ALL.get(i).copied())
    }

    /// The code on the wire.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Whether the server relays this type between peers (OFFER, ANSWER, CANDIDATE).
    pub fn is_relayed(self) -> bool {
        matches!(
            self,
            MessageType::Offer | MessageType::Answer | MessageType::Candidate
        )
    }
}

/// One signaling message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// What the message is.
    pub kind: MessageType,
    /// A peer id, or 0 (see [`MessageType`] for each type's meaning).
    pub id: i32,
    /// The payload: a lobby name, an SDP, a [`CandidatePayload`] or empty.
    pub data: String,
}

impl Message {
    /// A message from its parts.
    pub fn new(kind: MessageType, id: i32, data: impl Into<String>) -> Message {
        Message {
            kind,
            id,
            data: data.into(),
        }
    }

    /// C→S JOIN: join the lobby `lobby`, or create one if it is empty. `mesh` selects a mesh
    /// lobby (`id` 0) or a server/client one (`id` 1); it only matters when creating.
    pub fn join(lobby: impl Into<String>, mesh: bool) -> Message {
        Message::new(MessageType::Join, if mesh { 0 } else { 1 }, lobby)
    }

    /// S→C JOIN: the name of the lobby joined.
    pub fn join_reply(lobby: impl Into<String>) -> Message {
        Message::new(MessageType::Join, 0, lobby)
    }

    /// S→C ID: the receiver's id in its lobby (1 for the host), and whether the lobby is a mesh.
    pub fn assigned_id(id: i32, mesh: bool) -> Message {
        Message::new(MessageType::Id, id, if mesh { "true" } else { "" })
    }

    /// S→C PEER_CONNECT: peer `id` is in the lobby.
    pub fn peer_connect(id: i32) -> Message {
        Message::new(MessageType::PeerConnect, id, "")
    }

    /// S→C PEER_DISCONNECT: peer `id` left the lobby.
    pub fn peer_disconnect(id: i32) -> Message {
        Message::new(MessageType::PeerDisconnect, id, "")
    }

    /// OFFER carrying `sdp`, to (C→S) or from (S→C) peer `id`.
    pub fn offer(id: i32, sdp: impl Into<String>) -> Message {
        Message::new(MessageType::Offer, id, sdp)
    }

    /// ANSWER carrying `sdp`, to (C→S) or from (S→C) peer `id`.
    pub fn answer(id: i32, sdp: impl Into<String>) -> Message {
        Message::new(MessageType::Answer, id, sdp)
    }

    /// CANDIDATE carrying `candidate`, to (C→S) or from (S→C) peer `id`.
    pub fn candidate(id: i32, candidate: &CandidatePayload) -> Message {
        Message::new(MessageType::Candidate, id, candidate.encode())
    }

    /// SEAL (id 0, no data), from the host or broadcast by the server.
    pub fn seal() -> Message {
        Message::new(MessageType::Seal, 0, "")
    }

    /// Parses one text message. See the module documentation for what is accepted.
    pub fn parse(text: &str) -> Result<Message, Error> {
        let frame = Frame::parse(text)?;
        Ok(Message {
            kind: frame.kind,
            id: frame.id,
            data: frame.data_string()?,
        })
    }

    /// The message as JSON text, keys in the order `type`, `id`, `data`.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(32 + self.data.len());
        self.write_json(&mut out);
        out
    }

    /// Appends the message as JSON text to `out`.
    pub fn write_json(&self, out: &mut String) {
        write_head(out, self.kind, self.id);
        write_json_string(out, &self.data);
        out.push('}');
    }
}

/// The payload of a CANDIDATE: `"\n<mid>\n<mline_index>\n<candidate>"`.
///
/// Godot's client splits the payload on `"\n"`, drops empty parts and expects exactly three, so
/// `mid` and `candidate` must be non-empty and contain no newline for the payload to decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CandidatePayload {
    /// The media stream identification (`sdpMid`).
    pub mid: String,
    /// The m-line index (`sdpMLineIndex`).
    pub index: u32,
    /// The candidate line (`candidate:...`).
    pub candidate: String,
}

impl CandidatePayload {
    /// The payload text, with its leading newline.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(self.mid.len() + self.candidate.len() + 14);
        out.push('\n');
        out.push_str(&self.mid);
        out.push('\n');
        let _ = write!(out, "{}", self.index);
        out.push('\n');
        out.push_str(&self.candidate);
        out
    }

    /// Decodes a payload as Godot does: the non-empty `"\n"`-separated parts must be exactly
    /// three and the second an unsigned integer; otherwise [`Error::InvalidFormat`].
    pub fn decode(data: &str) -> Result<CandidatePayload, Error> {
        let mut parts = data.split('\n').filter(|p| !p.is_empty());
        let (Some(mid), Some(index), Some(candidate), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::InvalidFormat);
        };
        let index = index.parse().map_err(|_| Error::InvalidFormat)?;
        Ok(CandidatePayload {
            mid: mid.to_owned(),
            index,
            candidate: candidate.to_owned(),
        })
    }
}

/// A parsed message that borrows its `data` literal from the input text.
#[derive(Debug)]
pub(crate) struct Frame<'a> {
    pub(crate) kind: MessageType,
    pub(crate) id: i32,
    /// The JSON string literal of `data`, quotes and escapes included, as it arrived.
    pub(crate) data: &'a str,
}

impl<'a> Frame<'a> {
    /// Parses and validates one text message.
    pub(crate) fn parse(text: &'a str) -> Result<Frame<'a>, Error> {
        let fields = json::read_fields(text).map_err(|_| Error::InvalidFormat)?;
        let (Some(kind), Some(id), Some(data)) = (fields.kind, fields.id, fields.data) else {
            return Err(Error::InvalidFormat);
        };
        let kind = json::integral(kind).ok_or(Error::InvalidFormat)?;
        let id = json::integral(id).ok_or(Error::InvalidFormat)?;
        if kind < 0 || !data.starts_with('"') {
            return Err(Error::InvalidFormat);
        }
        let id = i32::try_from(id)
            .ok()
            .filter(|id| *id >= 0)
            .ok_or(Error::InvalidFormat)?;
        let kind = MessageType::from_code(kind).ok_or(Error::InvalidCommand)?;
        Ok(Frame { kind, id, data })
    }

    /// Whether `data` is the empty string (spelled `""`; an escaped empty string cannot exist).
    pub(crate) fn data_is_empty(&self) -> bool {
        self.data == "\"\""
    }

    /// `data` unescaped. Fails only on an escaped lone surrogate, which has no `String` form.
    pub(crate) fn data_string(&self) -> Result<String, Error> {
        json::unescape(self.data).ok_or(Error::InvalidFormat)
    }
}

/// Writes `{"type":<kind>,"id":<id>,"data":` to `out`.
fn write_head(out: &mut String, kind: MessageType, id: i32) {
    out.push_str("{\"type\":");
    let _ = write!(out, "{}", kind.code());
    out.push_str(",\"id\":");
    let _ = write!(out, "{id}");
    out.push_str(",\"data\":");
}

/// A message whose `data` is an already valid JSON string literal (quotes included).
pub(crate) fn message_with_literal(kind: MessageType, id: i32, literal: &str) -> String {
    let mut out = String::with_capacity(36 + literal.len());
    write_head(&mut out, kind, id);
    out.push_str(literal);
    out.push('}');
    out
}

/// Appends `s` to `out` as a JSON string literal: `"` and `\` escaped, control characters as
/// `\n`, `\r`, `\t`, `\b`, `\f` or `\u00XX`, everything else (all of Unicode) as is.
pub(crate) fn write_json_string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut run = 0; // start of the bytes not yet copied
    for (i, b) in s.bytes().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // `b` is ASCII, so `i` is a char boundary.
        out.push_str(&s[run..i]);
        if short.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        } else {
            out.push_str(short);
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

#[cfg(test)]
mod tests;
