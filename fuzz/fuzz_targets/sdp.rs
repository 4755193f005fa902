//! Fuzz target: remote SDP offers and answers (see `netplay::fuzz::sdp`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    netplay::fuzz::sdp(data);
});
