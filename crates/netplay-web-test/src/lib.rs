//! The browser side of netplay's tests: a [`Harness`] that a page (`www/index.html`) drives
//! with text commands and polls for text reports, so that a test in Node (playwright-core and
//! headless Chromium, `tests/interop/node/wasm_page.js`) can run netplay's web platform
//! against native peers. It owns nothing of the library: every command is a plain call of
//! netplay's public API, as a game in the browser would make it.
//!
//! Commands (one line each):
//!
//! * `ws connect URL [protocols=A,B] [inbound=N] [outbound=N] [queue=N]`
//! * `ws text TEXT`, `ws binary HEX` (`-`: empty), `ws big N` (N pattern bytes; the echo is compared)
//! * `ws close CODE [REASON]`, `ws buffered`, `ws drop`, `ws hold on|off` (stop or go on
//!   reading received messages), `ws churn N URL` (N connections opened and dropped)
//! * `rtc churn N` (N peer connections made, offered and dropped)
//! * `rtc start offer|answer CHANNELS` (a peer for `netplay rtc-echo`: `CHANNELS` is the
//!   `channels` line of docs/PROTOCOL.md), `rtc line JSON` (a line from the other side),
//!   `rtc send LABEL text|binary DATA` (binary as hex, `-` for empty), `rtc stats`,
//!   `rtc hold on|off` (stop or go on reading the channels), `rtc big LABEL SIZE COUNT`
//!   (up to COUNT binary messages of SIZE pattern bytes, as many as the send buffer takes),
//!   `rtc low LABEL BYTES` (the channel's low-water mark)
//! * `lobby join URL [NAME] [server]`, `lobby send TEXT`, `lobby send-unreliable TEXT`,
//!   `lobby leave` (a `Lobby` under `SceneMultiplayer`)
//! * `mp connect URL` (a `WebSocketMultiplayerPeer` client under `SceneMultiplayer`),
//!   `mp send TEXT` (to everyone), `mp send-to ID TEXT`, `mp close`
//!
//! Reports: `ws open protocol=P`, `ws text TEXT`, `ws binary HEX`, `ws big ok N` or
//! `ws big bad ...`, `ws closed code=C reason=R error=E`, `ws buffered N`, `ws churn done N`,
//! `ok`, and
//! `error COMMAND: WHY` when a call returns an error; `mp connected id=N`, `mp + ID`,
//! `mp - ID`, `mp packet FROM TEXT`, `mp server-disconnected`, `mp connection-failed`;
//! `lobby id N`, `lobby name NAME`, `lobby + ID`, `lobby - ID`, `lobby packet FROM MODE TEXT`;
//! `rtc churn done N`; `rtc out JSON` (a line for the other side), `rtc open LABEL`,
//! `rtc msg LABEL text|binary DATA`, `rtc state STATE`, `rtc closed LABEL`, `rtc stats KEY=VALUE...`,
//! `rtc big sent N`, `rtc low LABEL buffered=N threshold=N` (the low-water event).
//!
//! `BenchPeer` is the netplay side of the browser benchmark (`bench/web.sh`).
//!
//! Native builds compile to nothing, so the workspace builds and tests as before.
#![cfg_attr(not(target_arch = "wasm32"), allow(unused))]

#[cfg(target_arch = "wasm32")]
mod bench;
#[cfg(target_arch = "wasm32")]
mod echo_peer;
#[cfg(target_arch = "wasm32")]
mod web;

#[cfg(target_arch = "wasm32")]
pub use bench::BenchPeer;
#[cfg(target_arch = "wasm32")]
pub use web::Harness;
