//! Rule-by-rule tests of the lobby server, one test per rule of the protocol or limit, and a
//! property test feeding random sessions and checking the hub's invariants after every step.

use std::collections::HashSet;

use super::*;
use crate::signal::message::write_json_string;
use crate::signal::CandidatePayload;

/// A hub with a clock and helpers to talk to it as clients would.
struct Harness {
    hub: Hub,
    now: Instant,
}

impl Harness {
    fn new() -> Harness {
        Harness::with(HubConfig::default())
    }

    fn with(config: HubConfig) -> Harness {
        Harness {
            hub: Hub::new(config, Rng::seeded(7)),
            now: Instant::now(),
        }
    }

    fn connect(&mut self, conn: ConnId) {
        self.hub.connect(conn, self.now);
    }

    fn text(&mut self, conn: ConnId, text: &str) {
        self.hub.receive_text(conn, text, self.now);
    }

    fn send(&mut self, conn: ConnId, message: &Message) {
        self.text(conn, &message.to_json());
    }

    fn drain(&mut self) -> Vec<Transmit> {
        std::iter::from_fn(|| self.hub.poll_transmit()).collect()
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.hub.handle_timeout(self.now);
    }

    /// Connects `conn`, creates a lobby, drains the output and returns the lobby name.
    fn create(&mut self, conn: ConnId, mesh: bool) -> String {
        self.connect(conn);
        self.send(conn, &Message::join("", mesh));
        let out = self.drain();
        let name = messages_to(&out, conn).last().unwrap().data.clone();
        assert_eq!(self.hub.lobby_of(conn), Some(name.as_str()));
        name
    }

    /// Connects `conn` and joins `name`; returns the output (not drained further).
    fn join(&mut self, conn: ConnId, name: &str) -> Vec<Transmit> {
        self.connect(conn);
        self.send(conn, &Message::join(name, false));
        self.drain()
    }

    fn id(&self, conn: ConnId) -> i32 {
        self.hub.peer_id_of(conn).unwrap()
    }
}

/// The messages sent to `conn`, in order.
fn messages_to(out: &[Transmit], conn: ConnId) -> Vec<Message> {
    out.iter()
        .filter_map(|o| match o {
            Transmit::Send { conn: c, text } if *c == conn => Some(Message::parse(text).unwrap()),
            _ => None,
        })
        .collect()
}

/// The closes in the output, as (conn, code, reason).
fn closes(out: &[Transmit]) -> Vec<(ConnId, u16, String)> {
    out.iter()
        .filter_map(|o| match o {
            Transmit::Close { conn, code, reason } => Some((*conn, *code, reason.clone())),
            _ => None,
        })
        .collect()
}

fn close_of(conn: ConnId, error: Error) -> Vec<(ConnId, u16, String)> {
    vec![(conn, error.code(), error.reason().to_owned())]
}

/// The ids announced to `conn` with PEER_CONNECT.
fn connects_to(out: &[Transmit], conn: ConnId) -> Vec<i32> {
    messages_to(out, conn)
        .into_iter()
        .filter(|m| m.kind == MessageType::PeerConnect)
        .map(|m| m.id)
        .collect()
}

/// A lobby with the host (conn 1) and clients 2, 3, 4, built with `config`.
fn lobby_of_four(config: HubConfig, mesh: bool) -> (Harness, String, Vec<Transmit>) {
    let mut h = Harness::with(config);
    let name = h.create(1, mesh);
    h.join(2, &name);
    h.join(3, &name);
    let out = h.join(4, &name);
    (h, name, out)
}

// ---- Joining ----

#[test]
fn join_with_empty_name_creates_a_lobby_with_a_generated_name() {
    let mut h = Harness::new();
    h.connect(1);
    h.send(1, &Message::join("", true));
    let out = h.drain();
    let msgs = messages_to(&out, 1);
    assert_eq!(msgs.len(), 2);
    let name = &msgs[1].data;
    assert_eq!(msgs[1].kind, MessageType::Join);
    assert_eq!(msgs[1].id, 0);
    assert_eq!(name.len(), GENERATED_NAME_LEN);
    assert!(name.bytes().all(|b| b.is_ascii_alphanumeric()), "{name}");
    assert_eq!(h.hub.lobby_count(), 1);
    assert_eq!(h.hub.lobby_names().collect::<Vec<_>>(), [name.as_str()]);
}

#[test]
fn lobby_creator_is_the_host_with_id_1() {
    let mut h = Harness::new();
    let name = h.create(1, false);
    assert_eq!(h.id(1), 1);
    let info = h.hub.lobby(&name).unwrap();
    assert_eq!((info.host, info.members), (1, vec![(1, 1)]));
    let out = h.join(2, &name);
    // The newcomer sees the host as 1.
    assert_eq!(connects_to(&out, 2), [1]);
}

#[test]
fn id_data_is_true_for_a_mesh_lobby_and_empty_otherwise() {
    let mut h = Harness::new();
    h.connect(1);
    h.send(1, &Message::join("", true));
    assert_eq!(messages_to(&h.drain(), 1)[0], Message::assigned_id(1, true));
    h.connect(2);
    h.send(2, &Message::join("", false));
    assert_eq!(
        messages_to(&h.drain(), 2)[0],
        Message::assigned_id(1, false)
    );
}

#[test]
fn join_sends_id_then_peer_connects_then_the_join_reply() {
    let (mut h, name, _) = lobby_of_four(HubConfig::default(), true);
    let out = h.join(5, &name);
    let msgs = messages_to(&out, 5);
    let ids: Vec<i32> = [1, 2, 3].iter().map(|c| h.id(*c)).collect();
    let expected_connects: Vec<Message> = [1, ids[1], ids[2], h.id(4)]
        .into_iter()
        .map(Message::peer_connect)
        .collect();
    assert_eq!(msgs[0], Message::assigned_id(h.id(5), true));
    assert_eq!(msgs[1..5], expected_connects[..]);
    assert_eq!(msgs[5], Message::join_reply(&*name));
    assert_eq!(msgs.len(), 6);
    // Each existing member hears of the newcomer right before the newcomer hears of it.
    let order: Vec<ConnId> = out
        .iter()
        .map(|o| match o {
            Transmit::Send { conn, .. } => *conn,
            Transmit::Close { .. } => panic!("unexpected close"),
        })
        .collect();
    assert_eq!(order, [5, 1, 5, 2, 5, 3, 5, 4, 5, 5]);
}

