//! The load generator: one client implementation for every server, so the comparison is fair.
//!
//! Throughput: `bench-load --url ws://127.0.0.1:PORT/ --conns N --size S --inflight K
//!   --seconds T [--warmup W] [--server-pid PID]`
//! Each connection does the HTTP upgrade by hand, checks one echo byte for byte, then keeps K
//! pre-built masked binary frames of S payload bytes outstanding: every echo frame parsed frees
//! a slot and the next frame goes out. `tcp://127.0.0.1:PORT` (the raw echo server) skips the
//! upgrade and counts echoed bytes instead: one round trip per frame length.
//! Prints one line: `RESULT msgs_per_sec=… mib_per_sec=… server_cpu=… server_wait=… client_cpu=…
//! client_wait=…`: the share of the measured window each process spent on a CPU and waiting for
//! one (run-queue delay: other load on its core), from `/proc/PID/schedstat`.
//!
//! Idle memory: `bench-load --url ws://127.0.0.1:PORT/ --idle N --server-pid PID`
//! Opens N connections (upgrade done), lets them idle and reads the server's VmRSS, then sends
//! one 32-byte message on each, waits for every echo and reads it again.
//! Prints `IDLE conns=N rss_before_kib=… rss_open_kib=… rss_after_msg_kib=…`.
//!
//! Single-threaded tokio runtime; it only ever connects to the address in `--url`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netplay_bench::{raise_nofile_limit, rss_kib, sched_seconds, ws_upgrade};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Round trips completed, all connections together.
static DONE: AtomicU64 = AtomicU64::new(0);
/// Connections set up (upgraded and checked).
static READY: AtomicU64 = AtomicU64::new(0);

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

struct Args {
    addr: SocketAddr,
    host: String,
    path: String,
    ws: bool,
    conns: usize,
    size: usize,
    inflight: usize,
    seconds: f64,
    warmup: f64,
    idle: Option<usize>,
    server_pid: Option<u32>,
}

fn usage() -> ! {
    eprintln!(
        "usage: bench-load --url ws://127.0.0.1:PORT/|tcp://127.0.0.1:PORT --conns N --size S \
         --inflight K --seconds T [--warmup W] [--server-pid PID]\n       \
         bench-load --url ws://127.0.0.1:PORT/ --idle N --server-pid PID"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        host: String::new(),
        path: "/".into(),
        ws: true,
        conns: 1,
        size: 32,
        inflight: 1,
        seconds: 5.0,
        warmup: 1.0,
        idle: None,
        server_pid: None,
    };
    let mut url = None;
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| usage());
        let num = |v: &str| v.parse::<f64>().unwrap_or_else(|_| usage());
        match k.as_str() {
            "--url" => url = Some(v),
            "--conns" => a.conns = num(&v) as usize,
            "--size" => a.size = num(&v) as usize,
            "--inflight" => a.inflight = num(&v) as usize,
            "--seconds" => a.seconds = num(&v),
            "--warmup" => a.warmup = num(&v),
            "--idle" => a.idle = Some(num(&v) as usize),
            "--server-pid" => a.server_pid = Some(num(&v) as u32),
            _ => usage(),
        }
    }
    let url = url.unwrap_or_else(|| usage());
    let rest = if let Some(r) = url.strip_prefix("ws://") {
        r
    } else if let Some(r) = url.strip_prefix("tcp://") {
        a.ws = false;
        r
    } else {
        usage()
    };
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    a.addr = hostport.parse().unwrap_or_else(|_| usage());
    if !a.addr.ip().is_loopback() {
        eprintln!("bench-load only connects to loopback addresses");
        std::process::exit(2);
    }
    a.host = hostport.to_string();
    a.path = path.to_string();
    if a.conns == 0 || a.inflight == 0 {
        usage()
    }
    a
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("bench-load: {msg}");
    std::process::exit(1)
}

