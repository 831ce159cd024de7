//! Reads the media playlists ffmpeg's HLS muxer writes for each rung: which segments are
//! complete, their numbers and durations. tern follows these and writes its own playlists.

/// The longest segment taken from ffmpeg's playlists, seconds.
const MAX_SEGMENT_SECS: f64 = 600.0;

/// A complete segment ffmpeg listed.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    /// Its number in the run (ffmpeg's media sequence counts from 0).
    pub index: u64,
    /// The file name, relative to the playlist.
    pub uri: String,
    /// Its duration, seconds.
    pub duration: f64,
}

/// The segments of ffmpeg's playlist `text`, numbered by its `EXT-X-MEDIA-SEQUENCE`.
pub fn parse_variant(text: &str) -> Vec<Listed> {
    let mut sequence = 0u64;
    let mut duration: Option<f64> = None;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            sequence = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            // Only a sane duration: a broken line must not reach the playlists (or panic there).
            duration = v
                .split(',')
                .next()
                .and_then(|d| d.trim().parse::<f64>().ok())
                .filter(|d| d.is_finite() && *d > 0.0 && *d <= MAX_SEGMENT_SECS);
        } else if !line.is_empty()
            && !line.starts_with('#')
            && let Some(d) = duration.take()
        {
            out.push(Listed {
                index: sequence + out.len() as u64,
                uri: line.to_string(),
                duration: d,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_numbered_from_the_media_sequence() {
        let text = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n\
                    #EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"init.mp4\"\n\
                    #EXTINF:2.000000,\nseg-00007.m4s\n#EXTINF:1.960000,\nseg-00008.m4s\n";
        let got = parse_variant(text);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].index, 7);
        assert_eq!(got[1].uri, "seg-00008.m4s");
        assert!((got[1].duration - 1.96).abs() < 1e-9);
    }

    #[test]
    fn a_half_written_playlist_gives_what_it_has() {
        assert!(parse_variant("").is_empty());
        assert!(parse_variant("#EXTM3U\n#EXTINF:2.0,").is_empty());
        assert!(parse_variant("#EXTINF:abc,\nseg.m4s\n").is_empty());
        for bad in ["nan", "inf", "-2", "0", "1e300"] {
            assert!(
                parse_variant(&format!("#EXTINF:{bad},\nseg.m4s\n")).is_empty(),
                "{bad}"
            );
        }
    }
}
