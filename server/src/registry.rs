//! Which worker hosts which room. Control path only: the media path never touches it.

use std::collections::HashMap;
use std::sync::Mutex;

/// Room placement. A room lives on one worker from its first join until it empties.
#[derive(Default)]
pub struct Registry {
    rooms: Mutex<HashMap<String, usize>>,
    workers: usize,
}

impl Registry {
    /// A registry over `workers` workers.
    pub fn new(workers: usize) -> Self {
        Self {
            rooms: Mutex::new(HashMap::new()),
            workers: workers.max(1),
        }
    }

    /// The worker of `room`, placing a new room on the worker with the fewest rooms.
    pub fn place(&self, room: &str) -> usize {
        let mut rooms = self.lock();
        if let Some(w) = rooms.get(room) {
            return *w;
        }
        let mut load = vec![0usize; self.workers];
        for w in rooms.values() {
            load[*w] += 1;
        }
        let w = (0..self.workers).min_by_key(|w| load[*w]).unwrap_or(0);
        rooms.insert(room.to_string(), w);
        w
    }

    /// The worker of an existing room.
    pub fn find(&self, room: &str) -> Option<usize> {
        self.lock().get(room).copied()
    }

    /// A worker hosts `room` (called by the worker on each join). A join that raced with the
    /// room's closing re-registers the room here.
    pub fn opened(&self, room: &str, worker: usize) {
        self.lock().entry(room.to_string()).or_insert(worker);
    }

    /// A worker's room emptied and closed.
    pub fn closed(&self, room: &str, worker: usize) {
        let mut rooms = self.lock();
        if rooms.get(room) == Some(&worker) {
            rooms.remove(room);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // The map stays consistent even if a holder panicked: every update is one insert or remove.
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_spread_over_workers_and_stay_put() {
        let r = Registry::new(2);
        let a = r.place("a");
        let b = r.place("b");
        assert_ne!(a, b);
        assert_eq!(r.place("a"), a);
        r.closed("a", a);
        assert_eq!(r.find("a"), None);
        r.opened("a", b);
        assert_eq!(r.find("a"), Some(b));
    }
}
