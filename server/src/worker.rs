//! Worker threads. Each owns one UDP socket and one SFU core, and runs a single-threaded tokio
//! runtime that feeds the core datagrams, commands and timeouts. Nothing here is shared: the
//! control path talks to a worker through a bounded channel and gets answers on oneshots.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};
use tern_recording::{TapMessage, TapSink};
use tern_sfu::{
    Command, Notice, Output, ParticipantId, Reply, RoomTapEvent, RoomTapId, Sfu, SfuConfig,
    SfuError, TapId,
};
use tern_udp::{Inbox, Outbox};
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};

use crate::config::RtcConfig;
use crate::forward_latency::ForwardLatency;
use crate::ice_tcp::{IceTcp, TcpEvent};
use crate::registry::Registry;

/// Commands waiting for a worker; beyond this the control path waits (backpressure).
const COMMAND_QUEUE: usize = 1024;
/// Notices waiting for one participant's session; a session this far behind is removed. A
/// join storm tells each session of every newcomer and each of its tracks (about 3 notices per
/// participant): this leaves room for a full 1,000-participant room on a loaded machine. The
/// queue takes memory only as it fills.
pub const NOTICE_QUEUE: usize = 4096;
/// How often a worker records its counters as metrics.
const STATS_INTERVAL: Duration = Duration::from_secs(1);
/// Longer media datagrams are cut (and then fail SRTP authentication): WebRTC keeps packets
/// under the path MTU, about 1,200 bytes.
const MAX_MEDIA_DATAGRAM: usize = 2048;
/// Receive batches read per wake-up before looking at commands and timers again.
const RECV_BATCHES: usize = 2;

type ReplyTx = oneshot::Sender<Result<Reply, SfuError>>;

enum WorkerMsg {
    Command(Command, ReplyTx),
    Join(Command, mpsc::Sender<Notice>, ReplyTx),
    TapRoom(Command, TapSink, ReplyTx),
}

/// The control path's handle on one worker.
#[derive(Clone)]
pub struct WorkerHandle {
    /// Index of the worker.
    pub index: usize,
    /// The media address the worker advertises.
    pub media_addr: SocketAddr,
    /// The ICE-TCP address the worker advertises, when ICE-TCP is on.
    pub tcp_addr: Option<SocketAddr>,
    tx: mpsc::Sender<WorkerMsg>,
}

/// A worker did not answer.
#[derive(Debug, thiserror::Error)]
#[error("worker {0} is not running")]
pub struct WorkerGone(pub usize);

impl WorkerHandle {
    /// Sends a command and waits for the core's reply.
    pub async fn request(&self, cmd: Command) -> Result<Result<Reply, SfuError>, WorkerGone> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(WorkerMsg::Command(cmd, tx))
            .await
            .map_err(|_| WorkerGone(self.index))?;
        rx.await.map_err(|_| WorkerGone(self.index))
    }

    /// Sends a `Join`, registering where the participant's notices go first.
    pub async fn join(
        &self,
        cmd: Command,
        notices: mpsc::Sender<Notice>,
    ) -> Result<Result<Reply, SfuError>, WorkerGone> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(WorkerMsg::Join(cmd, notices, tx))
            .await
            .map_err(|_| WorkerGone(self.index))?;
        rx.await.map_err(|_| WorkerGone(self.index))
    }

    /// Sends a `TapRoom`, registering where the room tap's events and packets go first.
    pub async fn tap_room(
        &self,
        cmd: Command,
        sink: TapSink,
    ) -> Result<Result<Reply, SfuError>, WorkerGone> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(WorkerMsg::TapRoom(cmd, sink, tx))
            .await
            .map_err(|_| WorkerGone(self.index))?;
        rx.await.map_err(|_| WorkerGone(self.index))
    }
}

