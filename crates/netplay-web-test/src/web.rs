//! The harness itself (wasm32 only).

use netplay::multiplayer::{
    Lobby, LobbyEvent, LobbyMode, MultiplayerPeer, SceneEvent, SceneMultiplayer, Target,
    TransferMode, WebSocketMultiplayerPeer,
};
use netplay::rtc::PeerConfig;
use netplay::ws::{ReadyState, WebSocketPeer, WriteMode};
use wasm_bindgen::prelude::wasm_bindgen;

/// The pattern of a `ws big` message: byte i is `i * 31 % 251`.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

/// Bytes as hex; `-` for none (a line's trailing space does not survive the trip).
fn hex(data: &[u8]) -> String {
    if data.is_empty() {
        return "-".to_string();
    }
    data.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s == "-" {
        return Some(Vec::new());
    }
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Messages at least this long are reported by size and checked against the pattern.
const BIG: usize = 4096;

/// netplay driven by text lines from the page.
#[wasm_bindgen]
pub struct Harness {
    ws: Option<WebSocketPeer>,
    mp: Option<SceneMultiplayer<WebSocketMultiplayerPeer>>,
    lobby: Option<SceneMultiplayer<Lobby>>,
    state: ReadyState,
    /// `ws hold`: poll, but leave received messages unread, as a game that stops reading.
    hold: bool,
    /// `ws churn`: connections still to make, the URL, and the one in progress.
    churn: Option<Churn>,
    /// `rtc churn`: peer connections still to make, and the one in progress.
    rtc_churn: Option<RtcChurn>,
    /// `rtc start`: a peer for `netplay rtc-echo`.
    echo: Option<crate::echo_peer::EchoSession>,
    out: Vec<String>,
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

#[wasm_bindgen]
impl Harness {
    /// A harness with no connection.
    #[wasm_bindgen(constructor)]
    pub fn new() -> Harness {
        Harness {
            ws: None,
            mp: None,
            lobby: None,
            state: ReadyState::Closed,
            hold: false,
            churn: None,
            rtc_churn: None,
            echo: None,
            out: Vec::new(),
        }
    }

    /// Runs one command; its reports come out of the next [`Harness::poll`].
    pub fn command(&mut self, line: &str) {
        let mut words = line.splitn(3, ' ');
        let (Some(part), Some(verb)) = (words.next(), words.next()) else {
            self.out.push(format!("error {line}: unknown command"));
            return;
        };
        let rest = words.next().unwrap_or("");
        if part == "mp" || part == "lobby" {
            let result = if part == "mp" {
                self.multiplayer(verb, rest)
            } else {
                self.lobby(verb, rest)
            };
            match result {
                Ok(()) => self.out.push("ok".to_string()),
                Err(e) => self.out.push(format!("error {verb}: {e}")),
            }
            return;
        }
        if part == "rtc" && verb != "churn" {
            let result = self.rtc(verb, rest);
            match result {
                Ok(()) => self.out.push("ok".to_string()),
                Err(e) => self.out.push(format!("error {verb}: {e}")),
            }
            return;
        }
        if part == "rtc" && verb == "churn" {
            match rest.parse::<usize>() {
                Ok(left) => {
                    self.rtc_churn = Some(RtcChurn {
                        left,
                        done: 0,
                        current: None,
                    });
                    self.out.push("ok".to_string());
                }
                Err(e) => self.out.push(format!("error churn: {e}")),
            }
            return;
        }
        if part != "ws" {
            self.out.push(format!("error {line}: unknown command"));
            return;
        }
        let result = match verb {
            "connect" => self.connect(rest),
            "text" => self.with_ws(|ws| ws.send(rest.as_bytes(), WriteMode::Text)),
            "binary" => match unhex(rest) {
                Some(data) => self.with_ws(|ws| ws.put_packet(&data)),
                None => Err("not hex".to_string()),
            },
            "big" => match rest.parse::<usize>() {
                Ok(n) => self.with_ws(|ws| ws.put_packet(&pattern(n))),
                Err(e) => Err(e.to_string()),
            },
            "close" => {
                let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
                match code.parse::<i32>() {
                    Ok(code) => self.with_ws(|ws| ws.close(code, reason)),
                    Err(e) => Err(e.to_string()),
                }
            }
            "buffered" => {
                let n = self
                    .ws
                    .as_ref()
                    .map_or(0, |ws| ws.current_outbound_buffered_amount());
                self.out.push(format!("ws buffered {n}"));
                return;
            }
            "churn" => {
                let (n, url) = rest.split_once(' ').unwrap_or((rest, ""));
                match n.parse::<usize>() {
                    Ok(left) => {
                        self.churn = Some(Churn {
                            url: url.to_string(),
                            left,
                            done: 0,
                            current: None,
                        });
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            "hold" => {
                self.hold = rest == "on";
                Ok(())
            }
            "drop" => {
                self.ws = None;
                self.state = ReadyState::Closed;
                Ok(())
            }
            _ => Err("unknown verb".to_string()),
        };
        match result {
            Ok(()) => self.out.push("ok".to_string()),
            Err(e) => self.out.push(format!("error {verb}: {e}")),
        }
    }

    /// Polls netplay and returns the reports since the last call, one per line.
    pub fn poll(&mut self) -> String {
        self.poll_multiplayer();
        self.poll_lobby();
        self.poll_churn();
        self.poll_rtc_churn();
        if let Some(echo) = self.echo.as_mut() {
            echo.poll(&mut self.out, hex);
        }
        if let Some(ws) = self.ws.as_mut() {
            ws.poll();
            let state = ws.ready_state();
            if state != self.state {
                self.state = state;
                match state {
                    ReadyState::Open => self
                        .out
                        .push(format!("ws open protocol={}", ws.selected_protocol())),
                    ReadyState::Closed => self.out.push(format!(
                        "ws closed code={} reason={} error={}",
                        ws.close_code(),
                        ws.close_reason(),
                        ws.last_error().map(|e| e.to_string()).unwrap_or_default()
                    )),
                    _ => {}
                }
            }
            while let Some(data) = if self.hold { None } else { ws.get_packet() } {
                let line = if data.len() >= BIG {
                    if data == pattern(data.len()) {
                        format!("ws big ok {}", data.len())
                    } else {
                        format!("ws big bad {}", data.len())
                    }
                } else if ws.was_string_packet() {
                    format!("ws text {}", String::from_utf8_lossy(&data))
                } else {
                    format!("ws binary {}", hex(&data))
                };
                self.out.push(line);
            }
        }
        std::mem::take(&mut self.out).join("\n")
    }
}

/// `ws churn N URL`: N connections, one after the other, each dropped as soon as it is open
/// and has sent a message (the drop/leak check).
struct Churn {
    url: String,
    left: usize,
    done: usize,
    current: Option<WebSocketPeer>,
}

/// `rtc churn N`: N peer connections, one after the other, each with a negotiated and an
/// in-band channel, dropped once its offer is out (the drop/leak check).
struct RtcChurn {
    left: usize,
    done: usize,
    current: Option<netplay::rtc::PeerConnection>,
}

impl Harness {
    /// `rtc start offer|answer CHANNELS`, `rtc line JSON`, `rtc send LABEL text|binary DATA`.
    fn rtc(&mut self, verb: &str, rest: &str) -> Result<(), String> {
        use crate::echo_peer::EchoSession;
        match verb {
            "start" => {
                let (role, channels) = rest.split_once(' ').unwrap_or((rest, ""));
                self.echo = Some(EchoSession::start(role == "offer", channels)?);
                Ok(())
            }
            "line" => self.echo.as_mut().ok_or("no session")?.line(rest),
            "hold" => {
                self.echo.as_mut().ok_or("no session")?.hold = rest == "on";
                Ok(())
            }
            "big" => {
                let mut w = rest.split(' ');
                let label = w.next().unwrap_or("");
                let size = w
                    .next()
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or("size")?;
                let count = w
                    .next()
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or("count")?;
                let echo = self.echo.as_mut().ok_or("no session")?;
                let data = pattern(size);
                let mut sent = 0;
                while sent < count {
                    match echo.send(label, &data, false) {
                        Ok(()) => sent += 1,
                        // The send buffer is full: the rest is not sent, and the test hears how much was.
                        Err(e) if e.starts_with("send buffer full") => break,
                        Err(e) => return Err(e),
                    }
                }
                self.out.push(format!("rtc big sent {sent}"));
                Ok(())
            }
            "low" => {
                let (label, bytes) = rest.split_once(' ').ok_or("rtc low LABEL BYTES")?;
                let bytes = bytes.parse::<usize>().map_err(|e| e.to_string())?;
                self.echo
                    .as_mut()
                    .ok_or("no session")?
                    .set_low(label, bytes)
            }
            "stats" => {
                let line = self.echo.as_ref().ok_or("no session")?.stats_line();
                self.out.push(line);
                Ok(())
            }
            "send" => {
                let mut w = rest.splitn(3, ' ');
                let (Some(label), Some(kind)) = (w.next(), w.next()) else {
                    return Err("rtc send LABEL text|binary DATA".into());
                };
                let data = w.next().unwrap_or("");
                let echo = self.echo.as_mut().ok_or("no session")?;
                if kind == "text" {
                    echo.send(label, data.as_bytes(), true)
                } else {
                    echo.send(label, &unhex(data).ok_or("not hex")?, false)
                }
            }
            _ => Err("unknown verb".into()),
        }
    }

    /// Moves the WebRTC churn on: `rtc churn done N` at the end, `rtc churn failed ...` if a
    /// connection cannot be made or gives no offer.
    fn poll_rtc_churn(&mut self) {
        use netplay::rtc::{DataChannelOptions, Event, PeerConnection};
        let Some(churn) = self.rtc_churn.as_mut() else {
            return;
        };
        if let Some(pc) = churn.current.as_mut() {
            pc.poll();
            let mut offered = false;
            while let Some(event) = pc.poll_event() {
                offered |= matches!(event, Event::SessionDescriptionCreated { .. });
            }
            if !offered {
                return;
            }
            churn.current = None;
            churn.done += 1;
        }
        if churn.left == 0 {
            self.out.push(format!("rtc churn done {}", churn.done));
            self.rtc_churn = None;
            return;
        }
        let made = PeerConnection::new(PeerConfig::default()).and_then(|mut pc| {
            pc.create_data_channel("negotiated", DataChannelOptions::negotiated(1))?;
            pc.create_data_channel("in-band", DataChannelOptions::default())?;
            pc.create_offer()?;
            Ok(pc)
        });
        match made {
            Ok(pc) => {
                churn.left -= 1;
                churn.current = Some(pc);
            }
            Err(e) => {
                self.out
                    .push(format!("rtc churn failed after {}: {e}", churn.done));
                self.rtc_churn = None;
            }
        }
    }

    /// Moves the churn on: reports `ws churn done N` at the end, `ws churn failed ...` if a
    /// connection does not open.
    fn poll_churn(&mut self) {
        let Some(churn) = self.churn.as_mut() else {
            return;
        };
        if let Some(ws) = churn.current.as_mut() {
            ws.poll();
            match ws.ready_state() {
                ReadyState::Open => {
                    let _ = ws.send_text("churn");
                    // Dropped while open, with a message just given to the browser.
                    churn.current = None;
                    churn.done += 1;
                }
                ReadyState::Closed => {
                    let why = ws.last_error().map(|e| e.to_string()).unwrap_or_default();
                    self.out
                        .push(format!("ws churn failed after {}: {why}", churn.done));
                    self.churn = None;
                    return;
                }
                _ => return,
            }
        }
        if churn.left == 0 {
            self.out.push(format!("ws churn done {}", churn.done));
            self.churn = None;
            return;
        }
        let mut ws = WebSocketPeer::new();
        match ws.connect_to_url(&churn.url, None) {
            Ok(()) => {
                churn.left -= 1;
                churn.current = Some(ws);
            }
            Err(e) => {
                self.out
                    .push(format!("ws churn failed after {}: {e}", churn.done));
                self.churn = None;
            }
        }
    }

    /// `mp connect URL`, `mp send TEXT` (to everyone), `mp send-to ID TEXT`, `mp close`.
    fn multiplayer(&mut self, verb: &str, rest: &str) -> Result<(), String> {
        if verb == "connect" {
            let mut peer = WebSocketMultiplayerPeer::new();
            peer.create_client(rest, None).map_err(|e| e.to_string())?;
            self.mp = Some(SceneMultiplayer::new(peer));
            return Ok(());
        }
        let mp = self.mp.as_mut().ok_or("no multiplayer peer")?;
        let result = match verb {
            "send" => mp.send_bytes(
                rest.as_bytes(),
                Target::Broadcast,
                TransferMode::Reliable,
                0,
            ),
            "send-to" => {
                let (id, text) = rest.split_once(' ').unwrap_or((rest, ""));
                let id = id.parse::<i32>().map_err(|e| e.to_string())?;
                mp.send_bytes(text.as_bytes(), Target::Peer(id), TransferMode::Reliable, 0)
            }
            "close" => {
                mp.peer_mut().close();
                Ok(())
            }
            _ => return Err("unknown verb".to_string()),
        };
        result.map_err(|e| e.to_string())
    }

    /// `lobby join URL [NAME] [server]` (a mesh unless `server`; no NAME: a new lobby),
    /// `lobby send TEXT` (reliable, to everyone), `lobby send-unreliable TEXT`, `lobby leave`.
    fn lobby(&mut self, verb: &str, rest: &str) -> Result<(), String> {
        if verb == "join" {
            let mut words = rest.split(' ');
            let url = words.next().unwrap_or("");
            let mut name = "";
            let mut mode = LobbyMode::Mesh;
            for w in words {
                if w == "server" {
                    mode = LobbyMode::ServerClient;
                } else {
                    name = w;
                }
            }
            let lobby = Lobby::connect(url, name, mode, PeerConfig::default())
                .map_err(|e| e.to_string())?;
            self.lobby = Some(SceneMultiplayer::new(lobby));
            return Ok(());
        }
        let scene = self.lobby.as_mut().ok_or("no lobby")?;
        let result = match verb {
            "send" => scene.send_bytes(
                rest.as_bytes(),
                Target::Broadcast,
                TransferMode::Reliable,
                0,
            ),
            "send-unreliable" => scene.send_bytes(
                rest.as_bytes(),
                Target::Broadcast,
                TransferMode::Unreliable,
                0,
            ),
            "leave" => {
                self.lobby = None;
                Ok(())
            }
            _ => return Err("unknown verb".to_string()),
        };
        result.map_err(|e| e.to_string())
    }

    /// Reports the lobby's events: `lobby id N`, `lobby name NAME`, `lobby + ID`, `lobby - ID`,
    /// `lobby packet FROM MODE TEXT`, `lobby error WHY`.
    fn poll_lobby(&mut self) {
        let Some(scene) = self.lobby.as_mut() else {
            return;
        };
        scene.poll();
        while let Some(event) = scene.peer_mut().poll_lobby_event() {
            let line = match event {
                LobbyEvent::Id { id, .. } => format!("lobby id {id}"),
                LobbyEvent::Joined { lobby } => format!("lobby name {lobby}"),
                other => format!("lobby event {other:?}"),
            };
            self.out.push(line);
        }
        while let Some(event) = scene.poll_event() {
            let line = match event {
                SceneEvent::PeerConnected(id) => format!("lobby + {id}"),
                SceneEvent::PeerDisconnected(id) => format!("lobby - {id}"),
                SceneEvent::Packet {
                    from, mode, data, ..
                } => format!(
                    "lobby packet {from} {mode:?} {}",
                    String::from_utf8_lossy(&data)
                ),
                other => format!("lobby other {other:?}"),
            };
            self.out.push(line);
        }
    }

    /// Reports the scene multiplayer's events: `mp connected id=N`, `mp + ID`, `mp - ID`,
    /// `mp packet FROM TEXT`, `mp server-disconnected`, `mp connection-failed`.
    fn poll_multiplayer(&mut self) {
        let Some(mp) = self.mp.as_mut() else {
            return;
        };
        mp.poll();
        while let Some(event) = mp.poll_event() {
            let line = match event {
                SceneEvent::ConnectedToServer => format!("mp connected id={}", mp.unique_id()),
                SceneEvent::PeerConnected(id) => format!("mp + {id}"),
                SceneEvent::PeerDisconnected(id) => format!("mp - {id}"),
                SceneEvent::Packet { from, data, .. } => {
                    format!("mp packet {from} {}", String::from_utf8_lossy(&data))
                }
                SceneEvent::ServerDisconnected => "mp server-disconnected".to_string(),
                SceneEvent::ConnectionFailed => "mp connection-failed".to_string(),
                other => format!("mp other {other:?}"),
            };
            self.out.push(line);
        }
    }

    fn connect(&mut self, rest: &str) -> Result<(), String> {
        let mut words = rest.split(' ');
        let url = words.next().unwrap_or("");
        let mut ws = WebSocketPeer::new();
        for word in words {
            let (key, value) = word.split_once('=').unwrap_or((word, ""));
            let number = || value.parse::<usize>().map_err(|e| e.to_string());
            match key {
                "protocols" => ws.set_supported_protocols(value.split(',')),
                "inbound" => ws.set_inbound_buffer_size(number()?),
                "outbound" => ws.set_outbound_buffer_size(number()?),
                "queue" => ws.set_max_queued_packets(number()?),
                _ => return Err(format!("unknown option {key}")),
            }
        }
        ws.connect_to_url(url, None).map_err(|e| e.to_string())?;
        self.state = ws.ready_state();
        self.ws = Some(ws);
        Ok(())
    }

    fn with_ws(
        &mut self,
        f: impl FnOnce(&mut WebSocketPeer) -> Result<(), netplay::ws::Error>,
    ) -> Result<(), String> {
        match self.ws.as_mut() {
            Some(ws) => f(ws).map_err(|e| e.to_string()),
            None => Err("no connection".to_string()),
        }
    }
}
