//! `WebSocketMultiplayerPeer` on 127.0.0.1: the id handshake byte for byte, admission, targets,
//! refusal, disconnection and timeouts.
//!
//! The wire format is Godot 4's `modules/websocket/websocket_multiplayer_peer.cpp` (commit
//! 054ded4a): in `_poll_server`, once a pending connection is open, the server sends the new
//! peer its `int32_t` id as the first message, `put_packet((const uint8_t *)&peer_id, 4)`, 4
//! bytes in host order, little-endian on every target Godot ships; in `_poll_client` a client
//! closes unless that first message is exactly 4 bytes holding an id of 2 or more; every later
//! message is the payload itself, one binary message, no header (`put_packet`), and
//! `get_max_packet_size` is `outbound_buffer_size - PROTO_SIZE` (9). Raw `WebSocketPeer`s stand in for the Godot side, so every byte
//! that crosses is checked here.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use netplay::multiplayer::{
    ConnectionStatus, Error, MultiplayerPeer, PeerEvent, WebSocketMultiplayerPeer,
};
use netplay::ws::{ReadyState, TcpServer, WebSocketPeer, WriteMode};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn server() -> (WebSocketMultiplayerPeer, String) {
    let mut s = WebSocketMultiplayerPeer::new();
    s.create_server(0, Some(LOCALHOST), None).unwrap();
    let url = format!("ws://127.0.0.1:{}", s.local_port());
    (s, url)
}

