//! Workers and their WorkerChannels.

use std::collections::BTreeMap;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use taskyard_engine::{Command, CreateWorker, UpdateWorker, WorkerView, sid::prefix};
use taskyard_expr::Scope;

use super::{
    Ctx, Form, apply_versioned, check_ordering, fetch_versioned, json, json_with_etag, list_etag,
    to_json,
};
use crate::error::ApiError;
use crate::paging::envelope;
use crate::render;

pub async fn list(ctx: Ctx, Path(ws): Path<String>) -> Result<Response, ApiError> {
    let h = ctx.workspace(&ws)?;
    let page = ctx.page()?;
    check_ordering(&ctx.query)?;
    let q = &ctx.query;
    let activity_sid = q.sid("ActivitySid", prefix::ACTIVITY)?;
    let activity_name = q.string("ActivityName");
    let available = q.loose_bool("Available");
    let name = q.string("FriendlyName");
    let expression = match q.str("TargetWorkersExpression") {
        None => None,
        Some(src) => Some(taskyard_expr::parse(src, Scope::Attributes).map_err(|e| {
            ApiError::invalid(format!(
                "TargetWorkersExpression is not a valid expression: {e}"
            ))
        })?),
    };
    let queue_sid = q.sid("TaskQueueSid", prefix::TASK_QUEUE)?;
    let queue_name = q.string("TaskQueueName");
    let with_attributes = ctx.app.list_attributes;
    let urls = ctx.app.urls.clone();
    let body = ctx
        .read(&h, move |ws| {
            // Eligible workers of the named queue (by SID and/or name); an unknown queue
            // matches no worker.
            let queue_filter = (queue_sid.is_some() || queue_name.is_some()).then(|| {
                ws.task_queues()
                    .values()
                    .find(|tq| {
                        queue_sid.is_none_or(|s| s == tq.sid)
                            && queue_name.as_ref().is_none_or(|n| **n == *tq.friendly_name)
                    })
                    .map(|tq| &tq.members)
            });
            let (items, meta) = page.select(ws.workers(), |w| {
                let activity = ws.activities().get(&w.activity_sid);
                activity_sid.is_none_or(|a| a == w.activity_sid)
                    && activity_name
                        .as_ref()
                        .is_none_or(|n| activity.is_some_and(|a| *a.friendly_name == **n))
                    && available.is_none_or(|v| activity.is_some_and(|a| a.available) == v)
                    && name
                        .as_ref()
                        .is_none_or(|n| n.eq_ignore_ascii_case(&w.friendly_name))
                    && queue_filter.is_none_or(|m| m.is_some_and(|m| m.contains(&w.sid)))
                    && expression.as_ref().is_none_or(|e| {
                        e.eval(&WorkerView {
                            workspace: ws,
                            worker: w,
                        })
                    })
            });
            let tag = list_etag(items.iter().map(|w| (w.sid, w.version)));
            let items: Vec<_> = items
                .into_iter()
                .map(|w| render::worker(&urls, ws, w, with_attributes))
                .collect();
            (envelope("workers", items, meta), tag)
        })
        .await?;
    Ok(json_with_etag(StatusCode::OK, body.0, body.1))
}

/// Renders worker `sid` with its attributes, plus its version for the `ETag`.
fn one(
    ws: &taskyard_engine::Workspace,
    u: &render::Urls,
    sid: taskyard_engine::Sid,
) -> Option<(String, u64)> {
    let w = ws.workers().get(&sid)?;
    Some((to_json(&render::worker(u, ws, w, true)), w.version))
}

pub async fn create(ctx: Ctx, Path(ws): Path<String>, Form(p): Form) -> Result<Response, ApiError> {
    let cmd = Command::CreateWorker(CreateWorker {
        friendly_name: p.required("FriendlyName")?,
        activity_sid: p.sid("ActivitySid", prefix::ACTIVITY)?,
        attributes: p.string("Attributes"),
    });
    apply_versioned(&ctx, &ws, StatusCode::CREATED, cmd, one).await
}

pub async fn fetch(
    ctx: Ctx,
    Path((ws, sid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let sid = ctx.path_sid(&sid, prefix::WORKER)?;
    fetch_versioned(&ctx, &ws, sid, one).await
}

pub async fn update(
    ctx: Ctx,
    Path((ws, sid)): Path<(String, String)>,
    Form(p): Form,
) -> Result<Response, ApiError> {
    let sid = ctx.path_sid(&sid, prefix::WORKER)?;
    let cmd = Command::UpdateWorker(UpdateWorker {
        sid,
        if_match: ctx.if_match.clone(),
        activity_sid: p.sid("ActivitySid", prefix::ACTIVITY)?,
        attributes: p.string("Attributes"),
        friendly_name: p.string("FriendlyName"),
        reject_pending_reservations: p.bool("RejectPendingReservations")?,
    });
    apply_versioned(&ctx, &ws, StatusCode::OK, cmd, one).await
}

pub async fn delete(
    ctx: Ctx,
    Path((ws, sid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let sid = ctx.path_sid(&sid, prefix::WORKER)?;
    let h = ctx.workspace(&ws)?;
    let cmd = Command::DeleteWorker {
        sid,
        if_match: ctx.if_match.clone(),
    };
    ctx.apply(&h, cmd, |_, _| ()).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_channels(
    ctx: Ctx,
    Path((ws, sid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let sid = ctx.path_sid(&sid, prefix::WORKER)?;
    let h = ctx.workspace(&ws)?;
    let page = ctx.page()?;
    let urls = ctx.app.urls.clone();
    let body = ctx
        .read(&h, move |ws| {
            let w = ws.workers().get(&sid)?;
            let by_sid: BTreeMap<_, _> = w.channels.iter().map(|c| (c.sid, c)).collect();
            let (items, meta) = page.select(&by_sid, |_| true);
            let items: Vec<_> = items
                .into_iter()
                .map(|c| render::worker_channel(&urls, ws, w, c))
                .collect();
            Some(envelope("channels", items, meta))
        })
        .await?
        .ok_or_else(|| ctx.not_found())?;
    Ok(json(StatusCode::OK, body))
}

pub async fn fetch_channel(
    ctx: Ctx,
    Path((ws, sid, key)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let sid = ctx.path_sid(&sid, prefix::WORKER)?;
    let h = ctx.workspace(&ws)?;
    let urls = ctx.app.urls.clone();
    let body = ctx
        .read(&h, move |ws| {
            let w = ws.workers().get(&sid)?;
            let c = ws.find_worker_channel(w, &key)?;
            Some(to_json(&render::worker_channel(&urls, ws, w, c)))
        })
        .await?
        .ok_or_else(|| ctx.not_found())?;
    Ok(json(StatusCode::OK, body))
}

pub async fn update_channel(
    ctx: Ctx,
    Path((ws, sid, key)): Path<(String, String, String)>,
    Form(p): Form,
) -> Result<Response, ApiError> {
    let worker = ctx.path_sid(&sid, prefix::WORKER)?;
    let cmd = Command::UpdateWorkerChannel {
        worker,
        channel: key,
        capacity: p.int("Capacity")?,
        available: p.bool("Available")?,
    };
    let h = ctx.workspace(&ws)?;
    let urls = ctx.app.urls.clone();
    let body = ctx
        .apply(&h, cmd, move |ws, a| {
            let w = ws.workers().get(&worker)?;
            let c = w.channels.iter().find(|c| c.sid == a.sid)?;
            Some(to_json(&render::worker_channel(&urls, ws, w, c)))
        })
        .await?
        .unwrap_or_default();
    Ok(json(StatusCode::OK, body))
}
