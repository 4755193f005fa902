//! The Autobahn|Testsuite (all 517 cases, run by `kosoku`, a native runner of
//! the Autobahn case files, from the test venv) passes for netplay:
//! - as a server: `netplay echo` with each driver (tokio, poll) is driven by
//!   `kosoku -m fuzzingclient`;
//! - as a client: the `autobahn_client` example is driven by
//!   `kosoku -m fuzzingserver`.
//!
//! "Passes" means every one of the 517 cases is in the report (index.json)
//! and each has `behavior` and `behaviorClose` in {OK, NON-STRICT,
//! INFORMATIONAL} (judged by `tests/interop/autobahn_check.py`, which lists
//! every failing case with its behaviour). The reports are kept under
//! `target/autobahn/` for reading after a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{
    example_bin, interop_dir, run_bounded, s, venv_python, venv_tool, EchoServer, Service,
};

const CASES: usize = 517;
/// Bound of one whole Autobahn run (the suite takes a few minutes).
const RUN_TIMEOUT: Duration = Duration::from_secs(40 * 60);

/// `target/autobahn/<name>`: fresh for each run, kept afterwards.
fn report_dir(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/autobahn/<name>
    let target = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("test binary is in target/<profile>/deps")
        .to_path_buf();
    let dir = target.join("autobahn").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// Judges `<dir>/index.json`; panics with the failing cases.
fn check_report(dir: &Path, agent: Option<&str>, context: &str) {
    let index = dir.join("index.json");
    assert!(
        index.is_file(),
        "no Autobahn report at {}\n{context}",
        index.display()
    );
    let mut cmd = Command::new(venv_python());
    cmd.arg(interop_dir().join("autobahn_check.py"))
        .arg(&index)
        .args(["--expect-cases", &CASES.to_string()]);
    if let Some(agent) = agent {
        cmd.args(["--agent", agent]);
    }
    let out = run_bounded(&mut cmd, Duration::from_secs(120));
    println!("{}", out.stdout);
    assert!(
        out.success(),
        "Autobahn report {} does not pass:\n{}\n{}\n{context}",
        index.display(),
        out.stdout,
        out.stderr
    );
}

fn autobahn_server(driver: &str) {
    let kosoku = venv_tool("kosoku");
    let mut server = EchoServer::start(driver, &[]);
    let dir = report_dir(&format!("server-{driver}"));
    let address = format!("127.0.0.1:{}", server.port);
    let out = run_bounded(
        Command::new(&kosoku).args(["-m", "fuzzingclient", "-p", "2", "-o", s(&dir), &address]),
        RUN_TIMEOUT,
    );
    let context = format!(
        "kosoku run:\n{}\n--- netplay echo output ---\n{}",
        out.report(),
        server.service.log()
    );
    assert!(out.status.is_some(), "kosoku timed out\n{context}");
    check_report(&dir, None, &context);
    server.assert_running();
}

#[test]
fn autobahn_server_cases_all_pass_with_tokio_driver() {
    autobahn_server("tokio");
}

#[test]
fn autobahn_server_cases_all_pass_with_poll_driver() {
    autobahn_server("poll");
}

#[test]
fn autobahn_client_cases_all_pass() {
    let kosoku = venv_tool("kosoku");
    let client = example_bin("autobahn_client");
    let dir = report_dir("client");
    // Port 0: kosoku binds a free port and prints it on stderr.
    let mut fuzzingserver = Service::spawn(
        "kosoku fuzzingserver",
        Command::new(&kosoku).args(["-m", "fuzzingserver", "-o", s(&dir), "127.0.0.1:0"]),
        true,
    );
    let url = fuzzingserver.wait_for_line(
        Duration::from_secs(60),
        "`fuzzingserver listening on ws://127.0.0.1:PORT`",
        |line| {
            let at = line.find("listening on ")?;
            let url = line[at + "listening on ".len()..].trim();
            url.starts_with("ws://").then(|| url.to_string())
        },
    );
    let out = run_bounded(
        Command::new(&client).args(["--url", &url, "--agent", "netplay"]),
        RUN_TIMEOUT,
    );
    // After /updateReports the fuzzingserver writes the report and exits.
    let status = fuzzingserver.guard.wait_timeout(Duration::from_secs(120));
    let context = format!(
        "autobahn_client run:\n{}\n--- kosoku fuzzingserver ({}) ---\n{}",
        out.report(),
        match status {
            Some(s) => format!("exited: {s}"),
            None => "still running 120 s after the client finished".to_string(),
        },
        fuzzingserver.log()
    );
    assert!(out.status.is_some(), "autobahn_client timed out\n{context}");
    check_report(&dir, Some("netplay"), &context);
    assert!(
        out.success(),
        "autobahn_client exited with {:?}\n{context}",
        out.status
    );
}
