//! `ws://` and `wss://` URLs as Godot's `connect_to_url` reads them.

use super::Error;

/// A parsed WebSocket URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsUrl {
    /// `wss://`.
    pub tls: bool,
    /// The host, without brackets for IPv6.
    pub host: String,
    /// The port (80/443 by default).
    pub port: u16,
    /// The path with its query, at least `/`.
    pub path: String,
}

impl WsUrl {
    /// Parses `url`. No scheme means `ws://`; any scheme other than ws/wss is an error.
    pub fn parse(url: &str) -> Result<WsUrl, Error> {
        let bad = |why: &str| Error::InvalidUrl(format!("{url}: {why}"));
        let url = url.trim();
        let (tls, rest) = if let Some(r) = strip_prefix_ci(url, "wss://") {
            (true, r)
        } else if let Some(r) = strip_prefix_ci(url, "ws://") {
            (false, r)
        } else if url.contains("://") {
            return Err(bad("the scheme must be ws:// or wss://"));
        } else {
            (false, url)
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        let path = path.split('#').next().unwrap_or("/").to_string();
        if authority.contains('@') {
            return Err(bad("user info is not supported"));
        }
        let (host, port) = if let Some(r) = authority.strip_prefix('[') {
            let end = r.find(']').ok_or_else(|| bad("unclosed '['"))?;
            let host = &r[..end];
            let after = &r[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(bad("junk after ']'")),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("invalid host"));
        }
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| bad("invalid port"))?,
            None if tls => 443,
            None => 80,
        };
        if port == 0 {
            return Err(bad("port 0"));
        }
        Ok(WsUrl {
            tls,
            host: host.to_string(),
            port,
            path,
        })
    }

    /// The `Host` header value: the port only when it is not the scheme's default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix) {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_godot() {
        let u = WsUrl::parse("example.com").unwrap();
        assert_eq!((u.tls, u.port, u.path.as_str()), (false, 80, "/"));
        let u = WsUrl::parse("wss://example.com").unwrap();
        assert_eq!((u.tls, u.port), (true, 443));
        assert_eq!(u.host_header(), "example.com");
    }

    #[test]
    fn ports_paths_queries_and_ipv6() {
        let u = WsUrl::parse("ws://127.0.0.1:9080/a/b?x=1#frag").unwrap();
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, 9080);
        assert_eq!(u.path, "/a/b?x=1");
        assert_eq!(u.host_header(), "127.0.0.1:9080");
        let u = WsUrl::parse("ws://[::1]:9000?q").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.path, "/?q");
        assert_eq!(u.host_header(), "[::1]:9000");
    }

    #[test]
    fn other_schemes_and_junk_are_invalid() {
        for bad in [
            "http://a",
            "ws://",
            "ws://a:99999",
            "ws://a:x",
            "ws://[::1",
            "ws://u@h",
            "ws://a b",
        ] {
            assert!(WsUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
