//! Activities, TaskChannels, TaskQueues and Workflows: the configuration resources with
//! plain create / fetch / update / delete / list.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use taskyard_engine::{
    Command, TaskQueueParams, WorkflowParams, Workspace, parse_attributes, sid::prefix,
};

use super::workspaces::check_callback_url;
use super::{Ctx, Form, check_ordering, json, to_json};
use crate::error::ApiError;
use crate::paging::envelope;
use crate::params::Params;
use crate::render::{self, Urls};

/// Fetches one resource rendered by `f`; `None` from `f` is a 404.
async fn fetch_one(
    ctx: &Ctx,
    ws: &str,
    f: impl FnOnce(&Workspace, &Urls) -> Option<String> + Send + 'static,
) -> Result<Response, ApiError> {
    let h = ctx.workspace(ws)?;
    let urls = ctx.app.urls.clone();
    match ctx.read(&h, move |ws| f(ws, &urls)).await? {
        Some(body) => Ok(json(StatusCode::OK, body)),
        None => Err(ctx.not_found()),
    }
}

/// Applies `cmd` and renders the affected resource with `f` (status 200 or 201).
async fn change(
    ctx: &Ctx,
    ws: &str,
    status: StatusCode,
    cmd: Command,
    f: impl FnOnce(&Workspace, &Urls, taskyard_engine::Sid) -> Option<String> + Send + 'static,
) -> Result<Response, ApiError> {
    let h = ctx.workspace(ws)?;
    let urls = ctx.app.urls.clone();
    let body = ctx
        .apply(&h, cmd, move |ws, applied| f(ws, &urls, applied.sid))
        .await?;
    Ok(json(status, body.unwrap_or_default()))
}

