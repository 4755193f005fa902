//! The `netplay` command: servers and test peers built on the netplay library.
#![forbid(unsafe_code)]

mod chat;
mod echo;
mod ice;
mod relay;
mod rtc_echo;
mod serve;

use clap::{Parser, Subcommand};

/// netplay: WebSocket and WebRTC networking for games.
#[derive(Parser, Debug)]
#[command(name = "netplay", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log level on stderr: off, error, warn, info, debug or trace.
    #[arg(long, global = true, default_value = "info")]
    log_level: tracing_subscriber::filter::LevelFilter,
    /// Log format on stderr: `text` (one line per event with key=value fields) or `json` (one
    /// JSON object per line).
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The WebRTC signaling server (Godot's webrtc_signaling protocol) with a demo page.
    Serve(serve::ServeArgs),
    /// A relay for Godot's WebSocketMultiplayerPeer clients: peer 1 with the SceneMultiplayer
    /// relay, one session per URL path (`ws://HOST:9081/NAME`).
    Relay(relay::RelayArgs),
    /// A WebSocket echo server: every text or binary message comes back as it was sent.
    Echo(echo::EchoArgs),
    /// A WebRTC echo peer: descriptions and candidates as JSON lines on stdin/stdout
    /// (docs/PROTOCOL.md); every data channel message comes back on its channel.
    RtcEcho(rtc_echo::RtcEchoArgs),
    /// A terminal chat on a lobby of a signaling server: prints `lobby NAME`, `joined as ID`,
    /// `+ ID`/`- ID` and `ID: text`; every stdin line goes to every peer.
    Chat(chat::ChatArgs),
}

/// A tokio runtime with `threads` workers; 1 gives a single-threaded runtime (the fastest for
/// one pinned core).
pub(crate) fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

/// Structured logs on stderr (stdout stays for what the commands print).
fn init_logs(level: tracing_subscriber::filter::LevelFilter, format: &str) {
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_level, &cli.log_format);
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Relay(args) => relay::run(args),
        Command::Echo(args) => echo::run(args),
        Command::Chat(args) => chat::run(args),
        Command::RtcEcho(args) => return std::process::ExitCode::from(rtc_echo::run(args)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netplay: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
