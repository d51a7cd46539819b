//! The behaviour every [`Store`] backend must show, as one test suite. A backend's tests call
//! [`run`] with a function that opens the backend on the same (initially empty) location each
//! time, so reopening proves durability across instances.
//!
//! It covers the rows (commit, replace, delete, drop, reload), the accounts, and the events:
//! committed with their changes, every [`EventQuery`] filter alone and combined, time
//! windows, paging both ways, the callback outbox and its cursor, retention and dropping a
//! workspace, and one commit of 50,000 events; and the statistics buckets (replace, read a
//! range by scope, span and channel, retention, dropping a workspace).

use taskyard_engine::{Account, Change, Kind, Sid};

use crate::{EventLog, EventQuery, StatBucket, Store, StoredEvent, StoredWorkspace, Write};

fn sid(prefix: &str, n: u128) -> Sid {
    Sid::new(prefix, n)
}

fn put(kind: Kind, s: Sid, body: &str) -> Change {
    Change::Put {
        kind,
        sid: s,
        body: body.into(),
    }
}

/// Runs the suite. `open` must return a store over the same storage every time it is called,
/// and that storage must start empty.
pub fn run<S: Store>(open: impl Fn() -> S) {
    rows(&open);
    // The sections below use workspaces of their own, so they run on what `rows` left.
    events(&open);
    window_edges(&open);
    many_events(&open);
    stat_buckets(&open);
}

/// Rows and accounts.
fn rows<S: Store>(open: &impl Fn() -> S) {
    let ws1 = sid("WS", 1);
    let ws2 = sid("WS", 2);
    let w1 = sid("WK", 1);
    let w2 = sid("WK", 2);
    let a1 = sid("WA", 1);
    let account = Account {
        sid: sid("AC", 7),
        auth_token: "secret".into(),
        friendly_name: "Main".into(),
        owner_account_sid: None,
        date_created: 1,
        date_updated: 2,
        // Keys live in their account's row and must come back with it.
        api_keys: vec![taskyard_engine::ApiKey {
            sid: sid("SK", 3),
            friendly_name: "deploy".into(),
            secret_hash: "hmac-v1:00".into(),
            date_created: 3,
            date_updated: 4,
        }],
    };

    {
        let mut s = open();
        assert_eq!(
            s.load().expect("load empty"),
            Default::default(),
            "a new store is empty"
        );
        s.commit(&[
            Write::Account(account.clone()),
            Write::Workspace {
                workspace: ws1,
                changes: vec![
                    put(Kind::Workspace, ws1, "{\"ws\":1}"),
                    put(Kind::Worker, w1, "{\"v\":1}"),
                    put(Kind::Worker, w2, "{\"v\":1}"),
                    put(Kind::Activity, a1, "{\"a\":1}"),
                ],
                events: Vec::new(),
            },
            Write::Workspace {
                workspace: ws2,
                changes: vec![
                    put(Kind::Workspace, ws2, "{\"ws\":2}"),
                    put(Kind::Worker, w1, "{\"other\":true}"),
                ],
                events: Vec::new(),
            },
        ])
        .expect("first commit");
        // Later writes replace and delete rows; the same SID in another workspace is untouched.
        s.commit(&[Write::Workspace {
            workspace: ws1,
            changes: vec![
                put(Kind::Worker, w1, "{\"v\":2}"),
                Change::Delete {
                    kind: Kind::Worker,
                    sid: w2,
                },
            ],
            events: Vec::new(),
        }])
        .expect("second commit");
        s.commit(&[]).expect("an empty commit is fine");
    }

    {
        let mut s = open();
        let snap = s.load().expect("reload");
        assert_eq!(
            snap.accounts,
            vec![account.clone()],
            "accounts survive reopening"
        );
        assert_eq!(snap.workspaces.len(), 2);
        let one = snap.workspaces.iter().find(|w| w.sid == ws1).expect("ws1");
        let mut rows = one.rows.clone();
        rows.sort_by_key(|(k, _)| k.as_str());
        assert_eq!(
            rows,
            vec![
                (Kind::Activity, "{\"a\":1}".to_string()),
                (Kind::Worker, "{\"v\":2}".to_string()),
                (Kind::Workspace, "{\"ws\":1}".to_string()),
            ],
            "replaced rows read back with their newest body, deleted rows are gone"
        );
        let two = snap.workspaces.iter().find(|w| w.sid == ws2).expect("ws2");
        assert!(
            two.rows
                .contains(&(Kind::Worker, "{\"other\":true}".to_string()))
        );

        // Dropping a workspace removes all of its rows and nothing else.
        s.commit(&[Write::Workspace {
            workspace: ws1,
            changes: vec![Change::DropWorkspace],
            events: Vec::new(),
        }])
        .expect("drop");
        let mut renamed = account.clone();
        renamed.friendly_name = "Renamed".into();
        s.commit(&[Write::Account(renamed.clone())])
            .expect("account update");
    }

    let mut s = open();
    let snap = s.load().expect("reload after drop");
    assert_eq!(snap.workspaces.len(), 1);
    assert_eq!(snap.workspaces[0].sid, ws2);
    assert_eq!(
        (
            snap.workspaces[0].event_cursor,
            snap.workspaces[0].newest_event
        ),
        (None, None),
        "a workspace without events has no cursor and no newest event"
    );
    assert_eq!(snap.accounts.len(), 1);
    assert_eq!(
        snap.accounts[0].friendly_name, "Renamed",
        "accounts are replaced, not duplicated"
    );
}

