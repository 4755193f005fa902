//! WebRTC data channel benchmark: offer-to-open time and reliable ordered throughput of two
//! peer connections on 127.0.0.1, for netplay (`netplay::rtc`) or webrtc-rs (the `webrtc`
//! crate). `bench/rtc/bench.js` measures node-datachannel the same way, and `bench/rtc.sh` runs
//! them all.
//!
//! ```text
//! rtc-bench --impl netplay|webrtc-rs [--size BYTES] [--seconds T] [--warmup T]
//!           [--open-runs N] [--cpus A,B] [--no-pin] [--spin]
//! ```
//!
//! Layout: one process, two threads. The offering peer (it creates the channel and sends) runs
//! on the first thread, pinned to CPU 0; the answering peer (it receives) on the second, pinned
//! to CPU 1. Each thread owns its peer connection: netplay's `PeerConnection` is polled by its
//! thread; webrtc-rs gets a single-threaded tokio runtime per thread, so each connection's
//! driver task runs on its peer's thread. Descriptions and candidates go from thread to thread
//! over in-memory channels as soon as they are created (trickle ICE).
//!
//! The channel is reliable, ordered and announced in band (DCEP), as `createDataChannel("bench")`
//! in a browser.
//!
//! 1. Offer-to-open, `--open-runs` times with fresh connections (after one uncounted run): from
//!    just before `create_offer` until the application has seen the channel open on both sides.
//! 2. Throughput: the sender writes `--size`-byte messages as fast as back pressure allows
//!    (netplay: until `put_packet` returns `BufferFull`, with the default 1 MiB send budget;
//!    webrtc-rs: `send().await` with a 1 MiB send-buffer limit). The receiver counts what
//!    arrives; after `--warmup` seconds it measures for `--seconds`.
//!
//! netplay: each thread runs `poll()`, then, after a round that moved no message, blocks in
//! `PeerConnection::wait` until a datagram arrives or a timer is due, as a server thread would.
//! `--spin` polls in a loop without waiting instead (each thread has its own CPU).
//!
//! Prints one line: `RTC impl=... size=... open_runs=N open_p50_ms=... open_p90_ms=...
//! mb_per_sec=... msgs_per_sec=... send_cpu=... recv_cpu=...` (MB = 10^6 bytes; CPU as the share
//! of one core each thread used during the measured window).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use netplay_bench::sched_seconds;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Impl {
    Netplay,
    WebrtcRs,
}

#[derive(Clone, Debug)]
struct Args {
    imp: Impl,
    size: usize,
    seconds: f64,
    warmup: f64,
    open_runs: usize,
    cpus: Option<(usize, usize)>,
    spin: bool,
}

fn usage(msg: &str) -> ! {
    eprintln!("rtc-bench: {msg}");
    eprintln!(
        "usage: rtc-bench --impl netplay|webrtc-rs [--size BYTES] [--seconds T] [--warmup T] \
         [--open-runs N] [--cpus A,B] [--no-pin] [--spin]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        imp: Impl::Netplay,
        size: 1024,
        seconds: 5.0,
        warmup: 1.0,
        open_runs: 10,
        cpus: Some((0, 1)),
        spin: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{k} needs a value")))
        };
        match k.as_str() {
            "--impl" => {
                a.imp = match v().as_str() {
                    "netplay" => Impl::Netplay,
                    "webrtc-rs" => Impl::WebrtcRs,
                    other => usage(&format!("unknown implementation {other}")),
                }
            }
            "--size" => a.size = v().parse().unwrap_or_else(|_| usage("bad --size")),
            "--seconds" => a.seconds = v().parse().unwrap_or_else(|_| usage("bad --seconds")),
            "--warmup" => a.warmup = v().parse().unwrap_or_else(|_| usage("bad --warmup")),
            "--open-runs" => a.open_runs = v().parse().unwrap_or_else(|_| usage("bad --open-runs")),
            "--cpus" => {
                let s = v();
                let (x, y) = s.split_once(',').unwrap_or_else(|| usage("--cpus A,B"));
                a.cpus = Some((
                    x.parse().unwrap_or_else(|_| usage("bad --cpus")),
                    y.parse().unwrap_or_else(|_| usage("bad --cpus")),
                ));
            }
            "--no-pin" => a.cpus = None,
            "--spin" => a.spin = true,
            "-h" | "--help" => usage("help"),
            other => usage(&format!("unknown option {other}")),
        }
    }
    if a.size == 0 || a.size > 65536 {
        usage("--size must be 1..=65536");
    }
    if a.seconds <= 0.0 || a.seconds > 120.0 || a.warmup < 0.0 || a.warmup > 30.0 {
        usage("--seconds must be in (0, 120], --warmup in [0, 30]");
    }
    a
}

