//! netplay's `WebSocketPeer` in the browser (wasm32, over the browser's `WebSocket`) against the
//! native `netplay echo`: sub-protocols, text, binary and 16 MiB messages, close codes in both
//! directions with the browser's rules as typed errors, the inbound limits, a failed
//! handshake, and a peer dropped while open. The page is `crates/netplay-web-test`, driven in
//! headless Chromium by `tests/interop/node/wasm_page.js`; all traffic stays on 127.0.0.1.

mod common;

use common::web::Browser;
use common::EchoServer;

#[test]
fn wasm_websocket_exchanges_text_binary_and_16_mib_with_netplay_echo() {
    let echo = EchoServer::start("tokio", &["--protocol", "chat.v2"]);
    let mut b = Browser::start();
    b.ok(&format!(
        "ws connect {}/ protocols=other,chat.v2 inbound=20000000 outbound=20000000",
        echo.url
    ));
    b.expect("ws open protocol=chat.v2");
    b.ok("ws text héllo wörld");
    b.expect("ws text héllo wörld");
    b.ok("ws binary 00ff10807f");
    b.expect("ws binary 00ff10807f");
    b.ok("ws binary -");
    b.expect("ws binary -");
    b.ok("ws big 16777216");
    b.expect("ws big ok 16777216");
    // A normal close: the server answers with the same code.
    b.ok("ws close 1000 bye");
    let closed = b.closed();
    assert!(closed.starts_with("code=1000 "), "{closed}");
    assert_eq!(
        b.cmd("ws text late"),
        "error text: the connection is not open"
    );
    b.assert_no_page_errors();
}

#[test]
fn close_codes_follow_the_browser_rules_in_both_directions() {
    let echo = EchoServer::start("tokio", &["--max-message", "1000"]);
    let mut b = Browser::start();
    b.ok(&format!("ws connect {}/", echo.url));
    b.expect("ws open protocol=");
    // Codes a browser may not send, and a reason over 123 bytes: typed errors, the socket
    // stays open.
    for code in ["1001", "1011", "2999", "5000"] {
        let answer = b.cmd(&format!("ws close {code} nope"));
        assert!(
            answer.starts_with("error close: invalid parameter"),
            "{code}: {answer}"
        );
    }
    let answer = b.cmd(&format!("ws close 1000 {}", "r".repeat(124)));
    assert!(
        answer.starts_with("error close: invalid parameter"),
        "{answer}"
    );
    b.ok("ws text still open");
    b.expect("ws text still open");
    // An application code (4000-4999) goes out and the server's close frame answers with it.
    b.ok("ws close 4321 game over");
    let closed = b.closed();
    assert!(closed.starts_with("code=4321 "), "{closed}");

    // The server closes: over its --max-message it sends 1009.
    b.ok(&format!("ws connect {}/", echo.url));
    b.expect("ws open protocol=");
    b.ok("ws big 5000");
    let closed = b.closed();
    assert!(closed.starts_with("code=1009 "), "{closed}");
    b.assert_no_page_errors();
}

#[test]
fn the_outbound_limit_refuses_and_the_inbound_limits_close_with_typed_errors() {
    let echo = EchoServer::start("tokio", &[]);
    let mut b = Browser::start();
    // A send over outbound_buffer_size is refused (the browser's buffered amount plus the
    // message, Godot's check), and the connection stays open.
    b.ok(&format!("ws connect {}/ outbound=100", echo.url));
    b.expect("ws open protocol=");
    let answer = b.cmd(&format!("ws text {}", "z".repeat(101)));
    assert!(
        answer.starts_with("error text: outbound buffer full"),
        "{answer}"
    );
    b.ok(&format!("ws text {}", "z".repeat(100)));
    b.expect(&format!("ws text {}", "z".repeat(100)));
    b.ok("ws close 1000");
    b.closed();

    // A message over inbound_buffer_size: closed, 1009 locally (4009 on the wire).
    b.ok(&format!("ws connect {}/ inbound=100", echo.url));
    b.expect("ws open protocol=");
    b.ok(&format!("ws text {}", "x".repeat(100)));
    b.expect(&format!("ws text {}", "x".repeat(100)));
    b.ok(&format!("ws text {}", "y".repeat(101)));
    let closed = b.closed();
    assert!(
        closed.starts_with("code=1009 reason=message too big error="),
        "{closed}"
    );

    // More messages waiting than max_queued_packets: the page stops reading (still polling),
    // and the third echo is one too many for a queue of 2.
    b.ok(&format!("ws connect {}/ queue=2", echo.url));
    b.expect("ws open protocol=");
    b.ok("ws hold on");
    for i in 0..3 {
        b.ok(&format!("ws text held {i}"));
    }
    let closed = b.closed();
    assert!(
        closed.starts_with("code=1008 reason=inbound queue full"),
        "{closed}"
    );
    b.assert_no_page_errors();
}

