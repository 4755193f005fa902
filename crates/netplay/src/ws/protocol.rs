//! The WebSocket connection state machine after the opening handshake (RFC 6455 §5–§7).
//!
//! A fully deterministic implementation of the framing protocol: it contains no networking code,
//! reads no clock and starts no thread. Bytes read from the network go in through
//! [`Connection::receive`]; messages, pings, pongs and the close come out of
//! [`Connection::poll_event`]; bytes to write come out of [`Connection::pending_output`].
//!
//! It owns fragmentation, masking, control frames, the close handshake, UTF-8 validation of text,
//! the inbound message-size limit and (feature `deflate`) permessage-deflate.

use std::collections::VecDeque;

use super::frame::{apply_mask, FrameHeader, OpCode, MAX_HEADER_LEN};
use super::outbuf::OutQueue;
use super::utf8::Utf8Validator;
use super::{Error, ProtocolError};

#[cfg(feature = "deflate")]
use super::deflate::PerMessageDeflate;

/// Which end of the connection this is. Clients mask what they send; servers must not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The side that opened the connection.
    Client,
    /// The side that accepted it.
    Server,
}

/// Whether a message is text (valid UTF-8) or binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    /// A text message (opcode 0x1).
    Text,
    /// A binary message (opcode 0x2).
    Binary,
}

impl MessageKind {
    /// The opcode of a message's first frame.
    pub fn opcode(self) -> OpCode {
        match self {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        }
    }
}

/// Limits of one connection.
#[derive(Clone, Debug)]
pub struct Config {
    /// Largest inbound message, after decompression. Above it the connection closes with 1009.
    pub max_message_size: usize,
    /// Decoding pauses while this many events wait in [`Connection::poll_event`]; the rest of
    /// the input stays buffered until they are taken.
    pub max_queued_events: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_message_size: 64 << 20,
            max_queued_events: 4096,
        }
    }
}

/// What the peer sent.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A complete message.
    Message {
        /// Text or binary.
        kind: MessageKind,
        /// The payload; valid UTF-8 when `kind` is text.
        data: Vec<u8>,
    },
    /// A ping (already answered with a pong).
    Ping(Vec<u8>),
    /// A pong.
    Pong(Vec<u8>),
    /// The peer's close frame. `code` is `None` when the frame had no status code.
    Close {
        /// The status code, if any.
        code: Option<u16>,
        /// The reason, possibly empty.
        reason: String,
    },
}

/// Where the connection is in the close handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseState {
    /// Neither side has sent a close frame.
    Open,
    /// We sent a close frame and wait for the peer's.
    CloseSent,
    /// Both close frames have been exchanged (or we failed the connection): nothing more is
    /// read or sent; the transport can be closed once the output is flushed.
    Closed,
}

#[derive(Debug)]
enum Decode {
    Header,
    Payload {
        header: FrameHeader,
        /// Payload bytes of this frame received so far.
        done: u64,
    },
}

/// Whether `code` may appear in a close frame on the wire (RFC 6455 §7.4).
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// One WebSocket connection's protocol state. See the module documentation.
pub struct Connection {
    role: Role,
    config: Config,
    state: CloseState,
    decode: Decode,
    /// Input that arrived while decoding was paused, or a partial frame header.
    rx: Vec<u8>,
    /// The message being assembled (payload of its frames so far).
    msg: Vec<u8>,
    /// Kind of the message in progress, if a fragmented message has started.
    msg_kind: Option<MessageKind>,
    msg_compressed: bool,
    utf8: Utf8Validator,
    /// Payload of the control frame in progress.
    control: Vec<u8>,
    events: VecDeque<Event>,
    out: OutQueue,
    /// The close frame we sent: code and reason.
    sent_close: Option<(u16, String)>,
    /// The close frame we received.
    received_close: Option<(Option<u16>, String)>,
    #[cfg(feature = "deflate")]
    deflate: Option<PerMessageDeflate>,
    #[cfg(feature = "deflate")]
    scratch: Vec<u8>,
}

/// Buffers of at most this size are always kept; drivers release larger ones on a quiet
/// connection through [`Connection::release_memory`].
pub const KEEP_CAPACITY: usize = 16 * 1024;

/// Payloads from this size on are queued without a copy by [`Connection::send_owned`].
const OWNED_MIN: usize = 16 * 1024;

