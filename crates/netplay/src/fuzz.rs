//! Entry points for the fuzzers and the corpus replay; not an API for games.
//!
//! Each function takes arbitrary bytes, hands them to one of the parsers that read what a
//! remote peer sends (SDP, STUN, SCTP, WebSocket frames, signaling messages, Godot's Variants
//! and multiplayer packets) and drives the
//! state machine behind it far enough that the decoded input is acted upon: events drained,
//! answers written, timers run. The property checked is that none of them panics, whatever the
//! bytes. The cargo-fuzz targets in the repository's `fuzz/` directory call them (with the
//! `fuzzing` feature), and the tests below replay the committed corpus `fuzz/corpus/<name>/` on
//! the stable toolchain, so an input that once crashed stays fixed.
//!
//! Everything here is deterministic: seeded randomness where a core takes an [`Rng`], one
//! `Instant` taken at the start of a call and moved forward by hand, no sleeping.
//!
//! [`Rng`]: crate::random::Rng

use crate::time::{Duration, Instant};

/// At most this many outputs (packets, events, messages) are drained after one input, so a
/// core that kept producing output could not hang the fuzzer.
const DRAIN_LIMIT: usize = 256;

/// Feeds `data` to the SDP reader as a remote offer and as a remote answer (as lossy UTF-8),
/// and writes our answer to every offer it accepts, then reads that answer back.
#[cfg(all(feature = "webrtc", not(target_arch = "wasm32")))]
pub fn sdp(data: &[u8]) {
    use crate::rtc::sdp::{parse, write_answer, LocalDescription, Setup};

    let text = String::from_utf8_lossy(data);
    let fingerprint = [0x5a; 32];
    let local = LocalDescription {
        session_id: 0x1234_5678_9abc_def0,
        ice_ufrag: "fUzZ",
        ice_pwd: "fuzzfuzzfuzzfuzzfuzzfuzz",
        fingerprint_sha256: &fingerprint,
        setup: Setup::ActPass,
        mid: "0",
        sctp_port: 5000,
        max_message_size: 262_144,
        candidates: &[],
        end_of_candidates: false,
    };
    match parse(&text, true) {
        Ok(offer) => {
            let answer = write_answer(&local, &offer);
            let _ = parse(&answer, false);
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
    let _ = parse(&text, false);
}

/// Feeds `data` to the STUN codec as a datagram and as a stream: demultiplexing
/// ([`classify`](crate::stun::classify), [`is_stun`](crate::stun::is_stun),
/// [`frame_len`](crate::stun::frame_len)), message decoding with and without integrity keys,
/// the accessors and a re-encode of what decoded, and TURN ChannelData framing.
pub fn stun(data: &[u8]) {
    use crate::stun::{
        classify, frame_len, is_stun, verify_integrity, ChannelData, Key, Message, MessageType,
    };

    let _ = classify(data);
    let _ = is_stun(data);
    let short_term = Key::short_term("fuzzfuzzfuzzfuzzfuzzfuzz");
    let long_term = Key::long_term("user", "realm", "pass");

    let decode = |bytes: &[u8]| {
        match Message::decode(bytes) {
            Ok(message) => {
                let _ = message.reflexive_address();
                let _ = message.xor_peer_address();
                let _ = message.xor_relayed_address();
                let _ = message.error_code().map(|e| (e.class(), e.number()));
                let _ = message.username();
                let _ = message.realm();
                let _ = message.nonce();
                let _ = message.software();
                let _ = message.lifetime();
                let _ = message.channel_number();
                let _ = message.data();
                let _ = message.unknown_comprehension_required();
                let _ = MessageType::from_u16(message.typ.as_u16());
                for attribute in &message.attributes {
                    let _ = attribute.typ().name();
                }
                // What decoded re-encodes, or fails cleanly; the result decodes again.
                if let Ok(bytes) = message.encode(None, message.has_fingerprint()) {
                    let _ = Message::decode(&bytes);
                }
                if let Ok(bytes) = message.encode(Some(&short_term), true) {
                    let _ = Message::decode_verified(&bytes, &short_term);
                }
            }
            Err(error) => {
                let _ = error.to_string();
            }
        }
        let _ = Message::decode_verified(bytes, &short_term);
        let _ = Message::decode_verified(bytes, &long_term);
        let _ = verify_integrity(bytes, &long_term);
        if let Ok(frame) = ChannelData::decode(bytes) {
            let _ = frame.encoded_len(true);
            if let Ok(encoded) = frame.encode(true) {
                let _ = ChannelData::decode(&encoded);
            }
        }
    };

    decode(data);
    // A stream transport: cut the frames one after the other.
    let mut rest = data;
    for _ in 0..DRAIN_LIMIT {
        match frame_len(rest) {
            Ok(Some(len)) if len > 0 && len <= rest.len() => {
                if len < data.len() {
                    decode(&rest[..len]);
                }
                rest = &rest[len..];
            }
            _ => break,
        }
    }
}

/// Feeds `data` as one inbound SCTP packet to three associations: a fresh responder, a fresh
/// initiator that has sent its INIT, and one side of an established pair with messages in
/// flight. Each gets the bytes as they are and again with the verification tag it expects and
/// a correct CRC32c written in, so the fuzzer reaches the chunk handlers without having to
/// learn either. The packets, events and timers that follow are drained.
#[cfg(all(feature = "webrtc", not(target_arch = "wasm32")))]
pub fn sctp(data: &[u8]) {
    use crate::rtc::sctp::{Association, Reliability};

    let now = Instant::now();
    let mut buf = Vec::new();

    let mut responder =
        Association::new(sctp_config(false), now, &mut crate::random::Rng::seeded(1));
    sctp_feed(&mut responder, data, None, None, now, &mut buf);

    let mut initiator =
        Association::new(sctp_config(true), now, &mut crate::random::Rng::seeded(2));
    let mut own_tag = None;
    if initiator.poll_transmit(now, &mut buf) {
        // The Initiate Tag of our INIT is the tag the INIT ACK must carry.
        own_tag = buf
            .get(16..20)
            .map(|t| u32::from_be_bytes([t[0], t[1], t[2], t[3]]));
    }
    sctp_feed(&mut initiator, data, own_tag, None, now, &mut buf);

    let (_, mut server, tags) = sctp_established_pair(now);
    // Something to acknowledge, retransmit or abandon.
    for (stream, reliability) in [
        (0, Reliability::Reliable),
        (1, Reliability::MaxRetransmits(0)),
        (2, Reliability::MaxLifetime(Duration::from_millis(50))),
    ] {
        let _ = server.send(stream, 53, stream != 1, reliability, b"fuzz", now);
    }
    while server.poll_transmit(now, &mut buf) {}
    sctp_feed(
        &mut server,
        data,
        tags.map(|t| t.0),
        tags.map(|t| t.1),
        now,
        &mut buf,
    );
}

/// The settings of the fuzzed associations: WebRTC's, with a small message limit so that the
/// too-large paths are in reach.
#[cfg(all(feature = "webrtc", not(target_arch = "wasm32")))]
fn sctp_config(initiate: bool) -> crate::rtc::sctp::SctpConfig {
    crate::rtc::sctp::SctpConfig {
        initiate,
        max_message_size: 4096,
        ..crate::rtc::sctp::SctpConfig::default()
    }
}

/// An initiator and a responder after their handshake, with the responder's verification tag
/// and the initiator's (`None` if the handshake did not complete).
#[cfg(all(feature = "webrtc", not(target_arch = "wasm32")))]
fn sctp_established_pair(
    now: Instant,
) -> (
    crate::rtc::sctp::Association,
    crate::rtc::sctp::Association,
    Option<(u32, u32)>,
) {
    use crate::rtc::sctp::Association;

    let mut client = Association::new(sctp_config(true), now, &mut crate::random::Rng::seeded(3));
    let mut server = Association::new(sctp_config(false), now, &mut crate::random::Rng::seeded(4));
    let mut buf = Vec::new();
    let (mut server_tag, mut client_tag) = (None, None);
    for _ in 0..8 {
        while client.poll_transmit(now, &mut buf) {
            server_tag = vtag(&buf).filter(|&t| t != 0);
            let _ = server.handle_packet(&buf, now);
        }
        while server.poll_transmit(now, &mut buf) {
            client_tag = vtag(&buf).filter(|&t| t != 0);
            let _ = client.handle_packet(&buf, now);
        }
    }
    while client.poll_event().is_some() {}
    while server.poll_event().is_some() {}
    (client, server, server_tag.zip(client_tag))
}

/// The verification tag of a packet's common header.
#[cfg(all(feature = "webrtc", not(target_arch = "wasm32")))]
fn vtag(packet: &[u8]) -> Option<u32> {
    packet
        .get(4..8)
        .map(|t| u32::from_be_bytes([t[0], t[1], t[2], t[3]]))
}

/// Hands `data` to `assoc` as it is, then with `own_tag` (or `peer_tag` for an ABORT or
/// SHUTDOWN COMPLETE with the T bit, or the tag as given for an INIT) and a correct checksum
/// written in; drains the association and runs its timers after each.
#[cfg(all(feature = "webrtc", not(target_arch = "wasm32")))]
fn sctp_feed(
    assoc: &mut crate::rtc::sctp::Association,
    data: &[u8],
    own_tag: Option<u32>,
    peer_tag: Option<u32>,
    now: Instant,
    buf: &mut Vec<u8>,
) {
    if let Err(error) = assoc.handle_packet(data, now) {
        let _ = error.to_string();
    }
    sctp_drain(assoc, now, buf);
    if data.len() < 16 {
        return;
    }
    let mut packet = data.to_vec();
    let (kind, flags) = (packet[12], packet[13]);
    let tag = match kind {
        1 => None,
        6 | 14 if flags & 1 != 0 => peer_tag,
        _ => own_tag,
    };
    if let Some(tag) = tag {
        packet[4..8].copy_from_slice(&tag.to_be_bytes());
    }
    packet[8..12].fill(0);
    let crc = crate::rtc::sctp::crc32c(&packet);
    packet[8..12].copy_from_slice(&crc.to_le_bytes());
    let _ = assoc.handle_packet(&packet, now);
    sctp_drain(assoc, now, buf);
    // The timers that input armed: retransmissions, delayed SACKs, abandoned messages.
    let mut clock = now;
    for _ in 0..4 {
        let Some(at) = assoc.poll_timeout() else {
            break;
        };
        clock = clock.max(at);
        assoc.handle_timeout(clock);
        sctp_drain(assoc, clock, buf);
    }
}

/// Takes out what the association has to send and to report.
#[cfg(all(feature = "webrtc", not(target_arch = "wasm32")))]
fn sctp_drain(assoc: &mut crate::rtc::sctp::Association, now: Instant, buf: &mut Vec<u8>) {
    for _ in 0..DRAIN_LIMIT {
        if !assoc.poll_transmit(now, buf) {
            break;
        }
    }
    for _ in 0..DRAIN_LIMIT {
        if assoc.poll_event().is_none() {
            break;
        }
    }
    let _ = assoc.stats();
}

/// Feeds `data` to WebSocket connections of both roles, as one read and in small pieces (the
/// partial-header paths), with a small event queue so decoding pauses and resumes, and (feature
/// `deflate`) with permessage-deflate agreed. Events and output are drained, then each
/// connection sends a message, a ping and a close in whatever state the input left it.
pub fn ws_frames(data: &[u8]) {
    use crate::ws::{Config, Connection, Role};

    for role in [Role::Server, Role::Client] {
        let config = Config {
            max_message_size: 64 * 1024,
            max_queued_events: 4,
        };
        let mut whole = Connection::new(role, config.clone());
        ws_feed(&mut whole, data);
        ws_finish(&mut whole);

        let mut pieces = Connection::new(role, config.clone());
        let mut rest = data;
        let mut size = 1;
        while !rest.is_empty() {
            let (piece, tail) = rest.split_at(size.min(rest.len()));
            ws_feed(&mut pieces, piece);
            rest = tail;
            size = size % 7 + 1;
        }
        ws_finish(&mut pieces);

        #[cfg(feature = "deflate")]
        {
            use crate::ws::deflate::{DeflateConfig, DeflateParams};
            let mut compressed = Connection::new(role, config);
            let codec =
                DeflateConfig::default().codec(DeflateParams::default(), role == Role::Server);
            compressed.set_deflate(Some(codec));
            ws_feed(&mut compressed, data);
            ws_finish(&mut compressed);
        }
    }
}

/// Gives `input` to the connection, then drains its events and output, resuming paused input.
fn ws_feed(conn: &mut crate::ws::Connection, input: &[u8]) {
    if let Err(error) = conn.receive(input) {
        let _ = error.to_string();
    }
    for _ in 0..DRAIN_LIMIT {
        let mut progress = false;
        while conn.poll_event().is_some() {
            progress = true;
        }
        ws_flush(conn);
        if conn.resume().is_err() || !progress {
            break;
        }
    }
}

/// Sends from the connection in the state the input left it, and drains again.
fn ws_finish(conn: &mut crate::ws::Connection) {
    use crate::ws::MessageKind;

    let _ = conn.send(MessageKind::Text, b"fuzz");
    let _ = conn.send(MessageKind::Binary, &[0, 1, 2, 3]);
    let _ = conn.ping(b"p");
    let _ = conn.close(1000, "done");
    ws_feed(conn, &[]);
    let _ = conn.retained_memory();
    conn.release_memory();
}

/// Marks all pending output as written.
fn ws_flush(conn: &mut crate::ws::Connection) {
    for _ in 0..DRAIN_LIMIT {
        let len = conn.pending_output().len();
        if len == 0 {
            break;
        }
        conn.consume_output(len);
    }
}

/// Feeds `data` (as lossy UTF-8) to the signaling message parser, and to two hubs: as the one
/// message of a fresh connection, and line by line as messages from the three connections of a
/// hub with a lobby (its host, a member, one not yet joined), closing connections as a driver
/// would and running the join and seal timers afterwards.
pub fn signal(data: &[u8]) {
    use crate::random::Rng;
    use crate::signal::{CandidatePayload, Hub, HubConfig, Message, MessageType, Transmit};

    let text = String::from_utf8_lossy(data);
    let now = Instant::now();

    let parse = |text: &str| match Message::parse(text) {
        Ok(message) => {
            if let Ok(again) = Message::parse(&message.to_json()) {
                let _ = again.kind.is_relayed();
            }
            if message.kind == MessageType::Candidate {
                if let Ok(candidate) = CandidatePayload::decode(&message.data) {
                    let _ = CandidatePayload::decode(&candidate.encode());
                }
            }
        }
        Err(error) => {
            let _ = error.to_string();
        }
    };
    parse(&text);

    let drain = |hub: &mut Hub, at: Instant| {
        for _ in 0..DRAIN_LIMIT {
            match hub.poll_transmit() {
                Some(Transmit::Close { conn, .. }) => hub.disconnect(conn, at),
                Some(Transmit::Send { .. }) => {}
                None => break,
            }
        }
    };
    let timers = |hub: &mut Hub| {
        for later in [1, 2, 11, 30] {
            let at = now + Duration::from_secs(later);
            hub.handle_timeout(at);
            drain(hub, at);
        }
        let _ = hub.stats();
    };

    let mut single = Hub::new(HubConfig::default(), Rng::seeded(1));
    single.connect(1, now);
    single.receive_text(1, &text, now);
    drain(&mut single, now);
    timers(&mut single);

    let mut hub = signal_lobby(now);
    drain(&mut hub, now);
    for (index, line) in text.lines().take(64).enumerate() {
        parse(line);
        let conn = [1, 2, 3][index % 3];
        hub.receive_text(conn, line, now);
        drain(&mut hub, now);
    }
    let _ = hub.lobby_names().count();
    timers(&mut hub);
}

/// A hub where connection 1 hosts a mesh lobby that connection 2 joined, and connection 3 is
/// connected but has not joined yet. Their outputs are not drained.
fn signal_lobby(now: Instant) -> crate::signal::Hub {
    use crate::random::Rng;
    use crate::signal::{Hub, HubConfig, Message};

    let mut hub = Hub::new(HubConfig::default(), Rng::seeded(2));
    for conn in 1..=3 {
        hub.connect(conn, now);
    }
    hub.receive_text(1, &Message::join("", true).to_json(), now);
    if let Some(lobby) = hub.lobby_of(1).map(str::to_owned) {
        hub.receive_text(2, &Message::join(lobby, true).to_json(), now);
    }
    hub
}

/// Feeds `data` to the Variant decoder (and what decodes through the encoder and back, which
/// must give the same value), and to two `SceneMultiplayer` cores, a relaying server with two
/// clients and a client of it, as packets from each of their peers, one per 0x0a-separated
/// piece, running the auth timeout afterwards.
pub fn multiplayer(data: &[u8]) {
    use crate::multiplayer::variant;
    use crate::multiplayer::{ConnectionStatus, SceneCore, TransferMode};

    if let Ok((value, used)) = variant::decode(data) {
        assert!(used <= data.len());
        if let Ok(bytes) = variant::to_bytes(&value) {
            let again = variant::from_bytes(&bytes).expect("an encoding decodes");
            // NaN is not equal to itself; compare the encodings.
            assert_eq!(variant::to_bytes(&again).ok(), Some(bytes));
        }
    }

    let now = Instant::now();
    let mut server = SceneCore::new();
    server.set_local(1, true);
    server.handle_status(ConnectionStatus::Connected);
    server.set_auth(data.first().is_some_and(|b| b & 1 == 1));
    for id in [5, 6] {
        server.handle_peer_connected(id, now);
    }
    let mut client = SceneCore::new();
    client.set_local(5, true);
    client.handle_status(ConnectionStatus::Connecting);
    client.handle_status(ConnectionStatus::Connected);
    client.handle_peer_connected(1, now);
    let modes = [
        TransferMode::Reliable,
        TransferMode::Unreliable,
        TransferMode::UnreliableOrdered,
    ];
    for (i, piece) in data.split(|&b| b == 0x0a).take(64).enumerate() {
        let mode = modes[i % 3];
        server.handle_packet([5, 6, 7][i % 3], mode, (i % 2) as u32, piece);
        client.handle_packet([1, 6][i % 2], mode, 0, piece);
        for core in [&mut server, &mut client] {
            for _ in 0..DRAIN_LIMIT {
                if core.poll_transmit().is_none() && core.poll_event().is_none() {
                    break;
                }
            }
        }
    }
    let _ = server.complete_auth(5);
    server.handle_timeout(now + Duration::from_secs(4));
    for core in [&mut server, &mut client] {
        for _ in 0..DRAIN_LIMIT {
            if core.poll_transmit().is_none() && core.poll_event().is_none() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every file of `fuzz/corpus/<name>/`, sorted by name; at least five, so that a missing
    /// or emptied corpus cannot pass.
    fn corpus(name: &str, dir: &str) -> Vec<(String, Vec<u8>)> {
        let entries = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("the {name} corpus at {dir} cannot be read: {e}"));
        let mut files: Vec<(String, Vec<u8>)> = entries
            .map(|entry| {
                let path = entry.expect("a corpus entry").path();
                let bytes = std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("{} cannot be read: {e}", path.display()));
                (file_name(&path), bytes)
            })
            .collect();
        files.sort();
        assert!(
            files.len() >= 5,
            "the {name} corpus holds {} files, expected at least 5",
            files.len()
        );
        files
    }

    fn file_name(path: &Path) -> String {
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Runs `target` on every corpus file, on each of its prefixes up to 64 bytes, and on
    /// copies with a few bytes flipped (the same ones every run).
    fn replay(name: &str, dir: &str, target: fn(&[u8])) {
        for (file, bytes) in corpus(name, dir) {
            let run = |input: &[u8], what: &str| {
                let outcome = std::panic::catch_unwind(|| target(input));
                assert!(
                    outcome.is_ok(),
                    "{name}: {file} ({what}) panicked; input: {input:02x?}"
                );
            };
            run(&bytes, "as is");
            for len in 0..bytes.len().min(64) {
                run(&bytes[..len], "truncated");
            }
            let mut state = 0x9E37_79B9_7F4A_7C15_u64 ^ bytes.len() as u64;
            for _ in 0..4 {
                if bytes.is_empty() {
                    break;
                }
                let mut flipped = bytes.clone();
                for _ in 0..3 {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let at = (state % bytes.len() as u64) as usize;
                    flipped[at] ^= 1 << ((state >> 32) % 8);
                }
                run(&flipped, "bits flipped");
            }
        }
    }

    macro_rules! corpus_dir {
        ($name:literal) => {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/", $name)
        };
    }

    #[cfg(all(feature = "webrtc", not(target_arch = "wasm32")))]
    #[test]
    fn sdp_corpus_replays_without_panic() {
        replay("sdp", corpus_dir!("sdp"), super::sdp);
    }

    /// The SCTP target feeds an established association: the handshake must complete.
    #[cfg(all(feature = "webrtc", not(target_arch = "wasm32")))]
    #[test]
    fn sctp_target_pair_is_established() {
        let (_, _, tags) = super::sctp_established_pair(crate::time::Instant::now());
        assert!(
            tags.is_some(),
            "the handshake of the fuzzed pair did not complete"
        );
    }

    /// The signal target sends from members of a lobby: both must have joined it.
    #[test]
    fn signal_target_lobby_has_two_members() {
        let hub = super::signal_lobby(crate::time::Instant::now());
        assert_eq!(hub.peer_id_of(1), Some(1));
        assert!(hub.peer_id_of(2).is_some_and(|id| id > 1));
        assert!(hub.lobby_of(3).is_none());
    }

    #[test]
    fn stun_corpus_replays_without_panic() {
        replay("stun", corpus_dir!("stun"), super::stun);
    }

    #[cfg(all(feature = "webrtc", not(target_arch = "wasm32")))]
    #[test]
    fn sctp_corpus_replays_without_panic() {
        replay("sctp", corpus_dir!("sctp"), super::sctp);
    }

    #[test]
    fn ws_frames_corpus_replays_without_panic() {
        replay("ws_frames", corpus_dir!("ws_frames"), super::ws_frames);
    }

    #[test]
    fn signal_corpus_replays_without_panic() {
        replay("signal", corpus_dir!("signal"), super::signal);
    }

    #[test]
    fn multiplayer_corpus_replays_without_panic() {
        replay(
            "multiplayer",
            corpus_dir!("multiplayer"),
            super::multiplayer,
        );
    }
}
