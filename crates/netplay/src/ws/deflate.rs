//! RFC 7692 `permessage-deflate`, sans-IO: the extension negotiation and the per-message codec.
//!
//! This module owns:
//!
//! * the negotiation of the extension in the opening handshake: the client's offer
//!   ([`DeflateConfig::client_offer`]), the client's check of the server's answer
//!   ([`DeflateConfig::client_accept`]) and the server's choice among the client's offers
//!   ([`DeflateConfig::server_negotiate`]), including the parsing of `Sec-WebSocket-Extensions`
//!   values (RFC 6455 §9.1 grammar: comma-separated extensions, `;`-separated parameters,
//!   token or quoted-string values);
//! * [`PerMessageDeflate`], the compressor and decompressor of one connection (RFC 7692 §7.2),
//!   working on whole message payloads.
//!
//! It does not own frames: the caller sets RSV1 on the first frame of a message it compressed,
//! and on receipt concatenates the payloads of a message whose first frame had RSV1 set and
//! hands them to [`PerMessageDeflate::decompress`]. Control frames are never compressed.
//!
//! # Window bits 8
//!
//! RFC 7692 allows `server_max_window_bits` / `client_max_window_bits` down to 8 (a 256-byte
//! LZ77 window). zlib and zlib-rs refuse to *compress* raw DEFLATE with an 8-bit window (zlib
//! 1.2.9+ returns an error; flate2 panics on it). We accept 8 in negotiation like any other
//! value, and when our compressor is limited to 8 we run it with a 9-bit window. This is safe:
//! zlib-family compressors never emit a match distance above `window - MIN_LOOKAHEAD`
//! (`512 - 262 = 250` for 9 bits, checked by every matcher in zlib-rs), so the output never
//! reaches back more than 256 bytes and decodes with an 8-bit window. This is what zlib itself
//! did before 1.2.9 and what Node.js (and so the `ws` server) still does. A test decodes our
//! output with an independent DEFLATE decoder and checks the largest distance used.
//!
//! Our decompressor always runs with a 15-bit window, whatever the peer declared: a larger
//! inflate window decodes everything a smaller one does, and zlib-rs allocates its full 32 KiB
//! inflate window whatever size is asked, so a smaller one would save nothing (and flate2
//! rebuilds, rather than resets, an inflater of a non-default size).

use std::borrow::Cow;
use std::fmt;
use std::fmt::Write as _;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The extension token of RFC 7692 §7, as it appears in `Sec-WebSocket-Extensions`.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The tail of a sync flush (an empty stored block), removed by the sender, added back by the
/// receiver (RFC 7692 §7.2.1, §7.2.2).
const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Smallest and largest window sizes allowed by RFC 7692 §7.1.2.
const MIN_WINDOW_BITS: u8 = 8;
const MAX_WINDOW_BITS: u8 = 15;

/// Smallest window flate2/zlib-rs accept; see the module docs about 8.
const MIN_ZLIB_WINDOW_BITS: u8 = 9;

/// Output growth step of the decompressor, and its first step when the guess is smaller.
const INFLATE_MIN_STEP: usize = 4096;

/// Largest zero-filled chunk handed to the decompressor when `out` already has more spare
/// capacity than the size limit allows (see [`inflate_into`]).
const INFLATE_ZEROED_CHUNK: usize = 256 * 1024;

/// What one side is willing to use (configuration; the same struct for client and server).
///
/// Window sizes outside `8..=15` are clamped into that range, and `level` above 9 is taken as 9.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Ask for / accept server_no_context_takeover.
    ///
    /// Client: offer `server_no_context_takeover` (the server must then reset its compressor
    /// after each message, saving our decompressor nothing but making its memory releasable).
    /// Server: always answer with `server_no_context_takeover` (we reset our compressor after
    /// each message). A server always honours it when a client offers it.
    pub server_no_context_takeover: bool,
    /// Ask for / accept client_no_context_takeover.
    ///
    /// Client: offer `client_no_context_takeover` and never use context takeover ourselves.
    /// Server: always answer with `client_no_context_takeover`. A server echoes it when a client
    /// offers it, and a client honours it whenever the server's answer has it.
    pub client_no_context_takeover: bool,
    /// Largest LZ77 window the server may use, 8..=15 (15 = not limited).
    ///
    /// Client: below 15, offer `server_max_window_bits=N` (and fail the connection if the
    /// server does not agree to at most N). Server: never use more; tell the client when below
    /// 15.
    pub server_max_window_bits: u8,
    /// Largest LZ77 window the client may use, 8..=15.
    ///
    /// Client: below 15, offer `client_max_window_bits=N`; at 15, offer `client_max_window_bits`
    /// without a value (we can honour any limit the server picks). Server: below 15, decline
    /// offers that do not let us limit the client, and answer with the limit otherwise.
    pub client_max_window_bits: u8,
    /// zlib compression level 0..=9.
    pub level: u32,
    /// Messages shorter than this are sent uncompressed (RSV1 clear). 0 compresses everything.
    pub min_compress_size: usize,
}

impl Default for DeflateConfig {
    /// No context takeover restrictions, 15-bit windows both ways, level 1, and messages of
    /// fewer than 16 bytes sent uncompressed.
    ///
    /// Level 1 is zlib-rs's fastest matcher: WebSocket messages of a game or real-time server
    /// are mostly small and latency-bound, and the higher levels cost several times the CPU for
    /// a few percent of size (measured here on 134-byte JSON game-state messages with context
    /// takeover: level 1 compresses in about 1 µs to 31 %, level 2 in 4 µs to 28 %, level 6
    /// in 7 µs to 25 %). Level 1 uses only the fixed Huffman code, so incompressible data grows
    /// by up to an eighth; send such messages uncompressed or use level 2 or more.
    ///
    /// Below 16 bytes a message without matches grows by about two bytes under DEFLATE, and
    /// skipping the compressor call saves CPU; longer ones still benefit from the shared window
    /// (context takeover).
    fn default() -> Self {
        Self {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
            level: 1,
            min_compress_size: 16,
        }
    }
}

/// Parameters agreed in the handshake, as seen by one side.
///
/// The window sizes are the effective limits each side's compressor works under (15 when
/// nothing limits it), and the flags say which side resets its compressor after each message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after each message.
    pub client_no_context_takeover: bool,
    /// Largest LZ77 window (base-2 log) the server's compressor uses, 8..=15.
    pub server_max_window_bits: u8,
    /// Largest LZ77 window (base-2 log) the client's compressor uses, 8..=15.
    pub client_max_window_bits: u8,
}

impl Default for DeflateParams {
    /// What a bare `permessage-deflate` agreement means: context takeover and 15-bit windows.
    fn default() -> Self {
        Self {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
        }
    }
}

/// Errors of the negotiation and of the codec.
///
/// After any codec error ([`Corrupt`](Self::Corrupt), [`TooBig`](Self::TooBig),
/// [`CompressFailed`](Self::CompressFailed)) the connection must be failed: with context
/// takeover the two sides' windows no longer agree.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeflateError {
    /// The server's `Sec-WebSocket-Extensions` answer is invalid per RFC 7692 §5/§7 or asks for
    /// something we did not offer; the client must fail the WebSocket connection.
    #[error("invalid permessage-deflate negotiation response: {0}")]
    BadExtensionParams(String),
    /// The compressed data is not a valid DEFLATE stream (or uses a window larger than
    /// negotiated).
    #[error("corrupt permessage-deflate data")]
    Corrupt,
    /// The decompressed message would be larger than the given limit.
    #[error("decompressed message larger than {limit} bytes")]
    TooBig {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The compressor reported an internal error (not expected to happen).
    #[error("permessage-deflate compressor failed")]
    CompressFailed,
}

impl DeflateConfig {
    fn server_bits(&self) -> u8 {
        clamp_window_bits(self.server_max_window_bits)
    }

    fn client_bits(&self) -> u8 {
        clamp_window_bits(self.client_max_window_bits)
    }

    /// The offer a client built from this configuration makes.
    fn offer(&self) -> PmdParams {
        let server_bits = self.server_bits();
        let client_bits = self.client_bits();
        PmdParams {
            server_no_context_takeover: self.server_no_context_takeover,
            client_no_context_takeover: self.client_no_context_takeover,
            server_max_window_bits: (server_bits < MAX_WINDOW_BITS).then_some(server_bits),
            // Always sent: it tells the server we can honour any limit it picks.
            client_max_window_bits: Some((client_bits < MAX_WINDOW_BITS).then_some(client_bits)),
        }
    }

