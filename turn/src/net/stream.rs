//! A TURN client over TCP or TLS: bytes in, frames out (RFC 8656 section 3.1), and a bounded
//! queue of bytes waiting for the socket.

use std::io::{self, Read, Write};

use mio::net::TcpStream;

use crate::server::ClientId;

/// Bytes queued for a slow client before more are dropped.
const MAX_PENDING: usize = 4 << 20;
/// The largest frame: a STUN header plus the largest length.
const MAX_FRAME: usize = 20 + 65_535 + 3;

pub(super) struct Conn {
    pub id: ClientId,
    pub stream: TcpStream,
    pub tls: Option<rustls::ServerConnection>,
    /// Received bytes not yet framed.
    pub inbuf: Vec<u8>,
    /// Plain TCP: bytes the socket has not taken yet.
    pending: Vec<u8>,
    /// Frames dropped because the client does not read.
    pub send_drops: u64,
}

/// What reading did.
#[derive(PartialEq, Eq)]
pub(super) enum ReadOutcome {
    /// The socket is drained; what arrived is in `inbuf`.
    Data,
    /// `inbuf` is full while the socket still has bytes: frame, then read again.
    Full,
    /// The peer closed or the stream failed.
    Closed,
}

impl Conn {
    pub fn new(id: ClientId, stream: TcpStream, tls: Option<rustls::ServerConnection>) -> Self {
        Self {
            id,
            stream,
            tls,
            inbuf: Vec::new(),
            pending: Vec::new(),
            send_drops: 0,
        }
    }

    /// Reads everything the socket has (edge-triggered poll) into `inbuf`.
    pub fn read(&mut self, scratch: &mut [u8]) -> ReadOutcome {
        loop {
            if self.inbuf.len() > 2 * MAX_FRAME {
                return ReadOutcome::Full;
            }
            let n = match &mut self.tls {
                None => match self.stream.read(scratch) {
                    Ok(0) => return ReadOutcome::Closed,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::Data,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return ReadOutcome::Closed,
                },
                Some(tls) => match tls.read_tls(&mut self.stream) {
                    Ok(0) => return ReadOutcome::Closed,
                    Ok(_) => {
                        if tls.process_new_packets().is_err() {
                            let _ = tls.write_tls(&mut self.stream);
                            return ReadOutcome::Closed;
                        }
                        match tls.reader().read(scratch) {
                            Ok(n) => n,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                            Err(_) => return ReadOutcome::Closed,
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.flush();
                        return ReadOutcome::Data;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return ReadOutcome::Closed,
                },
            };
            self.inbuf.extend_from_slice(&scratch[..n]);
            if let Some(tls) = &mut self.tls {
                // Plaintext rustls already decrypted but `scratch` could not hold.
                while let Ok(n @ 1..) = tls.reader().read(scratch) {
                    self.inbuf.extend_from_slice(&scratch[..n]);
                }
            }
        }
    }

    /// Queues `data` for the client and writes what the socket takes.
    pub fn send(&mut self, data: &[u8]) {
        match &mut self.tls {
            Some(tls) => {
                if tls.writer().write_all(data).is_err() {
                    self.send_drops += 1;
                }
            }
            None => {
                if self.pending.len() + data.len() > MAX_PENDING {
                    self.send_drops += 1;
                    return;
                }
                if self.pending.is_empty() {
                    match self.stream.write(data) {
                        Ok(n) if n == data.len() => return,
                        Ok(n) => self.pending.extend_from_slice(&data[n..]),
                        Err(_) => self.pending.extend_from_slice(data),
                    }
                    return;
                }
                self.pending.extend_from_slice(data);
            }
        }
        self.flush();
    }

    /// Writes queued bytes until the socket would block.
    pub fn flush(&mut self) {
        match &mut self.tls {
            Some(tls) => {
                while tls.wants_write() {
                    match tls.write_tls(&mut self.stream) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            }
            None => {
                while !self.pending.is_empty() {
                    match self.stream.write(&self.pending) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            self.pending.drain(..n);
                        }
                    }
                }
            }
        }
    }

    /// Whether the connection is still in its TLS handshake.
    pub fn handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.is_handshaking())
    }
}

/// Limits rustls' own plaintext queue like `MAX_PENDING`.
pub(super) fn tls_connection(
    config: &std::sync::Arc<rustls::ServerConfig>,
) -> Option<rustls::ServerConnection> {
    let mut c = rustls::ServerConnection::new(config.clone()).ok()?;
    c.set_buffer_limit(Some(MAX_PENDING));
    Some(c)
}
