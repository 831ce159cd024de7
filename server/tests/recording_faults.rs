//! A recording survives its faults: the sidecar killed mid-recording (a new part goes on, at most
//! one segment is lost) and object storage down for 20 s (segments wait in the spool, then go up
//! byte for byte, and the spool empties).

mod common;

use std::time::Duration;

use serde_json::Value;

use common::media::Media;
use common::recording::{
    api, assert_uploaded, checked_manifest, decode_errors, duration, listed_in_spool, local_server,
    probe, publisher, s3_server, sidecars_in, start_ok, wait_state,
};
use common::s3::S3;

/// Both tests load the two cores: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn segment_durations(rec: &Value) -> f64 {
    rec["parts"]
        .as_array()
        .map(|p| p.iter().filter_map(|p| p["duration_secs"].as_f64()).sum())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sidecar_is_restarted_and_the_recording_loses_at_most_one_segment() {
    let _one = SERIAL.lock().await;
    let (server, spool, store) = local_server(|_| {}).await;
    let http = server.http_addr;
    let media = Media::encode(6, "testsrc2", 440).await;
    let (mut alice, mut replay) = publisher(http, "alice", "crash", &media).await;
    let id = start_ok(http, "crash", "").await;
    alice
        .run_replaying(&mut replay, Duration::from_secs(7))
        .await;

    let pids = sidecars_in(spool.path());
    assert_eq!(pids.len(), 1, "one sidecar: {pids:?}");
    let killed = std::process::Command::new("kill")
        .args(["-9", &pids[0].to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    alice
        .run_replaying(&mut replay, Duration::from_secs(8))
        .await;
    let (_, during) = api("GET", http, &format!("/api/v1/recordings/{id}")).await;
    assert_eq!(during["state"], "active", "the recording goes on: {during}");
    let now = sidecars_in(spool.path());
    assert!(
        now.len() == 1 && now[0] != pids[0],
        "a new sidecar runs: {now:?}"
    );

    api("POST", http, &format!("/api/v1/recordings/{id}/stop")).await;
    let rec = wait_state(http, &id, "complete", Duration::from_secs(60)).await;
    assert_eq!(rec["state"], "complete", "{rec}");
    let parts = rec["parts"].as_array().expect("parts");
    assert!(parts.len() >= 2, "{rec}");
    assert_eq!(parts[0]["end"], "sidecar_exited");
    let recorded = rec["duration_secs"].as_f64().expect("duration");
    let lost = recorded - segment_durations(&rec);
    assert!(
        lost <= 4.0 + 1.0,
        "lost {lost:.2}s of {recorded:.2}s: at most one 4 s segment and the restart"
    );
    // The file plays through the crash, as long as the recording.
    let file = store
        .path()
        .join(rec["files"][0]["key"].as_str().expect("key"));
    let probed = probe(&file);
    assert!((duration(&probed) - recorded).abs() <= 1.0, "{probed}");
    let errors = decode_errors(&file);
    assert!(errors.is_empty(), "decodes cleanly: {errors}");
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_wait_in_the_spool_while_storage_is_down_and_go_up_byte_for_byte() {
    let _one = SERIAL.lock().await;
    let mut s3 = S3::start().await;
    let (server, spool) = s3_server(&s3, |_| {}).await;
    let http = server.http_addr;
    let media = Media::encode(6, "testsrc2", 440).await;
    let (mut alice, mut replay) = publisher(http, "alice", "outage", &media).await;
    let id = start_ok(http, "outage", "").await;
    alice
        .run_replaying(&mut replay, Duration::from_secs(5))
        .await;

    s3.stop().await;
    alice
        .run_replaying(&mut replay, Duration::from_secs(20))
        .await;
    let (_, during) = api("GET", http, &format!("/api/v1/recordings/{id}")).await;
    assert_eq!(during["state"], "active", "{during}");
    assert!(
        during["storage_error"].is_string(),
        "the outage shows: {during}"
    );
    let spooled = listed_in_spool(spool.path(), &id);
    assert!(
        spooled.len() >= 3,
        "segments waited in the spool: {spooled:?}"
    );

    s3.resume().await;
    alice
        .run_replaying(&mut replay, Duration::from_secs(3))
        .await;
    api("POST", http, &format!("/api/v1/recordings/{id}/stop")).await;
    let rec = wait_state(http, &id, "complete", Duration::from_secs(90)).await;
    assert_eq!(rec["state"], "complete", "{rec}");
    assert!(rec["storage_error"].is_null(), "{rec}");

    // Every segment spooled during the outage is in the bucket, identical.
    assert_uploaded(&s3, &rec, &spooled);
    // The manifest's checksums hold for everything it names.
    let (manifest, named) = checked_manifest(&s3, &rec);
    assert!(named >= spooled.len());
    let object = s3.object(manifest["files"][0]["key"].as_str().expect("key"));
    assert!(decode_errors(&object).is_empty());
    assert_eq!(
        std::fs::read_dir(spool.path()).expect("spool").count(),
        0,
        "the spool is empty afterwards"
    );
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_stops_the_recording_with_a_clear_state_and_keeps_what_it_holds() {
    let _one = SERIAL.lock().await;
    let mut s3 = S3::start().await;
    let (server, spool) = s3_server(&s3, |c| c.recording.spool_max_bytes = 500_000).await;
    let http = server.http_addr;
    let media = Media::encode(6, "testsrc2", 440).await;
    let (mut alice, mut replay) = publisher(http, "alice", "full", &media).await;
    let id = start_ok(http, "full", "").await;
    alice
        .run_replaying(&mut replay, Duration::from_secs(2))
        .await;
    // Storage goes down: segments pile up in the spool past its cap.
    s3.stop().await;
    alice
        .run_replaying(&mut replay, Duration::from_secs(12))
        .await;
    let (_, rec) = api("GET", http, &format!("/api/v1/recordings/{id}")).await;
    assert_eq!(rec["state"], "stopping", "{rec}");
    assert!(
        rec["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("spool_full")),
        "{rec}"
    );
    let spooled = listed_in_spool(spool.path(), &id);
    assert!(!spooled.is_empty(), "segments wait in the spool");
    // Storage comes back: what the spool held goes up, and the recording ends failed.
    s3.resume().await;
    let rec = wait_state(http, &id, "failed", Duration::from_secs(60)).await;
    assert_eq!(rec["state"], "failed", "{rec}");
    assert_uploaded(&s3, &rec, &spooled);
    let (manifest, _) = checked_manifest(&s3, &rec);
    assert_eq!(manifest["state"], "failed");
    assert_eq!(std::fs::read_dir(spool.path()).expect("spool").count(), 0);
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_finishes_the_recording_into_storage() {
    let _one = SERIAL.lock().await;
    let (server, spool, store) = local_server(|_| {}).await;
    let http = server.http_addr;
    let media = Media::encode(6, "testsrc2", 440).await;
    let (mut alice, mut replay) = publisher(http, "alice", "bye", &media).await;
    let id = start_ok(http, "bye", "").await;
    alice
        .run_replaying(&mut replay, Duration::from_secs(6))
        .await;
    server.shutdown();
    let replaying = alice.run_replaying(&mut replay, Duration::from_secs(3));
    let (_, stopped) = tokio::join!(replaying, server.wait());
    stopped.expect("tern stops cleanly");
    let manifest = std::fs::read_dir(store.path().join("recordings/bye"))
        .expect("the room's recordings")
        .flatten()
        .map(|d| d.path().join("manifest.json"))
        .next()
        .expect("a recording");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(manifest).expect("manifest")).expect("json");
    assert_eq!(manifest["id"], id.as_str());
    assert_eq!(manifest["state"], "complete", "{manifest}");
    assert_eq!(manifest["interrupted"], true);
    let file = store
        .path()
        .join(manifest["files"][0]["key"].as_str().expect("file"));
    assert!(decode_errors(&file).is_empty());
    assert_eq!(std::fs::read_dir(spool.path()).expect("spool").count(), 0);
}
