//! A scripted day in a workspace, driven through the engine with an explicit clock; its
//! events are added up as the store writer does, and every figure is compared with the one
//! worked out by hand.

use std::collections::BTreeMap;

use taskyard_engine::*;
use taskyard_stats::{ALL_WORKERS, Agg, HOUR_MS, Key, MINUTE_MS, Rollup, WORKSPACE, plan};

const SEC: Millis = 1000;
/// A whole hour, so that minutes and hours line up with the script.
const T0: Millis = 1_700_002_800_000;

struct Day {
    ws: Workspace,
    ids: CountingSids,
    now: Millis,
    rollup: Rollup,
    /// What the store would hold: bucket → body.
    stored: BTreeMap<Key, String>,
    /// Forget every bucket before each command, as a restarted writer would have.
    forgetful: bool,
}

impl Day {
    fn run(&mut self, cmd: Command) -> Sid {
        let a = self
            .ws
            .apply(cmd, self.now, &mut self.ids)
            .unwrap_or_else(|e| panic!("{e}"));
        self.add(&a.events);
        a.sid
    }

    fn at(&mut self, seconds: i64) {
        let t = T0 + seconds * SEC;
        while let Some(d) = self.ws.next_deadline().filter(|d| *d <= t) {
            self.now = d;
            let (_, events) = self.ws.tick(d, &mut self.ids);
            self.add(&events);
        }
        self.now = t;
    }

    fn add(&mut self, events: &[Event]) {
        let ws = self.ws.sid();
        if self.forgetful {
            self.rollup.evict(Millis::MAX / 4);
        }
        let stored = &self.stored;
        let changed = self
            .rollup
            .add(ws, events, |k| stored.get(k).map(|b| Agg::from_json(b)));
        for k in changed {
            self.stored.insert(k, self.rollup.body(ws, &k));
        }
    }

    /// What a query for `scope` over `[from, to]` (seconds after T0) adds up to.
    fn sum(&self, scope: &str, from: i64, to: i64, channel: Option<Sid>) -> Agg {
        let mut total = Agg::default();
        for (span, first, last) in plan(T0 + from * SEC, T0 + to * SEC) {
            for (k, body) in &self.stored {
                if k.scope.text() == scope
                    && k.span_ms == span
                    && (first..=last).contains(&k.start_ms)
                    && (channel.is_none() || k.channel == channel)
                {
                    total.merge(&Agg::from_json(body));
                }
            }
        }
        total
    }

    fn reservation_of(&self, task: Sid) -> Sid {
        self.ws
            .task_reservations(task)
            .last()
            .expect("reserved")
            .sid
    }

    fn reservation(&mut self, task: Sid, status: ReservationStatus) {
        let sid = self.reservation_of(task);
        self.run(Command::UpdateReservation(UpdateReservation {
            sid,
            task: None,
            worker: None,
            if_match: None,
            status: Some(status),
            worker_activity_sid: None,
        }));
    }

    fn task_status(&mut self, task: Sid, status: TaskStatus) {
        self.run(Command::UpdateTask(UpdateTask {
            sid: task,
            if_match: None,
            attributes: None,
            priority: None,
            assignment_status: Some(status),
            reason: Some("script".into()),
            task_channel: None,
            virtual_start_time: None,
        }));
    }
}

#[test]
fn a_scripted_day_adds_up_to_the_hand_computed_figures() {
    let remembering = script(false);
    // A writer that forgot its buckets (a restart) reads them back and ends the same.
    let forgetful = script(true);
    assert_eq!(remembering, forgetful);
}

