//! The browser's `PeerConnection` and `DataChannel`: the browser's own `RTCPeerConnection` and
//! `RTCDataChannel` behind netplay's polled API, for `wasm32-unknown-unknown`.
//!
//! Owns the JS objects and their handlers, and the polled contract on top of them: every
//! handler and every promise only queues into one inbox shared with this value (so the order
//! in which the browser told things is kept across the connection and its channels), and
//! `poll()` is where the states change and the events come out. The browser's promises run
//! with `spawn_local` and hold the inbox weakly: a result that comes after the connection was
//! dropped or re-initialised is ignored. Dropping a connection or a channel detaches its
//! handlers and closes the JS object.
//!
//! Kept here because a browser does not: the channel table with netplay's ids, the received
//! messages and their limits, the send checks (open, message size, buffer budget), the
//! connect and failed timeouts of [`PeerConfig`], and the events `close()` must give (a
//! browser fires none for its own close).
//!
//! It does not own the public API or its docs (declared once in `peer` and `channel`), nor
//! ICE, DTLS, SCTP or SDP, which are the browser's.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};

use js_sys::futures::{spawn_local, JsFuture};
use js_sys::{Array, ArrayBuffer, Reflect, Uint8Array};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{
    Event as JsEvent, MessageEvent, RtcConfiguration, RtcDataChannel, RtcDataChannelEvent,
    RtcDataChannelInit, RtcIceCandidateInit, RtcIceServer, RtcIceTransportPolicy,
    RtcPeerConnection, RtcPeerConnectionIceEvent, RtcSdpType, RtcSessionDescriptionInit,
};

use super::channel::{ChannelCounters, ChannelId, DataChannel, ReadyState, WriteMode};
use super::config::{DataChannelOptions, IceServerUrl, PeerConfig};
use super::error::{Error, Result};
use super::state::{
    ConnectionState, Event, GatheringState, SdpKind, SessionDescription, SignalingState, Stats,
};
use crate::time::Instant;

/// What the handlers and promises saw, in order.
enum Seen {
    Candidate {
        mid: String,
        index: u32,
        candidate: String,
    },
    Connection(String),
    Gathering(String),
    Signaling(String),
    /// The remote opened a channel; its handlers are attached already.
    Incoming(ChannelId, JsChannel),
    Open(ChannelId),
    Message(ChannelId, Vec<u8>, bool),
    Closed(ChannelId),
    /// `bufferedamountlow`.
    Low(ChannelId),
    /// A description this side created and applied.
    Local(SdpKind, String),
    /// A promise of the browser's was rejected.
    Rejected(&'static str, String),
    /// What `getStats()` told.
    Stats(Stats),
}

#[derive(Default)]
struct Inbox {
    seen: VecDeque<Seen>,
    /// Ids for channels, shared with the `datachannel` handler.
    next_id: u32,
}

type Shared = Rc<RefCell<Inbox>>;

/// Pushes into the inbox if the connection still exists.
fn push(inbox: &Weak<RefCell<Inbox>>, seen: Seen) {
    if let Some(inbox) = inbox.upgrade() {
        inbox.borrow_mut().seen.push_back(seen);
    }
}

/// A JS error value as text.
fn js_text(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "JavaScript error".to_string())
}

/// A JS data channel and its handlers; dropping it detaches them and closes the channel.
struct JsChannel {
    dc: RtcDataChannel,
    _on_open: Closure<dyn FnMut(JsEvent)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(JsEvent)>,
    _on_low: Closure<dyn FnMut(JsEvent)>,
}

impl JsChannel {
    fn attach(dc: RtcDataChannel, id: ChannelId, inbox: &Weak<RefCell<Inbox>>) -> JsChannel {
        dc.set_binary_type(web_sys::RtcDataChannelType::Arraybuffer);
        let i = inbox.clone();
        let on_open = Closure::new(move |_: JsEvent| push(&i, Seen::Open(id)));
        let i = inbox.clone();
        let on_message = Closure::new(move |e: MessageEvent| {
            let data = e.data();
            if let Some(text) = data.as_string() {
                push(&i, Seen::Message(id, text.into_bytes(), true));
            } else if let Ok(buffer) = data.dyn_into::<ArrayBuffer>() {
                push(
                    &i,
                    Seen::Message(id, Uint8Array::new(&buffer).to_vec(), false),
                );
            }
        });
        let i = inbox.clone();
        let on_close = Closure::new(move |_: JsEvent| push(&i, Seen::Closed(id)));
        dc.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        dc.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        let i = inbox.clone();
        let on_low = Closure::new(move |_: JsEvent| push(&i, Seen::Low(id)));
        dc.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        dc.set_onbufferedamountlow(Some(on_low.as_ref().unchecked_ref()));
        JsChannel {
            dc,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
            _on_low: on_low,
        }
    }
}

