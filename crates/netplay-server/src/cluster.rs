//! Scale-out of the signaling server: several `netplay serve --redis URL` processes (nodes)
//! share lobbies through Redis.
//!
//! Owns the routing between nodes; lobby rules stay in the [`Hub`], unchanged:
//!
//! * A lobby lives in the hub of the node that created it, its *owner* (the node its host is
//!   connected to). The owner keeps the key `<prefix>:lobby:<name>` = its node id alive with an
//!   expiry of [`ClusterOptions::node_ttl`], refreshed every third of it, and keeps
//!   `<prefix>:node:<id>` alive the same way.
//! * A connection whose first message is a JOIN of a lobby its node does not have is looked up
//!   in Redis. If another node owns the lobby, the connection is *proxied*: its node forwards
//!   everything it sends to the owner over the owner's pub/sub channel `<prefix>:node:<id>`,
//!   where the owner's hub sees it as a connection of its own, and the owner publishes the hub's
//!   messages and closes for it back on the proxy's channel. Pub/sub keeps each publisher's
//!   order, so every client sees the same order of messages as on a single server.
//! * Each node checks every third of the TTL that the nodes it exchanges connections with are
//!   still alive. When one's key has expired (it died or lost Redis), the members it proxied
//!   leave their lobbies (the others get PEER_DISCONNECT) and the members proxied to it are
//!   closed with 4000 "Room host has disconnected", since their host was there. So a node's
//!   death is noticed within 4/3 of the TTL plus a Redis round trip.
//! * If Redis goes away, lobbies of one node keep working, cross-node members are handled as
//!   above, and the node reconnects every second; joins of unknown lobbies meanwhile get "Lobby
//!   does not exist".

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use netplay::signal::{CloseReason, ConnId, Hub, Message, MessageType, Transmit};

use crate::redis::{subscribe, Commands, RedisError, RedisUrl, Reply, Subscription};

/// Settings of a node of a signaling cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// The Redis server all nodes share.
    pub redis: RedisUrl,
    /// Lifetime of the node's and its lobbies' keys; a dead node is noticed within 4/3 of it.
    /// Default 3 s.
    pub node_ttl: Duration,
    /// Prefix of every key and channel, so several clusters can share one Redis. Default
    /// `netplay`.
    pub prefix: String,
}

impl ClusterOptions {
    /// Options for the Redis at `redis` with the default TTL and prefix.
    pub fn new(redis: RedisUrl) -> ClusterOptions {
        ClusterOptions {
            redis,
            node_ttl: Duration::from_secs(3),
            prefix: "netplay".to_string(),
        }
    }
}

/// Connection ids of connections proxied from other nodes have this bit set; the server's own
/// connection ids count up from 1 and never reach it.
const REMOTE_BIT: u64 = 1 << 63;
/// Most messages a connection may send while its lobby is being looked up.
const MAX_QUEUED_WHILE_RESOLVING: usize = 64;

/// What reaches the hub task from the cluster's background tasks.
pub(crate) enum ClusterEvent {
    /// A message on this node's channel.
    Payload(Vec<u8>),
    /// The owner of the lobby `conn` asked to join, if any.
    Resolved(ConnId, Option<String>),
    /// The key of the lobby `conn` created is written (`true`), or another node has a lobby
    /// of that name (`false`).
    Registered(ConnId, bool),
    /// These nodes' liveness keys are gone.
    NodesDead(Vec<String>),
    /// (Re)connected to Redis.
    Up(Commands),
    /// Lost Redis.
    Down(String),
}

/// The messages between nodes, as JSON on the receiver's channel.
#[derive(Serialize, Deserialize, Debug)]
#[serde(tag = "t", rename_all = "lowercase")]
enum NodeMessage {
    /// Proxy → owner: a client connection `c` of node `from` joins through you.
    Open { from: String, c: u64 },
    /// Proxy → owner: `c` sent this text message.
    Text { from: String, c: u64, x: String },
    /// Proxy → owner: `c` sent a binary message.
    Binary { from: String, c: u64 },
    /// Proxy → owner: `c` is gone.
    Gone { from: String, c: u64 },
    /// Owner → proxy: send this text to your connection `c`.
    Send { from: String, c: u64, x: String },
    /// Owner → proxy: close your connection `c`.
    Close {
        from: String,
        c: u64,
        code: u16,
        r: String,
    },
}

