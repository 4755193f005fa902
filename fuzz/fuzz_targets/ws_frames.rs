//! Fuzz target: inbound WebSocket frames (see `netplay::fuzz::ws_frames`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    netplay::fuzz::ws_frames(data);
});
