//! The relay server: Godot's `WebSocketMultiplayerPeer` server (peer 1) running the
//! `SceneMultiplayer` relay, for games whose clients reach each other through a server. Each
//! URL path is its own session with its own ids (`ws://host:9081/ROOM`), so one process
//! serves many games; `/healthz` and `/metrics` answer plain HTTP on the same port.
//!
//! Owns the sessions, their ids and limits, and the glue between connections and sessions:
//! one task per connection and one per session, the session task owning a
//! [`SceneCore`]. The protocol itself (admission, `ADD_PEER`/`DEL_PEER` announcements,
//! `RELAY` in both directions) is the `netplay` crate's sans-IO [`SceneCore`]; the wire of
//! the id handshake is Godot's (`websocket_multiplayer_peer.cpp`, `_send_sys`: the server's
//! first message to a client is its id as 4 little-endian bytes). The relay runs no game:
//! packets addressed to the server itself, remote calls and replication are counted and
//! dropped.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use netplay::multiplayer::{
    generate_unique_id, ConnectionStatus, SceneCore, SceneEvent, SceneTransmit, TransferMode,
};
use netplay::random::Rng;
use netplay::ws::{Event, MessageKind};

use crate::limits::{token_ok, IpCounts, IpSlot};
use crate::ws::{accept, Accepted, HttpConnection, ServerConfig};

/// Most packets waiting for one connection; a client that reads slower is closed with 1008.
const OUTBOX: usize = 1024;
/// Most packets from all connections waiting for one session task.
const INBOX: usize = 4096;
/// Longest session name (the URL path, without the query).
pub const MAX_SESSION_NAME: usize = 256;

/// Settings of a relay server.
#[derive(Clone, Debug)]
pub struct RelayOptions {
    /// WebSocket settings (TLS, handshake timeout, heartbeat, largest message: 64 KiB by
    /// default, Godot's default inbound buffer).
    pub websocket: ServerConfig,
    /// Most sessions at once; a connection that would open one more is closed with 1013.
    pub max_sessions: usize,
    /// Most clients in one session; one more is closed with 1013.
    pub max_peers_per_session: usize,
    /// Most connections at once from one IP address; 0: no limit. Connections over it are
    /// closed before the handshake.
    pub max_connections_per_ip: usize,
    /// Packets per second one client may send (0: no limit); over it, the client is closed
    /// with 1008.
    pub max_packets_per_second: u32,
    /// A shared secret clients must present as `?token=...` in the URL; without it (or with a
    /// wrong one) the connection is closed with 1008 "Invalid token".
    pub auth_token: Option<String>,
    /// Seed of the id generator; `None` draws ids from the OS.
    pub seed: Option<u64>,
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            websocket: ServerConfig {
                max_message_size: 64 << 10,
                ..ServerConfig::default()
            },
            max_sessions: 1024,
            max_peers_per_session: 256,
            max_connections_per_ip: 0,
            max_packets_per_second: 0,
            auth_token: None,
            seed: None,
        }
    }
}

/// Counters for `/metrics`.
#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    refused_full: AtomicU64,
    refused_per_ip: AtomicU64,
    refused_name: AtomicU64,
    unauthorized: AtomicU64,
    handshake_failures: AtomicU64,
    http_requests: AtomicU64,
    slow_clients: AtomicU64,
    rate_limited: AtomicU64,
    packets_in: AtomicU64,
    bytes_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_out: AtomicU64,
    to_server: AtomicU64,
    unsupported: AtomicU64,
    malformed: AtomicU64,
}

/// A session's entry in the registry: its inbox and how many clients it has.
struct Entry {
    inbox: mpsc::Sender<ToSession>,
    members: usize,
}

struct Shared {
    options: RelayOptions,
    counters: Counters,
    per_ip: Arc<IpCounts>,
    sessions: Mutex<HashMap<String, Entry>>,
    /// Ids of new sessions' generators come from here, so that a seed gives a repeatable run.
    rng: Mutex<Rng>,
    stop: watch::Receiver<bool>,
}

enum ToSession {
    Join {
        outbox: mpsc::Sender<Out>,
        id: oneshot::Sender<i32>,
    },
    Packet(i32, Vec<u8>),
    Gone(i32),
}

