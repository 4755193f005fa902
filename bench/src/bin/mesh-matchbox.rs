//! Lobby mesh benchmark, matchbox side: the traffic of `mesh-bench` through N native
//! matchbox_socket peers in one full-mesh room of a matchbox_server, for the comparison.
//!
//! ```text
//! mesh-matchbox --url WS_URL [--peers N] [--seconds T] [--rate HZ] [--size BYTES]
//!               [--room NAME] [--runtime multi|current]
//! ```
//!
//! `--url` is the matchbox_server (`ws://HOST:PORT`); every peer joins the room `--room`
//! (default `mesh-PID`: a plain room is a full mesh of everyone in it). Each socket has two
//! channels, as a game's: 0 unreliable (unordered, no retransmission) for the updates and
//! 1 reliable (ordered) for the chat, and no ICE server (no STUN: host candidates only).
//! Each socket's message loop future runs on one tokio runtime, a multi-thread one with a
//! worker per CPU (`--runtime multi`, the default) or a current-thread one on a thread of its
//! own (`--runtime current`); matchbox_socket drives the WebRTC connections on smol's executor
//! threads. The game loop is `mesh-bench`'s: one thread polls every socket (`update_peers`,
//! then `receive` on both channels, then the sends that are due), then sleeps 1 ms. A broadcast
//! is one `send` per connected peer on the channel, with the same `Bytes` (no copy).
//! The measured window starts once every socket reports N-1 peers connected (matchbox reports a
//! peer connected once all its channels are open). CPU is the process's CPU time over the
//! window, every thread included (the game loop, tokio's and smol's), as a share of one core,
//! divided by N; the signaling server runs as a process of its own and is not counted.
//! Prints the `MESH ...` line of `mesh-bench`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use matchbox_socket::{PeerId, PeerState, RtcIceServerConfig, WebRtcSocket};
use netplay_bench::mesh::{Tally, UPDATE};
use netplay_bench::process_cpu_seconds;

const UNRELIABLE: usize = 0;
const RELIABLE: usize = 1;

struct Args {
    peers: usize,
    seconds: f64,
    rate: f64,
    size: usize,
    url: String,
    room: String,
    multi_thread: bool,
}

fn args() -> Args {
    let mut a = Args {
        peers: 4,
        seconds: 10.0,
        rate: 60.0,
        size: 100,
        url: String::new(),
        room: format!("mesh-{}", std::process::id()),
        multi_thread: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_default();
        match k.as_str() {
            "--peers" => a.peers = v.parse().expect("--peers N"),
            "--seconds" => a.seconds = v.parse().expect("--seconds T"),
            "--rate" => a.rate = v.parse().expect("--rate HZ"),
            "--size" => a.size = v.parse().expect("--size BYTES"),
            "--url" => a.url = v,
            "--room" => a.room = v,
            "--runtime" => {
                a.multi_thread = match v.as_str() {
                    "multi" => true,
                    "current" => false,
                    _ => panic!("--runtime multi|current"),
                }
            }
            other => panic!("unknown option {other}"),
        }
    }
    assert!(
        !a.url.is_empty(),
        "--url ws://HOST:PORT of a matchbox_server"
    );
    assert!(a.peers >= 2 && a.size >= 9);
    a
}

/// The runtime the message loops run on. A current-thread runtime gets a thread of its own
/// that runs it forever; the handle spawns onto it.
fn runtime(multi_thread: bool) -> (tokio::runtime::Handle, Option<tokio::runtime::Runtime>) {
    if multi_thread {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        (rt.handle().clone(), Some(rt))
    } else {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let handle = rt.handle().clone();
        std::thread::spawn(move || rt.block_on(std::future::pending::<()>()));
        (handle, None)
    }
}

/// One peer: its socket and the peers it is connected to, in the order they connected.
struct Peer {
    socket: WebRtcSocket,
    connected: Vec<PeerId>,
}

impl Peer {
    fn update_peers(&mut self) {
        for (id, state) in self.socket.update_peers() {
            match state {
                PeerState::Connected => self.connected.push(id),
                PeerState::Disconnected => self.connected.retain(|p| *p != id),
            }
        }
    }

    /// Sends `message` to every connected peer on `channel`; false when there is none.
    fn broadcast(&mut self, channel: usize, message: Bytes) -> bool {
        let channel = self.socket.channel_mut(channel);
        for &peer in &self.connected {
            if channel.try_send(message.clone(), peer).is_err() {
                return false;
            }
        }
        !self.connected.is_empty()
    }
}

fn main() {
    let a = args();
    let (rt, _rt) = runtime(a.multi_thread);
    let room_url = format!("{}/{}", a.url.trim_end_matches('/'), a.room);
    let mut peers: Vec<Peer> = (0..a.peers)
        .map(|_| {
            let (socket, message_loop) = WebRtcSocket::builder(room_url.as_str())
                .ice_server(RtcIceServerConfig {
                    urls: Vec::new(),
                    username: None,
                    credential: None,
                })
                .add_unreliable_channel()
                .add_reliable_channel()
                .build();
            rt.spawn(async move {
                if let Err(e) = message_loop.await {
                    eprintln!("a matchbox socket ended: {e}");
                }
            });
            Peer {
                socket,
                connected: Vec::new(),
            }
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for p in peers.iter_mut() {
            p.update_peers();
        }
        if peers.iter().all(|p| p.connected.len() == a.peers - 1) {
            break;
        }
        let counts: Vec<usize> = peers.iter().map(|p| p.connected.len()).collect();
        assert!(
            Instant::now() < deadline,
            "the mesh did not form: {counts:?}"
        );
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
            p.update_peers();
            for channel in [UNRELIABLE, RELIABLE] {
                for (_, packet) in p.socket.channel_mut(channel).receive() {
                    tally.received(&packet);
                }
            }
            if now >= next_update[i] {
                next_update[i] += interval;
                tally.stamp(&mut payload, UPDATE, now);
                if p.broadcast(UNRELIABLE, Bytes::copy_from_slice(&payload)) {
                    tally.sent(UPDATE, now);
                }
            }
            if now >= next_chat[i] {
                next_chat[i] += Duration::from_secs(1);
                let chat = tally.chat_line(now);
                let kind = chat[0];
                if p.broadcast(RELIABLE, Bytes::from(chat)) {
                    tally.sent(kind, now);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let cpu = process_cpu_seconds() - cpu0;
    let runtime = if a.multi_thread { "multi" } else { "current" };
    tally.print(
        a.peers,
        a.seconds,
        a.rate,
        a.size,
        cpu,
        &format!("impl=matchbox runtime={runtime}"),
    );
    // The sockets' connections live on smol's threads; there is nothing to wait for.
    std::process::exit(0);
}
