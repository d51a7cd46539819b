//! The scale-out backend: PostgreSQL, shared by every node of a cluster.
//!
//! Everything lives in one schema of the database (`taskyard` unless told otherwise), created
//! on first use, so that Taskyard's tables sit beside an operator's own without colliding.
//! Schema changes are numbered migrations recorded in `taskyard_migrations`; nodes that start
//! at once take an advisory lock, so exactly one of them runs each migration.
//!
//! A commit is one transaction with a handful of statements whatever its size: the writes of
//! a group commit are folded into batches (rows, events, buckets, cursors) and each batch is
//! one statement over arrays (`unnest`), so a commit costs the same few round trips whether
//! it carries one task or a thousand. The writer's session keeps `synchronous_commit = on`,
//! so an acknowledged commit is on the server's disk (and on its synchronous standbys, if
//! it has any).
//!
//! Events are one row each (the SQLite backend's groups and dictionaries exist to save pages
//! of a file on one disk; PostgreSQL compresses large bodies itself). SID columns use the
//! `"C"` collation: SIDs are compared as bytes, which is what makes their order the order
//! of creation, whatever the database's default collation is.
//!
//! [`PostgresEventLog`] reads with connections of its own, in read-only sessions, so the
//! Events resource and the callback deliverers never queue behind the writer.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement, Transaction};
use taskyard_engine::{Account, Change, Kind, Sid};

use crate::cluster::Held;
use crate::{
    EventLog, EventQuery, Snapshot, StatBucket, Store, StoreError, StoredEvent, StoredWorkspace,
    Write, channel_text, parse_sid, sid_bound,
};

/// The schema used when none is given.
pub const DEFAULT_SCHEMA: &str = "taskyard";

/// Migrations, in order; `taskyard_migrations` records the ones that ran.
const MIGRATIONS: &[&str] = &[
    // 1: accounts, resource rows, events, delivery cursors and statistics buckets: the same
    // tables as the SQLite backend's, one event a row.
    //
    // - `events` is keyed by (workspace, SID): fetch, paging and time windows are ranges of
    //   its primary key, because SIDs sort by creation time.
    // - The task, worker and reservation filters pick a few events out of a long history, so
    //   they get partial indexes ending in `sid` (a page comes out in order without a sort).
    // - `events_outbox` holds only the events still meant for the callback URL.
    // - `events_by_date` is a BRIN index: retention deletes by date across workspaces, and
    //   events arrive in date order, so a block-range summary finds them for almost nothing
    //   per insert.
    r#"CREATE TABLE accounts (
        sid  text COLLATE "C" PRIMARY KEY,
        body text NOT NULL
    );
    CREATE TABLE resources (
        workspace_sid text COLLATE "C" NOT NULL,
        kind          text COLLATE "C" NOT NULL,
        sid           text COLLATE "C" NOT NULL,
        body          text NOT NULL,
        PRIMARY KEY (workspace_sid, kind, sid)
    );
    CREATE TABLE events (
        workspace_sid    text COLLATE "C" NOT NULL,
        sid              text COLLATE "C" NOT NULL,
        event_type       text NOT NULL,
        date_ms          bigint NOT NULL,
        task_sid         text COLLATE "C",
        worker_sid       text COLLATE "C",
        reservation_sid  text COLLATE "C",
        task_queue_sid   text COLLATE "C",
        workflow_sid     text COLLATE "C",
        task_channel_sid text COLLATE "C",
        callback         boolean NOT NULL,
        body             text NOT NULL,
        PRIMARY KEY (workspace_sid, sid)
    );
    CREATE INDEX events_by_task ON events (workspace_sid, task_sid, sid)
        WHERE task_sid IS NOT NULL;
    CREATE INDEX events_by_worker ON events (workspace_sid, worker_sid, sid)
        WHERE worker_sid IS NOT NULL;
    CREATE INDEX events_by_reservation ON events (workspace_sid, reservation_sid, sid)
        WHERE reservation_sid IS NOT NULL;
    CREATE INDEX events_outbox ON events (workspace_sid, sid) WHERE callback;
    CREATE INDEX events_by_date ON events USING brin (date_ms);
    CREATE TABLE event_cursors (
        workspace_sid text COLLATE "C" PRIMARY KEY,
        sid           text COLLATE "C" NOT NULL
    );
    CREATE TABLE stat_buckets (
        workspace_sid text COLLATE "C" NOT NULL,
        scope         text COLLATE "C" NOT NULL,
        span_ms       bigint NOT NULL,
        start_ms      bigint NOT NULL,
        channel       text COLLATE "C" NOT NULL,
        body          text NOT NULL,
        PRIMARY KEY (workspace_sid, scope, span_ms, start_ms, channel)
    );"#,
    // 2: several nodes (see `crate::cluster`). A workspace belongs to the node its lease
    // names until `expires_at` (the database's clock, so nodes' clocks need not agree);
    // `epoch` goes up by one each time another holder takes it, and every commit checks it.
    r#"CREATE TABLE nodes (
        node_id    text COLLATE "C" PRIMARY KEY,
        url        text NOT NULL,
        expires_at timestamptz NOT NULL
    );
    CREATE TABLE leases (
        workspace_sid text COLLATE "C" PRIMARY KEY,
        account_sid   text COLLATE "C" NOT NULL,
        node_id       text COLLATE "C" NOT NULL,
        epoch         bigint NOT NULL,
        expires_at    timestamptz NOT NULL
    );
    CREATE INDEX leases_by_node ON leases (node_id);
    CREATE INDEX leases_by_account ON leases (account_sid);"#,
];

