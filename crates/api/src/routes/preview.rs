//! `POST /v1/Workspaces/{Sid}/RoutePreview` (Taskyard's own): which filter, queue and workers
//! a workflow gives task attributes, without creating a task.
//!
//! Parameters (form-encoded, like every TaskRouter write): `Attributes` (required, a JSON
//! object, checked as a task's are), exactly one of `WorkflowSid` (a saved workflow) or
//! `Configuration` (an unsaved one, checked as a create checks it), and `TaskChannel` (SID or
//! unique name, default `default`). It changes nothing; the answer is the engine's
//! [`RoutePreview`] of the workspace as it is at that instant. A POST and not a GET because
//! attributes and configurations can be longer than a URL should be.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use taskyard_engine::{PreviewStep, RoutePreview, Sid, Workspace, sid::prefix};

use super::{Ctx, Form, json, to_json};
use crate::error::ApiError;
use crate::render::Urls;

#[derive(Serialize)]
struct PreviewJson<'a> {
    account_sid: Sid,
    workspace_sid: Sid,
    workflow_sid: Option<Sid>,
    /// Whether a filter's expression matched (else the default filter applies, if any).
    matched_filter: bool,
    /// What a task created now would do: `reserve`, `wait`, `cancel` or `no_queue`.
    outcome: &'static str,
    /// Index in `steps` of the step a task created now would stop at.
    stops_at: Option<usize>,
    steps: Vec<StepJson<'a>>,
    url: String,
}

#[derive(Serialize)]
struct StepJson<'a> {
    /// Index in `task_routing.filters`; null for the default filter.
    filter_index: Option<usize>,
    filter_friendly_name: Option<&'a str>,
    target_index: usize,
    task_queue_sid: Sid,
    task_queue_friendly_name: Option<&'a str>,
    priority: Option<i64>,
    /// Seconds after the task's creation when routing moves past this step.
    timeout_after: Option<u64>,
    /// Whether the step's `skip_if` holds now.
    skipped_now: bool,
    /// Queue members the step admits (target expression, known worker).
    eligible_workers: usize,
    /// Of those, the ones with room now.
    workers_with_room: usize,
    /// Up to 50 of the eligible workers, those with room first.
    workers: Vec<WorkerJson<'a>>,
}

#[derive(Serialize)]
struct WorkerJson<'a> {
    sid: Sid,
    friendly_name: &'a str,
    activity_name: Option<&'a str>,
    has_room: bool,
}

pub async fn preview(
    ctx: Ctx,
    Path(ws): Path<String>,
    Form(p): Form,
) -> Result<Response, ApiError> {
    let h = ctx.workspace(&ws)?;
    let attributes = p.required("Attributes")?;
    let workflow = p.sid("WorkflowSid", prefix::WORKFLOW)?;
    let configuration = p.string("Configuration");
    if workflow.is_some() == configuration.is_some() {
        return Err(ApiError::invalid(
            "Give exactly one of WorkflowSid (a saved workflow) or Configuration (an unsaved one)",
        ));
    }
    let channel = p.string("TaskChannel").unwrap_or_else(|| "default".into());
    let urls = ctx.app.urls.clone();
    let path = ctx.path.clone();
    let account = ctx.account;
    ctx.read(&h, move |ws| {
        let saved;
        let config = match (workflow, &configuration) {
            (Some(sid), _) => match ws.workflows().get(&sid) {
                Some(w) => &w.config,
                None => {
                    return Err(ApiError::invalid(format!(
                        "WorkflowSid {sid} is not a Workflow of this workspace"
                    )));
                }
            },
            (None, Some(text)) => {
                saved = ws
                    .parse_configuration(text)
                    .map_err(|e| ApiError::from_engine(e, &path))?;
                &saved
            }
            (None, None) => unreachable!("checked above"),
        };
        let preview = ws
            .preview_route(config, &attributes, &channel)
            .map_err(|e| ApiError::from_engine(e, &path))?;
        Ok(to_json(&render(&urls, account, ws, workflow, &preview)))
    })
    .await?
    .map(|body| json(StatusCode::OK, body))
}

fn render<'a>(
    u: &Urls,
    account: Sid,
    ws: &'a Workspace,
    workflow: Option<Sid>,
    p: &'a RoutePreview,
) -> PreviewJson<'a> {
    let outcome = match p.stops_at.map(|i| &p.steps[i]) {
        Some(s) if s.with_room > 0 => "reserve",
        Some(_) => "wait",
        None if p.matched => "cancel",
        None => "no_queue",
    };
    PreviewJson {
        account_sid: account,
        workspace_sid: ws.sid(),
        workflow_sid: workflow,
        matched_filter: p.matched,
        outcome,
        stops_at: p.stops_at,
        steps: p.steps.iter().map(|s| step(ws, s)).collect(),
        url: format!("{}/RoutePreview", u.workspace(ws.sid())),
    }
}

fn step<'a>(ws: &'a Workspace, s: &'a PreviewStep) -> StepJson<'a> {
    StepJson {
        filter_index: s.filter,
        filter_friendly_name: match s.filter {
            None => Some("default"),
            Some(_) => s.filter_friendly_name.as_deref(),
        },
        target_index: s.target,
        task_queue_sid: s.queue,
        task_queue_friendly_name: ws.task_queues().get(&s.queue).map(|q| &*q.friendly_name),
        priority: s.priority,
        timeout_after: s.leaves_after,
        skipped_now: s.skipped,
        eligible_workers: s.admitted,
        workers_with_room: s.with_room,
        workers: s
            .workers
            .iter()
            .filter_map(|(sid, room)| {
                let w = ws.workers().get(sid)?;
                Some(WorkerJson {
                    sid: *sid,
                    friendly_name: &w.friendly_name,
                    activity_name: ws
                        .activities()
                        .get(&w.activity_sid)
                        .map(|a| &*a.friendly_name),
                    has_room: *room,
                })
            })
            .collect(),
    }
}
