//! The SCTP wire format: the common header with its CRC32c, chunk and parameter framing,
//! parsers that check every length, and writers that append to the packet being built.
//!
//! Parsers borrow from the packet and never allocate; writers append big-endian fields to a
//! `Vec<u8>` and pad chunks to four bytes. What a chunk means is the business of the
//! association, not of this module.

use super::crc32c::Crc32c;
use super::SctpError;

/// Length of the common header (ports, verification tag, checksum).
pub(super) const COMMON_HEADER_LEN: usize = 12;
/// Length of a chunk header (type, flags, length).
pub(super) const CHUNK_HEADER_LEN: usize = 4;
/// Length of a DATA chunk header including the chunk header.
pub(super) const DATA_HEADER_LEN: usize = 16;

// Chunk types (RFC 9260 3.2, RFC 3758 3.2, RFC 6525 3.1).
pub(super) const DATA: u8 = 0;
pub(super) const INIT: u8 = 1;
pub(super) const INIT_ACK: u8 = 2;
pub(super) const SACK: u8 = 3;
pub(super) const HEARTBEAT: u8 = 4;
pub(super) const HEARTBEAT_ACK: u8 = 5;
pub(super) const ABORT: u8 = 6;
pub(super) const SHUTDOWN: u8 = 7;
pub(super) const SHUTDOWN_ACK: u8 = 8;
pub(super) const ERROR: u8 = 9;
pub(super) const COOKIE_ECHO: u8 = 10;
pub(super) const COOKIE_ACK: u8 = 11;
pub(super) const SHUTDOWN_COMPLETE: u8 = 14;
pub(super) const RE_CONFIG: u8 = 130;
pub(super) const FORWARD_TSN: u8 = 192;

// DATA chunk flags.
/// RFC 7053: the receiver should SACK at once.
pub(super) const FLAG_IMMEDIATE: u8 = 0x08;
/// Unordered.
pub(super) const FLAG_UNORDERED: u8 = 0x04;
/// First fragment of a message.
pub(super) const FLAG_BEGIN: u8 = 0x02;
/// Last fragment of a message.
pub(super) const FLAG_END: u8 = 0x01;
/// ABORT and SHUTDOWN COMPLETE: the verification tag is the sender's own (reflected).
pub(super) const FLAG_T: u8 = 0x01;

// INIT / INIT ACK parameters.
pub(super) const PARAM_HEARTBEAT_INFO: u16 = 1;
pub(super) const PARAM_IPV4: u16 = 5;
pub(super) const PARAM_IPV6: u16 = 6;
pub(super) const PARAM_STATE_COOKIE: u16 = 7;
pub(super) const PARAM_UNRECOGNIZED: u16 = 8;
pub(super) const PARAM_COOKIE_PRESERVATIVE: u16 = 9;
pub(super) const PARAM_HOST_NAME: u16 = 11;
pub(super) const PARAM_SUPPORTED_ADDRESS_TYPES: u16 = 12;
pub(super) const PARAM_ECN: u16 = 0x8000;
pub(super) const PARAM_SUPPORTED_EXTENSIONS: u16 = 0x8008;
pub(super) const PARAM_FORWARD_TSN_SUPPORTED: u16 = 0xC000;

// RE-CONFIG parameters (RFC 6525 4).
pub(super) const PARAM_OUTGOING_RESET: u16 = 13;
pub(super) const PARAM_INCOMING_RESET: u16 = 14;
pub(super) const PARAM_SSN_TSN_RESET: u16 = 15;
pub(super) const PARAM_RECONFIG_RESPONSE: u16 = 16;
pub(super) const PARAM_ADD_OUTGOING_STREAMS: u16 = 17;
pub(super) const PARAM_ADD_INCOMING_STREAMS: u16 = 18;

// Error causes (RFC 9260 3.3.10).
pub(super) const CAUSE_INVALID_STREAM: u16 = 1;
pub(super) const CAUSE_UNRECOGNIZED_CHUNK: u16 = 6;
pub(super) const CAUSE_USER_INITIATED_ABORT: u16 = 12;
pub(super) const CAUSE_PROTOCOL_VIOLATION: u16 = 13;

