//! The HTTP/1.1 opening handshake of RFC 6455 §4, for both sides, without I/O.
//!
//! Owns request and response formatting and validation, the `Sec-WebSocket-Accept` key, the
//! sub-protocol choice and the header-size limit. Extension negotiation is delegated to
//! `deflate`; sockets, TLS and timeouts belong to the drivers.

use base64::Engine as _;
use sha1::{Digest, Sha1};

use super::Error;

/// The GUID of RFC 6455 §1.3, appended to the key before hashing.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Most headers a handshake may carry.
const MAX_HEADERS: usize = 64;

/// Default limit of an HTTP header block, in bytes (requests from browsers with cookies fit).
pub const DEFAULT_MAX_HANDSHAKE_SIZE: usize = 8192;

/// Computes `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(WS_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// A fresh random `Sec-WebSocket-Key` (16 random bytes, base64).
pub fn generate_key() -> String {
    let mut k = [0u8; 16];
    crate::random::fill(&mut k);
    base64::engine::general_purpose::STANDARD.encode(k)
}

/// A parsed HTTP request: the opening handshake, or any other request on the same port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The request target, e.g. `/chat?room=1`.
    pub path: String,
    /// Every header as sent, in order.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, by case-insensitive name.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether this request asks for a WebSocket upgrade.
    pub fn is_upgrade(&self) -> bool {
        self.header("upgrade")
            .is_some_and(|v| has_token(v, "websocket"))
    }

    /// The sub-protocols the client offered, in its order of preference.
    pub fn protocols(&self) -> Vec<String> {
        self.headers_named("sec-websocket-protocol")
            .flat_map(|v| v.split(','))
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()
    }
}

/// Whether a comma-separated header value contains `token` (case-insensitive).
pub fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn collect_headers(headers: &[httparse::Header<'_>]) -> Result<Vec<(String, String)>, Error> {
    headers
        .iter()
        .map(|h| {
            let v = std::str::from_utf8(h.value)
                .map_err(|_| Error::Handshake("header value is not UTF-8".into()))?;
            Ok((h.name.to_string(), v.trim().to_string()))
        })
        .collect()
}

fn too_big(buf: &[u8], limit: usize) -> Result<(), Error> {
    if buf.len() > limit {
        Err(Error::Handshake(format!(
            "HTTP header block larger than {limit} bytes"
        )))
    } else {
        Ok(())
    }
}

/// Parses an HTTP request from the start of `buf`.
///
/// `Ok(None)`: incomplete (and within `limit`). `Ok(Some((req, n)))`: the request took `n` bytes.
pub fn parse_request(buf: &[u8], limit: usize) -> Result<Option<(Request, usize)>, Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => {
            if n > limit {
                return Err(Error::Handshake(format!(
                    "HTTP header block larger than {limit} bytes"
                )));
            }
            if req.version != Some(1) {
                return Err(Error::Handshake("not an HTTP/1.1 request".into()));
            }
            Ok(Some((
                Request {
                    method: req.method.unwrap_or_default().to_string(),
                    path: req.path.unwrap_or_default().to_string(),
                    headers: collect_headers(req.headers)?,
                },
                n,
            )))
        }
        Ok(httparse::Status::Partial) => {
            too_big(buf, limit)?;
            Ok(None)
        }
        Err(httparse::Error::TooManyHeaders) => Err(Error::Handshake(format!(
            "HTTP header block larger than {MAX_HEADERS} headers"
        ))),
        Err(e) => Err(Error::Handshake(format!("malformed HTTP request: {e}"))),
    }
}

/// What a server decided about a valid upgrade request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerAccept {
    /// The chosen sub-protocol, if any.
    pub protocol: Option<String>,
    /// The value of the `Sec-WebSocket-Extensions` response header, if an extension was agreed.
    pub extensions: Option<String>,
}

