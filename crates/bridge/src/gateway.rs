//! The event gateway's data format: what the worker SDK reads, in websocket pushes and in
//! envelope replies alike.
//!
//! It is not the REST format. Dates are integers (Unix seconds; a worker channel's
//! `last_reserved_time` is milliseconds), `attributes` and `addons` are JSON *strings*, a
//! reservation carries its whole task, and the task names its queue and workflow as
//! `queue_sid`/`queue_name`/`workflow_name`. The SDK checks that each of its keys is present
//! (a `null` value is fine) and throws — killing a Node client — when one is missing, so every
//! struct here lists every key it reads (`taskrouter-js-protocol.md` §5).

use serde::Serialize;
use taskyard_engine::events::TaskFacts;
use taskyard_engine::{
    Activity, Event, Millis, Reservation, ReservationStatus, Sid, Task, TaskStatus, Worker,
    WorkerChannel, Workspace,
};

fn secs(ms: Millis) -> i64 {
    ms.div_euclid(1000)
}

#[derive(Serialize)]
pub struct WorkerJson<'a> {
    account_sid: Sid,
    activity_name: Option<&'a str>,
    activity_sid: Sid,
    attributes: &'a str,
    available: bool,
    date_created: i64,
    date_status_changed: i64,
    date_updated: i64,
    friendly_name: &'a str,
    sid: Sid,
    workspace_sid: Sid,
    version: String,
}

pub fn worker<'a>(ws: &'a Workspace, w: &'a Worker) -> WorkerJson<'a> {
    let activity = ws.activities().get(&w.activity_sid);
    WorkerJson {
        account_sid: ws.info().account_sid,
        activity_name: activity.map(|a| a.friendly_name.as_ref()),
        activity_sid: w.activity_sid,
        attributes: &w.attributes,
        available: activity.is_some_and(|a| a.available),
        date_created: secs(w.date_created),
        date_status_changed: secs(w.date_status_changed),
        date_updated: secs(w.date_updated),
        friendly_name: &w.friendly_name,
        sid: w.sid,
        workspace_sid: ws.sid(),
        version: w.version.to_string(),
    }
}

#[derive(Serialize)]
pub struct ActivityJson<'a> {
    account_sid: Sid,
    available: bool,
    date_created: i64,
    date_updated: i64,
    friendly_name: &'a str,
    sid: Sid,
    workspace_sid: Sid,
}

pub fn activity<'a>(ws: &Workspace, a: &'a Activity) -> ActivityJson<'a> {
    ActivityJson {
        account_sid: ws.info().account_sid,
        available: a.available,
        date_created: secs(a.date_created),
        date_updated: secs(a.date_updated),
        friendly_name: &a.friendly_name,
        sid: a.sid,
        workspace_sid: ws.sid(),
    }
}

#[derive(Serialize)]
pub struct WorkerChannelJson<'a> {
    account_sid: Sid,
    assigned_tasks: u32,
    available: bool,
    available_capacity_percentage: u32,
    configured_capacity: u32,
    date_created: i64,
    date_updated: i64,
    /// Milliseconds, unlike every other date of the format.
    last_reserved_time: Option<Millis>,
    sid: Sid,
    task_channel_sid: Sid,
    task_channel_unique_name: Option<&'a str>,
    worker_sid: Sid,
    workspace_sid: Sid,
}

pub fn worker_channel<'a>(
    ws: &'a Workspace,
    w: &Worker,
    c: &WorkerChannel,
) -> WorkerChannelJson<'a> {
    let load = ws.channel_load(w, c);
    WorkerChannelJson {
        account_sid: ws.info().account_sid,
        assigned_tasks: load.assigned_tasks,
        available: c.available,
        available_capacity_percentage: load.available_capacity_percentage,
        configured_capacity: c.configured_capacity,
        date_created: secs(c.date_created),
        date_updated: secs(c.date_updated),
        // Taskyard keeps when the worker (not each channel) was last reserved.
        last_reserved_time: (w.last_reserved_at > w.date_created).then_some(w.last_reserved_at),
        sid: c.sid,
        task_channel_sid: c.task_channel_sid,
        task_channel_unique_name: ws
            .task_channels()
            .get(&c.task_channel_sid)
            .map(|t| t.unique_name.as_ref()),
        worker_sid: w.sid,
        workspace_sid: ws.sid(),
    }
}

#[derive(Serialize)]
pub struct TaskJson<'a> {
    account_sid: Sid,
    addons: &'static str,
    age: i64,
    assignment_status: &'static str,
    attributes: &'a str,
    date_created: i64,
    date_updated: i64,
    priority: i64,
    queue_name: Option<&'a str>,
    queue_sid: Option<Sid>,
    reason: Option<&'a str>,
    routing_target: Option<&'a str>,
    sid: Sid,
    task_channel_sid: Sid,
    task_channel_unique_name: Option<&'a str>,
    timeout: u32,
    version: String,
    virtual_start_time: i64,
    workflow_name: Option<&'a str>,
    workflow_sid: Option<Sid>,
    workspace_sid: Sid,
}

