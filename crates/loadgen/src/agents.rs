//! `agents`: issue 16's targets — agents connected to one server over the event bridge
//! (`/v1/wschannels`, what Twilio's worker SDK talks to), one websocket per agent.
//!
//! 1. Set-up over REST: an API key (`POST /2010-04-01/Accounts/{AC}/Keys.json`), one
//!    workspace with one queue (`TargetWorkers` `1==1`) and a workflow routing every task to
//!    it (no assignment callback: reservations wait for the agent), and `--agents` workers,
//!    all `Available` with the `default` channel's capacity 1 (no task exists yet, so nothing
//!    is reserved). One Access Token per worker, minted here (HS256 under the key's secret,
//!    the grant `{"workspace_sid", "worker_sid", "role": "worker"}`).
//! 2. Connections: every agent opens `ws://HOST/v1/wschannels?token=…`, waits for `init` and
//!    makes the SDK's four start-up reads (envelope `POST /v1/wschannels`: its worker; then,
//!    at once, the activities, its channels and its active reservations), at most
//!    `--connect-concurrency` agents at a time; then it only listens (one tokio task per
//!    agent). The reads go through their own HTTP client, dropped when every agent is
//!    connected, so its idle keep-alive connections are not counted as the agents' memory.
//!    Reported: connect time, how many connected, and the server's `VmRSS` with them all
//!    connected (1 s after the last, past the bridge's 250 ms grace) minus its `VmRSS` before
//!    the first (after the workers and tokens exist), per connection, in KiB.
//! 3. Idle: nothing happens for `--idle-secs`; the server's CPU time over that window (all
//!    its threads, `/proc/<pid>/stat`) as a percentage of one core, and the heartbeat frames
//!    (`""`) each connection received in it (the bridge sends one every 10 s).
//! 4. Latency: `POST …/Tasks` at `--rate` per second for `--duration` seconds (one tokio
//!    interval, each POST on its own tokio task). Every worker is available, so the router
//!    reserves each task on arrival to the longest-idle worker, and that worker's connection
//!    receives `reservation.created` (the payload names the task). The latency is from the
//!    instant the harness sent the POST to the instant the frame was read from that agent's
//!    socket (`date_created` is whole seconds, too coarse). Workers free up again so the run
//!    can go on at any rate and length: on `reservation.created` the agent (on a tokio task of
//!    its own, so its socket keeps being read) accepts the reservation and then completes the
//!    task through envelopes, as the SDK's `reservation.accept()` and `task.complete()` do;
//!    so each task also costs the server two envelope POSTs and their pushes
//!    (`reservation.accepted`, `task.completed`, `reservation.completed`). With `--hold` the
//!    agents leave their reservations pending instead, and each worker's capacity is raised so
//!    that every task of the run still finds room: the push path without that load. Reported:
//!    p50/p99/max, how many frames were still missing `--drain` seconds after the last POST,
//!    frames that reached a connection other than the reserved worker's, the POST's own
//!    response time, and the frame's arrival minus the POST's answer (both wait for the same
//!    commit, so this is what the push path adds).
//!
//! The process needs a file descriptor per agent (and the server, which inherits this
//! process's limit with `--spawn`, one more per agent): the soft `RLIMIT_NOFILE` is raised as
//! far as the hard limit allows, and the run stops at once with a message if that is too low
//! (`ulimit -n 65536`). The `/proc` figures need `--spawn`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine as _;
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::measure::{create_task, set_up, summarise};
use crate::server::{Api, ThreadCpu, client, cpu_between, cpu_time, sid_of, thread_cpu_times};

#[derive(Debug, clap::Args)]
pub struct AgentsArgs {
    /// Agents (workers, tokens, websockets) connected at once.
    #[arg(long, default_value_t = 10_000)]
    agents: usize,
    /// Agents connecting (upgrade, `init`, the four start-up reads) at the same time.
    #[arg(long, default_value_t = 128)]
    connect_concurrency: usize,
    /// Seconds all agents stay connected and idle (server CPU, heartbeats).
    #[arg(long, default_value_t = 30.0)]
    idle_secs: f64,
    /// Tasks created per second in the latency phase (each reserved to an agent).
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Seconds of the latency phase.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Seconds to wait for outstanding `reservation.created` frames after the last POST.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    /// Agents neither accept nor complete: reservations stay pending, and each worker's
    /// `default` capacity is raised so that every task of the run finds room
    /// (⌈rate × duration / agents⌉ + 1). Shows the push path without the envelopes' load.
    #[arg(long)]
    hold: bool,
    /// Write every task of the latency phase to this CSV file: the instant its POST was sent
    /// (seconds from the phase's start), the POST's response time and the frame's latency
    /// (ms; empty if missing), to see when the slow ones happened.
    #[arg(long)]
    samples: Option<std::path::PathBuf>,
}

