//! The demo page of `netplay serve` (netplay built for the browser: `crates/netplay-demo`) in
//! headless Chromium, with `netplay chat` in the same
//! lobby: the page's address is the invitation, the tabs list each other in `#peers`, and chat
//! lines cross between tabs and the terminal both ways, in a mesh lobby and in a server lobby
//! whose host is a tab.
//!
//! Chromium gathers no loopback candidates, so the server, the browser and the terminal chat
//! all run inside one network namespace made by the test (`tests/interop/netns.sh`), whose
//! only address besides loopback is 10.77.0.1; no traffic leaves it. The page runs netplay's
//! `Lobby` and `SceneMultiplayer`, as `netplay chat` does.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{netplay_bin, workspace_root, Lines, Netns, Service};

/// How long a lobby may take to form or a line to arrive (browser start included).
const WAIT: Duration = Duration::from_secs(30);
/// How long a closed tab may take to leave every other member's list.
const LEAVE_BOUND: Duration = Duration::from_secs(3);

/// Everything of one test in its namespace: `netplay serve`, the page driver and chats.
struct Setup {
    // Fields drop in this order: the browser, the server, then the namespace.
    browser: Lines,
    _server: Service,
    port: u16,
    ns: Netns,
}

impl Setup {
    fn start() -> Setup {
        let ns = Netns::up("demo");
        let (server, port, browser) =
            common::web::serve_and_drive(Some(&ns), &["--seed", "11"], "demo_page.js");
        Setup {
            browser,
            _server: server,
            port,
            ns,
        }
    }

    /// Opens tab `k` at `path`; its lobby name, id and address once the page knows them.
    fn open(&mut self, k: u32, path: &str) -> (String, i32, String) {
        self.browser.write_line(&format!("open {k} {path}"));
        let prefix = format!("tab {k} lobby ");
        let (lobby, id) = self.browser.wait(WAIT, "the tab's lobby", |l| {
            let rest = l.strip_prefix(&prefix)?;
            let (lobby, id) = rest.split_once(" id ")?;
            Some((lobby.to_string(), id.parse::<i32>().ok()?))
        });
        let prefix = format!("tab {k} address ");
        let address = self.browser.wait(WAIT, "the tab's address", |l| {
            l.strip_prefix(&prefix).map(str::to_string)
        });
        (lobby, id, address)
    }

    /// Waits until tab `k` lists exactly `ids` (in any order) in `#peers`.
    fn peers(&mut self, k: u32, ids: &[i32], timeout: Duration) {
        let mut want: Vec<i32> = ids.to_vec();
        want.sort_unstable();
        let what = format!("tab {k} listing {want:?}");
        self.browser
            .latest(timeout, &what, &format!("tab {k} peers "), |rest| {
                let mut got: Vec<i32> = rest
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .filter_map(|s| s.parse().ok())
                    .collect();
                got.sort_unstable();
                got == want
            });
    }

    /// A `netplay chat` in the namespace, joining `lobby`; its id once joined.
    fn chat(&self, lobby: &str) -> (Lines, i32) {
        let mut cmd = Command::new(netplay_bin());
        cmd.args([
            "chat",
            "--log-level",
            "warn",
            "--url",
            &format!("ws://127.0.0.1:{}", self.port),
            "--lobby",
            lobby,
        ]);
        let mut chat = Lines::new(Service::spawn(
            "netplay chat",
            &mut self.ns.wrap(cmd),
            false,
        ));
        let id = chat.wait(WAIT, "`joined as ID`", |l| {
            l.strip_prefix("joined as ")?.parse::<i32>().ok()
        });
        let expected = format!("lobby {lobby}");
        chat.wait_exact(WAIT, &expected);
        (chat, id)
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        // The driver closes Chromium and removes its profile when its input ends.
        self.browser.service.close_stdin();
        let _ = self
            .browser
            .service
            .guard
            .wait_timeout(Duration::from_secs(10));
    }
}

#[test]
fn the_demo_page_is_the_rust_build_that_serve_embeds() {
    // What the browser tests drive is what `netplay serve` embeds, and web/ is what
    // crates/netplay-demo builds to (scripts/build-web.sh --check, in the test command).
    let web = workspace_root().join("web");
    let page = std::fs::read_to_string(web.join("index.html")).unwrap();
    assert_eq!(page, netplay_server::DEMO_PAGE);
    let js = std::fs::read_to_string(web.join("netplay_demo.js")).unwrap();
    assert_eq!(js, netplay_server::DEMO_JS);
    let wasm = std::fs::read(web.join("netplay_demo_bg.wasm")).unwrap();
    assert_eq!(wasm, netplay_server::DEMO_WASM);
    assert!(wasm.starts_with(b"\0asm"));
    for needle in [
        r#"id="peers""#,
        r#"id="chat-input""#,
        r#"id="chat-log""#,
        r#"id="field""#,
        r#"import init from "./netplay_demo.js""#,
    ] {
        assert!(page.contains(needle), "the demo page lacks {needle}");
    }
}

