//! coturn, a TURN server that is not ours, on a free port of 127.0.0.1.
//!
//! Each server has a long-term user `USER`:`PASS` in realm `REALM`, relays on loopback only,
//! and is killed when its [`Coturn`] drops. The binary is found through `$NETPLAY_TURNSERVER`
//! or on `PATH` (Debian package `coturn`, installed by `scripts/setup-system.sh`); without it
//! the tests fail.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use netplay::stun::{Action, ClientTransaction, Message};

pub(crate) const USER: &str = "netplay";
pub(crate) const PASS: &str = "correct horse";
pub(crate) const REALM: &str = "netplay.test";

/// A running coturn, killed and reaped on drop; its log is printed if the test failed.
pub(crate) struct Coturn {
    child: Child,
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl Coturn {
    /// Starts coturn with `extra` flags and waits until it answers a Binding request. A port
    /// taken between choosing and binding it (tests run in parallel) means another try on
    /// another port.
    pub(crate) fn start(extra: &[&str]) -> Coturn {
        for _ in 0..3 {
            let mut server = Coturn::spawn(extra);
            if server.wait_ready() {
                return server;
            }
            eprintln!(
                "turnserver did not answer on {}; trying another port",
                server.addr
            );
        }
        panic!("turnserver did not answer on three ports");
    }

    /// What the server logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("turnserver.log")).unwrap_or_default()
    }

    fn spawn(extra: &[&str]) -> Coturn {
        static SERVERS: AtomicU16 = AtomicU16::new(0);
        let n = SERVERS.fetch_add(1, Ordering::Relaxed) % 20;
        let binary = turnserver_binary();
        let dir = std::env::temp_dir().join(format!(
            "netplay-coturn-{}-{n}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        let port = free_port();
        // A relay port range of its own per server, below the ephemeral ports.
        let base = 12_000 + ((std::process::id() % 20) as u16 * 20 + n) * 50;
        let log = std::fs::File::create(dir.join("turnserver.log")).expect("create the log file");
        let path = |name: &str| dir.join(name).display().to_string();
        let mut cmd = Command::new(&binary);
        cmd.args([
            "-n", // no configuration file
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            &format!("--listening-port={port}"),
            &format!("--min-port={base}"),
            &format!("--max-port={}", base + 49),
            "--lt-cred-mech",
            &format!("--user={USER}:{PASS}"),
            &format!("--realm={REALM}"),
            "--allow-loopback-peers",
            "--no-tls",
            "--no-dtls",
            "--no-tcp-relay",
            "--no-cli",
            "--no-rfc5780",
            &format!("--userdb={}", path("turndb")),
            &format!("--pidfile={}", path("turnserver.pid")),
            "--log-file=stdout",
            "--simple-log",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone the log file"))
        .stderr(log);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        Coturn {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        }
    }

    /// Whether the server answers a Binding request within 10 s.
    fn wait_ready(&mut self) -> bool {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 1500];
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("turnserver exited at start: {status}");
            }
            let mut tx = ClientTransaction::binding();
            let Action::Transmit(request) = tx.poll(Instant::now()) else {
                unreachable!()
            };
            let _ = socket.send_to(request, self.addr);
            if let Ok((n, _)) = socket.recv_from(&mut buf) {
                if Message::decode(&buf[..n]).is_ok_and(|m| tx.handle_response(&m)) {
                    return true;
                }
            }
        }
        false
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- turnserver log (last lines) ---");
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `turnserver` binary: `$NETPLAY_TURNSERVER`, else the first on `PATH`.
fn turnserver_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NETPLAY_TURNSERVER") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "NETPLAY_TURNSERVER={} is not a file",
            path.display()
        );
        return path;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("turnserver"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no `turnserver` on PATH and NETPLAY_TURNSERVER is not set: install coturn \
                 (scripts/setup-system.sh does)"
            )
        })
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}
