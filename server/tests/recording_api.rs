//! The recording API's contract: per-track recordings into the local store and tern's own
//! download URL, recording from signaling with the `record` grant, events to everyone, the
//! empty-room auto-stop, and a stable error code for every bad request.

mod common;

use std::time::Duration;

use serde_json::json;

use common::media::Media;
use common::recording::{
    api, codecs, decode_errors, local_server, probe, publisher, start, wait_state,
};
use tern_server::auth::mint_with_secret;

/// The media tests load the two cores: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_track_recordings_keep_each_track_as_it_arrived_and_tern_serves_them() {
    let _one = SERIAL.lock().await;
    let (server, _spool, store) = local_server(|_| {}).await;
    let http = server.http_addr;
    let media = Media::encode(6, "testsrc2", 440).await;
    let (mut alice, mut replay) = publisher(http, "alice", "tracks", &media).await;

    let (status, rec) = start(http, "tracks", r#"{"per_track": true}"#).await;
    assert_eq!(status, 201, "{rec}");
    assert_eq!(rec["mode"], "per_track");
    let id = rec["id"].as_str().expect("id").to_string();
    alice
        .run_replaying(&mut replay, Duration::from_secs(10))
        .await;
    api("POST", http, &format!("/api/v1/recordings/{id}/stop")).await;
    alice
        .run_replaying(&mut replay, Duration::from_secs(1))
        .await;
    let rec = wait_state(http, &id, "complete", Duration::from_secs(60)).await;
    assert_eq!(rec["state"], "complete", "{rec}");

    let files = rec["files"].as_array().expect("files");
    assert_eq!(files.len(), 2, "one file per track: {rec}");
    let mut kinds = Vec::new();
    for f in files {
        assert_eq!(f["identity"], "alice");
        let path = store.path().join(f["key"].as_str().expect("key"));
        assert!(path.to_string_lossy().ends_with(".webm"), "{path:?}");
        let probed = probe(&path);
        kinds.extend(codecs(&probed));
        let errors = decode_errors(&path);
        assert!(errors.is_empty(), "{path:?} decodes cleanly: {errors}");
        let d = f["duration_secs"].as_f64().expect("duration");
        assert!(d > 8.0, "{path:?} lasts {d}s");
    }
    kinds.sort();
    assert_eq!(kinds, vec!["opus", "vp8"], "copied, not transcoded");

    // tern serves the local store's files to the admin token, and to no one else.
    let url = files[0]["download_url"].as_str().expect("a download URL");
    assert!(
        url.starts_with(&format!("/api/v1/recordings/{id}/download")),
        "{url}"
    );
    let fetched = curl(http, url, Some(&common::admin_token()));
    let on_disk =
        std::fs::read(store.path().join(files[0]["key"].as_str().expect("key"))).expect("file");
    assert_eq!(fetched, on_disk);
    let (status, _) = common::http("GET", http, url, None).await;
    assert_eq!(status, 401);
    let participant = common::token("alice", "tracks");
    let (status, body) = common::http("GET", http, url, Some(&participant)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("permission_denied"))
    );
    server.shutdown();
}

/// GETs `path` from tern with curl; returns the body.
fn curl(http: std::net::SocketAddr, path: &str, bearer: Option<&str>) -> Vec<u8> {
    let mut cmd = std::process::Command::new("curl");
    cmd.arg("-sf");
    if let Some(t) = bearer {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = cmd
        .arg(format!("http://{http}{path}"))
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "GET {path}: {}", out.status);
    out.stdout
}

