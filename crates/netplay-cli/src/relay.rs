//! `netplay relay`: a headless `WebSocketMultiplayerPeer` server (peer 1) with Godot's
//! `SceneMultiplayer` relay, one session per URL path, with `/healthz` and `/metrics`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use netplay::ws::TlsOptions;
use netplay_server::{relay, RelayOptions};

/// Arguments of `netplay relay`.
#[derive(Args, Debug)]
pub(crate) struct RelayArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9081")]
    listen: SocketAddr,
    /// TLS certificate chain (PEM); with --tls-key the server speaks wss:// and https://.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Most sessions at once.
    #[arg(long, default_value_t = 1024)]
    max_sessions: usize,
    /// Most clients in one session.
    #[arg(long, default_value_t = 256)]
    max_peers: usize,
    /// Largest packet a client may send, in bytes (above it: closed with 1009).
    #[arg(long, default_value_t = 65536)]
    max_message: usize,
    /// Packets per second one client may send (0: no limit).
    #[arg(long, default_value_t = 0)]
    max_packets_per_second: u32,
    /// Most connections from one IP address at once (0: no limit).
    #[arg(long, default_value_t = 0)]
    max_connections_per_ip: usize,
    /// Milliseconds between WebSocket pings; a client that misses one is dropped (0: off).
    #[arg(long, default_value_t = 10_000)]
    ping_interval_ms: u64,
    /// Require clients to connect with `?token=TOKEN` in the URL.
    #[arg(long)]
    auth_token: Option<String>,
    /// Seed for the ids (default: random).
    #[arg(long)]
    seed: Option<u64>,
    /// Worker threads (1: a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs the relay until SIGINT or SIGTERM.
pub(crate) fn run(args: RelayArgs) -> Result<(), BoxError> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(TlsOptions::server(&std::fs::read(k)?, &std::fs::read(c)?)?),
        _ => None,
    };
    let mut options = RelayOptions {
        max_sessions: args.max_sessions,
        max_peers_per_session: args.max_peers,
        max_connections_per_ip: args.max_connections_per_ip,
        max_packets_per_second: args.max_packets_per_second,
        auth_token: args.auth_token.clone(),
        seed: args.seed,
        ..RelayOptions::default()
    };
    options.websocket.max_message_size = args.max_message;
    options.websocket.tls = tls.clone();
    options.websocket.heartbeat_interval =
        (args.ping_interval_ms > 0).then(|| Duration::from_millis(args.ping_interval_ms));
    let rt = crate::runtime(args.threads)?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        let addr = listener.local_addr()?;
        let (ws, http) = if tls.is_some() {
            ("wss", "https")
        } else {
            ("ws", "http")
        };
        println!("listening on {ws}://{addr} (sessions: {ws}://{addr}/NAME, metrics: {http}://{addr}/metrics)");
        tracing::info!(%addr, tls = tls.is_some(), "relay listening");
        let _ = std::io::stdout().flush();
        relay(listener, options, crate::serve::shutdown_signal()).await?;
        println!("stopped");
        Ok::<(), BoxError>(())
    })
}
