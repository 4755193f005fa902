//! WebRTC interop harness: `netplay rtc-echo` paired with an external driving peer
//! (tests/interop: aiortc, libdatachannel, headless Chromium), their JSON lines
//! (docs/PROTOCOL.md) relayed between them by the test, with every candidate checked to stay on
//! the allowed addresses.

use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::{clip, interop_dir, netplay_bin, node_dir, venv_python, ChildGuard, Netns};

/// The external stack that drives the test plan.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Driver {
    /// `tests/interop/rtc_py_peer.py`: aiortc.
    Aiortc,
    /// `tests/interop/node/rtc_peer.js`: libdatachannel through node-datachannel.
    Libdatachannel,
    /// `tests/interop/node/rtc_browser_peer.js`: headless Chromium's RTCPeerConnection. It
    /// gathers no loopback candidates, so its pairings run in a network namespace.
    Chromium,
}

/// Which side writes the offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Offerer {
    /// `netplay rtc-echo --offer`.
    Netplay,
    /// The external driver.
    Driver,
}

/// What one pairing produced.
pub(crate) struct Pairing {
    /// The driver's `result` line.
    pub result: Option<serde_json::Value>,
    /// The driver's exit status (None: killed at the deadline).
    pub driver_exit: Option<i32>,
    /// netplay's exit status.
    pub netplay_exit: Option<i32>,
    /// Candidates the relay dropped because of their address.
    pub foreign_candidates: Vec<String>,
    /// Both processes' stderr, for the failure message.
    pub log: String,
    /// netplay's stderr alone.
    pub netplay_log: String,
}

impl Pairing {
    /// Panics with everything useful unless the driver passed every check and both sides
    /// ended cleanly.
    pub(crate) fn assert_passed(&self, what: &str) {
        let ok = self
            .result
            .as_ref()
            .and_then(|r| r.get("ok"))
            .and_then(|v| v.as_bool())
            == Some(true);
        let failed: Vec<String> = self
            .result
            .as_ref()
            .and_then(|r| r.get("checks"))
            .and_then(|c| c.as_array())
            .map(|checks| {
                checks
                    .iter()
                    .filter(|c| c.get("ok").and_then(|v| v.as_bool()) != Some(true))
                    .map(|c| c.to_string())
                    .collect()
            })
            .unwrap_or_default();
        if !ok
            || self.driver_exit != Some(0)
            || self.netplay_exit != Some(0)
            || !self.foreign_candidates.is_empty()
        {
            panic!(
                "{what}: driver exit {:?}, netplay exit {:?}, result ok {ok}, failed checks {failed:#?}, \
                 foreign candidates {:?}\n--- log ---\n{}",
                self.driver_exit,
                self.netplay_exit,
                self.foreign_candidates,
                clip(&self.log, 30_000)
            );
        }
        let passed = self
            .result
            .as_ref()
            .and_then(|r| r.get("passed"))
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        assert!(passed >= 10, "{what}: only {passed} checks ran");
        eprintln!("{what}: {passed} checks passed");
    }

    /// The driver's check `name` passed (it must have run).
    pub(crate) fn assert_check_passed(&self, what: &str, name: &str) {
        let check = self
            .result
            .as_ref()
            .and_then(|r| r.get("checks"))
            .and_then(|c| c.as_array())
            .and_then(|checks| {
                checks
                    .iter()
                    .find(|c| c.get("name").and_then(|n| n.as_str()) == Some(name))
            });
        match check {
            Some(c) if c.get("ok").and_then(|v| v.as_bool()) == Some(true) => {
                eprintln!("{what}: {name} passed: {c}");
            }
            Some(c) => panic!("{what}: check {name} failed: {c}"),
            None => panic!("{what}: check {name} did not run"),
        }
    }

