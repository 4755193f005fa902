//! `netplay echo`: the WebSocket echo server, on the tokio driver or the polled peer.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use netplay::ws::{
    DeflateConfig, Event, PeerOptions, ReadyState, TcpServer, TlsOptions, WebSocketPeer, WriteMode,
};

/// Which driver serves the connections.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub(crate) enum Driver {
    /// The tokio driver (many connections, one task each).
    Tokio,
    /// The polled `WebSocketPeer`, as a Godot game would run it.
    Poll,
}

/// Arguments of `netplay echo`.
#[derive(Args, Debug)]
pub(crate) struct EchoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9080")]
    listen: SocketAddr,
    /// Driver.
    #[arg(long, value_enum, default_value_t = Driver::Tokio)]
    driver: Driver,
    /// TLS certificate chain (PEM); with --tls-key the server speaks wss://.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A sub-protocol to accept (repeatable); with none, any client is accepted.
    #[arg(long = "protocol")]
    protocols: Vec<String>,
    /// Largest message accepted; larger ones close the connection with 1009.
    #[arg(long, default_value_t = 64 << 20)]
    max_message: usize,
    /// Refuse permessage-deflate.
    #[arg(long)]
    no_compression: bool,
    /// Worker threads for the tokio driver (1: a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn tls(args: &EchoArgs) -> Result<Option<TlsOptions>, BoxError> {
    match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Ok(Some(TlsOptions::server(
            &std::fs::read(k)?,
            &std::fs::read(c)?,
        )?)),
        _ => Ok(None),
    }
}

fn announce(addr: SocketAddr, tls: bool) {
    let scheme = if tls { "wss" } else { "ws" };
    println!("listening on {scheme}://{addr}");
    let _ = std::io::stdout().flush();
}

/// Runs the echo server until the process is stopped.
pub(crate) fn run(args: EchoArgs) -> Result<(), BoxError> {
    let tls = tls(&args)?;
    let compression = (!args.no_compression).then(DeflateConfig::default);
    match args.driver {
        Driver::Tokio => run_tokio(&args, tls, compression),
        Driver::Poll => run_poll(&args, tls, compression),
    }
}

fn run_tokio(
    args: &EchoArgs,
    tls: Option<TlsOptions>,
    compression: Option<DeflateConfig>,
) -> Result<(), BoxError> {
    use netplay_server::ws::{accept, Accepted, ServerConfig};
    let rt = crate::runtime(args.threads)?;
    let config = std::sync::Arc::new(ServerConfig {
        supported_protocols: args.protocols.clone(),
        max_message_size: args.max_message,
        compression,
        tls: tls.clone(),
        ..ServerConfig::default()
    });
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        announce(listener.local_addr()?, tls.is_some());
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(c) => c,
                Err(_) => {
                    // Out of descriptors or similar: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let config = config.clone();
            tokio::spawn(async move {
                let mut ws = match accept(tcp, &config).await {
                    Ok(Accepted::WebSocket(ws)) => ws,
                    Ok(Accepted::Http(http)) => {
                        let _ = http
                            .respond(426, "Upgrade Required", "text/plain", b"WebSocket only\n")
                            .await;
                        return;
                    }
                    Err(_) => return,
                };
                while let Ok(Some(ev)) = ws.next_event().await {
                    if let Event::Message { kind, data } = ev {
                        if ws.queue_owned(kind, data).is_err() {
                            break;
                        }
                    }
                }
            });
        }
        #[allow(unreachable_code)]
        Ok::<(), BoxError>(())
    })
}

fn run_poll(
    args: &EchoArgs,
    tls: Option<TlsOptions>,
    compression: Option<DeflateConfig>,
) -> Result<(), BoxError> {
    let mut server = TcpServer::new();
    server.listen(args.listen)?;
    announce(
        server.local_addr().ok_or("no local address")?,
        tls.is_some(),
    );
    let options = PeerOptions {
        supported_protocols: args.protocols.clone(),
        inbound_buffer_size: args.max_message,
        outbound_buffer_size: args.max_message.saturating_mul(2),
        compression,
        ..PeerOptions::default()
    };
    let mut peers: Vec<WebSocketPeer> = Vec::new();
    loop {
        while let Some(stream) = server.take_connection() {
            let mut peer = WebSocketPeer::with_options(options.clone());
            if peer.accept_stream(stream, tls.as_ref()).is_ok() {
                peers.push(peer);
            }
        }
        let mut busy = false;
        for peer in &mut peers {
            peer.poll();
            if peer.ready_state() != ReadyState::Open {
                continue;
            }
            while let Some(packet) = peer.get_packet() {
                busy = true;
                let mode = if peer.was_string_packet() {
                    WriteMode::Text
                } else {
                    WriteMode::Binary
                };
                if peer.send(&packet, mode).is_err() {
                    let _ = peer.close(1011, "echo buffer full");
                }
            }
            peer.poll();
        }
        peers.retain(|p| p.ready_state() != ReadyState::Closed);
        if !busy {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}
