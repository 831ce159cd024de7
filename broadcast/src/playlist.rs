//! HLS playlists (RFC 8216), written by tern rather than by ffmpeg: a media playlist per rung
//! with a DVR window or the whole event, discontinuities where the sidecar restarted (each run
//! has its own init segment), and the master playlist of the ladder.
//!
//! The numbering follows RFC 8216 section 6.2.2: `EXT-X-MEDIA-SEQUENCE` counts the segments
//! removed from the head, `EXT-X-DISCONTINUITY-SEQUENCE` the discontinuity tags removed with them,
//! so a player that reloads the playlist keeps its place across a restart and the window's slide.

use std::collections::VecDeque;
use std::fmt::Write;
use std::time::SystemTime;

use tern_recording::clock::rfc3339;

use crate::ladder::Rung;

/// The playlist version: fMP4 segments with `EXT-X-MAP` need 6; 7 is what ffmpeg writes too.
const VERSION: u32 = 7;

/// One media segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Its URI, relative to the playlist.
    pub uri: String,
    /// How long it plays, seconds.
    pub duration: f64,
    /// The init segment (`EXT-X-MAP`) it needs: that of the sidecar run that wrote it.
    pub map: String,
    /// It starts a new sidecar run: a discontinuity comes before it.
    pub discontinuity: bool,
    /// The wall time of its first frame, for `EXT-X-PROGRAM-DATE-TIME` (DVR players show it).
    pub date: Option<SystemTime>,
}

/// How much of the broadcast a playlist keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Window {
    /// A sliding window of this many seconds (live with DVR): older segments leave the playlist
    /// and should be deleted.
    Sliding(f64),
    /// Every segment (`EXT-X-PLAYLIST-TYPE:EVENT`): the full event, then a VOD.
    Event,
}

/// A media playlist being written.
#[derive(Debug, Clone)]
pub struct MediaPlaylist {
    window: Window,
    target: u32,
    segments: VecDeque<Segment>,
    media_sequence: u64,
    discontinuity_sequence: u64,
    /// The next segment pushed starts a new run.
    restarted: bool,
    ended: bool,
}

impl MediaPlaylist {
    /// An empty playlist whose segments last about `target_secs` (the GOP-aligned segment
    /// length), keeping `window`.
    pub fn new(target_secs: u32, window: Window) -> Self {
        Self {
            window,
            target: target_secs.max(1),
            segments: VecDeque::new(),
            media_sequence: 0,
            discontinuity_sequence: 0,
            restarted: false,
            ended: false,
        }
    }

    /// The sidecar restarted: the next segment comes after a discontinuity, with its new map.
    pub fn restart(&mut self) {
        if !self.segments.is_empty() {
            self.restarted = true;
        }
    }

    /// Adds a complete segment; returns those that left the window (delete them, after the
    /// playlist without them is published).
    pub fn push(
        &mut self,
        uri: String,
        duration: f64,
        map: String,
        date: Option<SystemTime>,
    ) -> Vec<Segment> {
        let discontinuity = std::mem::take(&mut self.restarted);
        // The target may only grow: a segment over it (a late keyframe) raises it for good.
        self.target = self.target.max(duration.round() as u32);
        self.segments.push_back(Segment {
            uri,
            duration,
            map,
            discontinuity,
            date,
        });
        self.slide()
    }

    fn slide(&mut self) -> Vec<Segment> {
        let Window::Sliding(keep) = self.window else {
            return Vec::new();
        };
        let mut removed = Vec::new();
        // Keep at least three segments (a player starts three from the end).
        while self.segments.len() > 3 && self.duration() - self.segments[0].duration >= keep {
            let Some(gone) = self.segments.pop_front() else {
                break;
            };
            self.media_sequence += 1;
            // The tag before the new head is not in the playlist any more: its count moves up.
            if let Some(head) = self.segments.front_mut()
                && head.discontinuity
            {
                head.discontinuity = false;
                self.discontinuity_sequence += 1;
            }
            removed.push(gone);
        }
        removed
    }

