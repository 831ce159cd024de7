//! RTMP pushes of one broadcast, each its own supervised ffmpeg with its own state and retries:
//! a target that is down or refuses the key is retried with a growing pause, and never affects
//! the ladder or the other targets.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use tern_recording::clock::rfc3339;
use tern_recording::sidecar::Sidecar;

use crate::model::{PushState, RtmpView};
use crate::rtmp::{push_args, secrets_of, shown_url};

/// The longest pause between attempts.
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Live this long, a push's failures are forgotten.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// A stopped push that has not exited after this long is killed.
const STOP_LIMIT: Duration = Duration::from_secs(10);

struct Push {
    view: RtmpView,
    /// The URL with its stream key: never shown.
    url: String,
    sidecar: Option<Sidecar>,
    retry_at: Option<Instant>,
    failures: u32,
    live_at: Option<Instant>,
    stop_at: Option<Instant>,
}

/// The pushes of one broadcast.
pub(crate) struct Egress {
    ffmpeg: PathBuf,
    /// The media playlist pushed (the top rung).
    playlist: PathBuf,
    pushes: Vec<Push>,
    next_id: u32,
}

impl Egress {
    pub fn new(ffmpeg: PathBuf, playlist: PathBuf) -> Self {
        Self {
            ffmpeg,
            playlist,
            pushes: Vec::new(),
            next_id: 1,
        }
    }

    /// Adds a target (already checked); it starts at the next tick with media. `None` when
    /// `most` targets are pushing already.
    pub fn add(&mut self, url: String, most: usize) -> Option<RtmpView> {
        let active = self.pushes.iter().filter(|p| p.stop_at.is_none()).count();
        if active >= most {
            return None;
        }
        let view = RtmpView {
            id: format!("RT_{}", self.next_id),
            url: shown_url(&url),
            state: PushState::Waiting,
            error: None,
            attempts: 0,
            live_since: None,
        };
        self.next_id += 1;
        self.pushes.push(Push {
            view: view.clone(),
            url,
            sidecar: None,
            retry_at: None,
            failures: 0,
            live_at: None,
            stop_at: None,
        });
        Some(view)
    }

    /// Stops target `id`; returns it, or `None` when there is no such target.
    pub fn remove(&mut self, id: &str, now: Instant) -> Option<RtmpView> {
        let p = self.pushes.iter_mut().find(|p| p.view.id == id)?;
        stop(p, now);
        Some(p.view.clone())
    }

    /// Stops every target. The broadcast ended: each push reads on to the end of the playlist,
    /// unless `at_once` (tern is shutting down).
    pub fn stop_all(&mut self, now: Instant, at_once: bool) {
        for p in &mut self.pushes {
            if p.stop_at.is_none() {
                p.stop_at = Some(if at_once { now } else { now + STOP_LIMIT });
            }
        }
    }

    /// No push runs.
    pub fn all_exited(&mut self) -> bool {
        self.pushes
            .iter_mut()
            .all(|p| p.sidecar.as_mut().is_none_or(|s| s.exited().is_some()))
    }

    /// The targets as the API shows them.
    pub fn views(&self) -> Vec<RtmpView> {
        self.pushes.iter().map(|p| p.view.clone()).collect()
    }

    /// Starts, watches and retries the pushes; `media` says the playlist has segments. True
    /// when a target's state changed.
    pub fn tick(&mut self, now: Instant, media: bool) -> bool {
        let mut changed = false;
        for p in &mut self.pushes {
            let before = p.view.clone();
            self::tick(p, now, media, &self.ffmpeg, &self.playlist);
            changed |= p.view != before;
        }
        changed
    }
}

fn stop(p: &mut Push, now: Instant) {
    if let Some(s) = p.sidecar.as_mut() {
        s.interrupt();
    }
    p.stop_at = Some(now);
}

fn tick(
    p: &mut Push,
    now: Instant,
    media: bool,
    ffmpeg: &std::path::Path,
    playlist: &std::path::Path,
) {
    if let Some(at) = p.stop_at {
        let exited = p.sidecar.as_mut().is_none_or(|s| s.exited().is_some());
        match p.sidecar.as_mut().filter(|_| !exited) {
            Some(s) => {
                if now >= at + STOP_LIMIT {
                    s.kill();
                } else if now >= at {
                    s.interrupt();
                }
            }
            None => {
                p.sidecar = None;
                p.view.state = PushState::Stopped;
                p.view.live_since = None;
            }
        }
        return;
    }
    match p.sidecar.as_mut() {
        None => {
            if !media || p.retry_at.is_some_and(|t| now < t) {
                return;
            }
            p.view.attempts += 1;
            let args = push_args(playlist, &p.url);
            match Sidecar::spawn_hiding(ffmpeg, &args, Vec::new(), secrets_of(&p.url)) {
                Ok(s) => {
                    tracing::info!(target = %p.view.url, pid = ?s.pid(), "rtmp push started");
                    p.sidecar = Some(s);
                    p.view.state = PushState::Connecting;
                }
                Err(e) => failed(p, now, format!("cannot start ffmpeg: {e}")),
            }
        }
        Some(s) => {
            if let Some(status) = s.exited() {
                let why = match s.last_errors() {
                    e if e.is_empty() => format!("ffmpeg exited ({status})"),
                    e => e,
                };
                p.sidecar = None;
                failed(p, now, why);
            } else if s.encoded_us() > 0 {
                if p.view.state != PushState::Live {
                    p.view.state = PushState::Live;
                    p.view.live_since = Some(rfc3339(SystemTime::now()));
                    p.live_at = Some(now);
                }
                if p.live_at.is_some_and(|t| now - t >= STABLE_AFTER) {
                    p.failures = 0;
                }
            }
        }
    }
}

fn failed(p: &mut Push, now: Instant, why: String) {
    // The stream key can be in ffmpeg's messages (it prints the URL): never show it.
    let mut why = why.replace(&p.url, &p.view.url);
    for s in secrets_of(&p.url) {
        why = why.replace(&s, "****");
    }
    tracing::warn!(target = %p.view.url, error = %why, "rtmp push failed; retrying");
    let pause = Duration::from_secs(1 << p.failures.min(5)).min(RETRY_MAX);
    p.failures += 1;
    p.retry_at = Some(now + pause);
    p.view.state = PushState::Retrying;
    p.view.error = Some(why);
    p.view.live_since = None;
    p.live_at = None;
}
