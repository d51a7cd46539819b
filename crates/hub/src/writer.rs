//! The store writer: one thread, group commit.
//!
//! Requests queue up on a channel while a commit is running; the next commit takes all of
//! them at once, in arrival order, in one transaction. Each request learns the outcome
//! through its own oneshot. Because every workspace actor submits in the order it applied its
//! commands, and the channel is FIFO, the database always receives a workspace's changes in
//! the order the engine made them.
//!
//! Events travel with the changes of the command that caused them. The writer renders them
//! (JSON, filter columns) on its own thread — keeping that work off the workspace actors —
//! commits them in the same transaction, and only then hands them on to the dispatcher
//! (callbacks, live streams): nothing leaves the server before it is durable.
//!
//! The same events are added up into the statistics buckets of `taskyard-stats` here too,
//! and the buckets they changed are written in the same transaction, so cumulative
//! statistics always agree with the events. A bucket is written once per transaction,
//! however many of its requests touched it: a new task changes eight buckets (its worker,
//! queue, workflow and workspace, by minute and by hour), and the three it shares with the
//! other tasks of a commit would otherwise be rewritten for each of them.
//!
//! On a node of a cluster, a commit may be refused for some workspaces only: their leases
//! moved to another node (see `taskyard_store::cluster`). Those requests fail, the
//! workspaces are reported lost, and the rest of the batch is committed again.
//!
//! If a commit fails otherwise, memory and disk no longer agree. Rather than keep serving state that
//! might vanish, the writer fails the waiting requests and stops the process (fail-stop); a
//! restart reloads exactly what was committed.

use std::collections::BTreeMap;
use std::sync::Arc;

use taskyard_engine::{Event, Rendered, Sid};
use taskyard_stats::{Agg, Key, Rollup};
use taskyard_store::{StatBucket, Store, StoreError, StoredEvent, Write};
use tokio::sync::{mpsc, oneshot};

use crate::push::Push;

/// At most this many writes go into one transaction, so one huge burst cannot delay its
/// first requests for long.
const MAX_BATCH: usize = 4096;

struct Request {
    write: Write,
    /// The engine's events of a `Write::Workspace`, rendered into it before the commit.
    events: Vec<Event>,
    /// What those events push to agents' live connections (see [`crate::push`]).
    pushes: Vec<Push>,
    done: oneshot::Sender<Result<(), Arc<StoreError>>>,
}

/// Events of one workspace, committed: the engine's records and their stored form.
pub struct Committed {
    pub workspace: Sid,
    pub events: Vec<Event>,
    pub stored: Vec<StoredEvent>,
    pub pushes: Vec<Push>,
}

/// The stored form of an event: its JSON and the columns the Events list filters on.
/// `rendered` carries what the event before it (of the same command) had rendered.
pub fn stored(e: &Event, rendered: &mut Rendered) -> StoredEvent {
    StoredEvent {
        sid: e.sid,
        event_type: e.event_type.as_str().to_string(),
        date_ms: e.at,
        task_sid: e.sid_of("task_sid"),
        worker_sid: e.sid_of("worker_sid"),
        reservation_sid: e.sid_of("reservation_sid"),
        task_queue_sid: e.sid_of("task_queue_sid"),
        workflow_sid: e.sid_of("workflow_sid"),
        task_channel_sid: e.sid_of("task_channel_sid"),
        callback: e.callback,
        json: e.to_json_with(rendered),
    }
}

/// Handle to the writer thread. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::UnboundedSender<Request>,
}

/// Resolves when the write is committed (or failed).
pub struct Done(oneshot::Receiver<Result<(), Arc<StoreError>>>);

impl std::future::Future for Done {
    type Output = Result<(), Arc<StoreError>>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|r| {
            r.unwrap_or_else(|_| {
                Err(Arc::new(StoreError::Corrupt(
                    "the store writer has stopped".into(),
                )))
            })
        })
    }
}

