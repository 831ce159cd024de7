//! Resuming a signaling session on a new socket. Every joined session is registered under its
//! resume token. A `join` that presents the token (with an access token for the same identity
//! and room) takes the session over, with the same participant, tracks and subscriptions,
//! whether its old socket is still open (the client noticed first that it was dead) or already
//! gone. A session whose socket drops is parked for `signaling.resume_grace_secs`, keeping what
//! it is told meanwhile; only past the grace period do the others learn that it left
//! (`connection_lost`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tern_sfu::{Command, Notice};
use tokio::sync::{mpsc, oneshot};

use crate::AppState;
use crate::signaling::Joined;

/// The most notices a parked session keeps; one that misses more cannot be resumed (its
/// client would not know where it stands) and leaves.
const MAX_MISSED: usize = 1024;

/// A session handed over to the socket that resumes it, with what it missed while parked.
pub(crate) type Handoff = (Joined, Vec<Notice>);

/// Where a request to take a session over arrives: the session's relay loop, or its parking.
pub(crate) type Takeover = mpsc::Receiver<oneshot::Sender<Handoff>>;

struct Entry {
    identity: String,
    room: String,
    take: mpsc::Sender<oneshot::Sender<Handoff>>,
}

/// The sessions that can be resumed, by resume token.
#[derive(Default)]
pub struct Resumable {
    sessions: Mutex<HashMap<String, Entry>>,
}

impl Resumable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding it leaves the map as it was: keep using it.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a session under `token`; requests to take it over arrive on the receiver.
    pub(crate) fn register(&self, token: &str, identity: &str, room: &str) -> Takeover {
        let (take, taken) = mpsc::channel(1);
        let entry = Entry {
            identity: identity.to_string(),
            room: room.to_string(),
            take,
        };
        self.lock().insert(token.to_string(), entry);
        taken
    }

    /// Forgets the session under `token` (it ended).
    pub(crate) fn forget(&self, token: &str) {
        self.lock().remove(token);
    }

    /// Takes over the session registered under `token`, if it belongs to `identity` in
    /// `room` and is still there. `None`: the client joins anew.
    pub(crate) async fn take(&self, token: &str, identity: &str, room: &str) -> Option<Handoff> {
        let entry = {
            let mut sessions = self.lock();
            let e = sessions.get(token)?;
            if e.identity != identity || e.room != room {
                return None;
            }
            sessions.remove(token)?
        };
        let (tx, rx) = oneshot::channel();
        entry.take.send(tx).await.ok()?;
        rx.await.ok()
    }
}

/// Parks the session of `j` (its socket is gone) for the grace period: what the participant is
/// told meanwhile is kept for the socket that resumes it; past the grace period it is removed.
pub(crate) fn park(state: &AppState, mut j: Joined, mut taken: Takeover) {
    let grace = Duration::from_secs(state.config.signaling.resume_grace_secs);
    let state = state.clone();
    tokio::spawn(async move {
        let _live = state.session_token();
        let mut missed = Vec::new();
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline);
        let token = j.resume_token.clone();
        let lost = loop {
            tokio::select! {
                Some(back) = taken.recv() => {
                    let _ = back.send((j, missed));
                    return;
                }
                notice = j.notices.recv() => match notice {
                    // Removed meanwhile (closed room, admin, shutdown): nothing to resume.
                    Some(Notice::Removed(_)) | None => break false,
                    Some(n) if missed.len() < MAX_MISSED => missed.push(n),
                    Some(_) => break true,
                },
                _ = &mut deadline => break true,
            }
        };
        state.resumable.forget(&token);
        // A takeover that came just now is refused (its sender is dropped): it joins anew.
        drop(taken);
        if lost {
            let _ = j
                .worker
                .request(Command::ConnectionLost { participant: j.id })
                .await;
        }
        if let Some(turn) = &state.turn {
            turn.revoke(&j.id.to_string());
        }
        tracing::info!(participant = %j.id, lost, "parked session ended");
    });
}
