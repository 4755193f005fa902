//! The native driver's UDP sockets: binding one per host address, batched receive and send,
//! and the wait for readiness.
//!
//! Owns the system calls of a peer connection. Where the operating system offers them,
//! datagrams are received many per call (`recvmmsg`, and UDP generic receive offload, which
//! hands over a run of same-sized datagrams from one sender as one buffer) and a run of
//! datagrams to one destination leaves in one call (UDP segmentation offload, GSO). Elsewhere
//! the same calls move one datagram each. The sockets never block; [`Sockets::wait`] is the one
//! call that does, until a socket is readable or a deadline passes.
//!
//! What datagrams mean (ICE, DTLS, SCTP) is the engine's; which addresses to bind is
//! [`gather`](super::gather)'s.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr, UdpSocket};

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};

use super::config::PeerConfig;
use super::error::{Error, Result};
use super::gather::host_addresses;
use crate::time::Duration;

/// The receive and send buffer size asked for on every ICE socket.
const SOCKET_BUFFER: usize = 2 * 1024 * 1024;

/// Receive buffers per call. One buffer holds one datagram, or with receive offload a run of
/// up to 64 from one sender.
const RECV_SLOTS: usize = 8;

/// The size of one receive buffer: the largest UDP payload, which also bounds what receive
/// offload coalesces into one buffer.
const RECV_SLOT_SIZE: usize = 65536;

/// The most bytes one segmented send carries: below the 65,535-byte limit of one UDP send,
/// with room for IPv6 and UDP headers.
const MAX_BATCH_BYTES: usize = 60_000;

/// One local socket with its offload state.
struct Socket {
    local: SocketAddr,
    socket: UdpSocket,
    state: UdpSocketState,
}

/// A run of datagrams from one socket to one destination, all the same size but the last,
/// waiting to leave in one segmented send.
struct SendBatch {
    local: SocketAddr,
    destination: SocketAddr,
    /// The size of each datagram but the last; zero while the batch is empty.
    segment: usize,
    /// The last datagram was shorter than `segment`: nothing more may follow it.
    sealed: bool,
    buf: Vec<u8>,
}

/// The datagrams of one receive call: where they came from, their bytes.
pub(crate) struct RecvBatch {
    slots: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
    filled: usize,
}

impl RecvBatch {
    /// An empty batch; its buffers are allocated by the first receive.
    pub(crate) fn new() -> RecvBatch {
        RecvBatch {
            slots: Vec::new(),
            meta: Vec::new(),
            filled: 0,
        }
    }

    /// The datagrams received by the last [`Sockets::recv`]: sender and contents, one
    /// datagram each, in arrival order.
    pub(crate) fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> + '_ {
        self.slots
            .iter()
            .zip(&self.meta)
            .take(self.filled)
            .flat_map(|(slot, meta)| {
                let bytes = slot.get(..meta.len).unwrap_or_default();
                // Without receive offload, `stride` is the datagram's length.
                let stride = meta.stride.max(1);
                bytes.chunks(stride).map(move |d| (meta.addr, d))
            })
    }
}

/// The local sockets of one peer connection.
pub(crate) struct Sockets {
    sockets: Vec<Socket>,
    batch: SendBatch,
}

impl Sockets {
    pub(crate) fn empty() -> Sockets {
        Sockets {
            sockets: Vec::new(),
            batch: SendBatch {
                local: SocketAddr::from(([0, 0, 0, 0], 0)),
                destination: SocketAddr::from(([0, 0, 0, 0], 0)),
                segment: 0,
                sealed: false,
                buf: Vec::new(),
            },
        }
    }

    /// Binds one non-blocking socket per host address the configuration selects.
    pub(crate) fn bind(config: &PeerConfig) -> Result<Sockets> {
        let mut sockets = Sockets::empty();
        for ip in host_addresses(config) {
            if let Ok(socket) = bind_in_range(ip, config) {
                sockets.sockets.push(socket);
            }
        }
        if sockets.sockets.is_empty() {
            return Err(Error::NoLocalAddresses);
        }
        Ok(sockets)
    }

    pub(crate) fn addresses(&self) -> Vec<SocketAddr> {
        self.sockets.iter().map(|s| s.local).collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.sockets.len()
    }

    /// The address of socket `index`.
    pub(crate) fn local(&self, index: usize) -> Option<SocketAddr> {
        self.sockets.get(index).map(|s| s.local)
    }

