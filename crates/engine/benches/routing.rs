//! Tasks created and routed per second, in the engine alone (no HTTP, no disk), on one core.
//!
//!     cargo bench -p taskyard-engine --bench routing
//!
//! The workspace has 10,000 available workers spread over 100 queues (`skill == N`, 100
//! members each) and a workflow of 100 filters, one per skill, so each task is matched by
//! evaluating filter expressions, enters its queue and is reserved to the longest-idle free
//! member — all inside one `apply`. Two figures:
//!
//! * **create + route**: tasks created and reserved on arrival (workers have room for 20
//!   tasks each on the default channel);
//! * **full lifecycle**: create + route, then accept and complete through the reservation,
//!   i.e. three commands per task, steady state.
//!
//! Each figure is run five times on a fresh workspace; the best and the median are printed.

mod common;

use std::hint::black_box;
use std::time::Instant;

use taskyard_engine::*;

const WORKERS: usize = 10_000;
const QUEUES: usize = 100;

fn setup() -> (Workspace, CountingSids, Millis) {
    common::available_workers(WORKERS, QUEUES, 20)
}

fn task(i: usize) -> Command {
    Command::CreateTask(CreateTask {
        attributes: Some(format!(
            r#"{{"skill": {}, "customer": "c{i}"}}"#,
            (i * 7) % QUEUES
        )),
        ..Default::default()
    })
}

/// Creates `n` tasks in a fresh workspace; returns tasks per second.
fn create_and_route(n: usize) -> f64 {
    let (mut ws, mut ids, mut now) = setup();
    let start = Instant::now();
    for i in 0..n {
        now += 1;
        let a = ws.apply(task(i), now, &mut ids).expect("task");
        black_box(a);
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let reserved = ws
        .tasks()
        .values()
        .filter(|t| t.assignment_status == TaskStatus::Reserved)
        .count();
    assert_eq!(reserved, n, "every task was reserved on arrival");
    rate
}

/// Creates, accepts and completes `n` tasks; returns tasks per second.
fn full_lifecycle(n: usize) -> f64 {
    let (mut ws, mut ids, mut now) = setup();
    let start = Instant::now();
    for i in 0..n {
        now += 1;
        let t = ws.apply(task(i), now, &mut ids).expect("task").sid;
        let r = ws.task_reservations(t).next().expect("reserved").sid;
        for status in [ReservationStatus::Accepted, ReservationStatus::Completed] {
            let cmd = Command::UpdateReservation(UpdateReservation {
                sid: r,
                task: None,
                worker: None,
                if_match: None,
                status: Some(status),
                worker_activity_sid: None,
            });
            black_box(ws.apply(cmd, now, &mut ids).expect("update"));
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Runs `f` five times (each on a fresh workspace) and prints the best and median rates:
/// the best is the least disturbed by whatever else the machine is doing.
fn report(name: &str, f: impl Fn() -> f64) {
    let mut rates: Vec<f64> = (0..5).map(|_| f()).collect();
    rates.sort_by(|a, b| b.total_cmp(a));
    println!(
        "{name:<52} best {:>8.0} tasks/s   median {:>8.0} tasks/s",
        rates[0], rates[2]
    );
}

fn main() {
    report(
        &format!("create + route ({WORKERS} workers, {QUEUES} queues)"),
        || create_and_route(150_000),
    );
    report("full lifecycle (create, route, accept, complete)", || {
        full_lifecycle(100_000)
    });
}
