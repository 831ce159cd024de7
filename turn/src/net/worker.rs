//! One worker thread: a mio poll over its listeners, stream connections and relay sockets,
//! feeding one sans-IO [`Server`].

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};

use super::relays::{CONN_BASE, RELAY_BASE, Relays};
use super::stream::{Conn, ReadOutcome, tls_connection};
use super::{Listeners, NetConfig};
use crate::server::{Action, ClientId, DropReason, Server, Stats, Transport};
use crate::stream_frame_len;
use tern_udp::{Inbox, Outbox};

const WAKER: Token = Token(0);
/// Tokens 1.. are UDP listeners, then TCP/TLS listeners.
const LISTENER_BASE: usize = 1;
/// Buffers: the largest UDP payload plus a Data indication's header.
const BUF: usize = 65_536 + 64;
/// Stream connections per worker.
const MAX_CONNS: usize = 20_000;

pub(super) struct Worker {
    index: usize,
    poll: Poll,
    waker: Arc<Waker>,
    server: Server,
    tcp: Vec<(TcpListener, SocketAddr, bool)>,
    tls: Option<Arc<rustls::ServerConfig>>,
    io: Io,
    free_conns: Vec<usize>,
    /// Whether UDP I/O is batched.
    batch: bool,
    input: Vec<u8>,
    out: Vec<u8>,
    stop: Arc<AtomicBool>,
    stats: Arc<Vec<Mutex<Stats>>>,
}

/// Everything an action can be sent through.
struct Io {
    udp: Vec<UdpListener>,
    relays: Relays,
    conns: Vec<Option<Conn>>,
    conn_of: HashMap<ClientId, usize>,
    /// Sends that failed on stream connections already closed.
    closed_conn_drops: u64,
}

/// A listening UDP socket and what waits to leave through it.
struct UdpListener {
    socket: UdpSocket,
    local: SocketAddr,
    outbox: Outbox,
}

/// Where an input came from, for replies.
#[derive(Clone, Copy)]
enum Origin {
    Udp(usize),
    Conn(usize),
}

impl Worker {
    pub fn new(
        index: usize,
        server: Server,
        listeners: Listeners,
        net: &NetConfig,
        stop: Arc<AtomicBool>,
        stats: Arc<Vec<Mutex<Stats>>>,
    ) -> io::Result<Self> {
        let batch = net.batch;
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let mut token = LISTENER_BASE;
        let mut udp = Vec::new();
        for s in listeners.udp {
            let local = s.local_addr()?;
            let mut socket = UdpSocket::from_std(s);
            poll.registry()
                .register(&mut socket, Token(token), Interest::READABLE)?;
            udp.push(UdpListener {
                socket,
                local,
                outbox: Outbox::new(batch),
            });
            token += 1;
        }
        let mut tcp = Vec::new();
        for (s, is_tls) in listeners.tcp {
            let addr = s.local_addr()?;
            let mut s = TcpListener::from_std(s);
            poll.registry()
                .register(&mut s, Token(token), Interest::READABLE)?;
            tcp.push((s, addr, is_tls));
            token += 1;
        }
        let relays = Relays::new(poll.registry().try_clone()?, net.relay_socket_buffer);
        Ok(Self {
            index,
            poll,
            waker,
            server,
            tcp,
            tls: net.tls.clone(),
            io: Io {
                udp,
                relays,
                conns: Vec::new(),
                conn_of: HashMap::new(),
                closed_conn_drops: 0,
            },
            free_conns: Vec::new(),
            batch,
            input: vec![0; BUF],
            out: vec![0; BUF],
            stop,
            stats,
        })
    }

