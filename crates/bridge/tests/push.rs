//! What the bridge pushes for a task's life, checked against the engine directly: which
//! worker gets which event, that payloads show the state as of the event, and that every
//! object carries every key Twilio's worker SDK reads (a missing one throws in the SDK and
//! kills a Node client).

use serde_json::{Value, json};
use taskyard_bridge::{gateway, push};
use taskyard_engine::*;
use taskyard_hub::Push;

/// The keys the SDK's descriptors require (`taskrouter-js-protocol.md` §5).
const WORKER_KEYS: &[&str] = &[
    "account_sid",
    "activity_name",
    "activity_sid",
    "attributes",
    "available",
    "date_created",
    "date_status_changed",
    "date_updated",
    "friendly_name",
    "sid",
    "workspace_sid",
    "version",
];
const ACTIVITY_KEYS: &[&str] = &[
    "account_sid",
    "available",
    "date_created",
    "date_updated",
    "friendly_name",
    "sid",
    "workspace_sid",
];
const CHANNEL_KEYS: &[&str] = &[
    "account_sid",
    "assigned_tasks",
    "available",
    "available_capacity_percentage",
    "configured_capacity",
    "date_created",
    "date_updated",
    "last_reserved_time",
    "sid",
    "task_channel_sid",
    "task_channel_unique_name",
    "worker_sid",
    "workspace_sid",
];
const RESERVATION_KEYS: &[&str] = &[
    "account_sid",
    "date_created",
    "date_updated",
    "reservation_status",
    "sid",
    "task",
    "reservation_timeout",
    "worker_sid",
    "workspace_sid",
    "version",
];
const TASK_KEYS: &[&str] = &[
    "addons",
    "age",
    "attributes",
    "date_created",
    "date_updated",
    "priority",
    "queue_name",
    "queue_sid",
    "reason",
    "routing_target",
    "sid",
    "assignment_status",
    "task_channel_unique_name",
    "task_channel_sid",
    "timeout",
    "workflow_name",
    "workflow_sid",
    "version",
    "virtual_start_time",
];

#[track_caller]
fn has_keys(v: &Value, keys: &[&str], what: &str) {
    for k in keys {
        assert!(v.get(k).is_some(), "{what} lacks `{k}`: {v}");
    }
}

/// Dates are integers (Unix seconds) and attributes JSON strings, as the SDK parses them.
#[track_caller]
fn gateway_shaped(v: &Value) {
    assert!(v["date_created"].is_i64(), "epoch seconds: {v}");
    let attrs = v["attributes"].as_str().expect("attributes as a string");
    serde_json::from_str::<Value>(attrs).expect("attributes are JSON text");
}

struct World {
    ws: Workspace,
    ids: CountingSids,
    now: Millis,
    workflow: Sid,
    alice: Sid,
    bob: Sid,
}

impl World {
    fn new() -> World {
        let mut ids = CountingSids(0);
        let now = 1_700_000_000_000;
        let (ws, _) = Workspace::create(
            Sid::new("AC", 1),
            NewWorkspace {
                friendly_name: "Agents".into(),
                ..Default::default()
            },
            now,
            &mut ids,
        )
        .expect("workspace");
        let mut w = World {
            ws,
            ids,
            now,
            workflow: Sid::new("WW", 0),
            alice: Sid::new("WK", 0),
            bob: Sid::new("WK", 0),
        };
        w.alice = w.worker("Alice");
        w.bob = w.worker("Bob");
        let queue = w
            .run(Command::CreateTaskQueue(TaskQueueParams {
                friendly_name: Some("Everyone".into()),
                target_workers: Some("1 == 1".into()),
                ..Default::default()
            }))
            .sid;
        let config = json!({"task_routing": {"filters": [], "default_filter": {"queue": queue.to_string()}}});
        w.workflow = w
            .run(Command::CreateWorkflow(WorkflowParams {
                friendly_name: Some("Incoming".into()),
                configuration: Some(config.to_string()),
                assignment_callback_url: None,
                fallback_assignment_callback_url: None,
                task_reservation_timeout: Some(120),
            }))
            .sid;
        w
    }

