//! A hub as one node of several on one PostgreSQL database (see `taskyard_store::cluster`).
//!
//! The node runs the actors of the workspaces whose leases it holds, and no others. A lease
//! keeper thread renews them, claims expired ones (a dead node's) and listens for the other
//! nodes' notices; what it finds comes to the hub's task here, which starts the actors of
//! claimed workspaces (their timers re-arm from the engine's deadlines, pending assignment
//! callbacks are resent and event delivery resumes at the stored cursor, as after a
//! restart) and stops those of lost ones (a workspace whose commit was refused, or whose
//! renewal failed).
//!
//! A node also stops serving every workspace once its last successful renewal is a lease
//! old ([`ClusterState::serving`]), even before it learns that another node took them: a
//! paused node wakes up to find its answers forwarded rather than read from stale memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use taskyard_engine::{Account, Sid, Workspace, sid::prefix};
use taskyard_store::StoreError;
use taskyard_store::cluster::{Claimed, Directory, Held, Leases, NodeConfig, Notice, Owner};
use tokio::sync::mpsc;

use crate::{Hub, HubError, WorkspaceHandle, dispatch};

/// What a node of a cluster starts with: its lease keeper's session, the directory, and the
/// held set its fenced store checks commits against.
pub struct Cluster {
    pub leases: Leases,
    pub directory: Directory,
    pub held: Held,
}

/// The lease keeper's reports.
pub(crate) enum Report {
    /// A renewal that started at `at` went through; these leases were lost.
    Renewed {
        at: Instant,
        lost: Vec<Sid>,
    },
    Claimed(Vec<Claimed>),
    Account(Account),
}

/// A hub's cluster side.
pub(crate) struct ClusterState {
    pub(crate) directory: Arc<Directory>,
    held: Held,
    started: Instant,
    /// Until when (ms after `started`) the last renewal keeps this node's leases.
    serving_until: AtomicU64,
    /// Set by [`Hub::hand_over`]: claim nothing more.
    leaving: Arc<AtomicBool>,
    /// Credentials not found here and looked up in the database lately (so that a flood
    /// of unknown ones cannot turn into a flood of queries).
    misses: Mutex<HashMap<Sid, Instant>>,
}

impl ClusterState {
    pub(crate) fn node(&self) -> &NodeConfig {
        self.directory.node()
    }

    /// Whether this node's leases are still surely its own (by its own clock).
    pub(crate) fn serving(&self) -> bool {
        (self.started.elapsed().as_millis() as u64) < self.serving_until.load(Ordering::Acquire)
    }

    pub(crate) fn forget_lease(&self, ws: Sid) {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ws);
    }
}

/// How often the keeper renews and claims: a third of the lease, so that two renewals in a
/// row may fail before the lease runs out.
fn tick(lease: Duration) -> Duration {
    lease / 3
}

/// The lease margin a node keeps for itself: it stops serving this much before its lease
/// could expire in the database.
const MARGIN: Duration = Duration::from_millis(100);

impl Hub {
    /// Starts the hub as a node of a cluster over a fenced `store`: loads the accounts,
    /// starts the writer and the lease keeper. Workspaces start as their leases are claimed.
    pub fn start_cluster(
        store: Box<dyn taskyard_store::Store>,
        options: crate::CallbackOptions,
        cluster: Cluster,
    ) -> Result<Hub, HubError> {
        let Cluster {
            mut leases,
            directory,
            held,
        } = cluster;
        let accounts = leases
            .accounts()
            .map_err(|e| HubError::Store(Arc::new(e)))?;
        let (lost_tx, lost_rx) = mpsc::unbounded_channel();
        let state = ClusterState {
            directory: Arc::new(directory),
            held,
            started: Instant::now(),
            serving_until: AtomicU64::new(0),
            leaving: Arc::new(AtomicBool::new(false)),
            misses: Mutex::new(HashMap::new()),
        };
        let lease = state.node().lease;
        let leaving = state.leaving.clone();
        let hub = Hub::assemble(
            store,
            options,
            Vec::new(),
            accounts,
            Some(lost_tx),
            Some(state),
        )?;
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("taskyard-leases".into())
            .spawn(move || keep(leases, lease, tx, leaving))
            .map_err(|source| {
                HubError::Store(Arc::new(StoreError::Thread {
                    name: "lease keeper",
                    source,
                }))
            })?;
        tokio::spawn(follow(hub.clone(), rx, lost_rx));
        Ok(hub)
    }

    fn cluster(&self) -> Option<&ClusterState> {
        self.inner.cluster.as_ref()
    }

    /// This node's id and advertised URL, on a cluster.
    pub fn node(&self) -> Option<&NodeConfig> {
        self.cluster().map(ClusterState::node)
    }

