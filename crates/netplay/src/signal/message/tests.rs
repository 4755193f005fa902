//! Rule-by-rule tests of the wire format: what parses, what is refused with which reason, and
//! that what is written reads back the same.

use super::*;

fn parse_err(text: &str) -> Error {
    Message::parse(text).expect_err(text)
}

#[test]
fn message_types_have_the_reference_codes() {
    let codes: Vec<u8> = MessageType::ALL.iter().map(|t| t.code()).collect();
    assert_eq!(codes, [0, 1, 2, 3, 4, 5, 6, 7]);
    for t in MessageType::ALL {
        assert_eq!(MessageType::from_code(t.code() as i64), Some(t));
    }
    assert_eq!(MessageType::from_code(8), None);
    assert_eq!(MessageType::from_code(-1), None);
    assert!(MessageType::Offer.is_relayed() && MessageType::Candidate.is_relayed());
    assert!(!MessageType::Seal.is_relayed() && !MessageType::Join.is_relayed());
}

#[test]
fn written_keys_are_type_id_data_in_that_order() {
    assert_eq!(
        Message::assigned_id(1, true).to_json(),
        r#"{"type":1,"id":1,"data":"true"}"#
    );
    assert_eq!(Message::seal().to_json(), r#"{"type":7,"id":0,"data":""}"#);
    assert_eq!(
        Message::join_reply("Lobby_1").to_json(),
        r#"{"type":0,"id":0,"data":"Lobby_1"}"#
    );
    assert_eq!(
        Message::peer_disconnect(2147483647).to_json(),
        r#"{"type":3,"id":2147483647,"data":""}"#
    );
}

#[test]
fn constructors_follow_the_protocol_table() {
    assert_eq!(
        Message::join("", true),
        Message::new(MessageType::Join, 0, "")
    );
    assert_eq!(
        Message::join("abc", false),
        Message::new(MessageType::Join, 1, "abc")
    );
    assert_eq!(Message::assigned_id(7, false).data, "");
    assert_eq!(
        Message::peer_connect(9),
        Message::new(MessageType::PeerConnect, 9, "")
    );
    assert_eq!(Message::offer(1, "v=0").kind, MessageType::Offer);
    assert_eq!(Message::answer(1, "v=0").kind, MessageType::Answer);
    let c = CandidatePayload {
        mid: "0".into(),
        index: 0,
        candidate: "candidate:1 1 udp 1 1.2.3.4 5 typ host".into(),
    };
    assert_eq!(Message::candidate(3, &c).data, c.encode());
}

#[test]
fn tricky_strings_round_trip_through_the_writer() {
    let samples = [
        "",
        "plain",
        "quote \" and backslash \\ and slash /",
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n",
        "\u{0}\u{1}\u{7}\u{8}\u{9}\u{b}\u{c}\u{1f}\u{7f}",
        "unicode: é ß 東京 🎮 \u{2028}\u{2029}",
        "\\u0041 is not an escape here",
    ];
    for (i, s) in samples.into_iter().enumerate() {
        let m = Message::offer(i as i32, s);
        let json = m.to_json();
        assert_eq!(Message::parse(&json), Ok(m.clone()), "{json}");
        // And serde_json agrees the literal means the same string.
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["data"].as_str(), Some(s));
    }
}

