//! Response bodies: one struct per TaskRouter resource with Twilio's snake_case field names,
//! so the wire format of every resource is visible in one place.

use serde::{Serialize, Serializer};
use taskyard_engine::{
    Account, Activity, ApiKey, Millis, Reservation, Sid, Task, TaskChannel, TaskQueue, Worker,
    WorkerChannel, Workflow, Workspace, WorkspaceInfo,
};
use time::OffsetDateTime;

/// A timestamp, written as ISO-8601 UTC with second precision (`2014-05-14T10:50:02Z`).
#[derive(Debug, Clone, Copy)]
pub struct Iso(pub Millis);

pub fn iso(ms: Millis) -> String {
    taskyard_engine::events::iso8601(ms)
}

impl Serialize for Iso {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&iso(self.0))
    }
}

/// Builds the absolute URLs every resource carries.
#[derive(Debug, Clone)]
pub struct Urls {
    /// The public base, without a trailing slash (`http://127.0.0.1:8700`).
    pub base: String,
}

impl Urls {
    pub fn workspace(&self, ws: Sid) -> String {
        format!("{}/v1/Workspaces/{ws}", self.base)
    }
    fn under(&self, ws: Sid, rest: &str) -> String {
        format!("{}/v1/Workspaces/{ws}/{rest}", self.base)
    }
}

#[derive(Serialize)]
pub struct WorkspaceLinks {
    activities: String,
    statistics: String,
    real_time_statistics: String,
    cumulative_statistics: String,
    task_queues: String,
    tasks: String,
    workers: String,
    workflows: String,
    task_channels: String,
    events: String,
}

#[derive(Serialize)]
pub struct WorkspaceJson<'a> {
    account_sid: Sid,
    date_created: Iso,
    date_updated: Iso,
    default_activity_name: Option<&'a str>,
    default_activity_sid: Sid,
    event_callback_url: Option<&'a str>,
    events_filter: Option<&'a str>,
    friendly_name: &'a str,
    multi_task_enabled: bool,
    prioritize_queue_order: &'static str,
    sid: Sid,
    timeout_activity_name: Option<&'a str>,
    timeout_activity_sid: Sid,
    url: String,
    links: WorkspaceLinks,
}

pub fn workspace<'a>(u: &Urls, ws: &'a Workspace) -> WorkspaceJson<'a> {
    let i: &WorkspaceInfo = ws.info();
    let name = |sid| ws.activities().get(&sid).map(|a| a.friendly_name.as_ref());
    let l = |rest: &str| u.under(i.sid, rest);
    WorkspaceJson {
        account_sid: i.account_sid,
        date_created: Iso(i.date_created),
        date_updated: Iso(i.date_updated),
        default_activity_name: name(i.default_activity_sid),
        default_activity_sid: i.default_activity_sid,
        event_callback_url: i.event_callback_url.as_deref(),
        events_filter: i.events_filter.as_deref(),
        friendly_name: &i.friendly_name,
        multi_task_enabled: i.multi_task_enabled,
        prioritize_queue_order: i.prioritize_queue_order.as_str(),
        sid: i.sid,
        timeout_activity_name: name(i.timeout_activity_sid),
        timeout_activity_sid: i.timeout_activity_sid,
        url: u.workspace(i.sid),
        links: WorkspaceLinks {
            activities: l("Activities"),
            statistics: l("Statistics"),
            real_time_statistics: l("RealTimeStatistics"),
            cumulative_statistics: l("CumulativeStatistics"),
            task_queues: l("TaskQueues"),
            tasks: l("Tasks"),
            workers: l("Workers"),
            workflows: l("Workflows"),
            task_channels: l("TaskChannels"),
            events: l("Events"),
        },
    }
}

#[derive(Serialize)]
pub struct WorkspaceOnlyLinks {
    workspace: String,
}

#[derive(Serialize)]
pub struct ActivityJson<'a> {
    account_sid: Sid,
    available: bool,
    date_created: Iso,
    date_updated: Iso,
    friendly_name: &'a str,
    sid: Sid,
    workspace_sid: Sid,
    url: String,
    links: WorkspaceOnlyLinks,
}

