//! `sustain`: issue 7's first target in one run — task creation with routing and assignment
//! callbacks, sustained, compared with the same server's `GET /healthz` rate measured by the
//! same harness a moment before.
//!
//! 1. `GET /healthz` closed loop for `--healthz-secs` (the ceiling for any HTTP request on
//!    this machine, with this harness).
//! 2. A workspace whose workflow routes every task to a queue of `--workers` available workers
//!    (capacity `--capacity` each), with the assignment callback pointing at the harness's
//!    receiver, which answers `{}` (the reservation stays pending, as most apps leave it
//!    until an agent answers).
//! 3. `POST …/Tasks` closed loop for `--duration` seconds, counting acknowledged tasks and
//!    arriving callbacks every second, then waiting up to `--drain` seconds for the callbacks
//!    still owed.
//!
//! It reports the mean and the worst whole second of tasks and callbacks, the ratio of the
//! task rate to the healthz rate, and whether both targets (10,000/s; 25%) were met.
//!
//! With `--spawn` it also reports the server's CPU time per healthz request and per task in
//! each phase, and how busy the server was (1.0: one core's worth): the cost of a task in
//! healthz requests, a figure that a noisy neighbour on a shared machine moves far less
//! than the rates. It splits a task's CPU into the store's threads (writer, checkpoints,
//! dictionary training) and everything else (HTTP in, routing, the callback out; threads
//! that ended during the run are counted as the store's, so this part is a lower bound),
//! and states the most CPU a task may cost for a server on one core to reach 25% of the
//! healthz rate: when the part besides the store alone exceeds it, no store can reach the
//! target.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use taskyard_store::postgres::Location;

use serde_json::{Value, json};

use crate::measure::{
    Receiver, closed_loop, create_task, healthz_loop, set_up, start_receiver, summarise,
};
use crate::server::{Api, STORE_THREADS, cpu_between, cpu_time, thread_cpu_times};

#[derive(Debug, clap::Args)]
pub struct SustainArgs {
    /// Seconds of task creation.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Seconds of `GET /healthz` before it.
    #[arg(long, default_value_t = 10.0)]
    healthz_secs: f64,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Available workers.
    #[arg(long, default_value_t = 1000)]
    workers: usize,
    /// Capacity of each worker's `default` channel: enough that every task is reserved.
    #[arg(long, default_value_t = 1000)]
    capacity: u32,
    /// Seconds to wait for callbacks still owed after the last POST.
    #[arg(long, default_value_t = 10.0)]
    drain: f64,
    /// Also `GET /metrics` every this many seconds during the run, as Prometheus would
    /// (0: never). Beside a run with the server's `TASKYARD_METRICS=false`, what metrics cost.
    #[arg(long, default_value_t = 0.0)]
    scrape_secs: f64,
}