    /// The value of the client's Sec-WebSocket-Extensions header (e.g.
    /// `"permessage-deflate; client_max_window_bits"`).
    ///
    /// It is one offer; pass the server's answer to [`client_accept`](Self::client_accept).
    pub fn client_offer(&self) -> String {
        self.offer().to_header()
    }

    /// Client: checks the server's Sec-WebSocket-Extensions response value (None if the
    /// response had no such header).
    ///
    /// Ok(None) = no compression; Ok(Some(params)) = agreed; Err = the response is invalid per
    /// RFC 7692 (client must fail the connection).
    ///
    /// `response` is the whole header value; if the server sent several
    /// `Sec-WebSocket-Extensions` headers, join them with `", "`. Since the client offered only
    /// `permessage-deflate`, any other extension in it is an error, as are: the extension
    /// accepted twice, unknown, duplicated or valueless-but-required parameters, values
    /// outside 8..=15 (or with leading zeros), `client_max_window_bits` without a value or
    /// above what we offered, and an answer that ignores `server_no_context_takeover` or
    /// `server_max_window_bits=N` we asked for (or gives a larger N). The server may add
    /// `server_no_context_takeover`, `client_no_context_takeover` and `server_max_window_bits`
    /// on its own; those are accepted.
    ///
    /// # Errors
    ///
    /// [`DeflateError::BadExtensionParams`] when the response is invalid as described above.
    pub fn client_accept(
        &self,
        response: Option<&str>,
    ) -> Result<Option<DeflateParams>, DeflateError> {
        accept_response(&self.offer(), response)
    }

    /// Server: given all Sec-WebSocket-Extensions header values of the request (a client may
    /// send several headers and several comma-separated offers, each with `;` parameters whose
    /// values may be quoted-strings), picks the first acceptable permessage-deflate offer and
    /// returns the agreed params and the response header value.
    ///
    /// Invalid offers (syntax errors, unknown or duplicated parameters, bad values) are skipped
    /// (RFC 7692 §5: decline offers with invalid params), not errors; other extensions are
    /// ignored. Returns `None` when no offer is acceptable: answer without the extension.
    ///
    /// The answer limits our own window to `min(server_max_window_bits, the offer's)` and
    /// includes `server_max_window_bits` when the client asked or when we are below 15. It
    /// includes `client_max_window_bits=N` only when the offer had `client_max_window_bits` and
    /// the agreed limit is below 15; with our `client_max_window_bits` below 15, offers without
    /// that parameter are declined. `server_no_context_takeover` and
    /// `client_no_context_takeover` are echoed when offered and added when configured.
    pub fn server_negotiate<'a>(
        &self,
        offers: impl IntoIterator<Item = &'a str>,
    ) -> Option<(DeflateParams, String)> {
        for header in offers {
            for element in split_list(header) {
                let Ok(extension) = parse_extension(element) else {
                    continue;
                };
                if !extension.name.eq_ignore_ascii_case(EXTENSION_NAME) {
                    continue;
                }
                let Ok(offer) = PmdParams::parse(&extension.params, false) else {
                    continue;
                };
                if let Some(answer) = self.answer(&offer) {
                    return Some(answer);
                }
            }
        }
        None
    }

    /// The server's answer to one valid offer, or `None` to decline it.
    fn answer(&self, offer: &PmdParams) -> Option<(DeflateParams, String)> {
        let server_bits = self
            .server_bits()
            .min(offer.server_max_window_bits.unwrap_or(MAX_WINDOW_BITS));
        let client_bits = match offer.client_max_window_bits {
            // The client cannot be limited: fine only if we do not want to.
            None if self.client_bits() < MAX_WINDOW_BITS => return None,
            None => MAX_WINDOW_BITS,
            Some(hint) => self.client_bits().min(hint.unwrap_or(MAX_WINDOW_BITS)),
        };
        let response = PmdParams {
            server_no_context_takeover: offer.server_no_context_takeover
                || self.server_no_context_takeover,
            client_no_context_takeover: offer.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits: (offer.server_max_window_bits.is_some()
                || server_bits < MAX_WINDOW_BITS)
                .then_some(server_bits),
            client_max_window_bits: (client_bits < MAX_WINDOW_BITS).then_some(Some(client_bits)),
        };
        let params = DeflateParams {
            server_no_context_takeover: response.server_no_context_takeover,
            client_no_context_takeover: response.client_no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
        };
        Some((params, response.to_header()))
    }

    /// Builds the per-connection codec for agreed `params`, with this configuration's level
    /// and threshold (same as [`PerMessageDeflate::new`]).
    pub fn codec(&self, params: DeflateParams, is_server: bool) -> PerMessageDeflate {
        PerMessageDeflate::new(params, is_server, self.level, self.min_compress_size)
    }
}

/// Checks a server's answer against the offer the client made.
fn accept_response(
    offer: &PmdParams,
    response: Option<&str>,
) -> Result<Option<DeflateParams>, DeflateError> {
    let bad = |msg: String| DeflateError::BadExtensionParams(msg);
    let Some(response) = response else {
        return Ok(None);
    };
    let mut accepted = None;
    for element in split_list(response) {
        let extension = parse_extension(element).map_err(bad)?;
        if !extension.name.eq_ignore_ascii_case(EXTENSION_NAME) {
            return Err(bad(format!(
                "the server accepted an extension that was not offered: {}",
                extension.name
            )));
        }
        if accepted.is_some() {
            return Err(bad(format!("{EXTENSION_NAME} accepted twice")));
        }
        accepted = Some(PmdParams::parse(&extension.params, true).map_err(bad)?);
    }
    let Some(answer) = accepted else {
        return Ok(None);
    };

    if offer.server_no_context_takeover && !answer.server_no_context_takeover {
        return Err(bad(
            "server_no_context_takeover was offered but not accepted".to_owned(),
        ));
    }
    match (offer.server_max_window_bits, answer.server_max_window_bits) {
        (Some(asked), None) => {
            return Err(bad(format!(
                "server_max_window_bits={asked} was offered but not accepted"
            )))
        }
        (Some(asked), Some(got)) if got > asked => {
            return Err(bad(format!(
                "server_max_window_bits={got} is larger than the offered {asked}"
            )))
        }
        _ => {}
    }
    let client_bits = match (offer.client_max_window_bits, answer.client_max_window_bits) {
        (None, Some(_)) => {
            return Err(bad(
                "client_max_window_bits in the response but not in the offer".to_owned(),
            ))
        }
        (Some(Some(asked)), Some(Some(got))) if got > asked => {
            return Err(bad(format!(
                "client_max_window_bits={got} is larger than the offered {asked}"
            )))
        }
        (Some(hint), Some(Some(got))) => got.min(hint.unwrap_or(MAX_WINDOW_BITS)),
        (Some(hint), _) => hint.unwrap_or(MAX_WINDOW_BITS),
        (None, None) => MAX_WINDOW_BITS,
    };
    Ok(Some(DeflateParams {
        server_no_context_takeover: answer.server_no_context_takeover,
        // Offering it is a promise (RFC 7692 §7.1.1.2): keep it even if not echoed.
        client_no_context_takeover: answer.client_no_context_takeover
            || offer.client_no_context_takeover,
        server_max_window_bits: answer.server_max_window_bits.unwrap_or(MAX_WINDOW_BITS),
        client_max_window_bits: client_bits,
    }))
}

fn clamp_window_bits(bits: u8) -> u8 {
    bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS)
}

/// The window flate2 is given for a negotiated limit (8 becomes 9, see the module docs).
fn zlib_window_bits(bits: u8) -> u8 {
    bits.clamp(MIN_ZLIB_WINDOW_BITS, MAX_WINDOW_BITS)
}

/// The parameters of one `permessage-deflate` element (an offer or a response).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct PmdParams {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `None`: absent; `Some(None)`: present without a value (offers only).
    client_max_window_bits: Option<Option<u8>>,
}

