//! STUN messages (RFC 8489 §5, §14.5, §14.7): the header, the method and class interleaving,
//! transaction IDs, and the attribute list with its padding, ordering and integrity rules.
//!
//! This module owns whole messages: it frames attributes (whose values `attribute` encodes),
//! computes MESSAGE-INTEGRITY and FINGERPRINT on encode and checks them on decode. It keeps no
//! state between messages.

use std::net::SocketAddr;

use super::attribute::{Attribute, AttributeType, ErrorCode};
use super::crypto::{crc32, ct_eq, hmac_sha1};
use super::{Error, Key};

/// The magic cookie every RFC 5389/8489 message carries at bytes 4..8.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;

/// The length of the STUN header.
pub const HEADER_LEN: usize = 20;

/// The most attributes [`Message::decode`] accepts in one message. Real messages carry about a
/// dozen; the limit bounds the work a datagram of empty attributes can cause.
pub const MAX_ATTRIBUTES: usize = 64;

/// The value XORed into the CRC-32 of FINGERPRINT ("STUN" in ASCII).
const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// The largest message body: the length field is 16 bits and a multiple of 4.
const MAX_BODY_LEN: usize = 0xFFFC;

/// The class of a message (RFC 8489 §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// 0b00: a request, which expects a response.
    Request,
    /// 0b01: an indication, which expects none.
    Indication,
    /// 0b10: a success response.
    Success,
    /// 0b11: an error response, with ERROR-CODE.
    Error,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0b00,
            Class::Indication => 0b01,
            Class::Success => 0b10,
            Class::Error => 0b11,
        }
    }

    fn from_bits(bits: u16) -> Class {
        match bits & 0b11 {
            0b00 => Class::Request,
            0b01 => Class::Indication,
            0b10 => Class::Success,
            _ => Class::Error,
        }
    }

    /// Success or error response.
    pub fn is_response(self) -> bool {
        matches!(self, Class::Success | Class::Error)
    }
}

/// The method of a message: a 12-bit number (RFC 8489 §18.2, RFC 8656 §17).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// 0x001 Binding: reflexive address discovery and ICE connectivity checks.
    Binding,
    /// 0x003 Allocate (TURN).
    Allocate,
    /// 0x004 Refresh (TURN).
    Refresh,
    /// 0x006 Send (TURN, indication only).
    Send,
    /// 0x007 Data (TURN, indication only).
    Data,
    /// 0x008 CreatePermission (TURN).
    CreatePermission,
    /// 0x009 ChannelBind (TURN).
    ChannelBind,
    /// Any other method. Only the low 12 bits are sent, and decoding never produces this variant
    /// for a value listed above.
    Other(u16),
}

impl Method {
    /// The method with this number (the low 12 bits of `v`).
    pub fn from_u16(v: u16) -> Method {
        match v & 0x0FFF {
            0x001 => Method::Binding,
            0x003 => Method::Allocate,
            0x004 => Method::Refresh,
            0x006 => Method::Send,
            0x007 => Method::Data,
            0x008 => Method::CreatePermission,
            0x009 => Method::ChannelBind,
            other => Method::Other(other),
        }
    }

    /// The 12-bit method number.
    pub fn as_u16(self) -> u16 {
        match self {
            Method::Binding => 0x001,
            Method::Allocate => 0x003,
            Method::Refresh => 0x004,
            Method::Send => 0x006,
            Method::Data => 0x007,
            Method::CreatePermission => 0x008,
            Method::ChannelBind => 0x009,
            Method::Other(v) => v & 0x0FFF,
        }
    }
}

/// A message type: class and method, interleaved on the wire (RFC 8489 §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MessageType {
    /// Request, indication, success or error.
    pub class: Class,
    /// What is asked or answered.
    pub method: Method,
}

impl MessageType {
    /// A message type.
    pub const fn new(class: Class, method: Method) -> MessageType {
        MessageType { class, method }
    }