/// Where a local connection's messages go.
enum Route {
    /// Has sent nothing yet.
    Undecided,
    /// Waiting for Redis to say who owns the lobby it asked for, with what it sent meanwhile.
    Resolving(Vec<Option<String>>),
    /// Proxied to the lobby's owner node.
    Remote(String),
    /// Created a lobby whose key is being written; what the hub sends it waits here, so nobody
    /// learns the lobby's name before other nodes can find it.
    Registering(Vec<Transmit>),
}

/// The cluster state of one node, owned by the hub task.
pub(crate) struct Cluster {
    options: ClusterOptions,
    node: String,
    cmds: Option<Commands>,
    events: mpsc::Sender<ClusterEvent>,
    /// Local connections that are not plainly local (a missing entry means local).
    routes: HashMap<ConnId, Route>,
    /// Connections proxied to this node: (node, their id) -> our hub's id, and back.
    remote_ids: HashMap<(String, u64), ConnId>,
    remote_of: HashMap<ConnId, (String, u64)>,
    next_remote: u64,
    /// Counters for /metrics.
    pub(crate) stats: ClusterStats,
}

/// Counters of a cluster node.
#[derive(Clone, Debug, Default)]
pub struct ClusterStats {
    /// Whether the node is connected to Redis.
    pub up: bool,
    /// Messages published to other nodes.
    pub published: u64,
    /// Messages received from other nodes.
    pub received: u64,
    /// Other nodes found dead.
    pub dead_nodes: u64,
    /// Node messages that could not be parsed or referred to unknown connections.
    pub dropped: u64,
    /// Lobbies closed at creation because another node had one of the same name.
    pub name_collisions: u64,
}

impl Cluster {
    /// Connects to Redis, subscribes to this node's channel and starts the reconnecting
    /// supervisor. Fails if Redis cannot be reached now.
    pub(crate) async fn start(
        options: ClusterOptions,
    ) -> Result<(Cluster, mpsc::Receiver<ClusterEvent>), RedisError> {
        let mut id = [0u8; 8];
        netplay::random::fill(&mut id);
        let node: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let (events, rx) = mpsc::channel(1 << 16);
        let channel = redis_name(&options.prefix, "node", &node);
        let (cmds, ended) = connect(&options.redis, &channel, events.clone()).await?;
        tokio::spawn(supervise(
            options.redis.clone(),
            channel,
            events.clone(),
            cmds.clone(),
            ended,
        ));
        let mut cluster = Cluster {
            options,
            node,
            cmds: Some(cmds),
            events,
            routes: HashMap::new(),
            remote_ids: HashMap::new(),
            remote_of: HashMap::new(),
            next_remote: 0,
            stats: ClusterStats {
                up: true,
                ..ClusterStats::default()
            },
        };
        cluster.set_alive_key();
        tracing::info!(node = %cluster.node, redis = ?cluster.options.redis, "joined the cluster");
        Ok((cluster, rx))
    }

    /// A number drawn from this node's random id, to mix into the hub's seed so that nodes
    /// started with the same `--seed` still draw different lobby names.
    pub(crate) fn seed_salt(&self) -> u64 {
        u64::from_str_radix(&self.node, 16).unwrap_or(0)
    }

    /// How often [`Cluster::tick`] should run.
    pub(crate) fn tick_interval(&self) -> Duration {
        self.options.node_ttl / 3
    }

    /// A local connection opened (the hub was told already).
    pub(crate) fn open(&mut self, conn: ConnId) {
        self.routes.insert(conn, Route::Undecided);
    }

