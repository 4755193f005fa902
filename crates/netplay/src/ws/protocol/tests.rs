//! Rule-by-rule tests of the framing state machine, one test per rule of RFC 6455.

use super::*;

/// Encodes one frame as a client would (masked) or a server would (unmasked).
fn frame(fin: bool, rsv: u8, op: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![(fin as u8) << 7 | rsv << 4 | op];
    let m = if mask.is_some() { 0x80 } else { 0 };
    if payload.len() < 126 {
        out.push(m | payload.len() as u8);
    } else if payload.len() <= 65535 {
        out.push(m | 126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    }
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(k) = mask {
        out.splice(start..start, k);
        for (i, b) in out[start + 4..].iter_mut().enumerate() {
            *b ^= k[i % 4];
        }
    }
    out
}

fn cframe(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
    frame(fin, 0, op, payload, Some([0x11, 0x22, 0x33, 0x44]))
}

fn server() -> Connection {
    Connection::new(Role::Server, Config::default())
}

fn drain(c: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

/// Decodes everything a server wrote, as the client would.
fn server_output(c: &mut Connection) -> Vec<Event> {
    let bytes = c.pending_output().to_vec();
    c.consume_output(bytes.len());
    let mut client = Connection::new(Role::Client, Config::default());
    let _ = client.receive(&bytes);
    drain(&mut client)
}

#[test]
fn single_frame_text_message_is_delivered() {
    let mut s = server();
    s.receive(&cframe(true, 1, b"Hello")).unwrap();
    assert_eq!(
        drain(&mut s),
        vec![Event::Message {
            kind: MessageKind::Text,
            data: b"Hello".to_vec()
        }]
    );
}

#[test]
fn message_arriving_one_byte_at_a_time_is_the_same() {
    let payload: Vec<u8> = (0..70000u32).map(|i| i as u8).collect();
    let wire = cframe(true, 2, &payload);
    let mut s = server();
    for b in &wire {
        s.receive(std::slice::from_ref(b)).unwrap();
    }
    assert_eq!(
        drain(&mut s),
        vec![Event::Message {
            kind: MessageKind::Binary,
            data: payload
        }]
    );
}

#[test]
fn fragments_with_interleaved_ping_are_reassembled_and_the_ping_answered() {
    let mut s = server();
    let mut wire = cframe(false, 1, b"Hel");
    wire.extend(cframe(true, 9, b"p"));
    wire.extend(cframe(false, 0, b"l"));
    wire.extend(cframe(true, 0, b"o"));
    s.receive(&wire).unwrap();
    assert_eq!(
        drain(&mut s),
        vec![
            Event::Ping(b"p".to_vec()),
            Event::Message {
                kind: MessageKind::Text,
                data: b"Hello".to_vec()
            }
        ]
    );
    assert_eq!(server_output(&mut s), vec![Event::Pong(b"p".to_vec())]);
}

#[test]
fn unmasked_client_frame_closes_with_1002() {
    let mut s = server();
    let err = s.receive(&frame(true, 0, 1, b"x", None)).unwrap_err();
    assert_eq!(err.code, 1002);
    assert_eq!(s.close_state(), CloseState::Closed);
    assert_eq!(
        server_output(&mut s),
        vec![Event::Close {
            code: Some(1002),
            reason: "client frame is not masked".into()
        }]
    );
}

#[test]
fn masked_server_frame_closes_with_1002() {
    let mut c = Connection::new(Role::Client, Config::default());
    assert_eq!(c.receive(&cframe(true, 2, b"x")).unwrap_err().code, 1002);
}

#[test]
fn reserved_bits_close_with_1002() {
    for rsv in [1u8, 2, 4] {
        let mut s = server();
        let err = s
            .receive(&frame(true, rsv, 1, b"x", Some([1, 2, 3, 4])))
            .unwrap_err();
        assert_eq!(err.code, 1002, "rsv {rsv}");
    }
}

#[test]
fn continuation_without_start_closes_with_1002() {
    let mut s = server();
    assert_eq!(s.receive(&cframe(true, 0, b"x")).unwrap_err().code, 1002);
}

#[test]
fn new_message_inside_a_fragmented_one_closes_with_1002() {
    let mut s = server();
    let mut wire = cframe(false, 1, b"a");
    wire.extend(cframe(true, 2, b"b"));
    assert_eq!(s.receive(&wire).unwrap_err().code, 1002);
}

#[test]
fn fragmented_or_long_control_frames_close_with_1002() {
    let mut s = server();
    assert_eq!(s.receive(&cframe(false, 9, b"")).unwrap_err().code, 1002);
    let mut s = server();
    assert_eq!(
        s.receive(&cframe(true, 9, &[0; 126])).unwrap_err().code,
        1002
    );
}

#[test]
fn invalid_utf8_fails_fast_before_the_message_ends() {
    let mut s = server();
    // The first fragment is already invalid; the connection must fail without the rest.
    let err = s
        .receive(&cframe(false, 1, &[0xCE, 0xBA, 0xED, 0xA0]))
        .unwrap_err();
    assert_eq!(err.code, 1007);
}

#[test]
fn text_ending_mid_character_closes_with_1007() {
    let mut s = server();
    assert_eq!(
        s.receive(&cframe(true, 1, &[b'a', 0xE2, 0x82]))
            .unwrap_err()
            .code,
        1007
    );
}

#[test]
fn close_code_1009_when_message_exceeds_inbound_limit() {
    let mut s = Connection::new(
        Role::Server,
        Config {
            max_message_size: 100,
            ..Config::default()
        },
    );
    // Fails on the header, before any payload arrives.
    let wire = cframe(true, 2, &[0; 101]);
    let err = s.receive(&wire[..8]).unwrap_err();
    assert_eq!(err.code, 1009);
    assert_eq!(s.sent_close(), Some((1009, "Message too big")));
}

#[test]
fn limit_counts_all_fragments_of_a_message() {
    let mut s = Connection::new(
        Role::Server,
        Config {
            max_message_size: 100,
            ..Config::default()
        },
    );
    let mut wire = cframe(false, 2, &[0; 60]);
    wire.extend(cframe(true, 0, &[0; 60]));
    assert_eq!(s.receive(&wire).unwrap_err().code, 1009);
}

#[test]
fn close_is_echoed_with_the_same_code() {
    let mut s = server();
    let mut payload = 4001u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye");
    s.receive(&cframe(true, 8, &payload)).unwrap();
    assert_eq!(
        drain(&mut s),
        vec![Event::Close {
            code: Some(4001),
            reason: "bye".into()
        }]
    );
    assert_eq!(s.close_state(), CloseState::Closed);
    assert_eq!(
        server_output(&mut s),
        vec![Event::Close {
            code: Some(4001),
            reason: String::new()
        }]
    );
    assert!(s.send(MessageKind::Text, b"late").is_err());
}

#[test]
fn invalid_close_payloads_are_rejected() {
    for (payload, code) in [
        (vec![0x03], 1002u16),
        (999u16.to_be_bytes().to_vec(), 1002),
        (1005u16.to_be_bytes().to_vec(), 1002),
        (5000u16.to_be_bytes().to_vec(), 1002),
        ([&1000u16.to_be_bytes()[..], &[0xFF]].concat(), 1007),
    ] {
        let mut s = server();
        assert_eq!(
            s.receive(&cframe(true, 8, &payload)).unwrap_err().code,
            code,
            "{payload:?}"
        );
    }
}

#[test]
fn empty_close_is_answered_with_1000() {
    let mut s = server();
    s.receive(&cframe(true, 8, b"")).unwrap();
    assert_eq!(
        drain(&mut s),
        vec![Event::Close {
            code: None,
            reason: String::new()
        }]
    );
    assert_eq!(
        server_output(&mut s),
        vec![Event::Close {
            code: Some(1000),
            reason: String::new()
        }]
    );
}

#[test]
fn our_close_then_theirs_completes_the_handshake() {
    let mut c = Connection::new(Role::Client, Config::default());
    c.close(1000, "done").unwrap();
    assert_eq!(c.close_state(), CloseState::CloseSent);
    // A server's close reply arrives.
    c.receive(&frame(true, 0, 8, &1000u16.to_be_bytes(), None))
        .unwrap();
    assert_eq!(c.close_state(), CloseState::Closed);
    assert_eq!(c.received_close(), Some((Some(1000), "")));
}

#[test]
fn close_rejects_long_reasons_and_invalid_codes() {
    let mut c = server();
    assert!(c.close(1000, &"x".repeat(124)).is_err());
    assert!(c.close(1005, "").is_err());
    assert!(c.close(4999, &"x".repeat(123)).is_ok());
}

#[test]
fn decoding_pauses_on_a_full_event_queue_and_resumes() {
    let mut s = Connection::new(
        Role::Server,
        Config {
            max_queued_events: 2,
            ..Config::default()
        },
    );
    let mut wire = Vec::new();
    for i in 0..5u8 {
        wire.extend(cframe(true, 2, &[i]));
    }
    s.receive(&wire).unwrap();
    assert_eq!(s.queued_events(), 2);
    assert!(s.buffered_input() > 0);
    let mut got = Vec::new();
    while got.len() < 5 {
        while let Some(Event::Message { data, .. }) = s.poll_event() {
            got.push(data[0]);
        }
        s.resume().unwrap();
    }
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    assert_eq!(s.buffered_input(), 0);
}

#[test]
fn client_output_is_masked_and_decodes_on_a_server() {
    let mut c = Connection::new(Role::Client, Config::default());
    c.send(MessageKind::Binary, &[7; 300]).unwrap();
    let wire = c.pending_output().to_vec();
    assert_eq!(wire[1] & 0x80, 0x80);
    let mut s = server();
    s.receive(&wire).unwrap();
    assert_eq!(
        drain(&mut s),
        vec![Event::Message {
            kind: MessageKind::Binary,
            data: vec![7; 300]
        }]
    );
}

#[test]
fn input_after_a_protocol_error_is_ignored() {
    let mut s = server();
    assert!(s.receive(&frame(true, 0, 1, b"x", None)).is_err());
    s.receive(&cframe(true, 1, b"after")).unwrap();
    assert!(drain(&mut s).is_empty());
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..20)) {
            for role in [Role::Client, Role::Server] {
                let mut c = Connection::new(role, Config { max_message_size: 1000, max_queued_events: 3 });
                for ch in &chunks {
                    let _ = c.receive(ch);
                    let _ = c.poll_event();
                    let _ = c.resume();
                }
            }
        }

        #[test]
        fn any_message_split_anywhere_round_trips(
            data in proptest::collection::vec(any::<u8>(), 0..3000),
            split in 1usize..500,
            text in any::<bool>(),
        ) {
            let kind = if text { MessageKind::Text } else { MessageKind::Binary };
            let data = if text { String::from_utf8_lossy(&data).into_owned().into_bytes() } else { data };
            let mut c = Connection::new(Role::Client, Config::default());
            c.send(kind, &data).unwrap();
            let wire = c.pending_output().to_vec();
            let mut s = server();
            for ch in wire.chunks(split) {
                s.receive(ch).unwrap();
            }
            prop_assert_eq!(s.poll_event(), Some(Event::Message { kind, data }));
        }
    }
}

