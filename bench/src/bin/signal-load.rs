//! Load generator for the signaling server (`netplay serve`, Godot's `webrtc_signaling`
//! protocol): many clients in lobbies, the server's memory per idle client, and relay latency.
//!
//! `signal-load --url ws://127.0.0.1:PORT/ --server-pid PID [--clients 10000] [--lobby-size 2]
//!   [--rate 10000] [--seconds 10] [--warmup 1] [--idle-seconds 12] [--size 200]
//!   [--sources 4] [--concurrency 64] [--max-seconds 600] [--redis-pid PID]`
//!
//! For a cluster, give `--url` once per node and `--server-pid` as a comma-separated list: the
//! members of lobby `g` go round robin over the nodes starting at node `g mod nodes`, so with
//! lobbies of 2 on 2 nodes every lobby spans both and every OFFER crosses Redis. Memory and CPU
//! are the sums over the nodes; `--redis-pid` adds the Redis server's memory to the report.
//!
//! 1. Reads the server's VmRSS, then sets up `clients / lobby-size` lobbies, `concurrency` of them
//!    at a time: each client connects (from 127.0.0.1, 127.0.0.2, ... up to `sources` source
//!    addresses, round robin by lobby), upgrades, and JOINs: the first member of a lobby creates
//!    it (`{"type":0,"id":0,"data":""}`: a mesh lobby), the others join it by the name the
//!    server sent back. Setup ends when every client has its JOIN reply. Then every client
//!    idles for `idle-seconds` (answering the server's pings) and VmRSS is read again.
//! 2. Sends OFFER messages at a steady total `rate` per second, each from the next client in
//!    turn (so every client sends `rate / clients` per second) to the next member of its lobby
//!    (a ring: host to the second member, ..., last member to the host). The `data` string is
//!    `size` characters and starts with the send time in nanoseconds on this process's clock;
//!    the receiving client subtracts it from its own clock on arrival: the one-way latency
//!    client -> server -> client. Messages go out every millisecond (tokio's timer
//!    resolution), as many as the schedule says are due, so about `rate / 1000` at a time.
//!    `warmup` seconds are sent but not measured, then `seconds` are.
//!
//! Prints one line, `SIGNAL key=value ...`: setup time, VmRSS readings, bytes per idle client,
//! the rate reached, latency percentiles in microseconds, the share of the relay window the
//! server and this process spent on a CPU (and waiting for one), and the server's own counters
//! from `/metrics`.
//!
//! A single-threaded tokio runtime with one reader task per client; the client side of the
//! protocol is written by hand (masked text frames, the HTTP upgrade). Every connection goes to
//! the loopback address in `--url` only; a watchdog ends the process after `max-seconds`.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use netplay_bench::{raise_nofile_limit, rss_kib, sched_seconds, ws_upgrade};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Message types of the protocol used here.
const JOIN: i64 = 0;
const ID: i64 = 1;
const PEER_CONNECT: i64 = 2;
const OFFER: i64 = 4;

/// The clock every timestamp is taken from.
static EPOCH: OnceLock<Instant> = OnceLock::new();

fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// What the reader tasks saw. One thread only: the lock is never contended.
struct Stats {
    /// Send times `[start, end)` of the measured messages; `u64::MAX` while not set.
    window: (u64, u64),
    /// One-way latencies of the measured OFFERs, in nanoseconds.
    latencies: Vec<u64>,
    /// OFFERs received, measured or not.
    offers: u64,
    /// Pings answered.
    pings: u64,
    /// Other text messages received after setup (PEER_CONNECT of later members...).
    other: u64,
}

static STATS: Mutex<Stats> = Mutex::new(Stats {
    window: (u64::MAX, u64::MAX),
    latencies: Vec::new(),
    offers: 0,
    pings: 0,
    other: 0,
});

fn stats() -> std::sync::MutexGuard<'static, Stats> {
    STATS.lock().unwrap_or_else(|e| e.into_inner())
}

