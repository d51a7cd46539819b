//! `crash`: crash safety under load (issue 7, target 5).
//!
//! One data directory for the whole run. Each round restarts `taskyard serve` on it, verifies
//! everything acknowledged so far, drives it at full speed from `--connections` closed loops
//! for a random 0.5–3 s (seeded), and SIGKILLs it mid-load. After the last kill it restarts
//! once more and verifies from scratch.
//!
//! Every task goes through one lifecycle, chosen by its attribute `n` (`Class::of`), so that
//! crashes land between every pair of steps: cancel right away; cancel once reserved; accept
//! through REST then complete; accepted by the assignment callback then completed; accept,
//! wrap up, complete; and a few left reserved or assigned for good. The receiver answers
//! `{"instruction":"accept"}` only for the classes that want it. Nothing in the design rejects
//! a reservation or lets one time out (the workflow's `TaskReservationTimeout` is 24 h), so a
//! correct server reserves each task at most once and any second reservation is a violation.
//!
//! What is recorded: every acknowledged (2xx) request and what its answer said. What is
//! checked after every restart (a violation each, the exit status is non-zero if any):
//!
//! * every acknowledged task exists, carries its own attributes, and its status is one the
//!   last acknowledged operation allows (created → the statuses its lifecycle can reach;
//!   canceled/completed → exactly that; accepted → assigned or later);
//! * each acknowledged answer showed the status asked for;
//! * `reservation.created` / `reservation.accepted` events (paged from the Events list): no
//!   task has two reservations or two acceptances, an accepted reservation is the one created,
//!   a reservation accepted through REST is the one accepted, every reservation whose
//!   assignment callback arrived is stored (callbacks are sent only after the commit), and a
//!   task's status agrees with its events (pending: none; reserved, assigned, wrapping: one;
//!   completed: one created and one accepted);
//! * no event seen before a crash is missing after it (the final verification reads every
//!   event again from the workspace's creation);
//! * for a seeded sample of tasks, `…/Tasks/{sid}/Reservations` holds at most one reservation,
//!   in the state the task's status implies, with the SID of its `reservation.created` event;
//! * for every worker, its pending + accepted + wrapping reservations (`…/Workers/{sid}/
//!   Reservations`) fit its capacity, and its channel's `assigned_tasks` equals its accepted
//!   + wrapping ones;
//! * no request that is legal in the lifecycle is refused (an unexpected 4xx/5xx means the
//!   server's state disagrees with what it acknowledged).
//!
//! Canceled and completed tasks are removed five minutes after they finish (as on Twilio); a
//! missing task is excused only if it could have finished and was last touched over 290 s ago,
//! and such tasks are counted separately.
//!
//! A restarted server resends the assignment callbacks of pending reservations, and the answers
//! change state; verification starts once no callback has arrived for 300 ms, and the checks
//! that compare reads made at different moments allow only forward progress in between.
//!
//! The seed fixes the round lengths and the samples; the interleaving of requests, and so the
//! exact moment each kill lands, is not reproducible.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};

mod cluster;

use crate::measure::{report, set_up, summarise};
use crate::server::{Api, ServerCmd, Spawned, sid_of, wait_healthy};

#[derive(Debug, clap::Args)]
pub struct CrashArgs {
    /// Kill-and-restart rounds.
    #[arg(long, default_value_t = 20)]
    pub rounds: u32,
    /// Closed loops driving the server during a round.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Shortest load before the kill, in seconds.
    #[arg(long, default_value_t = 0.5)]
    pub min_secs: f64,
    /// Longest load before the kill, in seconds.
    #[arg(long, default_value_t = 3.0)]
    pub max_secs: f64,
    /// Seed of the round lengths and samples (default: from the clock; printed to replay).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Available workers.
    #[arg(long, default_value_t = 100)]
    pub workers: usize,
    /// Capacity of each worker's `default` channel.
    #[arg(long, default_value_t = 100)]
    pub capacity: u32,
    /// Tasks whose reservation list is fetched and cross-checked at each verification.
    #[arg(long, default_value_t = 200)]
    pub sample: usize,
    /// Run a cluster of this many nodes on the --database-url database and stop the
    /// workspace's owner each round (see `crash/cluster.rs`).
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// On a cluster, every this many rounds pause the owner (SIGSTOP, then SIGCONT once its
    /// lease has run out) instead of killing it; 0: never.
    #[arg(long, default_value_t = 3)]
    pub pause_every: u32,
}

/// A task's lifecycle, from its attribute `n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// Reserved and left pending for good.
    Leave,
    /// Accepted by the callback and left assigned for good.
    LeaveAccepted,
    /// Canceled right after its creation (pending or reserved).
    CancelNow,
    /// Canceled once its reservation's callback arrived.
    ReserveCancel,
    /// Reservation accepted through REST, task completed.
    RestAccept,
    /// Accepted by the callback answer, task completed.
    CallbackAccept,
    /// Accepted through REST, wrapped up, completed.
    Wrap,
}