#[test]
fn large_buffers_are_reused_until_released() {
    let mut s = server();
    s.send(MessageKind::Binary, &[0; 100_000]).unwrap();
    let n = s.output_len();
    s.consume_output(n);
    assert!(s.retained_memory() >= 100_000, "kept for the next message");
    s.release_memory();
    assert_eq!(s.retained_memory(), 0);
    // Pending output is never released.
    s.send(MessageKind::Binary, &[0; 10]).unwrap();
    s.release_memory();
    assert_eq!(s.output_len(), 12);
}

#[test]
fn owned_payloads_round_trip_without_a_copy_for_both_roles() {
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
    // Client to server: masked in place.
    let mut c = Connection::new(Role::Client, Config::default());
    c.send(MessageKind::Text, b"before").unwrap();
    c.send_owned(MessageKind::Binary, big.clone()).unwrap();
    c.send(MessageKind::Text, b"after").unwrap();
    let mut slices = [std::io::IoSlice::new(&[]); 8];
    let k = c.pending_output_vectored(&mut slices);
    assert!(k >= 3, "the owned payload is its own slice");
    let wire: Vec<u8> = slices[..k].iter().flat_map(|s| s.to_vec()).collect();
    assert_eq!(wire.len(), c.output_len());
    let mut s = server();
    s.receive(&wire).unwrap();
    let got = drain(&mut s);
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[1],
        Event::Message {
            kind: MessageKind::Binary,
            data: big.clone()
        }
    );
    // Server to client, written in odd pieces through pending_output/consume_output.
    s.send_owned(MessageKind::Binary, big.clone()).unwrap();
    let mut wire = Vec::new();
    while s.output_len() > 0 {
        let f = s.pending_output();
        let take = f.len().min(7777);
        wire.extend_from_slice(&f[..take]);
        s.consume_output(take);
    }
    let mut c = Connection::new(Role::Client, Config::default());
    c.receive(&wire).unwrap();
    assert_eq!(
        c.poll_event(),
        Some(Event::Message {
            kind: MessageKind::Binary,
            data: big
        })
    );
}
