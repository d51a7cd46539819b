//! Real-time statistics, checked field by field against numbers worked out by hand for a
//! scripted scenario (workers in every activity, tasks in every status at known times and
//! priorities, two queues, two channels, an explicit clock), and a cross-check of the fast
//! paths (bulk, large and small queues) against a plain count.

use std::collections::BTreeMap;

use serde_json::json;
use taskyard_engine::*;

const SEC: Millis = 1000;
const T0: Millis = 1_700_000_000_000;

struct World {
    ws: Workspace,
    ids: CountingSids,
    now: Millis,
}

impl World {
    fn new() -> World {
        let mut ids = CountingSids(0);
        let (ws, _) = Workspace::create(
            Sid::new("AC", 1),
            NewWorkspace {
                friendly_name: "Stats".into(),
                ..Default::default()
            },
            T0,
            &mut ids,
        )
        .expect("workspace");
        World { ws, ids, now: T0 }
    }

    #[track_caller]
    fn run(&mut self, cmd: Command) -> Sid {
        self.ws
            .apply(cmd, self.now, &mut self.ids)
            .unwrap_or_else(|e| panic!("command failed: {e}"))
            .sid
    }

    /// Moves the clock to `T0 + ms`, firing timers at their own instants.
    fn at(&mut self, ms: Millis) {
        let end = T0 + ms;
        assert!(end >= self.now);
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

    fn channel(&self, name: &str) -> Sid {
        self.ws.find_task_channel(name).expect("channel").sid
    }

    fn worker(&mut self, name: &str, team: &str, activity: &str) -> Sid {
        let a = self.activity(activity);
        self.run(Command::CreateWorker(CreateWorker {
            friendly_name: name.into(),
            activity_sid: Some(a),
            attributes: Some(json!({ "team": team }).to_string()),
        }))
    }

    fn worker_channel(&mut self, worker: Sid, channel: &str, capacity: u32, available: bool) {
        self.run(Command::UpdateWorkerChannel {
            worker,
            channel: channel.into(),
            capacity: Some(capacity),
            available: Some(available),
        });
    }

    fn queue(&mut self, name: &str, target: &str) -> Sid {
        self.run(Command::CreateTaskQueue(TaskQueueParams {
            friendly_name: Some(name.into()),
            target_workers: Some(target.into()),
            ..Default::default()
        }))
    }

    fn task(
        &mut self,
        flow: Option<Sid>,
        queue: Option<Sid>,
        dept: &str,
        channel: &str,
        priority: i64,
    ) -> Sid {
        self.run(Command::CreateTask(CreateTask {
            attributes: Some(json!({ "dept": dept }).to_string()),
            priority: Some(priority),
            task_channel: Some(channel.into()),
            workflow_sid: flow,
            task_queue_sid: queue,
            ..Default::default()
        }))
    }

    fn status(&self, task: Sid) -> TaskStatus {
        self.ws.tasks()[&task].assignment_status
    }

    fn reservation(&mut self, task: Sid, status: ReservationStatus) {
        let r = self
            .ws
            .task_reservations(task)
            .find(|r| r.status.is_active())
            .expect("an active reservation")
            .sid;
        self.run(Command::UpdateReservation(UpdateReservation {
            sid: r,
            task: None,
            worker: None,
            if_match: None,
            status: Some(status),
            worker_activity_sid: None,
        }));
    }

    fn set_task_status(&mut self, task: Sid, status: TaskStatus) {
        self.run(Command::UpdateTask(UpdateTask {
            sid: task,
            if_match: None,
            attributes: None,
            priority: None,
            assignment_status: Some(status),
            reason: Some("test".into()),
            task_channel: None,
            virtual_start_time: None,
        }));
    }

    /// `[(activity name, workers)]` of a statistics result.
    fn activities(rt: &RealTime) -> Vec<(String, u64)> {
        rt.activity_statistics
            .iter()
            .map(|a| (a.friendly_name.to_string(), a.workers))
            .collect()
    }
}

fn by_status(pending: u64, reserved: u64, assigned: u64, wrapping: u64) -> TasksByStatus {
    TasksByStatus {
        pending,
        reserved,
        assigned,
        wrapping,
    }
}

fn priorities(pairs: &[(i64, u64)]) -> BTreeMap<i64, u64> {
    pairs.iter().copied().collect()
}

fn acts(offline: u64, available: u64, unavailable: u64) -> Vec<(String, u64)> {
    vec![
        ("Offline".to_string(), offline),
        ("Available".to_string(), available),
        ("Unavailable".to_string(), unavailable),
    ]
}

struct Scenario {
    w: World,
    sales: Sid,
    support: Sid,
    empty: Sid,
    flow: Sid,
    t: Vec<Sid>,
}

/// The script (times are seconds after T0; every worker has capacity 1 per channel, the
/// workspace is multi-tasking, so a worker holds one voice and one chat task at most):
///
/// workers  A sales Available · B sales Offline (chat capacity 0) · C support Available
///          (chat unavailable) · D support Unavailable · E other Available (in no queue)
/// queues   Sales `team == "sales"` (A, B) · Support `team == "support"` (C, D) ·
///          Empty `team == "nobody"`
/// workflow dept "any" → Empty for 30 s, then Sales; "sales" → Sales; "support" → Support
///
///  5 s t0 any/voice p7      → Empty (entered 5); at 35 s → Sales (entered 35), pending
/// 10 s t1 sales/voice p5    → reserved to A, accepted at 12, wrapping at 15
/// 20 s t2 sales/voice p5    → pending in Sales (A's voice slot is taken)
/// 30 s t3 sales/chat p1     → reserved to A (chat)
/// 40 s t4 chat p1, straight into Sales, no workflow → pending (A's chat slot is taken)
/// 50 s t5 support/voice p10 → reserved to C, accepted at 55 → assigned
/// 60 s t6 support/voice p10 → pending in Support
/// 70 s t7 support/chat p0   → pending in Support (C takes no chat)
/// 80 s t8 sales/voice p9    → pending, canceled at 85 (finished: never counted)
fn scenario() -> Scenario {
    let mut w = World::new();
    w.worker("A", "sales", "Available");
    let b = w.worker("B", "sales", "Offline");
    let c = w.worker("C", "support", "Available");
    w.worker("D", "support", "Unavailable");
    w.worker("E", "other", "Available");
    w.worker_channel(b, "chat", 0, true);
    w.worker_channel(c, "chat", 1, false);
    let sales = w.queue("Sales", r#"team == "sales""#);
    let support = w.queue("Support", r#"team == "support""#);
    let empty = w.queue("Empty", r#"team == "nobody""#);
    let config = json!({"task_routing": {"filters": [
        {"expression": r#"dept == "any""#, "targets": [
            {"queue": empty.to_string(), "timeout": 30},
            {"queue": sales.to_string()}]},
        {"expression": r#"dept == "sales""#, "targets": [{"queue": sales.to_string()}]},
        {"expression": r#"dept == "support""#, "targets": [{"queue": support.to_string()}]},
    ]}});
    let flow = w.run(Command::CreateWorkflow(WorkflowParams {
        friendly_name: Some("Flow".into()),
        configuration: Some(config.to_string()),
        task_reservation_timeout: Some(3600),
        ..Default::default()
    }));
    let f = Some(flow);
    let mut t = Vec::new();
    w.at(5 * SEC);
    t.push(w.task(f, None, "any", "voice", 7));
    w.at(10 * SEC);
    t.push(w.task(f, None, "sales", "voice", 5));
    w.at(12 * SEC);
    w.reservation(t[1], ReservationStatus::Accepted);
    w.at(15 * SEC);
    w.set_task_status(t[1], TaskStatus::Wrapping);
    w.at(20 * SEC);
    t.push(w.task(f, None, "sales", "voice", 5));
    w.at(30 * SEC);
    t.push(w.task(f, None, "sales", "chat", 1));
    w.at(40 * SEC);
    t.push(w.task(None, Some(sales), "", "chat", 1));
    w.at(50 * SEC);
    t.push(w.task(f, None, "support", "voice", 10));
    w.at(55 * SEC);
    w.reservation(t[5], ReservationStatus::Accepted);
    w.at(60 * SEC);
    t.push(w.task(f, None, "support", "voice", 10));
    w.at(70 * SEC);
    t.push(w.task(f, None, "support", "chat", 0));
    w.at(80 * SEC);
    t.push(w.task(f, None, "sales", "voice", 9));
    w.at(85 * SEC);
    w.set_task_status(t[8], TaskStatus::Canceled);

    // The script did what it says.
    use TaskStatus::*;
    let statuses: Vec<TaskStatus> = t.iter().map(|&s| w.status(s)).collect();
    assert_eq!(
        statuses,
        [
            Pending, Wrapping, Pending, Reserved, Pending, Assigned, Pending, Pending, Canceled
        ]
    );
    let tasks = w.ws.tasks();
    assert_eq!(tasks[&t[0]].task_queue_sid, Some(sales));
    assert_eq!(tasks[&t[0]].task_queue_entered_date, Some(T0 + 35 * SEC));
    assert_eq!(tasks[&t[4]].workflow_sid, None);
    Scenario {
        w,
        sales,
        support,
        empty,
        flow,
        t,
    }
}

fn waiting(sid: Sid, age: i64) -> Option<Waiting> {
    Some(Waiting { sid, age })
}

#[test]
fn workspace_figures_match_the_script() {
    let mut s = scenario();
    s.w.at(100_500);
    let rt = s.w.ws.realtime(StatsScope::Workspace, None, s.w.now);
    // t0..t7 (t8 is canceled).
    assert_eq!(rt.total_tasks, 8);
    assert_eq!(rt.tasks_by_status, by_status(5, 1, 1, 1));
    assert_eq!(
        rt.tasks_by_priority,
        priorities(&[(0, 1), (1, 2), (5, 2), (7, 1), (10, 2)])
    );
    // t0, created at 5 s: 95.5 s → 95.
    assert_eq!(rt.longest_task_waiting, waiting(s.t[0], 95));
    assert_eq!(rt.longest_relative_task_in_queue, None);
    // A, C, E available; B offline; D unavailable.
    assert_eq!(World::activities(&rt), acts(1, 3, 1));
    assert_eq!(rt.total_workers, 5);
    assert_eq!(rt.total_eligible_workers, 5);
    assert_eq!(rt.total_available_workers, 3);
    let sids: Vec<Sid> = rt.activity_statistics.iter().map(|a| a.sid).collect();
    let all: Vec<Sid> = s.w.ws.activities().keys().copied().collect();
    assert_eq!(sids, all, "every activity, in creation order");

    // The workers-only scope has the same worker figures and no tasks.
    let workers = s.w.ws.realtime(StatsScope::Workers, None, s.w.now);
    assert_eq!(workers.activity_statistics, rt.activity_statistics);
    assert_eq!(workers.total_workers, 5);
    assert_eq!(workers.total_available_workers, 3);
    assert_eq!(workers.total_tasks, 0);
    assert_eq!(workers.longest_task_waiting, None);
}

#[test]
fn queue_figures_match_the_script() {
    let mut s = scenario();
    s.w.at(100_500);
    let now = s.w.now;
    let sales = s.w.ws.realtime(StatsScope::TaskQueue(s.sales), None, now);
    // t0 (pending), t1 (wrapping), t2 (pending), t3 (reserved), t4 (pending).
    assert_eq!(sales.total_tasks, 5);
    assert_eq!(sales.tasks_by_status, by_status(3, 1, 0, 1));
    assert_eq!(
        sales.tasks_by_priority,
        priorities(&[(1, 2), (5, 2), (7, 1)])
    );
    // Created first: t0 (5 s). In the queue longest: t2 (entered 20 s; t0 entered 35 s).
    assert_eq!(sales.longest_task_waiting, waiting(s.t[0], 95));
    assert_eq!(sales.longest_relative_task_in_queue, waiting(s.t[2], 80));
    // Members A (available) and B (offline).
    assert_eq!(World::activities(&sales), acts(1, 1, 0));
    assert_eq!(sales.total_eligible_workers, 2);
    assert_eq!(sales.total_available_workers, 1);
    assert_eq!(sales.total_workers, 2);

    let support = s.w.ws.realtime(StatsScope::TaskQueue(s.support), None, now);
    // t5 (assigned), t6 (pending, 60 s), t7 (pending, 70 s).
    assert_eq!(support.total_tasks, 3);
    assert_eq!(support.tasks_by_status, by_status(2, 0, 1, 0));
    assert_eq!(support.tasks_by_priority, priorities(&[(0, 1), (10, 2)]));
    assert_eq!(support.longest_task_waiting, waiting(s.t[6], 40));
    assert_eq!(support.longest_relative_task_in_queue, waiting(s.t[6], 40));
    // Members C (available) and D (unavailable).
    assert_eq!(World::activities(&support), acts(0, 1, 1));
    assert_eq!(support.total_eligible_workers, 2);
    assert_eq!(support.total_available_workers, 1);

    // The queue t0 left is empty again; it has no members.
    let empty = s.w.ws.realtime(StatsScope::TaskQueue(s.empty), None, now);
    assert_eq!(empty.total_tasks, 0);
    assert_eq!(empty.tasks_by_status, TasksByStatus::default());
    assert!(empty.tasks_by_priority.is_empty());
    assert_eq!(empty.longest_task_waiting, None);
    assert_eq!(empty.longest_relative_task_in_queue, None);
    assert_eq!(World::activities(&empty), acts(0, 0, 0));
    assert_eq!(empty.total_eligible_workers, 0);

    // Earlier, t0 was waiting in Empty: entered at 5 s.
    let mut early = scenario_until_t0_waits_in_empty();
    early.at(20_000);
    let rt = early
        .ws
        .realtime(StatsScope::TaskQueue(early_empty(&early)), None, early.now);
    assert_eq!(rt.total_tasks, 1);
    assert_eq!(rt.longest_relative_task_in_queue.map(|w| w.age), Some(15));
}

/// The scenario's configuration and t0 only (t0 waits in Empty until 35 s).
fn scenario_until_t0_waits_in_empty() -> World {
    let mut w = World::new();
    w.worker("A", "sales", "Available");
    let sales = w.queue("Sales", r#"team == "sales""#);
    let empty = w.queue("Empty", r#"team == "nobody""#);
    let config = json!({"task_routing": {"filters": [
        {"expression": "1 == 1", "targets": [
            {"queue": empty.to_string(), "timeout": 30},
            {"queue": sales.to_string()}]}]}});
    let flow = w.run(Command::CreateWorkflow(WorkflowParams {
        friendly_name: Some("Flow".into()),
        configuration: Some(config.to_string()),
        ..Default::default()
    }));
    w.at(5 * SEC);
    w.task(Some(flow), None, "any", "voice", 7);
    w
}

fn early_empty(w: &World) -> Sid {
    w.ws.task_queues()
        .values()
        .find(|q| &*q.friendly_name == "Empty")
        .expect("Empty")
        .sid
}

#[test]
fn workflow_figures_match_the_script() {
    let mut s = scenario();
    s.w.at(100_500);
    let rt = s.w.ws.realtime(StatsScope::Workflow(s.flow), None, s.w.now);
    // Every task but t4 (straight into a queue) and t8 (canceled).
    assert_eq!(rt.total_tasks, 7);
    assert_eq!(rt.tasks_by_status, by_status(4, 1, 1, 1));
    assert_eq!(
        rt.tasks_by_priority,
        priorities(&[(0, 1), (1, 1), (5, 2), (7, 1), (10, 2)])
    );
    assert_eq!(rt.longest_task_waiting, waiting(s.t[0], 95));
    assert_eq!(rt.longest_relative_task_in_queue, None);
    // No worker figures for a workflow.
    assert!(rt.activity_statistics.is_empty());
    assert_eq!(rt.total_workers, 0);

    // A workflow (or queue) that does not exist has nothing.
    let ghost = Sid::new("WW", 42);
    let rt = s.w.ws.realtime(StatsScope::Workflow(ghost), None, s.w.now);
    assert_eq!(rt.total_tasks, 0);
    let rt =
        s.w.ws
            .realtime(StatsScope::TaskQueue(Sid::new("WQ", 42)), None, s.w.now);
    assert_eq!(rt.total_tasks, 0);
    assert_eq!(World::activities(&rt), acts(0, 0, 0));
}

#[test]
fn a_task_channel_narrows_tasks_and_workers() {
    let mut s = scenario();
    s.w.at(100_500);
    let now = s.w.now;
    let chat = Some(s.w.channel("chat"));
    // Chat tasks: t3 (reserved, Sales, p1), t4 (pending, Sales, p1, 40 s), t7 (pending,
    // Support, p0, 70 s). Chat-capable workers: A, D, E (B has capacity 0, C's chat is off).
    let rt = s.w.ws.realtime(StatsScope::Workspace, chat, now);
    assert_eq!(rt.total_tasks, 3);
    assert_eq!(rt.tasks_by_status, by_status(2, 1, 0, 0));
    assert_eq!(rt.tasks_by_priority, priorities(&[(0, 1), (1, 2)]));
    assert_eq!(rt.longest_task_waiting, waiting(s.t[4], 60));
    assert_eq!(World::activities(&rt), acts(0, 2, 1));
    assert_eq!(rt.total_workers, 3);
    assert_eq!(rt.total_available_workers, 2);

    let sales = s.w.ws.realtime(StatsScope::TaskQueue(s.sales), chat, now);
    assert_eq!(sales.total_tasks, 2);
    assert_eq!(sales.tasks_by_status, by_status(1, 1, 0, 0));
    assert_eq!(sales.tasks_by_priority, priorities(&[(1, 2)]));
    assert_eq!(sales.longest_task_waiting, waiting(s.t[4], 60));
    assert_eq!(sales.longest_relative_task_in_queue, waiting(s.t[4], 60));
    assert_eq!(World::activities(&sales), acts(0, 1, 0));
    assert_eq!(sales.total_eligible_workers, 1);
    assert_eq!(sales.total_available_workers, 1);

    let support = s.w.ws.realtime(StatsScope::TaskQueue(s.support), chat, now);
    assert_eq!(support.total_tasks, 1);
    assert_eq!(support.tasks_by_status, by_status(1, 0, 0, 0));
    assert_eq!(support.longest_task_waiting, waiting(s.t[7], 30));
    assert_eq!(World::activities(&support), acts(0, 0, 1));
    assert_eq!(support.total_eligible_workers, 1);
    assert_eq!(support.total_available_workers, 0);

    // Voice: t0, t1, t2, t5, t6, (t8 canceled); every worker has voice.
    let voice = Some(s.w.channel("voice"));
    let rt = s.w.ws.realtime(StatsScope::Workflow(s.flow), voice, now);
    assert_eq!(rt.total_tasks, 5);
    assert_eq!(rt.tasks_by_status, by_status(3, 0, 1, 1));
    let rt = s.w.ws.realtime(StatsScope::Workers, voice, now);
    assert_eq!(World::activities(&rt), acts(1, 3, 1));
}

#[test]
fn ages_are_whole_seconds_of_the_given_clock() {
    let mut s = scenario();
    // t0 was created at 5 s and entered Sales at 35 s; t2 entered at 20 s.
    for (at, age, relative) in [
        (100_999, 95, 80),
        (101_000, 96, 81),
        (3_600_000, 3595, 3580),
    ] {
        s.w.at(at);
        let rt =
            s.w.ws
                .realtime(StatsScope::TaskQueue(s.sales), None, s.w.now);
        assert_eq!(rt.longest_task_waiting, waiting(s.t[0], age), "at {at}");
        assert_eq!(
            rt.longest_relative_task_in_queue,
            waiting(s.t[2], relative),
            "at {at}"
        );
    }
    // A clock before the task's creation does not make a negative age.
    let rt = s.w.ws.realtime(StatsScope::Workspace, None, T0);
    assert_eq!(rt.longest_task_waiting, waiting(s.t[0], 0));
}

#[test]
fn finished_tasks_leave_the_figures() {
    let mut s = scenario();
    s.w.at(100_000);
    // t0 canceled; t1 completed, which frees A's voice slot: the router reserves t2 (the
    // only voice task left waiting in Sales) to A.
    s.w.set_task_status(s.t[0], TaskStatus::Canceled);
    s.w.set_task_status(s.t[1], TaskStatus::Completed);
    assert_eq!(s.w.status(s.t[2]), TaskStatus::Reserved);
    // Sales: t2 (reserved, p5), t3 (reserved, p1), t4 (pending, p1, created at 40 s).
    let rt =
        s.w.ws
            .realtime(StatsScope::TaskQueue(s.sales), None, s.w.now);
    assert_eq!(rt.total_tasks, 3);
    assert_eq!(rt.tasks_by_status, by_status(1, 2, 0, 0));
    assert_eq!(rt.tasks_by_priority, priorities(&[(1, 2), (5, 1)]));
    assert_eq!(rt.longest_task_waiting, waiting(s.t[4], 60));
    assert_eq!(rt.longest_relative_task_in_queue, waiting(s.t[4], 60));
    // Workspace: t2..t7.
    let ws = s.w.ws.realtime(StatsScope::Workspace, None, s.w.now);
    assert_eq!(ws.total_tasks, 6);
    assert_eq!(ws.tasks_by_status, by_status(3, 2, 1, 0));
    assert_eq!(ws.longest_task_waiting, waiting(s.t[4], 60));
}

#[test]
fn bulk_queues_equal_single_queues() {
    let mut s = scenario();
    s.w.at(100_500);
    let now = s.w.now;
    let ghost = Sid::new("WQ", 7);
    let ask = [s.support, s.sales, ghost, s.sales];
    for channel in [None, Some(s.w.channel("chat"))] {
        let bulk = s.w.ws.realtime_queues(&ask, channel, now);
        assert_eq!(bulk.len(), 4);
        for (q, rt) in ask.iter().zip(&bulk) {
            let single = s.w.ws.realtime(StatsScope::TaskQueue(*q), channel, now);
            assert_eq!(*rt, single, "queue {q}");
        }
        assert_eq!(bulk[2].total_tasks, 0);
        assert_eq!(World::activities(&bulk[2]), acts(0, 0, 0));
        let all = s.w.ws.realtime_all_queues(channel, now);
        let order: Vec<Sid> = all.iter().map(|(q, _)| *q).collect();
        assert_eq!(order, [s.sales, s.support, s.empty]);
        for (q, rt) in &all {
            assert_eq!(
                *rt,
                s.w.ws.realtime(StatsScope::TaskQueue(*q), channel, now)
            );
        }
    }
    assert!(s.w.ws.realtime_queues(&[], None, now).is_empty());
}

/// Many workers, queues of every size (the engine walks a large queue alongside the workers
/// and looks a small one's members up; the bulk form maps every worker once or looks up),
/// compared with a plain count over the public state.
#[test]
fn fast_paths_agree_with_a_plain_count() {
    let mut w = World::new();
    let names = ["Offline", "Available", "Unavailable"];
    for i in 0..120 {
        let a = w.activity(names[i % 3]);
        let wk = w.run(Command::CreateWorker(CreateWorker {
            friendly_name: format!("w{i}"),
            activity_sid: Some(a),
            attributes: Some(json!({"n": i}).to_string()),
        }));
        if i % 4 == 0 {
            w.worker_channel(wk, "chat", 0, true);
        }
    }
    let queues = [
        w.queue("all", "n >= 0"),
        w.queue("half", "n < 60"),
        w.queue("one", "n == 7"),
        w.queue("three", "n IN [1, 2, 118]"),
        w.queue("none", "n < 0"),
    ];
    for i in 0..300i64 {
        w.at(i * SEC);
        let q = queues[(i % 5) as usize];
        let ch = if i % 3 == 0 { "chat" } else { "voice" };
        w.task(None, Some(q), "", ch, i % 4);
    }
    let now = w.now + 500;
    for channel in [None, Some(w.channel("chat"))] {
        let bulk = w.ws.realtime_queues(&queues, channel, now);
        let bulk_two = w.ws.realtime_queues(&queues[2..4], channel, now);
        for (i, &q) in queues.iter().enumerate() {
            let rt = w.ws.realtime(StatsScope::TaskQueue(q), channel, now);
            assert_eq!(rt, bulk[i]);
            if (2..4).contains(&i) {
                assert_eq!(rt, bulk_two[i - 2]);
            }
            // Plain counts.
            let queue = &w.ws.task_queues()[&q];
            let can_take = |wk: &Worker| {
                channel.is_none_or(|c| {
                    wk.channel(c)
                        .is_some_and(|x| x.available && x.configured_capacity > 0)
                })
            };
            let members: Vec<&Worker> = queue
                .members
                .iter()
                .map(|m| &w.ws.workers()[m])
                .filter(|wk| can_take(wk))
                .collect();
            assert_eq!(rt.total_eligible_workers, members.len() as u64);
            let available = members
                .iter()
                .filter(|wk| w.ws.activities()[&wk.activity_sid].available)
                .count();
            assert_eq!(rt.total_available_workers, available as u64);
            for a in &rt.activity_statistics {
                let n = members.iter().filter(|wk| wk.activity_sid == a.sid).count();
                assert_eq!(a.workers, n as u64);
            }
            let tasks: Vec<&Task> =
                w.ws.tasks()
                    .values()
                    .filter(|t| t.task_queue_sid == Some(q))
                    .filter(|t| channel.is_none_or(|c| c == t.task_channel_sid))
                    .filter(|t| !t.assignment_status.is_terminal())
                    .collect();
            assert_eq!(rt.total_tasks, tasks.len() as u64);
            let pending = tasks
                .iter()
                .filter(|t| t.assignment_status == TaskStatus::Pending);
            let oldest = pending.clone().min_by_key(|t| (t.date_created, t.sid));
            assert_eq!(
                rt.longest_task_waiting,
                oldest.map(|t| Waiting {
                    sid: t.sid,
                    age: (now - t.date_created) / 1000
                })
            );
            let first = pending
                .filter_map(|t| t.task_queue_entered_date.map(|e| (e, t.sid)))
                .min();
            assert_eq!(
                rt.longest_relative_task_in_queue,
                first.map(|(e, sid)| Waiting {
                    sid,
                    age: (now - e) / 1000
                })
            );
            let mut by_priority = BTreeMap::new();
            for t in &tasks {
                *by_priority.entry(t.priority).or_insert(0u64) += 1;
            }
            assert_eq!(rt.tasks_by_priority, by_priority);
        }
    }
    // The queues really are of different sizes (both member paths ran).
    let sizes: Vec<usize> = queues
        .iter()
        .map(|q| w.ws.task_queues()[q].members.len())
        .collect();
    assert_eq!(sizes, [120, 60, 1, 3, 0]);
}
