//! The combined `…/Statistics` resources: `{cumulative: {…}, realtime: {…}}` of the
//! workspace, a queue (one, or the paged list), a workflow, and the workers (optionally
//! only those of a queue or with a name).
//!
//! The `cumulative` objects carry every cumulative field of their scope (Twilio's examples
//! show subsets; more fields surprise no client), the `realtime` ones Twilio's subsets.

use std::collections::BTreeMap;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};
use taskyard_engine::{Sid, StatsScope, Workspace, sid::prefix};
use taskyard_stats::{ALL_WORKERS, WORKSPACE};

use super::cumulative::{
    Tasks, Window, activities, add_ongoing, cumulative_fields, current_activities, periods_after,
    sum, worker_fields,
};
use super::statistics::{realtime_embedded, realtime_embedded_queues};
use super::{Ctx, json as respond};
use crate::error::ApiError;
use crate::paging::envelope;

fn combined(ids: Map<String, Value>, cumulative: Map<String, Value>, realtime: Value) -> Value {
    let mut m = ids;
    m.insert("cumulative".into(), Value::Object(cumulative));
    m.insert("realtime".into(), realtime);
    Value::Object(m)
}

fn ids(
    account: Sid,
    workspace: Sid,
    more: &[(&str, Sid)],
    url: Option<String>,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("account_sid".into(), json!(account));
    m.insert("workspace_sid".into(), json!(workspace));
    for (k, v) in more {
        m.insert((*k).into(), json!(v));
    }
    if let Some(url) = url {
        m.insert("url".into(), url.into());
    }
    m
}

/// `GET …/Statistics`.
pub async fn workspace(ctx: Ctx, Path(ws): Path<String>) -> Result<Response, ApiError> {
    let h = ctx.workspace(&ws)?;
    let w = Window::parse(&ctx, &h).await?;
    let a = sum(ctx.app.hub.events(), h.sid, vec![WORKSPACE.into()], &w).await?;
    let (urls, channel) = (ctx.app.urls.clone(), w.channel);
    let realtime = ctx
        .read(&h, move |ws| {
            realtime_embedded(
                ws,
                &urls,
                StatsScope::Workspace,
                channel,
                taskyard_hub::now_ms(),
            )
        })
        .await?;
    let url = format!("{}/Statistics", ctx.app.urls.workspace(h.sid));
    let doc = combined(
        ids(h.account_sid, h.sid, &[], Some(url)),
        cumulative_fields(&a, &w, Tasks::Workspace),
        realtime,
    );
    Ok(respond(StatusCode::OK, doc.to_string()))
}

