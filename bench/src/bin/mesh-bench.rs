//! Lobby mesh benchmark: N netplay peers in one WebRTC mesh (`multiplayer::Lobby`), each
//! broadcasting position updates on the unreliable channel and a chat line on the reliable one,
//! as a game does. `mesh-matchbox` runs the same with matchbox_socket.
//!
//! ```text
//! mesh-bench [--peers N] [--seconds T] [--rate HZ] [--size BYTES] [--url WS_URL]
//!            [--gather loopback|all] [--flush]
//! ```
//!
//! Defaults: 4 peers, 10 s, 60 updates per second of 100 bytes per peer, one chat line per
//! second per peer. The signaling is in-process (`LocalSignaling`), or a `netplay serve` at
//! `--url` (the first peer creates a mesh lobby, the others join it). `--gather loopback` (the
//! default) gathers candidates on 127.0.0.1 only (`PeerConfig::loopback()`); `--gather all`
//! uses `PeerConfig::default()`, every interface but loopback, as an application does.
//! All peers run in one thread that polls every peer, then sleeps 1 ms (a 1 kHz loop; a game
//! polling once per 16 ms frame adds up to a frame to every latency). A message put leaves on
//! the sender's next poll, so it waits for the next round; `--flush` polls a peer once more
//! right after its sends, as a game that flushes at the end of its frame does. The measured
//! window starts once every peer has N-1 peers connected.
//! Prints one line: `MESH peers=N updates_sent=... delivery=... p50_ms=... p99_ms=...
//! chat_delivery=... cpu_per_peer=...` (latency from the send call to the receiving poll,
//! one clock; CPU as the process's CPU time over the measured window, every thread, as a
//! share of one core, divided by N).

use std::time::{Duration, Instant};

use netplay::multiplayer::{
    Lobby, LobbyEvent, LobbyMode, MultiplayerPeer, PeerEvent, TransferMode,
};
use netplay::rtc::PeerConfig;
use netplay::signal::LocalSignaling;
use netplay_bench::mesh::{Tally, UPDATE};
use netplay_bench::process_cpu_seconds;

struct Args {
    peers: usize,
    seconds: f64,
    rate: f64,
    size: usize,
    url: Option<String>,
    gather_all: bool,
    flush: bool,
}

fn args() -> Args {
    let mut a = Args {
        peers: 4,
        seconds: 10.0,
        rate: 60.0,
        size: 100,
        url: None,
        gather_all: false,
        flush: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--flush" {
            a.flush = true;
            continue;
        }
        let v = it.next().unwrap_or_default();
        match k.as_str() {
            "--peers" => a.peers = v.parse().expect("--peers N"),
            "--seconds" => a.seconds = v.parse().expect("--seconds T"),
            "--rate" => a.rate = v.parse().expect("--rate HZ"),
            "--size" => a.size = v.parse().expect("--size BYTES"),
            "--url" => a.url = Some(v),
            "--gather" => {
                a.gather_all = match v.as_str() {
                    "all" => true,
                    "loopback" => false,
                    _ => panic!("--gather loopback|all"),
                }
            }
            other => panic!("unknown option {other}"),
        }
    }
    assert!(a.peers >= 2 && a.size >= 9);
    a
}

fn main() {
    let a = args();
    let config = || {
        if a.gather_all {
            PeerConfig::default()
        } else {
            PeerConfig::loopback()
        }
    };
    let signaling = LocalSignaling::new();
    let join = |lobby: &str| match &a.url {
        Some(url) => Lobby::connect(url, lobby, LobbyMode::Mesh, config())
            .unwrap_or_else(|e| panic!("cannot reach the signaling server at {url}: {e}")),
        None => Lobby::local(&signaling, lobby, LobbyMode::Mesh, config()),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut peers = vec![join("")];
    let name = 'joined: loop {
        assert!(Instant::now() < deadline, "no lobby was created");
        peers[0].poll();
        while let Some(e) = peers[0].poll_lobby_event() {
            match e {
                LobbyEvent::Joined { lobby } => break 'joined lobby,
                LobbyEvent::SignalingClosed { code, reason } => {
                    panic!("the signaling server closed: {code} {reason}")
                }
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    for _ in 1..a.peers {
        peers.push(join(&name));
    }
    let mut connected = vec![0usize; a.peers];
    while connected.iter().any(|&c| c < a.peers - 1) {
        assert!(
            Instant::now() < deadline,
            "the mesh did not form: {connected:?}"
        );
        for (i, p) in peers.iter_mut().enumerate() {
            p.poll();
            while let Some(e) = p.poll_event() {
                if let PeerEvent::PeerConnected(_) = e {
                    connected[i] += 1;
                }
            }
            while let Some(e) = p.poll_lobby_event() {
                if let LobbyEvent::Error(e) = e {
                    eprintln!("lobby error: {e}");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    eprintln!("mesh of {} formed", a.peers);

    let mut tally = Tally::start(a.seconds);
    let epoch = tally.epoch();
    let interval = Duration::from_secs_f64(1.0 / a.rate);
    let mut next_update = vec![epoch; a.peers];
    let mut next_chat = vec![epoch; a.peers];
    let mut payload = vec![0u8; a.size];
    let cpu0 = process_cpu_seconds();
    let end = epoch + Duration::from_secs_f64(a.seconds);
    while Instant::now() < end {
        let now = Instant::now();
        for (i, p) in peers.iter_mut().enumerate() {
            p.poll();
            while p.poll_event().is_some() {}
            while p.poll_lobby_event().is_some() {}
            while let Some(packet) = p.get_packet() {
                tally.received(&packet.data);
            }
            let mut sent = false;
            if now >= next_update[i] {
                next_update[i] += interval;
                sent = true;
                tally.stamp(&mut payload, UPDATE, now);
                p.set_target_peer(0);
                p.set_transfer_mode(TransferMode::Unreliable);
                if p.put_packet(&payload).is_ok() {
                    tally.sent(UPDATE, now);
                }
            }
            if now >= next_chat[i] {
                next_chat[i] += Duration::from_secs(1);
                sent = true;
                let chat = tally.chat_line(now);
                p.set_transfer_mode(TransferMode::Reliable);
                if p.put_packet(&chat).is_ok() {
                    tally.sent(chat[0], now);
                }
            }
            if sent && a.flush {
                p.poll();
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let cpu = process_cpu_seconds() - cpu0;
    let signaling = if a.url.is_some() { "server" } else { "local" };
    let gather = if a.gather_all { "all" } else { "loopback" };
    tally.print(
        a.peers,
        a.seconds,
        a.rate,
        a.size,
        cpu,
        &format!(
            "impl=netplay signaling={signaling} gather={gather} flush={}",
            a.flush
        ),
    );
}
