//! What counting costs per task, in-process: the metric updates one task of the `sustain` run
//! makes, done exactly as the server does them (the same label types, built the same way),
//! timed over many tasks on one thread.
//!
//! Per task, the server answers one `POST …/Tasks` (a request's latency observed and its count
//! incremented, by route template and status), posts one assignment callback (counted and
//! timed), and commits the task's events (each counted by type; the commit's time and sizes
//! observed once per group commit, about 30 tasks in the sustain run). Divide the figure by the
//! server's CPU per task (`server_cpu_us_per_task` of `taskyard-load sustain`) for the share.
//!
//!   cargo bench -p taskyard-metrics --bench per_task

use std::time::Instant;

use taskyard_metrics::{EventLabels, HttpLabels, RouteLabels, callback, metrics};

/// The events one task of the sustain run leaves (created, routed, reserved, accepted).
const EVENTS: [&str; 6] = [
    "task.created",
    "task-queue.entered",
    "workflow.target-matched",
    "reservation.created",
    "reservation.accepted",
    "task.updated",
];
const TASKS_PER_COMMIT: usize = 30;

fn one_task(i: usize) {
    let m = metrics();
    // requests.rs: the route's labels built from the method and template, once per request.
    let route = RouteLabels {
        method: "POST".to_string(),
        route: "/v1/Workspaces/{ws}/Tasks".to_string(),
    };
    m.http_seconds.get_or_create(&route).observe(0.0021);
    m.http_requests
        .get_or_create(&HttpLabels {
            method: route.method,
            route: route.route,
            status: 201,
        })
        .inc();
    callback("assignment", Some(200), 0.0013);
    for t in EVENTS {
        m.events.get_or_create(&EventLabels { r#type: t }).inc();
    }
    if i.is_multiple_of(TASKS_PER_COMMIT) {
        m.commits.inc();
        m.commit_seconds.observe(0.004);
        m.commit_writes.observe(TASKS_PER_COMMIT as f64);
        m.commit_events
            .observe((TASKS_PER_COMMIT * EVENTS.len()) as f64);
    }
}

fn main() {
    taskyard_metrics::set_enabled(true);
    let n = 2_000_000;
    for i in 0..n / 10 {
        one_task(i);
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for i in 0..n {
            one_task(std::hint::black_box(i));
        }
        best = best.min(t.elapsed().as_secs_f64() * 1e9 / n as f64);
    }
    println!("metric_updates_per_task: {}", 2 + 2 + EVENTS.len());
    println!("ns_per_task: {best:.0}");
}