/// `GET …/TaskQueues/{Sid}/Statistics`.
pub async fn task_queue(
    ctx: Ctx,
    Path((ws, queue)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let h = ctx.workspace(&ws)?;
    let q = ctx.path_sid(&queue, prefix::TASK_QUEUE)?;
    let w = Window::parse(&ctx, &h).await?;
    let (urls, channel) = (ctx.app.urls.clone(), w.channel);
    let realtime = ctx
        .read(&h, move |ws| {
            ws.task_queues().contains_key(&q).then(|| {
                realtime_embedded(
                    ws,
                    &urls,
                    StatsScope::TaskQueue(q),
                    channel,
                    taskyard_hub::now_ms(),
                )
            })
        })
        .await?
        .ok_or_else(|| ctx.not_found())?;
    let a = sum(ctx.app.hub.events(), h.sid, vec![q.to_string()], &w).await?;
    let url = format!(
        "{}/TaskQueues/{q}/Statistics",
        ctx.app.urls.workspace(h.sid)
    );
    let doc = combined(
        ids(h.account_sid, h.sid, &[("task_queue_sid", q)], Some(url)),
        cumulative_fields(&a, &w, Tasks::Queue),
        realtime,
    );
    Ok(respond(StatusCode::OK, doc.to_string()))
}

/// `GET …/TaskQueues/Statistics`: every queue (or those named `FriendlyName`), paged.
pub async fn task_queues(ctx: Ctx, Path(ws): Path<String>) -> Result<Response, ApiError> {
    let h = ctx.workspace(&ws)?;
    let page = ctx.page()?;
    let w = Window::parse(&ctx, &h).await?;
    let name = ctx.query.string("FriendlyName");
    let channel = w.channel;
    // Every matching queue's realtime figures in one pass, keyed by SID for paging.
    let all: BTreeMap<Sid, (Sid, Value)> = ctx
        .read(&h, move |ws| {
            let queues: Vec<Sid> = ws
                .task_queues()
                .values()
                .filter(|q| name.as_deref().is_none_or(|n| *q.friendly_name == *n))
                .map(|q| q.sid)
                .collect();
            let figures = realtime_embedded_queues(ws, &queues, channel, taskyard_hub::now_ms());
            queues
                .into_iter()
                .zip(figures)
                .map(|(q, f)| (q, (q, f)))
                .collect()
        })
        .await?;
    let (items, meta) = page.select(&all, |_| true);
    let mut out = Vec::with_capacity(items.len());
    for (q, realtime) in items.into_iter().cloned() {
        let a = sum(ctx.app.hub.events(), h.sid, vec![q.to_string()], &w).await?;
        out.push(combined(
            ids(h.account_sid, h.sid, &[("task_queue_sid", q)], None),
            cumulative_fields(&a, &w, Tasks::Queue),
            realtime,
        ));
    }
    Ok(respond(
        StatusCode::OK,
        envelope("task_queues_statistics", out, meta),
    ))
}

/// `GET …/Workflows/{Sid}/Statistics`.
pub async fn workflow(
    ctx: Ctx,
    Path((ws, flow)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let h = ctx.workspace(&ws)?;
    let f = ctx.path_sid(&flow, prefix::WORKFLOW)?;
    let w = Window::parse(&ctx, &h).await?;
    let (urls, channel) = (ctx.app.urls.clone(), w.channel);
    let realtime = ctx
        .read(&h, move |ws| {
            ws.workflows().contains_key(&f).then(|| {
                realtime_embedded(
                    ws,
                    &urls,
                    StatsScope::Workflow(f),
                    channel,
                    taskyard_hub::now_ms(),
                )
            })
        })
        .await?
        .ok_or_else(|| ctx.not_found())?;
    let a = sum(ctx.app.hub.events(), h.sid, vec![f.to_string()], &w).await?;
    let url = format!("{}/Workflows/{f}/Statistics", ctx.app.urls.workspace(h.sid));
    let doc = combined(
        ids(h.account_sid, h.sid, &[("workflow_sid", f)], Some(url)),
        cumulative_fields(&a, &w, Tasks::Workflow),
        realtime,
    );
    Ok(respond(StatusCode::OK, doc.to_string()))
}

/// The workers `Workers/Statistics` is about: all of them (`None`), or those of the queue
/// `TaskQueueSid` / `TaskQueueName` whose name is `FriendlyName`.
fn chosen_workers(
    ws: &Workspace,
    queue: Option<Sid>,
    queue_name: Option<&str>,
    name: Option<&str>,
) -> Option<Vec<Sid>> {
    if queue.is_none() && queue_name.is_none() && name.is_none() {
        return None;
    }
    let queue = queue.or_else(|| {
        queue_name.and_then(|n| {
            ws.task_queues()
                .values()
                .find(|q| *q.friendly_name == *n)
                .map(|q| q.sid)
        })
    });
    let in_queue = |w: Sid| match (queue, queue_name) {
        (Some(q), _) => ws
            .task_queues()
            .get(&q)
            .is_some_and(|q| q.members.contains(&w)),
        // A queue name that names no queue: nobody.
        (None, Some(_)) => false,
        (None, None) => true,
    };
    Some(
        ws.workers()
            .values()
            .filter(|w| in_queue(w.sid))
            .filter(|w| name.is_none_or(|n| *w.friendly_name == *n))
            .map(|w| w.sid)
            .collect(),
    )
}

/// `GET …/Workers/Statistics`: the workers' reservations and activity durations, and how
/// many are in each activity now. No 100-worker limit.
pub async fn workers(ctx: Ctx, Path(ws): Path<String>) -> Result<Response, ApiError> {
    let h = ctx.workspace(&ws)?;
    let w = Window::parse(&ctx, &h).await?;
    let queue = ctx.query.sid("TaskQueueSid", prefix::TASK_QUEUE)?;
    let queue_name = ctx.query.string("TaskQueueName");
    let name = ctx.query.string("FriendlyName");
    let (urls, channel) = (ctx.app.urls.clone(), w.channel);
    let (acts, chosen, realtime, current) = ctx
        .read(&h, move |ws| {
            let chosen = chosen_workers(ws, queue, queue_name.as_deref(), name.as_deref());
            let now = taskyard_hub::now_ms();
            let realtime = match &chosen {
                None => realtime_embedded(ws, &urls, StatsScope::Workers, channel, now),
                Some(set) => {
                    // As the unfiltered figures: with a channel, only workers who can take
                    // that channel's tasks at all.
                    let counted: Vec<&taskyard_engine::Worker> = set
                        .iter()
                        .filter_map(|w| ws.workers().get(w))
                        .filter(|w| {
                            channel.is_none_or(|c| {
                                w.channel(c)
                                    .is_some_and(|c| c.available && c.configured_capacity > 0)
                            })
                        })
                        .collect();
                    let counts = ws.activities().values().map(|a| {
                        let n = counted.iter().filter(|w| w.activity_sid == a.sid).count();
                        json!({"sid": a.sid, "friendly_name": &*a.friendly_name, "workers": n})
                    });
                    json!({"total_workers": counted.len(), "activity_statistics": counts.collect::<Vec<_>>()})
                }
            };
            let current = current_activities(ws, chosen.as_deref());
            (activities(ws), chosen, realtime, current)
        })
        .await?;
    let scopes = match chosen {
        None => vec![WORKSPACE.to_string(), ALL_WORKERS.to_string()],
        Some(set) => set.iter().map(Sid::to_string).collect(),
    };
    let later = periods_after(ctx.app.hub.events(), h.sid, scopes.clone(), &w).await?;
    let mut a = sum(ctx.app.hub.events(), h.sid, scopes, &w).await?;
    add_ongoing(&mut a, &current, &w);
    let url = format!("{}/Workers/Statistics", ctx.app.urls.workspace(h.sid));
    let doc = combined(
        ids(h.account_sid, h.sid, &[], Some(url)),
        worker_fields(&a, &later, &w, &acts),
        realtime,
    );
    Ok(respond(StatusCode::OK, doc.to_string()))
}