    fn worker(&mut self, name: &str) -> Sid {
        self.run(Command::CreateWorker(CreateWorker {
            friendly_name: name.into(),
            activity_sid: None,
            attributes: Some(r#"{"skills":["en"]}"#.into()),
        }))
        .sid
    }

    #[track_caller]
    fn run(&mut self, cmd: Command) -> Applied {
        self.now += 1000;
        self.ws
            .apply(cmd, self.now, &mut self.ids)
            .unwrap_or_else(|e| panic!("command failed: {e}"))
    }

    fn activity(&self, name: &str) -> Sid {
        self.ws
            .activities()
            .values()
            .find(|a| &*a.friendly_name == name)
            .expect("activity")
            .sid
    }

    fn set_activity(&mut self, worker: Sid, name: &str) -> Applied {
        let a = self.activity(name);
        self.run(Command::UpdateWorker(UpdateWorker {
            sid: worker,
            if_match: None,
            activity_sid: Some(a),
            attributes: None,
            friendly_name: None,
            reject_pending_reservations: None,
        }))
    }

    /// The pushes of `applied`, when only `watched` workers are connected.
    fn pushes(&self, applied: &Applied, watched: &[Sid]) -> Vec<Push> {
        let mut out = Vec::new();
        push::render(
            &self.ws,
            &applied.events,
            &|w| watched.contains(&w),
            &mut out,
        );
        out
    }
}

fn payload(p: &Push) -> Value {
    serde_json::from_str(&p.payload).expect("payload is JSON")
}

fn types(pushes: &[Push]) -> Vec<&'static str> {
    pushes.iter().map(|p| p.event_type.as_str()).collect()
}

