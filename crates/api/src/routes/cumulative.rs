//! Cumulative statistics: `…/CumulativeStatistics` of the workspace, a queue, a workflow and
//! the workers, and the `cumulative` half of the combined `…/Statistics` endpoints.
//!
//! The figures are sums of the statistics buckets the store writer keeps (see
//! `taskyard-stats`): a window up to 30 days reads at most 720 hour buckets and the minute
//! buckets at its two ends. Windows count whole minutes.

use std::sync::Arc;

use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use taskyard_engine::{Millis, Sid, Workspace, sid::prefix};
use taskyard_hub::{EventLog, WorkspaceHandle, now_ms};

use taskyard_stats::{ALL_WORKERS, Agg, WORKSPACE, plan};

use super::Ctx;
use crate::error::ApiError;
use crate::render::iso;

/// Twilio's default window.
const DEFAULT_MINUTES: i64 = 15;
/// Statistics go back 30 days at most.
const MAX_MINUTES: i64 = 30 * 24 * 60;

/// What a cumulative request asks for.
#[derive(Debug, Clone)]
pub struct Window {
    pub start_ms: Millis,
    pub end_ms: Millis,
    pub channel: Option<Sid>,
    /// `SplitByWaitTime` thresholds, in seconds.
    pub split: Vec<u32>,
}

impl Window {
    /// `Minutes` (default 15) or `StartDate`, `EndDate`, `TaskChannel` and
    /// `SplitByWaitTime`, checked.
    pub async fn parse(ctx: &Ctx, h: &WorkspaceHandle) -> Result<Window, ApiError> {
        let q = &ctx.query;
        let now = now_ms();
        let date = |name: &str| -> Result<Option<Millis>, ApiError> {
            match q.str(name) {
                None => Ok(None),
                Some(s) => crate::render::parse_iso(s).map(Some).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "{name} '{s}' is not an ISO 8601 date-time (for example 2024-01-02T03:04:05Z)"
                    ))
                }),
            }
        };
        let end_ms = date("EndDate")?.unwrap_or(now).min(now);
        let start_ms = match date("StartDate")? {
            Some(s) => s,
            None => {
                let minutes = match q.int::<i64>("Minutes")? {
                    None => DEFAULT_MINUTES,
                    Some(m) if (1..=MAX_MINUTES).contains(&m) => m,
                    Some(_) => {
                        return Err(ApiError::invalid(format!(
                            "Minutes must be between 1 and {MAX_MINUTES}"
                        )));
                    }
                };
                end_ms - minutes * 60_000
            }
        };
        if start_ms < now - MAX_MINUTES * 60_000 - 60_000 {
            return Err(ApiError::invalid(
                "StartDate must be within the last 30 days (Twilio error 14241)",
            ));
        }
        if start_ms > end_ms {
            return Err(ApiError::invalid("StartDate must be before EndDate"));
        }
        let channel = match q.str("TaskChannel") {
            None => None,
            Some(key) => {
                let k = key.to_string();
                let found = ctx
                    .read(h, move |ws| ws.find_task_channel(&k).map(|c| c.sid))
                    .await?;
                Some(found.ok_or_else(|| {
                    ApiError::invalid(format!(
                        "TaskChannel '{key}' does not exist in this workspace"
                    ))
                })?)
            }
        };
        let mut split = Vec::new();
        if let Some(s) = q.str("SplitByWaitTime") {
            for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let n: u32 = part.parse().map_err(|_| {
                    ApiError::invalid(format!(
                        "SplitByWaitTime must be a comma-separated list of whole seconds, not '{s}'"
                    ))
                })?;
                split.push(n);
            }
            split.sort_unstable();
            split.dedup();
        }
        Ok(Window {
            start_ms,
            end_ms,
            channel,
            split,
        })
    }
}

/// The sum of some scopes' buckets over the window, of the window's channel if it has one
/// (activity durations have no channel: workers' are always counted).
pub async fn sum(
    log: Arc<dyn EventLog>,
    workspace: Sid,
    scopes: Vec<String>,
    w: &Window,
) -> Result<Agg, ApiError> {
    let (start, end, channel) = (w.start_ms, w.end_ms, w.channel);
    let summed = tokio::task::spawn_blocking(move || {
        let mut total = Agg::default();
        for scope in &scopes {
            for (span, first, last) in plan(start, end) {
                // Every channel is read; with a channel asked for, only its buckets count,
                // and the channel-less ones (workers' activity durations) always do.
                for b in log.stat_buckets(workspace, scope, span, first, last, None)? {
                    if channel.is_none() || b.channel.is_none() || b.channel == channel {
                        total.merge(&Agg::from_json(&b.body));
                    }
                }
            }
        }
        Ok::<_, taskyard_hub::StoreError>(total)
    })
    .await;
    match summed {
        Ok(Ok(a)) => Ok(a),
        Ok(Err(e)) => Err(internal(&e)),
        Err(e) => Err(internal(&e)),
    }
}

