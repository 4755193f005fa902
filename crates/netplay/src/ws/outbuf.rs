//! The outbound byte queue of a connection: small writes coalesce into one buffer, large owned
//! payloads are queued as they are, without a copy, and leave through vectored writes.

use std::collections::VecDeque;
use std::io::IoSlice;

/// Bytes waiting to be written, in order.
#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    /// Chunks in order; `true` marks an owned payload that nothing may be appended to.
    chunks: VecDeque<(Vec<u8>, bool)>,
    /// Bytes of the front chunk already written.
    front_pos: usize,
    /// Bytes waiting in all chunks.
    len: usize,
    /// A drained coalescing buffer kept for reuse.
    spare: Vec<u8>,
}

impl OutQueue {
    /// Appends bytes, coalescing with the last buffer when it is not an owned payload.
    pub(crate) fn buffer_for(&mut self, additional: usize) -> &mut Vec<u8> {
        self.len += additional;
        if !matches!(self.chunks.back(), Some((_, false))) {
            let mut buf = std::mem::take(&mut self.spare);
            buf.clear();
            self.chunks.push_back((buf, false));
        }
        let buf = &mut self.chunks.back_mut().expect("just ensured").0;
        buf.reserve(additional);
        buf
    }

    /// Queues an owned payload as its own chunk.
    pub(crate) fn push_owned(&mut self, data: Vec<u8>) {
        if data.is_empty() {
            return;
        }
        self.len += data.len();
        self.chunks.push_back((data, true));
    }

    /// Bytes waiting.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The first contiguous run of waiting bytes.
    pub(crate) fn front(&self) -> &[u8] {
        match self.chunks.front() {
            Some((c, _)) => &c[self.front_pos..],
            None => &[],
        }
    }

    /// Fills `slices` with the waiting runs, in order; returns how many were filled.
    pub(crate) fn slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (i, (c, _)) in self.chunks.iter().enumerate() {
            if n == slices.len() {
                break;
            }
            let s = if i == 0 { &c[self.front_pos..] } else { &c[..] };
            slices[n] = IoSlice::new(s);
            n += 1;
        }
        n
    }

    /// Marks `n` bytes as written.
    pub(crate) fn consume(&mut self, mut n: usize) {
        n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            let Some((front, _)) = self.chunks.front() else {
                break;
            };
            let left = front.len() - self.front_pos;
            if n < left {
                self.front_pos += n;
                return;
            }
            n -= left;
            self.front_pos = 0;
            let (buf, owned) = self.chunks.pop_front().expect("front exists");
            if !owned && buf.capacity() > self.spare.capacity() {
                self.spare = buf;
            }
        }
        if self.chunks.is_empty() {
            self.front_pos = 0;
        }
    }

    /// Capacity held by buffers without waiting bytes.
    pub(crate) fn retained(&self) -> usize {
        self.spare.capacity()
            + if self.len == 0 {
                self.chunks.iter().map(|(c, _)| c.capacity()).sum()
            } else {
                0
            }
    }

    /// Frees what holds no waiting bytes.
    pub(crate) fn release(&mut self) {
        self.spare = Vec::new();
        if self.len == 0 {
            self.chunks.clear();
            self.chunks.shrink_to_fit();
            self.front_pos = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &mut OutQueue) -> Vec<u8> {
        let mut all = Vec::new();
        while q.len() > 0 {
            let f = q.front().to_vec();
            let take = (f.len() / 2).max(1);
            all.extend_from_slice(&f[..take]);
            q.consume(take);
        }
        all
    }

    #[test]
    fn owned_payloads_keep_their_place_between_small_writes() {
        let mut q = OutQueue::default();
        q.buffer_for(2).extend_from_slice(b"ab");
        q.push_owned(b"CDEF".to_vec());
        q.buffer_for(1).extend_from_slice(b"g");
        q.buffer_for(1).extend_from_slice(b"h");
        assert_eq!(q.len(), 8);
        let mut s = [IoSlice::new(&[]); 4];
        let n = q.slices(&mut s);
        let joined: Vec<u8> = s[..n].iter().flat_map(|x| x.to_vec()).collect();
        assert_eq!(joined, b"abCDEFgh");
        assert_eq!(drain(&mut q), b"abCDEFgh");
        assert_eq!(q.len(), 0);
        q.release();
        assert_eq!(q.retained(), 0);
    }
}
