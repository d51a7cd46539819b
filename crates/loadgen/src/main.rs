//! `taskyard-load`: the HTTP benchmark harness of issue 7.
//!
//! It drives a real `taskyard serve` process over HTTP — one already running (`--url`,
//! `--account-sid`, `--auth-token`, or the `TASKYARD_*` environment variables), or one it
//! starts itself with `--spawn <path to the taskyard binary>`: on a free port of 127.0.0.1,
//! with a temporary data directory and a known account, optionally pinned to one core with
//! `taskset -c <core>` (`--server-core N`); it waits for `GET /healthz` and kills the server
//! at the end. The harness itself is not pinned (run it under `taskset` to pin it).
//!
//! What it measures (one line per figure; `--json` prints a JSON summary instead):
//!
//! * `healthz`: closed loop, `--connections C` tokio tasks sharing one keep-alive client, each
//!   sending `GET /healthz` back to back for `--duration S` seconds: requests per second and
//!   p50/p99 latency. The ceiling of the HTTP stack alone.
//! * `tasks`: a workspace with one queue (`TargetWorkers` `1==1`) and a workflow routing every
//!   task to it, `--workers N` available workers (default 0: tasks wait in the queue), then a
//!   closed loop of `POST …/Tasks` (`Attributes={"n":i}`) from C tasks for S seconds: tasks
//!   per second, p50/p99 latency, errors. With `--callback` the workflow's
//!   `AssignmentCallbackUrl` points to a local receiver that answers `{}` and counts the
//!   callbacks (callbacks per second); callbacks only happen when there are workers
//!   (`--workers`, each taking `--capacity` reservations on the `default` channel).
//! * `latency`: open loop. The same workspace with `--workers` (default 2000) available
//!   workers whose `default` channel capacity is 1000, and the assignment callback pointing to
//!   the local receiver; `POST …/Tasks` at a steady `--rate R` per second (one tokio interval,
//!   each request on its own tokio task) for S seconds. For every task the instant its POST was
//!   sent and the instant its assignment callback arrived are recorded; it prints p50/p99/max of
//!   (callback arrival − POST sent) in milliseconds and how many callbacks were still missing
//!   after `--drain` seconds.
//! * `scale`: issue 7's targets 3 and 4 — one workspace with `--workers` (100,000) Offline
//!   workers, `--queues` (10,000) queues and `--tasks` (1,000,000) waiting tasks set up over
//!   HTTP; the server's VmRSS/VmHWM; reserve latency (worker made available → its assignment
//!   callback, `--probes` times); restart time after SIGKILL and SIGTERM (healthz 200, routing
//!   resumed). Needs `--spawn`; details in `scale.rs`.
//! * `crash` (issue 7's target 5; needs `--spawn`): crash safety under load. `--rounds N`
//!   (default 20) rounds on one data directory: restart the server, verify everything
//!   acknowledged so far, drive task lifecycles (create, cancel, accept, wrap up, complete) at
//!   full speed from `--connections` loops for a seeded random `--min-secs`..`--max-secs`
//!   (0.5–3 s), SIGKILL it mid-load. Checks through the REST API that every acknowledged task
//!   exists in a state its last acknowledged operation allows, that no task was ever reserved
//!   or accepted twice (events, callbacks, task reservation lists) and that no worker holds
//!   more than its capacity; prints restart times (kill → healthz 200) and counts, and exits
//!   non-zero on any violation. Details in `crash.rs`.
//! * `sustain` (issue 7's target 1): `healthz` for `--healthz-secs` (10), then `tasks` with
//!   callbacks (1,000 workers × capacity 1,000) for `--duration` (60) seconds in the same
//!   run; the task and callback rates (mean and worst second), their ratio to the healthz
//!   rate, and whether 10,000/s and 25% were met; with `--spawn`, the server's CPU per task,
//!   split into its store's threads and the rest, beside the CPU a task may cost for one core
//!   to reach 25%. Details in `sustain.rs`.
//! * `agents` (issue 16): `--agents N` (10,000) agents connected at once over the event bridge
//!   (`/v1/wschannels`), each with its own worker, Access Token and websocket, making the
//!   SDK's four start-up reads (`--connect-concurrency` at a time): connect time and the
//!   server's VmRSS per connection (target < 64 KiB); then `--idle-secs` (30) idle: the
//!   server's CPU as a percentage of one core (target < 5%) and the heartbeats each connection
//!   got; then `POST …/Tasks` at `--rate` (500/s) for `--duration` (20 s), each reserved to an
//!   available agent, which accepts and completes it through envelopes: POST sent →
//!   `reservation.created` read from that agent's socket, p50/p99/max (target p99 < 20 ms) and
//!   frames missing. Raises the open-file limit itself (or says to run `ulimit -n 65536`);
//!   the `/proc` figures need `--spawn`. Details in `agents.rs`.
//!
//! Commands (from the workspace root, after `cargo build --release --bin taskyard`):
//!
//! ```sh
//! cargo run --release -p taskyard-loadgen -- --spawn target/release/taskyard --server-core 0 healthz --duration 10 --connections 64
//! cargo run --release -p taskyard-loadgen -- --spawn target/release/taskyard --server-core 0 tasks --duration 10 --connections 64
//! cargo run --release -p taskyard-loadgen -- --spawn target/release/taskyard --server-core 0 tasks --duration 10 --connections 64 --callback --workers 1000 --capacity 1000
//! cargo run --release -p taskyard-loadgen -- --spawn target/release/taskyard --server-core 0 latency --rate 1000 --duration 10
//! taskset -c 1 target/release/taskyard-load --spawn target/release/taskyard --server-core 0 scale
//! taskset -c 1 target/release/taskyard-load --spawn target/release/taskyard --server-core 0 crash --rounds 20
//! taskset -c 1 target/release/taskyard-load --spawn target/release/taskyard --server-core 0 sustain
//! ulimit -n 65536; taskset -c 1 target/release/taskyard-load --spawn target/release/taskyard --server-core 0 agents
//! ```
//!
//! Against a server started by hand: `source taskyard-data/development-account.env` and
//! `cargo run --release -p taskyard-loadgen -- --url http://127.0.0.1:8700 tasks …`.

