//! # taskyard-hub
//!
//! The running heart of the server, between the HTTP layer and the store:
//!
//! * one **actor per workspace** ([`WorkspaceHandle`]): a tokio task that owns the
//!   workspace's [`Workspace`] engine and runs jobs against it one at a time, so the engine
//!   needs no locks;
//! * the **store writer** ([`writer`]): one thread that drains every queued write, commits
//!   them in one transaction, and only then releases the waiting requests (group commit);
//! * the **registry** ([`Hub`]): accounts, authentication, and which workspaces exist and who
//!   owns them;
//! * the **dispatcher** ([`dispatch`]): once events are committed, the assignment callbacks,
//!   the event callbacks (in order, at least once, from a durable cursor) and the live feed.
//!
//! A mutating request is applied by its workspace's actor, which renders the response right
//! away and hands the changes to the writer; the request is answered only once the writer has
//! committed them. The actor meanwhile moves on to the next job, so commits of many requests
//! share one fsync. Reads run as jobs on the actor too and see its current state.

pub mod cluster;
pub mod dispatch;
pub mod push;
pub mod writer;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

pub use dispatch::{CallbackOptions, LiveEvent};
pub use push::{Push, PushBatch, Renderer, WatchGuard};
use taskyard_auth::{SecretHash, constant_time_eq};
use taskyard_engine::{
    Account, ApiKey, Applied, Command, EngineError, Millis, NewWorkspace, Sid, SidSource,
    TimeOrderedSids, Workspace, sid::prefix,
};
use taskyard_store::Store;
pub use taskyard_store::{EventLog, EventQuery, StoreError, StoredEvent, Write};
pub use taskyard_webhook::{Cidr, CidrError, Policy, UrlRefusal};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::dispatch::Dispatch;
use crate::push::{Pusher, Watchers};
use crate::writer::Writer;

/// Errors the hub reports to the API layer.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The engine refused the command; nothing changed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// No such workspace for this account (or it was just deleted).
    #[error("workspace not found")]
    WorkspaceNotFound,
    /// The change could not be made durable. The server stops after this (see [`writer`]).
    #[error("the change could not be stored: {0}")]
    Store(Arc<StoreError>),
    /// The workspace moved to another node of the cluster while the request ran; nothing
    /// it asked for was done, and it can be sent again (to the new owner).
    #[error("workspace {0} moved to another node")]
    Moved(Sid),
    /// Stored data could not be loaded at start-up.
    #[error("cannot restore workspace {sid}: {reason}")]
    Restore { sid: Sid, reason: String },
}

/// A SID generator seeded from the operating system's entropy.
pub type Sids = TimeOrderedSids<Box<dyn FnMut() -> u64 + Send>>;

/// A new, randomly seeded SID generator.
pub fn new_sids() -> Sids {
    let mut seed = [0u8; 8];
    // Without OS entropy, fall back to the clock: SIDs stay unique through their time prefix.
    if getrandom::fill(&mut seed).is_err() {
        seed = (now_ms() as u64).to_le_bytes();
    }
    let mut rng = fastrand::Rng::with_seed(u64::from_le_bytes(seed));
    TimeOrderedSids::new(Box::new(move || rng.u64(..)))
}

/// The wall clock in Unix milliseconds.
pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// A cryptographically random token of 32 hex digits (auth tokens).
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a workspace's actor owns.
pub struct ActorState {
    ws: Workspace,
    sids: Sids,
    writer: Writer,
    /// Set once the workspace is deleted: the actor stops after the current job.
    closed: bool,
    /// Writes this actor has submitted, and how many of them are known to be committed
    /// (see [`WorkspaceHandle::read`]).
    submitted: u64,
    durable: Arc<AtomicU64>,
    /// The newest event this actor has made (see [`WorkspaceHandle::read_watermarked`]).
    last_event: Option<Sid>,
    /// Which workers have live connections, and who renders what they are pushed.
    watchers: Arc<Watchers>,
    pusher: Arc<OnceLock<Pusher>>,
}

