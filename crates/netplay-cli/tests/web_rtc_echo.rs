//! netplay's `PeerConnection` in the browser (wasm32, over Chromium's `RTCPeerConnection`)
//! against the native `netplay rtc-echo`, in both offer directions: every channel kind of
//! docs/PROTOCOL.md's plan (reliable; unordered with a sub-protocol; unordered without
//! retransmissions; with a packet lifetime; negotiated ordered and unordered) opens with its
//! parameters on the browser side, and text, binary and empty messages come back on each.
//!
//! Chromium gathers no loopback candidates, so the page server, the browser and `rtc-echo`
//! run inside one network namespace made by the test (`tests/interop/netns.sh`), where
//! 10.77.0.1 is the only address besides loopback; no traffic leaves it.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{netplay_bin, Netns, Service};

const WAIT: Duration = Duration::from_secs(60);

const CHANNELS: &str = concat!(
    r#"{"type":"channels","channels":["#,
    r#"{"label":"reliable"},"#,
    r#"{"label":"unordered","ordered":false,"protocol":"chat"},"#,
    r#"{"label":"rexmit0","ordered":false,"maxRetransmits":0},"#,
    r#"{"label":"lifetime","ordered":false,"maxPacketLifeTime":3000},"#,
    r#"{"label":"negotiated","negotiated":true,"id":100},"#,
    r#"{"label":"negotiated-unordered","ordered":false,"negotiated":true,"id":101}]}"#
);

/// What the browser side must report when each channel opens.
const OPENS: [&str; 6] = [
    "reliable ordered=true negotiated=false",
    "unordered ordered=false negotiated=false",
    "rexmit0 ordered=false negotiated=false",
    "lifetime ordered=false negotiated=false",
    "negotiated ordered=true negotiated=true id=Some(100)",
    "negotiated-unordered ordered=false negotiated=true id=Some(101)",
];

