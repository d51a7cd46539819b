//! The embedded default: one SQLite database file in the data directory.
//!
//! WAL journal, one writer connection, `synchronous=FULL` by default so that a committed
//! transaction survives power loss, not only a process crash (`NORMAL` is offered for those
//! who prefer speed to that guarantee). Schema changes are numbered migrations tracked in
//! `PRAGMA user_version`.
//!
//! Events are read through [`SqliteEventLog`], which has read-only connections of its own:
//! WAL lets them read a committed snapshot while the writer commits, so the Events resource
//! and the callback deliverers neither wait for the writer nor make it wait.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, Transaction, params, params_from_iter,
};
use taskyard_engine::{Account, Change, Kind, Sid};

use crate::codec::{Packer, SAMPLES, Unpacker};
use crate::group;
use crate::{
    EventLog, EventQuery, Snapshot, StatBucket, Store, StoreError, StoredEvent, StoredWorkspace,
    Write, channel_text, parse_sid, sid_bound,
};

/// How hard a commit works to reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// fsync the WAL on every commit: survives power loss.
    #[default]
    Full,
    /// fsync only at checkpoints: survives a process crash, may lose the last commits on
    /// power loss.
    Normal,
}

/// Migrations, in order; `PRAGMA user_version` counts how many have run.
const MIGRATIONS: &[&str] = &[
    // 1: accounts and generic resource rows.
    "CREATE TABLE accounts (
        sid  TEXT PRIMARY KEY,
        body TEXT NOT NULL
    );
    CREATE TABLE resources (
        workspace_sid TEXT NOT NULL,
        kind          TEXT NOT NULL,
        sid           TEXT NOT NULL,
        body          TEXT NOT NULL,
        PRIMARY KEY (workspace_sid, kind, sid)
    ) WITHOUT ROWID;",
    // 2: TaskRouter Events and the event-callback delivery cursors.
    //
    // Events are inserted by the ten thousand per second, so every index is one more B-tree
    // insert on the hot path and each one has to earn its place:
    // - `events` keeps its rowid: rows are appended in rowid order at the right edge of the
    //   table, and the bodies (the bulk of the bytes) are not copied into any index, as they
    //   would be in a WITHOUT ROWID table keyed by SID.
    // - `events_by_sid` serves fetch, paging and time windows alike, because SIDs sort by
    //   creation time.
    // - The task, worker and reservation filters pick a handful of events out of a long
    //   history, so they get partial indexes (events without that SID cost nothing), ending
    //   in `sid` so that a page comes out in order without a sort. Queue, workflow, channel
    //   and type filters are checked on the rows of the window instead.
    // - `events_outbox` holds only the events still meant for the callback URL.
    "CREATE TABLE events (
        workspace_sid    TEXT NOT NULL,
        sid              TEXT NOT NULL,
        event_type       TEXT NOT NULL,
        date_ms          INTEGER NOT NULL,
        task_sid         TEXT,
        worker_sid       TEXT,
        reservation_sid  TEXT,
        task_queue_sid   TEXT,
        workflow_sid     TEXT,
        task_channel_sid TEXT,
        callback         INTEGER NOT NULL,
        body             TEXT NOT NULL
    );
    CREATE UNIQUE INDEX events_by_sid ON events (workspace_sid, sid);
    CREATE INDEX events_by_task ON events (workspace_sid, task_sid, sid)
        WHERE task_sid IS NOT NULL;
    CREATE INDEX events_by_worker ON events (workspace_sid, worker_sid, sid)
        WHERE worker_sid IS NOT NULL;
    CREATE INDEX events_by_reservation ON events (workspace_sid, reservation_sid, sid)
        WHERE reservation_sid IS NOT NULL;
    CREATE INDEX events_outbox ON events (workspace_sid, sid) WHERE callback = 1;
    CREATE TABLE event_cursors (
        workspace_sid TEXT PRIMARY KEY,
        sid           TEXT NOT NULL
    ) WITHOUT ROWID;",
    // 3: cumulative statistics buckets (one row per workspace, scope, span, start and task
    // channel; '' for no channel). Keyed so that a window of one scope is one range.
    "CREATE TABLE stat_buckets (
        workspace_sid TEXT NOT NULL,
        scope         TEXT NOT NULL,
        span_ms       INTEGER NOT NULL,
        start_ms      INTEGER NOT NULL,
        channel       TEXT NOT NULL,
        body          TEXT NOT NULL,
        PRIMARY KEY (workspace_sid, scope, span_ms, start_ms, channel)
    ) WITHOUT ROWID;",
    // 4: the zstd dictionaries of compressed event bodies (see `codec`).
    "CREATE TABLE event_dicts (
        id   INTEGER PRIMARY KEY,
        body BLOB NOT NULL
    );",
    // 5: the worker filter's index, written in sorted batches.
    //
    // Task and reservation SIDs sort by creation time, so their index entries land near the
    // right edge of their indexes. Worker SIDs do not: with a thousand busy workers, nearly
    // every worker event dirtied an index page of its own (40 of the ~126 pages a commit of
    // ~33 tasks wrote). So a worker event's entry is first appended to `event_workers_new`
    // (rows in arrival order: an append), and once that holds `MERGE_WORKERS_AT` entries
    // the writer moves them into `event_workers` in key order, in the same transaction as a
    // commit, where they fill a page or two per worker instead of a page per entry. Reads
    // consult both tables in one snapshot, so an entry is always found in one or both
    // (a merge spans several commits, see `MERGE_WORKERS_CHUNK`).
    "DROP INDEX events_by_worker;
    CREATE TABLE event_workers (
        workspace_sid TEXT NOT NULL,
        worker_sid    TEXT NOT NULL,
        sid           TEXT NOT NULL,
        PRIMARY KEY (workspace_sid, worker_sid, sid)
    ) WITHOUT ROWID;
    CREATE TABLE event_workers_new (
        workspace_sid TEXT NOT NULL,
        worker_sid    TEXT NOT NULL,
        sid           TEXT NOT NULL
    );
    INSERT INTO event_workers (workspace_sid, worker_sid, sid)
        SELECT workspace_sid, worker_sid, sid FROM events WHERE worker_sid IS NOT NULL
        ORDER BY 1, 2, 3;",
    // 6: event groups (see `group`): a row whose `last_sid` is set holds the events of one
    // command from its `sid` to its `last_sid` in its body; its task, worker and reservation
    // columns are those of all its events, its other filter columns are its first event's
    // and are not used. Rows without `last_sid` are one event each, as before.
    "ALTER TABLE events ADD COLUMN last_sid TEXT;",
];

/// Staged worker index entries (migration 5) at which the writer starts moving them into
/// `event_workers`. Larger batches touch fewer pages per entry; the staged rows are scanned
/// by every worker-filtered read.
const MERGE_WORKERS_AT: usize = 16_384;

/// Staged entries a merge moves per commit, about: once `MERGE_WORKERS_AT` are staged, the
/// writer splits their keys into ranges of this many (by a sample) and moves one range per
/// commit, then the rest. Each worker's entries still move together, so the pages written
/// are the same as in one step; but with 10,000 workers each entry lands on a leaf page of
/// its own, and moving all 16k in one commit wrote ≈ 40 MiB of WAL there, a 40–60 ms stall
/// for every request waiting on it.
const MERGE_WORKERS_CHUNK: usize = 1_024;

/// Staged entries sampled to split a merge's keys into ranges.
const MERGE_SAMPLES: usize = 256;

/// The newest staged entry's rowid: a merge covers the entries up to it, key range by key
/// range, then the rest. Rowids only grow while the table has rows.
const MERGE_LAST_SQL: &str = "SELECT max(rowid) FROM event_workers_new";
/// Every `?2`th of the staged keys up to rowid `?1`.
const MERGE_SAMPLE_SQL: &str = "SELECT workspace_sid, worker_sid FROM event_workers_new
    WHERE rowid <= ?1 AND rowid % ?2 = 0";
/// Copies the staged entries up to rowid `?1` whose keys lie in (`?2 ?3`, `?4 ?5`] into
/// place, in key order. They stay staged too until the last step, so that a step writes
/// only `event_workers` pages: reads ask whether a SID is `IN` either table, and an entry
/// in both counts once. A restart in the middle merges again, hence `OR IGNORE`.
const MERGE_RANGE_SQL: &str = "INSERT OR IGNORE INTO event_workers (workspace_sid, worker_sid, sid)
    SELECT workspace_sid, worker_sid, sid FROM event_workers_new
    WHERE rowid <= ?1 AND (workspace_sid, worker_sid) > (?2, ?3)
        AND (workspace_sid, worker_sid) <= (?4, ?5)
    ORDER BY 1, 2, 3";
/// A merge's last step: the entries above key `?2 ?3`, and those staged since it began
/// (above rowid `?1`), into place; then the staging table is emptied.
const MERGE_REST_SQL: &str = "INSERT OR IGNORE INTO event_workers (workspace_sid, worker_sid, sid)
    SELECT workspace_sid, worker_sid, sid FROM event_workers_new
    WHERE rowid > ?1 OR (workspace_sid, worker_sid) > (?2, ?3)
    ORDER BY 1, 2, 3";
