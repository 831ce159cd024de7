//! The messages participants exchange through tern over WebRTC data channels (RFC 8831): how
//! one is read from a channel and written to one. Pure.
//!
//! A message is a JSON object. In a text message the payload is the `payload` string; a binary
//! message is the JSON header, one NUL byte (which JSON text never contains) and the payload's
//! raw bytes. tern stamps the sender (`from`, `identity`) on what it delivers, whatever the
//! sender wrote there.

use serde::{Deserialize, Serialize};

use crate::ids::ParticipantId;

/// The label of the ordered, reliable channel.
pub const RELIABLE_LABEL: &str = "tern-reliable";
/// The label of the unordered channel without retransmissions.
pub const LOSSY_LABEL: &str = "tern-lossy";
/// The most recipients one message may name.
pub const MAX_RECIPIENTS: usize = 256;
/// The longest topic, in bytes.
pub const MAX_TOPIC_BYTES: usize = 128;

/// What a message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// Text, sent in a text message.
    Text(String),
    /// Bytes, sent in a binary message.
    Binary(Vec<u8>),
}

impl Payload {
    /// Its size in bytes.
    pub fn len(&self) -> usize {
        match self {
            Payload::Text(t) => t.len(),
            Payload::Binary(b) => b.len(),
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A message to deliver, as a participant or the REST API sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataMessage {
    /// What it is about, for the application (`chat`, ...).
    pub topic: Option<String>,
    /// Who gets it; empty: everyone else in the room.
    pub to: Vec<ParticipantId>,
    /// The content.
    pub payload: Payload,
    /// The sender's number for it, echoed in an error about it.
    pub id: Option<u64>,
}

/// Why a message was refused: a stable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRefusal {
    /// `bad_message`, `data_too_large`, `permission_denied`, `rate_limited`.
    pub code: &'static str,
    /// What was wrong.
    pub message: String,
}

impl DataRefusal {
    fn bad(message: impl Into<String>) -> Self {
        Self {
            code: "bad_message",
            message: message.into(),
        }
    }
}

/// The header as a sender writes it. Unknown fields (a forged `from`, say) are ignored.
#[derive(Deserialize)]
struct Header {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    payload: Option<String>,
    #[serde(default)]
    id: Option<u64>,
}

/// Reads one message from a channel. `binary` is how it was sent.
pub fn parse(binary: bool, bytes: &[u8]) -> Result<DataMessage, DataRefusal> {
    let (header, raw) = if binary {
        let nul = bytes
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| DataRefusal::bad("a binary message is a JSON header, NUL, payload"))?;
        (&bytes[..nul], Some(&bytes[nul + 1..]))
    } else {
        (bytes, None)
    };
    let h: Header = serde_json::from_slice(header)
        .map_err(|e| DataRefusal::bad(format!("the header is not a message: {e}")))?;
    if h.kind != "data" {
        return Err(DataRefusal::bad(format!("unknown type {:?}", h.kind)));
    }
    if h.topic.as_ref().is_some_and(|t| t.len() > MAX_TOPIC_BYTES) {
        return Err(DataRefusal::bad(format!(
            "topic longer than {MAX_TOPIC_BYTES} bytes"
        )));
    }
    if h.to.len() > MAX_RECIPIENTS {
        return Err(DataRefusal::bad(format!(
            "more than {MAX_RECIPIENTS} recipients"
        )));
    }
    let to =
        h.to.iter()
            .map(|s| {
                s.parse()
                    .map_err(|_| DataRefusal::bad(format!("{s:?} is not a participant id")))
            })
            .collect::<Result<Vec<ParticipantId>, _>>()?;
    let payload = match (raw, h.payload) {
        (Some(raw), None) => Payload::Binary(raw.to_vec()),
        (None, Some(text)) => Payload::Text(text),
        (Some(_), Some(_)) => {
            return Err(DataRefusal::bad("a binary message has no payload field"));
        }
        (None, None) => return Err(DataRefusal::bad("payload missing")),
    };
    Ok(DataMessage {
        topic: h.topic,
        to,
        payload,
        id: h.id,
    })
}

/// Who sent a delivered message: a participant, or the server's API (`None`).
#[derive(Debug, Clone, Copy)]
pub struct Sender<'a> {
    /// The participant's id and identity.
    pub participant: Option<(ParticipantId, &'a str)>,
}

#[derive(Serialize)]
struct Delivery<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    from: Option<ParticipantId>,
    identity: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    to: &'a [ParticipantId],
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a str>,
    reliable: bool,
}

