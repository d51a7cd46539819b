//! Deterministic simulation: a seeded generator drives one workspace through random
//! operations and time jumps (workers coming and going, tasks created, updated, canceled,
//! reservations accepted, rejected and left to time out, queues and channels reconfigured),
//! and checks after every step that
//!
//! 1. no task is assigned twice, and every task's status agrees with its reservations;
//! 2. no worker holds more than its capacity (per channel; one task in single-tasking mode);
//! 3. no pending task waits while a worker who could take it at its current step is free
//!    (checked with an independent re-statement of the eligibility rules);
//! 4. the rows the engine emitted rebuild exactly the live workspace, and the rebuilt one
//!    evolves exactly like the live one for the next 15 minutes (checked every 100 steps).
//!
//! A failing run names its seed and step; replay it with
//! `SIM_SEED=<seed> SIM_STEPS=<n> cargo test -p taskyard-engine --test simulation`.
//! By default it runs 40 seeds × 5,000 steps = 200,000 operations (half multitasking, half
//! single-tasking).

use std::collections::BTreeMap;

use serde_json::{Value, json};
mod common;

use common::persist;
use taskyard_engine::*;
use taskyard_expr::Val;

const SEC: Millis = 1000;

struct Sim {
    ws: Workspace,
    ids: CountingSids,
    now: Millis,
    rng: fastrand::Rng,
    rows: common::Rows,
    seed: u64,
    step: usize,
    activities: Vec<Sid>,
    queues: Vec<Sid>,
    flow: Sid,
    multi: bool,
    journal: Journal,
}

/// What the events say about the workspace: folding every event in order must give the
/// same task statuses, reservation statuses and worker activities as the engine holds (so
/// no change goes unrecorded and no event describes a state that never was).
#[derive(Default)]
struct Journal {
    last_sid: Option<Sid>,
    tasks: std::collections::HashMap<Sid, String>,
    reservations: std::collections::HashMap<Sid, String>,
    created: std::collections::HashMap<Sid, usize>,
    activities: std::collections::HashMap<Sid, Sid>,
}

impl Journal {
    fn fold(&mut self, events: &[Event]) {
        for e in events {
            assert!(
                self.last_sid.is_none_or(|l| l < e.sid),
                "event SIDs must increase: {e:?}"
            );
            self.last_sid = Some(e.sid);
            let text = |k: &str| e.get(k).map(|f| f.text());
            if let (Some(t), Some(s)) = (e.sid_of("task_sid"), text("task_assignment_status")) {
                self.tasks.insert(t, s);
            }
            if let (Some(r), Some(s)) = (e.sid_of("reservation_sid"), text("reservation_status")) {
                self.reservations.insert(r, s);
            }
            if e.event_type == EventType::ReservationCreated {
                *self.created.entry(e.resource_sid).or_default() += 1;
            }
            if let (Some(w), Some(a)) = (e.sid_of("worker_sid"), e.sid_of("worker_activity_sid")) {
                self.activities.insert(w, a);
            }
        }
    }