const UNSTAGE_ALL_SQL: &str = "DELETE FROM event_workers_new";

/// A merge of the staged worker index entries under way (see [`MERGE_WORKERS_CHUNK`]).
#[derive(Debug)]
struct WorkerMerge {
    /// The newest entry staged when it began.
    upto: i64,
    /// The upper ends of the key ranges still to move, last first.
    bounds: Vec<(String, String)>,
    /// The upper end of the last range moved: `("", "")`, below every key, at first.
    done: (String, String),
}
/// `SELECT`s the columns [`read_event`] expects, `FROM events`, then `$rest`.
macro_rules! select_events {
    ($rest:literal) => {
        concat!(
            "SELECT sid, event_type, date_ms, task_sid, worker_sid, reservation_sid, ",
            "task_queue_sid, workflow_sid, task_channel_sid, callback, body, last_sid ",
            "FROM events ",
            $rest
        )
    };
}

/// The row holding event `?2`: the last row that starts at or before it.
const FETCH_SQL: &str =
    select_events!("WHERE workspace_sid = ?1 AND sid <= ?2 ORDER BY sid DESC LIMIT 1");

/// The first SID of the row holding `$sid` (a placeholder) or, if no row starts at or
/// before it, `$sid` itself: where a scan must start to see every event from `$sid` on,
/// since a group that starts before it may hold events after it.
macro_rules! row_start {
    ($sid:literal) => {
        concat!(
            "coalesce((SELECT sid FROM events WHERE workspace_sid = ?1 AND sid <= ",
            $sid,
            " ORDER BY sid DESC LIMIT 1), ",
            $sid,
            ")"
        )
    };
}

/// `callback = 1` is spelled exactly as in `events_outbox`, so that the partial index
/// applies. `?2` is the cursor, or '' (every SID is greater). Rows are read until enough
/// events after the cursor are found.
const OUTBOX_SQL: &str = concat!(
    select_events!("WHERE workspace_sid = ?1 AND callback = 1 AND sid >= "),
    row_start!("?2"),
    " ORDER BY sid"
);

/// One index probe per workspace; a GROUP BY over the events would read them all.
const NEWEST_SQL: &str =
    "SELECT coalesce(last_sid, sid) FROM events WHERE workspace_sid = ?1 ORDER BY sid DESC LIMIT 1";

/// The workspaces that have events, by skipping through `events_by_sid` one workspace at a
/// time: SELECT DISTINCT would read every entry.
const WORKSPACES_WITH_EVENTS_SQL: &str = "WITH RECURSIVE ws(sid) AS (
        SELECT min(workspace_sid) FROM events
        UNION ALL
        SELECT (SELECT min(workspace_sid) FROM events WHERE workspace_sid > ws.sid)
        FROM ws WHERE ws.sid IS NOT NULL
    )
    SELECT sid FROM ws WHERE sid IS NOT NULL";

/// `?2` is the smallest SID of `before_ms`, `?3` is `before_ms`. A group goes once all its
/// events are past.
const PURGE_SQL: &str = "DELETE FROM events
    WHERE workspace_sid = ?1 AND sid < ?2 AND coalesce(last_sid, sid) < ?2 AND date_ms < ?3";

/// The first SID of a workspace's oldest row left.
const OLDEST_SQL: &str = "SELECT sid FROM events WHERE workspace_sid = ?1 ORDER BY sid LIMIT 1";

/// The first worker after `?2` in a workspace's worker index.
const NEXT_WORKER_SQL: &str = "SELECT worker_sid FROM event_workers
    WHERE workspace_sid = ?1 AND worker_sid > ?2 ORDER BY worker_sid LIMIT 1";

/// One worker's index entries below the SID `?3`.
const PURGE_WORKER_SQL: &str =
    "DELETE FROM event_workers WHERE workspace_sid = ?1 AND worker_sid = ?2 AND sid < ?3";

pub struct SqliteStore {
    /// First, so that it is dropped first: its connection closes before the writer's, and
    /// the writer's, closing last, checkpoints and removes the WAL.
    _checkpointer: Checkpointer,
    conn: Connection,
    /// The database file, for [`SqliteStore::event_log`]'s own connections.
    path: PathBuf,
    /// The event-body compressor (see `codec`).
    packer: Packer,
    /// Rows in `event_workers_new` as of the last commit (see migration 5); an upper bound
    /// after a purge or a dropped workspace, which only makes the next merge come early.
    staged_workers: usize,
    /// [`MERGE_WORKERS_AT`], lower in tests.
    merge_workers_at: usize,
    /// [`MERGE_WORKERS_CHUNK`], lower in tests.
    merge_workers_chunk: usize,
    /// The merge under way, if any, as of the last commit.
    merging_workers: Option<WorkerMerge>,
}

/// How often the checkpoint thread copies the WAL into the database. A page rewritten by
/// many commits in between (the right edges of the indexes, the statistics buckets) is
/// copied once: at a second rather than 250 ms, sustained task creation ran ~6% faster, and
/// the callback latency at 1,000 tasks/s stayed as it was (p99 6 ms).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// WAL pages (4 KiB) at which the writer checkpoints itself and the WAL starts over.
const WRITER_CHECKPOINT_PAGES: i64 = 8192;
/// A WAL that grew past this under a burst is cut back to it once it starts over.
const WAL_KEEP_BYTES: i64 = 64 << 20;

/// The thread that checkpoints the WAL beside the writer, on a connection of its own.
///
/// It runs PASSIVE checkpoints, which never wait for the writer nor make it wait: they copy
/// what is committed while commits go on. Under a steady stream of commits such a checkpoint
/// never catches up with the WAL's end, and only a checkpoint that does lets the WAL start
/// over; that last, short step is the writer's own (see `WRITER_CHECKPOINT_PAGES`).
struct Checkpointer {
    /// Dropping it ends the thread.
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Checkpointer {
    fn start(path: &Path, sync: &str) -> Result<Checkpointer, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "synchronous", sync)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("taskyard-checkpoint".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    // A failed checkpoint loses nothing (the WAL keeps every commit); the
                    // next round tries again.
                    let _ = checkpoint(&conn);
                }
            })
            .map_err(|source| StoreError::Thread {
                name: "checkpoint",
                source,
            })?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// One round of [`Checkpointer`] (the pragma's answer, frame counts, is not needed).
fn checkpoint(conn: &Connection) -> Result<(), StoreError> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
    Ok(())
}

/// Runs the migrations `conn` has not had yet.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if version > supported {
        return Err(StoreError::SchemaTooNew {
            found: version,
            supported,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) `taskyard.db` in `dir`.
    pub fn open(dir: &Path, durability: Durability) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join("taskyard.db");
        let mut conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let sync = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        // Checkpoints (copying the WAL's pages into the database file and syncing it) are
        // mostly done by the `Checkpointer` thread beside the writer: one on the writer took
        // 15–40 ms, a stall for every request waiting for a commit. But only a checkpoint
        // that no commit overtakes lets the WAL start over from its beginning, so the writer
        // still checkpoints once the WAL holds `WRITER_CHECKPOINT_PAGES`; by then the thread
        // has copied all but the last moment's pages, and the writer's share is short.
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)?;
        // A WAL that grew under a long burst is cut back to this size once it restarts.
        conn.pragma_update(None, "journal_size_limit", WAL_KEEP_BYTES)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        migrate(&mut conn)?;
        let packer = Packer::open(&conn, SAMPLES, true)?;
        let checkpointer = Checkpointer::start(&path, sync)?;
        let staged: i64 =
            conn.query_row("SELECT count(*) FROM event_workers_new", [], |r| r.get(0))?;
        let staged = usize::try_from(staged).unwrap_or_default();
        Ok(SqliteStore {
            conn,
            path,
            packer,
            staged_workers: staged,
            merge_workers_at: MERGE_WORKERS_AT,
            merge_workers_chunk: MERGE_WORKERS_CHUNK,
            merging_workers: None,
            _checkpointer: checkpointer,
        })
    }

    /// Trains the event-body dictionary after `samples` events instead of [`SAMPLES`]
    /// (0: never), so that tests reach compressed bodies quickly; in the foreground unless
    /// `background`, so that they know which events are packed.
    pub fn train_after(&mut self, samples: usize, background: bool) -> Result<(), StoreError> {
        self.packer = Packer::open(&self.conn, samples, background)?;
        Ok(())
    }

    /// A reader of the events with read-only connections of its own (see the module docs).
    /// It stays usable after `self` is moved to the writer thread or dropped.
    pub fn event_log(&self) -> Result<SqliteEventLog, StoreError> {
        let log = SqliteEventLog {
            path: self.path.clone(),
            idle: Mutex::new(Vec::new()),
        };
        // Open the first connection now, so that a database the reader cannot open is
        // reported at start-up rather than by the first request.
        log.with_connection(|_| Ok(()))?;
        Ok(log)
    }
}