/// Where a [`PostgresStore`] keeps its tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// A libpq-style URL or key/value string, e.g. `postgres://user@host:5432/db`.
    pub url: String,
    /// The schema, created if missing.
    pub schema: String,
}

impl Location {
    /// `url`, in the default schema.
    pub fn new(url: &str) -> Location {
        Location {
            url: url.to_string(),
            schema: DEFAULT_SCHEMA.to_string(),
        }
    }

    /// Opens a session with `search_path` set to the schema.
    pub(crate) fn connect(&self) -> Result<Client, StoreError> {
        let mut client = Client::connect(&self.url, NoTls)?;
        // Notices ("already exists, skipping") are not worth a log line each start.
        client.batch_execute(&format!(
            "SET client_min_messages = warning; SET search_path TO {}",
            quote_ident(&self.schema)
        ))?;
        Ok(client)
    }
}

/// The server's own message for an error it reported (the client's `Display` says only
/// "db error"), or the client's error and its cause.
pub(crate) fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

/// A double-quoted SQL identifier (a schema name may be anything the operator chose).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The writer's statements, prepared once for its session. A statement sent as text is
/// parsed and described by the server in a round trip of its own before it runs, which
/// doubled the round trips of a commit (and the commit's time, on the writer's one thread).
struct Prepared {
    leases_check: Statement,
    accounts_put: Statement,
    accounts_notify: Statement,
    resources_put: Statement,
    resources_delete: Statement,
    events_put: Statement,
    cursors_put: Statement,
    buckets_put: Statement,
}

impl Prepared {
    fn new(client: &mut Client) -> Result<Prepared, StoreError> {
        Ok(Prepared {
            leases_check: client.prepare(LEASES_CHECK)?,
            accounts_put: client.prepare(ACCOUNTS_PUT)?,
            accounts_notify: client.prepare(ACCOUNTS_NOTIFY)?,
            resources_put: client.prepare(RESOURCES_PUT)?,
            resources_delete: client.prepare(RESOURCES_DELETE)?,
            events_put: client.prepare(EVENTS_PUT)?,
            cursors_put: client.prepare(CURSORS_PUT)?,
            buckets_put: client.prepare(BUCKETS_PUT)?,
        })
    }
}

const LEASES_CHECK: &str = "SELECT workspace_sid, epoch FROM leases
    WHERE workspace_sid = ANY($1) AND node_id = $2
    ORDER BY workspace_sid FOR SHARE";
const ACCOUNTS_PUT: &str = "INSERT INTO accounts (sid, body)
    SELECT * FROM unnest($1::text[], $2::text[])
    ON CONFLICT (sid) DO UPDATE SET body = excluded.body";
const ACCOUNTS_NOTIFY: &str = "SELECT pg_notify($1, current_schema() || ' account ' || s)
    FROM unnest($2::text[]) s";
const RESOURCES_PUT: &str = "INSERT INTO resources (workspace_sid, kind, sid, body)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
    ON CONFLICT (workspace_sid, kind, sid) DO UPDATE SET body = excluded.body";
const RESOURCES_DELETE: &str = "DELETE FROM resources r
    USING unnest($1::text[], $2::text[], $3::text[]) AS d(ws, kind, sid)
    WHERE r.workspace_sid = d.ws AND r.kind = d.kind AND r.sid = d.sid";
const EVENTS_PUT: &str = "INSERT INTO events (workspace_sid, sid, event_type, date_ms, task_sid,
        worker_sid, reservation_sid, task_queue_sid, workflow_sid, task_channel_sid, callback, body)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[],
        $7::text[], $8::text[], $9::text[], $10::text[], $11::bool[], $12::text[])";
const CURSORS_PUT: &str = "INSERT INTO event_cursors (workspace_sid, sid)
    SELECT * FROM unnest($1::text[], $2::text[])
    ON CONFLICT (workspace_sid) DO UPDATE SET sid = excluded.sid";
const BUCKETS_PUT: &str =
    "INSERT INTO stat_buckets (workspace_sid, scope, span_ms, start_ms, channel, body)
    SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::text[], $6::text[])
    ON CONFLICT (workspace_sid, scope, span_ms, start_ms, channel)
    DO UPDATE SET body = excluded.body";

