//! Fuzz target: signaling messages to a lobby hub (see `netplay::fuzz::signal`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    netplay::fuzz::signal(data);
});
