//! STUN attributes (RFC 8489 §14), the TURN ones (RFC 8656 §18) and the ICE ones (RFC 8445
//! §16.1): type codes, typed values and the wire format of each value.
//!
//! This module owns the bytes of one attribute's value, including the XOR rules of the
//! XOR-*-ADDRESS attributes. The attribute header, padding, ordering and the attributes computed
//! over the whole message (MESSAGE-INTEGRITY, FINGERPRINT) belong to `message`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::message::{TransactionId, MAGIC_COOKIE};
use super::Error;

/// The longest REALM, NONCE, SOFTWARE, USERNAME or error reason phrase accepted or sent, in
/// bytes.
///
/// RFC 8489 limits REALM, NONCE, SOFTWARE and reason phrases to fewer than 128 characters,
/// "as long as 763 bytes when decoding them". USERNAME is asked to stay under 509 bytes, but an
/// ICE username is two `ice-ufrag`s of up to 256 characters each, so it gets the same 763-byte
/// allowance. Anything decoded can be echoed back unchanged.
pub const MAX_TEXT_LEN: usize = 763;

/// The REQUESTED-TRANSPORT protocol number of UDP, the only one RFC 8656 defines.
pub const REQUESTED_TRANSPORT_UDP: u8 = 17;

/// An attribute type code (RFC 8489 §18.3, RFC 8656 §17, RFC 8445 §16.1).
///
/// Codes below 0x8000 are comprehension-required: an agent that does not know one must reject
/// the message (RFC 8489 §14).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttributeType(pub u16);

impl AttributeType {
    /// MAPPED-ADDRESS (0x0001).
    pub const MAPPED_ADDRESS: AttributeType = AttributeType(0x0001);
    /// USERNAME (0x0006).
    pub const USERNAME: AttributeType = AttributeType(0x0006);
    /// MESSAGE-INTEGRITY (0x0008).
    pub const MESSAGE_INTEGRITY: AttributeType = AttributeType(0x0008);
    /// ERROR-CODE (0x0009).
    pub const ERROR_CODE: AttributeType = AttributeType(0x0009);
    /// UNKNOWN-ATTRIBUTES (0x000A).
    pub const UNKNOWN_ATTRIBUTES: AttributeType = AttributeType(0x000A);
    /// CHANNEL-NUMBER (0x000C, TURN).
    pub const CHANNEL_NUMBER: AttributeType = AttributeType(0x000C);
    /// LIFETIME (0x000D, TURN).
    pub const LIFETIME: AttributeType = AttributeType(0x000D);
    /// XOR-PEER-ADDRESS (0x0012, TURN).
    pub const XOR_PEER_ADDRESS: AttributeType = AttributeType(0x0012);
    /// DATA (0x0013, TURN).
    pub const DATA: AttributeType = AttributeType(0x0013);
    /// REALM (0x0014).
    pub const REALM: AttributeType = AttributeType(0x0014);
    /// NONCE (0x0015).
    pub const NONCE: AttributeType = AttributeType(0x0015);
    /// XOR-RELAYED-ADDRESS (0x0016, TURN).
    pub const XOR_RELAYED_ADDRESS: AttributeType = AttributeType(0x0016);
    /// REQUESTED-TRANSPORT (0x0019, TURN).
    pub const REQUESTED_TRANSPORT: AttributeType = AttributeType(0x0019);
    /// DONT-FRAGMENT (0x001A, TURN).
    pub const DONT_FRAGMENT: AttributeType = AttributeType(0x001A);
    /// MESSAGE-INTEGRITY-SHA256 (0x001C).
    pub const MESSAGE_INTEGRITY_SHA256: AttributeType = AttributeType(0x001C);
    /// XOR-MAPPED-ADDRESS (0x0020).
    pub const XOR_MAPPED_ADDRESS: AttributeType = AttributeType(0x0020);
    /// PRIORITY (0x0024, ICE).
    pub const PRIORITY: AttributeType = AttributeType(0x0024);
    /// USE-CANDIDATE (0x0025, ICE).
    pub const USE_CANDIDATE: AttributeType = AttributeType(0x0025);
    /// SOFTWARE (0x8022).
    pub const SOFTWARE: AttributeType = AttributeType(0x8022);
    /// FINGERPRINT (0x8028).
    pub const FINGERPRINT: AttributeType = AttributeType(0x8028);
    /// ICE-CONTROLLED (0x8029, ICE).
    pub const ICE_CONTROLLED: AttributeType = AttributeType(0x8029);
    /// ICE-CONTROLLING (0x802A, ICE).
    pub const ICE_CONTROLLING: AttributeType = AttributeType(0x802A);

