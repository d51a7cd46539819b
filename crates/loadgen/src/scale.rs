//! `scale`: issue 7's targets 3 and 4 — one workspace at scale, and a restart with it on disk.
//!
//! 1. Set-up over HTTP (closed loops of `--connections` concurrent requests): `--queues`
//!    queues, queue `i` with `TargetWorkers` `skill == "s<i>"`; `--workflows` workflows, each
//!    routing a contiguous slice of the skills to their queues with one `skill == "s<i>"`
//!    filter per queue (what a TaskRouter user at that size does: a workflow configuration is
//!    a document of bounded size, so 10,000 queues are split over departments' workflows;
//!    `key == literal` filters are answered by an index, so a filter costs a lookup);
//!    `--workers` workers with `{"skill":"s<i % queues>"}`, created `Offline` so nothing is
//!    reserved; then `--tasks` tasks `{"skill":"s<i % queues>"}` on their skill's workflow,
//!    all of which wait. Every workflow's `AssignmentCallbackUrl` is a local receiver that
//!    records the arrival instant of the first callback per `WorkerSid`.
//! 2. Memory: `VmRSS` and `VmHWM` of the server from `/proc/<pid>/status`; then
//!    `--scrapes` `GET /metrics` one after the other, timed (p50/p99/max).
//! 3. Reserve latency, `--probes` times one after the other: an `Offline` worker whose queue
//!    has waiting tasks is made `Available` (`POST …/Workers/{sid}` `ActivitySid=`); the time
//!    from sending that POST to the arrival of the assignment callback for that worker, and
//!    the POST's own response time; p50/p99/max.
//! 4. Restart: SIGKILL the server, start it on the same data directory, and time until
//!    `GET /healthz` answers 200, then until routing has resumed (another `Offline` worker
//!    made available gets its assignment callback). Then the same after a SIGTERM, and with
//!    `--cold` once more after a SIGKILL with the data set dropped from the page cache.
//!
//! Requires `--spawn` (the harness reads the server's `/proc` and restarts it). With
//! `--keep DIR` the data directory is DIR and a manifest (`scale-manifest.json`) is written
//! in it; a later run with the same DIR and sizes skips the set-up and probes workers that
//! were not used before.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use crate::measure::{Arrivals, start_keyed_receiver, summarise};
use crate::server::{
    Api, SPAWN_ACCOUNT_SID, SPAWN_AUTH_TOKEN, ServerCmd, Spawned, client, free_listen_addr, sid_of,
    wait_healthy,
};

#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// Workers (all created Offline).
    #[arg(long, default_value_t = 100_000)]
    workers: usize,
    /// Queues (queue i takes workers with skill s<i>).
    #[arg(long, default_value_t = 10_000)]
    queues: usize,
    /// Waiting tasks.
    #[arg(long, default_value_t = 1_000_000)]
    tasks: usize,
    /// Workflows the queues are split over (each with queues/workflows filters).
    #[arg(long, default_value_t = 100)]
    workflows: usize,
    /// `GET /metrics` scrapes timed one after the other (0: none).
    #[arg(long, default_value_t = 200)]
    scrapes: usize,
    /// Workers made available one after the other to measure reserve latency.
    #[arg(long, default_value_t = 1000)]
    probes: usize,
    /// Concurrent requests during set-up.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Use (and keep) this data directory; a manifest in it lets a later run skip set-up.
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Skip the restart measurements.
    #[arg(long)]
    no_restart: bool,
    /// Also restart once more after SIGKILL with the data directory's files dropped from
    /// the page cache first (`dd iflag=nocache`), as after a reboot.
    #[arg(long)]
    cold: bool,
    /// Seconds to wait between set-up and the probes (lets the writer settle).
    #[arg(long, default_value_t = 0.0)]
    pause: f64,
}

/// What a later run over a kept data directory needs to know.
#[derive(Debug)]
struct Manifest {
    ws_path: String,
    available: String,
    offline: String,
    workers: Vec<String>,
    sizes: [usize; 4],
    /// Workers before this index have been made available by earlier runs.
    next_worker: usize,
}

impl Manifest {
    const FILE: &'static str = "scale-manifest.json";

    fn to_json(&self) -> Value {
        json!({
            "ws_path": self.ws_path, "available": self.available, "offline": self.offline,
            "workers": self.workers, "sizes": self.sizes, "next_worker": self.next_worker,
        })
    }

