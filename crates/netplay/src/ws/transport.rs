//! Non-blocking byte transports for the polled peer: plain TCP, or TCP with rustls on top.
//!
//! Owns only moving bytes between a socket and the caller without ever blocking; framing lives
//! in the protocol core.

use std::io::{self, Read, Write};
use std::net::TcpStream;

/// A non-blocking stream: plain TCP or TLS over TCP.
pub(crate) enum Transport {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<TlsTransport>),
}

#[cfg(feature = "tls")]
pub(crate) struct TlsTransport {
    pub(crate) tcp: TcpStream,
    pub(crate) conn: rustls::Connection,
    /// The peer closed the TCP stream.
    pub(crate) eof: bool,
}

/// What a read attempt gave.
pub(crate) enum ReadResult {
    /// `n` plaintext bytes were read.
    Data(usize),
    /// Nothing now.
    WouldBlock,
    /// The peer closed the stream.
    Eof,
}

impl Transport {
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(t) => t,
            #[cfg(feature = "tls")]
            Transport::Tls(t) => &t.tcp,
        }
    }

    /// Reads plaintext into `buf`.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<ReadResult> {
        match self {
            Transport::Plain(t) => match t.read(buf) {
                Ok(0) => Ok(ReadResult::Eof),
                Ok(n) => Ok(ReadResult::Data(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(ReadResult::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(ReadResult::WouldBlock),
                Err(e) => Err(e),
            },
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.read(buf),
        }
    }

    /// Writes plaintext; returns how much was taken (0 when the socket is full).
    pub(crate) fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(t) => match t.write(data) {
                Ok(n) => Ok(n),
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::Interrupted =>
                {
                    Ok(0)
                }
                Err(e) => Err(e),
            },
            #[cfg(feature = "tls")]
            Transport::Tls(t) => {
                t.flush_records()?;
                let n = t.conn.writer().write(data)?;
                t.flush_records()?;
                Ok(n)
            }
        }
    }

    /// Pushes buffered TLS records (handshake included) to the socket.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(_) => Ok(()),
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.flush_records(),
        }
    }

    /// Whether bytes are still buffered inside the transport (TLS records not yet on the wire).
    pub(crate) fn has_pending_output(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.conn.wants_write(),
        }
    }

    /// Sends a TLS close_notify if TLS is used, then shuts down the sending side of the TCP
    /// stream only: reading goes on until the peer closes.
    pub(crate) fn shutdown_write(&mut self) {
        #[cfg(feature = "tls")]
        if let Transport::Tls(t) = self {
            t.conn.send_close_notify();
            let _ = t.flush_records();
        }
        let _ = self.tcp().shutdown(std::net::Shutdown::Write);
    }

    /// Sends a TLS close_notify if TLS is used, then shuts the TCP stream down.
    pub(crate) fn shutdown(&mut self) {
        #[cfg(feature = "tls")]
        if let Transport::Tls(t) = self {
            t.conn.send_close_notify();
            let _ = t.flush_records();
        }
        let _ = self.tcp().shutdown(std::net::Shutdown::Both);
    }
}

#[cfg(feature = "tls")]
impl TlsTransport {
    fn flush_records(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.tcp) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<ReadResult> {
        loop {
            // Plaintext already decrypted comes first.
            match self.conn.reader().read(buf) {
                Ok(0) => return Ok(ReadResult::Eof),
                Ok(n) => return Ok(ReadResult::Data(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(ReadResult::Eof),
                Err(e) => return Err(e),
            }
            if self.eof {
                return Ok(ReadResult::Eof);
            }
            match self.conn.read_tls(&mut self.tcp) {
                Ok(0) => {
                    self.eof = true;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(ReadResult::WouldBlock)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            if let Err(e) = self.conn.process_new_packets() {
                // Tell the peer why, then fail.
                let _ = self.flush_records();
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            self.flush_records()?;
            if self.eof && self.conn.reader().read(&mut []).is_err() {
                return Ok(ReadResult::Eof);
            }
        }
    }
}
