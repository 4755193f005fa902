//! Shared helpers of the integration tests of `netplay`; each test binary uses a part.
//!
//! - [`coturn`]: a coturn TURN server on a free loopback port, stopped when dropped;
//! - [`rtc`]: two peer connections with their signaling wired directly, stepped until a
//!   condition holds or a deadline passes.
#![allow(dead_code, unused_imports, unused_macros)]

pub(crate) mod coturn;
#[cfg(feature = "webrtc")]
pub(crate) mod rtc;