    /// A local connection sent a text (`Some`) or binary (`None`) message.
    pub(crate) fn receive(
        &mut self,
        hub: &mut Hub,
        conn: ConnId,
        msg: Option<String>,
        now: Instant,
        local: &mut Vec<Transmit>,
    ) {
        match self.routes.get_mut(&conn) {
            None | Some(Route::Registering(_)) => feed(hub, conn, msg, now),
            Some(Route::Remote(node)) => {
                let node = node.clone();
                self.forward(&node, conn, msg);
            }
            Some(Route::Resolving(queue)) => {
                if queue.len() < MAX_QUEUED_WHILE_RESOLVING {
                    queue.push(msg);
                } else {
                    // As the hub would for a flood: close it; the hub forgets it now.
                    self.routes.remove(&conn);
                    hub.disconnect(conn, now);
                    let flood = CloseReason::Error(netplay::signal::Error::TooManyMessages);
                    local.push(Transmit::close(conn, flood));
                }
            }
            Some(Route::Undecided) => {
                let lobby = msg.as_deref().and_then(join_target);
                match (lobby, &self.cmds) {
                    (Some(name), Some(cmds)) if hub.lobby(&name).is_none() => {
                        self.routes.insert(conn, Route::Resolving(vec![msg]));
                        let cmds = cmds.clone();
                        let key = self.key("lobby", &name);
                        let events = self.events.clone();
                        tokio::spawn(async move {
                            let owner = match cmds.call(&["GET", key.as_str()]).await {
                                Ok(Reply::Bulk(Some(v))) => String::from_utf8(v).ok(),
                                _ => None,
                            };
                            let _ = events.send(ClusterEvent::Resolved(conn, owner)).await;
                        });
                    }
                    _ => {
                        self.routes.remove(&conn);
                        feed(hub, conn, msg, now);
                        self.register_if_host(hub, conn);
                    }
                }
            }
        }
    }

    /// A local connection is gone.
    pub(crate) fn gone(&mut self, hub: &mut Hub, conn: ConnId, now: Instant) {
        match self.routes.remove(&conn) {
            Some(Route::Remote(node)) => {
                let m = NodeMessage::Gone {
                    from: self.node.clone(),
                    c: conn,
                };
                self.publish(&node, &m);
            }
            _ => hub.disconnect(conn, now),
        }
    }

    /// Whether outputs for `conn` go to another node (and so were handled by [`Cluster::route_output`]).
    pub(crate) fn route_output(&mut self, out: &Transmit) -> bool {
        let conn = match out {
            Transmit::Send { conn, .. } | Transmit::Close { conn, .. } => *conn,
        };
        if let Some(Route::Registering(held)) = self.routes.get_mut(&conn) {
            held.push(out.clone());
            return true;
        }
        let Some((node, c)) = self.remote_of.get(&conn).cloned() else {
            return false;
        };
        let from = self.node.clone();
        let m = match out {
            Transmit::Send { text, .. } => NodeMessage::Send {
                from,
                c,
                x: text.clone(),
            },
            Transmit::Close { code, reason, .. } => NodeMessage::Close {
                from,
                c,
                code: *code,
                r: reason.clone(),
            },
        };
        self.publish(&node, &m);
        true
    }