// ------------------------------------------------------------------------------ shared parts

/// A process-wide time origin, so both threads can store instants in atomics.
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn stamp() -> u64 {
    (base().elapsed().as_nanos() as u64).max(1)
}

fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; pid 0 is the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!("rtc-bench: cannot pin a thread to CPU {cpu}");
        }
    }
}

fn gettid() -> u32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::gettid() as u32 }
}

/// Signaling between the two threads. Every message carries the run it belongs to, so late
/// candidates of a finished run are dropped.
#[derive(Debug)]
enum Sig {
    Offer(String),
    Answer(String),
    Candidate {
        mid: String,
        index: u32,
        line: String,
    },
}

/// What both sides of one run share.
struct Run {
    id: usize,
    offer_at: AtomicU64,
    open_offerer: AtomicU64,
    open_answerer: AtomicU64,
    /// Set by the receiver when the measured window is over (throughput run).
    stop: AtomicBool,
    /// Set by either side when it gives up.
    failed: AtomicBool,
    sender_tid: AtomicU64,
}

impl Run {
    fn new(id: usize) -> Run {
        Run {
            id,
            offer_at: AtomicU64::new(0),
            open_offerer: AtomicU64::new(0),
            open_answerer: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            sender_tid: AtomicU64::new(0),
        }
    }

    fn both_open(&self) -> bool {
        self.open_offerer.load(Ordering::Acquire) != 0
            && self.open_answerer.load(Ordering::Acquire) != 0
    }

    fn open_ms(&self) -> f64 {
        let end = self
            .open_offerer
            .load(Ordering::Acquire)
            .max(self.open_answerer.load(Ordering::Acquire));
        (end - self.offer_at.load(Ordering::Acquire)) as f64 / 1e6
    }

    fn give_up(&self, why: &str) {
        if !self.failed.swap(true, Ordering::AcqRel) {
            eprintln!("rtc-bench: run {} failed: {why}", self.id);
        }
    }

    fn done(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }
}

/// The receiver's measurement of the throughput window.
#[derive(Default, Debug, Clone, Copy)]
struct Window {
    seconds: f64,
    bytes: u64,
    msgs: u64,
    send_cpu: f64,
    recv_cpu: f64,
}

/// The receiver's bookkeeping: counts messages, opens the window after the warm-up and closes
/// it after `seconds`.
struct Meter {
    warmup: Duration,
    seconds: Duration,
    opened: Instant,
    bytes: u64,
    msgs: u64,
    start: Option<(Instant, u64, u64, f64, f64)>,
    recv_tid: u32,
    result: Option<Window>,
}

impl Meter {
    fn new(args: &Args) -> Meter {
        Meter {
            warmup: Duration::from_secs_f64(args.warmup),
            seconds: Duration::from_secs_f64(args.seconds),
            opened: Instant::now(),
            bytes: 0,
            msgs: 0,
            start: None,
            recv_tid: gettid(),
            result: None,
        }
    }

    fn cpu(tid: u64) -> f64 {
        sched_seconds(tid as u32).map(|(run, _)| run).unwrap_or(0.0)
    }

    #[inline]
    fn add(&mut self, len: usize) {
        self.bytes += len as u64;
        self.msgs += 1;
    }

    /// Call often; returns true once the window is over.
    fn tick(&mut self, run: &Run) -> bool {
        if self.result.is_some() {
            return true;
        }
        let now = Instant::now();
        match self.start {
            None => {
                if now >= self.opened + self.warmup {
                    let s = run.sender_tid.load(Ordering::Acquire);
                    self.start = Some((
                        now,
                        self.bytes,
                        self.msgs,
                        Self::cpu(s),
                        Self::cpu(self.recv_tid as u64),
                    ));
                }
                false
            }
            Some((t0, b0, m0, s0, r0)) => {
                if now < t0 + self.seconds {
                    return false;
                }
                let secs = now.duration_since(t0).as_secs_f64();
                let s = run.sender_tid.load(Ordering::Acquire);
                self.result = Some(Window {
                    seconds: secs,
                    bytes: self.bytes - b0,
                    msgs: self.msgs - m0,
                    send_cpu: (Self::cpu(s) - s0) / secs,
                    recv_cpu: (Self::cpu(self.recv_tid as u64) - r0) / secs,
                });
                run.stop.store(true, Ordering::Release);
                true
            }
        }
    }
}

