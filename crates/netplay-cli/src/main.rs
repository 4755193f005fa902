//! The `netplay` command: servers and test peers built on the netplay library.

mod echo;
mod rtc_echo;
mod serve;

use clap::{Parser, Subcommand};

/// netplay: WebSocket and WebRTC networking for games.
#[derive(Parser, Debug)]
#[command(name = "netplay", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The WebRTC signaling server (Godot's webrtc_signaling protocol) with a demo page.
    Serve(serve::ServeArgs),
    /// A WebSocket echo server: every text or binary message comes back as it was sent.
    Echo(echo::EchoArgs),
    /// A WebRTC echo peer: descriptions and candidates as JSON lines on stdin/stdout
    /// (docs/PROTOCOL.md); every data channel message comes back on its channel.
    RtcEcho(rtc_echo::RtcEchoArgs),
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

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Echo(args) => echo::run(args),
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