/// Validates an upgrade request as a server (Godot's rules plus RFC 6455 §4.2.1) and chooses the
/// sub-protocol among `supported` (the first one the client offers that we support).
pub fn server_check(req: &Request, supported: &[String]) -> Result<Option<String>, Error> {
    if req.method != "GET" {
        return Err(Error::Handshake("the method is not GET".into()));
    }
    if !req.is_upgrade() {
        return Err(Error::Handshake("missing 'Upgrade: websocket'".into()));
    }
    if !req
        .header("connection")
        .is_some_and(|v| has_token(v, "upgrade"))
    {
        return Err(Error::Handshake("missing 'Connection: Upgrade'".into()));
    }
    if req.header("sec-websocket-version").map(str::trim) != Some("13") {
        return Err(Error::Handshake("Sec-WebSocket-Version is not 13".into()));
    }
    let key = req
        .header("sec-websocket-key")
        .ok_or_else(|| Error::Handshake("missing Sec-WebSocket-Key".into()))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(key.trim())
        .map_err(|_| Error::Handshake("Sec-WebSocket-Key is not base64".into()))?;
    if decoded.len() != 16 {
        return Err(Error::Handshake("Sec-WebSocket-Key is not 16 bytes".into()));
    }
    let offered = req.protocols();
    if supported.is_empty() {
        if !offered.is_empty() {
            // RFC 6455 lets a server ignore the offer; Godot does too when it has no list.
            return Ok(None);
        }
        return Ok(None);
    }
    if offered.is_empty() {
        return Err(Error::Handshake(
            "the client offered no sub-protocol and the server requires one".into(),
        ));
    }
    match offered.iter().find(|p| supported.iter().any(|s| s == *p)) {
        Some(p) => Ok(Some(p.clone())),
        None => Err(Error::Handshake(format!(
            "no common sub-protocol (offered: {})",
            offered.join(", ")
        ))),
    }
}

/// A server's answer to a valid upgrade request: the connection, the chosen sub-protocol and
/// the `101` response to send before any frame.
pub struct Upgrade {
    /// The connection, with permessage-deflate set up when it was agreed.
    pub conn: super::protocol::Connection,
    /// The chosen sub-protocol, if any.
    pub protocol: Option<String>,
    /// The `101 Switching Protocols` response.
    pub response: Vec<u8>,
}

/// Accepts an upgrade request as a server: checks it ([`server_check`]), negotiates
/// permessage-deflate when `compression` is given, and builds the connection and the `101`.
///
/// On failure, returns the error with the HTTP error response to send (400, or 426 when the
/// request is not an upgrade at all). Every server driver goes through here.
pub fn accept_upgrade(
    req: &Request,
    supported_protocols: &[String],
    #[cfg(feature = "deflate")] compression: Option<&super::deflate::DeflateConfig>,
    extra_headers: &[String],
    config: super::protocol::Config,
) -> Result<Upgrade, (Error, Vec<u8>)> {
    let protocol = server_check(req, supported_protocols).map_err(|e| {
        let (status, reason) = if req.is_upgrade() {
            (400, "Bad Request")
        } else {
            (426, "Upgrade Required")
        };
        let resp = error_response(status, reason, &e.to_string());
        (e, resp)
    })?;
    #[allow(unused_mut)]
    let mut conn = super::protocol::Connection::new(super::protocol::Role::Server, config);
    #[allow(unused_mut)]
    let mut extensions = None;
    #[cfg(feature = "deflate")]
    if let Some(c) = compression {
        if let Some((params, header)) =
            c.server_negotiate(req.headers_named("sec-websocket-extensions"))
        {
            conn.set_deflate(Some(super::deflate::PerMessageDeflate::new(
                params,
                true,
                c.level,
                c.min_compress_size,
            )));
            extensions = Some(header);
        }
    }
    let response = server_response(
        req.header("sec-websocket-key").unwrap_or_default(),
        &ServerAccept {
            protocol: protocol.clone(),
            extensions,
        },
        extra_headers,
    );
    Ok(Upgrade {
        conn,
        protocol,
        response,
    })
}

/// The `101 Switching Protocols` response.
pub fn server_response(key: &str, accept: &ServerAccept, extra_headers: &[String]) -> Vec<u8> {
    let mut s = String::with_capacity(256);
    s.push_str("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
    s.push_str(&accept_key(key));
    s.push_str("\r\n");
    if let Some(p) = &accept.protocol {
        s.push_str("Sec-WebSocket-Protocol: ");
        s.push_str(p);
        s.push_str("\r\n");
    }
    if let Some(e) = &accept.extensions {
        s.push_str("Sec-WebSocket-Extensions: ");
        s.push_str(e);
        s.push_str("\r\n");
    }
    push_extra(&mut s, extra_headers);
    s.push_str("\r\n");
    s.into_bytes()
}

/// A plain HTTP error response with a short text body, for requests the server refuses.
pub fn error_response(status: u16, reason: &str, body: &str) -> Vec<u8> {
    let mut s = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status == 426 {
        s.push_str("Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n");
    }
    s.push_str("\r\n");
    s.push_str(body);
    s.into_bytes()
}

fn push_extra(s: &mut String, extra_headers: &[String]) {
    for h in extra_headers {
        // A header line must not smuggle a line break.
        let line: String = h.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        if !line.is_empty() {
            s.push_str(&line);
            s.push_str("\r\n");
        }
    }
}

/// The client's side of the handshake: the request it sent and what the response must match.
#[derive(Clone, Debug)]
pub struct ClientHandshake {
    key: String,
    protocols: Vec<String>,
}

/// A parsed, accepted `101` response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAccepted {
    /// The protocol the server selected, if any.
    pub protocol: Option<String>,
    /// The server's `Sec-WebSocket-Extensions` value, if any.
    pub extensions: Option<String>,
    /// Every response header.
    pub headers: Vec<(String, String)>,
}