impl ActorState {
    /// Fires due timers. Their changes are committed like any other; no request waits on
    /// them, so the actor does not wait either.
    fn tick(&mut self) {
        let (changes, events) = self.ws.tick(now_ms(), &mut self.sids);
        if !changes.is_empty() || !events.is_empty() {
            self.submit(changes, events);
        }
    }

    /// Hands a command's changes and events to the writer, with the pushes they make.
    fn submit(
        &mut self,
        changes: Vec<taskyard_engine::Change>,
        events: Vec<taskyard_engine::Event>,
    ) -> writer::Done {
        self.submitted += 1;
        if let Some(e) = events.last() {
            self.last_event = Some(e.sid);
        }
        let pushes = match self.pusher.get() {
            Some(p) if self.watchers.any() && !events.is_empty() => {
                self.watchers.render(p, &self.ws, &events)
            }
            _ => Vec::new(),
        };
        self.writer.submit_applied(
            Write::Workspace {
                workspace: self.ws.sid(),
                changes,
                events: Vec::new(),
            },
            events,
            pushes,
        )
    }
}

type Job = Box<dyn FnOnce(&mut ActorState) + Send>;

/// Runs `f`; if it panics (a bug in the engine), the workspace's memory can no longer be
/// trusted, so the process stops and a restart reloads the committed state, exactly as when
/// a commit fails (see [`writer`]).
fn fail_stop_on_panic(f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        tracing::error!(
            "a workspace actor panicked; stopping so that a restart reloads the committed state"
        );
        std::process::exit(70);
    }
}

/// A cheap handle to one workspace's actor.
#[derive(Clone)]
pub struct WorkspaceHandle {
    pub sid: Sid,
    pub account_sid: Sid,
    jobs: mpsc::UnboundedSender<Job>,
    watchers: Arc<Watchers>,
    /// Set when the workspace moved to another node: requests that find the actor gone
    /// then fail with [`HubError::Moved`] rather than "not found".
    moved: Arc<std::sync::atomic::AtomicBool>,
}

/// A commit's failure as the request sees it: refused because the lease moved, or a
/// failure of the store.
fn commit_error(ws: Sid, e: Arc<StoreError>) -> HubError {
    match &*e {
        StoreError::Fenced { .. } => HubError::Moved(ws),
        _ => HubError::Store(e),
    }
}

