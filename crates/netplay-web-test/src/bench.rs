//! The netplay side of the browser benchmark (`bench/web.sh`): one peer connection with one
//! reliable ordered channel between two pages, and the measurements (bulk transfer,
//! ping-pong) written against netplay's public API and timed inside the page.
//! `bench/web/plain.js` is the same peer written against the browser's RTCPeerConnection;
//! the page drives either through the same calls, so the two differ only in the stack.
//!
//! Calls: `new BenchPeer(offer)`, `signal(json)` (a line of the other page), `poll()` (lines
//! for the page, `\n`-separated: `signal JSON`, `open`, `sent MS`, `received`, `pings US,...`,
//! `error TEXT`), `send(size, total)` (bulk transfer of `total` bytes in messages of `size`,
//! timed until the receiver's one-byte acknowledgement), `expect(total)` (the receiver:
//! acknowledges once that many bytes arrived; on the sender, before `send` to an echo peer:
//! timed until all of it came back), `pingpong(count, size)` (round trips, each
//! sent when the previous echo arrived), `echo(on)` (echo what arrives).

use netplay::rtc::{ChannelId, DataChannelOptions, Event, PeerConfig, PeerConnection, SdpKind};
use netplay::time::Instant;
use serde_json::Value;
use wasm_bindgen::prelude::wasm_bindgen;

/// The bulk sender keeps the send buffer between these two levels: it sends while the
/// buffered amount is at most `HIGH` and waits for the low-water event at `LOW`. With a
/// message of up to 16 KiB on top, that stays within netplay's default send budget (1 MiB).
const HIGH: usize = 768 << 10;
const LOW: usize = 256 << 10;

/// One benchmark peer.
#[wasm_bindgen]
pub struct BenchPeer {
    pc: PeerConnection,
    channel: ChannelId,
    out: Vec<String>,
    /// Bulk transfer: the message, the bytes still to send, whether the buffer is over
    /// `HIGH` (waiting for the low-water event), and when it started.
    message: Vec<u8>,
    to_send: usize,
    waiting_low: bool,
    started: Option<Instant>,
    /// Bytes still expected by the receiver.
    expected: usize,
    echo: bool,
    /// Ping-pong: the message, the round trips left, the current one's start, and the times.
    ping: Vec<u8>,
    pings_left: usize,
    ping_sent: Option<Instant>,
    rtts: Vec<u64>,
}

#[wasm_bindgen]
impl BenchPeer {
    /// A peer whose channel is negotiated (id 0, reliable, ordered); `offer`: this side offers.
    #[wasm_bindgen(constructor)]
    pub fn new(offer: bool) -> Result<BenchPeer, String> {
        let mut pc = PeerConnection::new(PeerConfig::default()).map_err(|e| e.to_string())?;
        let channel = pc
            .create_data_channel("bench", DataChannelOptions::negotiated(0))
            .map_err(|e| e.to_string())?;
        if offer {
            pc.create_offer().map_err(|e| e.to_string())?;
        }
        Ok(BenchPeer {
            pc,
            channel,
            out: Vec::new(),
            message: Vec::new(),
            to_send: 0,
            waiting_low: false,
            started: None,
            expected: 0,
            echo: false,
            ping: Vec::new(),
            pings_left: 0,
            ping_sent: None,
            rtts: Vec::new(),
        })
    }

    /// A signaling line of the other page.
    pub fn signal(&mut self, line: &str) -> Result<(), String> {
        let v: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let text = |key: &str| v.get(key).and_then(Value::as_str).unwrap_or_default();
        let result = match text("type") {
            "offer" => self.pc.set_remote_description(SdpKind::Offer, text("sdp")),
            "answer" => self.pc.set_remote_description(SdpKind::Answer, text("sdp")),
            "candidate" => self.pc.add_ice_candidate(text("mid"), 0, text("candidate")),
            _ => Ok(()),
        };
        result.map_err(|e| e.to_string())
    }

    /// Starts a bulk transfer of `total` bytes in messages of `size`.
    pub fn send(&mut self, size: usize, total: usize) {
        self.message = vec![0x5a; size];
        self.to_send = total;
        self.waiting_low = false;
        self.started = Some(Instant::now());
        self.fill();
    }