impl ClientHandshake {
    /// Builds the request for `host_header` (`host[:port]`) and `path`, returning the handshake
    /// state and the bytes to send.
    pub fn new(
        host_header: &str,
        path: &str,
        protocols: &[String],
        extensions: Option<&str>,
        extra_headers: &[String],
    ) -> (ClientHandshake, Vec<u8>) {
        let key = generate_key();
        let mut s = String::with_capacity(256);
        s.push_str("GET ");
        s.push_str(if path.is_empty() { "/" } else { path });
        s.push_str(" HTTP/1.1\r\nHost: ");
        s.push_str(host_header);
        s.push_str("\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ");
        s.push_str(&key);
        s.push_str("\r\nSec-WebSocket-Version: 13\r\n");
        if !protocols.is_empty() {
            s.push_str("Sec-WebSocket-Protocol: ");
            s.push_str(&protocols.join(", "));
            s.push_str("\r\n");
        }
        if let Some(e) = extensions {
            s.push_str("Sec-WebSocket-Extensions: ");
            s.push_str(e);
            s.push_str("\r\n");
        }
        push_extra(&mut s, extra_headers);
        s.push_str("\r\n");
        (
            ClientHandshake {
                key,
                protocols: protocols.to_vec(),
            },
            s.into_bytes(),
        )
    }