fn run(browser_offers: bool, mdns: bool) {
    let ns = Netns::up("webrtc");
    let (pages, _, mut browser) = common::web::harness_pages_with(Some(&ns), mdns);
    let mut cmd = Command::new(netplay_bin());
    cmd.args([
        "rtc-echo",
        if browser_offers {
            "--answer"
        } else {
            "--offer"
        },
        "--host-ip",
        "10.77.0.1",
        "--log-level",
        "warn",
    ]);
    let mut echo = Service::spawn("netplay rtc-echo", &mut ns.wrap(cmd), false);
    browser.write_line("open 1");
    browser.wait_exact(WAIT, "tab 1 ready");

    echo.write_line(CHANNELS);
    let role = if browser_offers { "offer" } else { "answer" };
    browser.write_line(&format!("cmd 1 rtc start {role} {CHANNELS}"));

    // Relay the lines both ways; once every channel is open, send on each.
    let labels: Vec<&str> = OPENS.iter().map(|o| o.split(' ').next().unwrap()).collect();
    let mut opened: Vec<String> = Vec::new();
    let mut expected: BTreeSet<String> = BTreeSet::new();
    let mut got: BTreeSet<String> = BTreeSet::new();
    let mut sent = false;
    let deadline = Instant::now() + WAIT;
    while !sent || !expected.is_subset(&got) {
        assert!(
            Instant::now() < deadline,
            "timed out: opened {opened:?}, missing {:?}\nbrowser:\n{}\nrtc-echo:\n{}",
            expected.difference(&got).collect::<Vec<_>>(),
            browser.service.log(),
            echo.log()
        );
        while let Some(line) = echo.try_line(Duration::from_millis(1)) {
            browser.write_line(&format!("cmd 1 rtc line {line}"));
        }
        while let Some(line) = browser.service.try_line(Duration::from_millis(5)) {
            let Some(rest) = line.strip_prefix("tab 1 ") else {
                continue;
            };
            if let Some(out) = rest.strip_prefix("rtc out ") {
                echo.write_line(out);
            } else if let Some(open) = rest.strip_prefix("rtc open ") {
                opened.push(open.to_string());
            } else if rest.starts_with("rtc msg ") {
                got.insert(rest.to_string());
            } else if rest.starts_with("error ") || rest.starts_with("pageerror") {
                panic!("the page says: {rest}\n{}", browser.service.log());
            }
        }
        if !sent
            && labels
                .iter()
                .all(|l| opened.iter().any(|o| o.split(' ').next() == Some(l)))
        {
            for label in &labels {
                browser.write_line(&format!("cmd 1 rtc send {label} text héllo {label}"));
                browser.write_line(&format!("cmd 1 rtc send {label} binary 00ff7f80"));
                browser.write_line(&format!("cmd 1 rtc send {label} binary -"));
                expected.insert(format!("rtc msg {label} text héllo {label}"));
                expected.insert(format!("rtc msg {label} binary 00ff7f80"));
                expected.insert(format!("rtc msg {label} binary -"));
            }
            sent = true;
        }
    }
    for want in OPENS {
        let label = want.split(' ').next().unwrap();
        let open = opened
            .iter()
            .find(|o| o.split(' ').next() == Some(label))
            .unwrap();
        for part in want.split(' ').skip(1) {
            assert!(open.contains(part), "{label}: {open} lacks {part}");
        }
    }
    if mdns {
        // The browser's host candidates were names: rtc-echo ignored them and learned the
        // browser's address from its checks (a peer-reflexive candidate).
        let log = browser.service.log();
        let names = log.matches(".local").count();
        assert!(names > 0, "no mDNS candidate from the browser:\n{log}");
    }
    let rexmit = opened.iter().find(|o| o.starts_with("rexmit0 ")).unwrap();
    assert!(rexmit.contains("max_retransmits=Some(0)"), "{rexmit}");
    let lifetime = opened.iter().find(|o| o.starts_with("lifetime ")).unwrap();
    assert!(
        lifetime.contains("max_packet_life_time=Some(3000)"),
        "{lifetime}"
    );
    let unordered = opened.iter().find(|o| o.starts_with("unordered ")).unwrap();
    assert!(unordered.ends_with("protocol=chat"), "{unordered}");

    // Statistics: the channels' counters at once, the browser's transport part from
    // getStats() on a later poll.
    let stats_deadline = Instant::now() + Duration::from_secs(10);
    let stats = loop {
        assert!(Instant::now() < stats_deadline, "no transport statistics");
        browser.write_line("cmd 1 rtc stats");
        let line = browser.wait(WAIT, "`rtc stats`", |l| {
            l.strip_prefix("tab 1 rtc stats ").map(str::to_string)
        });
        let field = |key: &str| -> String {
            line.split(' ')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or("")
                .to_string()
        };
        if field("bytes_received").parse::<u64>().unwrap_or(0) > 0 {
            let n = |key: &str| field(key).parse::<u64>().unwrap_or(0);
            assert!(n("messages_received") >= 18, "{line}");
            assert!(n("messages_sent") >= 18, "{line}");
            assert!(n("packets_received") > 0 && n("bytes_sent") > 0, "{line}");
            break line;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    if !mdns {
        assert!(stats.contains("pair=10.77.0.1:"), "{stats}");
        assert!(!stats.contains("rtt_ms=-"), "{stats}");
    }

    // The low-water event: a burst far over the threshold, reported once it drained to it.
    browser.write_line("cmd 1 rtc low reliable 32768");
    browser.wait_exact(WAIT, "tab 1 ok");
    browser.write_line("cmd 1 rtc big reliable 60000 8");
    browser.wait_exact(WAIT, "tab 1 rtc big sent 8");
    // (With the default threshold of 0, each earlier message's send raised one too.)
    let low = browser.wait(WAIT, "the low-water event", |l| {
        (l.starts_with("tab 1 rtc low reliable ") && l.ends_with("threshold=32768"))
            .then(|| l.to_string())
    });
    let buffered: usize = low
        .split(' ')
        .find_map(|kv| kv.strip_prefix("buffered="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX);
    assert!(buffered <= 32768, "{low}");

    if browser_offers && !mdns {
        // A page that stops reading: the echoes pile up unread until the channel passes its
        // limit (64 x 256 KiB by default) and is closed, instead of growing without bound.
        browser.write_line("cmd 1 rtc hold on");
        // In rounds of what the send budget (1 MiB) takes, until the channel is closed.
        let limit = 64 * 256 * 1024;
        let mut sent = 0;
        loop {
            assert!(
                sent * 60000 < limit + (4 << 20),
                "{sent} messages and still open"
            );
            browser.write_line("cmd 1 rtc big reliable 60000 16");
            let round = browser.wait(WAIT, "rtc big sent", |l| {
                if l.starts_with("tab 1 error big: ") {
                    return Some(None);
                }
                Some(Some(
                    l.strip_prefix("tab 1 rtc big sent ")?
                        .parse::<usize>()
                        .ok()?,
                ))
            });
            let Some(round) = round else { break };
            sent += round;
            std::thread::sleep(Duration::from_millis(50));
        }
        // Not before the limit: what came back unread is at most what was sent.
        assert!(sent * 60000 > limit, "closed after {sent} messages");
        browser.wait_exact(WAIT, "tab 1 rtc closed reliable");
    }

    echo.write_line(r#"{"type":"bye"}"#);
    let status = echo.guard.wait_timeout(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "rtc-echo: {status:?}\n{}",
        echo.log()
    );
    drop(browser);
    drop(pages);
    drop(ns);
}

#[test]
fn a_browser_offer_to_rtc_echo_opens_every_channel_kind_and_echoes() {
    run(true, false);
}

#[test]
fn a_browser_answer_to_rtc_echo_opens_every_channel_kind_and_echoes() {
    run(false, false);
}

/// Chromium's default: host candidates as mDNS `.local` names. `rtc-echo` cannot resolve them
/// and connects through the peer-reflexive candidate the browser's checks give it.
#[test]
fn a_browser_offer_with_mdns_host_candidates_connects_to_rtc_echo() {
    run(true, true);
}
