//! How long the SQLite writer's commits take while the worker index merges (migration 5 in
//! `sqlite.rs`): the worst commit, and the 99th and 99.9th percentile, with `W` busy workers
//! (default 10,000).
//!
//! Worker events stage their index entries, and a merge moves them into the sorted index once
//! 16,384 are staged. With many workers each entry lands on an index page of its own, so a
//! merge done in one commit held back every request waiting on that commit; it is now done a
//! key range per commit. This writes `W` × 20 worker events of history, then measures 4,000
//! commits of 30 events each (≈ 7 merges), 2 ms apart, the shape of the store's group commits
//! under load, and prints the timings:
//!
//! ```sh
//! cargo run --release -p taskyard-store --example worker_merge_pause [W]
//! ```

use std::time::Instant;

use taskyard_engine::Sid;
use taskyard_store::sqlite::{Durability, SqliteStore};
use taskyard_store::{Store, StoredEvent, Write};

const PER_COMMIT: u128 = 30;

fn main() {
    let workers: u128 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("a number of workers"))
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut store = SqliteStore::open(dir.path(), Durability::Normal).expect("open");
    let ws = Sid::new("WS", 1);
    // A cheap stand-in for the workers' turns: consecutive events visit far-apart workers.
    let mut n: u128 = 0;
    let mut commit = |store: &mut SqliteStore| {
        let events = (0..PER_COMMIT)
            .map(|_| {
                n += 1;
                let ms = 1_000_000 + (n / 10) as i64;
                StoredEvent {
                    sid: Sid::new("EV", ((ms as u128) << 80) | n),
                    event_type: "reservation.created".into(),
                    date_ms: ms,
                    task_sid: None,
                    worker_sid: Some(Sid::new("WK", (n * 7_919) % workers)),
                    reservation_sid: None,
                    task_queue_sid: None,
                    workflow_sid: None,
                    task_channel_sid: None,
                    callback: false,
                    json: "{}".into(),
                }
            })
            .collect();
        let started = Instant::now();
        store
            .commit(&[Write::Workspace {
                workspace: ws,
                changes: Vec::new(),
                events,
            }])
            .expect("commit");
        started.elapsed().as_secs_f64() * 1e3
    };
    for _ in 0..(workers * 20).div_ceil(PER_COMMIT) {
        commit(&mut store);
    }
    // Paced like a busy server's group commits, so that the checkpoint thread keeps the WAL
    // short and the writer's own checkpoints (a pause of their own) stay rare.
    let mut times: Vec<f64> = (0..4_000)
        .map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(2));
            commit(&mut store)
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "{workers} workers, {} commits of {PER_COMMIT} worker events: \
         p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, worst {:.2} ms",
        times.len(),
        at(0.5),
        at(0.99),
        at(0.999),
        times[times.len() - 1]
    );
}
