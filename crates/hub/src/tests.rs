use super::*;
use taskyard_engine::{CreateWorker, Kind};
use taskyard_store::sqlite::{Durability, SqliteStore};

fn open(dir: &std::path::Path) -> Hub {
    let store = SqliteStore::open(dir, Durability::Normal).expect("open store");
    Hub::start(Box::new(store)).expect("start hub")
}

/// An account "A" with one workspace "W".
async fn account_and_workspace(hub: &Hub) -> (Account, WorkspaceHandle) {
    let a = hub.create_account("A".into(), None).await.expect("a");
    let ws = hub
        .create_workspace(a.sid, new_ws("W"), |ws| ws.sid())
        .await
        .expect("ws");
    let handle = hub.workspace(a.sid, ws).expect("handle");
    (a, handle)
}

fn new_ws(name: &str) -> NewWorkspace {
    NewWorkspace {
        friendly_name: name.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn committed_changes_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = open(dir.path());
    let account = hub
        .create_account("Main".into(), None)
        .await
        .expect("account");
    let ws = hub
        .create_workspace(account.sid, new_ws("Support"), |ws| ws.sid())
        .await
        .expect("workspace");
    let handle = hub.workspace(account.sid, ws).expect("handle");
    let mut workers = Vec::new();
    for i in 0..20 {
        let cmd = Command::CreateWorker(CreateWorker {
            friendly_name: format!("w{i}"),
            activity_sid: None,
            attributes: Some(format!("{{\"n\": {i}}}")),
        });
        workers.push(
            handle
                .apply(cmd, |_, a| a.sid)
                .await
                .expect("create worker"),
        );
    }
    let before = handle.read(|ws| ws.all_rows()).await.expect("read");
    drop((hub, handle));

    let hub = open(dir.path());
    assert!(
        hub.authenticate(&account.sid.to_string(), &account.auth_token)
            .is_some()
    );
    let handle = hub.workspace(account.sid, ws).expect("workspace restored");
    let after = handle.read(|ws| ws.all_rows()).await.expect("read");
    assert_eq!(before, after, "the restored workspace is identical");
    let names = handle
        .read(|ws| {
            ws.workers()
                .values()
                .map(|w| w.friendly_name.to_string())
                .collect::<Vec<_>>()
        })
        .await
        .expect("read");
    assert_eq!(
        names,
        (0..20).map(|i| format!("w{i}")).collect::<Vec<_>>(),
        "creation order kept"
    );
    assert!(matches!(
        after[0],
        taskyard_engine::Change::Put {
            kind: Kind::Workspace,
            ..
        }
    ));
}

#[tokio::test]
async fn accounts_only_see_their_own_workspaces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = open(dir.path());
    let a = hub.create_account("A".into(), None).await.expect("a");
    let b = hub
        .create_account("B".into(), Some(a.sid))
        .await
        .expect("b");
    let ws = hub
        .create_workspace(a.sid, new_ws("A's"), |ws| ws.sid())
        .await
        .expect("ws");
    assert!(hub.workspace(a.sid, ws).is_ok());
    assert!(matches!(
        hub.workspace(b.sid, ws),
        Err(HubError::WorkspaceNotFound)
    ));
    assert!(hub.workspaces(b.sid).is_empty());
    assert_eq!(hub.subaccounts(a.sid).len(), 1);
    assert!(hub.authenticate(&b.sid.to_string(), "wrong").is_none());
    assert!(hub.authenticate("not a sid", &b.auth_token).is_none());
}

#[tokio::test]
async fn a_refused_command_changes_nothing_and_a_deleted_workspace_is_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = open(dir.path());
    let (a, handle) = account_and_workspace(&hub).await;
    let ws = handle.sid;
    let before = handle.read(|ws| ws.all_rows()).await.expect("read");
    let err = handle
        .apply(
            Command::CreateWorker(CreateWorker {
                friendly_name: "x".into(),
                activity_sid: None,
                attributes: Some("{bad".into()),
            }),
            |_, _| (),
        )
        .await
        .expect_err("bad attributes");
    assert!(matches!(
        err,
        HubError::Engine(EngineError::Invalid {
            param: "Attributes",
            ..
        })
    ));
    assert_eq!(before, handle.read(|ws| ws.all_rows()).await.expect("read"));

    hub.delete_workspace(a.sid, ws).await.expect("delete");
    assert!(hub.workspace(a.sid, ws).is_err());
    drop(hub);
    let hub = open(dir.path());
    assert!(hub.workspaces(a.sid).is_empty(), "deletion is durable");
}