/// Deterministic payload bytes.
fn payload(size: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A client frame: FIN, binary, masked with `MASK`.
fn masked_frame(data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(data.len() + 14);
    f.push(0x82);
    let n = data.len();
    if n < 126 {
        f.push(0x80 | n as u8);
    } else if n < 65536 {
        f.push(0x80 | 126);
        f.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(n as u64).to_be_bytes());
    }
    f.extend_from_slice(&MASK);
    f.extend(data.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    f
}

/// Streaming parser of the server's (unmasked) frames; counts complete data messages.
struct Parser {
    size: u64,
    hdr: [u8; 14],
    hlen: usize,
    /// Payload bytes left in the current frame.
    remaining: u64,
    in_frame: bool,
    fin: bool,
    opcode: u8,
    msg_len: u64,
}

impl Parser {
    fn new(size: usize) -> Parser {
        Parser {
            size: size as u64,
            hdr: [0; 14],
            hlen: 0,
            remaining: 0,
            in_frame: false,
            fin: false,
            opcode: 0,
            msg_len: 0,
        }
    }

    fn header_len(h: &[u8]) -> Option<usize> {
        if h.len() < 2 {
            return None;
        }
        if h[1] & 0x80 != 0 {
            fail("the server sent a masked frame");
        }
        Some(match h[1] & 0x7f {
            126 => 4,
            127 => 10,
            _ => 2,
        })
    }

    /// Feeds bytes; returns the number of complete messages in them.
    fn feed(&mut self, mut buf: &[u8]) -> u64 {
        let mut done = 0;
        while !buf.is_empty() {
            if self.in_frame {
                let take = self.remaining.min(buf.len() as u64);
                buf = &buf[take as usize..];
                self.remaining -= take;
                self.msg_len += take;
                if self.remaining == 0 {
                    done += self.end_frame();
                }
                continue;
            }
            // Header: gather it in `hdr` (usually in one go).
            let want = Self::header_len(&self.hdr[..self.hlen]).unwrap_or(2);
            let take = (want - self.hlen).min(buf.len());
            self.hdr[self.hlen..self.hlen + take].copy_from_slice(&buf[..take]);
            self.hlen += take;
            buf = &buf[take..];
            let Some(need) = Self::header_len(&self.hdr[..self.hlen]) else {
                continue;
            };
            if self.hlen < need {
                continue;
            }
            let h = &self.hdr;
            self.fin = h[0] & 0x80 != 0;
            self.opcode = h[0] & 0x0f;
            if h[0] & 0x70 != 0 {
                fail("the server set RSV bits (compression is off)");
            }
            self.remaining = match need {
                2 => (h[1] & 0x7f) as u64,
                4 => u16::from_be_bytes([h[2], h[3]]) as u64,
                _ => u64::from_be_bytes(h[2..10].try_into().unwrap()),
            };
            self.hlen = 0;
            self.in_frame = true;
            if self.remaining == 0 {
                done += self.end_frame();
            }
        }
        done
    }

    fn end_frame(&mut self) -> u64 {
        self.in_frame = false;
        match self.opcode {
            0x0..=0x2 => {
                if !self.fin {
                    return 0;
                }
                let len = std::mem::take(&mut self.msg_len);
                if len != self.size {
                    fail(format!("echo of {len} bytes, expected {}", self.size));
                }
                1
            }
            0x8 => fail("the server closed the connection"),
            _ => {
                // Ping or pong: not part of a message.
                self.msg_len = 0;
                0
            }
        }
    }
}

async fn connect(addr: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap_or_else(|e| fail(e));
    let tcp = match sock.connect(addr).await {
        Ok(t) => t,
        Err(e) => fail(format!("connect {addr}: {e}")),
    };
    let _ = tcp.set_nodelay(true);
    tcp
}

/// Sends one frame and checks that the echo carries the same payload.
async fn check_echo(tcp: &mut TcpStream, ws: bool, frame: &[u8], data: &[u8], mut got: Vec<u8>) {
    tcp.write_all(frame).await.unwrap_or_else(|e| fail(e));
    let mut expect = Vec::new();
    if ws {
        expect.push(0x82);
        let n = data.len();
        if n < 126 {
            expect.push(n as u8);
        } else if n < 65536 {
            expect.push(126);
            expect.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            expect.push(127);
            expect.extend_from_slice(&(n as u64).to_be_bytes());
        }
        expect.extend_from_slice(data);
    } else {
        expect.extend_from_slice(frame);
    }
    let mut chunk = vec![0u8; 64 * 1024];
    while got.len() < expect.len() {
        let n = tcp.read(&mut chunk).await.unwrap_or_else(|e| fail(e));
        if n == 0 {
            fail("the server closed the connection");
        }
        got.extend_from_slice(&chunk[..n]);
    }
    if got != expect {
        fail("the echo differs from the message sent (a fragmented echo is not expected here)");
    }
}

/// One loaded connection: keeps `inflight` frames outstanding until the process exits.
async fn load_conn(args: Arc<Args>, frame: Arc<Vec<u8>>, batch: Arc<Vec<u8>>, data: Arc<Vec<u8>>) {
    let mut tcp = connect(args.addr).await;
    let rest = if args.ws {
        ws_upgrade(&mut tcp, &args.host, &args.path)
            .await
            .unwrap_or_else(|e| fail(e))
    } else {
        Vec::new()
    };
    check_echo(&mut tcp, args.ws, &frame, &data, rest).await;
    READY.fetch_add(1, Ordering::Relaxed);

    let flen = frame.len() as u64;
    let mut parser = Parser::new(args.size);
    let mut raw_bytes: u64 = 0;
    // Frames that may go out (the one partly written included) and bytes of it already written.
    let mut credits = args.inflight as u64;
    let mut partial: u64 = 0;
    let mut rbuf = vec![0u8; 256 * 1024];
    // Reads go through `AsyncRead` (tokio skips the extra read that would only return EAGAIN
    // after a short read); writes are non-blocking and never wait while echoes come back.
    let (mut rd, wr) = tcp.split();
    let wr = wr.as_ref();
    loop {
        let mut blocked = false;
        while credits > 0 {
            // `batch` is whole frames back to back; write from where the current frame stands.
            let want = (credits * flen - partial) as usize;
            let start = partial as usize;
            let end = batch.len().min(start + want);
            match wr.try_write(&batch[start..end]) {
                Ok(n) => {
                    let pos = partial + n as u64;
                    credits -= pos / flen;
                    partial = pos % flen;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    blocked = true;
                    break;
                }
                Err(e) => fail(e),
            }
        }
        let n = if blocked {
            tokio::select! {
                r = rd.read(&mut rbuf) => r.unwrap_or_else(|e| fail(e)),
                w = wr.writable() => {
                    w.unwrap_or_else(|e| fail(e));
                    continue;
                }
            }
        } else {
            rd.read(&mut rbuf).await.unwrap_or_else(|e| fail(e))
        };
        if n == 0 {
            fail("the server closed the connection");
        }
        let done = if args.ws {
            parser.feed(&rbuf[..n])
        } else {
            let before = raw_bytes / flen;
            raw_bytes += n as u64;
            raw_bytes / flen - before
        };
        if done > 0 {
            DONE.fetch_add(done, Ordering::Relaxed);
            credits += done;
        }
    }
}

async fn throughput(args: Args) {
    let args = Arc::new(args);
    let data = payload(args.size);
    // The raw server echoes bytes: it gets the same bytes a WebSocket server would.
    let frame = masked_frame(&data);
    // Enough copies to cover the window, up to about 256 KiB per write.
    let copies = args.inflight.min((256 * 1024 / frame.len()).max(1));
    let batch: Vec<u8> = frame
        .iter()
        .copied()
        .cycle()
        .take(frame.len() * copies)
        .collect();
    let (frame, batch, data) = (Arc::new(frame), Arc::new(batch), Arc::new(data));
    for _ in 0..args.conns {
        tokio::spawn(load_conn(
            args.clone(),
            frame.clone(),
            batch.clone(),
            data.clone(),
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while READY.load(Ordering::Relaxed) < args.conns as u64 {
        if Instant::now() > deadline {
            fail("connections not set up within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let me = std::process::id();
    let server0 = args.server_pid.and_then(sched_seconds);
    let client0 = sched_seconds(me);
    let n0 = DONE.load(Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    let n1 = DONE.load(Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    let client1 = sched_seconds(me);
    let server1 = args.server_pid.and_then(sched_seconds);
    let msgs = n1 - n0;
    let rate = msgs as f64 / secs;
    // Fractions of the window on a CPU, and waiting for one (other load on the same core).
    let share = |a: Option<(f64, f64)>, b: Option<(f64, f64)>| match (a, b) {
        (Some(a), Some(b)) => (
            format!("{:.2}", (b.0 - a.0) / secs),
            format!("{:.2}", (b.1 - a.1) / secs),
        ),
        _ => ("-".into(), "-".into()),
    };
    let (server_cpu, server_wait) = share(server0, server1);
    let (client_cpu, client_wait) = share(client0, client1);
    println!(
        "RESULT msgs_per_sec={rate:.0} msgs={msgs} secs={secs:.3} mib_per_sec={:.1} \
         server_cpu={server_cpu} server_wait={server_wait} client_cpu={client_cpu} \
         client_wait={client_wait}",
        rate * args.size as f64 / (1024.0 * 1024.0),
    );
}

/// Reads the server's RSS once it stops changing (at most `limit`).
async fn settled_rss(pid: u32, limit: Duration) -> u64 {
    let end = Instant::now() + limit;
    let mut last = rss_kib(pid).unwrap_or_else(|| fail("cannot read the server's VmRSS"));
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = rss_kib(pid).unwrap_or_else(|| fail("cannot read the server's VmRSS"));
        if now == last || Instant::now() > end {
            return now;
        }
        last = now;
    }
}

async fn idle(args: Args, count: usize) {
    let Some(pid) = args.server_pid else { usage() };
    let args = Arc::new(args);
    let before = settled_rss(pid, Duration::from_secs(2)).await;
    // Open them in waves so the listen backlog never overflows.
    let wave = 250;
    let mut conns: Vec<(TcpStream, Vec<u8>)> = Vec::with_capacity(count);
    let started = Instant::now();
    while conns.len() < count {
        if started.elapsed() > Duration::from_secs(120) {
            fail("could not open the connections within 120 s");
        }
        let n = wave.min(count - conns.len());
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let args = args.clone();
                tokio::spawn(async move {
                    let mut tcp = connect(args.addr).await;
                    let rest = ws_upgrade(&mut tcp, &args.host, &args.path)
                        .await
                        .unwrap_or_else(|e| fail(e));
                    (tcp, rest)
                })
            })
            .collect();
        for t in tasks {
            conns.push(t.await.unwrap_or_else(|e| fail(e)));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let open = settled_rss(pid, Duration::from_secs(5)).await;

    // One 32-byte message on each, then idle again.
    let data = Arc::new(payload(32));
    let frame = Arc::new(masked_frame(&data));
    let mut kept = Vec::with_capacity(count);
    while !conns.is_empty() {
        let n = wave.min(conns.len());
        let tasks: Vec<_> = conns
            .drain(..n)
            .map(|(mut tcp, rest)| {
                let (frame, data) = (frame.clone(), data.clone());
                tokio::spawn(async move {
                    check_echo(&mut tcp, true, &frame, &data, rest).await;
                    tcp
                })
            })
            .collect();
        for t in tasks {
            kept.push(t.await.unwrap_or_else(|e| fail(e)));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = settled_rss(pid, Duration::from_secs(5)).await;
    println!(
        "IDLE conns={count} rss_before_kib={before} rss_open_kib={open} rss_after_msg_kib={after} \
         open_bytes_per_conn={:.0} after_msg_bytes_per_conn={:.0}",
        (open.saturating_sub(before)) as f64 * 1024.0 / count as f64,
        (after.saturating_sub(before)) as f64 * 1024.0 / count as f64,
    );
    drop(kept);
}

fn main() {
    let args = parse_args();
    raise_nofile_limit();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        match args.idle {
            Some(n) => idle(args, n).await,
            None => throughput(args).await,
        }
    });
    // Ends every connection at once; the servers see EOF or a reset.
    std::process::exit(0);
}
