//! How long a cumulative-statistics query takes over 30 days of history, read from a real
//! SQLite store: every minute of 30 days has activity (20 reservations accepted and 5 tasks
//! canceled with waits spread over 0–600 s), in the minute and hour buckets the store writer
//! keeps. Prints the best and median of 20 queries for a 30-day and a 15-minute window.
//!
//! `cargo bench -p taskyard-stats --bench cumulative`

use std::time::Instant;

use taskyard_engine::Sid;
use taskyard_stats::{Agg, Durations, HOUR_MS, MINUTE_MS, WORKSPACE, plan};
use taskyard_store::sqlite::{Durability, SqliteStore};
use taskyard_store::{EventLog, StatBucket, Store, Write};

const DAYS: i64 = 30;

fn minute(rng: &mut u64) -> Agg {
    let mut next = |n: u64| {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng % n
    };
    let mut a = Agg {
        tasks_created: 25,
        reservations_created: 22,
        reservations_accepted: 20,
        tasks_canceled: 5,
        ..Default::default()
    };
    for _ in 0..20 {
        let w = next(600) as i64;
        a.wait_until_accepted.merge(&Durations::of(w * 1000));
        *a.accepted_after.entry(w as u32).or_default() += 1;
    }
    for _ in 0..5 {
        let w = next(600) as i64;
        a.wait_until_canceled.merge(&Durations::of(w * 1000));
        *a.canceled_after.entry(w as u32).or_default() += 1;
    }
    a
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = SqliteStore::open(dir.path(), Durability::Normal).expect("store");
    let ws = Sid::new("WS", 1);
    let channel = Some(Sid::new("TC", 1));
    let end = 1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS;
    let start = end - DAYS * 24 * HOUR_MS;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut buckets = Vec::new();
    let mut hour = Agg::default();
    let mut t = start;
    while t < end {
        let m = minute(&mut rng);
        hour.merge(&m);
        buckets.push(StatBucket {
            scope: WORKSPACE.into(),
            span_ms: MINUTE_MS,
            start_ms: t,
            channel,
            body: m.to_json(),
        });
        t += MINUTE_MS;
        if t % HOUR_MS == 0 {
            buckets.push(StatBucket {
                scope: WORKSPACE.into(),
                span_ms: HOUR_MS,
                start_ms: t - HOUR_MS,
                channel,
                body: std::mem::take(&mut hour).to_json(),
            });
        }
    }
    let rows = buckets.len();
    store
        .commit(&[Write::Stats {
            workspace: ws,
            buckets,
        }])
        .expect("commit");
    let log = store.event_log().expect("log");

    for (name, from) in [
        ("30 days", start + MINUTE_MS / 2),
        ("15 minutes", end - 15 * MINUTE_MS),
    ] {
        let mut times = Vec::new();
        let mut accepted = 0;
        for _ in 0..20 {
            let t0 = Instant::now();
            let mut total = Agg::default();
            for (span, first, last) in plan(from, end - 1) {
                for b in log
                    .stat_buckets(ws, WORKSPACE, span, first, last, None)
                    .expect("read")
                {
                    total.merge(&Agg::from_json(&b.body));
                }
            }
            times.push(t0.elapsed().as_secs_f64() * 1000.0);
            accepted = total.reservations_accepted;
        }
        times.sort_by(f64::total_cmp);
        println!(
            "cumulative statistics over {name:<10} ({rows} buckets stored): best {:>7.2} ms   median {:>7.2} ms   ({accepted} reservations accepted)",
            times[0], times[10]
        );
    }
}
