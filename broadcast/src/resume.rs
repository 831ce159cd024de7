//! Broadcasts a previous tern left in the spool (it was killed while they ran): their sidecars
//! are stopped, their playlists end where their media did and become a VOD, and everything they
//! hold goes to storage, then the spool is cleared.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tern_recording::clock::rfc3339;
use tern_recording::store::Store;

use crate::model::{Broadcast, BroadcastState};

/// The broadcast as its session last saw it, beside its files.
pub(crate) const STATE_FILE: &str = "broadcast.json";

/// Finishes every broadcast found in `spool` (in the background); returns how many.
pub(crate) fn resume_spool(spool: &Path, store: Store) -> usize {
    let Ok(dirs) = std::fs::read_dir(spool) else {
        return 0;
    };
    let mut n = 0;
    for dir in dirs.flatten().map(|d| d.path()) {
        let Ok(text) = std::fs::read(dir.join(STATE_FILE)) else {
            continue;
        };
        let b: Broadcast = match serde_json::from_slice(&text) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "unreadable spooled broadcast left alone");
                continue;
            }
        };
        n += 1;
        let store = store.clone();
        tokio::spawn(async move { finish(b, dir, store).await });
    }
    n
}

async fn finish(mut b: Broadcast, dir: PathBuf, store: Store) {
    tracing::info!(broadcast = %b.id, "finishing a broadcast tern was stopped in");
    stop_orphans(&dir);
    let hls = dir.join("hls");
    let mut files = Vec::new();
    let mut playlists = Vec::new();
    collect(&hls, &hls, &mut files, &mut playlists);
    // Every rung's playlist ends where its media did; what they name is the broadcast.
    let mut named = Vec::new();
    for p in playlists.iter().filter(|p| p.as_str() != "master.m3u8") {
        let path = hls.join(p);
        let Ok(mut text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if !text.contains("#EXT-X-ENDLIST") {
            text.push_str("#EXT-X-ENDLIST\n");
            let _ = std::fs::write(&path, &text);
        }
        let rung = p.rsplit_once('/').map_or("", |(r, _)| r);
        named.extend(uris(&text).into_iter().map(|u| format!("{rung}/{u}")));
    }
    // Files that left the DVR window are deleted, here and in storage.
    let (files, gone): (Vec<String>, Vec<String>) =
        files.into_iter().partition(|f| named.contains(f));
    for rel in gone {
        let _ = store.delete(&format!("{}/{rel}", b.key_prefix)).await;
    }
    // Files before the playlists that name them; the master last. One failure stops it all:
    // the next start tries again, and no playlist names a file storage lacks.
    playlists.sort_by_key(|p| p == "master.m3u8");
    for rel in files.iter().chain(&playlists) {
        let key = format!("{}/{rel}", b.key_prefix);
        if let Err(e) = store.upload_file(&hls.join(rel), &key).await {
            tracing::warn!(broadcast = %b.id, file = rel, error = %e, "upload failed; left in the spool for the next start");
            return;
        }
    }
    b.state = BroadcastState::Ended;
    b.ended_at = Some(rfc3339(SystemTime::now()));
    b.reason = Some("interrupted: tern stopped while it ran".into());
    b.storage_error = None;
    for t in &mut b.rtmp {
        t.state = crate::model::PushState::Stopped;
        t.live_since = None;
    }
    let manifest = serde_json::to_vec_pretty(&b).unwrap_or_default();
    if store
        .put(&format!("{}/manifest.json", b.key_prefix), manifest)
        .await
        .is_err()
    {
        // Tried again at the next start.
        return;
    }
    let _ = std::fs::remove_dir_all(&dir);
    tracing::info!(broadcast = %b.id, "interrupted broadcast finished");
}

/// The init and media segments a media playlist names.
fn uris(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for l in text.lines() {
        if let Some(m) = l.strip_prefix("#EXT-X-MAP:URI=\"") {
            out.push(m.trim_end_matches('"').to_string());
        } else if !l.starts_with('#') && !l.trim().is_empty() {
            out.push(l.trim().to_string());
        }
    }
    out
}

/// The HLS root's files, relative: segments and init segments, and playlists.
fn collect(root: &Path, dir: &Path, files: &mut Vec<String>, playlists: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if path.is_dir() {
            collect(root, &path, files, playlists);
            continue;
        }
        let Some(rel) = path.strip_prefix(root).ok().and_then(|r| r.to_str()) else {
            continue;
        };
        if rel.ends_with(".m3u8") {
            playlists.push(rel.to_string());
        } else if rel.ends_with(".m4s") || rel.ends_with(".mp4") {
            files.push(rel.to_string());
        }
    }
    files.sort();
}

/// Kills the ffmpeg processes (ladder runs, RTMP pushes) whose command line names `dir`: their
/// tern is gone, and nothing reads or feeds them any more.
fn stop_orphans(dir: &Path) {
    let needle = dir.to_string_lossy().to_string();
    for pid in std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
    {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.contains("ffmpeg")
            && cmdline.contains(&needle)
            && let Some(pid) = rustix::process::Pid::from_raw(pid)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}