#[test]
fn a_task_life_reaches_only_its_worker_with_the_state_of_each_moment() {
    let mut w = World::new();
    let (alice, bob) = (w.alice, w.bob);
    let became = w.set_activity(alice, "Available");
    let pushed = w.pushes(&became, &[alice, bob]);
    assert_eq!(types(&pushed), ["worker.activity.update"]);
    assert_eq!(pushed[0].worker, alice);
    assert_eq!(pushed[0].subject, Some(w.activity("Available")));
    let worker = payload(&pushed[0]);
    has_keys(&worker, WORKER_KEYS, "worker");
    gateway_shaped(&worker);
    assert_eq!(worker["activity_name"], "Available");

    let created = w.run(Command::CreateTask(CreateTask {
        attributes: Some(r#"{"customer":"Ana"}"#.into()),
        workflow_sid: Some(w.workflow),
        ..Default::default()
    }));
    let task = created.sid;
    assert!(
        w.pushes(&created, &[bob]).is_empty(),
        "nothing for a worker that is not reserved"
    );
    assert!(
        w.pushes(&created, &[]).is_empty(),
        "nothing rendered for workers nobody watches"
    );
    let pushed = w.pushes(&created, &[alice, bob]);
    assert_eq!(types(&pushed), ["reservation.created"]);
    let res = payload(&pushed[0]);
    has_keys(&res, RESERVATION_KEYS, "reservation");
    has_keys(&res["task"], TASK_KEYS, "embedded task");
    gateway_shaped(&res["task"]);
    assert_eq!(res["reservation_status"], "pending");
    assert_eq!(res["task"]["assignment_status"], "reserved");
    assert_eq!(res["task"]["sid"], task.to_string());
    assert_eq!(res["task"]["attributes"], r#"{"customer":"Ana"}"#);
    assert_eq!(res["task"]["workflow_name"], "Incoming");
    assert_eq!(res["task"]["queue_name"], "Everyone");
    assert_eq!(res["reservation_timeout"], 120);
    let reservation: Sid = res["sid"].as_str().expect("sid").parse().expect("WR");
    assert_eq!(pushed[0].subject, Some(reservation));

    let accepted = w.run(Command::UpdateReservation(UpdateReservation {
        sid: reservation,
        task: None,
        worker: Some(alice),
        if_match: None,
        status: Some(ReservationStatus::Accepted),
        worker_activity_sid: None,
    }));
    let pushed = w.pushes(&accepted, &[alice]);
    assert!(
        types(&pushed).contains(&"reservation.accepted"),
        "{:?}",
        types(&pushed)
    );
    let acc = pushed
        .iter()
        .find(|p| p.event_type == EventType::ReservationAccepted)
        .map(payload)
        .expect("accepted");
    assert_eq!(acc["reservation_status"], "accepted");
    assert_eq!(acc["task"]["assignment_status"], "assigned");

    let completed = w.run(Command::UpdateTask(UpdateTask {
        sid: task,
        if_match: None,
        assignment_status: Some(TaskStatus::Completed),
        reason: Some("resolved".into()),
        attributes: None,
        priority: None,
        task_channel: None,
        virtual_start_time: None,
    }));
    let pushed = w.pushes(&completed, &[alice]);
    let kinds = types(&pushed);
    assert!(kinds.contains(&"task.completed"), "{kinds:?}");
    assert!(kinds.contains(&"reservation.completed"), "{kinds:?}");
    let t = pushed
        .iter()
        .find(|p| p.event_type == EventType::TaskCompleted)
        .map(payload)
        .expect("task.completed");
    has_keys(&t, TASK_KEYS, "task");
    assert_eq!(t["assignment_status"], "completed");
    assert_eq!(t["reason"], "resolved");
    assert!(
        pushed.windows(2).all(|p| p[0].event < p[1].event),
        "pushes follow event order"
    );
}

#[test]
fn a_deleted_task_still_tells_its_worker_the_reservation_is_canceled() {
    let mut w = World::new();
    let alice = w.alice;
    w.set_activity(alice, "Available");
    let created = w.run(Command::CreateTask(CreateTask {
        workflow_sid: Some(w.workflow),
        ..Default::default()
    }));
    let deleted = w.run(Command::DeleteTask {
        sid: created.sid,
        if_match: None,
    });
    let pushed = w.pushes(&deleted, &[alice]);
    let canceled = pushed
        .iter()
        .find(|p| p.event_type == EventType::ReservationCanceled)
        .expect("reservation.canceled pushed although the reservation is gone");
    let res = payload(canceled);
    has_keys(&res, RESERVATION_KEYS, "reservation");
    has_keys(&res["task"], TASK_KEYS, "task");
    assert_eq!(res["reservation_status"], "canceled");
}

#[test]
fn start_up_objects_carry_every_key_the_sdk_reads() {
    let w = World::new();
    let ws = &w.ws;
    let alice = ws.workers().get(&w.alice).expect("alice");
    for a in ws.activities().values() {
        let v = serde_json::to_value(gateway::activity(ws, a)).expect("json");
        has_keys(&v, ACTIVITY_KEYS, "activity");
    }
    assert!(!alice.channels.is_empty());
    for c in &alice.channels {
        let v = serde_json::to_value(gateway::worker_channel(ws, alice, c)).expect("json");
        has_keys(&v, CHANNEL_KEYS, "worker channel");
        assert!(v["last_reserved_time"].is_null(), "never reserved yet");
    }
    let v = serde_json::to_value(gateway::worker(ws, alice)).expect("json");
    has_keys(&v, WORKER_KEYS, "worker");
    gateway_shaped(&v);
}

#[test]
fn capacity_changes_name_the_channel_and_deletion_is_announced() {
    let mut w = World::new();
    let alice = w.alice;
    let channel = w.ws.workers()[&alice].channels[0].sid;
    let changed = w.run(Command::UpdateWorkerChannel {
        worker: alice,
        channel: channel.to_string(),
        capacity: Some(3),
        available: None,
    });
    let pushed = w.pushes(&changed, &[alice]);
    assert_eq!(types(&pushed), ["worker.capacity.update"]);
    assert_eq!(pushed[0].subject, Some(channel));
    let v = payload(&pushed[0]);
    has_keys(&v, CHANNEL_KEYS, "worker channel");
    assert_eq!(v["configured_capacity"], 3);

    let deleted = w.run(Command::DeleteWorker {
        sid: alice,
        if_match: None,
    });
    let pushed = w.pushes(&deleted, &[alice]);
    assert_eq!(types(&pushed), ["worker.deleted"]);
}