    /// Whether an agent that does not understand this attribute must reject the message
    /// (codes 0x0000..=0x7FFF).
    pub fn is_comprehension_required(self) -> bool {
        self.0 < 0x8000
    }

    /// The RFC name of the attributes this module knows.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            AttributeType::MAPPED_ADDRESS => "MAPPED-ADDRESS",
            AttributeType::USERNAME => "USERNAME",
            AttributeType::MESSAGE_INTEGRITY => "MESSAGE-INTEGRITY",
            AttributeType::ERROR_CODE => "ERROR-CODE",
            AttributeType::UNKNOWN_ATTRIBUTES => "UNKNOWN-ATTRIBUTES",
            AttributeType::CHANNEL_NUMBER => "CHANNEL-NUMBER",
            AttributeType::LIFETIME => "LIFETIME",
            AttributeType::XOR_PEER_ADDRESS => "XOR-PEER-ADDRESS",
            AttributeType::DATA => "DATA",
            AttributeType::REALM => "REALM",
            AttributeType::NONCE => "NONCE",
            AttributeType::XOR_RELAYED_ADDRESS => "XOR-RELAYED-ADDRESS",
            AttributeType::REQUESTED_TRANSPORT => "REQUESTED-TRANSPORT",
            AttributeType::DONT_FRAGMENT => "DONT-FRAGMENT",
            AttributeType::MESSAGE_INTEGRITY_SHA256 => "MESSAGE-INTEGRITY-SHA256",
            AttributeType::XOR_MAPPED_ADDRESS => "XOR-MAPPED-ADDRESS",
            AttributeType::PRIORITY => "PRIORITY",
            AttributeType::USE_CANDIDATE => "USE-CANDIDATE",
            AttributeType::SOFTWARE => "SOFTWARE",
            AttributeType::FINGERPRINT => "FINGERPRINT",
            AttributeType::ICE_CONTROLLED => "ICE-CONTROLLED",
            AttributeType::ICE_CONTROLLING => "ICE-CONTROLLING",
            _ => return None,
        })
    }

    /// MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT: computed over the message by
    /// the encoder rather than copied from [`Message::attributes`](super::Message::attributes).
    pub(crate) fn is_computed(self) -> bool {
        matches!(
            self,
            AttributeType::MESSAGE_INTEGRITY
                | AttributeType::MESSAGE_INTEGRITY_SHA256
                | AttributeType::FINGERPRINT
        )
    }
}

impl fmt::Display for AttributeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{:#06x}", self.0),
        }
    }
}

/// The value of an ERROR-CODE attribute (RFC 8489 §14.8).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ErrorCode {
    /// The code, 300..=699: the class (hundreds) and number of the RFC.
    pub code: u16,
    /// The reason phrase, for humans.
    pub reason: String,
}

impl ErrorCode {
    /// 300 Try Alternate.
    pub const TRY_ALTERNATE: u16 = 300;
    /// 400 Bad Request.
    pub const BAD_REQUEST: u16 = 400;
    /// 401 Unauthenticated: the long-term credential challenge, with REALM and NONCE.
    pub const UNAUTHENTICATED: u16 = 401;
    /// 403 Forbidden (TURN).
    pub const FORBIDDEN: u16 = 403;
    /// 420 Unknown Attribute, with UNKNOWN-ATTRIBUTES.
    pub const UNKNOWN_ATTRIBUTE: u16 = 420;
    /// 437 Allocation Mismatch (TURN).
    pub const ALLOCATION_MISMATCH: u16 = 437;
    /// 438 Stale Nonce: retry with the NONCE of this response.
    pub const STALE_NONCE: u16 = 438;
    /// 440 Address Family not Supported (TURN).
    pub const ADDRESS_FAMILY_NOT_SUPPORTED: u16 = 440;
    /// 441 Wrong Credentials (TURN).
    pub const WRONG_CREDENTIALS: u16 = 441;
    /// 442 Unsupported Transport Protocol (TURN).
    pub const UNSUPPORTED_TRANSPORT_PROTOCOL: u16 = 442;
    /// 443 Peer Address Family Mismatch (TURN).
    pub const PEER_ADDRESS_FAMILY_MISMATCH: u16 = 443;
    /// 486 Allocation Quota Reached (TURN).
    pub const ALLOCATION_QUOTA_REACHED: u16 = 486;
    /// 487 Role Conflict (ICE).
    pub const ROLE_CONFLICT: u16 = 487;
    /// 500 Server Error.
    pub const SERVER_ERROR: u16 = 500;
    /// 508 Insufficient Capacity (TURN).
    pub const INSUFFICIENT_CAPACITY: u16 = 508;

