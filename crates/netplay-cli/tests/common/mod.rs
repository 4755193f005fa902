//! Shared helpers of the integration tests of the `netplay` binary (std only).
//!
//! - where the external tools are: `NETPLAY_VENV` (default `<workspace>/.venv`,
//!   made by `scripts/setup-interop.sh`) and `NETPLAY_NODE_DIR` (default
//!   `<workspace>/tests/interop/node`); a missing tool is a test failure that
//!   says how to install it, never a skip;
//! - [`ChildGuard`]: a spawned process that is killed when the guard drops, so
//!   no test leaves a server behind, even when it panics;
//! - [`run_bounded`]: run a command to completion with a deadline;
//! - [`EchoServer`]: `netplay echo --listen 127.0.0.1:0 ...`, ready to use;
//! - [`TempDir`] and [`gen_certs`] (a throwaway CA and a 127.0.0.1 certificate).
//!
//! Every wait here is bounded. All traffic stays on 127.0.0.1.
#![allow(dead_code)]

pub(crate) mod rtc;
pub(crate) mod signal;
pub(crate) mod web;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long `netplay echo` may take to print its `listening on` line.
pub(crate) const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one run of a peer client (`--suite` and friends) may take.
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(180);

/// The workspace root (`crates/netplay-cli/../..`).
pub(crate) fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// `tests/interop/` at the workspace root: the external peers and scripts.
pub(crate) fn interop_dir() -> PathBuf {
    workspace_root().join("tests").join("interop")
}

const SETUP_HINT: &str = "install the interop tools with `bash scripts/setup-interop.sh` \
     (scripts/test.sh does it), or point NETPLAY_VENV / NETPLAY_NODE_DIR at them";

/// The Python venv with kosoku, websockets and trustme.
pub(crate) fn venv_dir() -> PathBuf {
    match std::env::var_os("NETPLAY_VENV") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => workspace_root().join(".venv"),
    }
}

/// A program of the venv (`bin/<name>`); panics with a hint when missing.
pub(crate) fn venv_tool(name: &str) -> PathBuf {
    let path = venv_dir().join("bin").join(name);
    assert!(
        path.is_file(),
        "missing test tool {}: {SETUP_HINT}",
        path.display()
    );
    path
}

/// The venv's python.
pub(crate) fn venv_python() -> PathBuf {
    venv_tool("python")
}

/// The directory of the Node peer (`peer.js` and `node_modules/ws`).
pub(crate) fn node_dir() -> PathBuf {
    let dir = match std::env::var_os("NETPLAY_NODE_DIR") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => interop_dir().join("node"),
    };
    for needed in ["peer.js", "node_modules/ws/package.json"] {
        assert!(
            dir.join(needed).is_file(),
            "missing {}: {SETUP_HINT}",
            dir.join(needed).display()
        );
    }
    dir
}

/// The browser side of the web tests, built by `scripts/build-web.sh` (the test command runs
/// it): `NETPLAY_WEB_TEST_DIR`, default `<workspace>/target/web-test`.
pub(crate) fn web_test_dir() -> PathBuf {
    let dir = match std::env::var_os("NETPLAY_WEB_TEST_DIR") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => workspace_root().join("target/web-test"),
    };
    for needed in [
        "index.html",
        "netplay_web_test.js",
        "netplay_web_test_bg.wasm",
    ] {
        assert!(
            dir.join(needed).is_file(),
            "missing {}: run `bash scripts/build-web.sh` (scripts/test.sh does)",
            dir.join(needed).display()
        );
    }
    dir
}

/// The `netplay` binary under test.
pub(crate) fn netplay_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_netplay"))
}

/// `target/<profile>/examples/<name>`, found from this test binary's path
/// (`target/<profile>/deps/<test>-<hash>`).
pub(crate) fn example_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary is in target/<profile>/deps");
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "missing example binary {}: build it with `cargo build --workspace --all-targets` \
         (scripts/test.sh does)",
        path.display()
    );
    path
}

/// Shortens a long output for a panic message (keeps the head and the tail).
pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut head = max / 2;
    while !s.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = s.len() - max / 2;
    while !s.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{}\n[... {} bytes clipped ...]\n{}",
        &s[..head],
        tail - head,
        &s[tail..]
    )
}

// ------------------------------------------------------------------ processes

/// A child process that is killed (and reaped) when the guard drops.
pub(crate) struct ChildGuard {
    name: String,
    child: Child,
}