    /// Decodes the first 16 bits of a header; `None` when the top two bits are not zero.
    ///
    /// The 14 bits are `M11..M7 C1 M6..M4 C0 M3..M0`.
    pub fn from_u16(v: u16) -> Option<MessageType> {
        if v & 0xC000 != 0 {
            return None;
        }
        let method = (v & 0x000F) | ((v >> 1) & 0x0070) | ((v >> 2) & 0x0F80);
        let class = ((v >> 4) & 0b01) | ((v >> 7) & 0b10);
        Some(MessageType {
            class: Class::from_bits(class),
            method: Method::from_u16(method),
        })
    }

    /// The first 16 bits of the header.
    pub fn as_u16(self) -> u16 {
        let m = self.method.as_u16();
        let c = self.class.bits();
        (m & 0x000F)
            | ((m & 0x0070) << 1)
            | ((m & 0x0F80) << 2)
            | ((c & 0b01) << 4)
            | ((c & 0b10) << 7)
    }
}

/// The 96-bit transaction ID that pairs a response with its request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TransactionId(pub [u8; 12]);

impl TransactionId {
    /// A fresh ID from the operating system's random source, as RFC 8489 §5 asks: an off-path
    /// attacker must not be able to guess it and forge a response.
    pub fn random() -> TransactionId {
        let mut id = [0u8; 12];
        crate::random::fill(&mut id);
        TransactionId(id)
    }

    /// The 12 bytes.
    pub fn as_bytes(&self) -> &[u8; 12] {
        &self.0
    }
}

/// A STUN message.
///
/// Attributes keep their order. Decoding keeps duplicates; the accessors return the first, the
/// only one RFC 8489 §14 requires an agent to process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Class and method.
    pub typ: MessageType,
    /// The transaction ID.
    pub transaction_id: TransactionId,
    /// The attributes in wire order. After [`Message::decode`] this includes
    /// MESSAGE-INTEGRITY and FINGERPRINT when present; [`Message::encode`] skips those and
    /// computes them instead.
    pub attributes: Vec<Attribute>,
}

impl Message {
    /// A message without attributes.
    pub fn new(typ: MessageType, transaction_id: TransactionId) -> Message {
        Message {
            typ,
            transaction_id,
            attributes: Vec::new(),
        }
    }

    /// A request with a random transaction ID.
    pub fn request(method: Method) -> Message {
        Message::new(
            MessageType::new(Class::Request, method),
            TransactionId::random(),
        )
    }

    /// An indication (Send, for a TURN client) with a random transaction ID.
    pub fn indication(method: Method) -> Message {
        Message::new(
            MessageType::new(Class::Indication, method),
            TransactionId::random(),
        )
    }

    /// Appends an attribute, builder style.
    pub fn with(mut self, attribute: Attribute) -> Message {
        self.attributes.push(attribute);
        self
    }

    /// Encodes the message.
    ///
    /// With `integrity`, MESSAGE-INTEGRITY is appended after the attributes: HMAC-SHA1 under the
    /// key of everything before it, with the header's length field counting up to the end of
    /// MESSAGE-INTEGRITY (RFC 8489 §14.5). With `fingerprint`, FINGERPRINT comes last: the
    /// CRC-32 of everything before it, XOR 0x5354554E (§14.7). MESSAGE-INTEGRITY,
    /// MESSAGE-INTEGRITY-SHA256 and FINGERPRINT in [`Message::attributes`] are not copied.
    /// Padding bytes are zero.
    ///
    /// Fails when a value does not fit its attribute (a text over [`MAX_TEXT_LEN`] bytes, an
    /// error code outside 300..=699, a value over 65535 bytes) or the message exceeds the 16-bit
    /// length field.
    ///
    /// [`MAX_TEXT_LEN`]: super::MAX_TEXT_LEN
    pub fn encode(&self, integrity: Option<&Key>, fingerprint: bool) -> Result<Vec<u8>, Error> {
        self.encode_padded(integrity, fingerprint, 0)
    }

