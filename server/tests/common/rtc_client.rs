//! A Rust WebRTC participant for integration tests: str0m connections on real loopback UDP
//! sockets, signaling through the server's WebSocket exactly as a browser does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, ChannelId, Reliability};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;

use tern_sfu::testkit::msid_mids;

use super::{Ws, token};

/// One side of a client: a str0m connection and its socket.
struct Side {
    rtc: Rtc,
    socket: UdpSocket,
    next_timeout: Instant,
}

impl Side {
    async fn new() -> Side {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("udp bind");
        let addr = socket.local_addr().expect("addr");
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
        Side {
            rtc,
            socket,
            next_timeout: Instant::now(),
        }
    }
}

/// A participant that publishes synthetic RTP and records what it receives.
pub struct RtcClient {
    pub ws: Ws,
    pub joined: Value,
    /// The access token it joined with.
    token: String,
    publisher: Side,
    subscriber: Side,
    pending_offer: Option<SdpPendingOffer>,
    /// Subscriber mid to track id, from the msid of the server's offers.
    track_mids: HashMap<Mid, String>,
    /// RTP received per track id.
    pub received: HashMap<String, Vec<RtpPacket>>,
    /// Signaling messages other than offers and answers.
    pub messages: Vec<Value>,
    /// Keyframe requests the server sent to our publisher connection.
    pub keyframe_requests: usize,
    /// Our own tracks by publisher mid.
    pub own_tracks: HashMap<String, String>,
    /// The audio level (dBov, 0 loudest, -127 silence; RFC 6464) our audio packets carry, if any.
    pub audio_level: Option<i8>,
    /// The subscriber offers tern sent, in order.
    pub offers: Vec<String>,
    /// Our open data channels by label.
    pub channels: HashMap<String, ChannelId>,
    /// Data messages received: the channel's label, whether binary, the bytes.
    pub data: Vec<(String, bool, Vec<u8>)>,
}

impl RtcClient {
    /// Connects and joins `room` as `identity`.
    pub async fn join(http: SocketAddr, identity: &str, room: &str) -> RtcClient {
        Self::join_with_token(http, &token(identity, room), room).await
    }

    /// Connects and joins `room` with this access token.
    pub async fn join_with_token(http: SocketAddr, token: &str, room: &str) -> RtcClient {
        let mut ws = Ws::connect(http).await;
        ws.send(json!({"type": "join", "v": 1, "token": token, "room": room}))
            .await;
        let joined = ws.expect("joined").await;
        RtcClient {
            ws,
            joined,
            token: token.to_string(),
            publisher: Side::new().await,
            subscriber: Side::new().await,
            pending_offer: None,
            track_mids: HashMap::new(),
            received: HashMap::new(),
            messages: Vec::new(),
            keyframe_requests: 0,
            own_tracks: HashMap::new(),
            audio_level: None,
            channels: HashMap::new(),
            data: Vec::new(),
            offers: Vec::new(),
        }
    }

    /// Loses the signaling socket as a network change does: TCP closes without a WebSocket
    /// close frame. A fresh socket, not joined yet, takes its place (see [`Self::send_join`]).
    /// The media connections stay as they are.
    pub async fn drop_socket(&mut self, http: SocketAddr) {
        let fresh = Ws::connect(http).await;
        drop(std::mem::replace(&mut self.ws, fresh));
    }

    /// Joins on the current socket, presenting `resume` (a resume token) if given; returns
    /// the `joined`.
    pub async fn send_join(&mut self, resume: Option<&str>) -> Value {
        let room = self.joined["room"].as_str().unwrap_or_default().to_string();
        let mut join = json!({"type": "join", "v": 1, "token": self.token, "room": room});
        if let Some(r) = resume {
            join["resume"] = json!(r);
        }
        self.ws.send(join).await;
        let joined = self.ws.expect("joined").await;
        self.joined = joined.clone();
        joined
    }

    /// Resumes the session on a new socket while the old one is still open; returns the old
    /// one and the new `joined`.
    pub async fn take_over(&mut self, http: SocketAddr, resume: &str) -> (Ws, Value) {
        let old = std::mem::replace(&mut self.ws, Ws::connect(http).await);
        let joined = self.send_join(Some(resume)).await;
        (old, joined)
    }