    fn from_json(v: &Value) -> Option<Manifest> {
        let s = |k: &str| v.get(k)?.as_str().map(str::to_owned);
        let sizes: Vec<usize> = v
            .get("sizes")?
            .as_array()?
            .iter()
            .filter_map(|x| x.as_u64().map(|n| n as usize))
            .collect();
        Some(Manifest {
            ws_path: s("ws_path")?,
            available: s("available")?,
            offline: s("offline")?,
            workers: v
                .get("workers")?
                .as_array()?
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            sizes: sizes.try_into().ok()?,
            next_worker: v.get("next_worker")?.as_u64()? as usize,
        })
    }

    fn save(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::write(dir.join(Self::FILE), self.to_json().to_string())?;
        Ok(())
    }
}

pub async fn run(cmd: ServerCmd, a: ScaleArgs) -> anyhow::Result<Value> {
    anyhow::ensure!(
        a.queues > 0 && a.workers >= a.queues && a.workflows > 0 && a.workflows <= a.queues,
        "need workers >= queues >= workflows > 0"
    );
    let tmp;
    let data_dir: PathBuf = match &a.keep {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_owned()
        }
    };
    let sizes = [a.workers, a.queues, a.tasks, a.workflows];
    let kept = std::fs::read(data_dir.join(Manifest::FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| Manifest::from_json(&v))
        .filter(|m| m.sizes == sizes);

    let listen = free_listen_addr()?;
    let base = format!("http://{listen}");
    let api = Api {
        client: client()?,
        base: base.clone(),
        sid: SPAWN_ACCOUNT_SID.to_owned(),
        token: SPAWN_AUTH_TOKEN.to_owned(),
    };
    let arrivals: Arrivals = Arc::default();
    let url = start_keyed_receiver("WorkerSid", arrivals.clone()).await?;

    let t = Instant::now();
    let mut server = cmd.start(&listen, &data_dir)?;
    wait_healthy(
        &api.client,
        &base,
        Some(&mut server),
        Duration::from_secs(600),
    )
    .await?;
    let first_start_s = t.elapsed().as_secs_f64();

    let mut out = serde_json::Map::new();
    out.insert("workers".into(), json!(a.workers));
    out.insert("queues".into(), json!(a.queues));
    out.insert("tasks".into(), json!(a.tasks));
    out.insert("workflows".into(), json!(a.workflows));
    let mut m = match kept {
        Some(m) => {
            eprintln!("reusing the data set in {}", data_dir.display());
            out.insert("reused_data_set".into(), json!(true));
            out.insert("start_s".into(), json!(first_start_s));
            // Callbacks go to this run's receiver.
            let wfs = api
                .get(&format!("{}/Workflows?PageSize=1000", m.ws_path))
                .await?;
            for wf in wfs
                .get("workflows")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                api.post(
                    &format!("{}/Workflows/{}", m.ws_path, sid_of(wf)?),
                    &[("AssignmentCallbackUrl", &url)],
                )
                .await?;
            }
            // At start the server resends the callbacks of reservations left pending by the
            // last run, to that run's (gone) receiver: let them fail before measuring.
            tokio::time::sleep(Duration::from_secs(5)).await;
            m
        }
        None => {
            let m = set_up(&api, &a, &url, &mut out).await?;
            if a.keep.is_some() {
                m.save(&data_dir)?;
            }
            m
        }
    };
    let pid = server.child.id();
    let (rss, hwm) = memory(pid)?;
    eprintln!(
        "server memory: VmRSS {:.2} GiB, VmHWM {:.2} GiB",
        gib(rss),
        gib(hwm)
    );
    out.insert("rss_gib".into(), json!(gib(rss)));
    out.insert("hwm_gib".into(), json!(gib(hwm)));

    // GET /metrics at this size, one scrape after the other: its answer time is what a
    // scrape costs (each workspace's figures are computed in its actor, over its tasks).
    let mut scrape_us = Vec::new();
    let mut scrape_bytes = 0;
    for _ in 0..a.scrapes {
        let t = Instant::now();
        let resp = api
            .client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .context("GET /metrics")?;
        anyhow::ensure!(
            resp.status().is_success(),
            "GET /metrics: {}",
            resp.status()
        );
        scrape_bytes = resp.bytes().await?.len();
        scrape_us.push(t.elapsed().as_micros() as u64);
    }
    if !scrape_us.is_empty() {
        let s = summarise(scrape_us);
        eprintln!(
            "GET /metrics: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({scrape_bytes} bytes)",
            s.p50_ms, s.p99_ms, s.max_ms
        );
        out.insert(
            "metrics_scrape_ms".into(),
            json!({"p50": s.p50_ms, "p99": s.p99_ms, "max": s.max_ms, "bytes": scrape_bytes}),
        );
    }

    // The SQLite write-ahead log at this point (a long one makes commits slower).
    let wal = |dir: &Path| {
        std::fs::metadata(dir.join("taskyard.db-wal")).map_or(0.0, |m| m.len() as f64 / 1048576.0)
    };
    out.insert("wal_mib_before_probes".into(), json!(wal(&data_dir)));
    if a.pause > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(a.pause)).await;
        out.insert("wal_mib_after_pause".into(), json!(wal(&data_dir)));
    }
    eprintln!("WAL before the probes: {:.0} MiB", wal(&data_dir));

    // Reserve latency.
    let probes = a
        .probes
        .min(a.workers.saturating_sub(m.next_worker + 2))
        .min(a.tasks);
    let mut to_callback = Vec::with_capacity(probes);
    let mut post = Vec::with_capacity(probes);
    let mut missing = 0u64;
    for _ in 0..probes {
        let w = m.workers[m.next_worker].clone();
        m.next_worker += 1;
        match probe(&api, &m, &arrivals, &w, Duration::from_secs(5)).await? {
            (p, Some(c)) => {
                post.push(p);
                to_callback.push(c);
            }
            (p, None) => {
                post.push(p);
                missing += 1;
            }
        }
    }
    if a.keep.is_some() {
        m.save(&data_dir)?;
    }
    let s = summarise(to_callback);
    let p = summarise(post);
    eprintln!(
        "reserve: POST → callback p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({probes} probes, {missing} missing); POST p50 {:.2} ms, p99 {:.2} ms",
        s.p50_ms, s.p99_ms, s.max_ms, p.p50_ms, p.p99_ms
    );
    out.insert("probes".into(), json!(probes));
    out.insert("reserve_callback_p50_ms".into(), json!(s.p50_ms));
    out.insert("reserve_callback_p99_ms".into(), json!(s.p99_ms));
    out.insert("reserve_callback_max_ms".into(), json!(s.max_ms));
    out.insert("reserve_callbacks_missing".into(), json!(missing));
    out.insert("reserve_post_p50_ms".into(), json!(p.p50_ms));
    out.insert("reserve_post_p99_ms".into(), json!(p.p99_ms));

    if !a.no_restart {
        let mut rounds = vec![("sigkill", false, false), ("sigterm", true, false)];
        if a.cold {
            rounds.push(("sigkill_cold", false, true));
        }
        for (name, graceful, cold) in rounds {
            if m.next_worker >= a.workers {
                break;
            }
            if graceful {
                terminate(&mut server)?;
            } else {
                server.kill();
            }
            if cold {
                drop_cache(&data_dir)?;
            }
            let t = Instant::now();
            server = cmd.start(&listen, &data_dir)?;
            wait_healthy(
                &api.client,
                &base,
                Some(&mut server),
                Duration::from_secs(600),
            )
            .await?;
            let healthy = t.elapsed().as_secs_f64();
            let w = m.workers[m.next_worker].clone();
            m.next_worker += 1;
            let (_, cb) = probe(&api, &m, &arrivals, &w, Duration::from_secs(600)).await?;
            let routed = t.elapsed().as_secs_f64();
            let (rss, _) = memory(server.child.id())?;
            eprintln!(
                "restart after {name}: healthz 200 after {healthy:.2} s, routing resumed after {routed:.2} s{}; VmRSS {:.2} GiB",
                if cb.is_none() { " (no callback!)" } else { "" },
                gib(rss)
            );
            out.insert(format!("restart_{name}_healthz_s"), json!(healthy));
            out.insert(format!("restart_{name}_routing_s"), json!(routed));
            out.insert(format!("restart_{name}_rss_gib"), json!(gib(rss)));
            if cb.is_none() {
                out.insert(format!("restart_{name}_callback_missing"), json!(true));
            }
        }
        if a.keep.is_some() {
            m.save(&data_dir)?;
        }
    }
    drop(server);
    Ok(Value::Object(out))
}