    /// [`Message::encode`] with a chosen padding byte: RFC 5389 let senders pad with anything,
    /// and the RFC 5769 test vectors pad with spaces.
    pub(crate) fn encode_padded(
        &self,
        integrity: Option<&Key>,
        fingerprint: bool,
        pad: u8,
    ) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(HEADER_LEN + 64);
        out.extend_from_slice(&self.typ.as_u16().to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(&self.transaction_id.0);
        for attr in &self.attributes {
            let typ = attr.typ();
            if typ.is_computed() {
                continue;
            }
            let start = out.len();
            out.extend_from_slice(&typ.0.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
            attr.encode_value(&mut out, &self.transaction_id)?;
            let len = out.len() - start - 4;
            let len16 = u16::try_from(len).map_err(|_| Error::TooLong {
                what: "attribute value",
                len,
                max: u16::MAX as usize,
            })?;
            out[start + 2..start + 4].copy_from_slice(&len16.to_be_bytes());
            out.resize(out.len() + padding(len), pad);
            check_body_len(out.len())?;
        }
        if let Some(key) = integrity {
            set_body_len(&mut out, 24)?;
            let mac = hmac_sha1(key.as_bytes(), &[&out]);
            out.extend_from_slice(&AttributeType::MESSAGE_INTEGRITY.0.to_be_bytes());
            out.extend_from_slice(&20u16.to_be_bytes());
            out.extend_from_slice(&mac);
        }
        if fingerprint {
            set_body_len(&mut out, 8)?;
            let crc = crc32(&out) ^ FINGERPRINT_XOR;
            out.extend_from_slice(&AttributeType::FINGERPRINT.0.to_be_bytes());
            out.extend_from_slice(&4u16.to_be_bytes());
            out.extend_from_slice(&crc.to_be_bytes());
        }
        set_body_len(&mut out, 0)?;
        Ok(out)
    }

    /// Decodes one message: a whole UDP datagram, or one frame cut from a stream with
    /// [`frame_len`](super::frame_len).
    ///
    /// Checks the header (20 bytes, top two bits zero, magic cookie, length a multiple of 4 and
    /// equal to the bytes that follow), each attribute's bounds and value, at most
    /// [`MAX_ATTRIBUTES`] attributes, FINGERPRINT when present, and the order RFC 8489 imposes:
    /// only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT may follow MESSAGE-INTEGRITY, only
    /// FINGERPRINT may follow MESSAGE-INTEGRITY-SHA256, nothing may follow FINGERPRINT. (RFC 8489
    /// tells receivers to ignore other attributes after MESSAGE-INTEGRITY; no conforming sender
    /// produces them, so they are refused here rather than silently dropped.)
    ///
    /// MESSAGE-INTEGRITY is not checked: that needs the key, see [`verify_integrity`] and
    /// [`Message::decode_verified`].
    pub fn decode(bytes: &[u8]) -> Result<Message, Error> {
        let (typ, transaction_id) = parse_header(bytes)?;
        let mut attributes = Vec::new();
        let mut last_guard: Option<AttributeType> = None;
        for raw in RawAttributes::new(bytes) {
            let (offset, typ, value) = raw?;
            if attributes.len() == MAX_ATTRIBUTES {
                return Err(Error::TooManyAttributes {
                    max: MAX_ATTRIBUTES,
                });
            }
            if let Some(after) = last_guard {
                let allowed = match after {
                    AttributeType::MESSAGE_INTEGRITY => {
                        typ == AttributeType::MESSAGE_INTEGRITY_SHA256
                            || typ == AttributeType::FINGERPRINT
                    }
                    AttributeType::MESSAGE_INTEGRITY_SHA256 => typ == AttributeType::FINGERPRINT,
                    _ => false,
                };
                if !allowed {
                    return Err(Error::MisplacedAttribute { typ, after });
                }
            }
            let attr = Attribute::decode(typ, value, &transaction_id)?;
            if let Attribute::Fingerprint(crc) = attr {
                // FINGERPRINT is last, so the header's length already counts it, as the CRC
                // requires; anything after it is refused on the next round.
                if crc32(&bytes[..offset]) ^ FINGERPRINT_XOR != crc {
                    return Err(Error::FingerprintMismatch);
                }
            }
            if typ.is_computed() {
                last_guard = Some(typ);
            }
            attributes.push(attr);
        }
        Ok(Message {
            typ,
            transaction_id,
            attributes,
        })
    }

    /// [`Message::decode`], then [`verify_integrity`] under `key`: for responses to
    /// authenticated requests, and for ICE checks.
    pub fn decode_verified(bytes: &[u8], key: &Key) -> Result<Message, Error> {
        let message = Message::decode(bytes)?;
        if !message.has_integrity() {
            return Err(Error::MissingIntegrity);
        }
        if !verify_integrity(bytes, key) {
            return Err(Error::IntegrityMismatch);
        }
        Ok(message)
    }

    /// The first attribute of type `typ`.
    pub fn get(&self, typ: AttributeType) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.typ() == typ)
    }

    /// XOR-MAPPED-ADDRESS.
    pub fn xor_mapped_address(&self) -> Option<SocketAddr> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::XorMappedAddress(addr) => Some(*addr),
            _ => None,
        })
    }

    /// MAPPED-ADDRESS.
    pub fn mapped_address(&self) -> Option<SocketAddr> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::MappedAddress(addr) => Some(*addr),
            _ => None,
        })
    }

    /// The server-reflexive address of a Binding response: XOR-MAPPED-ADDRESS, or
    /// MAPPED-ADDRESS from a server that only speaks RFC 3489.
    pub fn reflexive_address(&self) -> Option<SocketAddr> {
        self.xor_mapped_address().or_else(|| self.mapped_address())
    }

    /// XOR-PEER-ADDRESS (TURN).
    pub fn xor_peer_address(&self) -> Option<SocketAddr> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::XorPeerAddress(addr) => Some(*addr),
            _ => None,
        })
    }

    /// XOR-RELAYED-ADDRESS (TURN).
    pub fn xor_relayed_address(&self) -> Option<SocketAddr> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::XorRelayedAddress(addr) => Some(*addr),
            _ => None,
        })
    }

    /// ERROR-CODE.
    pub fn error_code(&self) -> Option<&ErrorCode> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::ErrorCode(e) => Some(e),
            _ => None,
        })
    }

    /// USERNAME.
    pub fn username(&self) -> Option<&str> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Username(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// REALM.
    pub fn realm(&self) -> Option<&str> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Realm(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// NONCE.
    pub fn nonce(&self) -> Option<&str> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Nonce(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// SOFTWARE.
    pub fn software(&self) -> Option<&str> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Software(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// LIFETIME in seconds (TURN).
    pub fn lifetime(&self) -> Option<u32> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Lifetime(s) => Some(*s),
            _ => None,
        })
    }

    /// CHANNEL-NUMBER (TURN).
    pub fn channel_number(&self) -> Option<u16> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::ChannelNumber(n) => Some(*n),
            _ => None,
        })
    }

    /// DATA (TURN).
    pub fn data(&self) -> Option<&[u8]> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Data(d) => Some(d.as_slice()),
            _ => None,
        })
    }

    /// Whether the message carries MESSAGE-INTEGRITY.
    pub fn has_integrity(&self) -> bool {
        self.get(AttributeType::MESSAGE_INTEGRITY).is_some()
    }

    /// Whether the message carries FINGERPRINT (then [`Message::decode`] checked it).
    pub fn has_fingerprint(&self) -> bool {
        self.get(AttributeType::FINGERPRINT).is_some()
    }

    /// The comprehension-required attribute types (below 0x8000) this module does not know, in
    /// order and without duplicates: a request with any must be answered 420 listing them in
    /// UNKNOWN-ATTRIBUTES, and a response with any treated as a failed transaction
    /// (RFC 8489 §6.3).
    pub fn unknown_comprehension_required(&self) -> Vec<AttributeType> {
        let mut types: Vec<AttributeType> = Vec::new();
        for a in &self.attributes {
            if let Attribute::Unknown { typ, .. } = a {
                if typ.is_comprehension_required() && !types.contains(typ) {
                    types.push(*typ);
                }
            }
        }
        types
    }
}