fn script(forgetful: bool) -> BTreeMap<Key, String> {
    let mut ids = CountingSids(0);
    let (ws, created) = Workspace::create(
        Sid::new("AC", 1),
        NewWorkspace {
            friendly_name: "Stats".into(),
            ..Default::default()
        },
        T0,
        &mut ids,
    )
    .expect("workspace");
    let mut d = Day {
        ws,
        ids,
        now: T0,
        rollup: Rollup::default(),
        stored: BTreeMap::new(),
        forgetful,
    };
    d.add(&created.events);
    let available =
        d.ws.activities()
            .values()
            .find(|a| a.available)
            .expect("Available")
            .sid;
    let offline = d.ws.info().default_activity_sid;
    let queue = d.run(Command::CreateTaskQueue(TaskQueueParams {
        friendly_name: Some("Q".into()),
        target_workers: Some("1==1".into()),
        ..Default::default()
    }));
    let config =
        format!(r#"{{"task_routing":{{"filters":[],"default_filter":{{"queue":"{queue}"}}}}}}"#);
    let flow = d.run(Command::CreateWorkflow(WorkflowParams {
        friendly_name: Some("F".into()),
        configuration: Some(config),
        task_reservation_timeout: Some(600),
        ..Default::default()
    }));
    let alice = d.run(Command::CreateWorker(CreateWorker {
        friendly_name: "Alice".into(),
        activity_sid: Some(available),
        attributes: None,
    }));
    let task = |d: &mut Day| d.run(Command::CreateTask(CreateTask::default()));

    // 0:10 T1 arrives, Alice is reserved at once; 0:25 she accepts (waited 15 s).
    d.at(10);
    let t1 = task(&mut d);
    d.at(25);
    d.reservation(t1, ReservationStatus::Accepted);
    // 0:40 T2 arrives and waits (Alice's one slot is taken); 1:40 it is canceled (60 s).
    d.at(40);
    let t2 = task(&mut d);
    d.at(100);
    d.task_status(t2, TaskStatus::Canceled);
    // 2:10 T1 is completed; 2:20 T3 arrives, is reserved to Alice, who rejects it at 2:30.
    d.at(130);
    d.task_status(t1, TaskStatus::Completed);
    d.at(140);
    let t3 = task(&mut d);
    d.at(150);
    d.reservation(t3, ReservationStatus::Rejected);
    // 3:20 Alice goes Offline after 200 s Available.
    d.at(200);
    d.run(Command::UpdateWorker(UpdateWorker {
        sid: alice,
        if_match: None,
        activity_sid: Some(offline),
        attributes: None,
        friendly_name: None,
        reject_pending_reservations: None,
    }));

    // The whole script.
    let all = d.sum(WORKSPACE, 0, 3600, None);
    assert_eq!(all.tasks_created, 3);
    assert_eq!(all.tasks_canceled, 1);
    assert_eq!(all.tasks_completed, 1);
    assert_eq!(all.reservations_created, 2);
    assert_eq!(all.reservations_accepted, 1);
    assert_eq!(all.reservations_rejected, 1);
    assert_eq!(all.wait_until_accepted.seconds(), (15, 15, 15, 15));
    assert_eq!(all.wait_until_canceled.seconds(), (60, 60, 60, 60));
    assert_eq!(all.wait_in_queue_until_accepted.seconds(), (15, 15, 15, 15));
    // Split at 30 s: the acceptance (15 s) below, the cancellation (60 s) above.
    assert_eq!(Agg::split(&all.accepted_after, 30), (1, 0));
    assert_eq!(Agg::split(&all.canceled_after, 30), (0, 1));
    // The queue and the workflow saw the same tasks; each counts its entries.
    let q = d.sum(&queue.to_string(), 0, 3600, None);
    assert_eq!(q.tasks_entered, 3);
    assert_eq!(q.reservations_created, 2);
    assert_eq!(q.tasks_canceled, 1);
    let f = d.sum(&flow.to_string(), 0, 3600, None);
    assert_eq!(f.tasks_entered, 3);
    assert_eq!(f.reservations_accepted, 1);
    // Alice: her reservations, and 200 s Available (the interval ended at 3:20).
    let a = d.sum(&alice.to_string(), 0, 3600, None);
    assert_eq!(
        a.activity_durations(T0)[&available.to_string()].seconds(),
        (200, 200, 200, 200)
    );
    let everyone = d.sum(ALL_WORKERS, 0, 3600, None);
    assert_eq!(everyone.activity_durations(T0), a.activity_durations(T0));
    // A window starting at 2:00 counts only the last 80 s of her 200 s Available (the
    // period began before the window and ended at 3:20).
    let late = d.sum(&alice.to_string(), 120, 3600, None);
    assert_eq!(
        late.activity_durations(T0 + 120 * SEC)[&available.to_string()].seconds(),
        (80, 80, 80, 80)
    );
    // A past window, 1:00–2:59 (two whole minutes), inside the period: the period ended
    // later, so it is found in the buckets after the window and clipped to it: 120 s.
    let after_window = d.sum(&alice.to_string(), 180, 3600, None);
    let inside = after_window.activity_until(T0 + 60 * SEC, T0 + 180 * SEC);
    assert_eq!(
        inside[&available.to_string()].seconds(),
        (120, 120, 120, 120)
    );
    // And one from 4:00 on (after it ended) counts none of it.
    let after = d.sum(&alice.to_string(), 240, 3600, None);
    assert!(
        after
            .activity_durations(T0 + 240 * SEC)
            .get(&available.to_string())
            .is_none_or(|d| d.count == 0)
    );
    // Her reservations are hers too.
    assert_eq!(
        (
            a.reservations_created,
            a.reservations_accepted,
            a.reservations_rejected
        ),
        (2, 1, 1)
    );
    assert_eq!(
        everyone.reservations_created, 0,
        "all workers: activity only"
    );

    // Windows: minute 2 (2:00–2:59) holds T1's completion and T3's arrival and rejection.
    let m2 = d.sum(WORKSPACE, 120, 179, None);
    assert_eq!(
        (
            m2.tasks_completed,
            m2.tasks_created,
            m2.reservations_rejected
        ),
        (1, 1, 1)
    );
    assert_eq!(m2.tasks_canceled, 0);
    // The first minute: T1 and T2 created, T1 reserved and accepted.
    let m0 = d.sum(WORKSPACE, 0, 59, None);
    assert_eq!((m0.tasks_created, m0.reservations_accepted), (2, 1));
    // Another channel saw nothing.
    let voice = d.ws.find_task_channel("voice").expect("voice").sid;
    assert_eq!(d.sum(WORKSPACE, 0, 3600, Some(voice)), Agg::default());
    let default = d.ws.find_task_channel("default").expect("default").sid;
    let on_default = d.sum(WORKSPACE, 0, 3600, Some(default));
    assert_eq!(on_default.tasks_created, 3);

    // Hour and minute buckets agree: a window of whole hours reads only hour buckets.
    assert!(
        plan(T0, T0 + HOUR_MS - MINUTE_MS)
            .iter()
            .all(|p| p.0 == HOUR_MS)
    );
    let hour = d.sum(WORKSPACE, 0, 3599, None);
    assert_eq!(hour, all);
    d.stored
}
