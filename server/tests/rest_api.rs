//! The REST API with admin tokens, and graceful shutdown.

mod common;

use std::time::{Duration, SystemTime};

use serde_json::json;
use tern_server::auth::{Claims, Grants, mint_with_secret, unix_seconds};

use common::{SECRET, Ws, admin_token, claims, http};

#[tokio::test]
async fn admins_list_rooms_and_participants_and_remove_people() {
    let server = common::server().await;
    let addr = server.http_addr;
    let (mut alice, _) = common::join(addr, "alice", "r1").await;
    let (mut bob, _) = common::join(addr, "bob", "r1").await;
    let (mut carol, _) = common::join(addr, "carol", "r2").await;
    let admin = admin_token();

    let (status, body) = http("GET", addr, "/api/v1/rooms", Some(&admin)).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["rooms"],
        json!([{"name": "r1", "participants": 2, "tracks": 0}, {"name": "r2", "participants": 1, "tracks": 0}])
    );

    let (status, body) = http("GET", addr, "/api/v1/rooms/r1/participants", Some(&admin)).await;
    assert_eq!(status, 200);
    let identities: Vec<&str> = body["participants"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["identity"].as_str())
        .collect();
    assert_eq!(identities.len(), 2);
    assert!(identities.contains(&"alice") && identities.contains(&"bob"));

    let (status, _) = http(
        "DELETE",
        addr,
        "/api/v1/rooms/r1/participants/bob",
        Some(&admin),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(bob.expect("closing").await["reason"], "removed");
    assert!(bob.closes_within(Duration::from_secs(3)).await);
    let left = alice.expect("participant_left").await;
    assert_eq!(left["reason"], "removed");

    let (status, _) = http("DELETE", addr, "/api/v1/rooms/r2", Some(&admin)).await;
    assert_eq!(status, 204);
    assert_eq!(carol.expect("closing").await["reason"], "room_closed");

    let (status, body) = http("GET", addr, "/api/v1/rooms/nope/participants", Some(&admin)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("room_not_found"))
    );
    let (status, body) = http(
        "DELETE",
        addr,
        "/api/v1/rooms/r1/participants/ghost",
        Some(&admin),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("participant_not_found"))
    );
    server.shutdown();
}

#[tokio::test]
async fn the_api_refuses_missing_bad_and_non_admin_tokens() {
    let server = common::server().await;
    let addr = server.http_addr;
    let (_alice, _) = common::join(addr, "alice", "r1").await;
    let (status, body) = http("GET", addr, "/api/v1/rooms", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_missing"))
    );
    let (status, body) = http("GET", addr, "/api/v1/rooms", Some("x.y.z")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_malformed"))
    );
    let participant = common::token("alice", "r1");
    let (status, body) = http("GET", addr, "/api/v1/rooms", Some(&participant)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("permission_denied"))
    );
    let expired = Claims {
        exp: unix_seconds(SystemTime::now()) - 5,
        grants: Grants {
            admin: true,
            ..Default::default()
        },
        ..claims("ops", "r1")
    };
    let (status, body) = http(
        "GET",
        addr,
        "/api/v1/rooms",
        Some(&mint_with_secret(SECRET, &expired)),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_expired"))
    );
    // A room-scoped admin token sees its room only.
    let scoped = Claims {
        grants: Grants {
            admin: true,
            ..Default::default()
        },
        ..claims("ops", "r2")
    };
    let scoped = mint_with_secret(SECRET, &scoped);
    let (status, body) = http("GET", addr, "/api/v1/rooms/r1/participants", Some(&scoped)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("token_wrong_room"))
    );
    let (status, body) = http("GET", addr, "/api/v1/rooms", Some(&scoped)).await;
    assert_eq!((status, body["rooms"].clone()), (200, json!([])));
    server.shutdown();
}

#[tokio::test]
async fn shutdown_tells_participants_refuses_joins_and_stops() {
    let server = common::server().await;
    let addr = server.http_addr;
    let (mut alice, _) = common::join(addr, "alice", "r").await;
    let mut late = Ws::connect(addr).await;
    server.shutdown();
    assert_eq!(alice.expect("closing").await["reason"], "server_shutdown");
    assert!(alice.closes_within(Duration::from_secs(5)).await);
    late.send(json!({"type": "join", "v": 1, "token": common::token("late", "r"), "room": "r"}))
        .await;
    assert_eq!(late.expect("error").await["code"], "server_shutting_down");
    tokio::time::timeout(Duration::from_secs(15), server.wait())
        .await
        .expect("stops in time")
        .expect("stops cleanly");
}

#[tokio::test]
async fn a_dead_signaling_connection_is_removed_and_the_room_told() {
    let server = common::server_with(|c| {
        c.signaling.ping_interval_secs = 1;
        c.signaling.idle_timeout_secs = 2;
        c.signaling.resume_grace_secs = 1;
    })
    .await;
    let (mut alice, _) = common::join(server.http_addr, "alice", "r").await;
    let (bob, joined) = common::join(server.http_addr, "bob", "r").await;
    let bob_id = joined["participant"]["id"].clone();
    // Bob's client freezes: its socket stays open but it never reads or answers pings.
    let frozen = bob;
    let started = std::time::Instant::now();
    let left = alice.expect("participant_left").await;
    assert_eq!(left["participant"], bob_id);
    assert_eq!(left["reason"], "connection_lost");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "only after the idle timeout and the resume grace: {:?}",
        started.elapsed()
    );
    drop(frozen);
    server.shutdown();
}

/// The authentication scheme is case-insensitive (RFC 9110 section 11.1): `bearer`, `BEARER`
/// and `Bearer` all work; another scheme or an empty token does not.
#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let server = common::server().await;
    let admin = admin_token();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let auth = format!("{scheme} {admin}");
        let (status, _) =
            common::http_authorized("GET", server.http_addr, "/api/v1/rooms", Some(&auth)).await;
        assert_eq!(status, 200, "{scheme}");
    }
    for auth in [
        format!("Basic {admin}"),
        "Bearer ".to_string(),
        admin.clone(),
    ] {
        let (status, _) =
            common::http_authorized("GET", server.http_addr, "/api/v1/rooms", Some(&auth)).await;
        assert_eq!(status, 401, "{auth:.12}");
    }
    server.shutdown();
}

/// With `http.metrics_listen`, `/metrics` moves off the public port to its own listener.
#[tokio::test]
async fn metrics_can_move_to_a_listener_of_their_own() {
    let server = common::server_with(|c| {
        c.http.metrics_listen = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    let (status, _) = http("GET", server.http_addr, "/metrics", None).await;
    assert_eq!(status, 404, "not on the public port");
    let private = server.metrics_addr.expect("bound");
    let text = common::metrics_text(private).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text:.200}");
    assert!(text.contains("tern_"), "{text:.400}");
    server.shutdown();
}
