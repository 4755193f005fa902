//! A two-player GGRS peer-to-peer session over netplay's WebRTC multiplayer peers (feature
//! `ggrs`): both sides reach a confirmed frame with the same game state and checksums, and GGRS
//! reports no desync.
#![cfg(all(feature = "ggrs", feature = "webrtc"))]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ggrs::{
    Config, DesyncDetection, GgrsEvent, GgrsRequest, InputStatus, P2PSession, PlayerType,
    PredictRepeatLast, SessionBuilder, SessionState,
};
use netplay::multiplayer::{GgrsSocket, MultiplayerPeer, PeerEvent, WebRtcMultiplayerPeer};

use common::mp::{link, signal};

struct Game;

impl Config for Game {
    type Input = u8;
    type InputPredictor = PredictRepeatLast;
    type State = State;
    type Address = i32;
}

/// A game whose state depends on every input of every frame, in order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct State {
    frame: i32,
    hash: u64,
}

impl State {
    fn advance(&mut self, inputs: &[(u8, InputStatus)]) {
        for (input, _) in inputs {
            self.hash = self.hash.rotate_left(7).wrapping_mul(0x100_0000_01b3) ^ u64::from(*input);
        }
        self.frame += 1;
    }
}

struct Player {
    session: P2PSession<Game>,
    state: State,
    /// The checksum saved for each frame (the last save of a frame wins, as after a rollback).
    checksums: BTreeMap<i32, u128>,
    desyncs: usize,
}

impl Player {
    fn handle(&mut self, requests: Vec<GgrsRequest<Game>>) {
        for request in requests {
            match request {
                GgrsRequest::SaveGameState { cell, frame } => {
                    assert_eq!(self.state.frame, frame);
                    let checksum = u128::from(self.state.hash);
                    cell.save(frame, Some(self.state), Some(checksum));
                    self.checksums.insert(frame, checksum);
                }
                GgrsRequest::LoadGameState { cell, .. } => {
                    self.state = cell.load().expect("a saved state");
                }
                GgrsRequest::AdvanceFrame { inputs } => self.state.advance(&inputs),
            }
        }
    }
}

#[test]
fn two_players_reach_a_confirmed_frame_with_matching_checksums() {
    // Two mesh peers (1 and 2) connected over WebRTC on 127.0.0.1.
    let mut peers: Vec<WebRtcMultiplayerPeer> = [1, 2]
        .iter()
        .map(|&id| {
            let mut p = WebRtcMultiplayerPeer::new();
            p.create_mesh(id, &[]).unwrap();
            p
        })
        .collect();
    link(&mut peers, &[(0, 1)]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut connected = [false, false];
    while !connected.iter().all(|&c| c) {
        assert!(Instant::now() < deadline, "the peers did not connect");
        for (i, p) in peers.iter_mut().enumerate() {
            p.poll();
            while let Some(e) = p.poll_event() {
                connected[i] |= matches!(e, PeerEvent::PeerConnected(_));
            }
        }
        let (a, b) = peers.split_at_mut(1);
        signal(&mut a[0], &mut b[0]);
        std::thread::sleep(Duration::from_millis(1));
    }

    let mut players: Vec<Player> = peers
        .into_iter()
        .enumerate()
        .map(|(i, peer)| {
            let other = if i == 0 { 2 } else { 1 };
            let (local, remote) = if i == 0 { (0, 1) } else { (1, 0) };
            let session = SessionBuilder::<Game>::new()
                .with_desync_detection_mode(DesyncDetection::On { interval: 10 })
                .add_player(PlayerType::Local, local)
                .unwrap()
                .add_player(PlayerType::Remote(other), remote)
                .unwrap()
                .start_p2p_session(GgrsSocket::new(peer))
                .unwrap();
            Player {
                session,
                state: State::default(),
                checksums: BTreeMap::new(),
                desyncs: 0,
            }
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut frame_inputs = 0u32;
    while players.iter().any(|p| p.session.confirmed_frame() < 300) {
        assert!(Instant::now() < deadline, "no confirmed frame 300 in 30 s");
        for (i, p) in players.iter_mut().enumerate() {
            p.session.poll_remote_clients();
            for event in p.session.events() {
                if let GgrsEvent::DesyncDetected { .. } = event {
                    p.desyncs += 1;
                }
            }
            if p.session.current_state() != SessionState::Running {
                continue;
            }
            // Inputs that differ by player and frame, so that a lost or misordered input
            // changes the state.
            let input = (frame_inputs.wrapping_mul(31) as u8) ^ (i as u8 * 0x55);
            let handle = if i == 0 { 0 } else { 1 };
            p.session.add_local_input(handle, input).unwrap();
            match p.session.advance_frame() {
                Ok(requests) => p.handle(requests),
                Err(ggrs::GgrsError::PredictionThreshold) => {}
                Err(e) => panic!("advance_frame: {e}"),
            }
        }
        frame_inputs += 1;
        std::thread::sleep(Duration::from_millis(2));
    }

    let confirmed = players
        .iter()
        .map(|p| p.session.confirmed_frame())
        .min()
        .unwrap();
    let checked: Vec<i32> = (1..=confirmed)
        .filter(|f| players.iter().all(|p| p.checksums.contains_key(f)))
        .collect();
    assert!(
        checked.len() > 100,
        "too few frames to compare: {}",
        checked.len()
    );
    for f in &checked {
        assert_eq!(
            players[0].checksums[f], players[1].checksums[f],
            "frame {f} differs"
        );
    }
    assert_eq!(
        players[0].desyncs + players[1].desyncs,
        0,
        "GGRS saw a desync"
    );
}
