//! Time: the crate-wide [`Instant`], which is `std::time::Instant` natively and the browser's
//! `performance.now()` on `wasm32-unknown-unknown` (where std's panics), through `web-time`.
//!
//! Protocol cores never read the clock: every call that needs the time takes an `Instant`.
//! Only the drivers, and the convenience methods that say so in their documentation, call
//! [`Instant::now`].

pub use std::time::Duration;
pub use web_time::Instant;