/// Connection setup must finish within this time, or the run fails.
const SETUP_LIMIT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Offerer,
    Answerer,
}

type Tx = tokio::sync::mpsc::UnboundedSender<(usize, Sig)>;
type Rx = tokio::sync::mpsc::UnboundedReceiver<(usize, Sig)>;

struct Side {
    role: Role,
    args: Args,
    tx: Tx,
    /// Only this side's thread takes it.
    rx: std::sync::Mutex<Rx>,
    barrier: Arc<Barrier>,
}

/// What the two threads run: `open_runs` fresh connections for offer-to-open, then one for
/// throughput. Each run starts and ends at a barrier.
fn side_main(
    side: Side,
    runs: Arc<Vec<Run>>,
    body: fn(&Side, &Run, bool) -> Option<Window>,
) -> Option<Window> {
    if let Some((a, b)) = side.args.cpus {
        pin_to(if side.role == Role::Offerer { a } else { b });
    }
    let mut window = None;
    let last = runs.len() - 1;
    for (i, run) in runs.iter().enumerate() {
        side.barrier.wait();
        let w = body(&side, run, i == last);
        if side.role == Role::Answerer {
            window = w;
        }
        side.barrier.wait();
        if run.done() {
            break;
        }
    }
    window
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn main() {
    let args = parse_args();
    base();
    // Run 0 warms up (first use of the crypto and the allocator) and is not counted; then the
    // offer-to-open runs; the last run measures throughput.
    let runs: Arc<Vec<Run>> = Arc::new((0..args.open_runs + 2).map(Run::new).collect());
    let (tx_a, rx_b) = tokio::sync::mpsc::unbounded_channel();
    let (tx_b, rx_a) = tokio::sync::mpsc::unbounded_channel();
    let barrier = Arc::new(Barrier::new(2));
    let body: fn(&Side, &Run, bool) -> Option<Window> = match args.imp {
        Impl::Netplay => netplay_side::run,
        Impl::WebrtcRs => webrtc_side::run,
    };
    let mk = |role, tx, rx| Side {
        role,
        args: args.clone(),
        tx,
        rx: std::sync::Mutex::new(rx),
        barrier: barrier.clone(),
    };
    let (sa, sb) = (
        mk(Role::Offerer, tx_a, rx_a),
        mk(Role::Answerer, tx_b, rx_b),
    );
    let (ra, rb) = (runs.clone(), runs.clone());
    let ta = std::thread::Builder::new()
        .name("offerer".into())
        .spawn(move || side_main(sa, ra, body))
        .expect("spawn");
    let tb = std::thread::Builder::new()
        .name("answerer".into())
        .spawn(move || side_main(sb, rb, body))
        .expect("spawn");
    let _ = ta.join();
    let window = tb.join().ok().flatten();

    let failed = runs.iter().filter(|r| r.done()).count();
    let mut opens: Vec<f64> = runs[1..=args.open_runs]
        .iter()
        .filter(|r| !r.done() && r.both_open())
        .map(Run::open_ms)
        .collect();
    opens.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let name = match args.imp {
        Impl::Netplay => "netplay",
        Impl::WebrtcRs => "webrtc-rs",
    };
    let mut line = format!(
        "RTC impl={name} size={} open_runs={} open_p50_ms={:.3} open_p90_ms={:.3} open_min_ms={:.3}",
        args.size,
        opens.len(),
        percentile(&opens, 0.5),
        percentile(&opens, 0.9),
        opens.first().copied().unwrap_or(f64::NAN),
    );
    match window {
        Some(w) => line.push_str(&format!(
            " seconds={:.3} mb_per_sec={:.2} msgs_per_sec={:.0} send_cpu={:.2} recv_cpu={:.2}",
            w.seconds,
            w.bytes as f64 / w.seconds / 1e6,
            w.msgs as f64 / w.seconds,
            w.send_cpu,
            w.recv_cpu
        )),
        None => line.push_str(" mb_per_sec=nan msgs_per_sec=nan"),
    }
    line.push_str(&format!(" failed_runs={failed}"));
    println!("{line}");
    if failed > 0 || window.is_none() {
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------- netplay

mod netplay_side {
    use super::*;
    use netplay::rtc::{
        ChannelId, DataChannelOptions, Error, Event, PeerConfig, PeerConnection, SdpKind,
    };

    pub fn run(side: &Side, run: &Run, throughput: bool) -> Option<Window> {
        let offerer = side.role == Role::Offerer;
        let mut pc = match PeerConnection::new(PeerConfig::loopback()) {
            Ok(pc) => pc,
            Err(e) => {
                run.give_up(&format!("PeerConnection::new: {e}"));
                return None;
            }
        };
        let mut channel: Option<ChannelId> = None;
        if offerer {
            run.sender_tid.store(gettid() as u64, Ordering::Release);
            match pc.create_data_channel("bench", DataChannelOptions::default()) {
                Ok(id) => channel = Some(id),
                Err(e) => {
                    run.give_up(&format!("create_data_channel: {e}"));
                    return None;
                }
            }
            run.offer_at.store(stamp(), Ordering::Release);
            if let Err(e) = pc.create_offer() {
                run.give_up(&format!("create_offer: {e}"));
                return None;
            }
        }
        let my_open = if offerer {
            &run.open_offerer
        } else {
            &run.open_answerer
        };
        let started = Instant::now();
        // Setup: until the channel is open on both sides.
        while !run.both_open() && !run.done() {
            pc.poll();
            if let Err(e) = events(&mut pc, side, run, &mut channel, my_open) {
                run.give_up(&e);
                break;
            }
            if let Err(e) = signaling(&mut pc, side, run) {
                run.give_up(&e);
                break;
            }
            if started.elapsed() > SETUP_LIMIT {
                run.give_up("the channel did not open in time");
            }
        }
        if run.done() {
            return None;
        }
        if !throughput {
            pc.close();
            return None;
        }
        let channel = channel.expect("open");
        let payload = vec![0x5a_u8; side.args.size];
        let spin = side.args.spin;
        if offerer {
            while !run.stop.load(Ordering::Acquire) && !run.done() {
                // Read (SACKs free the send budget) and send what is queued, then queue more.
                pc.poll();
                while pc.poll_event().is_some() {}
                let mut progress = false;
                {
                    let mut ch = pc.channel(channel).expect("channel");
                    loop {
                        match ch.put_packet(&payload) {
                            Ok(()) => progress = true,
                            Err(Error::BufferFull { .. }) => break,
                            // The receiver measured and closed while this thread waited.
                            Err(_) if run.stop.load(Ordering::Acquire) => break,
                            Err(e) => {
                                run.give_up(&format!("put_packet: {e}"));
                                break;
                            }
                        }
                    }
                }
                if !progress && !spin {
                    pc.wait(WAIT);
                }
            }
            pc.close();
            None
        } else {
            let mut meter = Meter::new(&side.args);
            while !run.done() {
                pc.poll();
                while pc.poll_event().is_some() {}
                let mut got = false;
                {
                    let mut ch = pc.channel(channel).expect("channel");
                    while let Some(p) = ch.get_packet() {
                        meter.add(p.len());
                        got = true;
                    }
                }
                if meter.tick(run) {
                    break;
                }
                if !got && !spin {
                    pc.wait(WAIT);
                }
            }
            pc.close();
            meter.result
        }
    }

    /// The longest one wait lasts, so the threads notice the end of the run.
    const WAIT: Duration = Duration::from_millis(5);

    fn events(
        pc: &mut PeerConnection,
        side: &Side,
        run: &Run,
        channel: &mut Option<ChannelId>,
        my_open: &AtomicU64,
    ) -> Result<(), String> {
        while let Some(event) = pc.poll_event() {
            match event {
                Event::SessionDescriptionCreated { kind, sdp } => {
                    pc.set_local_description(kind, &sdp)
                        .map_err(|e| format!("set_local_description: {e}"))?;
                    let msg = match kind {
                        SdpKind::Offer => Sig::Offer(sdp),
                        SdpKind::Answer => Sig::Answer(sdp),
                    };
                    let _ = side.tx.send((run.id, msg));
                }
                Event::IceCandidateCreated {
                    mid,
                    index,
                    candidate,
                } => {
                    let _ = side.tx.send((
                        run.id,
                        Sig::Candidate {
                            mid,
                            index,
                            line: candidate,
                        },
                    ));
                }
                Event::DataChannelReceived(id) => *channel = Some(id),
                Event::DataChannelOpen(id) => {
                    if channel.is_none() {
                        *channel = Some(id);
                    }
                    if my_open.load(Ordering::Acquire) == 0 {
                        my_open.store(stamp(), Ordering::Release);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn signaling(pc: &mut PeerConnection, side: &Side, run: &Run) -> Result<(), String> {
        let mut rx = side.rx.lock().expect("signaling receiver");
        while let Ok((id, msg)) = rx.try_recv() {
            if id != run.id {
                continue;
            }
            match msg {
                Sig::Offer(sdp) => pc
                    .set_remote_description(SdpKind::Offer, &sdp)
                    .map_err(|e| format!("set_remote_description(offer): {e}"))?,
                Sig::Answer(sdp) => pc
                    .set_remote_description(SdpKind::Answer, &sdp)
                    .map_err(|e| format!("set_remote_description(answer): {e}"))?,
                Sig::Candidate { mid, index, line } => pc
                    .add_ice_candidate(&mid, index, &line)
                    .map_err(|e| format!("add_ice_candidate: {e}"))?,
            }
        }
        Ok(())
    }
}

// -------------------------------------------------------------------------------- webrtc-rs

mod webrtc_side {
    use super::*;
    use bytes::BytesMut;
    use webrtc::data_channel::{DataChannel, DataChannelEvent};
    use webrtc::peer_connection::{
        PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
        RTCIceCandidateInit, RTCPeerConnectionIceEvent, RTCSessionDescription,
        SettingEngineBuilder,
    };

    /// The same send budget as netplay's default `max_buffered_amount`.
    const SEND_BUFFER_LIMIT: usize = 1 << 20;

    struct Handler {
        run_id: usize,
        tx: Tx,
        channels: tokio::sync::mpsc::UnboundedSender<Arc<dyn DataChannel>>,
    }

    #[async_trait::async_trait]
    impl PeerConnectionEventHandler for Handler {
        async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
            if let Ok(init) = event.candidate.to_json() {
                let _ = self.tx.send((
                    self.run_id,
                    Sig::Candidate {
                        mid: init.sdp_mid.unwrap_or_default(),
                        index: init.sdp_mline_index.unwrap_or(0) as u32,
                        line: init.candidate,
                    },
                ));
            }
        }

        async fn on_data_channel(&self, data_channel: Arc<dyn DataChannel>) {
            let _ = self.channels.send(data_channel);
        }
    }

    pub fn run(side: &Side, run: &Run, throughput: bool) -> Option<Window> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let out = rt.block_on(async {
            match tokio::time::timeout(
                SETUP_LIMIT + Duration::from_secs(150),
                session(side, run, throughput),
            )
            .await
            {
                Ok(Ok(w)) => w,
                Ok(Err(e)) => {
                    run.give_up(&e);
                    None
                }
                Err(_) => {
                    run.give_up("timed out");
                    None
                }
            }
        });
        // Let closing connections finish their last work before the runtime goes.
        rt.shutdown_timeout(Duration::from_millis(200));
        out
    }

    async fn session(side: &Side, run: &Run, throughput: bool) -> Result<Option<Window>, String> {
        let offerer = side.role == Role::Offerer;
        let (ch_tx, mut ch_rx) = tokio::sync::mpsc::unbounded_channel();
        // Loopback only, UDP over IPv4, no mDNS, no STUN or TURN servers.
        let settings = SettingEngineBuilder::new()
            .with_network_types(vec![rtc::ice::network_type::NetworkType::Udp4])
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .with_include_loopback_candidate(true)
            .build();
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_setting_engine(settings)
            .with_handler(Arc::new(Handler {
                run_id: run.id,
                tx: side.tx.clone(),
                channels: ch_tx,
            }))
            .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
            .with_data_channel_send_buffer_limit(SEND_BUFFER_LIMIT)
            .build()
            .await
            .map_err(|e| format!("build: {e}"))?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);

        let mut dc: Option<Arc<dyn DataChannel>> = None;
        if offerer {
            run.sender_tid.store(gettid() as u64, Ordering::Release);
            dc = Some(
                pc.create_data_channel("bench", None)
                    .await
                    .map_err(|e| format!("create_data_channel: {e}"))?,
            );
            run.offer_at.store(stamp(), Ordering::Release);
            let offer = pc
                .create_offer(None)
                .await
                .map_err(|e| format!("create_offer: {e}"))?;
            pc.set_local_description(offer.clone())
                .await
                .map_err(|e| format!("set_local_description: {e}"))?;
            let _ = side.tx.send((run.id, Sig::Offer(offer.sdp)));
        }

        // Signaling until the channel is open here; then keep the connection running until it
        // is open on the other side too.
        let my_open = if offerer {
            &run.open_offerer
        } else {
            &run.open_answerer
        };
        let deadline = tokio::time::Instant::now() + SETUP_LIMIT;
        let mut rx = side.rx.lock().expect("signaling receiver");
        let mut remote_set = false;
        let mut pending: Vec<RTCIceCandidateInit> = Vec::new();
        while !run.both_open() {
            if run.done() {
                return Ok(None);
            }
            let waiting_open = my_open.load(Ordering::Acquire) == 0;
            tokio::select! {
                biased;
                msg = rx.recv() => {
                    let Some((id, msg)) = msg else {
                        return Err("the other side is gone".into());
                    };
                    if id != run.id {
                        continue;
                    }
                    match msg {
                        Sig::Offer(sdp) => {
                            let offer = RTCSessionDescription::offer(sdp).map_err(|e| e.to_string())?;
                            pc.set_remote_description(offer)
                                .await
                                .map_err(|e| format!("set_remote_description(offer): {e}"))?;
                            let answer = pc
                                .create_answer(None)
                                .await
                                .map_err(|e| format!("create_answer: {e}"))?;
                            pc.set_local_description(answer.clone())
                                .await
                                .map_err(|e| format!("set_local_description: {e}"))?;
                            let _ = side.tx.send((run.id, Sig::Answer(answer.sdp)));
                            remote_set = true;
                        }
                        Sig::Answer(sdp) => {
                            let answer =
                                RTCSessionDescription::answer(sdp).map_err(|e| e.to_string())?;
                            pc.set_remote_description(answer)
                                .await
                                .map_err(|e| format!("set_remote_description(answer): {e}"))?;
                            remote_set = true;
                        }
                        Sig::Candidate { mid, index, line } => {
                            pending.push(RTCIceCandidateInit {
                                candidate: line,
                                sdp_mid: Some(mid),
                                sdp_mline_index: Some(index as u16),
                                ..Default::default()
                            });
                        }
                    }
                    if remote_set {
                        for c in pending.drain(..) {
                            pc.add_ice_candidate(c)
                                .await
                                .map_err(|e| format!("add_ice_candidate: {e}"))?;
                        }
                    }
                }
                d = ch_rx.recv(), if dc.is_none() => {
                    dc = d;
                }
                ev = async { dc.as_ref().expect("checked").poll().await }, if dc.is_some() && waiting_open => {
                    match ev {
                        Some(DataChannelEvent::OnOpen) => my_open.store(stamp(), Ordering::Release),
                        None => return Err("the channel ended before it opened".into()),
                        _ => {}
                    }
                }
                // Open here: look again soon whether it is open on the other side too.
                _ = tokio::time::sleep(Duration::from_millis(1)), if !waiting_open => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Err("the channel did not open in time".into());
                }
            }
        }
        drop(rx);
        let dc = dc.expect("open");
        if !throughput {
            let _ = pc.close().await;
            return Ok(None);
        }

        if offerer {
            let payload = BytesMut::from(&vec![0x5a_u8; side.args.size][..]);
            let events = {
                let dc = dc.clone();
                tokio::spawn(async move { while dc.poll().await.is_some() {} })
            };
            while !run.stop.load(Ordering::Acquire) && !run.done() {
                if let Err(e) = dc.send(payload.clone()).await {
                    // The receiver closes its side once the window is over.
                    if run.stop.load(Ordering::Acquire) {
                        break;
                    }
                    return Err(format!("send: {e}"));
                }
            }
            events.abort();
            let _ = pc.close().await;
            Ok(None)
        } else {
            let mut meter = Meter::new(&side.args);
            loop {
                match dc.poll().await {
                    Some(DataChannelEvent::OnMessage(m)) => meter.add(m.data.len()),
                    Some(_) => {}
                    None => return Err("the channel ended during the measurement".into()),
                }
                if meter.tick(run) || run.done() {
                    break;
                }
            }
            let _ = pc.close().await;
            Ok(meter.result)
        }
    }
}