impl Writer {
    /// Starts the writer thread over `store`; committed events go to `outbox`.
    pub fn start(
        store: Box<dyn Store>,
        outbox: Option<mpsc::UnboundedSender<Committed>>,
    ) -> Writer {
        Writer::start_fenced(store, outbox, None)
    }

    /// [`Writer::start`] over a fenced store (a node of a cluster): each workspace whose
    /// writes were refused because its lease moved is sent to `lost`, and its requests fail
    /// with [`StoreError::Fenced`]; the other writes of the batch are committed.
    pub fn start_fenced(
        mut store: Box<dyn Store>,
        outbox: Option<mpsc::UnboundedSender<Committed>>,
        lost: Option<mpsc::UnboundedSender<Sid>>,
    ) -> Writer {
        let (tx, mut rx) = mpsc::unbounded_channel::<Request>();
        std::thread::Builder::new()
            .name("taskyard-writer".into())
            .spawn(move || {
                let mut batch: Vec<Request> = Vec::new();
                let mut rollup = Rollup::default();
                let mut evicted_at = crate::now_ms();
                while let Some(first) = rx.blocking_recv() {
                    batch.push(first);
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(r) => batch.push(r),
                            Err(_) => break,
                        }
                    }
                    let mut writes = Vec::with_capacity(batch.len());
                    let mut waiting = Vec::with_capacity(batch.len());
                    let mut events = Vec::new();
                    let mut touched: BTreeMap<Sid, Vec<Key>> = BTreeMap::new();
                    let mut unreadable: Option<StoreError> = None;
                    for r in batch.drain(..) {
                        let mut write = r.write;
                        if let Write::Workspace { workspace, changes, events: rows } = &mut write
                            && !r.events.is_empty()
                        {
                            // A dropped workspace keeps nothing, not even its last events.
                            let dropped = changes
                                .iter()
                                .any(|c| matches!(c, taskyard_engine::Change::DropWorkspace));
                            if dropped {
                                rollup.forget(*workspace);
                                touched.remove(workspace);
                            } else {
                                let mut rendered = Rendered::default();
                                *rows = r.events.iter().map(|e| stored(e, &mut rendered)).collect();
                                let ws = *workspace;
                                let buckets = rollup.add(ws, &r.events, |k| {
                                    match store.stat_bucket(ws, &k.scope.text(), k.span_ms, k.start_ms, k.channel) {
                                        Ok(body) => body.map(|b| Agg::from_json(&b)),
                                        Err(e) => {
                                            unreadable.get_or_insert(e);
                                            None
                                        }
                                    }
                                });
                                if !buckets.is_empty() {
                                    touched.entry(ws).or_default().extend(buckets);
                                }
                                events.push((writes.len(), *workspace, r.events, r.pushes));
                            }
                        }
                        writes.push(write);
                        waiting.push(Some(r.done));
                    }
                    let stats_at = writes.len();
                    for (ws, mut keys) in touched {
                        keys.sort();
                        keys.dedup();
                        let buckets = keys
                            .iter()
                            .map(|k| StatBucket {
                                scope: k.scope.text(),
                                span_ms: k.span_ms,
                                start_ms: k.start_ms,
                                channel: k.channel,
                                body: rollup.body(ws, k),
                            })
                            .collect();
                        writes.push(Write::Stats {
                            workspace: ws,
                            buckets,
                        });
                    }
                    // A bucket that could not be read back would be overwritten with only the
                    // new counts: fail the batch instead (and stop, as for any failed commit).
                    let mut kept = vec![true; writes.len()];
                    let started = std::time::Instant::now();
                    let mut result = match unreadable {
                        Some(e) => Err(Arc::new(e)),
                        None => store.commit(&writes).map_err(Arc::new),
                    };
                    // On a node of a cluster, writes of workspaces whose leases moved to another
                    // node are refused, and nothing of the commit was kept: answer those, drop
                    // the workspaces, and commit the rest again.
                    while let Err(e) = &result
                        && let StoreError::Fenced { workspaces } = &**e
                    {
                        let fenced = workspaces.clone();
                        for ws in &fenced {
                            rollup.forget(*ws);
                            if let Some(lost) = &lost {
                                let _ = lost.send(*ws);
                            }
                        }
                        for (i, w) in writes.iter().enumerate() {
                            if kept[i] && w.workspace().is_some_and(|ws| fenced.contains(&ws)) {
                                kept[i] = false;
                                if let Some(done) = waiting.get_mut(i).and_then(Option::take) {
                                    let _ = done.send(result.clone());
                                }
                            }
                        }
                        tracing::warn!(error = %e, "writes refused: another node owns these workspaces now");
                        let rest: Vec<Write> = writes
                            .iter()
                            .zip(&kept)
                            .filter(|(_, k)| **k)
                            .map(|(w, _)| w.clone())
                            .collect();
                        result = store.commit(&rest).map_err(Arc::new);
                    }
                    writes.truncate(stats_at);
                    if result.is_ok() && taskyard_metrics::enabled() {
                        count_commit(started.elapsed(), stats_at, &events, &kept);
                    }
                    if let Err(e) = &result {
                        tracing::error!(error = %e, "commit failed; stopping so that a restart reloads the committed state");
                    }
                    for done in waiting.into_iter().flatten() {
                        let _ = done.send(result.clone());
                    }
                    if result.is_ok()
                        && let Some(outbox) = &outbox
                    {
                        for (i, workspace, events, pushes) in events {
                            if !kept[i] {
                                continue;
                            }
                            let stored = match &mut writes[i] {
                                Write::Workspace { events, .. } => std::mem::take(events),
                                _ => Vec::new(),
                            };
                            let _ = outbox.send(Committed {
                                workspace,
                                events,
                                stored,
                                pushes,
                            });
                        }
                    }
                    // Past buckets get no new events: forget them, so memory holds only
                    // the current minutes and hours.
                    let now = crate::now_ms();
                    if now - evicted_at > 10_000 {
                        rollup.evict(now);
                        evicted_at = now;
                    }
                    if result.is_err() {
                        // Give the failed requests a moment to be answered, then stop.
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        std::process::exit(70);
                    }
                }
            })
            .expect("the writer thread can be started");
        Writer { tx }
    }

    /// Queues `write`; the returned future resolves once it is committed.
    pub fn submit(&self, write: Write) -> Done {
        self.submit_with_events(write, Vec::new())
    }

    /// Queues the changes and events of one command in one workspace.
    pub fn submit_with_events(&self, write: Write, events: Vec<Event>) -> Done {
        self.submit_applied(write, events, Vec::new())
    }

    /// Queues the changes and events of one command in one workspace, and the pushes they
    /// make, which are handed on with the events once committed.
    pub fn submit_applied(&self, write: Write, events: Vec<Event>, pushes: Vec<Push>) -> Done {
        let (done, rx) = oneshot::channel();
        if self
            .tx
            .send(Request {
                write,
                events,
                pushes,
                done,
            })
            .is_err()
        {
            tracing::error!("the store writer has stopped");
        }
        Done(rx)
    }
}

/// The commit's figures in the process's metrics: its time, its size, and its events by type
/// (what `tasks created`, `reservations accepted` and the like are counted from).
fn count_commit(
    took: std::time::Duration,
    writes: usize,
    events: &[(usize, Sid, Vec<Event>, Vec<Push>)],
    kept: &[bool],
) {
    let m = taskyard_metrics::metrics();
    m.commits.inc();
    m.commit_seconds.observe(took.as_secs_f64());
    m.commit_writes.observe(writes as f64);
    let mut n = 0usize;
    for (i, _, evs, _) in events {
        if !kept.get(*i).copied().unwrap_or(false) {
            continue;
        }
        n += evs.len();
        for e in evs {
            m.events
                .get_or_create(&taskyard_metrics::EventLabels {
                    r#type: e.event_type.as_str(),
                })
                .inc();
        }
    }
    m.commit_events.observe(n as f64);
}
