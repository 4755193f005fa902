//! The "local signaling example" of Godot's WebRTC page: two chat peers in one program, each
//! with a negotiated channel "chat" (id 1), and a small in-process signaling object that relays
//! session descriptions and ICE candidates between them. Gathers on 127.0.0.1 only.
//!
//! Run with `cargo run --example webrtc_local_signaling`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use netplay::rtc::{
    ChannelId, DataChannelOptions, Event, PeerConfig, PeerConnection, ReadyState, SdpKind,
};

/// What the signaling object carries to a peer.
enum Signal {
    /// The peer is the first of the pair: it makes the offer.
    CreateOffer,
    Session {
        kind: SdpKind,
        sdp: String,
    },
    Candidate {
        mid: String,
        index: u32,
        candidate: String,
    },
}

/// The local signaling server: two registered peers and one queue for each (Godot's
/// `Signaling` autoload).
#[derive(Default)]
struct LocalSignaling {
    peers: Vec<String>,
    queues: [VecDeque<Signal>; 2],
}

impl LocalSignaling {
    fn register(&mut self, path: &str) {
        assert!(
            self.peers.len() < 2,
            "the local signaling server pairs two peers"
        );
        self.peers.push(path.to_owned());
        if self.peers.len() == 2 {
            self.queues[0].push_back(Signal::CreateOffer);
        }
    }

    fn other(&self, path: &str) -> usize {
        let me = self
            .peers
            .iter()
            .position(|p| p == path)
            .expect("registered");
        1 - me
    }

    fn send_session(&mut self, path: &str, kind: SdpKind, sdp: String) {
        let other = self.other(path);
        self.queues[other].push_back(Signal::Session { kind, sdp });
    }

    fn send_candidate(&mut self, path: &str, mid: String, index: u32, candidate: String) {
        let other = self.other(path);
        self.queues[other].push_back(Signal::Candidate {
            mid,
            index,
            candidate,
        });
    }

    fn receive(&mut self, path: &str) -> Option<Signal> {
        let me = 1 - self.other(path);
        self.queues[me].pop_front()
    }
}

/// An example peer-to-peer chat client (Godot's `chat.gd`).
struct Chat {
    path: String,
    peer: PeerConnection,
    channel: ChannelId,
    received: Vec<String>,
}

impl Chat {
    fn new(path: &str, signaling: &mut LocalSignaling) -> netplay::rtc::Result<Chat> {
        let mut peer = PeerConnection::new(PeerConfig::loopback())?;
        let channel = peer.create_data_channel("chat", DataChannelOptions::negotiated(1))?;
        signaling.register(path);
        Ok(Chat {
            path: path.to_owned(),
            peer,
            channel,
            received: Vec::new(),
        })
    }

    /// Godot's `_process`: poll, relay what the peer created, apply what the other sent, and
    /// print the messages.
    fn process(&mut self, signaling: &mut LocalSignaling) -> netplay::rtc::Result<()> {
        self.peer.poll();
        while let Some(event) = self.peer.poll_event() {
            match event {
                Event::SessionDescriptionCreated { kind, sdp } => {
                    self.peer.set_local_description(kind, &sdp)?;
                    signaling.send_session(&self.path, kind, sdp);
                }
                Event::IceCandidateCreated {
                    mid,
                    index,
                    candidate,
                } => signaling.send_candidate(&self.path, mid, index, candidate),
                _ => {}
            }
        }
        while let Some(signal) = signaling.receive(&self.path) {
            match signal {
                Signal::CreateOffer => self.peer.create_offer()?,
                Signal::Session { kind, sdp } => self.peer.set_remote_description(kind, &sdp)?,
                Signal::Candidate {
                    mid,
                    index,
                    candidate,
                } => self.peer.add_ice_candidate(&mid, index, &candidate)?,
            }
        }
        let mut channel = self.peer.channel(self.channel).expect("channel exists");
        if channel.ready_state() == ReadyState::Open {
            while let Some(packet) = channel.get_packet() {
                let text = String::from_utf8_lossy(&packet).into_owned();
                println!("{} received: {text}", self.path);
                self.received.push(text);
            }
        }
        Ok(())
    }

    fn is_open(&mut self) -> bool {
        let channel = self.peer.channel(self.channel).expect("channel exists");
        channel.ready_state() == ReadyState::Open
    }

    fn send_message(&mut self, message: &str) -> netplay::rtc::Result<()> {
        let mut channel = self.peer.channel(self.channel).expect("channel exists");
        channel.put_packet(message.as_bytes())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut signaling = LocalSignaling::default();
    let mut p1 = Chat::new("/root/main/Chat1", &mut signaling)?;
    let mut p2 = Chat::new("/root/main/Chat2", &mut signaling)?;

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut step = 0;
    while p1.received.is_empty() || p2.received.is_empty() {
        if Instant::now() > deadline {
            return Err("the chat did not complete within 10 s".into());
        }
        p1.process(&mut signaling)?;
        p2.process(&mut signaling)?;
        if step == 0 && p1.is_open() {
            p1.send_message(&format!("Hi from {}", p1.path))?;
            step = 1;
        }
        if step == 1 && !p2.received.is_empty() && p2.is_open() {
            p2.send_message(&format!("Hi from {}", p2.path))?;
            step = 2;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}
