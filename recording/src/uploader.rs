//! The upload queue of one recording: segments as they complete, then the final files, each
//! followed by the manifest that names them. One upload at a time, in order, retried with
//! backoff while storage is down; the file stays in the spool until storage confirms it.

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

/// The queue.
#[derive(Default)]
pub(crate) struct UploadQueue {
    jobs: VecDeque<Job>,
    busy: bool,
    retry_at: Option<Instant>,
    backoff: Duration,
}

impl UploadQueue {
    /// Queues a job (a manifest only once at a time: the queued one will be current).
    pub fn push(&mut self, job: Job) {
        if job == Job::Manifest && self.jobs.back() == Some(&Job::Manifest) {
            return;
        }
        self.jobs.push_back(job);
    }

    /// True when nothing is queued or in flight.
    pub fn is_idle(&self) -> bool {
        self.jobs.is_empty() && !self.busy
    }

    /// The next job to start now, if any.
    pub fn next(&mut self, now: Instant) -> Option<Job> {
        if self.busy || self.retry_at.is_some_and(|t| now < t) {
            return None;
        }
        let job = *self.jobs.front()?;
        self.busy = true;
        Some(job)
    }

    /// The job in flight succeeded.
    pub fn done(&mut self) {
        self.jobs.pop_front();
        self.busy = false;
        self.retry_at = None;
        self.backoff = Duration::ZERO;
    }

    /// The job in flight failed: it is retried after a growing pause.
    pub fn failed(&mut self, now: Instant) -> Duration {
        self.busy = false;
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
        q.push(Job::Segment { part: 0, seg: 0 });
        q.push(Job::Manifest);
        q.push(Job::Manifest);
        assert_eq!(q.next(now), Some(Job::Segment { part: 0, seg: 0 }));
        assert_eq!(q.next(now), None, "one at a time");
        assert_eq!(q.failed(now), Duration::from_millis(500));
        assert_eq!(q.next(now), None, "not before the pause");
        let later = now + Duration::from_millis(500);
        assert_eq!(q.next(later), Some(Job::Segment { part: 0, seg: 0 }));
        assert_eq!(q.failed(later), Duration::from_secs(1), "doubled");
        let later = later + Duration::from_secs(1);
        assert_eq!(q.next(later), Some(Job::Segment { part: 0, seg: 0 }));
        q.done();
        assert_eq!(
            q.next(later),
            Some(Job::Manifest),
            "one manifest, after the segment"
        );
        q.done();
        assert!(q.is_idle());
    }
}