impl WorkspaceHandle {
    fn spawn(
        ws: Workspace,
        writer: Writer,
        newest_event: Option<Sid>,
        pusher: Arc<OnceLock<Pusher>>,
    ) -> WorkspaceHandle {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        let watchers = Arc::new(Watchers::default());
        let handle = WorkspaceHandle {
            sid: ws.sid(),
            account_sid: ws.info().account_sid,
            jobs: tx,
            watchers: watchers.clone(),
            moved: Arc::default(),
        };
        let mut sids = new_sids();
        sids.resume_after(ws.newest_sid());
        if let Some(e) = newest_event {
            sids.resume_after(e);
        }
        let mut state = ActorState {
            ws,
            sids,
            writer,
            closed: false,
            submitted: 0,
            durable: Arc::new(AtomicU64::new(0)),
            last_event: newest_event,
            watchers,
            pusher,
        };
        tokio::spawn(async move {
            loop {
                // Sleep until the next job or the engine's next deadline, whichever is first.
                let job = match state.ws.next_deadline() {
                    Some(at) => {
                        let wait = u64::try_from(at - now_ms()).unwrap_or(0);
                        tokio::select! {
                            job = rx.recv() => job,
                            _ = tokio::time::sleep(std::time::Duration::from_millis(wait)) => {
                                fail_stop_on_panic(|| state.tick());
                                continue;
                            }
                        }
                    }
                    None => rx.recv().await,
                };
                let Some(job) = job else { break };
                fail_stop_on_panic(|| job(&mut state));
                if state.closed {
                    break;
                }
            }
        });
        handle
    }

    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut ActorState) -> R + Send + 'static,
    ) -> Result<R, HubError> {
        let (tx, rx) = oneshot::channel();
        let gone = || {
            if self.moved.load(Ordering::Acquire) {
                HubError::Moved(self.sid)
            } else {
                HubError::WorkspaceNotFound
            }
        };
        self.jobs
            .send(Box::new(move |st: &mut ActorState| {
                let _ = tx.send(f(st));
            }))
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    /// Resolves once the actor has stopped: the workspace was deleted, or (see
    /// [`WorkspaceHandle::moved`]) another node runs it now.
    pub async fn stopped(&self) {
        self.jobs.closed().await
    }

    /// Whether the actor stopped because the workspace moved to another node.
    pub fn moved(&self) -> bool {
        self.moved.load(Ordering::Acquire)
    }

    /// Stops the actor, once the jobs queued before this are done, because another node
    /// runs the workspace now: later requests fail with [`HubError::Moved`].
    pub(crate) async fn close_moved(&self) {
        self.moved.store(true, Ordering::Release);
        let _ = self.run(|st| st.closed = true).await;
    }

    /// Runs `f` on the workspace's current state, and answers once that state is durable.
    ///
    /// The actor goes on while its writes commit, and a timer's changes (a reservation
    /// timing out) have no request waiting for them; a read could otherwise show a change
    /// that a crash would take back, or one whose events the Events list does not have yet.
    /// So when writes of this actor are not yet known to be committed, the read waits for an
    /// empty write queued behind them (the writer commits in order).
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Workspace) -> R + Send + 'static,
    ) -> Result<R, HubError> {
        Ok(self.read_watermarked(f).await?.0)
    }

    /// [`WorkspaceHandle::read`], and the newest event the state read reflects: every push
    /// ([`Push::event`]) after it reports a change the read did not see, every one up to it a
    /// change the read did.
    pub async fn read_watermarked<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Workspace) -> R + Send + 'static,
    ) -> Result<(R, Option<Sid>), HubError> {
        let (out, barrier) = self
            .run(move |st| {
                let behind = st.durable.load(Ordering::Acquire) < st.submitted;
                let barrier = behind.then(|| {
                    let done = st.writer.submit(Write::Workspace {
                        workspace: st.ws.sid(),
                        changes: Vec::new(),
                        events: Vec::new(),
                    });
                    (done, st.submitted, st.durable.clone())
                });
                ((f(&st.ws), st.last_event), barrier)
            })
            .await?;
        if let Some((done, upto, durable)) = barrier {
            done.await.map_err(|e| commit_error(self.sid, e))?;
            durable.fetch_max(upto, Ordering::AcqRel);
        }
        Ok(out)
    }

    /// Marks `worker` as having a live connection until the guard is dropped: from then on
    /// the actor renders pushes for it.
    pub fn watch(&self, worker: Sid) -> WatchGuard {
        WatchGuard::new(self.watchers.clone(), worker)
    }

    /// Applies `cmd`; on success renders the response with `render` (in the actor, right
    /// after the change) and returns it once the change is committed.
    pub async fn apply<R: Send + 'static>(
        &self,
        cmd: Command,
        render: impl FnOnce(&Workspace, &Applied) -> R + Send + 'static,
    ) -> Result<R, HubError> {
        let closes = matches!(cmd, Command::DeleteWorkspace);
        let (out, committed, seq, durable) = self
            .run(move |st| {
                let applied = st.ws.apply(cmd, now_ms(), &mut st.sids)?;
                let out = render(&st.ws, &applied);
                let committed = st.submit(applied.changes, applied.events);
                st.closed = closes;
                Ok::<_, EngineError>((out, committed, st.submitted, st.durable.clone()))
            })
            .await??;
        committed.await.map_err(|e| commit_error(self.sid, e))?;
        durable.fetch_max(seq, Ordering::AcqRel);
        Ok(out)
    }
}