#[test]
fn joined_ids_are_unique_and_between_2_and_i32_max() {
    let mut h = Harness::with(HubConfig {
        max_messages_per_second: 0,
        ..HubConfig::default()
    });
    let name = h.create(1, true);
    let mut seen = HashSet::from([1]);
    for conn in 2..200 {
        h.join(conn, &name);
        let id = h.id(conn);
        assert!(id >= 2, "{id}");
        assert!(seen.insert(id), "duplicate {id}");
    }
}

#[test]
fn peer_id_collisions_in_a_lobby_are_redrawn() {
    let mut h = Harness::new();
    let name = h.create(1, true);
    // Predict the next id with a copy of the generator and occupy it.
    let predicted = 2 + h.hub.rng.clone().below(i32::MAX as u64 - 1) as i32;
    let key = h.hub.names[&name];
    h.hub
        .lobbies
        .get_mut(&key)
        .unwrap()
        .ids
        .insert(predicted, 999);
    h.join(2, &name);
    assert_ne!(h.id(2), predicted);
}

#[test]
fn the_same_seed_gives_the_same_names_and_ids() {
    let run = || {
        let mut h = Harness::new();
        let name = h.create(1, true);
        h.join(2, &name);
        (name, h.id(2))
    };
    assert_eq!(run(), run());
}

#[test]
fn joiner_mode_is_ignored_the_lobby_mode_wins() {
    let mut h = Harness::new();
    let name = h.create(1, false);
    h.connect(2);
    h.send(2, &Message::join(&*name, true)); // asks for mesh
    let msgs = messages_to(&h.drain(), 2);
    assert_eq!(msgs[0].data, "", "server/client lobby stays server/client");
    assert!(!h.hub.lobby(&name).unwrap().mesh);

    let name = h.create(3, true);
    h.connect(4);
    h.send(4, &Message::join(&*name, false));
    assert_eq!(messages_to(&h.drain(), 4)[0].data, "true");
}

