//! The demo crate's example `simple` (matchbox's `simple` example written with netplay) in two
//! headless Chromium tabs: the first creates a lobby on `netplay serve` at the example's fixed
//! address (`ws://localhost:9080/`), the second joins it by name, and each logs the other's
//! greeting. The fixed port is only ever bound inside a network namespace made by the test.

mod common;

use std::process::Command;

use common::web::WAIT;
use common::{netplay_bin, node_dir, web_test_dir, Lines, Netns, Service, STARTUP_TIMEOUT};

#[test]
fn two_tabs_of_the_simple_example_meet_in_a_lobby_and_greet_each_other() {
    let ns = Netns::up("websimple");
    let dir = web_test_dir();
    let mut cmd = Command::new(netplay_bin());
    cmd.args(["serve", "--listen", "127.0.0.1:9080", "--static"])
        .arg(&dir);
    let mut server = Service::spawn("netplay serve", &mut ns.wrap(cmd), false);
    server.wait_for_line(STARTUP_TIMEOUT, "`listening on`", |l| {
        l.contains("listening on ws://127.0.0.1:9080").then_some(())
    });
    let mut cmd = Command::new("node");
    cmd.arg(node_dir().join("wasm_page.js"))
        .args(["--base", "http://127.0.0.1:9080"]);
    let mut browser = Lines::new(Service::spawn("wasm_page.js", &mut ns.wrap(cmd), false));
    browser.wait_exact(WAIT, "ready");

    browser.write_line("open 1 /simple.html");
    browser.wait_exact(WAIT, "tab 1 ready");
    let lobby = browser.wait(WAIT, "the lobby's name", |l| {
        l.strip_prefix("tab 1 Lobby: ").map(str::to_string)
    });
    browser.write_line(&format!("open 2 /simple.html?lobby={lobby}"));
    browser.wait_exact(WAIT, "tab 2 ready");
    browser.wait_exact(WAIT, &format!("tab 2 Lobby: {lobby}"));
    // Ids: the creator is 1; the second gets another.
    let second = browser.wait(WAIT, "tab 1 sees the second", |l| {
        l.strip_prefix("tab 1 Peer joined: ")?.parse::<i32>().ok()
    });
    browser.wait_exact(WAIT, "tab 2 Peer joined: 1");
    browser.wait_exact(
        WAIT,
        &format!("tab 1 Message from {second}: \"hello friend!\""),
    );
    browser.wait_exact(WAIT, "tab 2 Message from 1: \"hello friend!\"");

    browser.write_line("close 2");
    browser.wait_exact(WAIT, &format!("tab 1 Peer left: {second}"));
    let log = browser.service.log();
    assert!(!log.contains("pageerror"), "{log}");
    browser.write_line("quit");
    let _ = browser
        .service
        .guard
        .wait_timeout(std::time::Duration::from_secs(10));
    drop(server);
    drop(ns);
}
