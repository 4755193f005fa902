//! Scale-out: two `netplay serve --redis` processes sharing lobbies through a real
//! `redis-server` on 127.0.0.1: joining and relaying across nodes, sealing across nodes, and
//! what happens to the members of a node that dies.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::signal::{http_get, start, Client, Server};
use common::{netplay_bin, run_bounded, Service};
use netplay::signal::{CandidatePayload, Message, MessageType};

/// A throwaway `redis-server` on 127.0.0.1 (no persistence), stopped on drop.
struct Redis {
    service: Service,
    port: u16,
    url: String,
}

fn redis_server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("NETPLAY_REDIS_SERVER") {
        return p.into();
    }
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("redis-server"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("redis-server not found on PATH (scripts/setup-system.sh installs it; or set NETPLAY_REDIS_SERVER)")
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Redis {
    fn start() -> Redis {
        Redis::start_on(free_port())
    }

    fn start_on(port: u16) -> Redis {
        let mut cmd = Command::new(redis_server_bin());
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--databases", "1"]);
        let mut service = Service::spawn("redis-server", &mut cmd, false);
        service.wait_for_line(
            Duration::from_secs(20),
            "`Ready to accept connections`",
            |l| l.contains("Ready to accept connections").then_some(()),
        );
        Redis {
            service,
            port,
            url: format!("redis://127.0.0.1:{port}"),
        }
    }

    /// A node of the cluster with this TTL in milliseconds.
    fn node(&self, ttl_ms: u64, extra: &[&str]) -> Server {
        let ttl = ttl_ms.to_string();
        let mut args = vec!["--redis", self.url.as_str(), "--redis-ttl-ms", ttl.as_str()];
        args.extend_from_slice(extra);
        start(&args)
    }
}

/// Creates a mesh lobby on `port`: the host client and the lobby name.
fn host_lobby(port: u16) -> (Client, String) {
    let mut host = Client::connect(port);
    host.send(&Message::join("", true));
    assert_eq!(host.recv(), Message::assigned_id(1, true));
    let joined = host.recv();
    assert_eq!(joined.kind, MessageType::Join);
    (host, joined.data)
}

/// Joins `lobby` through `port`; returns the client and its id. `already` are the ids the
/// newcomer is told about, in order.
fn join(port: u16, lobby: &str, already: &[i32]) -> (Client, i32) {
    let mut c = Client::connect(port);
    c.send(&Message::join(lobby, true));
    let id = c.recv();
    assert_eq!((id.kind, id.data.as_str()), (MessageType::Id, "true"));
    for &peer in already {
        assert_eq!(c.recv(), Message::peer_connect(peer));
    }
    assert_eq!(c.recv(), Message::join_reply(lobby));
    (c, id.id)
}

fn metric(port: u16, name: &str) -> u64 {
    let page = http_get(port, "/metrics");
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{page}"))
}

#[test]
fn peers_on_two_nodes_share_a_lobby_and_relay_both_ways() {
    let redis = Redis::start();
    let a = redis.node(3000, &[]);
    let b = redis.node(3000, &[]);
    let (mut host, lobby) = host_lobby(a.port);

    // A guest on the other node joins the lobby its host created on the first.
    let (mut guest, gid) = join(b.port, &lobby, &[1]);
    assert!(gid >= 2);
    assert_eq!(host.recv(), Message::peer_connect(gid));

    // Offers, answers and candidates cross the nodes with ids rewritten.
    guest.send(&Message::offer(1, "v=0 offer"));
    assert_eq!(host.recv(), Message::offer(gid, "v=0 offer"));
    host.send(&Message::answer(gid, "v=0 answer"));
    assert_eq!(guest.recv(), Message::answer(1, "v=0 answer"));
    let cand = CandidatePayload {
        mid: "0".into(),
        index: 0,
        candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host".into(),
    };
    host.send(&Message::candidate(gid, &cand));
    let got = guest.recv();
    assert_eq!((got.kind, got.id), (MessageType::Candidate, 1));
    assert_eq!(CandidatePayload::decode(&got.data).unwrap(), cand);

    // Order holds across nodes: 50 messages arrive as sent.
    for i in 0..50 {
        guest.send(&Message::offer(1, format!("sdp {i}")));
    }
    for i in 0..50 {
        assert_eq!(host.recv(), Message::offer(gid, format!("sdp {i}")));
    }

    // A third member on the first node sees both, and both see it.
    let (mut third, tid) = join(a.port, &lobby, &[1, gid]);
    assert_eq!(host.recv(), Message::peer_connect(tid));
    assert_eq!(guest.recv(), Message::peer_connect(tid));
    third.send(&Message::offer(gid, "to the other node"));
    assert_eq!(guest.recv(), Message::offer(tid, "to the other node"));

    assert_eq!(metric(b.port, "netplay_cluster_proxied_out"), 1);
    assert_eq!(metric(a.port, "netplay_cluster_proxied_in"), 1);
    assert_eq!(metric(a.port, "netplay_cluster_up"), 1);

    // The remote guest leaves: everyone it was announced to hears it.
    guest.ws.close(1000, "bye").unwrap();
    guest.closed();
    assert_eq!(host.recv(), Message::peer_disconnect(gid));
    assert_eq!(third.recv(), Message::peer_disconnect(gid));
}

#[test]
fn errors_and_seal_work_across_nodes() {
    let redis = Redis::start();
    let a = redis.node(3000, &["--seal-close-timeout-ms", "300"]);
    let b = redis.node(3000, &[]);

    // A lobby no node has does not exist, on any node.
    let mut lost = Client::connect(b.port);
    lost.send(&Message::join("NoSuchLobby", true));
    assert_eq!(lost.closed(), (4000, "Lobby does not exists".to_string()));

    let (mut host, lobby) = host_lobby(a.port);
    let (mut guest, gid) = join(b.port, &lobby, &[1]);
    assert_eq!(host.recv(), Message::peer_connect(gid));

    // The owner's rules apply to remote members: a bad destination closes it with 4000.
    let (mut rude, rid) = join(b.port, &lobby, &[1, gid]);
    assert_eq!(host.recv(), Message::peer_connect(rid));
    assert_eq!(guest.recv(), Message::peer_connect(rid));
    rude.send(&Message::offer(999, "nobody"));
    assert_eq!(rude.closed(), (4000, "Invalid destination".to_string()));
    assert_eq!(host.recv(), Message::peer_disconnect(rid));
    assert_eq!(guest.recv(), Message::peer_disconnect(rid));

    // Sealing reaches the remote member, which is then closed with 1000.
    host.send(&Message::seal());
    assert_eq!(host.recv(), Message::seal());
    assert_eq!(guest.recv(), Message::seal());
    let mut late = Client::connect(b.port);
    late.send(&Message::join(lobby.as_str(), true));
    assert_eq!(late.closed(), (4000, "Lobby is sealed".to_string()));
    assert_eq!(guest.closed(), (1000, "Seal complete".to_string()));
    assert_eq!(host.closed(), (1000, "Seal complete".to_string()));
}

#[test]
fn members_of_a_dead_node_leave_their_lobbies_in_bounded_time() {
    let redis = Redis::start();
    let ttl_ms = 600;
    let a = redis.node(ttl_ms, &[]);
    let mut b = redis.node(ttl_ms, &[]);
    let (mut host, lobby) = host_lobby(a.port);
    let (_guest, gid) = join(b.port, &lobby, &[1]);
    assert_eq!(host.recv(), Message::peer_connect(gid));

    // Node b dies without a word (SIGKILL): its member leaves the lobby on node a.
    let killed = Instant::now();
    b.service.guard.kill();
    assert_eq!(host.recv(), Message::peer_disconnect(gid));
    let took = killed.elapsed();
    let bound = Duration::from_millis(ttl_ms * 4 / 3 + 500);
    assert!(took <= bound, "noticed after {took:?}, bound {bound:?}");
    assert_eq!(metric(a.port, "netplay_cluster_dead_nodes_total"), 1);
    // And says so in its structured log.
    assert!(
        a.service.log().contains("cluster node gone"),
        "{}",
        a.service.log()
    );
    assert_eq!(metric(a.port, "netplay_cluster_proxied_in"), 0);

    // The lobby goes on: a newcomer on node a joins it.
    let (_again, nid) = join(a.port, &lobby, &[1]);
    assert_eq!(host.recv(), Message::peer_connect(nid));
}

#[test]
fn members_proxied_to_a_dead_owner_are_closed_as_host_gone() {
    let redis = Redis::start();
    let ttl_ms = 600;
    let mut a = redis.node(ttl_ms, &[]);
    let b = redis.node(ttl_ms, &[]);
    let (mut host, lobby) = host_lobby(a.port);
    let (mut guest, gid) = join(b.port, &lobby, &[1]);
    assert_eq!(host.recv(), Message::peer_connect(gid));

    let killed = Instant::now();
    a.service.guard.kill();
    assert_eq!(
        guest.closed(),
        (4000, "Room host has disconnected".to_string())
    );
    let took = killed.elapsed();
    let bound = Duration::from_millis(ttl_ms * 4 / 3 + 500);
    assert!(took <= bound, "noticed after {took:?}, bound {bound:?}");
    drop(host);

    // Its lobby is gone for everyone once its key expires.
    std::thread::sleep(Duration::from_millis(ttl_ms));
    let mut late = Client::connect(b.port);
    late.send(&Message::join(lobby.as_str(), true));
    assert_eq!(late.closed(), (4000, "Lobby does not exists".to_string()));
}

#[test]
fn serve_refuses_to_start_without_its_redis() {
    let port = free_port();
    let out = run_bounded(
        Command::new(netplay_bin()).args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--redis",
            &format!("redis://127.0.0.1:{port}"),
        ]),
        Duration::from_secs(30),
    );
    assert!(!out.success(), "{}", out.report());
    assert!(out.report().contains("cluster"), "{}", out.report());
}

