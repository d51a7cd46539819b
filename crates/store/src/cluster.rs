//! Several nodes on one PostgreSQL database: who owns which workspace.
//!
//! Each workspace has a lease row (`leases`): the node that holds it, until when (by the
//! database's clock, so the nodes' clocks need not agree), and an epoch. Only the holder
//! runs the workspace's engine; the other nodes forward its requests there. A node renews
//! all of its leases together, a few times per lease period ([`Leases::renew`]); when a node
//! stops renewing (it died, or is paused or cut off), its leases expire and the others take
//! them ([`Leases::claim`]), each adding one to the epoch and loading the workspace from
//! what is committed.
//!
//! Expiry alone would not be safe: a paused node wakes up believing it still owns its
//! workspaces. So the writer of a node checks, in every commit's transaction, that the
//! epochs it holds are still the current ones ([`crate::postgres::PostgresStore::fence`]),
//! share-locking those lease rows until it commits. A stale owner's commit is refused, and a
//! node taking a lease over waits for any commit of the old owner that got in first, then
//! loads it. Nothing one node acknowledged is lost, and no two nodes route one workspace.
//!
//! The nodes also tell each other what changed through `NOTIFY` on [`CHANNEL`]: an account
//! (accounts are cached in memory on every node), or leases handed over by a node shutting
//! down (so the others take them at once rather than when they expire).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, IsolationLevel};
use taskyard_engine::{Account, Kind, Sid};

use crate::postgres::{Location, Sessions, idle_limit, read_workspaces};
use crate::{StoreError, StoredWorkspace, parse_sid};

/// The `NOTIFY` channel. Notifications are database-wide, so each payload starts with the
/// schema it is about.
pub const CHANNEL: &str = "taskyard";

/// The leases a node holds: workspace → epoch. Shared by the lease keeper, which changes it,
/// and the node's fenced store, which checks every commit against it.
pub type Held = Arc<Mutex<HashMap<Sid, i64>>>;

/// Who this node is, as the others see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Unique in the cluster.
    pub node_id: String,
    /// Where the other nodes reach this one's HTTP API (forwarded requests).
    pub url: String,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
}

/// A workspace's lease, as a directory lookup found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub node_id: String,
    /// The owner's advertised URL (`None` if it has no live node row).
    pub url: Option<String>,
    /// The lease ran out and nobody has taken it yet.
    pub expired: bool,
}

/// What another node announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// An account was stored: reload it.
    Account(Sid),
    /// Leases were handed over: claim now.
    Leases,
}