impl SqliteStore {
    /// [`Store::commit`]'s one transaction; the rows it leaves in `event_workers_new`, and
    /// the merge of them under way.
    fn write_all(&mut self, writes: &[Write]) -> Result<(usize, Option<WorkerMerge>), StoreError> {
        let tx = self.conn.transaction()?;
        self.packer.observe(
            &tx,
            writes
                .iter()
                .flat_map(|w| match w {
                    Write::Workspace { events, .. } => events.as_slice(),
                    _ => &[],
                })
                .map(|e| e.json.as_str()),
        )?;
        let mut staged = self.staged_workers;
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO resources (workspace_sid, kind, sid, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (workspace_sid, kind, sid) DO UPDATE SET body = excluded.body",
            )?;
            let mut delete = tx.prepare_cached(
                "DELETE FROM resources WHERE workspace_sid = ?1 AND kind = ?2 AND sid = ?3",
            )?;
            let mut account = tx.prepare_cached(
                "INSERT INTO accounts (sid, body) VALUES (?1, ?2)
                 ON CONFLICT (sid) DO UPDATE SET body = excluded.body",
            )?;
            // A plain INSERT: an event SID stored twice is a bug upstream and must not be
            // hidden, so the UNIQUE index fails the commit.
            let mut insert_event = tx.prepare_cached(
                "INSERT INTO events (workspace_sid, sid, event_type, date_ms, task_sid,
                     worker_sid, reservation_sid, task_queue_sid, workflow_sid,
                     task_channel_sid, callback, body, last_sid)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?;
            let mut stage_worker = tx.prepare_cached(
                "INSERT INTO event_workers_new (workspace_sid, worker_sid, sid)
                 VALUES (?1, ?2, ?3)",
            )?;
            for write in writes {
                match write {
                    Write::Account(a) => {
                        let body = serde_json::to_string(a)
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                        account.execute(params![a.sid.to_string(), body])?;
                    }
                    Write::Workspace {
                        workspace,
                        changes,
                        events,
                    } => {
                        let ws = workspace.to_string();
                        for change in changes {
                            match change {
                                Change::Put { kind, sid, body } => {
                                    upsert.execute(params![
                                        ws,
                                        kind.as_str(),
                                        sid.to_string(),
                                        body.to_json()
                                    ])?;
                                }
                                Change::Delete { kind, sid } => {
                                    delete.execute(params![ws, kind.as_str(), sid.to_string()])?;
                                }
                                Change::DropWorkspace => drop_workspace(&tx, &ws)?,
                            }
                        }
                        for events in group::split(events) {
                            let (e, last) = match events {
                                [one] => (one, None),
                                [first, .., last] => (first, Some(last)),
                                [] => continue,
                            };
                            let sid = e.sid.to_string();
                            let text = |s: Option<Sid>| s.map(|s| s.to_string());
                            let [task, worker, reservation] = group::about(events);
                            if let Some(worker) = worker {
                                stage_worker.execute(params![ws, worker.to_string(), sid])?;
                                staged += 1;
                            }
                            let body = last.is_some().then(|| group::encode(events));
                            // A group's own filter columns are its first event's, unused.
                            insert_event.execute(params![
                                ws,
                                sid,
                                e.event_type,
                                e.date_ms,
                                text(task),
                                text(worker),
                                text(reservation),
                                text(e.task_queue_sid),
                                text(e.workflow_sid),
                                text(e.task_channel_sid),
                                events.iter().any(|e| e.callback),
                                self.packer.pack(body.as_deref().unwrap_or(&e.json))?,
                                last.map(|l| l.sid.to_string()),
                            ])?;
                        }
                    }
                    Write::EventCursor {
                        workspace,
                        delivered,
                    } => {
                        tx.prepare_cached(
                            "INSERT INTO event_cursors (workspace_sid, sid) VALUES (?1, ?2)
                             ON CONFLICT (workspace_sid) DO UPDATE SET sid = excluded.sid",
                        )?
                        .execute(params![workspace.to_string(), delivered.to_string()])?;
                    }
                    Write::PurgeEvents { before_ms } => {
                        purge_events(&tx, *before_ms)?;
                        // Buckets that ended before the retention limit go too.
                        tx.prepare_cached(
                            "DELETE FROM stat_buckets WHERE start_ms + span_ms <= ?1",
                        )?
                        .execute([before_ms])?;
                    }
                    Write::Stats { workspace, buckets } => {
                        let mut put = tx.prepare_cached(
                            "INSERT INTO stat_buckets (workspace_sid, scope, span_ms, start_ms, channel, body)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                             ON CONFLICT (workspace_sid, scope, span_ms, start_ms, channel)
                             DO UPDATE SET body = excluded.body",
                        )?;
                        let ws = workspace.to_string();
                        for b in buckets {
                            put.execute(params![
                                ws,
                                b.scope,
                                b.span_ms,
                                b.start_ms,
                                channel_text(b.channel),
                                b.body
                            ])?;
                        }
                    }
                }
            }
        }
        let mut merge = self.merging_workers.take();
        if merge.is_none() && staged >= self.merge_workers_at {
            merge = Some(plan_merge(&tx, staged, self.merge_workers_chunk)?);
        }
        if let Some(mut m) = merge.take() {
            let done = std::mem::take(&mut m.done);
            match m.bounds.pop() {
                Some(hi) => {
                    tx.prepare_cached(MERGE_RANGE_SQL)?
                        .execute(params![m.upto, done.0, done.1, hi.0, hi.1])?;
                    m.done = hi;
                    merge = Some(m);
                }
                None => {
                    tx.prepare_cached(MERGE_REST_SQL)?
                        .execute(params![m.upto, done.0, done.1])?;
                    tx.prepare_cached(UNSTAGE_ALL_SQL)?.execute([])?;
                    staged = 0;
                }
            }
        }
        tx.commit()?;
        Ok((staged, merge))
    }
}