/// Whether `bytes`, one STUN message, carries a MESSAGE-INTEGRITY that matches under `key`.
///
/// The HMAC covers the message up to the attribute with the header's length field set to end
/// just after it (RFC 8489 §14.5), so anything after it (FINGERPRINT) is not authenticated. The
/// comparison takes the same time wherever the HMACs differ. Returns `false` for a message that
/// is malformed up to its first MESSAGE-INTEGRITY or has none.
pub fn verify_integrity(bytes: &[u8], key: &Key) -> bool {
    if parse_header(bytes).is_err() {
        return false;
    }
    for raw in RawAttributes::new(bytes) {
        let Ok((offset, typ, value)) = raw else {
            return false;
        };
        if typ != AttributeType::MESSAGE_INTEGRITY {
            continue;
        }
        if value.len() != 20 {
            return false;
        }
        // The attribute ends 24 bytes after `offset`, inside the message, so this fits 16 bits.
        let Ok(len) = u16::try_from(offset - HEADER_LEN + 24) else {
            return false;
        };
        let mac = hmac_sha1(
            key.as_bytes(),
            &[&bytes[..2], &len.to_be_bytes(), &bytes[4..offset]],
        );
        return ct_eq(&mac, value);
    }
    false
}

/// Checks the 20-byte header of a message that is exactly `bytes`.
pub(crate) fn parse_header(bytes: &[u8]) -> Result<(MessageType, TransactionId), Error> {
    if bytes.len() < HEADER_LEN {
        return Err(Error::TooShort { len: bytes.len() });
    }
    let typ =
        MessageType::from_u16(u16::from_be_bytes([bytes[0], bytes[1]])).ok_or(Error::NotStun)?;
    let cookie = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if cookie != MAGIC_COOKIE {
        return Err(Error::BadMagicCookie(cookie));
    }
    let declared = u16::from_be_bytes([bytes[2], bytes[3]]);
    if !declared.is_multiple_of(4) {
        return Err(Error::UnalignedLength(declared));
    }
    let actual = bytes.len() - HEADER_LEN;
    if declared as usize != actual {
        return Err(Error::LengthMismatch {
            declared: declared as usize,
            actual,
        });
    }
    let mut id = [0u8; 12];
    id.copy_from_slice(&bytes[8..HEADER_LEN]);
    Ok((typ, TransactionId(id)))
}

