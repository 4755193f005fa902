//! The examples of Godot's WebSocket page run as a user would run them: the minimal server and
//! the minimal client talk to each other and print what the page shows.

use std::io::{BufRead, BufReader};
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
