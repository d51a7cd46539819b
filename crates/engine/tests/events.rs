//! The events a task's life leaves behind: which types, in which order, with which data,
//! and what an assignment callback's answer does.

use serde_json::json;
use taskyard_engine::*;

const SEC: Millis = 1000;

struct World {
    ws: Workspace,
    ids: CountingSids,
    now: Millis,
    queue: Sid,
    workflow: Sid,
    alice: Sid,
}

impl World {
    /// Alice (Offline) in one queue; one workflow with an assignment callback URL.
    fn new() -> World {
        let mut ids = CountingSids(0);
        let now = 1_700_000_000_000;
        let (ws, created) = Workspace::create(
            Sid::new("AC", 1),
            NewWorkspace {
                friendly_name: "Events".into(),
                event_callback_url: Some("https://example.com/events".into()),
                events_filter: Some("task.created, reservation.created".into()),
                ..Default::default()
            },
            now,
            &mut ids,
        )
        .expect("workspace");
        assert_eq!(types(&created.events), ["workspace.created"]);
        let mut w = World {
            ws,
            ids,
            now,
            queue: Sid::new("WQ", 0),
            workflow: Sid::new("WW", 0),
            alice: Sid::new("WK", 0),
        };
        w.alice = w
            .run(Command::CreateWorker(CreateWorker {
                friendly_name: "Alice".into(),
                activity_sid: None,
                attributes: Some(r#"{"languages":["en","es"]}"#.into()),
            }))
            .sid;
        w.queue = w
            .run(Command::CreateTaskQueue(TaskQueueParams {
                friendly_name: Some("Spanish".into()),
                target_workers: Some("languages HAS 'es'".into()),
                ..Default::default()
            }))
            .sid;
        let config = json!({"task_routing": {"filters": [
            {"filter_friendly_name": "Language - Spanish", "expression": "selected_language == 'es'",
             "targets": [{"queue": w.queue.to_string()}]}]}});
        w.workflow = w
            .run(Command::CreateWorkflow(WorkflowParams {
                friendly_name: Some("Incoming".into()),
                configuration: Some(config.to_string()),
                assignment_callback_url: Some("https://example.com/assignment".into()),
                fallback_assignment_callback_url: Some("https://example.com/fallback".into()),
                task_reservation_timeout: Some(120),
            }))
            .sid;
        w
    }

    #[track_caller]
    fn run(&mut self, cmd: Command) -> Applied {
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

    fn set_activity(&mut self, name: &str) -> Applied {
        let a = self.activity(name);
        self.run(Command::UpdateWorker(UpdateWorker {
            sid: self.alice,
            if_match: None,
            activity_sid: Some(a),
            attributes: None,
            friendly_name: None,
            reject_pending_reservations: None,
        }))
    }

    fn task(&mut self) -> Applied {
        self.run(Command::CreateTask(CreateTask {
            attributes: Some(r#"{"selected_language":"es"}"#.into()),
            ..Default::default()
        }))
    }

    fn reservation(&self, task: Sid) -> Sid {
        self.ws
            .task_reservations(task)
            .last()
            .expect("a reservation")
            .sid
    }
}

fn types(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

fn text(e: &Event, key: &str) -> String {
    e.get(key)
        .map(|f| f.text())
        .unwrap_or_else(|| panic!("{} has no {key}", e.event_type.as_str()))
}

#[test]
fn a_task_tells_its_story_in_order() {
    let mut w = World::new();
    let created = w.task();
    let task = created.sid;
    // TaskRouter's observed order for a new task.
    assert_eq!(
        types(&created.events),
        [
            "workflow.entered",
            "task-queue.entered",
            "task.created",
            "workflow.target-matched"
        ]
    );
    let matched = &created.events[3];
    assert_eq!(text(matched, "workflow_filter_name"), "Language - Spanish");
    assert_eq!(text(matched, "task_queue_name"), "Spanish");

    w.now += 3 * SEC;
    let available = w.set_activity("Available");
    assert_eq!(
        types(&available.events),
        ["worker.activity.update", "reservation.created"]
    );
    let update = &available.events[0];
    assert_eq!(text(update, "worker_previous_activity_name"), "Offline");
    assert_eq!(text(update, "worker_activity_name"), "Available");
    assert_eq!(text(update, "worker_time_in_previous_activity"), "3");
    let reserved = &available.events[1];
    assert_eq!(text(reserved, "task_age"), "3");
    assert_eq!(text(reserved, "task_assignment_status"), "reserved");
    assert_eq!(text(reserved, "worker_name"), "Alice");
    assert_eq!(
        text(reserved, "task_attributes"),
        r#"{"selected_language":"es"}"#
    );
    assert_eq!(
        reserved.assignment,
        Some(Box::new(AssignmentTarget {
            url: "https://example.com/assignment".into(),
            fallback_url: Some("https://example.com/fallback".into()),
        }))
    );
    // The events filter names reservation.created, not worker.activity.update.
    assert!(reserved.callback && !update.callback);

    let r = w.reservation(task);
    let accepted = w.run(Command::UpdateReservation(UpdateReservation {
        sid: r,
        task: Some(task),
        worker: None,
        if_match: None,
        status: Some(ReservationStatus::Accepted),
        worker_activity_sid: None,
    }));
    assert_eq!(types(&accepted.events), ["reservation.accepted"]);
    assert_eq!(
        text(&accepted.events[0], "task_assignment_status"),
        "assigned"
    );

    let completed = w.run(Command::UpdateTask(UpdateTask {
        sid: task,
        if_match: None,
        attributes: None,
        priority: None,
        assignment_status: Some(TaskStatus::Completed),
        reason: Some("done".into()),
        task_channel: None,
        virtual_start_time: None,
    }));
    assert_eq!(
        types(&completed.events),
        ["task.completed", "reservation.completed"]
    );
    assert_eq!(text(&completed.events[0], "task_completed_reason"), "done");

    // Every event of one workspace gets a later SID than the one before.
    let all: Vec<Sid> = [&created, &available, &accepted, &completed]
        .iter()
        .flat_map(|a| a.events.iter().map(|e| e.sid))
        .collect();
    assert!(all.windows(2).all(|p| p[0] < p[1]));
}

#[test]
fn the_stored_json_carries_the_data_as_strings() {
    let mut w = World::new();
    w.task();
    let available = w.set_activity("Available");
    let e = &available.events[1];
    let v: serde_json::Value = serde_json::from_str(&e.to_json()).expect("json");
    assert_eq!(v["event_type"], "reservation.created");
    assert_eq!(e.event_type.resource_type(), "reservation");
    assert_eq!(v["sid"], e.sid.to_string());
    assert_eq!(v["event_data"]["worker_name"], "Alice");
    assert_eq!(v["event_data"]["workspace_name"], "Events");
    let data = &v["event_data"];
    assert_eq!(data["task_queue_sid"], w.queue.to_string());
    assert_eq!(data["workflow_sid"], w.workflow.to_string());
    assert_eq!(data["reservation_sid"], e.resource_sid.to_string());
    assert_eq!(data["task_priority"], "0");
}

#[test]
fn an_accept_answer_accepts_and_is_recorded_first() {
    let mut w = World::new();
    let task = w.task().sid;
    w.set_activity("Available");
    let r = w.reservation(task);
    let answered = w.run(Command::AssignmentCallback(AssignmentCallback {
        reservation: r,
        attempts: vec![CallbackAttempt {
            url: "https://example.com/assignment".into(),
            status: Some(200),
            outcome: "accept".into(),
            ..Default::default()
        }],
        instruction: Some(CallbackInstruction::Accept),
    }));
    assert_eq!(
        types(&answered.events),
        ["reservation.assignment-callback", "reservation.accepted"]
    );
    assert_eq!(text(&answered.events[0], "callback_outcome"), "accepted");
    assert_eq!(text(&answered.events[0], "callback_status_code"), "200");
    assert_eq!(w.ws.tasks()[&task].assignment_status, TaskStatus::Assigned);
}

#[test]
fn a_reject_answer_moves_the_worker_and_a_late_answer_changes_nothing() {
    let mut w = World::new();
    let task = w.task().sid;
    w.set_activity("Available");
    let r = w.reservation(task);
    let offline = w.activity("Offline");
    let answered = w.run(Command::AssignmentCallback(AssignmentCallback {
        reservation: r,
        attempts: vec![CallbackAttempt {
            url: "https://example.com/assignment".into(),
            status: Some(200),
            ..Default::default()
        }],
        instruction: Some(CallbackInstruction::Reject {
            activity_sid: Some(offline.to_string()),
        }),
    }));
    let t = types(&answered.events);
    assert_eq!(t[0], "reservation.assignment-callback");
    assert!(t.contains(&"reservation.rejected"));
    assert!(t.contains(&"worker.activity.update"));
    assert_eq!(w.ws.workers()[&w.alice].activity_sid, offline);
    assert_eq!(w.ws.tasks()[&task].assignment_status, TaskStatus::Pending);

    // The same answer again: the reservation is no longer pending; only recorded.
    let late = w.run(Command::AssignmentCallback(AssignmentCallback {
        reservation: r,
        attempts: vec![CallbackAttempt {
            url: "https://example.com/assignment".into(),
            status: Some(200),
            ..Default::default()
        }],
        instruction: Some(CallbackInstruction::Accept),
    }));
    assert_eq!(types(&late.events), ["reservation.assignment-callback"]);
    assert_eq!(text(&late.events[0], "callback_outcome"), "error");
    assert!(text(&late.events[0], "callback_message").contains("rejected"));
    assert!(late.changes.is_empty());
}

#[test]
fn a_reject_with_an_unknown_activity_is_refused_with_40100() {
    let mut w = World::new();
    let task = w.task().sid;
    w.set_activity("Available");
    let r = w.reservation(task);
    let answered = w.run(Command::AssignmentCallback(AssignmentCallback {
        reservation: r,
        attempts: vec![CallbackAttempt::default()],
        instruction: Some(CallbackInstruction::Reject {
            activity_sid: Some("WAnope".into()),
        }),
    }));
    assert_eq!(types(&answered.events), ["reservation.assignment-callback"]);
    assert_eq!(text(&answered.events[0], "callback_error_code"), "40100");
    assert_eq!(w.ws.tasks()[&task].assignment_status, TaskStatus::Reserved);
}

#[test]
fn timeouts_and_ttl_are_told_too() {
    let mut w = World::new();
    let task = w.task().sid;
    w.set_activity("Available");
    // The reservation times out after 120 s; Alice goes to the timeout activity.
    w.now += 120 * SEC;
    let (_, events) = w.ws.tick(w.now, &mut w.ids);
    let t = types(&events);
    assert_eq!(t[0], "reservation.timeout");
    assert!(t.contains(&"worker.activity.update"));
    // The task's TTL (24 h) cancels it; five minutes later it is removed.
    w.now += 86_400 * SEC;
    let (_, events) = w.ws.tick(w.now, &mut w.ids);
    assert_eq!(types(&events), ["task.canceled"]);
    assert_eq!(
        text(&events[0], "task_canceled_reason"),
        "Task TTL Exceeded"
    );
    w.now += 5 * 60 * SEC;
    let (_, events) = w.ws.tick(w.now, &mut w.ids);
    assert_eq!(types(&events), ["task.system-deleted"]);
    assert_eq!(events[0].resource_sid, task);
}

#[test]
fn configuration_changes_are_told() {
    let mut w = World::new();
    let applied = w.run(Command::UpdateTaskQueue {
        sid: w.queue,
        params: TaskQueueParams {
            target_workers: Some("languages HAS 'en'".into()),
            ..Default::default()
        },
    });
    assert_eq!(types(&applied.events), ["task-queue.expression.updated"]);
    let channel = w.ws.find_task_channel("voice").expect("voice channel").sid;
    let applied = w.run(Command::UpdateWorkerChannel {
        worker: w.alice,
        channel: channel.to_string(),
        capacity: Some(3),
        available: Some(false),
    });
    assert_eq!(
        types(&applied.events),
        [
            "worker.capacity.update",
            "worker.channel.availability.update"
        ]
    );
    assert_eq!(
        text(&applied.events[0], "worker_channel_previous_capacity"),
        "1"
    );
    // Refused (the workflow uses the queue): nothing is told, then or later.
    let refused =
        w.ws.apply(Command::DeleteTaskQueue { sid: w.queue }, w.now, &mut w.ids);
    assert!(refused.is_err());
    let applied = w.run(Command::CreateActivity {
        friendly_name: "Lunch".into(),
        available: false,
    });
    assert_eq!(types(&applied.events), ["activity.created"]);
    assert_eq!(text(&applied.events[0], "activity_name"), "Lunch");
}

#[test]
fn attribute_changes_are_told_whatever_the_task_status() {
    let mut w = World::new();
    let task = w.task().sid;
    w.set_activity("Available");
    assert_eq!(w.ws.tasks()[&task].assignment_status, TaskStatus::Reserved);
    let updated = w.run(Command::UpdateTask(UpdateTask {
        sid: task,
        if_match: None,
        attributes: Some(r#"{"selected_language":"es","v":2}"#.into()),
        priority: None,
        assignment_status: None,
        reason: None,
        task_channel: None,
        virtual_start_time: None,
    }));
    assert_eq!(types(&updated.events), ["task.updated"]);
    assert_eq!(
        text(&updated.events[0], "task_attributes"),
        r#"{"selected_language":"es","v":2}"#
    );
}

#[test]
fn a_commands_events_render_the_same_with_their_shared_facts_rendered_once() {
    let mut w = World::new();
    let mut commands = vec![w.task().events, w.set_activity("Available").events];
    let task = w.ws.tasks().keys().next().copied().expect("a task");
    let reservation = w.reservation(task);
    commands.push(
        w.run(Command::UpdateReservation(UpdateReservation {
            sid: reservation,
            task: Some(task),
            worker: None,
            if_match: None,
            status: Some(ReservationStatus::Accepted),
            worker_activity_sid: None,
        }))
        .events,
    );
    for status in [TaskStatus::Wrapping, TaskStatus::Completed] {
        commands.push(
            w.run(Command::UpdateTask(UpdateTask {
                sid: task,
                if_match: None,
                attributes: None,
                priority: None,
                assignment_status: Some(status),
                reason: Some("done".into()),
                task_channel: None,
                virtual_start_time: None,
            }))
            .events,
        );
    }
    let canceled = w.task().sid;
    w.now += 5 * SEC;
    commands.push(
        w.run(Command::UpdateTask(UpdateTask {
            sid: canceled,
            if_match: None,
            attributes: None,
            priority: None,
            assignment_status: Some(TaskStatus::Canceled),
            reason: Some("no longer needed".into()),
            task_channel: None,
            virtual_start_time: None,
        }))
        .events,
    );
    let mut reused = 0;
    for events in &commands {
        let mut rendered = Rendered::default();
        for (i, e) in events.iter().enumerate() {
            let json = e.to_json_with(&mut rendered);
            assert_eq!(json, e.to_json(), "{}", e.event_type.as_str());
            let v: serde_json::Value = serde_json::from_str(&json).expect("json");
            let fields = e.fields();
            let data = v["event_data"].as_object().expect("event_data");
            assert_eq!(data.len(), fields.len());
            for (k, f) in fields {
                assert_eq!(data[k], f.text(), "{} {k}", e.event_type.as_str());
            }
            let same_task = |a: &Event, b: &Event| match (&a.task, &b.task) {
                (Some(x), Some(y)) => std::sync::Arc::ptr_eq(x, y) && a.at == b.at,
                _ => false,
            };
            reused += usize::from(i > 0 && same_task(e, &events[i - 1]));
        }
    }
    // The five events of a new task show one task: what makes the reuse worth having.
    assert!(reused >= 4, "{reused}");
}

#[test]
fn looking_up_one_field_agrees_with_spelling_them_all_out() {
    let mut w = World::new();
    let mut all = w.task().events;
    all.extend(w.set_activity("Available").events);
    for e in &all {
        for (k, v) in e.fields() {
            assert_eq!(e.get(k), Some(v), "{} {k}", e.event_type.as_str());
        }
        assert_eq!(e.get("no_such_key"), None);
    }
}