impl AgentsArgs {
    /// Open files this process needs: a socket per agent, the start-up reads' HTTP
    /// connections (up to three per connecting agent), and room for the rest.
    pub fn files_needed(&self) -> u64 {
        (self.agents + 3 * self.connect_concurrency + 1024) as u64
    }
}

/// How long the tokens live: far longer than a run (the bridge closes a connection when its
/// token expires), within the 24 h Twilio allows.
const TOKEN_TTL_S: i64 = 6 * 3600;

/// Raises this process's soft limit of open files to at least `need` (up to the hard limit;
/// children started afterwards, the server among them, inherit it), or fails saying what to
/// do. Returns the limit in force.
pub fn raise_fd_limit(need: u64) -> anyhow::Result<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let current = limit.current.unwrap_or(u64::MAX);
    if current >= need {
        return Ok(current);
    }
    let hard = limit.maximum.unwrap_or(u64::MAX);
    let want = need.max(65_536).min(hard);
    if want > current {
        // A refusal leaves the limit as it was, which the check below reports.
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(want),
                maximum: limit.maximum,
            },
        );
    }
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    anyhow::ensure!(
        now >= need,
        "this run needs about {need} open files (one socket per agent, in this process and in \
         the server), but the limit is {now} and the hard limit {hard}: raise it first \
         (`ulimit -n 65536`, as root if the hard limit is lower) or ask for fewer --agents"
    );
    Ok(now)
}

/// An Access Token for `worker`, as twilio-node's `AccessToken` with a `TaskRouterGrant`
/// makes it: HS256 under the API key's secret.
pub fn access_token(
    key: &taskyard_auth::SecretHash,
    key_sid: &str,
    account: &str,
    workspace: &str,
    worker: &str,
    iat: i64,
) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(r#"{"alg":"HS256","typ":"JWT","cty":"twilio-fpa;v=1"}"#);
    let payload = json!({
        "jti": format!("{key_sid}-{iat}"),
        "iss": key_sid,
        "sub": account,
        "iat": iat,
        "exp": iat + TOKEN_TTL_S,
        "grants": {
            "identity": worker,
            "task_router": {"workspace_sid": workspace, "worker_sid": worker, "role": "worker"},
        },
    });
    let signed = format!("{header}.{}", b64.encode(payload.to_string()));
    let signature = b64.encode(key.hmac(taskyard_auth::Alg::Hs256, signed.as_bytes()));
    format!("{signed}.{signature}")
}

/// The `event_type` of a frame the bridge sent (`{"event_type":"…","payload":…}`), read
/// without parsing the payload.
pub fn event_type(frame: &str) -> Option<&str> {
    let at = frame.find("\"event_type\"")? + "\"event_type\"".len();
    let rest = frame.get(at..)?.trim_start().strip_prefix(':')?;
    let rest = rest.trim_start().strip_prefix('"')?;
    rest.get(..rest.find('"')?)
}

/// What every agent's task shares.
struct Shared {
    /// `http://HOST/v1/wschannels`, where envelopes go.
    bridge: String,
    /// `ws://HOST/v1/wschannels?token=`.
    ws_prefix: String,
    /// `Workspaces/WS…`, the envelopes' url prefix.
    ws_url: String,
    /// The client of the envelopes an agent sends once connected (accept, complete).
    http: reqwest::Client,
    workers: Vec<String>,
    tokens: Vec<String>,
    heartbeats: Vec<AtomicU32>,
    /// Frames other than heartbeats, by event type.
    frames: Mutex<HashMap<String, u64>>,
    /// (task SID, arrival) of every `reservation.created`.
    arrivals: Mutex<Vec<(String, Instant)>>,
    wrong_worker: AtomicU64,
    completed: AtomicU64,
    complete_errors: AtomicU64,
    /// Connections that ended after they had connected, and why the first did.
    ended: AtomicU64,
    first_end: Mutex<Option<String>>,
    /// `--hold`: reservations are left pending.
    hold: bool,
    /// Set when the figures are taken: connections ending from then on (the server is
    /// killed) are not counted.
    done: AtomicBool,
}

