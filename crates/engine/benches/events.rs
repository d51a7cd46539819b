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

use taskyard_engine::*;

const TASKS: usize = 20_000;
const QUEUES: usize = 10;
const WORKERS: usize = 100;

/// The events of each task's creation.
fn commands() -> Vec<Vec<Event>> {
    let (mut ws, mut ids, now) = common::available_workers(WORKERS, QUEUES, 1_000);
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