impl Drop for JsChannel {
    fn drop(&mut self) {
        self.dc.set_onopen(None);
        self.dc.set_onmessage(None);
        self.dc.set_onclose(None);
        self.dc.set_onbufferedamountlow(None);
        self.dc.close();
    }
}

/// A JS peer connection and its handlers; dropping it detaches them and closes it.
struct JsPeer {
    pc: RtcPeerConnection,
    _on_candidate: Closure<dyn FnMut(RtcPeerConnectionIceEvent)>,
    _on_connection: Closure<dyn FnMut(JsEvent)>,
    _on_gathering: Closure<dyn FnMut(JsEvent)>,
    _on_signaling: Closure<dyn FnMut(JsEvent)>,
    _on_channel: Closure<dyn FnMut(RtcDataChannelEvent)>,
}

impl JsPeer {
    fn open(config: &PeerConfig, inbox: &Shared) -> Result<JsPeer> {
        let js_config = RtcConfiguration::new();
        let servers = Array::new();
        for server in &config.ice_servers {
            let s = RtcIceServer::new();
            let urls = Array::new();
            for url in &server.urls {
                urls.push(&JsValue::from_str(url));
            }
            s.set_urls(&urls);
            if let Some(u) = &server.username {
                s.set_username(u);
            }
            if let Some(c) = &server.credential {
                s.set_credential(c);
            }
            servers.push(&s);
        }
        js_config.set_ice_servers(&servers);
        if config.relay_only {
            js_config.set_ice_transport_policy(RtcIceTransportPolicy::Relay);
        }
        let pc = RtcPeerConnection::new_with_configuration(&js_config)
            .map_err(|e| Error::Engine(js_text(&e)))?;
        let weak = Rc::downgrade(inbox);
        let i = weak.clone();
        let on_candidate = Closure::new(move |e: RtcPeerConnectionIceEvent| {
            // The end of candidates (no candidate, or an empty one) shows as the gathering
            // state's Complete, as natively.
            let Some(c) = e.candidate() else { return };
            let candidate = c.candidate();
            if candidate.is_empty() {
                return;
            }
            push(
                &i,
                Seen::Candidate {
                    mid: c.sdp_mid().unwrap_or_default(),
                    index: u32::from(c.sdp_m_line_index().unwrap_or(0)),
                    candidate,
                },
            );
        });
        let (i, p) = (weak.clone(), pc.clone());
        let on_connection = Closure::new(move |_: JsEvent| {
            push(&i, Seen::Connection(state_text(&p, "connectionState")))
        });
        let (i, p) = (weak.clone(), pc.clone());
        let on_gathering = Closure::new(move |_: JsEvent| {
            push(&i, Seen::Gathering(state_text(&p, "iceGatheringState")))
        });
        let (i, p) = (weak.clone(), pc.clone());
        let on_signaling = Closure::new(move |_: JsEvent| {
            push(&i, Seen::Signaling(state_text(&p, "signalingState")))
        });
        let i = weak.clone();
        let on_channel = Closure::new(move |e: RtcDataChannelEvent| {
            let Some(inbox) = i.upgrade() else { return };
            // Attached here, not at the next poll: its first messages may come before it.
            let id = {
                let mut inbox = inbox.borrow_mut();
                let id = ChannelId(inbox.next_id);
                inbox.next_id += 1;
                id
            };
            let channel = JsChannel::attach(e.channel(), id, &i);
            inbox
                .borrow_mut()
                .seen
                .push_back(Seen::Incoming(id, channel));
        });
        pc.set_onicecandidate(Some(on_candidate.as_ref().unchecked_ref()));
        pc.set_onconnectionstatechange(Some(on_connection.as_ref().unchecked_ref()));
        pc.set_onicegatheringstatechange(Some(on_gathering.as_ref().unchecked_ref()));
        pc.set_onsignalingstatechange(Some(on_signaling.as_ref().unchecked_ref()));
        pc.set_ondatachannel(Some(on_channel.as_ref().unchecked_ref()));
        Ok(JsPeer {
            pc,
            _on_candidate: on_candidate,
            _on_connection: on_connection,
            _on_gathering: on_gathering,
            _on_signaling: on_signaling,
            _on_channel: on_channel,
        })
    }
}

impl Drop for JsPeer {
    fn drop(&mut self) {
        self.pc.set_onicecandidate(None);
        self.pc.set_onconnectionstatechange(None);
        self.pc.set_onicegatheringstatechange(None);
        self.pc.set_onsignalingstatechange(None);
        self.pc.set_ondatachannel(None);
        self.pc.close();
    }
}

/// A state property of the connection as text (`connectionState` and the like).
fn state_text(pc: &RtcPeerConnection, name: &str) -> String {
    Reflect::get(pc, &JsValue::from_str(name))
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_default()
}