    fn check(&self, ws: &Workspace, at: &str) {
        for t in ws.tasks().values() {
            assert_eq!(
                self.tasks.get(&t.sid).map(String::as_str),
                Some(t.assignment_status.as_str()),
                "{at}: the events disagree with task {}",
                t.sid
            );
        }
        for r in ws.reservations().values() {
            assert_eq!(
                self.reservations.get(&r.sid).map(String::as_str),
                Some(r.status.as_str()),
                "{at}: the events disagree with reservation {}",
                r.sid
            );
            assert_eq!(
                self.created.get(&r.sid),
                Some(&1),
                "{at}: reservation {} must have exactly one reservation.created",
                r.sid
            );
        }
        for w in ws.workers().values() {
            if let Some(a) = self.activities.get(&w.sid) {
                assert_eq!(
                    *a, w.activity_sid,
                    "{at}: the events disagree with worker {}",
                    w.sid
                );
            }
        }
    }
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let multi = seed.is_multiple_of(2);
        let mut ids = CountingSids(0);
        let now = 1_700_000_000_000;
        let (ws, applied) = Workspace::create(
            Sid::new("AC", 1),
            NewWorkspace {
                friendly_name: "Sim".into(),
                multi_task_enabled: Some(multi),
                ..Default::default()
            },
            now,
            &mut ids,
        )
        .expect("workspace");
        let mut rows = BTreeMap::new();
        persist(&mut rows, &applied.changes);
        let mut sim = Sim {
            ws,
            ids,
            now,
            rng: fastrand::Rng::with_seed(seed),
            rows,
            seed,
            step: 0,
            activities: Vec::new(),
            queues: Vec::new(),
            flow: Sid::new("WW", 0),
            multi,
            journal: Journal::default(),
        };
        sim.journal.fold(&applied.events);
        sim.activities = sim.ws.activities().keys().copied().collect();
        let break_ = sim.ok(Command::CreateActivity {
            friendly_name: "Break".into(),
            available: false,
        });
        sim.activities.push(break_);
        let reserved = sim.ok(Command::CreateActivity {
            friendly_name: "Reserved".into(),
            available: false,
        });
        let q = |name: &str, target: &str, max: u32, order: QueueOrder, act: Option<Sid>| {
            TaskQueueParams {
                friendly_name: Some(name.into()),
                target_workers: Some(target.into()),
                max_reserved_workers: Some(max),
                task_order: Some(order),
                reservation_activity_sid: act,
                assignment_activity_sid: None,
            }
        };
        let single_act = (!multi).then_some(reserved);
        for p in [
            q(
                "Spanish",
                "languages HAS 'es'",
                1,
                QueueOrder::Fifo,
                single_act,
            ),
            q("English", "languages HAS 'en'", 2, QueueOrder::Fifo, None),
            q("Senior", "level >= 3", 1, QueueOrder::Lifo, None),
            q("Everyone", "1==1", 3, QueueOrder::Fifo, None),
        ] {
            let sid = sim.ok(Command::CreateTaskQueue(p));
            sim.queues.push(sid);
        }
        let [es, en, senior, all] = [sim.queues[0], sim.queues[1], sim.queues[2], sim.queues[3]];
        let config = json!({"task_routing": {
            "filters": [
                {"filter_friendly_name": "Spanish", "expression": "lang == 'es'", "targets": [
                    {"queue": es.to_string(), "timeout": 20, "expression": "task.level <= worker.level"},
                    {"queue": all.to_string(), "timeout": 40, "priority": 5}]},
                {"filter_friendly_name": "English", "expression": "lang == 'en'", "targets": [
                    {"queue": en.to_string(), "timeout": 15, "skip_if": "workers.available == 0",
                     "order_by": "worker.level DESC"},
                    {"queue": senior.to_string(), "timeout": 30},
                    {"queue": all.to_string()}]},
                {"filter_friendly_name": "Known", "expression": "agent != null", "targets": [
                    {"queue": all.to_string(), "timeout": 25, "known_worker_friendly_name": "task.agent"},
                    {"queue": all.to_string()}]}],
            "default_filter": {"queue": all.to_string()}}});
        sim.flow = sim.ok(Command::CreateWorkflow(WorkflowParams {
            friendly_name: Some("Flow".into()),
            configuration: Some(config.to_string()),
            task_reservation_timeout: Some(30),
            ..Default::default()
        }));
        sim
    }

    fn ok(&mut self, cmd: Command) -> Sid {
        let what = format!("{cmd:?}");
        match self.ws.apply(cmd, self.now, &mut self.ids) {
            Ok(a) => {
                persist(&mut self.rows, &a.changes);
                self.journal.fold(&a.events);
                a.sid
            }
            Err(e) => panic!(
                "seed {} step {}: setup command failed: {e}: {what}",
                self.seed, self.step
            ),
        }
    }

    fn try_cmd(&mut self, cmd: Command) {
        let before_rows = self.step.is_multiple_of(97).then(|| self.ws.all_rows());
        match self.ws.apply(cmd, self.now, &mut self.ids) {
            Ok(a) => {
                persist(&mut self.rows, &a.changes);
                self.journal.fold(&a.events);
            }
            Err(_) => {
                if let Some(before) = before_rows {
                    assert_eq!(
                        before,
                        self.ws.all_rows(),
                        "seed {} step {}: a refused command changed state",
                        self.seed,
                        self.step
                    );
                }
            }
        }
    }

    fn advance(&mut self, ms: Millis) {
        let end = self.now + ms;
        while let Some(at) = self.ws.next_deadline().filter(|at| *at <= end) {
            self.now = self.now.max(at);
            let (changes, events) = self.ws.tick(self.now, &mut self.ids);
            persist(&mut self.rows, &changes);
            self.journal.fold(&events);
        }
        self.now = end;
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.rng.usize(0..items.len())])
    }

    fn random_attrs(&mut self) -> Value {
        let langs: Vec<&str> = ["en", "es", "fr"]
            .into_iter()
            .filter(|_| self.rng.bool())
            .collect();
        json!({"languages": langs, "level": self.rng.u8(0..6)})
    }

    fn step_once(&mut self) {
        let workers: Vec<Sid> = self.ws.workers().keys().copied().collect();
        let tasks: Vec<Sid> = self.ws.tasks().keys().copied().collect();
        let pending: Vec<Sid> = self
            .ws
            .reservations()
            .values()
            .filter(|r| r.status == ReservationStatus::Pending)
            .map(|r| r.sid)
            .collect();
        let accepted: Vec<Sid> = self
            .ws
            .reservations()
            .values()
            .filter(|r| {
                matches!(
                    r.status,
                    ReservationStatus::Accepted | ReservationStatus::Wrapping
                )
            })
            .map(|r| r.sid)
            .collect();
        match self.rng.u8(0..100) {
            0..=5 if workers.len() < 12 => {
                let attrs = self.random_attrs();
                let n = self.ws.workers().len() + self.step;
                let activity = self.pick(&self.activities.clone());
                self.try_cmd(Command::CreateWorker(CreateWorker {
                    friendly_name: format!("w{n}"),
                    activity_sid: activity,
                    attributes: Some(attrs.to_string()),
                }));
            }
            6..=17 => {
                if let (Some(w), Some(a)) =
                    (self.pick(&workers), self.pick(&self.activities.clone()))
                {
                    let reject = self.rng.u8(0..4) == 0;
                    let available = self.ws.activities()[&a].available;
                    self.try_cmd(Command::UpdateWorker(UpdateWorker {
                        sid: w,
                        if_match: None,
                        activity_sid: Some(a),
                        attributes: None,
                        friendly_name: None,
                        reject_pending_reservations: (reject && !available).then_some(true),
                    }));
                }
            }
            18..=21 => {
                if let Some(w) = self.pick(&workers) {
                    let attrs = self.random_attrs();
                    self.try_cmd(Command::UpdateWorker(UpdateWorker {
                        sid: w,
                        if_match: None,
                        activity_sid: None,
                        attributes: Some(attrs.to_string()),
                        friendly_name: None,
                        reject_pending_reservations: None,
                    }));
                }
            }
            22..=25 => {
                if let Some(w) = self.pick(&workers) {
                    let channel = ["default", "chat", "voice"][self.rng.usize(0..3)];
                    let tc = self.ws.find_task_channel(channel).expect("channel").sid;
                    let (p, a) = self.ws.channel_counts(w, tc);
                    // Never below what the worker holds now, so over-capacity can only be a bug.
                    let capacity = (p + a).max(self.rng.u32(0..4));
                    let available = self.rng.u8(0..5) != 0;
                    self.try_cmd(Command::UpdateWorkerChannel {
                        worker: w,
                        channel: channel.into(),
                        capacity: Some(capacity),
                        available: Some(available),
                    });
                }
            }
            26..=27 => {
                if let Some(w) = self.pick(&workers) {
                    self.try_cmd(Command::DeleteWorker {
                        sid: w,
                        if_match: None,
                    });
                }
            }
            28..=49 if tasks.len() < 60 => {
                let lang = ["es", "en", "fr", "es", "en"][self.rng.usize(0..5)];
                let mut attrs = json!({"lang": lang, "level": self.rng.u8(0..5)});
                if self.rng.u8(0..6) == 0
                    && let Some(w) = self.pick(&workers)
                {
                    attrs = json!({"agent": self.ws.workers()[&w].friendly_name.to_uppercase()});
                }
                let channel = ["default", "chat", "voice"][self.rng.usize(0..3)];
                let priority = self.rng.bool().then(|| self.rng.i64(0..10));
                let timeout = self.rng.bool().then(|| self.rng.u32(20..400));
                self.try_cmd(Command::CreateTask(CreateTask {
                    attributes: Some(attrs.to_string()),
                    priority,
                    timeout,
                    task_channel: Some(channel.into()),
                    workflow_sid: Some(self.flow),
                    ..Default::default()
                }));
            }
            50..=64 => {
                if let Some(r) = self.pick(&pending) {
                    self.try_cmd(Command::UpdateReservation(UpdateReservation {
                        sid: r,
                        task: None,
                        worker: None,
                        if_match: None,
                        status: Some(ReservationStatus::Accepted),
                        worker_activity_sid: None,
                    }));
                }
            }
            65..=71 => {
                if let Some(r) = self.pick(&pending) {
                    let activity = if self.rng.bool() {
                        self.pick(&self.activities.clone())
                    } else {
                        None
                    };
                    self.try_cmd(Command::UpdateReservation(UpdateReservation {
                        sid: r,
                        task: None,
                        worker: None,
                        if_match: None,
                        status: Some(ReservationStatus::Rejected),
                        worker_activity_sid: activity,
                    }));
                }
            }
            72..=79 => {
                if let Some(r) = self.pick(&accepted) {
                    let status = if self.rng.bool() {
                        ReservationStatus::Wrapping
                    } else {
                        ReservationStatus::Completed
                    };
                    self.try_cmd(Command::UpdateReservation(UpdateReservation {
                        sid: r,
                        task: None,
                        worker: None,
                        if_match: None,
                        status: Some(status),
                        worker_activity_sid: None,
                    }));
                }
            }
            80..=85 => {
                if let Some(t) = self.pick(&tasks) {
                    let (status, attributes, priority) = match self.rng.u8(0..4) {
                        0 => (Some(TaskStatus::Canceled), None, None),
                        1 => (Some(TaskStatus::Completed), None, None),
                        2 => {
                            let lang = ["es", "en"][self.rng.usize(0..2)];
                            (None, Some(json!({ "lang": lang }).to_string()), None)
                        }
                        _ => (None, None, Some(self.rng.i64(0..10))),
                    };
                    self.try_cmd(Command::UpdateTask(UpdateTask {
                        sid: t,
                        if_match: None,
                        attributes,
                        priority,
                        assignment_status: status,
                        reason: Some("sim".into()),
                        task_channel: None,
                        virtual_start_time: None,
                    }));
                }
            }
            86 => {
                if let Some(t) = self.pick(&tasks) {
                    self.try_cmd(Command::DeleteTask {
                        sid: t,
                        if_match: None,
                    });
                }
            }
            87..=88 => {
                if let Some(q) = self.pick(&self.queues.clone()) {
                    let target = [
                        "1==1",
                        "languages HAS 'fr'",
                        "level >= 2",
                        "languages HAS 'en' OR level > 3",
                    ][self.rng.usize(0..4)];
                    self.try_cmd(Command::UpdateTaskQueue {
                        sid: q,
                        params: TaskQueueParams {
                            target_workers: Some(target.into()),
                            ..Default::default()
                        },
                    });
                }
            }
            89 => {
                self.try_cmd(Command::UpdateWorkflow {
                    sid: self.flow,
                    params: WorkflowParams::default(),
                    re_evaluate_tasks: true,
                });
            }
            _ => {
                let jump = match self.rng.u8(0..10) {
                    0 => self.rng.i64(60..600) * SEC,
                    _ => self.rng.i64(0..20) * SEC,
                };
                self.advance(jump);
            }
        }
    }

    fn check(&self) {
        let at = format!("seed {} step {}", self.seed, self.step);
        let ws = &self.ws;
        self.journal.check(ws, &at);
        // 1. Task status agrees with its reservations; never two accepted.
        for t in ws.tasks().values() {
            let rs: Vec<&Reservation> = ws.task_reservations(t.sid).collect();
            let count = |s: ReservationStatus| rs.iter().filter(|r| r.status == s).count();
            let (pending, accepted, wrapping) = (
                count(ReservationStatus::Pending),
                count(ReservationStatus::Accepted),
                count(ReservationStatus::Wrapping),
            );
            assert!(
                accepted + wrapping <= 1,
                "{at}: task {} assigned twice: {rs:?}",
                t.sid
            );
            let ok = match t.assignment_status {
                TaskStatus::Pending => pending + accepted + wrapping == 0,
                TaskStatus::Reserved => pending >= 1 && accepted + wrapping == 0,
                TaskStatus::Assigned => accepted == 1 && pending == 0,
                TaskStatus::Wrapping => wrapping == 1 && pending == 0,
                TaskStatus::Canceled | TaskStatus::Completed => pending + accepted + wrapping == 0,
            };
            assert!(
                ok,
                "{at}: task {} is {:?} with reservations {rs:?}",
                t.sid, t.assignment_status
            );
        }
        for r in ws.reservations().values() {
            assert!(
                ws.tasks().contains_key(&r.task_sid),
                "{at}: reservation {} outlived its task",
                r.sid
            );
            if r.status.is_active() {
                assert!(
                    ws.workers().contains_key(&r.worker_sid),
                    "{at}: active reservation of a deleted worker"
                );
            }
        }
        // 2. Capacity.
        for w in ws.workers().values() {
            let active: Vec<&Reservation> = ws.active_reservations(w.sid).collect();
            if self.multi {
                for c in &w.channels {
                    let used = active
                        .iter()
                        .filter(|r| r.task_channel_sid == c.task_channel_sid)
                        .count() as u32;
                    assert!(
                        used <= c.configured_capacity,
                        "{at}: worker {} holds {used} on a channel of capacity {}",
                        w.sid,
                        c.configured_capacity
                    );
                }
            } else {
                assert!(
                    active.len() <= 1,
                    "{at}: single-tasking worker {} holds {}",
                    w.sid,
                    active.len()
                );
            }
        }
        // 3. No pending task waits while a worker who could take it is free.
        for t in ws
            .tasks()
            .values()
            .filter(|t| t.assignment_status == TaskStatus::Pending)
        {
            let Some(q) = t.task_queue_sid.and_then(|q| ws.task_queues().get(&q)) else {
                continue;
            };
            let target = t.step.and_then(|s| {
                let wf = &ws.workflows()[&t.workflow_sid?];
                match s.filter {
                    Some(f) => wf.config.filters.get(f)?.targets.get(s.target).cloned(),
                    None => wf.config.default_filter.clone(),
                }
            });
            for w in q.members.iter().map(|w| &ws.workers()[w]) {
                if could_take(ws, t, w, target.as_ref(), self.multi) {
                    panic!(
                        "{at}: task {} waits in {} while worker {} ({}) could take it",
                        t.sid, q.friendly_name, w.sid, w.friendly_name
                    );
                }
            }
        }
    }

    fn check_restore(&self) {
        let restored = Workspace::restore(self.rows.values().cloned()).expect("restore");
        assert_eq!(
            restored.all_rows(),
            self.ws.all_rows(),
            "seed {} step {}: stored rows diverge from memory",
            self.seed,
            self.step
        );
        // The restored workspace must also behave the same from here on: every timer that
        // matters was re-armed from the stored timestamps.
        let mut live = self.ws.clone();
        let mut restored = restored;
        let (mut ids_a, mut ids_b) = (CountingSids(self.ids.0), CountingSids(self.ids.0));
        let end = self.now + 15 * 60 * SEC;
        let mut told: [Vec<(EventType, Sid)>; 2] = Default::default();
        for (i, (ws, ids)) in [(&mut live, &mut ids_a), (&mut restored, &mut ids_b)]
            .into_iter()
            .enumerate()
        {
            while let Some(at) = ws.next_deadline().filter(|at| *at <= end) {
                let (_, events) = ws.tick(at.max(self.now), ids);
                told[i].extend(events.iter().map(|e| (e.event_type, e.resource_sid)));
            }
        }
        assert_eq!(
            told[0], told[1],
            "seed {} step {}: a restored workspace tells a different story",
            self.seed, self.step
        );
        assert_eq!(
            restored.all_rows(),
            live.all_rows(),
            "seed {} step {}: a restored workspace evolves differently (a timer was lost)",
            self.seed,
            self.step
        );
    }
}