    /// An error code with its reason phrase.
    pub fn new(code: u16, reason: impl Into<String>) -> ErrorCode {
        ErrorCode {
            code,
            reason: reason.into(),
        }
    }

    /// The class: the hundreds digit, 3..=6 for a valid code (saturates at 255 for codes no
    /// message can carry).
    pub fn class(&self) -> u8 {
        u8::try_from(self.code / 100).unwrap_or(u8::MAX)
    }

    /// The number within the class: the last two digits, 0..=99.
    pub fn number(&self) -> u8 {
        (self.code % 100) as u8
    }
}

/// One STUN attribute, decoded.
///
/// Types this module does not know decode to [`Attribute::Unknown`] with their raw value, so a
/// server can list the comprehension-required ones in a 420 response
/// ([`Message::unknown_comprehension_required`](super::Message::unknown_comprehension_required)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Attribute {
    /// MAPPED-ADDRESS: the reflexive address, unobfuscated, from RFC 3489 servers.
    MappedAddress(SocketAddr),
    /// XOR-MAPPED-ADDRESS: the reflexive address a Binding response reports.
    XorMappedAddress(SocketAddr),
    /// USERNAME, at most [`MAX_TEXT_LEN`] bytes.
    Username(String),
    /// MESSAGE-INTEGRITY: HMAC-SHA1 of the message. Computed by the encoder from its key; a
    /// value in [`Message::attributes`](super::Message::attributes) is not encoded.
    MessageIntegrity([u8; 20]),
    /// MESSAGE-INTEGRITY-SHA256: decoded (16 to 32 bytes) but not verified or encoded.
    MessageIntegritySha256(Vec<u8>),
    /// FINGERPRINT: the CRC-32 of the message XOR 0x5354554E. Checked by the decoder and
    /// computed by the encoder; a value in [`Message::attributes`](super::Message::attributes)
    /// is not encoded.
    Fingerprint(u32),
    /// ERROR-CODE.
    ErrorCode(ErrorCode),
    /// REALM, at most [`MAX_TEXT_LEN`] bytes.
    Realm(String),
    /// NONCE, at most [`MAX_TEXT_LEN`] bytes.
    Nonce(String),
    /// SOFTWARE, at most [`MAX_TEXT_LEN`] bytes.
    Software(String),
    /// UNKNOWN-ATTRIBUTES: the comprehension-required types a 420 response did not understand.
    UnknownAttributes(Vec<AttributeType>),
    /// CHANNEL-NUMBER (TURN): the channel a ChannelBind request binds. Not range-checked here
    /// (see [`CHANNEL_NUMBERS`](super::CHANNEL_NUMBERS)): that is a 400 for the server to send.
    ChannelNumber(u16),
    /// LIFETIME (TURN), in seconds.
    Lifetime(u32),
    /// XOR-PEER-ADDRESS (TURN).
    XorPeerAddress(SocketAddr),
    /// DATA (TURN): the payload of a Send or Data indication.
    Data(Vec<u8>),
    /// XOR-RELAYED-ADDRESS (TURN): the relayed transport address of an allocation.
    XorRelayedAddress(SocketAddr),
    /// REQUESTED-TRANSPORT (TURN): an IP protocol number, [`REQUESTED_TRANSPORT_UDP`].
    RequestedTransport(u8),
    /// DONT-FRAGMENT (TURN).
    DontFragment,
    /// PRIORITY (ICE): the priority of the peer-reflexive candidate the check would create.
    Priority(u32),
    /// USE-CANDIDATE (ICE): the controlling agent nominates this pair.
    UseCandidate,
    /// ICE-CONTROLLED (ICE) with the sender's tie-breaker.
    IceControlled(u64),
    /// ICE-CONTROLLING (ICE) with the sender's tie-breaker.
    IceControlling(u64),
    /// Any other attribute, kept as raw bytes (without padding). Encoded as given, except that
    /// the types of the computed attributes (MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256,
    /// FINGERPRINT) are skipped.
    Unknown {
        /// The type code.
        typ: AttributeType,
        /// The value.
        value: Vec<u8>,
    },
}