/// Makes worker `w` available; returns (POST response time, POST → its assignment callback)
/// in µs, the latter `None` if no callback came within `wait`.
async fn probe(
    api: &Api,
    m: &Manifest,
    arrivals: &Arrivals,
    w: &str,
    wait: Duration,
) -> anyhow::Result<(u64, Option<u64>)> {
    let path = format!("{}/Workers/{w}", m.ws_path);
    let t = Instant::now();
    api.post(&path, &[("ActivitySid", &m.available)]).await?;
    let post = t.elapsed().as_micros() as u64;
    let deadline = t + wait;
    loop {
        let got = arrivals
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .get(w)
            .copied();
        if let Some(at) = got {
            return Ok((
                post,
                Some(at.saturating_duration_since(t).as_micros() as u64),
            ));
        }
        if Instant::now() > deadline {
            return Ok((post, None));
        }
        // The receiver records the arrival instant itself: polling adds nothing to it.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Asks the kernel to drop the cached pages of every file in `dir` (GNU `dd` with
/// `iflag=nocache count=0` advises POSIX_FADV_DONTNEED for the whole file): only this data
/// set's pages, not the machine's whole cache.
fn drop_cache(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            let status = std::process::Command::new("dd")
                .arg(format!("if={}", path.display()))
                .args(["iflag=nocache", "count=0", "status=none"])
                .status()?;
            anyhow::ensure!(status.success(), "dd on {}: {status}", path.display());
        }
    }
    Ok(())
}

