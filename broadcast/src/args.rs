//! The ladder sidecar's command line: one ffmpeg reads the room's RTP streams, composes the
//! program (recording's grid and mix; in the speaker layout the grid has one picture), splits it
//! into the rungs and encodes each into its own HLS output: H.264 and AAC in fMP4 segments,
//! keyframes every two seconds at the same frames in every rung, so the rungs' segments line up.
//! ffmpeg's playlists are only read by tern, which writes the ones players see.

use std::fmt::Write;
use std::path::Path;

use tern_recording::args::{PartInput, aac_args, h264_args, input_args, program};

use crate::ladder::Rung;

/// The program's frame rate (the master playlist's `FRAME-RATE`).
pub const FPS: u32 = 25;

/// The ffmpeg arguments of one ladder run: read `sdp` (whose streams are `inputs`), write
/// `<dir>/<rung>/index.m3u8`, `init.mp4` and `seg-NNNNN.m4s` for each rung, segments of
/// `segment_secs`. The program is drawn on a canvas as large as the first rung.
pub fn ladder_args(
    inputs: &[PartInput],
    sdp: &Path,
    dir: &Path,
    rungs: &[Rung],
    segment_secs: u32,
) -> Vec<String> {
    let mut args = input_args(sdp);
    let canvas = rungs.first().map_or((1280, 720), |r| (r.width, r.height));
    let p = program(inputs, canvas, FPS);
    let mut graph = p.graph;
    if !graph.is_empty() {
        graph.push(';');
    }
    // Silence and black where the room has no voice or no picture: every rung always has both.
    if !p.video {
        let _ = write!(
            graph,
            "color=c=black:s={}x{}:r={FPS},realtime[vout];",
            canvas.0, canvas.1
        );
    }
    if !p.audio {
        graph.push_str("anullsrc=r=48000:cl=stereo,arealtime[aout];");
    }
    let n = rungs.len();
    let _ = write!(graph, "[vout]split={n}");
    for i in 0..n {
        let _ = write!(graph, "[s{i}]");
    }
    let _ = write!(graph, ";[aout]asplit={n}");
    for i in 0..n {
        let _ = write!(graph, "[q{i}]");
    }
    for (i, r) in rungs.iter().enumerate() {
        let _ = write!(
            graph,
            ";[s{i}]scale={}:{},setsar=1[r{i}]",
            r.width, r.height
        );
    }
    args.extend(["-filter_complex".into(), graph]);
    let gop = segment_secs.max(1) * FPS;
    for (i, r) in rungs.iter().enumerate() {
        let out = dir.join(r.name);
        args.extend([
            "-map".into(),
            format!("[r{i}]"),
            "-map".into(),
            format!("[q{i}]"),
        ]);
        // Every rung keyframes at the same frames: its segments line up with the others'.
        args.extend(h264_args(gop, r.video_bps));
        args.extend(["-profile:v", r.profile, "-level:v", r.level].map(String::from));
        args.extend(aac_args(r.audio_bps));
        args.extend(
            [
                "-max_muxing_queue_size",
                "4096",
                "-f",
                "hls",
                "-hls_time",
                &segment_secs.max(1).to_string(),
                "-hls_segment_type",
                "fmp4",
                // Segments are written under a temporary name and renamed when complete; the
                // playlist names only complete ones. Ten entries are enough for tern to follow.
                "-hls_flags",
                "independent_segments+temp_file",
                "-hls_list_size",
                "10",
                "-hls_fmp4_init_filename",
                "init.mp4",
                "-hls_segment_filename",
                &out.join("seg-%05d.m4s").display().to_string(),
                &out.join("index.m3u8").display().to_string(),
            ]
            .map(String::from),
        );
    }
    args
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use tern_sfu::TapCodec;

    use super::*;
    use crate::ladder::ladder;

    fn input(codec: TapCodec, name: &str) -> PartInput {
        PartInput {
            codec,
            name: name.into(),
        }
    }

    fn after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn every_rung_gets_its_own_aligned_hls_output() {
        let inputs = [input(TapCodec::Opus, "TR_1"), input(TapCodec::Vp8, "TR_2")];
        let rungs = ladder(720);
        let args = ladder_args(
            &inputs,
            &PathBuf::from("/s/in.sdp"),
            &PathBuf::from("/s/part-000"),
            &rungs,
            2,
        );
        let graph = after(&args, "-filter_complex")[0];
        assert!(graph.contains("[vout]split=3[s0][s1][s2]"), "{graph}");
        assert!(graph.contains("[aout]asplit=3[q0][q1][q2]"), "{graph}");
        assert!(graph.contains("[s2]scale=320:180"), "{graph}");
        assert!(graph.contains("[0:1]scale=1280:720"), "{graph}");
        assert_eq!(after(&args, "-f"), ["hls", "hls", "hls"]);
        assert_eq!(after(&args, "-g"), ["50", "50", "50"]);
        assert_eq!(after(&args, "-sc_threshold"), ["0", "0", "0"]);
        assert_eq!(after(&args, "-profile:v"), ["high", "main", "main"]);
        assert_eq!(after(&args, "-maxrate")[1], "800000");
        assert_eq!(
            after(&args, "-hls_segment_filename"),
            [
                "/s/part-000/720p/seg-%05d.m4s",
                "/s/part-000/360p/seg-%05d.m4s",
                "/s/part-000/180p/seg-%05d.m4s"
            ]
        );
        assert_eq!(
            args.last().map(String::as_str),
            Some("/s/part-000/180p/index.m3u8")
        );
    }

    #[test]
    fn a_room_without_video_is_broadcast_on_black() {
        let args = ladder_args(
            &[input(TapCodec::Opus, "TR_1")],
            &PathBuf::from("in.sdp"),
            &PathBuf::from("d"),
            &ladder(720),
            2,
        );
        let graph = after(&args, "-filter_complex")[0];
        assert!(
            graph.contains("color=c=black:s=1280x720:r=25,realtime[vout]"),
            "{graph}"
        );
        assert!(!graph.contains("anullsrc"), "{graph}");
    }
}
