//! Broadcasting a meeting through the real ffmpeg into HLS served by tern and uploaded to a real
//! S3-compatible server (s3s-fs): every rung at its resolution, segments that decode, storage
//! that matches what tern serves, a DVR window that slides and deletes, a killed sidecar that
//! becomes a discontinuity, and the speaker layout following whoever speaks.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use common::broadcast::{
    fetch, header, ladder_sidecars, playlist, start, tag_values, uris, wait_state,
};
use common::media::Media;
use common::recording::{decode_errors, publisher, s3_server};
use common::s3::S3;

/// ffprobe's streams of an HLS URL.
fn probe_streams(url: &str) -> Vec<Value> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_streams", url])
        .output()
        .expect("ffprobe runs");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v["streams"].as_array().cloned().unwrap_or_default()
}

/// Every rung's media playlist, by rung name.
fn rung_playlists(http: SocketAddr, id: &str) -> Vec<(String, String)> {
    let master = playlist(http, &format!("/hls/{id}/master.m3u8"));
    master
        .lines()
        .filter(|l| l.ends_with("/index.m3u8"))
        .map(|uri| {
            let rung = uri.trim_end_matches("/index.m3u8").to_string();
            let text = playlist(http, &format!("/hls/{id}/{uri}"));
            (rung, text)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_is_broadcast_as_an_hls_ladder_served_by_tern_and_uploaded_to_s3() {
    let s3 = S3::start().await;
    let spool = tempfile::tempdir().expect("spool");
    let (server, _rec_spool) = s3_server(&s3, |c| {
        c.broadcast.spool_dir = spool.path().into();
    })
    .await;
    let http = server.http_addr;
    let media = Media::encode(6, "testsrc2", 440).await;
    let (mut alice, mut replay) = publisher(http, "alice", "show", &media).await;

    let (status, b) = start(http, "show", "").await;
    assert_eq!(status, 201, "{b}");
    assert_eq!(b["state"], "starting");
    let id = b["id"].as_str().expect("an id").to_string();
    assert_eq!(b["hls_url"], format!("/hls/{id}/master.m3u8"));
    let (status, again) = start(http, "show", "").await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["code"], "already_broadcasting");

    alice
        .run_replaying(&mut replay, Duration::from_secs(12))
        .await;
    let live = wait_state(http, &id, "live", Duration::from_secs(1)).await;
    assert_eq!(live["state"], "live", "{live}");
    assert!(
        alice
            .messages
            .iter()
            .any(|m| m["type"] == "broadcast" && m["id"] == id.as_str() && m["state"] == "live"),
        "alice is told she is on air"
    );

    // The master playlist: public, fresh, CORS, every rung with its attributes.
    let (status, headers, body) = fetch(http, &format!("/hls/{id}/master.m3u8"));
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
    assert_eq!(header(&headers, "cache-control"), Some("public, max-age=1"));
    let master = String::from_utf8(body).expect("text");
    let inf = tag_values(&master, "#EXT-X-STREAM-INF:");
    assert_eq!(inf.len(), 3, "{master}");
    for (attrs, res) in inf.iter().zip(["1280x720", "640x360", "320x180"]) {
        assert!(attrs.contains(&format!("RESOLUTION={res}")), "{attrs}");
        assert!(attrs.contains("CODECS=\"avc1."), "{attrs}");
        assert!(attrs.contains("FRAME-RATE=25.000"), "{attrs}");
    }

    // ffprobe finds every rung at its resolution.
    let url = format!("http://{http}/hls/{id}/master.m3u8");
    let sizes: Vec<(u64, u64)> = probe_streams(&url)
        .iter()
        .filter(|s| s["codec_type"] == "video")
        .map(|s| {
            (
                s["width"].as_u64().unwrap_or(0),
                s["height"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    for want in [(1280, 720), (640, 360), (320, 180)] {
        assert!(sizes.contains(&want), "{want:?} in {sizes:?}");
    }

    // Segments are immutable, and what storage holds is what tern serves.
    let prefix = live["key_prefix"].as_str().expect("key prefix").to_string();
    let (_, media_720) = rung_playlists(http, &id).remove(0);
    let named = uris(&media_720);
    assert!(named.len() >= 4, "{media_720}");
    for uri in &named {
        let (status, headers, body) = fetch(http, &format!("/hls/{id}/720p/{uri}"));
        assert_eq!(status, 200, "{uri}");
        assert!(
            header(&headers, "cache-control").is_some_and(|c| c.contains("immutable")),
            "{uri}: {headers:?}"
        );
        let object = s3.object(&format!("{prefix}/720p/{uri}"));
        let stored = std::fs::read(&object).unwrap_or_default();
        assert_eq!(stored, body, "{uri} in S3 matches what tern serves");
    }

    let (status, _) =
        common::recording::api("POST", http, &format!("/api/v1/broadcasts/{id}/stop")).await;
    assert_eq!(status, 200);
    let ended = wait_state(http, &id, "ended", Duration::from_secs(30)).await;
    assert_eq!(ended["state"], "ended", "{ended}");

    // A VOD now: every playlist ends, every segment within the target duration and decodable,
    // served from storage.
    for (rung, text) in rung_playlists(http, &id) {
        assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{rung}: {text}");
        let target: f64 = tag_values(&text, "#EXT-X-TARGETDURATION:")[0]
            .parse()
            .expect("target");
        for d in tag_values(&text, "#EXTINF:") {
            let d: f64 = d.trim_end_matches(',').parse().expect("duration");
            assert!(d.round() <= target, "{rung}: {d} over {target}");
        }
        let url = format!("http://{http}/hls/{id}/{rung}/index.m3u8");
        let errors = decode_errors(std::path::Path::new(&url));
        assert!(errors.is_empty(), "{rung} decodes cleanly: {errors}");
    }
    let stored_master = std::fs::read(s3.object(&format!("{prefix}/master.m3u8"))).expect("master");
    assert_eq!(String::from_utf8_lossy(&stored_master), master);
    let (_, list) = common::recording::api("GET", http, "/api/v1/rooms/show/broadcasts").await;
    assert_eq!(list["broadcasts"][0]["id"], id.as_str(), "{list}");
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dvr_window_slides_and_deletes_and_a_killed_sidecar_becomes_a_discontinuity() {
    let s3 = S3::start().await;
    let spool = tempfile::tempdir().expect("spool");
    let (server, _rec_spool) = s3_server(&s3, |c| {
        c.broadcast.spool_dir = spool.path().into();
        c.broadcast.dvr_window_secs = 6;
    })
    .await;
    let http = server.http_addr;
    let media = Media::encode(6, "testsrc2", 440).await;
    let (mut alice, mut replay) = publisher(http, "alice", "dvr", &media).await;
    let (status, b) = start(http, "dvr", "").await;
    assert_eq!(status, 201, "{b}");
    let id = b["id"].as_str().expect("id").to_string();
    let prefix = b["key_prefix"].as_str().expect("prefix").to_string();
    assert_eq!(b["dvr_window_secs"], 6);

    alice
        .run_replaying(&mut replay, Duration::from_secs(10))
        .await;
    let first = playlist(http, &format!("/hls/{id}/180p/index.m3u8"));
    let first_uris = uris(&first);
    let oldest = first_uris[1].clone(); // [0] is the init segment
    assert!(
        s3.object(&format!("{prefix}/180p/{oldest}")).exists(),
        "{oldest} uploaded"
    );

    // kill -9 of the ladder: a new run continues the playlists after a discontinuity.
    let pids = ladder_sidecars(spool.path());
    assert_eq!(pids.len(), 1, "one ladder sidecar: {pids:?}");
    Command::new("kill")
        .args(["-9", &pids[0].to_string()])
        .status()
        .expect("kill");
    alice
        .run_replaying(&mut replay, Duration::from_secs(18))
        .await;
    let later = playlist(http, &format!("/hls/{id}/180p/index.m3u8"));
    let seq: u64 = tag_values(&later, "#EXT-X-MEDIA-SEQUENCE:")[0]
        .parse()
        .expect("sequence");
    assert!(seq >= 3, "the window slid: {later}");
    assert!(
        !later.contains(&oldest),
        "{oldest} left the playlist: {later}"
    );
    let restarted = later.contains("#EXT-X-DISCONTINUITY\n")
        || !tag_values(&later, "#EXT-X-DISCONTINUITY-SEQUENCE:").is_empty();
    assert!(restarted, "the restart is a discontinuity: {later}");
    let window: f64 = tag_values(&later, "#EXTINF:")
        .iter()
        .map(|d| d.trim_end_matches(',').parse::<f64>().expect("duration"))
        .sum();
    assert!(window <= 6.0 + 2.5, "about 6 s kept: {window}");
    // Deleted after its playlist's life (RFC 8216 6.2.2): here and in storage.
    let (status, _, _) = fetch(http, &format!("/hls/{id}/180p/{oldest}"));
    assert_eq!(status, 404, "{oldest} deleted");
    assert!(
        !s3.object(&format!("{prefix}/180p/{oldest}")).exists(),
        "{oldest} deleted from storage"
    );
    // What the window holds still plays.
    let url = format!("http://{http}/hls/{id}/180p/index.m3u8");
    let errors = decode_errors(std::path::Path::new(&url));
    assert!(errors.is_empty(), "the window decodes: {errors}");
    let b = wait_state(http, &id, "live", Duration::from_secs(1)).await;
    assert!(b["restarts"].as_u64() >= Some(1), "{b}");
    server.shutdown();
}

/// Mean brightness (0-255) of the first frame of the newest segment of `rung`: its init and
/// media segment fetched from tern, joined, decoded.
fn newest_frame_brightness(http: SocketAddr, id: &str, rung: &str) -> f64 {
    let text = playlist(http, &format!("/hls/{id}/{rung}/index.m3u8"));
    let named = uris(&text);
    let init = named
        .iter()
        .rfind(|u| u.starts_with("init-"))
        .expect("an init segment");
    let seg = named.last().expect("a segment");
    let mut bytes = fetch(http, &format!("/hls/{id}/{rung}/{init}")).2;
    bytes.extend(fetch(http, &format!("/hls/{id}/{rung}/{seg}")).2);
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), &bytes).expect("write");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file.path())
        .args([
            "-frames:v",
            "1",
            "-vf",
            "format=gray",
            "-f",
            "rawvideo",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    assert!(!out.stdout.is_empty(), "a frame in {seg}");
    out.stdout.iter().map(|b| f64::from(*b)).sum::<f64>() / out.stdout.len() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_speaker_layout_shows_whoever_speaks_full_frame_without_a_new_sidecar_run() {
    let (server, _spool, _store) = common::recording::local_server(|_| {}).await;
    let http = server.http_addr;
    // Alice's picture is bright (about 127), Bob's black (0); Bob speaks first. A grid of the two
    // measures about 32.
    let (alice_media, bob_media) = tokio::join!(
        Media::encode(6, "testsrc2", 440),
        Media::encode(6, "color", 880)
    );
    let (mut alice, mut alice_replay) = publisher(http, "alice", "stage", &alice_media).await;
    let (mut bob, mut bob_replay) = publisher(http, "bob", "stage", &bob_media).await;
    alice.audio_level = Some(-127);
    bob.audio_level = Some(-20);
    let (status, b) = start(http, "stage", r#"{"layout":"speaker"}"#).await;
    assert_eq!(status, 201, "{b}");
    assert_eq!(b["layout"], "speaker");
    let id = b["id"].as_str().expect("id").to_string();
    let run = |secs: u64| secs * 4;
    for _ in 0..run(10) {
        alice
            .run_replaying(&mut alice_replay, Duration::from_millis(125))
            .await;
        bob.run_replaying(&mut bob_replay, Duration::from_millis(125))
            .await;
    }
    let dark = newest_frame_brightness(http, &id, "180p");
    assert!(
        dark < 30.0,
        "Bob speaks: his black picture fills the frame ({dark:.1})"
    );

    // Alice speaks now: the picture switches to hers on her next keyframe.
    alice.audio_level = Some(-20);
    bob.audio_level = Some(-127);
    for _ in 0..run(8) {
        alice
            .run_replaying(&mut alice_replay, Duration::from_millis(125))
            .await;
        bob.run_replaying(&mut bob_replay, Duration::from_millis(125))
            .await;
    }
    let bright = newest_frame_brightness(http, &id, "180p");
    assert!(
        bright > 60.0,
        "Alice speaks: her picture fills the frame ({bright:.1})"
    );
    let b = wait_state(http, &id, "live", Duration::from_secs(1)).await;
    assert_eq!(b["restarts"], 0, "the switch needs no new sidecar run: {b}");
    server.shutdown();
}
