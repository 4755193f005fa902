//! Godot's `TCPServer`: a non-blocking listener polled for new connections.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};

/// A listening TCP socket that never blocks: [`TcpServer::take_connection`] returns `None` when
/// nobody is waiting.
#[derive(Debug, Default)]
pub struct TcpServer {
    listener: Option<TcpListener>,
}

impl TcpServer {
    /// A server that is not listening yet.
    pub fn new() -> TcpServer {
        TcpServer::default()
    }

    /// Listens on `addr` (e.g. `127.0.0.1:9080`; port 0 picks a free one).
    pub fn listen(&mut self, addr: SocketAddr) -> io::Result<()> {
        let l = TcpListener::bind(addr)?;
        l.set_nonblocking(true)?;
        self.listener = Some(l);
        Ok(())
    }

    /// Whether [`TcpServer::listen`] succeeded and [`TcpServer::stop`] was not called.
    pub fn is_listening(&self) -> bool {
        self.listener.is_some()
    }

    /// The bound address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound port (0 when not listening).
    pub fn local_port(&self) -> u16 {
        self.local_addr().map_or(0, |a| a.port())
    }

    /// Accepts one waiting connection, non-blocking, with TCP_NODELAY set.
    pub fn take_connection(&mut self) -> Option<TcpStream> {
        let l = self.listener.as_ref()?;
        loop {
            match l.accept() {
                Ok((s, _)) => {
                    if s.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let _ = s.set_nodelay(true);
                    return Some(s);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(_) => return None,
            }
        }
    }

    /// Stops listening.
    pub fn stop(&mut self) {
        self.listener = None;
    }
}