    pub fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        // Receive slots for every UDP socket of the worker, one batch at a time. Made here
        // because the batch headers hold raw pointers and cannot move between threads.
        let mut inbox = Inbox::new(self.batch, tern_udp::MAX_DATAGRAM);
        let mut next_stats = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let wait = self.server.poll_timeout().saturating_duration_since(now);
            let timeout = Some(wait.min(Duration::from_secs(1)));
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                tracing::error!(worker = self.index, "poll failed: {e}");
                break;
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    Token(t) if t >= CONN_BASE => self.on_conn(t - CONN_BASE),
                    Token(t) if t >= RELAY_BASE => self.on_relay(&mut inbox, Token(t)),
                    Token(t) if t - LISTENER_BASE < self.io.udp.len() => {
                        self.on_udp(&mut inbox, t - LISTENER_BASE)
                    }
                    Token(t) => self.on_accept(t - LISTENER_BASE - self.io.udp.len()),
                }
            }
            for l in &mut self.io.udp {
                l.outbox.flush(&l.socket);
            }
            let now = Instant::now();
            self.server.handle_timeout(now, &mut self.io.relays);
            if now >= next_stats {
                next_stats = now + Duration::from_secs(1);
                self.publish_stats();
            }
        }
        self.server.close_all(&mut self.io.relays);
        self.publish_stats();
    }

    fn publish_stats(&self) {
        if let Some(slot) = self.stats.get(self.index) {
            let mut stats = self.server.stats().clone();
            let failed = self.io.send_drops();
            if failed > 0 {
                *stats.dropped.entry(DropReason::SendFailed).or_default() += failed;
            }
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = stats;
        }
    }

    /// Drains a listening UDP socket, a batch at a time.
    fn on_udp(&mut self, inbox: &mut Inbox, i: usize) {
        loop {
            let Some(listener) = self.io.udp.get(i) else {
                return;
            };
            let local = listener.local;
            let n = match inbox.recv(&listener.socket) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return, // WouldBlock: drained
            };
            let now = Instant::now();
            for k in 0..n {
                let (data, remote) = inbox.datagram(k);
                let client = ClientId {
                    transport: Transport::Udp,
                    remote,
                    local,
                };
                let action = self.server.handle_client(
                    now,
                    &mut self.io.relays,
                    client,
                    data,
                    &mut self.out,
                );
                self.io.deliver(action, Origin::Udp(i), client, &self.out);
            }
            if n < inbox.capacity() {
                return; // a short batch emptied the queue
            }
        }
    }

    /// Drains a relay socket, a batch at a time.
    fn on_relay(&mut self, inbox: &mut Inbox, token: Token) {
        loop {
            let Some((socket, relay)) = self.io.relays.by_token(token) else {
                return;
            };
            let relay = *relay;
            let n = match inbox.recv(socket) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let now = Instant::now();
            for k in 0..n {
                let (data, peer) = inbox.datagram(k);
                let action = self
                    .server
                    .handle_peer(now, relay, peer, data, &mut self.out);
                if let Action::ToClient { client, .. } = action {
                    self.io.deliver(action, Origin::Udp(0), client, &self.out);
                }
            }
            if n < inbox.capacity() {
                return;
            }
        }
    }

    fn on_accept(&mut self, i: usize) {
        loop {
            let Some((listener, local, is_tls)) = self.tcp.get(i) else {
                return;
            };
            let (local, is_tls) = (*local, *is_tls);
            let (mut stream, remote) = match listener.accept() {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let live = self.io.conns.len() - self.free_conns.len();
            let tls = match (is_tls, &self.tls) {
                (true, Some(config)) => tls_connection(config),
                _ => None,
            };
            if live >= MAX_CONNS || (is_tls && tls.is_none()) {
                continue; // dropping the stream closes it
            }
            let _ = stream.set_nodelay(true);
            let idx = self.free_conns.pop().unwrap_or(self.io.conns.len());
            let interest = Interest::READABLE | Interest::WRITABLE;
            if self
                .poll
                .registry()
                .register(&mut stream, Token(CONN_BASE + idx), interest)
                .is_err()
            {
                if idx < self.io.conns.len() {
                    self.free_conns.push(idx);
                }
                continue;
            }
            let transport = if is_tls {
                Transport::Tls
            } else {
                Transport::Tcp
            };
            let id = ClientId {
                transport,
                remote,
                local,
            };
            if idx == self.io.conns.len() {
                self.io.conns.push(None);
            }
            self.io.conns[idx] = Some(Conn::new(id, stream, tls));
            self.io.conn_of.insert(id, idx);
        }
    }

    fn on_conn(&mut self, idx: usize) {
        loop {
            let Some(Some(conn)) = self.io.conns.get_mut(idx) else {
                return;
            };
            let outcome = conn.read(&mut self.input);
            conn.flush();
            let closed = outcome == ReadOutcome::Closed || !self.handle_frames(idx);
            if closed {
                self.close_conn(idx);
                return;
            }
            if outcome != ReadOutcome::Full {
                return;
            }
        }
    }

    /// Frames and handles what a connection has received; false if a frame could not be one
    /// (the connection is then closed).
    fn handle_frames(&mut self, idx: usize) -> bool {
        let mut ok = true;
        let mut start = 0;
        loop {
            let Some(Some(conn)) = self.io.conns.get_mut(idx) else {
                return ok;
            };
            if conn.handshaking() {
                break;
            }
            let frame = match stream_frame_len(&conn.inbuf[start..]) {
                None => break,
                Some(Err(())) => {
                    ok = false;
                    break;
                }
                Some(Ok(n)) if conn.inbuf.len() - start < n => break,
                Some(Ok(n)) => start..start + n,
            };
            start = frame.end;
            let client = conn.id;
            let now = Instant::now();
            let input = std::mem::take(&mut conn.inbuf);
            let action = self.server.handle_client(
                now,
                &mut self.io.relays,
                client,
                &input[frame],
                &mut self.out,
            );
            self.io
                .deliver(action, Origin::Conn(idx), client, &self.out);
            if let Some(Some(conn)) = self.io.conns.get_mut(idx) {
                conn.inbuf = input;
            }
        }
        if let Some(Some(conn)) = self.io.conns.get_mut(idx) {
            conn.inbuf.drain(..start);
        }
        ok
    }

    fn close_conn(&mut self, idx: usize) {
        let Some(mut conn) = self.io.conns.get_mut(idx).and_then(Option::take) else {
            return;
        };
        conn.flush();
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.io.conn_of.remove(&conn.id);
        self.io.closed_conn_drops += conn.send_drops;
        self.server.client_closed(&mut self.io.relays, conn.id);
        self.free_conns.push(idx);
    }
}