/// An event created at `ms` (its SID's time, as the engine makes it) with nothing but a type;
/// `n` tells events apart and comes back from [`ns`].
fn event(ms: i64, n: u128, event_type: &str) -> StoredEvent {
    StoredEvent {
        sid: sid("EV", ((ms as u128) << 80) | n),
        event_type: event_type.into(),
        date_ms: ms,
        task_sid: None,
        worker_sid: None,
        reservation_sid: None,
        task_queue_sid: None,
        workflow_sid: None,
        task_channel_sid: None,
        callback: false,
        json: format!("{{\"n\":{n},\"type\":\"{event_type}\"}}"),
    }
}

/// The `n`s of `events`, in order.
fn ns(events: &[StoredEvent]) -> Vec<u128> {
    events.iter().map(|e| e.sid.id() & 0xffff_ffff).collect()
}

fn stored(s: &mut impl Store, ws: Sid) -> Option<StoredWorkspace> {
    s.load()
        .expect("load")
        .workspaces
        .into_iter()
        .find(|w| w.sid == ws)
}

fn all(log: &dyn EventLog, ws: Sid) -> Vec<u128> {
    let mut q = EventQuery::new(ws);
    q.limit = usize::MAX;
    ns(&log.query(&q).expect("query"))
}

fn deliverable(log: &dyn EventLog, ws: Sid, after: Option<Sid>, limit: usize) -> Vec<u128> {
    ns(&log.to_deliver(ws, after, limit).expect("to_deliver"))
}