pub async fn run(
    api: &Api,
    args: SustainArgs,
    server: Option<u32>,
    database: Option<&Location>,
) -> anyhow::Result<Value> {
    let cpu = || server.and_then(cpu_time);
    let cpu_before = cpu();
    let idle_before = commit_counters(database).await;
    let (lat, _, secs) = healthz_loop(api, args.healthz_secs, args.connections).await?;
    // Nothing is written during the healthz phase: what the lease keeper alone scans.
    let idle = idle_before
        .zip(commit_counters(database).await)
        .map(|((c0, _), (c1, _))| (c1 - c0) as f64 / secs);
    let healthz_per_s = lat.len() as f64 / secs;
    let healthz_cpu = cpu_per(cpu_before, cpu(), lat.len(), secs);

    let rx = Receiver::default();
    let url = start_receiver(rx.clone()).await?;
    let setup = set_up(api, Some(&url), args.workers, args.capacity).await?;
    let tasks_path = Arc::new(format!("{}/Tasks", setup.ws_path));
    let workflow = Arc::new(setup.workflow);
    let acked = Arc::new(AtomicU64::new(0));
    let callbacks_before = rx.count.load(Ordering::Relaxed);

    // One sample per second of (tasks acknowledged, callbacks received) so far.
    let sampler = {
        let (acked, count) = (acked.clone(), rx.count.clone());
        let seconds = args.duration.floor() as usize;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut samples = Vec::with_capacity(seconds + 1);
            for _ in 0..=seconds {
                tick.tick().await;
                samples.push((acked.load(Ordering::Relaxed), count.load(Ordering::Relaxed)));
            }
            samples
        })
    };
    let scraper = (args.scrape_secs > 0.0).then(|| {
        let (api, every, until) = (api.clone(), args.scrape_secs, args.duration);
        tokio::spawn(async move {
            let start = std::time::Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs_f64(every));
            let mut scrapes = 0u64;
            while start.elapsed().as_secs_f64() < until {
                tick.tick().await;
                let ok = api
                    .client
                    .get(format!("{}/metrics", api.base))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                scrapes += u64::from(ok);
            }
            scrapes
        })
    });
    let (api2, acked2) = (api.clone(), acked.clone());
    let threads = || server.and_then(thread_cpu_times);
    let (cpu_before, threads_before) = (cpu(), threads());
    let commits_before = commit_counters(database).await;
    let (lat, errors, secs) = closed_loop(args.duration, args.connections, move |i| {
        let (api, tasks_path, workflow, acked) = (
            api2.clone(),
            tasks_path.clone(),
            workflow.clone(),
            acked2.clone(),
        );
        async move {
            create_task(&api, &tasks_path, &workflow, i).await?;
            acked.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    })
    .await?;
    let (cpu_after, threads_after) = (cpu(), threads());
    let commits_after = commit_counters(database).await;
    // PostgreSQL only: how the writer's group commits went (see `commit_counters`).
    let commits = commits_before
        .zip(commits_after)
        .zip(idle)
        .map(|(((c0, e0), (c1, e1)), idle)| ((c1 - c0) as f64 - idle * secs, (e1 - e0) as f64))
        .filter(|(c, _)| *c > 0.0);
    let task_cpu = cpu_per(cpu_before, cpu_after, lat.len(), secs);
    // The part of a task that is not the store's: the live threads not named as store
    // threads. A thread that ended during the run counts as the store's, so this part is
    // never overstated. Were the writer renamed, its work would count as the rest: then
    // there is no split.
    let rest_task_cpu = threads_before
        .zip(threads_after)
        .and_then(|(before, after)| {
            after.iter().find(|t| t.name == STORE_THREADS[0])?;
            let rest = cpu_between(&before, &after, |name| !STORE_THREADS.contains(&name));
            cpu_per(Some(Duration::ZERO), Some(rest), lat.len(), secs)
        });
    let samples = sampler.await?;
    let scrapes = match scraper {
        Some(s) => Some(s.await?),
        None => None,
    };
    let tasks = lat.len() as u64;
    let callbacks_in_run = rx.count.load(Ordering::Relaxed) - callbacks_before;
    let drain_end = Instant::now() + Duration::from_secs_f64(args.drain.max(0.0));
    while rx.count.load(Ordering::Relaxed) - callbacks_before < tasks && Instant::now() < drain_end
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let callbacks = rx.count.load(Ordering::Relaxed) - callbacks_before;

    let per_second = |pick: fn(&(u64, u64)) -> u64| -> Vec<u64> {
        samples
            .windows(2)
            .map(|w| pick(&w[1]).saturating_sub(pick(&w[0])))
            .collect()
    };
    let task_seconds = per_second(|s| s.0);
    let callback_seconds = per_second(|s| s.1);
    let tasks_per_s = tasks as f64 / secs;
    let worst_task_second = task_seconds.iter().copied().min().unwrap_or(0);
    let ratio = tasks_per_s / healthz_per_s;
    let lat_len = lat.len();
    let s = summarise(lat);
    Ok(json!({
        "healthz_per_s": healthz_per_s,
        "tasks": tasks,
        "tasks_per_s": tasks_per_s,
        "metrics_scrapes": scrapes,
        "tasks_worst_second": worst_task_second,
        "callbacks_during_run_per_s": callbacks_in_run as f64 / secs,
        "callbacks_worst_second": callback_seconds.iter().copied().min().unwrap_or(0),
        "callbacks_missing_after_drain": tasks.saturating_sub(callbacks),
        "task_p50_ms": s.p50_ms,
        "task_p99_ms": s.p99_ms,
        "errors": errors,
        "ratio_to_healthz": ratio,
        "server_cpu_us_per_healthz": healthz_cpu.map(|c| c.0),
        "server_busy_during_healthz": healthz_cpu.map(|c| c.1),
        "server_cpu_us_per_task": task_cpu.map(|c| c.0),
        "server_busy_during_tasks": task_cpu.map(|c| c.1),
        "task_cost_in_healthz_requests": healthz_cpu.zip(task_cpu).map(|(h, t)| t.0 / h.0),
        "server_store_cpu_us_per_task": task_cpu.zip(rest_task_cpu).map(|(t, r)| t.0 - r.0),
        "server_cpu_us_per_task_besides_store": rest_task_cpu.map(|c| c.0),
        // A server held to one core reaches 25% of the healthz rate only if a task costs at
        // most this much of its CPU.
        "one_core_cpu_us_per_task_for_25_percent": 1e6 / (0.25 * healthz_per_s),
        "meets_10k_per_s": worst_task_second >= 10_000,
        "meets_25_percent": ratio >= 0.25,
        "tasks_per_second": task_seconds,
        "pg_commits_per_s": commits.map(|(c, _)| c / secs),
        "pg_tasks_per_commit": commits.map(|(c, _)| lat_len as f64 / c),
        "pg_events_per_commit": commits.map(|(c, e)| e / c),
        "pg_mean_commit_ms": commits.map(|(c, _)| secs * 1e3 / c),
    }))
}

