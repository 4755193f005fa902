//! The examples of Godot's WebSocket page run as a user would run them: the minimal server and
//! the minimal client talk to each other and print what the page shows.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `target/<profile>/examples/<name>`, next to this test's `deps/` directory.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the examples first (cargo build --examples)",
        path.display()
    );
    path
}

#[test]
fn ws_client_and_ws_echo_server_examples_talk() {
    let mut server = Command::new(example("ws_echo_server"))
        .args(["127.0.0.1:0", "--exit-after", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .strip_prefix("listening on ")
        .expect(&first)
        .to_string();

    let client = Command::new(example("ws_client"))
        .args([url.as_str(), "--once"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&client.stdout);
    assert!(client.status.success(), "{out}");
    assert!(out.contains("Got data from server: Test packet"), "{out}");
    assert!(
        out.contains("WebSocket closed with code: 1000, reason . Clean: true"),
        "{out}"
    );

    // The server saw one peer send 11 bytes and close with 1000, then exits by itself.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        let _ = tx.send(rest);
    });
    let rest = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("server exits");
    let _ = server.kill();
    let _ = server.wait();
    let rest = rest.join("\n");
    assert!(rest.contains("Peer 1 sent 11 bytes"), "{rest}");
    assert!(
        rest.contains("Peer 1 closed with code: 1000, reason: done"),
        "{rest}"
    );
}

/// Reads lines from a child's stdout on a thread; `wait_for` finds one with a deadline.
struct Lines(std::sync::mpsc::Receiver<String>);

impl Lines {
    fn new(out: std::process::ChildStdout) -> Lines {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Lines(rx)
    }

    fn wait_for(&self, what: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.0.recv_timeout(left) {
                Ok(line) if what(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!("no matching line"),
            }
        }
    }
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn ws_chat_clients_talk_through_the_chat_server() {
    let mut server = Killed(
        Command::new(example("ws_chat_server"))
            .arg("127.0.0.1:0")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let server_lines = Lines::new(server.0.stdout.take().unwrap());
    let url = server_lines
        .wait_for(|l| l.starts_with("listening on "))
        .trim_start_matches("listening on ")
        .to_string();
    let client = |url: &str| {
        let mut c = Killed(
            Command::new(example("ws_chat_client"))
                .arg(format!("{url}/test/"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let lines = Lines::new(c.0.stdout.take().unwrap());
        lines.wait_for(|l| l == "Connected with protocol: demo-chat");
        (c, lines)
    };
    let (mut alice, alice_lines) = client(&url);
    let alice_id = server_lines
        .wait_for(|l| l.ends_with(" connected"))
        .split(' ')
        .nth(1)
        .unwrap()
        .to_string();
    let (bob, bob_lines) = client(&url);
    alice_lines.wait_for(|l| l.starts_with("Peer ") && l.ends_with(" connected"));
    writeln!(alice.0.stdin.as_mut().unwrap(), "hello bob").unwrap();
    bob_lines.wait_for(|l| l == format!("[{alice_id}] Says: hello bob"));
    // Alice leaves (end of input closes with 1000); Bob hears about it.
    drop(alice.0.stdin.take());
    alice_lines.wait_for(|l| l.starts_with("Disconnected: 1000"));
    bob_lines.wait_for(|l| l == format!("Peer {alice_id} disconnected"));
    drop(bob);
    drop(server);
}

/// Runs an example with no arguments (its in-process mode) to completion, bounded in time.
fn run_to_done(name: &str) -> String {
    let mut child = Command::new(example(name))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
            assert!(status.success(), "{name} failed: {status}\n{out}");
            return out;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{name} did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn websocket_multiplayer_example_greets_every_peer_through_the_server() {
    let out = run_to_done("websocket_multiplayer");
    assert!(out.lines().any(|l| l == "done"), "{out}");
    // The clients heard from each other (relayed) and from the server.
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("client ") && l.contains(": 1 says hello from 1"))
            .count(),
        2,
        "{out}"
    );
}

#[cfg(feature = "webrtc")]
#[test]
fn webrtc_lobby_example_makes_a_mesh_of_three() {
    let out = run_to_done("webrtc_lobby");
    assert!(out.lines().any(|l| l == "done"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.contains(": + ")).count(),
        6,
        "{out}"
    );
}
