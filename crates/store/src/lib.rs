//! # taskyard-store
//!
//! Durable storage behind Taskyard's in-memory engines.
//!
//! The engine describes every change as row-level [`Change`]s (a resource serialized as JSON,
//! keyed by workspace, kind and SID). A [`Store`] commits batches of them atomically and
//! durably, and hands everything back at start-up for recovery. The trait is deliberately
//! narrow — load everything, commit a group of writes in one transaction — so that the
//! embedded SQLite backend ([`sqlite::SqliteStore`]) and the PostgreSQL backend
//! ([`postgres::PostgresStore`]) sit side by side without the engine or the API knowing which one is in use. [`conformance`] is the one
//! test suite every backend must pass.
//!
//! Stores are synchronous on purpose: the server runs one on a dedicated writer thread that
//! drains whatever requests are queued and commits them together (group commit), so one
//! fsync covers many acknowledged requests.
//!
//! ## Events
//!
//! TaskRouter Events are not kept in memory: the engine hands them over with the changes that
//! caused them (the `events` of [`Write::Workspace`]), committed in the same transaction,
//! so nothing shows an event whose change could still be lost. They are append-only, read
//! back through an [`EventLog`] (the Events resource and the event-callback outbox) and
//! deleted by age ([`Write::PurgeEvents`], for the 30-day retention). Each workspace also has
//! a durable delivery cursor ([`Write::EventCursor`]): the last event POSTed to its event
//! callback URL, so that delivery resumes where it stopped after a restart.
//!
//! An [`EventLog`] reads alongside the writer rather than through it: a query never waits
//! for a commit, and it only ever sees committed events.

pub mod cluster;
mod codec;
pub mod conformance;
mod group;
pub mod postgres;
pub mod sqlite;

use taskyard_engine::{Account, Change, Kind, Sid};

/// One unit the writer commits: the changes of one command, an account to save, or event
/// bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Changes produced by one command in one workspace, and the events it caused.
    Workspace {
        workspace: Sid,
        changes: Vec<Change>,
        /// Appended after `changes`, in order. Each SID must be new: storing an event twice
        /// is a bug upstream, and fails the commit rather than hiding it.
        events: Vec<StoredEvent>,
    },
    /// Insert or replace an account.
    Account(Account),
    /// Sets the workspace's delivery cursor: `delivered` is the last event POSTed to its
    /// event callback URL. The cursor is replaced as given (it may also move back, to
    /// deliver again).
    EventCursor { workspace: Sid, delivered: Sid },
    /// Deletes the events of every workspace whose `date_ms` is before `before_ms`
    /// (retention). Run it often: each purge deletes what aged out since the last one, in
    /// the writer's transaction.
    PurgeEvents { before_ms: i64 },
    /// Replace these statistics buckets of one workspace (see `taskyard-stats`).
    Stats {
        workspace: Sid,
        buckets: Vec<StatBucket>,
    },
}

impl Write {
    /// The workspace this write belongs to, if it belongs to one.
    pub fn workspace(&self) -> Option<Sid> {
        match self {
            Write::Workspace { workspace, .. }
            | Write::EventCursor { workspace, .. }
            | Write::Stats { workspace, .. } => Some(*workspace),
            Write::Account(_) | Write::PurgeEvents { .. } => None,
        }
    }
}

/// One TaskRouter event as the store keeps it. `json` is the event rendered by the engine
/// (opaque to the store); the other fields are columns for filtering.
///
/// Time windows are answered from the SID (see [`EventQuery::start_ms`]), so `sid` must be
/// an `EV` SID created when the event happened: `sid.created_ms()` equal to `date_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// `EV…`, time-ordered: the first 12 hex digits are the creation ms
    /// ([`Sid::created_ms`]).
    pub sid: Sid,
    /// E.g. `"task.created"`.
    pub event_type: String,
    pub date_ms: i64,
    pub task_sid: Option<Sid>,
    pub worker_sid: Option<Sid>,
    pub reservation_sid: Option<Sid>,
    pub task_queue_sid: Option<Sid>,
    pub workflow_sid: Option<Sid>,
    pub task_channel_sid: Option<Sid>,
    /// Whether the event is to be POSTed to the workspace's event callback URL.
    pub callback: bool,
    pub json: String,
}

