//! Tasks and their reservations (task-scoped and worker-scoped views).

use std::collections::BTreeMap;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use taskyard_engine::{
    Command, CreateTask, Millis, Reservation, ReservationStatus, Sid, Task, TaskStatus,
    UpdateReservation, UpdateTask, Workspace, sid::prefix,
};
use taskyard_expr::Scope;
use taskyard_hub::now_ms;

use super::{Ctx, Form, apply_versioned, fetch_versioned, json_with_etag, list_etag, to_json};
use crate::error::ApiError;
use crate::paging::envelope;
use crate::params::Params;
use crate::render::{self, Scope as View, Urls, parse_iso};

fn iso_param(p: &Params, name: &str) -> Result<Option<Millis>, ApiError> {
    match p.str(name) {
        None => Ok(None),
        Some(v) => parse_iso(v).map(Some).ok_or_else(|| {
            ApiError::invalid(format!(
                "{name} must be an ISO 8601 date-time such as 2014-05-14T10:50:02Z, not '{v}'"
            ))
        }),
    }
}

/// Renders task `sid` with attributes, plus its version for the `ETag`.
fn one(ws: &Workspace, u: &Urls, sid: Sid) -> Option<(String, u64)> {
    let t = ws.tasks().get(&sid)?;
    Some((to_json(&render::task(u, ws, t, now_ms(), true)), t.version))
}

pub async fn create(ctx: Ctx, Path(ws): Path<String>, Form(p): Form) -> Result<Response, ApiError> {
    let cmd = Command::CreateTask(CreateTask {
        attributes: p.string("Attributes"),
        priority: p.int("Priority")?,
        timeout: p.int("Timeout")?,
        task_channel: p.string("TaskChannel"),
        workflow_sid: p.sid("WorkflowSid", prefix::WORKFLOW)?,
        task_queue_sid: p.sid("TaskQueueSid", prefix::TASK_QUEUE)?,
        virtual_start_time: iso_param(&p, "VirtualStartTime")?,
        routing_target: p.string("RoutingTarget"),
        ignore_capacity: p.loose_bool("IgnoreCapacity"),
    });
    apply_versioned(&ctx, &ws, StatusCode::CREATED, cmd, one).await
}