/// The transport's statistics out of an `RTCStatsReport`: packets and bytes of the
/// `transport` entry, and the selected candidate pair with its round-trip time. A browser
/// does not tell discarded packets, SCTP retransmissions or abandoned messages: those stay 0.
fn parse_stats(report: &JsValue) -> Stats {
    let get = |v: &JsValue, key: &str| Reflect::get(v, &JsValue::from_str(key)).ok();
    let number = |v: &JsValue, key: &str| get(v, key).and_then(|x| x.as_f64());
    let text = |v: &JsValue, key: &str| get(v, key).and_then(|x| x.as_string());
    let mut entries: Vec<JsValue> = Vec::new();
    if let Ok(Some(iter)) = js_sys::try_iter(report) {
        for entry in iter.flatten() {
            if let Some(value) = Array::from(&entry).get(1).dyn_ref::<js_sys::Object>() {
                entries.push(value.clone().into());
            }
        }
    }
    let of_type = |kind: &'static str| {
        entries
            .iter()
            .filter(move |e| text(e, "type").as_deref() == Some(kind))
    };
    let mut stats = Stats::default();
    let mut pair_id = None;
    for t in of_type("transport") {
        stats.packets_sent += number(t, "packetsSent").unwrap_or(0.0) as u64;
        stats.packets_received += number(t, "packetsReceived").unwrap_or(0.0) as u64;
        stats.bytes_sent += number(t, "bytesSent").unwrap_or(0.0) as u64;
        stats.bytes_received += number(t, "bytesReceived").unwrap_or(0.0) as u64;
        pair_id = pair_id.or_else(|| text(t, "selectedCandidatePairId"));
    }
    let pair = of_type("candidate-pair").find(|p| match &pair_id {
        Some(id) => text(p, "id").as_ref() == Some(id),
        None => get(p, "nominated").and_then(|v| v.as_bool()) == Some(true),
    });
    if let Some(pair) = pair {
        stats.rtt = number(pair, "currentRoundTripTime")
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(crate::time::Duration::from_secs_f64);
        let address = |kind: &'static str, id_key: &str| -> Option<SocketAddr> {
            let id = text(pair, id_key)?;
            let c = of_type(kind).find(|c| text(c, "id").as_ref() == Some(&id))?;
            let ip = text(c, "address").or_else(|| text(c, "ip"))?;
            let port = number(c, "port")? as u16;
            Some(SocketAddr::new(ip.parse().ok()?, port))
        };
        if let (Some(local), Some(remote)) = (
            address("local-candidate", "localCandidateId"),
            address("remote-candidate", "remoteCandidateId"),
        ) {
            stats.selected_pair = Some(super::state::CandidatePair { local, remote });
        }
    }
    stats
}

/// One channel as this side keeps it.
struct Entry {
    js: Option<JsChannel>,
    label: String,
    protocol: String,
    ordered: bool,
    negotiated: bool,
    max_retransmits: Option<u16>,
    max_packet_life_time: Option<u16>,
    state: ReadyState,
    received: VecDeque<(Vec<u8>, bool)>,
    received_bytes: usize,
    was_string: bool,
    write_mode: WriteMode,
    counters: ChannelCounters,
    /// The browser's `bufferedAmountLowThreshold`, kept here too for after the channel closed.
    low_threshold: usize,
}

impl Entry {
    fn new(js: JsChannel, options: &DataChannelOptions, negotiated: bool) -> Entry {
        Entry {
            label: js.dc.label(),
            js: Some(js),
            protocol: options.protocol.clone(),
            ordered: options.ordered,
            negotiated,
            max_retransmits: options.max_retransmits,
            max_packet_life_time: options.max_packet_life_time,
            state: ReadyState::Connecting,
            received: VecDeque::new(),
            received_bytes: 0,
            was_string: false,
            write_mode: WriteMode::Binary,
            counters: ChannelCounters::default(),
            low_threshold: 0,
        }
    }

    /// A channel the remote opened: its options as the browser tells them.
    fn incoming(js: JsChannel) -> Entry {
        let get = |name: &str| Reflect::get(&js.dc, &JsValue::from_str(name)).ok();
        let options = DataChannelOptions {
            negotiated_id: None,
            ordered: get("ordered").and_then(|v| v.as_bool()).unwrap_or(true),
            max_retransmits: js.dc.max_retransmits(),
            max_packet_life_time: js.dc.max_packet_life_time(),
            protocol: get("protocol")
                .and_then(|v| v.as_string())
                .unwrap_or_default(),
        };
        Entry::new(js, &options, false)
    }

    fn buffered(&self) -> usize {
        self.js
            .as_ref()
            .map_or(0, |js| js.dc.buffered_amount() as usize)
    }
}

