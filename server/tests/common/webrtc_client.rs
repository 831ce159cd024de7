//! A participant built on webrtc-rs (the `webrtc` crate), an implementation independent of
//! str0m, joining through the documented signaling protocol (docs/signaling.md): a publisher
//! connection it offers, a subscriber connection tern offers, trickled candidates.
//!
//! The client is used as it comes: default codecs, default interceptors, no SDP munging. The
//! only settings are the ones a loopback-only test machine needs (gather 127.0.0.1 host
//! candidates, IPv4 UDP only), like Chromium's `--allow-loopback-in-peer-connection`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{API, APIBuilder};
use webrtc::ice::network_type::NetworkType;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp::header::Header;
use webrtc::rtp::packet::Packet;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::track::track_local::TrackLocal;
use webrtc::track::track_local::TrackLocalWriter;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;

use tern_sfu::testkit::{msid_mids, opus_payload, vp8_payload};

use crate::common::{Ws, token};

/// Payloads kept per received track, for checking them after the run.
const KEEP_PAYLOADS: usize = 5000;

/// Audio packets every 20 ms; a video frame (one packet) every other tick, so 25 fps.
const TICK: Duration = Duration::from_millis(20);
/// A periodic keyframe every this many video frames (2 s), besides the ones PLIs ask for.
pub const KEYFRAME_EVERY: u32 = 50;

/// What arrived on one received track.
#[derive(Debug, Default, Clone)]
pub struct Received {
    /// The `(stream id, track id)` webrtc-rs parsed from the msid of this m-line.
    pub remote_ids: (String, String),
    /// The negotiated codec, e.g. `video/VP8`.
    pub mime_type: String,
    pub packets: usize,
    pub bytes: usize,
    /// When `on_track` fired and when the first packet arrived.
    pub track_at: Option<Instant>,
    pub first_packet_at: Option<Instant>,
    /// The first [`KEEP_PAYLOADS`] payloads, in arrival order.
    pub payloads: Vec<Vec<u8>>,
}

/// State shared between the signaling task, webrtc-rs callbacks and the test.
#[derive(Debug, Default)]
struct Shared {
    /// Our own publisher mid to tern track id (`local_track_published`).
    own_tracks: HashMap<String, String>,
    /// Subscriber mid to tern track id, from `a=msid` in tern's offers.
    sub_mids: HashMap<String, String>,
    /// Received media per tern track id (or `unmapped mid X` when the msid gave none).
    received: HashMap<String, Received>,
    /// Signaling messages that are not offers, answers or `local_track_published`.
    messages: Vec<Value>,
    /// Things that went wrong on the client side (failed setRemoteDescription and so on), and
    /// `error` messages from tern.
    problems: Vec<String>,
    /// Subscriber offers received, in order.
    offers: Vec<String>,
    /// Local candidates gathered, per target.
    candidates_sent: Vec<(String, String)>,
}

/// A message for the signaling task to send.
enum Out {
    /// A whole message (offer, answer...).
    Json(Value),
    /// A trickled local candidate (`""` for end of candidates).
    Candidate {
        target: &'static str,
        /// The candidate's `RTCIceCandidateInit` as JSON.
        candidate: Value,
    },
}

/// Counters of the media this client sends.
#[derive(Debug, Default)]
pub struct SendStats {
    pub audio_packets: AtomicUsize,
    pub video_packets: AtomicUsize,
    pub keyframes: AtomicUsize,
    /// PLI or FIR received on the video sender.
    pub keyframe_requests: AtomicUsize,
}

