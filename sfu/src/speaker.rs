//! Who is speaking, from the audio level each packet carries (RFC 6464). Pure: time comes in.
//!
//! A track speaks when most of its last half second was voiced: a cough or a door is too short
//! to count, and someone who starts talking is recognised within about 300 ms. A room's active
//! speaker stays until someone else speaks while it does not, or speaks clearly louder.

use std::time::{Duration, Instant};

/// Louder than this (in -dBov, RFC 6464: 0 is the loudest, 127 silence) counts as voiced. Speech
/// is usually 20 to 40 dBov below full scale; a quiet room's noise 60 or more.
const VOICED_DBOV: u8 = 40;
/// Voicing is counted over the last 500 ms, in slots of 20 ms (one audio packet each).
const SLOTS: usize = 25;
const SLOT: Duration = Duration::from_millis(20);
/// Voiced slots out of [`SLOTS`] to count as speaking: 300 ms of the last 500 ms.
const SPEAKING_SLOTS: usize = 15;
/// Another speaker takes over from one still speaking only when this much louder.
const TAKEOVER_RATIO: f32 = 2.0;

/// The voicing of one audio track over the last 500 ms. No allocation.
#[derive(Debug, Clone, Default)]
pub struct VoiceMeter {
    /// For each 20 ms slot of the window: the slot's number since the first packet, and
    /// whether a voiced packet fell in it.
    slots: [(u64, bool); SLOTS],
    /// When the first packet came: slot numbers count from it.
    origin: Option<Instant>,
    /// Smoothed linear level of the voiced packets, 0 to 1.
    level: f32,
}

impl VoiceMeter {
    /// A packet arrived at `now` with this RFC 6464 level (-dBov, 0 to 127).
    pub fn on_level(&mut self, now: Instant, dbov: u8) {
        let n = self.slot_number(now);
        let voiced = dbov <= VOICED_DBOV;
        let slot = &mut self.slots[(n % SLOTS as u64) as usize];
        if slot.0 != n {
            *slot = (n, false);
        }
        slot.1 |= voiced;
        let linear = 10f32.powf(-f32::from(dbov.min(127)) / 20.0);
        // About 200 ms of smoothing at 50 packets a second.
        self.level += (linear - self.level) * 0.1;
    }

    /// Whether the track is speaking at `now`.
    pub fn speaking(&self, now: Instant) -> bool {
        let Some(origin) = self.origin else {
            return false;
        };
        let n = (now.saturating_duration_since(origin).as_millis() / SLOT.as_millis()) as u64;
        let recent = |(at, voiced): &&(u64, bool)| *voiced && *at + SLOTS as u64 > n && *at <= n;
        self.slots.iter().filter(recent).count() >= SPEAKING_SLOTS
    }

    /// The smoothed level, 0 (silence) to 1 (full scale).
    pub fn level(&self) -> f32 {
        self.level
    }

    fn slot_number(&mut self, now: Instant) -> u64 {
        let origin = *self.origin.get_or_insert(now);
        (now.saturating_duration_since(origin).as_millis() / SLOT.as_millis()) as u64
    }
}

/// The active speaker after `current`, given who speaks now and how loud (`speaking`, any
/// order). The current one stays while it speaks unless another is [`TAKEOVER_RATIO`] louder;
/// when it stops, the loudest speaker takes over; when nobody speaks, the last one stays.
pub fn next_active<T: Copy + PartialEq>(current: Option<T>, speaking: &[(T, f32)]) -> Option<T> {
    let loudest = speaking.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1));
    let Some((loudest, loudest_level)) = loudest else {
        return current;
    };
    match current.and_then(|c| speaking.iter().find(|(t, _)| *t == c)) {
        Some((c, level)) if loudest_level < level * TAKEOVER_RATIO => Some(*c),
        _ => Some(loudest),
    }
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
    fn speech_is_recognised_within_a_third_of_a_second() {
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
        assert_eq!(first, Some(280), "recognised after 15 voiced packets");
        // Silence again: not speaking any more within half a second.
        feed(&mut m, t0, 2000, 500, 0, 127);
        assert!(!m.speaking(t0 + Duration::from_millis(2500)));
    }

    #[test]
    fn a_cough_or_a_beep_is_not_speech() {
        let t0 = Instant::now();
        let mut m = VoiceMeter::default();
        // A 200 ms cough.
        feed(&mut m, t0, 0, 1000, 200, 10);
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
        // Words of 240 ms with 80 ms pauses: 75 % voiced.
        for w in 0..10 {
            feed(&mut m, t0, w * 320, 320, 240, 30);
            if w >= 2 {
                assert!(
                    m.speaking(t0 + Duration::from_millis(w * 320 + 300)),
                    "word {w}"
                );
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

    /// (current, speaking, next, why).
    type Case = (Option<u8>, &'static [(u8, f32)], Option<u8>, &'static str);

    #[test]
    fn the_active_speaker_changes_only_for_a_reason() {
        // (current, speaking, next, why)
        let cases: [Case; 6] = [
            (None, &[], None, "nobody has spoken yet"),
            (None, &[(1, 0.2), (2, 0.3)], Some(2), "the loudest speaker"),
            (
                Some(1),
                &[(1, 0.2), (2, 0.3)],
                Some(1),
                "a little louder does not take over",
            ),
            (
                Some(1),
                &[(1, 0.1), (2, 0.3)],
                Some(2),
                "twice as loud takes over",
            ),
            (Some(1), &[(2, 0.05)], Some(2), "the current one stopped"),
            (Some(1), &[], Some(1), "silence keeps the last speaker"),
        ];
        for (current, speaking, want, why) in cases {
            assert_eq!(next_active(current, speaking), want, "{why}");
        }
    }
}
