//! A small Redis client, just enough for the signaling cluster: RESP2 encoding and a bounded
//! reply decoder (sans-IO, tested without a server), a pipelined command connection and a
//! pub/sub subscriber connection on tokio.
//!
//! It does not own cluster logic (that is [`crate::cluster`]), connection pools, RESP3, Redis
//! Cluster or Sentinel. Every reply is bounded in size and depth: a server that sends more is
//! treated as a broken connection, not trusted.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// Longest bulk string accepted in a reply (1 MiB: signaling messages are at most 64 KiB).
const MAX_BULK: usize = 1 << 20;
/// Most elements of one reply array.
const MAX_ARRAY: usize = 1 << 16;
/// Deepest nesting of reply arrays.
const MAX_DEPTH: usize = 4;
/// Most commands waiting for a reply on one connection.
const MAX_IN_FLIGHT: usize = 1 << 16;
/// Time to connect and authenticate.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors of the Redis client.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The URL is not `redis://[[user]:password@]host[:port][/db]`.
    #[error("invalid Redis URL: {0}")]
    Url(String),
    /// Connecting, reading or writing failed.
    #[error("Redis I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent something that is not RESP2 or is over a limit.
    #[error("Redis protocol: {0}")]
    Protocol(&'static str),
    /// The server answered with an error reply.
    #[error("Redis error reply: {0}")]
    Server(String),
    /// The connection is gone (its task ended).
    #[error("Redis connection closed")]
    Closed,
    /// Connecting or authenticating took too long.
    #[error("Redis connection timed out")]
    Timeout,
}

/// A RESP2 reply.
#[derive(Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Simple(String),
    /// `-ERR ...`.
    Error(String),
    /// `:42`.
    Int(i64),
    /// `$3\r\nabc` or the nil bulk string (`None`).
    Bulk(Option<Vec<u8>>),
    /// `*2\r\n...` or the nil array (`None`).
    Array(Option<Vec<Reply>>),
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Simple(s) => write!(f, "+{s}"),
            Reply::Error(s) => write!(f, "-{s}"),
            Reply::Int(n) => write!(f, ":{n}"),
            Reply::Bulk(None) => f.write_str("$nil"),
            Reply::Bulk(Some(b)) => write!(f, "${:?}", String::from_utf8_lossy(b)),
            Reply::Array(None) => f.write_str("*nil"),
            Reply::Array(Some(a)) => f.debug_list().entries(a).finish(),
        }
    }
}

/// Appends one command (an array of bulk strings) to `out`.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Decodes one reply from the start of `buf`: `Ok(None)` when more bytes are needed, otherwise
/// the reply and how many bytes it took.
pub fn decode_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, RedisError> {
    let mut pos = 0;
    match decode_at(buf, &mut pos, 0)? {
        Some(r) => Ok(Some((r, pos))),
        None => Ok(None),
    }
}

/// The line at `*pos` without its CRLF; advances past it.
fn line<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Option<&'a [u8]>, RedisError> {
    let rest = &buf[*pos..];
    // A header line is short; a long one without CRLF is garbage, not a slow server.
    let window = &rest[..rest.len().min(64 * 1024 + 2)];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(i) => {
            *pos += i + 2;
            Ok(Some(&rest[..i]))
        }
        None if window.len() > 64 * 1024 => Err(RedisError::Protocol("line too long")),
        None => Ok(None),
    }
}

fn int(bytes: &[u8]) -> Result<i64, RedisError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(RedisError::Protocol("invalid integer"))
}