/// Splits the keys of the `staged` entries into ranges of about
/// [`MERGE_WORKERS_CHUNK`] entries, by a sample of them.
fn plan_merge(
    tx: &Transaction<'_>,
    staged: usize,
    chunk: usize,
) -> Result<WorkerMerge, StoreError> {
    let upto: Option<i64> = tx.query_row(MERGE_LAST_SQL, [], |r| r.get(0))?;
    let upto = upto.unwrap_or(0);
    let stride = (staged / MERGE_SAMPLES).max(1);
    let mut keys = tx
        .prepare_cached(MERGE_SAMPLE_SQL)?
        .query_map(params![upto, stride as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<(String, String)>, _>>()?;
    keys.sort_unstable();
    // Every sampled key stands for `stride` entries.
    let per_range = (chunk / stride).max(1);
    let mut bounds: Vec<(String, String)> = keys
        .into_iter()
        .skip(per_range - 1)
        .step_by(per_range)
        .collect();
    bounds.dedup();
    bounds.reverse();
    Ok(WorkerMerge {
        upto,
        bounds,
        done: Default::default(),
    })
}

/// Reads the database file front to back on its own thread while `load()` runs, so that
/// the page cache holds it ahead of the scan. The resource rows' pages lie scattered between
/// event pages; after a reboot SQLite fetched them one by one (≈ 45 MiB/s here: 19 s for
/// 1.1 M rows, most of a cold start) where a sequential read runs at ≈ 600 MiB/s. Stopped
/// when dropped, so a long event history costs at most the load's own duration.
struct PageCacheWarmer(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl PageCacheWarmer {
    fn start(path: &Path) -> PageCacheWarmer {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, path) = (stop.clone(), path.to_owned());
        // Best effort: without the thread the load is only slower.
        let _ = std::thread::Builder::new()
            .name("taskyard-warm".into())
            .spawn(move || {
                let Ok(mut f) = std::fs::File::open(&path) else {
                    return;
                };
                let mut buf = vec![0u8; 1 << 20];
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    match std::io::Read::read(&mut f, &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            });
        PageCacheWarmer(stop)
    }
}

impl Drop for PageCacheWarmer {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Store for SqliteStore {
    fn load(&mut self) -> Result<Snapshot, StoreError> {
        let _warm = PageCacheWarmer::start(&self.path);
        let mut snapshot = Snapshot::default();
        let mut stmt = self
            .conn
            .prepare("SELECT body FROM accounts ORDER BY sid")?;
        for body in stmt.query_map([], |r| r.get::<_, String>(0))? {
            let account: Account = serde_json::from_str(&body?)
                .map_err(|e| StoreError::Corrupt(format!("account row: {e}")))?;
            snapshot.accounts.push(account);
        }
        let mut stmt = self.conn.prepare(
            "SELECT workspace_sid, kind, body FROM resources ORDER BY workspace_sid, kind, sid",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let ws: String = row.get(0)?;
            let kind: String = row.get(1)?;
            let body: String = row.get(2)?;
            let ws = parse_sid(&ws, "workspace sid")?;
            let kind = Kind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown row kind {kind}")))?;
            match snapshot.workspaces.last_mut() {
                Some(last) if last.sid == ws => last.rows.push((kind, body)),
                _ => snapshot.workspaces.push(StoredWorkspace {
                    sid: ws,
                    rows: vec![(kind, body)],
                    event_cursor: None,
                    newest_event: None,
                }),
            }
        }

        let mut cursors = HashMap::new();
        let mut stmt = self
            .conn
            .prepare("SELECT workspace_sid, sid FROM event_cursors")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let ws = parse_sid(&row.get::<_, String>(0)?, "cursor workspace sid")?;
            let sid = parse_sid(&row.get::<_, String>(1)?, "cursor event sid")?;
            cursors.insert(ws, sid);
        }
        // Events of a workspace without rows (there should be none) restore nothing, so
        // they are left out; retention deletes them in time.
        let mut newest = self.conn.prepare(NEWEST_SQL)?;
        for ws in &mut snapshot.workspaces {
            ws.event_cursor = cursors.remove(&ws.sid);
            ws.newest_event = newest
                .query_row([ws.sid.to_string()], |r| r.get::<_, String>(0))
                .optional()?
                .map(|s| parse_sid(&s, "event sid"))
                .transpose()?;
        }
        Ok(snapshot)
    }

    fn commit(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        match self.write_all(writes) {
            Ok((staged, merging)) => {
                self.packer.committed();
                self.staged_workers = staged;
                self.merging_workers = merging;
                Ok(())
            }
            Err(e) => {
                self.packer.rolled_back();
                Err(e)
            }
        }
    }

    fn stat_bucket(
        &mut self,
        workspace: Sid,
        scope: &str,
        span_ms: i64,
        start_ms: i64,
        channel: Option<Sid>,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT body FROM stat_buckets WHERE workspace_sid = ?1 AND scope = ?2
                 AND span_ms = ?3 AND start_ms = ?4 AND channel = ?5",
            )?
            .query_row(
                params![
                    workspace.to_string(),
                    scope,
                    span_ms,
                    start_ms,
                    channel_text(channel)
                ],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn event_log(&self) -> Result<Box<dyn EventLog>, StoreError> {
        // The inherent method (inherent methods win the path lookup), which keeps the
        // concrete type for callers that know they have SQLite.
        Ok(Box::new(SqliteStore::event_log(self)?))
    }
}

/// Deletes everything a workspace owns.
fn drop_workspace(tx: &Transaction<'_>, ws: &str) -> Result<(), StoreError> {
    for sql in [
        "DELETE FROM resources WHERE workspace_sid = ?1",
        "DELETE FROM events WHERE workspace_sid = ?1",
        "DELETE FROM event_workers WHERE workspace_sid = ?1",
        "DELETE FROM event_workers_new WHERE workspace_sid = ?1",
        "DELETE FROM event_cursors WHERE workspace_sid = ?1",
        "DELETE FROM stat_buckets WHERE workspace_sid = ?1",
    ] {
        tx.prepare_cached(sql)?.execute([ws])?;
    }
    Ok(())
}

/// Deletes the events dated before `before_ms`, workspace by workspace, so that each delete
/// is a range of `events_by_sid` (SIDs sort by time) rather than a scan of the whole table.
///
/// An event whose SID is later than its `date_ms` (the SID generator never goes back, even
/// when the clock does) is left for a later purge: retention keeps events *at least* as
/// long as asked.
fn purge_events(tx: &Transaction<'_>, before_ms: i64) -> Result<(), StoreError> {
    let workspaces = tx
        .prepare_cached(WORKSPACES_WITH_EVENTS_SQL)?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let bound = sid_bound(before_ms, '0');
    let mut delete = tx.prepare_cached(PURGE_SQL)?;
    let mut next_worker = tx.prepare_cached(NEXT_WORKER_SQL)?;
    let mut delete_worker = tx.prepare_cached(PURGE_WORKER_SQL)?;
    let mut oldest = tx.prepare_cached(OLDEST_SQL)?;
    let mut delete_staged =
        tx.prepare_cached("DELETE FROM event_workers_new WHERE workspace_sid = ?1 AND sid < ?2")?;
    for ws in workspaces {
        delete.execute(params![ws, bound, before_ms])?;
        // The worker index, one worker's range at a time (its key starts with the worker),
        // below the oldest row left: a group that started before the bound but ends after
        // it stays, and so does its entry.
        let left = oldest
            .query_row([&ws], |r| r.get::<_, String>(0))
            .optional()?;
        let below = left.map_or(bound.clone(), |l| l.min(bound.clone()));
        let mut worker = String::new();
        while let Some(w) = next_worker
            .query_row(params![ws, worker], |r| r.get::<_, String>(0))
            .optional()?
        {
            delete_worker.execute(params![ws, w, below])?;
            worker = w;
        }
        delete_staged.execute(params![ws, below])?;
    }
    Ok(())
}

impl SqliteStore {
    /// The stored body of one row, if present (for tests and tooling).
    pub fn row(&self, workspace: Sid, kind: Kind, sid: Sid) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT body FROM resources WHERE workspace_sid = ?1 AND kind = ?2 AND sid = ?3",
                params![workspace.to_string(), kind.as_str(), sid.to_string()],
                |r| r.get(0),
            )
            .optional()?)
    }
}

/// The events of a [`SqliteStore`], read through read-only connections of its own.
///
/// Connections are opened on demand and kept for reuse; concurrent queries each get one,
/// so they do not queue behind each other. Each query is one statement, which SQLite runs
/// against one committed snapshot.
pub struct SqliteEventLog {
    path: PathBuf,
    /// Each idle connection keeps the dictionaries it has loaded.
    idle: Mutex<Vec<(Connection, Unpacker)>>,
}

/// Idle connections beyond this are closed: a burst of queries should not pin memory (each
/// connection has its own page cache) forever.
const MAX_IDLE_READERS: usize = 8;

impl SqliteEventLog {
    /// Runs `f` on an idle connection, or a new one.
    fn with_connection<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_unpacker(|conn, _| f(conn))
    }

    /// [`Self::with_connection`], with the connection's body decoder.
    fn with_unpacker<T>(
        &self,
        f: impl FnOnce(&Connection, &mut Unpacker) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // The pool is only ever pushed to and popped from, so a panic elsewhere cannot
        // leave it inconsistent: a poisoned lock is safe to use.
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let (conn, mut unpacker) = match idle {
            Some(idle) => idle,
            None => (self.connect()?, Unpacker::default()),
        };
        let out = f(&conn, &mut unpacker);
        // A connection that just failed is not trusted with the next query.
        if out.is_ok() {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE_READERS {
                idle.push((conn, unpacker));
            }
        }
        out
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        // Read-only: this side must never be able to change what the writer committed.
        // No mutex: a connection is used by one thread at a time (it is in the pool or in
        // one query).
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // WAL readers do not wait for the writer, but can wait briefly while a checkpoint
        // or a recovery holds the WAL index.
        conn.busy_timeout(Duration::from_secs(5))?;
        // Each combination of filters is its own statement.
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    /// Reads the rows `sql` selects, in its order, until `limit` of their events are ones to
    /// `keep` (a group's events in reverse when `backwards`, the order of a descending scan).
    fn select(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        limit: usize,
        backwards: bool,
        keep: impl Fn(&StoredEvent) -> bool,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.with_unpacker(|conn, unpacker| {
            let mut stmt = conn.prepare_cached(sql)?;
            let mut rows = stmt.query(params)?;
            let mut out = Vec::new();
            while out.len() < limit
                && let Some(row) = rows.next()?
            {
                let mut events = read_events(row, conn, unpacker)?;
                if backwards {
                    events.reverse();
                }
                let room = limit - out.len();
                out.extend(events.into_iter().filter(|e| keep(e)).take(room));
            }
            Ok(out)
        })
    }
}

impl EventLog for SqliteEventLog {
    fn stat_buckets(
        &self,
        workspace: Sid,
        scope: &str,
        span_ms: i64,
        from_ms: i64,
        to_ms: i64,
        channel: Option<Sid>,
    ) -> Result<Vec<StatBucket>, StoreError> {
        self.with_connection(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT start_ms, channel, body FROM stat_buckets
                 WHERE workspace_sid = ?1 AND scope = ?2 AND span_ms = ?3
                   AND start_ms >= ?4 AND start_ms <= ?5 AND (?6 = '' OR channel = ?6)",
            )?;
            let mut rows = stmt.query(params![
                workspace.to_string(),
                scope,
                span_ms,
                from_ms,
                to_ms,
                channel_text(channel)
            ])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let channel: String = row.get(1)?;
                out.push(StatBucket {
                    scope: scope.to_string(),
                    span_ms,
                    start_ms: row.get(0)?,
                    channel: if channel.is_empty() {
                        None
                    } else {
                        Some(parse_sid(&channel, "bucket channel")?)
                    },
                    body: row.get(2)?,
                });
            }
            Ok(out)
        })
    }

    fn query(&self, q: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        if q.limit == 0 {
            return Ok(Vec::new());
        }
        let (sql, values) = query_sql(q);
        let backwards = q.before.is_some();
        let mut events = self.select(&sql, params_from_iter(values), q.limit, backwards, |e| {
            group::matches(q, e)
        })?;
        if q.before.is_some() {
            // Read backwards from `before` to find the page; it is returned in order.
            events.reverse();
        }
        Ok(events)
    }

    fn fetch(&self, workspace: Sid, sid: Sid) -> Result<Option<StoredEvent>, StoreError> {
        Ok(self
            .select(
                FETCH_SQL,
                params![workspace.to_string(), sid.to_string()],
                1,
                false,
                |e| e.sid == sid,
            )?
            .pop())
    }

    fn to_deliver(
        &self,
        workspace: Sid,
        after: Option<Sid>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.select(
            OUTBOX_SQL,
            params![
                workspace.to_string(),
                after.map(|s| s.to_string()).unwrap_or_default(),
            ],
            limit,
            false,
            |e| e.callback && after.is_none_or(|a| e.sid > a),
        )
    }
}