    /// Restarts ICE on the publisher connection (new credentials in a new offer) and runs
    /// until it is answered.
    pub async fn restart_publisher_ice(&mut self) {
        let mut api = self.publisher.rtc.sdp_api();
        api.ice_restart(true);
        let (offer, pending) = api.apply().expect("an offer");
        self.pending_offer = Some(pending);
        self.offer_and_wait(offer.to_sdp_string(), json!([])).await;
    }

    /// Opens tern's two data channels on the publisher connection (reliable and ordered;
    /// unordered without retransmissions) and runs until both are open.
    pub async fn open_data(&mut self) {
        let mut api = self.publisher.rtc.sdp_api();
        api.add_channel_with_config(ChannelConfig {
            label: "tern-reliable".into(),
            ..Default::default()
        });
        api.add_channel_with_config(ChannelConfig {
            label: "tern-lossy".into(),
            ordered: false,
            reliability: Reliability::MaxRetransmits { retransmits: 0 },
            ..Default::default()
        });
        let (offer, pending) = api.apply().expect("an offer");
        self.pending_offer = Some(pending);
        self.offer_and_wait(offer.to_sdp_string(), json!([])).await;
        let open = self
            .run_until(Duration::from_secs(10), |c| c.channels.len() == 2)
            .await;
        assert!(open, "both data channels open");
    }

    /// Sends one message on the data channel `label`.
    pub fn send_data(&mut self, label: &str, binary: bool, bytes: &[u8]) {
        let id = self.channels[label];
        let mut ch = self.publisher.rtc.channel(id).expect("the channel is open");
        assert!(
            ch.write(binary, bytes).expect("written"),
            "the channel took it"
        );
    }

    /// The text messages received as JSON, in order.
    pub fn data_json(&self) -> Vec<Value> {
        self.data
            .iter()
            .filter(|(_, binary, _)| !binary)
            .filter_map(|(_, _, bytes)| serde_json::from_slice(bytes).ok())
            .collect()
    }

    /// Adds sending m-lines and negotiates them; returns their mids once answered.
    pub async fn publish(&mut self, kinds: &[MediaKind]) -> Vec<Mid> {
        let sourced: Vec<(MediaKind, &str)> = kinds
            .iter()
            .map(|k| {
                (
                    *k,
                    if *k == MediaKind::Audio {
                        "microphone"
                    } else {
                        "camera"
                    },
                )
            })
            .collect();
        self.try_publish(&sourced)
            .await
            .expect("the offer is answered")
    }

    /// Adds sending m-lines described as these sources and offers them: their mids once
    /// answered, or the server's `error`.
    pub async fn try_publish(&mut self, tracks: &[(MediaKind, &str)]) -> Result<Vec<Mid>, Value> {
        let mut api = self.publisher.rtc.sdp_api();
        let mids: Vec<Mid> = tracks
            .iter()
            .map(|(k, _)| api.add_media(*k, Direction::SendOnly, None, None, None))
            .collect();
        let (offer, pending) = api.apply().expect("an offer");
        self.pending_offer = Some(pending);
        let hints: Vec<Value> = mids
            .iter()
            .zip(tracks)
            .map(|(m, (_, source))| json!({"mid": m.to_string(), "source": source}))
            .collect();
        self.try_offer(offer.to_sdp_string(), json!(hints)).await?;
        Ok(mids)
    }

    /// Sends the publisher offer and runs until its answer is applied.
    async fn offer_and_wait(&mut self, sdp: String, tracks: Value) {
        if let Err(e) = self.try_offer(sdp, tracks).await {
            panic!("the publisher offer was refused: {e}");
        }
    }

