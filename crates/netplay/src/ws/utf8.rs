//! Incremental UTF-8 validation for text messages that arrive in pieces (RFC 6455 §8.1).
//!
//! Owns only the rule "fail as soon as the bytes seen so far cannot start a valid UTF-8 string".
//! The caller appends bytes to one buffer and asks this validator about the new part.

/// Tracks how much of a growing buffer is known to be valid UTF-8.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    valid_up_to: usize,
}

impl Utf8Validator {
    /// Forgets everything (a new message starts).
    pub fn reset(&mut self) {
        self.valid_up_to = 0;
    }

    /// Checks `buf`, of which the first bytes were already checked by earlier calls.
    ///
    /// Returns `false` as soon as `buf` cannot be the start of valid UTF-8. A sequence cut at the
    /// end of `buf` is accepted until more bytes arrive.
    pub fn feed(&mut self, buf: &[u8]) -> bool {
        if self.valid_up_to > buf.len() {
            self.valid_up_to = 0;
        }
        let tail = &buf[self.valid_up_to..];
        match simdutf8::compat::from_utf8(tail) {
            Ok(_) => {
                self.valid_up_to = buf.len();
                true
            }
            Err(e) => {
                if e.error_len().is_some() {
                    return false;
                }
                // Cut sequence at the end: valid so far, unless the cut part can never complete.
                self.valid_up_to += e.valid_up_to();
                let rest = &buf[self.valid_up_to..];
                rest.len() < 4 && prefix_can_complete(rest)
            }
        }
    }

    /// Whether `buf` (the whole message, already fed) ends on a character boundary.
    pub fn is_complete(&self, buf: &[u8]) -> bool {
        self.valid_up_to == buf.len()
    }
}

/// Whether a short byte run (cut at the end of the input) can still begin a valid character.
fn prefix_can_complete(rest: &[u8]) -> bool {
    // Pad with the smallest continuation byte that keeps each lead's allowed second-byte range
    // and ask the validator whether some completion exists.
    let Some(&lead) = rest.first() else {
        return true;
    };
    let need = match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return false,
    };
    if rest.len() >= need {
        return false;
    }
    for (i, &b) in rest.iter().enumerate().skip(1) {
        let (lo, hi) = if i == 1 {
            match lead {
                0xE0 => (0xA0, 0xBF),
                0xED => (0x80, 0x9F),
                0xF0 => (0x90, 0xBF),
                0xF4 => (0x80, 0x8F),
                _ => (0x80, 0xBF),
            }
        } else {
            (0x80, 0xBF)
        };
        if b < lo || b > hi {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_bytewise(bytes: &[u8]) -> Option<usize> {
        let mut v = Utf8Validator::default();
        for i in 1..=bytes.len() {
            if !v.feed(&bytes[..i]) {
                return Some(i);
            }
        }
        if v.is_complete(bytes) {
            None
        } else {
            Some(bytes.len() + 1)
        }
    }

    #[test]
    fn valid_text_passes_in_any_split() {
        let s = "κόσμε Hello-µ@ßöäüàá-UTF-8!! 𝄞 \u{10FFFF}";
        assert_eq!(feed_bytewise(s.as_bytes()), None);
    }

    #[test]
    fn invalid_sequence_fails_at_the_first_bad_byte() {
        // "κόσμε" followed by the UTF-16 surrogate ED A0 80: invalid at the A0.
        let mut b = "κόσμε".as_bytes().to_vec();
        let at = b.len();
        b.extend_from_slice(&[0xED, 0xA0, 0x80, b'e', b'd', b'i', b't', b'e', b'd']);
        assert_eq!(feed_bytewise(&b), Some(at + 2));
    }

    #[test]
    fn overlong_and_out_of_range_leads_fail_fast() {
        assert_eq!(feed_bytewise(&[0xC0, 0x80]), Some(1));
        assert_eq!(feed_bytewise(&[0xF5]), Some(1));
        assert_eq!(feed_bytewise(&[0xF4, 0x90]), Some(2));
        assert_eq!(feed_bytewise(&[0xE0, 0x80]), Some(2));
        assert_eq!(feed_bytewise(&[0xF0, 0x80]), Some(2));
    }

    #[test]
    fn truncated_character_at_message_end_is_incomplete() {
        assert_eq!(feed_bytewise(&[b'a', 0xE2, 0x82]), Some(4));
    }

    #[test]
    fn agrees_with_std_on_every_two_byte_input() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let bytes = [a, b];
                let ok = std::str::from_utf8(&bytes).is_ok();
                assert_eq!(feed_bytewise(&bytes).is_none(), ok, "{bytes:x?}");
            }
        }
    }
}