/// A [`Store`] over a PostgreSQL schema: one writer session, committing group commits.
pub struct PostgresStore {
    client: Client,
    prepared: Prepared,
    location: Location,
    /// Set on a node of a cluster: which workspaces it may write (see [`crate::cluster`]).
    fence: Option<Fence>,
}

/// What a fenced store checks each commit against: this node's id and the epochs of the
/// leases it holds.
struct Fence {
    node: String,
    held: Held,
}

impl PostgresStore {
    /// Connects, creates the schema if needed and runs the migrations this build has and
    /// the database lacks.
    pub fn open(location: Location) -> Result<PostgresStore, StoreError> {
        let mut client = location.connect()?;
        // A commit is acknowledged only once it is durable, even where the database's
        // default says otherwise.
        client.batch_execute("SET synchronous_commit = on")?;
        migrate(&mut client, &location.schema)?;
        let prepared = Prepared::new(&mut client)?;
        Ok(PostgresStore {
            client,
            prepared,
            location,
            fence: None,
        })
    }

    /// From now on every commit that writes a workspace first checks, in its transaction,
    /// that `node` still holds that workspace's lease at the epoch `held` gives; writes of
    /// a workspace it no longer holds are refused ([`StoreError::Fenced`]) and nothing of
    /// the commit is kept. This is what keeps a node that lost a lease (paused, partitioned)
    /// from writing over its new owner.
    ///
    /// A commit share-locks the lease rows it checks until it ends, so a node paused or cut
    /// off mid-commit would keep every other node from taking those leases; the database
    /// ends such a session after `lease / 2` idle in its transaction (the node then stops
    /// when it finds its session gone, and a restart reloads what is committed).
    pub fn fence(
        &mut self,
        node: &str,
        held: Held,
        lease: std::time::Duration,
    ) -> Result<(), StoreError> {
        self.client.batch_execute(&idle_limit(lease))?;
        self.fence = Some(Fence {
            node: node.to_string(),
            held,
        });
        Ok(())
    }

    /// A reader of the committed events, with sessions of its own.
    pub fn event_log(&self) -> PostgresEventLog {
        PostgresEventLog {
            sessions: Sessions::new(self.location.clone(), true, String::new()),
        }
    }
}

/// The setting that ends a session left idle inside a transaction for half a lease (a node
/// paused or cut off while holding lease rows locked).
pub(crate) fn idle_limit(lease: std::time::Duration) -> String {
    format!(
        "SET idle_in_transaction_session_timeout = {}",
        (lease.as_millis() / 2).max(100)
    )
}

/// The key that serialises migrations between nodes (any constant; "TY" in ASCII).
const MIGRATION_LOCK: i64 = 0x5459;

