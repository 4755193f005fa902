//! `netplay rtc-echo`: a WebRTC peer for testing other stacks against netplay. It speaks the
//! JSON line protocol of `docs/PROTOCOL.md` on stdin/stdout (descriptions, candidates, the
//! channel list, bye) and echoes every data channel message back on its channel, same kind.
//! For loss tests it can drop a share of the SCTP traffic both ways (`--drop-every`).

use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use clap::Args;
use netplay::rtc::{
    ChannelId, ConnectionState, DataChannelOptions, DropCounts, DropEvery, Error as RtcError,
    Event, GatheringState, PeerConfig, PeerConnection, SdpKind,
};
use serde_json::{json, Value};

/// Arguments of `netplay rtc-echo`.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("role").required(true).args(["offer", "answer"])))]
pub(crate) struct RtcEchoArgs {
    /// Write the offer (after reading the `channels` line).
    #[arg(long)]
    offer: bool,
    /// Wait for the offer and write the answer.
    #[arg(long)]
    answer: bool,
    #[command(flatten)]
    ice: crate::ice::IceArgs,
    /// Gather and use relayed (TURN) candidates only.
    #[arg(long)]
    relay_only: bool,
    /// Gather host candidates on this address only (tests: 127.0.0.1).
    #[arg(long)]
    host_ip: Option<IpAddr>,
    /// Seconds until the connection must be up, or the peer exits with 1.
    #[arg(long, default_value_t = 30.0)]
    connect_timeout: f64,
    /// Test impairment: drop every Nth DTLS application-data datagram (the SCTP traffic) that
    /// arrives, and every Nth one this side sends; ICE checks and the DTLS handshake pass.
    /// The counts go to stderr at exit.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(2..))]
    drop_every: Option<u64>,
}

/// Exit code 1: the connection failed or never came up.
const EXIT_FAILED: u8 = 1;
/// Exit code 2: usage error or an invalid line.
const EXIT_PROTOCOL: u8 = 2;

/// Runs the peer; returns the process exit code.
pub(crate) fn run(args: RtcEchoArgs) -> u8 {
    match Peer::new(&args) {
        Ok(mut peer) => {
            let code = peer.run();
            if let (Some(every), Some(drops)) = (args.drop_every, &peer.drops) {
                eprintln!("rtc-echo: {}", drop_summary(every, drops));
            }
            code
        }
        Err(e) => {
            eprintln!("rtc-echo: {e}");
            EXIT_PROTOCOL
        }
    }
}

enum Line {
    Text(String),
    Eof,
}

struct Peer {
    pc: PeerConnection,
    offerer: bool,
    lines: mpsc::Receiver<Line>,
    stop: Arc<AtomicBool>,
    connect_deadline: Instant,
    channels_seen: bool,
    remote_applied: bool,
    local_written: bool,
    end_written: bool,
    gathering_complete: bool,
    connected: bool,
    /// Candidate lines that came before the remote description: (mid, index, candidate).
    early: Vec<(String, u32, String)>,
    /// The message waiting for send buffer room: (channel, is text, bytes). Reading stops
    /// while it waits, so there is never more than one.
    waiting: Option<(ChannelId, bool, Vec<u8>)>,
    /// What `--drop-every` dropped.
    drops: Option<Rc<DropCounts>>,
}

