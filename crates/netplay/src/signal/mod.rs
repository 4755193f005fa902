//! WebRTC signaling: the lobby server of Godot's `webrtc_signaling` demo, wire-compatible with
//! its reference servers (Node and GDScript) and clients.
//!
//! Peers that want to open WebRTC connections to each other meet in a *lobby* on the signaling
//! server and exchange their session descriptions and ICE candidates through it. This module is
//! the sans-IO core of that server: it owns the wire format ([`Message`], [`CandidatePayload`]),
//! the lobbies, peer ids, relaying, sealing, limits and timeouts ([`Hub`]). It has no sockets,
//! reads no clock and starts no thread; a WebSocket server drives it with one [`ConnId`] per
//! connection, and an in-process signaling can drive it with made-up ones.
//!
//! # The protocol
//!
//! Every message is a WebSocket text message holding `{"type": int, "id": int, "data": string}`
//! (a binary message closes the connection with 4000 "Invalid transfer mode, must be text"):
//!
//! | type | name | direction | id | data |
//! |---|---|---|---|---|
//! | 0 | JOIN | C→S | 0: mesh lobby, else server/client | lobby name; `""` creates a lobby |
//! | 0 | JOIN | S→C | 0 | the lobby name, after ID and the PEER_CONNECTs |
//! | 1 | ID | S→C | your id; the host's is 1 | `"true"` in a mesh lobby, else `""` |
//! | 2 | PEER_CONNECT | S→C | a peer in the lobby | `""` |
//! | 3 | PEER_DISCONNECT | S→C | a peer that left | `""` |
//! | 4, 5 | OFFER, ANSWER | C→S→C | to the server: the destination; from it: the sender | SDP |
//! | 6 | CANDIDATE | C→S→C | as OFFER | `"\n<mid>\n<mline index>\n<candidate>"` |
//! | 7 | SEAL | C→S (host), S→C (all) | 0 | `""` |
//!
//! Every protocol error closes the connection with 4000 and a reason the client can show
//! ([`Error::reason`]). A sealed lobby accepts no more joins, and after
//! [`HubConfig::seal_close_timeout`] all its members are closed with 1000 "Seal complete". When
//! the host leaves, the other members are closed with 4000 "Room host has disconnected".
//!
//! The [`hub`] module documentation lists what this implementation decides where the reference
//! servers are silent or disagree.
//!
//! # Driving a hub
//!
//! ```
//! use std::time::Instant;
//! use netplay::random::Rng;
//! use netplay::signal::{Hub, HubConfig, Message, Transmit};
//!
//! let mut hub = Hub::new(HubConfig::default(), Rng::os());
//! let now = Instant::now();
//! hub.connect(1, now);
//! hub.receive_text(1, &Message::join("", true).to_json(), now);
//! while let Some(output) = hub.poll_transmit() {
//!     match output {
//!         Transmit::Send { conn, text } => println!("to {conn}: {text}"),
//!         Transmit::Close { conn, code, reason } => println!("close {conn}: {code} {reason}"),
//!     }
//! }
//! // Call `hub.handle_timeout(now)` whenever `hub.poll_timeout()` is due.
//! assert_eq!(hub.peer_id_of(1), Some(1));
//! ```

mod client;
mod error;
pub mod hub;
mod json;
mod message;
mod rate;
mod ws_client;

pub use client::{ClientEvent, LocalClient, LocalSignaling, Session, Signaling};
pub use error::{CloseReason, Error};
pub use hub::{ConnId, Hub, HubConfig, HubStats, LobbyInfo, Transmit, GENERATED_NAME_LEN};
pub use message::{CandidatePayload, Message, MessageType};
pub use ws_client::Client;
