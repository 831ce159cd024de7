//! Recording a meeting into a real S3-compatible server (s3s-fs) through the real ffmpeg: the
//! composite plays, lasts as long as the recording, decodes cleanly, and re-lays itself when
//! someone joins.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::media::Media;
use common::recording::{api, decode_errors, probe, publisher, s3_server, start, wait_state};
use common::s3::S3;

/// Mean brightness (0-255) of the top eighth of the frame at `at` seconds.
fn top_band_brightness(path: &std::path::Path, at: f64) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{at:.2}"), "-i"])
        .arg(path)
        .args([
            "-frames:v",
            "1",
            "-vf",
            "crop=1280:90:0:0,format=gray",
            "-f",
            "rawvideo",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    assert!(!out.stdout.is_empty(), "a frame at {at}s");
    out.stdout.iter().map(|b| f64::from(*b)).sum::<f64>() / out.stdout.len() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_is_recorded_into_s3_and_the_late_joiner_appears_in_the_grid() {
    let s3 = S3::start().await;
    let (server, spool) = s3_server(&s3, |_| {}).await;
    let http = server.http_addr;
    let (alice_media, bob_media) = tokio::join!(
        Media::encode(6, "testsrc2", 440),
        Media::encode(6, "smptebars", 880)
    );

    let (mut alice, mut alice_replay) = publisher(http, "alice", "rec", &alice_media).await;

    let (status, rec) = start(http, "rec", "").await;
    assert_eq!(status, 201, "{rec}");
    assert_eq!(rec["state"], "starting");
    assert_eq!(rec["mode"], "composite");
    let id = rec["id"].as_str().expect("an id").to_string();
    let started = Instant::now();
    alice
        .run_replaying(&mut alice_replay, Duration::from_secs(7))
        .await;
    let (_, rec) = api("GET", http, &format!("/api/v1/recordings/{id}")).await;
    assert_eq!(rec["state"], "active", "{rec}");
    assert!(
        alice
            .messages
            .iter()
            .any(|m| m["type"] == "recording" && m["id"] == id.as_str()),
        "alice is told she is recorded"
    );

    // Bob joins: he is told at once, and the grid re-lays itself.
    let (mut bob, mut bob_replay) = publisher(http, "bob", "rec", &bob_media).await;
    assert_eq!(bob.joined["recordings"][0]["id"], id.as_str());
    let joined_at = started.elapsed().as_secs_f64();
    for _ in 0..16 {
        alice
            .run_replaying(&mut alice_replay, Duration::from_millis(250))
            .await;
        bob.run_replaying(&mut bob_replay, Duration::from_millis(250))
            .await;
    }
    let (status, stopping) = api("POST", http, &format!("/api/v1/recordings/{id}/stop")).await;
    assert_eq!(status, 200, "{stopping}");
    assert_eq!(stopping["state"], "stopping");
    let rec = wait_state(http, &id, "complete", Duration::from_secs(60)).await;
    assert_eq!(rec["state"], "complete", "{rec}");
    assert!(
        rec["parts"].as_array().is_some_and(|p| p.len() >= 2),
        "a new part for bob: {rec}"
    );

    // The composite is in the bucket, playable, as long as the recording.
    let file = &rec["files"][0];
    assert_eq!(file["stream"], "composite");
    let object = s3.object(file["key"].as_str().expect("key"));
    let probed = probe(&object);
    let codecs: Vec<&str> = probed["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter_map(|s| s["codec_name"].as_str())
        .collect();
    assert!(
        codecs.contains(&"h264") && codecs.contains(&"aac"),
        "{codecs:?}"
    );
    let duration: f64 = probed["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .expect("a duration");
    let recorded = rec["duration_secs"].as_f64().expect("duration_secs");
    assert!(
        (duration - recorded).abs() <= 1.0,
        "file {duration:.2}s, recorded {recorded:.2}s"
    );
    let errors = decode_errors(&object);
    assert!(errors.is_empty(), "decodes cleanly: {errors}");
    assert_eq!(
        file["sha256"].as_str().map(str::len),
        Some(64),
        "a checksum"
    );

    // Alice alone fills the canvas; with bob, two 16:9 tiles side by side leave the top black.
    let alone = top_band_brightness(&object, 2.0);
    let together = top_band_brightness(&object, duration - 1.0);
    assert!(alone > 40.0, "alice fills the top of the frame: {alone:.1}");
    assert!(
        together < 20.0,
        "side by side, the top band is black: {together:.1} (joined at {joined_at:.1}s)"
    );

    // The manifest beside it names every part and the file.
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(s3.object(rec["manifest_key"].as_str().expect("manifest key")))
            .expect("manifest in the bucket"),
    )
    .expect("manifest JSON");
    assert_eq!(manifest["state"], "complete");
    assert_eq!(manifest["files"][0]["sha256"], file["sha256"]);

    // The download URL is presigned and fetches the same bytes.
    let url = rec["download_url"].as_str().expect("a download URL");
    let fetched = Command::new("curl")
        .args(["-sf", url])
        .output()
        .expect("curl runs");
    assert!(fetched.status.success(), "presigned URL works: {url}");
    assert_eq!(fetched.stdout, std::fs::read(&object).expect("object"));

    // The room's list has it; the spool is empty.
    let (_, list) = api("GET", http, "/api/v1/rooms/rec/recordings").await;
    assert_eq!(list["recordings"][0]["id"], id.as_str());
    assert_eq!(
        std::fs::read_dir(spool.path()).expect("spool").count(),
        0,
        "spool emptied"
    );
    server.shutdown();
}