#[test]
fn nodes_survive_losing_redis_and_rejoin_when_it_is_back() {
    let mut redis = Redis::start();
    let a = redis.node(600, &[]);
    let b = redis.node(600, &[]);
    let (mut host, lobby) = host_lobby(a.port);
    let (mut local_guest, lid) = join(a.port, &lobby, &[1]);
    assert_eq!(host.recv(), Message::peer_connect(lid));
    let (mut remote_guest, rid) = join(b.port, &lobby, &[1, lid]);
    assert_eq!(host.recv(), Message::peer_connect(rid));
    assert_eq!(local_guest.recv(), Message::peer_connect(rid));

    // Redis goes away: the member across nodes is ended, the lobby itself lives on.
    redis.service.guard.kill();
    assert_eq!(
        remote_guest.closed(),
        (4000, "Room host has disconnected".to_string())
    );
    assert_eq!(host.recv(), Message::peer_disconnect(rid));
    local_guest.send(&Message::offer(1, "still here"));
    assert_eq!(host.recv(), Message::offer(lid, "still here"));
    assert_eq!(metric(a.port, "netplay_cluster_up"), 0);

    // Redis is back on the same address: both nodes reconnect and share lobbies again.
    let port = redis.port;
    drop(redis);
    let _redis = Redis::start_on(port);
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(a.port, "netplay_cluster_up") == 0 || metric(b.port, "netplay_cluster_up") == 0 {
        assert!(Instant::now() < deadline, "the nodes did not reconnect");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (mut host2, lobby2) = host_lobby(b.port);
    let (_guest2, gid2) = join(a.port, &lobby2, &[1]);
    assert_eq!(host2.recv(), Message::peer_connect(gid2));
    // The lobby from before is registered again by its owner's refresh.
    std::thread::sleep(Duration::from_millis(400));
    let (_again, aid) = join(b.port, &lobby, &[1, lid]);
    assert_eq!(host.recv(), Message::peer_connect(aid));
}
