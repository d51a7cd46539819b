//! # taskyard-store
//!
//! Durable storage behind Taskyard's in-memory engines.
//!
//! The engine describes every change as row-level [`Change`]s (a resource serialized as JSON,
//! keyed by workspace, kind and SID). A [`Store`] commits batches of them atomically and
//! durably, and hands everything back at start-up for recovery. The trait is deliberately
//! narrow — load everything, commit a group of writes in one transaction — so that the
//! embedded SQLite backend ([`sqlite::SqliteStore`]) and a PostgreSQL backend can sit side by
//! side without the engine or the API knowing which one is in use. [`conformance`] is the one
//! test suite every backend must pass.
//!
//! Stores are synchronous on purpose: the server runs one on a dedicated writer thread that
//! drains whatever requests are queued and commits them together (group commit), so one
//! fsync covers many acknowledged requests.

pub mod conformance;
pub mod sqlite;

use taskyard_engine::{Account, Change, Kind, Sid};

/// One unit the writer commits: the changes of one command, or an account to save.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Changes produced by one command in one workspace.
    Workspace {
        workspace: Sid,
        changes: Vec<Change>,
    },
    /// Insert or replace an account.
    Account(Account),
}

/// Everything a store holds, as loaded at start-up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub accounts: Vec<Account>,
    pub workspaces: Vec<StoredWorkspace>,
}

/// The rows of one workspace, ready for `Workspace::restore`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredWorkspace {
    pub sid: Sid,
    pub rows: Vec<(Kind, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
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
}

/// A durable home for accounts and workspace rows.
pub trait Store: Send + 'static {
    /// Reads everything back (used once, at start-up).
    fn load(&mut self) -> Result<Snapshot, StoreError>;

    /// Commits all `writes` in one transaction. When this returns `Ok`, they survive a crash
    /// of the process (and, with the default settings, of the machine).
    fn commit(&mut self, writes: &[Write]) -> Result<(), StoreError>;
}