mod agents;
mod crash;
mod measure;
mod scale;
mod server;
mod spread;
mod sustain;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::json;
use taskyard_store::postgres::Location;

use measure::{
    Receiver, closed_loop, create_task, healthz_loop, report, set_up, start_receiver, summarise,
};
use server::{
    Api, SPAWN_ACCOUNT_SID, SPAWN_AUTH_TOKEN, ServerCmd, client, free_listen_addr, wait_healthy,
};

#[derive(Debug, Parser)]
#[command(
    name = "taskyard-load",
    about = "HTTP benchmark harness for taskyard serve"
)]
struct Cli {
    /// Start this taskyard binary (`serve`) on a free port with a temporary data directory,
    /// and kill it at the end. Without it, --url is used.
    #[arg(long)]
    spawn: Option<PathBuf>,

    /// With --spawn: pin the server to this core (`taskset -c N`).
    #[arg(long)]
    server_core: Option<usize>,

    /// With --spawn: the server's TASKYARD_DURABILITY (`full` or `normal`).
    #[arg(long, default_value = "full")]
    durability: String,

    /// With --spawn: keep the server's data in this PostgreSQL database (TASKYARD_DATABASE_URL),
    /// in a schema made for the run and dropped after it.
    #[arg(long)]
    database_url: Option<String>,

    /// Base URL of a running server (without --spawn).
    #[arg(long, env = "TASKYARD_URL", default_value = "http://127.0.0.1:8700")]
    url: String,

    /// Account to log in with (without --spawn).
    #[arg(long, env = "TASKYARD_ACCOUNT_SID")]
    account_sid: Option<String>,

    /// Auth token of that account (without --spawn).
    #[arg(long, env = "TASKYARD_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,

    /// Print a JSON summary instead of one line per figure.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Load,
}

#[derive(Debug, Subcommand)]
enum Load {
    /// Closed-loop GET /healthz.
    Healthz {
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        #[arg(long, default_value_t = 64)]
        connections: usize,
    },
    /// Closed-loop POST …/Tasks.
    Tasks {
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Point the workflow's AssignmentCallbackUrl to a local receiver and count callbacks.
        #[arg(long)]
        callback: bool,
        /// Available workers to create before the run.
        #[arg(long, default_value_t = 0)]
        workers: usize,
        /// Capacity of each worker's `default` channel (1 leaves it unchanged).
        #[arg(long, default_value_t = 1)]
        capacity: u32,
    },
    /// Open-loop POST …/Tasks at a steady rate; assignment-callback latency.
    Latency {
        /// Tasks per second.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Available workers to create before the run.
        #[arg(long, default_value_t = 2000)]
        workers: usize,
        /// Capacity of each worker's `default` channel.
        #[arg(long, default_value_t = 1000)]
        capacity: u32,
        /// Seconds to wait for outstanding callbacks after the last POST.
        #[arg(long, default_value_t = 5.0)]
        drain: f64,
    },
    /// One workspace at scale (issue 7, targets 3 and 4): memory, reserve latency, restart.
    /// Needs --spawn; see `scale.rs`.
    Scale(scale::ScaleArgs),
    /// SIGKILL the server during load, restart it, verify what was acknowledged (issue 7,
    /// target 5). Needs --spawn; see `crash.rs`.
    Crash(crash::CrashArgs),
    /// Issue 7, target 1: healthz, then task creation with assignment callbacks sustained
    /// (60 s by default), in one run; see `sustain.rs`.
    Sustain(sustain::SustainArgs),
    /// Issue 17: many workspaces on a cluster of nodes on one PostgreSQL database, tasks
    /// through every node (needs --spawn and --database-url); see `spread.rs`.
    Spread(spread::SpreadArgs),
    /// Issue 16: agents connected over the event bridge — memory per connection, idle CPU
    /// with heartbeats, push latency of `reservation.created`; see `agents.rs`.
    Agents(agents::AgentsArgs),
}