/// Events: storing, querying, the outbox and its cursor, retention, dropping.
fn events<S: Store>(open: &impl Fn() -> S) {
    let a = sid("WS", 10);
    let b = sid("WS", 11);
    let (t1, t2) = (sid("WT", 1), sid("WT", 2));
    let (w1, w2) = (sid("WK", 1), sid("WK", 2));
    let (r1, r2) = (sid("WR", 1), sid("WR", 2));
    let (q1, q2) = (sid("WQ", 1), sid("WQ", 2));
    let wf = sid("WW", 1);
    let (c1, c2) = (sid("TC", 1), sid("TC", 2));

    // Workspace a's history. Events 1 and 2 share a millisecond, as do 4 and 5, and 7 and 8.
    let task = |ms, n, ty, t, q, c, callback| StoredEvent {
        task_sid: Some(t),
        task_queue_sid: Some(q),
        workflow_sid: Some(wf),
        task_channel_sid: Some(c),
        callback,
        ..event(ms, n, ty)
    };
    let reservation = |ms, n, ty, t, w, r, q, c| StoredEvent {
        worker_sid: Some(w),
        reservation_sid: Some(r),
        ..task(ms, n, ty, t, q, c, true)
    };
    let worker = |ms, n, w| StoredEvent {
        worker_sid: Some(w),
        ..event(ms, n, "worker.activity.update")
    };
    let history = vec![
        task(1000, 1, "task.created", t1, q1, c1, true),
        reservation(1000, 2, "reservation.created", t1, w1, r1, q1, c1),
        worker(1500, 3, w1),
        reservation(2000, 4, "reservation.accepted", t1, w1, r1, q1, c1),
        task(2000, 5, "task.created", t2, q2, c2, false),
        task(2999, 6, "task.updated", t1, q1, c1, true),
        reservation(3000, 7, "reservation.created", t2, w2, r2, q2, c2),
        worker(3000, 8, w2),
        task(4000, 9, "task.canceled", t2, q2, c2, true),
        event(5000, 10, "workspace.updated"),
    ];
    let e = |n: usize| history[n - 1].sid;
    // Workspace b uses the same task and worker SIDs, and its events fall in the same
    // milliseconds, but none of them shows up in a's queries.
    let other = vec![
        task(1000, 101, "task.created", t1, q1, c1, true),
        worker(2500, 102, w1),
    ];

    {
        let mut s = open();
        // A reader taken before the commits sees them.
        let log = s.event_log().expect("event log");
        assert_eq!(all(&*log, a), Vec::<u128>::new());
        s.commit(&[
            Write::Workspace {
                workspace: a,
                changes: vec![put(Kind::Workspace, a, "{\"ws\":\"a\"}")],
                events: history[..5].to_vec(),
            },
            Write::Workspace {
                workspace: b,
                changes: vec![put(Kind::Workspace, b, "{\"ws\":\"b\"}")],
                events: other.clone(),
            },
        ])
        .expect("events with changes");
        s.commit(&[Write::Workspace {
            workspace: a,
            changes: Vec::new(),
            events: history[5..].to_vec(),
        }])
        .expect("events alone");

        let mut q = EventQuery::new(a);
        assert_eq!(
            log.query(&q).expect("query"),
            history,
            "events read back whole, in order"
        );
        q.workspace = b;
        assert_eq!(log.query(&q).expect("query"), other);
        assert!(
            stored(&mut s, a).is_some_and(|w| w.rows.len() == 1),
            "the changes were committed with the events"
        );
    }

    let mut s = open();
    let log = s.event_log().expect("event log after reopening");
    assert_eq!(
        log.query(&EventQuery::new(a)).expect("query"),
        history,
        "events survive reopening"
    );

    // Every filter alone, then together; `n`s as in `history`.
    let with = |f: &dyn Fn(&mut EventQuery)| {
        let mut q = EventQuery::new(a);
        f(&mut q);
        q
    };
    let cases: Vec<(&str, EventQuery, Vec<u128>)> = vec![
        ("no filter", with(&|_| {}), (1..=10).collect()),
        (
            "type",
            with(&|q| q.event_type = Some("task.created".into())),
            vec![1, 5],
        ),
        ("task", with(&|q| q.task_sid = Some(t1)), vec![1, 2, 4, 6]),
        ("worker", with(&|q| q.worker_sid = Some(w1)), vec![2, 3, 4]),
        (
            "reservation",
            with(&|q| q.reservation_sid = Some(r1)),
            vec![2, 4],
        ),
        (
            "queue",
            with(&|q| q.task_queue_sid = Some(q2)),
            vec![5, 7, 9],
        ),
        (
            "workflow",
            with(&|q| q.workflow_sid = Some(wf)),
            vec![1, 2, 4, 5, 6, 7, 9],
        ),
        (
            "channel",
            with(&|q| q.task_channel_sid = Some(c1)),
            vec![1, 2, 4, 6],
        ),
        ("sid", with(&|q| q.sid = Some(e(7))), vec![7]),
        (
            "sid of another workspace",
            with(&|q| q.sid = Some(other[0].sid)),
            vec![],
        ),
        (
            "unknown task",
            with(&|q| q.task_sid = Some(sid("WT", 99))),
            vec![],
        ),
        (
            "unknown type",
            with(&|q| q.event_type = Some("task.nothing".into())),
            vec![],
        ),
        // Time windows: both bounds inclusive, to the millisecond.
        (
            "from",
            with(&|q| q.start_ms = Some(2000)),
            (4..=10).collect(),
        ),
        (
            "until",
            with(&|q| q.end_ms = Some(2000)),
            vec![1, 2, 3, 4, 5],
        ),
        (
            "window",
            with(&|q| {
                q.start_ms = Some(2000);
                q.end_ms = Some(3000);
            }),
            vec![4, 5, 6, 7, 8],
        ),
        (
            "window inside",
            with(&|q| {
                q.start_ms = Some(2001);
                q.end_ms = Some(2999);
            }),
            vec![6],
        ),
        (
            "one millisecond",
            with(&|q| {
                q.start_ms = Some(3000);
                q.end_ms = Some(3000);
            }),
            vec![7, 8],
        ),
        (
            "empty window",
            with(&|q| {
                q.start_ms = Some(3001);
                q.end_ms = Some(3999);
            }),
            vec![],
        ),
        (
            "reversed window",
            with(&|q| {
                q.start_ms = Some(3000);
                q.end_ms = Some(2000);
            }),
            vec![],
        ),
        (
            "window beyond every SID",
            with(&|q| {
                q.start_ms = Some(-5);
                q.end_ms = Some(i64::MAX);
            }),
            (1..=10).collect(),
        ),
        ("before all", with(&|q| q.end_ms = Some(-1)), vec![]),
        ("after all", with(&|q| q.start_ms = Some(5001)), vec![]),
        // Combined.
        (
            "task in a window",
            with(&|q| {
                q.task_sid = Some(t1);
                q.start_ms = Some(1500);
                q.end_ms = Some(2999);
            }),
            vec![4, 6],
        ),
        (
            "type and queue",
            with(&|q| {
                q.event_type = Some("reservation.created".into());
                q.task_queue_sid = Some(q2);
            }),
            vec![7],
        ),
        (
            "worker, reservation and type",
            with(&|q| {
                q.worker_sid = Some(w1);
                q.reservation_sid = Some(r1);
                q.event_type = Some("reservation.accepted".into());
            }),
            vec![4],
        ),
        (
            "task and worker",
            with(&|q| {
                q.task_sid = Some(t2);
                q.worker_sid = Some(w2);
            }),
            vec![7],
        ),
        (
            "channel and workflow",
            with(&|q| {
                q.task_channel_sid = Some(c2);
                q.workflow_sid = Some(wf);
            }),
            vec![5, 7, 9],
        ),
        (
            "sid outside the window",
            with(&|q| {
                q.sid = Some(e(7));
                q.end_ms = Some(2999);
            }),
            vec![],
        ),
        // Limits and paging.
        ("limit", with(&|q| q.limit = 3), vec![1, 2, 3]),
        ("limit 0", with(&|q| q.limit = 0), vec![]),
        (
            "after",
            with(&|q| {
                q.after = Some(e(4));
                q.limit = 3;
            }),
            vec![5, 6, 7],
        ),
        (
            "before",
            with(&|q| {
                q.before = Some(e(9));
                q.limit = 3;
            }),
            vec![6, 7, 8],
        ),
        (
            "before the second",
            with(&|q| q.before = Some(e(2))),
            vec![1],
        ),
        ("before the first", with(&|q| q.before = Some(e(1))), vec![]),
        (
            "between",
            with(&|q| {
                q.after = Some(e(2));
                q.before = Some(e(6));
            }),
            vec![3, 4, 5],
        ),
        (
            "before, filtered",
            with(&|q| {
                q.before = Some(e(9));
                q.task_sid = Some(t1);
                q.limit = 2;
            }),
            vec![4, 6],
        ),
        (
            "after, filtered",
            with(&|q| {
                q.after = Some(e(1));
                q.task_queue_sid = Some(q1);
                q.limit = 2;
            }),
            vec![2, 4],
        ),
        (
            "after, in a window that starts earlier",
            with(&|q| {
                q.after = Some(e(5));
                q.start_ms = Some(1000);
                q.end_ms = Some(3000);
            }),
            vec![6, 7, 8],
        ),
        (
            "after, in a window that starts later",
            with(&|q| {
                q.after = Some(e(1));
                q.start_ms = Some(2000);
            }),
            (4..=10).collect(),
        ),
        (
            "before, in a window that ends later",
            with(&|q| {
                q.before = Some(e(5));
                q.end_ms = Some(4000);
                q.limit = 2;
            }),
            vec![3, 4],
        ),
        (
            "before, in a window that ends earlier",
            with(&|q| {
                q.before = Some(e(9));
                q.end_ms = Some(2000);
                q.limit = 2;
            }),
            vec![4, 5],
        ),
        (
            "after the window's first event",
            with(&|q| {
                q.after = Some(e(4));
                q.start_ms = Some(2000);
                q.end_ms = Some(2000);
            }),
            vec![5],
        ),
    ];
    for (name, q, expected) in &cases {
        assert_eq!(&ns(&log.query(q).expect(name)), expected, "{name}");
    }

    // Paging through everything, both ways, arrives at every event once.
    let mut forward = Vec::new();
    let mut q = EventQuery::new(a);
    q.limit = 3;
    loop {
        let page = log.query(&q).expect("page forward");
        let Some(last) = page.last() else { break };
        q.after = Some(last.sid);
        forward.extend(ns(&page));
    }
    assert_eq!(forward, (1..=10).collect::<Vec<_>>());
    let mut backward = Vec::new();
    let mut q = EventQuery::new(a);
    q.limit = 3;
    q.before = Some(sid("EV", u128::MAX));
    loop {
        let page = log.query(&q).expect("page back");
        let Some(first) = page.first() else { break };
        q.before = Some(first.sid);
        backward.splice(0..0, ns(&page));
    }
    assert_eq!(backward, (1..=10).collect::<Vec<_>>());

    assert_eq!(log.fetch(a, e(7)).expect("fetch"), Some(history[6].clone()));
    assert_eq!(
        log.fetch(b, e(7)).expect("fetch"),
        None,
        "fetch is per workspace"
    );
    assert_eq!(log.fetch(a, sid("EV", 12345)).expect("fetch"), None);

    // The outbox: the events with `callback` set, after the cursor.
    assert_eq!(deliverable(&*log, a, None, 100), vec![1, 2, 4, 6, 7, 9]);
    assert_eq!(deliverable(&*log, a, Some(e(2)), 2), vec![4, 6]);
    assert_eq!(deliverable(&*log, a, Some(e(3)), 100), vec![4, 6, 7, 9]);
    assert_eq!(deliverable(&*log, a, Some(e(9)), 100), Vec::<u128>::new());
    assert_eq!(deliverable(&*log, a, None, 0), Vec::<u128>::new());
    assert_eq!(deliverable(&*log, b, None, 100), vec![101]);

    let loaded = stored(&mut s, a).expect("a is loaded");
    assert_eq!(
        (loaded.event_cursor, loaded.newest_event),
        (None, Some(e(10)))
    );
    s.commit(&[Write::EventCursor {
        workspace: a,
        delivered: e(4),
    }])
    .expect("cursor");
    drop(s);

    let mut s = open();
    let loaded = stored(&mut s, a).expect("a is loaded");
    assert_eq!(
        (loaded.event_cursor, loaded.newest_event),
        (Some(e(4)), Some(e(10))),
        "the cursor survives reopening"
    );
    assert_eq!(
        deliverable(&*log, a, loaded.event_cursor, 100),
        vec![6, 7, 9],
        "a reader outlives the store it came from"
    );
    let loaded_b = stored(&mut s, b).expect("b is loaded");
    assert_eq!(
        (loaded_b.event_cursor, loaded_b.newest_event),
        (None, Some(other[1].sid)),
        "cursors are per workspace"
    );
    s.commit(&[
        Write::EventCursor {
            workspace: a,
            delivered: e(9),
        },
        Write::EventCursor {
            workspace: b,
            delivered: other[0].sid,
        },
    ])
    .expect("cursors move");
    let log = s.event_log().expect("event log");
    assert_eq!(stored(&mut s, a).and_then(|w| w.event_cursor), Some(e(9)));

    // Retention: strictly older than `before_ms`, in every workspace.
    s.commit(&[Write::PurgeEvents { before_ms: 2000 }])
        .expect("purge");
    assert_eq!(all(&*log, a), (4..=10).collect::<Vec<_>>());
    assert_eq!(all(&*log, b), vec![102]);
    assert_eq!(log.fetch(a, e(1)).expect("fetch"), None);
    assert_eq!(deliverable(&*log, a, None, 100), vec![4, 6, 7, 9]);
    s.commit(&[Write::PurgeEvents { before_ms: 2501 }])
        .expect("purge");
    assert_eq!(all(&*log, a), (6..=10).collect::<Vec<_>>());
    assert_eq!(all(&*log, b), Vec::<u128>::new());
    let loaded_b = stored(&mut s, b).expect("b keeps its rows");
    assert_eq!(
        (loaded_b.event_cursor, loaded_b.newest_event),
        (Some(other[0].sid), None),
        "retention leaves the rows and the cursor"
    );
    s.commit(&[Write::PurgeEvents { before_ms: 0 }])
        .expect("a purge with nothing to do");
    assert_eq!(all(&*log, a), (6..=10).collect::<Vec<_>>());

    // Dropping a workspace takes its events and cursor along, and nothing of b's.
    s.commit(&[
        Write::Workspace {
            workspace: b,
            changes: Vec::new(),
            events: vec![worker(6000, 103, w1)],
        },
        Write::Workspace {
            workspace: a,
            changes: vec![Change::DropWorkspace],
            events: Vec::new(),
        },
    ])
    .expect("drop a");
    assert_eq!(all(&*log, a), Vec::<u128>::new());
    assert_eq!(log.fetch(a, e(7)).expect("fetch"), None);
    assert_eq!(deliverable(&*log, a, None, 100), Vec::<u128>::new());
    assert_eq!(all(&*log, b), vec![103]);
    assert!(stored(&mut s, a).is_none(), "a is gone");
    // Bringing the SID back shows that no cursor was left behind.
    s.commit(&[Write::Workspace {
        workspace: a,
        changes: vec![put(Kind::Workspace, a, "{\"ws\":\"a again\"}")],
        events: Vec::new(),
    }])
    .expect("a again");
    let loaded = stored(&mut s, a).expect("a is back");
    assert_eq!((loaded.event_cursor, loaded.newest_event), (None, None));
    let loaded_b = stored(&mut s, b).expect("b is still there");
    assert_eq!(
        (loaded_b.event_cursor, loaded_b.newest_event),
        (Some(other[0].sid), Some(sid("EV", (6000 << 80) | 103)))
    );
}