impl Attribute {
    /// The type code of this attribute.
    pub fn typ(&self) -> AttributeType {
        match self {
            Attribute::MappedAddress(_) => AttributeType::MAPPED_ADDRESS,
            Attribute::XorMappedAddress(_) => AttributeType::XOR_MAPPED_ADDRESS,
            Attribute::Username(_) => AttributeType::USERNAME,
            Attribute::MessageIntegrity(_) => AttributeType::MESSAGE_INTEGRITY,
            Attribute::MessageIntegritySha256(_) => AttributeType::MESSAGE_INTEGRITY_SHA256,
            Attribute::Fingerprint(_) => AttributeType::FINGERPRINT,
            Attribute::ErrorCode(_) => AttributeType::ERROR_CODE,
            Attribute::Realm(_) => AttributeType::REALM,
            Attribute::Nonce(_) => AttributeType::NONCE,
            Attribute::Software(_) => AttributeType::SOFTWARE,
            Attribute::UnknownAttributes(_) => AttributeType::UNKNOWN_ATTRIBUTES,
            Attribute::ChannelNumber(_) => AttributeType::CHANNEL_NUMBER,
            Attribute::Lifetime(_) => AttributeType::LIFETIME,
            Attribute::XorPeerAddress(_) => AttributeType::XOR_PEER_ADDRESS,
            Attribute::Data(_) => AttributeType::DATA,
            Attribute::XorRelayedAddress(_) => AttributeType::XOR_RELAYED_ADDRESS,
            Attribute::RequestedTransport(_) => AttributeType::REQUESTED_TRANSPORT,
            Attribute::DontFragment => AttributeType::DONT_FRAGMENT,
            Attribute::Priority(_) => AttributeType::PRIORITY,
            Attribute::UseCandidate => AttributeType::USE_CANDIDATE,
            Attribute::IceControlled(_) => AttributeType::ICE_CONTROLLED,
            Attribute::IceControlling(_) => AttributeType::ICE_CONTROLLING,
            Attribute::Unknown { typ, .. } => *typ,
        }
    }

