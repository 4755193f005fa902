//! `netplay chat`: a terminal chat on a lobby of the signaling server, the multiplayer stack
//! end to end.
//!
//! Joins (or creates) a lobby through [`Lobby`], runs Godot's `SceneMultiplayer` protocol on
//! it ([`SceneMultiplayer`]: in a server lobby, clients reach each other through the host), and
//! sends every stdin line to every peer as a raw packet on the reliable channel. It prints, one
//! per line on stdout: `lobby NAME` once the lobby is known, `joined as ID`, `+ ID` and `- ID`
//! as peers come and go, and `ID: text` for every line received (packets that are not UTF-8
//! text, such as the demo page's positions, are not printed). Diagnostics go to stderr.

use std::io::BufRead;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Args;
use netplay::multiplayer::{
    Lobby, LobbyEvent, LobbyMode, SceneEvent, SceneMultiplayer, Target, TransferMode,
};
use netplay::rtc::PeerConfig;

/// A chat on a lobby mesh: every stdin line goes to every peer of the lobby.
#[derive(Args, Debug)]
pub(crate) struct ChatArgs {
    /// The signaling server (`netplay serve`, or Godot's demo servers).
    #[arg(long, default_value = "ws://127.0.0.1:9080")]
    url: String,
    /// The lobby to join; without it a new lobby is created (its name is printed).
    #[arg(long, default_value = "")]
    lobby: String,
    /// Create a mesh lobby, every peer connected to every other (the default).
    #[arg(long, conflicts_with = "client_server")]
    mesh: bool,
    /// Create a server lobby: its creator is the server, the others reach each other through
    /// it.
    #[arg(long)]
    client_server: bool,
    #[command(flatten)]
    ice: crate::ice::IceArgs,
    /// Gather only loopback candidates (tests on one machine).
    #[arg(long)]
    loopback: bool,
    /// Leave after this many seconds (0: when stdin ends).
    #[arg(long, default_value_t = 0)]
    exit_after: u64,
}

/// How long the chat keeps polling after stdin ended, so the last lines leave.
const LINGER: Duration = Duration::from_millis(500);

pub(crate) fn run(args: ChatArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut config = if args.loopback {
        PeerConfig::loopback()
    } else {
        PeerConfig::default()
    };
    args.ice.apply(&mut config);
    let mode = if args.client_server {
        LobbyMode::ServerClient
    } else {
        LobbyMode::Mesh
    };
    let lobby = Lobby::connect(&args.url, &args.lobby, mode, config)?;
    let mut scene = SceneMultiplayer::new(lobby);

    let (tx, lines) = mpsc::channel::<Option<String>>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(Some(line)).is_err() {
                return;
            }
        }
        let _ = tx.send(None);
    });

    let started = Instant::now();
    let mut stdin_done: Option<Instant> = None;
    loop {
        scene.poll();
        while let Some(event) = scene.peer_mut().poll_lobby_event() {
            match event {
                LobbyEvent::Joined { lobby } => println!("lobby {lobby}"),
                LobbyEvent::Id { id, .. } => println!("joined as {id}"),
                LobbyEvent::Sealed => eprintln!("chat: the lobby is sealed"),
                LobbyEvent::SignalingClosed { code, reason } => {
                    eprintln!("chat: signaling closed: {code} {reason}")
                }
                LobbyEvent::Error(e) => eprintln!("chat: {e}"),
                other => eprintln!("chat: {other:?}"),
            }
        }
        while let Some(event) = scene.poll_event() {
            match event {
                SceneEvent::PeerConnected(id) => println!("+ {id}"),
                SceneEvent::PeerDisconnected(id) => println!("- {id}"),
                // Text only: the demo page's position updates (binary, starting with 0xFF,
                // which UTF-8 never has) share the lobby.
                SceneEvent::Packet { from, data, .. } => {
                    if let Ok(text) = std::str::from_utf8(&data) {
                        println!("{from}: {text}");
                    }
                }
                SceneEvent::Malformed { from, reason } => {
                    eprintln!("chat: dropped a packet from {from}: {reason}")
                }
                _ => {}
            }
        }
        loop {
            match lines.try_recv() {
                Ok(Some(line)) => {
                    let line = line.trim_end_matches('\r');
                    if line.is_empty() {
                        continue;
                    }
                    if let Err(e) = scene.send_bytes(
                        line.as_bytes(),
                        Target::Broadcast,
                        TransferMode::Reliable,
                        0,
                    ) {
                        eprintln!("chat: not sent ({e})");
                    }
                }
                Ok(None) | Err(mpsc::TryRecvError::Disconnected) => {
                    stdin_done.get_or_insert_with(Instant::now);
                    break;
                }
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        if args.exit_after > 0 && started.elapsed() >= Duration::from_secs(args.exit_after) {
            return Ok(());
        }
        if args.exit_after == 0 && stdin_done.is_some_and(|t| t.elapsed() >= LINGER) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
