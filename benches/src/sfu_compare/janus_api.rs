//! The load client's Janus side: the Janus API over its WebSocket (subprotocol
//! `janus-protocol`) with the VideoRoom plugin, in its multistream form (Janus 1.x): each
//! participant has a session with one publisher handle and one subscriber handle, and
//! subscribes to all the feeds it wants on one connection. Feed ids are the participants'
//! indexes plus one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer};

use super::Error;
use super::client::{Client, Proto, Publisher, Shared};
use super::peer::Peer;
use super::ws::Ws;

const PLUGIN: &str = "janus.plugin.videoroom";
/// Janus drops a session that says nothing for 60 s (its default `session_timeout`).
const KEEPALIVE_EVERY: Duration = Duration::from_secs(20);
const REPLY_WITHIN: Duration = Duration::from_secs(15);

/// A Janus and the VideoRoom room the clients meet in.
#[derive(Clone, Debug)]
pub struct JanusTarget {
    /// Its WebSocket API.
    pub ws_url: String,
    /// The room's number.
    pub room: u64,
}

/// A client's Janus session and handles.
pub(super) struct JanusState {
    session: u64,
    publisher_handle: Option<u64>,
    subscriber_handle: Option<u64>,
    next_transaction: u64,
    /// When the next keepalive is due.
    pub(super) keepalive_due: Instant,
}

fn feed(index: u32) -> u64 {
    u64::from(index) + 1
}

impl Client {
    /// Connects to Janus and creates a session for participant `index`.
    pub async fn janus_connect(
        target: &JanusTarget,
        index: u32,
        shared: Arc<Shared>,
    ) -> Result<Client, Error> {
        let ws = Ws::connect(&target.ws_url, Some("janus-protocol")).await?;
        let state = JanusState {
            session: 0,
            publisher_handle: None,
            subscriber_handle: None,
            next_transaction: 1,
            keepalive_due: Instant::now() + KEEPALIVE_EVERY,
        };
        let mut c = Client::new(ws, Proto::Janus(state), index, shared);
        let created = c.janus_request(json!({"janus": "create"})).await?;
        let session = created["data"]["id"].as_u64().ok_or("no session id")?;
        c.janus().session = session;
        Ok(c)
    }

    fn janus(&mut self) -> &mut JanusState {
        match &mut self.proto {
            Proto::Janus(j) => j,
            Proto::Tern => unreachable!("a Janus request on a tern client"),
        }
    }

    /// Sends a request in the session and waits for its reply (past the `ack` of an
    /// asynchronous plugin request); an error if Janus or the plugin refuses it.
    async fn janus_request(&mut self, mut request: Value) -> Result<Value, Error> {
        let transaction = self.janus_send(&mut request).await?;
        let reply = self
            .wait_for(REPLY_WITHIN, |m| {
                m["transaction"] == transaction.as_str() && m["janus"] != "ack"
            })
            .await?;
        let plugin_error = &reply["plugindata"]["data"]["error"];
        if reply["janus"] == "error" || !plugin_error.is_null() {
            return Err(format!("Janus refused {request}: {reply}").into());
        }
        Ok(reply)
    }

    /// Sends a request in the session with a fresh transaction; returns the transaction.
    async fn janus_send(&mut self, request: &mut Value) -> Result<String, Error> {
        let j = self.janus();
        let transaction = format!("t{}", j.next_transaction);
        j.next_transaction += 1;
        j.keepalive_due = Instant::now() + KEEPALIVE_EVERY;
        request["transaction"] = json!(transaction);
        if j.session != 0 {
            request["session_id"] = json!(j.session);
        }
        self.ws.send(request).await?;
        Ok(transaction)
    }

    async fn janus_attach(&mut self) -> Result<u64, Error> {
        let attached = self
            .janus_request(json!({"janus": "attach", "plugin": PLUGIN}))
            .await?;
        Ok(attached["data"]["id"].as_u64().ok_or("no handle id")?)
    }

    async fn janus_message(
        &mut self,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
    ) -> Result<Value, Error> {
        let mut request = json!({"janus": "message", "handle_id": handle, "body": body});
        if let Some(jsep) = jsep {
            request["jsep"] = jsep;
        }
        self.janus_request(request).await
    }

