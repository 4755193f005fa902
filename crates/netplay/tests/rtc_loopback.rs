//! Two native peer connections talking over 127.0.0.1: data channels in every mode, limits,
//! bad input, vanishing peers and closing. Every wait has a deadline.
#![cfg(feature = "webrtc")]

use std::net::UdpSocket;
use std::rc::Rc;
use std::time::{Duration, Instant};

use netplay::rtc::{
    CandidateKind, CandidateSource, ChannelId, ConnectionState, DataChannelOptions, DropCounts,
    DropEvery, Error, Event, GatheringState, Intercept, LocalCandidate, PeerConfig, PeerConnection,
    ReadyState, SdpKind, SignalingState, SourceTransmit, WriteMode,
};

mod common;

use common::rtc::{candidates, connected_pair, gather, values, Pair, DEADLINE};

fn negotiated_pair(options: DataChannelOptions) -> (Pair, ChannelId, ChannelId) {
    connected_pair(PeerConfig::loopback(), options)
}

fn receive_one(pair: &mut Pair, on_p2: bool, ch: ChannelId) -> (Vec<u8>, bool) {
    let mut got = None;
    pair.until("a message", |p| {
        let peer = if on_p2 { &mut p.p2 } else { &mut p.p1 };
        let mut c = peer.channel(ch).unwrap();
        got = c.get_packet().map(|m| (m, c.was_string_packet()));
        got.is_some()
    });
    got.unwrap()
}

#[test]
fn negotiated_channel_carries_messages_both_ways() {
    let (mut pair, ch1, ch2) = negotiated_pair(DataChannelOptions::negotiated(1));
    pair.p1
        .channel(ch1)
        .unwrap()
        .put_packet(b"Hi from P1")
        .unwrap();
    assert_eq!(receive_one(&mut pair, true, ch2).0, b"Hi from P1");
    pair.p2
        .channel(ch2)
        .unwrap()
        .put_packet(b"Hi from P2")
        .unwrap();
    assert_eq!(receive_one(&mut pair, false, ch1).0, b"Hi from P2");

    let c = pair.p1.channel(ch1).unwrap();
    assert_eq!(c.label(), "chat");
    assert_eq!(c.id(), Some(1));
    assert!(c.is_negotiated());
    assert!(c.is_ordered());
    assert_eq!(
        (c.max_retransmits(), c.max_packet_life_time()),
        (None, None)
    );
}

#[test]
fn states_follow_the_offer_answer_sequence() {
    let (pair, _, _) = negotiated_pair(DataChannelOptions::negotiated(1));
    let connection_states = |events: &[Event]| values!(events, Event::ConnectionStateChanged);
    let signaling = |events: &[Event]| values!(events, Event::SignalingStateChanged);
    let gathering = |events: &[Event]| values!(events, Event::GatheringStateChanged);
    use ConnectionState::*;
    assert_eq!(connection_states(&pair.events1), [Connecting, Connected]);
    assert_eq!(connection_states(&pair.events2), [Connecting, Connected]);
    assert_eq!(
        signaling(&pair.events1),
        [SignalingState::HaveLocalOffer, SignalingState::Stable]
    );
    assert_eq!(
        signaling(&pair.events2),
        [SignalingState::HaveRemoteOffer, SignalingState::Stable]
    );
    for events in [&pair.events1, &pair.events2] {
        assert_eq!(
            gathering(events),
            [GatheringState::Gathering, GatheringState::Complete]
        );
        // The description comes before the first candidate.
        let description = events
            .iter()
            .position(|e| matches!(e, Event::SessionDescriptionCreated { .. }))
            .unwrap();
        let candidate = events
            .iter()
            .position(|e| matches!(e, Event::IceCandidateCreated { .. }))
            .unwrap();
        assert!(description < candidate);
    }
    assert_eq!(pair.p1.connection_state(), Connected);
    assert_eq!(pair.p1.signaling_state(), SignalingState::Stable);
    assert_eq!(pair.p2.gathering_state(), GatheringState::Complete);
}