/// A workspace just claimed: its lease and its committed state.
#[derive(Debug)]
pub struct Claimed {
    pub workspace: StoredWorkspace,
    pub epoch: i64,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The lease keeper's session: it registers the node, renews and claims leases, and listens
/// for the other nodes' notices. One per node, on a thread of its own (it blocks).
pub struct Leases {
    client: Client,
    node: NodeConfig,
    held: Held,
    schema: String,
}

impl Leases {
    /// Registers the node. If a live node already has this id (a node restarted at once
    /// after dying leaves its row until the lease runs out), waits up to one lease for it to
    /// expire, then refuses ([`StoreError::InUse`]): two live nodes must not share an id.
    pub fn join(location: &Location, node: NodeConfig, held: Held) -> Result<Leases, StoreError> {
        let mut client = location.connect()?;
        client.batch_execute(&format!(
            "SET synchronous_commit = on; {}; LISTEN {}",
            idle_limit(node.lease),
            crate::postgres::quote_ident(CHANNEL)
        ))?;
        let deadline = Instant::now() + node.lease + Duration::from_secs(1);
        loop {
            let joined = client.query_opt(
                "INSERT INTO nodes (node_id, url, expires_at)
                 VALUES ($1, $2, now() + $3::int8 * interval '1 millisecond')
                 ON CONFLICT (node_id) DO UPDATE
                     SET url = excluded.url, expires_at = excluded.expires_at
                     WHERE nodes.expires_at <= now()
                 RETURNING node_id",
                &[&node.node_id, &node.url, &millis(node.lease)],
            )?;
            if joined.is_some() {
                break;
            }
            if Instant::now() > deadline {
                return Err(StoreError::InUse {
                    what: format!("the node id {}", node.node_id),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(Leases {
            client,
            node,
            held,
            schema: location.schema.clone(),
        })
    }

    /// Extends this node's row and every lease it holds by one lease period, and returns
    /// the leases it turned out not to hold any more, which are dropped from the held set at
    /// once. A lease that expired counts as lost even if nobody took it yet (the node was
    /// too slow to renew, or handed it over meanwhile): [`Leases::claim`] may take it back,
    /// at a new epoch, from what is committed.
    pub fn renew(&mut self) -> Result<Vec<Sid>, StoreError> {
        let mine: Vec<(Sid, i64)> = lock(&self.held).iter().map(|(s, e)| (*s, *e)).collect();
        let sids: Vec<String> = mine.iter().map(|(s, _)| s.to_string()).collect();
        let epochs: Vec<i64> = mine.iter().map(|(_, e)| *e).collect();
        let lease = millis(self.node.lease);
        let mut tx = self.client.transaction()?;
        tx.execute(
            "INSERT INTO nodes (node_id, url, expires_at)
             VALUES ($1, $2, now() + $3::int8 * interval '1 millisecond')
             ON CONFLICT (node_id) DO UPDATE SET url = excluded.url, expires_at = excluded.expires_at",
            &[&self.node.node_id, &self.node.url, &lease],
        )?;
        // Rows are locked in SID order, as the writer's lease check locks them: two orders
        // would deadlock against a commit in flight.
        let rows = tx.query(
            "WITH mine AS (
                 SELECT l.workspace_sid FROM leases l
                 JOIN unnest($3::text[], $4::int8[]) AS h(sid, epoch)
                   ON l.workspace_sid = h.sid AND l.epoch = h.epoch
                 WHERE l.node_id = $1 AND l.expires_at > now()
                 ORDER BY l.workspace_sid
                 FOR UPDATE OF l)
             UPDATE leases l SET expires_at = now() + $2::int8 * interval '1 millisecond'
             FROM mine WHERE l.workspace_sid = mine.workspace_sid
             RETURNING l.workspace_sid",
            &[&self.node.node_id, &lease, &sids, &epochs],
        )?;
        tx.commit()?;
        let mut renewed = std::collections::HashSet::with_capacity(rows.len());
        for row in &rows {
            renewed.insert(parse_sid(row.get(0), "lease workspace sid")?);
        }
        let mut held = lock(&self.held);
        let mut lost = Vec::new();
        for (sid, epoch) in mine {
            if !renewed.contains(&sid) && held.get(&sid) == Some(&epoch) {
                held.remove(&sid);
                lost.push(sid);
            }
        }
        Ok(lost)
    }

    /// Takes expired leases: up to this node's fair share of all workspaces (all of them
    /// over the live nodes), and any lease left expired for a whole lease period whatever
    /// the share (a peer that should have taken it is slow or gone too). Each one taken is
    /// added to the held set with its new epoch, and returned with its committed state.
    pub fn claim(&mut self) -> Result<Vec<Claimed>, StoreError> {
        let lease = millis(self.node.lease);
        let rows = self.client.query(
            "WITH live AS (SELECT greatest(count(*), 1) AS n FROM nodes WHERE expires_at > now()),
                  total AS (SELECT count(*) AS n FROM leases),
                  mine AS (SELECT count(*) AS n FROM leases
                           WHERE node_id = $1 AND expires_at > now()),
                  share AS (SELECT greatest(ceil(total.n::numeric / live.n) - mine.n, 0)::int8 AS n
                            FROM live, total, mine),
                  fair AS (SELECT workspace_sid FROM leases WHERE expires_at <= now()
                           ORDER BY workspace_sid LIMIT (SELECT n FROM share)
                           FOR UPDATE SKIP LOCKED),
                  stale AS (SELECT workspace_sid FROM leases
                            WHERE expires_at <= now() - $2::int8 * interval '1 millisecond'
                            FOR UPDATE SKIP LOCKED),
                  pick AS (SELECT workspace_sid FROM fair UNION SELECT workspace_sid FROM stale)
             UPDATE leases l
             SET node_id = $1, epoch = l.epoch + 1,
                 expires_at = now() + $2::int8 * interval '1 millisecond'
             FROM pick WHERE l.workspace_sid = pick.workspace_sid
             RETURNING l.workspace_sid, l.epoch",
            &[&self.node.node_id, &lease],
        )?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let sid = parse_sid(row.get(0), "lease workspace sid")?;
            let epoch: i64 = row.get(1);
            lock(&self.held).insert(sid, epoch);
            match self.load(sid)? {
                Some(workspace) => claimed.push(Claimed { workspace, epoch }),
                None => {
                    // A lease whose workspace never committed (its node died creating it).
                    lock(&self.held).remove(&sid);
                    self.client.execute(
                        "DELETE FROM leases WHERE workspace_sid = $1 AND epoch = $2",
                        &[&sid.to_string(), &epoch],
                    )?;
                }
            }
        }
        Ok(claimed)
    }

    /// The committed state of one workspace, from one snapshot.
    fn load(&mut self, ws: Sid) -> Result<Option<StoredWorkspace>, StoreError> {
        let mut tx = self
            .client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let found = read_workspaces(&mut tx, Some(ws))?.pop();
        tx.commit()?;
        Ok(found)
    }

    /// Waits up to `timeout` for notices from other nodes (of this schema), and returns
    /// those that arrived, or none.
    pub fn wait(&mut self, timeout: Duration) -> Result<Vec<Notice>, StoreError> {
        let mut notices = Vec::new();
        let mut n = self.client.notifications();
        // The first one waits; whatever else is queued comes without waiting.
        let first = n.timeout_iter(timeout).next()?;
        if let Some(first) = first {
            notices.extend(parse_notice(&self.schema, first.payload()));
            let mut more = n.iter();
            while let Some(next) = more.next()? {
                notices.extend(parse_notice(&self.schema, next.payload()));
            }
        }
        Ok(notices)
    }

    /// Every stored account.
    pub fn accounts(&mut self) -> Result<Vec<Account>, StoreError> {
        let rows = self
            .client
            .query("SELECT body FROM accounts ORDER BY sid", &[])?;
        rows.iter().map(|r| account_of(r.get(0))).collect()
    }

    /// One stored account.
    pub fn account(&mut self, sid: Sid) -> Result<Option<Account>, StoreError> {
        self.client
            .query_opt(
                "SELECT body FROM accounts WHERE sid = $1",
                &[&sid.to_string()],
            )?
            .map(|r| account_of(r.get(0)))
            .transpose()
    }
}

fn parse_notice(schema: &str, payload: &str) -> Option<Notice> {
    let rest = payload.strip_prefix(schema)?.strip_prefix(' ')?;
    match rest.split_once(' ') {
        Some(("account", sid)) => sid.parse().ok().map(Notice::Account),
        None if rest == "leases" => Some(Notice::Leases),
        _ => None,
    }
}

fn account_of(body: &str) -> Result<Account, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt(format!("account row: {e}")))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The maps are changed one whole entry at a time: a poisoned lock is safe to use.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Queries any part of a node may make beside the writer and the lease keeper (the request
/// handlers: whom to forward to, a new workspace's lease, an account changed in place). They
/// block; call them off the async runtime's threads.
pub struct Directory {
    sessions: Sessions,
    node: NodeConfig,
    held: Held,
}

impl Directory {
    pub fn new(location: &Location, node: NodeConfig, held: Held) -> Directory {
        Directory {
            sessions: Sessions::new(location.clone(), false, idle_limit(node.lease)),
            node,
            held,
        }
    }

    /// This node.
    pub fn node(&self) -> &NodeConfig {
        &self.node
    }

    /// Whose a workspace is, or `None` if it has no lease (no such workspace).
    pub fn owner(&self, ws: Sid) -> Result<Option<Owner>, StoreError> {
        self.sessions.with_client(|c| {
            let row = c.query_opt(
                "SELECT l.node_id, n.url, l.expires_at <= now()
                 FROM leases l LEFT JOIN nodes n
                   ON n.node_id = l.node_id AND n.expires_at > now()
                 WHERE l.workspace_sid = $1",
                &[&ws.to_string()],
            )?;
            Ok(row.map(|r| Owner {
                node_id: r.get(0),
                url: r.get(1),
                expired: r.get(2),
            }))
        })
    }

    /// Takes the lease of a workspace being created (epoch 1), before its first commit.
    pub fn create_lease(&self, ws: Sid, account: Sid) -> Result<(), StoreError> {
        self.sessions.with_client(|c| {
            c.execute(
                "INSERT INTO leases (workspace_sid, account_sid, node_id, epoch, expires_at)
                 VALUES ($1, $2, $3, 1, now() + $4::int8 * interval '1 millisecond')",
                &[
                    &ws.to_string(),
                    &account.to_string(),
                    &self.node.node_id,
                    &millis(self.node.lease),
                ],
            )?;
            Ok(())
        })?;
        lock(&self.held).insert(ws, 1);
        Ok(())
    }

    /// Gives up `workspaces` (a node shutting down, once their last writes are committed):
    /// their leases expire now and the other nodes are told to claim them. With `leave`,
    /// the node's row goes too.
    pub fn release(&self, workspaces: &[Sid], leave: bool) -> Result<(), StoreError> {
        let released: Vec<(Sid, i64)> = {
            let mut held = lock(&self.held);
            workspaces
                .iter()
                .filter_map(|s| held.remove(s).map(|e| (*s, e)))
                .collect()
        };
        let sids: Vec<String> = released.iter().map(|(s, _)| s.to_string()).collect();
        let epochs: Vec<i64> = released.iter().map(|(_, e)| *e).collect();
        self.sessions.with_client(|c| {
            let mut tx = c.transaction()?;
            tx.execute(
                "WITH mine AS (
                     SELECT l.workspace_sid FROM leases l
                     JOIN unnest($2::text[], $3::int8[]) AS h(sid, epoch)
                       ON l.workspace_sid = h.sid AND l.epoch = h.epoch
                     WHERE l.node_id = $1
                     ORDER BY l.workspace_sid
                     FOR UPDATE OF l)
                 UPDATE leases l SET expires_at = '-infinity'
                 FROM mine WHERE l.workspace_sid = mine.workspace_sid",
                &[&self.node.node_id, &sids, &epochs],
            )?;
            if leave {
                tx.execute(
                    "DELETE FROM nodes WHERE node_id = $1",
                    &[&self.node.node_id],
                )?;
            }
            tx.execute(
                "SELECT pg_notify($1, current_schema() || ' leases')",
                &[&CHANNEL],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    /// The workspaces of `account` (SIDs), whichever node has them.
    pub fn workspaces_of(&self, account: Sid) -> Result<Vec<Sid>, StoreError> {
        self.sessions.with_client(|c| {
            c.query(
                "SELECT workspace_sid FROM leases WHERE account_sid = $1 ORDER BY workspace_sid",
                &[&account.to_string()],
            )?
            .iter()
            .map(|r| parse_sid(r.get(0), "lease workspace sid"))
            .collect()
        })
    }

    /// The rows of one workspace that describe it as a resource (itself and its
    /// activities, which it names), without its tasks and workers: enough to render it in a
    /// list, from what is committed.
    pub fn workspace_summary(&self, ws: Sid) -> Result<Vec<(Kind, String)>, StoreError> {
        self.sessions.with_client(|c| {
            let rows = c.query(
                "SELECT kind, body FROM resources
                 WHERE workspace_sid = $1 AND kind IN ('workspace', 'activity')
                 ORDER BY kind, sid",
                &[&ws.to_string()],
            )?;
            rows.iter()
                .map(|r| {
                    let kind: &str = r.get(0);
                    let kind = Kind::parse(kind)
                        .ok_or_else(|| StoreError::Corrupt(format!("unknown row kind {kind}")))?;
                    Ok((kind, r.get(1)))
                })
                .collect()
        })
    }

    /// One stored account.
    pub fn account(&self, sid: Sid) -> Result<Option<Account>, StoreError> {
        self.sessions.with_client(|c| {
            c.query_opt(
                "SELECT body FROM accounts WHERE sid = $1",
                &[&sid.to_string()],
            )?
            .map(|r| account_of(r.get(0)))
            .transpose()
        })
    }

    /// The stored account that has the API key `key`.
    pub fn account_with_key(&self, key: Sid) -> Result<Option<Account>, StoreError> {
        self.sessions.with_client(|c| {
            c.query_opt(
                "SELECT body FROM accounts
                 WHERE body::jsonb -> 'api_keys' @> jsonb_build_array(jsonb_build_object('sid', $1::text))",
                &[&key.to_string()],
            )?
            .map(|r| account_of(r.get(0)))
            .transpose()
        })
    }

    /// Changes a stored account with `f` in one transaction, the row locked meanwhile, so
    /// that two nodes changing one account at once (each creating an API key) both keep
    /// their change. Returns the account as stored and what `f` returned, or `None` if
    /// there is no such account. The other nodes are notified.
    pub fn change_account<R>(
        &self,
        sid: Sid,
        f: impl FnOnce(&mut Account) -> R,
    ) -> Result<Option<(Account, R)>, StoreError> {
        self.sessions.with_client(|c| {
            let mut tx = c.transaction()?;
            let Some(row) = tx.query_opt(
                "SELECT body FROM accounts WHERE sid = $1 FOR UPDATE",
                &[&sid.to_string()],
            )?
            else {
                return Ok(None);
            };
            let mut account = account_of(row.get(0))?;
            let out = f(&mut account);
            let body =
                serde_json::to_string(&account).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            tx.execute(
                "UPDATE accounts SET body = $2 WHERE sid = $1",
                &[&sid.to_string(), &body],
            )?;
            tx.execute(
                "SELECT pg_notify($1, current_schema() || ' account ' || $2)",
                &[&CHANNEL, &sid.to_string()],
            )?;
            tx.commit()?;
            Ok(Some((account, out)))
        })
    }
}

#[cfg(test)]
mod tests;