async fn remove(ctx: &Ctx, ws: &str, cmd: Command) -> Result<StatusCode, ApiError> {
    let h = ctx.workspace(ws)?;
    ctx.apply(&h, cmd, |_, _| ()).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- Activities ------------------------------------------------------------------------

pub async fn list_activities(ctx: Ctx, Path(ws): Path<String>) -> Result<Response, ApiError> {
    let h = ctx.workspace(&ws)?;
    let page = ctx.page()?;
    let name = ctx.query.string("FriendlyName");
    let available = ctx.query.loose_bool("Available");
    let urls = ctx.app.urls.clone();
    let body = ctx
        .read(&h, move |ws| {
            let (items, meta) = page.select(ws.activities(), |a| {
                name.as_ref().is_none_or(|n| **n == *a.friendly_name)
                    && available.is_none_or(|v| v == a.available)
            });
            let items: Vec<_> = items
                .into_iter()
                .map(|a| render::activity(&urls, ws, a))
                .collect();
            envelope("activities", items, meta)
        })
        .await?;
    Ok(json(StatusCode::OK, body))
}

pub async fn create_activity(
    ctx: Ctx,
    Path(ws): Path<String>,
    Form(p): Form,
) -> Result<Response, ApiError> {
    let cmd = Command::CreateActivity {
        friendly_name: p.required("FriendlyName")?,
        available: p.loose_bool("Available").unwrap_or(false),
    };
    change(&ctx, &ws, StatusCode::CREATED, cmd, |ws, u, sid| {
        ws.activities()
            .get(&sid)
            .map(|a| to_json(&render::activity(u, ws, a)))
    })
    .await
}

pub async fn fetch_activity(
    ctx: Ctx,
    Path((ws, sid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let sid = ctx.path_sid(&sid, prefix::ACTIVITY)?;
    fetch_one(&ctx, &ws, move |ws, u| {
        ws.activities()
            .get(&sid)
            .map(|a| to_json(&render::activity(u, ws, a)))
    })
    .await
}

pub async fn update_activity(
    ctx: Ctx,
    Path((ws, sid)): Path<(String, String)>,
    Form(p): Form,
) -> Result<Response, ApiError> {
    let sid = ctx.path_sid(&sid, prefix::ACTIVITY)?;
    let cmd = Command::UpdateActivity {
        sid,
        friendly_name: p.string("FriendlyName"),
    };
    change(&ctx, &ws, StatusCode::OK, cmd, |ws, u, sid| {
        ws.activities()
            .get(&sid)
            .map(|a| to_json(&render::activity(u, ws, a)))
    })
    .await
}

pub async fn delete_activity(
    ctx: Ctx,
    Path((ws, sid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let sid = ctx.path_sid(&sid, prefix::ACTIVITY)?;
    remove(&ctx, &ws, Command::DeleteActivity { sid }).await
}

// ----- TaskChannels ----------------------------------------------------------------------

pub async fn list_task_channels(ctx: Ctx, Path(ws): Path<String>) -> Result<Response, ApiError> {
    let h = ctx.workspace(&ws)?;
    let page = ctx.page()?;
    let urls = ctx.app.urls.clone();
    let body = ctx
        .read(&h, move |ws| {
            let (items, meta) = page.select(ws.task_channels(), |_| true);
            let items: Vec<_> = items
                .into_iter()
                .map(|c| render::task_channel(&urls, ws, c))
                .collect();
            envelope("channels", items, meta)
        })
        .await?;
    Ok(json(StatusCode::OK, body))
}

pub async fn create_task_channel(
    ctx: Ctx,
    Path(ws): Path<String>,
    Form(p): Form,
) -> Result<Response, ApiError> {
    let cmd = Command::CreateTaskChannel {
        friendly_name: p.required("FriendlyName")?,
        unique_name: p.required("UniqueName")?,
        channel_optimized_routing: p.bool("ChannelOptimizedRouting")?,
    };
    change(&ctx, &ws, StatusCode::CREATED, cmd, |ws, u, sid| {
        ws.task_channels()
            .get(&sid)
            .map(|c| to_json(&render::task_channel(u, ws, c)))
    })
    .await
}

pub async fn fetch_task_channel(
    ctx: Ctx,
    Path((ws, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    fetch_one(&ctx, &ws, move |ws, u| {
        ws.find_task_channel(&key)
            .map(|c| to_json(&render::task_channel(u, ws, c)))
    })
    .await
}

pub async fn update_task_channel(
    ctx: Ctx,
    Path((ws, key)): Path<(String, String)>,
    Form(p): Form,
) -> Result<Response, ApiError> {
    let cmd = Command::UpdateTaskChannel {
        channel: key,
        friendly_name: p.string("FriendlyName"),
        channel_optimized_routing: p.bool("ChannelOptimizedRouting")?,
    };
    change(&ctx, &ws, StatusCode::OK, cmd, |ws, u, sid| {
        ws.task_channels()
            .get(&sid)
            .map(|c| to_json(&render::task_channel(u, ws, c)))
    })
    .await
}

pub async fn delete_task_channel(
    ctx: Ctx,
    Path((ws, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    remove(&ctx, &ws, Command::DeleteTaskChannel { channel: key }).await
}

// ----- TaskQueues ------------------------------------------------------------------------

pub async fn list_task_queues(ctx: Ctx, Path(ws): Path<String>) -> Result<Response, ApiError> {
    let h = ctx.workspace(&ws)?;
    let page = ctx.page()?;
    check_ordering(&ctx.query)?;
    let name = ctx.query.string("FriendlyName");
    let worker = ctx.query.sid("WorkerSid", prefix::WORKER)?;
    // EvaluateWorkerAttributes: the queues a worker with these attributes would belong to.
    let attributes = match ctx.query.string("EvaluateWorkerAttributes") {
        None => None,
        Some(text) => Some(
            parse_attributes(text, "EvaluateWorkerAttributes")
                .map_err(|e| ApiError::from_engine(e, &ctx.path))?
                .1,
        ),
    };
    let urls = ctx.app.urls.clone();
    let body = ctx
        .read(&h, move |ws| {
            let (items, meta) = page.select(ws.task_queues(), |q| {
                name.as_ref().is_none_or(|n| **n == *q.friendly_name)
                    && worker.is_none_or(|w| q.members.contains(&w))
                    && attributes
                        .as_ref()
                        .is_none_or(|a| q.target.as_ref().is_some_and(|t| t.eval(a)))
            });
            let items: Vec<_> = items
                .into_iter()
                .map(|q| render::task_queue(&urls, ws, q))
                .collect();
            envelope("task_queues", items, meta)
        })
        .await?;
    Ok(json(StatusCode::OK, body))
}

fn task_queue_params(p: &Params) -> Result<TaskQueueParams, ApiError> {
    Ok(TaskQueueParams {
        friendly_name: p.string("FriendlyName"),
        target_workers: p.string("TargetWorkers"),
        max_reserved_workers: p.int("MaxReservedWorkers")?,
        task_order: p.queue_order("TaskOrder")?,
        reservation_activity_sid: p.sid("ReservationActivitySid", prefix::ACTIVITY)?,
        assignment_activity_sid: p.sid("AssignmentActivitySid", prefix::ACTIVITY)?,
    })
}

pub async fn create_task_queue(
    ctx: Ctx,
    Path(ws): Path<String>,
    Form(p): Form,
) -> Result<Response, ApiError> {
    p.required("FriendlyName")?;
    let cmd = Command::CreateTaskQueue(task_queue_params(&p)?);
    change(&ctx, &ws, StatusCode::CREATED, cmd, |ws, u, sid| {
        ws.task_queues()
            .get(&sid)
            .map(|q| to_json(&render::task_queue(u, ws, q)))
    })
    .await
}

pub async fn fetch_task_queue(
    ctx: Ctx,
    Path((ws, sid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let sid = ctx.path_sid(&sid, prefix::TASK_QUEUE)?;
    fetch_one(&ctx, &ws, move |ws, u| {
        ws.task_queues()
            .get(&sid)
            .map(|q| to_json(&render::task_queue(u, ws, q)))
    })
    .await
}

pub async fn update_task_queue(
    ctx: Ctx,
    Path((ws, sid)): Path<(String, String)>,
    Form(p): Form,
) -> Result<Response, ApiError> {
    let sid = ctx.path_sid(&sid, prefix::TASK_QUEUE)?;
    let cmd = Command::UpdateTaskQueue {
        sid,
        params: task_queue_params(&p)?,
    };
    change(&ctx, &ws, StatusCode::OK, cmd, |ws, u, sid| {
        ws.task_queues()
            .get(&sid)
            .map(|q| to_json(&render::task_queue(u, ws, q)))
    })
    .await
}

pub async fn delete_task_queue(
    ctx: Ctx,
    Path((ws, sid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let sid = ctx.path_sid(&sid, prefix::TASK_QUEUE)?;
    remove(&ctx, &ws, Command::DeleteTaskQueue { sid }).await
}

// ----- Workflows -------------------------------------------------------------------------

pub async fn list_workflows(ctx: Ctx, Path(ws): Path<String>) -> Result<Response, ApiError> {
    let h = ctx.workspace(&ws)?;
    let page = ctx.page()?;
    let name = ctx.query.string("FriendlyName");
    let urls = ctx.app.urls.clone();
    let body = ctx
        .read(&h, move |ws| {
            let (items, meta) = page.select(ws.workflows(), |w| {
                name.as_ref().is_none_or(|n| **n == *w.friendly_name)
            });
            let items: Vec<_> = items
                .into_iter()
                .map(|w| render::workflow(&urls, ws, w))
                .collect();
            envelope("workflows", items, meta)
        })
        .await?;
    Ok(json(StatusCode::OK, body))
}

/// Refuses callback URLs the callback policy refuses (see [`check_callback_url`]).
async fn check_workflow_callbacks(ctx: &Ctx, p: &Params) -> Result<(), ApiError> {
    check_callback_url(ctx, p, "AssignmentCallbackUrl").await?;
    check_callback_url(ctx, p, "FallbackAssignmentCallbackUrl").await
}

fn workflow_params(p: &Params) -> Result<WorkflowParams, ApiError> {
    Ok(WorkflowParams {
        friendly_name: p.string("FriendlyName"),
        configuration: p.string("Configuration"),
        assignment_callback_url: p.string("AssignmentCallbackUrl"),
        fallback_assignment_callback_url: p.string("FallbackAssignmentCallbackUrl"),
        task_reservation_timeout: p.int("TaskReservationTimeout")?,
    })
}

pub async fn create_workflow(
    ctx: Ctx,
    Path(ws): Path<String>,
    Form(p): Form,
) -> Result<Response, ApiError> {
    p.required("FriendlyName")?;
    p.required("Configuration")?;
    let cmd = Command::CreateWorkflow(workflow_params(&p)?);
    check_workflow_callbacks(&ctx, &p).await?;
    change(&ctx, &ws, StatusCode::CREATED, cmd, |ws, u, sid| {
        ws.workflows()
            .get(&sid)
            .map(|w| to_json(&render::workflow(u, ws, w)))
    })
    .await
}

pub async fn fetch_workflow(
    ctx: Ctx,
    Path((ws, sid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let sid = ctx.path_sid(&sid, prefix::WORKFLOW)?;
    fetch_one(&ctx, &ws, move |ws, u| {
        ws.workflows()
            .get(&sid)
            .map(|w| to_json(&render::workflow(u, ws, w)))
    })
    .await
}

pub async fn update_workflow(
    ctx: Ctx,
    Path((ws, sid)): Path<(String, String)>,
    Form(p): Form,
) -> Result<Response, ApiError> {
    let sid = ctx.path_sid(&sid, prefix::WORKFLOW)?;
    let re_evaluate_tasks = p.bool("ReEvaluateTasks")?.unwrap_or(false);
    let cmd = Command::UpdateWorkflow {
        sid,
        params: workflow_params(&p)?,
        re_evaluate_tasks,
    };
    check_workflow_callbacks(&ctx, &p).await?;
    change(&ctx, &ws, StatusCode::OK, cmd, |ws, u, sid| {
        ws.workflows()
            .get(&sid)
            .map(|w| to_json(&render::workflow(u, ws, w)))
    })
    .await
}

pub async fn delete_workflow(
    ctx: Ctx,
    Path((ws, sid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let sid = ctx.path_sid(&sid, prefix::WORKFLOW)?;
    remove(&ctx, &ws, Command::DeleteWorkflow { sid }).await
}
