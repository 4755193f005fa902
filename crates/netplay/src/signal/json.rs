//! The JSON reader of the signaling messages: a strict RFC 8259 reader for one object whose
//! `type`, `id` and `data` fields the message module wants, borrowing from the input.
//!
//! Owns JSON syntax (every value is checked, the fields nobody reads too), the lookup of the
//! three fields (keys compared after unescaping; a field given twice is refused), the integral
//! value of a number and the unescaping of a string literal. It does not own what the fields
//! mean (the message module). Nesting deeper than [`MAX_DEPTH`] is refused, so no input can
//! exhaust the stack; the reader allocates only to unescape a key that has escapes.

use std::borrow::Cow;

/// The deepest nesting of arrays and objects accepted (as serde_json's default).
pub(crate) const MAX_DEPTH: usize = 128;

/// The three fields of a message, as they appear in the text: the numbers' text and the
/// `data` value's text (any JSON value; the message module wants a string).
#[derive(Debug, Default)]
pub(crate) struct Fields<'a> {
    pub(crate) kind: Option<&'a str>,
    pub(crate) id: Option<&'a str>,
    pub(crate) data: Option<&'a str>,
}

/// Why a text is not a message's JSON: all the same to the caller.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Invalid;

type Result<T> = std::result::Result<T, Invalid>;

/// Reads one JSON object with nothing but whitespace around it; `type` and `id` must be
/// numbers where present, and no field may appear twice.
pub(crate) fn read_fields(text: &str) -> Result<Fields<'_>> {
    let mut r = Reader { text, pos: 0 };
    r.ws();
    let fields = r.top_object()?;
    r.ws();
    if r.pos != text.len() {
        return Err(Invalid);
    }
    Ok(fields)
}

/// The integral value of a JSON number's text, saturated to `i64`; `None` if it has a
/// fraction or is beyond `f64` (`4`, `4.0` and `4e0` are all 4).
pub(crate) fn integral(number: &str) -> Option<i64> {
    if !number.contains(['.', 'e', 'E']) {
        if let Ok(v) = number.parse::<i64>() {
            return Some(v);
        }
    }
    let f: f64 = number.parse().ok()?;
    (f.is_finite() && f.fract() == 0.0).then_some(f as i64) // `as` saturates
}

/// The string a JSON string literal (quotes included, already checked by [`read_fields`])
/// stands for; `None` for an escaped lone surrogate, which has no `String` form.
pub(crate) fn unescape(literal: &str) -> Option<String> {
    let inner = literal.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut rest = inner;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let mut chars = rest[at + 1..].chars();
        let c = match chars.next()? {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let hex = |s: &str| u32::from_str_radix(s.get(..4)?, 16).ok();
                let after = &rest[at + 2..];
                let high = hex(after)?;
                if (0xD800..0xDC00).contains(&high) {
                    // A surrogate pair: `\uD8xx\uDCxx`.
                    let low = after.get(4..)?.strip_prefix("\\u").and_then(hex)?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return None;
                    }
                    out.push(char::from_u32(
                        0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00),
                    )?);
                    rest = &after[10..];
                    continue;
                }
                out.push(char::from_u32(high)?); // `None` for a lone low surrogate
                rest = &after[4..];
                continue;
            }
            _ => return None,
        };
        out.push(c);
        rest = chars.as_str();
    }
    out.push_str(rest);
    Some(out)
}

struct Reader<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Result<()> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    /// The message's object: its members, keeping the three wanted fields.
    fn top_object(&mut self) -> Result<Fields<'a>> {
        let mut fields = Fields::default();
        self.members(1, |key, value| {
            let name = if key.contains('\\') {
                Cow::Owned(unescape(key).ok_or(Invalid)?)
            } else {
                Cow::Borrowed(&key[1..key.len() - 1])
            };
            let (slot, numeric) = match &*name {
                "type" => (&mut fields.kind, true),
                "id" => (&mut fields.id, true),
                "data" => (&mut fields.data, false),
                _ => return Ok(()),
            };
            let is_number = matches!(value.as_bytes()[0], b'-' | b'0'..=b'9');
            if slot.is_some() || (numeric && !is_number) {
                return Err(Invalid);
            }
            *slot = Some(value);
            Ok(())
        })?;
        Ok(fields)
    }

    /// Any value at nesting `depth`.
    fn value(&mut self, depth: usize) -> Result<()> {
        match self.peek().ok_or(Invalid)? {
            b'{' | b'[' if depth >= MAX_DEPTH => Err(Invalid),
            b'{' => self.members(depth + 1, |_, _| Ok(())),
            b'[' => self.list(b'[', b']', |r| r.value(depth + 1)),
            b'"' => self.string().map(|_| ()),
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.word("true"),
            b'f' => self.word("false"),
            b'n' => self.word("null"),
            _ => Err(Invalid),
        }
    }

    /// An object whose member values are at nesting `depth`; `member` is given each key's
    /// literal (quotes included) and value's text.
    fn members(
        &mut self,
        depth: usize,
        mut member: impl FnMut(&'a str, &'a str) -> Result<()>,
    ) -> Result<()> {
        self.list(b'{', b'}', |r| {
            let key = r.string()?;
            r.ws();
            r.eat(b':')?;
            r.ws();
            let start = r.pos;
            r.value(depth)?;
            member(key, &r.text[start..r.pos])
        })
    }

    /// `open`, items separated by commas (each read by `item`), `close`; whitespace around.
    fn list(
        &mut self,
        open: u8,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Result<()>,
    ) -> Result<()> {
        self.eat(open)?;
        self.ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.ws();
            item(self)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b) if b == close => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Invalid),
            }
        }
    }

    fn word(&mut self, word: &str) -> Result<()> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    /// A string literal: its text, quotes included. Escapes must be well formed (a `\u`
    /// escape's four hex digits are not checked for surrogates here) and no control
    /// character may appear raw.
    fn string(&mut self) -> Result<&'a str> {
        let start = self.pos;
        self.eat(b'"')?;
        let bytes = self.text.as_bytes();
        loop {
            let b = *bytes.get(self.pos).ok_or(Invalid)?;
            self.pos += 1;
            match b {
                b'"' => return Ok(&self.text[start..self.pos]),
                b'\\' => {
                    let e = *bytes.get(self.pos).ok_or(Invalid)?;
                    self.pos += 1;
                    match e {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            let hex = bytes.get(self.pos..self.pos + 4).ok_or(Invalid)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err(Invalid);
                            }
                            self.pos += 4;
                        }
                        _ => return Err(Invalid),
                    }
                }
                0x00..=0x1f => return Err(Invalid),
                _ => {}
            }
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<()> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(Invalid),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.some_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.some_digits()?;
        }
        Ok(())
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    fn some_digits(&mut self) -> Result<()> {
        let start = self.pos;
        self.digits();
        if self.pos == start {
            Err(Invalid)
        } else {
            Ok(())
        }
    }
}