/// The browser platform value behind `PeerConnection`.
pub(crate) struct WebPeer {
    config: PeerConfig,
    ice_servers: Vec<IceServerUrl>,
    js: Option<JsPeer>,
    inbox: Shared,
    events: VecDeque<Event>,
    channels: BTreeMap<ChannelId, Entry>,
    connection: ConnectionState,
    gathering: GatheringState,
    signaling: SignalingState,
    local: Option<(SdpKind, String)>,
    /// Candidates the browser gave before its description came out (held to keep the order).
    early_candidates: Vec<Event>,
    /// Candidates given before the remote description.
    pending_remote: Vec<(String, u32, String)>,
    remote_given: bool,
    offered: bool,
    /// When both descriptions were given: the connect timeout runs from here.
    connect_deadline: Option<Instant>,
    /// While Disconnected: when it becomes Failed (`ice_failed_timeout` counted from the
    /// silence the browser saw, less the `ice_disconnected_timeout` it took to say so).
    failed_at: Option<Instant>,
    closed: bool,
    /// The transport's part of the statistics, from the last `getStats()`.
    transport_stats: Stats,
    /// `stats()` was called: `poll()` asks the browser again (at most once a second).
    stats_wanted: std::cell::Cell<bool>,
    stats_asked: Option<Instant>,
}

impl fmt::Debug for WebPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerConnection")
            .field("connection", &self.connection)
            .field("signaling", &self.signaling)
            .field("channels", &self.channels.len())
            .finish()
    }
}

impl WebPeer {
    pub(crate) fn new(config: PeerConfig) -> Result<WebPeer> {
        let ice_servers = config.validate()?;
        let inbox: Shared = Rc::default();
        let js = JsPeer::open(&config, &inbox)?;
        Ok(WebPeer {
            config,
            ice_servers,
            js: Some(js),
            inbox,
            events: VecDeque::new(),
            channels: BTreeMap::new(),
            connection: ConnectionState::New,
            gathering: GatheringState::New,
            signaling: SignalingState::Stable,
            local: None,
            early_candidates: Vec::new(),
            pending_remote: Vec::new(),
            remote_given: false,
            offered: false,
            connect_deadline: None,
            failed_at: None,
            closed: false,
            transport_stats: Stats::default(),
            stats_wanted: std::cell::Cell::new(false),
            stats_asked: None,
        })
    }

    pub(crate) fn initialize(&mut self, config: PeerConfig) -> Result<()> {
        *self = WebPeer::new(config)?;
        Ok(())
    }

    pub(crate) fn config(&self) -> &PeerConfig {
        &self.config
    }

    pub(crate) fn ice_servers(&self) -> &[IceServerUrl] {
        &self.ice_servers
    }

    pub(crate) fn connection_state(&self) -> ConnectionState {
        self.connection
    }

    pub(crate) fn gathering_state(&self) -> GatheringState {
        self.gathering
    }

    pub(crate) fn signaling_state(&self) -> SignalingState {
        self.signaling
    }

    pub(crate) fn local_addresses(&self) -> Vec<SocketAddr> {
        Vec::new()
    }

    pub(crate) fn max_message_size(&self) -> usize {
        let remote = self
            .js
            .as_ref()
            .and_then(|js| Reflect::get(&js.pc, &JsValue::from_str("sctp")).ok())
            .filter(|sctp| sctp.is_object())
            .and_then(|sctp| Reflect::get(&sctp, &JsValue::from_str("maxMessageSize")).ok())
            .and_then(|v| v.as_f64())
            .filter(|v| *v > 0.0 && v.is_finite())
            .map_or(usize::MAX, |v| v as usize);
        self.config.max_message_size.min(remote)
    }

    pub(crate) fn stats(&self) -> Stats {
        self.stats_wanted.set(true);
        let mut stats = self.transport_stats;
        for entry in self.channels.values() {
            stats.messages_sent += entry.counters.messages_sent;
            stats.message_bytes_sent += entry.counters.bytes_sent;
            stats.messages_received += entry.counters.messages_received;
            stats.message_bytes_received += entry.counters.bytes_received;
        }
        stats
    }

    /// Asks the browser for its statistics when `stats()` was called since the last answer,
    /// at most once a second.
    fn refresh_stats(&mut self, now: Instant) {
        if !self.stats_wanted.get() || self.closed {
            return;
        }
        if self
            .stats_asked
            .is_some_and(|t| now < t + crate::time::Duration::from_secs(1))
        {
            return;
        }
        let Some(js) = &self.js else { return };
        self.stats_wanted.set(false);
        self.stats_asked = Some(now);
        let promise = js.pc.get_stats();
        let inbox = Rc::downgrade(&self.inbox);
        spawn_local(async move {
            if let Ok(report) = JsFuture::from(promise).await {
                push(&inbox, Seen::Stats(parse_stats(&report)));
            }
        });
    }

    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn next_id(&self) -> ChannelId {
        let mut inbox = self.inbox.borrow_mut();
        let id = ChannelId(inbox.next_id);
        inbox.next_id += 1;
        id
    }