/// The eligibility rules, restated from the documentation (independently of the engine's
/// own implementation).
fn could_take(ws: &Workspace, t: &Task, w: &Worker, target: Option<&Target>, multi: bool) -> bool {
    if !ws.activities()[&w.activity_sid].available || t.rejected_by.contains(&w.sid) {
        return false;
    }
    let Some(c) = w.channel(t.task_channel_sid) else {
        return false;
    };
    if !c.available {
        return false;
    }
    let active: Vec<&Reservation> = ws.active_reservations(w.sid).collect();
    if active.iter().any(|r| r.task_sid == t.sid) {
        return false;
    }
    let room = if multi {
        (active
            .iter()
            .filter(|r| r.task_channel_sid == t.task_channel_sid)
            .count() as u32)
            < c.configured_capacity
    } else {
        active.is_empty() && c.configured_capacity > 0
    };
    if !room {
        return false;
    }
    let Some(target) = target else { return true };
    if let Some(k) = &target.known_worker_friendly_name {
        match taskyard_expr::lookup(&t.attrs, k.rest()) {
            Val::Str(s) if s.eq_ignore_ascii_case(&w.friendly_name) => {}
            _ => return false,
        }
    }
    target.expression.as_ref().is_none_or(|e| {
        e.eval(&TargetView {
            task_attributes: &t.attrs,
            worker: WorkerView {
                workspace: ws,
                worker: w,
            },
        })
    })
}

fn run(seed: u64, steps: usize) -> Vec<Change> {
    let mut sim = Sim::new(seed);
    for step in 0..steps {
        sim.step = step;
        sim.step_once();
        sim.check();
        if step % 100 == 0 {
            sim.check_restore();
        }
    }
    sim.check_restore();
    sim.ws.all_rows()
}

#[test]
fn random_operations_keep_every_routing_invariant() {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let steps = env("SIM_STEPS").unwrap_or(5_000) as usize;
    let seeds: Vec<u64> = match env("SIM_SEED") {
        Some(s) => vec![s],
        None => (0..40).collect(),
    };
    for seed in seeds {
        run(seed, steps);
    }
}

#[test]
fn a_seed_replays_exactly() {
    assert_eq!(run(7, 1_500), run(7, 1_500));
}
