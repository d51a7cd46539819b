//! The pieces every measurement shares: the workspace it sets up, the local assignment-callback
//! receiver, closed loops, latency summaries and the report.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use crate::server::{Api, sid_of};

/// Latency samples (microseconds), sorted, summarised.
pub struct Summary {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

pub fn summarise(mut us: Vec<u64>) -> Summary {
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
pub struct Receiver {
    pub count: Arc<AtomicU64>,
    pub arrivals: Option<Arc<Mutex<HashMap<String, Instant>>>>,
}

pub async fn start_receiver(rx: Receiver) -> anyhow::Result<String> {
    serve_receiver(
        axum::Router::new()
            .route("/assign", axum::routing::post(assign))
            .with_state(rx),
    )
    .await
}

/// Serves `app` on a free port of 127.0.0.1 in the background; its `/assign` URL.
async fn serve_receiver(app: axum::Router) -> anyhow::Result<String> {
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

/// The workspace under test: its path prefix, workflow and workers (worker `i` is
/// `worker-i`).
pub struct Setup {
    pub ws_path: String,
    pub workflow: String,
    pub workers: Vec<String>,
}

pub async fn set_up(
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

    let mut sids = vec![String::new(); workers];
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
                let mut made = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= workers {
                        return anyhow::Ok(made);
                    }
                    let name = format!("worker-{i}");
                    let w = api
                        .post(
                            &format!("{ws_path}/Workers"),
                            &[("FriendlyName", &name), ("ActivitySid", &available)],
                        )
                        .await?;
                    let sid = sid_of(&w)?;
                    if capacity != 1 {
                        let cap = capacity.to_string();
                        api.post(
                            &format!("{ws_path}/Workers/{sid}/Channels/default"),
                            &[("Capacity", &cap)],
                        )
                        .await?;
                    }
                    made.push((i, sid));
                }
            }));
        }
        for h in handles {
            for (i, sid) in h.await?? {
                sids[i] = sid;
            }
        }
    }
    Ok(Setup {
        ws_path,
        workflow,
        workers: sids,
    })
}

/// Runs `connections` closed loops of `one` for `duration`; returns (ok latencies in µs,
/// errors, elapsed seconds).
pub async fn closed_loop<F, Fut>(
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

/// `connections` closed loops of `GET /healthz` for `duration` seconds (see [`closed_loop`]).
pub async fn healthz_loop(
    api: &Api,
    duration: f64,
    connections: usize,
) -> anyhow::Result<(Vec<u64>, u64, f64)> {
    let api = api.clone();
    closed_loop(duration, connections, move |_| {
        let api = api.clone();
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
    .await
}

pub fn report(json_out: bool, summary: Value) -> anyhow::Result<()> {
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

pub async fn create_task(
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

/// Arrival instants keyed by the value of one callback form field.
pub type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// A receiver like [`start_receiver`] that records the first arrival per value of `field`
/// (e.g. `WorkerSid`: the scale run makes one worker available and waits for *its*
/// reservation, whichever task that is). Answers `{}` (no instruction).
pub async fn start_keyed_receiver(field: &'static str, map: Arrivals) -> anyhow::Result<String> {
    serve_receiver(
        axum::Router::new()
            .route("/assign", axum::routing::post(keyed_assign))
            .with_state((field, map)),
    )
    .await
}

async fn keyed_assign(
    axum::extract::State((field, map)): axum::extract::State<(&'static str, Arrivals)>,
    body: String,
) -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    let now = Instant::now();
    let value = body.split('&').find_map(|kv| {
        kv.strip_prefix(field)
            .and_then(|rest| rest.strip_prefix('='))
    });
    if let Some(v) = value
        && let Ok(mut m) = map.lock()
    {
        // SIDs are letters and digits: no form decoding needed.
        m.entry(v.to_owned()).or_insert(now);
    }
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        "{}",
    )
}