fn internal(e: &dyn std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "reading statistics failed");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        crate::error::code::INTERNAL,
        "Internal error: statistics could not be read",
    )
}

#[derive(Serialize)]
struct Seconds {
    avg: i64,
    min: i64,
    max: i64,
    total: i64,
}

fn seconds(d: &taskyard_stats::Durations) -> Seconds {
    let (avg, min, max, total) = d.seconds();
    Seconds {
        avg,
        min,
        max,
        total,
    }
}

/// Which task counters a scope shows (Twilio's lists differ per endpoint).
#[derive(Clone, Copy)]
pub enum Tasks {
    Workspace,
    Queue,
    Workflow,
}

/// The fields of a `…/CumulativeStatistics` document, without the identifying ones.
pub fn cumulative_fields(a: &Agg, w: &Window, tasks: Tasks) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("start_time".into(), iso(w.start_ms).into());
    m.insert("end_time".into(), iso(w.end_ms).into());
    m.insert(
        "avg_task_acceptance_time".into(),
        a.wait_until_accepted.seconds().0.into(),
    );
    reservations(&mut m, a);
    m.insert(
        "wait_duration_until_accepted".into(),
        json!(seconds(&a.wait_until_accepted)),
    );
    m.insert(
        "wait_duration_until_canceled".into(),
        json!(seconds(&a.wait_until_canceled)),
    );
    m.insert("split_by_wait_time".into(), split(a, &w.split));
    m.insert("tasks_canceled".into(), a.tasks_canceled.into());
    m.insert("tasks_completed".into(), a.tasks_completed.into());
    m.insert("tasks_deleted".into(), a.tasks_deleted.into());
    m.insert("tasks_moved".into(), a.tasks_moved.into());
    match tasks {
        Tasks::Workspace => {
            m.insert("tasks_created".into(), a.tasks_created.into());
            m.insert(
                "tasks_timed_out_in_workflow".into(),
                a.tasks_timed_out_in_workflow.into(),
            );
        }
        Tasks::Queue => {
            m.insert("tasks_entered".into(), a.tasks_entered.into());
            m.insert(
                "wait_duration_in_queue_until_accepted".into(),
                json!(seconds(&a.wait_in_queue_until_accepted)),
            );
        }
        Tasks::Workflow => {
            m.insert("tasks_entered".into(), a.tasks_entered.into());
            m.insert(
                "tasks_timed_out_in_workflow".into(),
                a.tasks_timed_out_in_workflow.into(),
            );
        }
    }
    m
}

fn reservations(m: &mut Map<String, Value>, a: &Agg) {
    m.insert("reservations_created".into(), a.reservations_created.into());
    m.insert(
        "reservations_accepted".into(),
        a.reservations_accepted.into(),
    );
    m.insert(
        "reservations_rejected".into(),
        a.reservations_rejected.into(),
    );
    m.insert(
        "reservations_timed_out".into(),
        a.reservations_timed_out.into(),
    );
    m.insert(
        "reservations_canceled".into(),
        a.reservations_canceled.into(),
    );
    m.insert(
        "reservations_rescinded".into(),
        a.reservations_rescinded.into(),
    );
}

/// `{"<seconds>": {"above": {...}, "below": {...}}}`; `null` when no thresholds were asked.
fn split(a: &Agg, thresholds: &[u32]) -> Value {
    if thresholds.is_empty() {
        return Value::Null;
    }
    let mut out = Map::new();
    for &t in thresholds {
        let (canceled_below, canceled_above) = Agg::split(&a.canceled_after, t);
        let (accepted_below, accepted_above) = Agg::split(&a.accepted_after, t);
        out.insert(
            t.to_string(),
            json!({
                "above": {"tasks_canceled": canceled_above, "reservations_accepted": accepted_above},
                "below": {"tasks_canceled": canceled_below, "reservations_accepted": accepted_below},
            }),
        );
    }
    Value::Object(out)
}