/// The first and the last SID a millisecond can have are inside its window (a backend that
/// turns windows into SID ranges must get the bounds' ends right).
fn window_edges<S: Store>(open: &impl Fn() -> S) {
    let ws = sid("WS", 13);
    let ms: i64 = 7000;
    let edge = |low_bits: u128| StoredEvent {
        sid: sid("EV", ((ms as u128) << 80) | low_bits),
        ..event(ms, 0, "task.created")
    };
    let first = edge(0);
    let last = edge((1 << 80) - 1);
    let outside = [
        event(ms - 1, 1, "task.created"),
        event(ms + 1, 2, "task.created"),
    ];
    let mut s = open();
    s.commit(&[Write::Workspace {
        workspace: ws,
        changes: vec![put(Kind::Workspace, ws, "{}")],
        events: vec![
            outside[0].clone(),
            first.clone(),
            last.clone(),
            outside[1].clone(),
        ],
    }])
    .expect("edge events");
    let log = s.event_log().expect("event log");
    let mut q = EventQuery::new(ws);
    q.start_ms = Some(ms);
    q.end_ms = Some(ms);
    assert_eq!(
        log.query(&q).expect("window"),
        vec![first.clone(), last.clone()]
    );
    q.after = Some(first.sid);
    assert_eq!(
        log.query(&q).expect("after the first"),
        vec![last.clone()],
        "`after` stays exclusive where it meets the window"
    );
    q.after = None;
    q.before = Some(last.sid);
    assert_eq!(
        log.query(&q).expect("before the last"),
        vec![first.clone()],
        "`before` stays exclusive where it meets the window"
    );
}

