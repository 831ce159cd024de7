//! The ABR ladder: which H.264 renditions a broadcast offers, their bitrates and the `CODECS`
//! string each is announced with (the encoder is told the same profile and level).

/// One rendition of the ladder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rung {
    /// Its name in URLs, for example `720p`.
    pub name: &'static str,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Video bitrate cap (the encoder's `-maxrate`), bit/s.
    pub video_bps: u32,
    /// Audio bitrate, bit/s.
    pub audio_bps: u32,
    /// The H.264 profile the encoder is held to (`high`, `main`).
    pub profile: &'static str,
    /// The H.264 level, as ffmpeg takes it (`4.0`).
    pub level: &'static str,
    /// The RFC 6381 codecs string: `avc1.PPCCLL,mp4a.40.2`.
    pub codecs: &'static str,
}

impl Rung {
    /// The peak bandwidth the master playlist announces (`BANDWIDTH`): video and audio caps plus
    /// 10 % for the fMP4 container.
    pub fn bandwidth(&self) -> u64 {
        (u64::from(self.video_bps) + u64::from(self.audio_bps)) * 11 / 10
    }
}

const RUNGS: [Rung; 4] = [
    Rung {
        name: "1080p",
        width: 1920,
        height: 1080,
        video_bps: 4_500_000,
        audio_bps: 128_000,
        profile: "high",
        level: "4.0",
        codecs: "avc1.640028,mp4a.40.2",
    },
    Rung {
        name: "720p",
        width: 1280,
        height: 720,
        video_bps: 2_500_000,
        audio_bps: 128_000,
        profile: "high",
        level: "3.1",
        codecs: "avc1.64001f,mp4a.40.2",
    },
    Rung {
        name: "360p",
        width: 640,
        height: 360,
        video_bps: 800_000,
        audio_bps: 96_000,
        profile: "main",
        level: "3.0",
        codecs: "avc1.4d401e,mp4a.40.2",
    },
    Rung {
        name: "180p",
        width: 320,
        height: 180,
        video_bps: 250_000,
        audio_bps: 64_000,
        profile: "main",
        level: "3.0",
        codecs: "avc1.4d401e,mp4a.40.2",
    },
];

/// The ladder for a program whose picture is `source_height` pixels high: 1080p only when the
/// source has it, then 720p, 360p and 180p (never upscaled past the source, and 180p always).
pub fn ladder(source_height: u32) -> Vec<Rung> {
    let mut rungs: Vec<Rung> = RUNGS
        .iter()
        .filter(|r| r.height <= source_height.max(180))
        .cloned()
        .collect();
    if rungs.is_empty() {
        rungs.push(RUNGS[3].clone());
    }
    rungs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(r: &[Rung]) -> Vec<&str> {
        r.iter().map(|r| r.name).collect()
    }

    #[test]
    fn the_ladder_follows_the_source_and_never_upscales() {
        assert_eq!(names(&ladder(1080)), ["1080p", "720p", "360p", "180p"]);
        assert_eq!(names(&ladder(720)), ["720p", "360p", "180p"]);
        assert_eq!(names(&ladder(480)), ["360p", "180p"]);
        assert_eq!(names(&ladder(100)), ["180p"]);
    }

    #[test]
    fn bandwidth_covers_both_caps_and_the_container() {
        let r = &ladder(720)[0];
        assert_eq!(r.bandwidth(), (2_500_000 + 128_000) * 11 / 10);
        assert!(r.codecs.starts_with("avc1.64001f"), "High 3.1 for 720p");
    }
}