/// One bucket of cumulative statistics: what the events of one scope and task channel added
/// up to in one minute or hour (`body` is opaque to the store).
#[derive(Debug, Clone, PartialEq)]
pub struct StatBucket {
    /// `workspace`, `workers`, or a queue, workflow or worker SID.
    pub scope: String,
    pub span_ms: i64,
    pub start_ms: i64,
    pub channel: Option<Sid>,
    pub body: String,
}

/// Which events of one workspace [`EventLog::query`] returns. Every filter that is set must
/// match; results are in ascending SID (that is, creation) order.
#[derive(Debug, Clone, PartialEq)]
pub struct EventQuery {
    pub workspace: Sid,
    /// Inclusive lower bound on `date_ms`.
    ///
    /// Windows are turned into SID bounds too, since SIDs sort by time; that is what keeps
    /// a window over a long history cheap. Hence [`StoredEvent`]'s rule that an event's SID
    /// is created at its `date_ms`.
    pub start_ms: Option<i64>,
    /// Inclusive upper bound on `date_ms`.
    pub end_ms: Option<i64>,
    pub event_type: Option<String>,
    pub task_sid: Option<Sid>,
    pub worker_sid: Option<Sid>,
    pub reservation_sid: Option<Sid>,
    pub task_queue_sid: Option<Sid>,
    pub workflow_sid: Option<Sid>,
    pub task_channel_sid: Option<Sid>,
    pub sid: Option<Sid>,
    /// Exclusive lower bound on the SID (paging forward).
    pub after: Option<Sid>,
    /// Exclusive upper bound on the SID (paging back): the `limit` matching events just
    /// before it are returned, still in ascending order.
    pub before: Option<Sid>,
    /// At most this many events are returned.
    pub limit: usize,
}

impl EventQuery {
    /// Twilio's default page size.
    pub const DEFAULT_LIMIT: usize = 50;

    /// Every event of `workspace`, [`EventQuery::DEFAULT_LIMIT`] at a time.
    pub fn new(workspace: Sid) -> EventQuery {
        EventQuery {
            workspace,
            start_ms: None,
            end_ms: None,
            event_type: None,
            task_sid: None,
            worker_sid: None,
            reservation_sid: None,
            task_queue_sid: None,
            workflow_sid: None,
            task_channel_sid: None,
            sid: None,
            after: None,
            before: None,
            limit: EventQuery::DEFAULT_LIMIT,
        }
    }
}

/// The read side of the stored events. It is shared by the API's request handlers and the
/// event-callback deliverers, so it is `Sync`, and it reads only what is committed.
pub trait EventLog: Send + Sync + 'static {
    /// Events matching every given filter, ascending by SID, at most `limit`.
    fn query(&self, q: &EventQuery) -> Result<Vec<StoredEvent>, StoreError>;

    /// One event of `workspace`, if stored.
    fn fetch(&self, workspace: Sid, sid: Sid) -> Result<Option<StoredEvent>, StoreError>;

    /// Events with `callback` set, SID > `after`, ascending, at most `limit` (the delivery
    /// outbox).
    fn to_deliver(
        &self,
        workspace: Sid,
        after: Option<Sid>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// The statistics buckets of one scope and span starting in `[from_ms, to_ms]`, of
    /// every channel (or only `channel`).
    fn stat_buckets(
        &self,
        workspace: Sid,
        scope: &str,
        span_ms: i64,
        from_ms: i64,
        to_ms: i64,
        channel: Option<Sid>,
    ) -> Result<Vec<StatBucket>, StoreError>;
}

