//! Leases and fencing on a real PostgreSQL, in a scratch schema per test.

use std::thread;

use taskyard_engine::{ApiKey, Change, Kind};

use super::*;
use crate::postgres::{PostgresStore, ScratchSchema, test_database_url};
use crate::{Store, Write};

struct Node {
    held: Held,
    leases: Leases,
    directory: Directory,
    store: PostgresStore,
}

fn node(scratch: &ScratchSchema, id: &str, lease_ms: u64) -> Node {
    let location = &scratch.location;
    let mut store = PostgresStore::open(location.clone()).expect("open");
    let held = Held::default();
    store
        .fence(id, held.clone(), Duration::from_millis(lease_ms))
        .expect("fence");
    let config = NodeConfig {
        node_id: id.to_string(),
        url: format!("http://{id}.invalid"),
        lease: Duration::from_millis(lease_ms),
    };
    Node {
        leases: Leases::join(location, config.clone(), held.clone()).expect("join"),
        directory: Directory::new(location, config, held.clone()),
        held,
        store,
    }
}

fn scratch() -> ScratchSchema {
    ScratchSchema::create(&test_database_url()).expect(
        "PostgreSQL for tests (set TASKYARD_TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test)",
    )
}

fn ws(n: u128) -> Sid {
    Sid::new("WS", n)
}

fn account() -> Sid {
    Sid::new("AC", 1)
}

fn put_workspace(ws: Sid, name: &str) -> Write {
    Write::Workspace {
        workspace: ws,
        changes: vec![Change::Put {
            kind: Kind::Workspace,
            sid: ws,
            body: taskyard_engine::Body::Json(format!("{{\"name\":\"{name}\"}}")),
        }],
        events: Vec::new(),
    }
}

/// `n` creates workspaces `1..=count` (leases and rows).
fn create_workspaces(n: &mut Node, count: u128) {
    for i in 1..=count {
        n.directory.create_lease(ws(i), account()).expect("lease");
        n.store
            .commit(&[put_workspace(ws(i), "x")])
            .expect("commit");
    }
}

fn body_of(n: &mut Node, w: Sid) -> String {
    let found = n.leases.load(w).expect("load").expect("stored");
    found.rows[0].1.clone()
}

#[test]
fn a_stale_owner_is_fenced_and_the_new_owner_sees_every_commit_it_made() {
    let scratch = scratch();
    let mut a = node(&scratch, "a", 300);
    let mut b = node(&scratch, "b", 300);
    a.directory.create_lease(ws(1), account()).expect("lease");
    a.store
        .commit(&[put_workspace(ws(1), "one")])
        .expect("owner commits");
    // b may not write a's workspace, even a barrier.
    match b.store.commit(&[put_workspace(ws(1), "b's")]) {
        Err(StoreError::Fenced { workspaces }) => assert_eq!(workspaces, vec![ws(1)]),
        other => panic!("b wrote a's workspace: {other:?}"),
    }
    assert!(
        b.leases.claim().expect("claim").is_empty(),
        "a's lease is live"
    );

    // a is paused: it renews nothing, its lease runs out, b takes it over at epoch 2.
    thread::sleep(Duration::from_millis(400));
    b.leases.renew().expect("b renews");
    let claimed = b.leases.claim().expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].epoch, 2);
    assert_eq!(claimed[0].workspace.sid, ws(1));
    assert!(claimed[0].workspace.rows[0].1.contains("one"));

    // a wakes up: its commit is refused and nothing of the batch is kept, not even the
    // write of a workspace it still holds.
    a.directory.create_lease(ws(2), account()).expect("lease");
    match a
        .store
        .commit(&[put_workspace(ws(2), "two"), put_workspace(ws(1), "stale")])
    {
        Err(StoreError::Fenced { workspaces }) => assert_eq!(workspaces, vec![ws(1)]),
        other => panic!("the stale owner wrote: {other:?}"),
    }
    assert!(a.leases.load(ws(2)).expect("load").is_none());
    // Its renewal tells it what it lost; it keeps what it holds.
    assert_eq!(a.leases.renew().expect("renew"), vec![ws(1)]);
    assert!(!lock(&a.held).contains_key(&ws(1)));
    a.store
        .commit(&[put_workspace(ws(2), "two")])
        .expect("a still owns ws 2");
    b.store
        .commit(&[put_workspace(ws(1), "b's")])
        .expect("the new owner commits");
    assert!(body_of(&mut b, ws(1)).contains("b's"));
}

#[test]
fn expired_leases_are_shared_out_between_live_nodes() {
    let scratch = scratch();
    let mut dead = node(&scratch, "dead", 300);
    create_workspaces(&mut dead, 6);
    let mut a = node(&scratch, "a", 5_000);
    let mut b = node(&scratch, "b", 5_000);
    thread::sleep(Duration::from_millis(400));
    // Two live nodes, six workspaces: three each, whoever asks first.
    assert_eq!(a.leases.claim().expect("claim").len(), 3);
    assert_eq!(b.leases.claim().expect("claim").len(), 3);
    assert!(a.leases.claim().expect("claim").is_empty());
    let owner = a.directory.owner(ws(6)).expect("owner").expect("leased");
    assert_eq!(owner.node_id, "b");
    assert_eq!(owner.url.as_deref(), Some("http://b.invalid"));
    assert!(!owner.expired);
    assert!(a.directory.owner(ws(9)).expect("owner").is_none());
}