    pub(crate) fn create_data_channel(
        &mut self,
        label: &str,
        options: DataChannelOptions,
    ) -> Result<ChannelId> {
        if self.closed {
            return Err(Error::Closed);
        }
        options.validate(label)?;
        if let Some(id) = options.negotiated_id {
            let taken = self
                .channels
                .values()
                .any(|e| e.negotiated && e.js.as_ref().and_then(|js| js.dc.id()) == Some(id));
            if taken {
                return Err(Error::DuplicateChannelId(id));
            }
        }
        if self.channels.len() >= self.config.max_channels {
            return Err(Error::TooManyChannels {
                max: self.config.max_channels,
            });
        }
        let Some(js) = &self.js else {
            return Err(Error::Closed);
        };
        let init = RtcDataChannelInit::new();
        init.set_ordered(options.ordered);
        if let Some(n) = options.max_retransmits {
            init.set_max_retransmits(n);
        }
        if let Some(ms) = options.max_packet_life_time {
            init.set_max_packet_life_time(ms);
        }
        if !options.protocol.is_empty() {
            init.set_protocol(&options.protocol);
        }
        if let Some(id) = options.negotiated_id {
            init.set_negotiated(true);
            init.set_id(id);
        }
        // `createDataChannel` can throw (a taken id, too many channels, a closed connection):
        // call it through Reflect so that a throw is an Err, not an abort.
        let create = Reflect::get(&js.pc, &JsValue::from_str("createDataChannel"))
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
            .ok_or_else(|| Error::Engine("no createDataChannel".into()))?;
        let dc = create
            .call2(&js.pc, &JsValue::from_str(label), &init)
            .map_err(|e| Error::Engine(js_text(&e)))?
            .dyn_into::<RtcDataChannel>()
            .map_err(|_| Error::Engine("createDataChannel gave no channel".into()))?;
        let id = self.next_id();
        let channel = JsChannel::attach(dc, id, &Rc::downgrade(&self.inbox));
        self.channels.insert(
            id,
            Entry::new(channel, &options, options.negotiated_id.is_some()),
        );
        Ok(id)
    }

