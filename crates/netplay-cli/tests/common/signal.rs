//! The signaling server under test: `netplay serve` started on a free port, and a client on
//! netplay's polled WebSocket peer that speaks the lobby protocol.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use netplay::signal::Message;
use netplay::ws::{ReadyState, WebSocketPeer};

use super::{netplay_bin, Service, STARTUP_TIMEOUT};

/// A running `netplay serve`.
pub(crate) struct Server {
    pub service: Service,
    pub port: u16,
}

/// Starts `netplay serve` on 127.0.0.1 with a fixed seed and `extra` flags.
pub(crate) fn start(extra: &[&str]) -> Server {
    let mut cmd = Command::new(netplay_bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--seed", "7"])
        .args(extra);
    let mut service = Service::spawn("netplay serve", &mut cmd, false);
    let port = service.wait_for_line(STARTUP_TIMEOUT, "`listening on ws://...`", |line| {
        let rest = line
            .strip_prefix("listening on ws://127.0.0.1:")
            .or_else(|| line.strip_prefix("listening on wss://127.0.0.1:"))?;
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    });
    Server { service, port }
}

/// A signaling client.
pub(crate) struct Client {
    pub ws: WebSocketPeer,
}

impl Client {
    pub(crate) fn connect(port: u16) -> Client {
        let mut ws = WebSocketPeer::new();
        ws.connect_to_url(&format!("ws://127.0.0.1:{port}/"), None)
            .unwrap();
        let mut c = Client { ws };
        c.until(|ws| ws.ready_state() != ReadyState::Connecting);
        assert_eq!(c.ws.ready_state(), ReadyState::Open);
        c
    }

    pub(crate) fn until(&mut self, mut f: impl FnMut(&mut WebSocketPeer) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f(&mut self.ws) {
            assert!(Instant::now() < deadline, "timed out");
            self.ws.poll();
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub(crate) fn send(&mut self, m: &Message) {
        self.ws.send_text(&m.to_json()).unwrap();
        // As in Godot, a send is written out by the next poll.
        self.ws.poll();
    }

    pub(crate) fn recv(&mut self) -> Message {
        let mut got = None;
        self.until(|ws| {
            if let Some(p) = ws.get_packet() {
                got = Some(p);
            }
            got.is_some() || ws.ready_state() == ReadyState::Closed
        });
        let p = got.unwrap_or_else(|| {
            panic!(
                "closed while waiting: {} {}",
                self.ws.close_code(),
                self.ws.close_reason()
            )
        });
        Message::parse(std::str::from_utf8(&p).unwrap()).unwrap()
    }

    pub(crate) fn closed(&mut self) -> (i32, String) {
        self.until(|ws| ws.ready_state() == ReadyState::Closed);
        (self.ws.close_code(), self.ws.close_reason().to_string())
    }
}

/// The whole response to `GET path`, as bytes.
pub(crate) fn http_get_bytes(port: u16, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

pub(crate) fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Starts `netplay chat` on the `netplay serve` at `port` (loopback candidates only, warnings
/// on stderr), with `extra` flags; its stdout is what [`Service::wait_for_line`] reads.
pub(crate) fn chat(port: u16, extra: &[&str], name: &str) -> Service {
    let mut cmd = Command::new(netplay_bin());
    cmd.args([
        "chat",
        "--loopback",
        "--log-level",
        "warn",
        "--url",
        &format!("ws://127.0.0.1:{port}"),
    ])
    .args(extra);
    Service::spawn(name, &mut cmd, false)
}