/// A message as every recipient gets it, and whether it is binary: the same bytes for each.
pub fn encode_delivery(sender: Sender<'_>, m: &DataMessage, reliable: bool) -> (bool, Vec<u8>) {
    let text = match &m.payload {
        Payload::Text(t) => Some(t.as_str()),
        Payload::Binary(_) => None,
    };
    let d = Delivery {
        kind: "data",
        from: sender.participant.map(|(id, _)| id),
        identity: sender.participant.map(|(_, identity)| identity),
        topic: m.topic.as_deref(),
        to: &m.to,
        payload: text,
        reliable,
    };
    // Serialising these plain fields cannot fail.
    let mut out = serde_json::to_vec(&d).unwrap_or_default();
    match &m.payload {
        Payload::Text(_) => (false, out),
        Payload::Binary(raw) => {
            out.push(0);
            out.extend_from_slice(raw);
            (true, out)
        }
    }
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
}

/// The text message that tells a sender why its message `id` was refused.
pub fn encode_refusal(refusal: &DataRefusal, id: Option<u64>) -> Vec<u8> {
    let e = ErrorOut {
        kind: "error",
        code: refusal.code,
        message: &refusal.message,
        id,
    };
    serde_json::to_vec(&e).unwrap_or_default()
}

/// The message number of a refused message, when its header can still be read.
pub fn message_id(binary: bool, bytes: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct OnlyId {
        id: Option<u64>,
    }
    let header = if binary {
        &bytes[..bytes.iter().position(|b| *b == 0)?]
    } else {
        bytes
    };
    serde_json::from_slice::<OnlyId>(header).ok()?.id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes).expect("json")
    }

    #[test]
    fn a_text_message_to_two_participants_is_read() {
        let m = parse(
            false,
            br#"{"type":"data","topic":"chat","to":["PA_2","PA_3"],"payload":"hi","id":7}"#,
        )
        .expect("parses");
        assert_eq!(m.topic.as_deref(), Some("chat"));
        assert_eq!(m.to, vec![ParticipantId(2), ParticipantId(3)]);
        assert_eq!(m.payload, Payload::Text("hi".into()));
        assert_eq!(m.id, Some(7));
    }

    #[test]
    fn a_forged_sender_is_replaced_by_the_real_one() {
        let m = parse(
            false,
            br#"{"type":"data","from":"PA_9","identity":"mallory","payload":"x"}"#,
        )
        .expect("parses");
        let (binary, out) = encode_delivery(
            Sender {
                participant: Some((ParticipantId(1), "alice")),
            },
            &m,
            true,
        );
        assert!(!binary);
        let v = json(&out);
        assert_eq!(v["from"], "PA_1");
        assert_eq!(v["identity"], "alice");
        assert_eq!(v["payload"], "x");
        assert_eq!(v["reliable"], true);
        assert!(v.get("to").is_none(), "a message to everyone names nobody");
    }

    #[test]
    fn a_binary_message_keeps_its_bytes_and_its_header_is_rewritten() {
        let mut raw = br#"{"type":"data","topic":"t","from":"PA_5"}"#.to_vec();
        raw.push(0);
        raw.extend_from_slice(&[0, 1, 2, 255]);
        let m = parse(true, &raw).expect("parses");
        assert_eq!(m.payload, Payload::Binary(vec![0, 1, 2, 255]));
        let (binary, out) = encode_delivery(Sender { participant: None }, &m, false);
        assert!(binary);
        let nul = out.iter().position(|b| *b == 0).expect("separator");
        let v = json(&out[..nul]);
        assert_eq!(v["from"], serde_json::Value::Null, "the server sent it");
        assert_eq!(v["topic"], "t");
        assert_eq!(&out[nul + 1..], &[0, 1, 2, 255]);
    }

    #[test]
    fn malformed_messages_are_refused_with_bad_message() {
        let long_topic = format!(
            r#"{{"type":"data","topic":"{}","payload":""}}"#,
            "x".repeat(MAX_TOPIC_BYTES + 1)
        );
        let cases: [(bool, &[u8], &str); 7] = [
            (false, b"not json", "not JSON"),
            (false, br#"{"type":"chat","payload":"x"}"#, "another type"),
            (false, br#"{"type":"data"}"#, "no payload"),
            (
                false,
                br#"{"type":"data","to":["bob"],"payload":"x"}"#,
                "not an id",
            ),
            (true, br#"{"type":"data"}"#, "binary without the NUL"),
            (
                true,
                b"{\"type\":\"data\",\"payload\":\"x\"}\0y",
                "two payloads",
            ),
            (false, long_topic.as_bytes(), "topic too long"),
        ];
        for (binary, bytes, what) in cases {
            let e = parse(binary, bytes).expect_err(what);
            assert_eq!(e.code, "bad_message", "{what}");
        }
    }

    #[test]
    fn a_refusal_names_the_message_it_refuses() {
        let id = message_id(false, br#"{"type":"data","payload":"x","id":42}"#);
        assert_eq!(id, Some(42));
        let r = DataRefusal {
            code: "data_too_large",
            message: "too big".into(),
        };
        let v = json(&encode_refusal(&r, id));
        assert_eq!(v["type"], "error");
        assert_eq!(v["code"], "data_too_large");
        assert_eq!(v["id"], 42);
    }
}