/// SIGTERM (via `kill`, to stay free of `unsafe`), then wait for the exit.
fn terminate(server: &mut Spawned) -> anyhow::Result<()> {
    let pid = server.child.id();
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            eprintln!("the server did not stop within 60 s of SIGTERM: killing it");
            server.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// (VmRSS, VmHWM) in bytes.
fn memory(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
        let kb: u64 = line
            .split_whitespace()
            .nth(1)
            .context("bad /proc status line")?
            .parse()?;
        Ok(kb * 1024)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

/// Runs `one(i)` for i in 0..n on `conns` concurrent loops, printing progress every 5 s;
/// returns the results in order of i and the rate per second.
async fn par<T, F, Fut>(what: &str, n: usize, conns: usize, one: F) -> anyhow::Result<(Vec<T>, f64)>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = anyhow::Result<T>> + Send,
{
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let progress = {
        let (done, what) = (done.clone(), what.to_owned());
        tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let d = done.load(Ordering::Relaxed);
                let rate = (d - last.1) as f64 / last.0.elapsed().as_secs_f64();
                eprintln!("  {what}: {d}/{n}, {rate:.0}/s");
                last = (Instant::now(), d);
            }
        })
    };
    let mut handles = Vec::new();
    for _ in 0..conns.clamp(1, n.max(1)) {
        let (one, next, done) = (one.clone(), next.clone(), done.clone());
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    return anyhow::Ok(got);
                }
                got.push((i, one(i).await?));
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut all = Vec::with_capacity(n);
    let mut failed = None;
    for h in handles {
        match h.await? {
            Ok(g) => all.extend(g),
            Err(e) => failed = Some(e),
        }
    }
    progress.abort();
    if let Some(e) = failed {
        return Err(e.context(format!("creating {what}")));
    }
    all.sort_unstable_by_key(|(i, _)| *i);
    let rate = n as f64 / start.elapsed().as_secs_f64();
    eprintln!(
        "{what}: {n} in {:.1} s, {rate:.0}/s",
        start.elapsed().as_secs_f64()
    );
    Ok((all.into_iter().map(|(_, t)| t).collect(), rate))
}