impl Class {
    fn of(n: u64) -> Class {
        // The classes that hold a worker's capacity for good are kept rare, so that a long
        // run does not fill every worker and stall the lifecycles that wait for a reservation.
        match n % 100 {
            0 => Class::Leave,
            1 => Class::LeaveAccepted,
            2..=21 => Class::CancelNow,
            22..=41 => Class::ReserveCancel,
            42..=66 => Class::RestAccept,
            67..=86 => Class::CallbackAccept,
            _ => Class::Wrap,
        }
    }

    fn callback_accepts(self) -> bool {
        matches!(self, Class::LeaveAccepted | Class::CallbackAccept)
    }
}

/// The last acknowledged operation on a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Created,
    Canceled,
    Accepted,
    Wrapping,
    Completed,
}

/// The task statuses a task of `class` may show after `step` was acknowledged (and any later
/// step of its lifecycle may have been committed without its answer arriving).
fn allowed(class: Class, step: Step) -> &'static [&'static str] {
    match (step, class) {
        (Step::Created, Class::Leave) => &["pending", "reserved"],
        (Step::Created, Class::LeaveAccepted) => &["pending", "reserved", "assigned"],
        (Step::Created, Class::CancelNow | Class::ReserveCancel) => {
            &["pending", "reserved", "canceled"]
        }
        (Step::Created, Class::RestAccept | Class::CallbackAccept) => {
            &["pending", "reserved", "assigned", "completed"]
        }
        (Step::Created, Class::Wrap) => {
            &["pending", "reserved", "assigned", "wrapping", "completed"]
        }
        (Step::Canceled, _) => &["canceled"],
        (Step::Accepted, Class::Wrap) => &["assigned", "wrapping", "completed"],
        (Step::Accepted, _) => &["assigned", "completed"],
        (Step::Wrapping, _) => &["wrapping", "completed"],
        (Step::Completed, _) => &["completed"],
    }
}

/// What the harness knows about one acknowledged task.
struct Acked {
    n: u64,
    step: Step,
    /// The reservation accepted through REST, if that was acknowledged.
    accepted: Option<String>,
    /// When the last request about it was sent (for the five-minute removal of finished tasks).
    touched: Instant,
}

/// Assignment callbacks received, and loops waiting for one.
#[derive(Default)]
struct Callbacks {
    total: u64,
    /// Task SID → the distinct reservation SIDs its callbacks named.
    seen: HashMap<String, Vec<String>>,
    waiters: HashMap<String, oneshot::Sender<String>>,
}

#[derive(Default)]
struct Shared {
    acked: Mutex<HashMap<String, Acked>>,
    callbacks: Mutex<Callbacks>,
    violations: Mutex<Vec<(&'static str, String)>>,
    next_n: AtomicU64,
    /// Requests that failed without an HTTP answer (the kill).
    transport_errors: AtomicU64,
    /// Callback-accepted tasks whose completion was still refused after the retries.
    gave_up: AtomicU64,
    /// Created tasks acknowledged in the current round.
    round_created: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not hide the violations gathered so far.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn violation(&self, kind: &'static str, msg: String) {
        let mut v = lock(&self.violations);
        if v.len() < 50 {
            eprintln!("VIOLATION ({kind}): {msg}");
        }
        v.push((kind, msg));
    }

    fn violations(&self) -> usize {
        lock(&self.violations).len()
    }

    /// Violations counted by kind.
    fn violation_kinds(&self) -> HashMap<&'static str, usize> {
        let mut kinds = HashMap::new();
        for (k, _) in lock(&self.violations).iter() {
            *kinds.entry(*k).or_default() += 1;
        }
        kinds
    }
}

/// SplitMix64: a few lines of seeded randomness, enough for round lengths and samples.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Everything a loop needs.
struct Ctx {
    api: Api,
    ws_path: String,
    workflow: String,
    shared: Arc<Shared>,
}

/// An HTTP answer: status and JSON body (`Null` if it was not JSON).
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    fn str(&self, key: &str) -> &str {
        self.body.get(key).and_then(Value::as_str).unwrap_or("")
    }
}

async fn send(api: &Api, url: &str, form: Option<&[(&str, &str)]>) -> anyhow::Result<Answer> {
    let req = match form {
        Some(f) => api.client.post(url).form(f),
        None => api.client.get(url),
    };
    let resp = req.basic_auth(&api.sid, Some(&api.token)).send().await?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await?;
    Ok(Answer {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    })
}

/// A GET during verification: retried on transport errors only (a pooled connection to the
/// killed server may still be handed out once), never on an HTTP status.
async fn get_ok(api: &Api, url: &str) -> anyhow::Result<Value> {
    let url = if url.starts_with("http") {
        url.to_owned()
    } else {
        format!("{}{url}", api.base)
    };
    let mut last = None;
    for _ in 0..3 {
        match send(api, &url, None).await {
            Ok(a) if a.ok() => return Ok(a.body),
            Ok(a) => bail!("GET {url}: {}: {}", a.status, a.body),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("GET {url} failed")))
}

