//! WebRTC interop through a lossy path: `netplay rtc-echo --drop-every 20` loses every 20th
//! SCTP datagram (DTLS application data) in each direction, 5 % each way, against
//! libdatachannel, aiortc and headless Chromium, in both offer directions. This is what puts
//! netplay's SCTP recovery against other stacks: SACK gap blocks, fast retransmit, T3
//! timeouts, and partial reliability (abandoned messages skipped with FORWARD-TSN, RFC 3758).
//!
//! The driver runs its plan with `--lossy` (docs/PROTOCOL.md): reliable channels still deliver
//! everything (1 MiB and a 64 KiB message intact, 100 messages in order), ordered partially
//! reliable channels in order without duplicates, and a single message on a partially
//! reliable channel may be lost and sent again. Besides the default channels, two ordered
//! partially reliable ones: without retransmissions, and with a short lifetime; an abandoned
//! message there blocks its stream until the receiver takes the FORWARD-TSN.
//!
//! Each run checks from netplay's exit line that at least 20 datagrams were dropped each way,
//! so no test passes without loss.

mod common;

use std::time::{Duration, Instant};

use common::rtc::{pair_with, Driver, Offerer, Pairing};

/// The bound of one pairing.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Every 20th application-data datagram, each way.
const IMPAIRMENT: &[&str] = &["--drop-every", "20"];

/// The drivers' plan: the default channels plus two ordered partially reliable ones.
const PLAN: &[&str] = &[
    "--lossy",
    "--channel",
    "reliable",
    "--channel",
    "unordered:unordered,protocol=chat",
    "--channel",
    "rexmit0:unordered,rexmit=0",
    "--channel",
    "lifetime:unordered,lifetime=3000",
    "--channel",
    "negotiated:id=100",
    "--channel",
    "negotiated-unordered:unordered,id=101",
    "--channel",
    "ordered-rexmit0:rexmit=0",
    "--channel",
    "ordered-lifetime:lifetime=1000",
];

/// The fewest datagrams each direction must have lost for a run to count.
const MIN_DROPS: u64 = 20;

fn lossy_pair(driver: Driver, offerer: Offerer, what: &str) -> Pairing {
    let t0 = Instant::now();
    let p = pair_with(driver, offerer, IMPAIRMENT, PLAN, TIMEOUT);
    p.assert_passed(what);
    p.assert_check_passed(what, "reliable/binary_65536");
    p.assert_check_passed(what, "reliable/big_1048576");
    p.assert_check_passed(what, "ordered-rexmit0/sequence_100");
    // The checks that say what the loss did (resent single messages, lost sequence
    // messages, throughput), for a run with --nocapture.
    for check in p
        .result
        .iter()
        .filter_map(|r| r.get("checks"))
        .filter_map(|c| c.as_array())
        .flatten()
    {
        let detail = check.get("detail").and_then(|d| d.as_str()).unwrap_or("");
        if !detail.is_empty() && !detail.starts_with("id ") {
            eprintln!("{what}: {} ({} ms): {detail}", check["name"], check["ms"]);
        }
    }
    let (inbound, outbound) = p.drops(what);
    assert!(
        inbound >= MIN_DROPS && outbound >= MIN_DROPS,
        "{what}: netplay dropped {inbound} inbound and {outbound} outbound datagrams, \
         fewer than {MIN_DROPS} each way: the run proves nothing about loss"
    );
    eprintln!("{what}: {:.1} s", t0.elapsed().as_secs_f64());
    p
}

#[test]
fn libdatachannel_offers_and_netplay_echoes_through_loss() {
    lossy_pair(
        Driver::Libdatachannel,
        Offerer::Driver,
        "libdatachannel offers, netplay answers, 5 % loss each way",
    );
}

#[test]
fn netplay_offers_and_libdatachannel_drives_through_loss() {
    lossy_pair(
        Driver::Libdatachannel,
        Offerer::Netplay,
        "netplay offers, libdatachannel answers, 5 % loss each way",
    );
}

#[test]
fn aiortc_offers_and_netplay_echoes_through_loss() {
    lossy_pair(
        Driver::Aiortc,
        Offerer::Driver,
        "aiortc offers, netplay answers, 5 % loss each way",
    );
}

#[test]
fn netplay_offers_and_aiortc_drives_through_loss() {
    lossy_pair(
        Driver::Aiortc,
        Offerer::Netplay,
        "netplay offers, aiortc answers, 5 % loss each way",
    );
}

#[test]
fn chromium_offers_and_netplay_echoes_through_loss() {
    lossy_pair(
        Driver::Chromium,
        Offerer::Driver,
        "Chromium offers, netplay answers, 5 % loss each way",
    );
}

#[test]
fn netplay_offers_and_chromium_drives_through_loss() {
    lossy_pair(
        Driver::Chromium,
        Offerer::Netplay,
        "netplay offers, Chromium answers, 5 % loss each way",
    );
}