impl Connection {
    /// A new open connection for `role`.
    pub fn new(role: Role, config: Config) -> Connection {
        Connection {
            role,
            config,
            state: CloseState::Open,
            decode: Decode::Header,
            rx: Vec::new(),
            msg: Vec::new(),
            msg_kind: None,
            msg_compressed: false,
            utf8: Utf8Validator::default(),
            control: Vec::new(),
            events: VecDeque::new(),
            out: OutQueue::default(),
            sent_close: None,
            received_close: None,
            #[cfg(feature = "deflate")]
            deflate: None,
            #[cfg(feature = "deflate")]
            scratch: Vec::new(),
        }
    }

    /// Enables permessage-deflate with parameters agreed in the handshake.
    #[cfg(feature = "deflate")]
    pub fn set_deflate(&mut self, deflate: Option<PerMessageDeflate>) {
        self.deflate = deflate;
    }

    /// Whether permessage-deflate is in use.
    pub fn is_compressed(&self) -> bool {
        #[cfg(feature = "deflate")]
        {
            self.deflate.is_some()
        }
        #[cfg(not(feature = "deflate"))]
        {
            false
        }
    }

    /// This connection's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The limits in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Changes the limits (takes effect for the next frame).
    pub fn set_config(&mut self, config: Config) {
        self.config = config;
    }

    /// Where the close handshake stands.
    pub fn close_state(&self) -> CloseState {
        self.state
    }

    /// The close frame we sent, if any: (code, reason).
    pub fn sent_close(&self) -> Option<(u16, &str)> {
        self.sent_close.as_ref().map(|(c, r)| (*c, r.as_str()))
    }

    /// The close frame the peer sent, if any: (code, reason).
    pub fn received_close(&self) -> Option<(Option<u16>, &str)> {
        self.received_close.as_ref().map(|(c, r)| (*c, r.as_str()))
    }

    /// Number of events waiting in [`Connection::poll_event`].
    pub fn queued_events(&self) -> usize {
        self.events.len()
    }

    /// Bytes of input received but not decoded yet (decoding paused on a full event queue).
    pub fn buffered_input(&self) -> usize {
        self.rx.len()
    }

    /// Bytes of buffer capacity held without pending data: what
    /// [`Connection::release_memory`] would give back.
    pub fn retained_memory(&self) -> usize {
        let mut n = self.control.capacity();
        n += self.out.retained();
        if self.msg_kind.is_none() {
            n += self.msg.capacity();
        }
        if self.rx.is_empty() {
            n += self.rx.capacity();
        }
        #[cfg(feature = "deflate")]
        {
            n += self.scratch.capacity();
        }
        n
    }

    /// Frees every buffer that holds no pending data, and compression state that can be
    /// rebuilt. Drivers call it when a connection has been quiet for a while, so busy
    /// connections reuse their buffers and idle ones stay small.
    pub fn release_memory(&mut self) {
        self.out.release();
        if self.msg_kind.is_none() {
            self.msg = Vec::new();
        }
        if self.rx.is_empty() {
            self.rx = Vec::new();
        }
        if matches!(self.decode, Decode::Header) {
            self.control = Vec::new();
        }
        #[cfg(feature = "deflate")]
        {
            self.scratch = Vec::new();
            if let Some(d) = self.deflate.as_mut() {
                d.release_idle_memory();
            }
        }
    }

    /// Takes the next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next contiguous run of bytes waiting to be written to the transport.
    pub fn pending_output(&self) -> &[u8] {
        self.out.front()
    }

    /// Fills `slices` with the runs of bytes waiting to be written, in order, for a vectored
    /// write; returns how many were filled.
    pub fn pending_output_vectored<'a>(&'a self, slices: &mut [std::io::IoSlice<'a>]) -> usize {
        self.out.slices(slices)
    }

    /// Number of bytes waiting to be written.
    pub fn output_len(&self) -> usize {
        self.out.len()
    }

    /// Marks `n` bytes of output as written.
    pub fn consume_output(&mut self, n: usize) {
        // Buffers keep their capacity for the next message; drivers call `release_memory`
        // once the connection goes quiet.
        self.out.consume(n);
    }

    /// Feeds bytes read from the transport and decodes what it can.
    ///
    /// On a protocol violation the connection queues a close frame with the matching code,
    /// becomes [`CloseState::Closed`] and returns the error; later input is ignored.
    pub fn receive(&mut self, mut input: &[u8]) -> Result<(), ProtocolError> {
        if self.state == CloseState::Closed {
            return Ok(());
        }
        if !self.rx.is_empty() {
            // Complete a partial header (or queue behind paused input) with at most a header's
            // worth of the new bytes, then decode the rest straight from `input`.
            let paused = self.is_paused();
            let take = if paused {
                input.len()
            } else {
                input.len().min(MAX_HEADER_LEN)
            };
            self.rx.extend_from_slice(&input[..take]);
            input = &input[take..];
            let rx = std::mem::take(&mut self.rx);
            let n = self.decode_guarded(&rx)?;
            if n < rx.len() {
                self.rx = rx;
                self.rx.drain(..n);
                self.rx.extend_from_slice(input);
                return Ok(());
            }
            self.rx = rx;
            self.rx.clear();
        }
        let n = self.decode_guarded(input)?;
        if n < input.len() && self.state != CloseState::Closed {
            self.rx.extend_from_slice(&input[n..]);
        }
        if self.rx.is_empty() && self.rx.capacity() > KEEP_CAPACITY {
            self.rx = Vec::new();
        }
        Ok(())
    }