/// Each tab's dot follows its mouse and the others see it move: positions go 60 times a
/// second on the unreliable channel.
#[test]
fn a_dot_moved_in_one_tab_moves_in_the_other() {
    let mut s = Setup::start();
    let (lobby, id1, _) = s.open(1, "/");
    let (_, id2, _) = s.open(2, &format!("/?lobby={lobby}"));
    s.peers(1, &[id2], WAIT);
    s.peers(2, &[id1], WAIT);
    for (x, y) in [(100, 50), (500, 300)] {
        s.browser.write_line(&format!("move 1 {x} {y}"));
        s.browser
            .wait_exact(WAIT, &format!("tab 2 dot {id1} {x} {y}"));
    }
}

#[test]
fn two_tabs_and_a_terminal_chat_share_a_mesh_lobby_through_the_invite_address() {
    let mut s = Setup::start();
    let (lobby, id1, address) = s.open(1, "/");
    assert_eq!(id1, 1, "the tab that opens `/` creates the lobby");
    let invite = format!("/?lobby={lobby}");
    assert!(
        address.ends_with(&invite),
        "the address becomes the invitation: {address}"
    );

    let (joined, id2, _) = s.open(2, &invite);
    assert_eq!(joined, lobby);
    assert!(id2 >= 2);
    s.peers(1, &[id2], WAIT);
    s.peers(2, &[id1], WAIT);

    let (mut chat, id3) = s.chat(&lobby);
    chat.wait_exact(WAIT, "+ 1");
    chat.wait_exact(WAIT, &format!("+ {id2}"));
    s.peers(1, &[id2, id3], WAIT);
    s.peers(2, &[id1, id3], WAIT);

    // Tab to tab and terminal, terminal to both tabs.
    s.browser.write_line("say 1 hello from the first tab");
    let line = format!("{id1}: hello from the first tab");
    s.browser.wait_exact(WAIT, &format!("tab 2 log {line}"));
    chat.wait_exact(WAIT, &line);
    s.browser.write_line("say 2 ünïcode from tab two");
    let line = format!("{id2}: ünïcode from tab two");
    s.browser.wait_exact(WAIT, &format!("tab 1 log {line}"));
    chat.wait_exact(WAIT, &line);
    chat.write_line("hello from the terminal");
    let line = format!("{id3}: hello from the terminal");
    s.browser.wait_exact(WAIT, &format!("tab 1 log {line}"));
    s.browser.wait_exact(WAIT, &format!("tab 2 log {line}"));

    // A closed tab leaves the other tab's list and the terminal's peers.
    s.browser.write_line("close 2");
    s.browser.wait_exact(WAIT, "tab 2 closed");
    s.peers(1, &[id3], LEAVE_BOUND);
    chat.wait_exact(LEAVE_BOUND, &format!("- {id2}"));
}

#[test]
fn a_tab_hosting_a_server_lobby_relays_between_a_tab_and_a_terminal_chat() {
    let mut s = Setup::start();
    let (lobby, host, address) = s.open(1, "/?server");
    assert_eq!(host, 1);
    assert!(address.ends_with(&format!("/?lobby={lobby}")), "{address}");

    let (mut chat, id_chat) = s.chat(&lobby);
    chat.wait_exact(WAIT, "+ 1");
    let (_, id_tab, _) = s.open(2, &format!("/?lobby={lobby}"));
    // The clients know of each other only through the host's ADD_PEER announcements.
    s.peers(1, &[id_chat, id_tab], WAIT);
    s.peers(2, &[1, id_chat], WAIT);
    chat.wait_exact(WAIT, &format!("+ {id_tab}"));

    // Client tab to everyone: RELAY to the host, which reads it and passes it on.
    s.browser.write_line("say 2 through the host");
    let line = format!("{id_tab}: through the host");
    s.browser.wait_exact(WAIT, &format!("tab 1 log {line}"));
    chat.wait_exact(WAIT, &line);
    // Terminal client to everyone, the same way.
    chat.write_line("from the terminal");
    let line = format!("{id_chat}: from the terminal");
    s.browser.wait_exact(WAIT, &format!("tab 1 log {line}"));
    s.browser.wait_exact(WAIT, &format!("tab 2 log {line}"));
    // The host to everyone directly.
    s.browser.write_line("say 1 from the host");
    let line = "1: from the host".to_string();
    s.browser.wait_exact(WAIT, &format!("tab 2 log {line}"));
    chat.wait_exact(WAIT, &line);

    // The client tab leaves: the host announces DEL_PEER to the terminal.
    s.browser.write_line("close 2");
    s.peers(1, &[id_chat], LEAVE_BOUND);
    chat.wait_exact(LEAVE_BOUND, &format!("- {id_tab}"));
}
