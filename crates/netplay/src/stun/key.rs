//! The MESSAGE-INTEGRITY key of short-term and long-term credentials (RFC 8489 §9).
//!
//! This module owns key derivation only; the HMAC over a message lives with the message codec.

use std::fmt;

use super::crypto::md5;

/// The HMAC-SHA1 key for MESSAGE-INTEGRITY.
///
/// Passwords, realms and usernames are used as given. RFC 8489 asks for them to be prepared with
/// the OpaqueString profile of RFC 8265 (RFC 5389 used SASLprep), which leaves printable ASCII
/// unchanged; callers with non-ASCII credentials must pass the prepared form. ICE (RFC 8445)
/// passwords and TURN REST credentials are ASCII.
///
/// `Debug` does not print the key.
#[derive(Clone)]
pub struct Key(Vec<u8>);

impl Key {
    /// A short-term credential key (RFC 8489 §9.1.1): the password itself, as ICE uses with the
    /// remote peer's `ice-pwd`.
    pub fn short_term(password: &str) -> Key {
        Key(password.as_bytes().to_vec())
    }

    /// A long-term credential key (RFC 8489 §9.2.2), as a TURN client uses after its server
    /// answered 401 with a REALM: `MD5(username ":" realm ":" password)`.
    pub fn long_term(username: &str, realm: &str, password: &str) -> Key {
        Key(md5(&[
            username.as_bytes(),
            b":",
            realm.as_bytes(),
            b":",
            password.as_bytes(),
        ])
        .to_vec())
    }

    /// A key from raw bytes, for keys derived elsewhere (a stored long-term key, say).
    pub fn from_bytes(bytes: &[u8]) -> Key {
        Key(bytes.to_vec())
    }

    /// The key bytes fed to HMAC-SHA1.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_term_key_is_md5_of_username_realm_password() {
        // MD5("user:realm:pass"), computed by an independent MD5 implementation.
        let expected = [
            0x84, 0x93, 0xfb, 0xc5, 0x3b, 0xa5, 0x82, 0xfb, 0x4c, 0x04, 0x4c, 0x45, 0x6b, 0xdc,
            0x40, 0xeb,
        ];
        assert_eq!(Key::long_term("user", "realm", "pass").as_bytes(), expected);
    }

    #[test]
    fn short_term_key_is_the_password() {
        assert_eq!(
            Key::short_term("VOkJxbRl1RmTxUk/WvJxBt").as_bytes(),
            b"VOkJxbRl1RmTxUk/WvJxBt"
        );
    }

    #[test]
    fn debug_does_not_leak_the_key() {
        let shown = format!("{:?}", Key::short_term("hunter2"));
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