    /// Handles an event of the background tasks. Outputs for local connections are pushed to
    /// `local` (the caller hands them to the connection tasks).
    pub(crate) fn event(
        &mut self,
        hub: &mut Hub,
        ev: ClusterEvent,
        now: Instant,
        local: &mut Vec<Transmit>,
    ) {
        match ev {
            ClusterEvent::Payload(bytes) => {
                self.stats.received += 1;
                match serde_json::from_slice::<NodeMessage>(&bytes) {
                    Ok(m) => self.node_message(hub, m, now, local),
                    Err(_) => self.stats.dropped += 1,
                }
            }
            ClusterEvent::Resolved(conn, owner) => {
                let Some(Route::Resolving(queue)) = self.routes.get_mut(&conn) else {
                    return;
                };
                let queue = std::mem::take(queue);
                match owner {
                    Some(node) if node != self.node && self.cmds.is_some() => {
                        // The owner's hub takes over; ours forgets the connection.
                        hub.disconnect(conn, now);
                        let open = NodeMessage::Open {
                            from: self.node.clone(),
                            c: conn,
                        };
                        self.publish(&node, &open);
                        for msg in queue {
                            self.forward(&node, conn, msg);
                        }
                        self.routes.insert(conn, Route::Remote(node));
                    }
                    _ => {
                        self.routes.remove(&conn);
                        for msg in queue {
                            feed(hub, conn, msg, now);
                        }
                    }
                }
            }
            ClusterEvent::Registered(conn, claimed) => {
                let Some(Route::Registering(held)) = self.routes.get_mut(&conn) else {
                    return;
                };
                let held = std::mem::take(held);
                self.routes.remove(&conn);
                if claimed {
                    local.extend(held);
                } else {
                    // Two nodes drew the same name (only with equal seeds): the later one's
                    // lobby cannot be reached, so it is closed before anyone learns its name.
                    self.stats.name_collisions += 1;
                    hub.disconnect(conn, now);
                    local.push(Transmit::Close {
                        conn,
                        code: 1011,
                        reason: "Lobby name already in use on another server".to_string(),
                    });
                }
            }
            ClusterEvent::NodesDead(nodes) => {
                for node in nodes {
                    tracing::warn!(node = %node, "cluster node gone; ending the connections shared with it");
                    self.stats.dead_nodes += 1;
                    self.drop_node(hub, Some(&node), now, local);
                }
            }
            ClusterEvent::Up(cmds) => {
                tracing::info!(node = %self.node, "connected to Redis again");
                self.cmds = Some(cmds);
                self.stats.up = true;
                self.tick(hub);
            }
            ClusterEvent::Down(why) => {
                tracing::warn!(node = %self.node, reason = %why, "lost Redis; cross-node members are ended, reconnecting");
                self.cmds = None;
                self.stats.up = false;
                self.drop_node(hub, None, now, local);
            }
        }
    }

    /// Refreshes this node's keys and checks the nodes it shares connections with.
    pub(crate) fn tick(&mut self, hub: &Hub) {
        let Some(cmds) = self.cmds.clone() else {
            return;
        };
        self.set_alive_key();
        let ttl = self.ttl_ms();
        for name in hub.lobby_names() {
            let key = self.key("lobby", name);
            let _ = cmds.send(&["SET", key.as_str(), self.node.as_str(), "PX", ttl.as_str()]);
        }
        let mut peers: Vec<String> = self
            .routes
            .values()
            .filter_map(|r| match r {
                Route::Remote(n) => Some(n.clone()),
                _ => None,
            })
            .chain(self.remote_ids.keys().map(|(n, _)| n.clone()))
            .collect();
        peers.sort();
        peers.dedup();
        if peers.is_empty() {
            return;
        }
        let checks: Vec<(String, String)> = peers
            .into_iter()
            .map(|node| (self.key("node", &node), node))
            .collect();
        let events = self.events.clone();
        tokio::spawn(async move {
            let mut dead = Vec::new();
            for (key, node) in checks {
                if let Ok(Reply::Int(0)) = cmds.call(&["EXISTS", key.as_str()]).await {
                    dead.push(node);
                }
            }
            if !dead.is_empty() {
                let _ = events.send(ClusterEvent::NodesDead(dead)).await;
            }
        });
    }

    /// Removes this node's liveness key (on a graceful stop), waiting for everything published
    /// before to be written.
    pub(crate) async fn leave(&mut self) {
        if let Some(cmds) = &self.cmds {
            let key = self.key("node", &self.node);
            let _ = tokio::time::timeout(Duration::from_secs(2), cmds.call(&["DEL", key.as_str()]))
                .await;
        }
    }

