//! The sidecar's command line: one ffmpeg run (a part) reading the tap streams from an SDP file
//! and writing self-contained segments, each listed in a CSV file once it is complete.

use std::fmt::Write;
use std::path::Path;

use tern_sfu::TapCodec;

use crate::layout::{CANVAS, grid};

/// The composite's frame rate; its GOP is two seconds of it.
pub const COMPOSITE_FPS: u32 = 25;

/// What a recording produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Everyone's video in a grid and everyone's audio mixed, in H.264/AAC fragmented MP4.
    Composite,
    /// Each track on its own, as it arrived (no transcoding): WebM (Opus, VP8), or Matroska
    /// for H.264.
    PerTrack,
}

/// One input stream of a part: its codec and the name its output files carry (per-track).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInput {
    /// The codec.
    pub codec: TapCodec,
    /// The stream's name in file names, for example `TR_5`.
    pub name: String,
}

/// The name of the composite's stream in file names.
pub const COMPOSITE: &str = "composite";

/// The file extension of a stream's segments.
pub fn extension(mode: Mode, codec: Option<TapCodec>) -> &'static str {
    match (mode, codec) {
        (Mode::Composite, _) => "mp4",
        (Mode::PerTrack, Some(TapCodec::H264)) => "mkv",
        (Mode::PerTrack, _) => "webm",
    }
}

/// The ffmpeg arguments of one part: read `sdp` (whose streams are `inputs`, in order) and write
/// segments of about `segment_secs` into `dir`.
pub fn ffmpeg_args(
    mode: Mode,
    inputs: &[PartInput],
    sdp: &Path,
    dir: &Path,
    segment_secs: u32,
) -> Vec<String> {
    let mut args = input_args(sdp);
    match mode {
        Mode::Composite => composite(&mut args, inputs, dir, segment_secs),
        Mode::PerTrack => {
            for (i, input) in inputs.iter().enumerate() {
                let ext = extension(mode, Some(input.codec));
                args.extend(["-map".into(), format!("0:{i}"), "-c".into(), "copy".into()]);
                segments(&mut args, dir, &input.name, ext, segment_secs);
            }
        }
    }
    args
}

/// What every ffmpeg tern runs is told first: no banner, no stdin, warnings only on stderr, and
/// progress reports on stdout (the supervisor's health check).
pub const QUIET_WITH_PROGRESS: [&str; 7] = [
    "-hide_banner",
    "-nostdin",
    "-nostats",
    "-loglevel",
    "warning",
    "-progress",
    "pipe:1",
];

/// The arguments every sidecar starts with: report progress on stdout, read the RTP streams
/// that `sdp` describes from loopback.
pub fn input_args(sdp: &Path) -> Vec<String> {
    let mut args: Vec<String> = QUIET_WITH_PROGRESS.map(String::from).to_vec();
    args.extend(
        [
            "-protocol_whitelist",
            "file,udp,rtp",
            // Loopback only, and the input is ready within ~100 ms of the first packets.
            "-localaddr",
            "127.0.0.1",
            "-reorder_queue_size",
            "100",
            "-buffer_size",
            "4194304",
            "-analyzeduration",
            "3000000",
            "-fpsprobesize",
            "0",
            "-i",
        ]
        .map(String::from),
    );
    args.push(sdp.display().to_string());
    args
}

/// A program: a filter graph whose outputs are `[vout]` (the picture) and `[aout]` (the mix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The `-filter_complex` graph.
    pub graph: String,
    /// It has a `[vout]`.
    pub video: bool,
    /// It has an `[aout]`.
    pub audio: bool,
}