impl PmdParams {
    /// Validates the parameters of one element (RFC 7692 §7.1).
    fn parse(params: &[Param<'_>], is_response: bool) -> Result<Self, String> {
        let mut out = Self::default();
        let mut seen = [false; 4];
        for (name, value) in params {
            let index = if name.eq_ignore_ascii_case("server_no_context_takeover") {
                0
            } else if name.eq_ignore_ascii_case("client_no_context_takeover") {
                1
            } else if name.eq_ignore_ascii_case("server_max_window_bits") {
                2
            } else if name.eq_ignore_ascii_case("client_max_window_bits") {
                3
            } else {
                return Err(format!("unknown parameter {name}"));
            };
            if seen[index] {
                return Err(format!("duplicate parameter {name}"));
            }
            seen[index] = true;
            let value = value.as_deref();
            match index {
                0 | 1 => {
                    if value.is_some() {
                        return Err(format!("{name} must not have a value"));
                    }
                    if index == 0 {
                        out.server_no_context_takeover = true;
                    } else {
                        out.client_no_context_takeover = true;
                    }
                }
                2 => {
                    let bits = value
                        .and_then(parse_window_bits)
                        .ok_or_else(|| format!("{name} needs a value in 8..=15"))?;
                    out.server_max_window_bits = Some(bits);
                }
                _ => {
                    let bits = match value {
                        None if is_response => {
                            return Err(format!("{name} needs a value in a response"))
                        }
                        None => None,
                        Some(v) => Some(
                            parse_window_bits(v)
                                .ok_or_else(|| format!("{name} needs a value in 8..=15"))?,
                        ),
                    };
                    out.client_max_window_bits = Some(bits);
                }
            }
        }
        Ok(out)
    }

    fn to_header(self) -> String {
        let mut s = String::with_capacity(96);
        s.push_str(EXTENSION_NAME);
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = self.server_max_window_bits {
            let _ = write!(s, "; server_max_window_bits={bits}");
        }
        match self.client_max_window_bits {
            Some(Some(bits)) => {
                let _ = write!(s, "; client_max_window_bits={bits}");
            }
            Some(None) => s.push_str("; client_max_window_bits"),
            None => {}
        }
        s
    }
}

/// `8`..`15` exactly as RFC 7692 §7.1.2 spells them (no sign, no leading zero).
fn parse_window_bits(value: &str) -> Option<u8> {
    match value {
        "8" => Some(8),
        "9" => Some(9),
        "10" => Some(10),
        "11" => Some(11),
        "12" => Some(12),
        "13" => Some(13),
        "14" => Some(14),
        "15" => Some(15),
        _ => None,
    }
}

/// One extension parameter: name and optional (unquoted) value.
type Param<'a> = (&'a str, Option<Cow<'a, str>>);

/// One element of an extension list.
struct Extension<'a> {
    name: &'a str,
    params: Vec<Param<'a>>,
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// RFC 7230 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Splits a header value on the commas that are outside quoted strings, dropping empty
/// elements (RFC 7230 §7).
fn split_list(value: &str) -> impl Iterator<Item = &str> {
    let bytes = value.as_bytes();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    let mut elements = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
        } else if b == b'"' {
            in_quotes = true;
        } else if b == b',' {
            elements.push(&value[start..i]);
            start = i + 1;
        }
    }
    elements.push(&value[start..]);
    elements
        .into_iter()
        .map(|e| e.trim_matches(|c| c == ' ' || c == '\t'))
        .filter(|e| !e.is_empty())
}

/// A byte cursor over one list element.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while self.peek().is_some_and(is_ows) {
            self.pos += 1;
        }
    }

    fn token(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        (self.pos > start).then(|| &self.s[start..self.pos])
    }

    /// A quoted-string starting at the opening quote, unescaped.
    fn quoted(&mut self) -> Result<String, String> {
        let bytes = self.s.as_bytes();
        self.pos += 1; // opening quote
        let mut value = Vec::new();
        loop {
            let Some(&b) = bytes.get(self.pos) else {
                return Err("unterminated quoted-string".to_owned());
            };
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(&escaped) = bytes.get(self.pos) else {
                        return Err("unterminated quoted-string".to_owned());
                    };
                    if escaped.is_ascii_control() && escaped != b'\t' {
                        return Err("control character in quoted-string".to_owned());
                    }
                    self.pos += 1;
                    value.push(escaped);
                }
                b if b.is_ascii_control() && b != b'\t' => {
                    return Err("control character in quoted-string".to_owned());
                }
                b => value.push(b),
            }
        }
        String::from_utf8(value).map_err(|_| "invalid UTF-8 in quoted-string".to_owned())
    }
}

/// Parses `extension-token *( OWS ";" OWS token [ OWS "=" OWS ( token / quoted-string ) ] )`.
fn parse_extension(element: &str) -> Result<Extension<'_>, String> {
    let mut cur = Cursor { s: element, pos: 0 };
    cur.skip_ows();
    let name = cur.token().ok_or("expected an extension name")?;
    let mut params = Vec::new();
    loop {
        cur.skip_ows();
        match cur.peek() {
            None => break,
            Some(b';') => cur.pos += 1,
            Some(_) => return Err(format!("unexpected character in extension {name}")),
        }
        cur.skip_ows();
        let param = cur.token().ok_or("expected a parameter name")?;
        cur.skip_ows();
        let value = if cur.peek() == Some(b'=') {
            cur.pos += 1;
            cur.skip_ows();
            if cur.peek() == Some(b'"') {
                Some(Cow::Owned(cur.quoted()?))
            } else {
                Some(Cow::Borrowed(
                    cur.token().ok_or("expected a parameter value")?,
                ))
            }
        } else {
            None
        };
        params.push((param, value));
    }
    Ok(Extension { name, params })
}

/// Per-connection compressor/decompressor for one side.
///
/// The zlib-rs states are created on first use, so a connection that never sends or never
/// receives a compressed message does not pay for them. With flate2's zlib-rs backend a
/// compressor takes about 370 KiB with a 15-bit window (about 240 KiB with 9 bits: its hash
/// table and symbol buffers do not depend on the window), and a decompressor a 32 KiB window
/// plus its state.
pub struct PerMessageDeflate {
    params: DeflateParams,
    is_server: bool,
    level: Compression,
    min_compress_size: usize,
    /// zlib window bits of our compressor (9..=15).
    compress_bits: u8,
    /// Our side resets its compressor between messages.
    compress_no_context_takeover: bool,
    /// The peer resets its compressor between messages.
    decompress_no_context_takeover: bool,
    compressor: Option<Compress>,
    decompressor: Option<Decompress>,
    /// The compressor holds state from an earlier call.
    compressor_used: bool,
    /// The compressor failed: reset it before any further use.
    compressor_poisoned: bool,
    /// Reset the decompressor before the next message (peer without context takeover, or
    /// after an error or the end of a stream).
    decompressor_needs_reset: bool,
}

impl fmt::Debug for PerMessageDeflate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PerMessageDeflate")
            .field("params", &self.params)
            .field("is_server", &self.is_server)
            .field("level", &self.level.level())
            .field("min_compress_size", &self.min_compress_size)
            .field("compressor_allocated", &self.compressor.is_some())
            .field("decompressor_allocated", &self.decompressor.is_some())
            .finish()
    }
}

impl PerMessageDeflate {
    /// `is_server`: which side we are (decides which window bits / takeover flags apply to our
    /// compressor and our decompressor).
    ///
    /// `level` above 9 is taken as 9; our window size is clamped into 8..=15 (a limit of 8 is
    /// compressed with zlib's 9-bit window, whose matches never go back more than 250 bytes),
    /// and the decompressor uses 15 bits whatever the peer's limit (see the module docs).
    /// Never panics.
    pub fn new(
        params: DeflateParams,
        is_server: bool,
        level: u32,
        min_compress_size: usize,
    ) -> Self {
        let (ours, our_reset, their_reset) = if is_server {
            (
                params.server_max_window_bits,
                params.server_no_context_takeover,
                params.client_no_context_takeover,
            )
        } else {
            (
                params.client_max_window_bits,
                params.client_no_context_takeover,
                params.server_no_context_takeover,
            )
        };
        Self {
            params,
            is_server,
            level: Compression::new(level.min(9)),
            min_compress_size,
            compress_bits: zlib_window_bits(ours),
            compress_no_context_takeover: our_reset,
            decompress_no_context_takeover: their_reset,
            compressor: None,
            decompressor: None,
            compressor_used: false,
            compressor_poisoned: false,
            decompressor_needs_reset: false,
        }
    }

    /// The parameters this codec was built with.
    pub fn params(&self) -> DeflateParams {
        self.params
    }

    /// Whether this message should be compressed (len >= min_compress_size).
    ///
    /// Sending a message uncompressed (RSV1 clear) is always allowed and does not disturb the
    /// shared window.
    pub fn should_compress(&self, len: usize) -> bool {
        len >= self.min_compress_size
    }

