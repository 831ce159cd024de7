//! The core of one worker: datagrams, commands and time in; transmits, notices and timeouts out.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::RtcConfig;
use str0m::bwe::{Bitrate, BweKind};
use str0m::net::{Protocol, Receive, TcpType, Transmit};
use str0m::{Event, IceConnectionState, Input, Rtc};

use crate::config::SfuConfig;
use crate::demux::{DatagramKind, classify, stun_local_ufrag};
use crate::ids::{IdMap, ParticipantId, TapId, TrackId};
use crate::participant::Participant;
use crate::room::Room;
use crate::signal::{LeaveReason, Notice, PcRole};
use crate::stats::SfuStats;
use crate::tap::{Tap, TapPacket};
use crate::track::{LayerRef, Track};

/// How often the core looks at slow timers (keyframe throttles, disconnect timeouts).
const HOUSEKEEPING: Duration = Duration::from_millis(100);

/// The most connection timers one `handle_timeout` runs.
const MAX_TIMER_RUNS: usize = 4096;

/// At most this many packets wait in one outgoing stream between releases. str0m's send queue
/// keeps the largest capacity it ever needed, about 450 bytes a slot: a keyframe of 100 packets
/// arriving in one receive batch would otherwise hold 44 KiB in that stream for good.
pub(crate) const MAX_QUEUED_PER_STREAM: u16 = 8;

/// A connection disconnected this long before it came back had an outage (see
/// `Sfu::after_outage`).
const OUTAGE: Duration = Duration::from_secs(2);

/// The least time between two resets of one subscriber's estimate after outages.
const OUTAGE_RESETS: Duration = Duration::from_secs(10);

/// How often every subscriber's bandwidth is shared again, besides on each new estimate.
const REALLOCATION: Duration = Duration::from_millis(500);

/// What the shell must do next. Drain [`Sfu::poll_output`] until it returns `Timeout`.
#[derive(Debug)]
pub enum Output {
    /// Send this datagram from the worker's socket.
    Transmit(Transmit),
    /// Deliver this notice to the participant's signaling session.
    Notice(ParticipantId, Notice),
    /// A room became empty and was closed.
    RoomClosed(String),
    /// Close the ICE-TCP connection from this remote address: its participant is gone.
    CloseStream(SocketAddr),
    /// A packet for a tap's consumer (hand it to a bounded queue; drop and count when full).
    Tap(TapId, TapPacket),
    /// A tap ended because its track did (or its room tap ended).
    TapEnded(TapId),
    /// Something a room tap's holder is told.
    RoomTap(crate::RoomTapId, crate::RoomTapEvent),
    /// Nothing more to do until this time, or until the next input.
    Timeout(Instant),
}

/// Where a datagram came from: a remote address, over the worker's UDP socket or over one of its
/// ICE-TCP connections (RFC 6544).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Remote {
    pub tcp: bool,
    pub addr: SocketAddr,
}

/// One of a participant's two connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PcKey {
    pub participant: ParticipantId,
    pub role: PcRole,
}

/// The SFU core of one worker. Sans-IO: every method takes the current time.
pub struct Sfu {
    pub(crate) config: SfuConfig,
    /// Every connection is built from this: ICE-lite, RTP mode, our codecs, the worker's cert.
    rtc_template: RtcConfig,
    pub(crate) rooms: HashMap<Arc<str>, Room>,
    pub(crate) participants: IdMap<ParticipantId, Participant>,
    pub(crate) tracks: IdMap<TrackId, Track>,
    pub(crate) taps: IdMap<TapId, Tap>,
    pub(crate) room_taps: HashMap<crate::RoomTapId, crate::room_tap::RoomTap>,
    /// Remote address to connection. The worker has one UDP socket and one TCP listener, so the
    /// transport and the remote address are the only parts of the 5-tuple that vary.
    routes: HashMap<Remote, PcKey>,
    /// Server ICE ufrag to connection, for the first STUN packet of a new remote address.
    pub(crate) ufrags: HashMap<String, PcKey>,
    timers: BinaryHeap<Reverse<(Instant, PcKey)>>,
    next_housekeeping: Instant,
    next_reallocation: Instant,
    pub(crate) outputs: VecDeque<Output>,
    pub(crate) events: VecDeque<(PcKey, Event)>,
    /// Participants to remove once the current input is handled.
    pub(crate) doomed: Vec<(ParticipantId, LeaveReason)>,
    /// Participants whose subscriber connection may need a new offer once the current input is
    /// handled, after every notice it caused.
    to_negotiate: Vec<ParticipantId>,
    /// Subscriber connections RTP was written to since the shell last polled the core, and
    /// the time of the input that wrote it.
    polls_queued: Vec<ParticipantId>,
    written_at: Instant,
    /// Reused buffer for a track's subscriber list while forwarding.
    pub(crate) scratch: Vec<ParticipantId>,
    pub(crate) next_track: u64,
    /// The room where an audio track started or stopped speaking during this input.
    pub(crate) speakers_changed: Option<Arc<str>>,
    pub(crate) stats: SfuStats,
}