pub fn activity<'a>(u: &Urls, ws: &Workspace, a: &'a Activity) -> ActivityJson<'a> {
    let i = ws.info();
    ActivityJson {
        account_sid: i.account_sid,
        available: a.available,
        date_created: Iso(a.date_created),
        date_updated: Iso(a.date_updated),
        friendly_name: &a.friendly_name,
        sid: a.sid,
        workspace_sid: i.sid,
        url: u.under(i.sid, &format!("Activities/{}", a.sid)),
        links: WorkspaceOnlyLinks {
            workspace: u.workspace(i.sid),
        },
    }
}

#[derive(Serialize)]
pub struct TaskChannelJson<'a> {
    account_sid: Sid,
    date_created: Iso,
    date_updated: Iso,
    friendly_name: &'a str,
    sid: Sid,
    unique_name: &'a str,
    workspace_sid: Sid,
    channel_optimized_routing: Option<bool>,
    url: String,
    links: WorkspaceOnlyLinks,
}

pub fn task_channel<'a>(u: &Urls, ws: &Workspace, c: &'a TaskChannel) -> TaskChannelJson<'a> {
    let i = ws.info();
    TaskChannelJson {
        account_sid: i.account_sid,
        date_created: Iso(c.date_created),
        date_updated: Iso(c.date_updated),
        friendly_name: &c.friendly_name,
        sid: c.sid,
        unique_name: &c.unique_name,
        workspace_sid: i.sid,
        channel_optimized_routing: c.channel_optimized_routing,
        url: u.under(i.sid, &format!("TaskChannels/{}", c.sid)),
        links: WorkspaceOnlyLinks {
            workspace: u.workspace(i.sid),
        },
    }
}

#[derive(Serialize)]
pub struct WorkerLinks {
    channels: String,
    worker_channels: String,
    activity: String,
    workspace: String,
    statistics: String,
    real_time_statistics: String,
    cumulative_statistics: String,
    worker_statistics: String,
    reservations: String,
}

#[derive(Serialize)]
pub struct WorkerJson<'a> {
    account_sid: Sid,
    activity_name: Option<&'a str>,
    activity_sid: Sid,
    attributes: Option<&'a str>,
    available: bool,
    date_created: Iso,
    date_status_changed: Iso,
    date_updated: Iso,
    friendly_name: &'a str,
    sid: Sid,
    workspace_sid: Sid,
    url: String,
    links: WorkerLinks,
}

/// A worker; `with_attributes` is false in lists (Twilio shows attributes only on a single
/// fetch, create or update).
pub fn worker<'a>(
    u: &Urls,
    ws: &'a Workspace,
    w: &'a Worker,
    with_attributes: bool,
) -> WorkerJson<'a> {
    let i = ws.info();
    let activity = ws.activities().get(&w.activity_sid);
    let me = u.under(i.sid, &format!("Workers/{}", w.sid));
    WorkerJson {
        account_sid: i.account_sid,
        activity_name: activity.map(|a| a.friendly_name.as_ref()),
        activity_sid: w.activity_sid,
        attributes: with_attributes.then_some(w.attributes.as_ref()),
        available: activity.is_some_and(|a| a.available),
        date_created: Iso(w.date_created),
        date_status_changed: Iso(w.date_status_changed),
        date_updated: Iso(w.date_updated),
        friendly_name: &w.friendly_name,
        sid: w.sid,
        workspace_sid: i.sid,
        links: WorkerLinks {
            channels: format!("{me}/Channels"),
            worker_channels: format!("{me}/Channels"),
            activity: u.under(i.sid, &format!("Activities/{}", w.activity_sid)),
            workspace: u.workspace(i.sid),
            statistics: u.under(i.sid, "Workers/Statistics"),
            real_time_statistics: u.under(i.sid, "Workers/RealTimeStatistics"),
            cumulative_statistics: u.under(i.sid, "Workers/CumulativeStatistics"),
            worker_statistics: format!("{me}/Statistics"),
            reservations: format!("{me}/Reservations"),
        },
        url: me,
    }
}

#[derive(Serialize)]
pub struct WorkerChannelJson<'a> {
    account_sid: Sid,
    assigned_tasks: u32,
    available: bool,
    available_capacity_percentage: u32,
    configured_capacity: u32,
    date_created: Iso,
    date_updated: Iso,
    sid: Sid,
    task_channel_sid: Sid,
    task_channel_unique_name: Option<&'a str>,
    worker_sid: Sid,
    workspace_sid: Sid,
    url: String,
}

