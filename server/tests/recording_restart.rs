//! tern killed (SIGKILL) while storage is down and segments wait in the spool: started again,
//! with storage back, it finishes the recording: the spooled segments go up, the final file and
//! a complete manifest follow, and the spool empties. Killed while broadcasting: started again,
//! it stops the orphaned ladder, ends the playlists, and the broadcast plays as a VOD.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::media::Media;
use common::recording::{
    api, assert_uploaded, checked_manifest, decode_errors, listed_in_spool, publisher, sidecars_in,
    start_ok, wait_state,
};
use common::s3::{ACCESS_KEY, BUCKET, S3, SECRET_KEY};

/// The `tern` binary on `http`, storing into `s3` (credentials from the standard AWS_*
/// variables) and spooling in `spool`.
fn tern(http: SocketAddr, s3: &S3, spool: &Path) -> Child {
    let broadcasts = spool.join("broadcasts");
    Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["--http-listen", &http.to_string(), "--rtc-udp-port", "0"])
        .args(["--turn-enabled", "false", "--api-key", common::KEY])
        .args(["--recording-storage", "s3", "--recording-bucket", BUCKET])
        .args(["--recording-endpoint", &s3.endpoint()])
        .arg("--recording-spool-dir")
        .arg(spool.join("recordings"))
        .arg("--broadcast-spool-dir")
        .arg(&broadcasts)
        .env("TERN_API_SECRET", common::SECRET)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tern starts")
}

/// [`tern`], once it answers its health check.
async fn healthy_tern(http: SocketAddr, s3: &S3, spool: &Path) -> Child {
    let child = tern(http, s3, spool);
    assert!(
        common::wait_healthy(http, Duration::from_secs(20)).await,
        "tern is up"
    );
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_tern_uploads_what_its_killed_predecessor_spooled() {
    let mut s3 = S3::start().await;
    let spool = tempfile::tempdir().expect("spool");
    let http: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let mut first = healthy_tern(http, &s3, spool.path()).await;

    let media = Media::encode(6, "testsrc2", 440).await;
    let (mut alice, mut replay) = publisher(http, "alice", "restart", &media).await;
    let id = start_ok(http, "restart", "").await;
    alice
        .run_replaying(&mut replay, Duration::from_secs(5))
        .await;
    s3.stop().await;
    alice
        .run_replaying(&mut replay, Duration::from_secs(9))
        .await;
    let spooled = listed_in_spool(&spool.path().join("recordings"), &id);
    assert!(
        spooled.len() >= 2,
        "segments wait in the spool: {spooled:?}"
    );
    first.kill().expect("SIGKILL");
    let _ = first.wait();
    drop(alice);

    s3.resume().await;
    let mut second = healthy_tern(http, &s3, spool.path()).await;
    let rec = wait_state(http, &id, "complete", Duration::from_secs(90)).await;
    assert_eq!(rec["state"], "complete", "{rec}");
    assert_eq!(rec["interrupted"], true);

    let (manifest, segments) = checked_manifest(&s3, &rec);
    assert_eq!(manifest["state"], "complete");
    assert_uploaded(&s3, &rec, &spooled);
    assert!(
        segments >= spooled.len(),
        "{segments} segments in the manifest"
    );
    assert!(
        sidecars_in(spool.path()).is_empty(),
        "the killed tern's sidecar was stopped"
    );
    let file = s3.object(manifest["files"][0]["key"].as_str().expect("file"));
    let errors = decode_errors(&file);
    assert!(errors.is_empty(), "the final file decodes: {errors}");
    let (_, list) = api("GET", http, "/api/v1/rooms/restart/recordings").await;
    assert_eq!(list["recordings"][0]["id"], id.as_str(), "{list}");
    assert_eq!(
        std::fs::read_dir(spool.path().join("recordings"))
            .expect("spool")
            .count(),
        0,
        "spool emptied"
    );
    let _ = second.kill();
    let _ = second.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_tern_ends_the_broadcast_its_killed_predecessor_left_as_a_vod() {
    let s3 = S3::start().await;
    let spool = tempfile::tempdir().expect("spool");
    let http: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let mut first = healthy_tern(http, &s3, spool.path()).await;
    let media = Media::encode(6, "testsrc2", 440).await;
    let (mut alice, mut replay) = publisher(http, "alice", "onair", &media).await;
    let (status, b) = common::broadcast::start(http, "onair", "").await;
    assert_eq!(status, 201, "{b}");
    let id = b["id"].as_str().expect("id").to_string();
    alice
        .run_replaying(&mut replay, Duration::from_secs(10))
        .await;
    let live = common::broadcast::playlist(http, &format!("/hls/{id}/180p/index.m3u8"));
    let published = common::broadcast::uris(&live).len();
    assert!(published >= 3, "{live}");
    first.kill().expect("SIGKILL");
    let _ = first.wait();
    drop(alice);
    let broadcasts = spool.path().join("broadcasts");
    assert_eq!(
        common::recording::ffmpeg_in(&broadcasts, "hls").len(),
        1,
        "the ladder outlived its tern"
    );

    let mut second = healthy_tern(http, &s3, spool.path()).await;
    let b = common::broadcast::wait_state(http, &id, "ended", Duration::from_secs(60)).await;
    assert_eq!(b["state"], "ended", "{b}");
    assert!(
        b["reason"]
            .as_str()
            .is_some_and(|r| r.contains("interrupted")),
        "{b}"
    );
    assert!(
        common::recording::ffmpeg_in(&broadcasts, "hls").is_empty(),
        "the orphaned ladder was stopped"
    );
    // The VOD, from storage: it ends, holds at least what was live, and decodes.
    let vod = common::broadcast::playlist(http, &format!("/hls/{id}/180p/index.m3u8"));
    assert!(vod.ends_with("#EXT-X-ENDLIST\n"), "{vod}");
    assert!(common::broadcast::uris(&vod).len() >= published, "{vod}");
    let url = format!("http://{http}/hls/{id}/180p/index.m3u8");
    let errors = decode_errors(Path::new(&url));
    assert!(errors.is_empty(), "the VOD decodes: {errors}");
    assert_eq!(
        std::fs::read_dir(&broadcasts).expect("spool").count(),
        0,
        "spool emptied"
    );
    let _ = second.kill();
    let _ = second.wait();
}