fn decode_at(buf: &[u8], pos: &mut usize, depth: usize) -> Result<Option<Reply>, RedisError> {
    let Some(&kind) = buf.get(*pos) else {
        return Ok(None);
    };
    *pos += 1;
    let Some(head) = line(buf, pos)? else {
        return Ok(None);
    };
    let text = || String::from_utf8_lossy(head).into_owned();
    Ok(Some(match kind {
        b'+' => Reply::Simple(text()),
        b'-' => Reply::Error(text()),
        b':' => Reply::Int(int(head)?),
        b'$' => {
            let n = int(head)?;
            if n < 0 {
                Reply::Bulk(None)
            } else {
                let n = n as usize;
                if n > MAX_BULK {
                    return Err(RedisError::Protocol("bulk string over the limit"));
                }
                if buf.len() < *pos + n + 2 {
                    return Ok(None);
                }
                if &buf[*pos + n..*pos + n + 2] != b"\r\n" {
                    return Err(RedisError::Protocol("bulk string without CRLF"));
                }
                let data = buf[*pos..*pos + n].to_vec();
                *pos += n + 2;
                Reply::Bulk(Some(data))
            }
        }
        b'*' => {
            let n = int(head)?;
            if n < 0 {
                Reply::Array(None)
            } else {
                if n as usize > MAX_ARRAY {
                    return Err(RedisError::Protocol("array over the limit"));
                }
                if depth >= MAX_DEPTH {
                    return Err(RedisError::Protocol("arrays nested too deep"));
                }
                let mut items = Vec::with_capacity((n as usize).min(64));
                for _ in 0..n {
                    match decode_at(buf, pos, depth + 1)? {
                        Some(r) => items.push(r),
                        None => return Ok(None),
                    }
                }
                Reply::Array(Some(items))
            }
        }
        _ => return Err(RedisError::Protocol("unknown reply type")),
    }))
}

/// Where a Redis server is and how to log in.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// Host name or IP address.
    pub host: String,
    /// TCP port (default 6379).
    pub port: u16,
    /// ACL user name, if any.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<String>,
    /// Database number (default 0).
    pub db: u32,
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the password.
        write!(f, "redis://{}:{}/{}", self.host, self.port, self.db)
    }
}

impl std::str::FromStr for RedisUrl {
    type Err = RedisError;

    fn from_str(url: &str) -> Result<RedisUrl, RedisError> {
        let bad = |why: &str| RedisError::Url(why.to_string());
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| bad("must start with redis:// (rediss:// is not supported)"))?;
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (Some(a), r),
            None => (None, rest),
        };
        let (hostport, db) = match rest.split_once('/') {
            Some((h, "")) => (h, 0),
            Some((h, d)) => (h, d.parse().map_err(|_| bad("database is not a number"))?),
            None => (rest, 0),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, p) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            (h, p.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("port is not a number"))?,
            None => 6379,
        };
        let (username, password) = match auth {
            None => (None, None),
            Some(a) => match a.split_once(':') {
                Some((u, p)) => ((!u.is_empty()).then(|| u.to_string()), Some(p.to_string())),
                None => (None, Some(a.to_string())),
            },
        };
        Ok(RedisUrl {
            host: host.to_string(),
            port,
            username,
            password,
            db,
        })
    }
}

/// One TCP connection with its read buffer.
struct Wire {
    tcp: TcpStream,
    buf: Vec<u8>,
    start: usize,
}

impl Wire {
    async fn open(url: &RedisUrl) -> Result<Wire, RedisError> {
        let fut = async {
            let tcp = TcpStream::connect((url.host.as_str(), url.port)).await?;
            tcp.set_nodelay(true)?;
            let mut wire = Wire {
                tcp,
                buf: Vec::with_capacity(4096),
                start: 0,
            };
            let mut hello = Vec::new();
            let mut expect = 0;
            if let Some(pass) = &url.password {
                match &url.username {
                    Some(user) => encode_command(&["AUTH", user, pass], &mut hello),
                    None => encode_command(&["AUTH", pass], &mut hello),
                }
                expect += 1;
            }
            if url.db != 0 {
                encode_command(&["SELECT".to_string(), url.db.to_string()], &mut hello);
                expect += 1;
            }
            wire.tcp.write_all(&hello).await?;
            for _ in 0..expect {
                if let Reply::Error(e) = wire.read().await? {
                    return Err(RedisError::Server(e));
                }
            }
            Ok(wire)
        };
        tokio::time::timeout(CONNECT_TIMEOUT, fut)
            .await
            .map_err(|_| RedisError::Timeout)?
    }