    /// Whether this node runs `ws` and may answer for it now. On a single node: whether
    /// the workspace exists.
    pub fn is_local(&self, ws: Sid) -> bool {
        self.workspace_by_sid(ws).is_ok() && self.cluster().is_none_or(ClusterState::serving)
    }

    /// Who holds `ws`'s lease (`None`: no such workspace, or not a cluster).
    pub async fn owner(&self, ws: Sid) -> Result<Option<Owner>, HubError> {
        let Some(c) = self.cluster() else {
            return Ok(None);
        };
        let directory = c.directory.clone();
        blocking(move || directory.owner(ws)).await
    }

    /// Makes sure credentials naming `user` (an account or API key SID) that another node
    /// stored are known here: they are looked up in the database when not found in memory
    /// (at most once a second per SID). A no-op on a single node.
    pub async fn learn_credentials(&self, user: &str) {
        let Some(c) = self.cluster() else { return };
        let Ok(sid) = user.parse::<Sid>() else { return };
        let known = match sid.prefix() {
            prefix::API_KEY => self.api_key_secret(sid).is_some(),
            prefix::ACCOUNT => self.account(sid).is_some(),
            _ => return,
        };
        if known {
            return;
        }
        {
            let mut misses = c.misses.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            if misses
                .get(&sid)
                .is_some_and(|at| now.duration_since(*at) < Duration::from_secs(1))
            {
                return;
            }
            if misses.len() > 10_000 {
                misses.clear();
            }
            misses.insert(sid, now);
        }
        let directory = c.directory.clone();
        let found = if sid.prefix() == prefix::ACCOUNT {
            blocking(move || directory.account(sid)).await
        } else {
            blocking(move || directory.account_with_key(sid)).await
        };
        match found {
            Ok(Some(account)) => self.cache_account(account),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot look up credentials"),
        }
    }

    /// The workspaces of `account` that other nodes run, as committed (their resource rows
    /// only: enough to list them).
    pub async fn remote_workspaces(&self, account: Sid) -> Result<Vec<Workspace>, HubError> {
        let Some(c) = self.cluster() else {
            return Ok(Vec::new());
        };
        let directory = c.directory.clone();
        let local: Vec<Sid> = self.workspaces(account).iter().map(|h| h.sid).collect();
        let rows = blocking(move || {
            let mut out = Vec::new();
            for ws in directory.workspaces_of(account)? {
                if !local.contains(&ws) {
                    out.push((ws, directory.workspace_summary(ws)?));
                }
            }
            Ok(out)
        })
        .await?;
        let mut list = Vec::new();
        for (sid, rows) in rows {
            // Deleted meanwhile: nothing to show.
            if rows.is_empty() {
                continue;
            }
            let ws = Workspace::restore(rows).map_err(|e| HubError::Restore {
                sid,
                reason: e.to_string(),
            })?;
            list.push(ws);
        }
        Ok(list)
    }

    /// Takes a new workspace's lease before its first commit.
    pub(crate) async fn lease_new_workspace(&self, ws: Sid, account: Sid) -> Result<(), HubError> {
        let Some(c) = self.cluster() else {
            return Ok(());
        };
        let directory = c.directory.clone();
        blocking(move || directory.create_lease(ws, account)).await
    }