    /// Sends the publisher offer; runs until its answer is applied, or returns its `error`.
    async fn try_offer(&mut self, sdp: String, tracks: Value) -> Result<(), Value> {
        self.ws
            .send(json!({"type": "offer", "sdp": sdp, "tracks": tracks, "req": 1}))
            .await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.pending_offer.is_some() {
            assert!(
                Instant::now() < deadline,
                "no answer to the publisher offer"
            );
            self.step(Instant::now() + Duration::from_millis(50)).await;
            let refused = self
                .messages
                .iter()
                .position(|m| m["type"] == "error" && m["req"] == 1);
            if let Some(at) = refused {
                self.pending_offer = None;
                return Err(self.messages.remove(at));
            }
        }
        Ok(())
    }

    /// Publishes a camera as simulcast layers with these rids (RFC 8853) and negotiates it;
    /// returns its mid. Send on a layer with [`RtcClient::send_layer`].
    pub async fn publish_simulcast(&mut self, rids: &[&str]) -> Mid {
        let mut simulcast = str0m::media::Simulcast::new();
        for rid in rids {
            simulcast.add_send_layer(str0m::media::SimulcastLayer::new(rid));
        }
        let mut api = self.publisher.rtc.sdp_api();
        let mid = api.add_media(
            MediaKind::Video,
            Direction::SendOnly,
            None,
            None,
            Some(simulcast),
        );
        let (offer, pending) = api.apply().expect("an offer");
        self.pending_offer = Some(pending);
        let tracks = json!([{"mid": mid.to_string(), "source": "camera"}]);
        self.offer_and_wait(offer.to_sdp_string(), tracks).await;
        mid
    }

    /// Writes one VP8 packet on the simulcast layer `rid` of `mid`.
    pub fn send_layer(&mut self, mid: Mid, rid: &str, seq: u64, ts: u32, payload: &[u8]) {
        let pt = self.pt(Codec::Vp8);
        let mut api = self.publisher.rtc.direct_api();
        let tx = api
            .stream_tx_by_mid(mid, Some(rid.into()))
            .expect("a send stream for the layer");
        tx.write_rtp(
            RtpWrite::new(pt, seq.into(), ts, Instant::now(), payload.to_vec())
                .marker(true)
                .nackable(true),
        );
    }

    /// Writes one RTP packet on a publisher mid, with the marker bit set.
    pub fn send_rtp(&mut self, mid: Mid, seq: u64, ts: u32, payload: &[u8]) {
        self.send_rtp_marked(mid, seq, ts, true, payload);
    }

    /// Writes one RTP packet on a publisher mid (Opus for audio, VP8 for video).
    pub fn send_rtp_marked(&mut self, mid: Mid, seq: u64, ts: u32, marker: bool, payload: &[u8]) {
        let kind = self.publisher.rtc.media(mid).expect("media").kind();
        let codec = if kind == MediaKind::Audio {
            Codec::Opus
        } else {
            Codec::Vp8
        };
        let pt = self.pt(codec);
        let mut api = self.publisher.rtc.direct_api();
        let tx = api
            .stream_tx_by_mid(mid, None)
            .expect("a send stream for the mid");
        let mut write = RtpWrite::new(pt, seq.into(), ts, Instant::now(), payload.to_vec())
            .marker(marker)
            .nackable(true);
        if let (MediaKind::Audio, Some(level)) = (kind, self.audio_level) {
            write = write.ext_vals(ExtensionValues {
                audio_level: Some(level),
                voice_activity: Some(level > -60),
                ..Default::default()
            });
        }
        tx.write_rtp(write);
    }

    /// The payload type our publisher connection negotiated for `codec`.
    fn pt(&self, codec: Codec) -> str0m::media::Pt {
        self.publisher
            .rtc
            .codec_config()
            .find(|p| p.spec().codec == codec)
            .expect("the codec was negotiated")
            .pt()
    }

    /// True once both connections that have media are connected.
    pub fn publisher_connected(&self) -> bool {
        self.publisher.rtc.is_connected()
    }