/// The statement and parameters for `q` (whose `limit` is not 0). Only the filters that are
/// set appear in the statement, so that SQLite can pick the index that fits them. The rows
/// it selects are a superset: a group row passes every test on the columns of single events,
/// and every event is then held to `q` exactly ([`group::matches`]); the caller stops
/// reading once it has `q.limit` events.
fn query_sql(q: &EventQuery) -> (String, Vec<Value>) {
    let mut sql = String::from(select_events!("WHERE workspace_sid = ?1"));
    let mut values = vec![Value::Text(q.workspace.to_string())];
    // Binds `value` and returns its placeholder.
    let mut bind = |value: Value| {
        values.push(value);
        format!("?{}", values.len())
    };

    // The SID range: the tighter of the time window, the page bound and the one SID asked
    // for on each side, as one range SQLite can seek to (given separately, it might seek on
    // the looser one). Rows are keyed by their first event, so the range starts at the row
    // that holds its lower end.
    let lower = [
        q.start_ms.map(|ms| sid_bound(ms, '0')),
        q.after.map(|s| s.to_string()),
        q.sid.map(|s| s.to_string()),
    ]
    .into_iter()
    .flatten()
    .max();
    let upper = [
        q.end_ms.map(|ms| sid_bound(ms, 'f')),
        q.before.map(|s| s.to_string()),
        q.sid.map(|s| s.to_string()),
    ]
    .into_iter()
    .flatten()
    .min();
    // Kept apart, because the worker index is bounded by the same range.
    let mut range = String::new();
    if let Some(sid) = lower {
        let start = bind(Value::Text(sid));
        range.push_str(&format!(
            " AND sid >= coalesce((SELECT sid FROM events WHERE workspace_sid = ?1 \
             AND sid <= {start} ORDER BY sid DESC LIMIT 1), {start})"
        ));
    }
    if let Some(sid) = upper {
        range.push_str(&format!(" AND sid <= {}", bind(Value::Text(sid))));
    }
    sql.push_str(&range);
    // Tests on single events' own columns (a group's are checked per event).
    let mut single = |sql: &mut String, column: &str, value: Value| {
        sql.push_str(&format!(
            " AND (last_sid IS NOT NULL OR {column} {})",
            bind(value)
        ));
    };
    if let Some(ms) = q.start_ms {
        single(&mut sql, "date_ms >=", Value::Integer(ms));
    }
    if let Some(ms) = q.end_ms {
        single(&mut sql, "date_ms <=", Value::Integer(ms));
    }
    if let Some(t) = &q.event_type {
        single(&mut sql, "event_type =", Value::Text(t.clone()));
    }
    for (column, sid) in [
        ("task_queue_sid =", q.task_queue_sid),
        ("workflow_sid =", q.workflow_sid),
        ("task_channel_sid =", q.task_channel_sid),
    ] {
        if let Some(sid) = sid {
            single(&mut sql, column, Value::Text(sid.to_string()));
        }
    }
    // A group's task, worker and reservation are those of all its events.
    for (column, sid) in [
        ("task_sid", q.task_sid),
        ("worker_sid", q.worker_sid),
        ("reservation_sid", q.reservation_sid),
    ] {
        if let Some(sid) = sid {
            sql.push_str(&format!(
                " AND {column} = {}",
                bind(Value::Text(sid.to_string()))
            ));
        }
    }
    // The worker's events are found through its index (merged and staged entries, see
    // migration 5); the rows are then read by SID, in order.
    if let Some(worker) = q.worker_sid {
        let w = bind(Value::Text(worker.to_string()));
        sql.push_str(&format!(
            " AND sid IN (SELECT sid FROM event_workers \
                 WHERE workspace_sid = ?1 AND worker_sid = {w}{range} \
             UNION ALL SELECT sid FROM event_workers_new \
                 WHERE workspace_sid = ?1 AND worker_sid = {w}{range})"
        ));
    }

    let order = if q.before.is_some() { "DESC" } else { "ASC" };
    sql.push_str(&format!(" ORDER BY sid {order}"));
    (sql, values)
}

fn optional_sid(row: &Row<'_>, i: usize, what: &str) -> Result<Option<Sid>, StoreError> {
    row.get::<_, Option<String>>(i)?
        .map(|s| parse_sid(&s, what))
        .transpose()
}