impl Sfu {
    /// A core with this config. `track_id_base` keeps track ids of different workers apart.
    pub fn new(
        now: Instant,
        config: SfuConfig,
        track_id_base: u64,
    ) -> Result<Self, crate::SfuError> {
        let provider = str0m::crypto::from_feature_flags();
        let dtls_cert = provider
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| crate::SfuError::Internal("no DTLS certificate".into()))?;
        let rtc_template = Rtc::builder()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .clear_codecs()
            // Opus with RED (RFC 2198): browsers then send each audio packet with the previous.
            .enable_opus(true, true)
            .enable_vp8(true)
            .enable_h264(true)
            .set_dtls_cert(dtls_cert);
        Ok(Self {
            config,
            rtc_template,
            rooms: HashMap::new(),
            participants: IdMap::default(),
            tracks: IdMap::default(),
            taps: IdMap::default(),
            room_taps: HashMap::new(),
            routes: HashMap::new(),
            ufrags: HashMap::new(),
            timers: BinaryHeap::new(),
            next_housekeeping: now,
            next_reallocation: now,
            outputs: VecDeque::new(),
            events: VecDeque::new(),
            doomed: Vec::new(),
            to_negotiate: Vec::new(),
            polls_queued: Vec::new(),
            written_at: now,
            scratch: Vec::new(),
            next_track: track_id_base,
            speakers_changed: None,
            stats: SfuStats::default(),
        })
    }

    /// Counters since start.
    pub fn stats(&self) -> SfuStats {
        self.stats
    }

    /// RTP packets forwarded since start (`stats().rtp_forwarded`, without copying the rest).
    pub fn rtp_forwarded(&self) -> u64 {
        self.stats.rtp_forwarded
    }

    /// Rooms, participants and tracks on this core now.
    pub fn gauges(&self) -> (usize, usize, usize) {
        (self.rooms.len(), self.participants.len(), self.tracks.len())
    }

    /// A datagram arrived on the worker's UDP socket from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.handle_input(
            now,
            Remote {
                tcp: false,
                addr: from,
            },
            datagram,
        );
    }

    /// A frame (RFC 4571) arrived on the ICE-TCP connection from `from`. Returns false when no
    /// participant owns that connection: the shell closes it.
    pub fn handle_stream_frame(&mut self, now: Instant, from: SocketAddr, frame: &[u8]) -> bool {
        self.handle_input(
            now,
            Remote {
                tcp: true,
                addr: from,
            },
            frame,
        )
    }

    fn handle_input(&mut self, now: Instant, from: Remote, datagram: &[u8]) -> bool {
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += datagram.len() as u64;
        let kind = classify(datagram);
        if matches!(kind, DatagramKind::Unknown | DatagramKind::TurnChannel) {
            self.stats.dropped_malformed += 1;
            return self.routes.contains_key(&from);
        }
        let Some(key) = self.route(from, kind, datagram) else {
            self.stats.dropped_unrouted += 1;
            return false;
        };
        let (proto, local) = if from.tcp {
            (Protocol::Tcp, self.config.public_tcp_addr)
        } else {
            (Protocol::Udp, self.config.public_addr)
        };
        let Some(local) = local else {
            return false;
        };
        let Ok(receive) = Receive::new(proto, from.addr, local, datagram) else {
            self.stats.dropped_malformed += 1;
            return true;
        };
        let Some(p) = self.participants.get_mut(&key.participant) else {
            return false;
        };
        let pc = p.pc_mut(key.role);
        // Handling input runs str0m's timeout step too, which releases written packets.
        pc.releases = pc.releases.wrapping_add(1);
        if let Err(e) = pc.rtc.handle_input(Input::Receive(now, receive)) {
            tracing::debug!(participant = %key.participant, error = %e, "input rejected");
            self.stats.dropped_malformed += 1;
        }
        self.drain(key);
        self.finish_input(now);
        true
    }

    /// Time passed: run due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        // A connection may ask again for `now` after each run (str0m's pacer sends one packet
        // per timeout), so its due timer runs again in this call, up to a bound: whatever is
        // left waits for the next call instead of spinning here.
        let mut runs = 0;
        while let Some(Reverse((at, key))) = self.timers.peek().copied() {
            if at > now || runs == MAX_TIMER_RUNS {
                break;
            }
            runs += 1;
            self.timers.pop();
            let Some(p) = self.participants.get_mut(&key.participant) else {
                continue;
            };
            let pc = p.pc_mut(key.role);
            if !pc.timer_armed || pc.next_timeout != at {
                continue; // superseded by a later poll
            }
            pc.timer_armed = false;
            pc.releases = pc.releases.wrapping_add(1);
            if let Err(e) = pc.rtc.handle_input(Input::Timeout(now)) {
                tracing::debug!(participant = %key.participant, error = %e, "timeout failed");
            }
            self.drain(key);
        }
        if self.next_housekeeping <= now {
            self.housekeeping(now);
            self.next_housekeeping = now + HOUSEKEEPING;
        }
        self.finish_input(now);
    }

    /// The next output. Returns `Timeout` when there is nothing to do before that time.
    pub fn poll_output(&mut self) -> Output {
        if self.outputs.is_empty() {
            self.poll_queued();
        }
        if let Some(o) = self.outputs.pop_front() {
            return o;
        }
        let rtc_due = self.timers.peek().map(|Reverse((t, _))| *t);
        Output::Timeout(rtc_due.map_or(self.next_housekeeping, |t| t.min(self.next_housekeeping)))
    }

    fn route(&mut self, from: Remote, kind: DatagramKind, datagram: &[u8]) -> Option<PcKey> {
        if let Some(key) = self.routes.get(&from) {
            return Some(*key);
        }
        if kind != DatagramKind::Stun {
            return None;
        }
        let key = *self.ufrags.get(stun_local_ufrag(datagram)?)?;
        let p = self.participants.get_mut(&key.participant)?;
        p.pc_mut(key.role).remotes.push(from);
        self.routes.insert(from, key);
        Some(key)
    }

    /// The ICE-TCP connection from `from` ended: forget its route. Its participant stays; ICE
    /// moves to another pair or, failing that, the disconnect timeout removes it.
    pub fn handle_stream_closed(&mut self, from: SocketAddr) {
        let remote = Remote {
            tcp: true,
            addr: from,
        };
        let Some(key) = self.routes.remove(&remote) else {
            return;
        };
        if let Some(p) = self.participants.get_mut(&key.participant) {
            p.pc_mut(key.role).remotes.retain(|r| *r != remote);
        }
    }

    /// Forget the routes of a removed connection, and have its TCP connections closed.
    pub(crate) fn unroute(&mut self, remotes: &[Remote], ufrag: &str) {
        for r in remotes {
            self.routes.remove(r);
            if r.tcp {
                self.outputs.push_back(Output::CloseStream(r.addr));
            }
        }
        self.ufrags.remove(ufrag);
    }

    /// RTP was written to `subscriber`'s connection: poll it when the shell next polls the core,
    /// once for everything written while the shell handed in a batch of datagrams, rather than
    /// once per packet (each poll walks all the connection's streams).
    pub(crate) fn queue_poll(&mut self, now: Instant, subscriber: ParticipantId) {
        let Some(p) = self.participants.get_mut(&subscriber) else {
            return;
        };
        if !p.subscriber.poll_queued {
            p.subscriber.poll_queued = true;
            self.polls_queued.push(subscriber);
        }
        self.written_at = now;
    }

    /// Send now what was written to `subscriber`'s connection, rather than when the shell next
    /// polls the core: one stream has [`MAX_QUEUED_PER_STREAM`] packets waiting. With
    /// congestion control on, str0m's pacer hands out one packet per timeout, so this runs
    /// timeouts until a poll sends nothing (as the timers would, right after the batch).
    pub(crate) fn release_now(&mut self, now: Instant, subscriber: ParticipantId) {
        let key = PcKey {
            participant: subscriber,
            role: PcRole::Subscriber,
        };
        for _ in 0..MAX_TIMER_RUNS {
            let Some(p) = self.participants.get_mut(&subscriber) else {
                return;
            };
            let pc = &mut p.subscriber;
            pc.releases = pc.releases.wrapping_add(1);
            if let Err(e) = pc.rtc.handle_input(Input::Timeout(now)) {
                tracing::debug!(participant = %subscriber, error = %e, "timeout failed");
            }
            if self.drain(key) == 0 {
                return;
            }
        }
    }

    /// Poll the connections [`Self::queue_poll`] queued, and handle what that produced.
    fn poll_queued(&mut self) {
        let mut queued = std::mem::take(&mut self.polls_queued);
        while !queued.is_empty() {
            for id in queued.drain(..) {
                if let Some(p) = self.participants.get_mut(&id) {
                    p.subscriber.poll_queued = false;
                    self.drain(PcKey {
                        participant: id,
                        role: PcRole::Subscriber,
                    });
                }
            }
            self.finish_input(self.written_at);
            // Handling events may have written more.
            std::mem::swap(&mut queued, &mut self.polls_queued);
        }
        self.polls_queued = queued;
    }

    /// Poll one connection until it wants a timeout, queueing transmits and events. Returns
    /// how many datagrams it queued.
    pub(crate) fn drain(&mut self, key: PcKey) -> usize {
        let Some(p) = self.participants.get_mut(&key.participant) else {
            return 0;
        };
        let pc = p.pc_mut(key.role);
        let mut sent = 0;
        loop {
            match pc.rtc.poll_output() {
                Ok(str0m::Output::Timeout(t)) => {
                    if t != pc.next_timeout || !pc.timer_armed {
                        pc.next_timeout = t;
                        pc.timer_armed = true;
                        self.timers.push(Reverse((t, key)));
                    }
                    break;
                }
                Ok(str0m::Output::Transmit(t)) => {
                    sent += 1;
                    self.stats.datagrams_out += 1;
                    self.stats.bytes_out += t.contents.len() as u64;
                    self.outputs.push_back(Output::Transmit(t));
                }
                Ok(str0m::Output::Event(e)) => self.events.push_back((key, e)),
                Err(e) => {
                    tracing::info!(participant = %key.participant, error = %e, "connection failed");
                    self.stats.rtc_errors += 1;
                    self.doomed
                        .push((key.participant, LeaveReason::ConnectionLost));
                    break;
                }
            }
        }
        sent
    }

    /// Handle queued events, remove doomed participants, then send the offers all that needs.
    pub(crate) fn finish_input(&mut self, now: Instant) {
        loop {
            while let Some((key, event)) = self.events.pop_front() {
                self.on_event(now, key, event);
            }
            if let Some((participant, reason)) = self.doomed.pop() {
                self.remove_participant(now, participant, reason);
            } else if let Some(participant) = self.to_negotiate.pop() {
                self.negotiate(participant);
            } else {
                break;
            }
        }
    }

    /// Offer the participant's subscriber connection anew once the current input is handled.
    pub(crate) fn schedule_negotiation(&mut self, id: ParticipantId) {
        if !self.to_negotiate.contains(&id) {
            self.to_negotiate.push(id);
        }
    }

    fn on_event(&mut self, now: Instant, key: PcKey, event: Event) {
        match event {
            Event::RtpPacket(packet) if key.role == PcRole::Publisher => {
                self.forward(now, key.participant, packet);
            }
            Event::KeyframeRequest(req) if key.role == PcRole::Subscriber => {
                self.on_keyframe_request(now, key.participant, req.mid);
            }
            Event::MediaAdded(m) if key.role == PcRole::Publisher => {
                self.on_publisher_media(now, key.participant, m.mid, m.kind, m.direction);
            }
            Event::MediaChanged(m) if key.role == PcRole::Publisher => {
                self.on_publisher_media_changed(now, key.participant, m.mid, m.direction);
            }
            Event::IceConnectionStateChange(state) => self.on_ice_state(now, key, state),
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. })
                if key.role == PcRole::Subscriber =>
            {
                self.on_estimate(now, key.participant, estimate.as_u64());
            }
            Event::ChannelOpen(channel, label) if key.role == PcRole::Publisher => {
                self.on_channel_open(key.participant, channel, &label);
            }
            Event::ChannelData(data) if key.role == PcRole::Publisher => {
                self.on_channel_data(now, key.participant, data);
            }
            Event::ChannelClose(channel) if key.role == PcRole::Publisher => {
                self.on_channel_close(key.participant, channel);
            }
            Event::Connected if key.role == PcRole::Subscriber => {
                self.on_subscriber_connected(now, key.participant);
            }
            Event::Closed => self
                .doomed
                .push((key.participant, LeaveReason::ConnectionLost)),
            _ => {}
        }
    }

    fn on_ice_state(&mut self, now: Instant, key: PcKey, state: IceConnectionState) {
        let Some(p) = self.participants.get_mut(&key.participant) else {
            return;
        };
        let pc = p.pc_mut(key.role);
        match state {
            IceConnectionState::Connected | IceConnectionState::Completed => {
                pc.ever_connected = true;
                let down = pc.disconnected_since.take();
                let outage = down.is_some_and(|t| now.saturating_duration_since(t) >= OUTAGE);
                if outage && key.role == PcRole::Subscriber {
                    self.after_outage(now, key.participant);
                }
            }
            IceConnectionState::Disconnected => {
                pc.disconnected_since.get_or_insert(now);
            }
            _ => {}
        }
    }

    /// The subscriber connection is back after an outage, or on a new path (the client
    /// restarted ICE). What its estimate learnt meanwhile is the outage (nothing acknowledged),
    /// not the path: start again from the configured initial estimate, as a new connection
    /// does, so video does not stay paused while the estimate climbs back. At most once per
    /// [`OUTAGE_RESETS`], so a client cannot keep its estimate up by asking.
    pub(crate) fn after_outage(&mut self, now: Instant, id: ParticipantId) {
        let initial = self.config.bwe_initial_kbps * 1000;
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        if p.estimate.is_none() || p.bwe_reset.is_some_and(|t| now < t + OUTAGE_RESETS) {
            return; // no estimator (congestion control off), no estimate yet, or just reset
        }
        p.bwe_reset = Some(now);
        p.stall = Default::default();
        p.subscriber.rtc.bwe().reset(Bitrate::bps(initial));
        p.estimate = Some(initial);
        self.reallocate(now, id);
    }

    fn housekeeping(&mut self, now: Instant) {
        self.check_stale_layers(now);
        self.update_dynacast(now);
        self.update_speakers(now);
        self.report_quality(now);
        if now >= self.next_reallocation {
            // Layer bitrates are measured anew every half second: share the estimates again.
            self.next_reallocation = now + REALLOCATION;
            let ids: Vec<ParticipantId> = self.participants.keys().copied().collect();
            for id in ids {
                self.reallocate(now, id);
            }
        }
        let mut due = Vec::new();
        for (id, t) in self.tracks.iter_mut() {
            for (i, layer) in t.layers.iter_mut().enumerate() {
                if layer.keyframes.poll_due(now) {
                    due.push(LayerRef {
                        track: *id,
                        layer: i as u8,
                    });
                }
            }
        }
        for at in due {
            self.send_keyframe_request(at);
        }
        let timeout = self.config.disconnect_timeout();
        for p in self.participants.values() {
            let lost = [&p.publisher, &p.subscriber].into_iter().any(|pc| {
                pc.disconnected_since.is_some_and(|t| now >= t + timeout)
                    || (pc.ever_connected && !pc.rtc.is_alive())
            });
            if lost {
                self.doomed.push((p.id(), LeaveReason::ConnectionLost));
            }
        }
    }

    /// Build a connection in ICE-lite, RTP mode, with our codecs and the worker's candidate.
    pub(crate) fn new_rtc(
        &self,
        now: Instant,
        role: PcRole,
    ) -> Result<(Rtc, String), crate::SfuError> {
        let addr = self
            .config
            .public_addr
            .ok_or_else(|| crate::SfuError::Internal("worker has no public address".into()))?;
        let mut config = self.rtc_template.clone();
        if role == PcRole::Subscriber && self.config.congestion_control {
            // Send-side bandwidth estimation on what we send: the allocator shares it.
            let initial = Bitrate::kbps(self.config.bwe_initial_kbps);
            config = config.enable_bwe(Some(initial));
        }
        let mut rtc = config.build(now);
        let candidate = str0m::Candidate::host(addr, "udp")
            .map_err(|e| crate::SfuError::Internal(format!("host candidate: {e}")))?;
        rtc.add_local_candidate(candidate);
        if let Some(tcp) = self.config.public_tcp_addr {
            // RFC 6544: a passive candidate; clients connect to it (Firefox needs the tcptype).
            let candidate = str0m::Candidate::builder()
                .tcp()
                .host(tcp)
                .tcptype(TcpType::Passive)
                .build()
                .map_err(|e| crate::SfuError::Internal(format!("TCP host candidate: {e}")))?;
            rtc.add_local_candidate(candidate);
        }
        let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
        Ok((rtc, ufrag))
    }
}