#[test]
fn in_band_channel_is_received_with_its_options() {
    let mut pair = Pair::loopback();
    let options = DataChannelOptions {
        ordered: false,
        max_retransmits: Some(3),
        protocol: "game/1".into(),
        ..DataChannelOptions::default()
    };
    let ch1 = pair.p1.create_data_channel("inband", options).unwrap();
    pair.offer();
    let ch2 = pair.received_channel(true);
    pair.open(ch1, ch2);
    {
        let c = pair.p2.channel(ch2).unwrap();
        assert_eq!(c.label(), "inband");
        assert_eq!(c.protocol(), "game/1");
        assert!(!c.is_ordered());
        assert!(!c.is_negotiated());
        assert_eq!(c.max_retransmits(), Some(3));
        let id = c.id().expect("stream id known once open");
        assert_eq!(pair.p1.channel(ch1).unwrap().id(), Some(id));
    }
    pair.p1.channel(ch1).unwrap().put_packet(b"ping").unwrap();
    assert_eq!(receive_one(&mut pair, true, ch2).0, b"ping");
    pair.p2.channel(ch2).unwrap().put_packet(b"pong").unwrap();
    assert_eq!(receive_one(&mut pair, false, ch1).0, b"pong");
}

#[test]
fn in_band_channel_created_after_connecting_opens_without_renegotiation() {
    let (mut pair, _, _) = negotiated_pair(DataChannelOptions::negotiated(1));
    let late = pair
        .p2
        .create_data_channel("late", DataChannelOptions::default())
        .unwrap();
    let remote = pair.received_channel(false);
    pair.open(remote, late);
    assert_eq!(pair.p1.channel(remote).unwrap().label(), "late");
    pair.p2.channel(late).unwrap().put_packet(b"late").unwrap();
    assert_eq!(receive_one(&mut pair, false, remote).0, b"late");
}

#[test]
fn unreliable_channels_open_and_carry_data() {
    for options in [
        DataChannelOptions {
            negotiated_id: Some(3),
            ordered: false,
            max_retransmits: Some(0),
            ..DataChannelOptions::default()
        },
        DataChannelOptions {
            negotiated_id: Some(4),
            ordered: true,
            max_packet_life_time: Some(100),
            ..DataChannelOptions::default()
        },
    ] {
        let (mut pair, ch1, ch2) = negotiated_pair(options.clone());
        assert_eq!(
            pair.p1.channel(ch1).unwrap().max_retransmits(),
            options.max_retransmits
        );
        assert_eq!(
            pair.p1.channel(ch1).unwrap().max_packet_life_time(),
            options.max_packet_life_time
        );
        for i in 0..20u8 {
            pair.p1.channel(ch1).unwrap().put_packet(&[i; 100]).unwrap();
        }
        let mut got = 0;
        pair.until("unreliable messages", |p| {
            while let Some(m) = p.p2.channel(ch2).unwrap().get_packet() {
                assert_eq!(m.len(), 100);
                got += 1;
            }
            got >= 20
        });
    }
}

#[test]
fn text_and_binary_kinds_are_preserved() {
    let (mut pair, ch1, ch2) = negotiated_pair(DataChannelOptions::negotiated(1));
    let mut c = pair.p1.channel(ch1).unwrap();
    assert_eq!(c.write_mode(), WriteMode::Binary);
    c.set_write_mode(WriteMode::Text);
    c.put_packet("texte é".as_bytes()).unwrap();
    assert_eq!(
        receive_one(&mut pair, true, ch2),
        ("texte é".as_bytes().to_vec(), true)
    );
    let mut c = pair.p1.channel(ch1).unwrap();
    c.set_write_mode(WriteMode::Binary);
    c.put_packet(&[0, 159, 146, 150]).unwrap();
    assert_eq!(
        receive_one(&mut pair, true, ch2),
        (vec![0, 159, 146, 150], false)
    );
    // Empty messages arrive empty, with their kind, and the ordered stream goes on.
    pair.p1.channel(ch1).unwrap().send_text("").unwrap();
    assert_eq!(receive_one(&mut pair, true, ch2), (Vec::new(), true));
    pair.p1.channel(ch1).unwrap().send_binary(&[]).unwrap();
    assert_eq!(receive_one(&mut pair, true, ch2), (Vec::new(), false));
    pair.p1.channel(ch1).unwrap().send_text("after").unwrap();
    assert_eq!(receive_one(&mut pair, true, ch2), (b"after".to_vec(), true));
}