/// Accounts and workspaces, and the way to reach each workspace's actor.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    accounts: RwLock<HashMap<Sid, Account>>,
    /// Every API key: its account and its secret's hash, parsed once.
    keys: RwLock<HashMap<Sid, (Sid, SecretHash)>>,
    /// Held while an account is read, changed and stored, so that two changes of one
    /// account (two keys created at once) cannot overwrite each other.
    account_changes: tokio::sync::Mutex<()>,
    workspaces: RwLock<BTreeMap<Sid, WorkspaceHandle>>,
    writer: Writer,
    sids: Mutex<Sids>,
    dispatch: Dispatch,
    /// Set once by [`Hub::push_to`]; shared with every actor.
    pusher: Arc<OnceLock<Pusher>>,
    /// Set on a node of a cluster (see [`cluster`]).
    cluster: Option<cluster::ClusterState>,
    /// Turns true when the process starts to stop (see [`Hub::stop_streams`]).
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Hub {
    /// Loads everything from `store`, starts one actor per workspace and the writer thread,
    /// with Twilio's callback timeouts. Must be called inside a tokio runtime.
    pub fn start(store: Box<dyn Store>) -> Result<Hub, HubError> {
        Hub::start_with(store, CallbackOptions::default())
    }

    /// [`Hub::start`] with callback settings of one's own.
    pub fn start_with(
        mut store: Box<dyn Store>,
        options: CallbackOptions,
    ) -> Result<Hub, HubError> {
        let snapshot = store.load().map_err(|e| HubError::Store(Arc::new(e)))?;
        Hub::assemble(
            store,
            options,
            snapshot.workspaces,
            snapshot.accounts,
            None,
            None,
        )
    }

    /// Starts the writer, the actors of `stored` and the dispatcher.
    fn assemble(
        store: Box<dyn Store>,
        options: CallbackOptions,
        stored: Vec<taskyard_store::StoredWorkspace>,
        accounts: Vec<Account>,
        lost: Option<mpsc::UnboundedSender<Sid>>,
        cluster: Option<cluster::ClusterState>,
    ) -> Result<Hub, HubError> {
        let store_error = |e: StoreError| HubError::Store(Arc::new(e));
        let log: Arc<dyn EventLog> = Arc::from(store.event_log().map_err(store_error)?);
        let (outbox, committed) = mpsc::unbounded_channel();
        let writer = Writer::start_fenced(store, Some(outbox), lost);
        let mut workspaces = BTreeMap::new();
        let mut cursors = Vec::new();
        let pusher = Arc::new(OnceLock::new());
        for stored in stored {
            let sid = stored.sid;
            let ws = Workspace::restore(stored.rows).map_err(|e| HubError::Restore {
                sid,
                reason: e.to_string(),
            })?;
            cursors.push((sid, stored.event_cursor));
            workspaces.insert(
                sid,
                WorkspaceHandle::spawn(ws, writer.clone(), stored.newest_event, pusher.clone()),
            );
        }
        let keys = key_index(&accounts);
        let accounts = accounts.into_iter().map(|a| (a.sid, a)).collect();
        let hub = Hub {
            inner: Arc::new(Inner {
                accounts: RwLock::new(accounts),
                keys: RwLock::new(keys),
                account_changes: tokio::sync::Mutex::new(()),
                workspaces: RwLock::new(workspaces),
                writer,
                sids: Mutex::new(new_sids()),
                dispatch: Dispatch::new(options, log),
                pusher,
                cluster,
                stopping: tokio::sync::watch::Sender::new(false),
            }),
        };
        // Deliverers start from their stored cursors before anything new is dispatched,
        // so an event committed early (a timer due at start) cannot start one from scratch.
        let restored: Vec<Sid> = cursors.iter().map(|c| c.0).collect();
        for (ws, cursor) in cursors {
            dispatch::wake_deliverer(&hub, ws, cursor);
        }
        tokio::spawn(dispatch::run(hub.clone(), committed));
        tokio::spawn(dispatch::resend_pending_assignments(hub.clone(), restored));
        tokio::spawn(purge_old_events(hub.inner.writer.clone()));
        Ok(hub)
    }

    /// Says the process is stopping: long-lived responses (the live event streams) end, so
    /// that a graceful shutdown, which waits for every response, can finish. Their clients
    /// reconnect (to another node, or to this one restarted) and resume from the last event.
    /// The event-callback backlog: for each workspace whose deliverer holds an event not yet
    /// delivered (its receiver is slow, failing, or the events just arrived), that oldest
    /// event's commit time in ms since the epoch.
    pub fn event_callback_heads(&self) -> Vec<(Sid, i64)> {
        dispatch::callback_heads(&self.inner.dispatch)
    }

    pub fn stop_streams(&self) {
        self.inner.stopping.send_replace(true);
    }

    /// Resolves once [`Hub::stop_streams`] was called (at once if it was).
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.stopping.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// The committed events, for reading (the Events resource).
    pub fn events(&self) -> Arc<dyn EventLog> {
        self.inner.dispatch.log.clone()
    }

    /// Where callbacks may go: the policy the dispatcher connects by, for the API to check
    /// URLs against when they are saved.
    pub fn callback_policy(&self) -> &Policy {
        &self.inner.dispatch.options.policy
    }

    /// A feed of events as they are committed (every workspace's).
    pub fn live(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.inner.dispatch.live.subscribe()
    }

    /// Installs the renderer of pushes to agents' live connections; the committed pushes
    /// arrive, in commit order, on the returned receiver. Only the first call installs one
    /// (later calls get `None`).
    pub fn push_to(&self, render: Renderer) -> Option<mpsc::UnboundedReceiver<PushBatch>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner.pusher.set(Pusher { render, tx }).ok()?;
        Some(rx)
    }

    /// The committed pushes go to the bridge (see [`push`]).
    pub(crate) fn forward_pushes(&self, workspace: Sid, pushes: Vec<Push>) {
        if let Some(p) = self.inner.pusher.get() {
            let _ = p.tx.send(PushBatch { workspace, pushes });
        }
    }

    /// A workspace by SID, whoever owns it (for the server's own work).
    pub(crate) fn workspace_by_sid(&self, sid: Sid) -> Result<WorkspaceHandle, HubError> {
        self.inner
            .workspaces
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&sid)
            .cloned()
            .ok_or(HubError::WorkspaceNotFound)
    }

    fn next_sid(&self, prefix: &str) -> Sid {
        self.inner
            .sids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_sid(prefix, now_ms())
    }

    /// Who HTTP Basic credentials name: an account SID and its auth token, or an API key SID
    /// and its secret (which acts as the key's account). Compares in constant time.
    pub fn authenticate(&self, user: &str, password: &str) -> Option<Principal> {
        let sid: Sid = user.parse().ok()?;
        if sid.prefix() == prefix::API_KEY {
            let (account, hash) = self.api_key_secret(sid)?;
            return hash.matches(password).then_some(Principal {
                account,
                api_key: Some(sid),
            });
        }
        let accounts = self
            .inner
            .accounts
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let account = accounts.get(&sid)?;
        constant_time_eq(account.auth_token.as_bytes(), password.as_bytes()).then_some(Principal {
            account: sid,
            api_key: None,
        })
    }

    /// An API key's account and secret hash (to verify what it signed).
    pub fn api_key_secret(&self, key: Sid) -> Option<(Sid, SecretHash)> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned()
    }

    /// Creates an API key of `account`; returns it with its secret, which is shown this once
    /// and kept only as a hash.
    pub async fn create_api_key(
        &self,
        account: Sid,
        friendly_name: String,
    ) -> Result<(ApiKey, String), HubError> {
        let secret = taskyard_auth::new_secret();
        let now = now_ms();
        let key = ApiKey {
            sid: self.next_sid(prefix::API_KEY),
            friendly_name,
            secret_hash: SecretHash::derive(&secret).to_stored(),
            date_created: now,
            date_updated: now,
        };
        let k = key.clone();
        self.change_account(account, move |a| a.api_keys.push(k))
            .await?;
        Ok((key, secret))
    }

    /// Renames an API key of `account`; `None` if it has no such key.
    pub async fn rename_api_key(
        &self,
        account: Sid,
        key: Sid,
        friendly_name: String,
    ) -> Result<Option<ApiKey>, HubError> {
        let now = now_ms();
        let changed = self
            .change_account(account, move |a| {
                let k = a.api_keys.iter_mut().find(|k| k.sid == key)?;
                k.friendly_name = friendly_name;
                k.date_updated = now;
                Some(k.clone())
            })
            .await?;
        Ok(changed.flatten())
    }

    /// Deletes an API key of `account`: from the commit on, neither its secret nor the
    /// tokens it signed are accepted. `false` if it has no such key.
    pub async fn delete_api_key(&self, account: Sid, key: Sid) -> Result<bool, HubError> {
        let removed = self
            .change_account(account, move |a| {
                let before = a.api_keys.len();
                a.api_keys.retain(|k| k.sid != key);
                a.api_keys.len() != before
            })
            .await?;
        Ok(removed.unwrap_or(false))
    }

    /// Changes an account with `f` and stores it; `None` if there is no such account.
    async fn change_account<R: Send + 'static>(
        &self,
        sid: Sid,
        f: impl FnOnce(&mut Account) -> R + Send + 'static,
    ) -> Result<Option<R>, HubError> {
        let _one_at_a_time = self.inner.account_changes.lock().await;
        // Other nodes may change the same account: do it in the database, row-locked.
        if self.inner.cluster.is_some() {
            return self.change_stored_account(sid, f).await.unwrap_or(Ok(None));
        }
        let Some(mut account) = self.account(sid) else {
            return Ok(None);
        };
        let out = f(&mut account);
        self.put_account(account).await?;
        Ok(Some(out))
    }

    pub fn account(&self, sid: Sid) -> Option<Account> {
        self.inner
            .accounts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&sid)
            .cloned()
    }

    /// Accounts owned by `owner` (its subaccounts), in creation order.
    pub fn subaccounts(&self, owner: Sid) -> Vec<Account> {
        let accounts = self
            .inner
            .accounts
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let mut subs: Vec<Account> = accounts
            .values()
            .filter(|a| a.owner_account_sid == Some(owner))
            .cloned()
            .collect();
        subs.sort_by_key(|a| a.sid);
        subs
    }

    /// Stores `account` (insert or replace) and makes it usable once committed.
    pub async fn put_account(&self, account: Account) -> Result<Account, HubError> {
        self.inner
            .writer
            .submit(Write::Account(account.clone()))
            .await
            .map_err(HubError::Store)?;
        self.cache_account(account.clone());
        Ok(account)
    }

    /// Makes `account`, as stored, the one this node authenticates with.
    pub(crate) fn cache_account(&self, account: Account) {
        let mut keys = self.inner.keys.write().unwrap_or_else(|p| p.into_inner());
        keys.retain(|_, (owner, _)| *owner != account.sid);
        keys.extend(key_index(std::slice::from_ref(&account)));
        self.inner
            .accounts
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(account.sid, account);
    }

    /// Creates a new account (a subaccount of `owner`, when given) with a random auth token.
    pub async fn create_account(
        &self,
        friendly_name: String,
        owner: Option<Sid>,
    ) -> Result<Account, HubError> {
        let now = now_ms();
        let account = Account {
            sid: self.next_sid(prefix::ACCOUNT),
            auth_token: random_token(),
            friendly_name,
            owner_account_sid: owner,
            date_created: now,
            date_updated: now,
            api_keys: Vec::new(),
        };
        self.put_account(account).await
    }

    /// Every account, in creation order.
    pub fn accounts(&self) -> Vec<Account> {
        let mut all: Vec<Account> = self
            .inner
            .accounts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        all.sort_by_key(|a| a.sid);
        all
    }

    /// The workspace `sid` if `account` owns it.
    pub fn workspace(&self, account: Sid, sid: Sid) -> Result<WorkspaceHandle, HubError> {
        let map = self
            .inner
            .workspaces
            .read()
            .unwrap_or_else(|p| p.into_inner());
        match map.get(&sid) {
            Some(h) if h.account_sid == account => Ok(h.clone()),
            _ => Err(HubError::WorkspaceNotFound),
        }
    }

    /// The workspaces `account` owns, in creation order.
    pub fn workspaces(&self, account: Sid) -> Vec<WorkspaceHandle> {
        let map = self
            .inner
            .workspaces
            .read()
            .unwrap_or_else(|p| p.into_inner());
        map.values()
            .filter(|h| h.account_sid == account)
            .cloned()
            .collect()
    }

    /// Creates a workspace, commits it, starts its actor, and returns `render` of it.
    pub async fn create_workspace<R>(
        &self,
        account: Sid,
        params: NewWorkspace,
        render: impl FnOnce(&Workspace) -> R,
    ) -> Result<R, HubError> {
        let (ws, applied) = {
            let mut sids = self.inner.sids.lock().unwrap_or_else(|p| p.into_inner());
            Workspace::create(account, params, now_ms(), &mut *sids)?
        };
        self.lease_new_workspace(ws.sid(), account).await?;
        self.inner
            .writer
            .submit_with_events(
                Write::Workspace {
                    workspace: ws.sid(),
                    changes: applied.changes,
                    events: Vec::new(),
                },
                applied.events,
            )
            .await
            .map_err(HubError::Store)?;
        let out = render(&ws);
        let handle = WorkspaceHandle::spawn(
            ws,
            self.inner.writer.clone(),
            None,
            self.inner.pusher.clone(),
        );
        self.inner
            .workspaces
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(handle.sid, handle);
        Ok(out)
    }

    /// Deletes a workspace and everything in it.
    pub async fn delete_workspace(&self, account: Sid, sid: Sid) -> Result<(), HubError> {
        let handle = self.workspace(account, sid)?;
        // Unlist first so no new request reaches it; requests already queued still run.
        self.inner
            .workspaces
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&sid);
        handle.apply(Command::DeleteWorkspace, |_, _| ()).await?;
        // Its lease row went with it.
        if let Some(c) = &self.inner.cluster {
            c.forget_lease(sid);
        }
        Ok(())
    }
}