/// The program of `inputs`: every video in a grid on a `canvas` at `fps`, every voice mixed.
pub fn program(inputs: &[PartInput], canvas: (u32, u32), fps: u32) -> Program {
    let video: Vec<usize> = (0..inputs.len())
        .filter(|i| inputs[*i].codec != TapCodec::Opus)
        .collect();
    let audio: Vec<usize> = (0..inputs.len())
        .filter(|i| inputs[*i].codec == TapCodec::Opus)
        .collect();
    let mut graph = String::new();
    let tiles = grid(video.len(), canvas);
    for (k, (i, t)) in video.iter().zip(&tiles).enumerate() {
        let _ = write!(
            graph,
            "[0:{i}]scale={w}:{h}:force_original_aspect_ratio=decrease,\
             pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,\
             fps={fps}:start_time=0[v{k}];",
            w = t.w,
            h = t.h
        );
    }
    let (cw, ch) = canvas;
    match tiles.len() {
        0 => {}
        1 => {
            let _ = write!(graph, "[v0]pad={cw}:{ch}:0:0:color=black[vout];");
        }
        n => {
            for k in 0..n {
                let _ = write!(graph, "[v{k}]");
            }
            let layout: Vec<String> = tiles.iter().map(|t| format!("{}_{}", t.x, t.y)).collect();
            let _ = write!(
                graph,
                "xstack=inputs={n}:layout={}:fill=black,pad={cw}:{ch}:0:0:color=black[vout];",
                layout.join("|")
            );
        }
    }
    if !audio.is_empty() {
        // amix ignores timestamps: each voice is first padded to start at 0 and kept in time.
        for (k, i) in audio.iter().enumerate() {
            let _ = write!(graph, "[0:{i}]aresample=async=1:first_pts=0[a{k}];");
        }
        for k in 0..audio.len() {
            let _ = write!(graph, "[a{k}]");
        }
        let _ = write!(
            graph,
            "amix=inputs={}:duration=longest:dropout_transition=0:normalize=0[aout]",
            audio.len()
        );
    }
    Program {
        graph: graph.trim_end_matches(';').to_string(),
        video: !tiles.is_empty(),
        audio: !audio.is_empty(),
    }
}

fn composite(args: &mut Vec<String>, inputs: &[PartInput], dir: &Path, segment_secs: u32) {
    let p = program(inputs, CANVAS, COMPOSITE_FPS);
    args.extend(["-filter_complex".into(), p.graph]);
    if p.video {
        args.extend(["-map".into(), "[vout]".into()]);
        args.extend(h264_args(2 * COMPOSITE_FPS, 2_500_000));
    }
    if p.audio {
        args.extend(["-map".into(), "[aout]".into()]);
        args.extend(aac_args(128_000));
    }
    segments(args, dir, COMPOSITE, "mp4", segment_secs);
}