/// Binds worker `index`'s socket and starts its thread.
pub fn spawn(
    index: usize,
    rtc: &RtcConfig,
    mut sfu_config: SfuConfig,
    registry: Arc<Registry>,
) -> anyhow::Result<WorkerHandle> {
    let socket = bind_udp(SocketAddr::new(rtc.bind_ip, rtc.udp_port_of(index)?), rtc)?;
    let local = socket.local_addr()?;
    let media_addr = SocketAddr::new(rtc.advertised_ip(), local.port());
    sfu_config.public_addr = Some(media_addr);
    let tcp = match rtc.tcp_port_of(index)? {
        Some(port) => Some(bind_tcp(SocketAddr::new(rtc.bind_ip, port))?),
        None => None,
    };
    let tcp_addr = match &tcp {
        Some(l) => Some(SocketAddr::new(rtc.advertised_ip(), l.local_addr()?.port())),
        None => None,
    };
    sfu_config.public_tcp_addr = tcp_addr;
    let tcp_limits = (
        rtc.tcp_max_connections,
        Duration::from_secs(rtc.tcp_idle_timeout_secs),
    );
    let sfu = Sfu::new(Instant::now(), sfu_config, (index as u64) << 40)
        .context("starting the SFU core")?;
    let batch_io = rtc.batch_io;
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    std::thread::Builder::new()
        .name(format!("tern-worker-{index}"))
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(rt) => rt.block_on(run(
                    index,
                    (socket, batch_io),
                    tcp.map(|l| (l, tcp_limits)),
                    sfu,
                    rx,
                    registry,
                )),
                Err(e) => {
                    tracing::error!(worker = index, error = %e, "worker runtime failed to start")
                }
            }
        })?;
    tracing::info!(worker = index, %local, advertised = %media_addr, tcp = ?tcp_addr, "worker started");
    Ok(WorkerHandle {
        index,
        media_addr,
        tcp_addr,
        tx,
    })
}

fn bind_udp(addr: SocketAddr, rtc: &RtcConfig) -> anyhow::Result<StdUdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Buffers are best effort: the kernel caps them at net.core.{r,w}mem_max.
    let _ = socket.set_recv_buffer_size(rtc.udp_recv_buffer);
    let _ = socket.set_send_buffer_size(rtc.udp_send_buffer);
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .with_context(|| format!("binding media socket {addr}"))?;
    Ok(socket.into())
}

