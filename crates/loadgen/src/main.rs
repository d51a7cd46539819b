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
//!
//! Commands (from the workspace root, after `cargo build --release --bin taskyard`):
//!
//! ```sh
//! cargo run --release -p taskyard-loadgen -- --spawn target/release/taskyard --server-core 0 healthz --duration 10 --connections 64
//! cargo run --release -p taskyard-loadgen -- --spawn target/release/taskyard --server-core 0 tasks --duration 10 --connections 64
//! cargo run --release -p taskyard-loadgen -- --spawn target/release/taskyard --server-core 0 tasks --duration 10 --connections 64 --callback --workers 1000 --capacity 1000
//! cargo run --release -p taskyard-loadgen -- --spawn target/release/taskyard --server-core 0 latency --rate 1000 --duration 10
//! ```
//!
//! Against a server started by hand: `source taskyard-data/development-account.env` and
//! `cargo run --release -p taskyard-loadgen -- --url http://127.0.0.1:8700 tasks …`.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

const SPAWN_ACCOUNT_SID: &str = "AC00000000000000000000000000000001";
const SPAWN_AUTH_TOKEN: &str = "taskyard-load-token";

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
}

/// A server started with --spawn: killed (and reaped) when dropped.
struct Spawned {
    child: Child,
    _data_dir: tempfile::TempDir,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to reach the server.
#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
    sid: String,
    token: String,
}

impl Api {
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> anyhow::Result<Value> {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .basic_auth(&self.sid, Some(&self.token))
            .form(form)
            .send()
            .await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        if !status.is_success() {
            bail!("POST {path}: {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(serde_json::from_slice(&body)?)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .basic_auth(&self.sid, Some(&self.token))
            .send()
            .await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        if !status.is_success() {
            bail!("GET {path}: {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(serde_json::from_slice(&body)?)
    }
}

fn sid_of(v: &Value) -> anyhow::Result<String> {
    v.get("sid")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no sid in {v}"))
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?)
}

fn spawn_server(cli: &Cli, bin: &PathBuf) -> anyhow::Result<(Spawned, String)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let listen = format!("127.0.0.1:{port}");
    let data_dir = tempfile::tempdir()?;
    let mut cmd = match cli.server_core {
        Some(core) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(core.to_string()).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.arg("serve")
        .env("TASKYARD_LISTEN", &listen)
        .env("TASKYARD_DATA_DIR", data_dir.path())
        .env("TASKYARD_ACCOUNT_SID", SPAWN_ACCOUNT_SID)
        .env("TASKYARD_AUTH_TOKEN", SPAWN_AUTH_TOKEN)
        .env("TASKYARD_DURABILITY", &cli.durability)
        .env("TASKYARD_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    Ok((
        Spawned {
            child,
            _data_dir: data_dir,
        },
        format!("http://{listen}"),
    ))
}

async fn wait_healthy(
    client: &reqwest::Client,
    base: &str,
    server: Option<&mut Spawned>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut server = server;
    loop {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if let Some(s) = server.as_deref_mut()
            && let Some(status) = s.child.try_wait()?
        {
            bail!("the server exited before it was ready: {status}");
        }
        if Instant::now() > deadline {
            bail!("{base}/healthz did not answer 200 within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Latency samples (microseconds), sorted, summarised.
struct Summary {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn summarise(mut us: Vec<u64>) -> Summary {
    us.sort_unstable();
    let pick = |q: f64| -> f64 {
        if us.is_empty() {
            return f64::NAN;
        }
        let i = ((us.len() as f64 * q).ceil() as usize).clamp(1, us.len()) - 1;
        us[i] as f64 / 1000.0
    };
    Summary {
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
        max_ms: pick(1.0),
    }
}

/// The local assignment-callback receiver: counts callbacks and, when asked, records the
/// arrival instant of each TaskSid.
#[derive(Clone, Default)]
struct Receiver {
    count: Arc<AtomicU64>,
    arrivals: Option<Arc<Mutex<HashMap<String, Instant>>>>,
}

async fn start_receiver(rx: Receiver) -> anyhow::Result<String> {
    let app = axum::Router::new()
        .route("/assign", axum::routing::post(assign))
        .with_state(rx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("callback receiver: {e}");
        }
    });
    Ok(format!("http://{addr}/assign"))
}

async fn assign(
    axum::extract::State(rx): axum::extract::State<Receiver>,
    body: String,
) -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    let now = Instant::now();
    rx.count.fetch_add(1, Ordering::Relaxed);
    if let Some(arrivals) = &rx.arrivals
        && let Some(sid) = body.split('&').find_map(|kv| kv.strip_prefix("TaskSid="))
        && let Ok(mut map) = arrivals.lock()
    {
        // A SID is letters and digits: no form decoding needed.
        map.entry(sid.to_owned()).or_insert(now);
    }
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        "{}",
    )
}

/// The workspace under test: its path prefix and workflow.
struct Setup {
    ws_path: String,
    workflow: String,
}

async fn set_up(
    api: &Api,
    callback_url: Option<&str>,
    workers: usize,
    capacity: u32,
) -> anyhow::Result<Setup> {
    let ws = api
        .post("/v1/Workspaces", &[("FriendlyName", "taskyard-load")])
        .await?;
    let ws_path = format!("/v1/Workspaces/{}", sid_of(&ws)?);
    let queue = api
        .post(
            &format!("{ws_path}/TaskQueues"),
            &[("FriendlyName", "everyone"), ("TargetWorkers", "1==1")],
        )
        .await?;
    let config =
        json!({"task_routing": {"filters": [], "default_filter": {"queue": sid_of(&queue)?}}})
            .to_string();
    let mut form = vec![("FriendlyName", "all"), ("Configuration", config.as_str())];
    if let Some(url) = callback_url {
        form.push(("AssignmentCallbackUrl", url));
    }
    let workflow = sid_of(&api.post(&format!("{ws_path}/Workflows"), &form).await?)?;

    if workers > 0 {
        let activities = api.get(&format!("{ws_path}/Activities")).await?;
        let available = activities
            .get("activities")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|x| x.get("available").and_then(Value::as_bool) == Some(true))
            })
            .context("no available activity in the new workspace")?;
        let available = sid_of(available)?;
        let next = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::new();
        for _ in 0..32.min(workers) {
            let (api, next, ws_path, available) = (
                api.clone(),
                next.clone(),
                ws_path.clone(),
                available.clone(),
            );
            handles.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= workers {
                        return anyhow::Ok(());
                    }
                    let name = format!("worker-{i}");
                    let w = api
                        .post(
                            &format!("{ws_path}/Workers"),
                            &[("FriendlyName", &name), ("ActivitySid", &available)],
                        )
                        .await?;
                    if capacity != 1 {
                        let cap = capacity.to_string();
                        api.post(
                            &format!("{ws_path}/Workers/{}/Channels/default", sid_of(&w)?),
                            &[("Capacity", &cap)],
                        )
                        .await?;
                    }
                }
            }));
        }
        for h in handles {
            h.await??;
        }
    }
    Ok(Setup { ws_path, workflow })
}