    /// Decodes the value of an attribute of type `typ` (without its header or padding).
    pub(crate) fn decode(
        typ: AttributeType,
        value: &[u8],
        tid: &TransactionId,
    ) -> Result<Attribute, Error> {
        let bad = |reason| Error::InvalidAttribute { typ, reason };
        Ok(match typ {
            AttributeType::MAPPED_ADDRESS => {
                Attribute::MappedAddress(decode_address(value, None).map_err(bad)?)
            }
            AttributeType::XOR_MAPPED_ADDRESS => {
                Attribute::XorMappedAddress(decode_address(value, Some(tid)).map_err(bad)?)
            }
            AttributeType::XOR_PEER_ADDRESS => {
                Attribute::XorPeerAddress(decode_address(value, Some(tid)).map_err(bad)?)
            }
            AttributeType::XOR_RELAYED_ADDRESS => {
                Attribute::XorRelayedAddress(decode_address(value, Some(tid)).map_err(bad)?)
            }
            AttributeType::USERNAME => Attribute::Username(decode_text(value).map_err(bad)?),
            AttributeType::REALM => Attribute::Realm(decode_text(value).map_err(bad)?),
            AttributeType::NONCE => Attribute::Nonce(decode_text(value).map_err(bad)?),
            AttributeType::SOFTWARE => Attribute::Software(decode_text(value).map_err(bad)?),
            AttributeType::MESSAGE_INTEGRITY => {
                Attribute::MessageIntegrity(value.try_into().map_err(|_| bad("length is not 20"))?)
            }
            AttributeType::MESSAGE_INTEGRITY_SHA256 => {
                if value.len() < 16 || value.len() > 32 || !value.len().is_multiple_of(4) {
                    return Err(bad("length is not 16, 20, 24, 28 or 32"));
                }
                Attribute::MessageIntegritySha256(value.to_vec())
            }
            AttributeType::FINGERPRINT => Attribute::Fingerprint(u32::from_be_bytes(
                value.try_into().map_err(|_| bad("length is not 4"))?,
            )),
            AttributeType::ERROR_CODE => {
                if value.len() < 4 {
                    return Err(bad("shorter than 4 bytes"));
                }
                // The top 21 bits are reserved and ignored.
                let class = value[2] & 0x07;
                let number = value[3];
                if !(3..=6).contains(&class) {
                    return Err(bad("class is not 3 to 6"));
                }
                if number > 99 {
                    return Err(bad("number is over 99"));
                }
                Attribute::ErrorCode(ErrorCode {
                    code: class as u16 * 100 + number as u16,
                    reason: decode_text(&value[4..]).map_err(bad)?,
                })
            }
            AttributeType::UNKNOWN_ATTRIBUTES => {
                if !value.len().is_multiple_of(2) {
                    return Err(bad("odd length"));
                }
                Attribute::UnknownAttributes(
                    value
                        .chunks_exact(2)
                        .map(|c| AttributeType(u16::from_be_bytes([c[0], c[1]])))
                        .collect(),
                )
            }
            AttributeType::CHANNEL_NUMBER => {
                // 16 bits of channel number, then 16 reserved bits.
                let v: [u8; 4] = value.try_into().map_err(|_| bad("length is not 4"))?;
                Attribute::ChannelNumber(u16::from_be_bytes([v[0], v[1]]))
            }
            AttributeType::LIFETIME => Attribute::Lifetime(u32::from_be_bytes(
                value.try_into().map_err(|_| bad("length is not 4"))?,
            )),
            AttributeType::DATA => Attribute::Data(value.to_vec()),
            AttributeType::REQUESTED_TRANSPORT => {
                // The protocol number, then 24 reserved bits.
                let v: [u8; 4] = value.try_into().map_err(|_| bad("length is not 4"))?;
                Attribute::RequestedTransport(v[0])
            }
            AttributeType::DONT_FRAGMENT => {
                if !value.is_empty() {
                    return Err(bad("has a value"));
                }
                Attribute::DontFragment
            }
            AttributeType::PRIORITY => Attribute::Priority(u32::from_be_bytes(
                value.try_into().map_err(|_| bad("length is not 4"))?,
            )),
            AttributeType::USE_CANDIDATE => {
                if !value.is_empty() {
                    return Err(bad("has a value"));
                }
                Attribute::UseCandidate
            }
            AttributeType::ICE_CONTROLLED => Attribute::IceControlled(u64::from_be_bytes(
                value.try_into().map_err(|_| bad("length is not 8"))?,
            )),
            AttributeType::ICE_CONTROLLING => Attribute::IceControlling(u64::from_be_bytes(
                value.try_into().map_err(|_| bad("length is not 8"))?,
            )),
            _ => Attribute::Unknown {
                typ,
                value: value.to_vec(),
            },
        })
    }

