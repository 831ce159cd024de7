//! Who is speaking, from the audio level each packet carries (RFC 6464). Pure: time comes in.
//!
//! A track speaks when at least 160 ms of its last half second were voiced and it is still
//! sounding (a 20 ms beep does not count; speech has pauses between syllables, and browsers'
//! audio processing dips for a moment at onset), so someone who starts talking is recognised
//! within about 200 ms.
//!
//! A room's active speaker holds the floor while it speaks and for [`HOLD`] after: in that time
//! only someone who has spoken for [`TAKEOVER_AFTER`] takes it (and, while it still speaks, only
//! someone twice as loud), so a cough or a "mm" does not move the floor back and forth. After
//! [`HOLD`] of silence, whoever speaks takes the floor at once.

use std::time::{Duration, Instant};

/// Louder than this (in -dBov, RFC 6464: 0 is the loudest, 127 silence) counts as voiced. Speech
/// is usually 20 to 40 dBov below full scale; a quiet room's noise 60 or more.
const VOICED_DBOV: u8 = 40;
/// Voiced audio, counted as 20 ms per packet, in the last 500 ms that makes a track speaking.
const SPEAKING_MS: usize = 160;
/// A track stops speaking when nothing voiced came for this long (pauses between words are
/// shorter).
const STILL_SOUNDING: u64 = 300;
/// Another speaker takes over from one still speaking only when this much louder...
const TAKEOVER_RATIO: f32 = 2.0;
/// ...and, while the active speaker holds the floor, only after speaking this long.
const TAKEOVER_AFTER: Duration = Duration::from_millis(500);
/// How long the active speaker holds the floor after it stops.
pub const HOLD: Duration = Duration::from_secs(2);

/// The voicing of one audio track over the last 500 ms: a ring of its last packets, counted
/// by arrival time (audio packets arrive with jitter, two can land in one 20 ms period). No
/// allocation.
#[derive(Debug, Clone, Default)]
pub struct VoiceMeter {
    /// The last packets: when each arrived (since `origin`, in ms) and whether it was voiced.
    ring: [(u64, bool); RING],
    /// Where the next packet goes in `ring`.
    next: usize,
    /// When the first packet came: arrival times count from it.
    origin: Option<Instant>,
    /// Smoothed linear level of the packets, 0 to 1.
    level: f32,
    /// When the last voiced packet came (ms since `origin`, plus one; 0: never).
    last_voiced: u64,
    /// Since when it has been speaking, as of the last [`VoiceMeter::flipped`].
    speaking_since: Option<Instant>,
}

/// Packets kept: more than half a second of 20 ms packets (what browsers send).
const RING: usize = 32;

impl VoiceMeter {
    /// A packet arrived at `now` with this RFC 6464 level (-dBov, 0 to 127).
    pub fn on_level(&mut self, now: Instant, dbov: u8) {
        let at = self.ms(now);
        let voiced = dbov <= VOICED_DBOV;
        self.ring[self.next] = (at + 1, voiced);
        if voiced {
            self.last_voiced = at + 1;
        }
        self.next = (self.next + 1) % RING;
        let linear = 10f32.powf(-f32::from(dbov.min(127)) / 20.0);
        // About 200 ms of smoothing at 50 packets a second.
        self.level += (linear - self.level) * 0.1;
    }

    /// Whether the track is speaking at `now`: [`SPEAKING_MS`] of voiced packets in the last
    /// 500 ms, the last within [`STILL_SOUNDING`].
    pub fn speaking(&self, now: Instant) -> bool {
        let Some(origin) = self.origin else {
            return false;
        };
        let now_ms = now.saturating_duration_since(origin).as_millis() as u64 + 1;
        if self.last_voiced == 0 || now_ms - self.last_voiced.min(now_ms) > STILL_SOUNDING {
            return false;
        }
        let voiced = self
            .ring
            .iter()
            .filter(|(at, voiced)| *voiced && *at > 0 && *at <= now_ms && now_ms - *at < 500)
            .count();
        voiced * 20 >= SPEAKING_MS
    }

