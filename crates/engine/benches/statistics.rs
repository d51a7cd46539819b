//! Real-time statistics of a large workspace, in the engine alone (no HTTP), on one core.
//!
//!     taskset -c 1 cargo bench -p taskyard-engine --bench statistics
//!
//! The workspace has 10,000 workers (a third each Available, Offline and Unavailable) spread
//! over 1,000 queues (`skill == N`, 10 members each) and a workflow with one filter per
//! skill. 100,000 tasks wait (pending) on top of those the available workers hold (reserved,
//! half of them accepted), at five priorities, one in ten on the `chat` channel. Everything is
//! built through `Workspace::apply`, as the server builds it.
//!
//! Each figure is the time of one call (what one HTTP request costs the workspace's actor
//! before rendering), measured 41 times; the best and the median are printed.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::json;
use taskyard_engine::*;

const WORKERS: usize = 10_000;
const QUEUES: usize = 1_000;
const WAITING: usize = 100_000;
const RUNS: usize = 41;

fn setup() -> (Workspace, Millis) {
    let (mut ws, mut ids, mut now) = common::workspace();
    let activities: Vec<Sid> = ws.activities().keys().copied().collect();
    for w in 0..WORKERS {
        let cmd = Command::CreateWorker(CreateWorker {
            friendly_name: format!("worker {w}"),
            activity_sid: Some(activities[w % activities.len()]),
            attributes: Some(json!({"skill": w % QUEUES}).to_string()),
        });
        ws.apply(cmd, now, &mut ids).expect("worker");
    }
    common::skill_queues_and_workflow(&mut ws, QUEUES, now, &mut ids);
    // Tasks until 100,000 wait (the available workers take the first ones they fit).
    let mut waiting = 0;
    let mut i = 0;
    while waiting < WAITING {
        now += 7;
        let cmd = Command::CreateTask(CreateTask {
            attributes: Some(format!(r#"{{"skill": {}}}"#, (i * 7) % QUEUES)),
            priority: Some((i % 5) as i64 * 10),
            task_channel: Some(if i % 10 == 0 { "chat" } else { "default" }.into()),
            ..Default::default()
        });
        let t = ws.apply(cmd, now, &mut ids).expect("task").sid;
        if ws.tasks()[&t].assignment_status == TaskStatus::Pending {
            waiting += 1;
        }
        i += 1;
    }
    // Accept half of the reservations, so that tasks are in every unfinished status.
    let pending: Vec<Sid> = ws
        .reservations()
        .values()
        .filter(|r| r.status == ReservationStatus::Pending)
        .map(|r| r.sid)
        .step_by(2)
        .collect();
    for r in pending {
        let cmd = Command::UpdateReservation(UpdateReservation {
            sid: r,
            task: None,
            worker: None,
            if_match: None,
            status: Some(ReservationStatus::Accepted),
            worker_activity_sid: None,
        });
        ws.apply(cmd, now, &mut ids).expect("accept");
    }
    (ws, now + 60_000)
}

/// Times `f` `RUNS` times and prints the best and median durations.
fn report<R>(name: &str, mut f: impl FnMut() -> R) {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            black_box(f());
            start.elapsed()
        })
        .collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<58} best {:>7.3} ms   median {:>7.3} ms",
        ms(times[0]),
        ms(times[RUNS / 2])
    );
}

fn main() {
    let built = Instant::now();
    let (ws, now) = setup();
    let rt = ws.realtime(StatsScope::Workspace, None, now);
    let s = rt.tasks_by_status;
    println!(
        "workspace: {} workers, {} queues, {} tasks (pending {}, reserved {}, assigned {}), built in {:.1} s",
        ws.workers().len(),
        ws.task_queues().len(),
        rt.total_tasks,
        s.pending,
        s.reserved,
        s.assigned,
        built.elapsed().as_secs_f64()
    );
    assert!(s.pending == WAITING as u64 && rt.total_workers == WORKERS as u64);
    let queues: Vec<Sid> = ws.task_queues().keys().copied().collect();
    let flow = *ws.workflows().keys().next().expect("workflow");
    let chat = ws.find_task_channel("chat").expect("chat").sid;
    let q = queues[0];
    let one = ws.realtime(StatsScope::TaskQueue(q), None, now);
    println!(
        "one queue: {} tasks, {} eligible workers, {} available",
        one.total_tasks, one.total_eligible_workers, one.total_available_workers
    );

    report("workspace (all tasks, all workers)", || {
        ws.realtime(StatsScope::Workspace, None, now)
    });
    report("workspace, TaskChannel=chat", || {
        ws.realtime(StatsScope::Workspace, Some(chat), now)
    });
    report("one queue", || {
        ws.realtime(StatsScope::TaskQueue(q), None, now)
    });
    report("one queue, TaskChannel=chat", || {
        ws.realtime(StatsScope::TaskQueue(q), Some(chat), now)
    });
    report("one workflow (every task)", || {
        ws.realtime(StatsScope::Workflow(flow), None, now)
    });
    report("workers only (Workers/RealTimeStatistics)", || {
        ws.realtime(StatsScope::Workers, None, now)
    });
    report("bulk: 50 queues (the POST limit)", || {
        ws.realtime_queues(&queues[..50], None, now)
    });
    report(&format!("bulk: all {QUEUES} queues in one pass"), || {
        ws.realtime_all_queues(None, now)
    });
}
