//! Randomness: the crate's one source of unpredictable bytes.
//!
//! Owns every call to the operating system's random source (`getrandom`; in the browser, Web
//! Crypto's `getRandomValues` through getrandom's `wasm_js` backend) and [`Rng`], the generator
//! that protocol cores take as a value so that tests can make them deterministic. It does not
//! own key material of TLS or DTLS: rustls and the DTLS stack draw their own.
//!
//! What uses it: WebSocket handshake and masking keys (RFC 6455 §5.3, §10.3), STUN transaction
//! ids (RFC 8489 §5), SCTP verification tags, initial TSNs and cookie secrets (RFC 9260 §5.1),
//! ICE credentials, signaling lobby names and peer ids.

use std::cell::RefCell;

/// Fills `buf` with bytes from the operating system's cryptographically secure source.
///
/// # Panics
///
/// If the operating system refuses randomness, which getrandom documents only for platforms it
/// does not support: nothing in this crate can be made safe without it (lobby names and ICE
/// credentials are what keep strangers out), so it stops rather than go on predictably.
pub fn fill(buf: &mut [u8]) {
    if let Err(e) = getrandom::fill(buf) {
        panic!("the operating system's random source failed: {e}");
    }
}

/// A random `u64` from the operating system's source.
pub fn u64() -> u64 {
    let mut b = [0u8; 8];
    fill(&mut b);
    u64::from_le_bytes(b)
}

thread_local! {
    static MASKS: RefCell<Pool> = const { RefCell::new(Pool::EMPTY) };
}

/// A fresh WebSocket masking key, from a per-thread block of OS entropy so that a client does
/// not pay a system call per frame.
pub(crate) fn mask() -> [u8; 4] {
    MASKS.with(|p| {
        let mut b = [0u8; 4];
        p.borrow_mut().take(&mut b);
        b
    })
}

/// A block of OS entropy handed out in pieces.
#[derive(Clone)]
struct Pool {
    bytes: [u8; 256],
    used: usize,
}

impl Pool {
    const EMPTY: Pool = Pool {
        bytes: [0; 256],
        used: 256,
    };

    fn take(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(self.bytes.len()) {
            if self.used + chunk.len() > self.bytes.len() {
                fill(&mut self.bytes);
                self.used = 0;
            }
            chunk.copy_from_slice(&self.bytes[self.used..self.used + chunk.len()]);
            self.used += chunk.len();
        }
    }
}

/// A random number generator handed to a protocol core.
///
/// [`Rng::os`] is the one to use: bytes from the operating system's cryptographically secure
/// source, drawn in blocks. [`Rng::seeded`] replays the same numbers for the same seed
/// (SplitMix64): for tests and simulations only, never where an attacker must not guess the
/// output.
///
/// ```
/// use netplay::random::Rng;
///
/// let mut a = Rng::seeded(7);
/// let mut b = Rng::seeded(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// assert!(Rng::os().below(10) < 10);
/// ```
#[derive(Clone)]
pub struct Rng {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Os(Box<Pool>),
    Seeded(u64),
}

impl std::fmt::Debug for Rng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            Kind::Os(_) => f.write_str("Rng::Os"),
            Kind::Seeded(_) => f.write_str("Rng::Seeded"),
        }
    }
}

impl Default for Rng {
    fn default() -> Rng {
        Rng::os()
    }
}

impl Rng {
    /// Numbers from the operating system's cryptographically secure source.
    pub fn os() -> Rng {
        Rng {
            kind: Kind::Os(Box::new(Pool::EMPTY)),
        }
    }

    /// The same numbers for the same seed, for tests. Not secure.
    pub fn seeded(seed: u64) -> Rng {
        Rng {
            kind: Kind::Seeded(seed),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        match &mut self.kind {
            Kind::Os(pool) => {
                let mut b = [0u8; 8];
                pool.take(&mut b);
                u64::from_le_bytes(b)
            }
            Kind::Seeded(state) => splitmix64(state),
        }
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }

    /// Fills `out` with random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        match &mut self.kind {
            Kind::Os(pool) => pool.take(out),
            Kind::Seeded(state) => {
                for chunk in out.chunks_mut(8) {
                    let v = splitmix64(state).to_le_bytes();
                    chunk.copy_from_slice(&v[..chunk.len()]);
                }
            }
        }
    }

    /// A number in `0..n` (0 when `n` is 0), by multiply-and-shift: the bias is below 2^-32
    /// for every `n` below 2^32.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// SplitMix64 (Steele, Lea and Flood, 2014): one multiply-xorshift step per output.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_generators_repeat_their_sequence() {
        let mut a = Rng::seeded(42);
        let mut b = Rng::seeded(42);
        let xs: Vec<u64> = (0..16).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..16).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(Rng::seeded(43).next_u64(), xs[0]);
    }

    #[test]
    fn os_generators_differ_from_each_other() {
        let a: Vec<u64> = (0..4).map(|_| Rng::os().next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] != w[1]), "{a:?}");
    }

    #[test]
    fn fill_covers_every_byte_across_pool_refills() {
        for mut rng in [Rng::os(), Rng::seeded(1)] {
            // Longer than one pool block, and not a multiple of 8.
            let mut buf = vec![0u8; 1001];
            rng.fill(&mut buf);
            let zeros = buf.iter().filter(|&&b| b == 0).count();
            assert!(zeros < 30, "{zeros} zero bytes of 1001");
        }
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = Rng::seeded(9);
        assert!((0..10_000).all(|_| rng.below(7) < 7));
        assert_eq!(rng.below(0), 0);
    }

    #[test]
    fn masks_are_fresh() {
        let masks: Vec<[u8; 4]> = (0..200).map(|_| mask()).collect();
        let distinct: std::collections::HashSet<_> = masks.iter().collect();
        assert!(distinct.len() > 190, "{} distinct of 200", distinct.len());
    }
}