/// Walks the attributes of a message whose header was checked, yielding each one's offset in
/// the message, type and unpadded value, with bounds checked.
struct RawAttributes<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> RawAttributes<'a> {
    fn new(bytes: &'a [u8]) -> RawAttributes<'a> {
        RawAttributes {
            bytes,
            pos: HEADER_LEN.min(bytes.len()),
        }
    }
}

impl<'a> Iterator for RawAttributes<'a> {
    type Item = Result<(usize, AttributeType, &'a [u8]), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let offset = self.pos;
        let rest = &self.bytes[offset..];
        if rest.is_empty() {
            return None;
        }
        if rest.len() < 4 {
            self.pos = self.bytes.len();
            return Some(Err(Error::TruncatedAttribute { offset }));
        }
        let typ = AttributeType(u16::from_be_bytes([rest[0], rest[1]]));
        let len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
        let padded = len + padding(len);
        if padded > rest.len() - 4 {
            self.pos = self.bytes.len();
            return Some(Err(Error::TruncatedAttribute { offset }));
        }
        self.pos = offset + 4 + padded;
        Some(Ok((offset, typ, &rest[4..4 + len])))
    }
}

/// Bytes of padding after a value of `len` bytes.
pub(crate) fn padding(len: usize) -> usize {
    (4 - len % 4) % 4
}