pub fn worker_channel<'a>(
    u: &Urls,
    ws: &'a Workspace,
    w: &Worker,
    c: &WorkerChannel,
) -> WorkerChannelJson<'a> {
    let i = ws.info();
    let load = ws.channel_load(w, c);
    WorkerChannelJson {
        account_sid: i.account_sid,
        assigned_tasks: load.assigned_tasks,
        available: c.available,
        available_capacity_percentage: load.available_capacity_percentage,
        configured_capacity: c.configured_capacity,
        date_created: Iso(c.date_created),
        date_updated: Iso(c.date_updated),
        sid: c.sid,
        task_channel_sid: c.task_channel_sid,
        task_channel_unique_name: ws
            .task_channels()
            .get(&c.task_channel_sid)
            .map(|t| t.unique_name.as_ref()),
        worker_sid: w.sid,
        workspace_sid: i.sid,
        url: u.under(i.sid, &format!("Workers/{}/Channels/{}", w.sid, c.sid)),
    }
}

#[derive(Serialize)]
pub struct TaskQueueLinks {
    assignment_activity: Option<String>,
    reservation_activity: Option<String>,
    workspace: String,
    statistics: String,
    real_time_statistics: String,
    cumulative_statistics: String,
    list_statistics: String,
    bulk_real_time_statistics: String,
}

#[derive(Serialize)]
pub struct TaskQueueJson<'a> {
    account_sid: Sid,
    assignment_activity_name: Option<&'a str>,
    assignment_activity_sid: Option<Sid>,
    date_created: Iso,
    date_updated: Iso,
    friendly_name: &'a str,
    max_reserved_workers: u32,
    reservation_activity_name: Option<&'a str>,
    reservation_activity_sid: Option<Sid>,
    sid: Sid,
    target_workers: &'a str,
    task_order: &'static str,
    url: String,
    workspace_sid: Sid,
    links: TaskQueueLinks,
}

pub fn task_queue<'a>(u: &Urls, ws: &'a Workspace, q: &'a TaskQueue) -> TaskQueueJson<'a> {
    let i = ws.info();
    let name = |sid: Option<Sid>| {
        sid.and_then(|s| ws.activities().get(&s))
            .map(|a| a.friendly_name.as_ref())
    };
    let activity_url = |sid: Option<Sid>| sid.map(|s| u.under(i.sid, &format!("Activities/{s}")));
    let me = u.under(i.sid, &format!("TaskQueues/{}", q.sid));
    TaskQueueJson {
        account_sid: i.account_sid,
        assignment_activity_name: name(q.assignment_activity_sid),
        assignment_activity_sid: q.assignment_activity_sid,
        date_created: Iso(q.date_created),
        date_updated: Iso(q.date_updated),
        friendly_name: &q.friendly_name,
        max_reserved_workers: q.max_reserved_workers,
        reservation_activity_name: name(q.reservation_activity_sid),
        reservation_activity_sid: q.reservation_activity_sid,
        sid: q.sid,
        target_workers: &q.target_workers,
        task_order: q.task_order.as_str(),
        workspace_sid: i.sid,
        links: TaskQueueLinks {
            assignment_activity: activity_url(q.assignment_activity_sid),
            reservation_activity: activity_url(q.reservation_activity_sid),
            workspace: u.workspace(i.sid),
            statistics: format!("{me}/Statistics"),
            real_time_statistics: format!("{me}/RealTimeStatistics"),
            cumulative_statistics: format!("{me}/CumulativeStatistics"),
            list_statistics: u.under(i.sid, "TaskQueues/Statistics"),
            bulk_real_time_statistics: u.under(i.sid, "TaskQueues/RealTimeStatistics"),
        },
        url: me,
    }
}

#[derive(Serialize)]
pub struct WorkflowLinks {
    statistics: String,
    real_time_statistics: String,
    cumulative_statistics: String,
}

#[derive(Serialize)]
pub struct WorkflowJson<'a> {
    account_sid: Sid,
    assignment_callback_url: Option<&'a str>,
    configuration: &'a str,
    date_created: Iso,
    date_updated: Iso,
    document_content_type: &'static str,
    fallback_assignment_callback_url: Option<&'a str>,
    friendly_name: &'a str,
    sid: Sid,
    task_reservation_timeout: u32,
    workspace_sid: Sid,
    url: String,
    links: WorkflowLinks,
}

