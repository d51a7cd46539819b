//! Engine-level tests of the command rules, plus a seeded property test: whatever sequence of
//! commands (valid or not) is applied, a refused command changes nothing, and the rows the
//! engine asked the store to keep always rebuild exactly the live workspace.

use std::collections::BTreeMap;

mod common;

use common::persist;
use taskyard_engine::*;

fn account() -> Sid {
    Sid::new("AC", 1)
}

fn new_ws(ids: &mut CountingSids) -> (Workspace, Applied) {
    Workspace::create(
        account(),
        NewWorkspace {
            friendly_name: "W".into(),
            ..Default::default()
        },
        1_000,
        ids,
    )
    .expect("create")
}

fn worker(name: &str, attrs: &str) -> Command {
    Command::CreateWorker(CreateWorker {
        friendly_name: name.into(),
        activity_sid: None,
        attributes: Some(attrs.into()),
    })
}

#[test]
fn new_workspaces_get_twilio_defaults() {
    let mut ids = CountingSids(0);
    let (ws, applied) = new_ws(&mut ids);
    let names: Vec<_> = ws
        .activities()
        .values()
        .map(|a| (&*a.friendly_name, a.available))
        .collect();
    assert_eq!(
        names,
        vec![
            ("Offline", false),
            ("Available", true),
            ("Unavailable", false)
        ]
    );
    assert_eq!(
        ws.info().default_activity_sid,
        ws.info().timeout_activity_sid
    );
    assert_eq!(
        ws.activities()[&ws.info().default_activity_sid]
            .friendly_name
            .as_ref(),
        "Offline"
    );
    let channels: Vec<_> = ws
        .task_channels()
        .values()
        .map(|c| &*c.unique_name)
        .collect();
    assert_eq!(channels, vec!["default", "voice", "sms", "chat", "video"]);
    assert!(ws.info().multi_task_enabled);
    assert_eq!(
        applied.changes.len(),
        1 + 3 + 5,
        "workspace, activities, channels"
    );
    assert!(
        Workspace::create(account(), NewWorkspace::default(), 0, &mut ids).is_err(),
        "name required"
    );
}

#[test]
fn worker_names_are_unique_ignoring_case_and_free_again_after_delete() {
    let mut ids = CountingSids(0);
    let (mut ws, _) = new_ws(&mut ids);
    let a = ws
        .apply(worker("Alice", "{}"), 2_000, &mut ids)
        .expect("alice")
        .sid;
    assert!(matches!(
        ws.apply(worker("alice", "{}"), 2_000, &mut ids),
        Err(EngineError::Conflict { .. })
    ));
    let b = ws
        .apply(worker("Bob", "{}"), 2_000, &mut ids)
        .expect("bob")
        .sid;
    let rename = |sid, name: &str| {
        Command::UpdateWorker(UpdateWorker {
            sid,
            if_match: None,
            activity_sid: None,
            attributes: None,
            friendly_name: Some(name.into()),
            reject_pending_reservations: None,
        })
    };
    assert!(ws.apply(rename(b, "ALICE"), 3_000, &mut ids).is_err());
    ws.apply(rename(a, "ALICE"), 3_000, &mut ids)
        .expect("renaming to itself in another case is fine");
    ws.apply(
        Command::DeleteWorker {
            sid: a,
            if_match: None,
        },
        4_000,
        &mut ids,
    )
    .expect("delete");
    ws.apply(worker("alice", "{}"), 5_000, &mut ids)
        .expect("name free again");
}