    pub(crate) fn channel(&mut self, id: ChannelId) -> Option<DataChannel<'_>> {
        let max_message = self.max_message_size();
        let max_buffered = self.config.max_buffered_amount;
        let budget_used: usize = self.channels.values().map(Entry::buffered).sum();
        let entry = self.channels.get_mut(&id)?;
        Some(DataChannel::from_platform(WebChannel {
            id,
            entry,
            max_message,
            budget_left: max_buffered.saturating_sub(budget_used),
        }))
    }

    pub(crate) fn channel_ids(&self) -> impl Iterator<Item = ChannelId> + '_ {
        self.channels.keys().copied()
    }

    pub(crate) fn channel_count(&self) -> usize {
        self.channels.len()
    }

    pub(crate) fn create_offer(&mut self) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        if self.channels.is_empty() {
            return Err(Error::NoDataChannels);
        }
        if self.offered || self.remote_given {
            return Err(Error::InvalidState {
                operation: "create_offer",
                reason: "one offer/answer exchange per connection",
            });
        }
        self.offered = true;
        let Some(js) = &self.js else {
            return Err(Error::Closed);
        };
        // Called now, not in the task: the browser chains its operations in call order, so
        // whatever is called after this (candidates) comes after it.
        let pc = js.pc.clone();
        let offer = pc.create_offer();
        let inbox = Rc::downgrade(&self.inbox);
        spawn_local(async move {
            let result = async {
                let offer = JsFuture::from(offer).await?;
                let sdp = Reflect::get(&offer, &JsValue::from_str("sdp"))?
                    .as_string()
                    .unwrap_or_default();
                let init = RtcSessionDescriptionInit::new(RtcSdpType::Offer);
                init.set_sdp(&sdp);
                JsFuture::from(pc.set_local_description(&init)).await?;
                Ok::<String, JsValue>(sdp)
            }
            .await;
            match result {
                Ok(sdp) => push(&inbox, Seen::Local(SdpKind::Offer, sdp)),
                Err(e) => push(&inbox, Seen::Rejected("create_offer", js_text(&e))),
            }
        });
        Ok(())
    }

    pub(crate) fn set_local_description(&mut self, kind: SdpKind, sdp: &str) -> Result<()> {
        // The browser applied it when it was created, as netplay does natively.
        match &self.local {
            Some((k, s)) if *k == kind && s == sdp => Ok(()),
            _ => Err(Error::LocalDescriptionMismatch),
        }
    }

    pub(crate) fn local_description(&self) -> Option<SessionDescription<'_>> {
        self.local
            .as_ref()
            .map(|(kind, sdp)| SessionDescription { kind: *kind, sdp })
    }

    pub(crate) fn set_remote_description(&mut self, kind: SdpKind, sdp: &str) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        if !sdp.trim_start().starts_with("v=0") {
            return Err(Error::InvalidSdp("a description starts with v=0".into()));
        }
        match kind {
            SdpKind::Offer if self.offered || self.remote_given => {
                return Err(Error::InvalidState {
                    operation: "set_remote_description",
                    reason: "one offer/answer exchange per connection",
                })
            }
            SdpKind::Answer if !self.offered || self.remote_given => {
                return Err(Error::InvalidState {
                    operation: "set_remote_description",
                    reason: "an answer needs an offer of this side's first",
                })
            }
            _ => {}
        }
        self.remote_given = true;
        self.connect_deadline = Some(Instant::now() + self.config.connect_timeout);
        let Some(js) = &self.js else {
            return Err(Error::Closed);
        };
        // The remote description (and for an offer, the answer) are asked for now, not in the
        // task: the browser chains its operations in call order, so the candidates given
        // after this call are applied after the description, never before it.
        let pc = js.pc.clone();
        let init = RtcSessionDescriptionInit::new(match kind {
            SdpKind::Offer => RtcSdpType::Offer,
            SdpKind::Answer => RtcSdpType::Answer,
        });
        init.set_sdp(sdp);
        let applied = pc.set_remote_description(&init);
        let answer = (kind == SdpKind::Offer).then(|| pc.create_answer());
        let inbox = Rc::downgrade(&self.inbox);
        spawn_local(async move {
            let result = async {
                JsFuture::from(applied).await?;
                let Some(answer) = answer else {
                    return Ok(None);
                };
                let answer = JsFuture::from(answer).await?;
                let sdp = Reflect::get(&answer, &JsValue::from_str("sdp"))?
                    .as_string()
                    .unwrap_or_default();
                let init = RtcSessionDescriptionInit::new(RtcSdpType::Answer);
                init.set_sdp(&sdp);
                JsFuture::from(pc.set_local_description(&init)).await?;
                Ok::<Option<String>, JsValue>(Some(sdp))
            }
            .await;
            match result {
                Ok(Some(sdp)) => push(&inbox, Seen::Local(SdpKind::Answer, sdp)),
                Ok(None) => {}
                Err(e) => push(
                    &inbox,
                    Seen::Rejected("set_remote_description", js_text(&e)),
                ),
            }
        });
        for (mid, index, candidate) in std::mem::take(&mut self.pending_remote) {
            self.add_ice_candidate(&mid, index, &candidate)?;
        }
        Ok(())
    }

    pub(crate) fn add_ice_candidate(
        &mut self,
        mid: &str,
        index: u32,
        candidate: &str,
    ) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        let line = candidate.trim().trim_start_matches("a=");
        let line = if line.is_empty() || line.starts_with("candidate:") {
            line.to_string()
        } else {
            format!("candidate:{line}")
        };
        if !line.is_empty() && line.split_whitespace().count() < 8 {
            return Err(Error::InvalidCandidate(line));
        }
        if !self.remote_given {
            self.pending_remote.push((mid.to_string(), index, line));
            return Ok(());
        }
        let Some(js) = &self.js else {
            return Err(Error::Closed);
        };
        let init = RtcIceCandidateInit::new(&line);
        if mid.is_empty() {
            init.set_sdp_m_line_index(Some(u16::try_from(index).unwrap_or(0)));
        } else {
            init.set_sdp_mid(Some(mid));
        }
        let promise = js
            .pc
            .add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init));
        let inbox = Rc::downgrade(&self.inbox);
        spawn_local(async move {
            if let Err(e) = JsFuture::from(promise).await {
                push(&inbox, Seen::Rejected("add_ice_candidate", js_text(&e)));
            }
        });
        Ok(())
    }

    pub(crate) fn close(&mut self) {
        if self.closed {
            return;
        }
        // A browser fires no events for its own close: they are told here.
        self.close_keep_state();
        self.set_connection(ConnectionState::Closed);
    }

    pub(crate) fn poll(&mut self) {
        self.poll_at(Instant::now())
    }

    pub(crate) fn poll_at(&mut self, now: Instant) {
        let seen = std::mem::take(&mut self.inbox.borrow_mut().seen);
        for s in seen {
            self.apply(s, now);
        }
        if self.closed {
            return;
        }
        self.refresh_stats(now);
        if let Some(deadline) = self.connect_deadline {
            if now >= deadline && self.connection != ConnectionState::Connected {
                self.fail();
            }
        }
        if self.failed_at.is_some_and(|at| now >= at) {
            self.fail();
        }
        // Forget closed channels whose messages were taken.
        self.channels
            .retain(|_, e| e.state != ReadyState::Closed || !e.received.is_empty());
    }

    fn apply(&mut self, seen: Seen, now: Instant) {
        match seen {
            Seen::Candidate {
                mid,
                index,
                candidate,
            } => {
                let event = Event::IceCandidateCreated {
                    mid,
                    index,
                    candidate,
                };
                if self.local.is_some() {
                    self.events.push_back(event);
                } else {
                    self.early_candidates.push(event);
                }
            }
            Seen::Local(kind, sdp) => {
                self.local = Some((kind, sdp.clone()));
                self.events
                    .push_back(Event::SessionDescriptionCreated { kind, sdp });
                self.events.extend(self.early_candidates.drain(..));
            }
            Seen::Connection(state) => {
                let state = match state.as_str() {
                    "new" => ConnectionState::New,
                    "connecting" => ConnectionState::Connecting,
                    "connected" => ConnectionState::Connected,
                    "disconnected" => ConnectionState::Disconnected,
                    "failed" => ConnectionState::Failed,
                    "closed" => ConnectionState::Closed,
                    _ => return,
                };
                let grace = self
                    .config
                    .ice_failed_timeout
                    .saturating_sub(self.config.ice_disconnected_timeout);
                self.failed_at = (state == ConnectionState::Disconnected).then_some(now + grace);
                if state == ConnectionState::Connected {
                    self.connect_deadline = None;
                }
                self.set_connection(state);
                if state == ConnectionState::Failed {
                    self.fail();
                }
            }
            Seen::Gathering(state) => {
                let state = match state.as_str() {
                    "new" => GatheringState::New,
                    "gathering" => GatheringState::Gathering,
                    "complete" => GatheringState::Complete,
                    _ => return,
                };
                if state != self.gathering {
                    self.gathering = state;
                    self.events.push_back(Event::GatheringStateChanged(state));
                }
            }
            Seen::Signaling(state) => {
                let state = match state.as_str() {
                    "stable" => SignalingState::Stable,
                    "have-local-offer" => SignalingState::HaveLocalOffer,
                    "have-remote-offer" => SignalingState::HaveRemoteOffer,
                    "closed" => SignalingState::Closed,
                    _ => return,
                };
                self.set_signaling(state);
            }
            Seen::Incoming(id, js) => {
                if self.closed || self.channels.len() >= self.config.max_channels {
                    return; // dropped: detached and closed
                }
                self.channels.insert(id, Entry::incoming(js));
                self.events.push_back(Event::DataChannelReceived(id));
            }
            Seen::Open(id) => {
                if let Some(e) = self.channels.get_mut(&id) {
                    if e.state == ReadyState::Connecting {
                        e.state = ReadyState::Open;
                        self.events.push_back(Event::DataChannelOpen(id));
                    }
                }
            }
            Seen::Message(id, data, text) => {
                let limit = self.unread_limit();
                if let Some(e) = self.channels.get_mut(&id) {
                    if e.state == ReadyState::Closed {
                        return;
                    }
                    if e.received_bytes + data.len() > limit {
                        // A browser cannot hold the sender back: a channel whose reader
                        // stopped is closed rather than left to grow without bound.
                        tracing::debug!(%id, limit, "unread messages over the limit, closing");
                        e.state = ReadyState::Closed;
                        e.js = None;
                        self.events.push_back(Event::DataChannelClosed(id));
                        return;
                    }
                    e.counters.messages_received += 1;
                    e.counters.bytes_received += data.len() as u64;
                    e.received_bytes += data.len();
                    e.received.push_back((data, text));
                }
            }
            Seen::Low(id) => {
                if self
                    .channels
                    .get(&id)
                    .is_some_and(|e| e.state == ReadyState::Open)
                {
                    self.events.push_back(Event::BufferedAmountLow(id));
                }
            }
            Seen::Closed(id) => {
                if let Some(e) = self.channels.get_mut(&id) {
                    if e.state != ReadyState::Closed {
                        e.state = ReadyState::Closed;
                        e.js = None;
                        self.events.push_back(Event::DataChannelClosed(id));
                    }
                }
            }
            Seen::Stats(stats) => self.transport_stats = stats,
            Seen::Rejected(operation, why) => {
                tracing::debug!(operation, why, "the browser refused");
                if operation != "add_ice_candidate" {
                    self.fail();
                }
            }
        }
    }

    /// The most unread bytes a channel holds in a browser, which cannot stop reading (natively
    /// `max_channel_in_buffer` stops reading the sockets instead): 64 times the larger of
    /// `max_channel_in_buffer` and `max_message_size`, 16 MiB by default. A page that polls
    /// once a frame must not lose a channel to a fast sender: at 100 MB/s, 16 MiB is what
    /// arrives in 160 ms, ten frames.
    fn unread_limit(&self) -> usize {
        64 * self
            .config
            .max_channel_in_buffer
            .max(self.config.max_message_size)
    }

    /// Failed: closed, with the events of a failure.
    fn fail(&mut self) {
        self.set_connection(ConnectionState::Failed);
        self.close_keep_state();
    }

    /// Closes the JS side and the channels without moving the connection state.
    fn close_keep_state(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        for (&id, entry) in self.channels.iter_mut() {
            if entry.state != ReadyState::Closed {
                entry.state = ReadyState::Closed;
                self.events.push_back(Event::DataChannelClosed(id));
            }
            entry.js = None;
        }
        self.js = None;
        self.set_signaling(SignalingState::Closed);
    }

    fn set_connection(&mut self, state: ConnectionState) {
        if state != self.connection && self.connection != ConnectionState::Closed {
            self.connection = state;
            self.events.push_back(Event::ConnectionStateChanged(state));
        }
    }

    fn set_signaling(&mut self, state: SignalingState) {
        if state != self.signaling && self.signaling != SignalingState::Closed {
            self.signaling = state;
            self.events.push_back(Event::SignalingStateChanged(state));
        }
    }

    /// The browser sends every message at once: nothing waits here.
    pub(crate) fn send_now(&mut self) {}

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        match (self.connect_deadline, self.failed_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The browser platform's channel view: one entry of its connection's table.
pub(crate) struct WebChannel<'a> {
    id: ChannelId,
    entry: &'a mut Entry,
    max_message: usize,
    /// What the connection's buffer budget has left, other channels' bytes included.
    budget_left: usize,
}