    /// The next reply, reading as needed.
    async fn read(&mut self) -> Result<Reply, RedisError> {
        loop {
            if let Some((reply, used)) = decode_reply(&self.buf[self.start..])? {
                self.start += used;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                }
                return Ok(reply);
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            if self.buf.len() > MAX_BULK + 64 * 1024 {
                return Err(RedisError::Protocol("reply over the limit"));
            }
            let n = self.tcp.read_buf(&mut self.buf).await?;
            if n == 0 {
                return Err(RedisError::Closed);
            }
        }
    }
}

struct Request {
    bytes: Vec<u8>,
    reply: Option<oneshot::Sender<Result<Reply, RedisError>>>,
}

/// A pipelined command connection: commands are written in the order they are given and their
/// replies come back in that order. Cloning gives another handle to the same connection.
#[derive(Clone)]
pub struct Commands {
    tx: mpsc::Sender<Request>,
}

impl Commands {
    /// Connects (with AUTH and SELECT from the URL) and starts the connection's task.
    pub async fn connect(url: &RedisUrl) -> Result<Commands, RedisError> {
        let wire = Wire::open(url).await?;
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(run_commands(wire, rx));
        Ok(Commands { tx })
    }

    /// Runs a command and waits for its reply; an error reply is [`RedisError::Server`].
    pub async fn call<A: AsRef<[u8]>>(&self, args: &[A]) -> Result<Reply, RedisError> {
        let mut bytes = Vec::new();
        encode_command(args, &mut bytes);
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request {
                bytes,
                reply: Some(reply),
            })
            .await
            .map_err(|_| RedisError::Closed)?;
        match rx.await.map_err(|_| RedisError::Closed)?? {
            Reply::Error(e) => Err(RedisError::Server(e)),
            r => Ok(r),
        }
    }

    /// Queues a command whose reply is not needed, without waiting. Fails when the connection
    /// is gone or its queue is full.
    pub fn send<A: AsRef<[u8]>>(&self, args: &[A]) -> Result<(), RedisError> {
        let mut bytes = Vec::new();
        encode_command(args, &mut bytes);
        self.tx
            .try_send(Request { bytes, reply: None })
            .map_err(|_| RedisError::Closed)
    }

    /// Whether the connection's task has ended.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Completes when the connection's task has ended.
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}

async fn run_commands(mut wire: Wire, mut rx: mpsc::Receiver<Request>) {
    let mut waiting: VecDeque<Option<oneshot::Sender<Result<Reply, RedisError>>>> = VecDeque::new();
    let mut out = Vec::new();
    let err = loop {
        tokio::select! {
            req = rx.recv(), if waiting.len() < MAX_IN_FLIGHT => {
                let Some(req) = req else { break RedisError::Closed };
                out.clear();
                out.extend_from_slice(&req.bytes);
                waiting.push_back(req.reply);
                // Batch whatever else is queued into the same write.
                while waiting.len() < MAX_IN_FLIGHT && out.len() < 256 * 1024 {
                    match rx.try_recv() {
                        Ok(more) => {
                            out.extend_from_slice(&more.bytes);
                            waiting.push_back(more.reply);
                        }
                        Err(_) => break,
                    }
                }
                if let Err(e) = wire.tcp.write_all(&out).await {
                    break e.into();
                }
            }
            reply = wire.read(), if !waiting.is_empty() => match reply {
                Ok(r) => {
                    if let Some(Some(tx)) = waiting.pop_front() {
                        let _ = tx.send(Ok(r));
                    }
                }
                Err(e) => break e,
            },
        }
    };
    let _ = err;
    for w in waiting.into_iter().flatten() {
        let _ = w.send(Err(RedisError::Closed));
    }
}

/// A subscription's connection; dropping it closes the connection.
pub struct Subscription {
    ended: oneshot::Receiver<RedisError>,
    task: tokio::task::AbortHandle,
}

