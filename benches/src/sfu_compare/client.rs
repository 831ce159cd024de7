//! A load client: one participant's signaling socket and its str0m connections (one that
//! publishes, one that receives), driven in one task that wakes only for a signaling message,
//! a readable socket, a str0m timeout or a packet due to be sent.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use str0m::media::Mid;

use super::Error;
use super::peer::Peer;
use super::probe::{self, PACKETS_PER_FRAME, Probe, Seen, Stream, Window};
use super::tally::Tally;
use super::ws::Ws;

/// What all the clients of a run share.
#[derive(Debug)]
pub struct Shared {
    /// Payload send times count from here.
    pub epoch: Instant,
    /// The measurement window.
    pub window: Window,
    /// Share of the datagrams each subscriber connection drops before str0m sees them (a
    /// lossy downlink), from 0 to 1.
    pub downlink_loss: f64,
    /// Counts per interval, for long runs.
    pub tally: Option<Tally>,
}

impl Default for Shared {
    /// Epoch now, no window yet, no loss, no tally.
    fn default() -> Self {
        Shared {
            epoch: Instant::now(),
            window: Window::default(),
            downlink_loss: 0.0,
            tally: None,
        }
    }
}

/// The signaling state of each protocol.
pub(super) enum Proto {
    /// tern's WebSocket protocol (docs/signaling.md).
    Tern,
    /// Janus's API with the VideoRoom plugin.
    Janus(super::janus_api::JanusState),
}

/// A publisher connection and its sending schedule.
pub(super) struct Publisher {
    pub(super) peer: Peer,
    pub(super) audio: Mid,
    pub(super) video: Mid,
    /// The simulcast rids, lowest first, or empty.
    pub(super) rids: Vec<String>,
    start: Instant,
    audio_sent: u32,
    frames_sent: u32,
    /// Packets sent inside the window: audio, and video per layer.
    pub(super) sent_in_window: [u64; 4],
    /// Sum and count of how late packets went out against their schedule, microseconds.
    late_us: (u64, u64),
}

/// One participant.
pub struct Client {
    pub(super) ws: Ws,
    pub(super) proto: Proto,
    /// Its index in the scenario (the publisher index its payloads carry).
    pub index: u32,
    pub(super) publisher: Option<Publisher>,
    pub(super) subscriber: Option<Peer>,
    /// What its receiving connection got.
    pub seen: Seen,
    pub(super) shared: Arc<Shared>,
    /// The latest interval each stream was counted in by the tally.
    tallied: HashMap<(u32, Stream), usize>,
}

/// What woke a client.
pub(super) enum Woke {
    /// A signaling message.
    Message(Value),
    /// A Janus keepalive is due.
    Keepalive,
    /// Media was handled.
    Media,
}

/// What a client reports at the end.
#[derive(Debug, Default)]
pub struct Report {
    /// What it received.
    pub seen: Seen,
    /// Packets it sent inside the window: audio, then video per layer.
    pub sent_in_window: [u64; 4],
    /// Mean lateness of its sends against their schedule, microseconds.
    pub mean_send_lateness_us: Option<f64>,
    /// Datagrams its sockets would not take.
    pub send_drops: u64,
}

async fn ready(peer: Option<&Peer>) {
    match peer {
        Some(p) => p.ready().await,
        None => std::future::pending().await,
    }
}

impl Publisher {
    pub(super) fn new(peer: Peer, audio: Mid, video: Mid, rids: Vec<String>) -> Publisher {
        Publisher {
            peer,
            audio,
            video,
            rids,
            start: Instant::now(),
            audio_sent: 0,
            frames_sent: 0,
            sent_in_window: [0; 4],
            late_us: (0, 0),
        }
    }

    /// When the next packet is due: audio every 20 ms, a video frame every 33.3 ms.
    fn next_due(&self) -> Instant {
        let audio = self.start + Duration::from_millis(20) * self.audio_sent;
        let video = self.start + Duration::from_micros(33_333) * self.frames_sent;
        audio.min(video)
    }