fn migrate(client: &mut Client, schema: &str) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {};
         CREATE TABLE IF NOT EXISTS taskyard_migrations (
             version    integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );",
        quote_ident(schema)
    ))?;
    let found: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM taskyard_migrations",
            &[],
        )?
        .get(0);
    let supported = MIGRATIONS.len() as i32;
    if found > supported {
        return Err(StoreError::SchemaTooNew {
            found: found.into(),
            supported: supported.into(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO taskyard_migrations (version) VALUES ($1)",
            &[&(i as i32 + 1)],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// The writes of one commit, folded into one statement per table.
///
/// Later writes to the same key replace earlier ones (PostgreSQL refuses to touch a row
/// twice in one `INSERT … ON CONFLICT`). Writes whose order matters to other tables (dropping
/// a workspace, purging events) first flush what is batched, so the outcome is that of
/// running every write in turn.
#[derive(Default)]
struct Batch {
    accounts: HashMap<Sid, String>,
    /// `None` deletes the row.
    rows: HashMap<(Sid, Kind, Sid), Option<String>>,
    events: Vec<(Sid, StoredEvent)>,
    cursors: HashMap<Sid, Sid>,
    buckets: HashMap<(Sid, String, i64, i64, String), String>,
}

impl Batch {
    fn flush(&mut self, tx: &mut Transaction<'_>, sql: &Prepared) -> Result<(), StoreError> {
        if !self.accounts.is_empty() {
            let (sids, bodies): (Vec<String>, Vec<String>) = self
                .accounts
                .drain()
                .map(|(sid, body)| (sid.to_string(), body))
                .unzip();
            tx.execute(&sql.accounts_put, &[&sids, &bodies])?;
            // Other nodes keep accounts in memory too: tell them (sent on commit).
            tx.execute(&sql.accounts_notify, &[&crate::cluster::CHANNEL, &sids])?;
        }
        if !self.rows.is_empty() {
            let mut put: [Vec<String>; 4] = Default::default();
            let mut delete: [Vec<String>; 3] = Default::default();
            for ((ws, kind, sid), body) in self.rows.drain() {
                let key = [ws.to_string(), kind.as_str().to_string(), sid.to_string()];
                match body {
                    Some(body) => {
                        for (column, value) in put.iter_mut().zip(key) {
                            column.push(value);
                        }
                        put[3].push(body);
                    }
                    None => {
                        for (column, value) in delete.iter_mut().zip(key) {
                            column.push(value);
                        }
                    }
                }
            }
            if !put[0].is_empty() {
                tx.execute(&sql.resources_put, &[&put[0], &put[1], &put[2], &put[3]])?;
            }
            if !delete[0].is_empty() {
                tx.execute(&sql.resources_delete, &[&delete[0], &delete[1], &delete[2]])?;
            }
        }
        if !self.events.is_empty() {
            self.flush_events(tx, sql)?;
        }
        if !self.cursors.is_empty() {
            let (ws, sids): (Vec<String>, Vec<String>) = self
                .cursors
                .drain()
                .map(|(ws, sid)| (ws.to_string(), sid.to_string()))
                .unzip();
            tx.execute(&sql.cursors_put, &[&ws, &sids])?;
        }
        if !self.buckets.is_empty() {
            let mut text: [Vec<String>; 4] = Default::default();
            let mut spans = Vec::new();
            let mut starts = Vec::new();
            for ((ws, scope, span, start, channel), body) in self.buckets.drain() {
                text[0].push(ws.to_string());
                text[1].push(scope);
                text[2].push(channel);
                text[3].push(body);
                spans.push(span);
                starts.push(start);
            }
            tx.execute(
                &sql.buckets_put,
                &[&text[0], &text[1], &spans, &starts, &text[2], &text[3]],
            )?;
        }
        Ok(())
    }

    /// A plain INSERT: an event SID stored twice is a bug upstream and must not be hidden,
    /// so the primary key fails the commit.
    fn flush_events(&mut self, tx: &mut Transaction<'_>, sql: &Prepared) -> Result<(), StoreError> {
        let n = self.events.len();
        let mut text: [Vec<String>; 4] = std::array::from_fn(|_| Vec::with_capacity(n));
        let mut sids: [Vec<Option<String>>; 6] = std::array::from_fn(|_| Vec::with_capacity(n));
        let mut dates = Vec::with_capacity(n);
        let mut callbacks = Vec::with_capacity(n);
        for (ws, e) in self.events.drain(..) {
            text[0].push(ws.to_string());
            text[1].push(e.sid.to_string());
            text[2].push(e.event_type);
            text[3].push(e.json);
            let about = [
                e.task_sid,
                e.worker_sid,
                e.reservation_sid,
                e.task_queue_sid,
                e.workflow_sid,
                e.task_channel_sid,
            ];
            for (column, sid) in sids.iter_mut().zip(about) {
                column.push(sid.map(|s| s.to_string()));
            }
            dates.push(e.date_ms);
            callbacks.push(e.callback);
        }
        let params: [&(dyn ToSql + Sync); 12] = [
            &text[0], &text[1], &text[2], &dates, &sids[0], &sids[1], &sids[2], &sids[3], &sids[4],
            &sids[5], &callbacks, &text[3],
        ];
        tx.execute(&sql.events_put, &params)?;
        Ok(())
    }
}

impl PostgresStore {
    fn write_all(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        let sql = &self.prepared;
        let mut tx = self.client.transaction()?;
        if let Some(fence) = &self.fence {
            check_leases(&mut tx, fence, writes, sql)?;
        }
        let mut batch = Batch::default();
        for write in writes {
            match write {
                Write::Account(a) => {
                    let body =
                        serde_json::to_string(a).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    batch.accounts.insert(a.sid, body);
                }
                Write::Workspace {
                    workspace,
                    changes,
                    events,
                } => {
                    for change in changes {
                        match change {
                            Change::Put { kind, sid, body } => {
                                batch
                                    .rows
                                    .insert((*workspace, *kind, *sid), Some(body.to_json().into()));
                            }
                            Change::Delete { kind, sid } => {
                                batch.rows.insert((*workspace, *kind, *sid), None);
                            }
                            Change::DropWorkspace => {
                                batch.flush(&mut tx, sql)?;
                                drop_workspace(&mut tx, *workspace)?;
                            }
                        }
                    }
                    batch
                        .events
                        .extend(events.iter().map(|e| (*workspace, e.clone())));
                }
                Write::EventCursor {
                    workspace,
                    delivered,
                } => {
                    batch.cursors.insert(*workspace, *delivered);
                }
                Write::PurgeEvents { before_ms } => {
                    batch.flush(&mut tx, sql)?;
                    purge_events(&mut tx, *before_ms)?;
                }
                Write::Stats { workspace, buckets } => {
                    for b in buckets {
                        batch.buckets.insert(
                            (
                                *workspace,
                                b.scope.clone(),
                                b.span_ms,
                                b.start_ms,
                                channel_text(b.channel),
                            ),
                            b.body.clone(),
                        );
                    }
                }
            }
        }
        batch.flush(&mut tx, sql)?;
        tx.commit()?;
        Ok(())
    }
}

/// Deadlock detected, or a serialization failure: the transaction was rolled back.
fn retryable(e: &postgres::Error) -> bool {
    e.as_db_error()
        .is_some_and(|db| matches!(db.code().code(), "40P01" | "40001"))
}

/// Refuses the commit unless this node holds, at the epochs it knows, the lease of every
/// workspace the writes touch. The lease rows stay share-locked until the commit ends, so
/// another node cannot take one of them in between: it takes it after this commit, and
/// then loads what this commit wrote.
fn check_leases(
    tx: &mut Transaction<'_>,
    fence: &Fence,
    writes: &[Write],
    sql: &Prepared,
) -> Result<(), StoreError> {
    let mut touched: Vec<Sid> = writes.iter().filter_map(Write::workspace).collect();
    if touched.is_empty() {
        return Ok(());
    }
    touched.sort();
    touched.dedup();
    let sids: Vec<String> = touched.iter().map(Sid::to_string).collect();
    let rows = tx.query(&sql.leases_check, &[&sids, &fence.node])?;
    let mut current = HashMap::with_capacity(rows.len());
    for row in &rows {
        current.insert(
            parse_sid(row.get(0), "lease workspace sid")?,
            row.get::<_, i64>(1),
        );
    }
    let held = fence.held.lock().unwrap_or_else(PoisonError::into_inner);
    let fenced: Vec<Sid> = touched
        .into_iter()
        .filter(|ws| match (held.get(ws), current.get(ws)) {
            (Some(mine), Some(now)) => mine != now,
            _ => true,
        })
        .collect();
    if fenced.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Fenced { workspaces: fenced })
    }
}

/// Deletes everything a workspace owns, its lease too.
fn drop_workspace(tx: &mut Transaction<'_>, ws: Sid) -> Result<(), StoreError> {
    let ws = ws.to_string();
    tx.execute(
        "WITH r AS (DELETE FROM resources WHERE workspace_sid = $1),
              e AS (DELETE FROM events WHERE workspace_sid = $1),
              c AS (DELETE FROM event_cursors WHERE workspace_sid = $1),
              l AS (DELETE FROM leases WHERE workspace_sid = $1)
         DELETE FROM stat_buckets WHERE workspace_sid = $1",
        &[&ws],
    )?;
    Ok(())
}

/// Deletes the events dated before `before_ms`, and the statistics buckets that ended by
/// then.
fn purge_events(tx: &mut Transaction<'_>, before_ms: i64) -> Result<(), StoreError> {
    tx.execute(
        "WITH b AS (DELETE FROM stat_buckets WHERE start_ms + span_ms <= $1)
         DELETE FROM events WHERE date_ms < $1",
        &[&before_ms],
    )?;
    Ok(())
}

/// The stored workspaces (all, or the one given), with their cursors and newest events.
pub(crate) fn read_workspaces(
    tx: &mut Transaction<'_>,
    only: Option<Sid>,
) -> Result<Vec<StoredWorkspace>, StoreError> {
    let only = only.map(|s| s.to_string());
    let rows = tx.query(
        "SELECT workspace_sid, kind, body FROM resources
         WHERE $1::text IS NULL OR workspace_sid = $1
         ORDER BY workspace_sid, kind, sid",
        &[&only],
    )?;
    let mut workspaces: Vec<StoredWorkspace> = Vec::new();
    for row in rows {
        let ws = parse_sid(row.get(0), "workspace sid")?;
        let kind: &str = row.get(1);
        let kind = Kind::parse(kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown row kind {kind}")))?;
        let body: String = row.get(2);
        match workspaces.last_mut() {
            Some(last) if last.sid == ws => last.rows.push((kind, body)),
            _ => workspaces.push(StoredWorkspace {
                sid: ws,
                rows: vec![(kind, body)],
                event_cursor: None,
                newest_event: None,
            }),
        }
    }
    let mut cursors = HashMap::new();
    for row in tx.query(
        "SELECT workspace_sid, sid FROM event_cursors WHERE $1::text IS NULL OR workspace_sid = $1",
        &[&only],
    )? {
        cursors.insert(
            parse_sid(row.get(0), "cursor workspace sid")?,
            parse_sid(row.get(1), "cursor event sid")?,
        );
    }
    // One index probe per workspace; a GROUP BY over the events would read them all.
    let newest = tx.prepare("SELECT max(sid) FROM events WHERE workspace_sid = $1")?;
    for ws in &mut workspaces {
        ws.event_cursor = cursors.remove(&ws.sid);
        let row = tx.query_one(&newest, &[&ws.sid.to_string()])?;
        ws.newest_event = row
            .get::<_, Option<&str>>(0)
            .map(|s| parse_sid(s, "event sid"))
            .transpose()?;
    }
    Ok(workspaces)
}

impl Store for PostgresStore {
    fn load(&mut self) -> Result<Snapshot, StoreError> {
        // One snapshot for all of it: a row and the events of the same commit agree.
        let mut tx = self
            .client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let mut snapshot = Snapshot::default();
        for row in tx.query("SELECT body FROM accounts ORDER BY sid", &[])? {
            let account: Account = serde_json::from_str(row.get(0))
                .map_err(|e| StoreError::Corrupt(format!("account row: {e}")))?;
            snapshot.accounts.push(account);
        }
        snapshot.workspaces = read_workspaces(&mut tx, None)?;
        tx.commit()?;
        Ok(snapshot)
    }

    fn commit(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        // A deadlock or serialization failure rolls the whole transaction back: nothing of
        // it was kept, so it is simply run again.
        let mut attempts = 0;
        loop {
            match self.write_all(writes) {
                Err(StoreError::Postgres(e)) if attempts < 5 && retryable(&e) => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(attempts * 5));
                }
                other => return other,
            }
        }
    }

    fn event_log(&self) -> Result<Box<dyn EventLog>, StoreError> {
        Ok(Box::new(PostgresStore::event_log(self)))
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
            .client
            .query_opt(
                "SELECT body FROM stat_buckets WHERE workspace_sid = $1 AND scope = $2
                 AND span_ms = $3 AND start_ms = $4 AND channel = $5",
                &[
                    &workspace.to_string(),
                    &scope,
                    &span_ms,
                    &start_ms,
                    &channel_text(channel),
                ],
            )?
            .map(|r| r.get(0)))
    }
}