/// The name of an error cause code, for logs and close reasons.
pub(super) fn cause_name(code: u16) -> &'static str {
    match code {
        1 => "Invalid Stream Identifier",
        2 => "Missing Mandatory Parameter",
        3 => "Stale Cookie Error",
        4 => "Out of Resource",
        5 => "Unresolvable Address",
        6 => "Unrecognized Chunk Type",
        7 => "Invalid Mandatory Parameter",
        8 => "Unrecognized Parameters",
        9 => "No User Data",
        10 => "Cookie Received While Shutting Down",
        11 => "Restart of an Association with New Addresses",
        12 => "User-Initiated Abort",
        13 => "Protocol Violation",
        _ => "unknown cause",
    }
}

/// `len` rounded up to a multiple of four.
pub(super) const fn padded(len: usize) -> usize {
    (len + 3) & !3
}

/// A bounds-checked big-endian reader over a slice.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    pub(super) fn u16(&mut self) -> Option<u16> {
        let (head, rest) = self.buf.split_first_chunk::<2>()?;
        self.buf = rest;
        Some(u16::from_be_bytes(*head))
    }

    pub(super) fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.buf.split_first_chunk::<4>()?;
        self.buf = rest;
        Some(u32::from_be_bytes(*head))
    }

    pub(super) fn rest(&self) -> &'a [u8] {
        self.buf
    }

    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// The common header of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CommonHeader {
    pub(super) src_port: u16,
    pub(super) dst_port: u16,
    pub(super) vtag: u32,
}

/// Checks the length and the CRC32c of a packet and splits it into its header and chunks.
pub(super) fn parse_packet(packet: &[u8]) -> Result<(CommonHeader, Chunks<'_>), SctpError> {
    if packet.len() < COMMON_HEADER_LEN + CHUNK_HEADER_LEN {
        return Err(SctpError::TooShort(packet.len()));
    }
    let mut r = Reader::new(packet);
    let (Some(src_port), Some(dst_port), Some(vtag), Some(_)) =
        (r.u16(), r.u16(), r.u32(), r.u32())
    else {
        return Err(SctpError::TooShort(packet.len()));
    };
    let stored = u32::from_le_bytes([packet[8], packet[9], packet[10], packet[11]]);
    let mut crc = Crc32c::new();
    crc.update(&packet[..8]);
    crc.update(&[0; 4]);
    crc.update(&packet[COMMON_HEADER_LEN..]);
    if crc.finish() != stored {
        return Err(SctpError::Checksum);
    }
    let header = CommonHeader {
        src_port,
        dst_port,
        vtag,
    };
    Ok((
        header,
        Chunks {
            rest: &packet[COMMON_HEADER_LEN..],
        },
    ))
}

/// Appends a common header with a zero checksum; [`finish_packet`] fills it in.
pub(super) fn put_common_header(out: &mut Vec<u8>, src_port: u16, dst_port: u16, vtag: u32) {
    out.extend_from_slice(&src_port.to_be_bytes());
    out.extend_from_slice(&dst_port.to_be_bytes());
    out.extend_from_slice(&vtag.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
}

/// Computes the CRC32c of a packet whose checksum field is zero and stores it (the CRC's
/// least significant byte first, as RFC 9260 appendix A transmits it).
pub(super) fn finish_packet(out: &mut [u8]) {
    if out.len() < COMMON_HEADER_LEN {
        return;
    }
    let mut crc = Crc32c::new();
    crc.update(out);
    out[8..12].copy_from_slice(&crc.finish().to_le_bytes());
}

/// One chunk of a packet: its type, flags and value (without header and padding).
#[derive(Debug, Clone, Copy)]
pub(super) struct Chunk<'a> {
    pub(super) kind: u8,
    pub(super) flags: u8,
    pub(super) value: &'a [u8],
    /// The whole chunk, header included, padding excluded (for error reports).
    pub(super) raw: &'a [u8],
}

/// The chunks of a packet, in order. A framing error ends the iteration with an error.
#[derive(Debug, Clone)]
pub(super) struct Chunks<'a> {
    rest: &'a [u8],
}

impl<'a> Chunks<'a> {
    /// The type and flags of the first chunk, if there is one.
    pub(super) fn peek(&self) -> Option<(u8, u8)> {
        match self.rest {
            [kind, flags, _, _, ..] => Some((*kind, *flags)),
            _ => None,
        }
    }
}

