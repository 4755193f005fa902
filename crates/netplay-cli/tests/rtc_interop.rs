//! WebRTC interop: `netplay rtc-echo` against aiortc, libdatachannel and headless Chromium, in
//! both offer directions. The external peer drives (tests/interop, docs/PROTOCOL.md): in-band
//! and negotiated channels,
//! ordered and unordered, partially reliable (maxRetransmits 0, maxPacketLifeTime), text and
//! binary with their kind kept, 100 messages in order, a 64 KiB message and 1 MiB through a
//! reliable channel, SHA-256 compared, and empty text and binary messages (RFC 8831's one-byte
//! form). All traffic on 127.0.0.1, or, for Chromium (which gathers no loopback candidates),
//! inside a network namespace the test makes, on 10.77.0.1.

mod common;

use std::time::Duration;

use common::rtc::{pair, Driver, Offerer};

const TIMEOUT: Duration = Duration::from_secs(120);

/// The drivers' full plan.
const PLAN: &[&str] = &[];

#[test]
fn libdatachannel_offers_and_netplay_echoes() {
    pair(Driver::Libdatachannel, Offerer::Driver, PLAN, TIMEOUT)
        .assert_passed("libdatachannel offers, netplay answers");
}

#[test]
fn netplay_offers_and_libdatachannel_drives() {
    pair(Driver::Libdatachannel, Offerer::Netplay, PLAN, TIMEOUT)
        .assert_passed("netplay offers, libdatachannel answers");
}

#[test]
fn aiortc_offers_and_netplay_echoes() {
    pair(Driver::Aiortc, Offerer::Driver, PLAN, TIMEOUT)
        .assert_passed("aiortc offers, netplay answers");
}

#[test]
fn netplay_offers_and_aiortc_drives() {
    pair(Driver::Aiortc, Offerer::Netplay, PLAN, TIMEOUT)
        .assert_passed("netplay offers, aiortc answers");
}

#[test]
fn chromium_offers_and_netplay_echoes() {
    pair(Driver::Chromium, Offerer::Driver, PLAN, TIMEOUT)
        .assert_passed("Chromium offers, netplay answers");
}

#[test]
fn netplay_offers_and_chromium_drives() {
    pair(Driver::Chromium, Offerer::Netplay, PLAN, TIMEOUT)
        .assert_passed("netplay offers, Chromium answers");
}