    /// Sends every packet that is due.
    fn send_due(&mut self, index: u32, shared: &Shared) -> Result<(), Error> {
        let now = Instant::now();
        while self.start + Duration::from_millis(20) * self.audio_sent <= now {
            let due = self.start + Duration::from_millis(20) * self.audio_sent;
            let seq = self.audio_sent;
            self.send(index, shared, Stream::Audio, None, seq, seq * 960, due)?;
            self.audio_sent += 1;
        }
        while self.start + Duration::from_micros(33_333) * self.frames_sent <= now {
            let due = self.start + Duration::from_micros(33_333) * self.frames_sent;
            let layers = self.rids.len().max(1) as u8;
            for layer in 0..layers {
                for k in 0..PACKETS_PER_FRAME {
                    let seq = self.frames_sent * PACKETS_PER_FRAME + k;
                    let rid = self.rids.get(usize::from(layer)).cloned();
                    let ts = self.frames_sent * 3000;
                    self.send(index, shared, Stream::Video(layer), rid, seq, ts, due)?;
                }
            }
            self.frames_sent += 1;
        }
        self.peer.flush()?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        index: u32,
        shared: &Shared,
        stream: Stream,
        rid: Option<String>,
        seq: u32,
        ts: u32,
        due: Instant,
    ) -> Result<(), Error> {
        let now = Instant::now();
        let sent_us = now.saturating_duration_since(shared.epoch).as_micros() as u64;
        let probe = Probe {
            publisher: index,
            stream,
            seq,
            sent_us,
        };
        let payload = probe::payload(&probe);
        let (mid, marker, slot) = match stream {
            Stream::Audio => (self.audio, true, 0),
            Stream::Video(l) => (
                self.video,
                seq % PACKETS_PER_FRAME == PACKETS_PER_FRAME - 1,
                1 + usize::from(l.min(2)),
            ),
        };
        let rtp_seq = u64::from(seq) + 1;
        if !self
            .peer
            .write(mid, rid.as_deref(), rtp_seq, ts, marker, payload)
        {
            return Err(format!("publisher {index} cannot send on {mid}").into());
        }
        if let Some(t) = &shared.tally {
            t.sent(&probe);
        }
        if shared.window.contains(sent_us) {
            self.sent_in_window[slot] += 1;
            let late = now.saturating_duration_since(due).as_micros() as u64;
            self.late_us = (self.late_us.0 + late, self.late_us.1 + 1);
        }
        Ok(())
    }
}

impl Client {
    pub(super) fn new(ws: Ws, proto: Proto, index: u32, shared: Arc<Shared>) -> Client {
        Client {
            ws,
            proto,
            index,
            publisher: None,
            subscriber: None,
            seen: Seen::default(),
            shared,
            tallied: HashMap::new(),
        }
    }

    /// Waits for the next thing to do and does it, unless it is a signaling message or a
    /// keepalive, which it returns. Cancel-safe.
    pub(super) async fn step(&mut self) -> Result<Woke, Error> {
        enum Which {
            Publisher,
            Subscriber,
            Send,
            Keepalive,
        }
        let send_due = self.publisher.as_ref().map(Publisher::next_due);
        let keepalive_due = match &self.proto {
            Proto::Janus(j) => Some(j.keepalive_due),
            Proto::Tern => None,
        };
        let far = Instant::now() + Duration::from_secs(3600);
        let which = tokio::select! {
            m = self.ws.next() => return Ok(Woke::Message(m?)),
            _ = ready(self.publisher.as_ref().map(|p| &p.peer)) => Which::Publisher,
            _ = ready(self.subscriber.as_ref()) => Which::Subscriber,
            _ = tokio::time::sleep_until(send_due.unwrap_or(far).into()), if send_due.is_some()
                => Which::Send,
            _ = tokio::time::sleep_until(keepalive_due.unwrap_or(far).into()),
                if keepalive_due.is_some() => Which::Keepalive,
        };
        match which {
            Which::Publisher => {
                if let Some(p) = &mut self.publisher {
                    p.peer.pump(&mut |_| {})?;
                }
            }
            Which::Subscriber => {
                if let Some(s) = &mut self.subscriber {
                    let (seen, shared) = (&mut self.seen, &self.shared);
                    let tallied = &mut self.tallied;
                    s.pump(&mut |p| {
                        let probe =
                            seen.record(&p.payload, p.timestamp, shared.epoch, &shared.window);
                        if let (Some(t), Some(probe)) = (&shared.tally, probe) {
                            t.delivered(&probe, tallied);
                        }
                    })?;
                }
            }
            Which::Send => {
                if let Some(p) = &mut self.publisher {
                    p.send_due(self.index, &self.shared)?;
                }
            }
            Which::Keepalive => return Ok(Woke::Keepalive),
        }
        Ok(Woke::Media)
    }