    /// What `netplay rtc-echo --drop-every` reported at exit: (inbound, outbound) datagrams
    /// dropped. Panics when the line is missing.
    pub(crate) fn drops(&self, what: &str) -> (u64, u64) {
        let line = self
            .netplay_log
            .lines()
            .find(|l| l.starts_with("rtc-echo: drop-every "))
            .unwrap_or_else(|| {
                panic!(
                    "{what}: netplay wrote no drop-every line\n--- netplay log ---\n{}",
                    clip(&self.netplay_log, 10_000)
                )
            });
        // rtc-echo: drop-every N: dropped A of B inbound and C of D outbound ...
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |word: &str| -> u64 {
            words
                .iter()
                .position(|w| *w == word)
                .and_then(|i| words.get(i + 1))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{what}: cannot read {line:?}"))
        };
        let inbound = after("dropped");
        let outbound = after("and");
        eprintln!("{what}: {line}");
        (inbound, outbound)
    }
}

/// The command line of an external driver in `drive` mode.
fn driver_command(driver: Driver) -> Command {
    match driver {
        Driver::Aiortc => {
            let mut c = Command::new(venv_python());
            c.arg(interop_dir().join("rtc_py_peer.py"));
            c
        }
        Driver::Libdatachannel => {
            let mut c = Command::new("node");
            c.arg(node_dir().join("rtc_peer.js"));
            c
        }
        Driver::Chromium => {
            let mut c = Command::new("node");
            c.arg(node_dir().join("rtc_browser_peer.js"));
            c
        }
    }
}

/// Whether every candidate address of a line is `allowed`; the offending ones go to `bad`.
fn candidates_allowed(msg: &serde_json::Value, allowed: &str, bad: &mut Vec<String>) -> bool {
    let mut lines: Vec<String> = Vec::new();
    if let Some(c) = msg.get("candidate").and_then(|v| v.as_str()) {
        lines.push(c.to_string());
    }
    if let Some(sdp) = msg.get("sdp").and_then(|v| v.as_str()) {
        lines.extend(
            sdp.lines()
                .filter_map(|l| l.trim().strip_prefix("a="))
                .filter(|l| l.starts_with("candidate:"))
                .map(str::to_string),
        );
    }
    let mut ok = true;
    for line in lines {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.len() >= 8 && parts[4] != allowed {
            bad.push(line.clone());
            ok = false;
        }
    }
    ok
}

/// Copies JSON lines from `from` to `to`, dropping lines with foreign candidates; the driver's
/// `result` line is kept in `result` instead of being forwarded.
fn relay(
    from: impl std::io::Read + Send + 'static,
    mut to: ChildStdin,
    allowed: &'static str,
    tag: &'static str,
    shared: Arc<Mutex<Shared>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
                shared
                    .lock()
                    .unwrap()
                    .log
                    .push_str(&format!("[{tag} stdout, not JSON] {line}\n"));
                continue;
            };
            if msg.get("type").and_then(|t| t.as_str()) == Some("result") {
                shared.lock().unwrap().result = Some(msg);
                continue;
            }
            {
                let mut s = shared.lock().unwrap();
                let mut bad = Vec::new();
                let ok = candidates_allowed(&msg, allowed, &mut bad);
                s.foreign.extend(bad);
                if !ok {
                    continue;
                }
            }
            if writeln!(to, "{line}").and_then(|_| to.flush()).is_err() {
                break;
            }
        }
    })
}

fn collect_stderr(
    from: impl std::io::Read + Send + 'static,
    tag: &'static str,
    shared: Arc<Mutex<Shared>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            let mut s = shared.lock().unwrap();
            if s.log.len() < 200_000 {
                s.log.push_str(&format!("[{tag}] {line}\n"));
            }
            if tag == "netplay" && s.netplay_log.len() < 200_000 {
                s.netplay_log.push_str(&line);
                s.netplay_log.push('\n');
            }
        }
    })
}

#[derive(Default)]
struct Shared {
    result: Option<serde_json::Value>,
    foreign: Vec<String>,
    log: String,
    netplay_log: String,
}

