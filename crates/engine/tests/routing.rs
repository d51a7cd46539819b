//! Routing rules, each written from TaskRouter's documentation (see the reference notes on
//! task and reservation lifecycles, workflow evaluation and worker selection), driven
//! through the engine's public commands with an explicit clock.

use serde_json::json;
use taskyard_engine::*;

struct World {
    ws: Workspace,
    ids: CountingSids,
    now: Millis,
}

const SEC: Millis = 1000;

impl World {
    fn new() -> World {
        World::with(true)
    }

    fn with(multi_task: bool) -> World {
        let mut ids = CountingSids(0);
        let now = 1_700_000_000_000;
        let (ws, _) = Workspace::create(
            Sid::new("AC", 1),
            NewWorkspace {
                friendly_name: "Test".into(),
                multi_task_enabled: Some(multi_task),
                ..Default::default()
            },
            now,
            &mut ids,
        )
        .expect("workspace");
        World { ws, ids, now }
    }

    #[track_caller]
    fn run(&mut self, cmd: Command) -> Sid {
        self.try_run(cmd)
            .unwrap_or_else(|e| panic!("command failed: {e}"))
            .sid
    }

    fn try_run(&mut self, cmd: Command) -> Result<Applied, EngineError> {
        self.ws.apply(cmd, self.now, &mut self.ids)
    }

    /// Moves the clock forward, firing timers at their own instants.
    fn advance(&mut self, ms: Millis) {
        let end = self.now + ms;
        while let Some(at) = self.ws.next_deadline().filter(|at| *at <= end) {
            self.now = self.now.max(at);
            self.ws.tick(self.now, &mut self.ids);
        }
        self.now = end;
    }

    fn activity(&self, name: &str) -> Sid {
        self.ws
            .activities()
            .values()
            .find(|a| &*a.friendly_name == name)
            .unwrap_or_else(|| panic!("no activity {name}"))
            .sid
    }

    fn worker(&mut self, name: &str, attrs: serde_json::Value, available: bool) -> Sid {
        let activity = self.activity(if available { "Available" } else { "Offline" });
        self.run(Command::CreateWorker(CreateWorker {
            friendly_name: name.into(),
            activity_sid: Some(activity),
            attributes: Some(attrs.to_string()),
        }))
    }

    fn set_activity(&mut self, worker: Sid, name: &str) {
        let a = self.activity(name);
        self.run(Command::UpdateWorker(UpdateWorker {
            sid: worker,
            if_match: None,
            activity_sid: Some(a),
            attributes: None,
            friendly_name: None,
            reject_pending_reservations: None,
        }));
    }

    fn queue(&mut self, name: &str, target: &str) -> Sid {
        self.queue_with(name, target, |_| {})
    }

    fn queue_with(
        &mut self,
        name: &str,
        target: &str,
        f: impl FnOnce(&mut TaskQueueParams),
    ) -> Sid {
        let mut p = TaskQueueParams {
            friendly_name: Some(name.into()),
            target_workers: Some(target.into()),
            ..Default::default()
        };
        f(&mut p);
        self.run(Command::CreateTaskQueue(p))
    }

    fn workflow(&mut self, config: serde_json::Value, reservation_timeout: u32) -> Sid {
        self.run(Command::CreateWorkflow(WorkflowParams {
            friendly_name: Some("Flow".into()),
            configuration: Some(config.to_string()),
            task_reservation_timeout: Some(reservation_timeout),
            ..Default::default()
        }))
    }

    fn task(&mut self, attrs: serde_json::Value) -> Sid {
        self.task_with(attrs, |_| {})
    }

    fn task_with(&mut self, attrs: serde_json::Value, f: impl FnOnce(&mut CreateTask)) -> Sid {
        let mut p = CreateTask {
            attributes: Some(attrs.to_string()),
            ..Default::default()
        };
        f(&mut p);
        self.run(Command::CreateTask(p))
    }

    fn status(&self, task: Sid) -> TaskStatus {
        self.ws.tasks()[&task].assignment_status
    }

    fn queue_of(&self, task: Sid) -> Option<Sid> {
        self.ws.tasks()[&task].task_queue_sid
    }

    /// `(worker, status)` of a task's reservations, oldest first.
    fn reservations(&self, task: Sid) -> Vec<(Sid, ReservationStatus)> {
        self.ws
            .task_reservations(task)
            .map(|r| (r.worker_sid, r.status))
            .collect()
    }

    fn pending_reservation(&self, task: Sid) -> Sid {
        self.ws
            .task_reservations(task)
            .find(|r| r.status == ReservationStatus::Pending)
            .expect("a pending reservation")
            .sid
    }

    fn set_reservation(
        &mut self,
        r: Sid,
        status: ReservationStatus,
        activity: Option<Sid>,
    ) -> Result<Applied, EngineError> {
        self.try_run(Command::UpdateReservation(UpdateReservation {
            sid: r,
            task: None,
            worker: None,
            if_match: None,
            status: Some(status),
            worker_activity_sid: activity,
        }))
    }

    fn update_task(
        &mut self,
        task: Sid,
        f: impl FnOnce(&mut UpdateTask),
    ) -> Result<Applied, EngineError> {
        let mut p = UpdateTask {
            sid: task,
            if_match: None,
            attributes: None,
            priority: None,
            assignment_status: None,
            reason: None,
            task_channel: None,
            virtual_start_time: None,
        };
        f(&mut p);
        self.try_run(Command::UpdateTask(p))
    }
}

fn one_queue_flow(queue: Sid) -> serde_json::Value {
    json!({"task_routing": {"filters": [], "default_filter": {"queue": queue.to_string()}}})
}