    /// Connections proxied out of this node, and into it.
    pub(crate) fn proxied(&self) -> (usize, usize) {
        let out = self
            .routes
            .values()
            .filter(|r| matches!(r, Route::Remote(_)))
            .count();
        (out, self.remote_of.len())
    }

    /// A key or channel of this cluster: `<prefix>:<kind>:<name>`. A node's liveness key and
    /// its pub/sub channel share one name (Redis keeps keys and channels apart).
    fn key(&self, kind: &str, name: &str) -> String {
        redis_name(&self.options.prefix, kind, name)
    }

    /// Publishes what local connection `conn` sent to `node`, the owner of its lobby.
    fn forward(&mut self, node: &str, conn: ConnId, msg: Option<String>) {
        let from = self.node.clone();
        let m = match msg {
            Some(x) => NodeMessage::Text { from, c: conn, x },
            None => NodeMessage::Binary { from, c: conn },
        };
        self.publish(node, &m);
    }

    fn ttl_ms(&self) -> String {
        self.options.node_ttl.as_millis().max(1).to_string()
    }

    fn set_alive_key(&mut self) {
        let Some(cmds) = &self.cmds else { return };
        let key = self.key("node", &self.node);
        let _ = cmds.send(&["SET", key.as_str(), "1", "PX", self.ttl_ms().as_str()]);
    }

    /// Claims the lobby `conn` just created, if it did, holding back what the hub sends to
    /// `conn` until the claim is written.
    fn register_if_host(&mut self, hub: &Hub, conn: ConnId) {
        let (Some(cmds), Some(name), Some(1)) =
            (&self.cmds, hub.lobby_of(conn), hub.peer_id_of(conn))
        else {
            return;
        };
        let key = self.key("lobby", name);
        let (cmds, node, ttl, events) = (
            cmds.clone(),
            self.node.clone(),
            self.ttl_ms(),
            self.events.clone(),
        );
        self.routes.insert(conn, Route::Registering(Vec::new()));
        tokio::spawn(async move {
            let args = ["SET", key.as_str(), node.as_str(), "PX", ttl.as_str(), "NX"];
            let set = cmds.call(&args);
            // A nil reply means another node holds the name. Without Redis the lobby still
            // works on this node: deliver anyway.
            let claimed = !matches!(
                tokio::time::timeout(Duration::from_secs(2), set).await,
                Ok(Ok(Reply::Bulk(None)))
            );
            let _ = events.send(ClusterEvent::Registered(conn, claimed)).await;
        });
    }

    fn publish(&mut self, node: &str, m: &NodeMessage) {
        let Some(cmds) = &self.cmds else { return };
        let Ok(json) = serde_json::to_string(m) else {
            return;
        };
        let channel = self.key("node", node);
        if cmds
            .send(&["PUBLISH", channel.as_str(), json.as_str()])
            .is_ok()
        {
            self.stats.published += 1;
        }
    }

    fn node_message(
        &mut self,
        hub: &mut Hub,
        m: NodeMessage,
        now: Instant,
        local: &mut Vec<Transmit>,
    ) {
        match m {
            NodeMessage::Open { from, c } => {
                let key = (from, c);
                if self.remote_ids.contains_key(&key) {
                    return;
                }
                self.next_remote += 1;
                let id = REMOTE_BIT | self.next_remote;
                self.remote_ids.insert(key.clone(), id);
                self.remote_of.insert(id, key);
                hub.connect(id, now);
            }
            NodeMessage::Text { from, c, x } => match self.remote_ids.get(&(from, c)) {
                Some(&id) => hub.receive_text(id, &x, now),
                None => self.stats.dropped += 1,
            },
            NodeMessage::Binary { from, c } => match self.remote_ids.get(&(from, c)) {
                Some(&id) => hub.receive_binary(id, now),
                None => self.stats.dropped += 1,
            },
            NodeMessage::Gone { from, c } => match self.remote_ids.remove(&(from, c)) {
                Some(id) => {
                    self.remote_of.remove(&id);
                    hub.disconnect(id, now);
                }
                None => self.stats.dropped += 1,
            },
            NodeMessage::Send { from, c, x } => {
                if matches!(self.routes.get(&c), Some(Route::Remote(n)) if *n == from) {
                    local.push(Transmit::Send { conn: c, text: x });
                } else {
                    self.stats.dropped += 1;
                }
            }
            NodeMessage::Close { from, c, code, r } => {
                if matches!(self.routes.get(&c), Some(Route::Remote(n)) if *n == from) {
                    local.push(Transmit::Close {
                        conn: c,
                        code,
                        reason: r,
                    });
                } else {
                    self.stats.dropped += 1;
                }
            }
        }
    }

