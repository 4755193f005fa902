//! A test impairment: [`DropEvery`], a candidate source that finds no candidates and loses
//! every Nth datagram carrying SCTP (DTLS application data) in each direction, so loss
//! recovery can be exercised on a real connection without changing the network. ICE checks
//! and the DTLS handshake pass untouched.

use crate::time::Instant;
use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;

use super::gather::{CandidateSource, Intercept, LocalCandidate, SourceTransmit};

/// The DTLS record content type of application data (RFC 9147): what carries SCTP.
const DTLS_APPLICATION_DATA: u8 = 23;

/// How many SCTP-carrying datagrams a [`DropEvery`] saw and dropped, per direction. Shared
/// with the source (read it while the connection runs or after it is gone).
#[derive(Debug, Default)]
pub struct DropCounts {
    inbound_seen: Cell<u64>,
    inbound_dropped: Cell<u64>,
    outbound_seen: Cell<u64>,
    outbound_dropped: Cell<u64>,
}

impl DropCounts {
    /// Received datagrams: `(seen, dropped)`.
    pub fn inbound(&self) -> (u64, u64) {
        (self.inbound_seen.get(), self.inbound_dropped.get())
    }

    /// Sent datagrams: `(seen, dropped)`.
    pub fn outbound(&self) -> (u64, u64) {
        (self.outbound_seen.get(), self.outbound_dropped.get())
    }
}

/// Loses every `n`th SCTP-carrying datagram each way. Add it with
/// [`PeerConnection::add_candidate_source`](super::PeerConnection::add_candidate_source)
/// before gathering starts.
#[derive(Debug)]
pub struct DropEvery {
    n: u64,
    counts: Rc<DropCounts>,
}

impl DropEvery {
    /// A source dropping every `n`th datagram (`n` at least 2; 0 and 1 are taken as 2), and
    /// its counters.
    pub fn new(n: u64) -> (DropEvery, Rc<DropCounts>) {
        let counts = Rc::new(DropCounts::default());
        let source = DropEvery {
            n: n.max(2),
            counts: counts.clone(),
        };
        (source, counts)
    }

    /// Counts one datagram; whether it is the one in `n` to lose.
    fn take(&self, contents: &[u8], seen: &Cell<u64>, dropped: &Cell<u64>) -> bool {
        if contents.first() != Some(&DTLS_APPLICATION_DATA) {
            return false;
        }
        seen.set(seen.get() + 1);
        let drop = seen.get().is_multiple_of(self.n);
        if drop {
            dropped.set(dropped.get() + 1);
        }
        drop
    }
}

impl CandidateSource for DropEvery {
    fn start(&mut self, _sockets: &[SocketAddr], _now: Instant) {}

    fn handle_datagram(
        &mut self,
        _local: SocketAddr,
        _from: SocketAddr,
        contents: &[u8],
        _now: Instant,
    ) -> Intercept {
        let c = &self.counts;
        if self.take(contents, &c.inbound_seen, &c.inbound_dropped) {
            Intercept::Consumed
        } else {
            Intercept::Pass
        }
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_transmit(&mut self) -> Option<SourceTransmit> {
        None
    }

    fn poll_candidate(&mut self) -> Option<LocalCandidate> {
        None
    }

    fn is_complete(&self) -> bool {
        true
    }

    fn drop_transmit(
        &mut self,
        _source: SocketAddr,
        _destination: SocketAddr,
        contents: &[u8],
    ) -> bool {
        let c = &self.counts;
        self.take(contents, &c.outbound_seen, &c.outbound_dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_every_nth_application_data_datagram_each_way_and_nothing_else() {
        let (mut source, counts) = DropEvery::new(3);
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let now = Instant::now();
        let mut lost = Vec::new();
        for i in 0..9 {
            // Handshake records (22) and STUN (0) pass and are not counted.
            assert_eq!(source.handle_datagram(a, a, &[22, 0], now), Intercept::Pass);
            assert!(!source.drop_transmit(a, a, &[0, 1]));
            let consumed = source.handle_datagram(a, a, &[23, i], now) == Intercept::Consumed;
            lost.push((consumed, source.drop_transmit(a, a, &[23, i])));
        }
        let expected: Vec<(bool, bool)> = (1..=9).map(|i| (i % 3 == 0, i % 3 == 0)).collect();
        assert_eq!(lost, expected);
        assert_eq!(counts.inbound(), (9, 3));
        assert_eq!(counts.outbound(), (9, 3));
    }
}
