//! The smallest netplay page: it joins a lobby mesh of the signaling server at
//! `ws://localhost:9080/` (`netplay serve`): the one named by the page's address
//! (`?lobby=NAME`), or a new one whose name it logs (`Lobby: NAME`). It says "hello friend!" on
//! the reliable channel to every peer that joins, and logs to the console who joins, who
//! leaves and what arrives, polling ten times a second. It is the counterpart of matchbox_socket's `simple` example,
//! built the same way in the size benchmark (docs/BENCHMARKS.md, "Browser build size").
//! Native builds compile to nothing.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;

use netplay::multiplayer::{Lobby, LobbyEvent, LobbyMode, MultiplayerPeer, PeerEvent};
use netplay::rtc::PeerConfig;
use wasm_bindgen::prelude::*;

thread_local! {
    static LOBBY: RefCell<Option<Lobby>> = const { RefCell::new(None) };
    /// The timer's handler, which lives as long as the page.
    static TICK: RefCell<Option<Closure<dyn FnMut()>>> = const { RefCell::new(None) };
}

fn log(text: &str) {
    web_sys::console::log_1(&text.into());
}

/// Connects and starts the page's loop.
#[wasm_bindgen(start)]
pub fn start() -> Result<(), JsValue> {
    let window = web_sys::window().ok_or("no window")?;
    let search = window.location().search()?;
    let name = search.strip_prefix("?lobby=").unwrap_or("");
    log("Connecting to the signaling server");
    let lobby = Lobby::connect(
        "ws://localhost:9080/",
        name,
        LobbyMode::Mesh,
        PeerConfig::default(),
    )
    .map_err(|e| JsValue::from_str(&e.to_string()))?;
    LOBBY.with(|l| *l.borrow_mut() = Some(lobby));
    let tick = Closure::<dyn FnMut()>::new(|| {
        LOBBY.with(|l| {
            if let Some(lobby) = l.borrow_mut().as_mut() {
                tick(lobby);
            }
        })
    });
    window.set_interval_with_callback_and_timeout_and_arguments_0(
        tick.as_ref().unchecked_ref(),
        100,
    )?;
    TICK.with(|t| *t.borrow_mut() = Some(tick));
    Ok(())
}

/// One round of the loop.
fn tick(lobby: &mut Lobby) {
    lobby.poll();
    while let Some(event) = lobby.poll_lobby_event() {
        if let LobbyEvent::Joined { lobby } = event {
            log(&format!("Lobby: {lobby}"));
        }
    }
    while let Some(event) = lobby.poll_event() {
        match event {
            PeerEvent::PeerConnected(id) => {
                log(&format!("Peer joined: {id}"));
                lobby.set_target_peer(id);
                if let Err(e) = lobby.put_packet(b"hello friend!") {
                    log(&format!("Not sent to {id}: {e}"));
                }
            }
            PeerEvent::PeerDisconnected(id) => log(&format!("Peer left: {id}")),
            _ => {}
        }
    }
    while let Some(packet) = lobby.get_packet() {
        let message = String::from_utf8_lossy(&packet.data);
        log(&format!("Message from {}: {message:?}", packet.from));
    }
}
