//! The browser and native peers in one lobby: netplay's `Lobby` and `SceneMultiplayer` built
//! for wasm32 run in two headless Chromium tabs over the browser's own WebSocket and
//! `RTCPeerConnection`, and two native `netplay chat` processes join the same mesh through
//! `netplay serve`. Every pair exchanges on the reliable and the unreliable channel, and a tab
//! closed mid-session leaves every other peer; so does a tab whose renderer crashes.
//!
//! Chromium gathers no loopback candidates, so everything runs inside one network namespace
//! made by the test (`tests/interop/netns.sh`, whose only address besides loopback is
//! 10.77.0.1); no traffic leaves it.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::{netplay_bin, Lines, Netns, Service};

/// How long a lobby may take to form or a line to arrive (browser start included).
const WAIT: Duration = Duration::from_secs(40);
/// How long a closed tab may take to leave every other peer.
const LEAVE_BOUND: Duration = Duration::from_secs(3);

struct Setup {
    // Fields drop in this order: the browser, the chats, the server, then the namespace.
    browser: Lines,
    chats: Vec<(Lines, i32)>,
    _server: Service,
    port: u16,
    ns: Netns,
}

impl Setup {
    fn start() -> Setup {
        let ns = Netns::up("weblobby");
        let (server, port, browser) = common::web::harness_pages(Some(&ns));
        Setup {
            browser,
            chats: Vec::new(),
            _server: server,
            port,
            ns,
        }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.port)
    }

    /// Opens tab `k` and has it join `lobby` ("": create one); its id and the lobby's name.
    fn tab_joins(&mut self, k: u32, lobby: &str) -> (i32, String) {
        self.browser.write_line(&format!("open {k}"));
        self.browser.wait_exact(WAIT, &format!("tab {k} ready"));
        let url = self.url();
        self.browser
            .write_line(&format!("cmd {k} lobby join {url} {lobby}"));
        self.browser.wait_exact(WAIT, &format!("tab {k} ok"));
        let prefix = format!("tab {k} lobby id ");
        let id = self.browser.wait(WAIT, "the tab's id", |l| {
            l.strip_prefix(&prefix)?.parse::<i32>().ok()
        });
        let prefix = format!("tab {k} lobby name ");
        let name = self.browser.wait(WAIT, "the tab's lobby", |l| {
            l.strip_prefix(&prefix).map(str::to_string)
        });
        (id, name)
    }

    /// A `netplay chat` joining `lobby`; its index in `chats` and its id.
    fn chat_joins(&mut self, lobby: &str) -> i32 {
        let mut cmd = Command::new(netplay_bin());
        cmd.args([
            "chat",
            "--log-level",
            "warn",
            "--url",
            &self.url(),
            "--lobby",
            lobby,
        ]);
        let n = self.chats.len();
        let mut chat = Lines::new(Service::spawn(
            &format!("netplay chat {n}"),
            &mut self.ns.wrap(cmd),
            false,
        ));
        let id = chat.wait(WAIT, "`joined as ID`", |l| {
            l.strip_prefix("joined as ")?.parse::<i32>().ok()
        });
        self.chats.push((chat, id));
        id
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.browser.service.close_stdin();
        let _ = self
            .browser
            .service
            .guard
            .wait_timeout(Duration::from_secs(10));
    }
}

#[test]
fn two_browser_tabs_and_two_native_chats_share_a_mesh_and_hear_a_closed_tab_leave() {
    let mut s = Setup::start();
    let (t1, lobby) = s.tab_joins(1, "");
    assert_eq!(t1, 1, "the tab that creates the lobby is its host");
    let c1 = s.chat_joins(&lobby);
    let (t2, joined) = s.tab_joins(2, &lobby);
    assert_eq!(joined, lobby);
    let c2 = s.chat_joins(&lobby);
    let everyone: BTreeSet<i32> = [t1, t2, c1, c2].into();
    assert_eq!(everyone.len(), 4, "four distinct ids: {everyone:?}");

    // Everyone sees the three others.
    for (k, me) in [(1, t1), (2, t2)] {
        for other in everyone.iter().filter(|&&o| o != me) {
            s.browser
                .wait_exact(WAIT, &format!("tab {k} lobby + {other}"));
        }
    }
    for (chat, me) in s.chats.iter_mut() {
        for other in everyone.iter().filter(|&&o| o != *me) {
            chat.wait_exact(WAIT, &format!("+ {other}"));
        }
    }

    // Reliable, from each kind of peer to all others.
    s.browser.write_line("cmd 1 lobby send hello from tab one");
    s.browser.wait_exact(
        WAIT,
        &format!("tab 2 lobby packet {t1} Reliable hello from tab one"),
    );
    for (chat, _) in s.chats.iter_mut() {
        chat.wait_exact(WAIT, &format!("{t1}: hello from tab one"));
    }
    s.chats[0].0.write_line("hello from a terminal");
    for k in [1, 2] {
        s.browser.wait_exact(
            WAIT,
            &format!("tab {k} lobby packet {c1} Reliable hello from a terminal"),
        );
    }
    s.chats[1]
        .0
        .wait_exact(WAIT, &format!("{c1}: hello from a terminal"));
    // Unreliable, browser to everyone (one datagram inside a namespace: not lost in practice).
    s.browser
        .write_line("cmd 2 lobby send-unreliable quick from tab two");
    s.browser.wait_exact(
        WAIT,
        &format!("tab 1 lobby packet {t2} Unreliable quick from tab two"),
    );
    for (chat, _) in s.chats.iter_mut() {
        chat.wait_exact(WAIT, &format!("{t2}: quick from tab two"));
    }

    // Tab 2 closes: everyone else hears it within the bound.
    s.browser.write_line("close 2");
    s.browser.wait_exact(WAIT, "tab 2 closed");
    s.browser
        .wait_exact(LEAVE_BOUND, &format!("tab 1 lobby - {t2}"));
    for (chat, _) in s.chats.iter_mut() {
        chat.wait_exact(LEAVE_BOUND, &format!("- {t2}"));
    }
    let log = s.browser.service.log();
    assert!(!log.contains("pageerror"), "{log}");
}

#[test]
fn a_crashed_tab_leaves_every_other_peer_like_a_closed_one() {
    // The renderer dies without closing anything: the browser process closes its sockets,
    // and the signaling server's leave reaches everyone.
    let mut s = Setup::start();
    let (t1, lobby) = s.tab_joins(1, "");
    let c1 = s.chat_joins(&lobby);
    let (t2, _) = s.tab_joins(2, &lobby);
    s.browser.wait_exact(WAIT, &format!("tab 1 lobby + {t2}"));
    s.browser.wait_exact(WAIT, &format!("tab 2 lobby + {t1}"));
    s.browser.wait_exact(WAIT, &format!("tab 2 lobby + {c1}"));
    s.chats[0].0.wait_exact(WAIT, &format!("+ {t2}"));

    s.browser.write_line("crash 2");
    s.browser.wait_exact(WAIT, "tab 2 crashed");
    s.browser
        .wait_exact(LEAVE_BOUND, &format!("tab 1 lobby - {t2}"));
    s.chats[0].0.wait_exact(LEAVE_BOUND, &format!("- {t2}"));

    // The mesh goes on without it.
    s.chats[0].0.write_line("still here");
    s.browser.wait_exact(
        WAIT,
        &format!("tab 1 lobby packet {c1} Reliable still here"),
    );
}