/// The events of a [`PostgresStore`], read through sessions of its own.
///
/// Sessions are opened on demand and kept for reuse; concurrent queries each get one, so
/// they do not queue behind each other. Each query is one statement, which PostgreSQL runs
/// against one committed snapshot.
pub struct PostgresEventLog {
    sessions: Sessions,
}

/// A pool of sessions for queries that run beside the writer: opened on demand, kept for
/// reuse, and given one each to concurrent callers, so that they do not queue behind each
/// other.
pub(crate) struct Sessions {
    location: Location,
    read_only: bool,
    /// Run once on each new session.
    setup: String,
    idle: Mutex<Vec<Client>>,
    /// Sessions open now (idle or in use), and a wake-up for callers waiting for one.
    open: Mutex<usize>,
    freed: std::sync::Condvar,
}

/// Idle sessions beyond this are closed (each one is a server process).
const MAX_IDLE_SESSIONS: usize = 4;

/// At most this many sessions are open at once: more callers wait for one, rather than
/// use up the database's connections.
const MAX_SESSIONS: usize = 16;

impl Sessions {
    pub(crate) fn new(location: Location, read_only: bool, setup: String) -> Sessions {
        Sessions {
            location,
            read_only,
            setup,
            idle: Mutex::new(Vec::new()),
            open: Mutex::new(0),
            freed: std::sync::Condvar::new(),
        }
    }

