//! Broadcasts through signaling and the REST API. Participants with the `broadcast` grant start
//! and stop them and everyone is told. RTMP egress to a real RTMP server (Debian's nginx with
//! libnginx-mod-rtmp): a target that is down is retried with its state in the API, goes live once
//! its server is up, and ffprobe reads the program back from the server; targets are added to and
//! removed from a running broadcast; bad URLs are refused; stream keys are never shown.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::broadcast::{local_server_with_publisher, start, wait_state};
use common::media::Media;
use common::recording::{api, local_server};
use tern_server::auth::mint_with_secret;

/// nginx with the RTMP module on a port of its own, `live` application; killed on drop.
struct RtmpServer {
    child: Child,
    _dir: tempfile::TempDir,
}

impl RtmpServer {
    fn start(port: u16) -> RtmpServer {
        let dir = tempfile::tempdir().expect("dir");
        let d = dir.path().display();
        let conf = format!(
            "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n\
             daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; record off; }} }} }}\n"
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).expect("conf");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .spawn()
            .expect("nginx runs (libnginx-mod-rtmp)");
        let end = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "nginx listens on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        RtmpServer { child, _dir: dir }
    }
}

impl Drop for RtmpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port nothing listens on now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Polls broadcast `id` until target `target` is in `state`; returns the target as last seen.
async fn wait_target(
    http: SocketAddr,
    id: &str,
    target: &str,
    state: &str,
    limit: Duration,
) -> Value {
    let end = Instant::now() + limit;
    loop {
        let (_, b) = api("GET", http, &format!("/api/v1/broadcasts/{id}")).await;
        let t = b["rtmp"]
            .as_array()
            .and_then(|a| a.iter().find(|t| t["id"] == target).cloned())
            .unwrap_or(Value::Null);
        if t["state"] == state || Instant::now() > end {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What ffprobe reads from an RTMP URL: `codec,width,height` per stream.
fn probe_rtmp(url: &str) -> Vec<String> {
    let out = Command::new("timeout")
        .args(["20", "ffprobe", "-v", "error", "-show_entries"])
        .args(["stream=codec_name,width,height", "-of", "csv=p=0", url])
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_end_matches(',').to_string())
        .collect()
}

async fn post(http: SocketAddr, path: &str, body: Value) -> (u16, Value) {
    let auth = format!("Bearer {}", common::admin_token());
    let body = body.to_string();
    common::http_request("POST", http, path, Some(&auth), Some(&body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_targets_retry_while_down_go_live_and_are_added_and_removed_while_live() {
    let media = Media::encode(6, "testsrc2", 440).await;
    let (server, _spool, _store, mut alice, mut replay) =
        local_server_with_publisher("air", &media).await;
    let http = server.http_addr;

    // Bad URLs are refused before anything starts.
    for bad in [
        "http://example.com/live/key",
        "rtmp://host",
        "rtmp://h/a/k k",
    ] {
        let (status, e) = start(http, "air", &json!({ "rtmp": [bad] }).to_string()).await;
        assert_eq!(
            (status, e["code"].as_str()),
            (400, Some("bad_request")),
            "{bad}: {e}"
        );
    }

    // A target whose server is down: retried, with the failure visible.
    let port = free_port();
    let url = format!("rtmp://127.0.0.1:{port}/live/secret-key-1");
    let (status, b) = start(http, "air", &json!({ "rtmp": [url] }).to_string()).await;
    assert_eq!(status, 201, "{b}");
    let id = b["id"].as_str().expect("id").to_string();
    assert_eq!(
        b["rtmp"][0]["url"],
        format!("rtmp://127.0.0.1:{port}/live/****")
    );
    assert_eq!(b["rtmp"][0]["state"], "waiting");
    let publishing = tokio::spawn(async move {
        alice
            .run_replaying(&mut replay, Duration::from_secs(120))
            .await;
    });
    let t = wait_target(http, &id, "RT_1", "retrying", Duration::from_secs(20)).await;
    assert_eq!(t["state"], "retrying", "{t}");
    assert!(t["error"].as_str().is_some_and(|e| !e.is_empty()), "{t}");
    assert!(
        !t.to_string().contains("secret-key-1"),
        "the key is never shown: {t}"
    );
    let b = wait_state(http, &id, "live", Duration::from_secs(1)).await;
    assert_eq!(b["state"], "live", "the broadcast goes on: {b}");

    // Its server comes up: the next attempt goes live, and the program is readable there.
    let _first = RtmpServer::start(port);
    let t = wait_target(http, &id, "RT_1", "live", Duration::from_secs(30)).await;
    assert_eq!(t["state"], "live", "{t}");
    assert!(t["attempts"].as_u64() >= Some(2), "{t}");
    let streams = probe_rtmp(&format!("rtmp://127.0.0.1:{port}/live/secret-key-1"));
    assert!(
        streams.contains(&"h264,1280,720".to_string()),
        "{streams:?}"
    );
    assert!(streams.iter().any(|s| s.starts_with("aac")), "{streams:?}");

    // A second target added while live goes live too; removing the first stops it alone.
    let port2 = free_port();
    let _second = RtmpServer::start(port2);
    let url2 = format!("rtmp://127.0.0.1:{port2}/live/secret-key-2");
    let (status, t2) = post(
        http,
        &format!("/api/v1/broadcasts/{id}/rtmp"),
        json!({ "url": url2 }),
    )
    .await;
    assert_eq!(status, 201, "{t2}");
    assert_eq!(t2["id"], "RT_2");
    let t2 = wait_target(http, &id, "RT_2", "live", Duration::from_secs(20)).await;
    assert_eq!(t2["state"], "live", "{t2}");
    let (status, bad) = post(
        http,
        &format!("/api/v1/broadcasts/{id}/rtmp"),
        json!({ "url": "ftp://x/y/z" }),
    )
    .await;
    assert_eq!(
        (status, bad["code"].as_str()),
        (400, Some("bad_request")),
        "{bad}"
    );
    let (status, gone) = api(
        "DELETE",
        http,
        &format!("/api/v1/broadcasts/{id}/rtmp/RT_1"),
    )
    .await;
    assert_eq!(status, 200, "{gone}");
    let t1 = wait_target(http, &id, "RT_1", "stopped", Duration::from_secs(15)).await;
    assert_eq!(t1["state"], "stopped", "{t1}");
    let t2 = wait_target(http, &id, "RT_2", "live", Duration::from_secs(1)).await;
    assert_eq!(t2["state"], "live", "the other target is untouched: {t2}");
    let (status, none) = api(
        "DELETE",
        http,
        &format!("/api/v1/broadcasts/{id}/rtmp/RT_9"),
    )
    .await;
    assert_eq!(
        (status, none["code"].as_str()),
        (404, Some("target_not_found")),
        "{none}"
    );

    // Stopping the broadcast stops its pushes.
    let (status, _) = api("POST", http, &format!("/api/v1/broadcasts/{id}/stop")).await;
    assert_eq!(status, 200);
    let ended = wait_state(http, &id, "ended", Duration::from_secs(40)).await;
    assert_eq!(ended["state"], "ended", "{ended}");
    assert!(
        ended["rtmp"]
            .as_array()
            .is_some_and(|a| a.iter().all(|t| t["state"] == "stopped")),
        "{ended}"
    );
    assert!(
        !ended.to_string().contains("secret-key"),
        "no key in the stored manifest: {ended}"
    );
    publishing.abort();
    server.shutdown();
}

fn broadcaster_token(identity: &str, room: &str) -> String {
    let mut c = common::claims(identity, room);
    c.grants.broadcast = true;
    mint_with_secret(common::SECRET, &c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_with_the_broadcast_grant_goes_live_and_off_and_everyone_is_told() {
    let (server, _spool, _store) = local_server(|_| {}).await;
    let http = server.http_addr;
    let (mut bob, _) = common::join(http, "bob", "sig").await;
    let mut alice = common::Ws::connect(http).await;
    let token = broadcaster_token("alice", "sig");
    alice
        .send(json!({"type": "join", "v": 1, "token": token, "room": "sig"}))
        .await;
    let joined = alice.expect("joined").await;
    assert_eq!(joined["broadcasts"], json!([]), "nothing on air yet");

    // Without the grant: refused.
    bob.send(json!({"type": "start_broadcast", "req": 7})).await;
    let err = bob.expect("error").await;
    assert_eq!(
        (err["code"].as_str(), err["req"].as_u64()),
        (Some("permission_denied"), Some(7))
    );
    bob.send(json!({"type": "stop_broadcast", "req": 8})).await;
    let err = bob.expect("error").await;
    assert_eq!(err["code"], "permission_denied");

    alice
        .send(json!({"type": "start_broadcast", "req": 1}))
        .await;
    // The answer (with `req`) and the event everyone gets may come in either order.
    let started = loop {
        let m = alice.expect("broadcast").await;
        if m["req"] == 1 {
            break m;
        }
    };
    let id = started["id"].as_str().expect("id").to_string();
    assert_eq!(started["hls_url"], format!("/hls/{id}/master.m3u8"));
    let told = bob.expect("broadcast").await;
    assert_eq!(
        (told["id"].as_str(), told["state"].as_str()),
        (Some(id.as_str()), Some("starting"))
    );
    let (_, carol) = common::join(http, "carol", "sig").await;
    assert_eq!(
        carol["broadcasts"][0]["id"],
        id.as_str(),
        "a joiner is told at once"
    );
    assert_eq!(
        carol["broadcasts"][0]["hls_url"],
        format!("/hls/{id}/master.m3u8")
    );
    alice
        .send(json!({"type": "start_broadcast", "req": 4}))
        .await;
    let err = alice.expect("error").await;
    assert_eq!(err["code"], "already_broadcasting");

    alice
        .send(json!({"type": "stop_broadcast", "req": 2}))
        .await;
    assert_eq!(alice.expect("ok").await["req"], 2);
    let stopped = bob.expect("broadcast").await;
    assert_eq!(stopped["state"], "stopping", "{stopped}");
    alice
        .send(json!({"type": "stop_broadcast", "id": id, "req": 3}))
        .await;
    let err = alice.expect("error").await;
    assert_eq!(err["code"], "not_broadcasting");
    // Nobody published: it ends with empty playlists, which end.
    let b = wait_state(http, &id, "ended", Duration::from_secs(20)).await;
    assert_eq!(b["segments"], 0, "{b}");
    let vod = common::broadcast::playlist(http, &format!("/hls/{id}/720p/index.m3u8"));
    assert!(vod.ends_with("#EXT-X-ENDLIST\n"), "{vod}");
    // It is over: changing it is not_broadcasting, over REST too.
    let got = api("POST", http, &format!("/api/v1/broadcasts/{id}/stop")).await;
    assert_eq!(
        (got.0, got.1["code"].as_str()),
        (409, Some("not_broadcasting")),
        "{}",
        got.1
    );
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_broadcast_request_gets_a_stable_code() {
    let (server, _spool, _store) = local_server(|c| c.broadcast.max_concurrent = 1).await;
    let http = server.http_addr;
    let code = |(status, body): (u16, Value)| {
        (
            status,
            body["code"].as_str().unwrap_or_default().to_string(),
        )
    };
    assert_eq!(
        code(start(http, "nowhere", "").await),
        (404, "room_not_found".into())
    );
    let (_a, _) = common::join(http, "alice", "busy").await;
    let (_b, _) = common::join(http, "bob", "other").await;
    for body in [
        "{",
        r#"{"layout": "pip"}"#,
        r#"{"nonsense": 1}"#,
        r#"{"rtmp": "rtmp://h/a/k"}"#,
    ] {
        assert_eq!(
            code(start(http, "busy", body).await),
            (400, "bad_request".into()),
            "{body}"
        );
    }
    let participant = format!("Bearer {}", common::token("alice", "busy"));
    let got = common::http_request(
        "POST",
        http,
        "/api/v1/rooms/busy/broadcasts",
        Some(&participant),
        None,
    )
    .await;
    assert_eq!(code(got), (403, "permission_denied".into()));
    let got = common::http_request("POST", http, "/api/v1/rooms/busy/broadcasts", None, None).await;
    assert_eq!(code(got).0, 401);

    let (status, b) = start(http, "busy", "").await;
    assert_eq!(status, 201, "{b}");
    let id = b["id"].as_str().expect("id").to_string();
    assert_eq!(
        code(start(http, "busy", "").await),
        (409, "already_broadcasting".into())
    );
    assert_eq!(
        code(start(http, "other", "").await),
        (429, "limit_reached".into())
    );
    let got = api("POST", http, "/api/v1/broadcasts/BC_nothing/stop").await;
    assert_eq!(code(got), (404, "broadcast_not_found".into()));
    let got = api("GET", http, "/api/v1/broadcasts/BC_%2E%2E").await;
    assert_eq!(code(got), (404, "broadcast_not_found".into()));
    let got = api("POST", http, &format!("/api/v1/broadcasts/{id}/stop")).await;
    assert_eq!(got.0, 200, "{}", got.1);
    let got = api("POST", http, &format!("/api/v1/broadcasts/{id}/stop")).await;
    assert_eq!(code(got), (409, "not_broadcasting".into()));
    let got = post(
        http,
        &format!("/api/v1/broadcasts/{id}/rtmp"),
        json!({"url": "rtmp://h/a/k"}),
    )
    .await;
    assert_eq!(code(got), (409, "not_broadcasting".into()));
    // HLS files: unknown broadcast, path tricks, unknown file; all 404 with CORS for players.
    for path in [
        "/hls/BC_nothing/master.m3u8".to_string(),
        format!("/hls/{id}/..%2F..%2Fmaster.m3u8"),
        format!("/hls/{id}/720p/seg-999999.m4s"),
        format!("/hls/{id}/manifest.json"),
    ] {
        let (status, headers, _) = common::broadcast::fetch(http, &path);
        assert_eq!(status, 404, "{path}");
        assert_eq!(
            common::broadcast::header(&headers, "access-control-allow-origin"),
            Some("*"),
            "{path}"
        );
    }
    server.shutdown();

    // ffmpeg missing: a clear code, nothing started.
    let (server, _spool, _store) =
        local_server(|c| c.recording.ffmpeg = "/nonexistent/ffmpeg".into()).await;
    let http = server.http_addr;
    let (_a, _) = common::join(http, "alice", "busy").await;
    assert_eq!(
        code(start(http, "busy", "").await),
        (503, "ffmpeg_missing".into())
    );
    let (_, list) = api("GET", http, "/api/v1/rooms/busy/broadcasts").await;
    assert_eq!(list["broadcasts"], json!([]), "{list}");
    server.shutdown();
}
