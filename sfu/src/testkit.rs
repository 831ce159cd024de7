//! An in-memory network of str0m clients around one [`Sfu`], driven by a fake clock. Used by the
//! scenario tests and the benches (feature `testkit`); not part of the server.
//!
//! Each client is what a browser is to tern: a publisher `Rtc` that offers and a subscriber `Rtc`
//! that answers the server's offers. The harness plays the signaling too: it hands offers and
//! answers across, and records every notice per participant.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::{
    Command, LayerRequest, Notice, Output, ParticipantId, Permissions, Reply, Sfu, SfuConfig,
    TapId, TapPacket, TrackHint, TrackId, TrackSource,
};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::rtp::{ExtensionValues, RedEncoder, RedundantBlock, RtpPacket, RtpWrite};
use str0m::{Candidate, Event, Input, Output as RtcOutput, Rtc};
pub use str0m_netem::{Bitrate, DataSize, LossModel, NetemConfig, Probability, RandomLoss};
use str0m_netem::{Input as NetInput, Netem, Output as NetOutput};

/// The core's advertised address.
pub const SERVER: &str = "127.0.0.1:5000";
/// The core's advertised ICE-TCP address.
pub const SERVER_TCP: &str = "127.0.0.1:5001";
/// Fake-clock step of [`Net::run_for`].
pub const STEP: Duration = Duration::from_millis(2);
/// The most times the core is woken between two steps.
const MAX_CORE_WAKES_PER_STEP: usize = 64;

/// One client: two connections, what it received, and what the server told it.
pub struct Client {
    /// Its participant id.
    pub id: ParticipantId,
    /// The publisher connection (we offer).
    pub publisher: Rtc,
    /// The subscriber connection (the server offers).
    pub subscriber: Rtc,
    /// Address of the publisher connection.
    pub pub_addr: SocketAddr,
    /// Address of the subscriber connection.
    pub sub_addr: SocketAddr,
    /// Everything the server told it.
    pub notices: Vec<Notice>,
    /// Tracks listed in the join reply.
    pub tracks_at_join: Vec<TrackId>,
    /// Subscriber m-lines by the track they carry, read from the msid of the server's offers.
    pub track_mids: HashMap<TrackId, Mid>,
    /// RTP packets received on the subscriber connection, by mid.
    pub received: HashMap<Mid, Vec<RtpPacket>>,
    /// Keyframe requests received on the publisher connection.
    pub keyframe_requests: usize,
    /// The server's answers to the publisher connection's offers, as sent.
    pub answers: Vec<String>,
    /// The client's network is cut: nothing it sends reaches the server.
    pub cut: bool,
    /// The client speaks ICE-TCP only.
    pub tcp: bool,
    /// Drop this many of the next media-sized RTP datagrams the server sends to this client.
    pub drop_inbound_rtp: usize,
    /// Drop this many of the next media-sized RTP datagrams this client sends to the server.
    pub drop_outbound_rtp: usize,
    /// The emulated link from the server to this client's subscriber connection (UDP), when
    /// set with [`Net::set_downlink`]: delay, jitter, loss, rate cap.
    downlink: Option<Netem<Vec<u8>>>,
}

/// The server core, its clients and the fake clock.
pub struct Net {
    /// The fake clock.
    pub now: Instant,
    /// The core under test.
    pub sfu: Sfu,
    /// The clients, by index.
    pub clients: Vec<Client>,
    /// Rooms the core reported closed.
    pub closed_rooms: Vec<String>,
    /// ICE-TCP connections the core asked to close.
    pub closed_streams: Vec<SocketAddr>,
    /// What each tap received.
    pub tapped: HashMap<TapId, Vec<TapPacket>>,
    /// Taps the core ended.
    pub ended_taps: Vec<TapId>,
    /// What each room tap's holder was told, in order.
    pub room_tap_events: HashMap<crate::RoomTapId, Vec<crate::RoomTapEvent>>,
    /// Record the RTP media clients send to the server instead of delivering it (for benches);
    /// everything else (STUN, DTLS, RTCP) is still delivered.
    pub capture: Option<Vec<(SocketAddr, Vec<u8>)>>,
    next_port: u16,
    /// When the core last asked to be woken.
    core_timeout: Option<Instant>,
}

