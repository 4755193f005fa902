//! The per-connection message rate limit: a token bucket in its exact integer form (the generic
//! cell rate algorithm), driven by the `Instant`s the caller passes in.
//!
//! A bucket of `burst` tokens refills at `rate` tokens per second; each message takes one, and a
//! message finding the bucket empty is refused. Instead of a token count the limiter keeps one
//! instant, the "theoretical arrival time": when the bucket would be full again. It needs no
//! timer and no floating point.

use crate::time::{Duration, Instant};

/// One connection's rate limiter. See the module documentation.
#[derive(Clone, Debug)]
pub(crate) struct RateLimiter {
    /// Time one token takes to refill; `None` when unlimited.
    interval: Option<Duration>,
    /// How far ahead of `now` the full-again instant may run: `interval * (burst - 1)`.
    tolerance: Duration,
    /// When the bucket is full again.
    full_at: Instant,
}

impl RateLimiter {
    /// A full bucket of `burst` tokens refilling at `per_second` (0: no limit). A burst of 0 is
    /// taken as 1.
    pub(crate) fn new(per_second: u32, burst: u32, now: Instant) -> RateLimiter {
        let interval = (per_second > 0).then(|| Duration::from_secs(1) / per_second);
        let tolerance = interval
            .map(|i| i.saturating_mul(burst.max(1) - 1))
            .unwrap_or_default();
        RateLimiter {
            interval,
            tolerance,
            full_at: now,
        }
    }

    /// Takes a token for a message arriving at `now`; `false` if the bucket is empty (the
    /// refused message takes nothing).
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        let Some(interval) = self.interval else {
            return true;
        };
        let start = self.full_at.max(now);
        if start.saturating_duration_since(now) > self.tolerance {
            return false;
        }
        // Only fails past the end of time; refusing is then as good an answer as any.
        match start.checked_add(interval) {
            Some(next) => {
                self.full_at = next;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_allows_exactly_burst_messages_at_once() {
        let t = Instant::now();
        let mut r = RateLimiter::new(100, 5, t);
        assert!((0..5).all(|_| r.allow(t)));
        assert!(!r.allow(t));
    }

    #[test]
    fn tokens_refill_at_the_rate() {
        let t = Instant::now();
        let mut r = RateLimiter::new(100, 2, t);
        assert!(r.allow(t) && r.allow(t) && !r.allow(t));
        assert!(!r.allow(t + Duration::from_millis(9)));
        assert!(r.allow(t + Duration::from_millis(10)));
        assert!(!r.allow(t + Duration::from_millis(10)));
        // After a long pause the bucket is full again, but holds no more than the burst.
        let later = t + Duration::from_secs(60);
        assert!(r.allow(later) && r.allow(later) && !r.allow(later));
    }

    #[test]
    fn steady_traffic_at_the_rate_is_never_refused() {
        let t = Instant::now();
        let mut r = RateLimiter::new(100, 1, t);
        for i in 0..1000u64 {
            assert!(r.allow(t + Duration::from_millis(10 * i)), "message {i}");
        }
    }

    #[test]
    fn zero_rate_means_no_limit_and_zero_burst_means_one() {
        let t = Instant::now();
        let mut r = RateLimiter::new(0, 0, t);
        assert!((0..10_000).all(|_| r.allow(t)));
        let mut r = RateLimiter::new(10, 0, t);
        assert!(r.allow(t) && !r.allow(t));
    }
}
