//! The `netplay` command: servers and test peers built on the netplay library.

mod echo;
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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Echo(args) => echo::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netplay: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
