//! The load client's tern side: tern's signaling (docs/signaling.md) over its WebSocket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer};
use tern_server::auth::{Claims, Grants, mint_with_secret, unix_seconds};

use super::Error;
use super::client::{Client, Proto, Publisher, Shared};
use super::peer::Peer;
use super::tally::Downlink;
use super::ws::Ws;

/// A tern server and the room the clients meet in.
#[derive(Clone, Debug)]
pub struct TernTarget {
    /// Its HTTP address (the signaling WebSocket is `/rtc`).
    pub http: SocketAddr,
    /// An API key and its secret, to sign the clients' tokens.
    pub key: String,
    /// The key's secret.
    pub secret: String,
    /// The room.
    pub room: String,
}

impl TernTarget {
    fn token(&self, identity: &str) -> String {
        let claims = Claims {
            iss: self.key.clone(),
            sub: identity.into(),
            name: Some(identity.into()),
            room: Some(self.room.clone()),
            grants: Grants {
                join: true,
                publish: true,
                subscribe: true,
                ..Default::default()
            },
            exp: unix_seconds(SystemTime::now()) + 3600,
            nbf: None,
            iat: None,
        };
        mint_with_secret(&self.secret, &claims)
    }
}

impl Client {
    /// Connects to tern and joins the room as participant `index`.
    pub async fn tern_join(
        target: &TernTarget,
        index: u32,
        shared: Arc<Shared>,
    ) -> Result<Client, Error> {
        let mut ws = Ws::connect(&format!("ws://{}/rtc", target.http), None).await?;
        let token = target.token(&format!("p{index}"));
        ws.send(&json!({"type": "join", "v": 1, "token": token, "room": target.room}))
            .await?;
        let mut c = Client::new(ws, Proto::Tern, index, shared);
        let joined = c
            .wait_for(Duration::from_secs(10), |m| {
                m["type"] == "joined" || m["type"] == "error"
            })
            .await?;
        if joined["type"] == "error" {
            return Err(format!("tern refused the join: {joined}").into());
        }
        Ok(c)
    }

    /// Publishes a microphone and a camera (simulcast on these rids, lowest first, if any).
    pub(super) async fn tern_publish(&mut self, rids: &[&str]) -> Result<(), Error> {
        let (mut peer, audio, video, offer, pending) = Peer::publishing(rids)?;
        let tracks = json!([
            {"mid": audio.to_string(), "source": "microphone"},
            {"mid": video.to_string(), "source": "camera"},
        ]);
        self.ws
            .send(
                &json!({"type": "offer", "sdp": offer.to_sdp_string(), "tracks": tracks, "req": 1}),
            )
            .await?;
        let answer = self
            .wait_for(Duration::from_secs(10), |m| {
                m["type"] == "answer" || (m["type"] == "error" && m["req"] == 1)
            })
            .await?;
        let sdp = SdpAnswer::from_sdp_string(answer["sdp"].as_str().ok_or("no sdp")?)?;
        peer.rtc.sdp_api().accept_answer(pending, sdp)?;
        let rids = rids.iter().map(|r| r.to_string()).collect();
        self.publisher = Some(Publisher::new(peer, audio, video, rids));
        Ok(())
    }

    /// Handles a message from tern that nothing waits for: a subscriber offer is answered; a
    /// `quality` report goes to the tally, if there is one.
    pub(super) async fn tern_background(&mut self, m: Value) -> Result<(), Error> {
        if m["type"] == "offer" {
            let offer = SdpOffer::from_sdp_string(m["sdp"].as_str().ok_or("no sdp")?)?;
            if self.subscriber.is_none() {
                let mut peer = Peer::new()?;
                peer.set_loss(self.shared.downlink_loss, self.index.into());
                self.subscriber = Some(peer);
            }
            let sub = self.subscriber.as_mut().ok_or("no subscriber")?;
            let answer = sub.rtc.sdp_api().accept_offer(offer)?;
            self.ws
                .send(&json!({"type": "answer", "sdp": answer.to_sdp_string()}))
                .await?;
        } else if m["type"] == "quality" {
            if let Some(t) = &self.shared.tally {
                let tracks = m["tracks"].as_array().map_or(&[][..], |a| a.as_slice());
                let limited = tracks.iter().filter(|t| t["bandwidth_limited"] == true);
                let d = Downlink {
                    estimate_bps: m["estimate"].as_f64(),
                    limited: limited.count(),
                };
                t.downlink(self.index, d);
            }
        } else if m["type"] == "error" {
            eprintln!("client {}: tern says {m}", self.index);
        }
        Ok(())
    }
}