/// A task as it is now (`now` gives its `age`).
pub fn task<'a>(ws: &'a Workspace, t: &'a Task, now: Millis) -> TaskJson<'a> {
    let queue = t.task_queue_sid.and_then(|q| ws.task_queues().get(&q));
    let workflow = t.workflow_sid.and_then(|w| ws.workflows().get(&w));
    TaskJson {
        account_sid: ws.info().account_sid,
        addons: "{}",
        age: secs(now - t.date_created).max(0),
        assignment_status: t.assignment_status.as_str(),
        attributes: &t.attributes,
        date_created: secs(t.date_created),
        date_updated: secs(t.date_updated),
        priority: t.priority,
        queue_name: queue.map(|q| q.friendly_name.as_ref()),
        queue_sid: t.task_queue_sid,
        reason: t.reason.as_deref(),
        routing_target: t.routing_target.as_deref(),
        sid: t.sid,
        task_channel_sid: t.task_channel_sid,
        task_channel_unique_name: ws
            .task_channels()
            .get(&t.task_channel_sid)
            .map(|c| c.unique_name.as_ref()),
        timeout: t.timeout,
        version: t.version.to_string(),
        virtual_start_time: secs(t.virtual_start_time),
        workflow_name: workflow.map(|w| w.friendly_name.as_ref()),
        workflow_sid: t.workflow_sid,
        workspace_sid: ws.sid(),
    }
}

/// A task as an event recorded it (status, attributes, queue, version as they were then);
/// what events do not record (routing target, virtual start) comes from the task now, if it
/// still exists.
pub fn task_as_of<'a>(ws: &'a Workspace, e: &Event, f: &'a TaskFacts) -> TaskJson<'a> {
    let now = ws.tasks().get(&f.sid);
    TaskJson {
        account_sid: ws.info().account_sid,
        addons: "{}",
        age: secs(e.at - f.date_created).max(0),
        assignment_status: f.status.as_str(),
        attributes: &f.attributes,
        date_created: secs(f.date_created),
        date_updated: secs(e.at),
        priority: f.priority,
        queue_name: f.queue.as_ref().map(|q| q.1.as_ref()),
        queue_sid: f.queue.as_ref().map(|q| q.0),
        reason: f.reason.as_deref(),
        routing_target: now.and_then(|t| t.routing_target.as_deref()),
        sid: f.sid,
        task_channel_sid: f.channel,
        task_channel_unique_name: f.channel_name.as_deref(),
        timeout: f.timeout,
        version: f.version.to_string(),
        virtual_start_time: secs(now.map_or(f.date_created, |t| t.virtual_start_time)),
        workflow_name: f.workflow.as_ref().map(|w| w.1.as_ref()),
        workflow_sid: f.workflow.as_ref().map(|w| w.0),
        workspace_sid: ws.sid(),
    }
}

#[derive(Serialize)]
pub struct ReservationJson<'a> {
    account_sid: Sid,
    date_created: i64,
    date_updated: i64,
    reservation_status: &'static str,
    reservation_timeout: Option<i64>,
    sid: Sid,
    task: TaskJson<'a>,
    task_sid: Sid,
    worker_name: Option<&'a str>,
    worker_previous_activity_sid: Option<Sid>,
    worker_sid: Sid,
    workspace_sid: Sid,
    version: String,
}

/// A reservation as it is now, with its task (`None` if the task is gone).
pub fn reservation<'a>(
    ws: &'a Workspace,
    r: &'a Reservation,
    now: Millis,
) -> Option<ReservationJson<'a>> {
    let t = ws.tasks().get(&r.task_sid)?;
    Some(reservation_with(ws, r, r.status, task(ws, t, now)))
}

fn reservation_with<'a>(
    ws: &'a Workspace,
    r: &'a Reservation,
    status: ReservationStatus,
    task: TaskJson<'a>,
) -> ReservationJson<'a> {
    ReservationJson {
        account_sid: ws.info().account_sid,
        date_created: secs(r.date_created),
        date_updated: secs(r.date_updated),
        reservation_status: status.as_str(),
        reservation_timeout: Some(secs(r.timeout_at - r.date_created).max(0)),
        sid: r.sid,
        task,
        task_sid: r.task_sid,
        worker_name: ws
            .workers()
            .get(&r.worker_sid)
            .map(|w| w.friendly_name.as_ref()),
        worker_previous_activity_sid: r.previous_activity_sid,
        worker_sid: r.worker_sid,
        workspace_sid: ws.sid(),
        version: r.version.to_string(),
    }
}

/// A reservation as a `reservation.*` event reports it: its status and its task as the event
/// recorded them. A reservation removed with its task (a deleted task's reservations end
/// `canceled` and go) is described from the event alone. `None` only when the event lacks
/// the reservation or task facts the engine records for every reservation event.
pub fn reservation_as_of<'a>(
    ws: &'a Workspace,
    e: &'a Event,
    status: ReservationStatus,
) -> Option<ReservationJson<'a>> {
    let (sid, _) = e.reservation?;
    let facts = e.task.as_deref()?;
    let task = task_as_of(ws, e, facts);
    let mut json = match ws.reservations().get(&sid) {
        Some(r) => reservation_with(ws, r, status, task),
        None => {
            let worker = e.worker.as_deref()?;
            ReservationJson {
                account_sid: ws.info().account_sid,
                date_created: secs(e.at),
                date_updated: secs(e.at),
                reservation_status: status.as_str(),
                reservation_timeout: None,
                sid,
                task,
                task_sid: facts.sid,
                worker_name: Some(&worker.name),
                worker_previous_activity_sid: None,
                worker_sid: worker.sid,
                workspace_sid: ws.sid(),
                version: "0".into(),
            }
        }
    };
    json.date_updated = secs(e.at);
    Some(json)
}

/// Whether a reservation belongs in the `Active` list the SDK loads when it starts.
pub fn is_active(r: &Reservation, t: Option<&Task>) -> bool {
    r.status.is_active() && t.is_none_or(|t| !matches!(t.assignment_status, TaskStatus::Canceled))
}
