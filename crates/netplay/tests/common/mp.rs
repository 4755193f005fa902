//! Multiplayer peers of the WebRTC kind with their signaling carried in memory.

use netplay::multiplayer::{MultiplayerPeer, WebRtcMultiplayerPeer};
use netplay::rtc::{Event, PeerConfig, PeerConnection};

/// Carries descriptions and candidates from `from`'s connection for `to` to `to`'s
/// connection for `from`.
pub(crate) fn signal_one(from: &mut WebRtcMultiplayerPeer, to: &mut WebRtcMultiplayerPeer) {
    let (from_id, to_id) = (from.unique_id(), to.unique_id());
    let Some(pc) = from.get_peer_mut(to_id) else {
        return;
    };
    let mut out = Vec::new();
    while let Some(event) = pc.poll_event() {
        match event {
            Event::SessionDescriptionCreated { kind, sdp } => {
                pc.set_local_description(kind, &sdp).unwrap();
                out.push(Event::SessionDescriptionCreated { kind, sdp });
            }
            e @ Event::IceCandidateCreated { .. } => out.push(e),
            _ => {}
        }
    }
    let Some(remote) = to.get_peer_mut(from_id) else {
        return;
    };
    for event in out {
        match event {
            Event::SessionDescriptionCreated { kind, sdp } => {
                remote.set_remote_description(kind, &sdp).unwrap()
            }
            Event::IceCandidateCreated {
                mid,
                index,
                candidate,
            } => remote.add_ice_candidate(&mid, index, &candidate).unwrap(),
            _ => {}
        }
    }
}

/// Signaling both ways between `a` and `b`.
pub(crate) fn signal(a: &mut WebRtcMultiplayerPeer, b: &mut WebRtcMultiplayerPeer) {
    signal_one(a, b);
    signal_one(b, a);
}

/// Adds each peer to each other (as `pairs` says) with Godot's demo rule for who offers.
pub(crate) fn link(peers: &mut [WebRtcMultiplayerPeer], pairs: &[(usize, usize)]) {
    for &(i, j) in pairs {
        let (id_i, id_j) = (peers[i].unique_id(), peers[j].unique_id());
        peers[i]
            .add_peer(
                PeerConnection::new(PeerConfig::loopback()).unwrap(),
                id_j,
                1,
            )
            .unwrap();
        peers[j]
            .add_peer(
                PeerConnection::new(PeerConfig::loopback()).unwrap(),
                id_i,
                1,
            )
            .unwrap();
        let offerer = if id_i > id_j { i } else { j };
        let other = if offerer == i { id_j } else { id_i };
        peers[offerer]
            .get_peer_mut(other)
            .unwrap()
            .create_offer()
            .unwrap();
    }
}