    /// Parses and checks the server's response at the start of `buf`.
    ///
    /// `Ok(None)`: incomplete. `Ok(Some((accepted, n)))`: the response took `n` bytes; anything
    /// after it is WebSocket data.
    pub fn parse_response(
        &self,
        buf: &[u8],
        limit: usize,
    ) -> Result<Option<(ClientAccepted, usize)>, Error> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let n = match resp.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                too_big(buf, limit)?;
                return Ok(None);
            }
            Err(e) => return Err(Error::Handshake(format!("malformed HTTP response: {e}"))),
        };
        if n > limit {
            return Err(Error::Handshake(format!(
                "HTTP header block larger than {limit} bytes"
            )));
        }
        if resp.version != Some(1) || resp.code != Some(101) {
            return Err(Error::Handshake(format!(
                "the server answered {} {} instead of 101",
                resp.code.unwrap_or(0),
                resp.reason.unwrap_or("")
            )));
        }
        let headers = collect_headers(resp.headers)?;
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        if !get("upgrade").is_some_and(|v| has_token(v, "websocket")) {
            return Err(Error::Handshake("missing 'Upgrade: websocket'".into()));
        }
        if !get("connection").is_some_and(|v| has_token(v, "upgrade")) {
            return Err(Error::Handshake("missing 'Connection: Upgrade'".into()));
        }
        if get("sec-websocket-accept").map(str::trim) != Some(accept_key(&self.key).as_str()) {
            return Err(Error::Handshake("wrong Sec-WebSocket-Accept".into()));
        }
        let protocol = get("sec-websocket-protocol").map(|p| p.trim().to_string());
        match &protocol {
            Some(p) if !self.protocols.iter().any(|o| o == p) => {
                return Err(Error::Handshake(format!(
                    "the server selected sub-protocol '{p}', which was not offered"
                )))
            }
            None if !self.protocols.is_empty() => {
                return Err(Error::Handshake(
                    "the server selected none of the offered sub-protocols".into(),
                ))
            }
            _ => {}
        }
        let mut ext = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions"))
            .map(|(_, v)| v.as_str());
        let extensions = match (ext.next(), ext.next()) {
            (Some(a), None) => Some(a.to_string()),
            (None, _) => None,
            (Some(a), Some(b)) => Some(format!("{a}, {b}")),
        };
        Ok(Some((
            ClientAccepted {
                protocol,
                extensions,
                headers,
            },
            n,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_sample_key_gives_sample_accept() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    fn upgrade(extra: &str) -> Vec<u8> {
        format!("GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").into_bytes()
    }

    #[test]
    fn server_accepts_a_valid_upgrade_and_picks_the_first_offered_supported_protocol() {
        let buf = upgrade("Sec-WebSocket-Protocol: x, chat, superchat\r\n");
        let (req, n) = parse_request(&buf, 8192).unwrap().unwrap();
        assert_eq!(n, buf.len());
        assert_eq!(req.path, "/chat");
        let p = server_check(&req, &["superchat".into(), "chat".into()]).unwrap();
        assert_eq!(p.as_deref(), Some("chat"));
    }

    #[test]
    fn server_rejects_when_no_protocol_matches_or_none_offered() {
        let (req, _) = parse_request(&upgrade("Sec-WebSocket-Protocol: x\r\n"), 8192)
            .unwrap()
            .unwrap();
        assert!(server_check(&req, &["chat".into()]).is_err());
        let (req, _) = parse_request(&upgrade(""), 8192).unwrap().unwrap();
        assert!(server_check(&req, &["chat".into()]).is_err());
        assert_eq!(server_check(&req, &[]).unwrap(), None);
    }

    #[test]
    fn server_rejects_missing_or_wrong_fields() {
        for bad in [
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        ] {
            let (req, _) = parse_request(bad.as_bytes(), 8192).unwrap().unwrap();
            assert!(server_check(&req, &[]).is_err(), "{bad}");
        }
    }

    #[test]
    fn oversized_or_malformed_requests_are_errors() {
        let mut big = b"GET / HTTP/1.1\r\n".to_vec();
        while big.len() < 9000 {
            big.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert!(parse_request(&big, 8192).is_err());
        assert!(parse_request(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 8192).is_err());
        assert!(parse_request(b"\x00\x01\x02garbage\r\n\r\n", 8192).is_err());
        assert!(parse_request(b"GET / HTTP/1.1\r\nHost: a\r\n", 8192)
            .unwrap()
            .is_none());
    }

    #[test]
    fn client_and_server_agree() {
        let (hs, req) = ClientHandshake::new(
            "example.com:8080",
            "/game",
            &["a".into(), "b".into()],
            None,
            &["X-Token: 1".into()],
        );
        let (r, _) = parse_request(&req, 8192).unwrap().unwrap();
        assert_eq!(r.header("x-token"), Some("1"));
        assert_eq!(r.header("host"), Some("example.com:8080"));
        let proto = server_check(&r, &["b".into()]).unwrap();
        let resp = server_response(
            r.header("sec-websocket-key").unwrap(),
            &ServerAccept {
                protocol: proto,
                extensions: None,
            },
            &[],
        );
        let mut with_data = resp.clone();
        with_data.extend_from_slice(&[0x81, 0x00]);
        let (acc, n) = hs.parse_response(&with_data, 8192).unwrap().unwrap();
        assert_eq!(n, resp.len());
        assert_eq!(acc.protocol.as_deref(), Some("b"));
    }

    #[test]
    fn client_rejects_wrong_accept_status_or_unoffered_protocol() {
        let (hs, _) = ClientHandshake::new("a", "/", &[], None, &[]);
        let bad_accept = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAA\r\n\r\n";
        assert!(hs.parse_response(bad_accept, 8192).is_err());
        assert!(hs.parse_response(b"HTTP/1.1 200 OK\r\n\r\n", 8192).is_err());
        let good = server_response(
            &hs.key,
            &ServerAccept {
                protocol: Some("zzz".into()),
                extensions: None,
            },
            &[],
        );
        assert!(hs.parse_response(&good, 8192).is_err());
    }

    #[test]
    fn extra_headers_cannot_inject_lines() {
        let (_, req) = ClientHandshake::new("a", "/", &[], None, &["X-A: 1\r\nX-B: 2".into()]);
        let (r, _) = parse_request(&req, 8192).unwrap().unwrap();
        assert_eq!(r.header("x-a"), Some("1X-B: 2"));
        assert_eq!(r.header("x-b"), None);
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic_the_parsers(data in proptest::collection::vec(any::<u8>(), 0..3000)) {
                let _ = parse_request(&data, 1024);
                let (hs, _) = ClientHandshake::new("a", "/", &["p".into()], None, &[]);
                let _ = hs.parse_response(&data, 1024);
            }

            #[test]
            fn mutated_requests_never_panic_and_never_pass_without_a_key(
                idx in 0usize..200, byte in any::<u8>(), cut in 0usize..250,
            ) {
                let mut req = b"GET /x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".to_vec();
                let i = idx % req.len();
                req[i] = byte;
                req.truncate(cut.max(1).min(req.len()));
                if let Ok(Some((r, _))) = parse_request(&req, 8192) {
                    if server_check(&r, &[]).is_ok() {
                        prop_assert!(r.header("sec-websocket-key").is_some());
                    }
                }
            }
        }
    }
}
