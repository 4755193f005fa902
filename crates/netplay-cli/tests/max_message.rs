//! `netplay echo --max-message BYTES` enforces the message size limit with
//! close code 1009 (Message Too Big, RFC 6455 7.4.1), for each driver.
//!
//! Proves, with external clients (Python `websockets`, Node `ws`):
//! - a message of exactly BYTES is still echoed (compression not offered, so
//!   the size on the wire is the message size);
//! - a message of BYTES + 1 makes the server close the connection with 1009,
//!   and the client sees that close frame;
//! - the limit is per message, not per frame: a message of 2 x BYTES sent as
//!   4 fragments, each under the limit, is closed with 1009 too;
//! - without `--max-message` the limit is 64 MiB: 64 MiB + 1 gets 1009 (and
//!   16 MiB passes: see interop_external_clients.rs).

mod common;

use common::{assert_peer_passed, run_peer_client, EchoServer, Peer};

const LIMIT: &str = "100000";

fn exact_limit_is_echoed(driver: &str, peer: Peer) {
    let mut server = EchoServer::start(driver, &["--max-message", LIMIT]);
    let url = server.url.clone();
    let out = run_peer_client(
        peer,
        &["--url", &url, "--no-deflate", "--send-big", "100000"],
    );
    assert_peer_passed(
        &out,
        &["connect", "big_100000_echoed", "close_4001"],
        &server,
    );
    server.assert_running();
}

fn one_byte_over_limit_is_closed_with_1009(driver: &str, peer: Peer) {
    let mut server = EchoServer::start(driver, &["--max-message", LIMIT]);
    let url = server.url.clone();
    let out = run_peer_client(
        peer,
        &[
            "--url",
            &url,
            "--send-big",
            "100001",
            "--expect-close-code",
            "1009",
        ],
    );
    assert_peer_passed(&out, &["connect", "big_100001_closed_1009"], &server);
    server.assert_running();
}

fn fragmented_message_over_limit_is_closed_with_1009(driver: &str, peer: Peer) {
    let mut server = EchoServer::start(driver, &["--max-message", LIMIT]);
    let url = server.url.clone();
    let out = run_peer_client(
        peer,
        &[
            "--url",
            &url,
            "--no-deflate",
            "--send-big",
            "200000",
            "--big-fragments",
            "4",
            "--expect-close-code",
            "1009",
        ],
    );
    assert_peer_passed(&out, &["connect", "big_200000_closed_1009"], &server);
    server.assert_running();
}

fn default_limit_is_64_mib(driver: &str) {
    let mut server = EchoServer::start(driver, &[]);
    let url = server.url.clone();
    let over = (64 * 1024 * 1024 + 1).to_string();
    let out = run_peer_client(
        Peer::Python,
        &[
            "--url",
            &url,
            "--no-deflate",
            "--send-big",
            &over,
            "--expect-close-code",
            "1009",
        ],
    );
    assert_peer_passed(
        &out,
        &["connect", &format!("big_{over}_closed_1009")],
        &server,
    );
    server.assert_running();
}

#[test]
fn tokio_echo_echoes_a_message_of_exactly_max_message_bytes() {
    exact_limit_is_echoed("tokio", Peer::Python);
    exact_limit_is_echoed("tokio", Peer::Node);
}

#[test]
fn tokio_echo_closes_with_1009_one_byte_over_max_message() {
    one_byte_over_limit_is_closed_with_1009("tokio", Peer::Python);
    one_byte_over_limit_is_closed_with_1009("tokio", Peer::Node);
}

#[test]
fn tokio_echo_closes_with_1009_when_fragments_add_up_over_max_message() {
    fragmented_message_over_limit_is_closed_with_1009("tokio", Peer::Python);
    fragmented_message_over_limit_is_closed_with_1009("tokio", Peer::Node);
}

#[test]
fn tokio_echo_default_max_message_is_64_mib() {
    default_limit_is_64_mib("tokio");
}

#[test]
fn poll_echo_echoes_a_message_of_exactly_max_message_bytes() {
    exact_limit_is_echoed("poll", Peer::Python);
    exact_limit_is_echoed("poll", Peer::Node);
}

#[test]
fn poll_echo_closes_with_1009_one_byte_over_max_message() {
    one_byte_over_limit_is_closed_with_1009("poll", Peer::Python);
    one_byte_over_limit_is_closed_with_1009("poll", Peer::Node);
}

#[test]
fn poll_echo_closes_with_1009_when_fragments_add_up_over_max_message() {
    fragmented_message_over_limit_is_closed_with_1009("poll", Peer::Python);
    fragmented_message_over_limit_is_closed_with_1009("poll", Peer::Node);
}

#[test]
fn poll_echo_default_max_message_is_64_mib() {
    default_limit_is_64_mib("poll");
}