pub fn workflow<'a>(u: &Urls, ws: &Workspace, w: &'a Workflow) -> WorkflowJson<'a> {
    let i = ws.info();
    let me = u.under(i.sid, &format!("Workflows/{}", w.sid));
    WorkflowJson {
        account_sid: i.account_sid,
        assignment_callback_url: w.assignment_callback_url.as_deref(),
        configuration: &w.configuration,
        date_created: Iso(w.date_created),
        date_updated: Iso(w.date_updated),
        document_content_type: "application/json",
        fallback_assignment_callback_url: w.fallback_assignment_callback_url.as_deref(),
        friendly_name: &w.friendly_name,
        sid: w.sid,
        task_reservation_timeout: w.task_reservation_timeout,
        workspace_sid: i.sid,
        links: WorkflowLinks {
            statistics: format!("{me}/Statistics"),
            real_time_statistics: format!("{me}/RealTimeStatistics"),
            cumulative_statistics: format!("{me}/CumulativeStatistics"),
        },
        url: me,
    }
}

/// An account in the 2010-04-01 API's shape (RFC 2822 dates, `.json` URIs).
#[derive(Serialize)]
pub struct AccountJson<'a> {
    auth_token: &'a str,
    date_created: String,
    date_updated: String,
    friendly_name: &'a str,
    owner_account_sid: Sid,
    sid: Sid,
    status: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    uri: String,
    subresource_uris: serde_json::Map<String, serde_json::Value>,
}

/// A timestamp as the 2010-04-01 API writes it (RFC 2822: `Mon, 07 Dec 2026 01:40:14 +0000`).
pub fn rfc2822(ms: Millis) -> String {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc2822)
                .ok()
        })
        .unwrap_or_default()
}

pub fn account(a: &Account) -> AccountJson<'_> {
    let rfc = rfc2822;
    AccountJson {
        auth_token: &a.auth_token,
        date_created: rfc(a.date_created),
        date_updated: rfc(a.date_updated),
        friendly_name: &a.friendly_name,
        owner_account_sid: a.owner_account_sid.unwrap_or(a.sid),
        sid: a.sid,
        status: "active",
        kind: "Full",
        uri: format!("/2010-04-01/Accounts/{}.json", a.sid),
        subresource_uris: serde_json::Map::new(),
    }
}

/// An API key (`secret` only in the answer that created it).
#[derive(Serialize)]
pub struct KeyJson<'a> {
    sid: Sid,
    friendly_name: &'a str,
    date_created: String,
    date_updated: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<&'a str>,
}

pub fn key<'a>(k: &'a ApiKey, secret: Option<&'a str>) -> KeyJson<'a> {
    KeyJson {
        sid: k.sid,
        friendly_name: &k.friendly_name,
        date_created: rfc2822(k.date_created),
        date_updated: rfc2822(k.date_updated),
        secret,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_iso_8601_utc_seconds() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(1_400_064_602_999), "2014-05-14T10:50:02Z");
    }
}

/// Parses an ISO-8601 / RFC 3339 timestamp (`2014-05-14T10:50:02Z`) into milliseconds.
pub fn parse_iso(s: &str) -> Option<Millis> {
    let t = OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as Millis)
}

#[derive(Serialize)]
pub struct TaskLinks {
    task_queue: Option<String>,
    workflow: Option<String>,
    workspace: String,
    reservations: String,
}

#[derive(Serialize)]
pub struct TaskJson<'a> {
    account_sid: Sid,
    age: i64,
    assignment_status: &'static str,
    attributes: Option<&'a str>,
    addons: &'static str,
    date_created: Iso,
    date_updated: Iso,
    task_queue_entered_date: Option<Iso>,
    virtual_start_time: Iso,
    priority: i64,
    reason: Option<&'a str>,
    sid: Sid,
    task_queue_sid: Option<Sid>,
    task_queue_friendly_name: Option<&'a str>,
    task_channel_sid: Sid,
    task_channel_unique_name: Option<&'a str>,
    timeout: u32,
    workflow_sid: Option<Sid>,
    workflow_friendly_name: Option<&'a str>,
    workspace_sid: Sid,
    ignore_capacity: bool,
    routing_target: Option<&'a str>,
    url: String,
    links: TaskLinks,
}

