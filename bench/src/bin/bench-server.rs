//! Echo servers for the benchmark, one per implementation, each written the way a user of that
//! crate would write it (its documented fast path, default settings, no compression).
//!
//! `bench-server --impl netplay|tungstenite|fastwebsockets|raw --listen 127.0.0.1:PORT`
//!
//! Runs on a single-threaded tokio runtime (`new_current_thread`) and prints `listening` once
//! the socket is bound. Every accepted socket gets `TCP_NODELAY` (netplay sets it itself; the
//! others get it here so that no server waits on Nagle's algorithm).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Impl {
    Netplay,
    Tungstenite,
    Fastwebsockets,
    Raw,
}

fn usage() -> ! {
    eprintln!(
        "usage: bench-server --impl netplay|tungstenite|fastwebsockets|raw --listen 127.0.0.1:PORT"
    );
    std::process::exit(2)
}

fn main() {
    let mut imp = None;
    let mut listen: Option<SocketAddr> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--impl" => {
                imp = Some(match args.next().as_deref() {
                    Some("netplay") => Impl::Netplay,
                    Some("tungstenite") => Impl::Tungstenite,
                    Some("fastwebsockets") => Impl::Fastwebsockets,
                    Some("raw") => Impl::Raw,
                    _ => usage(),
                })
            }
            "--listen" => listen = args.next().and_then(|s| s.parse().ok()),
            _ => usage(),
        }
    }
    let (Some(imp), Some(listen)) = (imp, listen) else {
        usage()
    };
    netplay_bench::raise_nofile_limit();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(listen).await.expect("bind");
        println!("listening");
        let netplay_config = Arc::new(netplay_server::ws::ServerConfig {
            max_message_size: 64 << 20,
            ..Default::default()
        });
        loop {
            let tcp = match listener.accept().await {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    eprintln!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            match imp {
                Impl::Netplay => {
                    let config = netplay_config.clone();
                    tokio::spawn(async move {
                        let _ = netplay_echo(tcp, &config).await;
                    });
                }
                Impl::Tungstenite => {
                    let _ = tcp.set_nodelay(true);
                    tokio::spawn(async move {
                        let _ = tungstenite_echo(tcp).await;
                    });
                }
                Impl::Fastwebsockets => {
                    let _ = tcp.set_nodelay(true);
                    tokio::spawn(fastwebsockets_echo::serve(tcp));
                }
                Impl::Raw => {
                    let _ = tcp.set_nodelay(true);
                    tokio::spawn(async move {
                        let _ = raw_echo(tcp).await;
                    });
                }
            }
        }
    });
}

/// netplay's tokio driver: `accept`, then `next_event` / `queue_owned` (the received message is
/// handed back without a copy; queued output is flushed before the next read, so pipelined
/// messages leave in one write).
async fn netplay_echo(
    tcp: TcpStream,
    config: &netplay_server::ws::ServerConfig,
) -> Result<(), netplay::ws::Error> {
    use netplay_server::ws::{accept, Accepted};
    let Accepted::WebSocket(mut ws) = accept(tcp, config).await? else {
        return Ok(());
    };
    while let Ok(Some(ev)) = ws.next_event().await {
        if let netplay::ws::Event::Message { kind, data } = ev {
            ws.queue_owned(kind, data)?;
        }
    }
    Ok(())
}

/// tokio-tungstenite: `accept_async`, then `next()` / `send()` (its README's echo server).
async fn tungstenite_echo(tcp: TcpStream) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    use futures_util::{SinkExt, StreamExt};
    let mut ws = tokio_tungstenite::accept_async(tcp).await?;
    while let Some(msg) = ws.next().await {
        let msg = msg?;
        if msg.is_binary() || msg.is_text() {
            ws.send(msg).await?;
        }
    }
    Ok(())
}

/// fastwebsockets: its `echo_server` example — hyper's HTTP/1 server with the `upgrade` module,
/// `FragmentCollector` over the upgraded stream, auto-close and auto-pong on (the defaults).
mod fastwebsockets_echo {
    use fastwebsockets::{upgrade, FragmentCollector, OpCode, WebSocketError};
    use http_body_util::Empty;
    use hyper::body::{Bytes, Incoming};
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper::{Request, Response};
    use tokio::net::TcpStream;

    async fn handle_client(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
        let mut ws = FragmentCollector::new(fut.await?);
        loop {
            let frame = ws.read_frame().await?;
            match frame.opcode {
                OpCode::Close => break,
                OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
                _ => {}
            }
        }
        Ok(())
    }

    async fn server_upgrade(
        mut req: Request<Incoming>,
    ) -> Result<Response<Empty<Bytes>>, WebSocketError> {
        let (response, fut) = upgrade::upgrade(&mut req)?;
        tokio::task::spawn(async move {
            let _ = tokio::task::unconstrained(handle_client(fut)).await;
        });
        Ok(response)
    }

    pub async fn serve(tcp: TcpStream) {
        let io = hyper_util::rt::TokioIo::new(tcp);
        let conn = http1::Builder::new()
            .serve_connection(io, service_fn(server_upgrade))
            .with_upgrades();
        let _ = conn.await;
    }
}

/// The ceiling: bytes in, the same bytes out, no framing.
async fn raw_echo(mut tcp: TcpStream) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tcp.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        tcp.write_all(&buf[..n]).await?;
    }
}