/// Every item of a list, following `meta.next_page_url`.
async fn list_all(api: &Api, first: &str, key: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut url = first.to_owned();
    loop {
        let page = get_ok(api, &url).await?;
        let items = page
            .get(key)
            .and_then(Value::as_array)
            .with_context(|| format!("no {key} in the page of {url}"))?;
        out.extend(items.iter().cloned());
        match page
            .get("meta")
            .and_then(|m| m.get("next_page_url"))
            .and_then(Value::as_str)
        {
            Some(next) => url = next.to_owned(),
            None => return Ok(out),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The assignment-callback receiver.

async fn start_receiver(shared: Arc<Shared>) -> anyhow::Result<String> {
    let app = axum::Router::new()
        .route("/assign", axum::routing::post(assign))
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("callback receiver: {e}");
        }
    });
    Ok(format!("http://{addr}/assign"))
}

async fn assign(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    body: String,
) -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    let json_type = [(axum::http::header::CONTENT_TYPE, "application/json")];
    let (Some(task), Some(reservation)) = (
        form_value(&body, "TaskSid"),
        form_value(&body, "ReservationSid"),
    ) else {
        shared.violation(
            "bad callback",
            format!("an assignment callback without TaskSid/ReservationSid: {body}"),
        );
        return (json_type, "{}");
    };
    let n = form_value(&body, "TaskAttributes")
        .and_then(|a| serde_json::from_str::<Value>(&a).ok())
        .and_then(|a| a.get("n").and_then(Value::as_u64));
    {
        let mut cb = lock(&shared.callbacks);
        cb.total += 1;
        let seen = cb.seen.entry(task.clone()).or_default();
        if !seen.contains(&reservation) {
            seen.push(reservation.clone());
        }
        if let Some(w) = cb.waiters.remove(&task) {
            let _ = w.send(reservation);
        }
    }
    match n {
        Some(n) if Class::of(n).callback_accepts() => (json_type, r#"{"instruction":"accept"}"#),
        Some(_) => (json_type, "{}"),
        None => {
            shared.violation(
                "bad callback",
                format!("callback for {task} without our attributes: {body}"),
            );
            (json_type, "{}")
        }
    }
}