#[test]
fn control_characters_are_escaped_short_or_as_u00xx() {
    let mut out = String::new();
    write_json_string(&mut out, "\n\r\t\u{8}\u{c}\u{0}\u{1f}\"\\");
    assert_eq!(out, r#""\n\r\t\b\f\u0000\u001f\"\\""#);
}

#[test]
fn escapes_in_input_are_decoded() {
    let m = Message::parse(r#"{"type":4,"id":2,"data":"a\"b\\c\/d\u00e9\ud83c\udfae\n"}"#).unwrap();
    assert_eq!(m.data, "a\"b\\c/dé🎮\n");
}

#[test]
fn whitespace_and_extra_fields_are_accepted() {
    let m = Message::parse(
        " \r\n\t{ \"data\" : \"x\" , \"extra\": [1, {\"a\": null}], \"id\" : 5, \"type\" : 6 } \n",
    )
    .unwrap();
    assert_eq!(m, Message::new(MessageType::Candidate, 5, "x"));
}

#[test]
fn integral_numbers_in_any_spelling_are_accepted() {
    for (text, kind, id) in [
        (r#"{"type":4.0,"id":2e0,"data":""}"#, MessageType::Offer, 2),
        (r#"{"type":-0,"id":0.0,"data":""}"#, MessageType::Join, 0),
        (
            r#"{"type":7,"id":2147483647,"data":""}"#,
            MessageType::Seal,
            i32::MAX,
        ),
    ] {
        let m = Message::parse(text).unwrap();
        assert_eq!((m.kind, m.id), (kind, id), "{text}");
    }
}

#[test]
fn invalid_message_format_for_anything_not_a_well_typed_object() {
    for text in [
        "",
        "not json",
        "{",
        "null",
        "42",
        "\"string\"",
        r#"[4, 1, "x"]"#,
        r#"{"type":4,"id":1}"#,
        r#"{"id":1,"data":""}"#,
        r#"{"type":4,"data":""}"#,
        r#"{"type":"4","id":1,"data":""}"#,
        r#"{"type":4,"id":"1","data":""}"#,
        r#"{"type":4,"id":1,"data":5}"#,
        r#"{"type":4,"id":1,"data":null}"#,
        r#"{"type":4,"id":1,"data":["x"]}"#,
        r#"{"type":4,"id":1,"data":{"sdp":"x"}}"#,
        r#"{"type":null,"id":1,"data":""}"#,
        r#"{"type":4,"id":1,"data":"x","data":"y"}"#,
        r#"{"type":4,"id":1,"data":"x"} trailing"#,
        r#"{"type":4,"id":1,"data":"\q"}"#,
        "{\"type\":4,\"id\":1,\"data\":\"raw\u{1}control\"}",
        r#"{"type":4,"id":1,"data":"lone \ud800 surrogate"}"#,
    ] {
        assert_eq!(parse_err(text), Error::InvalidFormat, "{text}");
    }
}

#[test]
fn invalid_message_format_for_negative_or_fractional_type() {
    assert_eq!(
        parse_err(r#"{"type":-1,"id":1,"data":""}"#),
        Error::InvalidFormat
    );
    assert_eq!(
        parse_err(r#"{"type":4.5,"id":1,"data":""}"#),
        Error::InvalidFormat
    );
    assert_eq!(
        parse_err(r#"{"type":-1e300,"id":1,"data":""}"#),
        Error::InvalidFormat
    );
}

#[test]
fn invalid_message_format_for_id_outside_i32_or_negative() {
    for id in [
        "-1",
        "2147483648",
        "1e10",
        "18446744073709551616",
        "1.5",
        "-2147483648",
    ] {
        let text = format!(r#"{{"type":4,"id":{id},"data":""}}"#);
        assert_eq!(parse_err(&text), Error::InvalidFormat, "{text}");
    }
}

#[test]
fn invalid_command_for_unknown_type() {
    for ty in ["8", "255", "99999999999999999999", "1e30"] {
        let text = format!(r#"{{"type":{ty},"id":1,"data":""}}"#);
        assert_eq!(parse_err(&text), Error::InvalidCommand, "{text}");
    }
}

#[test]
fn frame_keeps_the_data_literal_as_it_arrived() {
    let f = Frame::parse(r#"{"type":5,"id":1,"data" :  "v=0\r\n\u0041"  }"#).unwrap();
    assert_eq!(f.data, r#""v=0\r\n\u0041""#);
    assert_eq!(f.data_string().unwrap(), "v=0\r\nA");
    assert!(!f.data_is_empty());
    assert!(Frame::parse(r#"{"type":0,"id":0,"data":""}"#)
        .unwrap()
        .data_is_empty());
    let out = message_with_literal(f.kind, 42, f.data);
    assert_eq!(out, r#"{"type":5,"id":42,"data":"v=0\r\n\u0041"}"#);
    assert_eq!(Message::parse(&out).unwrap().data, "v=0\r\nA");
}

#[test]
fn candidate_payload_has_a_leading_newline_and_three_parts() {
    let c = CandidatePayload {
        mid: "audio".into(),
        index: 1,
        candidate: "candidate:842163049 1 udp 1677729535 1.2.3.4 46154 typ srflx".into(),
    };
    let text = c.encode();
    assert_eq!(
        text,
        "\naudio\n1\ncandidate:842163049 1 udp 1677729535 1.2.3.4 46154 typ srflx"
    );
    assert_eq!(CandidatePayload::decode(&text), Ok(c.clone()));
    // Empty parts are dropped as Godot's split(.., false) does.
    assert_eq!(
        CandidatePayload::decode(
            "\n\naudio\n\n1\ncandidate:842163049 1 udp 1677729535 1.2.3.4 46154 typ srflx\n"
        ),
        Ok(c)
    );
}

#[test]
fn candidate_payload_round_trips_through_a_message() {
    let c = CandidatePayload {
        mid: "0".into(),
        index: u32::MAX,
        candidate: "candidate:1 1 UDP 2122252543 \"weird\" 5000 typ host".into(),
    };
    let m = Message::parse(&Message::candidate(1, &c).to_json()).unwrap();
    assert_eq!(CandidatePayload::decode(&m.data), Ok(c));
}

#[test]
fn candidate_payload_without_three_parts_or_with_bad_index_is_invalid() {
    for data in [
        "",
        "\n\n",
        "\n0\ncandidate",
        "\nmid\n0\ncandidate\nextra",
        "\nmid\nx\ncandidate",
        "\nmid\n-1\ncandidate",
        "\nmid\n4294967296\ncandidate",
    ] {
        assert_eq!(
            CandidatePayload::decode(data),
            Err(Error::InvalidFormat),
            "{data:?}"
        );
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_message_round_trips(kind in 0u8..8, id in 0i32..=i32::MAX, data in ".*") {
            let m = Message::new(MessageType::ALL[kind as usize], id, data);
            prop_assert_eq!(Message::parse(&m.to_json()), Ok(m));
        }

        #[test]
        fn any_text_parses_or_fails_without_panic(text in ".{0,80}") {
            let _ = Message::parse(&text);
        }

        #[test]
        fn any_candidate_without_newlines_round_trips(
            mid in "[^\n]{1,8}", index in any::<u32>(), candidate in "[^\n]{1,40}"
        ) {
            let c = CandidatePayload { mid, index, candidate };
            prop_assert_eq!(CandidatePayload::decode(&c.encode()), Ok(c));
        }
    }
}