/// One server node: where to connect and what to send as `Host` and path.
struct Node {
    addr: SocketAddr,
    host: String,
    path: String,
}

struct Args {
    nodes: Vec<Node>,
    clients: usize,
    lobby_size: usize,
    rate: f64,
    seconds: f64,
    warmup: f64,
    idle_seconds: f64,
    size: usize,
    sources: u8,
    concurrency: usize,
    max_seconds: f64,
    server_pids: Vec<u32>,
    redis_pid: u32,
}

fn usage() -> ! {
    eprintln!(
        "usage: signal-load --url ws://127.0.0.1:PORT/ --server-pid PID [--clients N] \
         [--lobby-size N] [--rate MSGS_PER_SEC] [--seconds T] [--warmup T] [--idle-seconds T] \
         [--size DATA_BYTES] [--sources N] [--concurrency N] [--max-seconds T]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        nodes: Vec::new(),
        clients: 10_000,
        lobby_size: 2,
        rate: 10_000.0,
        seconds: 10.0,
        warmup: 1.0,
        idle_seconds: 12.0,
        size: 200,
        sources: 4,
        concurrency: 64,
        max_seconds: 600.0,
        server_pids: Vec::new(),
        redis_pid: 0,
    };
    let mut urls = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| usage());
        let num = |v: &str| v.parse::<f64>().unwrap_or_else(|_| usage());
        match k.as_str() {
            "--url" => urls.push(v),
            "--clients" => a.clients = num(&v) as usize,
            "--lobby-size" => a.lobby_size = num(&v) as usize,
            "--rate" => a.rate = num(&v),
            "--seconds" => a.seconds = num(&v),
            "--warmup" => a.warmup = num(&v),
            "--idle-seconds" => a.idle_seconds = num(&v),
            "--size" => a.size = num(&v) as usize,
            "--sources" => a.sources = num(&v) as u8,
            "--concurrency" => a.concurrency = num(&v) as usize,
            "--max-seconds" => a.max_seconds = num(&v),
            "--server-pid" => {
                a.server_pids = v.split(',').map(|p| num(p) as u32).collect();
            }
            "--redis-pid" => a.redis_pid = num(&v) as u32,
            _ => usage(),
        }
    }
    for url in urls {
        let rest = url.strip_prefix("ws://").unwrap_or_else(|| usage());
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let addr: SocketAddr = hostport.parse().unwrap_or_else(|_| usage());
        if !addr.ip().is_loopback() || !addr.is_ipv4() {
            eprintln!("signal-load only connects to IPv4 loopback addresses");
            std::process::exit(2);
        }
        a.nodes.push(Node {
            addr,
            host: hostport.to_string(),
            path: path.to_string(),
        });
    }
    if a.nodes.is_empty()
        || a.server_pids.len() != a.nodes.len()
        || a.server_pids.contains(&0)
        || a.lobby_size < 2
        || a.clients == 0
        || !a.clients.is_multiple_of(a.lobby_size)
        || a.rate <= 0.0
        || a.size < 40
        || a.sources == 0
        || a.sources > 250
        || a.concurrency == 0
    {
        eprintln!("signal-load: --url and --server-pid are required, one pid per url; --clients must be a multiple of --lobby-size (at least 2); --size at least 40");
        usage()
    }
    a
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("signal-load: {msg}");
    std::process::exit(1)
}

