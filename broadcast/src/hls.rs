//! A broadcast's HLS output, as tern publishes it: it follows ffmpeg's per-rung playlists of
//! each run (a part), publishes a segment once every rung has it (so the rungs stay aligned and
//! a player can switch at any segment), names files for the whole broadcast, and says which
//! files to move into place and which have left the DVR window.
//!
//! Layout, relative to the broadcast's HLS root: `master.m3u8`, and per rung
//! `<rung>/index.m3u8`, `<rung>/init-<part>.mp4`, `<rung>/seg-<n>.m4s`.

use std::time::{Duration, SystemTime};

use crate::ladder::Rung;
use crate::playlist::{MediaPlaylist, Window, master};
use crate::variant::Listed;

/// A file to move from a part's output into the HLS root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// The part that wrote it.
    pub part: usize,
    /// ffmpeg's name, relative to the part's directory (`720p/seg-00003.m4s`).
    pub from: String,
    /// tern's name, relative to the HLS root (`720p/seg-000012.m4s`).
    pub to: String,
}

/// A file that left the playlists: delete it once `after` has passed (RFC 8216 section 6.2.2:
/// it stays available for its own duration plus that of the playlist that held it).
#[derive(Debug, Clone, PartialEq)]
pub struct Removed {
    /// Relative to the HLS root.
    pub path: String,
    /// How long to keep it still.
    pub after: Duration,
}

/// What one call changed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Update {
    /// Files to move into place, init segments first.
    pub moves: Vec<Move>,
    /// Files to delete later.
    pub removed: Vec<Removed>,
}

impl Update {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.moves.is_empty() && self.removed.is_empty()
    }
}

/// The part being published.
#[derive(Debug, Clone)]
struct Current {
    part: usize,
    /// ffmpeg's index of the next segment to publish.
    next: u64,
    /// Wall time of the part's first frame, when known.
    wall: Option<SystemTime>,
    /// Seconds published so far in this part.
    elapsed: f64,
}

/// The output of one broadcast.
#[derive(Debug, Clone)]
pub struct Hls {
    rungs: Vec<Rung>,
    fps: u32,
    playlists: Vec<MediaPlaylist>,
    /// The number the next segment gets (the same in every rung).
    next_number: u64,
    current: Option<Current>,
}

impl Hls {
    /// The output of `rungs` at `fps`, with segments of `segment_secs`, keeping `window`.
    pub fn new(rungs: Vec<Rung>, fps: u32, segment_secs: u32, window: Window) -> Self {
        let playlists = rungs
            .iter()
            .map(|_| MediaPlaylist::new(segment_secs, window))
            .collect();
        Self {
            rungs,
            fps,
            playlists,
            next_number: 0,
            current: None,
        }
    }

    /// The rungs.
    pub fn rungs(&self) -> &[Rung] {
        &self.rungs
    }

    /// A new ffmpeg run: its segments follow a discontinuity.
    pub fn begin_part(&mut self, part: usize) {
        for p in &mut self.playlists {
            p.restart();
        }
        self.current = Some(Current {
            part,
            next: 0,
            wall: None,
            elapsed: 0.0,
        });
    }

    /// The wall time of the current part's first frame.
    pub fn part_started(&mut self, part: usize, wall: SystemTime) {
        if let Some(c) = self.current.as_mut().filter(|c| c.part == part) {
            c.wall.get_or_insert(wall);
        }
    }

    /// The part being published.
    pub fn part(&self) -> Option<usize> {
        self.current.as_ref().map(|c| c.part)
    }

    /// Segments published so far.
    pub fn published(&self) -> u64 {
        self.next_number
    }

    /// ffmpeg's playlists of part `part`, one per rung in ladder order: publishes every segment
    /// that all rungs have.
    pub fn offer(&mut self, part: usize, listings: &[Vec<Listed>]) -> Update {
        let mut update = Update::default();
        let Some(mut c) = self.current.clone().filter(|c| c.part == part) else {
            return update;
        };
        if listings.len() != self.rungs.len() {
            return update;
        }
        loop {
            let found: Option<Vec<&Listed>> = listings
                .iter()
                .map(|l| l.iter().find(|s| s.index == c.next))
                .collect();
            let Some(found) = found else {
                break;
            };
            let number = self.next_number;
            let init = format!("init-{part:03}.mp4");
            // The rungs' segments cover the same frames; the first rung's duration stands.
            let duration = found[0].duration;
            let date = c.wall.map(|w| w + Duration::from_secs_f64(c.elapsed));
            for (i, s) in found.iter().enumerate() {
                let rung = self.rungs[i].name;
                if c.next == 0 {
                    update.moves.push(Move {
                        part,
                        from: format!("{rung}/init.mp4"),
                        to: format!("{rung}/{init}"),
                    });
                }
                let name = format!("seg-{number:06}.m4s");
                update.moves.push(Move {
                    part,
                    from: format!("{rung}/{}", s.uri),
                    to: format!("{rung}/{name}"),
                });
                let playlist = &mut self.playlists[i];
                let gone = playlist.push(name, duration, init.clone(), date);
                let held = playlist.duration();
                for g in gone {
                    let after = Duration::from_secs_f64(g.duration + held);
                    let map_used = playlist.segments().any(|s| s.map == g.map);
                    update.removed.push(Removed {
                        path: format!("{rung}/{}", g.uri),
                        after,
                    });
                    let map = format!("{rung}/{}", g.map);
                    if !map_used && !update.removed.iter().any(|r| r.path == map) {
                        update.removed.push(Removed { path: map, after });
                    }
                }
            }
            c.next += 1;
            c.elapsed += duration;
            self.next_number += 1;
        }
        self.current = Some(c);
        update
    }