    /// Handles what [`Client::step`] returned that needs the signaling socket.
    pub(super) async fn handle(&mut self, woke: Woke) -> Result<(), Error> {
        match woke {
            Woke::Message(m) => match self.proto {
                Proto::Tern => self.tern_background(m).await,
                Proto::Janus(_) => self.janus_background(m).await,
            },
            Woke::Keepalive => self.janus_keepalive().await,
            Woke::Media => Ok(()),
        }
    }

    /// Runs until a signaling message satisfies `wanted`, which it returns; anything else is
    /// handled on the way. An error after `limit`.
    pub(super) async fn wait_for(
        &mut self,
        limit: Duration,
        mut wanted: impl FnMut(&Value) -> bool,
    ) -> Result<Value, Error> {
        let deadline = Instant::now() + limit;
        loop {
            let woke = tokio::select! {
                w = self.step() => w?,
                _ = tokio::time::sleep_until(deadline.into()) => {
                    return Err(format!("client {}: no reply within {limit:?}", self.index).into());
                }
            };
            match woke {
                Woke::Message(m) if wanted(&m) => return Ok(m),
                other => self.handle(other).await?,
            }
        }
    }

    /// Runs until `done` holds (true) or `limit` passes (false).
    pub async fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Client) -> bool,
    ) -> Result<bool, Error> {
        let deadline = Instant::now() + limit;
        while !done(self) {
            let woke = tokio::select! {
                w = self.step() => w?,
                _ = tokio::time::sleep_until(deadline.into()) => return Ok(false),
            };
            self.handle(woke).await?;
        }
        Ok(true)
    }

    /// Runs until `stop` completes.
    pub async fn run_while_pending(
        &mut self,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), Error> {
        let mut stop = std::pin::pin!(stop);
        loop {
            let woke = tokio::select! {
                w = self.step() => w?,
                _ = &mut stop => return Ok(()),
            };
            self.handle(woke).await?;
        }
    }

    /// Whether the publishing connection is up (true if it publishes nothing).
    pub fn publisher_connected(&self) -> bool {
        self.publisher.as_ref().is_none_or(|p| p.peer.connected())
    }

    /// Whether it has received audio and video (every layer in `layers`) from each of
    /// `publishers`.
    pub fn receives_all(&self, publishers: &[u32], layers: &[u8]) -> bool {
        let have: HashSet<_> = self.seen.streams.keys().copied().collect();
        publishers.iter().all(|&p| {
            have.contains(&(p, Stream::Audio))
                && layers
                    .iter()
                    .all(|&l| have.contains(&(p, Stream::Video(l))))
        })
    }

    /// Its report.
    pub fn report(self) -> Report {
        let (sent_in_window, lateness) = self.publisher.as_ref().map_or(([0; 4], None), |p| {
            let late = (p.late_us.1 > 0).then(|| p.late_us.0 as f64 / p.late_us.1 as f64);
            (p.sent_in_window, late)
        });
        let send_drops = self.publisher.as_ref().map_or(0, |p| p.peer.send_drops)
            + self.subscriber.as_ref().map_or(0, |s| s.send_drops);
        Report {
            seen: self.seen,
            sent_in_window,
            mean_send_lateness_us: lateness,
            send_drops,
        }
    }
}
