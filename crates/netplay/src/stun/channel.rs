//! TURN ChannelData frames (RFC 8656 §12.4): application data on a bound channel, with a
//! four-byte header instead of a Send or Data indication.
//!
//! This module owns the frame layout and the channel number range. Which channels are bound to
//! which peers is allocation state, not kept here.

use std::ops::RangeInclusive;

use super::message::padding;
use super::Error;

/// The channel numbers a client may bind (RFC 8656 §12): 0x4000 through 0x4FFF. RFC 5766
/// allowed up to 0x7FFF; RFC 8656 gave the rest up so ChannelData stays clear of other protocols
/// on the same socket (RFC 7983).
pub const CHANNEL_NUMBERS: RangeInclusive<u16> = 0x4000..=0x4FFF;

/// One ChannelData frame, borrowing its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelData<'a> {
    /// The channel number, in [`CHANNEL_NUMBERS`].
    pub channel: u16,
    /// The application data.
    pub data: &'a [u8],
}

impl<'a> ChannelData<'a> {
    /// The length of the header: channel number and data length, 16 bits each.
    pub const HEADER_LEN: usize = 4;

    /// Decodes one frame that fills `bytes`: a UDP datagram, or a frame cut from a stream with
    /// [`frame_len`](super::frame_len).
    ///
    /// The data may be followed by its padding to a multiple of four bytes (required over TCP
    /// and TLS, optional over UDP) or by nothing; anything else is refused.
    pub fn decode(bytes: &'a [u8]) -> Result<ChannelData<'a>, Error> {
        if bytes.len() < Self::HEADER_LEN {
            return Err(Error::ChannelDataLength {
                declared: 0,
                actual: bytes.len(),
            });
        }
        let channel = u16::from_be_bytes([bytes[0], bytes[1]]);
        if !CHANNEL_NUMBERS.contains(&channel) {
            return Err(Error::InvalidChannel(channel));
        }
        let declared = u16::from_be_bytes([bytes[2], bytes[3]]) as usize;
        let actual = bytes.len() - Self::HEADER_LEN;
        if actual != declared && actual != declared + padding(declared) {
            return Err(Error::ChannelDataLength { declared, actual });
        }
        Ok(ChannelData {
            channel,
            data: &bytes[Self::HEADER_LEN..Self::HEADER_LEN + declared],
        })
    }

    /// The encoded length: header, data and, with `padded`, padding to four bytes.
    pub fn encoded_len(&self, padded: bool) -> usize {
        let pad = if padded { padding(self.data.len()) } else { 0 };
        Self::HEADER_LEN + self.data.len() + pad
    }

    /// Appends the frame to `out`. `padded` adds zero padding to a multiple of four bytes, which
    /// RFC 8656 §12.5 requires over TCP and TLS; over UDP it may be left out.
    ///
    /// Fails for a channel outside [`CHANNEL_NUMBERS`] or data over 65535 bytes, leaving `out`
    /// unchanged.
    pub fn encode_into(&self, out: &mut Vec<u8>, padded: bool) -> Result<(), Error> {
        if !CHANNEL_NUMBERS.contains(&self.channel) {
            return Err(Error::InvalidChannel(self.channel));
        }
        let len = u16::try_from(self.data.len()).map_err(|_| Error::TooLong {
            what: "ChannelData data",
            len: self.data.len(),
            max: u16::MAX as usize,
        })?;
        out.reserve(self.encoded_len(padded));
        out.extend_from_slice(&self.channel.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(self.data);
        if padded {
            out.resize(out.len() + padding(self.data.len()), 0);
        }
        Ok(())
    }

    /// The frame as a new buffer; see [`ChannelData::encode_into`].
    pub fn encode(&self, padded: bool) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.encode_into(&mut out, padded)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_data_frames_channel_length_and_data() {
        let frame = ChannelData {
            channel: 0x4001,
            data: b"hello",
        };
        let bytes = frame.encode(false).unwrap();
        assert_eq!(
            bytes,
            [0x40, 0x01, 0x00, 0x05, b'h', b'e', b'l', b'l', b'o']
        );
        assert_eq!(ChannelData::decode(&bytes), Ok(frame));
        let padded = frame.encode(true).unwrap();
        assert_eq!(padded.len(), 12);
        assert_eq!(padded.len(), frame.encoded_len(true));
        assert_eq!(&padded[9..], [0, 0, 0]);
        assert_eq!(ChannelData::decode(&padded), Ok(frame));
    }

    #[test]
    fn channel_numbers_outside_0x4000_to_0x4fff_are_refused() {
        for channel in [0x0000, 0x3FFF, 0x5000, 0x7FFF, 0xFFFF] {
            let frame = ChannelData { channel, data: b"" };
            assert_eq!(frame.encode(false), Err(Error::InvalidChannel(channel)));
            let mut bytes = vec![0; 4];
            bytes[..2].copy_from_slice(&channel.to_be_bytes());
            assert_eq!(
                ChannelData::decode(&bytes),
                Err(Error::InvalidChannel(channel))
            );
        }
        for channel in [0x4000, 0x4FFF] {
            let bytes = ChannelData { channel, data: b"" }.encode(true).unwrap();
            assert_eq!(ChannelData::decode(&bytes).unwrap().channel, channel);
        }
    }

    #[test]
    fn length_must_match_with_or_without_padding() {
        let ok = [0x40, 0x00, 0x00, 0x02, 1, 2];
        assert_eq!(ChannelData::decode(&ok).unwrap().data, [1, 2]);
        assert_eq!(
            ChannelData::decode(&[0x40, 0x00, 0x00, 0x02, 1, 2, 0, 0])
                .unwrap()
                .data,
            [1, 2]
        );
        for bad in [
            &[0x40, 0x00, 0x00][..],
            &[0x40, 0x00, 0x00, 0x02, 1][..],
            &[0x40, 0x00, 0x00, 0x02, 1, 2, 0][..],
            &[0x40, 0x00, 0x00, 0x02, 1, 2, 0, 0, 0][..],
            &[0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4, 0, 0, 0, 0][..],
        ] {
            assert!(
                matches!(
                    ChannelData::decode(bad),
                    Err(Error::ChannelDataLength { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn data_over_65535_bytes_is_refused_without_touching_the_buffer() {
        let data = vec![0; 65_536];
        let mut out = vec![9];
        assert!(ChannelData {
            channel: 0x4000,
            data: &data
        }
        .encode_into(&mut out, true)
        .is_err());
        assert_eq!(out, [9]);
    }
}