/// H.264 for live media: libx264 `veryfast` without lookahead or B-frame delay, a keyframe
/// every `gop` frames and nowhere else (so segments of several encoders line up), capped at
/// `max_bps` with an average of 80 % of it.
pub fn h264_args(gop: u32, max_bps: u32) -> Vec<String> {
    let gop = gop.to_string();
    [
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-tune",
        "zerolatency",
        "-pix_fmt",
        "yuv420p",
        "-g",
        &gop,
        "-keyint_min",
        &gop,
        "-sc_threshold",
        "0",
        "-b:v",
        &(max_bps / 10 * 8).to_string(),
        "-maxrate",
        &max_bps.to_string(),
        "-bufsize",
        &(max_bps * 2).to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// AAC, stereo at 48 kHz, at `bps`.
pub fn aac_args(bps: u32) -> Vec<String> {
    [
        "-c:a",
        "aac",
        "-b:a",
        &bps.to_string(),
        "-ar",
        "48000",
        "-ac",
        "2",
    ]
    .map(String::from)
    .to_vec()
}

/// The segment muxer writing `<name>-00000.<ext>`... and `<name>.csv` in `dir`.
fn segments(args: &mut Vec<String>, dir: &Path, name: &str, ext: &str, segment_secs: u32) {
    let format = if ext == "mp4" {
        "mp4"
    } else if ext == "mkv" {
        "matroska"
    } else {
        "webm"
    };
    args.extend(
        [
            "-max_muxing_queue_size",
            "4096",
            "-f",
            "segment",
            "-segment_time",
            &segment_secs.to_string(),
            "-segment_format",
            format,
            "-reset_timestamps",
            "1",
            "-segment_list_type",
            "csv",
        ]
        .map(String::from),
    );
    // Flushed fragments (MP4) or clusters (WebM) of about a second: a crash loses about that.
    let options = if ext == "mp4" {
        "movflags=+frag_keyframe+empty_moov+default_base_moof:frag_duration=1000000:flush_packets=1"
    } else {
        "flush_packets=1:cluster_time_limit=1000"
    };
    args.extend(["-segment_format_options".to_string(), options.to_string()]);
    args.push("-segment_list".into());
    args.push(dir.join(format!("{name}.csv")).display().to_string());
    args.push(dir.join(format!("{name}-%05d.{ext}")).display().to_string());
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

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
    fn a_composite_puts_two_videos_side_by_side_and_mixes_two_voices() {
        let inputs = [
            input(TapCodec::Opus, "TR_1"),
            input(TapCodec::Vp8, "TR_2"),
            input(TapCodec::Opus, "TR_3"),
            input(TapCodec::Vp8, "TR_4"),
        ];
        let args = ffmpeg_args(
            Mode::Composite,
            &inputs,
            &PathBuf::from("/s/p.sdp"),
            &PathBuf::from("/s/part-001"),
            4,
        );
        assert_eq!(after(&args, "-i"), vec!["/s/p.sdp"]);
        let graph = after(&args, "-filter_complex")[0];
        assert!(graph.contains("[0:1]scale=640:720"), "{graph}");
        assert!(graph.contains("[0:3]scale=640:720"), "{graph}");
        assert!(
            graph.contains("xstack=inputs=2:layout=0_0|640_0"),
            "{graph}"
        );
        assert!(
            graph.contains("[0:0]aresample=async=1:first_pts=0[a0]"),
            "{graph}"
        );
        assert!(graph.contains("[a0][a1]amix=inputs=2"), "{graph}");
        assert_eq!(after(&args, "-map"), vec!["[vout]", "[aout]"]);
        assert_eq!(after(&args, "-c:v"), vec!["libx264"]);
        assert_eq!(after(&args, "-g"), vec!["50"]);
        assert_eq!(
            after(&args, "-segment_list"),
            vec!["/s/part-001/composite.csv"]
        );
        assert_eq!(
            args.last().map(String::as_str),
            Some("/s/part-001/composite-%05d.mp4")
        );
    }

    #[test]
    fn a_composite_without_video_is_audio_only() {
        let args = ffmpeg_args(
            Mode::Composite,
            &[input(TapCodec::Opus, "TR_1")],
            &PathBuf::from("p.sdp"),
            &PathBuf::from("d"),
            4,
        );
        assert_eq!(after(&args, "-map"), vec!["[aout]"]);
        assert!(after(&args, "-c:v").is_empty());
    }

    #[test]
    fn per_track_copies_each_stream_into_its_own_segments() {
        let inputs = [
            input(TapCodec::Opus, "TR_1"),
            input(TapCodec::Vp8, "TR_2"),
            input(TapCodec::H264, "TR_3"),
        ];
        let args = ffmpeg_args(
            Mode::PerTrack,
            &inputs,
            &PathBuf::from("p.sdp"),
            &PathBuf::from("d"),
            4,
        );
        assert_eq!(after(&args, "-map"), vec!["0:0", "0:1", "0:2"]);
        assert_eq!(after(&args, "-c"), vec!["copy", "copy", "copy"]);
        assert!(after(&args, "-filter_complex").is_empty(), "no transcoding");
        assert_eq!(
            after(&args, "-segment_format"),
            vec!["webm", "webm", "matroska"]
        );
        assert_eq!(
            after(&args, "-segment_list"),
            vec!["d/TR_1.csv", "d/TR_2.csv", "d/TR_3.csv"]
        );
    }
}
