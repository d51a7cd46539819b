//! Real-time statistics: `…/RealTimeStatistics` of the workspace, a queue, a workflow and
//! the workers, the bulk `POST …/TaskQueues/RealTimeStatistics`, and the `realtime` half of
//! the combined `…/Statistics` endpoints.
//!
//! The figures come from the engine ([`Workspace::realtime`]) inside the workspace's actor,
//! so they are exact at the moment of the request; the response is rendered there too. No
//! worker-count cap, no rate limit. Field sets follow Twilio's per endpoint (reference §8).

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};
use taskyard_engine::{Millis, RealTime, Sid, StatsScope, Waiting, Workspace, sid::prefix};
use taskyard_hub::now_ms;

use super::{Ctx, json};
use crate::error::ApiError;
use crate::params::Params;
use crate::render::Urls;

/// Most queues one bulk request may name (Twilio's limit).
pub const MAX_BULK_QUEUES: usize = 50;

// ----- the field sets of each endpoint --------------------------------------------------------

const WORKSPACE_FIELDS: &[&str] = &[
    "activity_statistics",
    "longest_task_waiting_age",
    "longest_task_waiting_sid",
    "tasks_by_priority",
    "tasks_by_status",
    "total_tasks",
    "total_workers",
];
const WORKSPACE_EMBEDDED: &[&str] = &[
    "activity_statistics",
    "longest_task_waiting_age",
    "longest_task_waiting_sid",
    "tasks_by_status",
    "total_tasks",
    "total_workers",
];
const QUEUE_FIELDS: &[&str] = &[
    "activity_statistics",
    "longest_task_waiting_age",
    "longest_task_waiting_sid",
    "longest_relative_task_age_in_queue",
    "longest_relative_task_sid_in_queue",
    "tasks_by_priority",
    "tasks_by_status",
    "total_available_workers",
    "total_eligible_workers",
    "total_tasks",
];
const QUEUE_EMBEDDED: &[&str] = &[
    "activity_statistics",
    "longest_task_waiting_age",
    "longest_task_waiting_sid",
    "tasks_by_status",
    "total_available_workers",
    "total_eligible_workers",
    "total_tasks",
];
const QUEUE_BULK: &[&str] = &[
    "longest_task_waiting_age",
    "longest_task_waiting_sid",
    "total_tasks",
    "total_eligible_workers",
    "total_available_workers",
    "tasks_by_status",
    "tasks_by_priority",
    "activity_statistics",
];
const WORKERS_FIELDS: &[&str] = &["total_workers", "activity_statistics"];
const WORKFLOW_FIELDS: &[&str] = &[
    "longest_task_waiting_age",
    "longest_task_waiting_sid",
    "tasks_by_priority",
    "tasks_by_status",
    "total_tasks",
];
const WORKFLOW_EMBEDDED: &[&str] = &[
    "longest_task_waiting_age",
    "longest_task_waiting_sid",
    "tasks_by_status",
    "total_tasks",
];

fn waiting_sid(w: Option<Waiting>) -> Value {
    w.map_or(Value::Null, |w| Value::String(w.sid.to_string()))
}

fn waiting_age(w: Option<Waiting>) -> Value {
    w.map_or(0, |w| w.age).into()
}

/// One field of a statistics document, by its Twilio name.
fn field(rt: &RealTime, name: &str) -> Value {
    match name {
        "activity_statistics" => rt
            .activity_statistics
            .iter()
            .map(
                |a| json!({"sid": a.sid, "friendly_name": &*a.friendly_name, "workers": a.workers}),
            )
            .collect::<Vec<_>>()
            .into(),
        "longest_task_waiting_age" => waiting_age(rt.longest_task_waiting),
        "longest_task_waiting_sid" => waiting_sid(rt.longest_task_waiting),
        "longest_relative_task_age_in_queue" => waiting_age(rt.longest_relative_task_in_queue),
        "longest_relative_task_sid_in_queue" => waiting_sid(rt.longest_relative_task_in_queue),
        "tasks_by_priority" => Value::Object(
            rt.tasks_by_priority
                .iter()
                .map(|(p, n)| (p.to_string(), Value::from(*n)))
                .collect(),
        ),
        "tasks_by_status" => {
            let s = rt.tasks_by_status;
            json!({"pending": s.pending, "reserved": s.reserved, "assigned": s.assigned, "wrapping": s.wrapping})
        }
        "total_tasks" => rt.total_tasks.into(),
        "total_workers" => rt.total_workers.into(),
        "total_eligible_workers" => rt.total_eligible_workers.into(),
        "total_available_workers" => rt.total_available_workers.into(),
        _ => Value::Null,
    }
}