impl<'a> Iterator for Chunks<'a> {
    type Item = Result<Chunk<'a>, SctpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.rest);
        let [kind, flags, l0, l1, ..] = *rest else {
            return Some(Err(SctpError::malformed(rest[0], "truncated chunk header")));
        };
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        if len < CHUNK_HEADER_LEN {
            return Some(Err(SctpError::malformed(kind, "chunk length below 4")));
        }
        if len > rest.len() {
            return Some(Err(SctpError::malformed(
                kind,
                "chunk length beyond the packet",
            )));
        }
        // The last chunk's padding may be missing; tolerate that.
        self.rest = rest.get(padded(len)..).unwrap_or(&[]);
        Some(Ok(Chunk {
            kind,
            flags,
            value: &rest[CHUNK_HEADER_LEN..len],
            raw: &rest[..len],
        }))
    }
}

/// A type-length-value parameter (INIT parameters, RE-CONFIG parameters, error causes all
/// share this framing).
#[derive(Debug, Clone, Copy)]
pub(super) struct Param<'a> {
    pub(super) kind: u16,
    pub(super) value: &'a [u8],
    /// The whole parameter, header included, padding excluded.
    pub(super) raw: &'a [u8],
}

/// Iterates over TLV parameters; a framing error ends the iteration with an error.
#[derive(Debug, Clone)]
pub(super) struct Params<'a> {
    rest: &'a [u8],
    chunk: u8,
}

impl<'a> Params<'a> {
    pub(super) fn new(buf: &'a [u8], chunk: u8) -> Params<'a> {
        Params { rest: buf, chunk }
    }
}

impl<'a> Iterator for Params<'a> {
    type Item = Result<Param<'a>, SctpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.rest);
        let [t0, t1, l0, l1, ..] = *rest else {
            return Some(Err(SctpError::malformed(
                self.chunk,
                "truncated parameter header",
            )));
        };
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        if len < 4 || len > rest.len() {
            return Some(Err(SctpError::malformed(
                self.chunk,
                "bad parameter length",
            )));
        }
        self.rest = rest.get(padded(len)..).unwrap_or(&[]);
        let kind = u16::from_be_bytes([t0, t1]);
        Some(Ok(Param {
            kind,
            value: &rest[4..len],
            raw: &rest[..len],
        }))
    }
}

/// A DATA chunk.
#[derive(Debug, Clone, Copy)]
pub(super) struct Data<'a> {
    pub(super) flags: u8,
    pub(super) tsn: u32,
    pub(super) stream: u16,
    pub(super) ssn: u16,
    pub(super) ppid: u32,
    pub(super) payload: &'a [u8],
}

impl<'a> Data<'a> {
    pub(super) fn parse(chunk: &Chunk<'a>) -> Result<Data<'a>, SctpError> {
        let mut r = Reader::new(chunk.value);
        let (Some(tsn), Some(stream), Some(ssn), Some(ppid)) = (r.u32(), r.u16(), r.u16(), r.u32())
        else {
            return Err(SctpError::malformed(DATA, "DATA header truncated"));
        };
        if r.is_empty() {
            return Err(SctpError::malformed(DATA, "DATA without user data"));
        }
        Ok(Data {
            flags: chunk.flags,
            tsn,
            stream,
            ssn,
            ppid,
            payload: r.rest(),
        })
    }

    pub(super) fn begins(&self) -> bool {
        self.flags & FLAG_BEGIN != 0
    }

    pub(super) fn ends(&self) -> bool {
        self.flags & FLAG_END != 0
    }

    pub(super) fn unordered(&self) -> bool {
        self.flags & FLAG_UNORDERED != 0
    }
}

/// Appends a DATA chunk.
#[allow(clippy::too_many_arguments)]
pub(super) fn put_data(
    out: &mut Vec<u8>,
    flags: u8,
    tsn: u32,
    stream: u16,
    ssn: u16,
    ppid: u32,
    payload: &[u8],
) {
    put_chunk_header(out, DATA, flags, DATA_HEADER_LEN + payload.len());
    out.extend_from_slice(&tsn.to_be_bytes());
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(&ssn.to_be_bytes());
    out.extend_from_slice(&ppid.to_be_bytes());
    out.extend_from_slice(payload);
    pad(out);
}

/// The fixed part of an INIT or INIT ACK; `params` follow it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Init<'a> {
    pub(super) initiate_tag: u32,
    pub(super) a_rwnd: u32,
    pub(super) outbound_streams: u16,
    pub(super) inbound_streams: u16,
    pub(super) initial_tsn: u32,
    pub(super) params: &'a [u8],
}