/// The sum of tern's `tern_rtp_forwarded_total` counter (a cross-check of what the clients
/// count).
pub async fn forwarded_total(http: SocketAddr) -> Result<f64, Error> {
    let text = metrics_text(http).await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("tern_rtp_forwarded_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// tern's `tern_heap_allocated_bytes` gauge: what its live allocations hold, KiB.
pub async fn heap_allocated_kib(http: SocketAddr) -> Result<f64, Error> {
    let text = metrics_text(http).await?;
    let bytes = text
        .lines()
        .find(|l| l.starts_with("tern_heap_allocated_bytes"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .ok_or("no tern_heap_allocated_bytes in /metrics")?;
    Ok(bytes / 1024.0)
}

/// tern's forwarding latency histogram (`tern_forward_latency_seconds`, summed over workers):
/// each bucket's upper bound in seconds and its cumulative count, in order, `+Inf` last.
pub async fn forward_latency(http: SocketAddr) -> Result<Vec<(f64, f64)>, Error> {
    Ok(parse_forward_latency(&metrics_text(http).await?))
}

/// The buckets of `tern_forward_latency_seconds` in Prometheus text, summed over workers.
pub fn parse_forward_latency(text: &str) -> Vec<(f64, f64)> {
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("tern_forward_latency_seconds_bucket{") else {
            continue;
        };
        let le = rest.split("le=\"").nth(1).and_then(|v| v.split('"').next());
        let le = match le {
            Some("+Inf") => f64::INFINITY,
            Some(v) => match v.parse() {
                Ok(v) => v,
                Err(_) => continue,
            },
            None => continue,
        };
        let Some(count) = line.rsplit(' ').next().and_then(|c| c.parse::<f64>().ok()) else {
            continue;
        };
        match buckets.iter_mut().find(|(b, _)| *b == le) {
            Some((_, c)) => *c += count,
            None => buckets.push((le, count)),
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

/// The upper bound (seconds) of the bucket that holds quantile `q` of what was counted
/// between two readings of [`forward_latency`]; `None` if nothing was.
pub fn latency_quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<f64> {
    let earlier = |le: f64| {
        before
            .iter()
            .find(|(b, _)| *b == le)
            .map_or(0.0, |(_, c)| *c)
    };
    let window: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, c)| (*le, c - earlier(*le)))
        .collect();
    let total = window.last()?.1;
    if total <= 0.0 {
        return None;
    }
    window
        .iter()
        .find(|(_, c)| *c >= q * total)
        .map(|(le, _)| *le)
}

/// The Prometheus text of tern's `/metrics` (with the HTTP response head before it).
pub async fn metrics_text(http: SocketAddr) -> Result<String, Error> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(http).await?;
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut text = String::new();
    s.read_to_string(&mut text).await?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_windows_counts_summed_over_workers() {
        let text = |a: [u32; 3], b: [u32; 3]| {
            let mut t = String::from("# TYPE tern_forward_latency_seconds_bucket counter\n");
            for (w, counts) in [(0, a), (1, b)] {
                for (le, c) in ["0.00001", "0.00005", "+Inf"].iter().zip(counts) {
                    t += &format!(
                        "tern_forward_latency_seconds_bucket{{worker=\"{w}\",le=\"{le}\"}} {c}\n"
                    );
                }
            }
            t
        };
        let before = parse_forward_latency(&text([10, 10, 10], [0, 0, 0]));
        assert_eq!(
            before,
            vec![(0.00001, 10.0), (0.00005, 10.0), (f64::INFINITY, 10.0)]
        );
        // In the window: 50 at most 10 µs, 49 more at most 50 µs, one beyond.
        let after = parse_forward_latency(&text([40, 89, 90], [20, 20, 20]));
        assert_eq!(latency_quantile(&before, &after, 0.5), Some(0.00001));
        assert_eq!(latency_quantile(&before, &after, 0.99), Some(0.00005));
        assert_eq!(latency_quantile(&before, &after, 1.0), Some(f64::INFINITY));
        assert_eq!(
            latency_quantile(&after, &after, 0.5),
            None,
            "nothing counted"
        );
    }
}