    /// Appends the value (no header, no padding) to `out`.
    pub(crate) fn encode_value(&self, out: &mut Vec<u8>, tid: &TransactionId) -> Result<(), Error> {
        match self {
            Attribute::MappedAddress(a) => encode_address(out, *a, None),
            Attribute::XorMappedAddress(a)
            | Attribute::XorPeerAddress(a)
            | Attribute::XorRelayedAddress(a) => encode_address(out, *a, Some(tid)),
            Attribute::Username(s) => encode_text(out, s, "USERNAME")?,
            Attribute::Realm(s) => encode_text(out, s, "REALM")?,
            Attribute::Nonce(s) => encode_text(out, s, "NONCE")?,
            Attribute::Software(s) => encode_text(out, s, "SOFTWARE")?,
            Attribute::MessageIntegrity(mac) => out.extend_from_slice(mac),
            Attribute::MessageIntegritySha256(mac) => out.extend_from_slice(mac),
            Attribute::Fingerprint(crc) => out.extend_from_slice(&crc.to_be_bytes()),
            Attribute::ErrorCode(e) => {
                if !(300..=699).contains(&e.code) {
                    return Err(Error::InvalidValue {
                        what: "ERROR-CODE (not 300..=699)",
                    });
                }
                out.extend_from_slice(&[0, 0, e.class(), e.number()]);
                encode_text(out, &e.reason, "ERROR-CODE reason phrase")?;
            }
            Attribute::UnknownAttributes(types) => {
                for t in types {
                    out.extend_from_slice(&t.0.to_be_bytes());
                }
            }
            Attribute::ChannelNumber(n) => {
                out.extend_from_slice(&n.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
            }
            Attribute::Lifetime(s) => out.extend_from_slice(&s.to_be_bytes()),
            Attribute::Data(d) => out.extend_from_slice(d),
            Attribute::RequestedTransport(p) => out.extend_from_slice(&[*p, 0, 0, 0]),
            Attribute::DontFragment | Attribute::UseCandidate => {}
            Attribute::Priority(p) => out.extend_from_slice(&p.to_be_bytes()),
            Attribute::IceControlled(t) | Attribute::IceControlling(t) => {
                out.extend_from_slice(&t.to_be_bytes())
            }
            Attribute::Unknown { value, .. } => out.extend_from_slice(value),
        }
        Ok(())
    }
}

/// Address family codes of the address attributes.
const FAMILY_IPV4: u8 = 0x01;
const FAMILY_IPV6: u8 = 0x02;

/// Decodes a MAPPED-ADDRESS style value; with `xor`, undoes the XOR of RFC 8489 §14.2: the port
/// and an IPv4 address with the magic cookie, an IPv6 address with the cookie and transaction ID.
fn decode_address(value: &[u8], xor: Option<&TransactionId>) -> Result<SocketAddr, &'static str> {
    if value.len() < 4 {
        return Err("shorter than 4 bytes");
    }
    // value[0] is reserved and ignored.
    let family = value[1];
    let mut port = u16::from_be_bytes([value[2], value[3]]);
    let mask = xor.map(xor_mask);
    if xor.is_some() {
        port ^= (MAGIC_COOKIE >> 16) as u16;
    }
    let ip = match family {
        FAMILY_IPV4 => {
            let mut b: [u8; 4] = value[4..].try_into().map_err(|_| "IPv4 length is not 8")?;
            if let Some(m) = mask {
                b.iter_mut().zip(m).for_each(|(x, k)| *x ^= k);
            }
            IpAddr::V4(Ipv4Addr::from(b))
        }
        FAMILY_IPV6 => {
            let mut b: [u8; 16] = value[4..].try_into().map_err(|_| "IPv6 length is not 20")?;
            if let Some(m) = mask {
                b.iter_mut().zip(m).for_each(|(x, k)| *x ^= k);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return Err("unknown address family"),
    };
    Ok(SocketAddr::new(ip, port))
}

/// Appends a MAPPED-ADDRESS style value, XORed as in [`decode_address`] when `xor` is given.
/// An IPv6 address's flow label and scope are not sent.
fn encode_address(out: &mut Vec<u8>, addr: SocketAddr, xor: Option<&TransactionId>) {
    let mask = xor.map(xor_mask);
    let mut port = addr.port();
    if xor.is_some() {
        port ^= (MAGIC_COOKIE >> 16) as u16;
    }
    let family = if addr.is_ipv4() {
        FAMILY_IPV4
    } else {
        FAMILY_IPV6
    };
    out.extend_from_slice(&[0, family]);
    out.extend_from_slice(&port.to_be_bytes());
    let start = out.len();
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    if let Some(m) = mask {
        out[start..].iter_mut().zip(m).for_each(|(x, k)| *x ^= k);
    }
}

/// The 16-byte XOR key of the address attributes: the magic cookie, then the transaction ID (an
/// IPv4 address uses the first four bytes only).
fn xor_mask(tid: &TransactionId) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    m[4..].copy_from_slice(&tid.0);
    m
}

fn decode_text(value: &[u8]) -> Result<String, &'static str> {
    if value.len() > MAX_TEXT_LEN {
        return Err("longer than 763 bytes");
    }
    match std::str::from_utf8(value) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Err("not UTF-8"),
    }
}