    /// True when the track started or stopped speaking since the last call.
    pub fn flipped(&mut self, now: Instant) -> bool {
        let speaking = self.speaking(now);
        let flipped = speaking != self.speaking_since.is_some();
        if flipped {
            self.speaking_since = speaking.then_some(now);
        }
        flipped
    }

    /// How long it has been speaking without a break, as of the last
    /// [`VoiceMeter::flipped`]; zero when not speaking.
    pub fn speaking_for(&self, now: Instant) -> Duration {
        self.speaking_since
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
    }

    /// How long since the last voiced packet (forever when there was none).
    pub fn silent_for(&self, now: Instant) -> Duration {
        match (self.origin, self.last_voiced) {
            (Some(origin), at) if at > 0 => {
                let voiced_at = origin + Duration::from_millis(at - 1);
                now.saturating_duration_since(voiced_at)
            }
            _ => Duration::MAX,
        }
    }

    /// The smoothed level, 0 (silence) to 1 (full scale).
    pub fn level(&self) -> f32 {
        self.level
    }

    /// Milliseconds since the first packet.
    fn ms(&mut self, now: Instant) -> u64 {
        let origin = *self.origin.get_or_insert(now);
        now.saturating_duration_since(origin).as_millis() as u64
    }
}

/// One track speaking now: who, how loud (0 to 1), and for how long without a break.
pub type Speaking<T> = (T, f32, Duration);