impl<'a> Init<'a> {
    pub(super) fn parse(chunk: &Chunk<'a>) -> Result<Init<'a>, SctpError> {
        let kind = chunk.kind;
        let mut r = Reader::new(chunk.value);
        let (Some(initiate_tag), Some(a_rwnd), Some(os), Some(mis), Some(initial_tsn)) =
            (r.u32(), r.u32(), r.u16(), r.u16(), r.u32())
        else {
            return Err(SctpError::malformed(kind, "INIT fields truncated"));
        };
        if initiate_tag == 0 {
            return Err(SctpError::malformed(kind, "zero Initiate Tag"));
        }
        if os == 0 || mis == 0 {
            return Err(SctpError::malformed(kind, "zero stream count"));
        }
        Ok(Init {
            initiate_tag,
            a_rwnd,
            outbound_streams: os,
            inbound_streams: mis,
            initial_tsn,
            params: r.rest(),
        })
    }
}

/// Appends the fixed part of an INIT or INIT ACK; the caller appends parameters and then
/// calls [`end_chunk`] with the chunk's start.
pub(super) fn put_init_fixed(
    out: &mut Vec<u8>,
    kind: u8,
    initiate_tag: u32,
    a_rwnd: u32,
    streams: u16,
    initial_tsn: u32,
) -> usize {
    let start = out.len();
    put_chunk_header(out, kind, 0, 0);
    out.extend_from_slice(&initiate_tag.to_be_bytes());
    out.extend_from_slice(&a_rwnd.to_be_bytes());
    out.extend_from_slice(&streams.to_be_bytes());
    out.extend_from_slice(&streams.to_be_bytes());
    out.extend_from_slice(&initial_tsn.to_be_bytes());
    start
}

/// The parameters announcing the extensions we support: Supported Extensions (RE-CONFIG and
/// FORWARD-TSN) and Forward-TSN-Supported (RFC 3758, for stacks that predate the former).
pub(super) fn put_extension_params(out: &mut Vec<u8>) {
    put_param(out, PARAM_SUPPORTED_EXTENSIONS, &[RE_CONFIG, FORWARD_TSN]);
    put_param(out, PARAM_FORWARD_TSN_SUPPORTED, &[]);
}

/// A SACK chunk; gap blocks and duplicate TSNs are read with the iterators.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sack<'a> {
    pub(super) cum_tsn: u32,
    pub(super) a_rwnd: u32,
    gaps: &'a [u8],
}

impl<'a> Sack<'a> {
    pub(super) fn parse(chunk: &Chunk<'a>) -> Result<Sack<'a>, SctpError> {
        let mut r = Reader::new(chunk.value);
        let (Some(cum_tsn), Some(a_rwnd), Some(ngaps), Some(ndups)) =
            (r.u32(), r.u32(), r.u16(), r.u16())
        else {
            return Err(SctpError::malformed(SACK, "SACK fields truncated"));
        };
        let gaps_len = usize::from(ngaps) * 4;
        let dups_len = usize::from(ndups) * 4;
        if r.rest().len() < gaps_len + dups_len {
            return Err(SctpError::malformed(
                SACK,
                "SACK block counts beyond the chunk",
            ));
        }
        let gaps = &r.rest()[..gaps_len];
        Ok(Sack {
            cum_tsn,
            a_rwnd,
            gaps,
        })
    }

    /// Gap ack blocks as (start, end) offsets from the cumulative TSN.
    pub(super) fn gaps(&self) -> impl Iterator<Item = (u16, u16)> + 'a {
        self.gaps.chunks_exact(4).map(|b| {
            (
                u16::from_be_bytes([b[0], b[1]]),
                u16::from_be_bytes([b[2], b[3]]),
            )
        })
    }
}

/// Appends a SACK chunk.
pub(super) fn put_sack(
    out: &mut Vec<u8>,
    cum_tsn: u32,
    a_rwnd: u32,
    gaps: impl ExactSizeIterator<Item = (u16, u16)>,
    dups: &[u32],
) {
    let ngaps = gaps.len();
    put_chunk_header(out, SACK, 0, 16 + 4 * (ngaps + dups.len()));
    out.extend_from_slice(&cum_tsn.to_be_bytes());
    out.extend_from_slice(&a_rwnd.to_be_bytes());
    out.extend_from_slice(&(ngaps as u16).to_be_bytes());
    out.extend_from_slice(&(dups.len() as u16).to_be_bytes());
    for (start, end) in gaps {
        out.extend_from_slice(&start.to_be_bytes());
        out.extend_from_slice(&end.to_be_bytes());
    }
    for dup in dups {
        out.extend_from_slice(&dup.to_be_bytes());
    }
}

