//! The harness's WebRTC peer for `netplay rtc-echo`: it speaks the JSON lines of
//! docs/PROTOCOL.md (`channels`, `offer`, `answer`, `candidate`), creates the channels the
//! way that document says (negotiated ones on both sides, in-band ones by the offerer), and
//! reports what opens and what comes back.

use std::collections::BTreeMap;

use netplay::rtc::{
    ChannelId, ConnectionState, DataChannelOptions, Event, GatheringState, PeerConfig,
    PeerConnection, SdpKind,
};
use serde_json::{json, Value};

/// One connection to an echo peer.
pub(crate) struct EchoSession {
    pc: PeerConnection,
    labels: BTreeMap<ChannelId, String>,
    /// `rtc hold on`: messages stay unread, as when a game stops reading.
    pub(crate) hold: bool,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The line of docs/PROTOCOL.md for a signaling event (a description, which is also applied
/// locally, a candidate, or the end of candidates once gathering is complete); `None` for
/// other events.
pub(crate) fn signal_line(pc: &mut PeerConnection, event: Event) -> Option<Value> {
    Some(match event {
        Event::SessionDescriptionCreated { kind, sdp } => {
            let _ = pc.set_local_description(kind, &sdp);
            let kind = if kind == SdpKind::Offer {
                "offer"
            } else {
                "answer"
            };
            json!({"type": kind, "sdp": sdp})
        }
        Event::IceCandidateCreated {
            mid,
            index,
            candidate,
        } => json!({"type": "candidate", "mid": mid, "index": index, "candidate": candidate}),
        Event::GatheringStateChanged(GatheringState::Complete) => {
            json!({"type": "candidate", "mid": "0", "index": 0, "candidate": ""})
        }
        _ => return None,
    })
}

impl EchoSession {
    /// `offer`: this side opens the in-band channels and writes the offer.
    pub(crate) fn start(offer: bool, channels: &str) -> Result<EchoSession, String> {
        let list: Value = serde_json::from_str(channels).map_err(|e| e.to_string())?;
        let list = list
            .get("channels")
            .and_then(Value::as_array)
            .ok_or("no channels array")?
            .clone();
        let mut pc = PeerConnection::new(PeerConfig::default()).map_err(|e| e.to_string())?;
        let mut labels = BTreeMap::new();
        for c in &list {
            let label = text(c, "label").ok_or("a channel without a label")?;
            let negotiated = c
                .get("negotiated")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if !negotiated && !offer {
                continue;
            }
            let number = |key: &str| {
                c.get(key)
                    .and_then(Value::as_u64)
                    .and_then(|n| u16::try_from(n).ok())
            };
            let options = DataChannelOptions {
                negotiated_id: if negotiated { number("id") } else { None },
                ordered: c.get("ordered").and_then(Value::as_bool).unwrap_or(true),
                max_retransmits: number("maxRetransmits"),
                max_packet_life_time: number("maxPacketLifeTime"),
                protocol: text(c, "protocol").unwrap_or_default(),
            };
            let id = pc
                .create_data_channel(&label, options)
                .map_err(|e| e.to_string())?;
            labels.insert(id, label);
        }
        if offer {
            pc.create_offer().map_err(|e| e.to_string())?;
        }
        Ok(EchoSession {
            pc,
            labels,
            hold: false,
        })
    }

    /// A line from the other side.
    pub(crate) fn line(&mut self, line: &str) -> Result<(), String> {
        let v: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let result = match v.get("type").and_then(Value::as_str) {
            Some("offer") => self
                .pc
                .set_remote_description(SdpKind::Offer, &text(&v, "sdp").unwrap_or_default()),
            Some("answer") => self
                .pc
                .set_remote_description(SdpKind::Answer, &text(&v, "sdp").unwrap_or_default()),
            Some("candidate") => {
                let mid = text(&v, "mid").unwrap_or_else(|| "0".into());
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0) as u32;
                let candidate = text(&v, "candidate").unwrap_or_default();
                self.pc.add_ice_candidate(&mid, index, &candidate)
            }
            _ => Ok(()),
        };
        result.map_err(|e| e.to_string())
    }

    /// The channel labelled `label`.
    fn labelled(&mut self, label: &str) -> Result<netplay::rtc::DataChannel<'_>, String> {
        let id = self
            .labels
            .iter()
            .find(|(_, l)| l.as_str() == label)
            .map(|(id, _)| *id)
            .ok_or("no such channel")?;
        self.pc
            .channel(id)
            .ok_or_else(|| "the channel is gone".into())
    }