#[test]
fn join_names_may_use_json_escapes() {
    let mut h = Harness::new();
    let name = h.create(1, true);
    let escaped: String = name
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    h.connect(2);
    h.text(2, &format!(r#"{{"type":0,"id":0,"data":"{escaped}"}}"#));
    assert_eq!(h.hub.lobby_of(2), Some(name.as_str()));
}

// ---- Announcements ----

#[test]
fn mesh_lobby_announces_everyone_to_everyone() {
    for announce in [true, false] {
        let config = HubConfig {
            announce_clients_to_each_other: announce,
            ..HubConfig::default()
        };
        let (h, _, out) = lobby_of_four(config, true);
        let (id2, id3, id4) = (h.id(2), h.id(3), h.id(4));
        assert_eq!(connects_to(&out, 4), [1, id2, id3], "announce={announce}");
        for conn in [1, 2, 3] {
            assert_eq!(connects_to(&out, conn), [id4], "announce={announce}");
        }
    }
}

#[test]
fn server_client_lobby_announces_clients_to_each_other_by_default() {
    let (h, _, out) = lobby_of_four(HubConfig::default(), false);
    assert_eq!(connects_to(&out, 4), [1, h.id(2), h.id(3)]);
    for conn in [1, 2, 3] {
        assert_eq!(connects_to(&out, conn), [h.id(4)]);
    }
}

#[test]
fn server_client_lobby_without_client_announcements_pairs_only_host_and_clients() {
    let config = HubConfig {
        announce_clients_to_each_other: false,
        ..HubConfig::default()
    };
    let (h, _, out) = lobby_of_four(config, false);
    assert_eq!(connects_to(&out, 4), [1]);
    assert_eq!(connects_to(&out, 1), [h.id(4)]);
    assert!(connects_to(&out, 2).is_empty());
    assert!(connects_to(&out, 3).is_empty());
}

// ---- Relay ----

#[test]
fn offer_answer_and_candidate_are_relayed_with_the_sender_id() {
    let (mut h, _, _) = lobby_of_four(HubConfig::default(), true);
    let (id2, id3) = (h.id(2), h.id(3));
    let candidate = CandidatePayload {
        mid: "0".into(),
        index: 0,
        candidate: "candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host".into(),
    };
    // Host to a client, a client to the host (as id 1), a client to a client.
    h.send(1, &Message::offer(id2, "v=0 offer"));
    h.send(2, &Message::answer(1, "v=0 answer"));
    h.send(2, &Message::candidate(id3, &candidate));
    let out = h.drain();
    assert_eq!(messages_to(&out, 2), [Message::offer(1, "v=0 offer")]);
    assert_eq!(messages_to(&out, 1), [Message::answer(id2, "v=0 answer")]);
    assert_eq!(messages_to(&out, 3), [Message::candidate(id2, &candidate)]);
    assert!(messages_to(&out, 4).is_empty());
    assert_eq!(h.hub.stats().messages_relayed, 3);
}

#[test]
fn relayed_data_is_forwarded_as_the_literal_it_arrived_as() {
    let (mut h, _, _) = lobby_of_four(HubConfig::default(), true);
    let id2 = h.id(2);
    let literal = r#""v=0\r\na=\u0041 \"q\" \\ é \/""#;
    h.text(
        1,
        &format!(r#"{{ "data": {literal}, "type": 4, "id": {id2}, "x": 1 }}"#),
    );
    let out = h.drain();
    assert_eq!(
        out,
        [Transmit::Send {
            conn: 2,
            text: format!(r#"{{"type":4,"id":1,"data":{literal}}}"#),
        }]
    );
    assert_eq!(messages_to(&out, 2)[0].data, "v=0\r\na=A \"q\" \\ é /");
}

#[test]
fn relay_forwards_an_escaped_lone_surrogate_unchanged() {
    let (mut h, _, _) = lobby_of_four(HubConfig::default(), true);
    let id2 = h.id(2);
    h.text(1, &format!(r#"{{"type":6,"id":{id2},"data":"\ud800"}}"#));
    let out = h.drain();
    assert_eq!(
        out,
        [Transmit::Send {
            conn: 2,
            text: r#"{"type":6,"id":1,"data":"\ud800"}"#.to_owned(),
        }]
    );
}

#[test]
fn relay_is_allowed_between_clients_that_were_not_announced() {
    let config = HubConfig {
        announce_clients_to_each_other: false,
        ..HubConfig::default()
    };
    let (mut h, _, _) = lobby_of_four(config, false);
    let id3 = h.id(3);
    h.send(2, &Message::offer(id3, "x"));
    assert_eq!(messages_to(&h.drain(), 3), [Message::offer(h.id(2), "x")]);
}

#[test]
fn relay_to_an_unknown_id_is_invalid_destination() {
    let (mut h, _, _) = lobby_of_four(HubConfig::default(), true);
    let unused = (2..)
        .find(|id| ![h.id(2), h.id(3), h.id(4)].contains(id))
        .unwrap();
    h.send(2, &Message::offer(unused, "x"));
    assert_eq!(closes(&h.drain()), close_of(2, Error::InvalidDestination));
    h.send(3, &Message::offer(0, "x"));
    assert_eq!(closes(&h.drain()), close_of(3, Error::InvalidDestination));
}

#[test]
fn relay_to_oneself_is_invalid_destination() {
    let (mut h, _, _) = lobby_of_four(HubConfig::default(), true);
    let id3 = h.id(3);
    let c = CandidatePayload {
        mid: "0".into(),
        index: 0,
        candidate: "c".into(),
    };
    h.send(3, &Message::candidate(id3, &c));
    assert_eq!(closes(&h.drain()), close_of(3, Error::InvalidDestination));
    h.send(1, &Message::offer(1, "x"));
    assert_eq!(
        closes(&h.drain())[0],
        close_of(1, Error::InvalidDestination)[0]
    );
}

#[test]
fn relay_to_a_member_of_another_lobby_is_invalid_destination() {
    let mut h = Harness::new();
    let a = h.create(1, true);
    h.join(2, &a);
    let b = h.create(3, true);
    h.join(4, &b);
    let id4 = h.id(4);
    if id4 != h.id(2) {
        h.send(2, &Message::offer(id4, "x"));
        assert_eq!(closes(&h.drain()), close_of(2, Error::InvalidDestination));
    }
}

#[test]
fn relay_or_seal_before_joining_is_invalid_message_when_not_in_a_lobby() {
    let mut h = Harness::new();
    let name = h.create(1, true);
    for (conn, message) in [
        (2, Message::offer(1, "x")),
        (3, Message::answer(1, "x")),
        (4, Message::new(MessageType::Candidate, 1, "\n0\n0\nc")),
        (5, Message::seal()),
    ] {
        h.connect(conn);
        h.send(conn, &message);
        assert_eq!(closes(&h.drain()), close_of(conn, Error::NotInLobby));
        assert_eq!(
            Error::NotInLobby.reason(),
            "Invalid message when not in a lobby"
        );
    }
    assert_eq!(h.hub.lobby(&name).unwrap().members.len(), 1);
}

// ---- Sealing ----

#[test]
fn seal_by_the_host_is_broadcast_to_every_member() {
    let (mut h, name, _) = lobby_of_four(HubConfig::default(), true);
    h.send(1, &Message::seal());
    let out = h.drain();
    for conn in 1..=4 {
        assert_eq!(messages_to(&out, conn), [Message::seal()], "conn {conn}");
    }
    assert!(closes(&out).is_empty());
    assert!(h.hub.lobby(&name).unwrap().sealed);
}

#[test]
fn seal_by_a_client_closes_it_with_only_host_can_seal() {
    let (mut h, name, _) = lobby_of_four(HubConfig::default(), false);
    h.send(3, &Message::seal());
    let out = h.drain();
    assert_eq!(closes(&out), close_of(3, Error::OnlyHostCanSeal));
    assert!(!h.hub.lobby(&name).unwrap().sealed);
}

#[test]
fn join_after_seal_is_lobby_is_sealed() {
    let (mut h, name, _) = lobby_of_four(HubConfig::default(), true);
    h.send(1, &Message::seal());
    h.drain();
    let out = h.join(5, &name);
    assert_eq!(closes(&out), close_of(5, Error::LobbyIsSealed));
    assert!(messages_to(&out, 5).is_empty());
}

#[test]
fn sealed_lobby_closes_every_member_with_1000_seal_complete_after_the_timeout() {
    let (mut h, name, _) = lobby_of_four(HubConfig::default(), true);
    let sealed_at = h.now;
    h.send(1, &Message::seal());
    h.drain();
    assert_eq!(
        h.hub.poll_timeout(),
        Some(sealed_at + Duration::from_secs(10))
    );
    h.advance(Duration::from_millis(9_999));
    assert!(h.drain().is_empty());
    h.advance(Duration::from_millis(1));
    let out = h.drain();
    let expected: Vec<_> = (1..=4)
        .map(|c| (c, 1000, "Seal complete".to_owned()))
        .collect();
    assert_eq!(closes(&out), expected);
    assert_eq!(out.len(), 4, "nobody is told the host disconnected");
    assert!(h.hub.lobby(&name).is_none());
    assert_eq!(h.hub.lobby_count(), 0);
    assert_eq!(h.hub.poll_timeout(), None);
    for conn in 1..=4 {
        h.hub.disconnect(conn, h.now);
    }
    assert!(h.drain().is_empty());
    assert_eq!(h.hub.connection_count(), 0);
}

#[test]
fn a_second_seal_is_ignored_and_the_timer_keeps_running() {
    let (mut h, _, _) = lobby_of_four(HubConfig::default(), true);
    h.send(1, &Message::seal());
    h.drain();
    let due = h.hub.poll_timeout();
    h.advance(Duration::from_secs(5));
    h.send(1, &Message::seal());
    assert!(h.drain().is_empty());
    assert_eq!(h.hub.poll_timeout(), due);
}

#[test]
fn members_may_still_relay_and_leave_in_a_sealed_lobby() {
    let (mut h, _, _) = lobby_of_four(HubConfig::default(), true);
    h.send(1, &Message::seal());
    h.drain();
    let id2 = h.id(2);
    h.send(1, &Message::offer(id2, "late"));
    assert_eq!(messages_to(&h.drain(), 2), [Message::offer(1, "late")]);
    h.hub.disconnect(3, h.now);
    let out = h.drain();
    assert_eq!(messages_to(&out, 2).len(), 1);
    assert_eq!(messages_to(&out, 2)[0].kind, MessageType::PeerDisconnect);
}

// ---- Leaving ----

#[test]
fn host_leaving_closes_everyone_with_room_host_has_disconnected() {
    let (mut h, name, _) = lobby_of_four(HubConfig::default(), true);
    h.hub.disconnect(1, h.now);
    let out = h.drain();
    let expected: Vec<_> = (2..=4)
        .map(|c| (c, 4000, "Room host has disconnected".to_owned()))
        .collect();
    assert_eq!(closes(&out), expected);
    assert_eq!(out.len(), 3, "no PEER_DISCONNECT");
    assert!(h.hub.lobby(&name).is_none());
    assert_eq!(h.hub.lobby_of(2), None);
}

#[test]
fn host_closed_for_an_error_also_closes_everyone() {
    let (mut h, name, _) = lobby_of_four(HubConfig::default(), false);
    h.text(1, "garbage");
    let out = h.drain();
    let mut expected = close_of(1, Error::InvalidFormat);
    expected.extend((2..=4).map(|c| (c, 4000, "Room host has disconnected".to_owned())));
    assert_eq!(closes(&out), expected);
    assert!(h.hub.lobby(&name).is_none());
}

#[test]
fn host_leaving_a_sealed_lobby_cancels_the_seal_timer() {
    let (mut h, _, _) = lobby_of_four(HubConfig::default(), true);
    h.send(1, &Message::seal());
    h.drain();
    h.hub.disconnect(1, h.now);
    assert_eq!(closes(&h.drain()).len(), 3);
    assert_eq!(h.hub.poll_timeout(), None);
    h.advance(Duration::from_secs(20));
    assert!(h.drain().is_empty());
}

#[test]
fn member_leaving_gives_peer_disconnect_to_the_members_it_was_announced_to() {
    for (mesh, announce, told) in [
        (true, false, vec![1, 3, 4]),
        (false, true, vec![1, 3, 4]),
        (false, false, vec![1]),
    ] {
        let config = HubConfig {
            announce_clients_to_each_other: announce,
            ..HubConfig::default()
        };
        let (mut h, name, _) = lobby_of_four(config, mesh);
        let id2 = h.id(2);
        h.hub.disconnect(2, h.now);
        let out = h.drain();
        assert!(closes(&out).is_empty());
        for conn in [1, 3, 4] {
            let expected = if told.contains(&conn) {
                vec![Message::peer_disconnect(id2)]
            } else {
                vec![]
            };
            assert_eq!(
                messages_to(&out, conn),
                expected,
                "mesh={mesh} announce={announce} conn={conn}"
            );
        }
        assert_eq!(h.hub.lobby(&name).unwrap().members.len(), 3);
    }
}

#[test]
fn member_closed_for_an_error_gives_peer_disconnect() {
    let (mut h, _, _) = lobby_of_four(HubConfig::default(), true);
    let id3 = h.id(3);
    h.hub.receive_binary(3, h.now);
    let out = h.drain();
    assert_eq!(closes(&out), close_of(3, Error::InvalidTransferMode));
    for conn in [1, 2, 4] {
        assert_eq!(messages_to(&out, conn), [Message::peer_disconnect(id3)]);
    }
    // The Close comes before the notifications.
    assert!(matches!(out[0], Transmit::Close { conn: 3, .. }));
}

#[test]
fn a_freed_id_can_be_relayed_to_no_more() {
    let (mut h, _, _) = lobby_of_four(HubConfig::default(), true);
    let id2 = h.id(2);
    h.hub.disconnect(2, h.now);
    h.drain();
    h.send(1, &Message::offer(id2, "x"));
    assert_eq!(
        closes(&h.drain())[0],
        close_of(1, Error::InvalidDestination)[0]
    );
}

// ---- Closed connections ----

#[test]
fn nothing_is_sent_to_or_accepted_from_a_closed_connection() {
    let (mut h, _, _) = lobby_of_four(HubConfig::default(), true);
    let id2 = h.id(2);
    h.hub.receive_binary(2, h.now);
    h.drain();
    // Still connected at the transport level, but gone for the protocol.
    assert!(!h.hub.is_open(2));
    assert_eq!(h.hub.connection_count(), 4);
    h.send(2, &Message::offer(1, "x"));
    h.send(1, &Message::offer(id2, "x"));
    let out = h.drain();
    assert!(messages_to(&out, 2).is_empty());
    assert_eq!(
        closes(&out),
        [
            (1, 4000, "Invalid destination".to_owned()),
            (3, 4000, "Room host has disconnected".to_owned()),
            (4, 4000, "Room host has disconnected".to_owned())
        ]
    );
    h.hub.receive_binary(2, h.now);
    h.advance(Duration::from_secs(60));
    assert!(h.drain().is_empty());
}

#[test]
fn disconnect_is_idempotent_and_unknown_connections_are_ignored() {
    let mut h = Harness::new();
    let name = h.create(1, true);
    h.join(2, &name);
    h.hub.disconnect(2, h.now);
    assert_eq!(h.drain().len(), 1);
    h.hub.disconnect(2, h.now);
    h.hub.disconnect(99, h.now);
    h.text(99, "{}");
    h.hub.receive_binary(99, h.now);
    assert!(h.drain().is_empty());
    assert_eq!(h.hub.connection_count(), 1);
}

#[test]
fn connecting_a_known_connection_again_is_ignored() {
    let mut h = Harness::new();
    let name = h.create(1, true);
    h.connect(1);
    assert_eq!(h.hub.lobby_of(1), Some(name.as_str()));
    assert_eq!(h.hub.stats().connections_accepted, 1);
}

// ---- Limits ----

#[test]
fn max_peers_closes_one_more_connection_with_too_many_peers() {
    let mut h = Harness::with(HubConfig {
        max_peers: 2,
        ..HubConfig::default()
    });
    h.connect(1);
    h.connect(2);
    h.connect(3);
    assert_eq!(closes(&h.drain()), close_of(3, Error::TooManyPeers));
    assert_eq!(h.hub.connection_count(), 2);
    assert!(!h.hub.is_open(3));
    // A connection closed by the hub counts until the driver reports it gone.
    h.hub.receive_binary(2, h.now);
    h.drain();
    h.connect(4);
    assert_eq!(closes(&h.drain()), close_of(4, Error::TooManyPeers));
    h.hub.disconnect(2, h.now);
    h.connect(5);
    assert!(h.drain().is_empty());
    assert!(h.hub.is_open(5));
}

#[test]
fn max_lobbies_closes_the_creator_with_too_many_lobbies() {
    let mut h = Harness::with(HubConfig {
        max_lobbies: 2,
        ..HubConfig::default()
    });
    let first = h.create(1, true);
    h.create(2, true);
    h.connect(3);
    h.send(3, &Message::join("", true));
    assert_eq!(closes(&h.drain()), close_of(3, Error::TooManyLobbies));
    assert_eq!(
        Error::TooManyLobbies.reason(),
        "Too many lobbies open, disconnecting"
    );
    // Joining an existing lobby is still fine, and a closed lobby frees a slot.
    assert!(closes(&h.join(4, &first)).is_empty());
    h.hub.disconnect(1, h.now);
    h.drain();
    h.create(5, false);
    assert_eq!(h.hub.lobby_count(), 2);
}

#[test]
fn max_lobby_members_closes_the_extra_joiner_with_lobby_is_full() {
    let mut h = Harness::with(HubConfig {
        max_lobby_members: Some(2),
        ..HubConfig::default()
    });
    let name = h.create(1, true);
    assert!(closes(&h.join(2, &name)).is_empty());
    let out = h.join(3, &name);
    assert_eq!(closes(&out), close_of(3, Error::LobbyFull));
    assert!(messages_to(&out, 1).is_empty(), "the members hear nothing");
}

#[test]
fn no_join_within_the_join_timeout_closes_with_have_not_joined_lobby_yet() {
    let mut h = Harness::new();
    let start = h.now;
    h.connect(1);
    h.connect(2);
    assert_eq!(
        h.hub.poll_timeout(),
        Some(start + Duration::from_millis(1000))
    );
    h.advance(Duration::from_millis(500));
    h.send(2, &Message::join("", true));
    h.drain();
    h.advance(Duration::from_millis(499));
    assert!(h.drain().is_empty());
    h.advance(Duration::from_millis(1));
    assert_eq!(closes(&h.drain()), close_of(1, Error::JoinTimeout));
    assert_eq!(Error::JoinTimeout.reason(), "Have not joined lobby yet");
    assert_eq!(h.hub.poll_timeout(), None);
    assert!(h.hub.is_open(2));
}

#[test]
fn disconnecting_before_the_join_timeout_cancels_it() {
    let mut h = Harness::new();
    h.connect(1);
    h.hub.disconnect(1, h.now);
    assert_eq!(h.hub.poll_timeout(), None);
    // The same id connecting again gets a fresh timeout.
    h.advance(Duration::from_millis(900));
    h.connect(1);
    h.advance(Duration::from_millis(900));
    assert!(h.drain().is_empty());
}

#[test]
fn lobby_name_too_long_or_outside_the_alphabet_is_invalid_lobby_name() {
    for name in [
        "a".repeat(33),
        "has space".into(),
        "dot.ted".into(),
        "é".into(),
        "semi;colon".into(),
        "new\nline".into(),
        "lone\u{0}nul".into(),
    ] {
        let mut h = Harness::new();
        h.create(1, true);
        let out = h.join(2, &name);
        assert_eq!(
            closes(&out),
            close_of(2, Error::InvalidLobbyName),
            "{name:?}"
        );
    }
}

#[test]
fn valid_unknown_lobby_name_is_lobby_does_not_exists() {
    for name in ["a", "Az09_-", &"x".repeat(32)] {
        let mut h = Harness::new();
        let out = h.join(1, name);
        assert_eq!(
            closes(&out),
            close_of(1, Error::LobbyDoesNotExist),
            "{name}"
        );
        assert_eq!(Error::LobbyDoesNotExist.reason(), "Lobby does not exists");
    }
}

#[test]
fn max_lobby_name_len_below_the_generated_length_still_admits_generated_names() {
    let mut h = Harness::with(HubConfig {
        max_lobby_name_len: 4,
        ..HubConfig::default()
    });
    let name = h.create(1, true);
    assert!(closes(&h.join(2, &name)).is_empty());
    let out = h.join(3, &"a".repeat(GENERATED_NAME_LEN + 1));
    assert_eq!(closes(&out), close_of(3, Error::InvalidLobbyName));
}

#[test]
fn messages_over_the_rate_limit_close_with_too_many_messages() {
    let mut h = Harness::with(HubConfig {
        max_messages_per_second: 10,
        message_burst: 3,
        ..HubConfig::default()
    });
    let name = h.create(1, true); // 1 message
    h.join(2, &name);
    let id2 = h.id(2);
    h.send(1, &Message::offer(id2, "a"));
    h.send(1, &Message::offer(id2, "b"));
    assert!(closes(&h.drain()).is_empty());
    h.send(1, &Message::offer(id2, "c"));
    assert_eq!(
        closes(&h.drain())[0],
        close_of(1, Error::TooManyMessages)[0]
    );
}

#[test]
fn messages_at_the_sustained_rate_are_never_limited() {
    let mut h = Harness::with(HubConfig {
        max_messages_per_second: 100,
        message_burst: 1,
        ..HubConfig::default()
    });
    let name = h.create(1, true);
    h.join(2, &name);
    let id2 = h.id(2);
    for _ in 0..500 {
        h.advance(Duration::from_millis(10));
        h.send(
            1,
            &Message::candidate(
                id2,
                &CandidatePayload {
                    mid: "0".into(),
                    index: 0,
                    candidate: "c".into(),
                },
            ),
        );
    }
    let out = h.drain();
    assert!(closes(&out).is_empty());
    assert_eq!(messages_to(&out, 2).len(), 500);
}

#[test]
fn message_over_max_message_size_closes_with_1009() {
    let mut h = Harness::with(HubConfig {
        max_message_size: 100,
        ..HubConfig::default()
    });
    let name = h.create(1, true);
    h.join(2, &name);
    let id2 = h.id(2);
    let fits = Message::offer(
        id2,
        "x".repeat(100 - Message::offer(id2, "").to_json().len()),
    );
    assert_eq!(fits.to_json().len(), 100);
    h.send(1, &fits);
    assert!(closes(&h.drain()).is_empty());
    h.send(1, &Message::offer(id2, "x".repeat(100)));
    assert_eq!(
        closes(&h.drain())[0],
        (1, 1009, "Message too big".to_owned())
    );
}

// ---- Protocol errors ----

#[test]
fn binary_message_closes_with_invalid_transfer_mode() {
    let mut h = Harness::new();
    h.connect(1);
    h.hub.receive_binary(1, h.now);
    assert_eq!(
        closes(&h.drain()),
        [(1, 4000, "Invalid transfer mode, must be text".to_owned())]
    );
}

#[test]
fn malformed_message_closes_with_invalid_message_format() {
    for text in [
        "",
        "hello",
        "[0,0,\"\"]",
        r#"{"type":0,"id":0}"#,
        r#"{"type":0,"data":""}"#,
        r#"{"type":0,"id":0,"data":1}"#,
        r#"{"type":"0","id":0,"data":""}"#,
        r#"{"type":-1,"id":0,"data":""}"#,
        r#"{"type":0,"id":-1,"data":""}"#,
        r#"{"type":0,"id":4294967296,"data":""}"#,
        r#"{"type":0.5,"id":0,"data":""}"#,
    ] {
        let mut h = Harness::new();
        h.connect(1);
        h.text(1, text);
        assert_eq!(
            closes(&h.drain()),
            close_of(1, Error::InvalidFormat),
            "{text}"
        );
    }
}

#[test]
fn escaped_lone_surrogate_in_a_join_name_is_invalid_message_format() {
    let mut h = Harness::new();
    h.connect(1);
    h.text(1, r#"{"type":0,"id":0,"data":"\ud800"}"#);
    assert_eq!(closes(&h.drain()), close_of(1, Error::InvalidFormat));
}

#[test]
fn server_only_or_unknown_types_from_a_client_are_invalid_command() {
    for (joined, text) in [
        (false, r#"{"type":1,"id":0,"data":""}"#),
        (true, r#"{"type":1,"id":0,"data":""}"#),
        (true, r#"{"type":2,"id":1,"data":""}"#),
        (true, r#"{"type":3,"id":1,"data":""}"#),
        (false, r#"{"type":8,"id":0,"data":""}"#),
        (true, r#"{"type":42,"id":0,"data":""}"#),
    ] {
        let mut h = Harness::new();
        if joined {
            h.create(1, true);
        } else {
            h.connect(1);
        }
        h.text(1, text);
        assert_eq!(
            closes(&h.drain()),
            close_of(1, Error::InvalidCommand),
            "{text}"
        );
    }
}

#[test]
fn second_join_is_already_in_a_lobby() {
    let mut h = Harness::new();
    let name = h.create(1, true);
    h.send(1, &Message::join("", true));
    assert_eq!(closes(&h.drain()), close_of(1, Error::AlreadyInLobby));
    let other = h.create(2, true);
    h.join(3, &other);
    h.send(3, &Message::join(&*name, true));
    assert_eq!(closes(&h.drain()), close_of(3, Error::AlreadyInLobby));
}

// ---- Stats ----

#[test]
fn stats_count_connections_lobbies_relays_errors_and_closes() {
    let (mut h, _, _) = lobby_of_four(HubConfig::default(), true);
    h.connect(9);
    let id2 = h.id(2);
    h.send(1, &Message::offer(id2, "x"));
    h.hub.receive_binary(3, h.now);
    h.send(1, &Message::seal());
    h.drain();
    let s = h.hub.stats();
    assert_eq!((s.connections, s.waiting, s.closing), (5, 1, 1));
    assert_eq!((s.lobbies, s.sealed_lobbies, s.members), (1, 1, 3));
    assert_eq!(
        (s.connections_accepted, s.lobbies_created, s.joins),
        (5, 1, 4)
    );
    assert_eq!((s.messages_received, s.messages_relayed), (6, 1));
    let errors: Vec<_> = s.errors.iter().filter(|(_, n)| *n > 0).collect();
    assert_eq!(errors, [&(Error::InvalidTransferMode, 1)]);
    assert_eq!(s.errors.len(), Error::ALL.len());
    h.advance(Duration::from_secs(10));
    let s = h.hub.stats();
    let closes: Vec<_> = s.closes.iter().filter(|(_, n)| *n > 0).copied().collect();
    assert_eq!(
        closes,
        [
            (CloseReason::Error(Error::JoinTimeout), 1),
            (CloseReason::Error(Error::InvalidTransferMode), 1),
            (CloseReason::SealComplete, 3)
        ]
    );
    assert_eq!((s.lobbies, s.members, s.waiting, s.closing), (0, 0, 0, 5));
}

// ---- Property test ----

mod props {
    use super::*;
    use proptest::prelude::*;

    const CONNS: u64 = 10;

    /// One step of a session. Connections are named by a selector: for messages that only make
    /// sense from some connections (a JOIN from a waiting one, a relay from a member, a SEAL
    /// from a host) the selector usually picks among those, so sessions get far.
    #[derive(Clone, Debug)]
    enum Op {
        Connect(u64),
        Disconnect(u8),
        Binary(u8),
        /// Join: mostly an open lobby, else "" (create) or a made-up name.
        Join(u8, u8, bool),
        /// Relay of type 4..=6, mostly to another member of the sender's lobby.
        Relay(u8, u8, u8, String),
        Seal(u8),
        /// A message of any type and id.
        Any(u8, i64, i64, String),
        /// A valid message with characters changed, removed or inserted.
        Mutated(u8, u8, Vec<(u8, usize, char)>),
        Raw(u8, String),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let sel = any::<u8>;
        let mutation_char = prop_oneof![
            Just('{'),
            Just('}'),
            Just('"'),
            Just('\\'),
            Just(','),
            Just(':'),
            Just('1'),
            Just('-'),
            Just('.'),
            Just('e'),
            Just(' '),
            Just('\u{0}'),
            Just('é'),
            Just('['),
            any::<char>()
        ];
        prop_oneof![
            6 => (0..CONNS).prop_map(Op::Connect),
            1 => sel().prop_map(Op::Disconnect),
            1 => sel().prop_map(Op::Binary),
            8 => (sel(), any::<u8>(), any::<bool>()).prop_map(|(c, l, m)| Op::Join(c, l, m)),
            16 => (sel(), 4u8..7, any::<u8>(), prop_oneof![9 => "\\PC{0,12}", 1 => "x{150,250}"]).prop_map(|(c, t, d, s)| Op::Relay(c, t, d, s)),
            1 => sel().prop_map(Op::Seal),
            1 => (sel(), -2i64..10, prop_oneof![Just(0i64), Just(1), Just(-1), Just(i32::MAX as i64), Just(1 << 40), 0i64..5], ".{0,8}")
                .prop_map(|(c, t, i, s)| Op::Any(c, t, i, s)),
            1 => (sel(), any::<u8>(), proptest::collection::vec((0u8..3, any::<usize>(), mutation_char), 1..4))
                .prop_map(|(c, t, m)| Op::Mutated(c, t, m)),
            1 => (sel(), ".{0,40}").prop_map(|(c, s)| Op::Raw(c, s)),
            3 => prop_oneof![4 => 0u64..300, 1 => 0u64..1500].prop_map(Op::Advance),
        ]
    }

    fn config() -> impl Strategy<Value = HubConfig> {
        (
            2usize..12,
            1usize..4,
            proptest::option::of(1usize..6),
            any::<bool>(),
            3u32..30,
        )
            .prop_map(
                |(max_peers, max_lobbies, max_members, announce, burst)| HubConfig {
                    max_peers,
                    max_lobbies,
                    max_lobby_members: max_members,
                    join_timeout: Duration::from_millis(1000),
                    seal_close_timeout: Duration::from_millis(700),
                    max_lobby_name_len: 20,
                    max_message_size: 200,
                    max_messages_per_second: 20,
                    message_burst: burst,
                    announce_clients_to_each_other: announce,
                },
            )
    }

    /// Picks a connection with `sel`: one satisfying `want` seven times in eight when there
    /// is one, else any id the session uses.
    fn pick(hub: &Hub, sel: u8, want: impl Fn(ConnId, &Conn) -> bool) -> ConnId {
        let mut fit: Vec<ConnId> = hub
            .conns
            .iter()
            .filter(|(id, c)| want(**id, c))
            .map(|(id, _)| *id)
            .collect();
        fit.sort();
        if fit.is_empty() || sel.is_multiple_of(8) {
            (sel / 8) as u64 % CONNS
        } else {
            fit[(sel / 8) as usize % fit.len()]
        }
    }

    fn any_conn(hub: &Hub, sel: u8) -> ConnId {
        pick(hub, sel, |_, c| c.phase != Phase::Closed)
    }

    /// What the driver knows: which connections are open at the transport level, and which
    /// of those the hub closed.
    #[derive(Default)]
    struct Driver {
        connected: HashSet<ConnId>,
        closed: HashSet<ConnId>,
    }

    fn templates(name: &str, id: i32) -> Vec<String> {
        vec![
            Message::join(name, true).to_json(),
            Message::join("", false).to_json(),
            Message::offer(id, "v=0\r\n").to_json(),
            Message::candidate(
                id,
                &CandidatePayload {
                    mid: "0".into(),
                    index: 0,
                    candidate: "c".into(),
                },
            )
            .to_json(),
            Message::seal().to_json(),
        ]
    }

    fn mutate(text: &str, mutations: &[(u8, usize, char)]) -> String {
        let mut chars: Vec<char> = text.chars().collect();
        for &(kind, at, c) in mutations {
            let at = at % (chars.len() + 1);
            match kind {
                0 if at < chars.len() => chars[at] = c,
                1 if at < chars.len() => {
                    chars.remove(at);
                }
                _ => chars.insert(at, c),
            }
        }
        chars.into_iter().collect()
    }

    fn apply(hub: &mut Hub, driver: &mut Driver, now: &mut Instant, op: &Op) {
        let names: Vec<String> = {
            let mut n: Vec<String> = hub.lobby_names().map(str::to_owned).collect();
            n.sort();
            n
        };
        let member_ids = |hub: &Hub, conn: ConnId| -> Vec<i32> {
            hub.lobby_of(conn)
                .and_then(|name| hub.lobby(name))
                .map(|l| l.members.iter().map(|(_, id)| *id).collect())
                .unwrap_or_default()
        };
        match op {
            Op::Connect(c) => {
                // A driver never reuses an id the hub closed before reporting it gone.
                if !driver.closed.contains(c) {
                    driver.connected.insert(*c);
                    hub.connect(*c, *now);
                }
            }
            Op::Disconnect(sel) => {
                let c = pick(hub, *sel, |_, _| true);
                driver.connected.remove(&c);
                driver.closed.remove(&c);
                hub.disconnect(c, *now);
            }
            Op::Binary(sel) => hub.receive_binary(any_conn(hub, *sel), *now),
            Op::Join(sel, choice, mesh) => {
                let c = pick(hub, *sel, |_, c| c.phase == Phase::Waiting);
                let name = match choice % 20 {
                    0 => "NoSuchLobby".into(),
                    1 => "bad name!".into(),
                    2..=5 => String::new(),
                    _ if names.is_empty() => String::new(),
                    _ => names[(choice / 10) as usize % names.len()].clone(),
                };
                hub.receive_text(c, &Message::join(name, *mesh).to_json(), *now);
            }
            Op::Relay(sel, kind, dest, data) => {
                let c = pick(hub, *sel, |_, c| matches!(c.phase, Phase::Member(_)));
                let own = hub.peer_id_of(c);
                let ids: Vec<i32> = member_ids(hub, c)
                    .into_iter()
                    .filter(|id| Some(*id) != own)
                    .collect();
                let id = if dest % 8 == 0 {
                    [0, 1, 2, i32::MAX][*dest as usize / 8 % 4]
                } else if ids.is_empty() {
                    return; // alone: wait for someone to join
                } else {
                    ids[*dest as usize % ids.len()]
                };
                let kind = MessageType::from_code(*kind as i64).unwrap();
                hub.receive_text(c, &Message::new(kind, id, data.clone()).to_json(), *now);
            }
            Op::Seal(sel) => {
                let c = pick(hub, *sel, |id, c| match c.phase {
                    Phase::Member(key) => hub.lobbies[&key].host == id,
                    _ => false,
                });
                hub.receive_text(c, &Message::seal().to_json(), *now);
            }
            Op::Any(sel, t, i, s) => {
                let mut text = format!(r#"{{"type":{t},"id":{i},"data":"#);
                write_json_string(&mut text, s);
                text.push('}');
                hub.receive_text(any_conn(hub, *sel), &text, *now);
            }
            Op::Mutated(sel, t, m) => {
                let c = any_conn(hub, *sel);
                let ids = member_ids(hub, c);
                let id = ids.last().copied().unwrap_or(1);
                let name = names.first().cloned().unwrap_or_default();
                let all = templates(&name, id);
                let text = mutate(&all[*t as usize % all.len()], m);
                hub.receive_text(c, &text, *now);
            }
            Op::Raw(sel, s) => hub.receive_text(any_conn(hub, *sel), s, *now),
            Op::Advance(ms) => {
                // Meanwhile the transport has finished closing what the hub closed.
                for c in std::mem::take(&mut driver.closed) {
                    driver.connected.remove(&c);
                    hub.disconnect(c, *now);
                }
                *now += Duration::from_millis(*ms);
                hub.handle_timeout(*now);
                assert!(
                    hub.poll_timeout().is_none_or(|t| t > *now),
                    "a due timer was left"
                );
            }
        }
    }

    fn check_output(hub: &mut Hub, driver: &mut Driver) {
        while let Some(output) = hub.poll_transmit() {
            match output {
                Transmit::Send { conn, text } => {
                    assert!(
                        driver.connected.contains(&conn),
                        "send to unconnected {conn}"
                    );
                    assert!(
                        !driver.closed.contains(&conn),
                        "send to {conn} after its close"
                    );
                    Message::parse(&text).expect("the hub writes valid messages");
                }
                Transmit::Close { conn, .. } => {
                    assert!(driver.closed.insert(conn), "{conn} closed twice");
                }
            }
        }
    }

    fn check_invariants(hub: &Hub) {
        let config = &hub.config;
        assert!(hub.conns.len() <= config.max_peers);
        assert!(hub.lobbies.len() <= config.max_lobbies);
        assert_eq!(hub.names.len(), hub.lobbies.len());
        for (key, lobby) in &hub.lobbies {
            assert_eq!(hub.names.get(&lobby.name), Some(key));
            assert_eq!(
                lobby.members.first(),
                Some(&(lobby.host, 1)),
                "the host is first, as 1"
            );
            assert_eq!(lobby.ids.len(), lobby.members.len(), "ids are unique");
            if let Some(max) = config.max_lobby_members {
                assert!(lobby.members.len() <= max.max(1));
            }
            for &(conn, id) in &lobby.members {
                assert_eq!(lobby.ids.get(&id), Some(&conn));
                assert_eq!(id == 1, conn == lobby.host);
                assert!(id >= 1);
                let c = &hub.conns[&conn];
                assert_eq!(c.phase, Phase::Member(*key));
                assert_eq!(c.peer_id, id);
            }
            assert_eq!(lobby.seal_deadline.is_some(), lobby.sealed);
            if let Some(deadline) = lobby.seal_deadline {
                assert!(hub.timers.contains(&(deadline, Timer::Seal(*key))));
            }
        }
        for (conn, c) in &hub.conns {
            match c.phase {
                Phase::Waiting => {
                    let deadline = c
                        .join_deadline
                        .expect("a waiting connection has a deadline");
                    assert!(hub.timers.contains(&(deadline, Timer::Join(*conn))));
                }
                Phase::Member(key) => {
                    assert!(hub.lobbies[&key].members.iter().any(|(m, _)| m == conn));
                    assert!(c.join_deadline.is_none());
                }
                Phase::Closed => assert!(c.join_deadline.is_none()),
            }
        }
        for (at, timer) in &hub.timers {
            match timer {
                Timer::Join(conn) => assert_eq!(hub.conns[conn].join_deadline, Some(*at)),
                Timer::Seal(key) => assert_eq!(hub.lobbies[key].seal_deadline, Some(*at)),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn random_sessions_keep_every_invariant(
            config in config(),
            seed in any::<u64>(),
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            let mut hub = Hub::new(config, crate::random::Rng::seeded(seed));
            let mut driver = Driver::default();
            let mut now = Instant::now();
            for op in &ops {
                apply(&mut hub, &mut driver, &mut now, op);
                check_output(&mut hub, &mut driver);
                check_invariants(&hub);
            }
            // Everyone leaving empties the hub.
            for conn in 0..CONNS {
                hub.disconnect(conn, now);
                driver.connected.remove(&conn);
                driver.closed.remove(&conn);
                check_output(&mut hub, &mut driver);
                check_invariants(&hub);
            }
            prop_assert_eq!(hub.connection_count(), 0);
            prop_assert_eq!(hub.lobby_count(), 0);
            prop_assert_eq!(hub.poll_timeout(), None);
        }
    }
}