impl Subscription {
    /// Completes when the subscription's connection breaks, with the reason.
    pub async fn ended(&mut self) -> RedisError {
        (&mut self.ended).await.unwrap_or(RedisError::Closed)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Subscribes to `channel` on a new connection and forwards every message's payload to `tx`
/// until the connection breaks, `tx` is dropped or the returned [`Subscription`] is dropped.
/// Returns once the server confirmed the subscription.
pub async fn subscribe(
    url: &RedisUrl,
    channel: &str,
    tx: mpsc::Sender<Vec<u8>>,
) -> Result<Subscription, RedisError> {
    let mut wire = Wire::open(url).await?;
    let mut cmd = Vec::new();
    encode_command(&["SUBSCRIBE", channel], &mut cmd);
    wire.tcp.write_all(&cmd).await?;
    let confirm = tokio::time::timeout(CONNECT_TIMEOUT, wire.read())
        .await
        .map_err(|_| RedisError::Timeout)??;
    match confirm {
        Reply::Array(Some(items)) if matches!(items.first(), Some(Reply::Bulk(Some(k))) if k == b"subscribe") =>
            {}
        Reply::Error(e) => return Err(RedisError::Server(e)),
        _ => return Err(RedisError::Protocol("unexpected reply to SUBSCRIBE")),
    }
    let (done_tx, ended) = oneshot::channel();
    let task = tokio::spawn(async move {
        let why = loop {
            let reply = match wire.read().await {
                Ok(r) => r,
                Err(e) => break e,
            };
            let Reply::Array(Some(mut items)) = reply else {
                continue;
            };
            if items.len() == 3 && matches!(&items[0], Reply::Bulk(Some(k)) if k == b"message") {
                if let Some(Reply::Bulk(Some(payload))) = items.pop() {
                    if tx.send(payload).await.is_err() {
                        break RedisError::Closed;
                    }
                }
            }
        };
        let _ = done_tx.send(why);
    })
    .abort_handle();
    Ok(Subscription { ended, task })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode_command(&["SET", "k", ""], &mut out);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }

    #[test]
    fn every_reply_type_decodes() {
        let cases: Vec<(&[u8], Reply)> = vec![
            (b"+OK\r\n", Reply::Simple("OK".into())),
            (b"-ERR no\r\n", Reply::Error("ERR no".into())),
            (b":-12\r\n", Reply::Int(-12)),
            (b"$3\r\nabc\r\n", Reply::Bulk(Some(b"abc".to_vec()))),
            (b"$-1\r\n", Reply::Bulk(None)),
            (b"*-1\r\n", Reply::Array(None)),
            (
                b"*2\r\n$1\r\na\r\n:1\r\n",
                Reply::Array(Some(vec![Reply::Bulk(Some(b"a".to_vec())), Reply::Int(1)])),
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(decode_reply(bytes).unwrap(), Some((want, bytes.len())));
        }
    }

    #[test]
    fn partial_replies_need_more_bytes_at_every_split() {
        let whole = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n";
        for cut in 0..whole.len() {
            assert_eq!(decode_reply(&whole[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert!(decode_reply(whole).unwrap().is_some());
    }

    #[test]
    fn garbage_and_oversized_replies_are_errors() {
        assert!(decode_reply(b"?x\r\n").is_err());
        assert!(decode_reply(b":abc\r\n").is_err());
        assert!(decode_reply(b"$99999999999\r\n").is_err());
        assert!(decode_reply(b"*99999999\r\n").is_err());
        assert!(decode_reply(b"$1\r\nabXX").is_err());
        assert!(decode_reply(b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n").is_err());
        assert!(decode_reply(&[b'+'; 70 * 1024]).is_err());
    }

    #[test]
    fn urls_parse_with_defaults_auth_and_db() {
        let u: RedisUrl = "redis://127.0.0.1".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port, u.db), ("127.0.0.1", 6379, 0));
        let u: RedisUrl = "redis://:secret@localhost:7000/3".parse().unwrap();
        assert_eq!(u.password.as_deref(), Some("secret"));
        assert_eq!(u.username, None);
        assert_eq!((u.port, u.db), (7000, 3));
        let u: RedisUrl = "redis://me:pw@[::1]:7001".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 7001));
        assert_eq!(u.username.as_deref(), Some("me"));
        assert!(!format!("{u:?}").contains("pw"));
        for bad in [
            "http://x",
            "redis://",
            "redis://h:port",
            "redis://h/x",
            "rediss://h",
        ] {
            assert!(bad.parse::<RedisUrl>().is_err(), "{bad}");
        }
    }
}