async fn set_up(
    api: &Api,
    a: &ScaleArgs,
    url: &str,
    out: &mut serde_json::Map<String, Value>,
) -> anyhow::Result<Manifest> {
    let started = Instant::now();
    let ws = api
        .post("/v1/Workspaces", &[("FriendlyName", "taskyard-scale")])
        .await?;
    let ws_path = format!("/v1/Workspaces/{}", sid_of(&ws)?);
    let activities = api.get(&format!("{ws_path}/Activities")).await?;
    let find = |name: &str| -> anyhow::Result<String> {
        let a = activities
            .get("activities")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|x| x.get("friendly_name").and_then(Value::as_str) == Some(name))
            })
            .with_context(|| format!("no {name} activity in the new workspace"))?;
        sid_of(a)
    };
    let available = find("Available")?;
    let offline = find("Offline")?;
    let conns = a.connections;

    let ws = Arc::new(ws_path.clone());
    let (queues, rate) = par("queues", a.queues, conns, {
        let (api, ws) = (api.clone(), ws.clone());
        move |i| {
            let (api, ws) = (api.clone(), ws.clone());
            async move {
                let (name, target) = (format!("q{i}"), format!("skill == \"s{i}\""));
                let q = api
                    .post(
                        &format!("{ws}/TaskQueues"),
                        &[("FriendlyName", &name), ("TargetWorkers", &target)],
                    )
                    .await?;
                sid_of(&q)
            }
        }
    })
    .await?;
    out.insert("setup_queues_per_s".into(), json!(rate));

    // Workflow j routes skills [j*per, (j+1)*per).
    let per = a.queues.div_ceil(a.workflows);
    let queues = Arc::new(queues);
    let (workflows, _) = par("workflows", a.workflows, conns.min(8), {
        let (api, ws, queues, url) = (api.clone(), ws.clone(), queues.clone(), url.to_owned());
        move |j| {
            let (api, ws, queues, url) = (api.clone(), ws.clone(), queues.clone(), url.clone());
            async move {
                let filters: Vec<Value> = (j * per..((j + 1) * per).min(queues.len()))
                    .map(|i| {
                        json!({
                            "filter_friendly_name": format!("s{i}"),
                            "expression": format!("skill == \"s{i}\""),
                            "targets": [{"queue": queues[i]}],
                        })
                    })
                    .collect();
                let config = json!({"task_routing": {"filters": filters}}).to_string();
                let name = format!("department-{j}");
                let wf = api
                    .post(
                        &format!("{ws}/Workflows"),
                        &[
                            ("FriendlyName", name.as_str()),
                            ("Configuration", config.as_str()),
                            ("AssignmentCallbackUrl", url.as_str()),
                            // Probe reservations stay pending through the restarts.
                            ("TaskReservationTimeout", "3600"),
                        ],
                    )
                    .await?;
                sid_of(&wf)
            }
        }
    })
    .await?;

    let nq = a.queues;
    let (workers, rate) = par("workers", a.workers, conns, {
        let (api, ws, offline) = (api.clone(), ws.clone(), Arc::new(offline.clone()));
        move |i| {
            let (api, ws, offline) = (api.clone(), ws.clone(), offline.clone());
            async move {
                let name = format!("w{i}");
                let attrs = format!("{{\"skill\":\"s{}\"}}", i % nq);
                let w = api
                    .post(
                        &format!("{ws}/Workers"),
                        &[
                            ("FriendlyName", name.as_str()),
                            ("ActivitySid", offline.as_str()),
                            ("Attributes", attrs.as_str()),
                        ],
                    )
                    .await?;
                sid_of(&w)
            }
        }
    })
    .await?;
    out.insert("setup_workers_per_s".into(), json!(rate));

    let workflows = Arc::new(workflows);
    let (_, rate) = par("tasks", a.tasks, conns, {
        let (api, tasks_path) = (api.clone(), Arc::new(format!("{ws_path}/Tasks")));
        move |i| {
            let (api, tasks_path, workflows) = (api.clone(), tasks_path.clone(), workflows.clone());
            async move {
                let q = i % nq;
                let attrs = format!("{{\"skill\":\"s{q}\"}}");
                api.post_bytes(
                    &tasks_path,
                    &[
                        ("Attributes", attrs.as_str()),
                        ("WorkflowSid", workflows[q / per].as_str()),
                    ],
                )
                .await
                .map(drop)
            }
        }
    })
    .await?;
    out.insert("setup_tasks_per_s".into(), json!(rate));
    out.insert(
        "setup_total_s".into(),
        json!(started.elapsed().as_secs_f64()),
    );
    Ok(Manifest {
        ws_path,
        available,
        offline,
        workers,
        sizes: [a.workers, a.queues, a.tasks, a.workflows],
        next_worker: 0,
    })
}
