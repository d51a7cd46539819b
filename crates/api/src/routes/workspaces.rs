//! `/v1/Workspaces` and `/v1/Workspaces/{Sid}`.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use taskyard_engine::{Command, NewWorkspace, Template, UpdateWorkspace, sid::prefix};

use super::{Ctx, Form, json, to_json};
use crate::error::ApiError;
use crate::paging::envelope;
use crate::params::Params;
use crate::render;

pub async fn list(ctx: Ctx) -> Result<Response, ApiError> {
    let page = ctx.page()?;
    let name = ctx.query.string("FriendlyName");
    // Each workspace's state lives in its own actor; ask each one (a workspace deleted in
    // the meantime is simply left out).
    let mut all = BTreeMap::new();
    for h in ctx.app.hub.workspaces(ctx.account) {
        let urls = ctx.app.urls.clone();
        let read = h
            .read(move |ws| {
                let v = serde_json::to_value(render::workspace(&urls, ws)).unwrap_or_default();
                (ws.info().friendly_name.clone(), v)
            })
            .await;
        if let Ok(entry) = read {
            all.insert(h.sid, entry);
        }
    }
    // On a cluster, the ones other nodes run, as committed.
    let remote = ctx
        .app
        .hub
        .remote_workspaces(ctx.account)
        .await
        .map_err(|e| ApiError::from_hub(e, &ctx.path))?;
    for ws in remote {
        let v = serde_json::to_value(render::workspace(&ctx.app.urls, &ws)).unwrap_or_default();
        all.insert(ws.sid(), (ws.info().friendly_name.clone(), v));
    }
    let (items, meta) = page.select(&all, |(n, _)| name.as_ref().is_none_or(|f| **f == **n));
    let items: Vec<_> = items.into_iter().map(|(_, v)| v).collect();
    Ok(json(StatusCode::OK, envelope("workspaces", items, meta)))
}

pub async fn create(ctx: Ctx, Form(p): Form) -> Result<Response, ApiError> {
    let template = match p.str("Template") {
        None => Template::None,
        Some(t) if t.eq_ignore_ascii_case("NONE") => Template::None,
        Some(t) if t.eq_ignore_ascii_case("FIFO") => Template::Fifo,
        Some(t) => {
            return Err(ApiError::invalid(format!(
                "Template must be NONE or FIFO, not '{t}'"
            )));
        }
    };
    let params = NewWorkspace {
        friendly_name: p.required("FriendlyName")?,
        event_callback_url: p.string("EventCallbackUrl"),
        events_filter: p.string("EventsFilter"),
        multi_task_enabled: p.bool("MultiTaskEnabled")?,
        template,
        prioritize_queue_order: p.queue_order("PrioritizeQueueOrder")?,
    };
    check_callback_url(&ctx, &p, "EventCallbackUrl").await?;
    let urls = ctx.app.urls.clone();
    let body = ctx
        .app
        .hub
        .create_workspace(ctx.account, params, |ws| {
            to_json(&render::workspace(&urls, ws))
        })
        .await
        .map_err(|e| ApiError::from_hub(e, &ctx.path))?;
    Ok(json(StatusCode::CREATED, body))
}

pub async fn fetch(ctx: Ctx, Path(ws): Path<String>) -> Result<Response, ApiError> {
    let h = ctx.workspace(&ws)?;
    let urls = ctx.app.urls.clone();
    let body = ctx
        .read(&h, move |ws| to_json(&render::workspace(&urls, ws)))
        .await?;
    Ok(json(StatusCode::OK, body))
}

fn update_params(p: &Params) -> Result<UpdateWorkspace, ApiError> {
    Ok(UpdateWorkspace {
        friendly_name: p.string("FriendlyName"),
        event_callback_url: p.string("EventCallbackUrl"),
        events_filter: p.string("EventsFilter"),
        multi_task_enabled: p.bool("MultiTaskEnabled")?,
        default_activity_sid: p.sid("DefaultActivitySid", prefix::ACTIVITY)?,
        timeout_activity_sid: p.sid("TimeoutActivitySid", prefix::ACTIVITY)?,
        prioritize_queue_order: p.queue_order("PrioritizeQueueOrder")?,
    })
}

pub async fn update(ctx: Ctx, Path(ws): Path<String>, Form(p): Form) -> Result<Response, ApiError> {
    let h = ctx.workspace(&ws)?;
    let cmd = Command::UpdateWorkspace(update_params(&p)?);
    check_callback_url(&ctx, &p, "EventCallbackUrl").await?;
    let urls = ctx.app.urls.clone();
    let body = ctx
        .apply(&h, cmd, move |ws, _| to_json(&render::workspace(&urls, ws)))
        .await?;
    Ok(json(StatusCode::OK, body))
}

pub async fn delete(ctx: Ctx, Path(ws): Path<String>) -> Result<StatusCode, ApiError> {
    let h = ctx.workspace(&ws)?;
    ctx.app
        .hub
        .delete_workspace(ctx.account, h.sid)
        .await
        .map_err(|e| ApiError::from_hub(e, &ctx.path))?;
    Ok(StatusCode::NO_CONTENT)
}

/// How long saving a callback URL waits for its host name to resolve before accepting it
/// unchecked (each connection is checked again anyway).
const CALLBACK_LOOKUP: Duration = Duration::from_secs(2);

/// Refuses a callback URL (`EventCallbackUrl`, `AssignmentCallbackUrl`,
/// `FallbackAssignmentCallbackUrl`) that the callback policy refuses — not http(s), or its
/// host is (or resolves to) an address callbacks may not reach — with 400 / 20001 naming the
/// parameter, before anything changes. The engine checks the URL's syntax as well; this is
/// the part that needs DNS, which the engine must not do. An empty value clears the URL and
/// is not checked.
pub(super) async fn check_callback_url(
    ctx: &Ctx,
    p: &Params,
    param: &'static str,
) -> Result<(), ApiError> {
    let Some(url) = p.str(param).filter(|u| !u.is_empty()) else {
        return Ok(());
    };
    ctx.app
        .hub
        .callback_policy()
        .check_url(url, CALLBACK_LOOKUP)
        .await
        .map_err(|why| ApiError::invalid(format!("{param} {why}")))
}