    /// Waits until a session may be opened (or an idle one is back), and counts it open.
    fn reserve(&self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        while *open >= MAX_SESSIONS {
            open = self
                .freed
                .wait(open)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *open += 1;
    }

    fn release(&self) {
        *self.open.lock().unwrap_or_else(PoisonError::into_inner) -= 1;
        self.freed.notify_one();
    }

    pub(crate) fn with_client<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // Counted from here until the session is back in the pool or closed.
        self.reserve();
        let _counted = Reserved(self);
        self.use_session(f)
    }

    fn use_session<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // The pool is only pushed to and popped from: a poisoned lock is safe to use.
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut client = match idle {
            Some(c) if !c.is_closed() => c,
            _ => {
                let mut c = self.location.connect()?;
                if self.read_only {
                    // This side must never change what the writer committed.
                    c.batch_execute("SET default_transaction_read_only = on")?;
                } else {
                    c.batch_execute("SET synchronous_commit = on")?;
                }
                if !self.setup.is_empty() {
                    c.batch_execute(&self.setup)?;
                }
                c
            }
        };
        let out = f(&mut client);
        // A session that just failed is not trusted with the next query.
        if out.is_ok() {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE_SESSIONS {
                idle.push(client);
            }
        }
        out
    }
}

/// Releases a reserved session slot however the call ends.
struct Reserved<'a>(&'a Sessions);

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl Drop for Sessions {
    fn drop(&mut self) {
        // Closing a session blocks on the client's own runtime, which panics on a thread
        // that drives an async runtime (where the server drops its pools): close them on a
        // thread of their own.
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(PoisonError::into_inner));
        if !idle.is_empty() {
            let _ = std::thread::Builder::new()
                .name("taskyard-pg-close".into())
                .spawn(move || drop(idle));
        }
    }
}

/// The columns `read_event` reads, in its order.
const EVENT_COLUMNS: &str = "sid, event_type, date_ms, task_sid, worker_sid, reservation_sid,
    task_queue_sid, workflow_sid, task_channel_sid, callback, body";

impl PostgresEventLog {
    fn select(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.with_client(|c| c.query(sql, params)?.iter().map(read_event).collect())
    }

    fn with_client<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.sessions.with_client(f)
    }
}