impl Peer {
    fn new(args: &RtcEchoArgs) -> Result<Peer, String> {
        let mut config = PeerConfig::default();
        if let Some(ip) = args.host_ip {
            config.bind_addresses = vec![ip];
            config.gather_loopback = ip.is_loopback();
        }
        args.ice.apply(&mut config);
        if args.relay_only {
            if !args.ice.has_turn() {
                return Err("--relay-only needs a turn: --ice-server".into());
            }
            config.relay_only = true;
        }
        if !(args.connect_timeout > 0.0 && args.connect_timeout < 86_400.0) {
            return Err("--connect-timeout must be a positive number of seconds".into());
        }
        let connect_timeout = Duration::from_secs_f64(args.connect_timeout);
        config.connect_timeout = connect_timeout;
        let mut pc = PeerConnection::new(config).map_err(|e| e.to_string())?;
        let drops = match args.drop_every {
            Some(every) => {
                let (source, drops) = DropEvery::new(every);
                pc.add_candidate_source(Box::new(source))
                    .map_err(|e| e.to_string())?;
                Some(drops)
            }
            None => None,
        };
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                match line {
                    Ok(l) => {
                        if tx.send(Line::Text(l)).is_err() {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            let _ = tx.send(Line::Eof);
        });
        let stop = Arc::new(AtomicBool::new(false));
        watch_signals(stop.clone());
        Ok(Peer {
            pc,
            offerer: args.offer,
            lines,
            stop,
            connect_deadline: Instant::now() + connect_timeout,
            channels_seen: false,
            remote_applied: false,
            local_written: false,
            end_written: false,
            gathering_complete: false,
            connected: false,
            early: Vec::new(),
            waiting: None,
            drops,
        })
    }

    /// Closes the connection, logging what its SCTP association went through.
    fn close(&mut self) {
        let stats = self.pc.stats();
        eprintln!(
            "rtc-echo: {} messages received, {} sent; SCTP: {} chunks retransmitted, \
             {} messages abandoned",
            stats.messages_received,
            stats.messages_sent,
            stats.retransmissions,
            stats.abandoned_messages
        );
        self.pc.close();
    }

    /// The exit code when the peer ends in an orderly way now.
    fn orderly_end(&mut self) -> u8 {
        self.close();
        if self.connected {
            0
        } else {
            eprintln!("rtc-echo: ended before the connection was up");
            EXIT_FAILED
        }
    }

    fn run(&mut self) -> u8 {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return self.orderly_end();
            }
            loop {
                match self.lines.try_recv() {
                    Ok(Line::Text(l)) => match self.line(&l) {
                        Ok(true) => {}
                        Ok(false) => return self.orderly_end(),
                        Err(e) => {
                            eprintln!("rtc-echo: invalid line: {e}: {}", clip(&l));
                            self.close();
                            return EXIT_PROTOCOL;
                        }
                    },
                    Ok(Line::Eof) | Err(mpsc::TryRecvError::Disconnected) => {
                        return self.orderly_end()
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                }
            }
            self.pc.poll();
            if let Err(code) = self.events() {
                return code;
            }
            self.echo();
            if !self.connected && Instant::now() > self.connect_deadline {
                eprintln!("rtc-echo: the connection was not up within --connect-timeout");
                self.close();
                return EXIT_FAILED;
            }
            // Datagrams wake the loop at once; stdin lines within half a millisecond.
            self.pc.wait(Duration::from_micros(500));
        }
    }