/// Runs `connections` closed loops of `one` for `duration`; returns (ok latencies in µs,
/// errors, elapsed seconds).
async fn closed_loop<F, Fut>(
    duration: f64,
    connections: usize,
    one: F,
) -> anyhow::Result<(Vec<u64>, u64, f64)>
where
    F: Fn(u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(duration);
    let counter = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for _ in 0..connections.max(1) {
        let (one, counter) = (one.clone(), counter.clone());
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < end {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                match one(i).await {
                    Ok(()) => lat.push(t.elapsed().as_micros() as u64),
                    Err(e) => {
                        if errors == 0 {
                            eprintln!("error: {e:#}");
                        }
                        errors += 1;
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for h in handles {
        let (lat, e) = h.await?;
        all.extend(lat);
        errors += e;
    }
    Ok((all, errors, start.elapsed().as_secs_f64()))
}

fn report(json_out: bool, summary: Value) -> anyhow::Result<()> {
    if json_out {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else if let Some(map) = summary.as_object() {
        for (k, v) in map {
            match v.as_f64() {
                Some(f) if v.is_f64() => println!("{k}: {f:.2}"),
                _ => println!("{k}: {v}"),
            }
        }
    }
    Ok(())
}

async fn create_task(
    api: &Api,
    tasks_path: &str,
    workflow: &str,
    i: u64,
) -> anyhow::Result<String> {
    let attrs = format!("{{\"n\":{i}}}");
    let v = api
        .post(
            tasks_path,
            &[("Attributes", attrs.as_str()), ("WorkflowSid", workflow)],
        )
        .await?;
    sid_of(&v)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = client()?;
    let mut spawned = None;
    let (base, sid, token) = match &cli.spawn {
        Some(bin) => {
            let (s, base) = spawn_server(&cli, bin)?;
            spawned = Some(s);
            (
                base,
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
    wait_healthy(&client, &base, spawned.as_mut()).await?;
    let api = Api {
        client,
        base,
        sid,
        token,
    };

    let summary = match cli.command {
        Load::Healthz {
            duration,
            connections,
        } => {
            let api2 = api.clone();
            let (lat, errors, secs) = closed_loop(duration, connections, move |_| {
                let api = api2.clone();
                async move {
                    let r = api
                        .client
                        .get(format!("{}/healthz", api.base))
                        .send()
                        .await?;
                    let status = r.status();
                    r.bytes().await?;
                    anyhow::ensure!(status.is_success(), "GET /healthz: {status}");
                    Ok(())
                }
            })
            .await?;
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
    };
    report(cli.json, summary)?;
    drop(spawned);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    run(Cli::parse()).await
}
