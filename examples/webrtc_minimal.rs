//! The "minimal connection example" of Godot's WebRTC page: two peers in the same program,
//! a negotiated channel "chat" with id 1 on each, descriptions and candidates handed straight
//! from one peer to the other. Gathers on 127.0.0.1 only.
//!
//! Run with `cargo run --example webrtc_minimal`.

use std::time::{Duration, Instant};

use netplay::rtc::{DataChannelOptions, Event, PeerConfig, PeerConnection, ReadyState};

/// Applies on `to` what `from` created: Godot's signal connections of the example.
fn relay(from: &mut PeerConnection, to: &mut PeerConnection) -> netplay::rtc::Result<()> {
    while let Some(event) = from.poll_event() {
        match event {
            Event::SessionDescriptionCreated { kind, sdp } => {
                from.set_local_description(kind, &sdp)?;
                to.set_remote_description(kind, &sdp)?;
            }
            Event::IceCandidateCreated {
                mid,
                index,
                candidate,
            } => to.add_ice_candidate(&mid, index, &candidate)?,
            _ => {}
        }
    }
    Ok(())
}

/// Prints every message waiting on `channel` of `peer`.
fn print_received(
    name: &str,
    peer: &mut PeerConnection,
    channel: netplay::rtc::ChannelId,
) -> usize {
    let mut ch = peer.channel(channel).expect("channel exists");
    let mut count = 0;
    if ch.ready_state() == ReadyState::Open {
        while let Some(packet) = ch.get_packet() {
            println!("{name} received: {}", String::from_utf8_lossy(&packet));
            count += 1;
        }
    }
    count
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let mut p1 = PeerConnection::new(PeerConfig::loopback())?;
    let mut p2 = PeerConnection::new(PeerConfig::loopback())?;
    let ch1 = p1.create_data_channel("chat", DataChannelOptions::negotiated(1))?;
    let ch2 = p2.create_data_channel("chat", DataChannelOptions::negotiated(1))?;
    p1.create_offer()?;
    let offered = Instant::now();

    let deadline = start + Duration::from_secs(10);
    let (mut p1_sent, mut p2_sent, mut received) = (false, false, 0);
    while received < 2 {
        if Instant::now() > deadline {
            return Err("the channel did not carry both messages within 10 s".into());
        }
        p1.poll();
        p2.poll();
        relay(&mut p1, &mut p2)?;
        relay(&mut p2, &mut p1)?;

        if !p1_sent && p1.channel(ch1).unwrap().ready_state() == ReadyState::Open {
            println!(
                "channel open {:.1} ms after create_offer ({:.1} ms after start)",
                offered.elapsed().as_secs_f64() * 1e3,
                start.elapsed().as_secs_f64() * 1e3
            );
            p1.channel(ch1).unwrap().put_packet(b"Hi from P1")?;
            p1_sent = true;
        }
        received += print_received("P2", &mut p2, ch2);
        if p1_sent && !p2_sent && received > 0 {
            p2.channel(ch2).unwrap().put_packet(b"Hi from P2")?;
            p2_sent = true;
        }
        received += print_received("P1", &mut p1, ch1);
        std::thread::sleep(Duration::from_millis(1));
    }
    p1.close();
    p2.close();
    Ok(())
}