/// A webrtc-rs participant: two peer connections, a signaling task, and (once publishing) a
/// media task that sends synthetic Opus and VP8.
pub struct WebrtcRsClient {
    pub identity: String,
    /// Our participant id (`PA_...`).
    pub participant: String,
    pub publisher: Arc<RTCPeerConnection>,
    pub subscriber: Arc<RTCPeerConnection>,
    pub sent: Arc<SendStats>,
    shared: Arc<Mutex<Shared>>,
    out: mpsc::UnboundedSender<Out>,
    /// Publisher answers (or errors for them), from the signaling task.
    answers: mpsc::UnboundedReceiver<Result<(), String>>,
    want_keyframe: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

fn api() -> API {
    // webrtc-rs's DTLS builds rustls verifiers with the process-level crypto provider. In this
    // workspace rustls has both aws-lc-rs (tern-turn) and ring (webrtc-rs) enabled, so none is
    // chosen automatically: pick ring, the one webrtc-rs itself enables. Err means one is
    // already installed, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut media = MediaEngine::default();
    media
        .register_default_codecs()
        .expect("webrtc-rs default codecs");
    let registry = register_default_interceptors(Registry::new(), &mut media)
        .expect("webrtc-rs default interceptors");
    let mut settings = SettingEngine::default();
    // The test machine only has loopback networking: gather 127.0.0.1 like a browser started
    // with --allow-loopback-in-peer-connection, and nothing else.
    settings.set_include_loopback_candidate(true);
    settings.set_ip_filter(Box::new(|ip| ip.is_loopback()));
    settings.set_network_types(vec![NetworkType::Udp4]);
    APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build()
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().expect("shared state lock")
}

impl WebrtcRsClient {
    /// Connects, joins `room` as `identity`, and creates both peer connections.
    pub async fn join(http: SocketAddr, identity: &str, room: &str) -> WebrtcRsClient {
        let mut ws = Ws::connect(http).await;
        ws.send(json!({"type": "join", "v": 1, "token": token(identity, room), "room": room}))
            .await;
        let joined = ws.expect("joined").await;
        let participant = joined["participant"]["id"]
            .as_str()
            .expect("joined names our participant id")
            .to_string();

        let api = api();
        // No ICE servers: tern's TURN relay is not under test here, its host candidates are.
        let publisher = Arc::new(
            api.new_peer_connection(RTCConfiguration::default())
                .await
                .expect("publisher peer connection"),
        );
        let subscriber = Arc::new(
            api.new_peer_connection(RTCConfiguration::default())
                .await
                .expect("subscriber peer connection"),
        );
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (out, out_rx) = mpsc::unbounded_channel();
        let (answers_tx, answers) = mpsc::unbounded_channel();

        for (pc, target) in [(&publisher, "publisher"), (&subscriber, "subscriber")] {
            let out = out.clone();
            let shared = shared.clone();
            pc.on_ice_candidate(Box::new(move |c| {
                // The candidate goes as webrtc-rs serialises it (RTCIceCandidateInit: candidate,
                // sdpMid, sdpMLineIndex, usernameFragment), plus `target`.
                let candidate = match c {
                    Some(c) => c.to_json().ok().and_then(|j| serde_json::to_value(j).ok()),
                    None => None,
                }
                .unwrap_or_else(|| json!({"candidate": ""}));
                lock(&shared)
                    .candidates_sent
                    .push((target.to_string(), candidate.to_string()));
                let _ = out.send(Out::Candidate { target, candidate });
                Box::pin(async {})
            }));
        }
        {
            let shared = shared.clone();
            subscriber.on_track(Box::new(move |track, _receiver, transceiver| {
                let shared = shared.clone();
                Box::pin(async move {
                    let mid = transceiver.mid().map(|m| m.to_string()).unwrap_or_default();
                    let key = {
                        let mut s = lock(&shared);
                        let key = s
                            .sub_mids
                            .get(&mid)
                            .cloned()
                            .unwrap_or_else(|| format!("unmapped mid {mid}"));
                        let r = s.received.entry(key.clone()).or_default();
                        r.remote_ids = (track.stream_id(), track.id());
                        r.mime_type = track.codec().capability.mime_type;
                        r.track_at = Some(Instant::now());
                        key
                    };
                    tokio::spawn(async move {
                        while let Ok((p, _)) = track.read_rtp().await {
                            let mut s = lock(&shared);
                            let r = s.received.entry(key.clone()).or_default();
                            r.packets += 1;
                            r.bytes += p.payload.len();
                            r.first_packet_at.get_or_insert_with(Instant::now);
                            if r.payloads.len() < KEEP_PAYLOADS {
                                r.payloads.push(p.payload.to_vec());
                            }
                        }
                    });
                })
            }));
        }

        let signaling = tokio::spawn(signaling(
            ws,
            out_rx,
            publisher.clone(),
            subscriber.clone(),
            shared.clone(),
            answers_tx,
        ));
        WebrtcRsClient {
            identity: identity.to_string(),
            participant,
            publisher,
            subscriber,
            sent: Arc::new(SendStats::default()),
            shared,
            out,
            answers,
            want_keyframe: Arc::new(AtomicBool::new(true)),
            tasks: vec![signaling],
        }
    }