#[test]
fn one_mebibyte_arrives_intact_through_back_pressure() {
    let config = PeerConfig {
        max_buffered_amount: 256 * 1024,
        max_channel_in_buffer: 32 * 1024,
        ..PeerConfig::loopback()
    };
    let mut pair = Pair::with_config(config);
    let (ch1, ch2) = pair.create_channel("bulk", DataChannelOptions::negotiated(7));
    pair.offer();
    pair.open(ch1, ch2);

    let data: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let sizes = [16 * 1024, 1, 60 * 1024, 1200, 33 * 1024, 7, 64 * 1024];
    let mut offset = 0;
    let mut turn = 0;
    let mut received = Vec::with_capacity(data.len());
    let mut full_seen = false;
    let mut max_queued = 0;
    let mut round = 0u64;
    pair.until("1 MiB delivered", |p| {
        round += 1;
        while offset < data.len() {
            let size = sizes[turn % sizes.len()].min(data.len() - offset);
            match p
                .p1
                .channel(ch1)
                .unwrap()
                .put_packet(&data[offset..offset + size])
            {
                Ok(()) => {
                    offset += size;
                    turn += 1;
                }
                Err(Error::BufferFull { .. }) => {
                    full_seen = true;
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        // A slow reader: it drains every fourth round only.
        let mut c = p.p2.channel(ch2).unwrap();
        max_queued = max_queued.max(c.available_bytes());
        if round.is_multiple_of(4) {
            while let Some(m) = c.get_packet() {
                received.extend_from_slice(&m);
            }
        }
        received.len() == data.len()
    });
    assert!(
        full_seen,
        "the send buffer never filled: no back pressure seen"
    );
    assert!(received == data, "the data arrived altered");
    // What the slow reader holds stays bounded: its limit, plus what was on the way when
    // the closed window stopped the sender (at most the sender's budget).
    assert!(
        max_queued <= 32 * 1024 + 256 * 1024 + 64 * 1024,
        "the reader held {max_queued} bytes"
    );
    assert_eq!(pair.p1.connection_state(), ConnectionState::Connected);
    let stats = pair.p2.stats();
    assert_eq!(stats.message_bytes_received, data.len() as u64);
    assert!(pair.p1.stats().message_bytes_sent >= data.len() as u64);
}

#[test]
fn two_peers_that_echo_each_other_at_full_speed_never_wait_on_each_other() {
    // p2 echoes as `netplay rtc-echo` does: when its send buffer is full it keeps the message
    // and stops reading, so its channel fills up. p1 sends 4 MiB and reads the echoes slowly.
    // A full channel must not keep p2 from reading the acknowledgements that free its own
    // send buffer (it once stopped reading its sockets, and the two waited on each other).
    let config = PeerConfig {
        max_buffered_amount: 256 * 1024,
        max_channel_in_buffer: 32 * 1024,
        ..PeerConfig::loopback()
    };
    let mut pair = Pair::with_config(config);
    let (ch1, ch2) = pair.create_channel("echo", DataChannelOptions::negotiated(9));
    pair.offer();
    pair.open(ch1, ch2);

    let total = 4 * 1024 * 1024;
    let message = vec![0x42u8; 16 * 1024];
    let (mut sent, mut echoed, mut round) = (0, 0, 0u64);
    let mut waiting: Option<Vec<u8>> = None;
    let (mut p1_full, mut p2_full) = (false, false);
    pair.until("4 MiB echoed", |p| {
        round += 1;
        while sent < total {
            match p.p1.channel(ch1).unwrap().put_packet(&message) {
                Ok(()) => sent += message.len(),
                Err(Error::BufferFull { .. }) => {
                    p1_full = true;
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        loop {
            let next = waiting
                .take()
                .or_else(|| p.p2.channel(ch2).unwrap().get_packet());
            let Some(m) = next else { break };
            match p.p2.channel(ch2).unwrap().put_packet(&m) {
                Ok(()) => {}
                Err(Error::BufferFull { .. }) => {
                    p2_full = true;
                    waiting = Some(m);
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        if round.is_multiple_of(4) {
            while let Some(m) = p.p1.channel(ch1).unwrap().get_packet() {
                assert_eq!(m, message);
                echoed += m.len();
            }
        }
        echoed == total
    });
    assert!(
        p1_full && p2_full,
        "both send buffers filled: {p1_full} {p2_full}"
    );
    assert_eq!(pair.p1.connection_state(), ConnectionState::Connected);
    assert_eq!(pair.p2.connection_state(), ConnectionState::Connected);
}

/// A pair whose p1 loses every 20th SCTP packet each way (netplay's own test impairment).
fn lossy_pair(options: DataChannelOptions) -> (Pair, ChannelId, ChannelId, Rc<DropCounts>) {
    let mut pair = Pair::loopback();
    let (source, drops) = DropEvery::new(20);
    pair.p1.add_candidate_source(Box::new(source)).unwrap();
    let (ch1, ch2) = pair.create_channel("lossy", options);
    pair.offer();
    pair.open(ch1, ch2);
    (pair, ch1, ch2, drops)
}

#[test]
fn reliable_channel_delivers_everything_in_order_through_packet_loss() {
    let (mut pair, ch1, ch2, dropped) = lossy_pair(DataChannelOptions::negotiated(3));
    let data: Vec<u8> = (0..2 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let mut offset = 0;
    let mut received = Vec::with_capacity(data.len());
    pair.until("2 MiB delivered through loss", |p| {
        while offset < data.len() {
            let end = (offset + 3000).min(data.len());
            match p.p1.channel(ch1).unwrap().put_packet(&data[offset..end]) {
                Ok(()) => offset = end,
                Err(Error::BufferFull { .. }) => break,
                Err(e) => panic!("{e}"),
            }
        }
        let mut c = p.p2.channel(ch2).unwrap();
        while let Some(m) = c.get_packet() {
            received.extend_from_slice(&m);
        }
        received.len() >= data.len()
    });
    assert!(received == data, "the data arrived altered or out of order");
    // p1 sends the data and loses every 20th packet of it, and every 20th SACK it receives.
    assert!(dropped.outbound().1 > 50, "{:?}", dropped.outbound());
    assert!(dropped.inbound().1 > 0, "{:?}", dropped.inbound());
    let stats = pair.p1.stats();
    assert!(stats.retransmissions > 0, "{stats:?}");
    assert_eq!(stats.abandoned_messages, 0);
    assert_eq!(pair.p1.connection_state(), ConnectionState::Connected);
}

#[test]
fn unreliable_channel_loses_messages_but_never_stalls_under_packet_loss() {
    let options = DataChannelOptions {
        ordered: true,
        max_retransmits: Some(0),
        ..DataChannelOptions::negotiated(5)
    };
    let (mut pair, ch1, ch2, dropped) = lossy_pair(options);
    let total = 2000u32;
    let mut sent = 0u32;
    let mut received = Vec::new();
    // Each message is a 4-byte sequence number padded to a packet of its own.
    pair.until_within(
        "every message delivered or given up",
        Duration::from_secs(20),
        |p| {
            while sent < total {
                let mut m = sent.to_be_bytes().to_vec();
                m.resize(1000, 0xab);
                match p.p1.channel(ch1).unwrap().put_packet(&m) {
                    Ok(()) => sent += 1,
                    Err(Error::BufferFull { .. }) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            let mut c = p.p2.channel(ch2).unwrap();
            while let Some(m) = c.get_packet() {
                received.push(u32::from_be_bytes([m[0], m[1], m[2], m[3]]));
            }
            // Nothing left queued or unacknowledged: each message arrived or was abandoned.
            sent == total && p.p1.channel(ch1).unwrap().buffered_amount() == 0
        },
    );
    for _ in 0..20 {
        pair.step();
    }
    let mut c = pair.p2.channel(ch2).unwrap();
    while let Some(m) = c.get_packet() {
        received.push(u32::from_be_bytes([m[0], m[1], m[2], m[3]]));
    }
    assert!(dropped.outbound().1 > 50, "{:?}", dropped.outbound());
    // Some messages are lost for good, the rest arrive in order, none twice.
    assert!(received.len() < total as usize, "nothing was lost");
    assert!(
        received.len() > total as usize * 8 / 10,
        "{} arrived",
        received.len()
    );
    assert!(
        received.windows(2).all(|w| w[0] < w[1]),
        "out of order or twice"
    );
    let stats = pair.p1.stats();
    assert!(stats.abandoned_messages > 0, "{stats:?}");
    assert_eq!(
        stats.retransmissions, 0,
        "a max_retransmits 0 channel retransmitted"
    );
}

#[test]
fn oversized_message_is_an_error_and_the_channel_stays_usable() {
    let (mut pair, ch1, ch2) = negotiated_pair(DataChannelOptions::negotiated(1));
    let max = pair.p1.max_message_size();
    assert_eq!(max, 256 * 1024);
    let too_big = vec![1u8; max + 1];
    match pair.p1.channel(ch1).unwrap().put_packet(&too_big) {
        Err(Error::MessageTooLarge { size, max: m }) => assert_eq!((size, m), (max + 1, max)),
        other => panic!("{other:?}"),
    }
    let just_right = vec![2u8; max];
    pair.p1
        .channel(ch1)
        .unwrap()
        .put_packet(&just_right)
        .unwrap();
    assert_eq!(receive_one(&mut pair, true, ch2).0, just_right);
}

#[test]
fn channel_option_errors_are_typed() {
    let (mut pair, _, _) = negotiated_pair(DataChannelOptions::negotiated(1));
    let both = DataChannelOptions {
        max_retransmits: Some(1),
        max_packet_life_time: Some(10),
        ..DataChannelOptions::default()
    };
    assert!(matches!(
        pair.p1.create_data_channel("x", both),
        Err(Error::BothReliabilityOptions)
    ));
    assert!(matches!(
        pair.p1
            .create_data_channel("dup", DataChannelOptions::negotiated(1)),
        Err(Error::DuplicateChannelId(1))
    ));
    // Still connected, nothing panicked.
    pair.step();
    assert_eq!(pair.p1.connection_state(), ConnectionState::Connected);
}

#[test]
fn malformed_descriptions_and_candidates_are_typed_errors() {
    let mut pair = Pair::loopback();
    let (ch1, ch2) = pair.create_channel("chat", DataChannelOptions::negotiated(1));
    pair.offer();
    let (kind, offer) = loop {
        match pair.p1.poll_event().unwrap() {
            Event::SessionDescriptionCreated { kind, sdp } => break (kind, sdp),
            e => pair.events1.push(e),
        }
    };
    // Truncated, garbage and fingerprint-less descriptions are refused without harm.
    let truncated = &offer[..offer.len() / 2];
    let no_fingerprint: String = offer
        .lines()
        .filter(|l| !l.starts_with("a=fingerprint"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    for bad in [
        truncated,
        "v=0\r\nbogus\r\n",
        "\u{0}\u{ff}",
        no_fingerprint.as_str(),
    ] {
        let err = pair
            .p2
            .set_remote_description(SdpKind::Offer, bad)
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidSdp(_) | Error::SdpRejected(_)),
            "{err}"
        );
    }
    assert!(matches!(
        pair.p2.set_remote_description(SdpKind::Answer, &offer),
        Err(Error::InvalidState { .. })
    ));
    for bad in [
        "candidate:1 1 udp",
        "candidate:1 1 udp x 127.0.0.1 1 typ host",
        "nonsense",
    ] {
        assert!(matches!(
            pair.p2.add_ice_candidate("0", 0, bad),
            Err(Error::InvalidCandidate(_))
        ));
    }
    // The real offer still works afterwards.
    pair.p2.set_remote_description(kind, &offer).unwrap();
    pair.open(ch1, ch2);
}

#[test]
fn garbage_datagrams_do_not_disturb_a_connection() {
    let (mut pair, ch1, ch2) = negotiated_pair(DataChannelOptions::negotiated(1));
    let target = pair.p2.local_addresses()[0];
    let noise = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..50u32 {
        let len = (next() % 1500) as usize;
        let mut datagram: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Make some of it look like STUN, DTLS or ChannelData at first glance.
        if let Some(first) = datagram.first_mut() {
            *first = [0u8, 1, 22, 23, 64, 128, 255][(round % 7) as usize];
        }
        if datagram.len() >= 8 && round % 3 == 0 {
            datagram[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
        }
        noise.send_to(&datagram, target).unwrap();
        if round % 10 == 0 {
            pair.step();
        }
    }
    noise.send_to(&[], target).unwrap();
    pair.p1
        .channel(ch1)
        .unwrap()
        .put_packet(b"still here")
        .unwrap();
    assert_eq!(receive_one(&mut pair, true, ch2).0, b"still here");
    assert_eq!(pair.p2.connection_state(), ConnectionState::Connected);
    assert!(pair.p2.stats().packets_discarded >= 40);
}

#[test]
fn certificate_not_matching_the_fingerprint_fails_the_connection() {
    let config = PeerConfig {
        connect_timeout: Duration::from_secs(5),
        ..PeerConfig::loopback()
    };
    let mut p1 = PeerConnection::new(config.clone()).unwrap();
    let mut p2 = PeerConnection::new(config).unwrap();
    p1.create_data_channel("chat", DataChannelOptions::negotiated(1))
        .unwrap();
    p2.create_data_channel("chat", DataChannelOptions::negotiated(1))
        .unwrap();
    p1.create_offer().unwrap();
    // Descriptions pass, except that the answer's fingerprint is altered on the way: the
    // offerer must refuse the certificate it then sees in the DTLS handshake.
    let relay = |from: &mut PeerConnection, to: &mut PeerConnection| {
        while let Some(event) = from.poll_event() {
            match event {
                Event::SessionDescriptionCreated { kind, sdp } => {
                    from.set_local_description(kind, &sdp).unwrap();
                    let sdp = if kind == SdpKind::Answer {
                        let at = sdp.find("a=fingerprint:sha-256 ").unwrap() + 22;
                        let flipped = if &sdp[at..at + 1] == "0" { "1" } else { "0" };
                        format!("{}{flipped}{}", &sdp[..at], &sdp[at + 1..])
                    } else {
                        sdp
                    };
                    to.set_remote_description(kind, &sdp).unwrap();
                }
                Event::IceCandidateCreated {
                    mid,
                    index,
                    candidate,
                } => to.add_ice_candidate(&mid, index, &candidate).unwrap(),
                _ => {}
            }
        }
    };
    let deadline = Instant::now() + Duration::from_secs(4);
    while p1.connection_state() != ConnectionState::Failed {
        assert!(
            Instant::now() < deadline,
            "the offerer accepted a wrong certificate"
        );
        assert_ne!(p1.connection_state(), ConnectionState::Connected);
        p1.poll();
        p2.poll();
        relay(&mut p1, &mut p2);
        relay(&mut p2, &mut p1);
        std::thread::sleep(Duration::from_micros(200));
    }
    let id = p1.channel_ids().next().unwrap();
    assert_eq!(p1.channel(id).unwrap().ready_state(), ReadyState::Closed);
}

#[test]
fn vanished_remote_goes_disconnected_then_failed_in_bounded_time() {
    let config = PeerConfig {
        ice_disconnected_timeout: Duration::from_millis(300),
        ice_failed_timeout: Duration::from_millis(900),
        ..PeerConfig::loopback()
    };
    let (mut pair, ch1, _) = connected_pair(config, DataChannelOptions::negotiated(1));
    // Mid-transfer: a reliable stream is flowing when p2 stops answering.
    for _ in 0..20 {
        pair.p1
            .channel(ch1)
            .unwrap()
            .put_packet(&[7; 1000])
            .unwrap();
        pair.step();
    }
    // p2 vanishes: never polled again, so it neither sends nor answers.
    let vanished = Instant::now();
    let mut disconnected_at = None;
    let deadline = vanished + Duration::from_secs(5);
    while pair.p1.connection_state() != ConnectionState::Failed {
        assert!(Instant::now() < deadline, "never failed");
        pair.p1.poll();
        while let Some(e) = pair.p1.poll_event() {
            if e == Event::ConnectionStateChanged(ConnectionState::Disconnected) {
                disconnected_at = Some(vanished.elapsed());
            }
            pair.events1.push(e);
        }
        // The application keeps sending; full buffers are errors, not hangs.
        let _ = pair.p1.channel(ch1).unwrap().put_packet(&[8; 1000]);
        std::thread::sleep(Duration::from_millis(2));
    }
    let failed_at = vanished.elapsed();
    let disconnected_at = disconnected_at.expect("Disconnected before Failed");
    assert!(
        disconnected_at >= Duration::from_millis(250) && disconnected_at < Duration::from_secs(2),
        "disconnected after {disconnected_at:?}"
    );
    assert!(
        failed_at >= Duration::from_millis(800) && failed_at < Duration::from_secs(3),
        "failed after {failed_at:?}"
    );
    let states = values!(pair.events1, Event::ConnectionStateChanged);
    assert_eq!(
        &states[states.len() - 3..],
        [
            ConnectionState::Connected,
            ConnectionState::Disconnected,
            ConnectionState::Failed
        ]
    );
    let mut c = pair.p1.channel(ch1).unwrap();
    assert_eq!(c.ready_state(), ReadyState::Closed);
    assert!(matches!(c.put_packet(b"x"), Err(Error::ChannelNotOpen)));
    assert!(matches!(pair.p1.create_offer(), Err(Error::Closed)));
}

#[test]
fn connection_without_candidates_fails_after_the_connect_timeout() {
    let config = PeerConfig {
        connect_timeout: Duration::from_millis(400),
        ..PeerConfig::loopback()
    };
    let mut pair = Pair::with_config(config);
    pair.relay_candidates = false;
    pair.create_channel("chat", DataChannelOptions::negotiated(1));
    pair.offer();
    let start = Instant::now();
    pair.until("Failed", |p| {
        p.p1.connection_state() == ConnectionState::Failed
            && p.p2.connection_state() == ConnectionState::Failed
    });
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[test]
fn close_closes_the_connection_and_channels_on_both_sides() {
    let (mut pair, ch1, ch2) = negotiated_pair(DataChannelOptions::negotiated(1));
    pair.p1.close();
    assert_eq!(pair.p1.connection_state(), ConnectionState::Closed);
    assert_eq!(pair.p1.signaling_state(), SignalingState::Closed);
    assert_eq!(
        pair.p1.channel(ch1).unwrap().ready_state(),
        ReadyState::Closed
    );
    pair.until("remote closed", |p| {
        p.p2.connection_state() == ConnectionState::Closed
    });
    assert_eq!(
        pair.p2.channel(ch2).unwrap().ready_state(),
        ReadyState::Closed
    );
    assert!(pair.events2.contains(&Event::DataChannelClosed(ch2)));
    // Closed is final and calls fail cleanly.
    assert!(matches!(
        pair.p1.set_remote_description(SdpKind::Offer, "v=0"),
        Err(Error::Closed)
    ));
    pair.p1.poll();
}

#[test]
fn closing_one_channel_leaves_the_others_open() {
    let mut pair = Pair::loopback();
    let (a1, a2) = pair.create_channel("a", DataChannelOptions::negotiated(1));
    let (b1, b2) = pair.create_channel("b", DataChannelOptions::negotiated(2));
    pair.offer();
    pair.open(a1, a2);
    pair.open(b1, b2);
    pair.p1.channel(a1).unwrap().close();
    assert_eq!(
        pair.p1.channel(a1).unwrap().ready_state(),
        ReadyState::Closing
    );
    // A closed channel is forgotten at a later poll, once drained: gone counts as closed.
    pair.until("channel a closed on both sides", |p| {
        let closed = |c: Option<netplay::rtc::DataChannel<'_>>| {
            c.is_none_or(|c| c.ready_state() == ReadyState::Closed)
        };
        closed(p.p1.channel(a1)) && closed(p.p2.channel(a2))
    });
    assert!(pair.events1.contains(&Event::DataChannelClosed(a1)));
    assert!(pair.events2.contains(&Event::DataChannelClosed(a2)));
    pair.p2.channel(b2).unwrap().put_packet(b"b lives").unwrap();
    assert_eq!(receive_one(&mut pair, false, b1).0, b"b lives");
}

#[test]
fn stats_report_traffic_rtt_and_the_selected_pair() {
    let (mut pair, ch1, ch2) = negotiated_pair(DataChannelOptions::negotiated(1));
    pair.p1
        .channel(ch1)
        .unwrap()
        .put_packet(b"count me")
        .unwrap();
    receive_one(&mut pair, true, ch2);
    let start = Instant::now();
    pair.until("stats with a pair", |p| {
        p.p1.stats().selected_pair.is_some() && start.elapsed() > Duration::from_millis(1100)
    });
    let stats = pair.p1.stats();
    assert!(stats.packets_sent > 0 && stats.bytes_received > 0);
    assert_eq!((stats.messages_sent, stats.message_bytes_sent), (1, 8));
    let selected = stats.selected_pair.unwrap();
    assert_eq!(selected.local, pair.p1.local_addresses()[0]);
    assert_eq!(selected.remote, pair.p2.local_addresses()[0]);
    assert!(stats.rtt.is_some(), "{stats:?}");
}

/// A stand-in for a STUN gatherer: sends a probe from the first socket, takes the reply
/// before the ICE agent sees it, and reports a server-reflexive candidate.
struct FakeStunSource {
    server: std::net::SocketAddr,
    local: Option<std::net::SocketAddr>,
    probe_sent: bool,
    found: Option<LocalCandidate>,
    announced: bool,
}

impl FakeStunSource {
    fn new(server: std::net::SocketAddr) -> FakeStunSource {
        FakeStunSource {
            server,
            local: None,
            probe_sent: false,
            found: None,
            announced: false,
        }
    }
}

impl CandidateSource for FakeStunSource {
    fn start(&mut self, sockets: &[std::net::SocketAddr], _now: Instant) {
        self.local = sockets.first().copied();
    }

    fn handle_datagram(
        &mut self,
        local: std::net::SocketAddr,
        from: std::net::SocketAddr,
        contents: &[u8],
        _now: Instant,
    ) -> Intercept {
        if from != self.server || contents != b"reply" {
            return Intercept::Pass;
        }
        let mut mapped = local;
        mapped.set_port(self.server.port());
        self.found = Some(LocalCandidate {
            kind: CandidateKind::ServerReflexive,
            address: mapped,
            base: local,
        });
        Intercept::Consumed
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_transmit(&mut self) -> Option<SourceTransmit> {
        let local = self.local?;
        if self.probe_sent {
            return None;
        }
        self.probe_sent = true;
        Some(SourceTransmit {
            local,
            destination: self.server,
            contents: b"probe".to_vec(),
        })
    }

    fn poll_candidate(&mut self) -> Option<LocalCandidate> {
        if self.announced {
            return None;
        }
        let found = self.found?;
        self.announced = true;
        Some(found)
    }

    fn is_complete(&self) -> bool {
        self.announced
    }
}

#[test]
fn candidate_source_hook_intercepts_datagrams_and_adds_candidates() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut pc = PeerConnection::new(PeerConfig::loopback()).unwrap();
    pc.add_candidate_source(Box::new(FakeStunSource::new(server.local_addr().unwrap())))
        .unwrap();
    pc.create_data_channel("chat", DataChannelOptions::negotiated(1))
        .unwrap();
    pc.create_offer().unwrap();
    assert_eq!(pc.gathering_state(), GatheringState::Gathering);

    let mut probe = [0u8; 16];
    let (n, from) = server.recv_from(&mut probe).unwrap();
    assert_eq!(&probe[..n], b"probe");
    assert_eq!(from, pc.local_addresses()[0]);
    server.send_to(b"reply", from).unwrap();

    let (events, _) = gather(&mut pc, DEADLINE);
    let lines = candidates(&events);
    assert!(lines[0].contains("typ host"), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("typ srflx")), "{lines:?}");
    // The reply was taken by the source, not counted as stray traffic.
    assert_eq!(pc.stats().packets_discarded, 0);
    assert!(matches!(
        pc.add_candidate_source(Box::new(FakeStunSource::new(server.local_addr().unwrap()))),
        Err(Error::InvalidState { .. })
    ));
}

/// Runs an example binary (built by `cargo test` next to this test's `deps/` directory) and
/// returns its standard output.
fn run_example(name: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: build the examples first (cargo build --examples)",
        path.display()
    );
    let mut child = std::process::Command::new(path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{name} exited with {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{name} did not exit within 20 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    out
}

#[test]
fn webrtc_minimal_example_prints_both_messages() {
    let out = run_example("webrtc_minimal");
    assert!(out.contains("P2 received: Hi from P1\n"), "{out}");
    assert!(out.contains("P1 received: Hi from P2\n"), "{out}");
}

#[test]
fn webrtc_local_signaling_example_prints_both_messages() {
    let out = run_example("webrtc_local_signaling");
    assert!(
        out.contains("/root/main/Chat2 received: Hi from /root/main/Chat1\n"),
        "{out}"
    );
    assert!(
        out.contains("/root/main/Chat1 received: Hi from /root/main/Chat2\n"),
        "{out}"
    );
}