fn check_body_len(total: usize) -> Result<(), Error> {
    let body = total - HEADER_LEN;
    if body > MAX_BODY_LEN {
        return Err(Error::TooLong {
            what: "message",
            len: body,
            max: MAX_BODY_LEN,
        });
    }
    Ok(())
}

/// Sets the header's length to the body so far plus `extra` bytes still to come.
fn set_body_len(out: &mut [u8], extra: usize) -> Result<(), Error> {
    let body = out.len() - HEADER_LEN + extra;
    if body > MAX_BODY_LEN {
        return Err(Error::TooLong {
            what: "message",
            len: body,
            max: MAX_BODY_LEN,
        });
    }
    out[2..4].copy_from_slice(&(body as u16).to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request() -> Message {
        Message::new(
            MessageType::new(Class::Request, Method::Binding),
            TransactionId([3; 12]),
        )
    }

    #[test]
    fn message_type_interleaves_class_bits_into_the_method() {
        // RFC 8489 §5 and §6: Binding request 0x0001, success 0x0101, error 0x0111; TURN's
        // Allocate error response is 0x0113, a Send indication 0x0016, a Data indication 0x0017.
        let cases = [
            (Class::Request, Method::Binding, 0x0001),
            (Class::Indication, Method::Binding, 0x0011),
            (Class::Success, Method::Binding, 0x0101),
            (Class::Error, Method::Binding, 0x0111),
            (Class::Request, Method::Allocate, 0x0003),
            (Class::Error, Method::Allocate, 0x0113),
            (Class::Indication, Method::Send, 0x0016),
            (Class::Indication, Method::Data, 0x0017),
            (Class::Request, Method::ChannelBind, 0x0009),
            (Class::Success, Method::CreatePermission, 0x0108),
            (Class::Request, Method::Other(0xFFF), 0x3EEF),
        ];
        for (class, method, wire) in cases {
            let t = MessageType::new(class, method);
            assert_eq!(t.as_u16(), wire, "{t:?}");
            assert_eq!(MessageType::from_u16(wire), Some(t), "{wire:#06x}");
        }
        assert_eq!(MessageType::from_u16(0x4001), None);
        assert_eq!(MessageType::from_u16(0x8001), None);
        // Every 14-bit value survives the round trip.
        for v in 0..0x4000u16 {
            assert_eq!(MessageType::from_u16(v).unwrap().as_u16(), v);
        }
    }

    #[test]
    fn header_checks_length_cookie_and_top_bits() {
        let good = binding_request().encode(None, false).unwrap();
        assert_eq!(good.len(), 20);
        assert!(Message::decode(&good).is_ok());
        assert_eq!(
            Message::decode(&good[..19]),
            Err(Error::TooShort { len: 19 })
        );
        let mut bad = good.clone();
        bad[0] |= 0x40;
        assert_eq!(Message::decode(&bad), Err(Error::NotStun));
        let mut bad = good.clone();
        bad[4] = 0;
        assert!(matches!(
            Message::decode(&bad),
            Err(Error::BadMagicCookie(_))
        ));
        let mut bad = good.clone();
        bad[3] = 2;
        bad.extend_from_slice(&[0, 0]);
        assert_eq!(Message::decode(&bad), Err(Error::UnalignedLength(2)));
        let mut bad = good.clone();
        bad[3] = 4;
        assert_eq!(
            Message::decode(&bad),
            Err(Error::LengthMismatch {
                declared: 4,
                actual: 0
            })
        );
        let mut bad = good;
        bad.extend_from_slice(&[0; 4]);
        assert_eq!(
            Message::decode(&bad),
            Err(Error::LengthMismatch {
                declared: 0,
                actual: 4
            })
        );
    }

    #[test]
    fn attribute_running_past_the_end_is_refused() {
        let mut m = binding_request()
            .with(Attribute::Software("abcd".into()))
            .encode(None, false)
            .unwrap();
        m[22..24].copy_from_slice(&5u16.to_be_bytes()); // 5 bytes + 3 padding > 4 present
        assert_eq!(
            Message::decode(&m),
            Err(Error::TruncatedAttribute { offset: 20 })
        );
        assert!(!verify_integrity(&m, &Key::short_term("k")));
    }

    #[test]
    fn attributes_are_padded_to_four_bytes_with_zeros() {
        let m = binding_request()
            .with(Attribute::Username("abcde".into()))
            .encode(None, false)
            .unwrap();
        assert_eq!(m.len(), 20 + 4 + 8);
        assert_eq!(&m[2..4], [0, 12]);
        assert_eq!(&m[22..24], [0, 5]);
        assert_eq!(&m[29..], [0, 0, 0]);
        assert_eq!(Message::decode(&m).unwrap().username(), Some("abcde"));
    }

    #[test]
    fn more_than_max_attributes_are_refused() {
        let mut m = binding_request();
        m.attributes = vec![Attribute::DontFragment; MAX_ATTRIBUTES];
        let ok = m.encode(None, false).unwrap();
        assert_eq!(
            Message::decode(&ok).unwrap().attributes.len(),
            MAX_ATTRIBUTES
        );
        m.attributes.push(Attribute::DontFragment);
        let too_many = m.encode(None, false).unwrap();
        assert_eq!(
            Message::decode(&too_many),
            Err(Error::TooManyAttributes {
                max: MAX_ATTRIBUTES
            })
        );
    }

    #[test]
    fn only_fingerprint_and_sha256_integrity_may_follow_message_integrity() {
        let key = Key::short_term("pw");
        let signed = binding_request().encode(Some(&key), false).unwrap();
        // Append a SOFTWARE attribute after MESSAGE-INTEGRITY, fixing the length.
        let mut bad = signed.clone();
        bad.extend_from_slice(&[0x80, 0x22, 0, 4, b'e', b'v', b'i', b'l']);
        let len = (bad.len() - 20) as u16;
        bad[2..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(
            Message::decode(&bad),
            Err(Error::MisplacedAttribute {
                typ: AttributeType::SOFTWARE,
                after: AttributeType::MESSAGE_INTEGRITY
            })
        );
        // MESSAGE-INTEGRITY-SHA256 after MESSAGE-INTEGRITY is allowed.
        let mut ok = signed;
        ok.extend_from_slice(&[0x00, 0x1C, 0, 32]);
        ok.extend_from_slice(&[0xAB; 32]);
        let len = (ok.len() - 20) as u16;
        ok[2..4].copy_from_slice(&len.to_be_bytes());
        let m = Message::decode(&ok).unwrap();
        assert!(matches!(
            m.attributes.last(),
            Some(Attribute::MessageIntegritySha256(_))
        ));
        // ...but MESSAGE-INTEGRITY after MESSAGE-INTEGRITY-SHA256 is not.
        let mut bad = ok.clone();
        let mi = bad[20..44].to_vec();
        bad.extend_from_slice(&mi);
        let len = (bad.len() - 20) as u16;
        bad[2..4].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(
            Message::decode(&bad),
            Err(Error::MisplacedAttribute { .. })
        ));
    }

    #[test]
    fn nothing_may_follow_fingerprint() {
        let mut m = binding_request().encode(None, true).unwrap();
        m.extend_from_slice(&[0x00, 0x1A, 0, 0]); // DONT-FRAGMENT
        let len = (m.len() - 20) as u16;
        m[2..4].copy_from_slice(&len.to_be_bytes());
        // The CRC no longer matches (the length changed), which is reported first.
        assert_eq!(Message::decode(&m), Err(Error::FingerprintMismatch));
        // With a recomputed CRC, the order rule catches it.
        let crc = crc32(&m[..20]) ^ FINGERPRINT_XOR;
        m[24..28].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            Message::decode(&m),
            Err(Error::MisplacedAttribute {
                typ: AttributeType::DONT_FRAGMENT,
                after: AttributeType::FINGERPRINT
            })
        );
    }

    #[test]
    fn wrong_fingerprint_is_refused() {
        let mut m = binding_request().encode(None, true).unwrap();
        let last = m.len() - 1;
        m[last] ^= 1;
        assert_eq!(Message::decode(&m), Err(Error::FingerprintMismatch));
    }

    #[test]
    fn integrity_covers_the_message_and_uses_the_adjusted_length() {
        let key = Key::long_term("user", "realm", "pass");
        let m = binding_request().with(Attribute::Software("x".into()));
        let bytes = m.encode(Some(&key), true).unwrap();
        assert!(verify_integrity(&bytes, &key));
        assert!(!verify_integrity(
            &bytes,
            &Key::long_term("user", "realm", "wrong")
        ));
        // The HMAC is over the header with the length ending at MESSAGE-INTEGRITY.
        let mi_at = bytes.len() - 8 - 24;
        let mut prefix = bytes[..mi_at].to_vec();
        prefix[2..4].copy_from_slice(&((mi_at - 20 + 24) as u16).to_be_bytes());
        assert_eq!(
            hmac_sha1(key.as_bytes(), &[&prefix]),
            bytes[mi_at + 4..mi_at + 24]
        );
        assert_eq!(
            Message::decode_verified(&bytes, &key).unwrap().software(),
            Some("x")
        );
        assert_eq!(
            Message::decode_verified(&bytes, &Key::short_term("nope")),
            Err(Error::IntegrityMismatch)
        );
        let unsigned = m.encode(None, true).unwrap();
        assert!(!verify_integrity(&unsigned, &key));
        assert_eq!(
            Message::decode_verified(&unsigned, &key),
            Err(Error::MissingIntegrity)
        );
    }

    #[test]
    fn encode_skips_computed_attributes_so_decoded_messages_re_encode() {
        let key = Key::short_term("pw");
        let bytes = binding_request()
            .with(Attribute::Priority(5))
            .encode(Some(&key), true)
            .unwrap();
        let decoded = Message::decode(&bytes).unwrap();
        assert!(decoded.has_integrity() && decoded.has_fingerprint());
        assert_eq!(decoded.encode(Some(&key), true).unwrap(), bytes);
        // A stale FINGERPRINT or MESSAGE-INTEGRITY in the list is never copied.
        let plain = decoded.encode(None, false).unwrap();
        assert_eq!(plain.len(), 20 + 8);
    }

    #[test]
    fn oversized_values_fail_to_encode() {
        let m = binding_request().with(Attribute::Data(vec![0; 70_000]));
        assert!(matches!(
            m.encode(None, false),
            Err(Error::TooLong {
                what: "attribute value",
                ..
            })
        ));
        let m = binding_request().with(Attribute::Data(vec![0; 65_530]));
        assert!(matches!(
            m.encode(None, false),
            Err(Error::TooLong {
                what: "message",
                ..
            })
        ));
        // The largest body that fits, then no room for MESSAGE-INTEGRITY.
        let m = binding_request().with(Attribute::Data(vec![0; MAX_BODY_LEN - 4]));
        assert_eq!(m.encode(None, false).unwrap().len(), 20 + MAX_BODY_LEN);
        assert!(m.encode(Some(&Key::short_term("k")), false).is_err());
    }

    #[test]
    fn unknown_comprehension_required_attributes_are_listed_once() {
        let m = binding_request()
            .with(Attribute::Unknown {
                typ: AttributeType(0x7001),
                value: vec![],
            })
            .with(Attribute::Unknown {
                typ: AttributeType(0xC001),
                value: vec![1],
            })
            .with(Attribute::Unknown {
                typ: AttributeType(0x7001),
                value: vec![2],
            });
        let decoded = Message::decode(&m.encode(None, false).unwrap()).unwrap();
        assert_eq!(
            decoded.unknown_comprehension_required(),
            vec![AttributeType(0x7001)]
        );
    }

    #[test]
    fn random_transaction_ids_differ() {
        assert_ne!(TransactionId::random(), TransactionId::random());
    }
}