enum Out {
    Packet(Vec<u8>),
    Close(u16, &'static str),
}

/// Serves until `shutdown` completes, then closes every client with 1001 and returns.
pub async fn relay(
    listener: TcpListener,
    options: RelayOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let rng = match options.seed {
        Some(seed) => Rng::seeded(seed),
        None => Rng::os(),
    };
    let shared = Arc::new(Shared {
        per_ip: Arc::new(IpCounts::new(options.max_connections_per_ip)),
        options,
        counters: Counters::default(),
        sessions: Mutex::new(HashMap::new()),
        rng: Mutex::new(rng),
        stop: stop_rx,
    });
    tokio::pin!(shutdown);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((tcp, peer)) = accepted else {
                    tracing::warn!("accept failed; backing off");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let Some(slot) = IpSlot::take(&shared.per_ip, peer.ip()) else {
                    shared.counters.refused_per_ip.fetch_add(1, Ordering::Relaxed);
                    drop(tcp);
                    continue;
                };
                tasks.spawn(connection(tcp, slot, shared.clone()));
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    tracing::info!(connections = tasks.len(), "shutting down");
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// A client's place in its session; leaving the registry when the last one goes.
struct Membership {
    shared: Arc<Shared>,
    name: String,
}

impl Membership {
    /// Joins session `name`, opening it if it does not exist; `Err` with the close reason when
    /// a limit says no.
    fn join(
        shared: &Arc<Shared>,
        name: &str,
    ) -> Result<(Membership, mpsc::Sender<ToSession>), &'static str> {
        let mut sessions = shared.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let inbox = match sessions.get_mut(name) {
            Some(entry) => {
                if entry.members >= shared.options.max_peers_per_session {
                    return Err("Session full");
                }
                entry.members += 1;
                entry.inbox.clone()
            }
            None => {
                if sessions.len() >= shared.options.max_sessions {
                    return Err("Too many sessions");
                }
                let (inbox, rx) = mpsc::channel(INBOX);
                let seed = shared
                    .rng
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .next_u64();
                tokio::spawn(session(rx, Rng::seeded(seed), shared.clone()));
                sessions.insert(
                    name.to_string(),
                    Entry {
                        inbox: inbox.clone(),
                        members: 1,
                    },
                );
                inbox
            }
        };
        Ok((
            Membership {
                shared: shared.clone(),
                name: name.to_string(),
            },
            inbox,
        ))
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut sessions = self
            .shared
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = sessions.get_mut(&self.name) {
            entry.members -= 1;
            if entry.members == 0 {
                // The session task ends once the last connection drops its inbox sender.
                sessions.remove(&self.name);
            }
        }
    }
}

/// The session task: ids, the outboxes of its clients and the scene protocol.
async fn session(mut inbox: mpsc::Receiver<ToSession>, mut rng: Rng, shared: Arc<Shared>) {
    let mut core = SceneCore::new();
    core.set_local(1, true);
    core.handle_status(ConnectionStatus::Connected);
    let mut outboxes: HashMap<i32, mpsc::Sender<Out>> = HashMap::new();
    while let Some(msg) = inbox.recv().await {
        let now = Instant::now();
        match msg {
            ToSession::Join { outbox, id: reply } => {
                let mut id = generate_unique_id(&mut rng);
                while outboxes.contains_key(&id) {
                    id = generate_unique_id(&mut rng);
                }
                // Godot's id message comes before anything else on the connection.
                if outbox
                    .try_send(Out::Packet(id.to_le_bytes().to_vec()))
                    .is_err()
                    || reply.send(id).is_err()
                {
                    continue;
                }
                outboxes.insert(id, outbox);
                core.handle_peer_connected(id, now);
            }
            ToSession::Packet(from, data) => {
                if outboxes.contains_key(&from) {
                    core.handle_packet(from, TransferMode::Reliable, 0, &data);
                }
            }
            ToSession::Gone(id) => {
                if outboxes.remove(&id).is_some() {
                    core.handle_peer_disconnected(id);
                }
            }
        }
        drain(&mut core, &mut outboxes, &shared.counters);
    }
}

/// Sends what the core wants sent and counts what it heard.
fn drain(core: &mut SceneCore, outboxes: &mut HashMap<i32, mpsc::Sender<Out>>, c: &Counters) {
    // Removing a client that does not read queues its DEL_PEER announcements: they are sent
    // by the same loop.
    while let Some(t) = core.poll_transmit() {
        match t {
            SceneTransmit::Packet { to, data, .. } => {
                let Some(outbox) = outboxes.get(&to) else {
                    continue;
                };
                let len = data.len() as u64;
                if outbox.try_send(Out::Packet(data)).is_ok() {
                    c.packets_out.fetch_add(1, Ordering::Relaxed);
                    c.bytes_out.fetch_add(len, Ordering::Relaxed);
                } else {
                    // Its task sees the closed outbox and closes it with 1008.
                    outboxes.remove(&to);
                    core.handle_peer_disconnected(to);
                }
            }
            SceneTransmit::Disconnect(id) => {
                if let Some(outbox) = outboxes.remove(&id) {
                    let _ = outbox.try_send(Out::Close(1000, "Disconnected"));
                    core.handle_peer_disconnected(id);
                }
            }
        }
    }
    while let Some(event) = core.poll_event() {
        match event {
            SceneEvent::Packet { .. } => {
                c.to_server.fetch_add(1, Ordering::Relaxed);
            }
            SceneEvent::Unsupported { .. } => {
                c.unsupported.fetch_add(1, Ordering::Relaxed);
            }
            SceneEvent::Malformed { from, reason } => {
                tracing::debug!(from, reason, "malformed packet dropped");
                c.malformed.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

/// The session name of a request path: the path without its query.
fn session_name(path: &str) -> Option<&str> {
    let name = path.split('?').next().unwrap_or("");
    (name.starts_with('/') && name.len() <= MAX_SESSION_NAME).then_some(name)
}

async fn connection(tcp: TcpStream, _slot: IpSlot, shared: Arc<Shared>) {
    let c = &shared.counters;
    let mut ws = match accept(tcp, &shared.options.websocket).await {
        Ok(Accepted::WebSocket(ws)) => ws,
        Ok(Accepted::Http(http)) => {
            c.http_requests.fetch_add(1, Ordering::Relaxed);
            http_request(http, &shared).await;
            return;
        }
        Err(e) => {
            tracing::debug!(error = %e, "handshake failed");
            c.handshake_failures.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    if let Some(expected) = &shared.options.auth_token {
        if !token_ok(&ws.request().path, expected) {
            c.unauthorized.fetch_add(1, Ordering::Relaxed);
            let _ = ws
                .close(1008, "Invalid token", Duration::from_secs(1))
                .await;
            return;
        }
    }
    let Some(name) = session_name(&ws.request().path).map(str::to_string) else {
        c.refused_name.fetch_add(1, Ordering::Relaxed);
        let _ = ws
            .close(1008, "Invalid session name", Duration::from_secs(1))
            .await;
        return;
    };
    let (membership, to_session) = match Membership::join(&shared, &name) {
        Ok(m) => m,
        Err(reason) => {
            c.refused_full.fetch_add(1, Ordering::Relaxed);
            let _ = ws.close(1013, reason, Duration::from_secs(1)).await;
            return;
        }
    };
    c.connections.fetch_add(1, Ordering::Relaxed);
    let (outbox_tx, mut outbox) = mpsc::channel(OUTBOX);
    let (id_tx, id_rx) = oneshot::channel();
    let joined = to_session
        .send(ToSession::Join {
            outbox: outbox_tx,
            id: id_tx,
        })
        .await;
    let Ok(id) = (match joined {
        Ok(()) => id_rx.await,
        Err(_) => return,
    }) else {
        return;
    };
    tracing::debug!(session = %name, id, "joined");
    let limit = shared.options.max_packets_per_second;
    let mut window = (Instant::now(), 0u32);
    let mut stop = shared.stop.clone();
    loop {
        tokio::select! {
            out = outbox.recv() => match out {
                Some(Out::Packet(data)) => {
                    if ws.queue_owned(MessageKind::Binary, data).is_err() {
                        break;
                    }
                    if outbox.is_empty() && ws.flush().await.is_err() {
                        break;
                    }
                }
                Some(Out::Close(code, reason)) => {
                    let _ = ws.close(code, reason, Duration::from_secs(2)).await;
                    break;
                }
                None => {
                    c.slow_clients.fetch_add(1, Ordering::Relaxed);
                    let _ = ws.close(1008, "Too slow", Duration::from_secs(1)).await;
                    break;
                }
            },
            ev = ws.next_event() => match ev {
                // Godot sends binary messages; a text one carries bytes just the same.
                Ok(Some(Event::Message { data, .. })) => {
                    if limit > 0 {
                        let now = Instant::now();
                        if now.duration_since(window.0) >= Duration::from_secs(1) {
                            window = (now, 0);
                        }
                        window.1 += 1;
                        if window.1 > limit {
                            c.rate_limited.fetch_add(1, Ordering::Relaxed);
                            let _ = ws.close(1008, "Too many packets", Duration::from_secs(1)).await;
                            break;
                        }
                    }
                    c.packets_in.fetch_add(1, Ordering::Relaxed);
                    c.bytes_in.fetch_add(data.len() as u64, Ordering::Relaxed);
                    if to_session.send(ToSession::Packet(id, data)).await.is_err() {
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
    tracing::debug!(session = %name, id, "left");
    let _ = to_session.send(ToSession::Gone(id)).await;
    drop(membership);
}

async fn http_request(http: HttpConnection, shared: &Shared) {
    let path = http.request().path.split('?').next().unwrap_or("/");
    match path {
        "/healthz" => {
            let _ = http.respond(200, "OK", "text/plain", b"ok\n").await;
        }
        "/metrics" => {
            let body = metrics_text(shared);
            let _ = http
                .respond(200, "OK", "text/plain; version=0.0.4", body.as_bytes())
                .await;
        }
        _ => {
            let _ = http
                .respond(
                    404,
                    "Not Found",
                    "text/plain",
                    b"a netplay relay: connect a WebSocketMultiplayerPeer client to ws://HOST:PORT/SESSION\n",
                )
                .await;
        }
    }
}

/// The relay's gauges and counters as Prometheus text.
fn metrics_text(shared: &Shared) -> String {
    use std::fmt::Write as _;
    let (sessions, peers) = {
        let s = shared.sessions.lock().unwrap_or_else(|e| e.into_inner());
        (s.len() as u64, s.values().map(|e| e.members as u64).sum())
    };
    let c = &shared.counters;
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let rows: [(&str, &str, &str, u64); 18] = [
        (
            "netplay_relay_sessions",
            "gauge",
            "Open sessions.",
            sessions,
        ),
        (
            "netplay_relay_peers",
            "gauge",
            "Clients in all sessions.",
            peers,
        ),
        (
            "netplay_relay_connections_total",
            "counter",
            "Clients that joined a session.",
            n(&c.connections),
        ),
        (
            "netplay_relay_refused_full_total",
            "counter",
            "Clients refused by the session or peer limits.",
            n(&c.refused_full),
        ),
        (
            "netplay_relay_refused_name_total",
            "counter",
            "Clients refused for an invalid session name.",
            n(&c.refused_name),
        ),
        (
            "netplay_refused_per_ip_total",
            "counter",
            "Connections refused by the per-IP cap.",
            n(&c.refused_per_ip),
        ),
        (
            "netplay_unauthorized_total",
            "counter",
            "Connections closed for a missing or wrong token.",
            n(&c.unauthorized),
        ),
        (
            "netplay_handshake_failures_total",
            "counter",
            "Failed WebSocket handshakes.",
            n(&c.handshake_failures),
        ),
        (
            "netplay_http_requests_total",
            "counter",
            "Plain HTTP requests.",
            n(&c.http_requests),
        ),
        (
            "netplay_slow_clients_total",
            "counter",
            "Clients closed for not reading.",
            n(&c.slow_clients),
        ),
        (
            "netplay_relay_rate_limited_total",
            "counter",
            "Clients closed for sending too many packets.",
            n(&c.rate_limited),
        ),
        (
            "netplay_relay_packets_received_total",
            "counter",
            "Packets received from clients.",
            n(&c.packets_in),
        ),
        (
            "netplay_relay_bytes_received_total",
            "counter",
            "Bytes received from clients.",
            n(&c.bytes_in),
        ),
        (
            "netplay_relay_packets_sent_total",
            "counter",
            "Packets sent to clients (relayed packets and announcements).",
            n(&c.packets_out),
        ),
        (
            "netplay_relay_bytes_sent_total",
            "counter",
            "Bytes sent to clients.",
            n(&c.bytes_out),
        ),
        (
            "netplay_relay_packets_to_server_total",
            "counter",
            "Raw packets addressed to the relay itself, dropped.",
            n(&c.to_server),
        ),
        (
            "netplay_relay_unsupported_total",
            "counter",
            "Remote calls and replication packets, dropped.",
            n(&c.unsupported),
        ),
        (
            "netplay_relay_malformed_total",
            "counter",
            "Packets that break the protocol, dropped.",
            n(&c.malformed),
        ),
    ];
    let mut o = String::with_capacity(4096);
    for (name, kind, help, v) in rows {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_the_path_without_its_query() {
        assert_eq!(session_name("/room?token=x"), Some("/room"));
        assert_eq!(session_name("/"), Some("/"));
        assert_eq!(session_name("/a/b"), Some("/a/b"));
        assert_eq!(session_name("*"), None);
        let long = format!("/{}", "x".repeat(MAX_SESSION_NAME));
        assert_eq!(session_name(&long), None);
    }
}
