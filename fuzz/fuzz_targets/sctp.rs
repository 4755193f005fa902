//! Fuzz target: inbound SCTP packets (see `netplay::fuzz::sctp`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    netplay::fuzz::sctp(data);
});
