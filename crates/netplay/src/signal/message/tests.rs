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

/// The reader checked against serde_json, which parsed these messages before: the same text
/// gives the same message or the same error, on generated messages and on their mutations.
mod against_serde_json {
    use super::*;
    use proptest::prelude::*;
    use serde_json::value::RawValue;
    use serde_json::Number;

    #[derive(serde::Deserialize)]
    struct Wire<'a> {
        #[serde(rename = "type")]
        kind: Number,
        id: Number,
        #[serde(borrow)]
        data: &'a RawValue,
    }

    /// The parser as it was, on serde_json.
    fn reference(text: &str) -> Result<Message, Error> {
        if text
            .trim_start_matches([' ', '\t', '\n', '\r'])
            .as_bytes()
            .first()
            != Some(&b'{')
        {
            return Err(Error::InvalidFormat);
        }
        let wire: Wire<'_> = serde_json::from_str(text).map_err(|_| Error::InvalidFormat)?;
        let integral = |n: &Number| {
            if let Some(v) = n.as_i64() {
                return Some(v);
            }
            if n.as_u64().is_some() {
                return Some(i64::MAX);
            }
            let f = n.as_f64()?;
            (f.is_finite() && f.fract() == 0.0).then_some(f as i64)
        };
        let kind = integral(&wire.kind).ok_or(Error::InvalidFormat)?;
        let id = integral(&wire.id).ok_or(Error::InvalidFormat)?;
        let data = wire.data.get();
        if kind < 0 || !data.starts_with('"') {
            return Err(Error::InvalidFormat);
        }
        let id = i32::try_from(id)
            .ok()
            .filter(|id| *id >= 0)
            .ok_or(Error::InvalidFormat)?;
        let kind = MessageType::from_code(kind).ok_or(Error::InvalidCommand)?;
        let data = serde_json::from_str(data).map_err(|_| Error::InvalidFormat)?;
        Ok(Message { kind, id, data })
    }

    fn number() -> impl Strategy<Value = String> {
        prop_oneof![
            (-3i64..12).prop_map(|n| n.to_string()),
            Just("4.0".into()),
            Just("4e0".into()),
            Just("40E-1".into()),
            Just("0.5e1".into()),
            Just("4.5".into()),
            Just("-0".into()),
            Just("-0.0".into()),
            Just("1e400".into()),
            Just("1e-400".into()),
            Just("9223372036854775807".into()),
            Just("9223372036854775808".into()),
            Just("-9223372036854775809".into()),
            Just("18446744073709551616".into()),
            Just("2147483648".into()),
            Just("01".into()),
            Just("1.".into()),
            Just(".5".into()),
            Just("+1".into()),
            Just("1e".into()),
            Just("-".into()),
        ]
    }

    fn string() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z é\u{1F600}]{0,6}".prop_map(|s| format!("\"{s}\"")),
            Just(r#""\n\t\"\\\/\b\f\r""#.into()),
            Just(r#""\u00e9\u0041""#.into()),
            Just(r#""\ud83d\ude00""#.into()),
            Just(r#""\ud800""#.into()),
            Just(r#""\udc00x""#.into()),
            Just(r#""\ud800\u0041""#.into()),
            Just(r#""\u12g4""#.into()),
            Just(r#""\x""#.into()),
            Just("\"a\u{1}b\"".into()),
            Just("\"open".into()),
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            number(),
            string(),
            Just("true".into()),
            Just("false".into()),
            Just("null".into()),
            Just("nul".into()),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec((string(), inner), 0..4).prop_map(|v| {
                    let members: Vec<String> =
                        v.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("\"type\"".into()),
            Just("\"id\"".into()),
            Just("\"data\"".into()),
            Just(r#""\u0074ype""#.into()),
            Just(r#""d\u0061ta""#.into()),
            Just("\"other\"".into()),
            Just("\"Type\"".into()),
            string(),
        ]
    }

    fn space() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("".into()),
            Just(" ".into()),
            Just("\n\t ".into()),
            Just("\u{a0}".into())
        ]
    }

    /// An object of usually the three fields (often well typed), sometimes more, fewer or twice.
    fn message() -> impl Strategy<Value = String> {
        let field = prop_oneof![
            3 => (key(), number()),
            2 => (key(), string()),
            1 => (key(), value()),
        ];
        let typed = (0u8..9, -2i64..5, string()).prop_map(|(t, i, d)| {
            vec![
                ("\"type\"".to_string(), t.to_string()),
                ("\"id\"".to_string(), i.to_string()),
                ("\"data\"".to_string(), d),
            ]
        });
        (
            typed,
            prop::collection::vec(field, 0..3),
            space(),
            any::<bool>(),
        )
            .prop_map(|(mut fields, extra, ws, shuffle)| {
                fields.extend(extra);
                if shuffle {
                    fields.reverse();
                }
                let members: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{ws}{k}{ws}:{ws}{v}{ws}"))
                    .collect();
                format!("{ws}{{{}}}{ws}", members.join(","))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn generated_messages_read_as_serde_json_read_them(text in message()) {
            prop_assert_eq!(Message::parse(&text), reference(&text), "{}", text);
        }

        #[test]
        fn mutated_messages_read_as_serde_json_read_them(
            text in message(), at in any::<prop::sample::Index>(), cut in any::<bool>(),
            insert in prop::sample::select(vec!["", "{", "}", "[", "]", ",", ":", "\"", "\\", "0", "-", "e", ".", " ", "x"]),
        ) {
            let chars: Vec<char> = text.chars().collect();
            let i = at.index(chars.len() + 1);
            let mut mutated: String = chars[..i].iter().collect();
            mutated.push_str(insert);
            if !cut {
                mutated.extend(&chars[i..]);
            }
            prop_assert_eq!(Message::parse(&mutated), reference(&mutated), "{}", mutated);
        }

        #[test]
        fn any_text_reads_as_serde_json_reads_it(text in ".{0,60}") {
            prop_assert_eq!(Message::parse(&text), reference(&text));
        }
    }

    #[test]
    fn nesting_of_128_or_more_is_refused_without_exhausting_the_stack() {
        for depth in [127, 128, 129, 100_000] {
            let text = format!(
                "{{\"type\":0,\"id\":0,\"data\":\"\",\"x\":{}{}}}",
                "[".repeat(depth),
                "]".repeat(depth)
            );
            let ok = Message::parse(&text).is_ok();
            assert_eq!(ok, depth < 128, "depth {depth}");
            // The one difference: serde_json skipped fields of any depth.
            assert!(reference(&text).is_ok(), "depth {depth}");
        }
    }
}
