//! A worker's ICE-TCP listener (RFC 6544): accepted connections carry STUN, DTLS and SRTP in
//! RFC 4571 frames (a 16-bit length, then the datagram). Each connection is a task on the
//! worker's own runtime; frames reach the worker loop through one channel, and the loop sends
//! through each connection's bounded outbox. TCP is the fallback path for networks that block
//! UDP: it allocates one buffer per frame, where the UDP path allocates nothing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Frames waiting to be written to one connection; beyond this they are dropped, like UDP loss.
const OUTBOX: usize = 256;
/// Frames from every connection waiting for the worker loop; readers wait when it is full, so a
/// fast sender is slowed by TCP flow control instead of crowding out the others.
const INBOX: usize = 1024;
/// A new connection must send its first frame (a STUN binding request) within this, so silent
/// connections cannot hold the worker's slots for the whole idle timeout.
const FIRST_FRAME: Duration = Duration::from_secs(5);
/// A peer that stops reading for this long while media waits for it is cut off.
const WRITE_STALL: Duration = Duration::from_secs(5);

/// What a connection task tells the worker loop.
pub enum TcpEvent {
    /// One framed datagram from `from`.
    Frame(SocketAddr, Vec<u8>),
    /// Connection `id` from `from` ended (closed by the peer, idle, or an I/O error).
    Closed(SocketAddr, u64),
}

/// Counters of one worker's ICE-TCP listener.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections refused because the worker had `max_connections` open.
    pub refused: u64,
    /// Frames dropped because a connection's outbox was full or it was gone.
    pub dropped: u64,
    /// Connections open now.
    pub open: usize,
}

struct Conn {
    id: u64,
    outbox: mpsc::Sender<Vec<u8>>,
    task: tokio::task::AbortHandle,
}

/// One worker's ICE-TCP connections.
pub struct IceTcp {
    events_tx: mpsc::Sender<TcpEvent>,
    conns: HashMap<SocketAddr, Conn>,
    next_id: u64,
    max_connections: usize,
    idle_timeout: Duration,
    stats: TcpStats,
}

impl IceTcp {
    /// Wraps a bound listener (call from inside the worker's runtime). The worker loop accepts
    /// on the listener, hands each connection to [`IceTcp::accepted`], and receives the frames
    /// and closings of every connection on the receiver.
    pub fn new(
        listener: std::net::TcpListener,
        max_connections: usize,
        idle_timeout: Duration,
    ) -> std::io::Result<(Self, TcpListener, mpsc::Receiver<TcpEvent>)> {
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let (events_tx, events) = mpsc::channel(INBOX);
        let tcp = Self {
            events_tx,
            conns: HashMap::new(),
            next_id: 0,
            max_connections,
            idle_timeout,
            stats: TcpStats::default(),
        };
        Ok((tcp, listener, events))
    }

    /// Counters since start.
    pub fn stats(&self) -> TcpStats {
        TcpStats {
            open: self.conns.len(),
            ..self.stats
        }
    }

    /// Takes an accepted connection, or refuses it when the worker is at its limit.
    pub fn accepted(&mut self, stream: TcpStream, from: SocketAddr) {
        if self.conns.len() >= self.max_connections {
            self.stats.refused += 1;
            return; // dropping the stream closes it
        }
        // Media is latency-bound: no Nagle.
        let _ = stream.set_nodelay(true);
        self.next_id += 1;
        let (outbox, outgoing) = mpsc::channel(OUTBOX);
        let id = self.next_id;
        let (events, idle) = (self.events_tx.clone(), self.idle_timeout);
        let task = tokio::spawn(serve(stream, from, id, events, outgoing, idle)).abort_handle();
        self.conns.insert(from, Conn { id, outbox, task });
        self.stats.accepted += 1;
    }

    /// Frames `datagram` (RFC 4571) onto the connection from `to`. False when it is dropped.
    pub fn send(&mut self, to: SocketAddr, datagram: &[u8]) -> bool {
        let Some(conn) = self.conns.get(&to) else {
            self.stats.dropped += 1;
            return false;
        };
        let Ok(len) = u16::try_from(datagram.len()) else {
            self.stats.dropped += 1;
            return false;
        };
        let mut frame = Vec::with_capacity(2 + datagram.len());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(datagram);
        if conn.outbox.try_send(frame).is_err() {
            self.stats.dropped += 1;
            return false;
        }
        true
    }

    /// Closes the connection from `from` now, whatever its task is waiting on.
    pub fn close(&mut self, from: SocketAddr) {
        if let Some(conn) = self.conns.remove(&from) {
            conn.task.abort();
        }
    }

    /// A connection task ended: forget it, unless a newer one from the same address replaced
    /// it. True when it was forgotten.
    pub fn closed(&mut self, from: SocketAddr, id: u64) -> bool {
        let current = self.conns.get(&from).is_some_and(|c| c.id == id);
        if current {
            self.conns.remove(&from);
        }
        current
    }
}

/// Reads frames into the worker loop and writes the outbox, until either side ends.
async fn serve(
    stream: TcpStream,
    from: SocketAddr,
    id: u64,
    events: mpsc::Sender<TcpEvent>,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
    idle: Duration,
) {
    let (mut rd, mut wr) = stream.into_split();
    let reader = async {
        let mut wait = FIRST_FRAME.min(idle);
        loop {
            let mut len = [0u8; 2];
            if !read_full(&mut rd, &mut len, wait).await {
                return; // idle, closed, or broken
            }
            let mut frame = vec![0u8; u16::from_be_bytes(len) as usize];
            if !read_full(&mut rd, &mut frame, wait).await {
                return;
            }
            wait = idle;
            if !frame.is_empty() && events.send(TcpEvent::Frame(from, frame)).await.is_err() {
                return;
            }
        }
    };
    let writer = async {
        while let Some(frame) = outgoing.recv().await {
            let written = tokio::time::timeout(WRITE_STALL, wr.write_all(&frame)).await;
            if !matches!(written, Ok(Ok(()))) {
                return;
            }
        }
    };
    tokio::select! {
        _ = reader => {}
        _ = writer => {}
    }
    let _ = events.send(TcpEvent::Closed(from, id)).await;
}

/// Fills `buf`; false when the peer closed, the read failed, or nothing came for `idle`.
async fn read_full(rd: &mut OwnedReadHalf, buf: &mut [u8], idle: Duration) -> bool {
    matches!(
        tokio::time::timeout(idle, rd.read_exact(buf)).await,
        Ok(Ok(_))
    )
}