/// On PostgreSQL: (scans of the `leases` table, events stored) so far, from the database's
/// own statistics for the run's schema. Every commit of a fenced writer scans `leases` once
/// (its lease check); the only other scans are the lease keeper's few a second, measured
/// while nothing is written (the healthz phase) and taken off. The statistics are flushed
/// about once a second, so the counts lag by up to a second at both ends of a phase.
async fn commit_counters(database: Option<&Location>) -> Option<(i64, i64)> {
    let db = database?.clone();
    let read = tokio::task::spawn_blocking(move || -> Result<(i64, i64), postgres::Error> {
        let mut c = postgres::Client::connect(&db.url, postgres::NoTls)?;
        let row = c.query_one(
            "SELECT
                 (SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0)::int8
                  FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'leases'),
                 (SELECT coalesce(sum(n_tup_ins), 0)::int8 FROM pg_stat_user_tables
                  WHERE schemaname = $1 AND relname = 'events')",
            &[&db.schema],
        )?;
        Ok((row.get(0), row.get(1)))
    });
    match read.await {
        Ok(Ok(counts)) => Some(counts),
        Ok(Err(e)) => {
            eprintln!("cannot read PostgreSQL's statistics: {e}");
            None
        }
        Err(_) => None,
    }
}

/// The server's CPU time per request (µs) and its busy share (cores) over a phase of
/// `requests` requests lasting `secs`, from CPU times read before and after it.
fn cpu_per(
    before: Option<Duration>,
    after: Option<Duration>,
    requests: usize,
    secs: f64,
) -> Option<(f64, f64)> {
    let used = after?.checked_sub(before?)?.as_secs_f64();
    (requests > 0 && secs > 0.0).then(|| (used * 1e6 / requests as f64, used / secs))
}
