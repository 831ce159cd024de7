//! The upload queue of one recording: segments as they complete, then the final files, one
//! upload at a time, the next started as soon as one ends, retried with backoff while storage is
//! down (a file stays in the spool until storage confirms it). The manifest goes up beside them,
//! at most every few seconds while the recording runs and at once at its end; it names only what
//! storage has confirmed, so it is right whenever it is written.

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

use crate::store::{Store, StoreError};

/// What to upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Job {
    /// Segment `seg` of part `part`.
    Segment { part: usize, seg: usize },
    /// Final file `n`.
    Final(usize),
    /// The manifest, as it is when the upload starts.
    Manifest,
}

/// What an upload gives back: the size and SHA-256 of what went up.
pub(crate) type Uploaded = Result<(u64, String), StoreError>;

/// An upload in flight.
pub(crate) type InFlight = Pin<Box<dyn Future<Output = (Job, Uploaded)> + Send>>;

/// The longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// While the recording runs, the manifest goes up at most this often.
const MANIFEST_EVERY: Duration = Duration::from_secs(5);

/// The queue.
#[derive(Default)]
pub(crate) struct UploadQueue {
    files: VecDeque<Job>,
    /// The manifest changed since it last went up.
    manifest_due: bool,
    last_manifest: Option<Instant>,
    busy: Option<Job>,
    retry_at: Option<Instant>,
    backoff: Duration,
}

impl UploadQueue {
    /// Queues a file's upload.
    pub fn push(&mut self, job: Job) {
        if job == Job::Manifest {
            self.manifest_due = true;
        } else {
            self.files.push_back(job);
        }
    }

    /// True when nothing is queued or in flight.
    pub fn is_idle(&self) -> bool {
        self.files.is_empty() && !self.manifest_due && self.busy.is_none()
    }

    /// The next job to start now, if any. With `urgent` (the recording is ending), a due
    /// manifest does not wait for its turn.
    pub fn next(&mut self, now: Instant, urgent: bool) -> Option<Job> {
        if self.busy.is_some() || self.retry_at.is_some_and(|t| now < t) {
            return None;
        }
        let manifest_now = self.manifest_due
            && (urgent
                || self.files.is_empty()
                || self
                    .last_manifest
                    .is_some_and(|t| now.duration_since(t) >= MANIFEST_EVERY));
        let job = if manifest_now {
            self.manifest_due = false;
            self.last_manifest = Some(now);
            Job::Manifest
        } else {
            *self.files.front()?
        };
        self.busy = Some(job);
        Some(job)
    }

    /// The job in flight succeeded, or failed for good (its file is gone): the next one.
    pub fn done(&mut self) {
        if let Some(job) = self.busy.take()
            && job != Job::Manifest
        {
            self.files.pop_front();
        }
        self.retry_at = None;
        self.backoff = Duration::ZERO;
    }

    /// The job in flight failed: it is retried after a growing pause.
    pub fn failed(&mut self, now: Instant) -> Duration {
        if self.busy.take() == Some(Job::Manifest) {
            self.manifest_due = true;
        }
        self.backoff = (self.backoff * 2).clamp(Duration::from_millis(500), MAX_BACKOFF);
        self.retry_at = Some(now + self.backoff);
        self.backoff
    }
}

/// Uploads a file.
pub(crate) fn upload_file(store: &Store, job: Job, path: PathBuf, key: String) -> InFlight {
    let store = store.clone();
    Box::pin(async move { (job, store.upload_file(&path, &key).await) })
}

/// Uploads bytes (the manifest).
pub(crate) fn upload_bytes(store: &Store, job: Job, key: String, bytes: Vec<u8>) -> InFlight {
    let store = store.clone();
    Box::pin(async move {
        let n = bytes.len() as u64;
        (
            job,
            store.put(&key, bytes).await.map(|()| (n, String::new())),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_job_is_retried_first_after_a_growing_pause() {
        let now = Instant::now();
        let mut q = UploadQueue::default();
        let seg = Job::Segment { part: 0, seg: 0 };
        q.push(seg);
        assert_eq!(q.next(now, false), Some(seg));
        assert_eq!(q.next(now, false), None, "one at a time");
        assert_eq!(q.failed(now), Duration::from_millis(500));
        assert_eq!(q.next(now, false), None, "not before the pause");
        let later = now + Duration::from_millis(500);
        assert_eq!(q.next(later, false), Some(seg));
        assert_eq!(q.failed(later), Duration::from_secs(1), "doubled");
        let later = later + Duration::from_secs(1);
        assert_eq!(q.next(later, false), Some(seg));
        q.done();
        assert_eq!(q.next(later, false), None);
        assert!(q.is_idle());
    }

    #[test]
    fn many_tracks_queue_one_manifest_which_waits_its_turn_while_segments_flow() {
        let now = Instant::now();
        let mut q = UploadQueue::default();
        // Twelve per-track segments complete at once, each asking for the manifest.
        for seg in 0..12 {
            q.push(Job::Segment { part: 0, seg });
            q.push(Job::Manifest);
        }
        let mut order = Vec::new();
        let mut t = now;
        while let Some(job) = q.next(t, false) {
            order.push(job);
            q.done();
            t += Duration::from_millis(100);
        }
        let manifests = order.iter().filter(|j| **j == Job::Manifest).count();
        assert_eq!(manifests, 1, "one manifest for the batch: {order:?}");
        assert_eq!(order.len(), 13);
        assert_eq!(
            order.last(),
            Some(&Job::Manifest),
            "after the segments it names"
        );
        // Another segment within five seconds: its manifest waits for the queue to empty.
        q.push(Job::Segment { part: 0, seg: 12 });
        q.push(Job::Segment { part: 0, seg: 13 });
        q.push(Job::Manifest);
        assert!(matches!(q.next(t, false), Some(Job::Segment { .. })));
        q.done();
        assert_eq!(q.next(t, true), Some(Job::Manifest), "urgent at the end");
        q.done();
        assert!(matches!(q.next(t, false), Some(Job::Segment { .. })));
        q.done();
        assert!(q.is_idle());
    }
}
