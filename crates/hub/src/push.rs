//! Pushes to agents' live connections, made in the workspace's actor and released after the
//! commit.
//!
//! An agent's desktop (Twilio's worker SDK, over the event bridge) is told about its
//! reservations, its tasks and its own changes as they happen. What it is told must be the
//! state the command left, not a later one, and must never be something a crash could take
//! back. So the payloads are rendered by the actor, right after the command and from the
//! state it produced, by a [`Renderer`] the bridge installs ([`crate::Hub::push_to`]); they
//! travel to the writer with the command's changes and events and reach the bridge only once
//! those are committed, in commit order — which is the order the actor applied them.
//!
//! Rendering costs the actor nothing while no agent of the workspace is connected: a
//! connection registers through [`crate::WorkspaceHandle::watch`], and the actor renders only
//! while the workspace has at least one, and only for the workers that have one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use taskyard_engine::{Event, EventType, Sid, Workspace};
use tokio::sync::mpsc;

/// One message for the live connections of one worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    pub worker: Sid,
    /// The event it reports (`EV…`): pushes of a workspace are made in event-SID order, so a
    /// connection can tell what a read it made already reflects ([`crate::WorkspaceHandle::read_watermarked`]).
    pub event: Sid,
    pub event_type: EventType,
    /// The resource the receiver must already know about to take the push (a reservation,
    /// an activity, a worker channel), if any.
    pub subject: Option<Sid>,
    /// The rendered payload (JSON).
    pub payload: String,
}

/// The pushes of one committed command (or timer) of one workspace.
#[derive(Debug)]
pub struct PushBatch {
    pub workspace: Sid,
    pub pushes: Vec<Push>,
}

/// Renders the pushes of a command's events from the state the command left. `watched` says
/// whether a worker has a live connection; pushes for others are wasted work.
pub type Renderer =
    Arc<dyn Fn(&Workspace, &[Event], &dyn Fn(Sid) -> bool, &mut Vec<Push>) + Send + Sync>;

pub(crate) struct Pusher {
    pub(crate) render: Renderer,
    pub(crate) tx: mpsc::UnboundedSender<PushBatch>,
}

/// Which workers of one workspace have live connections.
#[derive(Default)]
pub(crate) struct Watchers {
    /// Connections in the workspace: the actor's fast path when there are none.
    count: AtomicUsize,
    by_worker: Mutex<HashMap<Sid, usize>>,
}

impl Watchers {
    fn workers(&self) -> std::sync::MutexGuard<'_, HashMap<Sid, usize>> {
        self.by_worker.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn any(&self) -> bool {
        self.count.load(Ordering::SeqCst) > 0
    }

    /// The pushes `pusher` makes of `events` for the watched workers.
    pub(crate) fn render(&self, pusher: &Pusher, ws: &Workspace, events: &[Event]) -> Vec<Push> {
        let mut out = Vec::new();
        let workers = self.workers();
        (pusher.render)(ws, events, &|w| workers.contains_key(&w), &mut out);
        out
    }
}

/// Keeps a worker watched while it lives (one per live connection).
pub struct WatchGuard {
    watchers: Arc<Watchers>,
    worker: Sid,
}

impl WatchGuard {
    pub(crate) fn new(watchers: Arc<Watchers>, worker: Sid) -> WatchGuard {
        *watchers.workers().entry(worker).or_default() += 1;
        watchers.count.fetch_add(1, Ordering::SeqCst);
        WatchGuard { watchers, worker }
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        let mut workers = self.watchers.workers();
        if let Some(n) = workers.get_mut(&self.worker) {
            *n -= 1;
            if *n == 0 {
                workers.remove(&self.worker);
            }
        }
        self.watchers.count.fetch_sub(1, Ordering::SeqCst);
    }
}
