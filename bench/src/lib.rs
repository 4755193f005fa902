//! Helpers shared by `bench-server` and `bench-load`.

/// Raises the soft limit on open files to the hard limit (10,000 idle connections need it).
pub fn raise_nofile_limit() {
    // SAFETY: plain libc calls with a valid, initialised struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The resident set size of process `pid` in KiB (`VmRSS` in `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Time process `pid`'s main thread has spent on a CPU and waiting for one (run queue), in
/// seconds, from `/proc/PID/schedstat` (nanosecond counters; the tick-based `utime`/`stime` are
/// too coarse on some virtual machines). The benchmark's processes are single-threaded.
pub fn sched_seconds(pid: u32) -> Option<(f64, f64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?;
    let mut f = s.split_whitespace();
    let run: u64 = f.next()?.parse().ok()?;
    let wait: u64 = f.next()?.parse().ok()?;
    Some((run as f64 / 1e9, wait as f64 / 1e9))
}

/// The `Sec-WebSocket-Key` the load generators send, and the `Sec-WebSocket-Accept` it must
/// get back (the RFC 6455 example pair).
pub const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// See [`WS_KEY`].
pub const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The client side of the WebSocket opening handshake, by hand (a load generator needs no
/// library for it). Returns the bytes that came after the response head, or why it failed.
pub async fn ws_upgrade(
    tcp: &mut tokio::net::TcpStream,
    host: &str,
    path: &str,
) -> Result<Vec<u8>, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        let n = tcp.read_buf(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the server closed the connection during the handshake".into());
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
            if !head.starts_with("http/1.1 101") || !head.contains(&WS_ACCEPT.to_ascii_lowercase())
            {
                return Err(format!("bad handshake response: {head}"));
            }
            buf.drain(..i + 4);
            return Ok(buf);
        }
        if buf.len() > 16 * 1024 {
            return Err("handshake response too long".into());
        }
        buf.reserve(1024);
    }
}
