//! Telling protocols apart on one socket (RFC 7983) and cutting STUN and ChannelData frames out
//! of a byte stream (RFC 8489 §6.2.2, RFC 8656 §12.5).
//!
//! This module owns the first-byte ranges and the framing lengths; it decodes nothing.

use super::channel::{ChannelData, CHANNEL_NUMBERS};
use super::message::{padding, HEADER_LEN, MAGIC_COOKIE};
use super::Error;

/// What a packet on a multiplexed WebRTC socket is, by its first byte (RFC 7983 §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// 0..=3: STUN (ICE checks, TURN control).
    Stun,
    /// 16..=19: ZRTP.
    Zrtp,
    /// 20..=63: DTLS (the SCTP data channels run over it).
    Dtls,
    /// 64..=79: TURN ChannelData.
    ChannelData,
    /// 128..=191: RTP or RTCP.
    Rtp,
    /// Empty, or any other first byte: to be dropped.
    Unknown,
}

/// Classifies a packet by its first byte, as RFC 7983 §7 demultiplexes STUN, ZRTP, DTLS, TURN
/// channels and RTP sharing one socket. Only the first byte is looked at: decode to be sure.
pub fn classify(packet: &[u8]) -> PacketKind {
    match packet.first() {
        Some(0..=3) => PacketKind::Stun,
        Some(16..=19) => PacketKind::Zrtp,
        Some(20..=63) => PacketKind::Dtls,
        Some(64..=79) => PacketKind::ChannelData,
        Some(128..=191) => PacketKind::Rtp,
        _ => PacketKind::Unknown,
    }
}

/// A quick test for a STUN message: at least a header, a first byte in 0..=3 and the magic
/// cookie. Cheaper than [`Message::decode`](super::Message::decode) and without its guarantees.
///
/// The first-byte range is RFC 7983's: it holds every message of methods 0x000..=0x0FF, which
/// covers STUN, TURN and ICE. A method from 0x100 up sets higher bits of the first byte; such
/// messages still decode, but multiplexing treats them as unknown.
pub fn is_stun(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_LEN
        && bytes[0] < 4
        && u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) == MAGIC_COOKIE
}

/// The length of the STUN message or ChannelData frame at the start of `buf`, read from a
/// stream transport (TCP or TLS to a STUN or TURN server), so the caller knows how many bytes to
/// wait for before decoding.
///
/// `Ok(None)` means more bytes are needed to tell (fewer than four, or fewer than eight for a
/// STUN message whose cookie is checked). ChannelData frames count their padding, which RFC 8656
/// §12.5 makes mandatory on streams. Fails when the bytes can start neither: the stream is then
/// out of sync and must be closed.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, Error> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]);
    // The first two bits: 0b00 STUN (any method), 0b01 ChannelData.
    match buf[0] {
        0x00..=0x3F => {
            if !len.is_multiple_of(4) {
                return Err(Error::UnalignedLength(len));
            }
            if buf.len() < 8 {
                return Ok(None);
            }
            let cookie = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
            if cookie != MAGIC_COOKIE {
                return Err(Error::BadMagicCookie(cookie));
            }
            Ok(Some(HEADER_LEN + len as usize))
        }
        0x40..=0x7F => {
            let channel = u16::from_be_bytes([buf[0], buf[1]]);
            if !CHANNEL_NUMBERS.contains(&channel) {
                return Err(Error::InvalidChannel(channel));
            }
            let len = len as usize;
            Ok(Some(ChannelData::HEADER_LEN + len + padding(len)))
        }
        _ => Err(Error::NotStun),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stun::{Class, Message, MessageType, Method, TransactionId};

    #[test]
    fn rfc7983_first_byte_ranges_pick_the_protocol() {
        let cases = [
            (0, PacketKind::Stun),
            (3, PacketKind::Stun),
            (4, PacketKind::Unknown),
            (16, PacketKind::Zrtp),
            (19, PacketKind::Zrtp),
            (20, PacketKind::Dtls),
            (22, PacketKind::Dtls), // a DTLS handshake record
            (63, PacketKind::Dtls),
            (64, PacketKind::ChannelData),
            (79, PacketKind::ChannelData),
            (80, PacketKind::Unknown),
            (127, PacketKind::Unknown),
            (128, PacketKind::Rtp),
            (191, PacketKind::Rtp),
            (192, PacketKind::Unknown),
            (255, PacketKind::Unknown),
        ];
        for (byte, kind) in cases {
            assert_eq!(classify(&[byte, 0, 0, 0]), kind, "first byte {byte}");
        }
        assert_eq!(classify(&[]), PacketKind::Unknown);
    }

    #[test]
    fn is_stun_wants_a_header_with_the_cookie() {
        let m = Message::new(
            MessageType::new(Class::Request, Method::Binding),
            TransactionId([0; 12]),
        )
        .encode(None, false)
        .unwrap();
        assert!(is_stun(&m));
        assert!(!is_stun(&m[..19]));
        let mut bad = m.clone();
        bad[5] ^= 1;
        assert!(!is_stun(&bad));
        let mut bad = m;
        bad[0] = 0x40;
        assert!(!is_stun(&bad));
    }

    #[test]
    fn frame_len_cuts_stun_and_padded_channel_data_from_a_stream() {
        let m = Message::new(
            MessageType::new(Class::Request, Method::Binding),
            TransactionId([0; 12]),
        )
        .with(crate::stun::Attribute::Lifetime(1))
        .encode(None, true)
        .unwrap();
        assert_eq!(frame_len(&m[..3]), Ok(None));
        assert_eq!(frame_len(&m[..4]), Ok(None));
        assert_eq!(frame_len(&m[..8]), Ok(Some(m.len())));
        assert_eq!(frame_len(&[0x40, 0x01, 0x00, 0x05]), Ok(Some(12)));
        assert_eq!(frame_len(&[0x4F, 0xFF, 0x00, 0x08]), Ok(Some(12)));
        assert_eq!(
            frame_len(&[0x50, 0x00, 0x00, 0x00]),
            Err(Error::InvalidChannel(0x5000))
        );
        // Method 0xFFF: a STUN message outside the RFC 7983 range still frames.
        assert_eq!(
            frame_len(&[0x3E, 0xEF, 0x00, 0x04, 0x21, 0x12, 0xA4, 0x42]),
            Ok(Some(24))
        );
        assert_eq!(frame_len(&[0x80, 0x00, 0x00, 0x00]), Err(Error::NotStun));
        assert_eq!(frame_len(&[0xFF, 0xFF, 0xFF, 0xFF]), Err(Error::NotStun));
        assert_eq!(
            frame_len(&[0x00, 0x01, 0x00, 0x02]),
            Err(Error::UnalignedLength(2))
        );
        assert!(matches!(
            frame_len(&[0x00, 0x01, 0x00, 0x00, 1, 2, 3, 4]),
            Err(Error::BadMagicCookie(_))
        ));
    }
}