    /// Compresses a whole message payload, appending to `out` (deflate + sync flush, with the
    /// trailing 00 00 FF FF removed, RFC 7692 §7.2.1). Resets the compressor when our side has
    /// no_context_takeover.
    ///
    /// An empty payload becomes the single byte `0x00` (RFC 7692 §7.2.3.6). `out` grows by
    /// doubling; reuse it across messages to avoid allocations. On error `out` is truncated back
    /// to its length on entry.
    ///
    /// Once a message went through this call it must be sent compressed (RSV1 set), even if
    /// the result is not smaller: with context takeover our window now holds it and the peer's
    /// must too. To send a message uncompressed, decide before calling (see
    /// [`should_compress`](Self::should_compress)).
    ///
    /// # Errors
    ///
    /// [`DeflateError::CompressFailed`] if zlib-rs reports an error (not expected; the
    /// connection must then be failed).
    pub fn compress(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), DeflateError> {
        if data.is_empty() {
            // An empty stored block's header bits; the peer appends the rest (LEN, NLEN).
            // Our compressor is byte-aligned after its last sync flush, so its state is fine.
            out.push(0x00);
            return Ok(());
        }
        let start = out.len();
        let reset =
            self.compressor_used && (self.compress_no_context_takeover || self.compressor_poisoned);
        let (level, bits) = (self.level, self.compress_bits);
        let compressor = self
            .compressor
            .get_or_insert_with(|| Compress::new_with_window_bits(level, false, bits));
        if reset {
            compressor.reset();
            self.compressor_poisoned = false;
        }
        self.compressor_used = true;

        match deflate_into(compressor, data, out, start) {
            Ok(()) => Ok(()),
            Err(e) => {
                out.truncate(start);
                self.compressor_poisoned = true;
                Err(e)
            }
        }
    }

    /// Decompresses a whole message (the concatenated payloads of its frames, RSV1 set on the
    /// first), appending to `out`; appends the 00 00 FF FF tail itself (RFC 7692 §7.2.2).
    ///
    /// Fails with [`DeflateError::TooBig`] as soon as `out` would grow past `limit` bytes of
    /// decompressed data (a zip bomb allocates at most `limit + 1` bytes of output), and with
    /// [`DeflateError::Corrupt`] on bad data.
    ///
    /// `limit` counts the bytes this call appends (the message size), not what `out` already
    /// held; `out`'s capacity never grows past its length on entry + `limit` + 1. On error
    /// `out` is truncated back to its length on entry, and the connection must be failed.
    ///
    /// The decompressor is reset (cheaply, keeping its memory) before the next message when
    /// the peer has no_context_takeover, so such a peer's reference into an earlier message is
    /// [`DeflateError::Corrupt`]. It is also reset after an error and after a block with BFINAL
    /// set (RFC 7692 §7.2.3.4: the sender's stream ended; bytes after it are ignored).
    /// [`release_idle_memory`](Self::release_idle_memory) frees it.
    ///
    /// An empty payload (RSV1 set, no bytes) is taken as an empty message and leaves the state
    /// untouched.
    ///
    /// # Errors
    ///
    /// [`DeflateError::TooBig`] (close with 1009) and [`DeflateError::Corrupt`] (close with
    /// 1007, as for invalid payload data, or 1002), as described above.
    pub fn decompress(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), DeflateError> {
        if data.is_empty() {
            return Ok(());
        }
        let start = out.len();
        let decompressor = self
            .decompressor
            .get_or_insert_with(|| Decompress::new(false));
        if self.decompressor_needs_reset {
            decompressor.reset(false);
            self.decompressor_needs_reset = false;
        }

        // A first guess at the output size; later growth doubles, capped by the limit.
        let budget = limit.saturating_add(1);
        let guess = data.len().saturating_mul(4).saturating_add(64).min(budget);
        if out.capacity() - out.len() < guess {
            out.reserve_exact(guess);
        }

        let result = inflate_into(decompressor, data, out, start, limit).and_then(|ended| {
            if ended {
                Ok(true)
            } else {
                inflate_into(decompressor, &TRAILER, out, start, limit)
            }
        });
        match result {
            Ok(ended) => {
                self.decompressor_needs_reset = ended || self.decompress_no_context_takeover;
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                self.decompressor_needs_reset = true;
                Err(e)
            }
        }
    }

    /// Releases memory that can be released while idle, if any.
    ///
    /// Frees our compressor when our side has no context takeover, and our decompressor when
    /// the peer has none (or when it must be reset anyway): these hold nothing needed by the
    /// next message. They are rebuilt on next use. With
    /// context takeover the state is the shared window and is kept. Call it when a connection
    /// goes quiet, not after every message: rebuilding costs an allocation and, for the
    /// compressor, clearing its tables. Returns whether anything was freed.
    pub fn release_idle_memory(&mut self) -> bool {
        let mut freed = false;
        if self.compressor.is_some()
            && (self.compress_no_context_takeover || self.compressor_poisoned)
        {
            self.compressor = None;
            self.compressor_used = false;
            self.compressor_poisoned = false;
            freed = true;
        }
        if self.decompressor.is_some()
            && (self.decompress_no_context_takeover || self.decompressor_needs_reset)
        {
            self.decompressor = None;
            self.decompressor_needs_reset = false;
            freed = true;
        }
        freed
    }
}

/// Runs the compressor over all of `data` with a sync flush, appending to `out`, then strips
/// the flush's `00 00 FF FF`.
fn deflate_into(
    compressor: &mut Compress,
    data: &[u8],
    out: &mut Vec<u8>,
    start: usize,
) -> Result<(), DeflateError> {
    // Room for incompressible data in one pass for small messages; large ones usually
    // compress well, so start at an eighth and let `out` grow by doubling.
    let first = if data.len() <= 16 * 1024 {
        data.len() + data.len() / 16 + 64
    } else {
        16 * 1024 + data.len() / 8
    };
    out.reserve(first);
    let mut consumed = 0;
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve((out.len() - start).max(1024));
        }
        let before_in = compressor.total_in();
        let before_out = compressor.total_out();
        compressor
            .compress_vec(&data[consumed..], out, FlushCompress::Sync)
            .map_err(|_| DeflateError::CompressFailed)?;
        let read = (compressor.total_in() - before_in) as usize;
        let wrote = compressor.total_out() - before_out;
        consumed += read;
        let room_left = out.len() < out.capacity();
        // The flush is complete once all input is in and the compressor stopped with room left.
        if consumed >= data.len() && room_left {
            break;
        }
        if read == 0 && wrote == 0 && room_left {
            return Err(DeflateError::CompressFailed);
        }
    }
    if out.len() - start >= TRAILER.len() && out.ends_with(&TRAILER) {
        out.truncate(out.len() - TRAILER.len());
        Ok(())
    } else {
        Err(DeflateError::CompressFailed)
    }
}