/// Binds a worker's ICE-TCP listener.
fn bind_tcp(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .with_context(|| format!("binding ICE-TCP listener {addr}"))?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Resolves with the next connection, or never when ICE-TCP is off.
async fn accept(listener: &Option<TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => {
            let r = l.accept().await;
            if r.is_err() {
                // Out of file descriptors, most likely: do not spin on it.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            r
        }
        None => std::future::pending().await,
    }
}

/// Resolves with the next frame or closing, or never when ICE-TCP is off.
async fn tcp_event(events: &mut Option<mpsc::Receiver<TcpEvent>>) -> Option<TcpEvent> {
    match events {
        Some(e) => e.recv().await,
        None => std::future::pending().await,
    }
}

struct Shell {
    index: usize,
    socket: UdpSocket,
    /// Datagrams the core produced, sent a batch at a time.
    outbox: Outbox,
    tcp: Option<IceTcp>,
    sfu: Sfu,
    sessions: HashMap<ParticipantId, mpsc::Sender<Notice>>,
    registry: Arc<Registry>,
    /// Where each room tap's events go, and each of its taps' packets.
    room_sinks: HashMap<RoomTapId, TapSink>,
    tap_sinks: HashMap<TapId, TapSink>,
    /// Tap packets dropped because a recording's queue was full.
    tap_dropped: u64,
    /// From a forwarded datagram's arrival to its copies' departure.
    latency: ForwardLatency,
}

async fn run(
    index: usize,
    (socket, batch_io): (StdUdpSocket, bool),
    tcp: Option<(std::net::TcpListener, (usize, Duration))>,
    sfu: Sfu,
    mut rx: mpsc::Receiver<WorkerMsg>,
    registry: Arc<Registry>,
) {
    let socket = match UdpSocket::from_std(socket) {
        Ok(s) => s,
        Err(e) => return tracing::error!(worker = index, error = %e, "socket"),
    };
    let (tcp, listener, mut tcp_events) =
        match tcp.map(|(l, (max, idle))| IceTcp::new(l, max, idle)) {
            None => (None, None, None),
            Some(Ok((t, l, e))) => (Some(t), Some(l), Some(e)),
            Some(Err(e)) => return tracing::error!(worker = index, error = %e, "ICE-TCP listener"),
        };
    let mut shell = Shell {
        index,
        socket,
        outbox: Outbox::new(batch_io),
        tcp,
        sfu,
        sessions: HashMap::new(),
        registry,
        room_sinks: HashMap::new(),
        tap_sinks: HashMap::new(),
        tap_dropped: 0,
        latency: ForwardLatency::with_capacity(RECV_BATCHES * tern_udp::BATCH),
    };
    // Made here, on the worker's thread: the batch headers hold raw pointers. The kernel's
    // receive times measure forwarding latency; without them, it is measured from the receive
    // call's return.
    let mut inbox = Inbox::new(batch_io, MAX_MEDIA_DATAGRAM);
    if batch_io {
        match tern_udp::enable_receive_times(&shell.socket) {
            Ok(()) => inbox = inbox.with_receive_times(),
            Err(e) => tracing::debug!(worker = index, error = %e, "no kernel receive times"),
        }
    }
    let mut next_stats = Instant::now();
    loop {
        let wake = shell.drain();
        // Checked on every pass, not only by a timer: a worker kept busy by its socket still
        // records its counters on time. After the drain, so that every packet counted as
        // forwarded has been sent and its latency counted too.
        if Instant::now() >= next_stats {
            next_stats = Instant::now() + STATS_INTERVAL;
            let tcp = shell.tcp.as_ref().map(IceTcp::stats);
            crate::metrics::record_worker(index, &shell.sfu, shell.outbox.drops, tcp);
            crate::metrics::record_forward_latency(index, &shell.latency);
            crate::metrics::record_taps(index, shell.tap_dropped, shell.tap_sinks.len());
        }
        tokio::select! {
            r = shell.socket.readable() => if r.is_ok() { shell.receive(&mut inbox) },
            conn = accept(&listener) => match (conn, shell.tcp.as_mut()) {
                (Ok((stream, from)), Some(tcp)) => tcp.accepted(stream, from),
                (Err(e), _) => tracing::debug!(worker = index, error = %e, "ICE-TCP accept failed"),
                _ => {}
            },
            event = tcp_event(&mut tcp_events) => match event {
                Some(TcpEvent::Frame(from, frame)) => {
                    if !shell.sfu.handle_stream_frame(Instant::now(), from, &frame)
                        && let Some(tcp) = shell.tcp.as_mut()
                    {
                        tcp.close(from); // a connection no participant owns
                    }
                }
                Some(TcpEvent::Closed(from, id)) => {
                    if let Some(tcp) = shell.tcp.as_mut()
                        && tcp.closed(from, id)
                    {
                        shell.sfu.handle_stream_closed(from);
                    }
                }
                None => {}
            },
            msg = rx.recv() => match msg {
                Some(msg) => shell.handle_msg(msg),
                None => break,
            },
            _ = tokio::time::sleep_until(wake.into()) => shell.sfu.handle_timeout(Instant::now()),
            _ = tokio::time::sleep_until(next_stats.into()) => {}
        }
    }
    tracing::info!(worker = index, "worker stopped");
}

impl Shell {
    /// Hands the core what the socket has queued, up to a few batches.
    fn receive(&mut self, inbox: &mut Inbox) {
        for _ in 0..RECV_BATCHES {
            // Through `try_io`, so that an empty socket clears tokio's readiness.
            let n = match self
                .socket
                .try_io(Interest::READABLE, || inbox.recv(&self.socket))
            {
                Ok(n) => n,
                Err(_) => return, // WouldBlock: drained
            };
            let (now, wall) = (Instant::now(), SystemTime::now());
            for i in 0..n {
                let (datagram, from) = inbox.datagram(i);
                let forwarded = self.sfu.rtp_forwarded();
                self.sfu.handle_datagram(now, from, datagram);
                if self.sfu.rtp_forwarded() > forwarded {
                    self.latency.forwarded(inbox.received_at(i).unwrap_or(wall));
                }
            }
            if n < inbox.capacity() {
                return; // a short batch emptied the queue
            }
        }
    }

    fn handle_msg(&mut self, msg: WorkerMsg) {
        let now = Instant::now();
        match msg {
            WorkerMsg::Command(cmd, reply) => {
                let untapped = match &cmd {
                    Command::UntapRoom { tap, .. } => Some(*tap),
                    _ => None,
                };
                let result = self.sfu.handle_command(now, cmd);
                if let (Some(id), Ok(_)) = (untapped, &result) {
                    self.room_sinks.remove(&id);
                }
                let _ = reply.send(result);
            }
            WorkerMsg::Join(cmd, notices, reply) => {
                let Command::Join {
                    participant, room, ..
                } = &cmd
                else {
                    let _ = reply.send(Err(SfuError::Internal("join expected".into())));
                    return;
                };
                self.registry.opened(room, self.index);
                self.sessions.insert(*participant, notices);
                let participant = *participant;
                let result = self.sfu.handle_command(now, cmd);
                if result.is_err() {
                    self.sessions.remove(&participant);
                }
                let _ = reply.send(result);
            }
            WorkerMsg::TapRoom(cmd, sink, reply) => {
                let result = self.sfu.handle_command(now, cmd);
                if let Ok(Reply::RoomTapped(id)) = &result {
                    self.room_sinks.insert(*id, sink);
                }
                let _ = reply.send(result);
            }
        }
    }

    fn room_tap_event(&mut self, id: RoomTapId, event: RoomTapEvent) {
        let Some(sink) = self.room_sinks.get(&id) else {
            return;
        };
        if let RoomTapEvent::TrackTapped { tap, .. } = &event {
            self.tap_sinks.insert(*tap, sink.clone());
        }
        let closed = event == RoomTapEvent::Closed;
        let _ = sink.events.send(TapMessage::Event(event));
        if closed {
            self.room_sinks.remove(&id);
        }
    }

    /// Carries out every output of the core; returns when to wake up for its next timeout.
    fn drain(&mut self) -> Instant {
        let mut too_slow = Vec::new();
        loop {
            match self.sfu.poll_output() {
                Output::Transmit(t) if t.proto == str0m::net::Protocol::Tcp => {
                    if let Some(tcp) = self.tcp.as_mut() {
                        tcp.send(t.destination, &t.contents);
                    }
                }
                Output::Transmit(t) => self.outbox.send(&self.socket, &t.contents, t.destination),
                Output::CloseStream(from) => {
                    if let Some(tcp) = self.tcp.as_mut() {
                        tcp.close(from);
                    }
                }
                Output::Tap(tap, packet) => {
                    // A recording never slows the media path: a full queue drops the packet.
                    if let Some(sink) = self.tap_sinks.get(&tap)
                        && let Err(mpsc::error::TrySendError::Full(_)) =
                            sink.media.try_send((tap, packet))
                    {
                        self.tap_dropped += 1;
                    }
                }
                Output::TapEnded(tap) => {
                    if let Some(sink) = self.tap_sinks.remove(&tap) {
                        let _ = sink.events.send(TapMessage::Ended(tap));
                    }
                }
                Output::RoomTap(id, event) => self.room_tap_event(id, event),
                Output::Notice(to, notice) => {
                    let removed = matches!(notice, Notice::Removed(_));
                    // A full queue means the session fell behind; a closed one, that it is
                    // ending (its Leave is on the way).
                    let full = self.sessions.get(&to).is_some_and(|s| {
                        matches!(s.try_send(notice), Err(mpsc::error::TrySendError::Full(_)))
                    });
                    if full && !removed {
                        too_slow.push(to);
                    }
                    if removed {
                        self.sessions.remove(&to);
                    }
                }
                Output::RoomClosed(room) => self.registry.closed(&room, self.index),
                Output::Timeout(t) => {
                    if too_slow.is_empty() && t > Instant::now() {
                        self.outbox.flush(&self.socket);
                        if self.latency.waiting() {
                            self.latency.sent(SystemTime::now());
                        }
                        return t;
                    }
                    // A session that cannot keep up with its notices is cut off; the others go on.
                    for p in too_slow.drain(..) {
                        tracing::warn!(participant = %p, "signaling session too slow; removing it");
                        self.sessions.remove(&p);
                        let _ = self
                            .sfu
                            .handle_command(Instant::now(), Command::Leave { participant: p });
                    }
                    if t <= Instant::now() {
                        self.sfu.handle_timeout(Instant::now());
                    }
                }
            }
        }
    }
}
