//! The demo page of `netplay serve`, written in Rust and built for the browser: every tab is a
//! coloured dot that follows the mouse (or the arrow keys), in one lobby mesh with a chat.
//!
//! It is a game's networking as netplay means it to be written: a [`Lobby`] (the signaling
//! server of the page's own address) under Godot's `SceneMultiplayer`, polled from the page's
//! loop. Positions go 60 times a second on the unreliable channel (9 bytes: `0xFF`, then x and
//! y as little-endian `f32`; the leading byte is never UTF-8, so `netplay chat` skips them),
//! chat lines on the reliable channel as plain UTF-8 (what `netplay chat` sends and prints).
//! `/` creates a lobby and turns the address into `/?lobby=NAME`, the invitation;
//! `/?lobby=NAME` joins it; `/?server` creates a lobby whose creator relays.
//!
//! The page (`web/index.html`) holds the elements: `#status` (with `data-lobby` and `data-id`
//! once joined), `#invite`, `#peers` (an `li` per peer, with `data-id`, `data-x`, `data-y`),
//! the canvas `#field`, `#chat-input` (Enter sends) and `#chat-log` (a line `ID: text` per
//! message). Native builds compile to nothing.
//!
//! [`Lobby`]: netplay::multiplayer::Lobby

#[cfg(target_arch = "wasm32")]
mod page;

#[cfg(target_arch = "wasm32")]
pub use page::start;