impl fmt::Debug for WebChannel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataChannel")
            .field("id", &self.id)
            .field("label", &self.entry.label)
            .field("state", &self.entry.state)
            .finish()
    }
}

impl WebChannel<'_> {
    pub(crate) fn handle(&self) -> ChannelId {
        self.id
    }

    pub(crate) fn put_packet(&mut self, data: &[u8]) -> Result<()> {
        let text = self.entry.write_mode == WriteMode::Text;
        self.send(data, text)
    }

    pub(crate) fn send_text(&mut self, text: &str) -> Result<()> {
        self.send(text.as_bytes(), true)
    }

    pub(crate) fn send_binary(&mut self, data: &[u8]) -> Result<()> {
        self.send(data, false)
    }

    fn send(&mut self, data: &[u8], text: bool) -> Result<()> {
        let (ReadyState::Open, Some(js)) = (self.entry.state, &self.entry.js) else {
            return Err(Error::ChannelNotOpen);
        };
        if data.len() > self.max_message {
            return Err(Error::MessageTooLarge {
                size: data.len(),
                max: self.max_message,
            });
        }
        if data.len() > self.budget_left {
            return Err(Error::BufferFull {
                size: data.len(),
                buffered: js.dc.buffered_amount() as usize,
            });
        }
        let sent = if text {
            // A browser sends text as a JS string: the bytes must be UTF-8.
            let text = std::str::from_utf8(data)
                .map_err(|_| Error::Engine("a text message must be UTF-8 in a browser".into()))?;
            js.dc.send_with_str(text)
        } else {
            js.dc.send_with_u8_array(data)
        };
        sent.map_err(|e| Error::Engine(js_text(&e)))?;
        self.budget_left -= data.len();
        self.entry.counters.messages_sent += 1;
        self.entry.counters.bytes_sent += data.len() as u64;
        Ok(())
    }

    pub(crate) fn get_packet(&mut self) -> Option<Vec<u8>> {
        let (data, text) = self.entry.received.pop_front()?;
        self.entry.received_bytes -= data.len();
        self.entry.was_string = text;
        Some(data)
    }

    pub(crate) fn available_packet_count(&self) -> usize {
        self.entry.received.len()
    }

    pub(crate) fn available_bytes(&self) -> usize {
        self.entry.received_bytes
    }

    pub(crate) fn was_string_packet(&self) -> bool {
        self.entry.was_string
    }

    pub(crate) fn write_mode(&self) -> WriteMode {
        self.entry.write_mode
    }

    pub(crate) fn set_write_mode(&mut self, mode: WriteMode) {
        self.entry.write_mode = mode;
    }

    pub(crate) fn ready_state(&self) -> ReadyState {
        self.entry.state
    }

    pub(crate) fn label(&self) -> &str {
        &self.entry.label
    }

    pub(crate) fn protocol(&self) -> &str {
        &self.entry.protocol
    }

    pub(crate) fn id(&self) -> Option<u16> {
        self.entry.js.as_ref().and_then(|js| js.dc.id())
    }

    pub(crate) fn is_ordered(&self) -> bool {
        self.entry.ordered
    }

    pub(crate) fn is_negotiated(&self) -> bool {
        self.entry.negotiated
    }

    pub(crate) fn max_retransmits(&self) -> Option<u16> {
        self.entry.max_retransmits
    }

    pub(crate) fn max_packet_life_time(&self) -> Option<u16> {
        self.entry.max_packet_life_time
    }

    pub(crate) fn buffered_amount(&self) -> usize {
        self.entry.buffered()
    }

    pub(crate) fn buffered_amount_low_threshold(&self) -> usize {
        self.entry.low_threshold
    }

    pub(crate) fn set_buffered_amount_low_threshold(&mut self, bytes: usize) {
        // The browser's attribute is 32 bits: more than that is "never low" either way.
        let bytes = bytes.min(u32::MAX as usize);
        self.entry.low_threshold = bytes;
        if let Some(js) = &self.entry.js {
            js.dc.set_buffered_amount_low_threshold(bytes as u32);
        }
    }

    pub(crate) fn counters(&self) -> ChannelCounters {
        self.entry.counters
    }

    pub(crate) fn close(&mut self) {
        if let Some(js) = &self.entry.js {
            if self.entry.state != ReadyState::Closed {
                js.dc.close();
                self.entry.state = ReadyState::Closing;
            }
        }
    }
}