/// A store whose commits wait while its gate is shut, so that a test can look at the hub
/// between a change and its commit. It notes the statistics buckets each commit writes, and
/// refuses, as a fenced PostgreSQL store does, any commit that writes the workspace in
/// `moved` (its lease went to another node).
struct Gated {
    inner: SqliteStore,
    open: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    buckets: Arc<Mutex<Vec<Vec<String>>>>,
    moved: Arc<Mutex<Option<Sid>>>,
}

type Gate = Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>;
type Buckets = Arc<Mutex<Vec<Vec<String>>>>;
type Moved = Arc<Mutex<Option<Sid>>>;

/// A hub over a [`Gated`] store: its gate and the buckets of each commit.
fn gated(dir: &std::path::Path) -> (Hub, Gate, Buckets) {
    let (hub, gate, buckets, _) = gated_fenced(dir);
    (hub, gate, buckets)
}

/// [`gated`], and the workspace its store treats as moved to another node.
fn gated_fenced(dir: &std::path::Path) -> (Hub, Gate, Buckets, Moved) {
    let gate: Gate = Arc::default();
    *gate.0.lock().expect("gate") = true;
    let buckets = Arc::new(Mutex::new(Vec::new()));
    let moved = Arc::new(Mutex::new(None));
    let store = Gated {
        inner: SqliteStore::open(dir, Durability::Normal).expect("open store"),
        open: gate.clone(),
        buckets: buckets.clone(),
        moved: moved.clone(),
    };
    (
        Hub::start(Box::new(store)).expect("start hub"),
        gate,
        buckets,
        moved,
    )
}

fn set_gate(gate: &Gate, open: bool) {
    *gate.0.lock().expect("gate") = open;
    gate.1.notify_all();
}

impl Store for Gated {
    fn load(&mut self) -> Result<taskyard_store::Snapshot, StoreError> {
        self.inner.load()
    }

    fn commit(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        let (open, changed) = &*self.open;
        let mut open = open.lock().expect("gate");
        while !*open {
            open = changed.wait(open).expect("gate");
        }
        drop(open);
        if let Some(ws) = *self.moved.lock().expect("moved")
            && writes.iter().any(|w| w.workspace() == Some(ws))
        {
            return Err(StoreError::Fenced {
                workspaces: vec![ws],
            });
        }
        let written = writes
            .iter()
            .filter_map(|w| match w {
                Write::Stats { workspace, buckets } => Some((workspace, buckets)),
                _ => None,
            })
            .flat_map(|(ws, buckets)| {
                buckets.iter().map(move |b| {
                    format!(
                        "{ws} {} {} {} {:?}",
                        b.scope, b.span_ms, b.start_ms, b.channel
                    )
                })
            })
            .collect();
        self.buckets.lock().expect("buckets").push(written);
        self.inner.commit(writes)
    }

    fn event_log(&self) -> Result<Box<dyn EventLog>, StoreError> {
        Store::event_log(&self.inner)
    }

    fn stat_bucket(
        &mut self,
        workspace: Sid,
        scope: &str,
        span_ms: i64,
        start_ms: i64,
        channel: Option<Sid>,
    ) -> Result<Option<String>, StoreError> {
        self.inner
            .stat_bucket(workspace, scope, span_ms, start_ms, channel)
    }
}

