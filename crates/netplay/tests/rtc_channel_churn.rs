//! A remote peer that opens and closes data channels without end must not grow our memory:
//! closed channels are forgotten, and the table is capped.
//!
//! The heap is measured by a counting global allocator, so this test has a binary of its own.
#![cfg(feature = "webrtc")]
// The counting allocator is the one unsafe block outside the library's CRC32c fast path.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use common::rtc::Pair;
use netplay::rtc::{ChannelId, DataChannelOptions, Error, Event, PeerConfig, ReadyState};

/// Bytes allocated and not yet freed, by the whole process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const TOTAL: usize = 100_000;
const BATCH: usize = 500;

/// p2 opens `BATCH` in-band channels, p1 sees them open, p2 closes them all, both sides see
/// them closed; returns when every one is gone from both tables.
fn churn_one_batch(pair: &mut Pair) {
    let opened: Vec<ChannelId> = (0..BATCH)
        .map(|i| {
            pair.p2
                .create_data_channel(&format!("c{i}"), DataChannelOptions::default())
                .unwrap()
        })
        .collect();
    let mut received = 0;
    pair.until_within("the batch open on p1", Duration::from_secs(30), |p| {
        received += p
            .events1
            .drain(..)
            .filter(|e| matches!(e, Event::DataChannelReceived(_)))
            .count();
        p.events2.clear();
        received == BATCH
    });
    for &id in &opened {
        pair.p2.channel(id).unwrap().close();
    }
    // One channel, the negotiated "keep", stays open on each side the whole time.
    pair.until_within(
        "the batch gone on both sides",
        Duration::from_secs(30),
        |p| {
            p.events1.clear();
            p.events2.clear();
            p.p1.channel_count() == 1 && p.p2.channel_count() == 1
        },
    );
}

#[test]
fn a_remote_peer_opening_and_closing_100000_channels_leaves_memory_flat() {
    let mut pair = Pair::loopback();
    let (k1, k2) = pair.create_channel("keep", DataChannelOptions::negotiated(0));
    pair.offer();
    pair.open(k1, k2);

    let batches = TOTAL / BATCH;
    let warm_up = batches / 10;
    let mut baseline = 0;
    for batch in 0..batches {
        churn_one_batch(&mut pair);
        if batch + 1 == warm_up {
            baseline = LIVE.load(Ordering::Relaxed);
        }
    }
    let end = LIVE.load(Ordering::Relaxed);
    let growth = end - baseline;
    eprintln!(
        "live heap after {} channels: {baseline} B; after {TOTAL}: {end} B ({growth:+} B)",
        warm_up * BATCH
    );
    // 90,000 channels went through after the baseline: a leak of even one byte each shows.
    assert!(
        growth < 64 * 1024,
        "the heap grew by {growth} B over 90,000 channels"
    );
    assert_eq!(pair.p1.channel_ids().collect::<Vec<_>>(), vec![k1]);

    // The connection still works.
    pair.p2
        .channel(k2)
        .unwrap()
        .put_packet(b"still here")
        .unwrap();
    pair.until("the message", |p| {
        p.p1.channel(k1).unwrap().available_packet_count() == 1
    });
}

#[test]
fn channels_beyond_the_limit_are_refused_locally_and_remotely() {
    let config = PeerConfig {
        max_channels: 4,
        ..PeerConfig::loopback()
    };
    let mut pair = Pair::new(config, PeerConfig::loopback());
    let (k1, k2) = pair.create_channel("keep", DataChannelOptions::negotiated(0));
    pair.offer();
    pair.open(k1, k2);

    // Locally: the fifth channel is a typed error.
    for i in 0..3 {
        pair.p1
            .create_data_channel(&format!("local{i}"), DataChannelOptions::default())
            .unwrap();
    }
    assert!(matches!(
        pair.p1
            .create_data_channel("one too many", DataChannelOptions::default()),
        Err(Error::TooManyChannels { max: 4 })
    ));
    pair.until("p2 sees the three", |p| p.p2.channel_count() == 4);

    // Remotely: p1 is full, so a channel p2 opens is refused by a stream reset, and p2's
    // channel ends closed instead of open on one side only.
    let extra = pair
        .p2
        .create_data_channel("refused", DataChannelOptions::default())
        .unwrap();
    pair.until("the refused channel closed on p2", |p| {
        p.p2.channel(extra)
            .is_none_or(|c| c.ready_state() == ReadyState::Closed)
    });
    assert_eq!(pair.p1.channel_count(), 4);
    assert!(!pair
        .events1
        .iter()
        .any(|e| matches!(e, Event::DataChannelReceived(_))));
}
