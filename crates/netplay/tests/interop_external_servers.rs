//! netplay's polled client against WebSocket servers that are not ours: the Python `websockets`
//! package and Node's `ws` (tests/interop), plain and TLS, with and without permessage-deflate.
//!
//! The tools come from `scripts/test.sh` (a venv at `$NETPLAY_VENV`, npm packages in
//! `$NETPLAY_NODE_DIR`); a missing tool fails the test.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netplay::ws::{DeflateConfig, PeerOptions, ReadyState, TlsOptions, WebSocketPeer};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[derive(Clone, Copy, Debug)]
enum Peer {
    Python,
    Node,
}

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(peer: Peer, extra: &[&str]) -> Server {
    let mut cmd = match peer {
        Peer::Python => {
            let venv = std::env::var_os("NETPLAY_VENV")
                .map(PathBuf::from)
                .unwrap_or_else(|| root().join(".venv"));
            let py = venv.join("bin/python");
            assert!(
                py.exists(),
                "{} is missing: run scripts/test.sh",
                py.display()
            );
            let mut c = Command::new(py);
            c.arg(root().join("tests/interop/py_peer.py"));
            c
        }
        Peer::Node => {
            let dir = std::env::var_os("NETPLAY_NODE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root().join("tests/interop/node"));
            assert!(
                dir.join("node_modules/ws").exists(),
                "{}/node_modules/ws is missing: run scripts/test.sh",
                dir.display()
            );
            let mut c = Command::new("node");
            c.arg(dir.join("peer.js"));
            c
        }
    };
    cmd.args([
        "server",
        "--port",
        "0",
        "--max-size",
        &(64u32 << 20).to_string(),
    ])
    .args(extra)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    let mut child = cmd.spawn().expect("start the external peer");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(p) = line.strip_prefix("READY ") {
                let _ = tx.send(p.trim().parse::<u16>().unwrap());
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{peer:?} server did not start"));
    Server { child, port }
}

fn options(compress: bool, protocols: &[&str]) -> PeerOptions {
    PeerOptions {
        supported_protocols: protocols.iter().map(|s| s.to_string()).collect(),
        inbound_buffer_size: 64 << 20,
        outbound_buffer_size: 64 << 20,
        compression: compress.then(DeflateConfig::default),
        ..PeerOptions::default()
    }
}

fn open(url: &str, opts: PeerOptions, tls: Option<TlsOptions>) -> WebSocketPeer {
    let mut ws = WebSocketPeer::with_options(opts);
    ws.connect_to_url(url, tls).unwrap();
    wait(&mut ws, |w| w.ready_state() != ReadyState::Connecting);
    assert_eq!(ws.ready_state(), ReadyState::Open, "{:?}", ws.last_error());
    ws
}

fn wait(ws: &mut WebSocketPeer, mut f: impl FnMut(&mut WebSocketPeer) -> bool) {
    let until = Instant::now() + Duration::from_secs(30);
    while !f(ws) {
        assert!(
            Instant::now() < until,
            "timed out in {:?}",
            ws.ready_state()
        );
        ws.poll();
        std::thread::sleep(Duration::from_micros(300));
    }
}

fn next(ws: &mut WebSocketPeer) -> (Vec<u8>, bool) {
    let mut got = None;
    wait(ws, |w| {
        got = w.get_packet().map(|p| (p, w.was_string_packet()));
        got.is_some()
    });
    got.unwrap()
}

/// Text, binary, many small messages in order, 16 MiB, then a close both ways.
fn exercise(peer: Peer, tls: Option<(&[&str], TlsOptions)>, compress: bool) {
    let (extra, client_tls): (Vec<&str>, _) = match &tls {
        Some((args, t)) => (args.to_vec(), Some(t.clone())),
        None => (Vec::new(), None),
    };
    let mut args = extra.clone();
    args.extend(["--protocol", "chat"]);
    if !compress {
        args.push("--no-deflate");
    }
    let server = start(peer, &args);
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    let host = if tls.is_some() {
        "localhost"
    } else {
        "127.0.0.1"
    };
    let url = format!("{scheme}://{host}:{}/", server.port);
    let mut ws = open(&url, options(compress, &["x", "chat"]), client_tls.clone());
    assert_eq!(ws.selected_protocol(), "chat");
    assert_eq!(ws.is_compressed(), compress, "{peer:?}");

    ws.send_text("κόσμε 𝄞 hello").unwrap();
    assert_eq!(next(&mut ws), ("κόσμε 𝄞 hello".as_bytes().to_vec(), true));
    let all: Vec<u8> = (0..=255).collect();
    ws.put_packet(&all).unwrap();
    assert_eq!(next(&mut ws), (all, false));
    for i in 0..100u32 {
        ws.put_packet(&i.to_be_bytes()).unwrap();
    }
    for i in 0..100u32 {
        assert_eq!(next(&mut ws).0, i.to_be_bytes());
    }
    let big: Vec<u8> = (0..16u32 << 20).map(|i| (i ^ (i >> 11)) as u8).collect();
    ws.put_packet(&big).unwrap();
    let (echo, text) = next(&mut ws);
    assert!(!text);
    assert!(echo == big, "16 MiB message changed");

    // The server closes with a code of our choosing.
    ws.send_text("close:4003:server says why").unwrap();
    wait(&mut ws, |w| w.ready_state() == ReadyState::Closed);
    assert_eq!(ws.close_code(), 4003);
    assert_eq!(ws.close_reason(), "server says why");

    // We close; the server echoes our code.
    let mut ws = open(&url, options(compress, &["chat"]), client_tls);
    ws.close(4001, "bye").unwrap();
    wait(&mut ws, |w| w.ready_state() == ReadyState::Closed);
    assert_eq!(ws.close_code(), 4001);
}

fn tls_files() -> (tempdir::Dir, TlsOptions) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempdir::Dir::new();
    std::fs::write(dir.path.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let client = TlsOptions::client(Some(cert.cert.pem().as_bytes()), None).unwrap();
    (dir, client)
}

mod tempdir {
    /// A directory removed on drop.
    pub(crate) struct Dir {
        pub path: std::path::PathBuf,
    }
    impl Dir {
        pub(crate) fn new() -> Dir {
            let path = std::env::temp_dir().join(format!(
                "netplay-test-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            ));
            std::fs::create_dir_all(&path).unwrap();
            Dir { path }
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn exercise_tls(peer: Peer) {
    let (dir, client) = tls_files();
    let cert = dir.path.join("cert.pem");
    let key = dir.path.join("key.pem");
    let args = [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    exercise(peer, Some((&args, client)), true);
}

#[test]
fn netplay_client_talks_to_python_websockets_server() {
    exercise(Peer::Python, None, false);
}

#[test]
fn netplay_client_talks_to_python_websockets_server_compressed() {
    exercise(Peer::Python, None, true);
}

#[test]
fn netplay_client_talks_to_python_websockets_server_over_tls() {
    exercise_tls(Peer::Python);
}

#[test]
fn netplay_client_talks_to_node_ws_server() {
    exercise(Peer::Node, None, false);
}

#[test]
fn netplay_client_talks_to_node_ws_server_compressed() {
    exercise(Peer::Node, None, true);
}

#[test]
fn netplay_client_talks_to_node_ws_server_over_tls() {
    exercise_tls(Peer::Node);
}