impl Io {
    /// Datagrams and stream writes the sockets refused, so far.
    fn send_drops(&self) -> u64 {
        let live_conns: u64 = self.conns.iter().flatten().map(|c| c.send_drops).sum();
        let outboxes: u64 = self.udp.iter().map(|l| l.outbox.drops).sum();
        self.relays.send_drops + outboxes + live_conns + self.closed_conn_drops
    }

    /// Carries out one action. `origin` and `sender` say where a reply goes.
    fn deliver(&mut self, action: Action<'_>, origin: Origin, sender: ClientId, out: &[u8]) {
        let Io {
            udp,
            relays,
            conns,
            conn_of,
            ..
        } = self;
        match action {
            Action::Drop(_) => {}
            Action::ToPeer { relay, peer, data } => relays.send(relay, peer, data),
            Action::Reply(n) => match origin {
                Origin::Udp(i) => {
                    if let Some(l) = udp.get_mut(i) {
                        l.outbox.send(&l.socket, &out[..n], sender.remote);
                    }
                }
                Origin::Conn(idx) => {
                    if let Some(Some(c)) = conns.get_mut(idx) {
                        c.send(&out[..n]);
                    }
                }
            },
            Action::ToClient { client, len } => match client.transport {
                Transport::Udp => {
                    // A worker has one or two UDP listeners (IPv4, IPv6): a scan beats a hash.
                    if let Some(l) = udp.iter_mut().find(|l| l.local == client.local) {
                        l.outbox.send(&l.socket, &out[..len], client.remote);
                    }
                }
                Transport::Tcp | Transport::Tls => {
                    if let Some(Some(c)) = conn_of.get(&client).and_then(|i| conns.get_mut(*i)) {
                        c.send(&out[..len]);
                    }
                }
            },
        }
    }
}
