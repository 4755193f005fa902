//! The TURN client against a scripted server built from the same codec: one test per rule of
//! RFC 8656 the client follows, then garbage from the server.

use crate::time::{Duration, Instant};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use super::turn::{Transmit, TurnLimits, CHANNEL_REFRESH, PERMISSION_REFRESH};
use super::*;

const USER: &str = "alice";
const PASS: &str = "wonderland";
const REALM: &str = "netplay.test";

fn server_addr() -> SocketAddr {
    "192.0.2.1:3478".parse().unwrap()
}

fn client_addr() -> SocketAddr {
    "10.0.0.2:50000".parse().unwrap()
}

fn relayed_addr() -> SocketAddr {
    "192.0.2.1:49152".parse().unwrap()
}

fn peer() -> SocketAddr {
    "198.51.100.7:6000".parse().unwrap()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A TURN server that answers like RFC 8656 says, with knobs to misbehave.
struct FakeServer {
    key: Key,
    nonce: String,
    lifetime: u32,
    /// Answer the next authenticated request with 438 and a new nonce.
    stale_next: bool,
    /// Answer the next request of this method with this error code (signed).
    refuse: Option<(Method, u16)>,
    permissions: Vec<IpAddr>,
    channels: HashMap<u16, SocketAddr>,
    /// What the client relayed: (peer, data, came as ChannelData).
    relayed: Vec<(SocketAddr, Vec<u8>, bool)>,
    /// Every request, decoded.
    requests: Vec<Message>,
}

impl FakeServer {
    fn new() -> FakeServer {
        FakeServer {
            key: Key::long_term(USER, REALM, PASS),
            nonce: "nonce-1".into(),
            lifetime: 600,
            stale_next: false,
            refuse: None,
            permissions: Vec::new(),
            channels: HashMap::new(),
            relayed: Vec::new(),
            requests: Vec::new(),
        }
    }

    fn respond(&self, request: &Message, class: Class) -> Message {
        Message::new(
            MessageType::new(class, request.typ.method),
            request.transaction_id,
        )
    }

    fn error(&self, request: &Message, code: u16, reason: &str) -> Message {
        self.respond(request, Class::Error)
            .with(Attribute::ErrorCode(ErrorCode::new(code, reason)))
    }

    fn signed(&self, m: Message) -> Option<Vec<u8>> {
        Some(m.encode(Some(&self.key), true).unwrap())
    }

    fn challenge(&self, request: &Message, code: u16) -> Option<Vec<u8>> {
        let m = self
            .error(request, code, "try again")
            .with(Attribute::Realm(REALM.into()))
            .with(Attribute::Nonce(self.nonce.clone()));
        Some(m.encode(None, true).unwrap())
    }

    /// Handles one datagram from the client; returns the response, if any.
    fn handle(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        if classify(bytes) == PacketKind::ChannelData {
            let frame = ChannelData::decode(bytes).unwrap();
            let peer = self.channels[&frame.channel];
            self.relayed.push((peer, frame.data.to_vec(), true));
            return None;
        }
        let m = Message::decode(bytes).unwrap();
        if m.typ.class == Class::Indication {
            assert_eq!(m.typ.method, Method::Send);
            let peer = m.xor_peer_address().unwrap();
            self.relayed.push((peer, m.data().unwrap().to_vec(), false));
            return None;
        }
        assert_eq!(m.typ.class, Class::Request);
        self.requests.push(m.clone());
        if !m.has_integrity() {
            return self.challenge(&m, 401);
        }
        if m.username() != Some(USER)
            || m.realm() != Some(REALM)
            || !verify_integrity(bytes, &self.key)
        {
            return self.challenge(&m, 401);
        }
        if self.stale_next || m.nonce() != Some(self.nonce.as_str()) {
            self.stale_next = false;
            self.nonce = format!("{}x", self.nonce);
            return self.challenge(&m, 438);
        }
        if let Some((method, code)) = self.refuse {
            if method == m.typ.method {
                self.refuse = None;
                return self.signed(self.error(&m, code, "refused"));
            }
        }
        let ok = self.respond(&m, Class::Success);
        match m.typ.method {
            Method::Allocate => {
                assert_eq!(
                    m.get(AttributeType::REQUESTED_TRANSPORT),
                    Some(&Attribute::RequestedTransport(REQUESTED_TRANSPORT_UDP))
                );
                self.signed(
                    ok.with(Attribute::XorRelayedAddress(relayed_addr()))
                        .with(Attribute::Lifetime(self.lifetime))
                        .with(Attribute::XorMappedAddress(client_addr())),
                )
            }
            Method::Refresh => {
                let lifetime = m.lifetime().unwrap().min(self.lifetime);
                self.signed(ok.with(Attribute::Lifetime(lifetime)))
            }
            Method::CreatePermission => {
                self.permissions.push(m.xor_peer_address().unwrap().ip());
                self.signed(ok)
            }
            Method::ChannelBind => {
                let channel = m.channel_number().unwrap();
                assert!(CHANNEL_NUMBERS.contains(&channel));
                self.channels.insert(channel, m.xor_peer_address().unwrap());
                self.signed(ok)
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    /// A Data indication from `peer`.
    fn data_indication(&self, peer: SocketAddr, data: &[u8]) -> Vec<u8> {
        Message::indication(Method::Data)
            .with(Attribute::XorPeerAddress(peer))
            .with(Attribute::Data(data.to_vec()))
            .encode(None, true)
            .unwrap()
    }
}

/// Delivers the client's transmits to the server and the responses back until both are quiet;
/// returns what the client sent.
fn pump(client: &mut TurnClient, server: &mut FakeServer, now: Instant) -> Vec<Transmit> {
    let mut sent = Vec::new();
    while let Some(t) = client.poll_transmit() {
        assert_eq!(t.destination, server_addr());
        if let Some(response) = server.handle(&t.contents) {
            assert_eq!(
                client.handle_datagram(server_addr(), &response, now),
                Handled::Consumed
            );
        }
        sent.push(t);
    }
    sent
}

fn events(client: &mut TurnClient) -> Vec<TurnEvent> {
    std::iter::from_fn(|| client.poll_event()).collect()
}

fn fast_config() -> TurnConfig {
    TurnConfig {
        schedule: RetransmitSchedule {
            rto: Duration::from_millis(100),
            rc: 3,
            rm: 4,
        },
        ..TurnConfig::default()
    }
}

/// A client allocated on a fresh server at `t0`, its events drained.
fn allocated(t0: Instant) -> (TurnClient, FakeServer) {
    let mut server = FakeServer::new();
    let mut client = TurnClient::new(server_addr(), USER, PASS, t0);
    pump(&mut client, &mut server, t0);
    assert_eq!(client.state(), TurnState::Allocated);
    events(&mut client);
    (client, server)
}

#[test]
fn allocate_answers_the_401_challenge_with_long_term_credentials() {
    let t0 = Instant::now();
    let mut server = FakeServer::new();
    let mut client = TurnClient::new(server_addr(), USER, PASS, t0);
    assert_eq!(client.state(), TurnState::Allocating);

    // First attempt: no credentials, REQUESTED-TRANSPORT UDP.
    let first = client.poll_transmit().unwrap();
    assert!(client.poll_transmit().is_none());
    let request = Message::decode(&first.contents).unwrap();
    assert_eq!(
        request.typ,
        MessageType::new(Class::Request, Method::Allocate)
    );
    assert!(!request.has_integrity());
    assert_eq!(request.username(), None);
    let challenge = server.handle(&first.contents).unwrap();
    assert_eq!(
        client.handle_datagram(server_addr(), &challenge, t0),
        Handled::Consumed
    );
    assert_eq!(client.realm(), Some(REALM));

    // Second attempt: USERNAME, REALM, NONCE and MESSAGE-INTEGRITY under MD5(u:realm:p).
    let second = client.poll_transmit().unwrap();
    let request = Message::decode_verified(&second.contents, &Key::long_term(USER, REALM, PASS))
        .expect("signed with the long-term key");
    assert_eq!(request.username(), Some(USER));
    assert_eq!(request.realm(), Some(REALM));
    assert_eq!(request.nonce(), Some("nonce-1"));
    let success = server.handle(&second.contents).unwrap();
    assert_eq!(
        client.handle_datagram(server_addr(), &success, t0),
        Handled::Consumed
    );
    assert_eq!(
        events(&mut client),
        [TurnEvent::Allocated {
            relayed: relayed_addr(),
            mapped: Some(client_addr()),
            lifetime: secs(600),
        }]
    );
    assert_eq!(client.state(), TurnState::Allocated);
    assert_eq!(client.relayed_address(), Some(relayed_addr()));
    assert_eq!(client.mapped_address(), Some(client_addr()));
}

#[test]
fn wrong_password_fails_the_allocation_with_401() {
    let t0 = Instant::now();
    let mut server = FakeServer::new();
    let mut client = TurnClient::new(server_addr(), USER, "not the password", t0);
    pump(&mut client, &mut server, t0);
    assert_eq!(
        server.requests.len(),
        2,
        "one retry with credentials, no more"
    );
    let events = events(&mut client);
    let [TurnEvent::AllocationFailed(TurnFailure::Unauthenticated(e))] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(e.code, 401);
    assert_eq!(client.state(), TurnState::Failed);
    assert_eq!(client.poll_timeout(), None);
    assert_eq!(
        client.send_to(peer(), b"x", t0),
        Err(TurnError::Inactive(TurnState::Failed))
    );
}

#[test]
fn stale_nonce_438_retries_with_the_new_nonce() {
    let t0 = Instant::now();
    let (mut client, mut server) = allocated(t0);
    server.stale_next = true;
    client.create_permission(peer(), t0).unwrap();
    let sent = pump(&mut client, &mut server, t0);
    assert_eq!(sent.len(), 2);
    let retry = Message::decode(&sent[1].contents).unwrap();
    assert_eq!(retry.nonce(), Some("nonce-1x"));
    assert_ne!(
        retry.transaction_id,
        Message::decode(&sent[0].contents).unwrap().transaction_id
    );
    assert_eq!(
        events(&mut client),
        [TurnEvent::PermissionCreated { peer: peer().ip() }]
    );
}

#[test]
fn stale_nonce_forever_gives_up_with_438() {
    let t0 = Instant::now();
    let (mut client, mut server) = allocated(t0);
    client.create_permission(peer(), t0).unwrap();
    let mut rounds = 0;
    while let Some(t) = client.poll_transmit() {
        server.stale_next = true;
        let response = server.handle(&t.contents).unwrap();
        client.handle_datagram(server_addr(), &response, t0);
        rounds += 1;
    }
    assert_eq!(rounds, 4, "the first try and three retries");
    let events = events(&mut client);
    assert!(
        matches!(&events[..], [TurnEvent::PermissionFailed { reason, .. }] if reason.error_code() == Some(438)),
        "{events:?}"
    );
}

#[test]
fn refresh_goes_out_at_half_the_lifetime_and_keeps_the_allocation() {
    let t0 = Instant::now();
    let (mut client, mut server) = allocated(t0);
    assert_eq!(client.poll_timeout(), Some(t0 + secs(300)));
    client.handle_timeout(t0 + secs(299));
    assert!(client.poll_transmit().is_none());

    let t1 = t0 + secs(300);
    client.handle_timeout(t1);
    let sent = pump(&mut client, &mut server, t1);
    assert_eq!(sent.len(), 1);
    let refresh = Message::decode(&sent[0].contents).unwrap();
    assert_eq!(refresh.typ.method, Method::Refresh);
    assert_eq!(refresh.lifetime(), Some(600));
    assert!(refresh.has_integrity());
    assert_eq!(
        events(&mut client),
        [TurnEvent::Refreshed {
            lifetime: secs(600)
        }]
    );
    assert_eq!(client.poll_timeout(), Some(t1 + secs(300)));
}

#[test]
fn a_short_lifetime_is_refreshed_at_half_of_it() {
    let t0 = Instant::now();
    let mut server = FakeServer::new();
    server.lifetime = 90;
    let mut client = TurnClient::new(server_addr(), USER, PASS, t0);
    pump(&mut client, &mut server, t0);
    assert_eq!(client.poll_timeout(), Some(t0 + secs(45)));
}

#[test]
fn refused_refresh_expires_the_allocation() {
    let t0 = Instant::now();
    let (mut client, mut server) = allocated(t0);
    server.refuse = Some((Method::Refresh, ErrorCode::ALLOCATION_MISMATCH));
    let t1 = t0 + secs(300);
    client.handle_timeout(t1);
    pump(&mut client, &mut server, t1);
    assert_eq!(events(&mut client), [TurnEvent::Expired]);
    assert_eq!(client.state(), TurnState::Expired);
    assert_eq!(client.poll_timeout(), None);
}

#[test]
fn unanswered_refreshes_retry_until_the_lifetime_runs_out() {
    let t0 = Instant::now();
    let mut server = FakeServer::new();
    let mut client = TurnClient::with_config(server_addr(), USER, PASS, fast_config(), t0);
    pump(&mut client, &mut server, t0);
    events(&mut client);
    let expiry = t0 + secs(600);
    let mut refreshes = 0;
    let mut now = t0;
    while let Some(next) = client.poll_timeout() {
        now = next;
        client.handle_timeout(now);
        while let Some(t) = client.poll_transmit() {
            let m = Message::decode(&t.contents).unwrap();
            assert_eq!(m.typ.method, Method::Refresh);
            refreshes += 1; // lost
        }
    }
    assert_eq!(now, expiry);
    assert!(refreshes > 3, "{refreshes}");
    assert_eq!(events(&mut client), [TurnEvent::Expired]);
}

#[test]
fn create_permission_installs_the_peer_ip_and_refreshes_it_within_300_s() {
    let t0 = Instant::now();
    let (mut client, mut server) = allocated(t0);
    client.create_permission(peer(), t0).unwrap();
    // Another port of the same IP needs no second permission.
    let other_port = SocketAddr::new(peer().ip(), 7000);
    client.create_permission(other_port, t0).unwrap();
    let sent = pump(&mut client, &mut server, t0);
    assert_eq!(sent.len(), 1);
    let m = Message::decode(&sent[0].contents).unwrap();
    assert_eq!(m.typ.method, Method::CreatePermission);
    assert_eq!(m.xor_peer_address().map(|a| a.ip()), Some(peer().ip()));
    assert_eq!(server.permissions, [peer().ip()]);
    assert!(client.has_permission(peer().ip()));
    assert_eq!(
        events(&mut client),
        [TurnEvent::PermissionCreated { peer: peer().ip() }]
    );

    assert!(PERMISSION_REFRESH < secs(300));
    assert_eq!(client.poll_timeout(), Some(t0 + PERMISSION_REFRESH));
    let t1 = t0 + PERMISSION_REFRESH;
    client.handle_timeout(t1);
    let sent = pump(&mut client, &mut server, t1);
    assert_eq!(sent.len(), 1);
    assert_eq!(server.permissions, [peer().ip(), peer().ip()]);
    assert_eq!(events(&mut client), [], "refreshes are silent");
}

#[test]
fn refused_permission_is_reported_with_its_error_code() {
    let t0 = Instant::now();
    let (mut client, mut server) = allocated(t0);
    server.refuse = Some((Method::CreatePermission, ErrorCode::FORBIDDEN));
    client.create_permission(peer(), t0).unwrap();
    pump(&mut client, &mut server, t0);
    let events = events(&mut client);
    let [TurnEvent::PermissionFailed {
        peer: ip,
        reason: TurnFailure::Rejected(e),
    }] = events.as_slice()
    else {
        panic!("{events:?}");
    };
    assert_eq!((*ip, e.code), (peer().ip(), 403));
    assert!(!client.has_permission(peer().ip()));
}

#[test]
fn channel_bind_numbers_from_0x4000_and_switches_send_to_channel_data() {
    let t0 = Instant::now();
    let (mut client, mut server) = allocated(t0);

    // Before the binding: a Send indication, which also asks for the permission.
    client.send_to(peer(), b"early", t0).unwrap();
    let channel = client.bind_channel(peer(), t0).unwrap();
    assert_eq!(channel, 0x4000);
    assert_eq!(client.bind_channel(peer(), t0), Ok(0x4000));
    let second = SocketAddr::new(peer().ip(), 6001);
    assert_eq!(client.bind_channel(second, t0), Ok(0x4001));
    assert_eq!(
        client.channel(peer()),
        None,
        "not before the success response"
    );
    pump(&mut client, &mut server, t0);
    assert_eq!(
        events(&mut client),
        [
            TurnEvent::PermissionCreated { peer: peer().ip() },
            TurnEvent::ChannelBound {
                peer: peer(),
                channel: 0x4000
            },
            TurnEvent::ChannelBound {
                peer: second,
                channel: 0x4001
            },
        ]
    );
    assert_eq!(client.channel(peer()), Some(0x4000));

    client.send_to(peer(), b"late", t0).unwrap();
    let frame = client.poll_transmit().unwrap();
    assert_eq!(
        frame.contents,
        [0x40, 0x00, 0x00, 0x04, b'l', b'a', b't', b'e']
    );
    server.handle(&frame.contents);
    assert_eq!(
        server.relayed,
        [
            (peer(), b"early".to_vec(), false),
            (peer(), b"late".to_vec(), true)
        ]
    );

    // The binding is refreshed before its 600 s run out, the permission before its 300 s.
    assert!(CHANNEL_REFRESH < secs(600));
    let t1 = t0 + PERMISSION_REFRESH;
    client.handle_timeout(t1);
    let sent = pump(&mut client, &mut server, t1);
    assert_eq!(sent.len(), 1);
    let t2 = t0 + CHANNEL_REFRESH;
    client.handle_timeout(t2);
    let sent = pump(&mut client, &mut server, t2);
    let methods: Vec<Method> = sent
        .iter()
        .map(|t| Message::decode(&t.contents).unwrap().typ.method)
        .collect();
    // The allocation's refresh (at 300 s) and the permission's second (at 480 s) are due too.
    assert_eq!(
        methods,
        [
            Method::Refresh,
            Method::CreatePermission,
            Method::ChannelBind,
            Method::ChannelBind
        ]
    );
    assert_eq!(
        events(&mut client),
        [TurnEvent::Refreshed {
            lifetime: secs(600)
        }]
    );
}

#[test]
fn refused_channel_bind_falls_back_to_send_indications() {
    let t0 = Instant::now();
    let (mut client, mut server) = allocated(t0);
    server.refuse = Some((Method::ChannelBind, ErrorCode::BAD_REQUEST));
    client.bind_channel(peer(), t0).unwrap();
    pump(&mut client, &mut server, t0);
    let events = events(&mut client);
    assert!(
        events.iter().any(|e| matches!(e,
            TurnEvent::ChannelBindFailed { peer: p, reason } if *p == peer() && reason.error_code() == Some(400))),
        "{events:?}"
    );
    client.send_to(peer(), b"x", t0).unwrap();
    let t = client.poll_transmit().unwrap();
    assert_eq!(
        Message::decode(&t.contents).unwrap().typ,
        MessageType::new(Class::Indication, Method::Send)
    );
}

#[test]
fn data_indications_and_channel_data_are_delivered_as_data_events() {
    let t0 = Instant::now();
    let (mut client, mut server) = allocated(t0);
    client.bind_channel(peer(), t0).unwrap();
    pump(&mut client, &mut server, t0);
    events(&mut client);
    let indication = server.data_indication(peer(), b"via indication");
    assert_eq!(
        client.handle_datagram(server_addr(), &indication, t0),
        Handled::Consumed
    );
    let frame = ChannelData {
        channel: 0x4000,
        data: b"via channel",
    };
    for padded in [false, true] {
        let bytes = frame.encode(padded).unwrap();
        assert_eq!(
            client.handle_datagram(server_addr(), &bytes, t0),
            Handled::Consumed
        );
    }
    // An unbound channel is dropped.
    let stray = ChannelData {
        channel: 0x4ABC,
        data: b"?",
    };
    assert_eq!(
        client.handle_datagram(server_addr(), &stray.encode(false).unwrap(), t0),
        Handled::Dropped
    );
    assert_eq!(
        events(&mut client),
        [
            TurnEvent::Data {
                peer: peer(),
                data: b"via indication".to_vec()
            },
            TurnEvent::Data {
                peer: peer(),
                data: b"via channel".to_vec()
            },
            TurnEvent::Data {
                peer: peer(),
                data: b"via channel".to_vec()
            },
        ]
    );
}

#[test]
fn datagrams_from_other_sources_are_not_mine() {
    let t0 = Instant::now();
    let (mut client, server) = allocated(t0);
    let indication = server.data_indication(peer(), b"x");
    // The same bytes from a peer (an ICE check, DTLS) belong to someone else.
    assert_eq!(
        client.handle_datagram(peer(), &indication, t0),
        Handled::NotMine
    );
    // A STUN response from the server to a request this client did not send (a Binding
    // request of the caller's own) is not its either.
    let binding = Message::new(
        MessageType::new(Class::Success, Method::Binding),
        TransactionId([5; 12]),
    )
    .with(Attribute::XorMappedAddress(client_addr()))
    .encode(None, true)
    .unwrap();
    assert_eq!(
        client.handle_datagram(server_addr(), &binding, t0),
        Handled::NotMine
    );
    // DTLS from the server address is not TURN.
    assert_eq!(
        client.handle_datagram(server_addr(), &[22, 254, 253, 0], t0),
        Handled::NotMine
    );
    assert_eq!(events(&mut client), []);
}

#[test]
fn allocate_retransmits_on_the_schedule_then_fails_with_timeout() {
    let t0 = Instant::now();
    let mut client = TurnClient::with_config(server_addr(), USER, PASS, fast_config(), t0);
    let mut sends = Vec::new();
    let mut now = t0;
    loop {
        while let Some(t) = client.poll_transmit() {
            assert_eq!(
                Message::decode(&t.contents).unwrap().typ.method,
                Method::Allocate
            );
            sends.push((now - t0).as_millis());
        }
        let Some(next) = client.poll_timeout() else {
            break;
        };
        assert!(next > now);
        now = next;
        client.handle_timeout(now);
    }
    // RTO 100 ms, Rc 3, Rm 4: sends at 0, 100, 300 ms, gives up at 700 ms.
    assert_eq!(sends, [0, 100, 300]);
    assert_eq!(now - t0, Duration::from_millis(700));
    assert_eq!(
        events(&mut client),
        [TurnEvent::AllocationFailed(TurnFailure::Timeout)]
    );
    assert_eq!(client.state(), TurnState::Failed);
}

#[test]
fn responses_with_wrong_integrity_are_dropped_and_the_request_retransmits() {
    let t0 = Instant::now();
    let mut server = FakeServer::new();
    let mut client = TurnClient::with_config(server_addr(), USER, PASS, fast_config(), t0);
    // The challenge exchange.
    let first = client.poll_transmit().unwrap();
    let challenge = server.handle(&first.contents).unwrap();
    client.handle_datagram(server_addr(), &challenge, t0);
    let second = client.poll_transmit().unwrap();
    let request = Message::decode(&second.contents).unwrap();

    // A success signed with another key, and one not signed at all: both forged.
    let forged = Message::new(
        MessageType::new(Class::Success, Method::Allocate),
        request.transaction_id,
    )
    .with(Attribute::XorRelayedAddress(
        "203.0.113.66:1".parse().unwrap(),
    ))
    .with(Attribute::Lifetime(600));
    let wrong_key = forged
        .encode(Some(&Key::long_term(USER, REALM, "guess")), true)
        .unwrap();
    assert_eq!(
        client.handle_datagram(server_addr(), &wrong_key, t0),
        Handled::Dropped
    );
    let unsigned = forged.encode(None, true).unwrap();
    assert_eq!(
        client.handle_datagram(server_addr(), &unsigned, t0),
        Handled::Dropped
    );
    // A signed error other than 401/438 without integrity is dropped too.
    let unsigned_error = Message::new(
        MessageType::new(Class::Error, Method::Allocate),
        request.transaction_id,
    )
    .with(Attribute::ErrorCode(ErrorCode::new(403, "Forbidden")))
    .encode(None, true)
    .unwrap();
    assert_eq!(
        client.handle_datagram(server_addr(), &unsigned_error, t0),
        Handled::Dropped
    );
    assert_eq!(client.state(), TurnState::Allocating);
    assert_eq!(events(&mut client), []);

    // The request goes on retransmitting, and the real answer still counts.
    client.handle_timeout(t0 + Duration::from_millis(100));
    let retransmit = client.poll_transmit().unwrap();
    assert_eq!(retransmit.contents, second.contents);
    let success = server.handle(&retransmit.contents).unwrap();
    assert_eq!(
        client.handle_datagram(server_addr(), &success, t0),
        Handled::Consumed
    );
    assert_eq!(client.relayed_address(), Some(relayed_addr()));
    // A duplicate answer to the retransmission is recognised and dropped.
    assert_eq!(
        client.handle_datagram(server_addr(), &success, t0),
        Handled::Dropped
    );
}

#[test]
fn responses_must_carry_the_request_transaction_id_and_method() {
    let t0 = Instant::now();
    let mut server = FakeServer::new();
    let mut client = TurnClient::new(server_addr(), USER, PASS, t0);
    let first = client.poll_transmit().unwrap();
    let challenge = server.handle(&first.contents).unwrap();
    let mut other_id = challenge.clone();
    other_id[8] ^= 0xFF;
    // The FINGERPRINT no longer matches either; re-encode to keep only the ID wrong.
    let other_id = Message::decode(&challenge)
        .map(|mut m| {
            m.transaction_id = TransactionId(other_id[8..20].try_into().unwrap());
            m.encode(None, true).unwrap()
        })
        .unwrap();
    assert_eq!(
        client.handle_datagram(server_addr(), &other_id, t0),
        Handled::NotMine
    );
    let mut other_method = Message::decode(&challenge).unwrap();
    other_method.typ.method = Method::Refresh;
    assert_eq!(
        client.handle_datagram(server_addr(), &other_method.encode(None, true).unwrap(), t0),
        Handled::NotMine
    );
    assert!(client.poll_transmit().is_none(), "no credential retry yet");
    assert_eq!(
        client.handle_datagram(server_addr(), &challenge, t0),
        Handled::Consumed
    );
    assert!(client.poll_transmit().is_some());
}

#[test]
fn close_sends_refresh_with_lifetime_0_and_reports_closed() {
    let t0 = Instant::now();
    let (mut client, mut server) = allocated(t0);
    client.bind_channel(peer(), t0).unwrap();
    pump(&mut client, &mut server, t0);
    events(&mut client);
    client.close(t0);
    assert_eq!(client.state(), TurnState::Closing);
    assert_eq!(
        client.send_to(peer(), b"x", t0),
        Err(TurnError::Inactive(TurnState::Closing))
    );
    let sent = pump(&mut client, &mut server, t0);
    assert_eq!(sent.len(), 1);
    let m = Message::decode(&sent[0].contents).unwrap();
    assert_eq!(m.typ.method, Method::Refresh);
    assert_eq!(m.lifetime(), Some(0));
    assert_eq!(events(&mut client), [TurnEvent::Closed]);
    assert_eq!(client.state(), TurnState::Closed);
    assert_eq!(client.poll_timeout(), None);
}

#[test]
fn close_during_allocation_releases_the_allocation_once_granted() {
    let t0 = Instant::now();
    let mut server = FakeServer::new();
    let mut client = TurnClient::new(server_addr(), USER, PASS, t0);
    client.close(t0);
    let sent = pump(&mut client, &mut server, t0);
    let methods: Vec<(Method, Option<u32>)> = sent
        .iter()
        .map(|t| {
            let m = Message::decode(&t.contents).unwrap();
            (m.typ.method, m.lifetime())
        })
        .collect();
    assert_eq!(
        methods,
        [
            (Method::Allocate, None),
            (Method::Allocate, None),
            (Method::Refresh, Some(0))
        ]
    );
    assert_eq!(events(&mut client), [TurnEvent::Closed]);
}

#[test]
fn calls_before_allocation_or_to_another_family_are_refused() {
    let t0 = Instant::now();
    let mut client = TurnClient::new(server_addr(), USER, PASS, t0);
    assert_eq!(
        client.send_to(peer(), b"x", t0),
        Err(TurnError::NotAllocated)
    );
    assert_eq!(
        client.bind_channel(peer(), t0),
        Err(TurnError::NotAllocated)
    );
    let (mut client, _server) = allocated(t0);
    let v6: SocketAddr = "[2001:db8::1]:5000".parse().unwrap();
    assert_eq!(
        client.send_to(v6, b"x", t0),
        Err(TurnError::AddressFamily(v6))
    );
    assert!(matches!(
        client.send_to(peer(), &[0; 70_000], t0),
        Err(TurnError::Encode(_))
    ));
}

#[test]
fn every_queue_and_table_is_bounded() {
    let t0 = Instant::now();
    let mut server = FakeServer::new();
    let config = TurnConfig {
        limits: TurnLimits {
            permissions: 2,
            channels: 1,
            transactions: 8,
            transmits: 4,
            events: 8,
        },
        ..TurnConfig::default()
    };
    let mut client = TurnClient::with_config(server_addr(), USER, PASS, config, t0);
    pump(&mut client, &mut server, t0);
    events(&mut client);

    let peer_n = |n: u8| SocketAddr::from(([198, 51, 100, n], 5000));
    client.create_permission(peer_n(1), t0).unwrap();
    client.create_permission(peer_n(2), t0).unwrap();
    assert_eq!(
        client.create_permission(peer_n(3), t0),
        Err(TurnError::TooManyPermissions(2))
    );
    client.bind_channel(peer_n(1), t0).unwrap();
    assert_eq!(
        client.bind_channel(peer_n(2), t0),
        Err(TurnError::TooManyChannels(1))
    );
    // Three requests queued; one more datagram fills the queue.
    client.send_to(peer_n(1), b"a", t0).unwrap();
    assert_eq!(
        client.send_to(peer_n(1), b"b", t0),
        Err(TurnError::QueueFull(4))
    );
    pump(&mut client, &mut server, t0);
    events(&mut client);

    // Received data beyond the event limit is dropped and counted.
    let indication = server.data_indication(peer_n(1), b"d");
    for _ in 0..20 {
        client.handle_datagram(server_addr(), &indication, t0);
    }
    assert_eq!(events(&mut client).len(), 7);
    assert_eq!(client.dropped_data(), 13);
}

#[test]
fn garbage_from_the_server_is_dropped_in_every_state() {
    let t0 = Instant::now();
    let (mut client, _server) = allocated(t0);
    let garbage: [&[u8]; 8] = [
        &[],
        &[0],
        &[0x40, 0x00],
        &[0x40, 0x00, 0xFF, 0xFF, 1, 2],
        &[0x00, 0x17, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42],
        &[
            0x01, 0x01, 0x00, 0x04, 0x21, 0x12, 0xA4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
        &[0xFF; 64],
        &[
            0x00, 0x17, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        ],
    ];
    for g in garbage {
        let handled = client.handle_datagram(server_addr(), g, t0);
        assert_ne!(handled, Handled::Consumed, "{g:?}");
    }
    assert_eq!(events(&mut client), []);
    assert_eq!(client.state(), TurnState::Allocated);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Bytes that often pass the first checks: a STUN header with the cookie and a plausible
    /// type, or a ChannelData header on a bound channel, followed by anything.
    fn datagram() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            (
                prop_oneof![
                    Just(0x0017u16),
                    Just(0x0103),
                    Just(0x0113),
                    Just(0x0108),
                    any::<u16>()
                ],
                proptest::collection::vec(any::<u8>(), 0..120)
            )
                .prop_map(|(t, body)| {
                    let mut b = Vec::new();
                    b.extend_from_slice(&(t & 0x3FFF).to_be_bytes());
                    b.extend_from_slice(&((body.len() & !3) as u16).to_be_bytes());
                    b.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
                    b.extend_from_slice(&[1; 12]);
                    b.extend_from_slice(&body[..body.len() & !3]);
                    b
                }),
            proptest::collection::vec(any::<u8>(), 0..100).prop_map(|data| {
                let mut b = vec![0x40, 0x00];
                b.extend_from_slice(&(data.len() as u16).to_be_bytes());
                b.extend_from_slice(&data);
                b
            }),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_datagrams_never_panic_or_break_the_allocation(
            datagrams in proptest::collection::vec(datagram(), 1..20),
            allocating in any::<bool>(),
        ) {
            let t0 = Instant::now();
            let (mut client, mut server) = if allocating {
                (TurnClient::new(server_addr(), USER, PASS, t0), FakeServer::new())
            } else {
                let (mut c, mut s) = allocated(t0);
                c.bind_channel(peer(), t0).unwrap();
                pump(&mut c, &mut s, t0);
                (c, s)
            };
            let before = client.state();
            for d in &datagrams {
                client.handle_datagram(server_addr(), d, t0);
                client.handle_timeout(t0);
            }
            prop_assert_eq!(client.state(), before);
            // The client still works: it finishes allocating, or relays.
            pump(&mut client, &mut server, t0);
            prop_assert_eq!(client.state(), TurnState::Allocated);
        }
    }
}
