//! The browser side of the web tests: `netplay serve` (the demo page, or with `--static` the
//! pages of `crates/netplay-web-test`, built by `scripts/build-web.sh`) and headless Chromium
//! driving them through a Node driver of `tests/interop/node`, on 127.0.0.1 or inside a
//! network namespace of the test's.

use std::process::Command;
use std::time::Duration;

use super::{netplay_bin, node_dir, web_test_dir, Lines, Netns, Service, STARTUP_TIMEOUT};

/// How long a page, a connection or a report may take.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// `netplay serve --listen 127.0.0.1:0 SERVE_ARGS` and the Node driver `script` pointed at it,
/// both inside `ns` when given; the server, its port and the driver (after its `ready`).
pub(crate) fn serve_and_drive(
    ns: Option<&Netns>,
    serve_args: &[&str],
    script: &str,
) -> (Service, u16, Lines) {
    serve_and_drive_with(ns, serve_args, script, false)
}

/// [`serve_and_drive`], with Chromium's mDNS host candidates left on when `mdns`.
pub(crate) fn serve_and_drive_with(
    ns: Option<&Netns>,
    serve_args: &[&str],
    script: &str,
    mdns: bool,
) -> (Service, u16, Lines) {
    let wrap = |cmd: Command| match ns {
        Some(ns) => ns.wrap(cmd),
        None => cmd,
    };
    let mut cmd = Command::new(netplay_bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .args(serve_args);
    let mut server = Service::spawn("netplay serve", &mut wrap(cmd), false);
    let port: u16 = server.wait_for_line(STARTUP_TIMEOUT, "`listening on ws://...`", |line| {
        line.strip_prefix("listening on ws://127.0.0.1:")?
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    });
    let mut cmd = Command::new("node");
    cmd.arg(node_dir().join(script))
        .args(["--base", &format!("http://127.0.0.1:{port}")]);
    if mdns {
        cmd.env("NETPLAY_CHROMIUM_MDNS", "1");
    }
    let mut driver = Lines::new(Service::spawn(script, &mut wrap(cmd), false));
    driver.wait_exact(WAIT, "ready");
    (server, port, driver)
}

/// `serve_and_drive` with the test harness's pages (`--static`) and `wasm_page.js`.
pub(crate) fn harness_pages(ns: Option<&Netns>) -> (Service, u16, Lines) {
    harness_pages_with(ns, false)
}

/// [`harness_pages`], with Chromium's mDNS host candidates left on when `mdns`.
pub(crate) fn harness_pages_with(ns: Option<&Netns>, mdns: bool) -> (Service, u16, Lines) {
    let dir = web_test_dir();
    let dir = dir.to_str().expect("UTF-8 path");
    serve_and_drive_with(ns, &["--static", dir], "wasm_page.js", mdns)
}

/// A page server (`netplay serve --static`) and the browser driver.
pub(crate) struct Browser {
    pub lines: Lines,
    _pages: Service,
}

impl Browser {
    pub(crate) fn start() -> Browser {
        let (pages, _, mut lines) = harness_pages(None);
        lines.write_line("open 1");
        lines.wait_exact(WAIT, "tab 1 ready");
        Browser {
            lines,
            _pages: pages,
        }
    }

    /// Runs a harness command in tab 1 and returns its answer (`ok` or `error ...`).
    pub(crate) fn cmd(&mut self, line: &str) -> String {
        self.lines.write_line(&format!("cmd 1 {line}"));
        self.lines
            .wait(WAIT, &format!("the answer to `{line}`"), |l| {
                let rest = l.strip_prefix("tab 1 ")?;
                (rest == "ok" || rest.starts_with("error ")).then(|| rest.to_string())
            })
    }

    pub(crate) fn ok(&mut self, line: &str) {
        assert_eq!(self.cmd(line), "ok", "{line}");
    }

    /// Waits for tab 1's report `report`.
    pub(crate) fn expect(&mut self, report: &str) {
        self.lines.wait_exact(WAIT, &format!("tab 1 {report}"));
    }

    /// The next `ws closed ...` report of tab 1.
    pub(crate) fn closed(&mut self) -> String {
        self.lines.wait(WAIT, "`ws closed`", |l| {
            l.strip_prefix("tab 1 ws closed ").map(str::to_string)
        })
    }

    /// No uncaught exception happened in the page.
    pub(crate) fn assert_no_page_errors(&self) {
        let log = self.lines.service.log();
        assert!(!log.contains("pageerror"), "{log}");
    }
}