/// A task at time `now` (for `age`); `with_attributes` is false in lists.
pub fn task<'a>(
    u: &Urls,
    ws: &'a Workspace,
    t: &'a Task,
    now: Millis,
    with_attributes: bool,
) -> TaskJson<'a> {
    let i = ws.info();
    let me = u.under(i.sid, &format!("Tasks/{}", t.sid));
    let queue = t.task_queue_sid.and_then(|q| ws.task_queues().get(&q));
    let workflow = t.workflow_sid.and_then(|w| ws.workflows().get(&w));
    TaskJson {
        account_sid: i.account_sid,
        age: ((now - t.date_created) / 1000).max(0),
        assignment_status: t.assignment_status.as_str(),
        attributes: with_attributes.then_some(&*t.attributes),
        addons: "{}",
        date_created: Iso(t.date_created),
        date_updated: Iso(t.date_updated),
        task_queue_entered_date: t.task_queue_entered_date.map(Iso),
        virtual_start_time: Iso(t.virtual_start_time),
        priority: t.priority,
        reason: t.reason.as_deref(),
        sid: t.sid,
        task_queue_sid: t.task_queue_sid,
        task_queue_friendly_name: queue.map(|q| q.friendly_name.as_ref()),
        task_channel_sid: t.task_channel_sid,
        task_channel_unique_name: ws
            .task_channels()
            .get(&t.task_channel_sid)
            .map(|c| c.unique_name.as_ref()),
        timeout: t.timeout,
        workflow_sid: t.workflow_sid,
        workflow_friendly_name: workflow.map(|w| w.friendly_name.as_ref()),
        workspace_sid: i.sid,
        ignore_capacity: t.ignore_capacity,
        routing_target: t.routing_target.as_deref(),
        links: TaskLinks {
            task_queue: t
                .task_queue_sid
                .map(|q| u.under(i.sid, &format!("TaskQueues/{q}"))),
            workflow: t
                .workflow_sid
                .map(|w| u.under(i.sid, &format!("Workflows/{w}"))),
            workspace: u.workspace(i.sid),
            reservations: format!("{me}/Reservations"),
        },
        url: me,
    }
}

#[derive(Serialize)]
pub struct ReservationLinks {
    task: String,
    worker: String,
    workspace: String,
}

#[derive(Serialize)]
pub struct ReservationJson<'a> {
    account_sid: Sid,
    date_created: Iso,
    date_updated: Iso,
    reservation_status: &'static str,
    sid: Sid,
    task_sid: Sid,
    worker_name: Option<&'a str>,
    worker_sid: Sid,
    workspace_sid: Sid,
    url: String,
    links: ReservationLinks,
}

/// Which path a reservation is seen through: `…/Tasks/WT/Reservations` or
/// `…/Workers/WK/Reservations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Task,
    Worker,
}

pub fn reservation<'a>(
    u: &Urls,
    ws: &'a Workspace,
    r: &Reservation,
    scope: Scope,
) -> ReservationJson<'a> {
    let i = ws.info();
    let url = match scope {
        Scope::Task => u.under(
            i.sid,
            &format!("Tasks/{}/Reservations/{}", r.task_sid, r.sid),
        ),
        Scope::Worker => u.under(
            i.sid,
            &format!("Workers/{}/Reservations/{}", r.worker_sid, r.sid),
        ),
    };
    ReservationJson {
        account_sid: i.account_sid,
        date_created: Iso(r.date_created),
        date_updated: Iso(r.date_updated),
        reservation_status: r.status.as_str(),
        sid: r.sid,
        task_sid: r.task_sid,
        worker_name: ws
            .workers()
            .get(&r.worker_sid)
            .map(|w| w.friendly_name.as_ref()),
        worker_sid: r.worker_sid,
        workspace_sid: i.sid,
        url,
        links: ReservationLinks {
            task: u.under(i.sid, &format!("Tasks/{}", r.task_sid)),
            worker: u.under(i.sid, &format!("Workers/{}", r.worker_sid)),
            workspace: u.workspace(i.sid),
        },
    }
}