impl Shared {
    fn note_end(&self, why: String) {
        if self.done.load(Ordering::Relaxed) {
            return;
        }
        if self.ended.fetch_add(1, Ordering::Relaxed) == 0 {
            eprintln!("a connection ended: {why}");
            if let Ok(mut f) = self.first_end.lock() {
                *f = Some(why);
            }
        }
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// POSTs one JSON envelope as the SDK does; fails on a non-2xx answer.
async fn envelope(
    http: &reqwest::Client,
    bridge: &str,
    url: String,
    method: &str,
    params: Value,
    token: &str,
) -> anyhow::Result<()> {
    let body = json!({"url": url, "method": method, "params": params, "token": token});
    let resp = http
        .post(bridge)
        .header("apiVersion", "v1")
        .header("clientVersion", "2.1.1")
        .body(body.to_string())
        .send()
        .await?;
    let status = resp.status();
    let answer = resp.bytes().await?;
    anyhow::ensure!(
        status.is_success(),
        "{method} {url}: {status}: {}",
        String::from_utf8_lossy(&answer)
    );
    Ok(())
}

/// Opens agent `i`'s websocket, waits for `init` and makes the four start-up reads.
async fn open(sh: &Shared, i: usize, startup: &reqwest::Client) -> anyhow::Result<Ws> {
    let (worker, token) = (&sh.workers[i], &sh.tokens[i]);
    let url = format!(
        "{}{token}&closeExistingSessions=false&clientVersion=2.1.1",
        sh.ws_prefix
    );
    // The bridge's frames are small: a 4 KiB read buffer instead of tungstenite's 128 KiB.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .context("websocket upgrade")?;
    let first = tokio::time::timeout(Duration::from_secs(30), ws.next())
        .await
        .context("no init within 30 s")?
        .context("closed before init")??;
    let Message::Text(init) = first else {
        anyhow::bail!("the first frame was not text: {first:?}");
    };
    let init: Value = serde_json::from_str(init.as_str()).context("init is not JSON")?;
    anyhow::ensure!(
        init["event_type"] == "init" && init["payload"]["channel_id"] == worker.as_str(),
        "unexpected first frame {init}"
    );
    let me = format!("{}/Workers/{worker}", sh.ws_url);
    let read =
        |url: String, params: Value| envelope(startup, &sh.bridge, url, "GET", params, token);
    read(me.clone(), json!({})).await?;
    let (a, c, r) = tokio::join!(
        read(
            format!("{}/Activities", sh.ws_url),
            json!({"PageSize": 1000})
        ),
        read(format!("{me}/WorkerChannels"), json!({"PageSize": 1000})),
        read(
            format!("{me}/Reservations"),
            json!({"Active": "true", "PageSize": 1000})
        ),
    );
    a?;
    c?;
    r?;
    Ok(ws)
}

/// Agent `i` once connected: counts heartbeats, records `reservation.created` arrivals and
/// accepts and completes each reservation; until the connection ends.
async fn listen(sh: Arc<Shared>, i: usize, mut ws: Ws) {
    let why = loop {
        let Some(msg) = ws.next().await else {
            break "the stream ended".to_owned();
        };
        let at = Instant::now();
        let text = match msg {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(frame)) => break format!("closed by the server: {frame:?}"),
            Ok(_) => continue,
            Err(e) => break format!("websocket error: {e}"),
        };
        let text = text.as_str();
        if text.trim().is_empty() {
            sh.heartbeats[i].fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let kind = event_type(text).unwrap_or("(no event_type)");
        if let Ok(mut f) = sh.frames.lock() {
            *f.entry(kind.to_owned()).or_default() += 1;
        }
        if kind != "reservation.created" {
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            continue;
        };
        let p = &v["payload"];
        let (Some(wr), Some(wt)) = (p["sid"].as_str(), p["task_sid"].as_str()) else {
            continue;
        };
        if let Ok(mut a) = sh.arrivals.lock() {
            a.push((wt.to_owned(), at));
        }
        if p["worker_sid"].as_str() != Some(sh.workers[i].as_str()) {
            sh.wrong_worker.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if sh.hold {
            continue;
        }
        let (sh, wr, wt) = (sh.clone(), wr.to_owned(), wt.to_owned());
        tokio::spawn(async move {
            let (worker, token) = (&sh.workers[i], &sh.tokens[i]);
            let done = async {
                envelope(
                    &sh.http,
                    &sh.bridge,
                    format!("{}/Workers/{worker}/Reservations/{wr}", sh.ws_url),
                    "POST",
                    json!({"ReservationStatus": "accepted"}),
                    token,
                )
                .await?;
                envelope(
                    &sh.http,
                    &sh.bridge,
                    format!("{}/Tasks/{wt}", sh.ws_url),
                    "POST",
                    json!({"AssignmentStatus": "completed", "Reason": "done"}),
                    token,
                )
                .await
            };
            match done.await {
                Ok(()) => {
                    sh.completed.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    if sh.complete_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("accept/complete: {e:#}");
                    }
                }
            }
        });
    };
    sh.note_end(why);
}

/// The server's `VmRSS`, KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU time per thread name between two snapshots, milliseconds (threads that used none
/// left out).
fn by_thread(before: &[ThreadCpu], after: &[ThreadCpu]) -> Value {
    let mut names: Vec<&str> = after.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    Value::Object(
        names
            .into_iter()
            .map(|n| (n, cpu_between(before, after, |t| t == n).as_millis()))
            .filter(|(_, ms)| *ms > 0)
            .map(|(n, ms)| (n.to_owned(), json!(ms)))
            .collect(),
    )
}

fn percent_of_core(cpu: Duration, wall: f64) -> f64 {
    cpu.as_secs_f64() / wall * 100.0
}

pub async fn run(api: &Api, a: AgentsArgs, server: Option<u32>) -> anyhow::Result<Value> {
    anyhow::ensure!(a.agents > 0, "--agents must be positive");
    anyhow::ensure!(
        a.rate > 0.0 && a.rate.is_finite(),
        "--rate must be positive"
    );
    anyhow::ensure!(
        a.idle_secs >= 0.0 && a.duration >= 0.0,
        "--idle-secs and --duration must not be negative"
    );
    if server.is_none() {
        eprintln!("note: without --spawn the server's memory and CPU are not read");
    }
    let me = std::process::id();
    let mut out = serde_json::Map::new();
    let mut put = |k: &str, v: Value| {
        out.insert(k.into(), v);
    };
    put("agents", json!(a.agents));

    // 1. Set-up.
    let t = Instant::now();
    let key = api
        .post(
            &format!("/2010-04-01/Accounts/{}/Keys.json", api.sid),
            &[("FriendlyName", "taskyard-load agents")],
        )
        .await?;
    let key_sid = sid_of(&key)?;
    let secret = key
        .get("secret")
        .and_then(Value::as_str)
        .context("no secret in the new API key")?;
    let capacity = if a.hold {
        (a.rate * a.duration / a.agents as f64).ceil() as u32 + 1
    } else {
        1
    };
    let setup = set_up(api, None, a.agents, capacity).await?;
    let ws_sid = setup
        .ws_path
        .rsplit('/')
        .next()
        .context("workspace path")?
        .to_owned();
    let hash = taskyard_auth::SecretHash::derive(secret);
    let iat = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let tokens: Vec<String> = setup
        .workers
        .iter()
        .map(|w| access_token(&hash, &key_sid, &api.sid, &ws_sid, w, iat))
        .collect();
    eprintln!(
        "set-up: API key, workspace and {} available workers in {:.1} s",
        a.agents,
        t.elapsed().as_secs_f64()
    );
    put("setup_s", json!(t.elapsed().as_secs_f64()));

    let base = api.base.trim_end_matches('/');
    let ws_base = base
        .strip_prefix("http://")
        .map(|h| format!("ws://{h}"))
        .context("--url must be http://…")?;
    let sh = Arc::new(Shared {
        bridge: format!("{base}/v1/wschannels"),
        ws_prefix: format!("{ws_base}/v1/wschannels?token="),
        ws_url: format!("Workspaces/{ws_sid}"),
        http: client()?,
        heartbeats: (0..a.agents).map(|_| AtomicU32::new(0)).collect(),
        workers: setup.workers,
        tokens,
        frames: Mutex::default(),
        arrivals: Mutex::default(),
        wrong_worker: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        complete_errors: AtomicU64::new(0),
        ended: AtomicU64::new(0),
        first_end: Mutex::default(),
        hold: a.hold,
        done: AtomicBool::new(false),
    });

    // 2. Connect.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = server.and_then(rss_kib);
    let startup = client()?;
    let gate = Arc::new(Semaphore::new(a.connect_concurrency.max(1)));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let t = Instant::now();
    for i in 0..a.agents {
        let (sh, gate, startup, tx) = (sh.clone(), gate.clone(), startup.clone(), tx.clone());
        tokio::spawn(async move {
            let Ok(permit) = gate.acquire_owned().await else {
                return;
            };
            let started = Instant::now();
            let opened = open(&sh, i, &startup).await;
            drop(permit);
            drop(startup);
            match opened {
                Ok(ws) => {
                    let _ = tx.send(Ok(started.elapsed()));
                    drop(tx);
                    listen(sh, i, ws).await;
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("{e:#}")));
                }
            }
        });
    }
    drop(tx);
    let mut connect_us = Vec::with_capacity(a.agents);
    let mut failed = 0u64;
    let mut last_report = Instant::now();
    while let Some(r) = rx.recv().await {
        match r {
            Ok(d) => connect_us.push(d.as_micros() as u64),
            Err(e) => {
                if failed == 0 {
                    eprintln!("connect: {e}");
                }
                failed += 1;
            }
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            last_report = Instant::now();
            eprintln!(
                "connecting: {} of {} after {:.0} s",
                connect_us.len(),
                a.agents,
                t.elapsed().as_secs_f64()
            );
        }
    }
    let connect_s = t.elapsed().as_secs_f64();
    drop(startup);
    let connected = connect_us.len();
    eprintln!("connected {connected} agents in {connect_s:.2} s ({failed} failed)");
    let c = summarise(connect_us);
    put("connected", json!(connected));
    put("connect_failures", json!(failed));
    put("connect_s", json!(connect_s));
    put("connects_per_s", json!(connected as f64 / connect_s));
    put("connect_p50_ms", json!(c.p50_ms));
    put("connect_p99_ms", json!(c.p99_ms));
    // Past the bridge's grace (250 ms) and the start-up client's connections closing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    if let (Some(before), Some(after)) = (rss_before, server.and_then(rss_kib)) {
        let per = (after as f64 - before as f64) / connected.max(1) as f64;
        put("server_rss_before_kib", json!(before));
        put("server_rss_connected_kib", json!(after));
        put("server_rss_per_connection_kib", json!(per));
        put("rss_per_connection_under_64_kib", json!(per < 64.0));
    }

    // 3. Idle.
    let hb_before: Vec<u32> = sh
        .heartbeats
        .iter()
        .map(|h| h.load(Ordering::Relaxed))
        .collect();
    let frames_before: u64 = frame_total(&sh);
    let (cpu0, threads0, own0) = (
        server.and_then(cpu_time),
        server.and_then(thread_cpu_times),
        cpu_time(me),
    );
    let t = Instant::now();
    eprintln!("idle for {} s", a.idle_secs);
    tokio::time::sleep(Duration::from_secs_f64(a.idle_secs)).await;
    let idle = t.elapsed().as_secs_f64();
    let (cpu1, threads1, own1) = (
        server.and_then(cpu_time),
        server.and_then(thread_cpu_times),
        cpu_time(me),
    );
    let hb: Vec<u32> = sh
        .heartbeats
        .iter()
        .zip(&hb_before)
        .map(|(h, b)| h.load(Ordering::Relaxed) - b)
        .collect();
    put("idle_s", json!(idle));
    if let (Some(c0), Some(c1)) = (cpu0, cpu1) {
        let pct = percent_of_core(c1.saturating_sub(c0), idle);
        put("server_cpu_idle_percent_of_core", json!(pct));
        put("server_cpu_idle_under_5_percent", json!(pct < 5.0));
    }
    if let (Some(t0), Some(t1)) = (&threads0, &threads1) {
        put("server_cpu_idle_ms_by_thread", by_thread(t0, t1));
    }
    if let (Some(o0), Some(o1)) = (own0, own1) {
        put(
            "harness_cpu_idle_percent_of_core",
            json!(percent_of_core(o1.saturating_sub(o0), idle)),
        );
    }
    let hb_total: u64 = hb.iter().map(|&n| u64::from(n)).sum();
    put(
        "heartbeats_per_connection_mean",
        json!(hb_total as f64 / a.agents as f64),
    );
    put(
        "heartbeats_per_connection_min",
        json!(hb.iter().min().copied().unwrap_or(0)),
    );
    put(
        "heartbeats_per_connection_max",
        json!(hb.iter().max().copied().unwrap_or(0)),
    );
    put("frames_while_idle", json!(frame_total(&sh) - frames_before));
    if let Some(rss) = server.and_then(rss_kib) {
        put("server_rss_after_idle_kib", json!(rss));
    }

    // 4. Latency.
    let tasks_path = Arc::new(format!("{}/Tasks", setup.ws_path));
    let workflow = Arc::new(setup.workflow);
    let sent: Arc<Mutex<Vec<(String, Instant, Instant)>>> = Arc::default();
    let errors = Arc::new(AtomicU64::new(0));
    let (cpu0, threads0, own0) = (
        server.and_then(cpu_time),
        server.and_then(thread_cpu_times),
        cpu_time(me),
    );
    eprintln!("creating tasks at {}/s for {} s", a.rate, a.duration);
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / a.rate));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(a.duration);
    let mut handles = Vec::new();
    let mut n = 0u64;
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
            match create_task(&api, &tasks_path, &workflow, n).await {
                Ok(sid) => {
                    if let Ok(mut s) = sent.lock() {
                        s.push((sid, t, Instant::now()));
                    }
                }
                Err(e) => {
                    if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("POST …/Tasks: {e:#}");
                    }
                }
            }
        }));
        n += 1;
    }
    let send_s = start.elapsed().as_secs_f64();
    for h in handles {
        h.await?;
    }
    let sent = std::mem::take(&mut *sent.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let drain_end = Instant::now() + Duration::from_secs_f64(a.drain.max(0.0));
    let arrived = |sh: &Shared| sh.arrivals.lock().map(|a| a.len()).unwrap_or(0);
    while arrived(&sh) < sent.len() && Instant::now() < drain_end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let busy = start.elapsed().as_secs_f64();
    let (cpu1, threads1, own1) = (
        server.and_then(cpu_time),
        server.and_then(thread_cpu_times),
        cpu_time(me),
    );
    let arrivals: HashMap<String, Instant> = std::mem::take(
        &mut *sh
            .arrivals
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?,
    )
    .into_iter()
    .collect();
    let mut lat = Vec::with_capacity(sent.len());
    let mut post = Vec::with_capacity(sent.len());
    // The frame's arrival against the POST's answer (both wait for the same commit): what
    // the push path adds, negative where the frame came first.
    let mut after_answer = Vec::with_capacity(sent.len());
    let mut missing = 0u64;
    for (sid, t, answered) in &sent {
        post.push(answered.saturating_duration_since(*t).as_micros() as u64);
        match arrivals.get(sid) {
            Some(at) => {
                lat.push(at.saturating_duration_since(*t).as_micros() as u64);
                after_answer.push(signed_ms(*at, *answered));
            }
            None => missing += 1,
        }
    }
    if let Some(path) = &a.samples {
        let mut csv = String::from("sent_s,post_ms,frame_ms\n");
        let mut rows: Vec<_> = sent.iter().collect();
        rows.sort_by_key(|(_, t, _)| *t);
        for (sid, t, answered) in rows {
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            let frame = arrivals
                .get(sid)
                .map(|at| format!("{:.3}", ms(at.saturating_duration_since(*t))))
                .unwrap_or_default();
            csv.push_str(&format!(
                "{:.4},{:.3},{frame}\n",
                t.saturating_duration_since(start).as_secs_f64(),
                ms(answered.saturating_duration_since(*t)),
            ));
        }
        std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))?;
    }
    after_answer.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        let n = after_answer.len();
        (n > 0).then(|| after_answer[((n as f64 * q).ceil() as usize).clamp(1, n) - 1])
    };
    let r = summarise(lat);
    let p = summarise(post);
    put("rate_per_s", json!(a.rate));
    put("tasks_sent", json!(n));
    put("tasks_created", json!(sent.len()));
    put("achieved_rate_per_s", json!(n as f64 / send_s));
    put("task_errors", json!(errors.load(Ordering::Relaxed)));
    put("post_p50_ms", json!(p.p50_ms));
    put("post_p99_ms", json!(p.p99_ms));
    put("reservation_created_p50_ms", json!(r.p50_ms));
    put("reservation_created_p99_ms", json!(r.p99_ms));
    put("reservation_created_max_ms", json!(r.max_ms));
    put("reservation_p99_under_20_ms", json!(r.p99_ms < 20.0));
    put("frame_after_post_answer_p50_ms", json!(pick(0.5)));
    put("frame_after_post_answer_p99_ms", json!(pick(0.99)));
    put("hold", json!(a.hold));
    put("reservations_missing", json!(missing));
    put(
        "reservations_to_another_worker",
        json!(sh.wrong_worker.load(Ordering::Relaxed)),
    );
    put(
        "tasks_completed_by_agents",
        json!(sh.completed.load(Ordering::Relaxed)),
    );
    put(
        "accept_complete_errors",
        json!(sh.complete_errors.load(Ordering::Relaxed)),
    );
    if let (Some(c0), Some(c1)) = (cpu0, cpu1) {
        put(
            "server_cpu_latency_percent_of_core",
            json!(percent_of_core(c1.saturating_sub(c0), busy)),
        );
    }
    if let (Some(t0), Some(t1)) = (&threads0, &threads1) {
        put("server_cpu_latency_ms_by_thread", by_thread(t0, t1));
    }
    if let (Some(o0), Some(o1)) = (own0, own1) {
        put(
            "harness_cpu_latency_percent_of_core",
            json!(percent_of_core(o1.saturating_sub(o0), busy)),
        );
    }
    sh.done.store(true, Ordering::Relaxed);
    let frames = sh.frames.lock().map(|f| f.clone()).unwrap_or_default();
    put("frames_by_type", json!(frames));
    put("connections_ended", json!(sh.ended.load(Ordering::Relaxed)));
    if let Ok(Some(why)) = sh.first_end.lock().map(|f| f.clone()) {
        put("first_connection_end", json!(why));
    }
    Ok(Value::Object(out))
}