    /// Receives what waits on socket `index` into `batch`, one call, non-blocking. Returns how
    /// many buffers were filled: zero when nothing waits (or the socket failed: UDP has no
    /// error worth stopping for; the next poll tries again).
    pub(crate) fn recv(&self, index: usize, batch: &mut RecvBatch) -> usize {
        batch.filled = 0;
        let Some(s) = self.sockets.get(index) else {
            return 0;
        };
        if batch.slots.is_empty() {
            batch.slots = (0..RECV_SLOTS).map(|_| vec![0; RECV_SLOT_SIZE]).collect();
            batch.meta = vec![RecvMeta::default(); RECV_SLOTS];
        }
        let Ok(slots) = <&mut [Vec<u8>; RECV_SLOTS]>::try_from(batch.slots.as_mut_slice()) else {
            return 0;
        };
        loop {
            let mut bufs = slots.each_mut().map(|b| IoSliceMut::new(b));
            match s
                .state
                .recv(UdpSockRef::from(&s.socket), &mut bufs, &mut batch.meta)
            {
                Ok(n) => {
                    batch.filled = n.min(RECV_SLOTS);
                    return batch.filled;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // An ICMP error for an earlier datagram (Windows reports it on the next read).
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => continue,
                Err(_) => return 0,
            }
        }
    }

    /// Sends one datagram at once from the socket bound to `local` (after what is batched).
    /// Returns false when there is no such socket or the datagram could not be sent (UDP: the
    /// protocols above retransmit).
    pub(crate) fn send(&mut self, local: SocketAddr, destination: SocketAddr, data: &[u8]) -> bool {
        self.send_batch();
        self.send_one(local, destination, data, None)
    }

    /// Queues a datagram to go out with the ones before it in one segmented send where they
    /// share socket, destination and size; [`send_batch`](Self::send_batch) sends the rest.
    pub(crate) fn queue(&mut self, local: SocketAddr, destination: SocketAddr, data: &[u8]) {
        let b = &self.batch;
        let fits = b.segment != 0
            && !b.sealed
            && b.local == local
            && b.destination == destination
            && data.len() <= b.segment
            && b.buf.len() + data.len() <= MAX_BATCH_BYTES
            && b.buf.len() / b.segment < self.max_segments(local);
        if !fits {
            self.send_batch();
            if data.is_empty() || self.max_segments(local) <= 1 {
                self.send_one(local, destination, data, None);
                return;
            }
            self.batch.local = local;
            self.batch.destination = destination;
            self.batch.segment = data.len();
        }
        self.batch.sealed = data.len() < self.batch.segment;
        self.batch.buf.extend_from_slice(data);
    }

    /// Sends the queued datagrams.
    pub(crate) fn send_batch(&mut self) {
        if self.batch.segment == 0 {
            return;
        }
        let buf = std::mem::take(&mut self.batch.buf);
        let segment = (buf.len() > self.batch.segment).then_some(self.batch.segment);
        let (local, destination) = (self.batch.local, self.batch.destination);
        self.send_one(local, destination, &buf, segment);
        self.batch.buf = buf;
        self.batch.buf.clear();
        self.batch.segment = 0;
        self.batch.sealed = false;
    }

    fn max_segments(&self, local: SocketAddr) -> usize {
        self.sockets
            .iter()
            .find(|s| s.local == local)
            .map_or(1, |s| s.state.max_gso_segments())
    }

    fn send_one(
        &self,
        local: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
        segment_size: Option<usize>,
    ) -> bool {
        let Some(s) = self.sockets.iter().find(|s| s.local == local) else {
            return false;
        };
        let transmit = Transmit {
            destination,
            ecn: None,
            contents,
            segment_size,
            src_ip: None,
        };
        loop {
            match s.state.try_send(UdpSockRef::from(&s.socket), &transmit) {
                Ok(()) => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
    }

    /// Blocks until one of the sockets is readable or `timeout` passes; with `read` false,
    /// only for the timeout. Returns whether a socket is readable.
    pub(crate) fn wait(&self, timeout: Duration, read: bool) -> bool {
        if !read || self.sockets.is_empty() {
            if !timeout.is_zero() {
                std::thread::sleep(timeout);
            }
            return false;
        }
        use rustix::event::{PollFd, PollFlags, Timespec};
        let mut fds: Vec<PollFd<'_>> = self
            .sockets
            .iter()
            .map(|s| PollFd::new(&s.socket, PollFlags::IN))
            .collect();
        let timeout = Timespec {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(n) => n > 0,
            // Interrupted by a signal: the caller polls and may wait again.
            Err(_) => false,
        }
    }
}

fn bind_in_range(ip: IpAddr, config: &PeerConfig) -> io::Result<Socket> {
    let socket = match &config.port_range {
        None => UdpSocket::bind(SocketAddr::new(ip, 0))?,
        Some(range) => {
            let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no free port in range");
            let mut bound = None;
            for port in range.clone() {
                match UdpSocket::bind(SocketAddr::new(ip, port)) {
                    Ok(s) => {
                        bound = Some(s);
                        break;
                    }
                    Err(e) => last = e,
                }
            }
            bound.ok_or(last)?
        }
    };
    // Non-blocking, receive offload where the system has it.
    let state = UdpSocketState::new(UdpSockRef::from(&socket))?;
    // The default buffers (about 200 KiB) overflow at loopback speed: every datagram the
    // kernel drops costs SCTP a retransmission and halves its window. Ask for more; the
    // kernel caps it at its own maximum, which is fine.
    let sock = socket2::SockRef::from(&socket);
    let _ = sock.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = sock.set_send_buffer_size(SOCKET_BUFFER);
    let local = socket.local_addr()?;
    Ok(Socket {
        local,
        socket,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Sockets, UdpSocket) {
        let sockets = Sockets::bind(&PeerConfig::loopback()).unwrap();
        let remote = UdpSocket::bind("127.0.0.1:0").unwrap();
        (sockets, remote)
    }

    #[test]
    fn port_range_is_honoured() {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let taken = probe.local_addr().unwrap().port();
        // The first port of the range is taken: the next free one is used.
        let config = PeerConfig {
            port_range: Some(taken..=taken.saturating_add(50)),
            ..PeerConfig::loopback()
        };
        let sockets = Sockets::bind(&config).unwrap();
        let port = sockets.addresses()[0].port();
        assert!(port > taken && port <= taken.saturating_add(50));
    }

    #[test]
    fn a_batch_of_same_sized_datagrams_arrives_as_separate_datagrams() {
        let (mut sockets, remote) = pair();
        let local = sockets.addresses()[0];
        let to = remote.local_addr().unwrap();
        // 40 of 1,000 bytes and a short last one: one segmented send where the system has it.
        for i in 0..40u8 {
            sockets.queue(local, to, &[i; 1000]);
        }
        sockets.queue(local, to, &[99; 10]);
        sockets.send_batch();
        remote
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 2048];
        for i in 0..40u8 {
            let (n, from) = remote.recv_from(&mut buf).unwrap();
            assert_eq!((n, from, buf[0], buf[n - 1]), (1000, local, i, i));
        }
        let (n, _) = remote.recv_from(&mut buf).unwrap();
        assert_eq!((n, buf[0]), (10, 99));
    }

    #[test]
    fn a_longer_datagram_or_another_destination_starts_a_new_batch() {
        let (mut sockets, remote) = pair();
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        let local = sockets.addresses()[0];
        let (to, to_other) = (remote.local_addr().unwrap(), other.local_addr().unwrap());
        sockets.queue(local, to, &[1; 100]);
        sockets.queue(local, to, &[2; 300]);
        sockets.queue(local, to_other, &[3; 100]);
        sockets.queue(local, to, &[4; 100]);
        sockets.send_batch();
        for s in [&remote, &other] {
            s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
        }
        let mut buf = [0u8; 2048];
        let mut got = Vec::new();
        for _ in 0..3 {
            let (n, _) = remote.recv_from(&mut buf).unwrap();
            got.push((n, buf[0]));
        }
        assert_eq!(got, vec![(100, 1), (300, 2), (100, 4)]);
        let (n, _) = other.recv_from(&mut buf).unwrap();
        assert_eq!((n, buf[0]), (100, 3));
    }

    #[test]
    fn received_runs_are_split_back_into_datagrams_in_order() {
        let (sockets, remote) = pair();
        let local = sockets.addresses()[0];
        let from = remote.local_addr().unwrap();
        // A peer that batches too: the receiver may get them coalesced, and must split them.
        let (mut peer, _) = pair();
        let peer_addr = peer.addresses()[0];
        for i in 0..50u8 {
            peer.queue(peer_addr, local, &[i; 1200]);
        }
        peer.send_batch();
        remote.send_to(b"plain", local).unwrap();
        let mut batch = RecvBatch::new();
        let mut got: Vec<(SocketAddr, usize, u8)> = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got.len() < 51 && std::time::Instant::now() < deadline {
            sockets.wait(Duration::from_millis(100), true);
            sockets.recv(0, &mut batch);
            got.extend(batch.datagrams().map(|(a, d)| (a, d.len(), d[0])));
        }
        let expected: Vec<_> = (0..50u8)
            .map(|i| (peer_addr, 1200, i))
            .chain([(from, 5, b'p')])
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn wait_returns_at_the_timeout_when_nothing_arrives_and_at_once_when_something_does() {
        let (sockets, remote) = pair();
        let start = std::time::Instant::now();
        assert!(!sockets.wait(Duration::from_millis(30), true));
        assert!(start.elapsed() >= std::time::Duration::from_millis(25));
        remote.send_to(b"x", sockets.addresses()[0]).unwrap();
        let start = std::time::Instant::now();
        assert!(sockets.wait(Duration::from_secs(5), true));
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }
}