    /// The broadcast ended: `EXT-X-ENDLIST` (with `Window::Event`, the playlist is now a VOD).
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// Seconds the playlist covers.
    pub fn duration(&self) -> f64 {
        // A fold from +0.0: an empty sum is 0, not the -0.0 `Sum` starts from.
        self.segments
            .iter()
            .fold(0.0, |total, s| total + s.duration)
    }

    /// The segments it lists.
    pub fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter()
    }

    /// The playlist's text.
    pub fn render(&self) -> String {
        let mut m = format!(
            "#EXTM3U\n#EXT-X-VERSION:{VERSION}\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{}\n",
            self.target, self.media_sequence
        );
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(
                m,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        if self.window == Window::Event {
            m.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n");
        }
        m.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        let mut map: Option<&str> = None;
        for s in &self.segments {
            if s.discontinuity {
                m.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if map != Some(s.map.as_str()) {
                let _ = writeln!(m, "#EXT-X-MAP:URI=\"{}\"", s.map);
                map = Some(&s.map);
            }
            if let Some(date) = s.date
                && (s.discontinuity || std::ptr::eq(s, &self.segments[0]))
            {
                let _ = writeln!(m, "#EXT-X-PROGRAM-DATE-TIME:{}", rfc3339(date));
            }
            let _ = write!(m, "#EXTINF:{:.3},\n{}\n", s.duration, s.uri);
        }
        if self.ended {
            m.push_str("#EXT-X-ENDLIST\n");
        }
        m
    }
}

/// The master playlist of `rungs`, each at `<name>/index.m3u8`, at `fps` frames per second.
pub fn master(rungs: &[Rung], fps: u32) -> String {
    let mut m = format!("#EXTM3U\n#EXT-X-VERSION:{VERSION}\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for r in rungs {
        let _ = write!(
            m,
            "#EXT-X-STREAM-INF:BANDWIDTH={},RESOLUTION={}x{},CODECS=\"{}\",FRAME-RATE={fps}.000\n{}/index.m3u8\n",
            r.bandwidth(),
            r.width,
            r.height,
            r.codecs,
            r.name
        );
    }
    m
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ladder::ladder;

    /// The value of every line starting with `tag`.
    fn values<'a>(text: &'a str, tag: &str) -> Vec<&'a str> {
        text.lines().filter_map(|l| l.strip_prefix(tag)).collect()
    }

    fn run(p: &mut MediaPlaylist, run: u32, from: u32, n: u32) -> Vec<Segment> {
        let mut gone = Vec::new();
        for i in from..from + n {
            gone.extend(p.push(format!("seg-{i}.m4s"), 2.0, format!("init-{run}.mp4"), None));
        }
        gone
    }

    #[test]
    fn the_master_playlist_lists_every_rung_with_its_attributes() {
        let text = master(&ladder(1080), 30);
        let inf = values(&text, "#EXT-X-STREAM-INF:");
        assert_eq!(inf.len(), 4);
        assert!(inf[0].contains("RESOLUTION=1920x1080"), "{}", inf[0]);
        assert!(inf[0].contains("CODECS=\"avc1.640028,mp4a.40.2\""));
        assert!(inf[0].contains("FRAME-RATE=30.000"));
        assert!(inf[0].starts_with(&format!("BANDWIDTH={}", (4_500_000u64 + 128_000) * 11 / 10)));
        assert!(inf[3].contains("RESOLUTION=320x180"));
        let uris: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            uris,
            [
                "1080p/index.m3u8",
                "720p/index.m3u8",
                "360p/index.m3u8",
                "180p/index.m3u8"
            ]
        );
        assert!(text.starts_with("#EXTM3U\n"));
    }

    #[test]
    fn a_sidecar_restart_is_a_discontinuity_with_its_own_init_segment() {
        let mut p = MediaPlaylist::new(2, Window::Event);
        run(&mut p, 0, 0, 3);
        p.restart();
        run(&mut p, 1, 3, 2);
        let text = p.render();
        assert_eq!(values(&text, "#EXT-X-MEDIA-SEQUENCE:"), ["0"]);
        assert_eq!(values(&text, "#EXT-X-PLAYLIST-TYPE:"), ["EVENT"]);
        assert_eq!(
            values(&text, "#EXT-X-MAP:URI="),
            ["\"init-0.mp4\"", "\"init-1.mp4\""]
        );
        let lines: Vec<&str> = text.lines().collect();
        let disc = lines
            .iter()
            .position(|l| *l == "#EXT-X-DISCONTINUITY")
            .expect("a tag");
        assert_eq!(
            lines[disc + 1],
            "#EXT-X-MAP:URI=\"init-1.mp4\"",
            "the new map follows it"
        );
        assert_eq!(
            lines[disc + 3],
            "seg-3.m4s",
            "before the first segment of the new run"
        );
        assert!(!text.contains("#EXT-X-ENDLIST"));
        p.end();
        assert!(
            p.render().ends_with("#EXT-X-ENDLIST\n"),
            "a VOD once it ended"
        );
    }

    #[test]
    fn the_dvr_window_slides_and_counts_what_left() {
        // A 10 s window of 2 s segments, a restart at segment 4.
        let mut p = MediaPlaylist::new(2, Window::Sliding(10.0));
        assert!(run(&mut p, 0, 0, 4).is_empty());
        p.restart();
        assert!(run(&mut p, 1, 4, 1).is_empty(), "10 s: all kept");
        let gone = run(&mut p, 1, 5, 3);
        assert_eq!(
            gone.iter().map(|s| s.uri.as_str()).collect::<Vec<_>>(),
            ["seg-0.m4s", "seg-1.m4s", "seg-2.m4s"]
        );
        let text = p.render();
        assert_eq!(values(&text, "#EXT-X-MEDIA-SEQUENCE:"), ["3"]);
        assert!(values(&text, "#EXT-X-DISCONTINUITY-SEQUENCE:").is_empty());
        assert_eq!(
            values(&text, "#EXT-X-MAP:URI="),
            ["\"init-0.mp4\"", "\"init-1.mp4\""]
        );
        assert!(p.duration() <= 10.0);
        // The run before the restart leaves entirely: its discontinuity tag goes with it.
        let gone = run(&mut p, 1, 8, 1);
        assert_eq!(gone[0].uri, "seg-3.m4s");
        let text = p.render();
        assert_eq!(values(&text, "#EXT-X-MEDIA-SEQUENCE:"), ["4"]);
        assert_eq!(values(&text, "#EXT-X-DISCONTINUITY-SEQUENCE:"), ["1"]);
        assert!(!text.contains("#EXT-X-DISCONTINUITY\n"), "{text}");
        assert_eq!(
            values(&text, "#EXT-X-MAP:URI="),
            ["\"init-1.mp4\""],
            "the head has its map"
        );
        assert!(
            values(&text, "#EXT-X-PLAYLIST-TYPE:").is_empty(),
            "live, not an event"
        );
    }

    #[test]
    fn every_segment_fits_the_target_duration() {
        let mut p = MediaPlaylist::new(2, Window::Event);
        for (i, d) in [2.0, 2.04, 1.96, 0.8, 3.2, 2.0].iter().enumerate() {
            p.push(format!("s{i}.m4s"), *d, "init.mp4".into(), None);
        }
        let text = p.render();
        let target: f64 = values(&text, "#EXT-X-TARGETDURATION:")[0]
            .parse()
            .expect("number");
        assert_eq!(target, 3.0, "raised by the 3.2 s segment, never lowered");
        for d in values(&text, "#EXTINF:") {
            let d: f64 = d.trim_end_matches(',').parse().expect("number");
            assert!(d.round() <= target, "{d} over {target}");
        }
    }

    #[test]
    fn the_program_date_time_marks_the_head_and_each_restart() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_026_800);
        let mut p = MediaPlaylist::new(2, Window::Event);
        p.push("a.m4s".into(), 2.0, "i0.mp4".into(), Some(t0));
        p.push(
            "b.m4s".into(),
            2.0,
            "i0.mp4".into(),
            Some(t0 + Duration::from_secs(2)),
        );
        p.restart();
        p.push(
            "c.m4s".into(),
            2.0,
            "i1.mp4".into(),
            Some(t0 + Duration::from_secs(5)),
        );
        let text = p.render();
        assert_eq!(
            values(&text, "#EXT-X-PROGRAM-DATE-TIME:"),
            ["2026-11-30T08:20:00.000Z", "2026-11-30T08:20:05.000Z"]
        );
    }
}
