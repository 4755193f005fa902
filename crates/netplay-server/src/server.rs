//! The signaling server: a [`Hub`] behind the tokio WebSocket driver, with plain HTTP on the
//! same port (`/healthz`, `/metrics`, the demo page and static files).
//!
//! Owns the glue only: one task per connection moves text messages between its WebSocket and
//! the hub task, which owns the [`Hub`] and its timers. Lobby rules live in [`netplay::signal::hub`].

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use netplay::random::Rng;
use netplay::signal::{ConnId, Hub, HubConfig, HubStats, Transmit};
use netplay::ws::{Event, MessageKind};

use crate::cluster::{Cluster, ClusterEvent, ClusterOptions, ClusterStats};
use crate::limits::{token_ok, IpCounts, IpSlot};
use crate::ws::{accept, Accepted, HttpConnection, ServerConfig};

/// The demo page served at `/` when no static folder replaces it: netplay built for the
/// browser (`crates/netplay-demo`), whose JavaScript glue and module follow.
pub const DEMO_PAGE: &str = include_str!("../../../web/index.html");
/// The demo page's JavaScript glue, served at `/netplay_demo.js`.
pub const DEMO_JS: &str = include_str!("../../../web/netplay_demo.js");
/// The demo page's WebAssembly module, served at `/netplay_demo_bg.wasm`.
pub const DEMO_WASM: &[u8] = include_bytes!("../../../web/netplay_demo_bg.wasm");

/// Most messages waiting for one connection; a client that reads slower is closed.
const OUTBOX: usize = 1024;

/// Settings of a signaling server.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// Lobby limits and timeouts.
    pub hub: HubConfig,
    /// WebSocket settings (TLS, handshake timeout...). `max_message_size` is taken from `hub`.
    pub websocket: ServerConfig,
    /// A folder whose files are served over HTTP (`/` maps to `index.html`); `None` serves the
    /// embedded demo page at `/`.
    pub static_dir: Option<PathBuf>,
    /// Seed of the hub's id and name generator; `None` draws one from the OS. In a cluster it is
    /// mixed with the node's random id, so nodes never draw the same lobby names.
    pub seed: Option<u64>,
    /// Most connections at once from one IP address; 0: no limit. Connections over it are
    /// closed before the handshake.
    pub max_connections_per_ip: usize,
    /// A shared secret clients must present as `?token=...` in the URL; without it (or with a
    /// wrong one) the connection is closed with 4000 "Invalid token".
    pub auth_token: Option<String>,
    /// Share lobbies with other servers through Redis (see [`super::cluster`]); `None` keeps
    /// them in this process only.
    pub cluster: Option<ClusterOptions>,
}

enum ToHub {
    Open(ConnId, mpsc::Sender<Transmit>),
    Text(ConnId, String),
    Binary(ConnId),
    Gone(ConnId),
    Stats(tokio::sync::oneshot::Sender<(HubStats, Option<ClusterGauges>)>),
    /// Answered once everything sent before it is handled and written to Redis.
    Leave(tokio::sync::oneshot::Sender<()>),
}

/// The cluster's numbers for /metrics.
struct ClusterGauges {
    stats: ClusterStats,
    proxied_out: usize,
    proxied_in: usize,
}

/// Counters of the transport, next to the hub's own.
#[derive(Default)]
struct Counters {
    http_requests: AtomicU64,
    handshake_failures: AtomicU64,
    slow_clients: AtomicU64,
    refused_per_ip: AtomicU64,
    unauthorized: AtomicU64,
}

