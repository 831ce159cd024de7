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

use tern_sfu::{Command, Notice, Reply};
use tokio::sync::{mpsc, oneshot};

use crate::AppState;
use crate::auth::Grants;
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

/// Takes over the session registered under `token`, for a `join` by `identity` in `room` with
/// these grants, and asks its worker for the room as it is now (a [`Reply::Resumed`]), with
/// what the session missed. `None`: no such session (gone, another identity or room), or the
/// grants differ (the old session leaves): join anew. Runs in a task of its own, so a `join`
/// that gives up meanwhile (its timeout) does not drop a session nobody else holds: it ends.
pub(crate) async fn resume(
    state: &AppState,
    token: &str,
    identity: &str,
    room: &str,
    grants: &Grants,
) -> Option<(Joined, Reply, Vec<Notice>)> {
    let (tx, rx) = oneshot::channel();
    let (state, token, identity, room, grants) = (
        state.clone(),
        token.to_string(),
        identity.to_string(),
        room.to_string(),
        grants.clone(),
    );
    tokio::spawn(async move {
        let Some((mut j, mut missed)) = state.resumable.take(&token, &identity, &room).await else {
            let _ = tx.send(None);
            return;
        };
        if j.grants != grants {
            // A session with other grants is a new one: the old one leaves.
            end(&state, &j, false).await;
            let _ = tx.send(None);
            return;
        }
        let reply = j
            .worker
            .request(Command::Resume { participant: j.id })
            .await;
        // What the old socket had not sent yet, too: the worker queued it all before its reply,
        // and makes no new subscriber offer while one waits for its answer.
        while let Ok(n) = j.notices.try_recv() {
            missed.push(n);
        }
        let removed = missed.iter().any(|n| matches!(n, Notice::Removed(_)));
        let Ok(Ok(reply @ Reply::Resumed { .. })) = reply else {
            end(&state, &j, true).await;
            let _ = tx.send(None);
            return;
        };
        if removed {
            end(&state, &j, false).await;
            let _ = tx.send(None);
            return;
        }
        if let Err(Some((j, _, _))) = tx.send(Some((j, reply, missed))) {
            end(&state, &j, true).await;
        }
    });
    rx.await.ok().flatten()
}

/// Ends a session nobody holds any more: the participant leaves (`connection_lost` when
/// `lost`, else `left`) and its relay access ends.
pub(crate) async fn end(state: &AppState, j: &Joined, lost: bool) {
    let participant = j.id;
    let cmd = if lost {
        Command::ConnectionLost { participant }
    } else {
        Command::Leave { participant }
    };
    let _ = j.worker.request(cmd).await;
    if let Some(turn) = &state.turn {
        turn.revoke(&participant.to_string());
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
                    if let Err((j, _)) = back.send((j, missed)) {
                        end(&state, &j, true).await;
                    }
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
            end(&state, &j, true).await;
        } else if let Some(turn) = &state.turn {
            turn.revoke(&j.id.to_string());
        }
        tracing::info!(participant = %j.id, lost, "parked session ended");
    });
}
