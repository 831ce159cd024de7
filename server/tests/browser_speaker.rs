//! Browser end to end: when alice's microphone starts, bob's demo page is told she is the active
//! speaker within 500 ms, and her tile becomes the large one. The fake microphone plays a
//! speech-like test signal (Chromium's own fake beeps 20 ms twice a second, which is rightly not
//! speech).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::browser::{Browser, Page};
use serde_json::Value;

/// Writes 4 s of a 16-bit mono 48 kHz WAV: a sustained 180 Hz voice with harmonics whose
/// loudness swings at 4 Hz (a syllable rate) between about -26 and -20 dBFS, never silent, so
/// talking starts the moment the microphone does.
fn write_voice_wav(path: &Path) {
    const RATE: u32 = 48_000;
    let samples: Vec<i16> = (0..RATE * 4)
        .map(|i| {
            let t = f64::from(i) / f64::from(RATE);
            let f = 180.0 * std::f64::consts::TAU * t;
            let voice = 0.5 * f.sin() + 0.25 * (2.0 * f).sin() + 0.12 * (3.0 * f).sin();
            let syllables = 0.75 + 0.25 * (4.0 * std::f64::consts::TAU * t).sin();
            (voice * syllables * 0.3 * f64::from(i16::MAX)) as i16
        })
        .collect();
    let data_len = (samples.len() * 2) as u32;
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&RATE.to_le_bytes());
    wav.extend_from_slice(&(RATE * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        wav.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, wav).expect("write wav");
}

async fn eval_u64(browser: &mut Browser, page: &Page, js: &str) -> Option<u64> {
    browser.eval(page, js).await.as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_active_speaker_is_announced_within_half_a_second_of_their_microphone_starting() {
    let dir = tempfile::tempdir().expect("dir");
    let wav = dir.path().join("voice.wav");
    write_voice_wav(&wav);
    let server = common::server_with(|c| c.auth.keys.clear()).await; // development mode
    let base = format!("http://{}", server.http_addr);
    let flag = format!("--use-file-for-fake-audio-capture={}", wav.display());
    let mut browser = Browser::launch_with(&[&flag], None).await;
    let alice = browser.open(&format!("{base}/?room=talk&name=alice")).await;
    let bob = browser.open(&format!("{base}/?room=talk&name=bob")).await;

    // Both connected, both microphones muted, then a quiet moment.
    let deadline = Instant::now() + Duration::from_secs(30);
    let alice_id = loop {
        let id = browser
            .eval(&alice, "window.ternDemo?.client?.self?.id ?? null")
            .await;
        let heard = common::inbound_summary(&browser.eval(&bob, common::INBOUND_JS).await);
        if let (Value::String(id), true) = (id, heard.2 > 0.0) {
            break id;
        }
        assert!(Instant::now() < deadline, "bob never heard alice");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    for page in [&alice, &bob] {
        browser
            .eval(page, "document.getElementById('mic').click(); true")
            .await;
    }
    // What alice said just before her mute may still be reported for a moment (a voice counts
    // as sounding for 300 ms after its last voiced packet, and a notice may be on its way):
    // watch from once the mute has taken effect.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let watch = format!(
        "window.__spoke = null; window.ternDemo.client.addEventListener('speakers', (e) => {{ \
         if (window.__spoke === null && e.detail.active === '{alice_id}' && \
         e.detail.speaking.some((s) => s.participant === '{alice_id}')) window.__spoke = Date.now(); }}); true"
    );
    browser.eval(&bob, &watch).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        eval_u64(&mut browser, &bob, "window.__spoke").await,
        None,
        "nobody speaks while both are muted"
    );

    // Alice unmutes.
    let started = eval_u64(
        &mut browser,
        &alice,
        "document.getElementById('mic').click(); Date.now()",
    )
    .await
    .expect("time");
    let deadline = Instant::now() + Duration::from_secs(5);
    let spoke = loop {
        if let Some(t) = eval_u64(&mut browser, &bob, "window.__spoke").await {
            break t;
        }
        assert!(Instant::now() < deadline, "bob was never told alice speaks");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let took = spoke.saturating_sub(started);
    eprintln!("alice was announced {took} ms after her microphone started");
    assert!(
        took <= 500,
        "alice was announced {took} ms after her microphone started"
    );
    let large = browser
        .eval(
            &bob,
            &format!("document.querySelector('.tile[data-participant=\"{alice_id}\"]').classList.contains('active')"),
        )
        .await;
    assert_eq!(
        large,
        Value::Bool(true),
        "alice's tile is marked the active speaker"
    );
}