fn recorder_token(identity: &str, room: &str) -> String {
    let mut c = common::claims(identity, room);
    c.grants.record = true;
    mint_with_secret(common::SECRET, &c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_with_the_record_grant_starts_and_stops_and_everyone_is_told() {
    let (server, _spool, _store) = local_server(|_| {}).await;
    let http = server.http_addr;
    let (mut bob, _) = common::join(http, "bob", "sig").await;
    let mut alice = common::Ws::connect(http).await;
    alice
        .send(
            json!({"type": "join", "v": 1, "token": recorder_token("alice", "sig"), "room": "sig"}),
        )
        .await;
    let joined = alice.expect("joined").await;
    assert_eq!(joined["recordings"], json!([]), "nothing records yet");

    // Without the grant: refused.
    bob.send(json!({"type": "start_recording", "req": 7})).await;
    let err = bob.expect("error").await;
    assert_eq!(
        (err["code"].as_str(), err["req"].as_u64()),
        (Some("permission_denied"), Some(7))
    );

    alice
        .send(json!({"type": "start_recording", "req": 1}))
        .await;
    // The answer (with `req`) and the event everyone gets may come in either order.
    let started = loop {
        let m = alice.expect("recording").await;
        if m["req"] == 1 {
            break m;
        }
    };
    let id = started["id"].as_str().expect("id").to_string();
    let told = bob.expect("recording").await;
    assert_eq!(
        (told["id"].as_str(), told["state"].as_str()),
        (Some(id.as_str()), Some("starting"))
    );
    let (_, carol) = common::join(http, "carol", "sig").await;
    assert_eq!(
        carol["recordings"][0]["id"],
        id.as_str(),
        "a joiner is told at once"
    );

    alice
        .send(json!({"type": "stop_recording", "req": 2}))
        .await;
    assert_eq!(alice.expect("ok").await["req"], 2);
    let stopped = bob.expect("recording").await;
    assert_eq!(stopped["state"], "stopping", "{stopped}");
    alice
        .send(json!({"type": "stop_recording", "id": id, "req": 3}))
        .await;
    let err = alice.expect("error").await;
    assert_eq!(err["code"], "not_recording");
    // No media came: it ends failed, saying so.
    let rec = wait_state(http, &id, "failed", Duration::from_secs(20)).await;
    assert_eq!(rec["reason"], "nothing was recorded", "{rec}");
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_stops_when_the_room_stays_empty_past_the_grace_period() {
    let (server, _spool, _store) = local_server(|c| c.recording.empty_room_grace_secs = 2).await;
    let http = server.http_addr;
    let (mut alice, _) = common::join(http, "alice", "empty").await;
    let (status, rec) = start(http, "empty", "").await;
    assert_eq!(status, 201, "{rec}");
    let id = rec["id"].as_str().expect("id").to_string();
    alice.send(json!({"type": "leave"})).await;
    drop(alice);
    // Within the grace period the room is kept, and it still records.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, rooms) = api("GET", http, "/api/v1/rooms").await;
    assert_eq!(rooms["rooms"][0]["name"], "empty", "{rooms}");
    let (_, now) = api("GET", http, &format!("/api/v1/recordings/{id}")).await;
    assert!(
        now["state"] == "starting" || now["state"] == "active",
        "{now}"
    );
    let rec = wait_state(http, &id, "failed", Duration::from_secs(15)).await;
    assert_eq!(rec["reason"], "room empty", "{rec}");
    // Then the room closes.
    let mut rooms = json!(null);
    for _ in 0..50 {
        rooms = api("GET", http, "/api/v1/rooms").await.1;
        if rooms["rooms"] == json!([]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rooms["rooms"], json!([]), "the room closed: {rooms}");
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_request_gets_a_stable_code() {
    let (server, spool, _store) = local_server(|c| c.recording.max_concurrent = 1).await;
    let http = server.http_addr;
    let code = |(status, body): (u16, serde_json::Value)| {
        (
            status,
            body["code"].as_str().unwrap_or_default().to_string(),
        )
    };

    // Unknown room.
    let got = code(start(http, "nowhere", "").await);
    assert_eq!(got, (404, "room_not_found".into()));
    let (_ws, _) = common::join(http, "alice", "busy").await;
    let (_ws2, _) = common::join(http, "bob", "other").await;
    // Malformed bodies.
    assert_eq!(code(start(http, "busy", "{").await).1, "bad_request");
    assert_eq!(
        code(start(http, "busy", r#"{"layout": "pip"}"#).await),
        (400, "bad_request".into())
    );
    assert_eq!(
        code(start(http, "busy", r#"{"nonsense": 1}"#).await),
        (400, "bad_request".into())
    );
    // Missing grant: a participant's token, or none.
    let participant = format!("Bearer {}", common::token("alice", "busy"));
    let got = common::http_request(
        "POST",
        http,
        "/api/v1/rooms/busy/recordings",
        Some(&participant),
        None,
    )
    .await;
    assert_eq!(code(got), (403, "permission_denied".into()));
    let got = common::http_request("POST", http, "/api/v1/rooms/busy/recordings", None, None).await;
    assert_eq!(code(got).0, 401);

    // Double start, and the concurrency cap.
    let (status, rec) = start(http, "busy", "").await;
    assert_eq!(status, 201, "{rec}");
    let id = rec["id"].as_str().expect("id").to_string();
    assert_eq!(
        code(start(http, "busy", "").await),
        (409, "already_recording".into())
    );
    assert_eq!(
        code(start(http, "other", "").await),
        (429, "limit_reached".into())
    );

    // Stop without start; stop twice.
    let got = api("POST", http, "/api/v1/recordings/RC_nothing/stop").await;
    assert_eq!(code(got), (404, "recording_not_found".into()));
    let got = api("POST", http, &format!("/api/v1/recordings/{id}/stop")).await;
    assert_eq!(got.0, 200, "{}", got.1);
    let got = api("POST", http, &format!("/api/v1/recordings/{id}/stop")).await;
    assert_eq!(code(got), (409, "not_recording".into()));
    let got = api("GET", http, "/api/v1/recordings/RC_nothing").await;
    assert_eq!(code(got), (404, "recording_not_found".into()));
    server.shutdown();

    // ffmpeg missing.
    let (server, _spool, _store) =
        local_server(|c| c.recording.ffmpeg = "/nonexistent/ffmpeg".into()).await;
    let (_ws, _) = common::join(server.http_addr, "alice", "r").await;
    let got = code(start(server.http_addr, "r", "").await);
    assert_eq!(got, (503, "ffmpeg_missing".into()));
    server.shutdown();

    // Storage misconfigured (no bucket), or unreachable: refused at start, not failing later.
    for broken in [None, Some("http://127.0.0.1:9")] {
        let server = common::server_with(|c| {
            c.recording.spool_dir = spool.path().into();
            c.recording.storage.backend = tern_recording::Backend::S3;
            if let Some(endpoint) = broken {
                c.recording.storage.bucket = "b".into();
                c.recording.storage.endpoint = Some(endpoint.into());
                c.recording.storage.access_key_id = Some("k".into());
                c.recording.storage.secret_access_key = Some("s".into());
            }
        })
        .await;
        let (_ws, _) = common::join(server.http_addr, "alice", "r").await;
        let got = code(start(server.http_addr, "r", "").await);
        assert_eq!(got, (503, "storage_unavailable".into()), "{broken:?}");
        server.shutdown();
    }
}