#[test]
fn a_failed_handshake_and_a_dropped_peer_end_cleanly() {
    // Nothing listens on this port (the listener is closed at once).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut b = Browser::start();
    b.ok(&format!("ws connect ws://127.0.0.1:{port}/"));
    let closed = b.closed();
    assert!(closed.starts_with("code=-1 "), "{closed}");
    assert!(closed.contains("error=handshake failed"), "{closed}");
    // Bad URLs are refused before the browser sees them.
    let answer = b.cmd("ws connect http://127.0.0.1:1/");
    assert!(answer.starts_with("error connect: invalid URL"), "{answer}");

    // Dropped while open: the handlers are detached and the socket closed; nothing throws.
    let echo = EchoServer::start("tokio", &[]);
    b.ok(&format!("ws connect {}/", echo.url));
    b.expect("ws open protocol=");
    b.ok("ws text before drop");
    b.ok("ws drop");
    b.ok(&format!("ws connect {}/", echo.url));
    b.expect("ws open protocol=");
    b.ok("ws text after drop");
    b.expect("ws text after drop");
    b.assert_no_page_errors();
}

/// Runs `churn N` (a harness command that makes N connections one after the other and drops
/// each, reporting `<churn> done N`) for 50 as a warm-up (the first connections grow what
/// stays: caches, the allocator's pages), then twice for 200, and checks that neither the JS
/// heap nor the module's memory grows by 64 KiB or more over a round of 200, with no page error.
fn assert_churn_leaves_no_growing_heap(b: &mut Browser, churn: impl Fn(usize) -> String) {
    let heap = |b: &mut Browser| -> (u64, u64) {
        b.lines.write_line("heap 1");
        b.lines.wait(common::web::WAIT, "`heap`", |l| {
            let mut w = l.strip_prefix("tab 1 heap ")?.split(' ');
            Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
        })
    };
    let round = |b: &mut Browser, n: usize| {
        let command = churn(n);
        b.ok(&command);
        let kind = command.split(' ').next().unwrap_or("");
        b.expect(&format!("{kind} churn done {n}"));
        heap(b)
    };
    let mut samples = vec![round(b, 50)];
    for _ in 0..2 {
        samples.push(round(b, 200));
    }
    eprintln!("(JS heap, wasm memory) after 50, 250 and 450 connections: {samples:?}");
    for pair in samples.windows(2) {
        let ((js0, wasm0), (js1, wasm1)) = (pair[0], pair[1]);
        assert!(
            js1 < js0 + 64 * 1024,
            "the JS heap grew from {js0} to {js1} bytes over 200 connections: {samples:?}"
        );
        assert!(
            wasm1 <= wasm0 + 64 * 1024,
            "the wasm memory grew from {wasm0} to {wasm1} bytes: {samples:?}"
        );
    }
    b.assert_no_page_errors();
}

/// 200 connections made and dropped in a page (each dropped open, right after a send) leave
/// neither the JS heap nor the module's memory growing, and no handler runs after its drop
/// (a dropped closure called by the browser would throw in the page). Each connection's
/// socket, four handlers and queues would keep about 800 bytes if they leaked (measured by
/// leaking them on purpose): 160 KB per round of 200.
#[test]
fn two_hundred_connections_dropped_in_a_page_leave_no_growing_heap() {
    let echo = EchoServer::start("tokio", &[]);
    let mut b = Browser::start();
    assert_churn_leaves_no_growing_heap(&mut b, |n| format!("ws churn {n} {}/", echo.url));
}

/// The same check for WebRTC: 200 peer connections, each with a negotiated and an in-band
/// channel and its offer made, dropped one after the other, twice: no growing heap (a browser
/// also refuses new connections once about 500 are alive, so each drop must close its own).
#[test]
fn two_hundred_peer_connections_dropped_in_a_page_leave_no_growing_heap() {
    let mut b = Browser::start();
    assert_churn_leaves_no_growing_heap(&mut b, |n| format!("rtc churn {n}"));
}