    /// Sets the low-water mark of the channel labelled `label`.
    pub(crate) fn set_low(&mut self, label: &str, bytes: usize) -> Result<(), String> {
        self.labelled(label)?
            .set_buffered_amount_low_threshold(bytes);
        Ok(())
    }

    /// Sends on the channel labelled `label`.
    pub(crate) fn send(&mut self, label: &str, data: &[u8], text: bool) -> Result<(), String> {
        let mut channel = self.labelled(label)?;
        let result = if text {
            channel.send_text(std::str::from_utf8(data).map_err(|e| e.to_string())?)
        } else {
            channel.send_binary(data)
        };
        result.map_err(|e| e.to_string())
    }

    /// `rtc stats ...`: what `stats()` says now (the browser's part is at most a second old).
    pub(crate) fn stats_line(&self) -> String {
        let s = self.pc.stats();
        format!(
            "rtc stats packets_sent={} packets_received={} bytes_sent={} bytes_received={} messages_sent={} messages_received={} rtt_ms={} pair={}",
            s.packets_sent,
            s.packets_received,
            s.bytes_sent,
            s.bytes_received,
            s.messages_sent,
            s.messages_received,
            s.rtt.map_or("-".to_string(), |d| format!("{:.3}", d.as_secs_f64() * 1e3)),
            s.selected_pair
                .map_or("-".to_string(), |p| format!("{}>{}", p.local, p.remote)),
        )
    }

    /// Polls and reports: lines for the other side, opened channels, messages, states.
    pub(crate) fn poll(&mut self, out: &mut Vec<String>, hex: impl Fn(&[u8]) -> String) {
        self.pc.poll();
        while let Some(event) = self.pc.poll_event() {
            match event {
                Event::SessionDescriptionCreated { .. }
                | Event::IceCandidateCreated { .. }
                | Event::GatheringStateChanged(_) => {
                    if let Some(line) = signal_line(&mut self.pc, event) {
                        out.push(format!("rtc out {line}"));
                    }
                }
                Event::DataChannelReceived(id) => {
                    if let Some(ch) = self.pc.channel(id) {
                        self.labels.insert(id, ch.label().to_string());
                    }
                }
                Event::DataChannelOpen(id) => {
                    if let Some(ch) = self.pc.channel(id) {
                        out.push(format!(
                            "rtc open {} ordered={} negotiated={} id={:?} max_retransmits={:?} max_packet_life_time={:?} protocol={}",
                            ch.label(),
                            ch.is_ordered(),
                            ch.is_negotiated(),
                            ch.id(),
                            ch.max_retransmits(),
                            ch.max_packet_life_time(),
                            ch.protocol()
                        ));
                    }
                }
                Event::DataChannelClosed(id) => {
                    if let Some(label) = self.labels.get(&id) {
                        out.push(format!("rtc closed {label}"));
                    }
                }
                Event::BufferedAmountLow(id) => {
                    if let (Some(label), Some(ch)) = (self.labels.get(&id), self.pc.channel(id)) {
                        out.push(format!(
                            "rtc low {label} buffered={} threshold={}",
                            ch.buffered_amount(),
                            ch.buffered_amount_low_threshold()
                        ));
                    }
                }
                Event::ConnectionStateChanged(state) => {
                    let name = match state {
                        ConnectionState::New => "new",
                        ConnectionState::Connecting => "connecting",
                        ConnectionState::Connected => "connected",
                        ConnectionState::Disconnected => "disconnected",
                        ConnectionState::Failed => "failed",
                        ConnectionState::Closed => "closed",
                    };
                    out.push(format!("rtc state {name}"));
                }
                _ => {}
            }
        }
        if self.hold {
            return;
        }
        let ids: Vec<ChannelId> = self.labels.keys().copied().collect();
        for id in ids {
            let Some(mut ch) = self.pc.channel(id) else {
                continue;
            };
            while let Some(data) = ch.get_packet() {
                let label = ch.label().to_string();
                if ch.was_string_packet() {
                    out.push(format!(
                        "rtc msg {label} text {}",
                        String::from_utf8_lossy(&data)
                    ));
                } else {
                    out.push(format!("rtc msg {label} binary {}", hex(&data)));
                }
            }
        }
    }
}