fn fields(rt: &RealTime, names: &[&str]) -> Map<String, Value> {
    names
        .iter()
        .map(|n| ((*n).to_string(), field(rt, n)))
        .collect()
}

/// The field set of a scope: the `…/RealTimeStatistics` resource, or the `realtime` object
/// of the combined `…/Statistics` resource.
fn field_set(scope: StatsScope, embedded: bool) -> &'static [&'static str] {
    match (scope, embedded) {
        (StatsScope::Workspace, false) => WORKSPACE_FIELDS,
        (StatsScope::Workspace, true) => WORKSPACE_EMBEDDED,
        (StatsScope::Workers, _) => WORKERS_FIELDS,
        (StatsScope::TaskQueue(_), false) => QUEUE_FIELDS,
        (StatsScope::TaskQueue(_), true) => QUEUE_EMBEDDED,
        (StatsScope::Workflow(_), false) => WORKFLOW_FIELDS,
        (StatsScope::Workflow(_), true) => WORKFLOW_EMBEDDED,
    }
}

// ----- rendering, for these handlers and the combined `…/Statistics` ones ------------------

/// A `TaskChannel` parameter (SID or unique name) of this workspace; an unknown one is a 400.
pub(crate) fn task_channel(ws: &Workspace, key: Option<&str>) -> Result<Option<Sid>, ApiError> {
    match key {
        None => Ok(None),
        Some(k) => ws.find_task_channel(k).map(|c| Some(c.sid)).ok_or_else(|| {
            ApiError::invalid(format!(
                "TaskChannel '{k}' does not exist in this workspace"
            ))
        }),
    }
}

/// The URL of a scope's `…/RealTimeStatistics` resource.
fn url(urls: &Urls, ws: Sid, scope: StatsScope) -> String {
    let base = urls.workspace(ws);
    match scope {
        StatsScope::Workspace => format!("{base}/RealTimeStatistics"),
        StatsScope::Workers => format!("{base}/Workers/RealTimeStatistics"),
        StatsScope::TaskQueue(q) => format!("{base}/TaskQueues/{q}/RealTimeStatistics"),
        StatsScope::Workflow(w) => format!("{base}/Workflows/{w}/RealTimeStatistics"),
    }
}

/// The whole `…/RealTimeStatistics` resource of a scope: `account_sid`, `workspace_sid`,
/// `task_queue_sid` or `workflow_sid`, `url` and the scope's fields.
pub(crate) fn realtime_resource(
    ws: &Workspace,
    urls: &Urls,
    scope: StatsScope,
    channel: Option<Sid>,
    now: Millis,
) -> Value {
    let rt = ws.realtime(scope, channel, now);
    let mut m = Map::new();
    m.insert("account_sid".into(), json!(ws.info().account_sid));
    m.insert("workspace_sid".into(), json!(ws.sid()));
    match scope {
        StatsScope::TaskQueue(q) => {
            m.insert("task_queue_sid".into(), json!(q));
        }
        StatsScope::Workflow(w) => {
            m.insert("workflow_sid".into(), json!(w));
        }
        StatsScope::Workspace | StatsScope::Workers => {}
    }
    m.insert("url".into(), url(urls, ws.sid(), scope).into());
    m.extend(fields(&rt, field_set(scope, false)));
    Value::Object(m)
}

/// The `realtime` object of a scope's combined `…/Statistics` resource (Twilio's subset:
/// no `tasks_by_priority`, no relative queue ages). `urls` is unused (the object has no
/// URL of its own); it is taken for symmetry with [`realtime_resource`].
pub(crate) fn realtime_embedded(
    ws: &Workspace,
    _urls: &Urls,
    scope: StatsScope,
    channel: Option<Sid>,
    now: Millis,
) -> Value {
    let rt = ws.realtime(scope, channel, now);
    Value::Object(fields(&rt, field_set(scope, true)))
}

/// The `realtime` objects of many queues' combined statistics (`…/TaskQueues/Statistics`),
/// in the order given, computed in one pass over the tasks and workers.
pub(crate) fn realtime_embedded_queues(
    ws: &Workspace,
    queues: &[Sid],
    channel: Option<Sid>,
    now: Millis,
) -> Vec<Value> {
    ws.realtime_queues(queues, channel, now)
        .iter()
        .map(|rt| Value::Object(fields(rt, QUEUE_EMBEDDED)))
        .collect()
}

