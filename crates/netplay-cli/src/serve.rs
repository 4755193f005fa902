//! `netplay serve`: the WebRTC signaling server (Godot `webrtc_signaling` protocol) with its
//! demo page, `/healthz` and `/metrics` on one port.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use netplay::signal::HubConfig;
use netplay::ws::TlsOptions;
use netplay_server::cluster::ClusterOptions;
use netplay_server::{serve, ServerOptions};

/// Arguments of `netplay serve`.
#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9080")]
    listen: SocketAddr,
    /// TLS certificate chain (PEM); with --tls-key the server speaks wss:// and https://.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve the files of this folder over HTTP instead of the embedded demo page.
    #[arg(long = "static")]
    static_dir: Option<PathBuf>,
    /// Most connections at once.
    #[arg(long, default_value_t = 4096)]
    max_peers: usize,
    /// Most lobbies at once.
    #[arg(long, default_value_t = 1024)]
    max_lobbies: usize,
    /// Milliseconds a new connection has to JOIN a lobby.
    #[arg(long, default_value_t = 1000)]
    join_timeout_ms: u64,
    /// Milliseconds after a SEAL before the lobby's members are closed.
    #[arg(long, default_value_t = 10_000)]
    seal_close_timeout_ms: u64,
    /// In server/client lobbies, announce only host<->client pairs (Godot's GDScript server),
    /// not every client to every other (the Node server, the default).
    #[arg(long)]
    host_client_only: bool,
    /// Messages per second a connection may send (0: no limit).
    #[arg(long, default_value_t = 100)]
    max_messages_per_second: u32,
    /// Milliseconds between WebSocket pings; a client that misses one is dropped (0: off).
    #[arg(long, default_value_t = 10_000)]
    ping_interval_ms: u64,
    /// Most connections from one IP address at once (0: no limit).
    #[arg(long, default_value_t = 0)]
    max_connections_per_ip: usize,
    /// Require clients to connect with `?token=TOKEN` in the URL.
    #[arg(long)]
    auth_token: Option<String>,
    /// Share lobbies with other `netplay serve` processes through this Redis server
    /// (`redis://[[user]:password@]host[:port][/db]`).
    #[arg(long)]
    redis: Option<String>,
    /// Milliseconds a node's keys live in Redis without refresh: a dead node's members leave
    /// their lobbies within 4/3 of it.
    #[arg(long, default_value_t = 3000, requires = "redis")]
    redis_ttl_ms: u64,
    /// Prefix of the Redis keys and channels (clusters sharing one Redis need different ones).
    #[arg(long, default_value = "netplay", requires = "redis")]
    redis_prefix: String,
    /// Seed for ids and lobby names (default: random).
    #[arg(long)]
    seed: Option<u64>,
    /// Worker threads (1: a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs the signaling server until SIGINT or SIGTERM.
pub(crate) fn run(args: ServeArgs) -> Result<(), BoxError> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(TlsOptions::server(&std::fs::read(k)?, &std::fs::read(c)?)?),
        _ => None,
    };
    let mut options = ServerOptions {
        hub: HubConfig {
            max_peers: args.max_peers,
            max_lobbies: args.max_lobbies,
            join_timeout: Duration::from_millis(args.join_timeout_ms),
            seal_close_timeout: Duration::from_millis(args.seal_close_timeout_ms),
            announce_clients_to_each_other: !args.host_client_only,
            max_messages_per_second: args.max_messages_per_second,
            ..HubConfig::default()
        },
        static_dir: args.static_dir.clone(),
        seed: args.seed,
        max_connections_per_ip: args.max_connections_per_ip,
        auth_token: args.auth_token.clone(),
        ..ServerOptions::default()
    };
    if let Some(url) = &args.redis {
        let mut cluster = ClusterOptions::new(url.parse()?);
        cluster.node_ttl = Duration::from_millis(args.redis_ttl_ms.max(30));
        cluster.prefix = args.redis_prefix.clone();
        options.cluster = Some(cluster);
    }
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
        println!("listening on {ws}://{addr} (demo page: {http}://{addr}/, metrics: {http}://{addr}/metrics)");
        tracing::info!(%addr, tls = tls.is_some(), cluster = args.redis.is_some(), "signaling server listening");
        let _ = std::io::stdout().flush();
        serve(listener, options, shutdown_signal()).await?;
        println!("stopped");
        Ok::<(), BoxError>(())
    })
}

/// Completes on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