impl Net {
    /// A core with the default config.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self::with_config(SfuConfig::default())
    }

    /// A core with `config` (its `public_addr` is set to [`SERVER`]).
    pub fn with_config(mut config: SfuConfig) -> Self {
        let now = Instant::now();
        config.public_addr = Some(SERVER.parse().expect("addr"));
        config.public_tcp_addr = Some(SERVER_TCP.parse().expect("addr"));
        Self {
            now,
            sfu: Sfu::new(now, config, 0).expect("core"),
            clients: Vec::new(),
            closed_rooms: Vec::new(),
            closed_streams: Vec::new(),
            tapped: HashMap::new(),
            ended_taps: Vec::new(),
            room_tap_events: HashMap::new(),
            capture: None,
            next_port: 10_000,
            core_timeout: None,
        }
    }

    /// A client joins `room` with full permissions and auto-subscribe; returns its index.
    pub fn join(&mut self, room: &str, identity: &str) -> usize {
        self.join_with(room, identity, Permissions::ALL, true)
    }

    /// A client whose network carries no UDP joins `room`: both its connections use ICE-TCP
    /// (an active TCP candidate, RFC 6544) and every frame reaches the core as a stream frame.
    pub fn join_over_tcp(&mut self, room: &str, identity: &str) -> usize {
        let all = Permissions::ALL;
        self.join_as(room, identity, all, true, true)
    }

    /// A client joins with these permissions; returns its index.
    pub fn join_with(
        &mut self,
        room: &str,
        identity: &str,
        permissions: Permissions,
        auto_subscribe: bool,
    ) -> usize {
        self.join_as(room, identity, permissions, auto_subscribe, false)
    }

    fn join_as(
        &mut self,
        room: &str,
        identity: &str,
        permissions: Permissions,
        auto_subscribe: bool,
        tcp: bool,
    ) -> usize {
        let id = ParticipantId(self.clients.len() as u64 + 1);
        let pub_addr: SocketAddr = format!("127.0.0.2:{}", self.next_port)
            .parse()
            .expect("addr");
        let sub_addr: SocketAddr = format!("127.0.0.3:{}", self.next_port)
            .parse()
            .expect("addr");
        self.next_port += 1;
        let video = [Codec::Vp8, Codec::H264];
        let mut client = Client {
            id,
            publisher: client_rtc_with(self.now, pub_addr, &video, tcp, false),
            subscriber: client_rtc_with(self.now, sub_addr, &video, tcp, false),
            tcp,
            pub_addr,
            sub_addr,
            notices: Vec::new(),
            tracks_at_join: Vec::new(),
            track_mids: HashMap::new(),
            received: HashMap::new(),
            keyframe_requests: 0,
            answers: Vec::new(),
            cut: false,
            drop_inbound_rtp: 0,
            drop_outbound_rtp: 0,
            downlink: None,
        };
        client.publisher.direct_api().set_ice_controlling(true);
        self.clients.push(client);
        let reply = self
            .command(Command::Join {
                participant: id,
                room: room.into(),
                identity: identity.into(),
                name: identity.into(),
                permissions,
                auto_subscribe,
            })
            .expect("join succeeds");
        let Reply::Joined { tracks, .. } = reply else {
            panic!("{reply:?}")
        };
        let i = self.clients.len() - 1;
        self.clients[i].tracks_at_join = tracks.iter().map(|t| t.id).collect();
        i
    }

    /// Runs a command on the core, then lets the network settle.
    pub fn command(&mut self, cmd: Command) -> Result<Reply, crate::SfuError> {
        let r = self.sfu.handle_command(self.now, cmd);
        self.pump();
        r
    }

    /// Client `i` adds sending m-lines of these kinds and negotiates; returns their mids.
    pub fn publish(&mut self, i: usize, kinds: &[MediaKind]) -> Vec<Mid> {
        let kinds: Vec<(MediaKind, Option<Simulcast>)> = kinds.iter().map(|k| (*k, None)).collect();
        self.publish_with(i, kinds)
    }

    /// Client `i` publishes a camera as simulcast layers with these rids (RFC 8853), and
    /// negotiates; returns its mid. Send on a layer with [`Net::send_layer`].
    pub fn publish_simulcast(&mut self, i: usize, rids: &[&str]) -> Mid {
        let mut simulcast = Simulcast::new();
        for rid in rids {
            simulcast.add_send_layer(SimulcastLayer::new(rid));
        }
        self.publish_with(i, vec![(MediaKind::Video, Some(simulcast))])[0]
    }

    fn publish_with(&mut self, i: usize, media: Vec<(MediaKind, Option<Simulcast>)>) -> Vec<Mid> {
        let c = &mut self.clients[i];
        let mut api = c.publisher.sdp_api();
        let kinds: Vec<MediaKind> = media.iter().map(|(k, _)| *k).collect();
        let mids: Vec<Mid> = media
            .into_iter()
            .map(|(k, sim)| api.add_media(k, Direction::SendOnly, None, None, sim))
            .collect();
        let (offer, pending) = api.apply().expect("a change to offer");
        let hints = mids
            .iter()
            .zip(&kinds)
            .map(|(m, k)| TrackHint {
                mid: m.to_string(),
                source: if *k == MediaKind::Audio {
                    TrackSource::Microphone
                } else {
                    TrackSource::Camera
                },
            })
            .collect();
        let id = c.id;
        let reply = self
            .command(Command::PublisherOffer {
                participant: id,
                sdp: offer.to_sdp_string(),
                tracks: hints,
            })
            .expect("offer accepted");
        let Reply::Answer(answer_sdp) = reply else {
            panic!("expected an answer, got {reply:?}")
        };
        let answer = SdpAnswer::from_sdp_string(&answer_sdp).expect("answer parses");
        self.clients[i].answers.push(answer_sdp);
        self.clients[i]
            .publisher
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("answer accepted");
        self.pump();
        mids
    }

    /// Client `i`'s publisher connection, not yet negotiated, offers `codec` (VP8 or H.264)
    /// as its only video codec, so that is what it will send in.
    pub fn publish_video_codec_only(&mut self, i: usize, codec: Codec) {
        let c = &mut self.clients[i];
        c.publisher = client_rtc_with(self.now, c.pub_addr, &[codec], c.tcp, false);
        c.publisher.direct_api().set_ice_controlling(true);
    }

    /// Client `i`'s subscriber connection, not yet offered anything, can receive only `codec`
    /// among the video codecs.
    pub fn receive_only_video_codec(&mut self, i: usize, codec: Codec) {
        let c = &mut self.clients[i];
        c.subscriber = client_rtc_with(self.now, c.sub_addr, &[codec], c.tcp, false);
    }

    /// Client `i` stops sending on `mid` and renegotiates.
    pub fn unpublish(&mut self, i: usize, mid: Mid) {
        let c = &mut self.clients[i];
        let mut api = c.publisher.sdp_api();
        api.set_direction(mid, Direction::Inactive);
        let (offer, pending) = api.apply().expect("a change to offer");
        let id = c.id;
        let Ok(Reply::Answer(answer)) = self.command(Command::PublisherOffer {
            participant: id,
            sdp: offer.to_sdp_string(),
            tracks: vec![],
        }) else {
            panic!("offer refused")
        };
        let answer = SdpAnswer::from_sdp_string(&answer).expect("answer parses");
        self.clients[i]
            .publisher
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("accepted");
        self.pump();
    }

    /// Client `i` writes one RTP packet on `mid` (Opus for audio, VP8 for video).
    pub fn send_rtp(&mut self, i: usize, mid: Mid, seq: u64, ts: u32, payload: &[u8]) {
        let kind = self.clients[i].publisher.media(mid).expect("media").kind();
        let codec = if kind == MediaKind::Audio {
            Codec::Opus
        } else {
            Codec::Vp8
        };
        self.send_rtp_as(i, mid, codec, seq, ts, payload);
    }

    /// Client `i` writes one RTP packet on `mid` with the payload type of `codec`.
    pub fn send_rtp_as(
        &mut self,
        i: usize,
        mid: Mid,
        codec: Codec,
        seq: u64,
        ts: u32,
        payload: &[u8],
    ) {
        let write = RtpWrite::new(
            self.pt(i, codec),
            seq.into(),
            ts,
            self.now,
            payload.to_vec(),
        )
        .marker(true)
        .nackable(true);
        let mut api = self.clients[i].publisher.direct_api();
        let tx = api.stream_tx_by_mid(mid, None).expect("send stream");
        tx.write_rtp(write);
    }

    /// The payload type client `i`'s publisher connection negotiated for `codec`.
    fn pt(&self, i: usize, codec: Codec) -> str0m::media::Pt {
        self.clients[i]
            .publisher
            .codec_config()
            .find(|p| p.spec().codec == codec)
            .expect("the codec was negotiated")
            .pt()
    }

    /// Client `i`'s connections, not yet negotiated, offer Opus with RED (RFC 2198) as browsers
    /// do: it may then send RED ([`Net::send_red`]) and receives RED where tern sends it.
    pub fn use_red(&mut self, i: usize) {
        let c = &mut self.clients[i];
        c.publisher = client_rtc_with(self.now, c.pub_addr, &[Codec::Vp8], c.tcp, true);
        c.publisher.direct_api().set_ice_controlling(true);
        c.subscriber = client_rtc_with(self.now, c.sub_addr, &[Codec::Vp8], c.tcp, true);
    }

    /// Client `i` writes one RED packet on `mid`: Opus packet `n` ([`opus_payload`]) with packet
    /// `n - 1` as its redundancy, as a browser sends.
    pub fn send_red(&mut self, i: usize, mid: Mid, n: u32) {
        let now = self.now;
        let c = &mut self.clients[i];
        let opus = *c
            .publisher
            .codec_config()
            .find(|p| p.spec().codec == Codec::Opus)
            .expect("opus");
        let red = opus.red().expect("the client negotiated RED");
        let previous = (n > 0).then(|| RedundantBlock {
            pt: *opus.pt(),
            timestamp_offset: 960,
            payload: opus_payload(n - 1),
        });
        let payload = RedEncoder::encode(*opus.pt(), &opus_payload(n), previous.as_slice());
        let mut api = c.publisher.direct_api();
        let tx = api.stream_tx_by_mid(mid, None).expect("send stream");
        tx.write_rtp(RtpWrite::new(
            red,
            u64::from(n + 1).into(),
            n * 960,
            now,
            payload,
        ));
    }

    /// Client `i` writes one 20 ms Opus packet numbered `n` on `mid`, with an RFC 6464 audio
    /// level of `dbov` (-dBov: 0 is the loudest, 127 silence).
    pub fn send_audio_level(&mut self, i: usize, mid: Mid, n: u32, dbov: u8) {
        let exts = ExtensionValues {
            audio_level: Some(-(dbov.min(127) as i8)),
            voice_activity: Some(dbov < 127),
            ..Default::default()
        };
        let pt = self.pt(i, Codec::Opus);
        let write = RtpWrite::new(pt, u64::from(n).into(), n * 960, self.now, opus_payload(n))
            .ext_vals(exts);
        let mut api = self.clients[i].publisher.direct_api();
        let tx = api.stream_tx_by_mid(mid, None).expect("send stream");
        tx.write_rtp(write);
    }

    /// Client `i` writes one VP8 packet on the simulcast layer `rid` of `mid`.
    pub fn send_layer(&mut self, i: usize, mid: Mid, rid: &str, seq: u64, ts: u32, payload: &[u8]) {
        let pt = self.pt(i, Codec::Vp8);
        let write = RtpWrite::new(pt, seq.into(), ts, self.now, payload.to_vec())
            .marker(true)
            .nackable(true);
        let mut api = self.clients[i].publisher.direct_api();
        let tx = api
            .stream_tx_by_mid(mid, Some(rid.into()))
            .expect("a send stream for the layer");
        tx.write_rtp(write);
    }

    /// Client `i` tells the server how it shows `track` (see [`Command::TrackSettings`]).
    pub fn track_settings(&mut self, i: usize, track: TrackId, request: LayerRequest) {
        let participant = self.clients[i].id;
        self.command(Command::TrackSettings {
            participant,
            track,
            request,
        })
        .expect("settings accepted");
    }

    /// Client `i` asks for a keyframe on its subscriber m-line `mid`.
    pub fn request_keyframe(&mut self, i: usize, mid: Mid) {
        let c = &mut self.clients[i];
        if let Some(rx) = c.subscriber.direct_api().stream_rx_by_mid(mid, None) {
            rx.request_keyframe(KeyframeRequestKind::Pli);
        }
    }

    /// The subscriber mid of `track` at client `i`.
    pub fn sub_mid(&self, i: usize, track: TrackId) -> Mid {
        *self.clients[i]
            .track_mids
            .get(&track)
            .expect("the track was offered to this client")
    }

    /// Packets of `track` received by client `i`.
    pub fn received(&self, i: usize, track: TrackId) -> &[RtpPacket] {
        let mid = self.sub_mid(i, track);
        self.clients[i]
            .received
            .get(&mid)
            .map_or(&[], |v| v.as_slice())
    }

    /// Runs the network for `d` of fake time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            let step = self.now + STEP;
            self.run_core_timers_before(step);
            self.now = step;
            let now = self.now;
            self.sfu.handle_timeout(now);
            for c in &mut self.clients {
                let _ = c.publisher.handle_input(Input::Timeout(now));
                let _ = c.subscriber.handle_input(Input::Timeout(now));
            }
            self.deliver_downlinks();
            self.pump();
        }
    }

    /// Wakes the core at the times it asks for before `until`, as the server's worker does
    /// (str0m's pacer sends one packet per wake-up and asks again a microsecond later: without
    /// this, padding and probes would be held to one packet per [`STEP`]).
    fn run_core_timers_before(&mut self, until: Instant) {
        for _ in 0..MAX_CORE_WAKES_PER_STEP {
            let Some(at) = self.core_timeout.filter(|t| *t > self.now && *t < until) else {
                return;
            };
            self.now = at;
            self.sfu.handle_timeout(at);
            self.pump();
        }
    }

    /// Moves every pending datagram and notice until everything is quiet.
    pub fn pump(&mut self) {
        let server: SocketAddr = SERVER.parse().expect("addr");
        let mut to_server: Vec<ToServer> = Vec::new();
        for _ in 0..1000 {
            let mut moved = false;
            for c in &mut self.clients {
                for role in [PcSide::Publisher, PcSide::Subscriber] {
                    drain_client(c, role, server, &mut to_server);
                }
            }
            for (from, tcp, data) in to_server.drain(..) {
                moved = true;
                match &mut self.capture {
                    Some(captured) if is_media_rtp(&data) => captured.push((from, data)),
                    _ if tcp => {
                        self.sfu.handle_stream_frame(self.now, from, &data);
                    }
                    _ => self.sfu.handle_datagram(self.now, from, &data),
                }
            }
            loop {
                match self.sfu.poll_output() {
                    Output::Timeout(t) => {
                        self.core_timeout = Some(t);
                        break;
                    }
                    Output::RoomClosed(r) => self.closed_rooms.push(r),
                    Output::CloseStream(addr) => self.closed_streams.push(addr),
                    Output::Tap(tap, packet) => self.tapped.entry(tap).or_default().push(packet),
                    Output::TapEnded(tap) => self.ended_taps.push(tap),
                    Output::RoomTap(id, event) => {
                        self.room_tap_events.entry(id).or_default().push(event)
                    }
                    Output::Notice(to, n) => {
                        moved = true;
                        self.deliver_notice(to, n);
                    }
                    Output::Transmit(t) => {
                        moved = true;
                        let now = self.now;
                        let Some(c) = self
                            .clients
                            .iter_mut()
                            .find(|c| c.pub_addr == t.destination || c.sub_addr == t.destination)
                        else {
                            continue;
                        };
                        if c.cut || take_drop(&mut c.drop_inbound_rtp, &t.contents) {
                            continue;
                        }
                        let role = if c.pub_addr == t.destination {
                            PcSide::Publisher
                        } else {
                            PcSide::Subscriber
                        };
                        if let (PcSide::Subscriber, Protocol::Udp, Some(link)) =
                            (role, t.proto, &mut c.downlink)
                        {
                            link.handle_input(NetInput::Packet(now, t.contents.to_vec()));
                            continue;
                        }
                        receive(c, role, t.proto, &t.contents, now, server, &mut to_server);
                    }
                }
            }
            if !moved && to_server.is_empty() {
                return;
            }
        }
        panic!("the network did not settle");
    }

    /// Puts an emulated link between the server and client `i`'s subscriber connection, or
    /// takes it away (`None`; packets still on the old link are lost). Change the conditions
    /// mid-test by setting a new config.
    pub fn set_downlink(&mut self, i: usize, config: Option<NetemConfig>) {
        let c = &mut self.clients[i];
        match (config, &mut c.downlink) {
            (None, _) => c.downlink = None,
            (Some(config), Some(link)) => link.set_config(config),
            (Some(config), None) => c.downlink = Some(Netem::new(config)),
        }
    }

    /// Hands the clients what their emulated links deliver by now.
    fn deliver_downlinks(&mut self) {
        let server: SocketAddr = SERVER.parse().expect("addr");
        let now = self.now;
        let mut to_server: Vec<ToServer> = Vec::new();
        for c in &mut self.clients {
            let Some(link) = &mut c.downlink else {
                continue;
            };
            link.handle_input(NetInput::Timeout(now));
            let mut due = Vec::new();
            while let Some(out) = link.poll_output() {
                if let NetOutput::Packet(data) = out {
                    due.push(data);
                }
            }
            for data in due {
                receive(
                    c,
                    PcSide::Subscriber,
                    Protocol::Udp,
                    &data,
                    now,
                    server,
                    &mut to_server,
                );
            }
        }
        for (from, tcp, data) in to_server {
            if tcp {
                self.sfu.handle_stream_frame(now, from, &data);
            } else {
                self.sfu.handle_datagram(now, from, &data);
            }
        }
    }

    fn deliver_notice(&mut self, to: ParticipantId, n: Notice) {
        let Some(i) = self.clients.iter().position(|c| c.id == to) else {
            return;
        };
        if let Notice::SubscriberOffer(sdp) = &n {
            let c = &mut self.clients[i];
            c.track_mids.extend(msid_mids(sdp));
            let offer = SdpOffer::from_sdp_string(sdp).expect("offer parses");
            let answer = c
                .subscriber
                .sdp_api()
                .accept_offer(offer)
                .expect("offer accepted");
            let r = self.sfu.handle_command(
                self.now,
                Command::SubscriberAnswer {
                    participant: to,
                    sdp: answer.to_sdp_string(),
                },
            );
            r.expect("answer accepted");
        }
        self.clients[i].notices.push(n);
    }

    /// Tracks client `i` knows of: from its join reply, then from notices.
    pub fn announced_tracks(&self, i: usize) -> Vec<TrackId> {
        let c = &self.clients[i];
        let published = c.notices.iter().filter_map(|n| {
            if let Notice::TrackPublished(t) = n {
                Some(t.id)
            } else {
                None
            }
        });
        c.tracks_at_join.iter().copied().chain(published).collect()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PcSide {
    Publisher,
    Subscriber,
}

impl Client {
    fn rtc(&mut self, side: PcSide) -> &mut Rtc {
        match side {
            PcSide::Publisher => &mut self.publisher,
            PcSide::Subscriber => &mut self.subscriber,
        }
    }
}

/// A datagram from the server reaches one of client `c`'s connections.
fn receive(
    c: &mut Client,
    side: PcSide,
    proto: Protocol,
    data: &[u8],
    now: Instant,
    server: SocketAddr,
    to_server: &mut Vec<ToServer>,
) {
    let destination = match side {
        PcSide::Publisher => c.pub_addr,
        PcSide::Subscriber => c.sub_addr,
    };
    let source = match proto {
        Protocol::Tcp => SERVER_TCP.parse().expect("addr"),
        _ => server,
    };
    if let Ok(r) = Receive::new(proto, source, destination, data) {
        let _ = c.rtc(side).handle_input(Input::Receive(now, r));
    }
    // str0m's RTP mode holds one received packet until the next poll: drain now.
    drain_client(c, side, server, to_server);
}

/// Polls one client connection until it wants a timeout: transmits go to `to_server` (unless the
/// client is cut off), received RTP and keyframe requests are recorded.
/// A datagram (or, with `true`, an ICE-TCP frame) from a client address to the core.
type ToServer = (SocketAddr, bool, Vec<u8>);

fn drain_client(c: &mut Client, side: PcSide, server: SocketAddr, to_server: &mut Vec<ToServer>) {
    let from = if side == PcSide::Publisher {
        c.pub_addr
    } else {
        c.sub_addr
    };
    loop {
        match c.rtc(side).poll_output() {
            Ok(RtcOutput::Timeout(_)) | Err(_) => break,
            Ok(RtcOutput::Transmit(t)) => {
                let tcp = t.proto == Protocol::Tcp;
                let to_core = t.destination.ip() == server.ip();
                if !c.cut && to_core && !take_drop(&mut c.drop_outbound_rtp, &t.contents) {
                    to_server.push((from, tcp, t.contents.to_vec()));
                }
            }
            Ok(RtcOutput::Event(Event::RtpPacket(p))) if side == PcSide::Subscriber => {
                let mid = c
                    .subscriber
                    .direct_api()
                    .stream_rx(&p.header.ssrc)
                    .map(|s| s.mid());
                if let Some(mid) = mid {
                    c.received.entry(mid).or_default().push(p);
                }
            }
            Ok(RtcOutput::Event(Event::KeyframeRequest(_))) if side == PcSide::Publisher => {
                c.keyframe_requests += 1
            }
            Ok(RtcOutput::Event(_)) => {}
        }
    }
}

/// RTP carrying media: not RTCP (whose second byte, its type, is 192..=223), STUN or DTLS, and
/// bigger than padding probes.
pub fn is_media_rtp(datagram: &[u8]) -> bool {
    datagram.len() > 100 && (128..192).contains(&datagram[0]) && !(192..=223).contains(&datagram[1])
}

/// Counts down `budget` for media RTP datagrams; true: drop this one.
fn take_drop(budget: &mut usize, datagram: &[u8]) -> bool {
    if *budget > 0 && is_media_rtp(datagram) {
        *budget -= 1;
        return true;
    }
    false
}

/// A client connection with Opus and these video codecs (VP8, H.264), in this order, and a UDP
/// host candidate or an active TCP one.
fn client_rtc_with(now: Instant, addr: SocketAddr, video: &[Codec], tcp: bool, red: bool) -> Rtc {
    let mut builder = Rtc::builder()
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_opus(true, red);
    for codec in video {
        builder = match codec {
            Codec::H264 => builder.enable_h264(true),
            _ => builder.enable_vp8(true),
        };
    }
    let mut rtc = builder.build(now);
    let candidate = if tcp {
        let active = Candidate::builder()
            .tcp()
            .host(addr)
            .tcptype(TcpType::Active);
        active.build().expect("candidate")
    } else {
        Candidate::host(addr, "udp").expect("candidate")
    };
    rtc.add_local_candidate(candidate);
    rtc
}

/// (track, mid) of each m-section of an SDP, from its `a=mid` and `a=msid:<stream> <track>` lines.
pub fn msid_mids(sdp: &str) -> Vec<(TrackId, Mid)> {
    let mut out = Vec::new();
    for section in sdp.split("\r\nm=").skip(1) {
        let attr = |name: &str| {
            section
                .lines()
                .find_map(|l| l.strip_prefix(name).map(str::to_string))
        };
        let (Some(mid), Some(msid)) = (attr("a=mid:"), attr("a=msid:")) else {
            continue;
        };
        if let Some(track) = msid.split(' ').nth(1).and_then(|t| t.trim().parse().ok()) {
            out.push((track, Mid::from(mid.trim())));
        }
    }
    out
}

/// Runs [`Net::pump`] style delivery for one captured datagram (benches replay captures).
pub fn deliver(sfu: &mut Sfu, now: Instant, from: SocketAddr, data: &[u8]) {
    sfu.handle_datagram(now, from, data);
    while !matches!(sfu.poll_output(), Output::Timeout(_)) {}
}

/// A VP8 payload: a keyframe or an interframe, tagged so it can be recognised at the receiver.
pub fn vp8_payload(keyframe: bool, tag: u32) -> Vec<u8> {
    let mut p = vec![0x10, if keyframe { 0x00 } else { 0x01 }];
    p.extend_from_slice(&tag.to_be_bytes());
    p.extend_from_slice(&[0xAB; 100]);
    p
}

/// The rids of [`Camera`]'s layers, lowest first.
pub const CAMERA_RIDS: [&str; 3] = ["q", "h", "f"];
/// The picture sizes of [`Camera`]'s layers.
pub const CAMERA_SIZES: [(u16, u16); 3] = [(320, 180), (640, 360), (1280, 720)];

/// A publisher's simulcast camera in a scenario: one frame at a time on layers q, h and f, each
/// with its own sequence numbers and timestamp base (as a browser's encoders have), keyframes
/// every `gop` frames, staggered by layer. Every packet carries the layer and frame number (see
/// [`camera_packet_origin`]).
pub struct Camera {
    /// The publishing client.
    pub who: usize,
    /// Its m-line.
    pub mid: Mid,
    /// The next frame number.
    pub frame: u32,
    /// Which layers send.
    pub on: [bool; 3],
    /// Packets per frame of each layer.
    pub packets: [usize; 3],
    /// Payload bytes per packet (at least 15).
    pub bytes: usize,
    /// Frames between two keyframes of a layer.
    pub gop: u32,
    /// The next sequence number of each layer.
    seq: [u64; 3],
}

impl Camera {
    /// Tiny frames: one 100-byte packet per layer, a keyframe every 15 frames.
    pub fn new(who: usize, mid: Mid) -> Self {
        Self {
            who,
            mid,
            frame: 0,
            on: [true; 3],
            packets: [1; 3],
            bytes: 100,
            gop: 15,
            seq: [100, 20_000, 40_000],
        }
    }

    /// Frames of about 150k, 500k and 1.5M bit/s at 30 frames a second (what tern-client.js
    /// asks of a browser), a keyframe every 30 frames.
    pub fn realistic(who: usize, mid: Mid) -> Self {
        Self {
            packets: [1, 2, 6],
            bytes: 620,
            gop: 30,
            ..Self::new(who, mid)
        }
    }

    /// Whether layer `layer` starts a keyframe at frame `n`.
    pub fn is_keyframe(&self, layer: usize, n: u32) -> bool {
        n % self.gop == (layer as u32 * 5) % self.gop
    }

    /// Sends the next frame on every layer that is on.
    pub fn send_frame(&mut self, net: &mut Net) {
        let n = self.frame;
        for layer in (0..3).filter(|l| self.on[*l]) {
            let tag = layer as u32 * 1_000_000 + n;
            for k in 0..self.packets[layer] {
                let mut payload = if k > 0 {
                    // A continuation: not the start of a partition.
                    let mut p = vec![0x00, 0x01];
                    p.extend_from_slice(&tag.to_be_bytes());
                    p
                } else if self.is_keyframe(layer, n) {
                    let (w, h) = CAMERA_SIZES[layer];
                    vp8_keyframe_sized(w, h, tag)
                } else {
                    vp8_payload(false, tag)
                };
                payload.resize(self.bytes.max(15), 0xAB);
                let seq = self.seq[layer];
                self.seq[layer] += 1;
                let ts = [7_000u32, 1_000_000, 3_000_000_000][layer].wrapping_add(n * 3000);
                net.send_layer(self.who, self.mid, CAMERA_RIDS[layer], seq, ts, &payload);
            }
        }
        self.frame += 1;
    }
}

/// Where a [`Camera`] packet came from: (layer, frame, starts a keyframe).
pub fn camera_packet_origin(payload: &[u8]) -> (u32, u32, bool) {
    let key = payload.get(4..7) == Some(&[0x9d, 0x01, 0x2a][..]);
    let at = if key { 11 } else { 2 };
    let tag = payload
        .get(at..at + 4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    (tag / 1_000_000, tag % 1_000_000, key)
}

/// The first packet of a VP8 keyframe of `width` x `height` (RFC 6386 section 9.1), tagged.
pub fn vp8_keyframe_sized(width: u16, height: u16, tag: u32) -> Vec<u8> {
    let mut p = vec![0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a];
    p.extend_from_slice(&width.to_le_bytes());
    p.extend_from_slice(&height.to_le_bytes());
    p.extend_from_slice(&tag.to_be_bytes());
    p.extend_from_slice(&[0xAB; 100]);
    p
}

/// An Opus payload, tagged.
pub fn opus_payload(tag: u32) -> Vec<u8> {
    let mut p = vec![0xFC];
    p.extend_from_slice(&tag.to_be_bytes());
    p.extend_from_slice(&[0x11; 40]);
    p
}
