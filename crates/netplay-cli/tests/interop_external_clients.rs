//! Interop of `netplay echo` with WebSocket clients that are not ours.
//!
//! Proves, for each driver (tokio, poll), that two independent client
//! implementations — Python `websockets` (`tests/interop/py_peer.py`) and Node
//! `ws` (`tests/interop/node/peer.js`) — can talk to the netplay echo server:
//! - over ws:// and over wss:// (a throwaway CA from `trustme` in the test
//!   venv; the client trusts only that CA), their default offer of
//!   permessage-deflate included, and with compression not offered;
//! - text with multi-byte UTF-8 and binary with all 256 byte values come back
//!   unchanged and with their type; fragmented text (fragment boundaries inside
//!   code points) and fragmented binary are reassembled; a 16 MiB binary
//!   message is echoed intact (SHA-256); 100 small messages keep their order;
//! - a client close with code 4001 is answered by a close frame echoing 4001;
//! - `--protocol chat` with a client offering `x, chat` selects `chat`, and a
//!   server without `--protocol` selects none.
//!
//! The peers themselves are checked against each other by
//! `tests/interop/peer_selftest.py` (run by scripts/test.sh), so a failure
//! here points at netplay. Tools come from `NETPLAY_VENV` / `NETPLAY_NODE_DIR`
//! (`scripts/setup-interop.sh`); a missing tool fails the test.

mod common;

use common::{assert_peer_passed, gen_certs, run_peer_client, s, EchoServer, Peer, SUITE_CHECKS};

/// The full suite against `netplay echo --driver <driver>` over ws://.
fn suite_over_ws(driver: &str, peer: Peer, extra_client_args: &[&str]) {
    let mut server = EchoServer::start(driver, &[]);
    assert!(
        server.url.starts_with("ws://127.0.0.1:"),
        "unexpected listening url {}",
        server.url
    );
    let url = server.url.clone();
    let mut args = vec!["--url", url.as_str(), "--suite"];
    args.extend_from_slice(extra_client_args);
    let out = run_peer_client(peer, &args);
    assert_peer_passed(&out, SUITE_CHECKS, &server);
    server.assert_running();
}

/// The full suite over wss://, the client trusting only the test CA.
fn suite_over_wss(driver: &str, peer: Peer) {
    let certs = gen_certs();
    let mut server = EchoServer::start(
        driver,
        &["--tls-cert", s(&certs.cert), "--tls-key", s(&certs.key)],
    );
    assert!(
        server.url.starts_with("wss://"),
        "with --tls-cert the server must print a wss:// url, got {}",
        server.url
    );
    let url = format!("wss://127.0.0.1:{}", server.port);
    let out = run_peer_client(peer, &["--url", &url, "--ca", s(&certs.ca), "--suite"]);
    assert_peer_passed(&out, SUITE_CHECKS, &server);
    server.assert_running();
}

/// `--protocol chat`: a client offering `x, chat` gets `chat`.
fn protocol_chat_selected(driver: &str, peer: Peer) {
    let mut server = EchoServer::start(driver, &["--protocol", "chat"]);
    let url = server.url.clone();
    let out = run_peer_client(
        peer,
        &[
            "--url",
            &url,
            "--protocol",
            "x",
            "--protocol",
            "chat",
            "--expect-protocol",
            "chat",
            "--suite",
        ],
    );
    let mut expected = SUITE_CHECKS.to_vec();
    expected.push("protocol_chat");
    assert_peer_passed(&out, &expected, &server);
    server.assert_running();
}

/// No `--protocol`: the server selects none, even when the client offers some.
/// (Python only: a `ws` client fails a connection that selected none of its
/// offers.)
fn no_protocol_selected_when_server_has_none(driver: &str) {
    let mut server = EchoServer::start(driver, &[]);
    let url = server.url.clone();
    let out = run_peer_client(
        Peer::Python,
        &[
            "--url",
            &url,
            "--protocol",
            "x",
            "--protocol",
            "chat",
            "--expect-protocol",
            "-",
        ],
    );
    assert_peer_passed(&out, &["connect", "protocol_-", "close_4001"], &server);
    server.assert_running();
}

// ------------------------------------------------------------------ tokio

#[test]
fn tokio_echo_interops_with_python_websockets_over_ws() {
    suite_over_ws("tokio", Peer::Python, &[]);
}

#[test]
fn tokio_echo_interops_with_node_ws_over_ws() {
    suite_over_ws("tokio", Peer::Node, &[]);
}

#[test]
fn tokio_echo_interops_with_python_websockets_without_deflate() {
    suite_over_ws("tokio", Peer::Python, &["--no-deflate"]);
}

#[test]
fn tokio_echo_interops_with_node_ws_without_deflate() {
    suite_over_ws("tokio", Peer::Node, &["--no-deflate"]);
}

#[test]
fn tokio_echo_interops_with_python_websockets_over_wss() {
    suite_over_wss("tokio", Peer::Python);
}

#[test]
fn tokio_echo_interops_with_node_ws_over_wss() {
    suite_over_wss("tokio", Peer::Node);
}

#[test]
fn tokio_echo_selects_offered_protocol_chat_for_python_websockets() {
    protocol_chat_selected("tokio", Peer::Python);
}

#[test]
fn tokio_echo_selects_offered_protocol_chat_for_node_ws() {
    protocol_chat_selected("tokio", Peer::Node);
}

#[test]
fn tokio_echo_without_protocols_selects_none() {
    no_protocol_selected_when_server_has_none("tokio");
}

// ------------------------------------------------------------------- poll

#[test]
fn poll_echo_interops_with_python_websockets_over_ws() {
    suite_over_ws("poll", Peer::Python, &[]);
}

#[test]
fn poll_echo_interops_with_node_ws_over_ws() {
    suite_over_ws("poll", Peer::Node, &[]);
}

#[test]
fn poll_echo_interops_with_python_websockets_without_deflate() {
    suite_over_ws("poll", Peer::Python, &["--no-deflate"]);
}

#[test]
fn poll_echo_interops_with_node_ws_without_deflate() {
    suite_over_ws("poll", Peer::Node, &["--no-deflate"]);
}

#[test]
fn poll_echo_interops_with_python_websockets_over_wss() {
    suite_over_wss("poll", Peer::Python);
}

#[test]
fn poll_echo_interops_with_node_ws_over_wss() {
    suite_over_wss("poll", Peer::Node);
}

#[test]
fn poll_echo_selects_offered_protocol_chat_for_python_websockets() {
    protocol_chat_selected("poll", Peer::Python);
}

#[test]
fn poll_echo_selects_offered_protocol_chat_for_node_ws() {
    protocol_chat_selected("poll", Peer::Node);
}

#[test]
fn poll_echo_without_protocols_selects_none() {
    no_protocol_selected_when_server_has_none("poll");
}