/// The bulk resource: `task_queue_data` (one entry per queue, in the order given) and
/// `task_queue_response_count`.
pub(crate) fn bulk_resource(
    ws: &Workspace,
    urls: &Urls,
    queues: &[Sid],
    channel: Option<Sid>,
    now: Millis,
) -> Value {
    let data: Vec<Value> = ws
        .realtime_queues(queues, channel, now)
        .iter()
        .zip(queues)
        .map(|(rt, q)| {
            let mut m = Map::new();
            m.insert("task_queue_sid".into(), json!(q));
            m.extend(fields(rt, QUEUE_BULK));
            Value::Object(m)
        })
        .collect();
    json!({
        "account_sid": ws.info().account_sid,
        "workspace_sid": ws.sid(),
        "url": format!("{}/TaskQueues/RealTimeStatistics", urls.workspace(ws.sid())),
        "task_queue_response_count": data.len(),
        "task_queue_data": data,
    })
}

// ----- handlers ------------------------------------------------------------------------------

/// Renders one scope's resource in the workspace's actor; `scope` answers `None` (a 404)
/// when the queue or workflow of the path does not exist.
async fn respond(
    ctx: Ctx,
    ws: &str,
    scope: impl FnOnce(&Workspace) -> Option<StatsScope> + Send + 'static,
) -> Result<Response, ApiError> {
    let h = ctx.workspace(ws)?;
    let urls = ctx.app.urls.clone();
    let channel = ctx.query.string("TaskChannel");
    let not_found = ctx.not_found();
    let body = ctx
        .read(&h, move |ws| {
            let scope = scope(ws).ok_or(not_found)?;
            let channel = task_channel(ws, channel.as_deref())?;
            Ok::<_, ApiError>(realtime_resource(ws, &urls, scope, channel, now_ms()).to_string())
        })
        .await??;
    Ok(json(StatusCode::OK, body))
}

/// `GET …/RealTimeStatistics`.
pub async fn workspace(ctx: Ctx, Path(ws): Path<String>) -> Result<Response, ApiError> {
    respond(ctx, &ws, |_| Some(StatsScope::Workspace)).await
}

/// `GET …/Workers/RealTimeStatistics`.
pub async fn workers(ctx: Ctx, Path(ws): Path<String>) -> Result<Response, ApiError> {
    respond(ctx, &ws, |_| Some(StatsScope::Workers)).await
}

