//! Admission limits shared by the servers of this crate: the per-IP connection count and the
//! `?token=` check. Each server owns its other limits (lobbies, sessions, rates).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open connections per IP address, with a cap (0: none).
pub(crate) struct IpCounts {
    map: Mutex<HashMap<IpAddr, usize>>,
    max: usize,
}

impl IpCounts {
    pub(crate) fn new(max: usize) -> IpCounts {
        IpCounts {
            map: Mutex::new(HashMap::new()),
            max,
        }
    }
}

/// One connection's place in the per-IP count; given back on drop.
pub(crate) struct IpSlot {
    counts: Arc<IpCounts>,
    ip: IpAddr,
}

impl IpSlot {
    /// A place for one more connection from `ip`, or `None` when `ip` is at the cap.
    pub(crate) fn take(counts: &Arc<IpCounts>, ip: IpAddr) -> Option<IpSlot> {
        let mut map = counts.map.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(ip).or_insert(0);
        if counts.max > 0 && *n >= counts.max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            counts: counts.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut map = self.counts.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Whether the request's query carries `token=<expected>`, compared in constant time.
pub(crate) fn token_ok(path: &str, expected: &str) -> bool {
    let Some(query) = path.split_once('?').map(|(_, q)| q) else {
        return false;
    };
    query.split('&').any(|pair| {
        let Some(given) = pair.strip_prefix("token=") else {
            return false;
        };
        given.len() == expected.len()
            && given
                .bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    })
}