#[tokio::test]
async fn a_moved_workspace_s_writes_are_refused_and_the_rest_of_their_batch_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (hub, gate, _, moved) = gated_fenced(dir.path());
    let (account, stays) = account_and_workspace(&hub).await;
    let gone = hub
        .create_workspace(account.sid, new_ws("moves"), |ws| ws.sid())
        .await
        .expect("ws");
    let gone = hub.workspace(account.sid, gone).expect("handle");
    let worker = |name: &str| {
        Command::CreateWorker(CreateWorker {
            friendly_name: name.into(),
            activity_sid: None,
            attributes: None,
        })
    };
    // A first commit holds the writer at the shut gate, so that both changes queue behind
    // it and go into the next commit together, which the store refuses for `gone` only.
    set_gate(&gate, false);
    let first = tokio::spawn({
        let hub = hub.clone();
        async move { hub.create_account("holds the writer".into(), None).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let kept = tokio::spawn({
        let stays = stays.clone();
        let cmd = worker("kept");
        async move { stays.apply(cmd, |_, a| a.sid).await }
    });
    let refused = tokio::spawn({
        let gone = gone.clone();
        let cmd = worker("refused");
        async move { gone.apply(cmd, |_, a| a.sid).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    *moved.lock().expect("moved") = Some(gone.sid);
    set_gate(&gate, true);
    first.await.expect("join").expect("the first commit");
    match refused.await.expect("join") {
        Err(HubError::Moved(ws)) => assert_eq!(ws, gone.sid),
        other => panic!("the moved workspace's change was not refused: {other:?}"),
    }
    let kept = kept
        .await
        .expect("join")
        .expect("the other workspace's change commits");
    drop(hub);
    let hub = open(dir.path());
    let stays = hub.workspace(account.sid, stays.sid).expect("stays");
    assert!(
        stays
            .read(move |ws| ws.workers().contains_key(&kept))
            .await
            .expect("read"),
        "the rest of the batch is durable"
    );
    let gone = hub.workspace(account.sid, gone.sid).expect("gone");
    assert!(
        gone.read(|ws| ws.workers().is_empty()).await.expect("read"),
        "nothing of the refused change was stored"
    );
}

#[tokio::test]
async fn a_read_answers_only_once_what_it_shows_is_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (hub, gate, _) = gated(dir.path());
    let shut = |open: bool| set_gate(&gate, open);
    let (_, handle) = account_and_workspace(&hub).await;

    shut(false);
    let mut create = Box::pin(handle.apply(
        Command::CreateWorker(CreateWorker {
            friendly_name: "held back".into(),
            activity_sid: None,
            attributes: None,
        }),
        |_, a| a.sid,
    ));
    // Polled, the command reaches the actor, which applies it; its commit is held back.
    let wait = std::time::Duration::from_millis(200);
    assert!(tokio::time::timeout(wait, &mut create).await.is_err());
    let mut read = Box::pin(handle.read(|ws| ws.workers().len()));
    assert!(
        tokio::time::timeout(wait, &mut read).await.is_err(),
        "a read must not show a worker whose creation is not committed yet"
    );

    shut(true);
    assert_eq!(read.await.expect("read"), 1);
    create.await.expect("created");
}

#[tokio::test]
async fn a_commit_writes_each_statistics_bucket_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (hub, gate, buckets) = gated(dir.path());
    let (_, handle) = account_and_workspace(&hub).await;
    let mut workers = Vec::new();
    for name in ["a", "b"] {
        let cmd = Command::CreateWorker(CreateWorker {
            friendly_name: name.into(),
            activity_sid: None,
            attributes: None,
        });
        workers.push(handle.apply(cmd, |_, a| a.sid).await.expect("worker"));
    }
    let activities: Vec<Sid> = handle
        .read(|ws| ws.activities().keys().copied().collect())
        .await
        .expect("activities");
    let update = |worker: Sid, activity: Sid| {
        Box::pin(handle.apply(
            Command::UpdateWorker(taskyard_engine::UpdateWorker {
                sid: worker,
                if_match: None,
                activity_sid: Some(activity),
                attributes: None,
                friendly_name: None,
                reject_pending_reservations: None,
            }),
            |_, _| (),
        ))
    };

    // The writer takes the first change and is held in its commit; the four behind it,
    // each ending an activity period of a worker, queue up and are committed together.
    set_gate(&gate, false);
    let wait = std::time::Duration::from_millis(100);
    let mut first = update(workers[0], activities[1]);
    assert!(tokio::time::timeout(wait, &mut first).await.is_err());
    let mut rest = Vec::new();
    for (i, activity) in [
        (0, activities[2]),
        (1, activities[1]),
        (0, activities[0]),
        (1, activities[2]),
    ] {
        let mut u = update(workers[i], activity);
        assert!(tokio::time::timeout(wait, &mut u).await.is_err());
        rest.push(u);
    }
    buckets.lock().expect("buckets").clear();
    set_gate(&gate, true);
    first.await.expect("first");
    for u in rest {
        u.await.expect("update");
    }

    let commits = buckets.lock().expect("buckets").clone();
    let batch = commits
        .iter()
        .find(|c| {
            workers
                .iter()
                .all(|w| c.iter().any(|b| b.contains(&w.to_string())))
        })
        .expect("the four changes were committed together");
    for c in &commits {
        let mut once = c.clone();
        once.sort();
        once.dedup();
        assert_eq!(
            once.len(),
            c.len(),
            "a bucket written twice in one commit: {c:?}"
        );
    }
    // All workers' activity durations: one bucket per span, shared by the four changes.
    assert_eq!(batch.iter().filter(|b| b.contains(" workers ")).count(), 2);
}

/// A renderer that pushes one message per event about a worker, naming the event type.
fn test_renderer() -> Renderer {
    Arc::new(|_ws, events, watched, out| {
        for e in events {
            if let Some(w) = e.worker.as_ref().filter(|w| watched(w.sid)) {
                out.push(Push {
                    worker: w.sid,
                    event: e.sid,
                    event_type: e.event_type,
                    subject: None,
                    payload: e.event_type.as_str().to_string(),
                });
            }
        }
    })
}

#[tokio::test]
async fn pushes_are_made_for_watched_workers_and_leave_only_after_the_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (hub, gate, _) = gated(dir.path());
    let mut pushes = hub.push_to(test_renderer()).expect("first renderer");
    assert!(
        hub.push_to(test_renderer()).is_none(),
        "one renderer per hub"
    );
    let (_, handle) = account_and_workspace(&hub).await;
    let worker = |name: &str| {
        Command::CreateWorker(CreateWorker {
            friendly_name: name.into(),
            activity_sid: None,
            attributes: None,
        })
    };
    let alice = handle
        .apply(worker("alice"), |_, a| a.sid)
        .await
        .expect("alice");
    let bob = handle
        .apply(worker("bob"), |_, a| a.sid)
        .await
        .expect("bob");
    fn attributes(sid: Sid, x: u32) -> Command {
        Command::UpdateWorker(taskyard_engine::UpdateWorker {
            sid,
            if_match: None,
            activity_sid: None,
            attributes: Some(format!("{{\"x\":{x}}}")),
            friendly_name: None,
            reject_pending_reservations: None,
        })
    }
    // Nobody watches: nothing is rendered.
    handle
        .apply(attributes(alice, 1), |_, _| ())
        .await
        .expect("update");
    let watch = handle.watch(alice);
    let ((), upto) = handle.read_watermarked(|_| ()).await.expect("read");

    set_gate(&gate, false);
    let mut update = Box::pin(handle.apply(attributes(alice, 2), |_, _| ()));
    let wait = std::time::Duration::from_millis(200);
    assert!(tokio::time::timeout(wait, &mut update).await.is_err());
    let h = handle.clone();
    let for_bob = tokio::spawn(async move { h.apply(attributes(bob, 3), |_, _| ()).await });
    assert!(
        tokio::time::timeout(wait, pushes.recv()).await.is_err(),
        "nothing may leave before its commit"
    );
    set_gate(&gate, true);
    update.await.expect("update");
    for_bob.await.expect("joined").expect("update bob");
    let batch = tokio::time::timeout(std::time::Duration::from_secs(5), pushes.recv())
        .await
        .expect("pushed after the commit")
        .expect("batch");
    assert_eq!(batch.workspace, handle.sid);
    assert_eq!(batch.pushes.len(), 1, "{:?}", batch.pushes);
    let p = &batch.pushes[0];
    assert_eq!(
        (p.worker, p.payload.as_str()),
        (alice, "worker.attributes.update")
    );
    assert!(
        upto.is_some_and(|u| p.event > u),
        "a change after a read is marked after it"
    );
    drop(watch);
    handle
        .apply(attributes(alice, 4), |_, _| ())
        .await
        .expect("update");
    let ((), later) = handle.read_watermarked(|_| ()).await.expect("read");
    assert!(later.is_some_and(|l| l > p.event));
    assert!(
        tokio::time::timeout(wait, pushes.recv()).await.is_err(),
        "no pushes once the worker is no longer watched (bob never was)"
    );
}