/// A FORWARD TSN chunk; the (stream, SSN) pairs are read with the iterator.
#[derive(Debug, Clone, Copy)]
pub(super) struct ForwardTsn<'a> {
    pub(super) new_cum_tsn: u32,
    pairs: &'a [u8],
}

impl<'a> ForwardTsn<'a> {
    pub(super) fn parse(chunk: &Chunk<'a>) -> Result<ForwardTsn<'a>, SctpError> {
        let mut r = Reader::new(chunk.value);
        let Some(new_cum_tsn) = r.u32() else {
            return Err(SctpError::malformed(FORWARD_TSN, "FORWARD TSN truncated"));
        };
        if !r.rest().len().is_multiple_of(4) {
            return Err(SctpError::malformed(
                FORWARD_TSN,
                "FORWARD TSN stream list misaligned",
            ));
        }
        Ok(ForwardTsn {
            new_cum_tsn,
            pairs: r.rest(),
        })
    }

    /// The (stream, SSN) pairs of the ordered streams to skip.
    pub(super) fn pairs(&self) -> impl Iterator<Item = (u16, u16)> + 'a {
        self.pairs.chunks_exact(4).map(|b| {
            (
                u16::from_be_bytes([b[0], b[1]]),
                u16::from_be_bytes([b[2], b[3]]),
            )
        })
    }
}

/// Appends a FORWARD TSN chunk.
pub(super) fn put_forward_tsn(out: &mut Vec<u8>, new_cum_tsn: u32, pairs: &[(u16, u16)]) {
    put_chunk_header(out, FORWARD_TSN, 0, 8 + 4 * pairs.len());
    out.extend_from_slice(&new_cum_tsn.to_be_bytes());
    for (stream, ssn) in pairs {
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(&ssn.to_be_bytes());
    }
}

/// Appends a chunk header; `len` includes the header and excludes padding. A `len` of 0
/// is a placeholder that [`end_chunk`] fixes.
pub(super) fn put_chunk_header(out: &mut Vec<u8>, kind: u8, flags: u8, len: usize) {
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(len as u16).to_be_bytes());
}

/// Writes the length of the chunk that starts at `start` and pads it.
pub(super) fn end_chunk(out: &mut Vec<u8>, start: usize) {
    let len = (out.len() - start) as u16;
    out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
    pad(out);
}

/// Appends a chunk made of a header and one value.
pub(super) fn put_chunk(out: &mut Vec<u8>, kind: u8, flags: u8, value: &[u8]) {
    put_chunk_header(out, kind, flags, CHUNK_HEADER_LEN + value.len());
    out.extend_from_slice(value);
    pad(out);
}

/// Appends a TLV parameter (or error cause), first padding what precedes it. The last
/// parameter's padding is the chunk's, added by [`end_chunk`] after the length is taken.
pub(super) fn put_param(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    pad(out);
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&((4 + value.len()) as u16).to_be_bytes());
    out.extend_from_slice(value);
}

/// Pads `out` with zeros to a multiple of four bytes.
pub(super) fn pad(out: &mut Vec<u8>) {
    let target = padded(out.len());
    out.resize(target, 0);
}

/// Describes the error causes of an ABORT or ERROR chunk in one line.
pub(super) fn describe_causes(value: &[u8], chunk: u8) -> String {
    let mut text = String::new();
    for cause in Params::new(value, chunk).take(8) {
        let Ok(cause) = cause else {
            break;
        };
        if !text.is_empty() {
            text.push_str("; ");
        }
        text.push_str(cause_name(cause.kind));
        let info = match cause.kind {
            CAUSE_USER_INITIATED_ABORT | CAUSE_PROTOCOL_VIOLATION => cause.value,
            _ => &[],
        };
        let info = String::from_utf8_lossy(&info[..info.len().min(200)]);
        let info = info.trim_end_matches('\0').trim();
        if !info.is_empty() {
            text.push_str(": ");
            text.push_str(info);
        }
    }
    if text.is_empty() {
        text.push_str("no cause given");
    }
    text
}
