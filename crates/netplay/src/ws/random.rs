//! Randomness for handshake keys and client masking keys (RFC 6455 §5.3, §10.3).
//!
//! Owns the only call to the operating system's random source in the WebSocket core; masks are
//! drawn from a buffered block of OS entropy so a client does not pay a system call per frame.

use std::cell::RefCell;

/// Fills `buf` with random bytes from the operating system.
pub fn fill(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        // The OS source failing is not recoverable in a meaningful way; fall back to a hash of
        // the address and time so keys still differ, which is all the handshake key needs.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ (buf.as_ptr() as u64);
        let mut x = seed | 1;
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
}

thread_local! {
    static POOL: RefCell<([u8; 256], usize)> = const { RefCell::new(([0; 256], 256)) };
}

/// A fresh masking key.
pub fn mask() -> [u8; 4] {
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        if p.1 + 4 > p.0.len() {
            fill(&mut p.0);
            p.1 = 0;
        }
        let i = p.1;
        p.1 += 4;
        [p.0[i], p.0[i + 1], p.0[i + 2], p.0[i + 3]]
    })
}