impl ChildGuard {
    pub(crate) fn spawn(name: &str, cmd: &mut Command) -> ChildGuard {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        ChildGuard {
            name: name.to_string(),
            child,
        }
    }

    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The exit status if the process has exited.
    pub(crate) fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `timeout` for the process to exit.
    pub(crate) fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// Kills the process (if still running) and reaps it.
    pub(crate) fn kill(&mut self) {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            eprintln!("[{}] stopping pid {}", self.name, self.child.id());
        }
        self.kill();
    }
}

/// Collects a pipe's output on a thread: into a shared log, and line by line
/// into a channel (for waiting on a line).
fn pump<R: Read + Send + 'static>(
    pipe: R,
    log: Arc<Mutex<String>>,
    tag: &'static str,
) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if let Ok(mut log) = log.lock() {
                        let _ = write!(log, "{tag}{line}");
                        if !line.ends_with('\n') {
                            log.push('\n');
                        }
                    }
                    let _ = tx.send(line.trim_end().to_string());
                }
            }
        }
    });
    rx
}

/// The result of [`run_bounded`].
pub(crate) struct Outcome {
    pub what: String,
    /// None when the command timed out (it was killed).
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Outcome {
    pub(crate) fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// Everything known about the run, for a panic message.
    pub(crate) fn report(&self) -> String {
        let status = match self.status {
            Some(s) => format!("{s}"),
            None => "TIMED OUT (killed)".to_string(),
        };
        format!(
            "command: {}\nstatus: {status} after {:.1}s\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.elapsed.as_secs_f64(),
            clip(&self.stdout, 20_000),
            clip(&self.stderr, 8_000)
        )
    }
}

/// Runs `cmd` to completion (stdin: null), killing it after `timeout`.
pub(crate) fn run_bounded(cmd: &mut Command, timeout: Duration) -> Outcome {
    let what = format!("{cmd:?}");
    let start = Instant::now();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut guard = ChildGuard::spawn(&what, cmd);
    let mut stdout = guard.child.stdout.take().expect("stdout");
    let mut stderr = guard.child.stderr.take().expect("stderr");
    let (tx_out, rx_out) = mpsc::channel();
    let (tx_err, rx_err) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        let _ = tx_out.send(buf);
    });
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        let _ = tx_err.send(buf);
    });
    let status = guard.wait_timeout(timeout);
    if status.is_none() {
        guard.kill();
    }
    // The pipes close when the process is gone (unless it left children
    // holding them: then give up after a few seconds).
    let collect = |rx: Receiver<Vec<u8>>| {
        rx.recv_timeout(Duration::from_secs(5))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|_| "<output not collected>".to_string())
    };
    Outcome {
        what,
        status,
        stdout: collect(rx_out),
        stderr: collect(rx_err),
        elapsed: start.elapsed(),
    }
}

/// A long-running process whose stdout and stderr are collected; it can be
/// waited on for a line. Killed on drop, and its output is then printed (the
/// test harness shows it when the test fails).
pub(crate) struct Service {
    pub guard: ChildGuard,
    name: String,
    log: Arc<Mutex<String>>,
    lines: Receiver<String>,
    stdin: Option<ChildStdin>,
}

impl Service {
    /// Spawns `cmd` with piped stdio. `watch_stderr` picks which stream
    /// [`Service::wait_for_line`] reads (both are logged).
    pub(crate) fn spawn(name: &str, cmd: &mut Command, watch_stderr: bool) -> Service {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut guard = ChildGuard::spawn(name, cmd);
        let log = Arc::new(Mutex::new(String::new()));
        let stdout = guard.child.stdout.take().expect("stdout");
        let stderr = guard.child.stderr.take().expect("stderr");
        let out_lines = pump(stdout, log.clone(), "");
        let err_lines = pump(stderr, log.clone(), "[stderr] ");
        let lines = if watch_stderr { err_lines } else { out_lines };
        let stdin = guard.child.stdin.take();
        Service {
            guard,
            name: name.to_string(),
            log,
            lines,
            stdin,
        }
    }