    /// The broadcast ended: the playlists get `EXT-X-ENDLIST`.
    pub fn end(&mut self) {
        for p in &mut self.playlists {
            p.end();
        }
    }

    /// The master playlist.
    pub fn master(&self) -> String {
        master(&self.rungs, self.fps)
    }

    /// The media playlist of rung `i`.
    pub fn media(&self, i: usize) -> String {
        self.playlists[i].render()
    }

    /// Seconds rung 0's playlist covers.
    pub fn duration(&self) -> f64 {
        self.playlists.first().map_or(0.0, MediaPlaylist::duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ladder::ladder;

    fn listing(from: u64, n: u64) -> Vec<Listed> {
        (from..from + n)
            .map(|i| Listed {
                index: i,
                uri: format!("seg-{i:05}.m4s"),
                duration: 2.0,
            })
            .collect()
    }

    fn values<'a>(text: &'a str, tag: &str) -> Vec<&'a str> {
        text.lines().filter_map(|l| l.strip_prefix(tag)).collect()
    }

    #[test]
    fn a_segment_is_published_once_every_rung_has_it() {
        let mut h = Hls::new(ladder(720), 25, 2, Window::Event);
        h.begin_part(0);
        let u = h.offer(0, &[listing(0, 3), listing(0, 2), listing(0, 3)]);
        let to: Vec<&str> = u.moves.iter().map(|m| m.to.as_str()).collect();
        assert_eq!(
            to,
            [
                "720p/init-000.mp4",
                "720p/seg-000000.m4s",
                "360p/init-000.mp4",
                "360p/seg-000000.m4s",
                "180p/init-000.mp4",
                "180p/seg-000000.m4s",
                "720p/seg-000001.m4s",
                "360p/seg-000001.m4s",
                "180p/seg-000001.m4s",
            ]
        );
        assert_eq!(u.moves[1].from, "720p/seg-00000.m4s");
        assert_eq!(h.published(), 2);
        // ffmpeg's window has moved on (list size 10): numbering follows its media sequence.
        let u = h.offer(0, &[listing(2, 10), listing(2, 10), listing(2, 10)]);
        assert_eq!(u.moves.len(), 30);
        assert_eq!(u.moves[0].to, "720p/seg-000002.m4s");
        assert_eq!(values(&h.media(2), "#EXTINF:").len(), 12);
    }

    #[test]
    fn numbering_and_discontinuities_run_across_a_sidecar_restart() {
        let mut h = Hls::new(ladder(720), 25, 2, Window::Event);
        h.begin_part(0);
        h.offer(0, &[listing(0, 3), listing(0, 3), listing(0, 3)]);
        h.begin_part(1);
        // A late listing of the old part changes nothing.
        assert!(
            h.offer(0, &[listing(0, 4), listing(0, 4), listing(0, 4)])
                .is_empty()
        );
        let u = h.offer(1, &[listing(0, 1), listing(0, 1), listing(0, 1)]);
        assert_eq!(u.moves[0].to, "720p/init-001.mp4");
        assert_eq!(u.moves[1].to, "720p/seg-000003.m4s");
        h.end();
        let text = h.media(0);
        assert_eq!(values(&text, "#EXT-X-DISCONTINUITY").len(), 1);
        assert_eq!(
            values(&text, "#EXT-X-MAP:URI="),
            ["\"init-000.mp4\"", "\"init-001.mp4\""]
        );
        assert!(text.ends_with("seg-000003.m4s\n#EXT-X-ENDLIST\n"), "{text}");
    }

    #[test]
    fn segments_leaving_the_window_are_deleted_after_the_playlist_that_held_them() {
        let mut h = Hls::new(ladder(360), 25, 2, Window::Sliding(6.0));
        h.begin_part(0);
        h.offer(0, &[listing(0, 3), listing(0, 3)]);
        h.begin_part(1);
        let u = h.offer(1, &[listing(0, 2), listing(0, 2)]);
        let paths: Vec<&str> = u.removed.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "360p/seg-000000.m4s",
                "180p/seg-000000.m4s",
                "360p/seg-000001.m4s",
                "180p/seg-000001.m4s"
            ]
        );
        assert_eq!(u.removed[0].after, Duration::from_secs(8), "2 s + 6 s held");
        let u = h.offer(1, &[listing(0, 3), listing(0, 3)]);
        let paths: Vec<&str> = u.removed.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "360p/seg-000002.m4s",
                "360p/init-000.mp4",
                "180p/seg-000002.m4s",
                "180p/init-000.mp4"
            ],
            "the old run's init goes with its last segment"
        );
        let text = h.media(0);
        assert_eq!(values(&text, "#EXT-X-MEDIA-SEQUENCE:"), ["3"]);
        assert_eq!(values(&text, "#EXT-X-DISCONTINUITY-SEQUENCE:"), ["1"]);
    }
}