/// A client frame (FIN set, masked with `MASK`) appended to `out`.
fn masked_frame(out: &mut Vec<u8>, opcode: u8, data: &[u8]) {
    out.push(0x80 | opcode);
    let n = data.len();
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if n < 65536 {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(&MASK);
    out.extend(data.iter().enumerate().map(|(i, b)| b ^ MASK[i & 3]));
}

/// The complete server frame at the start of `b`, if there is one: (first byte, payload start,
/// frame end).
fn frame_at(b: &[u8]) -> Option<(u8, usize, usize)> {
    if b.len() < 2 {
        return None;
    }
    if b[1] & 0x80 != 0 {
        fail("the server sent a masked frame");
    }
    let (head, len) = match b[1] & 0x7f {
        126 => {
            if b.len() < 4 {
                return None;
            }
            (4, u16::from_be_bytes([b[2], b[3]]) as usize)
        }
        127 => {
            if b.len() < 10 {
                return None;
            }
            (
                10,
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
            )
        }
        n => (2, n as usize),
    };
    if b.len() < head + len {
        return None;
    }
    if b[0] & 0x70 != 0 {
        fail("the server set RSV bits");
    }
    if b[0] & 0x80 == 0 || b[0] & 0x0f == 0 {
        fail("the server fragmented a message (not expected for signaling messages)");
    }
    Some((b[0], head, head + len))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The integer after `key` (such as `"type":`) in a JSON text.
fn json_int(p: &[u8], key: &[u8]) -> Option<i64> {
    let i = find(p, key)? + key.len();
    let digits = p[i..]
        .iter()
        .take_while(|c| c.is_ascii_digit() || **c == b'-')
        .count();
    std::str::from_utf8(&p[i..i + digits]).ok()?.parse().ok()
}

/// The `data` string of a signaling message (the server writes it last; the names and payloads
/// used here have no escapes).
fn json_data(p: &[u8]) -> Option<&[u8]> {
    let i = find(p, b"\"data\":\"")? + 8;
    let end = p[i..].iter().position(|&c| c == b'"')?;
    Some(&p[i..i + end])
}

/// What one server frame asks of the client.
enum Incoming<'a> {
    Text { kind: i64, id: i64, data: &'a [u8] },
    Ping(&'a [u8]),
    Pong,
}

fn classify(b0: u8, payload: &[u8]) -> Incoming<'_> {
    match b0 & 0x0f {
        0x1 => {
            let kind = json_int(payload, b"\"type\":")
                .unwrap_or_else(|| fail("a text message without a type"));
            let id = json_int(payload, b"\"id\":").unwrap_or(-1);
            let data = json_data(payload).unwrap_or(b"");
            Incoming::Text { kind, id, data }
        }
        0x9 => Incoming::Ping(payload),
        0xa => Incoming::Pong,
        0x8 => {
            let code = payload
                .get(..2)
                .map_or(0, |c| u16::from_be_bytes([c[0], c[1]]));
            let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or(b""));
            fail(format!("the server closed a connection: {code} {reason}"))
        }
        op => fail(format!("unexpected opcode {op} from the server")),
    }
}

async fn connect(src: Ipv4Addr, addr: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap_or_else(|e| fail(e));
    // Pick the local port at connect time, per destination (not at bind time, per address).
    let one: libc::c_int = 1;
    // SAFETY: a valid descriptor and a pointer to an int of the given size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    sock.bind(SocketAddr::new(IpAddr::V4(src), 0))
        .unwrap_or_else(|e| fail(format!("bind {src}: {e}")));
    let tcp = match sock.connect(addr).await {
        Ok(t) => t,
        Err(e) => fail(format!("connect {addr} from {src}: {e}")),
    };
    let _ = tcp.set_nodelay(true);
    tcp
}

/// Reads until the JOIN reply; returns the id (from ID) and the lobby name. Bytes after the
/// reply stay in `buf`.
async fn read_until_joined(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> (i64, String) {
    let mut my_id = None;
    let mut pong = Vec::new();
    for _ in 0..1000 {
        let mut pos = 0;
        while let Some((b0, start, end)) = frame_at(&buf[pos..]) {
            let payload = &buf[pos + start..pos + end];
            pos += end;
            match classify(b0, payload) {
                Incoming::Text { kind: ID, id, .. } => my_id = Some(id),
                Incoming::Text {
                    kind: PEER_CONNECT, ..
                } => {}
                Incoming::Text {
                    kind: JOIN, data, ..
                } => {
                    let name = String::from_utf8_lossy(data).into_owned();
                    buf.drain(..pos);
                    let id = my_id.unwrap_or_else(|| fail("JOIN reply before ID"));
                    return (id, name);
                }
                Incoming::Text { kind, data, .. } => fail(format!(
                    "unexpected message of type {kind} while joining: {}",
                    String::from_utf8_lossy(data)
                )),
                Incoming::Ping(p) => masked_frame(&mut pong, 0xa, p),
                Incoming::Pong => {}
            }
        }
        buf.drain(..pos);
        if !pong.is_empty() {
            tcp.write_all(&pong).await.unwrap_or_else(|e| fail(e));
            pong.clear();
        }
        buf.reserve(1024);
        let n = tcp.read_buf(buf).await.unwrap_or_else(|e| fail(e));
        if n == 0 {
            fail("the server closed the connection while joining");
        }
    }
    fail("no JOIN reply after 1000 reads")
}

/// A client after setup, as the sender sees it.
struct Member {
    wr: Arc<OwnedWriteHalf>,
    /// The lobby member it sends its OFFERs to.
    dest: i64,
}

/// Connects and joins the members of lobby number `g`, one after the other, then hands each
/// socket's reading to its own task.
async fn setup_lobby(args: &Args, g: usize) -> Vec<Member> {
    let src = Ipv4Addr::new(127, 0, 0, 1 + (g % args.sources as usize) as u8);
    let mut socks = Vec::with_capacity(args.lobby_size);
    let mut name = String::new();
    let mut frame = Vec::with_capacity(128);
    for j in 0..args.lobby_size {
        let node = &args.nodes[(g + j) % args.nodes.len()];
        let mut tcp = connect(src, node.addr).await;
        let mut buf = ws_upgrade(&mut tcp, &node.host, &node.path)
            .await
            .unwrap_or_else(|e| fail(e));
        let join = if j == 0 {
            r#"{"type":0,"id":0,"data":""}"#.to_string()
        } else {
            format!(r#"{{"type":0,"id":0,"data":"{name}"}}"#)
        };
        frame.clear();
        masked_frame(&mut frame, 0x1, join.as_bytes());
        tcp.write_all(&frame).await.unwrap_or_else(|e| fail(e));
        let (id, lobby) = read_until_joined(&mut tcp, &mut buf).await;
        if j == 0 {
            if id != 1 {
                fail(format!("the creator of a lobby got id {id}, not 1"));
            }
            name = lobby;
        } else if lobby != name {
            fail(format!("joined lobby {lobby}, asked for {name}"));
        }
        socks.push((tcp, buf, id));
    }
    let ids: Vec<i64> = socks.iter().map(|s| s.2).collect();
    let n = ids.len();
    socks
        .into_iter()
        .enumerate()
        .map(|(i, (tcp, buf, _))| {
            let (rd, wr) = tcp.into_split();
            let wr = Arc::new(wr);
            tokio::spawn(reader(rd, wr.clone(), buf));
            Member {
                wr,
                dest: ids[(i + 1) % n],
            }
        })
        .collect()
}

/// Reads one client's messages until the process ends: times OFFERs, answers pings.
async fn reader(mut rd: OwnedReadHalf, wr: Arc<OwnedWriteHalf>, mut buf: Vec<u8>) {
    let mut pong = Vec::new();
    // Bounded in time by the watchdog; the server never closes these connections.
    loop {
        let mut pos = 0;
        let now = now_ns();
        while let Some((b0, start, end)) = frame_at(&buf[pos..]) {
            let payload = &buf[pos + start..pos + end];
            pos += end;
            match classify(b0, payload) {
                Incoming::Text {
                    kind: OFFER, data, ..
                } => {
                    let sent = data
                        .strip_prefix(b"t=")
                        .and_then(|d| std::str::from_utf8(&d[..20.min(d.len())]).ok())
                        .and_then(|t| t.parse::<u64>().ok())
                        .unwrap_or_else(|| fail("an OFFER without a timestamp"));
                    let mut s = stats();
                    s.offers += 1;
                    if sent >= s.window.0 && sent < s.window.1 {
                        s.latencies.push(now.saturating_sub(sent));
                    }
                }
                Incoming::Text { .. } => stats().other += 1,
                Incoming::Ping(p) => {
                    masked_frame(&mut pong, 0xa, p);
                    stats().pings += 1;
                }
                Incoming::Pong => {}
            }
        }
        buf.drain(..pos);
        if !pong.is_empty() {
            // Whole frames only: the sender writes from the same thread between our awaits.
            match wr.try_write(&pong) {
                Ok(n) if n == pong.len() => {}
                Ok(_) | Err(_) => fail("could not write a pong at once"),
            }
            pong.clear();
        }
        if buf.capacity() - buf.len() < 512 {
            buf.reserve(2048);
        }
        let n = rd.read_buf(&mut buf).await.unwrap_or_else(|e| fail(e));
        if n == 0 {
            fail("the server closed a connection");
        }
    }
}

/// The summed VmRSS of `pids`, in KiB.
fn rss_sum(pids: &[u32]) -> u64 {
    pids.iter()
        .map(|&p| rss_kib(p).unwrap_or_else(|| fail("cannot read the server's VmRSS")))
        .sum()
}

/// The summed CPU run and wait times of `pids`, in seconds.
fn sched_sum(pids: &[u32]) -> Option<(f64, f64)> {
    pids.iter().try_fold((0.0, 0.0), |acc, &p| {
        let (r, w) = sched_seconds(p)?;
        Some((acc.0 + r, acc.1 + w))
    })
}

/// Reads the servers' summed RSS once it stops changing (at most `limit`).
async fn settled_rss(pids: &[u32], limit: Duration) -> u64 {
    let end = Instant::now() + limit;
    let mut last = rss_sum(pids);
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = rss_sum(pids);
        if now == last || Instant::now() > end {
            return now;
        }
        last = now;
    }
}

/// The nodes' `/metrics` pages, as `name value` pairs summed over the nodes (labelled series
/// left out).
async fn metrics(args: &Args) -> Vec<(String, u64)> {
    let mut sum: Vec<(String, u64)> = Vec::new();
    for node in &args.nodes {
        for (k, v) in node_metrics(node).await {
            match sum.iter_mut().find(|(name, _)| *name == k) {
                Some(e) => e.1 += v,
                None => sum.push((k, v)),
            }
        }
    }
    sum
}

/// One node's `/metrics` page, as `name value` pairs.
async fn node_metrics(node: &Node) -> Vec<(String, u64)> {
    let fetch = async {
        let mut tcp = TcpStream::connect(node.addr).await.ok()?;
        let req = format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            node.host
        );
        tcp.write_all(req.as_bytes()).await.ok()?;
        let mut body = Vec::new();
        tcp.read_to_end(&mut body).await.ok()?;
        Some(String::from_utf8_lossy(&body).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| fail("cannot read /metrics"));
    text.lines()
        .filter(|l| l.starts_with("netplay_") && !l.contains('{'))
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn metric(m: &[(String, u64)], name: &str) -> u64 {
    m.iter().find(|(k, _)| k == name).map_or(0, |(_, v)| *v)
}

struct Relay {
    sent: u64,
    secs: f64,
    blocked: u64,
    max_lag_us: f64,
    server: Option<((f64, f64), (f64, f64))>,
    client: Option<((f64, f64), (f64, f64))>,
}

/// Sends OFFERs at `args.rate` for `warmup + seconds`, then waits for the measured ones.
async fn relay(args: &Args, members: &[Member]) -> Relay {
    let total = ((args.warmup + args.seconds) * args.rate) as u64;
    let warm = (args.warmup * args.rate) as u64;
    let me = std::process::id();
    let mut text = String::with_capacity(args.size + 64);
    let mut frame = Vec::with_capacity(args.size + 80);
    let mut sent = 0u64;
    let mut blocked = 0u64;
    let mut max_lag_ns = 0u64;
    let mut next = 0usize;
    let (mut server0, mut client0) = (None, None);
    let mut window_start = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let start_ns = now_ns();
    let limit = Duration::from_secs_f64(args.warmup + args.seconds + 5.0);
    let started = Instant::now();
    while sent < total {
        if started.elapsed() > limit {
            fail("the sender fell more than 5 s behind its schedule");
        }
        tick.tick().await;
        let due = (((now_ns() - start_ns) as f64 / 1e9 * args.rate) as u64).min(total);
        while sent < due {
            let t = now_ns();
            if sent == warm {
                window_start = t;
                stats().window = (t, u64::MAX);
                server0 = sched_sum(&args.server_pids);
                client0 = sched_seconds(me);
            }
            if sent >= warm {
                let scheduled = start_ns + (sent as f64 / args.rate * 1e9) as u64;
                max_lag_ns = max_lag_ns.max(t.saturating_sub(scheduled));
            }
            let m = &members[next];
            next = (next + 1) % members.len();
            text.clear();
            let _ = write!(
                text,
                r#"{{"type":4,"id":{},"data":"t={t:020} s={sent:010} "#,
                m.dest
            );
            let head = text.len() - text.rfind("\"t=").unwrap_or(0) - 1;
            text.extend(std::iter::repeat_n('x', args.size.saturating_sub(head)));
            text.push_str("\"}");
            frame.clear();
            masked_frame(&mut frame, 0x1, text.as_bytes());
            match m.wr.try_write(&frame) {
                Ok(n) if n == frame.len() => {}
                Ok(_) => fail("a partial write: the server stopped reading"),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if sent >= warm {
                        blocked += 1;
                    }
                }
                Err(e) => fail(e),
            }
            sent += 1;
        }
    }
    let end = now_ns();
    stats().window.1 = end + 1;
    let server1 = sched_sum(&args.server_pids);
    let client1 = sched_seconds(me);
    let measured = sent - warm;
    // The measured messages still on their way: wait for them (bounded).
    for _ in 0..300 {
        if stats().latencies.len() as u64 >= measured - blocked {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Relay {
        sent: measured,
        secs: (end - window_start) as f64 / 1e9,
        blocked,
        max_lag_us: max_lag_ns as f64 / 1e3,
        server: server0.zip(server1),
        client: client0.zip(client1),
    }
}

async fn run(args: Args) {
    let args = Arc::new(args);
    let pids = args.server_pids.clone();
    let pid = pids.as_slice();
    let deadline = Instant::now() + Duration::from_secs_f64(args.max_seconds);
    let before = settled_rss(pid, Duration::from_secs(3)).await;
    let redis_before = (args.redis_pid != 0).then(|| rss_sum(&[args.redis_pid]));

    // --- setup: connect and join every client ---
    let lobbies = args.clients / args.lobby_size;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency.min(lobbies))
        .map(|_| {
            let (args, next) = (args.clone(), next.clone());
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let g = next.fetch_add(1, Ordering::Relaxed);
                    if g >= lobbies {
                        return mine;
                    }
                    if Instant::now() > deadline {
                        fail("setup did not finish in time");
                    }
                    let members = setup_lobby(&args, g).await;
                    mine.push((g, members));
                }
            })
        })
        .collect();
    let mut by_lobby = Vec::with_capacity(lobbies);
    for w in workers {
        by_lobby.extend(w.await.unwrap_or_else(|e| fail(e)));
    }
    let setup_secs = started.elapsed().as_secs_f64();
    by_lobby.sort_by_key(|(g, _)| *g);
    let members: Vec<Member> = by_lobby.into_iter().flat_map(|(_, m)| m).collect();
    eprintln!(
        "signal-load: {} clients in {lobbies} lobbies after {setup_secs:.2} s",
        members.len()
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    let joined = settled_rss(pid, Duration::from_secs(5)).await;
    let m = metrics(&args).await;
    let (conns, in_lobbies, open_lobbies) = (
        metric(&m, "netplay_signal_connections"),
        metric(&m, "netplay_signal_members"),
        metric(&m, "netplay_signal_lobbies"),
    );
    if conns != args.clients as u64
        || in_lobbies != args.clients as u64
        || open_lobbies != lobbies as u64
    {
        fail(format!(
            "the server counts {conns} connections, {in_lobbies} lobby members, {open_lobbies} lobbies"
        ));
    }

    // --- idle: long enough for the server's heartbeat to reach every client ---
    tokio::time::sleep(Duration::from_secs_f64(args.idle_seconds)).await;
    let idle = settled_rss(pid, Duration::from_secs(5)).await;
    let pings = stats().pings;

    // --- relay ---
    let r = relay(&args, &members).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_relay = settled_rss(pid, Duration::from_secs(5)).await;
    let m = metrics(&args).await;
    let redis_bytes_per_client = match redis_before {
        Some(b) => format!(
            "{:.0}",
            rss_sum(&[args.redis_pid]).saturating_sub(b) as f64 * 1024.0 / args.clients as f64
        ),
        None => "-".into(),
    };

    let mut lat = std::mem::take(&mut stats().latencies);
    lat.sort_unstable();
    let pct = |q: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((q * lat.len() as f64).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i] as f64 / 1e3
    };
    let share = |w: Option<((f64, f64), (f64, f64))>| match w {
        Some((a, b)) => (
            format!("{:.2}", (b.0 - a.0) / r.secs),
            format!("{:.2}", (b.1 - a.1) / r.secs),
        ),
        None => ("-".into(), "-".into()),
    };
    let (server_cpu, server_wait) = share(r.server);
    let (client_cpu, client_wait) = share(r.client);
    let per_client = |kib: u64| kib.saturating_sub(before) as f64 * 1024.0 / args.clients as f64;
    let received = lat.len() as u64;
    let s = stats();
    println!(
        "SIGNAL clients={} lobbies={lobbies} lobby_size={} setup_secs={setup_secs:.2} \
         rss_before_kib={before} rss_joined_kib={joined} rss_idle_kib={idle} \
         rss_after_relay_kib={after_relay} joined_bytes_per_client={:.0} \
         idle_bytes_per_client={:.0} after_relay_bytes_per_client={:.0} pings_answered={pings} \
         target_rate={} sent={} received={received} lost={} blocked={} secs={:.3} \
         sent_rate={:.0} recv_rate={:.0} p50_us={:.0} p90_us={:.0} p99_us={:.0} p999_us={:.0} \
         max_us={:.0} sender_max_lag_us={:.0} server_cpu={server_cpu} server_wait={server_wait} \
         client_cpu={client_cpu} client_wait={client_wait} offers_seen={} other_msgs={} \
         server_relayed_total={} server_received_total={} server_connections={} nodes={} \
         redis_bytes_per_client={redis_bytes_per_client}",
        args.clients,
        args.lobby_size,
        per_client(joined),
        per_client(idle),
        per_client(after_relay),
        args.rate,
        r.sent,
        r.sent - r.blocked - received.min(r.sent - r.blocked),
        r.blocked,
        r.secs,
        r.sent as f64 / r.secs,
        received as f64 / r.secs,
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(0.999),
        lat.last().map_or(f64::NAN, |v| *v as f64 / 1e3),
        r.max_lag_us,
        s.offers,
        s.other,
        metric(&m, "netplay_signal_messages_relayed_total"),
        metric(&m, "netplay_signal_messages_received_total"),
        metric(&m, "netplay_signal_connections"),
        args.nodes.len(),
    );
}

fn main() {
    let args = parse_args();
    raise_nofile_limit();
    let _ = now_ns();
    let limit = Duration::from_secs_f64(args.max_seconds);
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        fail("the run took longer than --max-seconds")
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run(args));
    // Ends every connection at once.
    std::process::exit(0);
}