/// Everything a store holds, as loaded at start-up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub accounts: Vec<Account>,
    pub workspaces: Vec<StoredWorkspace>,
}

/// The rows of one workspace, ready for `Workspace::restore`, and where its events stand.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredWorkspace {
    pub sid: Sid,
    pub rows: Vec<(Kind, String)>,
    /// The last event delivered to the event callback URL ([`Write::EventCursor`]).
    pub event_cursor: Option<Sid>,
    /// The largest event SID stored for the workspace (`None` once retention has deleted
    /// them all).
    pub newest_event: Option<Sid>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {}", postgres::describe(.0))]
    Postgres(#[from] ::postgres::Error),
    #[error("cannot open the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "the database schema version {found} is newer than this build understands ({supported})"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("{what} is in use by another Taskyard node")]
    InUse { what: String },
    /// The commit wrote workspaces whose leases this node no longer holds (another node
    /// took them over); nothing of it was kept.
    #[error("this node no longer holds the lease of {}", sids(.workspaces))]
    Fenced { workspaces: Vec<Sid> },
    #[error("cannot compress an event body: {0}")]
    Compress(String),
    #[error("cannot start the {name} thread: {source}")]
    Thread {
        name: &'static str,
        source: std::io::Error,
    },
}

impl StoreError {
    /// Whether the database connection was lost: a commit that failed so may or may not
    /// have been made durable (the answer to COMMIT never came back).
    pub fn connection_lost(&self) -> bool {
        match self {
            StoreError::Postgres(e) => match e.as_db_error() {
                // The server ended the session: idle in a transaction too long (25P03),
                // shut down (57P..), or the connection failed (08...).
                Some(db) => {
                    let code = db.code().code();
                    code == "25P03" || code.starts_with("57P") || code.starts_with("08")
                }
                // Closed, or a socket error on the way (not a type or protocol error).
                None => {
                    e.is_closed()
                        || std::error::Error::source(e)
                            .is_some_and(|c| c.downcast_ref::<std::io::Error>().is_some())
                }
            },
            _ => false,
        }
    }
}

/// A durable home for accounts, workspace rows and events.
pub trait Store: Send + 'static {
    /// Reads everything back (used once, at start-up).
    fn load(&mut self) -> Result<Snapshot, StoreError>;

    /// Commits all `writes` in one transaction. When this returns `Ok`, they survive a crash
    /// of the process (and, with the default settings, of the machine).
    fn commit(&mut self, writes: &[Write]) -> Result<(), StoreError>;

    /// A reader of this store's events that works independently of `self`: the store
    /// moves to the writer thread, the reader serves queries while it commits.
    fn event_log(&self) -> Result<Box<dyn EventLog>, StoreError>;

    /// One statistics bucket's body, if stored (the writer reads a bucket back when an
    /// event lands in one it no longer holds in memory).
    fn stat_bucket(
        &mut self,
        workspace: Sid,
        scope: &str,
        span_ms: i64,
        start_ms: i64,
        channel: Option<Sid>,
    ) -> Result<Option<String>, StoreError>;
}

fn sids(list: &[Sid]) -> String {
    list.iter()
        .map(Sid::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A bucket's channel column: the SID, or `''` for none.
fn channel_text(channel: Option<Sid>) -> String {
    channel.map(|c| c.to_string()).unwrap_or_default()
}

fn parse_sid(s: &str, what: &str) -> Result<Sid, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("bad {what} {s:?}")))
}

/// The text of the smallest (`fill` `'0'`) or largest (`'f'`) event SID created in
/// millisecond `ms`, clamped to the 48 bits a SID has for the time.
fn sid_bound(ms: i64, fill: char) -> String {
    let ms = ms.clamp(0, (1 << 48) - 1);
    let mut s = format!("{}{ms:012x}", taskyard_engine::sid::prefix::EVENT);
    s.extend(std::iter::repeat_n(fill, 20));
    s
}