    /// Decodes input that was buffered while the event queue was full.
    pub fn resume(&mut self) -> Result<(), ProtocolError> {
        if self.rx.is_empty() || self.is_paused() {
            return Ok(());
        }
        self.receive(&[])
    }

    fn is_paused(&self) -> bool {
        self.events.len() >= self.config.max_queued_events.max(1)
    }

    fn decode_guarded(&mut self, buf: &[u8]) -> Result<usize, ProtocolError> {
        match self.decode(buf) {
            Ok(n) => Ok(n),
            Err(e) => {
                self.fail(e.code, e.reason);
                Err(e)
            }
        }
    }

    /// Fails the connection: queue a close frame with `code` (unless one was sent) and stop.
    fn fail(&mut self, code: u16, reason: &str) {
        if self.sent_close.is_none() {
            self.write_close(code, reason);
        }
        self.state = CloseState::Closed;
        self.rx = Vec::new();
        self.msg = Vec::new();
        self.control = Vec::new();
    }

    fn decode(&mut self, buf: &[u8]) -> Result<usize, ProtocolError> {
        let mut pos = 0;
        loop {
            if self.state == CloseState::Closed || self.is_paused() {
                return Ok(pos);
            }
            match self.decode {
                Decode::Header => {
                    let Some((header, n)) = FrameHeader::decode(&buf[pos..])? else {
                        return Ok(pos);
                    };
                    self.check_header(&header)?;
                    pos += n;
                    self.decode = Decode::Payload { header, done: 0 };
                    if header.len == 0 {
                        self.finish_frame(header)?;
                    }
                }
                Decode::Payload { header, done } => {
                    let avail = buf.len() - pos;
                    if avail == 0 {
                        return Ok(pos);
                    }
                    let take = (header.len - done).min(avail as u64) as usize;
                    let chunk = &buf[pos..pos + take];
                    let target = if header.opcode.is_control() {
                        &mut self.control
                    } else {
                        &mut self.msg
                    };
                    let start = target.len();
                    target.extend_from_slice(chunk);
                    if let Some(mask) = header.mask {
                        apply_mask(&mut target[start..], mask, done as usize);
                    }
                    if !header.opcode.is_control()
                        && self.msg_kind == Some(MessageKind::Text)
                        && !self.msg_compressed
                        && !self.utf8.feed(&self.msg)
                    {
                        return Err(ProtocolError::new(1007, "invalid UTF-8 in text message"));
                    }
                    pos += take;
                    let done = done + take as u64;
                    self.decode = Decode::Payload { header, done };
                    if done == header.len {
                        self.finish_frame(header)?;
                    }
                }
            }
        }
    }