fn read_event(row: &Row) -> Result<StoredEvent, StoreError> {
    let sid = |i: usize, what: &str| -> Result<Option<Sid>, StoreError> {
        row.get::<_, Option<&str>>(i)
            .map(|s| parse_sid(s, what))
            .transpose()
    };
    Ok(StoredEvent {
        sid: parse_sid(row.get(0), "event sid")?,
        event_type: row.get(1),
        date_ms: row.get(2),
        task_sid: sid(3, "task sid")?,
        worker_sid: sid(4, "worker sid")?,
        reservation_sid: sid(5, "reservation sid")?,
        task_queue_sid: sid(6, "task queue sid")?,
        workflow_sid: sid(7, "workflow sid")?,
        task_channel_sid: sid(8, "task channel sid")?,
        callback: row.get(9),
        json: row.get(10),
    })
}

impl EventLog for PostgresEventLog {
    fn query(&self, q: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        if q.limit == 0 {
            return Ok(Vec::new());
        }
        let mut params: Vec<Box<dyn ToSql + Sync>> = vec![Box::new(q.workspace.to_string())];
        let mut conditions = vec!["workspace_sid = $1".to_string()];
        let mut bind = |condition: &str, value: Box<dyn ToSql + Sync>| {
            params.push(value);
            conditions.push(format!("{condition} ${}", params.len()));
        };
        // Every bound on the SID is a bound on the primary key; PostgreSQL keeps the
        // tightest of them, and time windows are SID ranges because SIDs sort by time.
        if let Some(ms) = q.start_ms {
            bind("sid >=", Box::new(sid_bound(ms, '0')));
            bind("date_ms >=", Box::new(ms));
        }
        if let Some(ms) = q.end_ms {
            bind("sid <=", Box::new(sid_bound(ms, 'f')));
            bind("date_ms <=", Box::new(ms));
        }
        for (condition, sid) in [
            ("sid >", q.after),
            ("sid <", q.before),
            ("sid =", q.sid),
            ("task_sid =", q.task_sid),
            ("worker_sid =", q.worker_sid),
            ("reservation_sid =", q.reservation_sid),
            ("task_queue_sid =", q.task_queue_sid),
            ("workflow_sid =", q.workflow_sid),
            ("task_channel_sid =", q.task_channel_sid),
        ] {
            if let Some(sid) = sid {
                bind(condition, Box::new(sid.to_string()));
            }
        }
        if let Some(t) = &q.event_type {
            bind("event_type =", Box::new(t.clone()));
        }
        params.push(Box::new(i64::try_from(q.limit).unwrap_or(i64::MAX)));
        let order = if q.before.is_some() { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE {} ORDER BY sid {order} LIMIT ${}",
            conditions.join(" AND "),
            params.len()
        );
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
        let mut events = self.select(&sql, &params)?;
        if q.before.is_some() {
            // Read backwards from `before` to find the page; it is returned in order.
            events.reverse();
        }
        Ok(events)
    }

    fn fetch(&self, workspace: Sid, sid: Sid) -> Result<Option<StoredEvent>, StoreError> {
        Ok(self
            .select(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE workspace_sid = $1 AND sid = $2"
                ),
                &[&workspace.to_string(), &sid.to_string()],
            )?
            .pop())
    }

    fn to_deliver(
        &self,
        workspace: Sid,
        after: Option<Sid>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        // `callback` is spelled as in `events_outbox`, so that the partial index applies;
        // '' is below every SID.
        self.select(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM events
                 WHERE workspace_sid = $1 AND callback AND sid > $2 ORDER BY sid LIMIT $3"
            ),
            &[
                &workspace.to_string(),
                &after.map(|s| s.to_string()).unwrap_or_default(),
                &i64::try_from(limit).unwrap_or(i64::MAX),
            ],
        )
    }

    fn stat_buckets(
        &self,
        workspace: Sid,
        scope: &str,
        span_ms: i64,
        from_ms: i64,
        to_ms: i64,
        channel: Option<Sid>,
    ) -> Result<Vec<StatBucket>, StoreError> {
        self.with_client(|c| {
            c.query(
                "SELECT start_ms, channel, body FROM stat_buckets
                 WHERE workspace_sid = $1 AND scope = $2 AND span_ms = $3
                   AND start_ms >= $4 AND start_ms <= $5 AND ($6 = '' OR channel = $6)",
                &[
                    &workspace.to_string(),
                    &scope,
                    &span_ms,
                    &from_ms,
                    &to_ms,
                    &channel_text(channel),
                ],
            )?
            .iter()
            .map(|row| {
                let channel: &str = row.get(1);
                Ok(StatBucket {
                    scope: scope.to_string(),
                    span_ms,
                    start_ms: row.get(0),
                    channel: if channel.is_empty() {
                        None
                    } else {
                        Some(parse_sid(channel, "bucket channel")?)
                    },
                    body: row.get(2),
                })
            })
            .collect()
        })
    }
}