/// Who a request's credentials name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub account: Sid,
    /// The API key used, when it was not the account's auth token.
    pub api_key: Option<Sid>,
}

/// The API keys of `accounts`, by key SID. A stored hash this build cannot read is left out
/// (the key then authenticates nothing) rather than stopping the server.
fn key_index(accounts: &[Account]) -> HashMap<Sid, (Sid, SecretHash)> {
    let mut keys = HashMap::new();
    for a in accounts {
        for k in &a.api_keys {
            match SecretHash::from_stored(&k.secret_hash) {
                Some(h) => {
                    keys.insert(k.sid, (a.sid, h));
                }
                None => {
                    tracing::error!(key = %k.sid, "unreadable API key hash; the key is disabled")
                }
            }
        }
    }
    keys
}

/// Events are kept this long (the Events resource's 30 days).
pub const EVENT_RETENTION_MS: Millis = 30 * 24 * 60 * 60 * 1000;

/// Deletes events past their retention, once an hour.
async fn purge_old_events(writer: Writer) {
    loop {
        let before_ms = now_ms() - EVENT_RETENTION_MS;
        if let Err(e) = writer.submit(Write::PurgeEvents { before_ms }).await {
            tracing::error!(error = %e, "cannot purge old events");
        }
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
}

#[cfg(test)]
mod tests;
