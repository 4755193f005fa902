//! Shared helpers of the integration tests of `netplay`; each test binary uses a part.
//!
//! - [`coturn`]: a coturn TURN server on a free loopback port, stopped when dropped;
//! - [`mp`]: WebRTC multiplayer peers with their signaling carried in memory;
//! - [`rtc`]: two peer connections with their signaling wired directly, stepped until a
//!   condition holds or a deadline passes.
#![allow(dead_code, unused_imports, unused_macros)]

pub(crate) mod coturn;
#[cfg(feature = "webrtc")]
pub(crate) mod mp;
#[cfg(feature = "webrtc")]
pub(crate) mod rtc;