/// Serves until `shutdown` completes, then closes every WebSocket with 1001 and returns.
pub async fn serve(
    listener: TcpListener,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let cluster = match options.cluster.clone() {
        Some(c) => Some(
            Cluster::start(c)
                .await
                .map_err(|e| std::io::Error::other(format!("cluster: {e}")))?,
        ),
        None => None,
    };
    // Nodes of a cluster must not draw the same lobby names, even with the same seed.
    let salt = cluster.as_ref().map_or(0, |(c, _)| c.seed_salt());
    let rng = match options.seed {
        Some(seed) => Rng::seeded(seed ^ salt),
        None => Rng::os(),
    };
    let hub = Hub::new(options.hub.clone(), rng);
    let (to_hub, hub_rx) = mpsc::channel::<ToHub>(4096);
    let (stop_tx, stop_rx) = watch::channel(false);
    let hub_task = tokio::spawn(run_hub(hub, hub_rx, cluster));
    let mut ws_config = options.websocket.clone();
    ws_config.max_message_size = options.hub.max_message_size;
    let shared = Arc::new(Shared {
        ws_config,
        static_dir: options.static_dir.clone(),
        counters: Counters::default(),
        per_ip: Arc::new(IpCounts::new(options.max_connections_per_ip)),
        auth_token: options.auth_token.clone(),
    });
    let next_id = AtomicU64::new(1);
    tokio::pin!(shutdown);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((tcp, peer)) = accepted else {
                    tracing::warn!("accept failed; backing off");
                    // Out of descriptors or similar: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let Some(slot) = IpSlot::take(&shared.per_ip, peer.ip()) else {
                    shared.counters.refused_per_ip.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, "over the per-IP connection cap, refused");
                    drop(tcp);
                    continue;
                };
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                tasks.spawn(connection(tcp, slot, id, shared.clone(), to_hub.clone(), stop_rx.clone()));
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    tracing::info!(connections = tasks.len(), "shutting down");
    // Graceful shutdown: every connection sends a close frame and ends.
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    // Let the hub pass the last departures on to other nodes before it stops.
    let (tx, rx) = tokio::sync::oneshot::channel();
    if to_hub.send(ToHub::Leave(tx)).await.is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(3), rx).await;
    }
    drop(to_hub);
    hub_task.abort();
    Ok(())
}

struct Shared {
    ws_config: ServerConfig,
    static_dir: Option<PathBuf>,
    counters: Counters,
    per_ip: Arc<IpCounts>,
    auth_token: Option<String>,
}