    /// Waits for a line for which `pick` returns Some; panics after `timeout`
    /// or if the process exits first.
    pub(crate) fn wait_for_line<T>(
        &mut self,
        timeout: Duration,
        what: &str,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(line) => {
                    if let Some(v) = pick(&line) {
                        return v;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.guard.wait_timeout(Duration::from_secs(5));
                    panic!(
                        "{} exited ({status:?}) before printing {what}; its output:\n{}",
                        self.name,
                        self.log()
                    );
                }
            }
            if let Some(status) = self.guard.try_wait() {
                // Give the pipe reader a moment to deliver the last lines.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
                    if let Some(v) = pick(&line) {
                        return v;
                    }
                }
                panic!(
                    "{} exited ({status}) before printing {what}; its output:\n{}",
                    self.name,
                    self.log()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} did not print {what} within {timeout:?}; its output so far:\n{}",
                    self.name,
                    self.log()
                );
            }
        }
    }

    /// The next line of the watched stream, waiting at most `timeout`; `None` when none came
    /// (or the process ended).
    pub(crate) fn try_line(&mut self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Writes one line to the process's stdin.
    pub(crate) fn write_line(&mut self, line: &str) {
        use std::io::Write as _;
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").expect("write to stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Closes the process's stdin (end of input).
    pub(crate) fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// Everything the process printed so far.
    pub(crate) fn log(&self) -> String {
        clip(
            &self.log.lock().map(|l| l.clone()).unwrap_or_default(),
            20_000,
        )
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        drop(self.stdin.take());
        self.guard.kill();
        // Let the pipe readers catch up with the last output.
        thread::sleep(Duration::from_millis(50));
        eprintln!("----- output of {} -----\n{}", self.name, self.log());
    }
}

/// A process whose stdout lines are kept, so that a wait finds lines that came while an
/// earlier wait was looking for something else.
pub(crate) struct Lines {
    pub service: Service,
    /// Lines read and not yet consumed by a wait.
    seen: Vec<String>,
}

impl Lines {
    pub(crate) fn new(service: Service) -> Lines {
        Lines {
            service,
            seen: Vec::new(),
        }
    }

    /// Consumes the first line for which `pick` is `Some`, waiting for it if it has not come
    /// yet; the lines around it stay for later waits.
    pub(crate) fn wait<T>(
        &mut self,
        timeout: Duration,
        what: &str,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> T {
        if let Some((i, v)) = self
            .seen
            .iter()
            .enumerate()
            .find_map(|(i, l)| Some((i, pick(l)?)))
        {
            self.seen.remove(i);
            return v;
        }
        let seen = &mut self.seen;
        self.service.wait_for_line(timeout, what, |line| {
            let v = pick(line);
            if v.is_none() {
                seen.push(line.to_string());
            }
            v
        })
    }

    /// Waits until the latest line starting with `prefix` satisfies `ok`.
    pub(crate) fn latest(
        &mut self,
        timeout: Duration,
        what: &str,
        prefix: &str,
        ok: impl Fn(&str) -> bool,
    ) {
        let last = self.seen.iter().rev().find_map(|l| l.strip_prefix(prefix));
        if last.is_some_and(&ok) {
            return;
        }
        let seen = &mut self.seen;
        self.service.wait_for_line(timeout, what, |line| {
            seen.push(line.to_string());
            line.strip_prefix(prefix).is_some_and(&ok).then_some(())
        });
    }

    pub(crate) fn wait_exact(&mut self, timeout: Duration, line: &str) {
        self.wait(timeout, line, |l| (l == line).then_some(()));
    }

    pub(crate) fn write_line(&mut self, line: &str) {
        self.service.write_line(line);
    }
}

// ----------------------------------------------------------------- netplay echo

/// A running `netplay echo` server.
pub(crate) struct EchoServer {
    pub service: Service,
    /// As printed: `ws://127.0.0.1:PORT` or `wss://127.0.0.1:PORT`.
    pub url: String,
    pub port: u16,
}

/// Parses `... listening on ws://127.0.0.1:PORT[/...]` into (url, port).
pub(crate) fn parse_listening_line(line: &str) -> Option<(String, u16)> {
    let at = line.find("listening on ")?;
    let url = line[at + "listening on ".len()..].trim();
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))?;
    let authority = rest.split('/').next()?;
    let port = authority.rsplit(':').next()?.parse().ok()?;
    let url = url.trim_end_matches('/').to_string();
    Some((url, port))
}

impl EchoServer {
    /// `netplay echo --listen 127.0.0.1:0 --driver <driver> <extra...>`.
    pub(crate) fn start(driver: &str, extra: &[&str]) -> EchoServer {
        let name = format!("netplay echo --driver {driver} {}", extra.join(" "));
        let mut cmd = Command::new(netplay_bin());
        cmd.args(["echo", "--listen", "127.0.0.1:0", "--driver", driver])
            .args(extra)
            .env("RUST_BACKTRACE", "1");
        let mut service = Service::spawn(&name, &mut cmd, false);
        let (url, port) = service.wait_for_line(
            STARTUP_TIMEOUT,
            "`listening on ws://127.0.0.1:PORT`",
            parse_listening_line,
        );
        EchoServer { service, url, port }
    }