/// One value of a form-encoded body, decoded.
fn form_value(body: &str, key: &str) -> Option<String> {
    body.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(x) => {
                        out.push(x);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------
// The load.

/// Closed loop: one task's lifecycle after another until `stop`.
async fn client_loop(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        let n = ctx.shared.next_n.fetch_add(1, Ordering::Relaxed);
        if one_task(&ctx, n, &mut stop).await.is_err() {
            // No HTTP answer: the server was killed under this request.
            ctx.shared.transport_errors.fetch_add(1, Ordering::Relaxed);
            // Not at full speed against a port nobody listens on any more.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Sends `form` to `path`; an HTTP error answer to a request that is legal in the task's
/// lifecycle is a violation (the server's state disagrees with what it acknowledged).
async fn step(
    ctx: &Ctx,
    task: &str,
    path: &str,
    form: &[(&str, &str)],
) -> anyhow::Result<Option<Answer>> {
    if !task.is_empty()
        && let Some(a) = lock(&ctx.shared.acked).get_mut(task)
    {
        a.touched = Instant::now();
    }
    let a = send(&ctx.api, &format!("{}{path}", ctx.api.base), Some(form)).await?;
    if a.ok() {
        Ok(Some(a))
    } else if lost_answer(&a) {
        bail!(
            "no answer through {}: {} {}",
            ctx.api.base,
            a.status,
            a.body
        )
    } else {
        ctx.shared.violation(
            "legal request refused",
            format!("POST {path} {form:?} refused: {} {}", a.status, a.body),
        );
        Ok(None)
    }
}

/// On a cluster: the owner died while a node forwarded the request to it, or none was
/// reachable for long (502/503). That is no answer, as when a lone server is killed
/// mid-request.
fn lost_answer(a: &Answer) -> bool {
    a.status == 502 || a.status == 503
}

/// Records an acknowledged step, and checks the answer showed what was asked for.
fn ack(ctx: &Ctx, task: &str, step: Step, shown: &str, wanted: &[&str]) {
    if !wanted.contains(&shown) {
        ctx.shared.violation(
            "answer showed another status",
            format!(
                "{task}: {step:?} acknowledged with status {shown:?}, expected one of {wanted:?}"
            ),
        );
    }
    if let Some(a) = lock(&ctx.shared.acked).get_mut(task) {
        a.step = step;
        a.touched = Instant::now();
    }
}

/// The reservation SID of `task`'s first assignment callback, or `None` if the round ends
/// first.
async fn reservation_of(ctx: &Ctx, task: &str, stop: &mut watch::Receiver<bool>) -> Option<String> {
    let rx = {
        let mut cb = lock(&ctx.shared.callbacks);
        if let Some(r) = cb.seen.get(task).and_then(|v| v.first()) {
            return Some(r.clone());
        }
        let (tx, rx) = oneshot::channel();
        cb.waiters.insert(task.to_owned(), tx);
        rx
    };
    tokio::select! {
        r = rx => r.ok(),
        _ = stop.wait_for(|s| *s) => None,
    }
}

/// Creates task `n` and records it acknowledged; `None` if it was refused.
async fn create_task(ctx: &Ctx, n: u64) -> anyhow::Result<Option<String>> {
    let attrs = format!("{{\"n\":{n}}}");
    let tasks = format!("{}/Tasks", ctx.ws_path);
    let Some(a) = step(
        ctx,
        "",
        &tasks,
        &[("Attributes", &attrs), ("WorkflowSid", &ctx.workflow)],
    )
    .await?
    else {
        return Ok(None);
    };
    let sid = sid_of(&a.body)?;
    lock(&ctx.shared.acked).insert(
        sid.clone(),
        Acked {
            n,
            step: Step::Created,
            accepted: None,
            touched: Instant::now(),
        },
    );
    ctx.shared.round_created.fetch_add(1, Ordering::Relaxed);
    ack(
        ctx,
        &sid,
        Step::Created,
        a.str("assignment_status"),
        &["pending", "reserved"],
    );
    Ok(Some(sid))
}

async fn one_task(ctx: &Ctx, n: u64, stop: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
    let class = Class::of(n);
    let tasks = format!("{}/Tasks", ctx.ws_path);
    let Some(sid) = create_task(ctx, n).await? else {
        return Ok(());
    };
    let task = format!("{tasks}/{sid}");
    let cancel = [("AssignmentStatus", "canceled"), ("Reason", "crash test")];
    let complete = [("AssignmentStatus", "completed"), ("Reason", "crash test")];
    match class {
        Class::Leave | Class::LeaveAccepted => {}
        Class::CancelNow => {
            if let Some(a) = step(ctx, &sid, &task, &cancel).await? {
                ack(
                    ctx,
                    &sid,
                    Step::Canceled,
                    a.str("assignment_status"),
                    &["canceled"],
                );
            }
        }
        Class::ReserveCancel => {
            if reservation_of(ctx, &sid, stop).await.is_some()
                && let Some(a) = step(ctx, &sid, &task, &cancel).await?
            {
                ack(
                    ctx,
                    &sid,
                    Step::Canceled,
                    a.str("assignment_status"),
                    &["canceled"],
                );
            }
        }
        Class::RestAccept | Class::Wrap => {
            let Some(res) = reservation_of(ctx, &sid, stop).await else {
                return Ok(());
            };
            let path = format!("{task}/Reservations/{res}");
            let Some(a) = step(ctx, &sid, &path, &[("ReservationStatus", "accepted")]).await?
            else {
                return Ok(());
            };
            ack(
                ctx,
                &sid,
                Step::Accepted,
                a.str("reservation_status"),
                &["accepted"],
            );
            if let Some(x) = lock(&ctx.shared.acked).get_mut(&sid) {
                x.accepted = Some(res);
            }
            if class == Class::Wrap {
                let Some(a) = step(ctx, &sid, &task, &[("AssignmentStatus", "wrapping")]).await?
                else {
                    return Ok(());
                };
                ack(
                    ctx,
                    &sid,
                    Step::Wrapping,
                    a.str("assignment_status"),
                    &["wrapping"],
                );
            }
            if let Some(a) = step(ctx, &sid, &task, &complete).await? {
                ack(
                    ctx,
                    &sid,
                    Step::Completed,
                    a.str("assignment_status"),
                    &["completed"],
                );
            }
        }
        Class::CallbackAccept => {
            if reservation_of(ctx, &sid, stop).await.is_none() {
                return Ok(());
            }
            // The callback's answer is applied after the receiver sent it: until then the
            // task is still reserved and completing it is refused (400). Retry for a while.
            let url = format!("{}{task}", ctx.api.base);
            for _ in 0..500 {
                if let Some(x) = lock(&ctx.shared.acked).get_mut(&sid) {
                    x.touched = Instant::now();
                }
                let a = send(&ctx.api, &url, Some(&complete)).await?;
                if a.ok() {
                    ack(
                        ctx,
                        &sid,
                        Step::Completed,
                        a.str("assignment_status"),
                        &["completed"],
                    );
                    return Ok(());
                }
                if lost_answer(&a) {
                    bail!(
                        "no answer through {}: {} {}",
                        ctx.api.base,
                        a.status,
                        a.body
                    );
                }
                if a.status != 400 {
                    ctx.shared.violation(
                        "legal request refused",
                        format!("completing {sid} refused: {} {}", a.status, a.body),
                    );
                    return Ok(());
                }
                if *stop.borrow() {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            ctx.shared.gave_up.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Verification.

/// Reservation events seen so far, by event SID (each is read at least once; windows overlap).
#[derive(Default)]
struct EventBook {
    seen: HashSet<String>,
    /// Task SID → reservation SIDs of its `reservation.created` events.
    created: HashMap<String, Vec<String>>,
    /// Task SID → reservation SIDs of its `reservation.accepted` events.
    accepted: HashMap<String, Vec<String>>,
}

impl EventBook {
    async fn read(&mut self, api: &Api, ws_path: &str, since: &str) -> anyhow::Result<()> {
        for (kind, accepted) in [
            ("reservation.created", false),
            ("reservation.accepted", true),
        ] {
            let url = format!("{ws_path}/Events?EventType={kind}&StartDate={since}&PageSize=1000");
            for e in list_all(api, &url, "events").await? {
                let sid = sid_of(&e)?;
                if !self.seen.insert(sid) {
                    continue;
                }
                let res = e
                    .get("resource_sid")
                    .and_then(Value::as_str)
                    .context("event without resource_sid")?
                    .to_owned();
                let task = e
                    .get("event_data")
                    .and_then(|d| d.get("task_sid"))
                    .and_then(Value::as_str)
                    .context("reservation event without task_sid")?
                    .to_owned();
                let map = if accepted {
                    &mut self.accepted
                } else {
                    &mut self.created
                };
                map.entry(task).or_default().push(res);
            }
        }
        Ok(())
    }

    fn reservations(&self) -> usize {
        self.created.values().map(Vec::len).sum()
    }
}

/// One verification's counts.
#[derive(Default)]
struct Verified {
    tasks_checked: usize,
    server_tasks: usize,
    unacked_committed: usize,
    removed_after_finishing: usize,
    task_reservation_lists: usize,
    workers: usize,
}

struct Verifier {
    shared: Arc<Shared>,
    api: Api,
    ws_path: String,
    capacity: u32,
    workers: Vec<String>,
    book: EventBook,
}

impl Verifier {
    async fn verify(
        &mut self,
        since: &str,
        rng: &mut Rng,
        sample: usize,
    ) -> anyhow::Result<Verified> {
        let mut out = Verified::default();
        let sh = self.shared.clone();
        // Callbacks are sent only after their reservation was committed, so every one seen
        // before this point must be in the events read after it.
        let callbacks: HashMap<String, Vec<String>> = lock(&sh.callbacks).seen.clone();

        let tasks = list_all(
            &self.api,
            &format!("{}/Tasks?PageSize=1000", self.ws_path),
            "tasks",
        )
        .await?;
        let mut status: HashMap<String, (String, Option<u64>)> = HashMap::new();
        for t in &tasks {
            let n = t
                .get("attributes")
                .and_then(Value::as_str)
                .and_then(|a| serde_json::from_str::<Value>(a).ok())
                .and_then(|a| a.get("n").and_then(Value::as_u64));
            let s = t
                .get("assignment_status")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            status.insert(sid_of(t)?, (s, n));
        }
        out.server_tasks = status.len();
        self.book.read(&self.api, &self.ws_path, since).await?;

        {
            let acked = lock(&sh.acked);
            for (sid, a) in acked.iter() {
                let ok = allowed(Class::of(a.n), a.step);
                match status.get(sid) {
                    None if ok.iter().any(|s| *s == "canceled" || *s == "completed")
                        && a.touched.elapsed() > Duration::from_secs(290) =>
                    {
                        out.removed_after_finishing += 1;
                    }
                    None => sh.violation("acknowledged task missing", format!(
                        "acknowledged task {sid} (n={}, {:?}, last acknowledged {:?}) is missing",
                        a.n,
                        Class::of(a.n),
                        a.step
                    )),
                    Some((s, n)) => {
                        out.tasks_checked += 1;
                        // Lists show attributes only with TASKYARD_LIST_ATTRIBUTES; the sample
                        // below fetches them one by one otherwise.
                        if n.is_some() && *n != Some(a.n) {
                            sh.violation("attributes changed", format!(
                                "{sid}: attributes n={n:?}, created with {}",
                                a.n
                            ));
                        }
                        if !ok.contains(&s.as_str()) {
                            sh.violation("status not allowed by last acknowledged operation", format!(
                                "{sid} ({:?}): status {s:?} after acknowledged {:?}; allowed {ok:?}",
                                Class::of(a.n),
                                a.step
                            ));
                        }
                    }
                }
                if let Some(r) = &a.accepted {
                    let acc = self.book.accepted.get(sid);
                    if acc.is_none_or(|v| !v.contains(r)) {
                        sh.violation("REST-accepted reservation not accepted", format!(
                            "{sid}: reservation {r} accepted (acknowledged) but reservation.accepted events show {acc:?}"
                        ));
                    }
                }
            }
            out.unacked_committed = status.keys().filter(|s| !acked.contains_key(*s)).count();
        }

        // No task reserved or accepted twice; accepted is the one created.
        for (task, res) in &self.book.created {
            if res.len() > 1 {
                sh.violation(
                    "task reserved twice",
                    format!("{task} reserved more than once: {res:?}"),
                );
            }
        }
        for (task, acc) in &self.book.accepted {
            if acc.len() > 1 {
                sh.violation(
                    "task accepted twice",
                    format!("{task} accepted more than once: {acc:?}"),
                );
            }
            let created = self.book.created.get(task);
            for r in acc {
                if created.is_none_or(|c| !c.contains(r)) {
                    sh.violation("accepted reservation never created", format!(
                        "{task}: reservation {r} accepted but its reservation.created is missing"
                    ));
                }
            }
        }
        for (task, res) in &callbacks {
            if res.len() > 1 {
                sh.violation(
                    "callbacks for two reservations",
                    format!("{task}: assignment callbacks for {res:?}"),
                );
            }
            let created = self.book.created.get(task);
            for r in res {
                if created.is_none_or(|c| !c.contains(r)) {
                    sh.violation("reservation of a callback not stored", format!(
                        "{task}: reservation {r} had its assignment callback, but no reservation.created event is stored"
                    ));
                }
            }
        }
        // A task's status agrees with its events.
        for (task, (s, _)) in &status {
            let c = self.book.created.get(task).map_or(0, Vec::len);
            let a = self.book.accepted.get(task).map_or(0, Vec::len);
            let fits = match s.as_str() {
                "pending" => c == 0 && a == 0,
                // A resent callback may have accepted it since the list was read.
                "reserved" => c == 1 && a <= 1,
                "assigned" | "wrapping" | "completed" => c == 1 && a == 1,
                "canceled" => c <= 1 && a == 0,
                _ => false,
            };
            if !fits {
                sh.violation("status disagrees with events", format!(
                    "{task}: status {s} with {c} reservation.created and {a} reservation.accepted events"
                ));
            }
        }

        // A sample of tasks: their reservation lists.
        let mut sids: Vec<&String> = status.keys().collect();
        // Sorted, so that the seed alone decides the sample.
        sids.sort_unstable();
        let mut picked = Vec::new();
        if !sids.is_empty() {
            for _ in 0..sample.min(sids.len()) {
                picked.push(sids[(rng.next() % sids.len() as u64) as usize].clone());
            }
        }
        for chunk in picked.chunks(16) {
            let mut set = tokio::task::JoinSet::new();
            for task in chunk {
                let (api, url, task) = (
                    self.api.clone(),
                    format!("{}/Tasks/{task}/Reservations?PageSize=50", self.ws_path),
                    task.clone(),
                );
                let one = format!("{}/Tasks/{task}", self.ws_path);
                set.spawn(async move {
                    // A finished task is removed five minutes after it finished (a long run):
                    // gone since the list was read is not a violation, just not sampled.
                    let found = send(&api, &format!("{}{one}", api.base), None).await;
                    if matches!(&found, Ok(a) if a.status == 404) {
                        return (task, Ok(None), Ok(Value::Null));
                    }
                    let list = list_all(&api, &url, "reservations").await.map(Some);
                    let one = get_ok(&api, &one).await;
                    (task, list, one)
                });
            }
            while let Some(r) = set.join_next().await {
                let (task, list, one) = r?;
                let Some(list) = list? else {
                    continue;
                };
                let one = one?;
                out.task_reservation_lists += 1;
                let n = one
                    .get("attributes")
                    .and_then(Value::as_str)
                    .and_then(|a| serde_json::from_str::<Value>(a).ok())
                    .and_then(|a| a.get("n").and_then(Value::as_u64));
                if let Some(a) = lock(&sh.acked).get(&task)
                    && n != Some(a.n)
                {
                    sh.violation(
                        "attributes changed",
                        format!("{task}: attributes n={n:?}, created with {}", a.n),
                    );
                }
                let (s, _) = &status[&task];
                let created = self.book.created.get(&task).cloned().unwrap_or_default();
                // Its state may have moved on since the task list was read (a resent callback
                // accepting it): compare with the statuses the task's status allows from then on.
                let want: &[&str] = match s.as_str() {
                    "pending" => &[],
                    "reserved" => &["pending", "accepted", "completed"],
                    "assigned" => &["accepted", "completed"],
                    "wrapping" => &["wrapping", "completed"],
                    "completed" => &["completed"],
                    _ => &["canceled"],
                };
                if list.len() > 1
                    || (list.is_empty() && !matches!(s.as_str(), "pending" | "canceled"))
                {
                    sh.violation(
                        "task reservation list wrong",
                        format!(
                            "{task} ({s}) has {} reservations: {:?}",
                            list.len(),
                            list.iter().map(|r| r.get("sid")).collect::<Vec<_>>()
                        ),
                    );
                }
                for r in &list {
                    let rs = r
                        .get("reservation_status")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    let rsid = sid_of(r)?;
                    if !want.contains(&rs) {
                        sh.violation(
                            "task reservation list wrong",
                            format!("{task} ({s}): reservation {rsid} is {rs}"),
                        );
                    }
                    if !created.contains(&rsid) {
                        sh.violation(
                            "reservation without event",
                            format!("{task}: reservation {rsid} has no reservation.created event"),
                        );
                    }
                }
            }
        }

        // Workers: what they hold fits their capacity, and the channel's count agrees. The
        // counts come from four requests; a resent callback accepting a reservation between
        // them could make them disagree for a moment, so a worker that does not add up is
        // read again (up to three times) before it counts as a violation.
        for chunk in self.workers.chunks(16) {
            let mut set = tokio::task::JoinSet::new();
            for w in chunk {
                let (api, base, w, capacity) = (
                    self.api.clone(),
                    format!("{}/Workers/{w}", self.ws_path),
                    w.clone(),
                    self.capacity as usize,
                );
                set.spawn(async move {
                    let mut problem = None;
                    for attempt in 0..3 {
                        if attempt > 0 {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        let mut counts = [0usize; 3];
                        for (i, s) in ["pending", "accepted", "wrapping"].iter().enumerate() {
                            let url = format!(
                                "{base}/Reservations?ReservationStatus={s}&PageSize=1000"
                            );
                            counts[i] = list_all(&api, &url, "reservations").await?.len();
                        }
                        let ch = get_ok(&api, &format!("{base}/Channels/default")).await?;
                        let [pending, accepted, wrapping] = counts;
                        let held = pending + accepted + wrapping;
                        let assigned = ch.get("assigned_tasks").and_then(Value::as_u64);
                        problem = if held > capacity {
                            Some(("worker over capacity", format!(
                                "{w} holds {held} reservations ({pending} pending, {accepted} accepted, {wrapping} wrapping), capacity {capacity}"
                            )))
                        } else if assigned != Some((accepted + wrapping) as u64) {
                            Some(("channel count disagrees with reservations", format!(
                                "{w}: channel assigned_tasks {assigned:?}, but {accepted} accepted + {wrapping} wrapping reservations"
                            )))
                        } else {
                            None
                        };
                        if problem.is_none() {
                            break;
                        }
                    }
                    anyhow::Ok(problem)
                });
            }
            while let Some(r) = set.join_next().await {
                out.workers += 1;
                if let Some((kind, msg)) = r?? {
                    sh.violation(kind, msg);
                }
            }
        }
        Ok(out)
    }
}

/// Waits until no assignment callback has arrived for 300 ms (at most 10 s), and a little
/// more for the last answers to be applied.
async fn quiesce(shared: &Shared) {
    let until = Instant::now() + Duration::from_secs(10);
    let mut last = lock(&shared.callbacks).total;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = lock(&shared.callbacks).total;
        if now == last {
            break;
        }
        last = now;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time (Howard Hinnant's civil-from-days).
/// Unix seconds as the ISO 8601 date Twilio's `StartDate` takes.
fn iso(unix_secs: i64) -> String {
    taskyard_engine::events::iso8601(unix_secs.saturating_mul(1000))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

// ---------------------------------------------------------------------------------------
// The rounds.

#[allow(clippy::too_many_arguments)]
pub async fn run(
    args: CrashArgs,
    api: &Api,
    server: &ServerCmd,
    listen: &str,
    data_dir: &Path,
    spawned: Option<Spawned>,
    json_out: bool,
) -> anyhow::Result<()> {
    if args.nodes > 1 {
        return cluster::run(args, api, server, data_dir, spawned, json_out).await;
    }
    let Some(mut spawned) = spawned else {
        bail!("crash needs --spawn: it kills and restarts the server itself");
    };
    anyhow::ensure!(
        args.min_secs > 0.0 && args.max_secs >= args.min_secs,
        "need 0 < --min-secs <= --max-secs"
    );
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    eprintln!("crash: seed {seed} (replay the round lengths and samples with --seed {seed})");
    let mut rng = Rng(seed);

    let shared = Arc::new(Shared::default());
    let url = start_receiver(shared.clone()).await?;
    let setup = set_up(api, Some(&url), args.workers, args.capacity).await?;
    // A correct server then never reserves a task twice within the test: nothing rejects,
    // and no reservation can time out.
    api.post(
        &format!("{}/Workflows/{}", setup.ws_path, setup.workflow),
        &[("TaskReservationTimeout", "86400")],
    )
    .await?;
    let ws = api.get(&setup.ws_path).await?;
    let ws_created = ws
        .get("date_created")
        .and_then(Value::as_str)
        .context("workspace without date_created")?
        .to_owned();
    let workers = list_all(
        api,
        &format!("{}/Workers?PageSize=1000", setup.ws_path),
        "workers",
    )
    .await?
    .iter()
    .map(sid_of)
    .collect::<anyhow::Result<Vec<_>>>()?;
    let ctx = Arc::new(Ctx {
        api: api.clone(),
        ws_path: setup.ws_path.clone(),
        workflow: setup.workflow.clone(),
        shared: shared.clone(),
    });
    let mut verifier = Verifier {
        shared: shared.clone(),
        api: api.clone(),
        ws_path: setup.ws_path.clone(),
        capacity: args.capacity,
        workers,
        book: EventBook::default(),
    };

    // Restart: the new process started → healthz 200. Kill to healthy adds the moments the
    // harness spends between the two (joining its loops).
    let mut restarts_us = Vec::new();
    let mut kill_to_healthy_us = Vec::new();
    let mut killed: Option<Instant> = None;
    let mut per_round = Vec::new();
    let mut load_secs = 0.0;
    let mut since = ws_created.clone();
    let mut verify_secs = Vec::new();
    for round in 1..=args.rounds + 1 {
        if round > 1 {
            // Restart on the same data directory and verify what the previous rounds were
            // told.
            let started = Instant::now();
            spawned = server.start(listen, data_dir)?;
            wait_healthy(
                &api.client,
                &api.base,
                Some(&mut spawned),
                Duration::from_secs(120),
            )
            .await?;
            restarts_us.push(started.elapsed().as_micros() as u64);
            if let Some(k) = killed {
                kill_to_healthy_us.push(k.elapsed().as_micros() as u64);
            }
            // The restarted server resends the callbacks of pending reservations, and the
            // answers (accept) change state. Let that settle before reading the state, so
            // that the reads agree with each other.
            quiesce(&shared).await;
            let t = Instant::now();
            let next_since = iso(unix_now() - 10);
            let last = verifier.verify(&since, &mut rng, args.sample).await?;
            since = next_since;
            verify_secs.push(t.elapsed().as_secs_f64());
            eprintln!(
                "  restart {:.0} ms; verified {} acknowledged tasks ({} on the server), {} reservations, {} task reservation lists, {} workers in {:.1} s; violations so far: {}",
                *restarts_us.last().unwrap_or(&0) as f64 / 1000.0,
                last.tasks_checked,
                last.server_tasks,
                verifier.book.reservations(),
                last.task_reservation_lists,
                last.workers,
                t.elapsed().as_secs_f64(),
                shared.violations()
            );
        }
        if round > args.rounds {
            break;
        }
        let secs = args.min_secs + (args.max_secs - args.min_secs) * rng.unit();
        shared.round_created.store(0, Ordering::Relaxed);
        let (stop_tx, stop_rx) = watch::channel(false);
        let loops: Vec<_> = (0..args.connections.max(1))
            .map(|_| tokio::spawn(client_loop(ctx.clone(), stop_rx.clone())))
            .collect();
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        killed = Some(Instant::now());
        spawned.kill();
        let _ = stop_tx.send(true);
        for l in loops {
            l.await?;
        }
        lock(&shared.callbacks).waiters.clear();
        load_secs += secs;
        let created = shared.round_created.load(Ordering::Relaxed);
        per_round.push(created);
        eprintln!(
            "round {round}/{}: SIGKILL after {secs:.2} s of load, {created} tasks created (acknowledged)",
            args.rounds
        );
    }

    // The final verification reads every event again from the workspace's creation: none
    // seen before a crash may be missing.
    let earlier = std::mem::take(&mut verifier.book);
    let t = Instant::now();
    let final_check = verifier.verify(&ws_created, &mut rng, args.sample).await?;
    let lost: Vec<&String> = earlier
        .seen
        .iter()
        .filter(|e| !verifier.book.seen.contains(*e))
        .collect();
    for e in &lost {
        shared.violation(
            "event lost",
            format!("event {e} was read before a crash and is missing now"),
        );
    }
    eprintln!(
        "final verification (every event read again) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    drop(spawned);

    let acked = lock(&shared.acked);
    let mut steps: HashMap<&'static str, usize> = HashMap::new();
    for a in acked.values() {
        let k = match a.step {
            Step::Created => "created",
            Step::Canceled => "canceled",
            Step::Accepted => "accepted",
            Step::Wrapping => "wrapping",
            Step::Completed => "completed",
        };
        *steps.entry(k).or_default() += 1;
    }
    let restart = summarise(restarts_us.clone());
    let kill_to_healthy = summarise(kill_to_healthy_us);
    let violations = shared.violations();
    let accepted_events: usize = verifier.book.accepted.values().map(Vec::len).sum();
    let summary = json!({
        "seed": seed,
        "rounds": args.rounds,
        "connections": args.connections,
        "load_seconds": load_secs,
        "acknowledged_tasks": acked.len(),
        "acknowledged_last_step": steps,
        "tasks_per_round_mean": per_round.iter().sum::<u64>() as f64 / per_round.len().max(1) as f64,
        "tasks_per_round_min": per_round.iter().min().copied().unwrap_or(0),
        "tasks_per_round_max": per_round.iter().max().copied().unwrap_or(0),
        "tasks_verified": final_check.tasks_checked,
        "tasks_on_server": final_check.server_tasks,
        "committed_but_unacknowledged": final_check.unacked_committed,
        "removed_after_finishing": final_check.removed_after_finishing,
        "reservations_checked": verifier.book.reservations(),
        "acceptances_checked": accepted_events,
        "events_read_before_final": earlier.seen.len(),
        "task_reservation_lists_checked": final_check.task_reservation_lists,
        "workers_checked": final_check.workers,
        "assignment_callbacks": lock(&shared.callbacks).total,
        "requests_without_answer": shared.transport_errors.load(Ordering::Relaxed),
        "completions_given_up": shared.gave_up.load(Ordering::Relaxed),
        "restart_p50_ms": restart.p50_ms,
        "restart_max_ms": restart.max_ms,
        "kill_to_healthy_p50_ms": kill_to_healthy.p50_ms,
        "kill_to_healthy_max_ms": kill_to_healthy.max_ms,
        "verify_mean_s": verify_secs.iter().sum::<f64>() / verify_secs.len().max(1) as f64,
        "violations": violations,
        "violations_by_kind": shared.violation_kinds(),
    });
    drop(acked);
    report(json_out, summary)?;
    if violations > 0 {
        bail!("{violations} violations (seed {seed})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_decoded() {
        let body = "TaskSid=WT1&TaskAttributes=%7B%22n%22%3A42%7D&X=a+b%2";
        assert_eq!(form_value(body, "TaskSid").as_deref(), Some("WT1"));
        assert_eq!(
            form_value(body, "TaskAttributes").as_deref(),
            Some(r#"{"n":42}"#)
        );
        assert_eq!(form_value(body, "X").as_deref(), Some("a b%2"));
        assert_eq!(form_value(body, "Y"), None);
    }

    #[test]
    fn every_class_can_reach_its_end() {
        for n in 0..100 {
            let c = Class::of(n);
            let created = allowed(c, Step::Created);
            assert!(created.contains(&"pending") && created.contains(&"reserved"));
        }
    }
}
