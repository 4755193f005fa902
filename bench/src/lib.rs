//! Helpers shared by the benchmark binaries (`bench-server`, `bench-load`, `signal-load`, and the
//! lobby mesh pair `mesh-bench` and `mesh-matchbox`).

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

/// CPU time of the whole process, every thread included (also threads that have ended), in
/// seconds: `CLOCK_PROCESS_CPUTIME_ID`, the scheduler's nanosecond count, not the tick-based
/// `utime`/`stime`.
pub fn process_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a plain libc call with a valid, initialised struct.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// What the lobby mesh benchmarks (`mesh-bench` for netplay, `mesh-matchbox` for
/// matchbox_socket) share: the message format, the counting and the result line, so that both
/// measure the same way.
///
/// A message starts with its kind (`U` for an update, `C` for a chat line) and the time it was
/// sent, as nanoseconds since the run's epoch (8 bytes, little endian); the receiver reads the
/// same clock, as every peer runs in the same process.
pub mod mesh {
    use std::time::{Duration, Instant};

    /// The first byte of an update (unreliable channel).
    pub const UPDATE: u8 = b'U';
    /// The first byte of a chat line (reliable channel).
    pub const CHAT: u8 = b'C';

    /// Counters and latencies of one run.
    pub struct Tally {
        epoch: Instant,
        count_until: Instant,
        latencies_ms: Vec<f64>,
        updates_sent: u64,
        updates_got: u64,
        chats_sent: u64,
        chats_got: u64,
    }

    impl Tally {
        /// A run that starts now and lasts `seconds`. Messages sent in its last 100 ms may still
        /// be in flight at the end: they are counted neither as sent nor as received.
        pub fn start(seconds: f64) -> Tally {
            let epoch = Instant::now();
            let end = epoch + Duration::from_secs_f64(seconds);
            Tally {
                epoch,
                count_until: end - Duration::from_millis(100),
                latencies_ms: Vec::new(),
                updates_sent: 0,
                updates_got: 0,
                chats_sent: 0,
                chats_got: 0,
            }
        }

        /// The start of the run.
        pub fn epoch(&self) -> Instant {
            self.epoch
        }

        /// Writes the kind and the send time `now` at the start of `message` (at least 9 bytes).
        pub fn stamp(&self, message: &mut [u8], kind: u8, now: Instant) {
            message[0] = kind;
            let ns = now.duration_since(self.epoch).as_nanos() as u64;
            message[1..9].copy_from_slice(&ns.to_le_bytes());
        }

        /// A chat line sent at `now`.
        pub fn chat_line(&self, now: Instant) -> Vec<u8> {
            let mut chat = vec![0u8; 9];
            self.stamp(&mut chat, CHAT, now);
            chat.extend_from_slice(b"hello everyone");
            chat
        }

        /// One message of `kind` went out at `now` (to every other peer: a broadcast counts once).
        pub fn sent(&mut self, kind: u8, now: Instant) {
            if now > self.count_until {
                return;
            }
            if kind == UPDATE {
                self.updates_sent += 1;
            } else {
                self.chats_sent += 1;
            }
        }

        /// A message arrived (read by the game loop just now).
        pub fn received(&mut self, message: &[u8]) {
            let Some(stamp) = message.get(1..9) else {
                return;
            };
            let ns = u64::from_le_bytes(stamp.try_into().unwrap_or([0; 8]));
            let sent = self.epoch + Duration::from_nanos(ns);
            if sent > self.count_until {
                return;
            }
            if message[0] == UPDATE {
                self.updates_got += 1;
                let latency = Instant::now().duration_since(sent);
                self.latencies_ms.push(latency.as_secs_f64() * 1e3);
            } else {
                self.chats_got += 1;
            }
        }

        /// Prints the result line: `MESH peers=N seconds=T rate=HZ size=BYTES updates_sent=...
        /// delivery=... p50_ms=... p99_ms=... chat_delivery=... cpu_per_peer=...`, then
        /// `extra` (more `key=value` fields). `cpu_seconds` is the process's CPU time over the
        /// run; `cpu_per_peer` is its share of one core, divided by the number of peers.
        pub fn print(
            &mut self,
            peers: usize,
            seconds: f64,
            rate: f64,
            size: usize,
            cpu_seconds: f64,
            extra: &str,
        ) {
            self.latencies_ms.sort_by(|x, y| x.total_cmp(y));
            let pct = |q: f64| {
                if self.latencies_ms.is_empty() {
                    f64::NAN
                } else {
                    let i = ((self.latencies_ms.len() - 1) as f64 * q).round() as usize;
                    self.latencies_ms[i]
                }
            };
            let others = (peers - 1) as f64;
            println!(
                "MESH peers={} seconds={} rate={} size={} updates_sent={} delivery={:.4} p50_ms={:.3} p99_ms={:.3} chat_delivery={:.4} cpu_per_peer={:.4}{}{}",
                peers,
                seconds,
                rate,
                size,
                self.updates_sent,
                self.updates_got as f64 / (self.updates_sent as f64 * others),
                pct(0.5),
                pct(0.99),
                self.chats_got as f64 / (self.chats_sent as f64 * others),
                cpu_seconds / seconds / peers as f64,
                if extra.is_empty() { "" } else { " " },
                extra
            );
        }
    }
}