/// The events of one row selected with `select_events!`: itself, or its group's.
fn read_events(
    row: &Row<'_>,
    conn: &Connection,
    unpacker: &mut Unpacker,
) -> Result<Vec<StoredEvent>, StoreError> {
    let json = unpacker.unpack(conn, row.get_ref(10)?)?;
    if row.get::<_, Option<String>>(11)?.is_some() {
        return group::decode(&json);
    }
    Ok(vec![StoredEvent {
        sid: parse_sid(&row.get::<_, String>(0)?, "event sid")?,
        event_type: row.get(1)?,
        date_ms: row.get(2)?,
        task_sid: optional_sid(row, 3, "task sid")?,
        worker_sid: optional_sid(row, 4, "worker sid")?,
        reservation_sid: optional_sid(row, 5, "reservation sid")?,
        task_queue_sid: optional_sid(row, 6, "task queue sid")?,
        workflow_sid: optional_sid(row, 7, "workflow sid")?,
        task_channel_sid: optional_sid(row, 8, "task channel sid")?,
        callback: row.get(9)?,
        json,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().expect("tempdir");
        crate::conformance::run(|| SqliteStore::open(dir.path(), Durability::Full).expect("open"));
    }

    fn ev(ms: i64, n: u128) -> StoredEvent {
        StoredEvent {
            sid: Sid::new("EV", ((ms as u128) << 80) | n),
            event_type: "task.created".into(),
            date_ms: ms,
            task_sid: None,
            worker_sid: None,
            reservation_sid: None,
            task_queue_sid: None,
            workflow_sid: None,
            task_channel_sid: None,
            callback: true,
            json: "{}".into(),
        }
    }

    /// `EXPLAIN QUERY PLAN` of `sql`, one step per line.
    fn plan(conn: &Connection, sql: &str, values: Vec<Value>) -> String {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("explain");
        let steps = stmt
            .query_map(params_from_iter(values), |r| r.get::<_, String>(3))
            .expect("plan")
            .collect::<Result<Vec<_>, _>>()
            .expect("plan rows");
        steps.join("\n")
    }

    /// Each read uses the index it was designed for, and none sorts: a page must cost its
    /// size, not the size of the history.
    #[test]
    fn reads_use_the_intended_indexes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), Durability::Normal).expect("open");
        let conn = &store.conn;
        let ws = Sid::new("WS", 1);
        let some = Some(Sid::new("WK", 1));
        let query = |f: &dyn Fn(&mut EventQuery)| {
            let mut q = EventQuery::new(ws);
            f(&mut q);
            let (sql, values) = query_sql(&q);
            plan(conn, &sql, values)
        };
        let cases = [
            ("everything", query(&|_| {}), "events_by_sid"),
            (
                "window",
                query(&|q| {
                    q.start_ms = Some(1);
                    q.end_ms = Some(2);
                }),
                "events_by_sid",
            ),
            ("task", query(&|q| q.task_sid = some), "events_by_task"),
            (
                "task in a window, paging back",
                query(&|q| {
                    q.task_sid = some;
                    q.start_ms = Some(1);
                    q.before = some;
                }),
                "events_by_task",
            ),
            ("worker", query(&|q| q.worker_sid = some), "event_workers"),
            (
                "reservation, paging forward",
                query(&|q| {
                    q.reservation_sid = some;
                    q.after = some;
                }),
                "events_by_reservation",
            ),
            (
                "queue and type, paging back",
                query(&|q| {
                    q.task_queue_sid = some;
                    q.event_type = Some("task.created".into());
                    q.before = some;
                }),
                "events_by_sid",
            ),
            ("one sid", query(&|q| q.sid = some), "events_by_sid"),
            (
                "fetch",
                plan(conn, FETCH_SQL, vec![Value::Null, Value::Null]),
                "events_by_sid",
            ),
            (
                "outbox",
                plan(conn, OUTBOX_SQL, vec![Value::Null, Value::Null]),
                "events_outbox",
            ),
            (
                "newest",
                plan(conn, NEWEST_SQL, vec![Value::Null]),
                "events_by_sid",
            ),
            (
                "workspaces with events",
                plan(conn, WORKSPACES_WITH_EVENTS_SQL, vec![]),
                "events_by_sid",
            ),
            (
                "purge",
                plan(conn, PURGE_SQL, vec![Value::Null, Value::Null, Value::Null]),
                "events_by_sid",
            ),
            (
                "next worker to purge",
                plan(conn, NEXT_WORKER_SQL, vec![Value::Null, Value::Null]),
                "PRIMARY KEY (workspace_sid=? AND worker_sid>?)",
            ),
            (
                "purge one worker",
                plan(
                    conn,
                    PURGE_WORKER_SQL,
                    vec![Value::Null, Value::Null, Value::Null],
                ),
                "PRIMARY KEY (workspace_sid=? AND worker_sid=? AND sid<?)",
            ),
        ];
        for (name, plan, index) in cases {
            assert!(plan.contains(index), "{name} should use {index}:\n{plan}");
            assert!(
                !plan.contains("TEMP B-TREE"),
                "{name} should not sort:\n{plan}"
            );
            assert!(
                !plan.lines().any(|l| l.starts_with("SCAN events")),
                "{name} should not scan the table:\n{plan}"
            );
        }
    }

    /// An event body shaped like the engine's: the same keys and workspace-wide SIDs every
    /// time, task SIDs and attributes that vary.
    fn realistic(i: u128) -> StoredEvent {
        let mut e = ev(1_000 + i as i64, i);
        e.json = format!(
            concat!(
                r#"{{"sid":"{}","event_type":"reservation.created","event_date_ms":{},"#,
                r#""description":"Reservation WR{:032x} for Task WT{:032x} created","#,
                r#""event_data":{{"workspace_sid":"WS0123456789abcdef0123456789abcdef","#,
                r#""task_sid":"WT{:032x}","task_attributes":"{{\"n\":{},\"lang\":\"{}\"}}","#,
                r#""task_queue_sid":"WQ0123456789abcdef0123456789abcdef","task_queue_name":"support","#,
                r#""worker_sid":"WK{:032x}","worker_name":"agent-{}","task_priority":"{}"}}}}"#
            ),
            e.sid,
            e.date_ms,
            i * 7919,
            i * 104729,
            i * 104729,
            i,
            ["en", "fr", "de"][i as usize % 3],
            i % 50,
            i % 50,
            i % 5,
        );
        e
    }

    fn write_events(store: &mut SqliteStore, ws: Sid, events: &[StoredEvent]) {
        for chunk in events.chunks(50) {
            store
                .commit(&[Write::Workspace {
                    workspace: ws,
                    changes: Vec::new(),
                    events: chunk.to_vec(),
                }])
                .expect("commit");
        }
    }

    fn read_all(log: &SqliteEventLog, ws: Sid) -> Vec<StoredEvent> {
        let mut q = EventQuery::new(ws);
        q.limit = 100_000;
        log.query(&q).expect("query")
    }

    #[test]
    fn event_bodies_are_compressed_once_a_dictionary_is_trained_and_read_back_exactly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = Sid::new("WS", 1);
        let events: Vec<StoredEvent> = (1..=600).map(realistic).collect();
        let count = |sql: &str| -> i64 {
            let c = Connection::open(dir.path().join("taskyard.db")).expect("raw open");
            c.query_row(sql, [], |r| r.get(0)).expect("count")
        };
        {
            let mut store = SqliteStore::open(dir.path(), Durability::Normal).expect("open");
            store.train_after(200, false).expect("train_after");
            write_events(&mut store, ws, &events[..400]);
            // Batches of 50: the fourth completed the 200 samples, so the dictionary was
            // trained in its transaction and packed it already.
            assert_eq!(count("SELECT count(*) FROM event_dicts"), 1);
            assert_eq!(
                count("SELECT count(*) FROM events WHERE typeof(body) = 'text'"),
                150
            );
            assert_eq!(
                count("SELECT count(*) FROM events WHERE typeof(body) = 'blob'"),
                250
            );
            let packed: i64 =
                count("SELECT sum(length(body)) FROM events WHERE typeof(body) = 'blob'");
            let plain: usize = events[150..400].iter().map(|e| e.json.len()).sum();
            assert!(
                (packed as usize) * 3 < plain,
                "{packed} bytes packed vs {plain} plain"
            );
            assert_eq!(
                read_all(&store.event_log().expect("log"), ws),
                events[..400]
            );
        }
        // Reopened, the store packs with the stored dictionary from the first event, and a
        // new dictionary that is no better is not stored.
        let mut store = SqliteStore::open(dir.path(), Durability::Normal).expect("reopen");
        store.train_after(100, false).expect("train_after");
        write_events(&mut store, ws, &events[400..]);
        assert_eq!(
            count("SELECT count(*) FROM events WHERE typeof(body) = 'blob'"),
            450
        );
        assert_eq!(count("SELECT count(*) FROM event_dicts"), 1);
        let log = store.event_log().expect("log");
        assert_eq!(read_all(&log, ws), events);
        assert_eq!(
            log.fetch(ws, events[599].sid).expect("fetch"),
            Some(events[599].clone())
        );
        assert_eq!(
            log.to_deliver(ws, Some(events[397].sid), 2)
                .expect("outbox"),
            events[398..400]
        );
    }

    #[test]
    fn a_dictionary_trained_in_the_background_is_adopted_by_a_later_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = Sid::new("WS", 1);
        let mut store = SqliteStore::open(dir.path(), Durability::Normal).expect("open");
        store.train_after(200, true).expect("train_after");
        let mut events: Vec<StoredEvent> = (1..=200).map(realistic).collect();
        write_events(&mut store, ws, &events);
        // Training runs on its own thread; each later commit looks for its result.
        let blobs = || -> i64 {
            Connection::open(dir.path().join("taskyard.db"))
                .expect("raw open")
                .query_row(
                    "SELECT count(*) FROM events WHERE typeof(body) = 'blob'",
                    [],
                    |r| r.get(0),
                )
                .expect("count")
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut n = 200;
        while blobs() == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "no dictionary adopted"
            );
            std::thread::sleep(Duration::from_millis(20));
            n += 1;
            let e = realistic(n);
            write_events(&mut store, ws, std::slice::from_ref(&e));
            events.push(e);
        }
        assert_eq!(read_all(&store.event_log().expect("log"), ws), events);
    }

    #[test]
    fn the_checkpoint_thread_copies_the_wal_into_the_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = Sid::new("WS", 1);
        let mut store = SqliteStore::open(dir.path(), Durability::Normal).expect("open");
        store.train_after(0, false).expect("no training");
        let db = dir.path().join("taskyard.db");
        let before = std::fs::metadata(&db).expect("db").len();
        // About 2.5 MB of events: the writer itself never checkpoints, so without the
        // thread all of it would stay in the WAL.
        let events: Vec<StoredEvent> = (1..=3000).map(realistic).collect();
        write_events(&mut store, ws, &events);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::fs::metadata(&db).expect("db").len() < before + 1_000_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the database file did not grow: nothing was checkpointed"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(read_all(&store.event_log().expect("log"), ws), events);
    }

    #[test]
    fn a_body_whose_dictionary_is_missing_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = Sid::new("WS", 1);
        let events: Vec<StoredEvent> = (1..=300).map(realistic).collect();
        let mut store = SqliteStore::open(dir.path(), Durability::Normal).expect("open");
        store.train_after(100, false).expect("train_after");
        write_events(&mut store, ws, &events);
        Connection::open(dir.path().join("taskyard.db"))
            .expect("raw open")
            .execute("DELETE FROM event_dicts", [])
            .expect("delete");
        let log = store.event_log().expect("log");
        assert!(matches!(
            log.fetch(ws, events[299].sid),
            Err(StoreError::Corrupt(_))
        ));
        // Text bodies stay readable.
        assert_eq!(
            log.fetch(ws, events[0].sid).expect("fetch"),
            Some(events[0].clone())
        );
    }

    #[test]
    fn the_event_log_sees_only_committed_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), Durability::Normal).expect("open");
        let log = store.event_log().expect("event log");
        let ws = Sid::new("WS", 1);
        let e = ev(1000, 1);
        let mut raw = Connection::open(dir.path().join("taskyard.db")).expect("raw open");
        let tx = raw.transaction().expect("begin");
        tx.execute(
            "INSERT INTO events (workspace_sid, sid, event_type, date_ms, callback, body)
             VALUES (?1, ?2, ?3, ?4, 1, ?5)",
            params![
                ws.to_string(),
                e.sid.to_string(),
                e.event_type,
                e.date_ms,
                e.json
            ],
        )
        .expect("insert");
        assert_eq!(log.fetch(ws, e.sid).expect("fetch"), None);
        assert_eq!(log.to_deliver(ws, None, 10).expect("outbox"), vec![]);
        tx.commit().expect("commit");
        assert_eq!(log.fetch(ws, e.sid).expect("fetch"), Some(e));
    }

    #[test]
    fn the_event_log_cannot_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), Durability::Normal).expect("open");
        let log = store.event_log().expect("event log");
        let attempt = log.with_connection(|conn| Ok(conn.execute("DELETE FROM events", [])?));
        assert!(matches!(
            attempt,
            Err(StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)))
                if e.code == rusqlite::ErrorCode::ReadOnly
        ));
    }

    /// The last connection to close removes the WAL files; a reader must still be able to
    /// open the database afterwards (say, a tool reading the events of a stopped server).
    #[test]
    fn the_event_log_opens_a_database_nobody_has_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = Sid::new("WS", 1);
        let log = {
            let mut store = SqliteStore::open(dir.path(), Durability::Normal).expect("open");
            store
                .commit(&[Write::Workspace {
                    workspace: ws,
                    changes: Vec::new(),
                    events: vec![ev(1000, 1)],
                }])
                .expect("commit");
            let log = store.event_log().expect("event log");
            log.idle.lock().expect("pool").clear();
            log
        };
        assert!(!dir.path().join("taskyard.db-wal").exists());
        assert_eq!(
            log.fetch(ws, ev(1000, 1).sid).expect("fetch"),
            Some(ev(1000, 1))
        );
    }

    #[test]
    fn a_failed_commit_keeps_neither_the_changes_nor_the_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = SqliteStore::open(dir.path(), Durability::Normal).expect("open");
        let log = store.event_log().expect("event log");
        let ws = Sid::new("WS", 1);
        let write = |n| Write::Workspace {
            workspace: ws,
            changes: vec![Change::Put {
                kind: Kind::Workspace,
                sid: ws,
                body: "{}".into(),
            }],
            events: vec![ev(1000, n)],
        };
        store.commit(&[write(1)]).expect("first");
        store
            .commit(&[
                Write::Workspace {
                    workspace: ws,
                    changes: vec![Change::Delete {
                        kind: Kind::Workspace,
                        sid: ws,
                    }],
                    events: vec![ev(1000, 2)],
                },
                write(1),
            ])
            .expect_err("an event stored twice fails the commit");
        assert!(
            store.row(ws, Kind::Workspace, ws).expect("row").is_some(),
            "the delete was rolled back"
        );
        assert_eq!(
            log.fetch(ws, ev(1000, 2).sid).expect("fetch"),
            None,
            "so was the insert"
        );
    }

    #[test]
    fn upgrades_a_version_1_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = Sid::new("WS", 1);
        {
            let conn = Connection::open(dir.path().join("taskyard.db")).expect("raw open");
            conn.execute_batch(MIGRATIONS[0]).expect("version 1");
            conn.pragma_update(None, "user_version", 1)
                .expect("version");
            conn.execute(
                "INSERT INTO resources (workspace_sid, kind, sid, body) VALUES (?1, ?2, ?1, '{}')",
                params![ws.to_string(), Kind::Workspace.as_str()],
            )
            .expect("row");
        }
        let mut store = SqliteStore::open(dir.path(), Durability::Normal).expect("open");
        let version: i64 = store
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(version, MIGRATIONS.len() as i64);
        let snap = store.load().expect("load");
        assert_eq!(
            snap.workspaces,
            vec![StoredWorkspace {
                sid: ws,
                rows: vec![(Kind::Workspace, "{}".into())],
                event_cursor: None,
                newest_event: None,
            }]
        );
        store
            .commit(&[Write::Workspace {
                workspace: ws,
                changes: Vec::new(),
                events: vec![ev(1000, 1)],
            }])
            .expect("events in an upgraded database");
    }

    /// Rows in `table`, read on a connection of the test's own.
    fn count(dir: &Path, table: &str) -> i64 {
        let c = Connection::open(dir.join("taskyard.db")).expect("raw open");
        c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .expect("count")
    }

    #[test]
    fn worker_filters_find_events_whether_their_index_entries_are_staged_or_merged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = Sid::new("WS", 1);
        let mut store = SqliteStore::open(dir.path(), Durability::Normal).expect("open");
        store.merge_workers_at = 10;
        store.merge_workers_chunk = 2;
        let log = store.event_log().expect("log");
        let worker = |n: u128| Sid::new("WK", n);
        // Event i is worker (i % 3)'s, but every fourth has none: 32 worker events, so the
        // last two entries stay staged.
        let events: Vec<StoredEvent> = (1..=42u128)
            .map(|i| {
                let mut e = ev(1_000 * i as i64, i);
                e.worker_sid = (i % 4 != 0).then(|| worker(i % 3));
                e
            })
            .collect();
        let expect = |upto: usize, w: u128, start_ms: Option<i64>| -> Vec<Sid> {
            events[..upto]
                .iter()
                .filter(|e| e.worker_sid == Some(worker(w)))
                .filter(|e| start_ms.is_none_or(|ms| e.date_ms >= ms))
                .map(|e| e.sid)
                .collect()
        };
        let found = |w: u128, start_ms: Option<i64>, before: Option<Sid>| -> Vec<Sid> {
            let mut q = EventQuery::new(ws);
            q.worker_sid = Some(worker(w));
            q.start_ms = start_ms;
            q.before = before;
            q.limit = 1_000;
            log.query(&q)
                .expect("query")
                .iter()
                .map(|e| e.sid)
                .collect()
        };
        let mut merged_once = false;
        for (upto, one) in (1..=events.len()).zip(events.chunks(1)) {
            write_events(&mut store, ws, one);
            // Three workers: at most three key ranges and the rest, a commit each.
            let staged = count(dir.path(), "event_workers_new");
            assert!(
                staged < 10 + 4,
                "merged from the threshold on, {staged} staged"
            );
            merged_once |= count(dir.path(), "event_workers") > 0;
            for w in 0..3 {
                assert_eq!(found(w, None, None), expect(upto, w, None), "worker {w}");
            }
        }
        assert!(merged_once && count(dir.path(), "event_workers_new") > 0);
        // A window and a page back are bounded on both tables alike.
        assert_eq!(found(1, Some(20_000), None), expect(42, 1, Some(20_000)));
        let last = *expect(42, 1, None).last().expect("worker 1 has events");
        let mut before = expect(42, 1, None);
        before.pop();
        assert_eq!(found(1, None, Some(last)), before);

        // A restart counts the staged entries again, and purging reaches both tables.
        drop(store);
        let mut store = SqliteStore::open(dir.path(), Durability::Normal).expect("reopen");
        assert_eq!(
            store.staged_workers as i64,
            count(dir.path(), "event_workers_new")
        );
        store
            .commit(&[Write::PurgeEvents { before_ms: 30_500 }])
            .expect("purge");
        for w in 0..3 {
            assert_eq!(
                found(w, None, None),
                expect(42, w, Some(30_500)),
                "worker {w}"
            );
        }
        let left = count_distinct_entries(dir.path());
        let with_worker = events[30..]
            .iter()
            .filter(|e| e.worker_sid.is_some())
            .count();
        assert_eq!(
            left, with_worker as i64,
            "the purged events' index entries are gone"
        );

        // Dropping the workspace takes its index with it.
        store
            .commit(&[Write::Workspace {
                workspace: ws,
                changes: vec![Change::DropWorkspace],
                events: Vec::new(),
            }])
            .expect("drop");
        assert_eq!(count(dir.path(), "event_workers"), 0);
        assert_eq!(count(dir.path(), "event_workers_new"), 0);
    }

    /// Index entries in either table, each once (one being merged is in both).
    fn count_distinct_entries(dir: &Path) -> i64 {
        count(
            dir,
            "(SELECT workspace_sid, worker_sid, sid FROM event_workers
              UNION SELECT workspace_sid, worker_sid, sid FROM event_workers_new)",
        )
    }

    /// A merge moves the staged entries a key range per commit, then the rest; the entries
    /// staged meanwhile go with the rest; a restart in the middle starts it over without
    /// losing or doubling an entry.
    #[test]
    fn worker_index_merges_a_key_range_per_commit_and_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = Sid::new("WS", 1);
        let open = || {
            let mut store = SqliteStore::open(dir.path(), Durability::Normal).expect("open");
            (store.merge_workers_at, store.merge_workers_chunk) = (400, 40);
            store
        };
        let mut store = open();
        let log = store.event_log().expect("log");
        // 100 workers, 5 entries a commit: every commit touches a few of them.
        let mut n = 0u128;
        let mut commit = |store: &mut SqliteStore| {
            let events: Vec<StoredEvent> = (0..5)
                .map(|_| {
                    n += 1;
                    let mut e = ev(1_000 + n as i64, n);
                    e.worker_sid = Some(Sid::new("WK", (n * 37) % 100));
                    e
                })
                .collect();
            write_events(store, ws, &events);
        };
        let (mut steps, mut ended, mut merged, mut restarted) = (0, 0, 0, false);
        for i in 0..200 {
            // Three steps into the first merge, the store restarts.
            if steps == 3 && !restarted {
                assert!(store.merging_workers.is_some(), "a merge is under way");
                drop(store);
                store = open();
                restarted = true;
            }
            let staged_before = count(dir.path(), "event_workers_new");
            commit(&mut store);
            let (now, staged) = (
                count(dir.path(), "event_workers"),
                count(dir.path(), "event_workers_new"),
            );
            let moved = now - merged;
            if staged == 0 {
                ended += 1;
            } else if moved > 0 {
                steps += 1;
                assert_eq!(
                    staged,
                    staged_before + 5,
                    "a range step leaves the entries staged"
                );
            }
            // A range is about 40 entries; the sample makes it uneven, never the whole.
            assert!(moved <= 160, "{moved} entries moved in one commit");
            merged = now;
            assert_eq!(count_distinct_entries(dir.path()), 5 * (i + 1) as i64);
        }
        assert!(
            ended >= 2 && steps >= 10,
            "{ended} merges ended in {steps} steps"
        );
        let mut q = EventQuery::new(ws);
        q.worker_sid = Some(Sid::new("WK", 74));
        q.limit = 1_000;
        assert_eq!(
            log.query(&q).expect("query").len(),
            10,
            "1,000 events over 100 workers"
        );
    }

    /// Commands that record several events at one moment are stored as groups; every read
    /// sees exactly the events it would see if each were a row of its own: every filter,
    /// pages of every size in both directions, fetch, the outbox and retention.
    #[test]
    fn grouped_events_read_as_if_each_were_its_own_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = Sid::new("WS", 1);
        let mut store = SqliteStore::open(dir.path(), Durability::Normal).expect("open");
        store.merge_workers_at = 7;
        store.merge_workers_chunk = 3;
        let log = store.event_log().expect("log");
        // Command c (at second c) records the events of a task's creation and reservation,
        // then one about its worker alone.
        let mut events = Vec::new();
        let mut n = 0u128;
        for c in 1..=6i64 {
            let ms = c * 1_000;
            let mut commit = Vec::new();
            for (kind, task, worker, reservation) in [
                ("workflow.entered", true, false, false),
                ("task-queue.entered", true, false, false),
                ("task.created", true, false, false),
                ("reservation.created", true, true, true),
                ("worker.activity.update", false, true, false),
            ] {
                n += 1;
                let mut e = ev(ms, n);
                e.event_type = kind.into();
                e.task_sid = task.then(|| Sid::new("WT", c as u128));
                e.worker_sid = worker.then(|| Sid::new("WK", (c % 2) as u128));
                e.reservation_sid = reservation.then(|| Sid::new("WR", c as u128));
                e.task_queue_sid = (kind != "workflow.entered").then(|| Sid::new("WQ", 1));
                e.callback = !n.is_multiple_of(3);
                e.json = format!("{{\"n\":{n},\"type\":\"{kind}\"}}");
                commit.push(e);
            }
            events.extend(commit.clone());
            store
                .commit(&[Write::Workspace {
                    workspace: ws,
                    changes: Vec::new(),
                    events: commit,
                }])
                .expect("commit");
        }
        let rows = count(dir.path(), "events");
        assert!(
            rows < events.len() as i64,
            "{rows} rows for {} events",
            events.len()
        );

        // The page `q` should give, worked out from the list.
        let expected = |q: &EventQuery| -> Vec<Sid> {
            let wanted = |e: &&StoredEvent| {
                let is = |want: Option<Sid>, have: Option<Sid>| want.is_none() || want == have;
                q.start_ms.is_none_or(|ms| e.date_ms >= ms)
                    && q.end_ms.is_none_or(|ms| e.date_ms <= ms)
                    && q.after.is_none_or(|s| e.sid > s)
                    && q.before.is_none_or(|s| e.sid < s)
                    && is(q.sid, Some(e.sid))
                    && q.event_type.as_ref().is_none_or(|t| *t == e.event_type)
                    && is(q.task_sid, e.task_sid)
                    && is(q.worker_sid, e.worker_sid)
                    && is(q.reservation_sid, e.reservation_sid)
                    && is(q.task_queue_sid, e.task_queue_sid)
            };
            let all: Vec<Sid> = events.iter().filter(wanted).map(|e| e.sid).collect();
            if q.before.is_some() {
                all[all.len().saturating_sub(q.limit)..].to_vec()
            } else {
                all.into_iter().take(q.limit).collect()
            }
        };
        let check = |q: &EventQuery| {
            let got: Vec<Sid> = log.query(q).expect("query").iter().map(|e| e.sid).collect();
            assert_eq!(got, expected(q), "{q:?}");
        };
        let filters: [&dyn Fn(&mut EventQuery); 8] = [
            &|_| {},
            &|q| q.task_sid = Some(Sid::new("WT", 3)),
            &|q| q.worker_sid = Some(Sid::new("WK", 1)),
            &|q| q.reservation_sid = Some(Sid::new("WR", 4)),
            &|q| q.task_queue_sid = Some(Sid::new("WQ", 1)),
            &|q| q.event_type = Some("task.created".into()),
            &|q| q.sid = Some(events[7].sid),
            &|q| {
                q.start_ms = Some(2_000);
                q.end_ms = Some(4_000);
                q.worker_sid = Some(Sid::new("WK", 0));
            },
        ];
        for filter in filters {
            for limit in [1, 2, 3, 7, 100] {
                let mut q = EventQuery::new(ws);
                filter(&mut q);
                q.limit = limit;
                check(&q);
                // Paging from inside a group, both ways.
                for cut in [2, 8, 13, 21] {
                    let mut forward = q.clone();
                    forward.after = Some(events[cut].sid);
                    check(&forward);
                    let mut back = q.clone();
                    back.before = Some(events[cut].sid);
                    check(&back);
                }
            }
        }
        for e in &events {
            assert_eq!(log.fetch(ws, e.sid).expect("fetch").as_ref(), Some(e));
        }
        for cut in [None, Some(events[1].sid), Some(events[12].sid)] {
            let due: Vec<&StoredEvent> = events
                .iter()
                .filter(|e| e.callback && cut.is_none_or(|c| e.sid > c))
                .take(4)
                .collect();
            let got = log.to_deliver(ws, cut, 4).expect("outbox");
            assert_eq!(got.iter().collect::<Vec<_>>(), due);
        }

        store
            .commit(&[Write::PurgeEvents { before_ms: 3_500 }])
            .expect("purge");
        let mut q = EventQuery::new(ws);
        q.limit = 100;
        let left: Vec<Sid> = log
            .query(&q)
            .expect("query")
            .iter()
            .map(|e| e.sid)
            .collect();
        let kept: Vec<Sid> = events
            .iter()
            .filter(|e| e.date_ms >= 3_500)
            .map(|e| e.sid)
            .collect();
        assert_eq!(left, kept);
        q.worker_sid = Some(Sid::new("WK", 0));
        let kept_of_worker = events
            .iter()
            .filter(|e| e.date_ms >= 3_500 && e.worker_sid == q.worker_sid)
            .count();
        assert_eq!(log.query(&q).expect("query").len(), kept_of_worker);
    }

    #[test]
    fn upgrading_to_version_5_indexes_the_workers_of_existing_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = Sid::new("WS", 1);
        {
            let conn = Connection::open(dir.path().join("taskyard.db")).expect("raw open");
            for m in &MIGRATIONS[..4] {
                conn.execute_batch(m).expect("versions 1 to 4");
            }
            conn.pragma_update(None, "user_version", 4)
                .expect("version");
            for (n, worker) in [
                (1, Some("WK1")),
                (2, None),
                (3, Some("WK1")),
                (4, Some("WK2")),
            ] {
                conn.execute(
                    "INSERT INTO events (workspace_sid, sid, event_type, date_ms, worker_sid,
                         callback, body)
                     VALUES (?1, ?2, 'task.created', 1000, ?3, 0, '{}')",
                    params![ws.to_string(), format!("EV{n}"), worker],
                )
                .expect("event");
            }
        }
        SqliteStore::open(dir.path(), Durability::Normal).expect("upgrade");
        let c = Connection::open(dir.path().join("taskyard.db")).expect("raw open");
        let entries = c
            .prepare("SELECT worker_sid, sid FROM event_workers ORDER BY 1, 2")
            .expect("select")
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .expect("rows")
            .collect::<Result<Vec<_>, _>>()
            .expect("entries");
        let pair = |w: &str, e: &str| (w.to_string(), e.to_string());
        assert_eq!(
            entries,
            vec![pair("WK1", "EV1"), pair("WK1", "EV3"), pair("WK2", "EV4")]
        );
    }

    #[test]
    fn refuses_a_database_from_a_newer_build() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(SqliteStore::open(dir.path(), Durability::Normal).expect("open"));
        let conn = Connection::open(dir.path().join("taskyard.db")).expect("raw open");
        conn.pragma_update(None, "user_version", 99).expect("bump");
        drop(conn);
        assert!(matches!(
            SqliteStore::open(dir.path(), Durability::Normal),
            Err(StoreError::SchemaTooNew { found: 99, .. })
        ));
    }
}