/// The TaskRouter quickstart: Alice (en, es) and Bob (en), a Spanish and an English queue.
#[test]
fn quickstart_spanish_task_waits_for_alice_then_is_accepted() {
    let mut w = World::new();
    let alice = w.worker("Alice", json!({"languages": ["en", "es"]}), false);
    let bob = w.worker("Bob", json!({"languages": ["en"]}), true);
    let spanish = w.queue("Customer Care Requests - Spanish", r#"languages HAS "es""#);
    let english = w.queue("Customer Care Requests - English", r#"languages HAS "en""#);
    let flow = w.workflow(
        json!({"task_routing": {"filters": [
            {"filter_friendly_name": "Language - Spanish", "expression": "selected_language == \"es\"",
             "targets": [{"queue": spanish.to_string()}]},
            {"filter_friendly_name": "Language - English", "expression": "selected_language == \"en\"",
             "targets": [{"queue": english.to_string()}]}]}}),
        1200,
    );
    assert_eq!(
        w.ws.task_queues()[&spanish]
            .members
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        vec![alice]
    );
    assert_eq!(w.ws.task_queues()[&english].members.len(), 2);

    let t = w.task_with(json!({"selected_language": "es"}), |p| {
        p.workflow_sid = Some(flow)
    });
    assert_eq!(
        w.status(t),
        TaskStatus::Pending,
        "Bob is not eligible, Alice is offline"
    );
    assert_eq!(w.queue_of(t), Some(spanish));
    assert!(w.reservations(t).is_empty());

    w.advance(5 * SEC);
    w.set_activity(alice, "Available");
    assert_eq!(
        w.status(t),
        TaskStatus::Reserved,
        "reserved the moment Alice is available"
    );
    assert_eq!(w.reservations(t), vec![(alice, ReservationStatus::Pending)]);
    let r = w.pending_reservation(t);
    assert_eq!(w.ws.reservations()[&r].timeout_at, w.now + 1200 * SEC);

    w.set_reservation(r, ReservationStatus::Accepted, None)
        .expect("accept");
    assert_eq!(w.status(t), TaskStatus::Assigned);
    assert_eq!(
        w.reservations(t),
        vec![(alice, ReservationStatus::Accepted)]
    );
    let _ = bob;
}

#[test]
fn the_longest_idle_worker_is_reserved_first() {
    let mut w = World::new();
    let q = w.queue("Q", "1==1");
    w.workflow(one_queue_flow(q), 120);
    let a = w.worker("A", json!({}), true);
    w.advance(SEC);
    let b = w.worker("B", json!({}), true);
    let t1 = w.task(json!({}));
    assert_eq!(w.reservations(t1)[0].0, a, "A has been idle longest");
    let t2 = w.task(json!({}));
    assert_eq!(
        w.reservations(t2)[0].0,
        b,
        "A is busy (capacity 1), B is next"
    );
}

#[test]
fn fifo_queues_serve_priority_then_age_and_lifo_queues_the_newest() {
    let mut w = World::new();
    let fifo = w.queue("FIFO", "1==1");
    w.workflow(one_queue_flow(fifo), 120);
    let low_old = w.task(json!({}));
    w.advance(SEC);
    let high = w.task_with(json!({}), |p| p.priority = Some(10));
    w.advance(SEC);
    let low_new = w.task(json!({}));
    let worker = w.worker("W", json!({}), true);
    assert_eq!(
        w.status(high),
        TaskStatus::Reserved,
        "highest priority first"
    );
    let r = w.pending_reservation(high);
    w.set_reservation(r, ReservationStatus::Accepted, None)
        .expect("accept");
    w.update_task(high, |p| {
        p.assignment_status = Some(TaskStatus::Completed);
        p.reason = Some("done".into());
    })
    .expect("complete");
    assert_eq!(
        w.status(low_old),
        TaskStatus::Reserved,
        "then the oldest of equal priority"
    );
    assert_eq!(w.status(low_new), TaskStatus::Pending);
    let _ = worker;

    let mut w = World::new();
    let lifo = w.queue_with("LIFO", "1==1", |p| p.task_order = Some(QueueOrder::Lifo));
    w.workflow(one_queue_flow(lifo), 120);
    let old = w.task_with(json!({}), |p| p.priority = Some(50));
    w.advance(SEC);
    let new = w.task(json!({}));
    w.worker("W", json!({}), true);
    assert_eq!(
        w.status(new),
        TaskStatus::Reserved,
        "LIFO: newest first, priority ignored"
    );
    assert_eq!(w.status(old), TaskStatus::Pending);
}

#[test]
fn workspace_prioritize_queue_order_decides_between_fifo_and_lifo_queues() {
    for (order, expect_lifo) in [(QueueOrder::Fifo, false), (QueueOrder::Lifo, true)] {
        let mut w = World::new();
        w.run(Command::UpdateWorkspace(UpdateWorkspace {
            prioritize_queue_order: Some(order),
            ..Default::default()
        }));
        let fifo = w.queue("FIFO", "1==1");
        let lifo = w.queue_with("LIFO", "1==1", |p| p.task_order = Some(QueueOrder::Lifo));
        let in_fifo = w.task_with(json!({}), |p| p.task_queue_sid = Some(fifo));
        let in_lifo = w.task_with(json!({}), |p| p.task_queue_sid = Some(lifo));
        w.worker("W", json!({}), true);
        let (won, lost) = if expect_lifo {
            (in_lifo, in_fifo)
        } else {
            (in_fifo, in_lifo)
        };
        assert_eq!(w.status(won), TaskStatus::Reserved, "{order:?}");
        assert_eq!(w.status(lost), TaskStatus::Pending, "{order:?}");
    }
}

#[test]
fn multi_reservation_first_accept_wins_and_the_rest_are_rescinded() {
    let mut w = World::new();
    let q = w.queue_with("Q", "1==1", |p| p.max_reserved_workers = Some(2));
    w.workflow(one_queue_flow(q), 120);
    let a = w.worker("A", json!({}), true);
    let b = w.worker("B", json!({}), true);
    let c = w.worker("C", json!({}), true);
    let t = w.task(json!({}));
    let res = w.reservations(t);
    assert_eq!(
        res,
        vec![
            (a, ReservationStatus::Pending),
            (b, ReservationStatus::Pending)
        ]
    );
    let rb =
        w.ws.task_reservations(t)
            .find(|r| r.worker_sid == b)
            .expect("b")
            .sid;
    let ra =
        w.ws.task_reservations(t)
            .find(|r| r.worker_sid == a)
            .expect("a")
            .sid;
    w.set_reservation(rb, ReservationStatus::Accepted, None)
        .expect("accept");
    assert_eq!(
        w.ws.reservations()[&ra].status,
        ReservationStatus::Rescinded
    );
    let err = w
        .set_reservation(ra, ReservationStatus::Accepted, None)
        .expect_err("rescinded");
    assert!(
        matches!(err, EngineError::Gone { .. }),
        "accepting a rescinded reservation is 410"
    );
    assert_eq!(w.status(t), TaskStatus::Assigned);
    // A is free again and C never got a reservation.
    let t2 = w.task(json!({}));
    let mut got: Vec<Sid> = w.reservations(t2).into_iter().map(|(w, _)| w).collect();
    got.sort();
    let mut want = vec![a, c];
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn a_rejected_task_goes_to_the_next_worker_and_never_back_to_the_rejecter() {
    let mut w = World::new();
    let q = w.queue("Q", "1==1");
    w.workflow(one_queue_flow(q), 120);
    let a = w.worker("A", json!({}), true);
    let t = w.task(json!({}));
    let r = w.pending_reservation(t);
    let lunch = w.run(Command::CreateActivity {
        friendly_name: "Lunch".into(),
        available: false,
    });
    w.set_reservation(r, ReservationStatus::Rejected, Some(lunch))
        .expect("reject");
    assert_eq!(w.status(t), TaskStatus::Pending);
    assert_eq!(
        w.ws.workers()[&a].activity_sid,
        lunch,
        "WorkerActivitySid moves the worker"
    );
    w.set_activity(a, "Available");
    assert_eq!(w.status(t), TaskStatus::Pending, "not offered to A again");
    let b = w.worker("B", json!({}), true);
    assert_eq!(
        w.reservations(t).last(),
        Some(&(b, ReservationStatus::Pending))
    );
    assert!(
        w.set_reservation(r, ReservationStatus::Accepted, None)
            .is_err(),
        "a rejected reservation cannot be accepted"
    );
}

#[test]
fn a_reservation_timeout_moves_the_worker_to_the_timeout_activity_and_reroutes() {
    let mut w = World::new();
    let q = w.queue("Q", "1==1");
    w.workflow(one_queue_flow(q), 30);
    let a = w.worker("A", json!({}), true);
    let t = w.task(json!({}));
    let r = w.pending_reservation(t);
    w.advance(29 * SEC);
    assert_eq!(w.ws.reservations()[&r].status, ReservationStatus::Pending);
    let b = w.worker("B", json!({}), true);
    w.advance(SEC);
    assert_eq!(w.ws.reservations()[&r].status, ReservationStatus::Timeout);
    assert_eq!(w.ws.workers()[&a].activity_sid, w.activity("Offline"));
    assert_eq!(
        w.reservations(t).last(),
        Some(&(b, ReservationStatus::Pending))
    );
}

#[test]
fn step_timeouts_are_cumulative_against_task_age() {
    // The docs' example: three 10 s targets and a 5 s reservation timeout. A reservation
    // made at t=3 times out at t=8; the task stays in Q1 until age 10, then Q2 until 20,
    // then Q3 until 30, then leaves the workflow.
    let mut w = World::new();
    let q1 = w.queue("Q1", "q == 1");
    let q2 = w.queue("Q2", "q == 2");
    let q3 = w.queue("Q3", "q == 3");
    w.workflow(
        json!({"task_routing": {"filters": [{"expression": "1==1", "targets": [
            {"queue": q1.to_string(), "timeout": 10},
            {"queue": q2.to_string(), "timeout": 10},
            {"queue": q3.to_string(), "timeout": 10}]}]}}),
        5,
    );
    let a = w.worker("A", json!({"q": 1}), false);
    let t = w.task(json!({}));
    let created = w.now;
    w.advance(3 * SEC);
    w.set_activity(a, "Available");
    assert_eq!(w.status(t), TaskStatus::Reserved);
    w.advance(5 * SEC);
    assert_eq!(
        w.status(t),
        TaskStatus::Pending,
        "reservation timed out at t=8"
    );
    assert_eq!(w.queue_of(t), Some(q1), "still within Q1's 10 s");
    w.advance(2 * SEC - 1);
    assert_eq!(w.queue_of(t), Some(q1));
    w.advance(1);
    assert_eq!(w.queue_of(t), Some(q2), "moved at age 10");
    assert_eq!(
        w.ws.tasks()[&t].step.and_then(|s| s.deadline),
        Some(created + 20 * SEC)
    );
    w.advance(10 * SEC);
    assert_eq!(w.queue_of(t), Some(q3));
    w.advance(10 * SEC);
    assert_eq!(
        w.status(t),
        TaskStatus::Canceled,
        "fell off the end of the workflow"
    );
    assert_eq!(
        w.ws.tasks()[&t].reason.as_deref(),
        Some("Task canceled on Workflow Timeout")
    );
}

#[test]
fn skip_if_moves_on_at_once_when_nobody_can_take_the_task() {
    let mut w = World::new();
    let vip = w.queue("VIP", "vip == true");
    let all = w.queue("All", "1==1");
    w.workflow(
        json!({"task_routing": {"filters": [{"expression": "1==1", "targets": [
            {"queue": vip.to_string(), "timeout": 300, "skip_if": "workers.available == 0"},
            {"queue": all.to_string()}]}]}}),
        120,
    );
    w.worker("V", json!({"vip": true}), false);
    let t = w.task(json!({}));
    assert_eq!(
        w.queue_of(t),
        Some(all),
        "skipped the VIP step: no VIP worker available"
    );
    // Without skip_if the task would wait in the first step.
    let mut w2 = World::new();
    let vip2 = w2.queue("VIP", "vip == true");
    let all2 = w2.queue("All", "1==1");
    w2.workflow(
        json!({"task_routing": {"filters": [{"expression": "1==1", "targets": [
            {"queue": vip2.to_string(), "timeout": 300}, {"queue": all2.to_string()}]}]}}),
        120,
    );
    let t2 = w2.task(json!({}));
    assert_eq!(w2.queue_of(t2), Some(vip2));
}

#[test]
fn target_expressions_known_workers_and_order_by_pick_the_worker() {
    let mut w = World::new();
    let q = w.queue("Q", "1==1");
    w.workflow(
        json!({"task_routing": {"filters": [
            {"expression": "kind == 'lang'", "targets": [{"queue": q.to_string(),
                "expression": "task.language IN worker.languages"}]},
            {"expression": "kind == 'known'", "targets": [{"queue": q.to_string(),
                "known_worker_friendly_name": "task.agent"}]},
            {"expression": "kind == 'best'", "targets": [{"queue": q.to_string(),
                "order_by": "worker.level DESC"}]}]}}),
        120,
    );
    let en = w.worker("En", json!({"languages": ["en"], "level": 1}), true);
    let fr = w.worker("Fr", json!({"languages": ["fr"], "level": 9}), true);
    let mid = w.worker("Mid", json!({"languages": [], "level": 5}), true);
    let t = w.task(json!({"kind": "lang", "language": "fr"}));
    assert_eq!(w.reservations(t)[0].0, fr);
    let t = w.task(json!({"kind": "known", "agent": "mid"}));
    assert_eq!(
        w.reservations(t)[0].0,
        mid,
        "known worker by friendly name, case-insensitive"
    );
    let t = w.task(json!({"kind": "best"}));
    assert_eq!(w.reservations(t)[0].0, en, "the only free worker left");
    // With everyone free again, order_by prefers the highest level.
    let mut w = World::new();
    let q = w.queue("Q", "1==1");
    w.workflow(
        json!({"task_routing": {"filters": [{"expression": "1==1", "targets": [
            {"queue": q.to_string(), "order_by": "worker.level DESC"}]}]}}),
        120,
    );
    w.worker("L1", json!({"level": 1}), true);
    let l9 = w.worker("L9", json!({"level": 9}), true);
    w.worker("L5", json!({"level": 5}), true);
    let t = w.task(json!({}));
    assert_eq!(w.reservations(t)[0].0, l9);
}

#[test]
fn task_ttl_cancels_and_cancels_pending_reservations() {
    let mut w = World::new();
    let q = w.queue("Q", "1==1");
    w.workflow(one_queue_flow(q), 600);
    let a = w.worker("A", json!({}), true);
    let t = w.task_with(json!({}), |p| p.timeout = Some(60));
    let r = w.pending_reservation(t);
    w.advance(60 * SEC);
    assert_eq!(w.status(t), TaskStatus::Canceled);
    assert_eq!(
        w.ws.tasks()[&t].reason.as_deref(),
        Some("Task TTL Exceeded")
    );
    assert_eq!(w.ws.reservations()[&r].status, ReservationStatus::Canceled);
    assert!(
        w.ws.active_reservations(a).next().is_none(),
        "capacity released"
    );
    w.advance(5 * 60 * SEC);
    assert!(
        !w.ws.tasks().contains_key(&t),
        "finished tasks are removed after 5 minutes"
    );
    assert!(!w.ws.reservations().contains_key(&r));
}

#[test]
fn only_documented_task_transitions_are_allowed() {
    let mut w = World::new();
    let q = w.queue("Q", "1==1");
    w.workflow(one_queue_flow(q), 120);
    let t = w.task(json!({}));
    let wrap = |p: &mut UpdateTask| p.assignment_status = Some(TaskStatus::Wrapping);
    let err = w.update_task(t, wrap).expect_err("pending cannot wrap");
    assert!(
        err.to_string()
            .starts_with(&format!("Cannot wrap up a task {t}")),
        "{err}"
    );
    assert!(
        err.to_string()
            .ends_with("because it is not currently assigned."),
        "{err}"
    );
    assert!(
        w.update_task(t, |p| p.assignment_status = Some(TaskStatus::Assigned))
            .is_err()
    );
    let no_reason = w.update_task(t, |p| p.assignment_status = Some(TaskStatus::Canceled));
    assert!(matches!(
        no_reason,
        Err(EngineError::Invalid {
            param: "Reason",
            ..
        })
    ));

    w.worker("A", json!({}), true);
    let r = w.pending_reservation(t);
    w.set_reservation(r, ReservationStatus::Accepted, None)
        .expect("accept");
    let err = w
        .update_task(t, |p| {
            p.assignment_status = Some(TaskStatus::Canceled);
            p.reason = Some("x".into());
        })
        .expect_err("assigned cannot cancel");
    assert!(
        err.to_string()
            .contains("because it is not pending or reserved."),
        "{err}"
    );
    w.update_task(t, wrap).expect("assigned → wrapping");
    assert_eq!(w.ws.reservations()[&r].status, ReservationStatus::Wrapping);
    w.update_task(t, |p| {
        p.assignment_status = Some(TaskStatus::Completed);
        p.reason = Some("resolved".into());
    })
    .expect("wrapping → completed");
    assert_eq!(w.ws.reservations()[&r].status, ReservationStatus::Completed);
    assert_eq!(w.ws.tasks()[&t].reason.as_deref(), Some("resolved"));
}

#[test]
fn multitasking_capacity_is_per_channel() {
    let mut w = World::new();
    let q = w.queue("Q", "1==1");
    w.workflow(one_queue_flow(q), 120);
    let a = w.worker("A", json!({}), true);
    w.run(Command::UpdateWorkerChannel {
        worker: a,
        channel: "chat".into(),
        capacity: Some(2),
        available: None,
    });
    let chat = |w: &mut World| w.task_with(json!({}), |p| p.task_channel = Some("chat".into()));
    let (c1, c2, c3) = (chat(&mut w), chat(&mut w), chat(&mut w));
    let voice = w.task_with(json!({}), |p| p.task_channel = Some("voice".into()));
    assert_eq!(
        [c1, c2, c3, voice].map(|t| w.status(t)),
        [
            TaskStatus::Reserved,
            TaskStatus::Reserved,
            TaskStatus::Pending,
            TaskStatus::Reserved
        ],
        "two chats fill chat capacity; voice has its own"
    );
    let chat_sid = w.ws.find_task_channel("chat").expect("chat").sid;
    let wc = w.ws.workers()[&a].channel(chat_sid).expect("wc").clone();
    let worker = &w.ws.workers()[&a];
    assert_eq!(
        w.ws.channel_load(worker, &wc).available_capacity_percentage,
        0
    );
    // Turning the channel off stops new chat reservations only; completing one frees a slot.
    let r1 = w.pending_reservation(c1);
    w.set_reservation(r1, ReservationStatus::Accepted, None)
        .expect("accept");
    w.run(Command::UpdateWorkerChannel {
        worker: a,
        channel: "chat".into(),
        capacity: None,
        available: Some(false),
    });
    w.update_task(c1, |p| {
        p.assignment_status = Some(TaskStatus::Completed);
        p.reason = Some("ok".into());
    })
    .expect("complete");
    assert_eq!(
        w.status(c3),
        TaskStatus::Pending,
        "chat channel unavailable"
    );
    w.run(Command::UpdateWorkerChannel {
        worker: a,
        channel: "chat".into(),
        capacity: None,
        available: Some(true),
    });
    assert_eq!(w.status(c3), TaskStatus::Reserved);
}

#[test]
fn single_tasking_moves_workers_through_reservation_and_assignment_activities() {
    let mut w = World::with(false);
    let reserved = w.run(Command::CreateActivity {
        friendly_name: "Reserved".into(),
        available: false,
    });
    let busy = w.run(Command::CreateActivity {
        friendly_name: "Busy".into(),
        available: false,
    });
    let q = w.queue_with("Q", "1==1", |p| {
        p.reservation_activity_sid = Some(reserved);
        p.assignment_activity_sid = Some(busy);
    });
    w.workflow(one_queue_flow(q), 120);
    let a = w.worker("A", json!({}), true);
    let available = w.activity("Available");
    let t1 = w.task(json!({}));
    assert_eq!(w.ws.workers()[&a].activity_sid, reserved);
    let r = w.pending_reservation(t1);
    w.set_reservation(r, ReservationStatus::Rejected, None)
        .expect("reject");
    assert_eq!(
        w.ws.workers()[&a].activity_sid,
        available,
        "back to the activity it had before the reservation"
    );
    let t2 = w.task(json!({}));
    let t3 = w.task_with(json!({}), |p| p.task_channel = Some("voice".into()));
    assert_eq!(w.ws.workers()[&a].activity_sid, reserved);
    assert_eq!(
        w.status(t3),
        TaskStatus::Pending,
        "one task at a time, whatever the channel"
    );
    let r2 = w.pending_reservation(t2);
    w.set_reservation(r2, ReservationStatus::Accepted, None)
        .expect("accept");
    assert_eq!(w.ws.workers()[&a].activity_sid, busy);
    assert_eq!(
        w.status(t1),
        TaskStatus::Pending,
        "never offered to A again"
    );
}

#[test]
fn reject_pending_reservations_when_going_offline() {
    let mut w = World::new();
    let q = w.queue_with("Q", "1==1", |p| p.max_reserved_workers = Some(1));
    w.workflow(one_queue_flow(q), 120);
    let a = w.worker("A", json!({}), true);
    let t = w.task(json!({}));
    let r = w.pending_reservation(t);
    let offline = w.activity("Offline");
    let available = w.activity("Available");
    let bad = w.try_run(Command::UpdateWorker(UpdateWorker {
        sid: a,
        if_match: None,
        activity_sid: Some(available),
        attributes: None,
        friendly_name: None,
        reject_pending_reservations: Some(true),
    }));
    assert!(bad.is_err(), "only valid with an unavailable activity");
    w.run(Command::UpdateWorker(UpdateWorker {
        sid: a,
        if_match: None,
        activity_sid: Some(offline),
        attributes: None,
        friendly_name: None,
        reject_pending_reservations: Some(true),
    }));
    assert_eq!(w.ws.reservations()[&r].status, ReservationStatus::Rejected);
    assert_eq!(w.status(t), TaskStatus::Pending);
}

#[test]
fn new_attributes_and_workflow_updates_re_evaluate_pending_tasks() {
    let mut w = World::new();
    let es = w.queue("ES", "es == true");
    let en = w.queue("EN", "en == true");
    let config = |first: Sid, second: Sid| {
        json!({"task_routing": {"filters": [
            {"expression": "lang == 'es'", "targets": [{"queue": first.to_string()}]},
            {"expression": "lang == 'en'", "targets": [{"queue": second.to_string()}]}]}})
    };
    let flow = w.workflow(config(es, en), 120);
    let t = w.task(json!({"lang": "es"}));
    assert_eq!(w.queue_of(t), Some(es));
    w.update_task(t, |p| {
        p.attributes = Some(json!({"lang": "en"}).to_string())
    })
    .expect("update");
    assert_eq!(w.queue_of(t), Some(en), "attributes changed: re-evaluated");
    w.run(Command::UpdateWorkflow {
        sid: flow,
        params: WorkflowParams {
            configuration: Some(config(en, es).to_string()),
            ..Default::default()
        },
        re_evaluate_tasks: false,
    });
    assert_eq!(
        w.queue_of(t),
        Some(en),
        "without ReEvaluateTasks tasks stay"
    );
    w.run(Command::UpdateWorkflow {
        sid: flow,
        params: WorkflowParams::default(),
        re_evaluate_tasks: true,
    });
    assert_eq!(
        w.queue_of(t),
        Some(es),
        "ReEvaluateTasks moves pending tasks"
    );
}

#[test]
fn default_filter_catches_unmatched_tasks_and_without_one_tasks_wait() {
    let mut w = World::new();
    let q = w.queue("Q", "1==1");
    let other = w.queue("Other", "1==1");
    let flow = w.workflow(
        json!({"task_routing": {"filters": [{"expression": "x == 1", "targets": [{"queue": other.to_string()}]}],
                                "default_filter": {"queue": q.to_string()}}}),
        120,
    );
    let t = w.task(json!({}));
    assert_eq!(w.queue_of(t), Some(q));
    w.run(Command::UpdateWorkflow {
        sid: flow,
        params: WorkflowParams {
            configuration: Some(
                json!({"task_routing": {"filters": [{"expression": "x == 1", "targets": [{"queue": other.to_string()}]}]}})
                    .to_string(),
            ),
            ..Default::default()
        },
        re_evaluate_tasks: false,
    });
    let lonely = w.task(json!({}));
    assert_eq!(w.queue_of(lonely), None, "no filter, no default: no queue");
    assert_eq!(w.status(lonely), TaskStatus::Pending);
}

#[test]
fn refusals_protect_live_tasks_and_workers() {
    let mut w = World::new();
    let q = w.queue("Q", "1==1");
    let flow = w.workflow(one_queue_flow(q), 120);
    let a = w.worker("A", json!({}), true);
    w.task(json!({}));
    for cmd in [
        Command::DeleteWorker {
            sid: a,
            if_match: None,
        },
        Command::DeleteTaskQueue { sid: q },
        Command::DeleteWorkflow { sid: flow },
        Command::DeleteTaskChannel {
            channel: "default".into(),
        },
    ] {
        let before = w.ws.all_rows();
        assert!(matches!(w.try_run(cmd), Err(EngineError::Refused { .. })));
        assert_eq!(before, w.ws.all_rows());
    }
}

#[test]
fn timers_survive_a_restore() {
    let mut w = World::new();
    let q = w.queue("Q", "1==1");
    w.workflow(one_queue_flow(q), 30);
    let a = w.worker("A", json!({}), true);
    let t = w.task_with(json!({}), |p| p.timeout = Some(100));
    let r = w.pending_reservation(t);
    let restored = Workspace::restore(w.ws.all_rows().into_iter().filter_map(|c| match c {
        Change::Put { kind, body, .. } => Some((kind, body.to_json().into_owned())),
        _ => None,
    }))
    .expect("restore");
    w.ws = restored;
    assert_eq!(
        w.ws.next_deadline(),
        Some(w.ws.reservations()[&r].timeout_at)
    );
    w.advance(30 * SEC);
    assert_eq!(w.ws.reservations()[&r].status, ReservationStatus::Timeout);
    assert_eq!(w.ws.workers()[&a].activity_sid, w.activity("Offline"));
    w.advance(70 * SEC);
    assert_eq!(
        w.status(t),
        TaskStatus::Canceled,
        "the TTL timer was re-armed too"
    );
}

#[test]
fn skip_if_also_leaves_a_target_without_timeout() {
    let mut w = World::new();
    let a = w.queue("A", "team == 'a'");
    let b = w.queue("B", "1==1");
    w.workflow(
        json!({"task_routing": {"filters": [{"expression": "1==1", "targets": [
            {"queue": a.to_string(), "skip_if": "workers.available == 0"},
            {"queue": b.to_string()}]}]}}),
        120,
    );
    let t = w.task(json!({}));
    assert_eq!(
        w.queue_of(t),
        Some(b),
        "skipped A although A has no timeout"
    );
    assert_eq!(w.status(t), TaskStatus::Pending);
}

#[test]
fn lifo_serves_the_later_created_of_tasks_with_the_same_start_time() {
    let mut w = World::new();
    let lifo = w.queue_with("LIFO", "1==1", |p| p.task_order = Some(QueueOrder::Lifo));
    w.workflow(one_queue_flow(lifo), 120);
    let vst = w.now - 60 * SEC;
    let tasks: Vec<Sid> = (0..3)
        .map(|_| w.task_with(json!({}), |p| p.virtual_start_time = Some(vst)))
        .collect();
    w.worker("W", json!({}), true);
    assert_eq!(w.status(tasks[2]), TaskStatus::Reserved);
    assert_eq!(w.status(tasks[0]), TaskStatus::Pending);
}

/// A worker made available takes a task on every channel it has room on, even when the
/// channel's task waits behind others in its queue; a worker whose attributes change moves
/// between skill queues (found through the queues' expression index) and takes what waits
/// there.
#[test]
fn a_freed_worker_takes_a_task_per_channel_and_follows_its_skill_between_queues() {
    let mut w = World::new();
    let qx = w.queue("X", "skill == \"x\"");
    let qy = w.queue("Y", "skill == 'y' OR 1 == 2");
    let flow = json!({"task_routing": {"filters": [
        {"expression": "skill == \"x\"", "targets": [{"queue": qx.to_string()}]},
        {"expression": "skill == \"y\"", "targets": [{"queue": qy.to_string()}]},
    ]}});
    w.workflow(flow, 120);
    let worker = w.worker("W", json!({"skill": "x"}), false);
    let defaults: Vec<Sid> = (0..3).map(|_| w.task(json!({"skill": "x"}))).collect();
    let chat = w.task_with(json!({"skill": "x"}), |p| {
        p.task_channel = Some("chat".into())
    });
    let in_y = w.task(json!({"skill": "y"}));
    assert!(w.ws.task_queues()[&qx].members.contains(&worker));
    assert!(!w.ws.task_queues()[&qy].members.contains(&worker));

    w.set_activity(worker, "Available");
    assert_eq!(
        w.status(defaults[0]),
        TaskStatus::Reserved,
        "the oldest default task"
    );
    assert_eq!(
        w.status(defaults[1]),
        TaskStatus::Pending,
        "default capacity is 1"
    );
    assert_eq!(
        w.status(chat),
        TaskStatus::Reserved,
        "chat has room: behind the others"
    );
    assert_eq!(w.status(in_y), TaskStatus::Pending);

    // Now a member of Y only; with both channels full it takes nothing there yet.
    w.run(Command::UpdateWorker(UpdateWorker {
        sid: worker,
        if_match: None,
        activity_sid: None,
        attributes: Some(json!({"skill": "y"}).to_string()),
        friendly_name: None,
        reject_pending_reservations: None,
    }));
    assert!(!w.ws.task_queues()[&qx].members.contains(&worker));
    assert!(w.ws.task_queues()[&qy].members.contains(&worker));
    assert_eq!(w.status(in_y), TaskStatus::Pending);
    // Its default reservation ends: the default slot frees and Y's task is taken.
    let r = w.pending_reservation(defaults[0]);
    w.set_reservation(r, ReservationStatus::Rejected, None)
        .expect("reject");
    assert_eq!(w.status(in_y), TaskStatus::Reserved);
    assert_eq!(
        w.status(defaults[1]),
        TaskStatus::Pending,
        "no longer its queue"
    );
}

// ----- Route preview ("what would route where") -------------------------------------------

#[test]
fn a_route_preview_lists_matching_filters_steps_and_admitted_workers() {
    let mut w = World::new();
    let alice = w.worker("Alice", json!({"languages": ["es"], "level": 3}), true);
    let bob = w.worker("Bob", json!({"languages": ["es"], "level": 1}), false);
    let carol = w.worker("Carol", json!({"languages": ["en"], "level": 5}), true);
    let spanish = w.queue("Spanish", r#"languages HAS "es""#);
    let everyone = w.queue("Everyone", "1==1");
    let flow = w.workflow(
        json!({"task_routing": {"filters": [
            {"filter_friendly_name": "Spanish", "expression": "language == 'es'",
             "targets": [
                {"queue": spanish.to_string(), "expression": "worker.level >= task.min_level", "timeout": 30},
                {"queue": everyone.to_string(), "priority": 5}]},
            {"filter_friendly_name": "Also Spanish", "expression": "language IN ['es', 'pt']",
             "targets": [{"queue": everyone.to_string()}]}],
         "default_filter": {"queue": everyone.to_string()}}}),
        120,
    );
    let config = w.ws.workflows()[&flow].config.clone();

    let p =
        w.ws.preview_route(&config, r#"{"language": "es", "min_level": 2}"#, "default")
            .expect("preview");
    assert!(p.matched);
    let shape: Vec<_> = p
        .steps
        .iter()
        .map(|s| {
            (
                s.filter,
                s.target,
                s.queue,
                s.leaves_after,
                s.admitted,
                s.with_room,
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            (Some(0), 0, spanish, Some(30), 1, 1),
            (Some(0), 1, everyone, None, 3, 2),
            (Some(1), 0, everyone, None, 3, 2),
        ],
        "Bob is in Spanish but below level 2; the default is not reached"
    );
    assert_eq!(p.steps[0].workers, vec![(alice, true)]);
    assert_eq!(p.steps[1].priority, Some(5));
    assert_eq!(p.steps[0].filter_friendly_name.as_deref(), Some("Spanish"));
    assert_eq!(p.stops_at, Some(0));
    let listed: Vec<_> = p.steps[1].workers.iter().map(|(s, _)| *s).collect();
    assert_eq!(listed.len(), 3);
    assert_eq!(
        p.steps[1].workers.last(),
        Some(&(bob, false)),
        "those with room first"
    );
    assert!(listed.contains(&carol));

    // Nothing matches: the default filter, the only step.
    let p =
        w.ws.preview_route(&config, r#"{"language": "fr"}"#, "default")
            .expect("preview");
    assert!(!p.matched);
    assert_eq!(p.steps.len(), 1);
    assert_eq!((p.steps[0].filter, p.steps[0].queue), (None, everyone));
    assert_eq!(p.stops_at, Some(0));

    // Bad input is the API's error, not a preview.
    let e =
        w.ws.preview_route(&config, "[1]", "default")
            .expect_err("not an object");
    assert_eq!(e.to_string(), "Attributes must be a JSON object");
    assert!(w.ws.preview_route(&config, "{}", "fax").is_err());
    assert_eq!(w.ws.tasks().len(), 0, "a preview creates nothing");
}

#[test]
fn a_route_preview_says_where_a_task_created_now_stops_as_routing_does() {
    // Random workers, queues with skip_if and target expressions, random task attributes:
    // each preview's stopping step must be the queue a task with those attributes enters,
    // and a reservation, when one is made at once, must go to a worker the step admits with
    // room. The tasks are canceled again so the workers' room stays as it was.
    let mut rng = fastrand::Rng::with_seed(7);
    let mut w = World::new();
    for i in 0..12 {
        let skill = ["a", "b", "c"][i % 3];
        let attrs = json!({"skill": skill, "level": rng.u8(0..5)});
        w.worker(&format!("W{i}"), attrs, rng.bool());
    }
    let qa = w.queue("A", "skill == 'a'");
    let qb = w.queue("B", "skill IN ['b', 'c']");
    let qall = w.queue("All", "1==1");
    let flow = w.workflow(
        json!({"task_routing": {"filters": [
            {"expression": "kind == 'x'", "targets": [
                {"queue": qa.to_string(), "expression": "worker.level >= task.need", "skip_if": "workers.available == 0", "timeout": 60},
                {"queue": qb.to_string(), "skip_if": "workers.available < 3"}]},
            {"expression": "kind == 'y' OR need > 3", "targets": [
                {"queue": qb.to_string(), "expression": "worker.level > task.need", "skip_if": "1==1"}]}],
         "default_filter": {"queue": qall.to_string()}}}),
        120,
    );
    let config = w.ws.workflows()[&flow].config.clone();
    let mut checked_reservations = 0;
    for round in 0..200 {
        if round % 10 == 0 {
            // Change who is available now and then, so skip_if and room vary.
            let workers: Vec<Sid> = w.ws.workers().keys().copied().collect();
            for sid in workers {
                w.set_activity(sid, if rng.bool() { "Available" } else { "Offline" });
            }
        }
        let kind = ["x", "y", "z"][rng.usize(0..3)];
        let attrs = json!({"kind": kind, "need": rng.u8(0..6)});
        let p =
            w.ws.preview_route(&config, &attrs.to_string(), "default")
                .expect("preview");
        let t = w.task_with(attrs.clone(), |c| c.workflow_sid = Some(flow));
        let task = &w.ws.tasks()[&t];
        match p.stops_at {
            Some(i) => {
                let step = &p.steps[i];
                assert_eq!(task.task_queue_sid, Some(step.queue), "{attrs} {p:?}");
                let reserved = w.reservations(t);
                assert_eq!(!reserved.is_empty(), step.with_room > 0, "{attrs} {p:?}");
                if let Some((worker, _)) = reserved.first() {
                    assert!(
                        step.workers.contains(&(*worker, true)),
                        "{attrs}: reserved a worker the preview admits with room"
                    );
                    checked_reservations += 1;
                }
            }
            None => assert_eq!(
                task.assignment_status,
                TaskStatus::Canceled,
                "{attrs} {p:?}"
            ),
        }
        if !task.assignment_status.is_terminal() {
            w.update_task(t, |u| {
                u.assignment_status = Some(TaskStatus::Canceled);
                u.reason = Some("preview test".into());
            })
            .expect("cancel");
        }
    }
    assert!(
        checked_reservations > 20,
        "the test reached reservations ({checked_reservations})"
    );
}

#[test]
fn the_waiting_summary_counts_pending_tasks_and_finds_the_oldest() {
    let mut w = World::new();
    let q = w.queue("All", "1==1");
    let flow = w.workflow(one_queue_flow(q), 120);
    assert_eq!(w.ws.waiting_summary(), WaitingSummary::default());
    let first = w.now;
    w.task_with(json!({}), |c| c.workflow_sid = Some(flow));
    w.advance(5 * SEC);
    w.task_with(json!({}), |c| c.workflow_sid = Some(flow));
    let bob = w.worker("Bob", json!({}), false);
    let s = w.ws.waiting_summary();
    assert_eq!(
        (s.pending, s.oldest_created, s.workers, s.workers_available),
        (2, Some(first), 1, 0)
    );
    // Bob takes the oldest: one left waiting, five seconds younger, and Bob is available.
    w.set_activity(bob, "Available");
    let s = w.ws.waiting_summary();
    assert_eq!(
        (s.pending, s.oldest_created, s.workers_available),
        (1, Some(first + 5 * SEC), 1)
    );
    // The same figures as the full real-time statistics.
    let rt = w.ws.realtime(StatsScope::Workspace, None, w.now);
    assert_eq!(s.pending, rt.tasks_by_status.pending);
    assert_eq!(s.workers_available, rt.total_available_workers);
}
