//! Final files: each stream's segments, over every part, joined into one file by ffmpeg's concat
//! demuxer without re-encoding (`assemble` writes the script).

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use crate::args::COMPOSITE;
use crate::assemble::{PartPieces, Piece, concat_script};
use crate::manifest::{FinalFile, Recording};
use crate::service::Shared;
use crate::sidecar::probe_duration;

/// The extension of a stream's final file: that of its segments.
pub(crate) fn final_extension<'a>(rec: &'a Recording, stream: &str) -> &'a str {
    rec.parts
        .iter()
        .flat_map(|p| &p.segments)
        .find(|s| s.stream == stream)
        .and_then(|s| s.file.rsplit_once('.').map(|(_, ext)| ext))
        .unwrap_or("mp4")
}

/// Joins `stream`'s segments into `out`.
pub(crate) async fn join_stream(
    shared: &Shared,
    rec: &Recording,
    dir: &Path,
    stream: &str,
    out: &Path,
) -> Result<FinalFile, String> {
    let parts: Vec<PartPieces> = rec
        .parts
        .iter()
        .map(|p| PartPieces {
            started_at_ms: p.started_at_ms,
            pieces: p
                .segments
                .iter()
                .filter(|s| s.stream == stream && s.duration_secs > 0.0)
                .map(|s| Piece {
                    path: dir
                        .join(format!("part-{:03}", p.index))
                        .join(&s.file)
                        .display()
                        .to_string(),
                    start: s.start_secs,
                    duration: s.duration_secs,
                })
                .collect(),
        })
        .collect();
    let started_at_ms = parts
        .iter()
        .find(|p| !p.pieces.is_empty())
        .map(|p| p.started_at_ms)
        .ok_or("no segments")?;
    let script = out.with_extension("ffconcat");
    std::fs::write(&script, concat_script(&parts)).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(&shared.config.ffmpeg);
    cmd.args([
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
    ])
    .arg(&script)
    .args(["-map", "0", "-c", "copy"]);
    if out.extension().is_some_and(|e| e == "mp4") {
        cmd.args(["-movflags", "+faststart"]);
    }
    let output = cmd
        .arg(out)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run ffmpeg: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "ffmpeg concat failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let _ = std::fs::remove_file(&script);
    let bytes = std::fs::metadata(out).map_err(|e| e.to_string())?.len();
    let duration_secs = probe_duration(&shared.ffprobe, out).await.unwrap_or(0.0);
    let file_name = out
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    let identity = (stream != COMPOSITE)
        .then(|| {
            rec.parts
                .iter()
                .flat_map(|p| &p.streams)
                .find(|s| s.name == stream)
                .and_then(|s| s.identity.clone())
        })
        .flatten();
    Ok(FinalFile {
        stream: stream.to_string(),
        key: format!("{}/{file_name}", rec.key_prefix),
        bytes,
        sha256: String::new(),
        duration_secs,
        started_at_ms,
        identity,
        uploaded: false,
        lost: false,
    })
}