/// `GET …/TaskQueues/{Sid}/RealTimeStatistics`.
pub async fn task_queue(
    ctx: Ctx,
    Path((ws, sid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let q = ctx.path_sid(&sid, prefix::TASK_QUEUE)?;
    respond(ctx, &ws, move |ws| {
        ws.task_queues()
            .contains_key(&q)
            .then_some(StatsScope::TaskQueue(q))
    })
    .await
}

/// `GET …/Workflows/{Sid}/RealTimeStatistics`.
pub async fn workflow(
    ctx: Ctx,
    Path((ws, sid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let w = ctx.path_sid(&sid, prefix::WORKFLOW)?;
    respond(ctx, &ws, move |ws| {
        ws.workflows()
            .contains_key(&w)
            .then_some(StatsScope::Workflow(w))
    })
    .await
}

/// `POST …/TaskQueues/RealTimeStatistics`: the real-time statistics of 1 to 50 queues.
///
/// The body is JSON, `{"QueueSids": ["WQ…", …]}` (`queueSids` is accepted too, as Twilio's
/// documentation spells it), or a form with `QueueSids` repeated. A SID of a queue this
/// workspace does not have is answered with all-zero figures; a repeated SID once.
/// `TaskChannel` may be given in the query string or the body.
pub async fn bulk(
    ctx: Ctx,
    Path(ws): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let h = ctx.workspace(&ws)?;
    let (sids, body_channel) = bulk_body(&headers, &body)?;
    if sids.is_empty() || sids.len() > MAX_BULK_QUEUES {
        return Err(ApiError::invalid(format!(
            "QueueSids must list between 1 and {MAX_BULK_QUEUES} TaskQueue SIDs ({} given)",
            sids.len()
        )));
    }
    let mut queues: Vec<Sid> = Vec::with_capacity(sids.len());
    for s in &sids {
        let q = Sid::parse_with(s, prefix::TASK_QUEUE).map_err(|_| {
            ApiError::invalid(format!(
                "QueueSids: '{s}' is not a TaskQueue SID (WQ followed by 32 hex digits)"
            ))
        })?;
        if !queues.contains(&q) {
            queues.push(q);
        }
    }
    let channel = body_channel.or_else(|| ctx.query.string("TaskChannel"));
    let urls = ctx.app.urls.clone();
    let body = ctx
        .read(&h, move |ws| {
            let channel = task_channel(ws, channel.as_deref())?;
            Ok::<_, ApiError>(bulk_resource(ws, &urls, &queues, channel, now_ms()).to_string())
        })
        .await??;
    Ok(json(StatusCode::OK, body))
}

/// The queue SIDs and the `TaskChannel` of a bulk request body (JSON or form).
fn bulk_body(headers: &HeaderMap, body: &[u8]) -> Result<(Vec<String>, Option<String>), ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"))
        || body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if !is_json {
        let p = Params::parse(body);
        return Ok((p.list("QueueSids"), p.string("TaskChannel")));
    }
    let bad = || {
        ApiError::invalid(
            "The body must be a JSON object such as {\"QueueSids\": [\"WQ…\"]} with 1 to 50 TaskQueue SIDs",
        )
    };
    let v: Value = serde_json::from_slice(body).map_err(|_| bad())?;
    let obj = v.as_object().ok_or_else(bad)?;
    let list = obj
        .get("QueueSids")
        .or_else(|| obj.get("queueSids"))
        .unwrap_or(&Value::Null);
    let sids = match list {
        Value::Null => Vec::new(),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or_else(bad))
            .collect::<Result<_, _>>()?,
        _ => return Err(bad()),
    };
    let channel = match obj.get("TaskChannel").or_else(|| obj.get("taskChannel")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ApiError::invalid("TaskChannel must be a string")),
    };
    Ok((sids, channel))
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskyard_engine::{CountingSids, NewWorkspace};

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        k.sort_unstable();
        k
    }

    fn sorted(mut k: Vec<&str>) -> Vec<&str> {
        k.sort_unstable();
        k
    }

    /// The `realtime` objects of the combined endpoints carry Twilio's subsets (§8 of the
    /// reference): no `tasks_by_priority`, no relative queue ages, no identifiers or URL.
    #[test]
    fn embedded_objects_carry_twilios_subsets() {
        let (ws, _) = Workspace::create(
            Sid::new("AC", 1),
            NewWorkspace {
                friendly_name: "W".into(),
                ..Default::default()
            },
            1_700_000_000_000,
            &mut CountingSids(0),
        )
        .expect("workspace");
        let urls = Urls {
            base: "http://x".into(),
        };
        let now = 1_700_000_000_000;
        let q = Sid::new("WQ", 1);
        let w = Sid::new("WW", 1);
        let embedded = |scope| realtime_embedded(&ws, &urls, scope, None, now);
        assert_eq!(
            keys(&embedded(StatsScope::Workspace)),
            sorted(vec![
                "activity_statistics",
                "longest_task_waiting_age",
                "longest_task_waiting_sid",
                "tasks_by_status",
                "total_tasks",
                "total_workers"
            ])
        );
        let queue = sorted(vec![
            "activity_statistics",
            "longest_task_waiting_age",
            "longest_task_waiting_sid",
            "tasks_by_status",
            "total_available_workers",
            "total_eligible_workers",
            "total_tasks",
        ]);
        assert_eq!(keys(&embedded(StatsScope::TaskQueue(q))), queue);
        let many = realtime_embedded_queues(&ws, &[q, q], None, now);
        assert_eq!(many.len(), 2);
        assert!(many.iter().all(|m| keys(m) == queue));
        assert_eq!(
            keys(&embedded(StatsScope::Workers)),
            sorted(vec!["activity_statistics", "total_workers"])
        );
        assert_eq!(
            keys(&embedded(StatsScope::Workflow(w))),
            sorted(vec![
                "longest_task_waiting_age",
                "longest_task_waiting_sid",
                "tasks_by_status",
                "total_tasks"
            ])
        );
        // Empty figures: a null SID, age 0, every activity with 0 workers.
        let v = embedded(StatsScope::TaskQueue(q));
        assert_eq!(v["longest_task_waiting_sid"], Value::Null);
        assert_eq!(v["longest_task_waiting_age"], 0);
        assert_eq!(
            v["activity_statistics"].as_array().map(Vec::len),
            Some(ws.activities().len())
        );
        assert_eq!(
            v["tasks_by_status"],
            json!({"pending": 0, "reserved": 0, "assigned": 0, "wrapping": 0})
        );
    }
}