pub async fn fetch(
    ctx: Ctx,
    Path((ws, sid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let sid = ctx.path_sid(&sid, prefix::TASK)?;
    fetch_versioned(&ctx, &ws, sid, one).await
}

pub async fn update(
    ctx: Ctx,
    Path((ws, sid)): Path<(String, String)>,
    Form(p): Form,
) -> Result<Response, ApiError> {
    let sid = ctx.path_sid(&sid, prefix::TASK)?;
    let assignment_status = match p.str("AssignmentStatus") {
        None => None,
        Some(s) => Some(TaskStatus::parse(s).ok_or_else(|| {
            ApiError::invalid(format!(
                "AssignmentStatus must be one of pending, reserved, assigned, canceled, completed, wrapping, not '{s}'"
            ))
        })?),
    };
    let cmd = Command::UpdateTask(UpdateTask {
        sid,
        if_match: ctx.if_match.clone(),
        attributes: p.string("Attributes"),
        priority: p.int("Priority")?,
        assignment_status,
        reason: p.string("Reason"),
        task_channel: p.string("TaskChannel"),
        virtual_start_time: iso_param(&p, "VirtualStartTime")?,
    });
    apply_versioned(&ctx, &ws, StatusCode::OK, cmd, one).await
}

pub async fn delete(
    ctx: Ctx,
    Path((ws, sid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let sid = ctx.path_sid(&sid, prefix::TASK)?;
    let h = ctx.workspace(&ws)?;
    let cmd = Command::DeleteTask {
        sid,
        if_match: ctx.if_match.clone(),
    };
    ctx.apply(&h, cmd, |_, _| ()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `Ordering=Attribute:order[,…]` over DateCreated, Priority, VirtualStartTime.
fn ordering(q: &Params) -> Result<Vec<(String, bool)>, ApiError> {
    let Some(spec) = q.str("Ordering") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (attr, dir) = part.split_once(':').unwrap_or((part, "asc"));
        let desc = match dir.to_ascii_lowercase().as_str() {
            "asc" => false,
            "desc" => true,
            _ => {
                return Err(ApiError::invalid(format!(
                    "Ordering direction must be asc or desc, not '{dir}'"
                )));
            }
        };
        if !matches!(attr, "DateCreated" | "Priority" | "VirtualStartTime") {
            return Err(ApiError::invalid(format!(
                "Ordering attribute must be DateCreated, Priority or VirtualStartTime, not '{attr}'"
            )));
        }
        out.push((attr.to_string(), desc));
    }
    let has = |a: &str| out.iter().any(|(x, _)| x == a);
    if has("DateCreated") && has("VirtualStartTime") {
        return Err(ApiError::invalid(
            "Ordering cannot combine DateCreated with VirtualStartTime",
        ));
    }
    Ok(out)
}

pub async fn list(ctx: Ctx, Path(ws): Path<String>) -> Result<Response, ApiError> {
    let h = ctx.workspace(&ws)?;
    let page = ctx.page()?;
    let q = &ctx.query;
    let statuses = q
        .list("AssignmentStatus")
        .iter()
        .map(|s| {
            TaskStatus::parse(s).ok_or_else(|| {
                ApiError::invalid(format!("AssignmentStatus '{s}' is not a task status"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let priority: Option<i64> = q.int("Priority")?;
    let workflow_sid = q.sid("WorkflowSid", prefix::WORKFLOW)?;
    let workflow_name = q.string("WorkflowName");
    let queue_sid = q.sid("TaskQueueSid", prefix::TASK_QUEUE)?;
    let queue_name = q.string("TaskQueueName");
    let has_addons = q.bool("HasAddons")?;
    let expression = match q.str("EvaluateTaskAttributes") {
        None => None,
        Some(src) => Some(taskyard_expr::parse(src, Scope::Attributes).map_err(|e| {
            ApiError::invalid(format!(
                "EvaluateTaskAttributes is not a valid expression: {e}"
            ))
        })?),
    };
    let order = ordering(q)?;
    let with_attributes = ctx.app.list_attributes;
    let urls = ctx.app.urls.clone();
    let body = ctx
        .read(&h, move |ws| {
            let keep = |t: &Task| {
                (statuses.is_empty() || statuses.contains(&t.assignment_status))
                    && priority.is_none_or(|p| p == t.priority)
                    && workflow_sid.is_none_or(|w| Some(w) == t.workflow_sid)
                    && workflow_name.as_ref().is_none_or(|n| {
                        t.workflow_sid
                            .and_then(|w| ws.workflows().get(&w))
                            .is_some_and(|w| *w.friendly_name == **n)
                    })
                    && queue_sid.is_none_or(|s| Some(s) == t.task_queue_sid)
                    && queue_name.as_ref().is_none_or(|n| {
                        t.task_queue_sid
                            .and_then(|s| ws.task_queues().get(&s))
                            .is_some_and(|q| *q.friendly_name == **n)
                    })
                    // Taskyard runs no add-ons: no task has any.
                    && has_addons != Some(true)
                    && expression.as_ref().is_none_or(|e| e.eval(&*t.attrs))
            };
            let now = now_ms();
            let (items, meta) = if order.is_empty() {
                page.select(ws.tasks(), keep)
            } else if order == [("DateCreated".to_string(), true)] {
                // Newest first, the console's view: SIDs are in creation order, so the map
                // read backwards is this order, and a page costs its own length, not a sort
                // of every task.
                page.select_iter(ws.tasks().values().rev().filter(|t| keep(t)))
            } else {
                let mut items: Vec<&Task> = ws.tasks().values().filter(|t| keep(t)).collect();
                items.sort_by(|a, b| {
                    order
                        .iter()
                        .map(|(attr, desc)| {
                            let o = match attr.as_str() {
                                "Priority" => a.priority.cmp(&b.priority),
                                "VirtualStartTime" => {
                                    a.virtual_start_time.cmp(&b.virtual_start_time)
                                }
                                _ => a.sid.cmp(&b.sid),
                            };
                            if *desc { o.reverse() } else { o }
                        })
                        .find(|o| o.is_ne())
                        .unwrap_or_else(|| a.sid.cmp(&b.sid))
                });
                page.select_sorted(items)
            };
            let tag = list_etag(items.iter().map(|t| (t.sid, t.version)));
            let items: Vec<_> = items
                .into_iter()
                .map(|t| render::task(&urls, ws, t, now, with_attributes))
                .collect();
            (envelope("tasks", items, meta), tag)
        })
        .await?;
    Ok(json_with_etag(StatusCode::OK, body.0, body.1))
}

// ----- reservations ------------------------------------------------------------------------

fn status_filter(q: &Params) -> Result<Option<ReservationStatus>, ApiError> {
    match q.str("ReservationStatus") {
        None => Ok(None),
        Some(s) => ReservationStatus::parse(s).map(Some).ok_or_else(|| {
            ApiError::invalid(format!(
                "ReservationStatus '{s}' is not a reservation status"
            ))
        }),
    }
}

async fn list_reservations(
    ctx: Ctx,
    ws: String,
    owner: Sid,
    view: View,
) -> Result<Response, ApiError> {
    let h = ctx.workspace(&ws)?;
    let page = ctx.page()?;
    let status = status_filter(&ctx.query)?;
    let worker = ctx.query.sid("WorkerSid", prefix::WORKER)?;
    let urls = ctx.app.urls.clone();
    let body = ctx
        .read(&h, move |ws| {
            let exists = match view {
                View::Task => ws.tasks().contains_key(&owner),
                View::Worker => ws.workers().contains_key(&owner),
            };
            if !exists {
                return None;
            }
            let mine: BTreeMap<Sid, &Reservation> = match view {
                View::Task => ws.task_reservations(owner).map(|r| (r.sid, r)).collect(),
                View::Worker => ws
                    .reservations()
                    .values()
                    .filter(|r| r.worker_sid == owner)
                    .map(|r| (r.sid, r))
                    .collect(),
            };
            let (items, meta) = page.select(&mine, |r| {
                status.is_none_or(|s| s == r.status) && worker.is_none_or(|w| w == r.worker_sid)
            });
            let tag = list_etag(items.iter().map(|r| (r.sid, r.version)));
            let items: Vec<_> = items
                .into_iter()
                .map(|r| render::reservation(&urls, ws, r, view))
                .collect();
            Some((envelope("reservations", items, meta), tag))
        })
        .await?
        .ok_or_else(|| ctx.not_found())?;
    Ok(json_with_etag(StatusCode::OK, body.0, body.1))
}

pub async fn list_task_reservations(
    ctx: Ctx,
    Path((ws, task)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let task = ctx.path_sid(&task, prefix::TASK)?;
    list_reservations(ctx, ws, task, View::Task).await
}

pub async fn list_worker_reservations(
    ctx: Ctx,
    Path((ws, worker)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let worker = ctx.path_sid(&worker, prefix::WORKER)?;
    list_reservations(ctx, ws, worker, View::Worker).await
}

fn render_one(ws: &Workspace, u: &Urls, sid: Sid, owner: Sid, view: View) -> Option<(String, u64)> {
    let r = ws.reservations().get(&sid)?;
    let belongs = match view {
        View::Task => r.task_sid == owner,
        View::Worker => r.worker_sid == owner,
    };
    belongs.then(|| (to_json(&render::reservation(u, ws, r, view)), r.version))
}

async fn fetch_reservation(
    ctx: Ctx,
    ws: String,
    owner: Sid,
    sid: String,
    view: View,
) -> Result<Response, ApiError> {
    let sid = ctx.path_sid(&sid, prefix::RESERVATION)?;
    let h = ctx.workspace(&ws)?;
    let urls = ctx.app.urls.clone();
    let (body, version) = ctx
        .read(&h, move |ws| render_one(ws, &urls, sid, owner, view))
        .await?
        .ok_or_else(|| ctx.not_found())?;
    Ok(json_with_etag(StatusCode::OK, body, version))
}

pub async fn fetch_task_reservation(
    ctx: Ctx,
    Path((ws, task, sid)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let task = ctx.path_sid(&task, prefix::TASK)?;
    fetch_reservation(ctx, ws, task, sid, View::Task).await
}

pub async fn fetch_worker_reservation(
    ctx: Ctx,
    Path((ws, worker, sid)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let worker = ctx.path_sid(&worker, prefix::WORKER)?;
    fetch_reservation(ctx, ws, worker, sid, View::Worker).await
}

async fn update_reservation(
    ctx: Ctx,
    ws: String,
    owner: Sid,
    sid: String,
    view: View,
    p: Params,
) -> Result<Response, ApiError> {
    let sid = ctx.path_sid(&sid, prefix::RESERVATION)?;
    let mut status = match p.str("ReservationStatus") {
        None => None,
        Some(s) => Some(ReservationStatus::parse(s).ok_or_else(|| {
            ApiError::invalid(format!(
                "ReservationStatus '{s}' is not a reservation status"
            ))
        })?),
    };
    if let Some(instruction) = p.str("Instruction") {
        match instruction.to_ascii_lowercase().as_str() {
            "accept" => status = status.or(Some(ReservationStatus::Accepted)),
            "reject" => status = status.or(Some(ReservationStatus::Rejected)),
            "dequeue" | "call" | "redirect" | "conference" | "supervise" => {
                return Err(ApiError::invalid(format!(
                    "Instruction={instruction} needs a telephony provider; Taskyard routes tasks but places no calls. \
                     Connect the work yourself and set ReservationStatus=accepted"
                )));
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "Instruction '{other}' is not a reservation instruction"
                )));
            }
        }
    }
    let cmd = Command::UpdateReservation(UpdateReservation {
        sid,
        task: (view == View::Task).then_some(owner),
        worker: (view == View::Worker).then_some(owner),
        if_match: ctx.if_match.clone(),
        status,
        worker_activity_sid: p.sid("WorkerActivitySid", prefix::ACTIVITY)?,
    });
    let h = ctx.workspace(&ws)?;
    let urls = ctx.app.urls.clone();
    let (body, version) = ctx
        .apply(&h, cmd, move |ws, _| {
            render_one(ws, &urls, sid, owner, view)
        })
        .await?
        .unwrap_or_default();
    Ok(json_with_etag(StatusCode::OK, body, version))
}

pub async fn update_task_reservation(
    ctx: Ctx,
    Path((ws, task, sid)): Path<(String, String, String)>,
    Form(p): Form,
) -> Result<Response, ApiError> {
    let task = ctx.path_sid(&task, prefix::TASK)?;
    update_reservation(ctx, ws, task, sid, View::Task, p).await
}

pub async fn update_worker_reservation(
    ctx: Ctx,
    Path((ws, worker, sid)): Path<(String, String, String)>,
    Form(p): Form,
) -> Result<Response, ApiError> {
    let worker = ctx.path_sid(&worker, prefix::WORKER)?;
    update_reservation(ctx, ws, worker, sid, View::Worker, p).await
}