    fn check_header(&mut self, h: &FrameHeader) -> Result<(), ProtocolError> {
        if h.rsv23 {
            return Err(ProtocolError::new(1002, "reserved bits set"));
        }
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) => {
                return Err(ProtocolError::new(1002, "client frame is not masked"))
            }
            (Role::Client, true) => return Err(ProtocolError::new(1002, "server frame is masked")),
            _ => {}
        }
        if h.opcode.is_control() {
            if !h.fin {
                return Err(ProtocolError::new(1002, "fragmented control frame"));
            }
            if h.len > 125 {
                return Err(ProtocolError::new(
                    1002,
                    "control frame longer than 125 bytes",
                ));
            }
            if h.rsv1 {
                return Err(ProtocolError::new(1002, "RSV1 set on a control frame"));
            }
            self.control.clear();
            return Ok(());
        }
        match (h.opcode, self.msg_kind) {
            (OpCode::Continuation, None) => {
                return Err(ProtocolError::new(
                    1002,
                    "continuation frame without a message",
                ))
            }
            (OpCode::Continuation, Some(_)) => {
                if h.rsv1 {
                    return Err(ProtocolError::new(1002, "RSV1 set on a continuation frame"));
                }
            }
            (_, Some(_)) => {
                return Err(ProtocolError::new(
                    1002,
                    "new message before the previous one ended",
                ))
            }
            (op, None) => {
                if h.rsv1 && !self.is_compressed() {
                    return Err(ProtocolError::new(1002, "RSV1 set without an extension"));
                }
                self.msg_kind = Some(if op == OpCode::Text {
                    MessageKind::Text
                } else {
                    MessageKind::Binary
                });
                self.msg_compressed = h.rsv1;
                self.utf8.reset();
                self.msg.clear();
            }
        }
        let total = (self.msg.len() as u64).saturating_add(h.len);
        if total > self.config.max_message_size as u64 {
            return Err(ProtocolError::new(1009, "Message too big"));
        }
        let want = (h.len as usize).min(64 * 1024);
        self.msg.reserve(want);
        Ok(())
    }

    fn finish_frame(&mut self, h: FrameHeader) -> Result<(), ProtocolError> {
        self.decode = Decode::Header;
        match h.opcode {
            OpCode::Ping => {
                let data = std::mem::take(&mut self.control);
                if self.sent_close.is_none() {
                    self.write_frame(OpCode::Pong, false, &data);
                }
                self.events.push_back(Event::Ping(data));
            }
            OpCode::Pong => {
                let data = std::mem::take(&mut self.control);
                self.events.push_back(Event::Pong(data));
            }
            OpCode::Close => self.on_close()?,
            _ => {
                if h.fin {
                    self.finish_message()?;
                }
            }
        }
        Ok(())
    }

    fn finish_message(&mut self) -> Result<(), ProtocolError> {
        let kind = self.msg_kind.take().unwrap_or(MessageKind::Binary);
        let compressed = std::mem::replace(&mut self.msg_compressed, false);
        let data = if compressed {
            self.inflate()?
        } else {
            std::mem::take(&mut self.msg)
        };
        if kind == MessageKind::Text {
            let ok = if compressed {
                simdutf8::basic::from_utf8(&data).is_ok()
            } else {
                self.utf8.is_complete(&data)
            };
            if !ok {
                return Err(ProtocolError::new(1007, "invalid UTF-8 in text message"));
            }
        }
        self.events.push_back(Event::Message { kind, data });
        Ok(())
    }

    #[cfg(feature = "deflate")]
    fn inflate(&mut self) -> Result<Vec<u8>, ProtocolError> {
        let Some(d) = self.deflate.as_mut() else {
            return Err(ProtocolError::new(1002, "RSV1 set without an extension"));
        };
        let mut out = Vec::new();
        let res = d.decompress(&self.msg, &mut out, self.config.max_message_size);
        self.msg.clear();
        match res {
            Ok(()) => Ok(out),
            Err(super::deflate::DeflateError::TooBig { .. }) => {
                Err(ProtocolError::new(1009, "Message too big"))
            }
            Err(_) => Err(ProtocolError::new(1007, "invalid compressed data")),
        }
    }

    #[cfg(not(feature = "deflate"))]
    fn inflate(&mut self) -> Result<Vec<u8>, ProtocolError> {
        Err(ProtocolError::new(1002, "RSV1 set without an extension"))
    }

    fn on_close(&mut self) -> Result<(), ProtocolError> {
        let data = std::mem::take(&mut self.control);
        let (code, reason) = match data.len() {
            0 => (None, String::new()),
            1 => {
                return Err(ProtocolError::new(
                    1002,
                    "close frame with a 1-byte payload",
                ))
            }
            _ => {
                let code = u16::from_be_bytes([data[0], data[1]]);
                if !is_valid_close_code(code) {
                    return Err(ProtocolError::new(1002, "invalid close code"));
                }
                let reason = std::str::from_utf8(&data[2..])
                    .map_err(|_| ProtocolError::new(1007, "close reason is not UTF-8"))?;
                (Some(code), reason.to_string())
            }
        };
        if self.sent_close.is_none() {
            // Echo the status code, as RFC 6455 §5.5.1 suggests.
            self.write_close(code.unwrap_or(1000), "");
        }
        self.received_close = Some((code, reason.clone()));
        self.state = CloseState::Closed;
        self.rx = Vec::new();
        self.events.push_back(Event::Close { code, reason });
        Ok(())
    }

    /// Queues a message. Fails with [`Error::NotOpen`] once a close frame has been sent.
    pub fn send(&mut self, kind: MessageKind, data: &[u8]) -> Result<(), Error> {
        if self.sent_close.is_some() || self.state == CloseState::Closed {
            return Err(Error::NotOpen);
        }
        let op = kind.opcode();
        #[cfg(feature = "deflate")]
        if let Some(d) = self.deflate.as_mut() {
            if d.should_compress(data.len()) {
                let mut scratch = std::mem::take(&mut self.scratch);
                scratch.clear();
                d.compress(data, &mut scratch)
                    .map_err(|e| Error::InvalidParameter(format!("compression failed: {e}")))?;
                self.write_frame(op, true, &scratch);
                self.scratch = scratch;
                return Ok(());
            }
        }
        self.write_frame(op, false, data);
        Ok(())
    }

    /// Queues raw bytes for the transport, ahead of anything queued later (the driver uses it
    /// for the rest of an HTTP handshake response).
    pub fn queue_raw(&mut self, bytes: &[u8]) {
        self.out.buffer_for(bytes.len()).extend_from_slice(bytes);
    }

    /// Queues a message it takes ownership of. Large payloads are not copied: they leave
    /// through [`Connection::pending_output_vectored`] after their header (a client masks them
    /// in place). Compressed connections compress as [`Connection::send`] does.
    pub fn send_owned(&mut self, kind: MessageKind, mut data: Vec<u8>) -> Result<(), Error> {
        if data.len() < OWNED_MIN || self.is_compressed() {
            return self.send(kind, &data);
        }
        if self.sent_close.is_some() || self.state == CloseState::Closed {
            return Err(Error::NotOpen);
        }
        let (h, n, mask) = self.header(kind.opcode(), false, data.len());
        self.out.buffer_for(n).extend_from_slice(&h[..n]);
        if let Some(m) = mask {
            apply_mask(&mut data, m, 0);
        }
        self.out.push_owned(data);
        Ok(())
    }

    /// Queues a ping (payload at most 125 bytes).
    pub fn ping(&mut self, data: &[u8]) -> Result<(), Error> {
        self.control_frame(OpCode::Ping, data)
    }

    /// Queues an unsolicited pong (payload at most 125 bytes).
    pub fn pong(&mut self, data: &[u8]) -> Result<(), Error> {
        self.control_frame(OpCode::Pong, data)
    }

    fn control_frame(&mut self, op: OpCode, data: &[u8]) -> Result<(), Error> {
        if self.sent_close.is_some() || self.state == CloseState::Closed {
            return Err(Error::NotOpen);
        }
        if data.len() > 125 {
            return Err(Error::InvalidParameter(
                "control frame payload longer than 125 bytes".into(),
            ));
        }
        self.write_frame(op, false, data);
        Ok(())
    }

    /// Starts the close handshake with `code` and `reason` (at most 123 bytes of UTF-8).
    ///
    /// Does nothing when a close frame was already sent.
    pub fn close(&mut self, code: u16, reason: &str) -> Result<(), Error> {
        if reason.len() > 123 {
            return Err(Error::InvalidParameter(
                "close reason longer than 123 bytes".into(),
            ));
        }
        if !is_valid_close_code(code) {
            return Err(Error::InvalidParameter(format!(
                "invalid close code {code}"
            )));
        }
        if self.sent_close.is_some() || self.state == CloseState::Closed {
            return Ok(());
        }
        self.write_close(code, reason);
        self.state = CloseState::CloseSent;
        Ok(())
    }

    fn write_close(&mut self, code: u16, reason: &str) {
        let mut payload = [0u8; 125];
        payload[..2].copy_from_slice(&code.to_be_bytes());
        let r = &reason.as_bytes()[..reason.len().min(123)];
        payload[2..2 + r.len()].copy_from_slice(r);
        self.write_frame(OpCode::Close, false, &payload[..2 + r.len()]);
        self.sent_close = Some((code, reason.to_string()));
    }

    /// Encodes a final frame's header; clients get a fresh masking key.
    fn header(
        &self,
        opcode: OpCode,
        rsv1: bool,
        len: usize,
    ) -> ([u8; MAX_HEADER_LEN], usize, Option<[u8; 4]>) {
        let mask = match self.role {
            Role::Client => Some(crate::random::mask()),
            Role::Server => None,
        };
        let header = FrameHeader {
            fin: true,
            rsv1,
            rsv23: false,
            opcode,
            mask,
            len: len as u64,
        };
        let mut h = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut h);
        (h, n, mask)
    }

    fn write_frame(&mut self, opcode: OpCode, rsv1: bool, payload: &[u8]) {
        let (h, n, mask) = self.header(opcode, rsv1, payload.len());
        let out = self.out.buffer_for(n + payload.len());
        out.extend_from_slice(&h[..n]);
        let start = out.len();
        out.extend_from_slice(payload);
        if let Some(m) = mask {
            apply_mask(&mut out[start..], m, 0);
        }
    }
}

#[cfg(test)]
mod tests;