/// Feeds `input` to the decompressor, appending its output to `out` without ever letting the
/// bytes after `start` exceed `limit + 1`. Returns whether the stream ended (BFINAL block).
fn inflate_into(
    decompressor: &mut Decompress,
    input: &[u8],
    out: &mut Vec<u8>,
    start: usize,
    limit: usize,
) -> Result<bool, DeflateError> {
    let cap_max = start.saturating_add(limit).saturating_add(1);
    let mut consumed = 0;
    loop {
        // At least 1, since a previous pass past `limit` returned TooBig.
        let allowed = cap_max - out.len();
        if out.len() == out.capacity() {
            let step = (out.len() - start).max(INFLATE_MIN_STEP).min(allowed);
            out.reserve_exact(step);
        }
        let spare = out.capacity() - out.len();
        let before_in = decompressor.total_in();
        let before_out = decompressor.total_out();
        let (status, given) = if spare <= allowed {
            // Common case: the spare capacity is within the limit; inflate straight into it.
            let status =
                decompressor.decompress_vec(&input[consumed..], out, FlushDecompress::None);
            (status, spare)
        } else {
            // `out` came with more capacity than the limit allows: hand over a bounded,
            // zero-filled window of it instead (safe code cannot cap decompress_vec).
            let given = allowed.min(INFLATE_ZEROED_CHUNK);
            let old_len = out.len();
            out.resize(old_len + given, 0);
            let status = decompressor.decompress(
                &input[consumed..],
                &mut out[old_len..],
                FlushDecompress::None,
            );
            let wrote = (decompressor.total_out() - before_out) as usize;
            out.truncate(old_len + wrote);
            (status, given)
        };
        let read = (decompressor.total_in() - before_in) as usize;
        let wrote = (decompressor.total_out() - before_out) as usize;
        consumed += read;
        if out.len() - start > limit {
            return Err(DeflateError::TooBig { limit });
        }
        match status {
            Err(_) => return Err(DeflateError::Corrupt),
            Ok(Status::StreamEnd) => return Ok(true),
            Ok(Status::Ok | Status::BufError) => {}
        }
        let output_full = wrote >= given;
        if consumed >= input.len() && !output_full {
            return Ok(false);
        }
        if read == 0 && wrote == 0 {
            // No progress with input and room available: never expected; do not spin.
            return Err(DeflateError::Corrupt);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---------------------------------------------------------------- negotiation

    fn negotiate(config: &DeflateConfig, offers: &[&str]) -> Option<(DeflateParams, String)> {
        config.server_negotiate(offers.iter().copied())
    }

    fn bad(config: &DeflateConfig, response: &str) {
        let r = config.client_accept(Some(response));
        assert!(
            matches!(r, Err(DeflateError::BadExtensionParams(_))),
            "{response:?} should be rejected, got {r:?}"
        );
    }

    #[test]
    fn client_offer_strings() {
        assert_eq!(
            DeflateConfig::default().client_offer(),
            "permessage-deflate; client_max_window_bits"
        );
        let config = DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 10,
            client_max_window_bits: 12,
            ..DeflateConfig::default()
        };
        assert_eq!(
            config.client_offer(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=12"
        );
        // Out-of-range configuration is clamped, never panics.
        let config = DeflateConfig {
            server_max_window_bits: 3,
            client_max_window_bits: 200,
            ..DeflateConfig::default()
        };
        assert_eq!(
            config.client_offer(),
            "permessage-deflate; server_max_window_bits=8; client_max_window_bits"
        );
    }

    #[test]
    fn server_accepts_browser_offer() {
        let (params, response) = negotiate(
            &DeflateConfig::default(),
            &["permessage-deflate; client_max_window_bits"],
        )
        .unwrap();
        assert_eq!(params, DeflateParams::default());
        assert_eq!(response, "permessage-deflate");
        // Bare offer, no client_max_window_bits: the answer must not mention it.
        let (params, response) =
            negotiate(&DeflateConfig::default(), &["permessage-deflate"]).unwrap();
        assert_eq!(params, DeflateParams::default());
        assert_eq!(response, "permessage-deflate");
    }

    #[test]
    fn server_quoted_values_and_ows() {
        let offer = concat!(
            "  permessage-deflate ;server_max_window_bits = \"10\"\t; ",
            "client_max_window_bits=\"1\\2\" "
        );
        let (params, response) = negotiate(&DeflateConfig::default(), &[offer]).unwrap();
        assert_eq!(params.server_max_window_bits, 10);
        assert_eq!(params.client_max_window_bits, 12);
        assert_eq!(
            response,
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=12"
        );
    }

    #[test]
    fn server_picks_first_acceptable_offer() {
        let (params, response) = negotiate(
            &DeflateConfig::default(),
            &[
                "x-webkit-deflate-frame, foo; bar=\"a,b\"",
                "permessage-deflate; server_max_window_bits=7, permessage-deflate; foo, \
                 permessage-deflate; client_max_window_bits=9, permessage-deflate",
                "permessage-deflate; server_no_context_takeover",
            ],
        )
        .unwrap();
        assert_eq!(params.client_max_window_bits, 9);
        assert_eq!(params.server_max_window_bits, 15);
        assert_eq!(response, "permessage-deflate; client_max_window_bits=9");
    }

    #[test]
    fn server_skips_invalid_offers() {
        let config = DeflateConfig::default();
        for offer in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=08",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=+9",
            "permessage-deflate; server_max_window_bits=abc",
            "permessage-deflate; server_max_window_bits=\"10",
            "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; client_max_window_bits=\"\"",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=\"\"",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            "permessage-deflate; unknown_param",
            "permessage-deflate; ; client_max_window_bits",
            "permessage-deflate client_max_window_bits",
            "permessage-deflate; client_max_window_bits=",
            "permessage-deflate; =9",
            "x-other; client_max_window_bits",
            "",
            " , ,",
        ] {
            assert_eq!(negotiate(&config, &[offer]), None, "{offer:?}");
        }
        // ...and an acceptable offer after them is still found.
        let (_, response) = negotiate(
            &config,
            &[
                "permessage-deflate; server_max_window_bits=16, permessage-deflate; x=\"\\\",\"",
                "permessage-deflate",
            ],
        )
        .unwrap();
        assert_eq!(response, "permessage-deflate");
    }

    #[test]
    fn server_limits_and_takeover() {
        // Client asks the server to limit itself.
        let (params, response) = negotiate(
            &DeflateConfig::default(),
            &["permessage-deflate; server_max_window_bits=8; server_no_context_takeover"],
        )
        .unwrap();
        assert_eq!(params.server_max_window_bits, 8);
        assert!(params.server_no_context_takeover);
        assert_eq!(
            response,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=8"
        );

        // Autobahn 13.x style offer: the hint is echoed and the limit answered.
        let (params, response) = negotiate(
            &DeflateConfig::default(),
            &["permessage-deflate; client_no_context_takeover; client_max_window_bits=9"],
        )
        .unwrap();
        assert!(params.client_no_context_takeover);
        assert_eq!(params.client_max_window_bits, 9);
        assert_eq!(
            response,
            "permessage-deflate; client_no_context_takeover; client_max_window_bits=9"
        );

        // Our own limits.
        let config = DeflateConfig {
            server_max_window_bits: 10,
            client_max_window_bits: 11,
            server_no_context_takeover: true,
            ..DeflateConfig::default()
        };
        // Cannot limit a client that did not offer client_max_window_bits: declined.
        assert_eq!(negotiate(&config, &["permessage-deflate"]), None);
        let (params, response) = negotiate(
            &config,
            &["permessage-deflate; server_max_window_bits=12; client_max_window_bits"],
        )
        .unwrap();
        assert_eq!(
            params,
            DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: false,
                server_max_window_bits: 10,
                client_max_window_bits: 11,
            }
        );
        assert_eq!(
            response,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; \
             client_max_window_bits=11"
        );
        let (params, _) = negotiate(
            &config,
            &["permessage-deflate; server_max_window_bits=9; client_max_window_bits=8"],
        )
        .unwrap();
        assert_eq!(params.server_max_window_bits, 9);
        assert_eq!(params.client_max_window_bits, 8);
    }

    #[test]
    fn client_accepts_valid_responses() {
        let config = DeflateConfig::default();
        assert_eq!(config.client_accept(None), Ok(None));
        assert_eq!(config.client_accept(Some("")), Ok(None));
        assert_eq!(config.client_accept(Some(" , ")), Ok(None));
        assert_eq!(
            config.client_accept(Some("permessage-deflate")),
            Ok(Some(DeflateParams::default()))
        );
        assert_eq!(
            config.client_accept(Some(
                "Permessage-Deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=\"10\"; client_max_window_bits=9"
            )),
            Ok(Some(DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: 10,
                client_max_window_bits: 9,
            }))
        );
        // We asked for limits; the server agrees, possibly with smaller values.
        let config = DeflateConfig {
            server_max_window_bits: 10,
            client_max_window_bits: 12,
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            ..DeflateConfig::default()
        };
        assert_eq!(
            config.client_accept(Some(
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=9"
            )),
            Ok(Some(DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: 9,
                client_max_window_bits: 12,
            }))
        );
    }

    #[test]
    fn client_rejects_invalid_responses() {
        let config = DeflateConfig::default();
        for response in [
            "x-webkit-deflate-frame",
            "permessage-deflate, x-foo",
            "permessage-deflate, permessage-deflate",
            "permessage-deflate; foo",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_max_window_bits=9; server_max_window_bits=9",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; client_max_window_bits=015",
            "permessage-deflate; client_no_context_takeover=true",
            "permessage-deflate; server_max_window_bits=\"9",
            "permessage-deflate;",
            "permessage-deflate x",
            "\"permessage-deflate\"",
        ] {
            bad(&config, response);
        }
        // Asked-for things the server ignored or exceeded.
        let asking = DeflateConfig {
            server_max_window_bits: 10,
            client_max_window_bits: 11,
            server_no_context_takeover: true,
            ..DeflateConfig::default()
        };
        bad(&asking, "permessage-deflate; server_no_context_takeover");
        bad(&asking, "permessage-deflate; server_max_window_bits=10");
        bad(
            &asking,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=11",
        );
        bad(
            &asking,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; \
             client_max_window_bits=12",
        );
        // client_max_window_bits answered although the offer did not have it.
        let offer = PmdParams::default();
        assert!(matches!(
            accept_response(
                &offer,
                Some("permessage-deflate; client_max_window_bits=10")
            ),
            Err(DeflateError::BadExtensionParams(_))
        ));
        assert_eq!(
            accept_response(
                &offer,
                Some("permessage-deflate; server_max_window_bits=10")
            ),
            Ok(Some(DeflateParams {
                server_max_window_bits: 10,
                ..DeflateParams::default()
            }))
        );
    }

    /// Whatever both sides are configured with, the server's and the client's views agree.
    #[test]
    fn both_sides_agree() {
        let flags = [(false, false), (true, false), (false, true), (true, true)];
        for (client_snct, client_cnct) in flags {
            for (server_snct, server_cnct) in flags {
                for cs in [8, 9, 12, 15] {
                    for cc in [8, 10, 15] {
                        for ss in [8, 11, 15] {
                            for sc in [9, 13, 15] {
                                let client = DeflateConfig {
                                    server_no_context_takeover: client_snct,
                                    client_no_context_takeover: client_cnct,
                                    server_max_window_bits: cs,
                                    client_max_window_bits: cc,
                                    ..DeflateConfig::default()
                                };
                                let server = DeflateConfig {
                                    server_no_context_takeover: server_snct,
                                    client_no_context_takeover: server_cnct,
                                    server_max_window_bits: ss,
                                    client_max_window_bits: sc,
                                    ..DeflateConfig::default()
                                };
                                let offer = client.client_offer();
                                let (server_view, response) =
                                    server.server_negotiate([offer.as_str()]).unwrap();
                                let client_view =
                                    client.client_accept(Some(&response)).unwrap().unwrap();
                                assert_eq!(server_view, client_view, "{offer} -> {response}");
                                assert!(server_view.server_max_window_bits <= cs.min(ss));
                                assert!(server_view.client_max_window_bits <= cc.min(sc));
                            }
                        }
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------- codec helpers

    /// xorshift64*: deterministic test data without dependencies.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Text-like data: words from a small vocabulary, with some random bytes mixed in.
    fn sample(rng: &mut Rng, len: usize) -> Vec<u8> {
        const WORDS: [&str; 12] = [
            "player",
            "position",
            "velocity",
            "{\"id\":",
            "health",
            "42",
            "true",
            "null",
            "score",
            "-17.25",
            "entity",
            "\"state\":",
        ];
        let mut data = Vec::with_capacity(len + 16);
        while data.len() < len {
            if rng.below(8) == 0 {
                data.push(rng.next() as u8);
            } else {
                data.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
                data.push(b' ');
            }
        }
        data.truncate(len);
        data
    }

    fn params(bits: u8, no_context_takeover: bool) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: no_context_takeover,
            client_no_context_takeover: no_context_takeover,
            server_max_window_bits: bits,
            client_max_window_bits: bits,
        }
    }

    fn pair(p: DeflateParams, level: u32) -> (PerMessageDeflate, PerMessageDeflate) {
        (
            PerMessageDeflate::new(p, false, level, 0),
            PerMessageDeflate::new(p, true, level, 0),
        )
    }

    /// Sends `data` from `tx` to `rx`, checks it comes out intact, returns the wire bytes.
    fn send(tx: &mut PerMessageDeflate, rx: &mut PerMessageDeflate, data: &[u8]) -> Vec<u8> {
        let mut wire = Vec::new();
        tx.compress(data, &mut wire).unwrap();
        let mut back = Vec::new();
        rx.decompress(&wire, &mut back, data.len()).unwrap();
        assert!(back == data, "round trip of {} bytes failed", data.len());
        wire
    }

    // ---------------------------------------------------------------- round trips

    #[test]
    fn round_trips_all_windows() {
        let sizes = [0, 1, 100, 64 * 1024, 1024 * 1024];
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let messages: Vec<Vec<u8>> = sizes.iter().map(|&n| sample(&mut rng, n)).collect();
        for bits in 8..=15 {
            for no_context_takeover in [false, true] {
                let (mut client, mut server) = pair(params(bits, no_context_takeover), 1);
                for round in 0..2 {
                    for (i, message) in messages.iter().enumerate() {
                        // Alternate directions and order so windows carry across sizes.
                        let m = &messages[(i + round) % messages.len()];
                        send(&mut client, &mut server, message);
                        send(&mut server, &mut client, m);
                    }
                }
            }
        }
    }

    #[test]
    fn round_trips_all_levels_and_interleaving() {
        let mut rng = Rng(7);
        for level in 0..=9 {
            for no_context_takeover in [false, true] {
                let (mut client, mut server) = pair(params(15, no_context_takeover), level);
                for _ in 0..20 {
                    let len = rng.below(3000);
                    let data = sample(&mut rng, len);
                    send(&mut client, &mut server, &data);
                    // Traffic the other way does not disturb this direction's windows.
                    if rng.below(2) == 0 {
                        let data = sample(&mut rng, 50);
                        send(&mut server, &mut client, &data);
                    }
                }
            }
            // Incompressible data: the output outgrows the first reservation several times.
            let (mut client, mut server) = pair(params(15, false), level);
            let noise: Vec<u8> = (0..300_000).map(|_| rng.next() as u8).collect();
            let wire = send(&mut client, &mut server, &noise);
            // Level 1 (zlib-rs's quick strategy) only uses the fixed Huffman code: up to 9 bits
            // per byte. The other levels fall back to stored blocks.
            let slack = if level == 1 {
                noise.len() / 8
            } else {
                noise.len() / 100
            };
            assert!(
                wire.len() < noise.len() + slack,
                "level {level}: {}",
                wire.len()
            );
            send(&mut client, &mut server, b"after the noise");
        }
    }

    #[test]
    fn context_takeover_shrinks_repeats() {
        let data = b"{\"player\":1,\"position\":[10.5,20.25],\"velocity\":[0,0]}".repeat(3);
        let (mut client, mut server) = pair(params(15, false), 1);
        let first = send(&mut client, &mut server, &data);
        let second = send(&mut client, &mut server, &data);
        assert!(
            second.len() < first.len() / 2,
            "{} vs {}",
            second.len(),
            first.len()
        );

        let (mut client, mut server) = pair(params(15, true), 1);
        let first = send(&mut client, &mut server, &data);
        let second = send(&mut client, &mut server, &data);
        assert_eq!(
            first, second,
            "no context takeover: each message stands alone"
        );
    }

    #[test]
    fn outputs_are_appended() {
        let (mut client, mut server) = pair(params(12, false), 1);
        let mut wire = b"head".to_vec();
        client.compress(b"hello hello hello", &mut wire).unwrap();
        assert_eq!(&wire[..4], b"head");
        let mut out = b"prefix".to_vec();
        server.decompress(&wire[4..], &mut out, 17).unwrap();
        assert_eq!(out, b"prefixhello hello hello");
    }

    #[test]
    fn empty_messages() {
        let (mut client, mut server) = pair(params(15, false), 1);
        send(&mut client, &mut server, b"some text some text");
        let mut wire = Vec::new();
        client.compress(b"", &mut wire).unwrap();
        assert_eq!(wire, [0x00]);
        let mut out = Vec::new();
        server.decompress(&wire, &mut out, 0).unwrap();
        assert!(out.is_empty());
        // An empty compressed payload is an empty message and leaves the state alone.
        server.decompress(&[], &mut out, 0).unwrap();
        assert!(out.is_empty());
        send(&mut client, &mut server, b"some text some text");
    }

    #[test]
    fn should_compress_threshold() {
        let codec = DeflateConfig::default().codec(DeflateParams::default(), true);
        assert!(!codec.should_compress(15));
        assert!(codec.should_compress(16));
        let codec = PerMessageDeflate::new(DeflateParams::default(), false, 1, 0);
        assert!(codec.should_compress(0));
    }

    #[test]
    fn codec_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<PerMessageDeflate>();
        check::<DeflateConfig>();
        check::<DeflateError>();
    }

    #[test]
    fn bogus_params_do_not_panic() {
        let p = DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: true,
            server_max_window_bits: 0,
            client_max_window_bits: 200,
        };
        let (mut client, mut server) = (
            PerMessageDeflate::new(p, false, 1000, 0),
            PerMessageDeflate::new(p, true, u32::MAX, 0),
        );
        let data = sample(&mut Rng(3), 5000);
        send(&mut client, &mut server, &data);
        send(&mut server, &mut client, &data);
    }

    #[test]
    fn release_idle_memory() {
        let data = sample(&mut Rng(11), 2000);
        let (mut client, mut server) = pair(params(15, true), 1);
        send(&mut client, &mut server, &data);
        assert!(client.release_idle_memory()); // compressor
        assert!(server.release_idle_memory()); // decompressor
        send(&mut client, &mut server, &data);

        // With context takeover the windows are kept.
        let (mut client, mut server) = pair(params(15, false), 1);
        let first = send(&mut client, &mut server, &data);
        assert!(!client.release_idle_memory());
        assert!(!server.release_idle_memory());
        let second = send(&mut client, &mut server, &data);
        assert!(
            second.len() < first.len() / 4,
            "{} vs {}",
            second.len(),
            first.len()
        );
    }

    // ---------------------------------------------------------------- limits and bad input

    #[test]
    fn bomb_hits_limit_without_big_allocation() {
        let zeros = vec![0u8; 10 * 1024 * 1024];
        let (mut client, mut server) = pair(params(15, false), 6);
        let mut wire = Vec::new();
        client.compress(&zeros, &mut wire).unwrap();
        assert!(wire.len() < 64 * 1024, "{}", wire.len());
        drop(zeros);

        let limit = 64 * 1024;
        let mut out = Vec::new();
        assert_eq!(
            server.decompress(&wire, &mut out, limit),
            Err(DeflateError::TooBig { limit })
        );
        assert!(out.is_empty());
        assert!(out.capacity() <= limit + 1, "capacity {}", out.capacity());

        // A caller buffer with spare capacity beyond the limit is not filled past it either.
        let mut out = Vec::with_capacity(4 * 1024 * 1024);
        out.extend_from_slice(b"keep");
        assert_eq!(
            server.decompress(&wire, &mut out, limit),
            Err(DeflateError::TooBig { limit })
        );
        assert_eq!(out, b"keep");
        assert_eq!(out.capacity(), 4 * 1024 * 1024);
    }

    #[test]
    fn limit_is_exact() {
        let data = sample(&mut Rng(5), 10_000);
        let (mut client, mut server) = pair(params(15, true), 1);
        let mut wire = Vec::new();
        client.compress(&data, &mut wire).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            server.decompress(&wire, &mut out, data.len() - 1),
            Err(DeflateError::TooBig {
                limit: data.len() - 1
            })
        );
        // After the error (no context takeover) the decompressor starts afresh.
        server.decompress(&wire, &mut out, data.len()).unwrap();
        assert!(out == data);
        assert!(out.capacity() <= data.len() + 1);
        let mut out = Vec::new();
        server.decompress(&wire, &mut out, 0).unwrap_err();
        let mut out = Vec::new();
        server.decompress(&wire, &mut out, usize::MAX).unwrap();
        assert!(out == data);
    }

    #[test]
    fn corrupt_data() {
        let mut server = PerMessageDeflate::new(params(15, false), true, 1, 0);
        let mut out = Vec::new();
        // BTYPE 11 is reserved.
        assert_eq!(
            server.decompress(&[0xff, 0xff, 0xff], &mut out, 1 << 20),
            Err(DeflateError::Corrupt)
        );
        assert!(out.is_empty());
        // Stored block whose NLEN is not the complement of LEN.
        assert_eq!(
            server.decompress(&[0x00, 0x05, 0x00, 0x00, 0x00, b'H'], &mut out, 1 << 20),
            Err(DeflateError::Corrupt)
        );
        // A distance further back than anything decoded.
        let far = [0x02, 0x41, 0x4a, 0x04, 0x00];
        assert!(server.decompress(&far, &mut out, 1 << 20).is_err());
        // Still usable afterwards (the connection would be failed, but no panic, no garbage).
        let mut client = PerMessageDeflate::new(params(15, false), false, 1, 0);
        send(&mut client, &mut server, b"fresh start fresh start");
    }

    #[test]
    fn reference_across_messages_without_takeover_is_corrupt() {
        // The server promised server_no_context_takeover but its second message refers back
        // into the first one.
        let data = sample(&mut Rng(9), 1000);
        let mut liar = PerMessageDeflate::new(params(15, false), true, 6, 0);
        let mut client = PerMessageDeflate::new(params(15, true), false, 1, 0);
        let mut wire = Vec::new();
        liar.compress(&data, &mut wire).unwrap();
        let mut out = Vec::new();
        client.decompress(&wire, &mut out, 1 << 20).unwrap();
        assert!(out == data);
        wire.clear();
        liar.compress(&data, &mut wire).unwrap();
        assert!(wire.len() < 20, "{}", wire.len());
        let mut out = Vec::new();
        assert_eq!(
            client.decompress(&wire, &mut out, 1 << 20),
            Err(DeflateError::Corrupt)
        );
        assert!(out.is_empty());
        // With takeover on both sides the same bytes decode.
        let mut liar = PerMessageDeflate::new(params(15, false), true, 6, 0);
        let mut client = PerMessageDeflate::new(params(15, false), false, 1, 0);
        for _ in 0..2 {
            send(&mut liar, &mut client, &data);
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Rng(99);
        let valid = {
            let mut c = PerMessageDeflate::new(params(15, false), false, 6, 0);
            let mut w = Vec::new();
            c.compress(&sample(&mut rng, 5000), &mut w).unwrap();
            w
        };
        for bits in [9, 15] {
            let mut server = PerMessageDeflate::new(params(bits, false), true, 1, 0);
            for i in 0..3000 {
                let input: Vec<u8> = if i % 2 == 0 {
                    let len = rng.below(200);
                    (0..len).map(|_| rng.next() as u8).collect()
                } else {
                    // Mutated and truncated valid data.
                    let mut v = valid[..rng.below(valid.len()) + 1].to_vec();
                    for _ in 0..=rng.below(4) {
                        let at = rng.below(v.len());
                        v[at] ^= 1 << rng.below(8);
                    }
                    v
                };
                let mut out = Vec::new();
                let limit = rng.below(100_000);
                if server.decompress(&input, &mut out, limit).is_ok() {
                    assert!(out.len() <= limit);
                } else {
                    assert!(out.is_empty());
                }
            }
        }
    }

    // ---------------------------------------------------------------- RFC 7692 §7.2.3 vectors

    fn decode_all(rx: &mut PerMessageDeflate, messages: &[&[u8]]) -> Vec<Vec<u8>> {
        messages
            .iter()
            .map(|m| {
                let mut out = Vec::new();
                rx.decompress(m, &mut out, 1 << 16).unwrap();
                out
            })
            .collect()
    }

    #[test]
    fn rfc7692_vectors() {
        let hello: &[u8] = &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        // §7.2.3.1 A message compressed using one DEFLATE block.
        let mut rx = PerMessageDeflate::new(params(15, false), true, 1, 0);
        assert_eq!(decode_all(&mut rx, &[hello]), [b"Hello".to_vec()]);
        // §7.2.3.2 Sharing the LZ77 window: the second "Hello" refers to the first...
        let second: &[u8] = &[0xf2, 0x00, 0x11, 0x00, 0x00];
        let mut rx = PerMessageDeflate::new(params(15, false), true, 1, 0);
        assert_eq!(decode_all(&mut rx, &[hello, second]), [b"Hello"; 2]);
        // ...and without context takeover both messages are the same bytes.
        let mut rx = PerMessageDeflate::new(params(15, true), true, 1, 0);
        assert_eq!(decode_all(&mut rx, &[hello, hello]), [b"Hello"; 2]);
        // §7.2.3.3 A DEFLATE block with no compression.
        let stored: &[u8] = &[
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        // §7.2.3.4 A DEFLATE block with BFINAL set (the trailing bytes are ignored).
        let final_block: &[u8] = &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        // §7.2.3.5 Two DEFLATE blocks in one message.
        let two_blocks: &[u8] = &[
            0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
        ];
        // §7.2.3.6 An empty message.
        let empty: &[u8] = &[0x00];
        let mut rx = PerMessageDeflate::new(params(15, false), false, 1, 0);
        assert_eq!(
            decode_all(
                &mut rx,
                &[stored, final_block, hello, two_blocks, empty, hello]
            ),
            [
                b"Hello".to_vec(),
                b"Hello".to_vec(),
                b"Hello".to_vec(),
                b"Hello".to_vec(),
                Vec::new(),
                b"Hello".to_vec()
            ]
        );
    }

    #[test]
    fn compresses_hello_like_the_rfc() {
        for level in 1..=9 {
            let (mut client, mut server) = pair(params(15, true), level);
            let first = send(&mut client, &mut server, b"Hello");
            let second = send(&mut client, &mut server, b"Hello");
            assert_eq!(
                first,
                [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
                "level {level}"
            );
            assert_eq!(second, first);
        }
        let (mut client, mut server) = pair(params(15, false), 6);
        send(&mut client, &mut server, b"Hello");
        let second = send(&mut client, &mut server, b"Hello");
        assert_eq!(second, [0xf2, 0x00, 0x11, 0x00, 0x00]);
    }

    // ---------------------------------------------------------------- window sizes on the wire

    /// A small independent raw-DEFLATE decoder (RFC 1951), used to check what our compressor
    /// puts on the wire. Returns the output and the largest match distance used.
    fn reference_inflate(data: &[u8]) -> Result<(Vec<u8>, usize), &'static str> {
        struct Bits<'a> {
            data: &'a [u8],
            pos: usize,
            buf: u32,
            count: u32,
        }
        impl Bits<'_> {
            fn need(&mut self, n: u32) -> Result<u32, &'static str> {
                while self.count < n {
                    let byte = *self.data.get(self.pos).ok_or("out of input")?;
                    self.pos += 1;
                    self.buf |= u32::from(byte) << self.count;
                    self.count += 8;
                }
                let v = self.buf & ((1u32 << n) - 1);
                self.buf >>= n;
                self.count -= n;
                Ok(v)
            }
        }
        struct Huffman {
            counts: [u16; 16],
            symbols: Vec<u16>,
        }
        fn build(lengths: &[u8]) -> Huffman {
            let mut counts = [0u16; 16];
            for &l in lengths {
                counts[usize::from(l)] += 1;
            }
            counts[0] = 0;
            let mut offsets = [0u16; 16];
            for len in 1..15 {
                offsets[len + 1] = offsets[len] + counts[len];
            }
            let mut symbols = vec![0u16; lengths.len()];
            for (symbol, &l) in lengths.iter().enumerate() {
                if l != 0 {
                    symbols[usize::from(offsets[usize::from(l)])] = symbol as u16;
                    offsets[usize::from(l)] += 1;
                }
            }
            Huffman { counts, symbols }
        }
        fn decode(bits: &mut Bits<'_>, h: &Huffman) -> Result<u16, &'static str> {
            let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
            for len in 1..16 {
                code |= bits.need(1)? as i32;
                let count = i32::from(h.counts[len]);
                if code - first < count {
                    return Ok(h.symbols[(index + code - first) as usize]);
                }
                index += count;
                first = (first + count) << 1;
                code <<= 1;
            }
            Err("bad code")
        }
        const LBASE: [u16; 29] = [
            3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99,
            115, 131, 163, 195, 227, 258,
        ];
        const LEXT: [u8; 29] = [
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
        ];
        const DBASE: [u16; 30] = [
            1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025,
            1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
        ];
        const DEXT: [u8; 30] = [
            0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12,
            12, 13, 13,
        ];
        const ORDER: [usize; 19] = [
            16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
        ];

        let mut bits = Bits {
            data,
            pos: 0,
            buf: 0,
            count: 0,
        };
        let mut out = Vec::new();
        let mut max_dist = 0;
        loop {
            if bits.pos == data.len() && bits.count == 0 {
                return Ok((out, max_dist));
            }
            let last = bits.need(1)?;
            let (lit, dist) = match bits.need(2)? {
                0 => {
                    bits.buf = 0;
                    bits.count = 0;
                    let header = data.get(bits.pos..bits.pos + 4).ok_or("short stored")?;
                    let len = usize::from(u16::from_le_bytes([header[0], header[1]]));
                    let nlen = u16::from_le_bytes([header[2], header[3]]);
                    if nlen != !(len as u16) {
                        return Err("bad stored length");
                    }
                    bits.pos += 4;
                    let body = data.get(bits.pos..bits.pos + len).ok_or("short stored")?;
                    out.extend_from_slice(body);
                    bits.pos += len;
                    if last == 1 {
                        return Ok((out, max_dist));
                    }
                    continue;
                }
                1 => {
                    let mut lengths = [8u8; 288];
                    lengths[144..256].fill(9);
                    lengths[256..280].fill(7);
                    (build(&lengths), build(&[5u8; 30]))
                }
                2 => {
                    let nlen = bits.need(5)? as usize + 257;
                    let ndist = bits.need(5)? as usize + 1;
                    let ncode = bits.need(4)? as usize + 4;
                    let mut code_lengths = [0u8; 19];
                    for &i in &ORDER[..ncode] {
                        code_lengths[i] = bits.need(3)? as u8;
                    }
                    let code = build(&code_lengths);
                    let mut lengths = Vec::with_capacity(nlen + ndist);
                    while lengths.len() < nlen + ndist {
                        let (value, repeat) = match decode(&mut bits, &code)? {
                            s @ 0..=15 => (s as u8, 1),
                            16 => (*lengths.last().ok_or("repeat first")?, 3 + bits.need(2)?),
                            17 => (0, 3 + bits.need(3)?),
                            _ => (0, 11 + bits.need(7)?),
                        };
                        lengths.extend(std::iter::repeat_n(value, repeat as usize));
                    }
                    if lengths.len() != nlen + ndist {
                        return Err("too many lengths");
                    }
                    (build(&lengths[..nlen]), build(&lengths[nlen..]))
                }
                _ => return Err("reserved block type"),
            };
            loop {
                let symbol = usize::from(decode(&mut bits, &lit)?);
                match symbol {
                    0..=255 => out.push(symbol as u8),
                    256 => break,
                    _ => {
                        let i = symbol - 257;
                        let len = usize::from(*LBASE.get(i).ok_or("bad length")?)
                            + bits.need(u32::from(LEXT[i]))? as usize;
                        let d = usize::from(decode(&mut bits, &dist)?);
                        let distance = usize::from(*DBASE.get(d).ok_or("bad distance")?)
                            + bits.need(u32::from(DEXT[d]))? as usize;
                        if distance > out.len() {
                            return Err("distance too far back");
                        }
                        max_dist = max_dist.max(distance);
                        for _ in 0..len {
                            out.push(out[out.len() - distance]);
                        }
                    }
                }
            }
            if last == 1 {
                return Ok((out, max_dist));
            }
        }
    }

    /// Our compressor never reaches back further than the negotiated window, 8 included, as
    /// seen by an independent decoder over the whole stream of messages (context takeover).
    #[test]
    fn compressed_distances_respect_window() {
        let mut rng = Rng(0xfeed);
        // Repeats at many distances, so a compressor would use far matches if allowed.
        let block = sample(&mut rng, 700);
        let mut messages = Vec::new();
        for i in 0..12 {
            let mut m = sample(&mut rng, 40 + 37 * i);
            m.extend_from_slice(&block[..(100 + 50 * i).min(block.len())]);
            m.extend_from_slice(&sample(&mut rng, 20 * i));
            m.extend_from_slice(&block);
            messages.push(m);
        }
        let joined: Vec<u8> = messages.concat();
        for bits in 8..=15u8 {
            for level in [1, 2, 6, 9] {
                let mut tx = PerMessageDeflate::new(params(bits, false), true, level, 0);
                let mut rx = PerMessageDeflate::new(params(bits, false), false, level, 0);
                let mut stream = Vec::new();
                for m in &messages {
                    let wire = send(&mut tx, &mut rx, m);
                    stream.extend_from_slice(&wire);
                    stream.extend_from_slice(&TRAILER);
                }
                let (decoded, max_dist) = reference_inflate(&stream).unwrap();
                assert!(decoded == joined, "bits {bits} level {level}");
                assert!(
                    max_dist <= 1 << bits,
                    "bits {bits} level {level}: distance {max_dist}"
                );
                if bits == 15 && level > 1 {
                    assert!(max_dist > 512, "the test data should use far matches");
                }
            }
        }
    }

    #[test]
    fn reference_decoder_agrees_with_rfc_vectors() {
        let mut stream = vec![0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        stream.extend_from_slice(&TRAILER);
        stream.extend_from_slice(&[0xf2, 0x00, 0x11, 0x00, 0x00]);
        stream.extend_from_slice(&TRAILER);
        assert_eq!(
            reference_inflate(&stream).unwrap(),
            (b"HelloHello".to_vec(), 5)
        );
    }
}