    /// Publishes a microphone (Opus) and a camera (VP8) on sendonly transceivers, negotiates
    /// them, and starts sending synthetic media. Returns the tern track ids (audio, video).
    pub async fn publish_audio_and_video(&mut self) -> (String, String) {
        let audio = Arc::new(TrackLocalStaticRTP::new(
            RTCRtpCodecCapability {
                mime_type: MIME_TYPE_OPUS.to_owned(),
                clock_rate: 48000,
                channels: 2,
                ..Default::default()
            },
            "mic".to_owned(),
            self.identity.clone(),
        ));
        let video = Arc::new(TrackLocalStaticRTP::new(
            RTCRtpCodecCapability {
                mime_type: MIME_TYPE_VP8.to_owned(),
                clock_rate: 90000,
                ..Default::default()
            },
            "cam".to_owned(),
            self.identity.clone(),
        ));
        let mut senders = Vec::new();
        for track in [audio.clone(), video.clone()] {
            let t = self
                .publisher
                .add_transceiver_from_track(
                    track as Arc<dyn TrackLocal + Send + Sync>,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Sendonly,
                        send_encodings: vec![],
                    }),
                )
                .await
                .expect("sendonly transceiver");
            senders.push(t.sender().await);
        }
        let offer = self
            .publisher
            .create_offer(None)
            .await
            .expect("publisher offer");
        self.publisher
            .set_local_description(offer)
            .await
            .expect("publisher setLocalDescription");
        let mut mids = Vec::new();
        for t in self.publisher.get_transceivers().await {
            mids.push(
                t.mid()
                    .expect("a mid after setLocalDescription")
                    .to_string(),
            );
        }
        let sdp = self
            .publisher
            .local_description()
            .await
            .expect("a local description")
            .sdp;
        let tracks = json!([
            {"mid": mids[0], "source": "microphone"},
            {"mid": mids[1], "source": "camera"},
        ]);
        let _ = self.out.send(Out::Json(
            json!({"type": "offer", "sdp": sdp, "tracks": tracks, "req": 1}),
        ));
        match tokio::time::timeout(Duration::from_secs(10), self.answers.recv()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => panic!("{}: publisher offer failed: {e}", self.identity),
            Ok(None) => panic!("{}: signaling ended before the answer", self.identity),
            Err(_) => panic!(
                "{}: no answer to the publisher offer in 10 s",
                self.identity
            ),
        }
        for s in &senders {
            self.tasks.push(tokio::spawn(read_rtcp(
                s.clone(),
                self.sent.clone(),
                self.want_keyframe.clone(),
            )));
        }
        self.tasks.push(tokio::spawn(send_media(
            audio,
            video,
            self.sent.clone(),
            self.want_keyframe.clone(),
        )));
        // local_track_published follows the answer.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            {
                let s = lock(&self.shared);
                if let (Some(a), Some(v)) = (s.own_tracks.get(&mids[0]), s.own_tracks.get(&mids[1]))
                {
                    return (a.clone(), v.clone());
                }
            }
            assert!(
                Instant::now() < deadline,
                "{}: no local_track_published for mids {mids:?} within 10 s",
                self.identity
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A copy of what arrived on the track `track` so far.
    pub fn received(&self, track: &str) -> Received {
        lock(&self.shared)
            .received
            .get(track)
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `done` holds for this client, polling; false after `limit`.
    pub async fn wait_until(&self, limit: Duration, done: impl FnMut(&Self) -> bool) -> bool {
        crate::common::poll_until(self, limit, done).await
    }

    /// A readable summary of everything this client saw, for assertion messages.
    pub fn diagnostics(&self) -> String {
        let s = lock(&self.shared);
        let received: Vec<String> = s
            .received
            .iter()
            .map(|(k, r)| {
                format!(
                    "{k}: {} packets, {} bytes, {} msid {:?}",
                    r.packets, r.bytes, r.mime_type, r.remote_ids
                )
            })
            .collect();
        format!(
            "{} ({}): publisher {:?}/ICE {:?}, subscriber {:?}/ICE {:?}; sent audio {} video {} \
             keyframes {} keyframe requests {}; received [{}]; subscriber mids {:?}; \
             problems {:?}; other messages {:?}; offers {}; candidates sent {:?}",
            self.identity,
            self.participant,
            self.publisher.connection_state(),
            self.publisher.ice_connection_state(),
            self.subscriber.connection_state(),
            self.subscriber.ice_connection_state(),
            self.sent.audio_packets.load(Ordering::Relaxed),
            self.sent.video_packets.load(Ordering::Relaxed),
            self.sent.keyframes.load(Ordering::Relaxed),
            self.sent.keyframe_requests.load(Ordering::Relaxed),
            received.join("; "),
            s.sub_mids,
            s.problems,
            s.messages
                .iter()
                .map(|m| m["type"].as_str().unwrap_or("?").to_string())
                .collect::<Vec<_>>(),
            s.offers.len(),
            s.candidates_sent,
        )
    }

    /// Client-side failures and tern `error`s seen so far.
    pub fn problems(&self) -> Vec<String> {
        lock(&self.shared).problems.clone()
    }

    /// Leaves, closes both connections and stops the tasks.
    pub async fn close(self) {
        let _ = self.out.send(Out::Json(json!({"type": "leave"})));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = self.publisher.close().await;
        let _ = self.subscriber.close().await;
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Owns the WebSocket: sends what the client queues, handles what tern sends.
async fn signaling(
    mut ws: Ws,
    mut out: mpsc::UnboundedReceiver<Out>,
    publisher: Arc<RTCPeerConnection>,
    subscriber: Arc<RTCPeerConnection>,
    shared: Arc<Mutex<Shared>>,
    answers: mpsc::UnboundedSender<Result<(), String>>,
) {
    // Candidates wait until the description they belong to has been sent, as a browser's
    // onicecandidate only fires after setLocalDescription and the app sends the SDP first.
    let mut publisher_offer_sent = false;
    let mut subscriber_answer_sent = false;
    let mut held: Vec<(&'static str, Value)> = Vec::new();
    loop {
        tokio::select! {
            m = ws.stream.next() => {
                let text = match m {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let m: Value = serde_json::from_str(&text).expect("tern sends JSON");
                match m["type"].as_str() {
                    Some("answer") => {
                        let result = match RTCSessionDescription::answer(
                            m["sdp"].as_str().unwrap_or_default().to_string(),
                        ) {
                            Ok(d) => publisher.set_remote_description(d).await,
                            Err(e) => Err(e),
                        };
                        let _ = answers.send(result.map_err(|e| {
                            format!("setRemoteDescription(answer) failed: {e}")
                        }));
                    }
                    Some("offer") => {
                        let sdp = m["sdp"].as_str().unwrap_or_default().to_string();
                        {
                            let mut s = lock(&shared);
                            s.offers.push(sdp.clone());
                            for (track, mid) in msid_mids(&sdp) {
                                s.sub_mids.insert(mid.to_string(), track.to_string());
                            }
                        }
                        match answer_offer(&subscriber, sdp).await {
                            Ok(answer) => {
                                ws.send(json!({"type": "answer", "sdp": answer})).await;
                                subscriber_answer_sent = true;
                            }
                            Err(e) => lock(&shared).problems.push(e),
                        }
                    }
                    Some("local_track_published") => {
                        let mid = m["mid"].as_str().unwrap_or_default().to_string();
                        let track = m["track"]["id"].as_str().unwrap_or_default().to_string();
                        lock(&shared).own_tracks.insert(mid, track);
                    }
                    Some("error") => {
                        if m["req"] == 1 {
                            let _ = answers.send(Err(m.to_string()));
                        }
                        lock(&shared).problems.push(format!("tern error: {m}"));
                    }
                    _ => lock(&shared).messages.push(m),
                }
            }
            o = out.recv() => match o {
                None => break,
                Some(Out::Json(v)) => {
                    let is_offer = v["type"] == "offer";
                    ws.send(v).await;
                    publisher_offer_sent |= is_offer;
                }
                Some(Out::Candidate { target, candidate }) => held.push((target, candidate)),
            },
        }
        let mut keep = Vec::new();
        for (target, candidate) in held.drain(..) {
            let ready = match target {
                "publisher" => publisher_offer_sent,
                _ => subscriber_answer_sent,
            };
            if ready {
                let mut msg = candidate.clone();
                msg["type"] = json!("candidate");
                msg["target"] = json!(target);
                ws.send(msg).await;
            } else {
                keep.push((target, candidate));
            }
        }
        held = keep;
    }
}

/// setRemoteDescription(offer), createAnswer, setLocalDescription; returns the answer's SDP.
async fn answer_offer(pc: &RTCPeerConnection, sdp: String) -> Result<String, String> {
    let offer = RTCSessionDescription::offer(sdp).map_err(|e| format!("offer parse: {e}"))?;
    pc.set_remote_description(offer)
        .await
        .map_err(|e| format!("subscriber setRemoteDescription(offer) failed: {e}"))?;
    let answer = pc
        .create_answer(None)
        .await
        .map_err(|e| format!("subscriber createAnswer failed: {e}"))?;
    pc.set_local_description(answer)
        .await
        .map_err(|e| format!("subscriber setLocalDescription failed: {e}"))?;
    pc.local_description()
        .await
        .map(|d| d.sdp)
        .ok_or_else(|| "no local description after setLocalDescription".to_string())
}

/// Reads RTCP for a sender (which also runs the interceptors) and turns PLI/FIR into a
/// keyframe on the next video frame.
async fn read_rtcp(sender: Arc<RTCRtpSender>, sent: Arc<SendStats>, want: Arc<AtomicBool>) {
    while let Ok((packets, _)) = sender.read_rtcp().await {
        for p in packets {
            let any = p.as_any();
            if any.downcast_ref::<PictureLossIndication>().is_some()
                || any.downcast_ref::<FullIntraRequest>().is_some()
            {
                sent.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                want.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// Opus every 20 ms (any bytes: tern does not decode), VP8 at 25 fps, one packet per frame. A
/// video frame is a keyframe at the RTP level (RFC 7741 descriptor S=1, PID=0, then P=0) every
/// [`KEYFRAME_EVERY`] frames and right after a keyframe request.
async fn send_media(
    audio: Arc<TrackLocalStaticRTP>,
    video: Arc<TrackLocalStaticRTP>,
    sent: Arc<SendStats>,
    want: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in 0u32.. {
        tick.tick().await;
        let p = Packet {
            header: Header {
                version: 2,
                marker: n == 0,
                sequence_number: n as u16,
                timestamp: n.wrapping_mul(960),
                ..Default::default()
            },
            payload: opus_payload(n).into(),
        };
        if audio.write_rtp(&p).await.is_ok_and(|n| n > 0) {
            sent.audio_packets.fetch_add(1, Ordering::Relaxed);
        }
        if n.is_multiple_of(2) {
            let frame = n / 2;
            let key = frame.is_multiple_of(KEYFRAME_EVERY) || want.swap(false, Ordering::Relaxed);
            let p = Packet {
                header: Header {
                    version: 2,
                    marker: true,
                    sequence_number: frame as u16,
                    timestamp: frame.wrapping_mul(3600),
                    ..Default::default()
                },
                payload: vp8_payload(key, frame).into(),
            };
            if video.write_rtp(&p).await.is_ok_and(|n| n > 0) {
                sent.video_packets.fetch_add(1, Ordering::Relaxed);
                if key {
                    sent.keyframes.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}