    /// Handles one stdin line; `Ok(false)` on `bye`.
    fn line(&mut self, line: &str) -> Result<bool, String> {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            return Ok(true);
        }
        let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
        let obj = v.as_object().ok_or("not an object")?;
        let kind = obj
            .get("type")
            .and_then(Value::as_str)
            .ok_or("no string `type`")?;
        match kind {
            "channels" => self.channels(obj.get("channels"))?,
            "offer" | "answer" => {
                let sdp = obj
                    .get("sdp")
                    .and_then(Value::as_str)
                    .ok_or("no string `sdp`")?;
                let expected = if self.offerer { "answer" } else { "offer" };
                if kind != expected || self.remote_applied {
                    return Err(format!("unexpected {kind}"));
                }
                let sdp_kind: SdpKind = kind.parse().map_err(|e: RtcError| e.to_string())?;
                if let Err(e) = self.pc.set_remote_description(sdp_kind, sdp) {
                    eprintln!("rtc-echo: the remote {kind} was refused: {e}");
                    return Err(format!("{kind} refused: {e}"));
                }
                self.remote_applied = true;
                for (mid, index, cand) in std::mem::take(&mut self.early) {
                    self.candidate(&mid, index, &cand);
                }
            }
            "candidate" => {
                let cand = obj
                    .get("candidate")
                    .and_then(Value::as_str)
                    .ok_or("no string `candidate`")?;
                let mid = obj.get("mid").and_then(Value::as_str).unwrap_or("0");
                let index = obj.get("index").and_then(Value::as_u64).unwrap_or(0) as u32;
                if self.remote_applied {
                    self.candidate(mid, index, cand);
                } else if self.early.len() < 1024 {
                    self.early.push((mid.to_string(), index, cand.to_string()));
                } else {
                    return Err("too many candidates before the description".into());
                }
            }
            "bye" => return Ok(false),
            other => eprintln!("rtc-echo: skipping a line of unknown type {other:?}"),
        }
        Ok(true)
    }

    fn candidate(&mut self, mid: &str, index: u32, cand: &str) {
        if let Err(e) = self.pc.add_ice_candidate(mid, index, cand) {
            // A candidate this stack cannot use (TCP, mDNS...) is not fatal: ICE goes on with
            // the others.
            eprintln!("rtc-echo: candidate ignored ({e}): {cand}");
        }
    }

    fn channels(&mut self, list: Option<&Value>) -> Result<(), String> {
        if self.channels_seen {
            return Err("a second `channels` line".into());
        }
        self.channels_seen = true;
        let list = list
            .and_then(Value::as_array)
            .filter(|l| !l.is_empty())
            .ok_or("`channels` must be a non-empty array")?;
        for ch in list {
            let (label, options) = channel_spec(ch)?;
            if self.offerer || options.negotiated_id.is_some() {
                self.pc
                    .create_data_channel(&label, options)
                    .map_err(|e| format!("channel {label:?}: {e}"))?;
            }
        }
        if self.offerer {
            self.pc.create_offer().map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Writes what the connection has to say; `Err(exit code)` when it failed.
    fn events(&mut self) -> Result<(), u8> {
        while let Some(ev) = self.pc.poll_event() {
            match ev {
                Event::SessionDescriptionCreated { kind, sdp } => {
                    if let Err(e) = self.pc.set_local_description(kind, &sdp) {
                        eprintln!("rtc-echo: set_local_description: {e}");
                        return Err(EXIT_FAILED);
                    }
                    emit(&json!({"type": kind.as_str(), "sdp": sdp}));
                    self.local_written = true;
                }
                Event::IceCandidateCreated {
                    mid,
                    index,
                    candidate,
                } => emit(&json!({"type": "candidate", "mid": mid, "index": index,
                                  "candidate": candidate})),
                Event::GatheringStateChanged(GatheringState::Complete) => {
                    self.gathering_complete = true;
                }
                Event::ConnectionStateChanged(state) => {
                    eprintln!("rtc-echo: connection {state:?}");
                    match state {
                        ConnectionState::Connected => self.connected = true,
                        ConnectionState::Failed if !self.connected => {
                            self.close();
                            return Err(EXIT_FAILED);
                        }
                        ConnectionState::Failed => {
                            eprintln!("rtc-echo: the connection failed");
                            self.close();
                            return Err(EXIT_FAILED);
                        }
                        _ => {}
                    }
                }
                Event::DataChannelReceived(id) => {
                    if let Some(ch) = self.pc.channel(id) {
                        eprintln!("rtc-echo: channel {:?} received", ch.label());
                    }
                }
                Event::DataChannelOpen(id) => {
                    if let Some(ch) = self.pc.channel(id) {
                        eprintln!("rtc-echo: channel {:?} open", ch.label());
                    }
                }
                Event::DataChannelClosed(id) => {
                    if let Some(ch) = self.pc.channel(id) {
                        eprintln!("rtc-echo: channel {:?} closed", ch.label());
                    }
                }
                _ => {}
            }
        }
        if self.gathering_complete && self.local_written && !self.end_written {
            emit(&json!({"type": "candidate", "mid": "0", "index": 0, "candidate": ""}));
            self.end_written = true;
        }
        Ok(())
    }

    /// Sends every received message back, keeping order per channel; a full send buffer
    /// leaves the rest waiting (and the inbound queues then push back on the remote).
    fn echo(&mut self) {
        if let Some((id, text, data)) = self.waiting.take() {
            if !self.echo_one(id, text, data) {
                return;
            }
        }
        let ids: Vec<ChannelId> = self.pc.channel_ids().collect();
        for id in ids {
            while let Some(mut ch) = self.pc.channel(id) {
                let Some(data) = ch.get_packet() else { break };
                let text = ch.was_string_packet();
                if !self.echo_one(id, text, data) {
                    return;
                }
            }
        }
    }

    /// Sends one message back; `false` when the send buffer is full (the message then waits
    /// in `self.waiting`).
    fn echo_one(&mut self, id: ChannelId, text: bool, data: Vec<u8>) -> bool {
        match self.send(id, text, &data) {
            Ok(()) => true,
            Err(RtcError::BufferFull { .. }) => {
                self.waiting = Some((id, text, data));
                false
            }
            Err(e) => {
                eprintln!("rtc-echo: a message could not be echoed: {e}");
                true
            }
        }
    }

    fn send(&mut self, id: ChannelId, text: bool, data: &[u8]) -> Result<(), RtcError> {
        let Some(mut ch) = self.pc.channel(id) else {
            return Ok(());
        };
        if text {
            // The stack checked the UTF-8 on arrival; the bytes go back unchanged.
            ch.send_text(std::str::from_utf8(data).unwrap_or_default())
        } else {
            ch.send_binary(data)
        }
    }
}

/// The line written at exit for `--drop-every` (tests parse it: keep the shape).
fn drop_summary(every: u64, counts: &DropCounts) -> String {
    let (inbound_seen, inbound_dropped) = counts.inbound();
    let (outbound_seen, outbound_dropped) = counts.outbound();
    format!(
        "drop-every {every}: dropped {inbound_dropped} of {inbound_seen} inbound and \
         {outbound_dropped} of {outbound_seen} outbound application-data datagrams"
    )
}

/// One entry of the `channels` array: its label and options.
fn channel_spec(v: &Value) -> Result<(String, DataChannelOptions), String> {
    let o = v.as_object().ok_or("a channel must be an object")?;
    let label = o
        .get("label")
        .and_then(Value::as_str)
        .ok_or("a channel needs a string `label`")?
        .to_string();
    let int = |k: &str, max: u64| -> Result<Option<u16>, String> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|n| *n <= max)
                .map(|n| Some(n as u16))
                .ok_or_else(|| format!("`{k}` must be an integer 0..={max}")),
        }
    };
    let flag = |k: &str, default: bool| -> Result<bool, String> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| format!("`{k}` must be a bool")),
        }
    };
    let negotiated = flag("negotiated", false)?;
    let id = int("id", 1023)?;
    if negotiated && id.is_none() {
        return Err(format!("channel {label:?}: `negotiated` needs an `id`"));
    }
    let options = DataChannelOptions {
        negotiated_id: if negotiated { id } else { None },
        ordered: flag("ordered", true)?,
        max_retransmits: int("maxRetransmits", 65535)?,
        max_packet_life_time: int("maxPacketLifeTime", 65535)?,
        protocol: o
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    };
    if options.max_retransmits.is_some() && options.max_packet_life_time.is_some() {
        return Err(format!(
            "channel {label:?}: both maxRetransmits and maxPacketLifeTime"
        ));
    }
    Ok((label, options))
}

/// Writes one protocol line to stdout, flushed at once.
fn emit(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn clip(s: &str) -> String {
    s.chars().take(200).collect()
}

/// Sets `stop` on SIGINT or SIGTERM, from a small runtime on its own thread.
fn watch_signals(stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{signal, SignalKind};
                if let Ok(mut term) = signal(SignalKind::terminate()) {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                } else {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
            #[cfg(not(unix))]
            {
                let _ = tokio::signal::ctrl_c().await;
            }
        });
        stop.store(true, Ordering::Relaxed);
    });
}
