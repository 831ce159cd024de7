//! Every way a join token can be wrong gets its own clear error, over the real WebSocket.

mod common;

use std::time::SystemTime;

use base64::Engine;
use serde_json::{Value, json};
use tern_server::auth::{Claims, Grants, mint_with_secret, unix_seconds};

use common::{SECRET, Ws, claims};

async fn join_error(http: std::net::SocketAddr, token: &str, room: &str) -> Value {
    let mut ws = Ws::connect(http).await;
    ws.send(json!({"type": "join", "v": 1, "token": token, "room": room, "req": 5}))
        .await;
    let reply = ws.recv().await.expect("a reply");
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["req"], 5);
    reply
}

#[tokio::test]
async fn bad_tokens_are_refused_with_their_own_codes() {
    let server = common::server().await;
    let http = server.http_addr;
    let now = unix_seconds(SystemTime::now());
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let body = serde_json::to_value(claims("mallory", "demo")).expect("json");
    let cases: Vec<(&str, String)> = vec![
        ("token_missing", String::new()),
        ("token_malformed", "not-a-jwt".into()),
        (
            "token_expired",
            mint_with_secret(
                SECRET,
                &Claims {
                    exp: now - 10,
                    ..claims("a", "demo")
                },
            ),
        ),
        (
            "token_not_yet_valid",
            mint_with_secret(
                SECRET,
                &Claims {
                    nbf: Some(now + 3600),
                    ..claims("a", "demo")
                },
            ),
        ),
        (
            "token_signature",
            mint_with_secret("another-secret", &claims("a", "demo")),
        ),
        (
            "token_unknown_key",
            mint_with_secret(
                SECRET,
                &Claims {
                    iss: "nobody".into(),
                    ..claims("a", "demo")
                },
            ),
        ),
        (
            "token_algorithm",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&body)
            ),
        ),
        (
            "token_algorithm",
            format!("{}.{}.AAAA", b64(&json!({"alg": "HS512"})), b64(&body)),
        ),
        ("token_wrong_room", common::token("a", "other-room")),
        (
            "permission_denied",
            mint_with_secret(
                SECRET,
                &Claims {
                    grants: Grants {
                        subscribe: true,
                        ..Default::default()
                    },
                    ..claims("a", "demo")
                },
            ),
        ),
    ];
    for (code, token) in cases {
        let reply = join_error(http, &token, "demo").await;
        assert_eq!(reply["code"], code, "token {token:?} gave {reply}");
        assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    server.shutdown();
}

#[tokio::test]
async fn grants_limit_what_a_participant_may_do() {
    let server = common::server().await;
    let viewer = Claims {
        grants: Grants {
            join: true,
            subscribe: true,
            ..Default::default()
        },
        ..claims("viewer", "demo")
    };
    let mut ws = Ws::connect(server.http_addr).await;
    ws.send(
        json!({"type": "join", "v": 1, "token": mint_with_secret(SECRET, &viewer), "room": "demo"}),
    )
    .await;
    ws.expect("joined").await;
    // Any audio or video m-line needs `publish`, whatever its direction says or its port.
    let head = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
    let media = [
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendonly\r\n",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendonly\r\na=recvonly\r\n",
        "m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=bundle-only\r\n",
    ];
    for (n, m) in media.iter().enumerate() {
        let req = 9 + n as u64;
        ws.send(json!({"type": "offer", "sdp": format!("{head}{m}"), "tracks": [], "req": req}))
            .await;
        let reply = ws.expect("error").await;
        assert_eq!(
            (reply["code"].as_str(), reply["req"].as_u64()),
            (Some("permission_denied"), Some(req)),
            "{m}: {reply}"
        );
    }
    server.shutdown();
}

#[tokio::test]
async fn the_dev_token_endpoint_exists_only_without_keys() {
    let with_keys = common::server().await;
    let (status, _) =
        common::http("GET", with_keys.http_addr, "/dev/token?room=a&name=b", None).await;
    assert_eq!(status, 404);
    with_keys.shutdown();

    let dev = common::server_with(|c| c.auth.keys.clear()).await;
    let (status, body) = common::http("GET", dev.http_addr, "/dev/token?room=a&name=b", None).await;
    assert_eq!(status, 200);
    let token = body["token"].as_str().expect("a token");
    let mut ws = Ws::connect(dev.http_addr).await;
    ws.send(json!({"type": "join", "v": 1, "token": token, "room": "a"}))
        .await;
    assert_eq!(ws.expect("joined").await["participant"]["name"], "b");
    dev.shutdown();
}