/// One commit of 50,000 events (a burst of group commits can be that large).
fn many_events<S: Store>(open: &impl Fn() -> S) {
    const COUNT: u128 = 50_000;
    let ws = sid("WS", 12);
    let task = sid("WT", 12);
    let events: Vec<StoredEvent> = (0..COUNT)
        .map(|n| StoredEvent {
            // Ten events per millisecond; every hundredth about the one task; every other
            // one for the callback.
            task_sid: (n % 100 == 0).then_some(task),
            callback: n % 2 == 0,
            ..event(1_000_000 + (n / 10) as i64, n, "task.updated")
        })
        .collect();
    let mut s = open();
    s.commit(&[Write::Workspace {
        workspace: ws,
        changes: vec![put(Kind::Workspace, ws, "{}")],
        events: events.clone(),
    }])
    .expect("50,000 events in one commit");
    let log = s.event_log().expect("event log");

    let mut q = EventQuery::new(ws);
    q.limit = usize::MAX;
    assert_eq!(log.query(&q).expect("everything"), events);
    q.task_sid = Some(task);
    assert_eq!(log.query(&q).expect("one task").len(), 500);
    let mut q = EventQuery::new(ws);
    q.start_ms = Some(1_002_000);
    q.end_ms = Some(1_002_000);
    assert_eq!(
        ns(&log.query(&q).expect("one millisecond")),
        (20_000..20_010).collect::<Vec<_>>()
    );
    assert_eq!(
        log.to_deliver(ws, None, usize::MAX).expect("outbox").len(),
        25_000
    );
    assert_eq!(
        stored(&mut s, ws).and_then(|w| w.newest_event),
        events.last().map(|e| e.sid)
    );
}