fn encode_text(out: &mut Vec<u8>, s: &str, what: &'static str) -> Result<(), Error> {
    if s.len() > MAX_TEXT_LEN {
        return Err(Error::TooLong {
            what,
            len: s.len(),
            max: MAX_TEXT_LEN,
        });
    }
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TID: TransactionId = TransactionId([
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ]);

    fn round_trip(attr: &Attribute) -> Attribute {
        let mut value = Vec::new();
        attr.encode_value(&mut value, &TID).unwrap();
        Attribute::decode(attr.typ(), &value, &TID).unwrap()
    }

    #[test]
    fn xor_mapped_ipv4_xors_port_and_address_with_the_cookie() {
        // RFC 5769 §2.2: 192.0.2.1:32853.
        let addr: SocketAddr = "192.0.2.1:32853".parse().unwrap();
        let mut value = Vec::new();
        Attribute::XorMappedAddress(addr)
            .encode_value(&mut value, &TID)
            .unwrap();
        assert_eq!(value, [0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43]);
        assert_eq!(
            round_trip(&Attribute::XorMappedAddress(addr)),
            Attribute::XorMappedAddress(addr)
        );
    }

    #[test]
    fn xor_mapped_ipv6_xors_the_address_with_cookie_and_transaction_id() {
        // RFC 5769 §2.3: [2001:db8:1234:5678:11:2233:4455:6677]:32853.
        let addr: SocketAddr = "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
            .parse()
            .unwrap();
        let mut value = Vec::new();
        Attribute::XorMappedAddress(addr)
            .encode_value(&mut value, &TID)
            .unwrap();
        assert_eq!(
            value,
            [
                0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25,
                0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9
            ]
        );
    }

    #[test]
    fn mapped_address_is_not_xored() {
        let addr: SocketAddr = "192.0.2.1:32853".parse().unwrap();
        let mut value = Vec::new();
        Attribute::MappedAddress(addr)
            .encode_value(&mut value, &TID)
            .unwrap();
        assert_eq!(value, [0x00, 0x01, 0x80, 0x55, 192, 0, 2, 1]);
    }

    #[test]
    fn address_with_wrong_length_or_family_is_refused() {
        let typ = AttributeType::XOR_MAPPED_ADDRESS;
        for value in [
            &[][..],
            &[0, 1, 0, 0, 1, 2, 3][..],
            &[0, 1, 0, 0, 1, 2, 3, 4, 5][..],
            &[0, 2, 0, 0, 1, 2, 3, 4][..],
            &[0, 3, 0, 0, 1, 2, 3, 4][..],
        ] {
            assert!(
                matches!(
                    Attribute::decode(typ, value, &TID),
                    Err(Error::InvalidAttribute { .. })
                ),
                "{value:?}"
            );
        }
    }

    #[test]
    fn every_known_attribute_round_trips() {
        let v6: SocketAddr = "[2001:db8::1]:3478".parse().unwrap();
        let v4: SocketAddr = "203.0.113.9:49152".parse().unwrap();
        for attr in [
            Attribute::MappedAddress(v6),
            Attribute::XorMappedAddress(v4),
            Attribute::XorPeerAddress(v6),
            Attribute::XorRelayedAddress(v4),
            Attribute::Username("user:name".into()),
            Attribute::MessageIntegrity([7; 20]),
            Attribute::MessageIntegritySha256(vec![9; 32]),
            Attribute::Fingerprint(0xdead_beef),
            Attribute::ErrorCode(ErrorCode::new(438, "Stale Nonce")),
            Attribute::Realm("example.org".into()),
            Attribute::Nonce("f//499k954d6OL34oL9FSTvy64sA".into()),
            Attribute::Software("netplay".into()),
            Attribute::UnknownAttributes(vec![AttributeType(0x7777), AttributeType(0x0031)]),
            Attribute::ChannelNumber(0x4001),
            Attribute::Lifetime(600),
            Attribute::Data(vec![1, 2, 3]),
            Attribute::RequestedTransport(REQUESTED_TRANSPORT_UDP),
            Attribute::DontFragment,
            Attribute::Priority(0x6e0001ff),
            Attribute::UseCandidate,
            Attribute::IceControlled(0x932ff9b151263b36),
            Attribute::IceControlling(1),
            Attribute::Unknown {
                typ: AttributeType(0x7fff),
                value: vec![1, 2, 3, 4, 5],
            },
        ] {
            assert_eq!(round_trip(&attr), attr);
        }
    }

    #[test]
    fn error_code_splits_into_class_and_number() {
        let mut value = Vec::new();
        Attribute::ErrorCode(ErrorCode::new(401, "Unauthenticated"))
            .encode_value(&mut value, &TID)
            .unwrap();
        assert_eq!(&value[..4], [0, 0, 4, 1]);
        assert_eq!(ErrorCode::new(487, "").class(), 4);
        assert_eq!(ErrorCode::new(487, "").number(), 87);
    }

    #[test]
    fn error_code_outside_300_to_699_is_refused_both_ways() {
        for code in [0, 299, 700, 999] {
            let mut out = Vec::new();
            assert!(Attribute::ErrorCode(ErrorCode::new(code, "x"))
                .encode_value(&mut out, &TID)
                .is_err());
        }
        for value in [[0, 0, 2, 0], [0, 0, 7, 0], [0, 0, 4, 100]] {
            assert!(Attribute::decode(AttributeType::ERROR_CODE, &value, &TID).is_err());
        }
        // Reserved bits are ignored.
        assert_eq!(
            Attribute::decode(AttributeType::ERROR_CODE, &[0xff, 0xff, 0xfc, 20], &TID),
            Ok(Attribute::ErrorCode(ErrorCode::new(420, "")))
        );
    }

    #[test]
    fn text_over_763_bytes_or_not_utf8_is_refused() {
        let long = "x".repeat(MAX_TEXT_LEN + 1);
        let mut out = Vec::new();
        assert!(matches!(
            Attribute::Realm(long.clone()).encode_value(&mut out, &TID),
            Err(Error::TooLong { .. })
        ));
        assert!(Attribute::decode(AttributeType::NONCE, long.as_bytes(), &TID).is_err());
        assert!(Attribute::decode(AttributeType::USERNAME, &[0xff, 0xfe], &TID).is_err());
        let max = "y".repeat(MAX_TEXT_LEN);
        assert_eq!(
            round_trip(&Attribute::Software(max.clone())),
            Attribute::Software(max)
        );
    }

    #[test]
    fn fixed_length_attributes_refuse_other_lengths() {
        for (typ, ok_len) in [
            (AttributeType::MESSAGE_INTEGRITY, 20),
            (AttributeType::FINGERPRINT, 4),
            (AttributeType::CHANNEL_NUMBER, 4),
            (AttributeType::LIFETIME, 4),
            (AttributeType::REQUESTED_TRANSPORT, 4),
            (AttributeType::PRIORITY, 4),
            (AttributeType::ICE_CONTROLLED, 8),
            (AttributeType::ICE_CONTROLLING, 8),
            (AttributeType::DONT_FRAGMENT, 0),
            (AttributeType::USE_CANDIDATE, 0),
        ] {
            let buf = [0u8; 40];
            assert!(
                Attribute::decode(typ, &buf[..ok_len], &TID).is_ok(),
                "{typ}"
            );
            for len in [ok_len + 1, ok_len.wrapping_sub(1)] {
                if len <= 40 {
                    assert!(
                        Attribute::decode(typ, &buf[..len], &TID).is_err(),
                        "{typ} {len}"
                    );
                }
            }
        }
        for len in [0, 12, 18, 36] {
            assert!(Attribute::decode(
                AttributeType::MESSAGE_INTEGRITY_SHA256,
                &[0; 36][..len],
                &TID
            )
            .is_err());
        }
        assert!(Attribute::decode(AttributeType::UNKNOWN_ATTRIBUTES, &[0; 3], &TID).is_err());
    }

    #[test]
    fn comprehension_range_is_below_0x8000() {
        assert!(AttributeType::USERNAME.is_comprehension_required());
        assert!(AttributeType(0x7fff).is_comprehension_required());
        assert!(!AttributeType::SOFTWARE.is_comprehension_required());
        assert_eq!(AttributeType::FINGERPRINT.to_string(), "FINGERPRINT");
        assert_eq!(AttributeType(0x7777).to_string(), "0x7777");
    }
}
