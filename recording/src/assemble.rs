//! Joining a stream's segments, across parts, into one final file with ffmpeg's concat demuxer
//! (`-c copy`, nothing re-encoded). A part's last segment is stretched to where the next part
//! starts on the wall clock, so the time lost between two sidecar runs stays a pause in the
//! file instead of shortening it.

use std::fmt::Write;

/// A segment of one stream, on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// Its path.
    pub path: String,
    /// Where it starts in its part, seconds.
    pub start: f64,
    /// How long it plays, seconds.
    pub duration: f64,
}

/// The pieces of one stream in one part, with the part's wall-clock start (Unix ms).
#[derive(Debug, Clone, PartialEq)]
pub struct PartPieces {
    /// When the part's media started.
    pub started_at_ms: u64,
    /// Its segments of the stream, in order.
    pub pieces: Vec<Piece>,
}

/// The `ffconcat` script joining `parts` (those without pieces are skipped).
pub fn concat_script(parts: &[PartPieces]) -> String {
    let parts: Vec<&PartPieces> = parts.iter().filter(|p| !p.pieces.is_empty()).collect();
    let mut script = String::from("ffconcat version 1.0\n");
    for (i, part) in parts.iter().enumerate() {
        let next_start = parts.get(i + 1).map(|n| n.started_at_ms);
        for (j, piece) in part.pieces.iter().enumerate() {
            let mut duration = piece.duration;
            if j + 1 == part.pieces.len()
                && let Some(next) = next_start
            {
                let until_next = next.saturating_sub(part.started_at_ms) as f64 / 1000.0;
                duration = duration.max(until_next - piece.start);
            }
            let _ = writeln!(script, "file '{}'", piece.path.replace('\'', "'\\''"));
            let _ = writeln!(script, "duration {duration:.6}");
        }
    }
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(path: &str, start: f64, duration: f64) -> Piece {
        Piece {
            path: path.into(),
            start,
            duration,
        }
    }

    #[test]
    fn the_gap_between_parts_is_kept_as_a_pause() {
        let script = concat_script(&[
            PartPieces {
                started_at_ms: 10_000,
                pieces: vec![piece("/a/0.mp4", 0.0, 4.0), piece("/a/1.mp4", 4.0, 2.5)],
            },
            PartPieces {
                started_at_ms: 0,
                pieces: vec![],
            },
            PartPieces {
                started_at_ms: 17_500,
                pieces: vec![piece("/b/it's.mp4", 0.0, 3.0)],
            },
        ]);
        let expected = "ffconcat version 1.0\n\
                        file '/a/0.mp4'\nduration 4.000000\n\
                        file '/a/1.mp4'\nduration 3.500000\n\
                        file '/b/it'\\''s.mp4'\nduration 3.000000\n";
        assert_eq!(
            script, expected,
            "7.5 s from part to part: the last piece plays 3.5 s"
        );
    }

    #[test]
    fn overlapping_parts_never_shorten_a_piece() {
        let script = concat_script(&[
            PartPieces {
                started_at_ms: 0,
                pieces: vec![piece("/a", 0.0, 5.0)],
            },
            PartPieces {
                started_at_ms: 4_000,
                pieces: vec![piece("/b", 0.0, 1.0)],
            },
        ]);
        assert!(
            script.contains("file '/a'\nduration 5.000000\n"),
            "{script}"
        );
    }
}