    /// Runs the client for `d`.
    pub async fn run_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.step(end).await;
        }
    }

    /// Runs until `done` or `limit`; returns whether `done` became true.
    pub async fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&RtcClient) -> bool,
    ) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if done(self) {
                return true;
            }
            self.step((Instant::now() + Duration::from_millis(20)).min(end))
                .await;
        }
        done(self)
    }

    async fn step(&mut self, until: Instant) {
        self.drain();
        let wake = self
            .publisher
            .next_timeout
            .min(self.subscriber.next_timeout)
            .min(until)
            .max(Instant::now());
        let mut pub_buf = [0u8; 2000];
        let mut sub_buf = [0u8; 2000];
        tokio::select! {
            m = self.ws.recv() => if let Some(m) = m { self.on_message(m).await },
            r = self.publisher.socket.recv_from(&mut pub_buf) => if let Ok((n, from)) = r {
                input(&mut self.publisher, from, &pub_buf[..n]);
            },
            r = self.subscriber.socket.recv_from(&mut sub_buf) => if let Ok((n, from)) = r {
                input(&mut self.subscriber, from, &sub_buf[..n]);
            },
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                let _ = self.publisher.rtc.handle_input(Input::Timeout(now));
                let _ = self.subscriber.rtc.handle_input(Input::Timeout(now));
            }
        }
        self.drain();
    }

    fn drain(&mut self) {
        for (side, is_sub) in [(&mut self.publisher, false), (&mut self.subscriber, true)] {
            loop {
                match side.rtc.poll_output() {
                    Ok(Output::Timeout(t)) => {
                        side.next_timeout = t;
                        break;
                    }
                    Ok(Output::Transmit(t)) => {
                        let _ = side.socket.try_send_to(&t.contents, t.destination);
                    }
                    Ok(Output::Event(Event::RtpPacket(p))) if is_sub => {
                        let mid = side
                            .rtc
                            .direct_api()
                            .stream_rx(&p.header.ssrc)
                            .map(|s| s.mid());
                        if let Some(track) = mid.and_then(|m| self.track_mids.get(&m)) {
                            self.received.entry(track.clone()).or_default().push(p);
                        }
                    }
                    Ok(Output::Event(Event::KeyframeRequest(_))) => self.keyframe_requests += 1,
                    Ok(Output::Event(Event::ChannelOpen(id, label))) => {
                        self.channels.insert(label, id);
                    }
                    Ok(Output::Event(Event::ChannelData(d))) => {
                        let label = self
                            .channels
                            .iter()
                            .find(|(_, id)| **id == d.id)
                            .map(|(l, _)| l.clone())
                            .unwrap_or_default();
                        self.data.push((label, d.binary, d.data));
                    }
                    Ok(Output::Event(_)) => {}
                    Err(e) => panic!("client connection failed: {e}"),
                }
            }
        }
    }

    async fn on_message(&mut self, m: Value) {
        match m["type"].as_str() {
            Some("answer") => {
                let sdp = SdpAnswer::from_sdp_string(m["sdp"].as_str().expect("sdp"))
                    .expect("answer parses");
                let pending = self.pending_offer.take().expect("an offer was pending");
                self.publisher
                    .rtc
                    .sdp_api()
                    .accept_answer(pending, sdp)
                    .expect("answer accepted");
            }
            Some("offer") => {
                let sdp = m["sdp"].as_str().expect("sdp");
                self.offers.push(sdp.to_string());
                self.track_mids.extend(
                    msid_mids(sdp)
                        .into_iter()
                        .map(|(track, mid)| (mid, track.to_string())),
                );
                let offer = SdpOffer::from_sdp_string(sdp).expect("offer parses");
                let answer = self
                    .subscriber
                    .rtc
                    .sdp_api()
                    .accept_offer(offer)
                    .expect("offer accepted");
                self.ws
                    .send(json!({"type": "answer", "sdp": answer.to_sdp_string()}))
                    .await;
            }
            Some("local_track_published") => {
                let mid = m["mid"].as_str().unwrap_or_default().to_string();
                self.own_tracks.insert(
                    mid,
                    m["track"]["id"].as_str().unwrap_or_default().to_string(),
                );
            }
            _ => self.messages.push(m),
        }
    }
}

fn input(side: &mut Side, from: SocketAddr, data: &[u8]) {
    let to = side.socket.local_addr().expect("addr");
    if let Ok(r) = Receive::new(Protocol::Udp, from, to, data) {
        let _ = side.rtc.handle_input(Input::Receive(Instant::now(), r));
    }
}