/// The active speaker after `current`, given how long the current one has been silent (zero
/// while it speaks) and who speaks now (`speaking`, any order). See the module documentation.
pub fn next_active<T: Copy + PartialEq>(
    current: Option<T>,
    current_silent_for: Duration,
    speaking: &[Speaking<T>],
) -> Option<T> {
    let loudest = speaking.iter().max_by(|a, b| a.1.total_cmp(&b.1));
    let Some(&(loudest, loudest_level, loudest_for)) = loudest else {
        return current;
    };
    let Some(current) = current else {
        return Some(loudest);
    };
    let holding = speaking.iter().find(|(t, _, _)| *t == current);
    let takes_over = match holding {
        // The active speaker still speaks: only someone clearly louder, for a while.
        Some(&(_, level, _)) => {
            loudest != current
                && loudest_level >= level * TAKEOVER_RATIO
                && loudest_for >= TAKEOVER_AFTER
        }
        // It has just stopped: only someone who has spoken for a while.
        None if current_silent_for < HOLD => loudest_for >= TAKEOVER_AFTER,
        // The floor is free.
        None => true,
    };
    Some(if takes_over { loudest } else { current })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds 20 ms packets: `voiced_ms` of speech at `dbov`, then silence, for `total_ms`.
    fn feed(
        m: &mut VoiceMeter,
        t0: Instant,
        from_ms: u64,
        total_ms: u64,
        voiced_ms: u64,
        dbov: u8,
    ) {
        for k in (0..total_ms).step_by(20) {
            let level = if k < voiced_ms { dbov } else { 127 };
            m.on_level(t0 + Duration::from_millis(from_ms + k), level);
        }
    }

    #[test]
    fn speech_is_recognised_within_a_fifth_of_a_second() {
        let t0 = Instant::now();
        let mut m = VoiceMeter::default();
        feed(&mut m, t0, 0, 1000, 0, 127);
        assert!(!m.speaking(t0 + Duration::from_millis(1000)), "silence");
        // Talking starts at 1000 ms.
        let mut first = None;
        for k in (0..1000).step_by(20) {
            let at = t0 + Duration::from_millis(1000 + k);
            m.on_level(at, 25);
            if first.is_none() && m.speaking(at) {
                first = Some(k);
            }
        }
        assert_eq!(
            first,
            Some(140),
            "recognised after 8 voiced packets (160 ms)"
        );
        // Silence again: not speaking any more 300 ms after the last voiced packet.
        feed(&mut m, t0, 2000, 100, 0, 127);
        assert!(m.speaking(t0 + Duration::from_millis(2080)));
        feed(&mut m, t0, 2100, 400, 0, 127);
        assert!(!m.speaking(t0 + Duration::from_millis(2300)));
        assert_eq!(
            m.silent_for(t0 + Duration::from_millis(2500)),
            Duration::from_millis(520)
        );
    }

    #[test]
    fn a_short_cough_or_a_beep_is_not_speech() {
        let t0 = Instant::now();
        let mut m = VoiceMeter::default();
        // A 140 ms knock.
        feed(&mut m, t0, 0, 1000, 140, 10);
        for k in (0..1000).step_by(20) {
            assert!(!m.speaking(t0 + Duration::from_millis(k)), "at {k} ms");
        }
        // A 20 ms beep twice a second.
        for k in (1000..4000).step_by(500) {
            feed(&mut m, t0, k, 500, 20, 10);
            assert!(!m.speaking(t0 + Duration::from_millis(k + 480)));
        }
    }

    #[test]
    fn speech_with_pauses_between_words_stays_speech() {
        let t0 = Instant::now();
        let mut m = VoiceMeter::default();
        // Words of 240 ms with 240 ms pauses: half voiced.
        for w in 0..10 {
            feed(&mut m, t0, w * 480, 480, 240, 30);
            if w >= 1 {
                let at = t0 + Duration::from_millis(w * 480 + 460);
                assert!(m.speaking(at), "word {w}");
            }
        }
    }

    #[test]
    fn silence_in_a_gap_longer_than_the_window_forgets_old_slots() {
        let t0 = Instant::now();
        let mut m = VoiceMeter::default();
        feed(&mut m, t0, 0, 500, 500, 20);
        assert!(m.speaking(t0 + Duration::from_millis(480)));
        // No packets at all for 10 s (DTX, a muted microphone): the old slots do not count.
        assert!(!m.speaking(t0 + Duration::from_secs(10)));
        m.on_level(t0 + Duration::from_secs(10), 20);
        assert!(!m.speaking(t0 + Duration::from_secs(10)));
    }

    /// (current, its silence, speaking, next, why).
    type Case = (
        Option<u8>,
        Duration,
        &'static [Speaking<u8>],
        Option<u8>,
        &'static str,
    );

    const MS: Duration = Duration::from_millis(1);
    const LONG: Duration = Duration::from_secs(1);
    const NOW: Duration = Duration::ZERO;

    #[test]
    fn the_active_speaker_changes_only_for_a_reason() {
        let quiet = Duration::from_secs(3);
        let cases: [Case; 9] = [
            (None, NOW, &[], None, "nobody has spoken yet"),
            (
                None,
                NOW,
                &[(1, 0.2, MS), (2, 0.3, MS)],
                Some(2),
                "the loudest, at once",
            ),
            (
                Some(1),
                NOW,
                &[(1, 0.2, LONG), (2, 0.3, LONG)],
                Some(1),
                "a little louder: no",
            ),
            (
                Some(1),
                NOW,
                &[(1, 0.1, LONG), (2, 0.3, LONG)],
                Some(2),
                "twice as loud, long: yes",
            ),
            (
                Some(1),
                NOW,
                &[(1, 0.1, LONG), (2, 0.9, MS)],
                Some(1),
                "a loud cough: no",
            ),
            (
                Some(1),
                500 * MS,
                &[(2, 0.9, MS)],
                Some(1),
                "a cough in a pause: no",
            ),
            (
                Some(1),
                500 * MS,
                &[(2, 0.05, LONG)],
                Some(2),
                "someone else goes on: yes",
            ),
            (
                Some(1),
                quiet,
                &[(2, 0.05, MS)],
                Some(2),
                "after a silence: at once",
            ),
            (
                Some(1),
                quiet,
                &[],
                Some(1),
                "silence keeps the last speaker",
            ),
        ];
        for (current, silent, speaking, want, why) in cases {
            assert_eq!(next_active(current, silent, speaking), want, "{why}");
        }
    }
}