/// `a − b` in milliseconds, negative when `a` came first.
fn signed_ms(a: Instant, b: Instant) -> f64 {
    match a.checked_duration_since(b) {
        Some(d) => d.as_secs_f64() * 1000.0,
        None => -(b.duration_since(a).as_secs_f64() * 1000.0),
    }
}

fn frame_total(sh: &Shared) -> u64 {
    sh.frames.lock().map(|f| f.values().sum()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_is_read_from_the_frame_head() {
        assert_eq!(
            event_type(r#"{"event_type":"reservation.created","payload":{"sid":"WR1"}}"#),
            Some("reservation.created")
        );
        assert_eq!(
            event_type(r#"{ "event_type" : "init", "payload": {}}"#),
            Some("init")
        );
        assert_eq!(event_type(r#"{"payload":{}}"#), None);
        assert_eq!(event_type(r#"{"event_type":"cut"#), None);
        assert_eq!(event_type(""), None);
    }

    #[test]
    fn tokens_verify_with_the_servers_check() {
        let secret = taskyard_auth::new_secret();
        let key = taskyard_auth::SecretHash::derive(&secret);
        let ws = "WS00000000000000000000000000000001";
        let wk = "WK00000000000000000000000000000001";
        let sk = "SK00000000000000000000000000000001";
        let ac = "AC00000000000000000000000000000001";
        let now = 1_800_000_000;
        let token = access_token(&key, sk, ac, ws, wk, now);
        let claims = taskyard_auth::parse(&token)
            .expect("parses")
            .verify(&key, now + 10)
            .expect("verifies");
        assert_eq!(claims.key_sid, sk);
        assert_eq!(claims.account_sid, ac);
        assert_eq!(claims.expires_at, now + TOKEN_TTL_S);
        let tr = claims.task_router.expect("task_router grant");
        assert_eq!(tr.workspace_sid.as_deref(), Some(ws));
        assert_eq!(tr.worker_sid.as_deref(), Some(wk));
        assert_eq!(tr.role.as_deref(), Some("worker"));
        // Another key's secret does not verify it.
        let other = taskyard_auth::SecretHash::derive(&taskyard_auth::new_secret());
        assert!(
            taskyard_auth::parse(&token)
                .expect("parses")
                .verify(&other, now)
                .is_err()
        );
    }
}
