//! Lobby mesh benchmark: N netplay peers in one WebRTC mesh (`multiplayer::Lobby` over an
//! in-process signaling), each broadcasting position updates on the unreliable channel and a
//! chat line on the reliable one, as a game does.
//!
//! ```text
//! mesh-bench [--peers N] [--seconds T] [--rate HZ] [--size BYTES]
//! ```
//!
//! Defaults: 4 peers, 10 s, 60 updates per second of 100 bytes per peer, one chat line per
//! second per peer. All peers run in one thread that polls every peer, then sleeps 1 ms (a
//! 1 kHz loop; a game polling once per 16 ms frame adds up to a frame to every latency).
//! Prints one line: `MESH peers=N updates_sent=... delivery=... p50_ms=... p99_ms=...
//! chat_delivery=... cpu_per_peer=...` (latency from the send call to the receiving poll,
//! one clock; CPU as the share of one core per peer over the measured window).

use std::time::{Duration, Instant};

use netplay::multiplayer::{
    Lobby, LobbyEvent, LobbyMode, MultiplayerPeer, PeerEvent, TransferMode,
};
use netplay::rtc::PeerConfig;
use netplay::signal::LocalSignaling;

struct Args {
    peers: usize,
    seconds: f64,
    rate: f64,
    size: usize,
}

fn args() -> Args {
    let mut a = Args {
        peers: 4,
        seconds: 10.0,
        rate: 60.0,
        size: 100,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_default();
        match k.as_str() {
            "--peers" => a.peers = v.parse().expect("--peers N"),
            "--seconds" => a.seconds = v.parse().expect("--seconds T"),
            "--rate" => a.rate = v.parse().expect("--rate HZ"),
            "--size" => a.size = v.parse().expect("--size BYTES"),
            other => panic!("unknown option {other}"),
        }
    }
    assert!(a.peers >= 2 && a.size >= 13);
    a
}

/// CPU time of this thread, from `/proc/thread-self/schedstat` (nanoseconds).
fn thread_cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    s.split_whitespace()
        .next()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0.0, |ns| ns as f64 / 1e9)
}

fn main() {
    let a = args();
    let signaling = LocalSignaling::new();
    let mut peers = vec![Lobby::local(
        &signaling,
        "",
        LobbyMode::Mesh,
        PeerConfig::loopback(),
    )];
    let name = loop {
        peers[0].poll();
        if let Some(LobbyEvent::Joined { lobby }) = peers[0].poll_lobby_event() {
            break lobby;
        }
    };
    for _ in 1..a.peers {
        peers.push(Lobby::local(
            &signaling,
            &name,
            LobbyMode::Mesh,
            PeerConfig::loopback(),
        ));
    }
    let mut connected = vec![0usize; a.peers];
    let deadline = Instant::now() + Duration::from_secs(60);
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
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    eprintln!("mesh of {} formed", a.peers);

    let epoch = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / a.rate);
    let mut next_update = vec![epoch; a.peers];
    let mut next_chat = vec![epoch; a.peers];
    let mut latencies: Vec<f64> = Vec::new();
    let (mut updates_sent, mut updates_got, mut chats_sent, mut chats_got) =
        (0u64, 0u64, 0u64, 0u64);
    let mut payload = vec![0u8; a.size];
    let cpu0 = thread_cpu();
    let end = epoch + Duration::from_secs_f64(a.seconds);
    // Messages sent in the last 100 ms may still be in flight at the end: they are not counted.
    let count_until = end - Duration::from_millis(100);
    while Instant::now() < end {
        let now = Instant::now();
        for (i, p) in peers.iter_mut().enumerate() {
            p.poll();
            while p.poll_event().is_some() {}
            while let Some(packet) = p.get_packet() {
                let Some(sent_ns) = packet
                    .data
                    .get(1..9)
                    .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                else {
                    continue;
                };
                let sent = epoch + Duration::from_nanos(sent_ns);
                if sent > count_until {
                    continue;
                }
                if packet.data[0] == b'U' {
                    updates_got += 1;
                    latencies.push(Instant::now().duration_since(sent).as_secs_f64() * 1e3);
                } else {
                    chats_got += 1;
                }
            }
            if now >= next_update[i] {
                next_update[i] += interval;
                payload[0] = b'U';
                payload[1..9].copy_from_slice(&(now - epoch).as_nanos().to_le_bytes()[..8]);
                p.set_target_peer(0);
                p.set_transfer_mode(TransferMode::Unreliable);
                if p.put_packet(&payload).is_ok() && now <= count_until {
                    updates_sent += 1;
                }
            }
            if now >= next_chat[i] {
                next_chat[i] += Duration::from_secs(1);
                let mut chat = vec![b'C'];
                chat.extend_from_slice(&(now - epoch).as_nanos().to_le_bytes()[..8]);
                chat.extend_from_slice(b"hello everyone");
                p.set_transfer_mode(TransferMode::Reliable);
                if p.put_packet(&chat).is_ok() && now <= count_until {
                    chats_sent += 1;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let cpu = thread_cpu() - cpu0;
    latencies.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let pct = |q: f64| {
        if latencies.is_empty() {
            f64::NAN
        } else {
            latencies[((latencies.len() - 1) as f64 * q).round() as usize]
        }
    };
    let others = (a.peers - 1) as f64;
    println!(
        "MESH peers={} seconds={} rate={} size={} updates_sent={} delivery={:.4} p50_ms={:.3} p99_ms={:.3} chat_delivery={:.4} cpu_per_peer={:.4}",
        a.peers,
        a.seconds,
        a.rate,
        a.size,
        updates_sent,
        updates_got as f64 / (updates_sent as f64 * others),
        pct(0.5),
        pct(0.99),
        chats_got as f64 / (chats_sent as f64 * others),
        cpu / a.seconds / a.peers as f64
    );
}