/// Polls everything until `done` holds (or 10 s pass, which fails the test).
fn until(
    peers: &mut [&mut WebSocketMultiplayerPeer],
    mut done: impl FnMut(&mut [&mut WebSocketMultiplayerPeer]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(peers) {
        assert!(Instant::now() < deadline, "timed out");
        for p in peers.iter_mut() {
            p.poll();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn events(p: &mut WebSocketMultiplayerPeer) -> Vec<PeerEvent> {
    std::iter::from_fn(|| p.poll_event()).collect()
}

/// A plain WebSocket server that accepts one connection: the Godot server of these tests.
struct RawServer {
    listener: TcpServer,
    ws: Option<WebSocketPeer>,
}

impl RawServer {
    fn new() -> RawServer {
        let mut listener = TcpServer::new();
        listener.listen("127.0.0.1:0".parse().unwrap()).unwrap();
        RawServer { listener, ws: None }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.listener.local_port())
    }

    fn poll(&mut self) {
        if self.ws.is_none() {
            if let Some(stream) = self.listener.take_connection() {
                let mut ws = WebSocketPeer::new();
                ws.accept_stream(stream, None).unwrap();
                self.ws = Some(ws);
            }
        }
        if let Some(ws) = &mut self.ws {
            ws.poll();
        }
    }

    fn open(&self) -> bool {
        self.ws
            .as_ref()
            .is_some_and(|w| w.ready_state() == ReadyState::Open)
    }
}

fn client_against_raw(
    first_message: &[u8],
) -> (WebSocketMultiplayerPeer, RawServer, Vec<PeerEvent>) {
    let mut raw = RawServer::new();
    let mut client = WebSocketMultiplayerPeer::new();
    client.set_handshake_timeout(Duration::from_millis(500));
    client.create_client(&raw.url(), None).unwrap();
    assert_eq!(client.connection_status(), ConnectionStatus::Connecting);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !raw.open() {
        assert!(Instant::now() < deadline);
        raw.poll();
        client.poll();
        std::thread::sleep(Duration::from_millis(1));
    }
    let ws = raw.ws.as_mut().unwrap();
    ws.send(first_message, WriteMode::Binary).unwrap();
    ws.send(b"after", WriteMode::Binary).unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.connection_status() == ConnectionStatus::Connecting {
        assert!(Instant::now() < deadline);
        raw.poll();
        client.poll();
        seen.extend(events(&mut client));
        std::thread::sleep(Duration::from_millis(1));
    }
    seen.extend(events(&mut client));
    (client, raw, seen)
}

#[test]
fn the_server_sends_a_new_peer_its_id_as_the_first_message_4_bytes_little_endian() {
    let (mut server, url) = server();
    assert_eq!(server.unique_id(), 1);
    assert_eq!(server.connection_status(), ConnectionStatus::Connected);
    let mut raw = WebSocketPeer::new();
    raw.connect_to_url(&url, None).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        assert!(Instant::now() < deadline);
        server.poll();
        raw.poll();
        if let Some(p) = raw.get_packet() {
            break p;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    assert!(!raw.was_string_packet(), "the id message is binary");
    assert_eq!(first.len(), 4);
    let id = i32::from_le_bytes(first[..4].try_into().unwrap());
    assert!(id >= 2, "a client id is 2 or more: {id}");
    assert_eq!(events(&mut server), vec![PeerEvent::PeerConnected(id)]);
    assert_eq!(server.peer_ids().collect::<Vec<_>>(), vec![id]);

    // Then payloads travel as they are, both ways.
    raw.send(b"\x01\x02hello", WriteMode::Binary).unwrap();
    server.set_target_peer(id);
    server.put_packet(b"to you").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut got_server, mut got_raw) = (None, None);
    while got_server.is_none() || got_raw.is_none() {
        assert!(Instant::now() < deadline);
        server.poll();
        raw.poll();
        if let Some(p) = server.get_packet() {
            got_server = Some(p);
        }
        if let Some(p) = raw.get_packet() {
            got_raw = Some((p, raw.was_string_packet()));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let p = got_server.unwrap();
    assert_eq!(
        (p.from, p.channel, &p.data[..]),
        (id, 0, &b"\x01\x02hello"[..])
    );
    assert_eq!(got_raw.unwrap(), (b"to you".to_vec(), false));
}

#[test]
fn a_client_takes_its_id_from_a_4_byte_message_and_sees_the_server_as_peer_1() {
    let id = 0x1234_5678_i32;
    let (mut client, mut raw, seen) = client_against_raw(&id.to_le_bytes());
    assert_eq!(client.connection_status(), ConnectionStatus::Connected);
    assert_eq!(client.unique_id(), id);
    assert_eq!(seen, vec![PeerEvent::PeerConnected(1)]);
    // The message behind the id message is a packet from the server.
    let deadline = Instant::now() + Duration::from_secs(10);
    let p = loop {
        assert!(Instant::now() < deadline);
        client.poll();
        raw.poll();
        if let Some(p) = client.get_packet() {
            break p;
        }
    };
    assert_eq!((p.from, &p.data[..]), (1, &b"after"[..]));
    // Whatever the target, a client sends to the server, payload only.
    client.set_target_peer(77);
    client.put_packet(b"up").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let got = loop {
        assert!(Instant::now() < deadline);
        client.poll();
        raw.poll();
        if let Some(p) = raw.ws.as_mut().unwrap().get_packet() {
            break p;
        }
    };
    assert_eq!(got, b"up");
}

#[test]
fn a_client_refuses_an_id_message_of_the_wrong_size_or_a_reserved_id() {
    for bad in [
        &[2u8, 0, 0][..],
        &[2, 0, 0, 0, 0][..],
        &1i32.to_le_bytes()[..],
        &0i32.to_le_bytes()[..],
        &(-5i32).to_le_bytes()[..],
        &[][..],
    ] {
        let (client, _raw, seen) = client_against_raw(bad);
        assert_eq!(
            client.connection_status(),
            ConnectionStatus::Disconnected,
            "{bad:?}"
        );
        assert_eq!(client.unique_id(), 0);
        assert!(seen.is_empty(), "{bad:?}: {seen:?}");
    }
}

#[test]
fn a_client_without_an_id_message_gives_up_after_the_handshake_timeout() {
    let mut raw = RawServer::new();
    let mut client = WebSocketMultiplayerPeer::new();
    client.set_handshake_timeout(Duration::from_millis(200));
    client.create_client(&raw.url(), None).unwrap();
    let start = Instant::now();
    while client.connection_status() == ConnectionStatus::Connecting {
        assert!(start.elapsed() < Duration::from_secs(5));
        raw.poll();
        client.poll();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(raw.open(), "the WebSocket itself was open");
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert_eq!(client.connection_status(), ConnectionStatus::Disconnected);
    assert!(client.poll_event().is_none());
}

#[test]
fn a_server_routes_by_target_broadcast_one_peer_and_all_but_one() {
    let (mut server, url) = server();
    let mut clients: Vec<WebSocketMultiplayerPeer> = (0..3)
        .map(|_| {
            let mut c = WebSocketMultiplayerPeer::new();
            c.create_client(&url, None).unwrap();
            c
        })
        .collect();
    {
        let [a, b, c] = &mut clients[..] else {
            unreachable!()
        };
        until(&mut [&mut server, a, b, c], |p| {
            p[1..]
                .iter()
                .all(|c| c.connection_status() == ConnectionStatus::Connected)
                && p[0].peer_ids().count() == 3
        });
    }
    let ids: Vec<i32> = clients.iter().map(|c| c.unique_id()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 3, "distinct ids: {ids:?}");
    assert_eq!(server.peer_ids().collect::<Vec<_>>(), sorted);

    let send = |server: &mut WebSocketMultiplayerPeer, target: i32, tag: u8| {
        server.set_target_peer(target);
        server.put_packet(&[tag]).unwrap();
    };
    send(&mut server, 0, b'B');
    send(&mut server, ids[1], b'O');
    send(&mut server, -ids[2], b'X');
    let mut got: Vec<Vec<u8>> = vec![Vec::new(); 3];
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.iter().map(Vec::len).sum::<usize>() < 6 {
        assert!(Instant::now() < deadline);
        server.poll();
        for (i, c) in clients.iter_mut().enumerate() {
            c.poll();
            while let Some(p) = c.get_packet() {
                assert_eq!(p.from, 1);
                got[i].extend(p.data);
            }
        }
    }
    assert_eq!(got, vec![b"BX".to_vec(), b"BOX".to_vec(), b"B".to_vec()]);
    server.set_target_peer(99);
    assert_eq!(server.put_packet(b"?"), Err(Error::UnknownPeer(99)));
}

#[test]
fn packets_above_the_outbound_buffer_less_9_bytes_are_refused() {
    let (mut server, _) = server();
    assert_eq!(server.max_packet_size(), 65535 - 9);
    let big = vec![0; 65535 - 8];
    assert_eq!(
        server.put_packet(&big),
        Err(Error::PacketTooLarge {
            size: 65535 - 8,
            max: 65535 - 9
        })
    );
}

#[test]
fn a_refusing_server_admits_nobody_until_it_stops_refusing() {
    let (mut server, url) = server();
    server.set_refuse_new_connections(true);
    let mut client = WebSocketMultiplayerPeer::new();
    client.set_handshake_timeout(Duration::from_millis(300));
    client.create_client(&url, None).unwrap();
    until(&mut [&mut server, &mut client], |p| {
        p[1].connection_status() == ConnectionStatus::Disconnected
    });
    assert!(events(&mut server).is_empty());
    assert_eq!(server.peer_ids().count(), 0);

    server.set_refuse_new_connections(false);
    let mut client = WebSocketMultiplayerPeer::new();
    client.create_client(&url, None).unwrap();
    until(&mut [&mut server, &mut client], |p| {
        p[1].connection_status() == ConnectionStatus::Connected
    });
}

#[test]
fn disconnecting_a_peer_tells_both_sides_unless_forced() {
    let (mut server, url) = server();
    let mut a = WebSocketMultiplayerPeer::new();
    let mut b = WebSocketMultiplayerPeer::new();
    a.create_client(&url, None).unwrap();
    b.create_client(&url, None).unwrap();
    until(&mut [&mut server, &mut a, &mut b], |p| {
        p[0].peer_ids().count() == 2
            && p[1].connection_status() == ConnectionStatus::Connected
            && p[2].connection_status() == ConnectionStatus::Connected
    });
    let (id_a, id_b) = (a.unique_id(), b.unique_id());
    events(&mut server);
    events(&mut a);
    events(&mut b);

    // Unforced: the connection closes properly; both sides hear of it.
    server.disconnect_peer(id_a, false);
    until(&mut [&mut server, &mut a], |p| {
        p[1].connection_status() == ConnectionStatus::Disconnected && p[0].peer_ids().count() == 1
    });
    assert_eq!(events(&mut server), vec![PeerEvent::PeerDisconnected(id_a)]);
    assert_eq!(events(&mut a), vec![PeerEvent::PeerDisconnected(1)]);

    // Forced: gone at once, no event on the server; the client still sees the close.
    server.disconnect_peer(id_b, true);
    assert_eq!(server.peer_ids().count(), 0);
    until(&mut [&mut server, &mut b], |p| {
        p[1].connection_status() == ConnectionStatus::Disconnected
    });
    assert!(events(&mut server).is_empty());
    assert_eq!(events(&mut b), vec![PeerEvent::PeerDisconnected(1)]);
}

#[test]
fn a_second_create_on_an_active_peer_is_refused_and_close_is_silent() {
    let (mut server, url) = server();
    assert_eq!(
        server.create_server(0, Some(LOCALHOST), None),
        Err(Error::AlreadyActive)
    );
    assert_eq!(server.create_client(&url, None), Err(Error::AlreadyActive));
    let mut client = WebSocketMultiplayerPeer::new();
    client.create_client(&url, None).unwrap();
    until(&mut [&mut server, &mut client], |p| {
        p[1].connection_status() == ConnectionStatus::Connected && p[0].peer_ids().count() == 1
    });
    events(&mut server);
    server.close();
    assert_eq!(server.connection_status(), ConnectionStatus::Disconnected);
    assert!(server.poll_event().is_none());
    // The server can start again after close.
    server.create_server(0, Some(LOCALHOST), None).unwrap();
}