/// The cumulative fields of worker statistics: reservations and activity durations (every
/// activity of the workspace, in creation order, zero when unused).
pub fn worker_fields(
    a: &Agg,
    later: &BTreeMap<String, taskyard_stats::Durations>,
    w: &Window,
    activities: &[(Sid, String)],
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("start_time".into(), iso(w.start_ms).into());
    m.insert("end_time".into(), iso(w.end_ms).into());
    reservations(&mut m, a);
    // Periods that began before the window count from its first whole minute on.
    let mut spent =
        a.activity_durations(w.start_ms - w.start_ms.rem_euclid(taskyard_stats::MINUTE_MS));
    for (activity, d) in later {
        spent.entry(activity.clone()).or_default().merge(d);
    }
    let durations: Vec<Value> = activities
        .iter()
        .map(|(sid, name)| {
            let d = spent.get(&sid.to_string()).copied().unwrap_or_default();
            let s = seconds(&d);
            json!({"sid": sid, "friendly_name": name, "avg": s.avg, "min": s.min, "max": s.max, "total": s.total})
        })
        .collect();
    m.insert("activity_durations".into(), durations.into());
    m
}

/// Activity periods that overlap the window but ended after it (a window that ends in the
/// past): read from the buckets between the window's end and now, and clipped to the window.
pub async fn periods_after(
    log: Arc<dyn EventLog>,
    workspace: Sid,
    scopes: Vec<String>,
    w: &Window,
) -> Result<BTreeMap<String, taskyard_stats::Durations>, ApiError> {
    use taskyard_stats::MINUTE_MS;
    let start = w.start_ms - w.start_ms.rem_euclid(MINUTE_MS);
    let end = w.end_ms - w.end_ms.rem_euclid(MINUTE_MS) + MINUTE_MS;
    let now = now_ms();
    if end > now {
        return Ok(BTreeMap::new());
    }
    let only_workers: Vec<String> = scopes
        .into_iter()
        .filter(|s| s == ALL_WORKERS || s.starts_with(prefix::WORKER))
        .collect();
    let later = Window {
        start_ms: end,
        end_ms: now,
        channel: None,
        split: Vec::new(),
    };
    let a = sum(log, workspace, only_workers, &later).await?;
    Ok(a.activity_until(start, end))
}

/// Each worker's current activity and since when: `workers` (all when `None`).
pub fn current_activities(ws: &Workspace, workers: Option<&[Sid]>) -> Vec<(Sid, Millis)> {
    let of = |w: &taskyard_engine::Worker| (w.activity_sid, w.date_status_changed);
    match workers {
        None => ws.workers().values().map(of).collect(),
        Some(set) => set
            .iter()
            .filter_map(|s| ws.workers().get(s))
            .map(of)
            .collect(),
    }
}

/// Adds the activity periods still going on (the buckets only hold periods that ended),
/// each clipped to the window.
pub fn add_ongoing(a: &mut Agg, current: &[(Sid, Millis)], w: &Window) {
    for &(activity, since) in current {
        let overlap = w.end_ms.min(now_ms()) - since.max(w.start_ms);
        if overlap > 0 {
            a.activities
                .entry(activity.to_string())
                .or_default()
                .merge(&taskyard_stats::Durations::of(overlap));
        }
    }
}

/// The workspace's activities, in creation order.
pub fn activities(ws: &Workspace) -> Vec<(Sid, String)> {
    ws.activities()
        .values()
        .map(|a| (a.sid, a.friendly_name.to_string()))
        .collect()
}

/// `{account_sid, workspace_sid, <id fields>, url, …fields}`.
pub fn document(
    account: Sid,
    workspace: Sid,
    ids: &[(&str, Sid)],
    url: String,
    fields: Map<String, Value>,
) -> Value {
    let mut m = Map::new();
    m.insert("account_sid".into(), account.to_string().into());
    m.insert("workspace_sid".into(), workspace.to_string().into());
    for (k, v) in ids {
        m.insert((*k).into(), v.to_string().into());
    }
    m.insert("url".into(), url.into());
    m.extend(fields);
    Value::Object(m)
}

/// The scope of the workspace's figures.
pub fn workspace_scope() -> Vec<String> {
    vec![WORKSPACE.to_string()]
}

// ----- handlers ------------------------------------------------------------------------------

use axum::extract::Path;
use axum::response::Response;

use super::json as respond;

/// `GET …/CumulativeStatistics`.
pub async fn workspace(ctx: Ctx, Path(ws): Path<String>) -> Result<Response, ApiError> {
    let h = ctx.workspace(&ws)?;
    let w = Window::parse(&ctx, &h).await?;
    let a = sum(ctx.app.hub.events(), h.sid, workspace_scope(), &w).await?;
    let url = format!("{}/CumulativeStatistics", ctx.app.urls.workspace(h.sid));
    let doc = document(
        h.account_sid,
        h.sid,
        &[],
        url,
        cumulative_fields(&a, &w, Tasks::Workspace),
    );
    Ok(respond(StatusCode::OK, doc.to_string()))
}

