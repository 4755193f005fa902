//! Fuzz target: STUN messages and TURN ChannelData (see `netplay::fuzz::stun`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    netplay::fuzz::stun(data);
});