#[test]
fn worker_activity_changes_move_date_status_changed_and_versions() {
    let mut ids = CountingSids(0);
    let (mut ws, _) = new_ws(&mut ids);
    let available = *ws
        .activities()
        .iter()
        .find(|(_, a)| a.available)
        .expect("available")
        .0;
    let sid = ws.apply(worker("A", "{}"), 1_000, &mut ids).expect("a").sid;
    let update = |activity_sid, if_match: Option<&str>| {
        Command::UpdateWorker(UpdateWorker {
            sid,
            if_match: if_match.map(str::to_string),
            activity_sid,
            attributes: Some(r#"{"x": 1}"#.into()),
            friendly_name: None,
            reject_pending_reservations: None,
        })
    };
    assert!(matches!(
        ws.apply(update(Some(available), Some("\"5\"")), 9_000, &mut ids),
        Err(EngineError::VersionMismatch { current: 0, .. })
    ));
    ws.apply(update(Some(available), Some("\"0\"")), 9_000, &mut ids)
        .expect("update");
    let w = &ws.workers()[&sid];
    assert_eq!(
        (w.version, w.date_status_changed, w.activity_sid),
        (1, 9_000, available)
    );
    assert_eq!(w.attrs["x"], 1);
    ws.apply(update(None, None), 12_000, &mut ids)
        .expect("attributes only");
    let w = &ws.workers()[&sid];
    assert_eq!(
        (w.version, w.date_status_changed),
        (2, 9_000),
        "no activity change, no status date change"
    );
}

#[test]
fn workflow_configuration_must_name_existing_queues() {
    let mut ids = CountingSids(0);
    let (mut ws, _) = new_ws(&mut ids);
    let q = ws
        .apply(
            Command::CreateTaskQueue(TaskQueueParams {
                friendly_name: Some("Q".into()),
                ..Default::default()
            }),
            1,
            &mut ids,
        )
        .expect("queue")
        .sid;
    let config =
        |queue: Sid| format!(r#"{{"task_routing":{{"default_filter":{{"queue":"{queue}"}}}}}}"#);
    let wf = |text: String| {
        Command::CreateWorkflow(WorkflowParams {
            friendly_name: Some("F".into()),
            configuration: Some(text),
            ..Default::default()
        })
    };
    let err = ws
        .apply(wf(config(Sid::new("WQ", 99))), 2, &mut ids)
        .expect_err("missing queue");
    assert!(matches!(
        err,
        EngineError::Invalid {
            param: "Configuration",
            ..
        }
    ));
    let flow = ws.apply(wf(config(q)), 2, &mut ids).expect("valid").sid;
    assert_eq!(ws.workflows()[&flow].task_reservation_timeout, 120);
    assert!(matches!(
        ws.apply(Command::DeleteTaskQueue { sid: q }, 3, &mut ids),
        Err(EngineError::Refused { .. })
    ));
    ws.apply(Command::DeleteWorkflow { sid: flow }, 4, &mut ids)
        .expect("delete flow");
    ws.apply(Command::DeleteTaskQueue { sid: q }, 5, &mut ids)
        .expect("queue free now");
}

#[test]
fn random_commands_keep_store_rows_and_memory_in_step() {
    for seed in 0..25u64 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut ids = CountingSids(0);
        let (mut ws, applied) = new_ws(&mut ids);
        let mut rows = BTreeMap::new();
        persist(&mut rows, &applied.changes);
        let mut now = 1_000;
        let mut accepted = 0;
        for step in 0..300 {
            now += rng.i64(0..5_000);
            let cmd = random_command(&mut rng, &ws);
            let before = ws.all_rows();
            match ws.apply(cmd.clone(), now, &mut ids) {
                Ok(applied) => {
                    accepted += 1;
                    persist(&mut rows, &applied.changes)
                }
                Err(_) => assert_eq!(
                    before,
                    ws.all_rows(),
                    "seed {seed} step {step}: refused {cmd:?} changed state"
                ),
            }
            let restored = Workspace::restore(rows.values().cloned()).expect("restore");
            assert_eq!(
                restored.all_rows(),
                ws.all_rows(),
                "seed {seed} step {step}: stored rows diverge from memory after {cmd:?}"
            );
            // Queue membership is maintained incrementally; recomputing it from scratch
            // (as a restore does) must agree.
            for (sid, q) in ws.task_queues() {
                assert_eq!(
                    q.members,
                    restored.task_queues()[sid].members,
                    "seed {seed} step {step}: membership of {sid} drifted after {cmd:?}"
                );
            }
        }
        assert!(
            accepted > 50,
            "seed {seed}: the generator should mostly make valid commands"
        );
    }
}

fn pick<T: Copy>(rng: &mut fastrand::Rng, items: impl Iterator<Item = T>, fallback: T) -> T {
    let v: Vec<T> = items.collect();
    if v.is_empty() || rng.u8(0..10) == 0 {
        fallback
    } else {
        v[rng.usize(0..v.len())]
    }
}

fn random_command(rng: &mut fastrand::Rng, ws: &Workspace) -> Command {
    let bogus = |p: &str| Sid::new(p, 424242);
    let worker = pick(rng, ws.workers().keys().copied(), bogus("WK"));
    let activity = pick(rng, ws.activities().keys().copied(), bogus("WA"));
    let queue = pick(rng, ws.task_queues().keys().copied(), bogus("WQ"));
    let flow = pick(rng, ws.workflows().keys().copied(), bogus("WW"));
    let names = ["Ann", "ann", "Bob", "Cy", "", "x", "Dee", "Eve"];
    let name = names[rng.usize(0..names.len())].to_string();
    let attrs = [
        "{}",
        r#"{"skills": ["a"], "level": 3}"#,
        r#"{"skills": ["a", "b"], "level": 1}"#,
        r#"{"level": "5"}"#,
        "{bad",
        "[]",
    ][rng.usize(0..6)]
    .to_string();
    let targets = [
        "1==1",
        "skills HAS 'a'",
        "level >= 3",
        "skills HAS 'b' OR level > 4",
        "",
        "level >=",
    ];
    let target = targets[rng.usize(0..targets.len())].to_string();
    match rng.u8(0..16) {
        14 | 15 => Command::UpdateTaskQueue {
            sid: queue,
            params: TaskQueueParams {
                target_workers: Some(target),
                ..Default::default()
            },
        },
        0 => Command::CreateActivity {
            friendly_name: name,
            available: rng.bool(),
        },
        1 => Command::DeleteActivity { sid: activity },
        2 => Command::CreateTaskChannel {
            friendly_name: "C".into(),
            unique_name: ["email", "fax", "bad-name", "voice"][rng.usize(0..4)].into(),
            channel_optimized_routing: Some(rng.bool()),
        },
        3 => Command::DeleteTaskChannel {
            channel: ["email", "fax", "sms", "nope"][rng.usize(0..4)].into(),
        },
        4 | 5 => Command::CreateWorker(CreateWorker {
            friendly_name: name,
            activity_sid: rng.bool().then_some(activity),
            attributes: Some(attrs),
        }),
        6 => Command::UpdateWorker(UpdateWorker {
            sid: worker,
            if_match: rng.bool().then(|| rng.u8(0..3).to_string()),
            activity_sid: rng.bool().then_some(activity),
            attributes: rng.bool().then_some(attrs),
            friendly_name: rng.bool().then_some(name),
            reject_pending_reservations: rng.bool().then(|| rng.bool()),
        }),
        7 => Command::DeleteWorker {
            sid: worker,
            if_match: None,
        },
        8 => Command::UpdateWorkerChannel {
            worker,
            channel: ["voice", "sms", "email", "zzz"][rng.usize(0..4)].into(),
            capacity: rng.bool().then(|| rng.u32(0..1500)),
            available: rng.bool().then(|| rng.bool()),
        },
        9 => Command::CreateTaskQueue(TaskQueueParams {
            friendly_name: Some(name),
            target_workers: rng.bool().then_some(target),
            max_reserved_workers: rng.bool().then(|| rng.u32(0..60)),
            reservation_activity_sid: rng.bool().then_some(activity),
            ..Default::default()
        }),
        10 => Command::DeleteTaskQueue { sid: queue },
        11 => Command::CreateWorkflow(WorkflowParams {
            friendly_name: Some(name),
            configuration: Some(format!(
                r#"{{"task_routing":{{"default_filter":{{"queue":"{queue}"}}}}}}"#
            )),
            task_reservation_timeout: rng.bool().then(|| rng.u32(0..90_000)),
            ..Default::default()
        }),
        12 => Command::DeleteWorkflow { sid: flow },
        _ => Command::UpdateWorkspace(UpdateWorkspace {
            friendly_name: rng.bool().then_some(name),
            default_activity_sid: rng.bool().then_some(activity),
            timeout_activity_sid: rng.bool().then_some(activity),
            multi_task_enabled: rng.bool().then(|| rng.bool()),
            ..Default::default()
        }),
    }
}
