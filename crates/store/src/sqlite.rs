//! The embedded default: one SQLite database file in the data directory.
//!
//! WAL journal, one writer connection, `synchronous=FULL` by default so that a committed
//! transaction survives power loss, not only a process crash (`NORMAL` is offered for those
//! who prefer speed to that guarantee). Schema changes are numbered migrations tracked in
//! `PRAGMA user_version`.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use taskyard_engine::{Account, Change, Kind, Sid};

use crate::{Snapshot, Store, StoreError, StoredWorkspace, Write};

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
];

pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    /// Opens (creating if needed) `taskyard.db` in `dir`.
    pub fn open(dir: &Path, durability: Durability) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
            path: dir.display().to_string(),
            source,
        })?;
        let conn = Connection::open(dir.join("taskyard.db"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let sync = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut store = SqliteStore { conn };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        let supported = MIGRATIONS.len() as i64;
        if version > supported {
            return Err(StoreError::SchemaTooNew {
                found: version,
                supported,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }
}

impl Store for SqliteStore {
    fn load(&mut self) -> Result<Snapshot, StoreError> {
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
            let ws: Sid = ws
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("bad workspace sid {ws}")))?;
            let kind = Kind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown row kind {kind}")))?;
            match snapshot.workspaces.last_mut() {
                Some(last) if last.sid == ws => last.rows.push((kind, body)),
                _ => snapshot.workspaces.push(StoredWorkspace {
                    sid: ws,
                    rows: vec![(kind, body)],
                }),
            }
        }
        Ok(snapshot)
    }

    fn commit(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO resources (workspace_sid, kind, sid, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (workspace_sid, kind, sid) DO UPDATE SET body = excluded.body",
            )?;
            let mut delete = tx.prepare_cached(
                "DELETE FROM resources WHERE workspace_sid = ?1 AND kind = ?2 AND sid = ?3",
            )?;
            let mut drop = tx.prepare_cached("DELETE FROM resources WHERE workspace_sid = ?1")?;
            let mut account = tx.prepare_cached(
                "INSERT INTO accounts (sid, body) VALUES (?1, ?2)
                 ON CONFLICT (sid) DO UPDATE SET body = excluded.body",
            )?;
            for write in writes {
                match write {
                    Write::Account(a) => {
                        let body = serde_json::to_string(a)
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                        account.execute(params![a.sid.to_string(), body])?;
                    }
                    Write::Workspace { workspace, changes } => {
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
                                Change::DropWorkspace => {
                                    drop.execute(params![ws])?;
                                }
                            }
                        }
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().expect("tempdir");
        crate::conformance::run(|| SqliteStore::open(dir.path(), Durability::Full).expect("open"));
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