fn bucket(
    scope: &str,
    span_ms: i64,
    start_ms: i64,
    channel: Option<Sid>,
    body: &str,
) -> StatBucket {
    StatBucket {
        scope: scope.into(),
        span_ms,
        start_ms,
        channel,
        body: body.into(),
    }
}

fn stat_buckets<S: Store>(open: &impl Fn() -> S) {
    let ws = sid("WS", 13);
    let other = sid("WS", 14);
    let (voice, chat) = (sid("TC", 1), sid("TC", 2));
    let mut s = open();
    s.commit(&[
        Write::Workspace {
            workspace: ws,
            changes: vec![put(Kind::Workspace, ws, "{}")],
            events: Vec::new(),
        },
        Write::Stats {
            workspace: ws,
            buckets: vec![
                bucket("workspace", 60_000, 60_000, Some(voice), "v1"),
                bucket("workspace", 60_000, 60_000, Some(chat), "c1"),
                bucket("workspace", 60_000, 120_000, Some(voice), "v2"),
                bucket("workspace", 3_600_000, 0, Some(voice), "h"),
                bucket("workers", 60_000, 60_000, None, "w"),
            ],
        },
        Write::Stats {
            workspace: other,
            buckets: vec![bucket("workspace", 60_000, 300_000, Some(voice), "other")],
        },
    ])
    .expect("commit buckets");
    // Replaced, not added.
    s.commit(&[Write::Stats {
        workspace: ws,
        buckets: vec![bucket("workspace", 60_000, 120_000, Some(voice), "v2b")],
    }])
    .expect("replace a bucket");
    drop(s);

    let mut s = open();
    let log = s.event_log().expect("event log");
    let bodies = |scope: &str, span: i64, from: i64, to: i64, ch: Option<Sid>| {
        let mut b: Vec<String> = log
            .stat_buckets(ws, scope, span, from, to, ch)
            .expect("buckets")
            .into_iter()
            .map(|b| b.body)
            .collect();
        b.sort();
        b
    };
    assert_eq!(
        bodies("workspace", 60_000, 0, 600_000, None),
        ["c1", "v1", "v2b"]
    );
    assert_eq!(
        bodies("workspace", 60_000, 0, 600_000, Some(voice)),
        ["v1", "v2b"]
    );
    assert_eq!(bodies("workspace", 60_000, 61_000, 600_000, None), ["v2b"]);
    assert_eq!(bodies("workspace", 60_000, 0, 60_000, None), ["c1", "v1"]);
    assert_eq!(bodies("workspace", 3_600_000, 0, 0, None), ["h"]);
    assert_eq!(bodies("workers", 60_000, 0, 600_000, None), ["w"]);
    let read = log
        .stat_buckets(ws, "workers", 60_000, 0, 600_000, None)
        .expect("buckets");
    assert_eq!(read[0].channel, None);
    assert_eq!(
        s.stat_bucket(ws, "workspace", 60_000, 120_000, Some(voice))
            .expect("one bucket"),
        Some("v2b".to_string())
    );
    assert_eq!(
        s.stat_bucket(ws, "workspace", 60_000, 180_000, Some(voice))
            .expect("one bucket"),
        None
    );

    // Retention: buckets that ended before the limit go.
    s.commit(&[Write::PurgeEvents { before_ms: 120_000 }])
        .expect("purge");
    assert_eq!(bodies("workspace", 60_000, 0, 600_000, None), ["v2b"]);
    assert_eq!(bodies("workspace", 3_600_000, 0, 0, None), ["h"]);
    // Dropping a workspace drops its buckets, and only its.
    s.commit(&[Write::Workspace {
        workspace: ws,
        changes: vec![Change::DropWorkspace],
        events: Vec::new(),
    }])
    .expect("drop");
    assert!(bodies("workspace", 60_000, 0, 600_000, None).is_empty());
    assert_eq!(
        log.stat_buckets(other, "workspace", 60_000, 0, 600_000, None)
            .expect("other")
            .len(),
        1
    );
}