    /// Panics (with the server's output) if the server has exited.
    pub(crate) fn assert_running(&mut self) {
        if let Some(status) = self.service.guard.try_wait() {
            panic!(
                "netplay echo exited ({status}) during the test; its output:\n{}",
                self.service.log()
            );
        }
    }
}

// --------------------------------------------------------------- peer clients

/// Which external peer implementation.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Peer {
    /// `tests/interop/py_peer.py` (Python websockets).
    Python,
    /// `tests/interop/node/peer.js` (Node ws).
    Node,
}

/// Runs `<peer> client <args...>` to completion (bounded).
pub(crate) fn run_peer_client(peer: Peer, args: &[&str]) -> Outcome {
    let mut cmd = match peer {
        Peer::Python => {
            let mut c = Command::new(venv_python());
            c.arg(interop_dir().join("py_peer.py"));
            c
        }
        Peer::Node => {
            let mut c = Command::new("node");
            c.arg(node_dir().join("peer.js"));
            c
        }
    };
    cmd.arg("client").args(args);
    run_bounded(&mut cmd, CLIENT_TIMEOUT)
}

/// The check names a peer client printed as `ok <name>`.
pub(crate) fn passed_checks(out: &Outcome) -> Vec<String> {
    out.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("ok "))
        .map(|s| s.trim().to_string())
        .collect()
}

/// Asserts that a peer client run passed: exit 0, no FAIL line, and every
/// check of `expected` reported `ok` (so a peer that ran nothing can't pass).
pub(crate) fn assert_peer_passed(out: &Outcome, expected: &[&str], server: &EchoServer) {
    let ok = passed_checks(out);
    let missing: Vec<&&str> = expected
        .iter()
        .filter(|e| !ok.iter().any(|o| o == *e))
        .collect();
    let has_fail = out.stdout.lines().any(|l| l.starts_with("FAIL"));
    if !out.success() || has_fail || !missing.is_empty() {
        panic!(
            "peer client failed against {} (missing checks: {missing:?})\n{}\n--- netplay echo output ---\n{}",
            server.url,
            out.report(),
            server.service.log()
        );
    }
}

/// The checks of `--suite`, then the final close (code 4001 echoed).
pub(crate) const SUITE_CHECKS: &[&str] = &[
    "connect",
    "text_round_trip",
    "empty_text_round_trip",
    "binary_round_trip",
    "fragmented_text",
    "fragmented_binary",
    "big_16mib_binary",
    "hundred_messages_in_order",
    "close_4001",
];

// ------------------------------------------------------------ files and certs

/// A fresh directory under the system temp dir, removed on drop.
pub(crate) struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub(crate) fn new(label: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "netplay-test-{label}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("NETPLAY_KEEP_TEST_DIRS").is_some() {
            eprintln!("kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Throwaway TLS material for 127.0.0.1 and localhost (made with `trustme`
/// in the test venv: `tests/interop/gen_certs.py`).
pub(crate) struct Certs {
    pub dir: TempDir,
    /// The CA certificate (what a client trusts).
    pub ca: PathBuf,
    /// The server certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// The server's private key (PKCS#8 PEM, ECDSA P-256).
    pub key: PathBuf,
}

pub(crate) fn gen_certs() -> Certs {
    let dir = TempDir::new("certs");
    let out = run_bounded(
        Command::new(venv_python())
            .arg(interop_dir().join("gen_certs.py"))
            .arg(&dir.path),
        Duration::from_secs(60),
    );
    assert!(
        out.success(),
        "cannot generate test certificates\n{}",
        out.report()
    );
    Certs {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        dir,
    }
}

/// A path as a &str (test paths are UTF-8).
pub(crate) fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

// ------------------------------------------------------------ network namespaces

/// A network namespace made for one test (`tests/interop/netns.sh up`), deleted on drop.
pub(crate) struct Netns(String);

impl Netns {
    /// Makes a namespace whose name starts with `label`.
    pub(crate) fn up(label: &str) -> Netns {
        let script = interop_dir().join("netns.sh");
        let out = Command::new("bash")
            .arg(&script)
            .args(["up", label])
            .output()
            .expect("run netns.sh");
        assert!(
            out.status.success(),
            "cannot make a network namespace (root and iproute2 are needed): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Netns(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `cmd` run inside the namespace.
    pub(crate) fn wrap(&self, cmd: Command) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).arg(cmd.get_program());
        c.args(cmd.get_args());
        for (key, value) in cmd.get_envs() {
            match value {
                Some(v) => c.env(key, v),
                None => c.env_remove(key),
            };
        }
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(interop_dir().join("netns.sh"))
            .args(["down", &self.0])
            .status();
    }
}