    /// Acknowledges with one byte once `total` more bytes arrived.
    pub fn expect(&mut self, total: usize) {
        self.expected = total;
    }

    /// Runs `count` round trips of `size` bytes.
    pub fn pingpong(&mut self, count: usize, size: usize) {
        self.ping = vec![0x70; size];
        self.pings_left = count;
        self.rtts.clear();
        self.send_ping();
    }

    /// Whether to send back every message that arrives.
    pub fn echo(&mut self, on: bool) {
        self.echo = on;
    }

    /// Polls; returns the lines for the page.
    pub fn poll(&mut self) -> String {
        self.pc.poll();
        while let Some(event) = self.pc.poll_event() {
            match event {
                Event::SessionDescriptionCreated { .. }
                | Event::IceCandidateCreated { .. }
                | Event::GatheringStateChanged(_) => {
                    if let Some(line) = crate::echo_peer::signal_line(&mut self.pc, event) {
                        self.out.push(format!("signal {line}"));
                    }
                }
                Event::DataChannelOpen(_) => self.out.push("open".into()),
                Event::BufferedAmountLow(_) => {
                    self.waiting_low = false;
                    self.fill();
                }
                _ => {}
            }
        }
        self.read();
        std::mem::take(&mut self.out).join("\n")
    }
}

impl BenchPeer {
    fn send_bytes(&mut self, data: &[u8]) {
        let result = match self.pc.channel(self.channel) {
            Some(mut ch) => ch.send_binary(data).map_err(|e| e.to_string()),
            None => Err("no channel".into()),
        };
        if let Err(e) = result {
            self.out.push(format!("error {e}"));
        }
        self.pc.flush();
    }

    fn send_ping(&mut self) {
        if self.pings_left == 0 {
            let list: Vec<String> = self.rtts.iter().map(u64::to_string).collect();
            self.out.push(format!("pings {}", list.join(",")));
            return;
        }
        self.pings_left -= 1;
        self.ping_sent = Some(Instant::now());
        let ping = std::mem::take(&mut self.ping);
        self.send_bytes(&ping);
        self.ping = ping;
    }

    /// Sends the bulk transfer's next messages until the buffer is over `HIGH`.
    fn fill(&mut self) {
        if self.waiting_low || self.to_send == 0 {
            return;
        }
        let Some(mut ch) = self.pc.channel(self.channel) else {
            return;
        };
        ch.set_buffered_amount_low_threshold(LOW);
        while self.to_send > 0 {
            if ch.buffered_amount() > HIGH {
                self.waiting_low = true;
                break;
            }
            let n = self.message.len().min(self.to_send);
            match ch.send_binary(&self.message[..n]) {
                Ok(()) => {}
                Err(netplay::rtc::Error::BufferFull { .. }) => {
                    self.waiting_low = true;
                    break;
                }
                Err(e) => {
                    self.out.push(format!("error {e}"));
                    self.to_send = 0;
                    break;
                }
            }
            self.to_send -= n;
        }
        self.pc.flush();
    }

    /// Takes what arrived: echoes it, counts it (and acknowledges the whole), or takes it as
    /// the echo of a ping or the acknowledgement of a bulk transfer.
    fn read(&mut self) {
        loop {
            let Some(data) = self
                .pc
                .channel(self.channel)
                .and_then(|mut ch| ch.get_packet())
            else {
                return;
            };
            if self.echo {
                self.send_bytes(&data);
            } else if self.expected > 0 {
                self.expected = self.expected.saturating_sub(data.len());
                // Sent to an echo peer, all of it came back; else acknowledge the whole.
                if self.expected == 0 && !self.report_sent() {
                    self.send_bytes(&[1]);
                    self.out.push("received".into());
                }
            } else if let Some(sent) = self.ping_sent.take() {
                self.rtts.push(sent.elapsed().as_micros() as u64);
                self.send_ping();
            } else {
                self.report_sent();
            }
        }
    }

    /// Reports the running bulk transfer's time as `sent MS`; `false` if none runs.
    fn report_sent(&mut self) -> bool {
        let Some(started) = self.started.take() else {
            return false;
        };
        let ms = started.elapsed().as_secs_f64() * 1e3;
        self.out.push(format!("sent {ms:.3}"));
        true
    }
}