#[test]
fn a_lease_left_expired_by_a_slow_peer_is_taken_whatever_the_share() {
    let scratch = scratch();
    let mut dead = node(&scratch, "dead", 200);
    create_workspaces(&mut dead, 4);
    let mut a = node(&scratch, "a", 1_000);
    let _slow = node(&scratch, "slow", 60_000);
    thread::sleep(Duration::from_millis(250));
    a.leases.renew().expect("renew");
    assert_eq!(a.leases.claim().expect("claim").len(), 2, "its share");
    assert!(
        a.leases.claim().expect("claim").is_empty(),
        "the rest is slow's"
    );
    for _ in 0..2 {
        thread::sleep(Duration::from_millis(600));
        assert!(a.leases.renew().expect("renew").is_empty());
    }
    assert_eq!(a.leases.claim().expect("claim").len(), 2, "the rest, late");
}

#[test]
fn a_handover_is_announced_and_taken_at_once() {
    let scratch = scratch();
    let mut a = node(&scratch, "a", 60_000);
    let mut b = node(&scratch, "b", 60_000);
    a.directory.create_lease(ws(1), account()).expect("lease");
    a.store
        .commit(&[put_workspace(ws(1), "one")])
        .expect("commit");
    a.directory.release(&[ws(1)], true).expect("release");
    assert_eq!(
        b.leases.wait(Duration::from_secs(5)).expect("wait"),
        vec![Notice::Leases]
    );
    let claimed = b.leases.claim().expect("claim");
    assert_eq!(claimed.len(), 1);
    assert!(a.store.commit(&[put_workspace(ws(1), "late")]).is_err());
    // A notice about another schema is not this cluster's.
    assert_eq!(parse_notice("other", "taskyard leases"), None);
    assert_eq!(
        parse_notice(
            "taskyard",
            "taskyard account AC00000000000000000000000000000001"
        ),
        Some(Notice::Account(Sid::new("AC", 1)))
    );
}

#[test]
fn a_live_node_id_cannot_be_joined_twice() {
    let scratch = scratch();
    let _a = node(&scratch, "a", 300);
    let config = NodeConfig {
        node_id: "a".into(),
        url: "http://elsewhere.invalid".into(),
        lease: Duration::from_millis(300),
    };
    let started = Instant::now();
    // a renews nothing here, so its row expires and the id can be taken after one lease.
    Leases::join(&scratch.location, config, Held::default()).expect("joins once expired");
    assert!(started.elapsed() >= Duration::from_millis(200));

    let mut live = node(&scratch, "live", 60_000);
    live.leases.renew().expect("renew");
    let config = NodeConfig {
        node_id: "live".into(),
        url: "http://elsewhere.invalid".into(),
        lease: Duration::from_millis(100),
    };
    match Leases::join(&scratch.location, config, Held::default()) {
        Err(StoreError::InUse { what }) => assert!(what.contains("live")),
        other => panic!("joined a live id: {:?}", other.map(|_| ())),
    }
}

#[test]
fn accounts_changed_on_two_nodes_at_once_keep_both_changes() {
    let scratch = scratch();
    let mut store = PostgresStore::open(scratch.location.clone()).expect("open");
    let acct = Account {
        sid: account(),
        auth_token: "t".into(),
        friendly_name: "A".into(),
        owner_account_sid: None,
        date_created: 0,
        date_updated: 0,
        api_keys: Vec::new(),
    };
    store.commit(&[Write::Account(acct)]).expect("commit");
    let mut listener = node(&scratch, "listener", 60_000);
    let threads: Vec<_> = (0..8u128)
        .map(|i| {
            let location = scratch.location.clone();
            thread::spawn(move || {
                let config = NodeConfig {
                    node_id: format!("n{i}"),
                    url: String::new(),
                    lease: Duration::from_secs(60),
                };
                let d = Directory::new(&location, config, Held::default());
                for j in 0..5u128 {
                    d.change_account(account(), |a| {
                        a.api_keys.push(ApiKey {
                            sid: Sid::new("SK", i * 100 + j),
                            friendly_name: String::new(),
                            secret_hash: String::new(),
                            date_created: 0,
                            date_updated: 0,
                        })
                    })
                    .expect("change")
                    .expect("exists");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let stored = listener
        .leases
        .account(account())
        .expect("read")
        .expect("exists");
    assert_eq!(stored.api_keys.len(), 40);
    let notices = listener.leases.wait(Duration::from_secs(5)).expect("wait");
    assert!(notices.contains(&Notice::Account(account())));
}