/// Runs one pairing: `netplay rtc-echo` and `driver` in drive mode with `driver_args`
/// (channel specs and the like), bounded by `timeout`. On 127.0.0.1, or for Chromium inside a
/// network namespace of its own on 10.77.0.1.
pub(crate) fn pair(
    driver: Driver,
    offerer: Offerer,
    driver_args: &[&str],
    timeout: Duration,
) -> Pairing {
    pair_with(driver, offerer, &[], driver_args, timeout)
}

/// [`pair`] with `netplay_args` added to `netplay rtc-echo`'s command line (`--drop-every N`).
pub(crate) fn pair_with(
    driver: Driver,
    offerer: Offerer,
    netplay_args: &[&str],
    driver_args: &[&str],
    timeout: Duration,
) -> Pairing {
    let netns = matches!(driver, Driver::Chromium).then(|| Netns::up("rtc"));
    let allowed = if netns.is_some() {
        "10.77.0.1"
    } else {
        "127.0.0.1"
    };
    let (np_role, drv_role) = match offerer {
        Offerer::Netplay => ("--offer", "--answer"),
        Offerer::Driver => ("--answer", "--offer"),
    };
    let mut np_cmd = Command::new(netplay_bin());
    np_cmd.args([
        "rtc-echo",
        np_role,
        "--host-ip",
        allowed,
        "--connect-timeout",
        "30",
    ]);
    np_cmd.args(netplay_args);
    let mut drv_cmd = driver_command(driver);
    drv_cmd
        .args(["drive", drv_role, "--host-ip", allowed, "--timeout", "30"])
        .args(driver_args);
    if let Some(ns) = &netns {
        np_cmd = ns.wrap(np_cmd);
        drv_cmd = ns.wrap(drv_cmd);
    }
    for c in [&mut np_cmd, &mut drv_cmd] {
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
    }
    let shared = Arc::new(Mutex::new(Shared::default()));
    let mut np = ChildGuard::spawn("netplay rtc-echo", &mut np_cmd);
    let mut drv = ChildGuard::spawn("rtc driver", &mut drv_cmd);
    let np_out = np.child_mut().stdout.take().expect("stdout");
    let np_err = np.child_mut().stderr.take().expect("stderr");
    let np_in = np.child_mut().stdin.take().expect("stdin");
    let drv_out = drv.child_mut().stdout.take().expect("stdout");
    let drv_err = drv.child_mut().stderr.take().expect("stderr");
    let drv_in = drv.child_mut().stdin.take().expect("stdin");
    let np_log = collect_stderr(np_err, "netplay", shared.clone());
    collect_stderr(drv_err, "driver", shared.clone());
    let r1 = relay(drv_out, np_in, allowed, "driver", shared.clone());
    let r2 = relay(np_out, drv_in, allowed, "netplay", shared.clone());
    let deadline = Instant::now() + timeout;
    let driver_exit = drv
        .wait_timeout(deadline.saturating_duration_since(Instant::now()))
        .and_then(|s| s.code());
    if driver_exit.is_none() {
        drv.kill();
    }
    // The driver wrote `bye` (or died, closing netplay's stdin): netplay ends on its own.
    let netplay_exit = np
        .wait_timeout(Duration::from_secs(10))
        .and_then(|s| s.code());
    if netplay_exit.is_none() {
        np.kill();
    }
    let _ = r1.join();
    let _ = r2.join();
    // netplay is gone: its stderr ends, and its last line (the drop counts) must be in.
    let log_until = Instant::now() + Duration::from_secs(5);
    while !np_log.is_finished() && Instant::now() < log_until {
        thread::sleep(Duration::from_millis(10));
    }
    thread::sleep(Duration::from_millis(50));
    let s = shared.lock().unwrap();
    Pairing {
        result: s.result.clone(),
        driver_exit,
        netplay_exit,
        foreign_candidates: s.foreign.clone(),
        log: s.log.clone(),
        netplay_log: s.netplay_log.clone(),
    }
}