async fn run(cli: Cli, database: Option<Location>) -> anyhow::Result<()> {
    if let Load::Scale(args) = cli.command {
        // Scale starts (and restarts) the server itself, on its own data directory.
        let bin = cli.spawn.context("scale needs --spawn")?;
        let cmd = ServerCmd {
            bin,
            core: cli.server_core,
            durability: cli.durability,
            database: database.clone(),
        };
        return report(cli.json, scale::run(cmd, args).await?);
    }
    if let Load::Agents(args) = &cli.command {
        // Before the server is started: it inherits the limit.
        let limit = agents::raise_fd_limit(args.files_needed())?;
        if cli.spawn.is_none() {
            eprintln!(
                "note: the server needs an open-file limit above --agents too (this process has {limit})"
            );
        }
    }
    let client = client()?;
    let mut spawned = None;
    let data_dir = tempfile::tempdir()?;
    let (base, sid, token) = match &cli.spawn {
        Some(bin) => {
            let cmd = ServerCmd {
                bin: bin.clone(),
                core: cli.server_core,
                durability: cli.durability.clone(),
                database: database.clone(),
            };
            let listen = free_listen_addr()?;
            spawned = Some(cmd.start(&listen, data_dir.path())?);
            (
                format!("http://{listen}"),
                SPAWN_ACCOUNT_SID.to_owned(),
                SPAWN_AUTH_TOKEN.to_owned(),
            )
        }
        None => (
            cli.url.trim_end_matches('/').to_owned(),
            cli.account_sid.clone().unwrap_or_default(),
            cli.auth_token.clone().unwrap_or_default(),
        ),
    };
    wait_healthy(&client, &base, spawned.as_mut(), Duration::from_secs(30)).await?;
    let api = Api {
        client,
        base,
        sid,
        token,
    };

    let summary = match cli.command {
        Load::Crash(args) => {
            let Some(bin) = cli.spawn.clone() else {
                anyhow::bail!("crash needs --spawn: it kills and restarts the server itself");
            };
            let server = ServerCmd {
                bin,
                core: cli.server_core,
                durability: cli.durability.clone(),
                database: database.clone(),
            };
            let listen = api.base.trim_start_matches("http://").to_owned();
            return crash::run(
                args,
                &api,
                &server,
                &listen,
                data_dir.path(),
                spawned,
                cli.json,
            )
            .await;
        }
        Load::Sustain(args) => {
            let server = spawned.as_ref().map(|s| s.child.id());
            sustain::run(&api, args, server, database.as_ref()).await?
        }
        Load::Spread(args) => {
            let bin = cli.spawn.clone().context("spread needs --spawn")?;
            let server = ServerCmd {
                bin,
                core: cli.server_core,
                durability: cli.durability.clone(),
                database: database.clone(),
            };
            spread::run(&api, &server, data_dir.path(), spawned.take(), args).await?
        }
        Load::Agents(args) => {
            let server = spawned.as_ref().map(|s| s.child.id());
            agents::run(&api, args, server).await?
        }
        Load::Healthz {
            duration,
            connections,
        } => {
            let (lat, errors, secs) = healthz_loop(&api, duration, connections).await?;
            let n = lat.len();
            let s = summarise(lat);
            json!({
                "requests": n,
                "requests_per_s": n as f64 / secs,
                "p50_ms": s.p50_ms,
                "p99_ms": s.p99_ms,
                "max_ms": s.max_ms,
                "errors": errors,
            })
        }
        Load::Tasks {
            duration,
            connections,
            callback,
            workers,
            capacity,
        } => {
            let rx = Receiver::default();
            let url = if callback {
                Some(start_receiver(rx.clone()).await?)
            } else {
                None
            };
            if callback && workers == 0 {
                eprintln!("note: --callback without --workers: no reservation, no callback");
            }
            let setup = set_up(&api, url.as_deref(), workers, capacity).await?;
            let tasks_path = Arc::new(format!("{}/Tasks", setup.ws_path));
            let workflow = Arc::new(setup.workflow);
            let cb_before = rx.count.load(Ordering::Relaxed);
            let api2 = api.clone();
            let (lat, errors, secs) = closed_loop(duration, connections, move |i| {
                let (api, tasks_path, workflow) =
                    (api2.clone(), tasks_path.clone(), workflow.clone());
                async move {
                    create_task(&api, &tasks_path, &workflow, i).await?;
                    Ok(())
                }
            })
            .await?;
            let callbacks = rx.count.load(Ordering::Relaxed) - cb_before;
            let n = lat.len();
            let s = summarise(lat);
            let mut out = json!({
                "tasks": n,
                "tasks_per_s": n as f64 / secs,
                "p50_ms": s.p50_ms,
                "p99_ms": s.p99_ms,
                "max_ms": s.max_ms,
                "errors": errors,
                "workers": workers,
            });
            if callback && let Some(m) = out.as_object_mut() {
                m.insert("callbacks".into(), json!(callbacks));
                m.insert("callbacks_per_s".into(), json!(callbacks as f64 / secs));
            }
            out
        }
        Load::Latency {
            rate,
            duration,
            workers,
            capacity,
            drain,
        } => {
            anyhow::ensure!(rate > 0.0 && rate.is_finite(), "--rate must be positive");
            let arrivals = Arc::new(Mutex::new(HashMap::new()));
            let rx = Receiver {
                count: Arc::default(),
                arrivals: Some(arrivals.clone()),
            };
            let url = start_receiver(rx.clone()).await?;
            let setup = set_up(&api, Some(&url), workers, capacity).await?;
            let tasks_path = Arc::new(format!("{}/Tasks", setup.ws_path));
            let workflow = Arc::new(setup.workflow);
            let sent: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
            let errors = Arc::new(AtomicU64::new(0));
            let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            let start = Instant::now();
            let end = start + Duration::from_secs_f64(duration);
            let mut handles = Vec::new();
            let mut i = 0u64;
            loop {
                interval.tick().await;
                if Instant::now() >= end {
                    break;
                }
                let (api, tasks_path, workflow, sent, errors) = (
                    api.clone(),
                    tasks_path.clone(),
                    workflow.clone(),
                    sent.clone(),
                    errors.clone(),
                );
                handles.push(tokio::spawn(async move {
                    let t = Instant::now();
                    match create_task(&api, &tasks_path, &workflow, i).await {
                        Ok(sid) => {
                            if let Ok(mut s) = sent.lock() {
                                s.push((sid, t));
                            }
                        }
                        Err(e) => {
                            if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                                eprintln!("error: {e:#}");
                            }
                        }
                    }
                }));
                i += 1;
            }
            let send_secs = start.elapsed().as_secs_f64();
            for h in handles {
                h.await?;
            }
            let sent = std::mem::take(&mut *sent.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
            let drain_end = Instant::now() + Duration::from_secs_f64(drain.max(0.0));
            loop {
                let got = arrivals
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .len();
                if got >= sent.len() || Instant::now() >= drain_end {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let arrivals =
                std::mem::take(&mut *arrivals.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
            let mut lat = Vec::with_capacity(sent.len());
            let mut missing = 0u64;
            for (sid, t) in &sent {
                match arrivals.get(sid) {
                    Some(a) => lat.push(a.saturating_duration_since(*t).as_micros() as u64),
                    None => missing += 1,
                }
            }
            let s = summarise(lat);
            json!({
                "tasks_sent": i,
                "tasks_created": sent.len(),
                "offered_rate_per_s": rate,
                "achieved_rate_per_s": i as f64 / send_secs,
                "callback_p50_ms": s.p50_ms,
                "callback_p99_ms": s.p99_ms,
                "callback_max_ms": s.max_ms,
                "callbacks_missing": missing,
                "errors": errors.load(Ordering::Relaxed),
                "workers": workers,
            })
        }
        Load::Scale(_) => unreachable!("handled at the start of run"),
    };
    report(cli.json, summary)?;
    drop(spawned);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    // A schema of its own for the run's server, made before and dropped after the async
    // runtime (the PostgreSQL client blocks).
    let scratch = match cli.database_url.take() {
        Some(url) => Some(
            taskyard_store::postgres::ScratchSchema::create(&url)
                .with_context(|| format!("making a schema for the run in {url}"))?,
        ),
        None => None,
    };
    let database = scratch.as_ref().map(|s| s.location.clone());
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli, database))
}