/// The database tests run against: `TASKYARD_TEST_DATABASE_URL`, or a local server.
pub fn test_database_url() -> String {
    std::env::var("TASKYARD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A schema of its own for one test run, dropped with everything in it when this is
/// dropped, so runs never collide and leave nothing behind.
pub struct ScratchSchema {
    pub location: Location,
}

impl ScratchSchema {
    /// A new, empty, uniquely named schema in the database at `url`.
    pub fn create(url: &str) -> Result<ScratchSchema, StoreError> {
        let name = format!(
            "taskyard_test_{}_{:016x}",
            std::process::id(),
            fastrand::u64(..)
        );
        let location = Location {
            url: url.to_string(),
            schema: name,
        };
        Client::connect(url, NoTls)?
            .batch_execute(&format!("CREATE SCHEMA {}", quote_ident(&location.schema)))?;
        Ok(ScratchSchema { location })
    }
}

impl Drop for ScratchSchema {
    fn drop(&mut self) {
        let dropped = Client::connect(&self.location.url, NoTls).and_then(|mut c| {
            c.batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                quote_ident(&self.location.schema)
            ))
        });
        if let Err(e) = dropped {
            eprintln!("could not drop schema {}: {e}", self.location.schema);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> ScratchSchema {
        let url = test_database_url();
        ScratchSchema::create(&url).unwrap_or_else(|e| {
            panic!(
                "the PostgreSQL tests need a server: {e} ({url}; set TASKYARD_TEST_DATABASE_URL)"
            )
        })
    }

    #[test]
    fn postgres_passes_the_conformance_suite() {
        let scratch = scratch();
        crate::conformance::run(|| PostgresStore::open(scratch.location.clone()).expect("open"));
    }

    #[test]
    fn refuses_a_schema_from_a_newer_build() {
        let scratch = scratch();
        drop(PostgresStore::open(scratch.location.clone()).expect("open"));
        let mut c = scratch.location.connect().expect("connect");
        c.execute(
            "INSERT INTO taskyard_migrations (version) VALUES (999)",
            &[],
        )
        .expect("insert");
        match PostgresStore::open(scratch.location.clone()) {
            Err(StoreError::SchemaTooNew { found: 999, .. }) => {}
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a newer schema was opened"),
        }
    }

    #[test]
    fn nodes_starting_at_once_migrate_once() {
        let scratch = scratch();
        let opened: Vec<_> = (0..4)
            .map(|_| {
                let location = scratch.location.clone();
                std::thread::spawn(move || PostgresStore::open(location).map(drop))
            })
            .collect();
        for o in opened {
            // One writer at a time: a node may find the schema in use, never half-migrated.
            match o.join().expect("thread") {
                Ok(()) | Err(StoreError::InUse { .. }) => {}
                Err(e) => panic!("open: {e}"),
            }
        }
        let mut c = scratch.location.connect().expect("connect");
        let n: i64 = c
            .query_one("SELECT count(*) FROM taskyard_migrations", &[])
            .expect("count")
            .get(0);
        assert_eq!(n, MIGRATIONS.len() as i64);
    }

    #[test]
    fn the_event_log_cannot_write() {
        let scratch = scratch();
        let store = PostgresStore::open(scratch.location.clone()).expect("open");
        let log = store.event_log();
        let err = log
            .with_client(|c| Ok(c.batch_execute("DELETE FROM events")?))
            .expect_err("a reader wrote");
        assert!(err.to_string().contains("read-only"), "{err}");
    }

    #[test]
    fn a_failed_commit_keeps_nothing() {
        let scratch = scratch();
        let mut store = PostgresStore::open(scratch.location.clone()).expect("open");
        let ws = Sid::new("WS", 1);
        let ev = StoredEvent {
            sid: Sid::new("EV", 5 << 80),
            event_type: "task.created".into(),
            date_ms: 5,
            task_sid: None,
            worker_sid: None,
            reservation_sid: None,
            task_queue_sid: None,
            workflow_sid: None,
            task_channel_sid: None,
            callback: true,
            json: "{}".into(),
        };
        let write = |events: Vec<StoredEvent>| Write::Workspace {
            workspace: ws,
            changes: vec![Change::Put {
                kind: Kind::Workspace,
                sid: ws,
                body: "{}".into(),
            }],
            events,
        };
        store.commit(&[write(vec![ev.clone()])]).expect("first");
        // The same event SID again fails the whole commit, rows included.
        let other = Write::Account(Account {
            sid: Sid::new("AC", 1),
            auth_token: "t".into(),
            friendly_name: "x".into(),
            owner_account_sid: None,
            date_created: 0,
            date_updated: 0,
            api_keys: Vec::new(),
        });
        store
            .commit(&[other, write(vec![ev])])
            .expect_err("a duplicate event SID");
        let snap = store.load().expect("load");
        assert!(
            snap.accounts.is_empty(),
            "the failed commit's account stayed"
        );
        assert_eq!(snap.workspaces.len(), 1);
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