    /// Creates room `room` for up to `publishers` publishers (any client can).
    pub async fn janus_create_room(&mut self, room: u64, publishers: usize) -> Result<(), Error> {
        let handle = self.janus_attach().await?;
        let body = json!({
            "request": "create", "room": room, "publishers": publishers,
            "audiocodec": "opus", "videocodec": "vp8",
            "bitrate": 10_000_000, "fir_freq": 0, "permanent": false,
        });
        self.janus_message(handle, body, None).await?;
        Ok(())
    }

    /// Joins `room` as a publisher and publishes a microphone and a camera (simulcast on these
    /// rids, lowest first, if any).
    pub(super) async fn janus_publish(&mut self, room: u64, rids: &[&str]) -> Result<(), Error> {
        let handle = self.janus_attach().await?;
        self.janus().publisher_handle = Some(handle);
        let join = json!({
            "request": "join", "ptype": "publisher", "room": room,
            "id": feed(self.index), "display": format!("p{}", self.index),
        });
        self.janus_message(handle, join, None).await?;
        let (mut peer, audio, video, offer, pending) = Peer::publishing(rids)?;
        let mut jsep = json!({"type": "offer", "sdp": offer.to_sdp_string(), "trickle": false});
        if !rids.is_empty() {
            // Janus reads the rids as highest first unless told otherwise.
            jsep["rid_order"] = json!("lmh");
        }
        let body = json!({"request": "publish", "audiocodec": "opus", "videocodec": "vp8"});
        let reply = self.janus_message(handle, body, Some(jsep)).await?;
        let sdp = reply["jsep"]["sdp"].as_str().ok_or("no answer")?;
        peer.rtc
            .sdp_api()
            .accept_answer(pending, SdpAnswer::from_sdp_string(sdp)?)?;
        let rids = rids.iter().map(|r| r.to_string()).collect();
        self.publisher = Some(Publisher::new(peer, audio, video, rids));
        Ok(())
    }

    /// Subscribes to the feeds of these participants on one connection.
    pub(super) async fn janus_subscribe(&mut self, room: u64, from: &[u32]) -> Result<(), Error> {
        let handle = self.janus_attach().await?;
        self.janus().subscriber_handle = Some(handle);
        let streams: Vec<Value> = from.iter().map(|&i| json!({"feed": feed(i)})).collect();
        let join =
            json!({"request": "join", "ptype": "subscriber", "room": room, "streams": streams});
        let reply = self.janus_message(handle, join, None).await?;
        let jsep = self.janus_answer(&reply)?;
        let start = json!({"request": "start"});
        self.janus_message(handle, start, Some(jsep)).await?;
        Ok(())
    }

    /// Accepts the subscriber offer in a Janus event; the answer's jsep.
    fn janus_answer(&mut self, event: &Value) -> Result<Value, Error> {
        let sdp = event["jsep"]["sdp"].as_str().ok_or("no offer")?;
        let offer = SdpOffer::from_sdp_string(sdp)?;
        if self.subscriber.is_none() {
            let mut peer = Peer::new()?;
            peer.set_loss(self.shared.downlink_loss, self.index.into());
            self.subscriber = Some(peer);
        }
        let sub = self.subscriber.as_mut().ok_or("no subscriber")?;
        let answer = sub.rtc.sdp_api().accept_offer(offer)?;
        Ok(json!({"type": "answer", "sdp": answer.to_sdp_string(), "trickle": false}))
    }

    /// Handles a Janus message nothing waits for: a renegotiation offer for the subscriber is
    /// answered; a hangup is reported.
    pub(super) async fn janus_background(&mut self, m: Value) -> Result<(), Error> {
        let sub = self.janus().subscriber_handle;
        if m["janus"] == "event" && m["jsep"]["type"] == "offer" && m["sender"].as_u64() == sub {
            let jsep = self.janus_answer(&m)?;
            let handle = sub.ok_or("no subscriber handle")?;
            let mut start = json!({"janus": "message", "handle_id": handle, "body": {"request": "start"}, "jsep": jsep});
            self.janus_send(&mut start).await?;
        } else if m["janus"] == "hangup" || m["janus"] == "error" {
            eprintln!("client {}: Janus says {m}", self.index);
        }
        Ok(())
    }

    /// Sends a keepalive (its `ack` is ignored when it comes).
    pub(super) async fn janus_keepalive(&mut self) -> Result<(), Error> {
        self.janus_send(&mut json!({"janus": "keepalive"})).await?;
        Ok(())
    }
}
