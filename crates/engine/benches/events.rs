//! Rendering events to the JSON the store keeps, on one core: what the store writer spends
//! per task on the events of its creation.
//!
//!     taskset -c 1 cargo bench -p taskyard-engine --bench events
//!
//! 20,000 tasks are created in a workspace of 100 available workers in 10 skill queues (a
//! workflow of one filter per skill), each reserved on arrival: five events per command
//! (`workflow.entered`, `task-queue.entered`, `task.created`, `workflow.target-matched`,
//! `reservation.created`), all showing the same task. They are rendered each on its own
//! (`Event::to_json`) and per command with the task's and worker's fields rendered once
//! (`Event::to_json_with`, as the writer does). Five runs; best and median per task.

mod common;

use std::hint::black_box;
use std::time::Instant;

use serde_json::json;
use taskyard_engine::*;

const TASKS: usize = 20_000;
const QUEUES: usize = 10;
const WORKERS: usize = 100;

/// The events of each task's creation.
fn commands() -> Vec<Vec<Event>> {
    let mut ids = CountingSids(0);
    let now: Millis = 1_700_000_000_000;
    let (mut ws, _) = Workspace::create(
        Sid::new("AC", 1),
        NewWorkspace {
            friendly_name: "Bench".into(),
            ..Default::default()
        },
        now,
        &mut ids,
    )
    .expect("workspace");
    let available = ws
        .activities()
        .values()
        .find(|a| a.available)
        .expect("available")
        .sid;
    common::skill_queues_and_workflow(&mut ws, QUEUES, now, &mut ids);
    for w in 0..WORKERS {
        let cmd = Command::CreateWorker(CreateWorker {
            friendly_name: format!("worker {w}"),
            activity_sid: Some(available),
            attributes: Some(json!({"skill": w % QUEUES, "languages": ["en", "es"]}).to_string()),
        });
        let sid = ws.apply(cmd, now, &mut ids).expect("worker").sid;
        let cmd = Command::UpdateWorkerChannel {
            worker: sid,
            channel: "default".into(),
            capacity: Some(1_000),
            available: None,
        };
        ws.apply(cmd, now, &mut ids).expect("capacity");
    }
    (0..TASKS)
        .map(|i| {
            let cmd = Command::CreateTask(CreateTask {
                attributes: Some(format!(
                    r#"{{"skill": {}, "customer": "c{i}", "language": "es"}}"#,
                    i % QUEUES
                )),
                ..Default::default()
            });
            let events = ws
                .apply(cmd, now + i as Millis, &mut ids)
                .expect("task")
                .events;
            assert_eq!(events.len(), 5, "reserved on arrival");
            events
        })
        .collect()
}

/// Runs `f` five times and prints the best and median time per task.
fn report(name: &str, f: impl Fn() -> usize) {
    let mut times: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            black_box(f());
            start.elapsed().as_secs_f64() * 1e6 / TASKS as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "{name:<44} best {:>6.2} µs/task   median {:>6.2} µs/task",
        times[0], times[2]
    );
}

fn main() {
    let commands = commands();
    report("each event on its own (to_json)", || {
        commands.iter().flatten().map(|e| e.to_json().len()).sum()
    });
    report("per command, shared facts once (to_json_with)", || {
        commands
            .iter()
            .map(|events| {
                let mut rendered = Rendered::default();
                events
                    .iter()
                    .map(|e| e.to_json_with(&mut rendered).len())
                    .sum::<usize>()
            })
            .sum()
    });
}