/// The hub task: owns the [`Hub`] and, in a cluster, the [`Cluster`] routing.
async fn run_hub(
    mut hub: Hub,
    mut rx: mpsc::Receiver<ToHub>,
    cluster: Option<(Cluster, mpsc::Receiver<ClusterEvent>)>,
) {
    let mut outboxes: HashMap<ConnId, mpsc::Sender<Transmit>> = HashMap::new();
    let (mut cluster, mut cluster_rx) = match cluster {
        Some((c, r)) => (Some(c), Some(r)),
        None => (None, None),
    };
    let tick_every = cluster
        .as_ref()
        .map_or(Duration::from_secs(3600), |c| c.tick_interval());
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut local = Vec::new();
    loop {
        let deadline = hub.poll_timeout();
        let timer = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let cluster_event = async {
            match cluster_rx.as_mut() {
                Some(r) => r.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            m = rx.recv() => {
                let Some(msg) = m else { return };
                let now = Instant::now();
                match (msg, cluster.as_mut()) {
                    (ToHub::Open(conn, tx), c) => {
                        outboxes.insert(conn, tx);
                        hub.connect(conn, now);
                        if let Some(c) = c {
                            c.open(conn);
                        }
                    }
                    (ToHub::Text(conn, text), Some(c)) => {
                        c.receive(&mut hub, conn, Some(text), now, &mut local)
                    }
                    (ToHub::Text(conn, text), None) => hub.receive_text(conn, &text, now),
                    (ToHub::Binary(conn), Some(c)) => c.receive(&mut hub, conn, None, now, &mut local),
                    (ToHub::Binary(conn), None) => hub.receive_binary(conn, now),
                    (ToHub::Gone(conn), c) => {
                        outboxes.remove(&conn);
                        match c {
                            Some(c) => c.gone(&mut hub, conn, now),
                            None => hub.disconnect(conn, now),
                        }
                    }
                    (ToHub::Stats(reply), c) => {
                        let gauges = c.map(|c| {
                            let (proxied_out, proxied_in) = c.proxied();
                            ClusterGauges { stats: c.stats.clone(), proxied_out, proxied_in }
                        });
                        let _ = reply.send((hub.stats(), gauges));
                    }
                    (ToHub::Leave(reply), c) => {
                        if let Some(c) = c {
                            c.leave().await;
                        }
                        let _ = reply.send(());
                    }
                }
            }
            _ = timer => hub.handle_timeout(Instant::now()),
            ev = cluster_event => {
                if let (Some(ev), Some(c)) = (ev, cluster.as_mut()) {
                    c.event(&mut hub, ev, Instant::now(), &mut local);
                }
            }
            _ = tick.tick(), if cluster.is_some() => {
                if let Some(c) = cluster.as_mut() {
                    c.tick(&hub);
                }
            }
        }
        deliver(&mut hub, &mut outboxes, cluster.as_mut(), &mut local);
    }
}

/// Hands the hub's outputs (and the cluster's, in `extra`) to the connection tasks, or to other
/// nodes for connections proxied from them.
fn deliver(
    hub: &mut Hub,
    outboxes: &mut HashMap<ConnId, mpsc::Sender<Transmit>>,
    mut cluster: Option<&mut Cluster>,
    extra: &mut Vec<Transmit>,
) {
    let mut extra = extra.drain(..);
    while let Some(out) = extra.next().or_else(|| hub.poll_transmit()) {
        if let Some(c) = cluster.as_deref_mut() {
            if c.route_output(&out) {
                continue;
            }
        }
        let conn = match &out {
            Transmit::Send { conn, .. } | Transmit::Close { conn, .. } => *conn,
        };
        let Some(tx) = outboxes.get(&conn) else {
            continue;
        };
        if tx.try_send(out).is_err() {
            // The client does not read: drop it (its task sees the closed outbox).
            outboxes.remove(&conn);
            match cluster.as_deref_mut() {
                Some(c) => c.gone(hub, conn, Instant::now()),
                None => hub.disconnect(conn, Instant::now()),
            }
        }
    }
}

async fn connection(
    tcp: TcpStream,
    _slot: IpSlot,
    conn: ConnId,
    shared: Arc<Shared>,
    to_hub: mpsc::Sender<ToHub>,
    mut stop: watch::Receiver<bool>,
) {
    let mut ws = match accept(tcp, &shared.ws_config).await {
        Ok(Accepted::WebSocket(ws)) => ws,
        Ok(Accepted::Http(http)) => {
            shared
                .counters
                .http_requests
                .fetch_add(1, Ordering::Relaxed);
            http_request(http, &shared, &to_hub).await;
            return;
        }
        Err(e) => {
            tracing::debug!(conn, error = %e, "handshake failed");
            shared
                .counters
                .handshake_failures
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    // The query may carry the auth token: never log it.
    let path = ws.request().path.split('?').next().unwrap_or("");
    tracing::debug!(conn, path, "connected");
    if let Some(expected) = &shared.auth_token {
        if !token_ok(&ws.request().path, expected) {
            shared.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
            let _ = ws
                .close(4000, "Invalid token", Duration::from_secs(1))
                .await;
            return;
        }
    }
    let (tx, mut outbox) = mpsc::channel(OUTBOX);
    if to_hub.send(ToHub::Open(conn, tx)).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            out = outbox.recv() => match out {
                Some(Transmit::Send { text, .. }) => {
                    if ws.queue(MessageKind::Text, text.as_bytes()).is_err() {
                        break;
                    }
                    // Write now when nothing else is waiting; otherwise the next read flushes.
                    if outbox.is_empty() && ws.flush().await.is_err() {
                        break;
                    }
                }
                Some(Transmit::Close { code, reason, .. }) => {
                    let _ = ws.close(code, &reason, Duration::from_secs(2)).await;
                    break;
                }
                None => {
                    tracing::info!(conn, "client does not read, closing (1008)");
                    shared.counters.slow_clients.fetch_add(1, Ordering::Relaxed);
                    let _ = ws.close(1008, "Too slow", Duration::from_secs(1)).await;
                    break;
                }
            },
            ev = ws.next_event() => match ev {
                Ok(Some(Event::Message { kind: MessageKind::Text, data })) => {
                    // The WebSocket layer checked the UTF-8 already.
                    let text = String::from_utf8(data).unwrap_or_default();
                    if to_hub.send(ToHub::Text(conn, text)).await.is_err() {
                        break;
                    }
                }
                Ok(Some(Event::Message { kind: MessageKind::Binary, .. })) => {
                    if to_hub.send(ToHub::Binary(conn)).await.is_err() {
                        break;
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            },
            _ = stop.changed() => {
                let _ = ws.close(1001, "Server shutting down", Duration::from_secs(2)).await;
                break;
            }
        }
    }
    tracing::debug!(conn, "disconnected");
    let _ = to_hub.send(ToHub::Gone(conn)).await;
}

async fn http_request(http: HttpConnection, shared: &Shared, to_hub: &mpsc::Sender<ToHub>) {
    let path = http
        .request()
        .path
        .split('?')
        .next()
        .unwrap_or("/")
        .to_string();
    if http.request().method != "GET" && http.request().method != "HEAD" {
        let _ = http
            .respond(405, "Method Not Allowed", "text/plain", b"GET only\n")
            .await;
        return;
    }
    match path.as_str() {
        "/healthz" => {
            let _ = http.respond(200, "OK", "text/plain", b"ok\n").await;
        }
        "/metrics" => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if to_hub.send(ToHub::Stats(tx)).await.is_err() {
                return;
            }
            let Ok((stats, cluster)) = rx.await else {
                return;
            };
            let mut body = metrics_text(&stats, &shared.counters);
            if let Some(g) = cluster {
                cluster_metrics(&mut body, &g);
            }
            let _ = http
                .respond(200, "OK", "text/plain; version=0.0.4", body.as_bytes())
                .await;
        }
        _ => static_file(http, &path, shared.static_dir.as_deref()).await,
    }
}

async fn static_file(http: HttpConnection, path: &str, dir: Option<&std::path::Path>) {
    let Some(dir) = dir else {
        let (kind, body): (&str, &[u8]) = match path {
            "/" | "/index.html" => ("text/html; charset=utf-8", DEMO_PAGE.as_bytes()),
            "/netplay_demo.js" => ("text/javascript", DEMO_JS.as_bytes()),
            "/netplay_demo_bg.wasm" => ("application/wasm", DEMO_WASM),
            _ => ("", b"not found\n"),
        };
        let _ = if kind.is_empty() {
            http.respond(404, "Not Found", "text/plain", body).await
        } else {
            http.respond(200, "OK", kind, body).await
        };
        return;
    };
    // Only plain names below the folder: no "..", no absolute paths, no hidden files.
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "index.html" } else { rel };
    let safe = rel
        .split('/')
        .all(|part| !part.is_empty() && !part.starts_with('.') && !part.contains('\\'));
    if !safe {
        let _ = http
            .respond(404, "Not Found", "text/plain", b"not found\n")
            .await;
        return;
    }
    match tokio::fs::read(dir.join(rel)).await {
        Ok(body) => {
            let _ = http.respond(200, "OK", content_type(rel), &body).await;
        }
        Err(_) => {
            let _ = http
                .respond(404, "Not Found", "text/plain", b"not found\n")
                .await;
        }
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript",
        "wasm" => "application/wasm",
        "css" => "text/css",
        "json" => "application/json",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

/// Renders the hub's statistics and the transport counters as Prometheus text.
fn metrics_text(s: &HubStats, c: &Counters) -> String {
    use std::fmt::Write as _;
    let mut o = String::with_capacity(2048);
    let mut gauge = |name: &str, help: &str, v: u64| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    };
    gauge(
        "netplay_signal_connections",
        "Open signaling connections.",
        s.connections as u64,
    );
    gauge(
        "netplay_signal_waiting",
        "Connections that have not joined a lobby.",
        s.waiting as u64,
    );
    gauge("netplay_signal_lobbies", "Open lobbies.", s.lobbies as u64);
    gauge(
        "netplay_signal_sealed_lobbies",
        "Open sealed lobbies.",
        s.sealed_lobbies as u64,
    );
    gauge(
        "netplay_signal_members",
        "Members of all lobbies.",
        s.members as u64,
    );
    let mut counter = |name: &str, help: &str, v: u64| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
    };
    counter(
        "netplay_signal_connections_total",
        "Connections accepted.",
        s.connections_accepted,
    );
    counter(
        "netplay_signal_lobbies_created_total",
        "Lobbies created.",
        s.lobbies_created,
    );
    counter("netplay_signal_joins_total", "Successful joins.", s.joins);
    counter(
        "netplay_signal_messages_received_total",
        "Text messages received.",
        s.messages_received,
    );
    counter(
        "netplay_signal_messages_relayed_total",
        "Offers, answers and candidates relayed.",
        s.messages_relayed,
    );
    counter(
        "netplay_http_requests_total",
        "Plain HTTP requests.",
        c.http_requests.load(Ordering::Relaxed),
    );
    counter(
        "netplay_handshake_failures_total",
        "Failed WebSocket handshakes.",
        c.handshake_failures.load(Ordering::Relaxed),
    );
    counter(
        "netplay_slow_clients_total",
        "Clients closed for not reading.",
        c.slow_clients.load(Ordering::Relaxed),
    );
    counter(
        "netplay_refused_per_ip_total",
        "Connections refused by the per-IP cap.",
        c.refused_per_ip.load(Ordering::Relaxed),
    );
    counter(
        "netplay_unauthorized_total",
        "Connections closed for a missing or wrong token.",
        c.unauthorized.load(Ordering::Relaxed),
    );
    let _ = writeln!(o, "# HELP netplay_signal_errors_total Protocol errors by reason.\n# TYPE netplay_signal_errors_total counter");
    for (e, n) in &s.errors {
        let _ = writeln!(
            o,
            "netplay_signal_errors_total{{reason=\"{}\"}} {n}",
            e.reason()
        );
    }
    let _ = writeln!(o, "# HELP netplay_signal_closes_total Closes by reason.\n# TYPE netplay_signal_closes_total counter");
    for (r, n) in &s.closes {
        let _ = writeln!(
            o,
            "netplay_signal_closes_total{{code=\"{}\",reason=\"{}\"}} {n}",
            r.code(),
            r.reason()
        );
    }
    o
}

/// Appends the cluster's gauges and counters to the Prometheus text.
fn cluster_metrics(o: &mut String, g: &ClusterGauges) {
    use std::fmt::Write as _;
    let rows: [(&str, &str, &str, u64); 7] = [
        (
            "netplay_cluster_up",
            "gauge",
            "Whether this node is connected to Redis.",
            g.stats.up as u64,
        ),
        (
            "netplay_cluster_proxied_out",
            "gauge",
            "Connections of this node in lobbies of other nodes.",
            g.proxied_out as u64,
        ),
        (
            "netplay_cluster_proxied_in",
            "gauge",
            "Connections of other nodes in lobbies of this node.",
            g.proxied_in as u64,
        ),
        (
            "netplay_cluster_published_total",
            "counter",
            "Messages published to other nodes.",
            g.stats.published,
        ),
        (
            "netplay_cluster_received_total",
            "counter",
            "Messages received from other nodes.",
            g.stats.received,
        ),
        (
            "netplay_cluster_dead_nodes_total",
            "counter",
            "Other nodes found dead.",
            g.stats.dead_nodes,
        ),
        (
            "netplay_cluster_name_collisions_total",
            "counter",
            "Lobbies closed because another node had their name.",
            g.stats.name_collisions,
        ),
    ];
    for (name, kind, help, v) in rows {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
    }
}