    /// Ends every connection shared with `node` (all other nodes when `None`).
    fn drop_node(
        &mut self,
        hub: &mut Hub,
        node: Option<&str>,
        now: Instant,
        local: &mut Vec<Transmit>,
    ) {
        let matches = |n: &str| node.is_none_or(|d| d == n);
        let theirs: Vec<(String, u64)> = self
            .remote_ids
            .keys()
            .filter(|(n, _)| matches(n))
            .cloned()
            .collect();
        for key in theirs {
            if let Some(id) = self.remote_ids.remove(&key) {
                self.remote_of.remove(&id);
                hub.disconnect(id, now);
            }
        }
        let ours: Vec<ConnId> = self
            .routes
            .iter()
            .filter(|(_, r)| matches!(r, Route::Remote(n) if matches(n)))
            .map(|(c, _)| *c)
            .collect();
        for conn in ours {
            self.routes.remove(&conn);
            local.push(Transmit::close(conn, CloseReason::HostDisconnected));
        }
    }
}

/// `<prefix>:<kind>:<name>`.
fn redis_name(prefix: &str, kind: &str, name: &str) -> String {
    format!("{prefix}:{kind}:{name}")
}

/// Hands a local connection's message to the hub.
fn feed(hub: &mut Hub, conn: ConnId, msg: Option<String>, now: Instant) {
    match msg {
        Some(text) => hub.receive_text(conn, &text, now),
        None => hub.receive_binary(conn, now),
    }
}

/// The lobby name of a JOIN message, when it names one (an empty name creates a lobby).
fn join_target(text: &str) -> Option<String> {
    let message = Message::parse(text).ok()?;
    (message.kind == MessageType::Join && !message.data.is_empty()).then_some(message.data)
}

/// Opens the command connection and the subscription.
async fn connect(
    url: &RedisUrl,
    channel: &str,
    events: mpsc::Sender<ClusterEvent>,
) -> Result<(Commands, Subscription), RedisError> {
    let cmds = Commands::connect(url).await?;
    // Redis answers PING, so a wrong password or a non-Redis port shows up here.
    cmds.call(&["PING"]).await?;
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(1 << 16);
    let ended = subscribe(url, channel, tx).await?;
    tokio::spawn(async move {
        while let Some(p) = rx.recv().await {
            if events.send(ClusterEvent::Payload(p)).await.is_err() {
                return;
            }
        }
    });
    Ok((cmds, ended))
}

/// Waits for the connection to Redis to break, reports it, and reconnects every second.
async fn supervise(
    url: RedisUrl,
    channel: String,
    events: mpsc::Sender<ClusterEvent>,
    mut cmds: Commands,
    mut sub: Subscription,
) {
    loop {
        let why = tokio::select! {
            e = sub.ended() => e.to_string(),
            _ = cmds.closed() => "command connection closed".to_string(),
        };
        if events.send(ClusterEvent::Down(why)).await.is_err() {
            return;
        }
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if events.is_closed() {
                return;
            }
            if let Ok((c, s)) = connect(&url, &channel, events.clone()).await {
                cmds = c;
                sub = s;
                break;
            }
        }
        if events.send(ClusterEvent::Up(cmds.clone())).await.is_err() {
            return;
        }
    }
}