    /// On a cluster, changes the stored account in place (row-locked), so that changes made
    /// on two nodes at once are both kept; `None` on a single node.
    pub(crate) async fn change_stored_account<R: Send + 'static>(
        &self,
        sid: Sid,
        f: impl FnOnce(&mut Account) -> R + Send + 'static,
    ) -> Option<Result<Option<R>, HubError>> {
        let c = self.cluster()?;
        let directory = c.directory.clone();
        let changed = blocking(move || directory.change_account(sid, f)).await;
        Some(changed.map(|found| {
            found.map(|(account, out)| {
                self.cache_account(account);
                out
            })
        }))
    }

    /// Graceful shutdown of a node: stops its workspaces once their queued work is done and
    /// committed, then hands their leases over, so other nodes take them at once.
    pub async fn hand_over(&self) {
        let Some(c) = self.cluster() else { return };
        c.leaving.store(true, Ordering::Release);
        let handles: Vec<WorkspaceHandle> = {
            let mut map = self
                .inner
                .workspaces
                .write()
                .unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut *map).into_values().collect()
        };
        for h in &handles {
            h.close_moved().await;
        }
        // The writer commits in order: this one lands after every write of those actors.
        let sids: Vec<Sid> = handles.iter().map(|h| h.sid).collect();
        if let Some(first) = sids.first() {
            let _ = self
                .inner
                .writer
                .submit(taskyard_store::Write::Workspace {
                    workspace: *first,
                    changes: Vec::new(),
                    events: Vec::new(),
                })
                .await;
        }
        let directory = c.directory.clone();
        let n = sids.len();
        match blocking(move || directory.release(&sids, true)).await {
            Ok(()) => tracing::info!(workspaces = n, "leases handed over"),
            Err(e) => tracing::warn!(error = %e, "cannot hand the leases over; they will expire"),
        }
    }

    /// Stops running `ws` here (its lease moved): its actor finishes the jobs already
    /// queued (their writes are refused) and later requests are forwarded.
    fn drop_local(&self, ws: Sid) {
        let handle = self
            .inner
            .workspaces
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ws);
        if let Some(c) = self.cluster() {
            c.forget_lease(ws);
        }
        if let Some(h) = handle {
            tracing::warn!(workspace = %ws, "lease lost: another node runs this workspace now");
            tokio::spawn(async move { h.close_moved().await });
        }
    }

    /// Starts the actor of a workspace just claimed, as a restart would.
    fn adopt(&self, claimed: Claimed) {
        let stored = claimed.workspace;
        let sid = stored.sid;
        let ws = match Workspace::restore(stored.rows) {
            Ok(ws) => ws,
            Err(e) => {
                tracing::error!(workspace = %sid, error = %e, "cannot restore a claimed workspace");
                return;
            }
        };
        let handle = WorkspaceHandle::spawn(
            ws,
            self.inner.writer.clone(),
            stored.newest_event,
            self.inner.pusher.clone(),
        );
        self.inner
            .workspaces
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sid, handle);
        tracing::info!(workspace = %sid, epoch = claimed.epoch, "lease taken: running this workspace");
        dispatch::wake_deliverer(self, sid, stored.event_cursor);
        tokio::spawn(dispatch::resend_pending_assignments(
            self.clone(),
            vec![sid],
        ));
    }
}

/// Runs a blocking directory call off the runtime's threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, HubError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| HubError::Store(Arc::new(e))),
        Err(_) => Err(HubError::Store(Arc::new(StoreError::Corrupt(
            "a database call panicked".into(),
        )))),
    }
}

/// The lease keeper: renews, claims, and relays notices, until the hub is gone.
fn keep(
    mut leases: Leases,
    lease: Duration,
    tx: mpsc::UnboundedSender<Report>,
    leaving: Arc<AtomicBool>,
) {
    let tick = tick(lease);
    loop {
        let at = Instant::now();
        match leases.renew() {
            Ok(lost) => {
                if tx.send(Report::Renewed { at, lost }).is_err() {
                    return;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot renew leases"),
        }
        if !leaving.load(Ordering::Acquire) {
            match leases.claim() {
                Ok(claimed) if !claimed.is_empty() => {
                    if tx.send(Report::Claimed(claimed)).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot claim leases"),
            }
        }
        let wait = tick.saturating_sub(at.elapsed());
        match leases.wait(wait) {
            Ok(notices) => {
                for n in notices {
                    if let Notice::Account(sid) = n {
                        match leases.account(sid) {
                            Ok(Some(a)) => {
                                if tx.send(Report::Account(a)).is_err() {
                                    return;
                                }
                            }
                            Ok(None) => {}
                            Err(e) => tracing::warn!(error = %e, "cannot reload an account"),
                        }
                    }
                    // `Notice::Leases`: the next round, which starts now, claims them.
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "lost the lease keeper's session");
                std::thread::sleep(wait);
            }
        }
        if tx.is_closed() {
            return;
        }
    }
}

/// Applies what the keeper and the writer report.
async fn follow(
    hub: Hub,
    mut keeper: mpsc::UnboundedReceiver<Report>,
    mut fenced: mpsc::UnboundedReceiver<Sid>,
) {
    loop {
        tokio::select! {
            report = keeper.recv() => match report {
                Some(Report::Renewed { at, lost }) => {
                    if let Some(c) = hub.cluster() {
                        let until = at.saturating_duration_since(c.started) + c.node().lease;
                        let until = until.saturating_sub(MARGIN).as_millis() as u64;
                        c.serving_until.fetch_max(until, Ordering::AcqRel);
                    }
                    for ws in lost {
                        hub.drop_local(ws);
                    }
                }
                Some(Report::Claimed(list)) => {
                    for claimed in list {
                        hub.adopt(claimed);
                    }
                }
                Some(Report::Account(a)) => hub.cache_account(a),
                None => return,
            },
            ws = fenced.recv() => match ws {
                Some(ws) => hub.drop_local(ws),
                None => return,
            },
        }
    }
}