/// `GET …/TaskQueues/{Sid}/CumulativeStatistics`.
pub async fn task_queue(
    ctx: Ctx,
    Path((ws, queue)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let h = ctx.workspace(&ws)?;
    let q = ctx.path_sid(&queue, prefix::TASK_QUEUE)?;
    if !ctx
        .read(&h, move |w| w.task_queues().contains_key(&q))
        .await?
    {
        return Err(ctx.not_found());
    }
    let w = Window::parse(&ctx, &h).await?;
    let a = sum(ctx.app.hub.events(), h.sid, vec![q.to_string()], &w).await?;
    let url = format!(
        "{}/TaskQueues/{q}/CumulativeStatistics",
        ctx.app.urls.workspace(h.sid)
    );
    let doc = document(
        h.account_sid,
        h.sid,
        &[("task_queue_sid", q)],
        url,
        cumulative_fields(&a, &w, Tasks::Queue),
    );
    Ok(respond(StatusCode::OK, doc.to_string()))
}

/// `GET …/Workflows/{Sid}/CumulativeStatistics`.
pub async fn workflow(
    ctx: Ctx,
    Path((ws, flow)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let h = ctx.workspace(&ws)?;
    let f = ctx.path_sid(&flow, prefix::WORKFLOW)?;
    if !ctx
        .read(&h, move |w| w.workflows().contains_key(&f))
        .await?
    {
        return Err(ctx.not_found());
    }
    let w = Window::parse(&ctx, &h).await?;
    let a = sum(ctx.app.hub.events(), h.sid, vec![f.to_string()], &w).await?;
    let url = format!(
        "{}/Workflows/{f}/CumulativeStatistics",
        ctx.app.urls.workspace(h.sid)
    );
    let doc = document(
        h.account_sid,
        h.sid,
        &[("workflow_sid", f)],
        url,
        cumulative_fields(&a, &w, Tasks::Workflow),
    );
    Ok(respond(StatusCode::OK, doc.to_string()))
}

/// `GET …/Workers/CumulativeStatistics`: every worker's reservations and activity durations.
pub async fn workers(ctx: Ctx, Path(ws): Path<String>) -> Result<Response, ApiError> {
    let h = ctx.workspace(&ws)?;
    let w = Window::parse(&ctx, &h).await?;
    let (acts, current) = ctx
        .read(&h, |ws| (activities(ws), current_activities(ws, None)))
        .await?;
    let scopes = vec![WORKSPACE.to_string(), ALL_WORKERS.to_string()];
    let later = periods_after(ctx.app.hub.events(), h.sid, scopes.clone(), &w).await?;
    let mut a = sum(ctx.app.hub.events(), h.sid, scopes, &w).await?;
    add_ongoing(&mut a, &current, &w);
    let url = format!(
        "{}/Workers/CumulativeStatistics",
        ctx.app.urls.workspace(h.sid)
    );
    let fields = worker_fields(&a, &later, &w, &acts);
    let doc = document(h.account_sid, h.sid, &[], url, fields);
    Ok(respond(StatusCode::OK, doc.to_string()))
}

/// `GET …/Workers/{Sid}/Statistics`: one worker's reservations and activity durations
/// (Twilio's document has only the `cumulative` part).
pub async fn worker(
    ctx: Ctx,
    Path((ws, worker)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let h = ctx.workspace(&ws)?;
    let k = ctx.path_sid(&worker, prefix::WORKER)?;
    let (acts, current) = ctx
        .read(&h, move |w| {
            w.workers()
                .contains_key(&k)
                .then(|| (activities(w), current_activities(w, Some(&[k]))))
        })
        .await?
        .ok_or_else(|| ctx.not_found())?;
    let w = Window::parse(&ctx, &h).await?;
    let later = periods_after(ctx.app.hub.events(), h.sid, vec![k.to_string()], &w).await?;
    let mut a = sum(ctx.app.hub.events(), h.sid, vec![k.to_string()], &w).await?;
    add_ongoing(&mut a, &current, &w);
    let url = format!("{}/Workers/{k}/Statistics", ctx.app.urls.workspace(h.sid));
    let mut fields = Map::new();
    fields.insert(
        "cumulative".into(),
        Value::Object(worker_fields(&a, &later, &w, &acts)),
    );
    let doc = document(h.account_sid, h.sid, &[("worker_sid", k)], url, fields);
    Ok(respond(StatusCode::OK, doc.to_string()))
}
