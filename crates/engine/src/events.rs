//! TaskRouter Events: what the engine records about every change.
//!
//! Every command and timer leaves a trail of [`Event`]s next to its row [`crate::Change`]s,
//! in the order things happened; the server commits both in the same transaction, so the
//! Events resource, the event callbacks and the live stream only ever show what is durable.
//!
//! An event leaves the engine *compact*: its `event_data` is a list of static snake_case
//! keys with typed values (SIDs, numbers, shared text) — building one costs a few pushes and
//! reference-count increments. Turning it into text (the stored JSON, whose `event_data`
//! values are all strings, and from which callbacks take their parameters) is done by
//! [`Event::to_json`], which the server calls off the workspace's thread.
//!
//! SIDs (`EV…`) are given when the events are handed out, so they sort in the order the
//! events happened.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::Millis;
use crate::model::{Reservation, ReservationStatus, Task, TaskStatus, Worker};
use crate::sid::{Sid, SidSource, prefix};
use crate::workspace::{Command, Workspace};

macro_rules! event_types {
    ($($variant:ident = $name:literal,)*) => {
        /// Every event type Taskyard emits (TaskRouter's list, plus
        /// `reservation.assignment-callback`, Taskyard's record of a callback attempt).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType { $($variant,)* }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(EventType::$variant => $name,)* }
            }

            pub fn parse(s: &str) -> Option<EventType> {
                match s { $($name => Some(EventType::$variant),)* _ => None }
            }
        }
    };
}

event_types! {
    ActivityCreated = "activity.created",
    ActivityUpdated = "activity.updated",
    ActivityDeleted = "activity.deleted",
    ReservationCreated = "reservation.created",
    ReservationAccepted = "reservation.accepted",
    ReservationRejected = "reservation.rejected",
    ReservationTimeout = "reservation.timeout",
    ReservationCanceled = "reservation.canceled",
    ReservationRescinded = "reservation.rescinded",
    ReservationCompleted = "reservation.completed",
    ReservationWrapup = "reservation.wrapup",
    ReservationAssignmentCallback = "reservation.assignment-callback",
    TaskCreated = "task.created",
    TaskUpdated = "task.updated",
    TaskCanceled = "task.canceled",
    TaskWrapup = "task.wrapup",
    TaskCompleted = "task.completed",
    TaskDeleted = "task.deleted",
    TaskSystemDeleted = "task.system-deleted",
    TaskChannelCreated = "task-channel.created",
    TaskChannelUpdated = "task-channel.updated",
    TaskChannelDeleted = "task-channel.deleted",
    TaskQueueCreated = "task-queue.created",
    TaskQueueDeleted = "task-queue.deleted",
    TaskQueueEntered = "task-queue.entered",
    TaskQueueTimeout = "task-queue.timeout",
    TaskQueueMoved = "task-queue.moved",
    TaskQueueExpressionUpdated = "task-queue.expression.updated",
    WorkerCreated = "worker.created",
    WorkerActivityUpdate = "worker.activity.update",
    WorkerAttributesUpdate = "worker.attributes.update",
    WorkerCapacityUpdate = "worker.capacity.update",
    WorkerChannelAvailabilityUpdate = "worker.channel.availability.update",
    WorkerDeleted = "worker.deleted",
    WorkflowCreated = "workflow.created",
    WorkflowUpdated = "workflow.updated",
    WorkflowDeleted = "workflow.deleted",
    WorkflowTargetMatched = "workflow.target-matched",
    WorkflowEntered = "workflow.entered",
    WorkflowTimeout = "workflow.timeout",
    WorkflowSkipped = "workflow.skipped",
    WorkspaceCreated = "workspace.created",
    WorkspaceUpdated = "workspace.updated",
    WorkspaceDeleted = "workspace.deleted",
}

impl EventType {
    /// The kind of resource the event is about (`resource_type`, lowercase as the Event
    /// resource shows it).
    pub fn resource_type(self) -> &'static str {
        let name = self.as_str();
        let family = &name[..name.find('.').unwrap_or(name.len())];
        match family {
            "task-queue" => "taskqueue",
            "task-channel" => "taskchannel",
            other => other,
        }
    }
}

/// One value of `event_data`. Every value becomes a string on the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Sid(Sid),
    Text(Arc<str>),
    Static(&'static str),
    Int(i64),
    Bool(bool),
    /// A moment, rendered as ISO 8601 (UTC, seconds).
    Date(Millis),
}

impl Field {
    fn write(&self, out: &mut String) {
        match self {
            Field::Sid(s) => {
                let _ = write!(out, "{s}");
            }
            Field::Text(t) => out.push_str(t),
            Field::Static(s) => out.push_str(s),
            Field::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Field::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Field::Date(ms) => out.push_str(&iso8601(*ms)),
        }
    }

    /// The value as the text the wire carries.
    pub fn text(&self) -> String {
        let mut s = String::new();
        self.write(&mut s);
        s
    }
}

impl From<Sid> for Field {
    fn from(s: Sid) -> Field {
        Field::Sid(s)
    }
}
impl From<&Arc<str>> for Field {
    fn from(s: &Arc<str>) -> Field {
        Field::Text(s.clone())
    }
}
impl From<&str> for Field {
    fn from(s: &str) -> Field {
        Field::Text(s.into())
    }
}
impl From<&String> for Field {
    fn from(s: &String) -> Field {
        Field::Text(s.as_str().into())
    }
}
impl From<i64> for Field {
    fn from(i: i64) -> Field {
        Field::Int(i)
    }
}
impl From<bool> for Field {
    fn from(b: bool) -> Field {
        Field::Bool(b)
    }
}

/// Where a reservation's assignment callback goes (the workflow's URLs when it was made).
#[derive(Debug, Clone, PartialEq)]
pub struct AssignmentTarget {
    pub url: String,
    pub fallback_url: Option<String>,
}

/// One TaskRouter event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub sid: Sid,
    pub event_type: EventType,
    /// When it happened (Unix ms).
    pub at: Millis,
    pub resource_sid: Sid,
    /// The workspace (shared by all its events).
    pub workspace: Arc<WorkspaceFacts>,
    /// The task the event is about, as it was then (the `task_*` fields).
    pub task: Option<Arc<TaskFacts>>,
    /// The worker the event is about, as it was then (the `worker_*` fields).
    pub worker: Option<Arc<WorkerFacts>>,
    /// The reservation the event is about and its status then.
    pub reservation: Option<(Sid, ReservationStatus)>,
    /// The event's other `event_data` fields (snake_case key → value).
    pub data: Vec<(&'static str, Field)>,
    /// Whether the workspace's event callback wants it: a URL was set and `EventsFilter`
    /// (if any) named this type when the event happened.
    pub callback: bool,
    /// For `reservation.created` when the workflow has an assignment callback URL.
    pub assignment: Option<Box<AssignmentTarget>>,
}

/// The workspace fields present in every event.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceFacts {
    pub account_sid: Sid,
    pub workspace_sid: Sid,
    pub workspace_name: Arc<str>,
}

/// A task as an event describes it. Kept typed (and the names shared) so that recording an
/// event costs little on the workspace's thread; [`Event::fields`] spells it out.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskFacts {
    pub sid: Sid,
    pub attributes: Arc<str>,
    pub date_created: Millis,
    pub priority: i64,
    pub status: TaskStatus,
    pub channel: Sid,
    pub channel_name: Option<Arc<str>>,
    pub version: u64,
    pub timeout: u32,
    /// Queue SID, name and target expression.
    pub queue: Option<(Sid, Arc<str>, Arc<str>)>,
    pub queue_entered: Option<Millis>,
    pub workflow: Option<(Sid, Arc<str>)>,
    pub reason: Option<String>,
}

/// A worker as an event describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerFacts {
    pub sid: Sid,
    pub name: Arc<str>,
    pub attributes: Arc<str>,
    pub activity: Sid,
    /// Activity name and availability.
    pub activity_name: Option<(Arc<str>, bool)>,
    pub version: u64,
}

/// The stored form of an event (everything but the URLs, which depend on the server's
/// public address), as `serde_json` would write it: the reference
/// [`Event::to_json_with`] is checked against.
#[cfg(test)]
#[derive(serde::Serialize)]
///
/// Only what cannot be derived is stored (the account and workspace are in `event_data`,
/// the resource type follows from the event type, the actor is the workspace): events are
/// written by the ten thousand per second, and every byte is written twice (WAL, then the
/// table).
struct Stored {
    sid: Sid,
    event_type: &'static str,
    event_date_ms: Millis,
    resource_sid: Sid,
    description: String,
    event_data: Data,
}

#[cfg(test)]
struct Data(Vec<(&'static str, Field)>);

#[cfg(test)]
impl serde::Serialize for Data {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        let mut buf = String::new();
        for (k, v) in &self.0 {
            buf.clear();
            v.write(&mut buf);
            map.serialize_entry(k, &buf)?;
        }
        map.end()
    }
}

impl Event {
    /// Every `event_data` field: the workspace's, the event's own, the task's, the worker's.
    pub fn fields(&self) -> Vec<(&'static str, Field)> {
        let mut d = self.own_fields();
        if let Some(t) = &self.task {
            d.extend(task_fields(t, self.at));
        }
        if let Some(w) = &self.worker {
            d.extend(worker_fields(w));
        }
        d
    }

    /// The `event_data` fields that are not the task's or the worker's.
    fn own_fields(&self) -> Vec<(&'static str, Field)> {
        let mut d = Vec::with_capacity(40);
        let w = &self.workspace;
        d.push(("account_sid", Field::Sid(w.account_sid)));
        d.push(("workspace_sid", Field::Sid(w.workspace_sid)));
        d.push(("workspace_name", Field::Text(w.workspace_name.clone())));
        if let Some((r, status)) = self.reservation {
            d.push(("reservation_sid", Field::Sid(r)));
            d.push(("reservation_status", Field::Static(status.as_str())));
        }
        d.extend(self.data.iter().cloned());
        d
    }

    /// The value of one `event_data` key (without spelling out the others).
    pub fn get(&self, key: &str) -> Option<Field> {
        if let Some((_, v)) = self.data.iter().find(|(k, _)| *k == key) {
            return Some(v.clone());
        }
        let w = &self.workspace;
        let text = |t: &Arc<str>| Some(Field::Text(t.clone()));
        match key {
            "account_sid" => return Some(Field::Sid(w.account_sid)),
            "workspace_sid" => return Some(Field::Sid(w.workspace_sid)),
            "workspace_name" => return text(&w.workspace_name),
            "reservation_sid" => return self.reservation.map(|r| Field::Sid(r.0)),
            "reservation_status" => {
                return self.reservation.map(|r| Field::Static(r.1.as_str()));
            }
            _ => {}
        }
        if key.starts_with("worker_") {
            let w = self.worker.as_ref()?;
            return match key {
                "worker_sid" => Some(Field::Sid(w.sid)),
                "worker_name" => text(&w.name),
                "worker_attributes" => text(&w.attributes),
                "worker_activity_sid" => Some(Field::Sid(w.activity)),
                "worker_activity_name" => w.activity_name.as_ref().and_then(|a| text(&a.0)),
                _ => self.spelled_out(key),
            };
        }
        let t = self.task.as_ref()?;
        match key {
            "task_sid" => Some(Field::Sid(t.sid)),
            "task_attributes" => text(&t.attributes),
            "task_channel_sid" => Some(Field::Sid(t.channel)),
            "task_queue_sid" => t.queue.as_ref().map(|q| Field::Sid(q.0)),
            "task_queue_name" => t.queue.as_ref().and_then(|q| text(&q.1)),
            "workflow_sid" => t.workflow.as_ref().map(|w| Field::Sid(w.0)),
            "workflow_name" => t.workflow.as_ref().and_then(|w| text(&w.1)),
            _ => self.spelled_out(key),
        }
    }

    /// The value of a key found only by spelling out every field.
    fn spelled_out(&self, key: &str) -> Option<Field> {
        self.fields()
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// The value of one `event_data` key as a SID.
    pub fn sid_of(&self, key: &str) -> Option<Sid> {
        match self.get(key)? {
            Field::Sid(s) => Some(s),
            _ => None,
        }
    }

    fn text_of(&self, key: &str) -> String {
        self.get(key).map(|f| f.text()).unwrap_or_default()
    }

    /// A one-line human description, in the style of TaskRouter's.
    pub fn description(&self) -> String {
        use EventType as E;
        let t = self.event_type;
        let task = || self.text_of("task_sid");
        let reservation = || {
            format!(
                "Reservation {} for Task {} and Worker {}",
                self.text_of("reservation_sid"),
                self.text_of("task_sid"),
                self.text_of("worker_name")
            )
        };
        match t {
            E::ReservationCreated => format!("{} created", reservation()),
            E::ReservationAccepted => format!("{} accepted", reservation()),
            E::ReservationRejected => format!("{} rejected", reservation()),
            E::ReservationTimeout => format!("{} timed out", reservation()),
            E::ReservationCanceled => format!("{} canceled", reservation()),
            E::ReservationRescinded => format!("{} rescinded", reservation()),
            E::ReservationCompleted => format!("{} completed", reservation()),
            E::ReservationWrapup => format!("{} wrapping up", reservation()),
            E::ReservationAssignmentCallback => format!(
                "Assignment callback for Reservation {} to {}: {}",
                self.text_of("reservation_sid"),
                self.text_of("callback_url"),
                self.text_of("callback_outcome")
            ),
            E::TaskCreated => format!("Task {} created", task()),
            E::TaskUpdated => format!("Task {} updated", task()),
            E::TaskCanceled => format!(
                "Task {} canceled: {}",
                task(),
                self.text_of("task_canceled_reason")
            ),
            E::TaskWrapup => format!("Task {} wrapping up", task()),
            E::TaskCompleted => format!(
                "Task {} completed: {}",
                task(),
                self.text_of("task_completed_reason")
            ),
            E::TaskDeleted => format!("Task {} deleted", task()),
            E::TaskSystemDeleted => format!("Task {} deleted by the system", task()),
            E::TaskQueueEntered => format!(
                "Task {} entered TaskQueue {}",
                task(),
                self.text_of("task_queue_name")
            ),
            E::TaskQueueTimeout => format!(
                "Task {} timed out of TaskQueue {}",
                task(),
                self.text_of("task_queue_name")
            ),
            E::TaskQueueMoved => format!(
                "Task {} moved to TaskQueue {}",
                task(),
                self.text_of("task_queue_name")
            ),
            E::WorkflowEntered => format!(
                "Task {} entered Workflow {}",
                task(),
                self.text_of("workflow_name")
            ),
            E::WorkflowTargetMatched => format!(
                "Task {} matched filter '{}' of Workflow {}",
                task(),
                self.text_of("workflow_filter_name"),
                self.text_of("workflow_name")
            ),
            E::WorkflowTimeout => format!(
                "Task {} timed out of Workflow {}",
                task(),
                self.text_of("workflow_name")
            ),
            E::WorkflowSkipped => format!(
                "Task {} skipped a target of Workflow {}",
                task(),
                self.text_of("workflow_name")
            ),
            E::WorkerActivityUpdate => format!(
                "Worker {} updated to {} Activity",
                self.text_of("worker_name"),
                self.text_of("worker_activity_name")
            ),
            E::WorkerAttributesUpdate => {
                format!("Worker {} attributes updated", self.text_of("worker_name"))
            }
            E::WorkerCapacityUpdate => format!(
                "Worker {} capacity on {} updated to {}",
                self.text_of("worker_name"),
                self.text_of("task_channel_unique_name"),
                self.text_of("worker_channel_capacity")
            ),
            E::WorkerChannelAvailabilityUpdate => format!(
                "Worker {} availability on {} updated to {}",
                self.text_of("worker_name"),
                self.text_of("task_channel_unique_name"),
                self.text_of("worker_channel_available")
            ),
            E::WorkerCreated => format!("Worker {} created", self.text_of("worker_name")),
            E::WorkerDeleted => format!("Worker {} deleted", self.text_of("worker_name")),
            _ => {
                // Created / updated / deleted of configuration resources.
                let name = t.as_str();
                let (family, verb) = name.split_at(name.find('.').unwrap_or(name.len()));
                let noun = match family {
                    "activity" => "Activity",
                    "task-channel" => "TaskChannel",
                    "task-queue" => "TaskQueue",
                    "workflow" => "Workflow",
                    _ => "Workspace",
                };
                let verb = verb.trim_start_matches('.').replace('.', " ");
                format!("{noun} {} {verb}", self.resource_sid)
            }
        }
    }

    /// The event as the JSON the store keeps: the Event resource without what can be
    /// derived (its URLs, `account_sid`, `workspace_sid`, `resource_type`, `actor_*`).
    pub fn to_json(&self) -> String {
        self.to_json_with(&mut Rendered::default())
    }

    /// [`Event::to_json`], reusing the task's and the worker's fields as `rendered` holds
    /// them from the event before, when this event shows the same. Written directly, byte
    /// for byte what `serde_json` makes of the stored form (the tests' reference).
    pub fn to_json_with(&self, rendered: &mut Rendered) -> String {
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(b"{\"sid\":\"");
        out.extend_from_slice(&self.sid.text());
        out.extend_from_slice(b"\",\"event_type\":");
        json_str(&mut out, self.event_type.as_str());
        out.extend_from_slice(b",\"event_date_ms\":");
        out.extend_from_slice(self.at.to_string().as_bytes());
        out.extend_from_slice(b",\"resource_sid\":\"");
        out.extend_from_slice(&self.resource_sid.text());
        out.extend_from_slice(b"\",\"description\":");
        json_str(&mut out, &self.description());
        out.extend_from_slice(b",\"event_data\":{");
        let mut empty = true;
        entries(&mut out, &self.own_fields(), &mut empty);
        if let Some(t) = &self.task {
            let same =
                matches!(&rendered.task, Some((r, at, _)) if Arc::ptr_eq(r, t) && *at == self.at);
            if !same {
                let mut text = Vec::new();
                entries(&mut text, &task_fields(t, self.at), &mut true);
                rendered.task = Some((t.clone(), self.at, text));
            }
            if let Some((_, _, text)) = &rendered.task {
                splice(&mut out, text, &mut empty);
            }
        }
        if let Some(w) = &self.worker {
            let same = matches!(&rendered.worker, Some((r, _)) if Arc::ptr_eq(r, w));
            if !same {
                let mut text = Vec::new();
                entries(&mut text, &worker_fields(w), &mut true);
                rendered.worker = Some((w.clone(), text));
            }
            if let Some((_, text)) = &rendered.worker {
                splice(&mut out, text, &mut empty);
            }
        }
        out.extend_from_slice(b"}}");
        // Built from `&str`s and ASCII only.
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The task and worker fields of the last event rendered by [`Event::to_json_with`]: the
/// events of one command mostly show the same task (all five of a new task do), and
/// rendering its fields, attributes included, five times was a tenth of a task's cost.
/// Recognised by allocation (the events of one moment share one `Arc` of the facts), and
/// the task's also by the event's time, which its `task_age` depends on.
#[derive(Default)]
pub struct Rendered {
    task: Option<(Arc<TaskFacts>, Millis, Vec<u8>)>,
    worker: Option<(Arc<WorkerFacts>, Vec<u8>)>,
}

/// Appends `s` as a JSON string, escaped as `serde_json` escapes.
fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Appends `"key":"value"` for each field, after a comma unless `*empty`.
fn entries(out: &mut Vec<u8>, fields: &[(&'static str, Field)], empty: &mut bool) {
    let mut value = String::new();
    for (k, v) in fields {
        if !std::mem::take(empty) {
            out.push(b',');
        }
        json_str(out, k);
        out.push(b':');
        value.clear();
        v.write(&mut value);
        json_str(out, &value);
    }
}

/// Appends entries rendered by [`entries`] (possibly none).
fn splice(out: &mut Vec<u8>, text: &[u8], empty: &mut bool) {
    if text.is_empty() {
        return;
    }
    if !std::mem::take(empty) {
        out.push(b',');
    }
    out.extend_from_slice(text);
}

/// The `event_data` fields of the task an event at `at` shows.
fn task_fields(t: &TaskFacts, at: Millis) -> Vec<(&'static str, Field)> {
    let mut d = Vec::with_capacity(20);
    d.push(("task_sid", Field::Sid(t.sid)));
    d.push(("task_attributes", Field::Text(t.attributes.clone())));
    d.push(("task_age", Field::Int((at - t.date_created).max(0) / 1000)));
    d.push(("task_priority", Field::Int(t.priority)));
    d.push(("task_assignment_status", Field::Static(t.status.as_str())));
    d.push(("task_channel_sid", Field::Sid(t.channel)));
    if let Some(n) = &t.channel_name {
        d.push(("task_channel_unique_name", Field::Text(n.clone())));
    }
    d.push(("task_date_created", Field::Date(t.date_created)));
    d.push(("task_version", Field::Int(t.version as i64)));
    d.push(("task_timeout", Field::Int(i64::from(t.timeout))));
    if let Some((q, name, target)) = &t.queue {
        d.push(("task_queue_sid", Field::Sid(*q)));
        d.push(("task_queue_name", Field::Text(name.clone())));
        d.push(("task_queue_target_expression", Field::Text(target.clone())));
    }
    if let Some(at) = t.queue_entered {
        d.push(("task_queue_entered_date", Field::Date(at)));
    }
    if let Some((w, name)) = &t.workflow {
        d.push(("workflow_sid", Field::Sid(*w)));
        d.push(("workflow_name", Field::Text(name.clone())));
    }
    let reason = || Field::Text(t.reason.as_deref().unwrap_or("").into());
    match t.status {
        TaskStatus::Canceled => d.push(("task_canceled_reason", reason())),
        TaskStatus::Completed => d.push(("task_completed_reason", reason())),
        _ => {}
    }
    d
}

/// The `event_data` fields of the worker an event shows.
fn worker_fields(w: &WorkerFacts) -> Vec<(&'static str, Field)> {
    let mut d = Vec::with_capacity(8);
    d.push(("worker_sid", Field::Sid(w.sid)));
    d.push(("worker_name", Field::Text(w.name.clone())));
    d.push(("worker_attributes", Field::Text(w.attributes.clone())));
    d.push(("worker_activity_sid", Field::Sid(w.activity)));
    if let Some((name, available)) = &w.activity_name {
        d.push(("worker_activity_name", Field::Text(name.clone())));
        d.push(("worker_available", Field::Bool(*available)));
    }
    d.push(("worker_version", Field::Int(w.version as i64)));
    d
}

/// Unix milliseconds as `2024-01-02T03:04:05Z`.
pub fn iso8601(ms: Millis) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

// ----- building events inside the engine -----------------------------------------------

/// What a configuration command will need to describe itself once applied: captured
/// before the command consumes the state it changes.
pub(crate) enum Before {
    None,
    Created(EventType),
    Updated(EventType),
    Deleted(Box<Event>),
    Worker {
        activity: Sid,
        since: Millis,
        attributes: Arc<str>,
    },
    WorkerChannels(Vec<(Sid, u32, bool)>),
    TaskQueue(Arc<str>),
}

impl Workspace {
    fn wants_callback(&self, t: EventType) -> bool {
        if self.info.event_callback_url.is_none() {
            return false;
        }
        match &self.info.events_filter {
            None => true,
            Some(f) => f.split(',').any(|x| x.trim() == t.as_str()),
        }
    }

    /// A new event about `resource_sid` (its SID is given when the events are handed out).
    pub(crate) fn new_event(&self, event_type: EventType, resource_sid: Sid, now: Millis) -> Event {
        Event {
            sid: Sid::new(prefix::EVENT, 0),
            event_type,
            at: now,
            resource_sid,
            workspace: self.workspace_facts(),
            task: None,
            worker: None,
            reservation: None,
            data: Vec::new(),
            callback: false,
            assignment: None,
        }
    }

    /// The workspace's part of every event, shared until the workspace is renamed.
    fn workspace_facts(&self) -> Arc<WorkspaceFacts> {
        match &self.routing.workspace_facts {
            Some(f) if Arc::ptr_eq(&f.workspace_name, &self.info.friendly_name) => f.clone(),
            _ => Arc::new(WorkspaceFacts {
                account_sid: self.info.account_sid,
                workspace_sid: self.info.sid,
                workspace_name: self.info.friendly_name.clone(),
            }),
        }
    }

    /// Called before each command or tick: builds the shared workspace facts again if the
    /// workspace was renamed, and forgets the last task facts (names may have changed).
    pub(crate) fn refresh_workspace_facts(&mut self) {
        let facts = self.workspace_facts();
        self.routing.workspace_facts = Some(facts);
    }

    /// Forgets the cached task facts: a configuration change may have renamed what they
    /// show (a queue, a workflow, a channel).
    pub(crate) fn forget_facts(&mut self) {
        self.routing.last_task_facts = None;
    }

    /// Records `e`.
    pub(crate) fn push_event(&mut self, mut e: Event) {
        e.callback = self.wants_callback(e.event_type);
        self.routing.events.push(e);
    }

    /// Hands out the events recorded since the last call, with their SIDs.
    pub(crate) fn take_events(&mut self, now: Millis, ids: &mut dyn SidSource) -> Vec<Event> {
        // The buffer keeps its capacity; what leaves is allocated once, at its size.
        self.routing
            .events
            .drain(..)
            .map(|mut e| {
                e.sid = ids.next_sid(prefix::EVENT, now);
                e
            })
            .collect()
    }

    /// The task's facts, shared with the previous event when that was about the same task
    /// and nothing they show changed since (a new task's first events all describe the
    /// same moment).
    fn task_facts(&mut self, task: Sid) -> Option<Arc<TaskFacts>> {
        let t = self.routing.tasks.get(&task)?;
        let key = (
            t.sid,
            t.version,
            t.assignment_status,
            t.task_queue_sid,
            t.priority,
            t.task_queue_entered_date,
        );
        if let Some((k, f)) = &self.routing.last_task_facts
            && *k == key
        {
            return Some(f.clone());
        }
        let f = Arc::new(self.build_task_facts(t));
        self.routing.last_task_facts = Some((key, f.clone()));
        Some(f)
    }

    fn worker_facts(&self, worker: Sid) -> Option<Arc<WorkerFacts>> {
        let w = self.workers.get(&worker)?;
        Some(Arc::new(self.build_worker_facts(w)))
    }

    fn build_task_facts(&self, t: &Task) -> TaskFacts {
        let queue = t.task_queue_sid.map(|q| match self.task_queues.get(&q) {
            Some(tq) => (q, tq.friendly_name.clone(), tq.target_workers.clone()),
            None => (q, Arc::from(""), Arc::from("")),
        });
        TaskFacts {
            sid: t.sid,
            attributes: t.attributes.clone(),
            date_created: t.date_created,
            priority: t.priority,
            status: t.assignment_status,
            channel: t.task_channel_sid,
            channel_name: self
                .task_channels
                .get(&t.task_channel_sid)
                .map(|c| c.unique_name.clone()),
            version: t.version,
            timeout: t.timeout,
            queue,
            queue_entered: t.task_queue_entered_date,
            workflow: t.workflow_sid.map(|w| {
                let name = self.workflows.get(&w).map(|f| f.friendly_name.clone());
                (w, name.unwrap_or_else(|| Arc::from("")))
            }),
            reason: if t.assignment_status.is_terminal() {
                t.reason.clone()
            } else {
                None
            },
        }
    }

    fn build_worker_facts(&self, w: &Worker) -> WorkerFacts {
        WorkerFacts {
            sid: w.sid,
            name: w.friendly_name.clone(),
            attributes: w.attributes.clone(),
            activity: w.activity_sid,
            activity_name: self
                .activities
                .get(&w.activity_sid)
                .map(|a| (a.friendly_name.clone(), a.available)),
            version: w.version,
        }
    }

    /// An event about a task (with the task's fields and `extra`).
    pub(crate) fn emit_task(
        &mut self,
        event_type: EventType,
        task: Sid,
        now: Millis,
        extra: Vec<(&'static str, Field)>,
    ) {
        let Some(facts) = self.task_facts(task) else {
            return;
        };
        let mut e = self.new_event(event_type, task, now);
        e.task = Some(facts);
        e.data = extra;
        self.push_event(e);
    }

    /// An event about a reservation: the reservation, its task and its worker.
    pub(crate) fn reservation_event(
        &mut self,
        event_type: EventType,
        sid: Sid,
        now: Millis,
    ) -> Option<Event> {
        let r = self.routing.reservations.get(&sid)?;
        let (task, worker) = (r.task_sid, r.worker_sid);
        let task_facts = self.task_facts(task);
        let worker_facts = self.worker_facts(worker);
        let r = self.routing.reservations.get(&sid)?;
        Some(self.describe_reservation(event_type, r, now, task_facts, worker_facts))
    }

    fn describe_reservation(
        &self,
        event_type: EventType,
        r: &Reservation,
        now: Millis,
        task: Option<Arc<TaskFacts>>,
        worker: Option<Arc<WorkerFacts>>,
    ) -> Event {
        let mut e = self.new_event(event_type, r.sid, now);
        e.reservation = Some((r.sid, r.status));
        if task.is_none() {
            e.data.push(("task_sid", Field::Sid(r.task_sid)));
        }
        if worker.is_none() {
            e.data.push(("worker_sid", Field::Sid(r.worker_sid)));
        }
        e.task = task;
        e.worker = worker;
        e
    }

    /// A `reservation.created` event, not recorded (its SID is the reservation's), for
    /// every pending reservation whose workflow has an assignment callback URL: a restarted
    /// server cannot know whether those callbacks were answered, so it sends them again.
    pub fn pending_assignments(&self, now: Millis) -> Vec<Event> {
        self.routing
            .reservations
            .values()
            .filter(|r| r.status == crate::ReservationStatus::Pending)
            .filter_map(|r| {
                let wf = self.workflows.get(&r.workflow_sid?)?;
                let assignment = AssignmentTarget {
                    url: wf.assignment_callback_url.clone()?,
                    fallback_url: wf.fallback_assignment_callback_url.clone(),
                };
                let task = self.routing.tasks.get(&r.task_sid);
                let worker = self.workers.get(&r.worker_sid);
                let mut e = self.describe_reservation(
                    EventType::ReservationCreated,
                    r,
                    now,
                    task.map(|t| Arc::new(self.build_task_facts(t))),
                    worker.map(|w| Arc::new(self.build_worker_facts(w))),
                );
                e.sid = r.sid;
                e.assignment = Some(Box::new(assignment));
                Some(e)
            })
            .collect()
    }

    /// Records an event about a reservation.
    pub(crate) fn emit_reservation(&mut self, event_type: EventType, sid: Sid, now: Millis) {
        if let Some(e) = self.reservation_event(event_type, sid, now) {
            self.push_event(e);
        }
    }

    /// An event about a worker (with the worker's fields and `extra`).
    pub(crate) fn emit_worker(
        &mut self,
        event_type: EventType,
        worker: Sid,
        now: Millis,
        extra: Vec<(&'static str, Field)>,
    ) {
        let Some(facts) = self.worker_facts(worker) else {
            return;
        };
        let mut e = self.new_event(event_type, worker, now);
        e.worker = Some(facts);
        e.data = extra;
        self.push_event(e);
    }

    /// `worker.activity.update` after a worker moved from `previous` (held since `since`).
    pub(crate) fn emit_activity_change(
        &mut self,
        worker: Sid,
        previous: Sid,
        since: Millis,
        now: Millis,
    ) {
        let in_previous = (now - since).max(0);
        let mut extra = vec![
            ("worker_previous_activity_sid", Field::Sid(previous)),
            (
                "worker_time_in_previous_activity",
                Field::Int(in_previous / 1000),
            ),
            (
                "worker_time_in_previous_activity_ms",
                Field::Int(in_previous),
            ),
        ];
        if let Some(a) = self.activities.get(&previous) {
            extra.push(("worker_previous_activity_name", (&a.friendly_name).into()));
        }
        self.emit_worker(EventType::WorkerActivityUpdate, worker, now, extra);
    }

    /// An event describing a configuration resource (activity, task channel, task queue,
    /// workflow, worker, workspace), or `None` if it does not exist.
    pub(crate) fn config_event(
        &self,
        event_type: EventType,
        sid: Sid,
        now: Millis,
    ) -> Option<Event> {
        let mut e = self.new_event(event_type, sid, now);
        let d = &mut e.data;
        match sid.prefix() {
            prefix::ACTIVITY => {
                let a = self.activities.get(&sid)?;
                d.push(("activity_sid", Field::Sid(sid)));
                d.push(("activity_name", (&a.friendly_name).into()));
                d.push(("activity_available", Field::Bool(a.available)));
            }
            prefix::TASK_CHANNEL => {
                let c = self.task_channels.get(&sid)?;
                d.push(("task_channel_sid", Field::Sid(sid)));
                d.push(("task_channel_name", (&c.friendly_name).into()));
                d.push(("task_channel_unique_name", (&c.unique_name).into()));
                if let Some(o) = c.channel_optimized_routing {
                    d.push(("task_channel_optimized_routing", Field::Bool(o)));
                }
            }
            prefix::TASK_QUEUE => {
                let q = self.task_queues.get(&sid)?;
                d.push(("task_queue_sid", Field::Sid(sid)));
                d.push(("task_queue_name", (&q.friendly_name).into()));
                d.push(("task_queue_target_expression", (&q.target_workers).into()));
            }
            prefix::WORKFLOW => {
                let w = self.workflows.get(&sid)?;
                d.push(("workflow_sid", Field::Sid(sid)));
                d.push(("workflow_name", (&w.friendly_name).into()));
            }
            prefix::WORKER => {
                let w = self.workers.get(&sid)?;
                e.worker = Some(Arc::new(self.build_worker_facts(w)));
            }
            prefix::WORKSPACE => {}
            _ => return None,
        }
        Some(e)
    }

    /// What `cmd` will need to describe itself once applied.
    pub(crate) fn before(&self, cmd: &Command) -> Before {
        use EventType as E;
        // Deleted resources are described before they go (the time is set when recorded).
        let deleted = |t: EventType, sid: Sid| match self.config_event(t, sid, 0) {
            Some(e) => Before::Deleted(Box::new(e)),
            None => Before::None,
        };
        match cmd {
            Command::UpdateWorkspace(_) => Before::Updated(E::WorkspaceUpdated),
            Command::DeleteWorkspace => deleted(E::WorkspaceDeleted, self.info.sid),
            Command::CreateActivity { .. } => Before::Created(E::ActivityCreated),
            Command::UpdateActivity { .. } => Before::Updated(E::ActivityUpdated),
            Command::DeleteActivity { sid } => deleted(E::ActivityDeleted, *sid),
            Command::CreateTaskChannel { .. } => Before::Created(E::TaskChannelCreated),
            Command::UpdateTaskChannel { .. } => Before::Updated(E::TaskChannelUpdated),
            Command::DeleteTaskChannel { channel } => match self.find_task_channel(channel) {
                Some(c) => deleted(E::TaskChannelDeleted, c.sid),
                None => Before::None,
            },
            Command::CreateWorker(_) => Before::Created(E::WorkerCreated),
            Command::UpdateWorker(p) => match self.workers.get(&p.sid) {
                Some(w) => Before::Worker {
                    activity: w.activity_sid,
                    since: w.date_status_changed,
                    attributes: w.attributes.clone(),
                },
                None => Before::None,
            },
            Command::DeleteWorker { sid, .. } => deleted(E::WorkerDeleted, *sid),
            Command::UpdateWorkerChannel { worker, .. } => match self.workers.get(worker) {
                Some(w) => Before::WorkerChannels(
                    w.channels
                        .iter()
                        .map(|c| (c.sid, c.configured_capacity, c.available))
                        .collect(),
                ),
                None => Before::None,
            },
            Command::CreateTaskQueue(_) => Before::Created(E::TaskQueueCreated),
            Command::UpdateTaskQueue { sid, .. } => match self.task_queues.get(sid) {
                Some(q) => Before::TaskQueue(q.target_workers.clone()),
                None => Before::None,
            },
            Command::DeleteTaskQueue { sid } => deleted(E::TaskQueueDeleted, *sid),
            Command::CreateWorkflow(_) => Before::Created(E::WorkflowCreated),
            Command::UpdateWorkflow { .. } => Before::Updated(E::WorkflowUpdated),
            Command::DeleteWorkflow { sid } => deleted(E::WorkflowDeleted, *sid),
            Command::CreateTask(_)
            | Command::UpdateTask(_)
            | Command::DeleteTask { .. }
            | Command::UpdateReservation(_)
            | Command::AssignmentCallback(_) => Before::None,
        }
    }

    /// Records the events of a configuration command that changed `sid`.
    pub(crate) fn config_events(&mut self, before: Before, sid: Sid, now: Millis) {
        use EventType as E;
        match before {
            Before::None => {}
            Before::Created(t) | Before::Updated(t) => {
                let resource = if t == E::WorkspaceUpdated {
                    self.info.sid
                } else {
                    sid
                };
                if let Some(e) = self.config_event(t, resource, now) {
                    self.push_event(e);
                }
            }
            Before::Deleted(mut e) => {
                e.at = now;
                self.push_event(*e);
            }
            Before::Worker {
                activity,
                since,
                attributes,
            } => {
                let Some(w) = self.workers.get(&sid) else {
                    return;
                };
                let (now_activity, now_attributes) = (w.activity_sid, w.attributes.clone());
                if now_attributes != attributes {
                    self.emit_worker(E::WorkerAttributesUpdate, sid, now, Vec::new());
                }
                if now_activity != activity {
                    self.emit_activity_change(sid, activity, since, now);
                }
            }
            Before::WorkerChannels(old) => {
                // `sid` is the worker channel; find its worker and what changed.
                let found = self.workers.values().find_map(|w| {
                    w.channels
                        .iter()
                        .find(|c| c.sid == sid)
                        .map(|c| (w.sid, c.clone()))
                });
                let Some((worker, c)) = found else { return };
                let Some(&(_, capacity, available)) = old.iter().find(|o| o.0 == sid) else {
                    return;
                };
                let (pending, assigned) = self.channel_counts(worker, c.task_channel_sid);
                let mut extra = vec![
                    ("worker_channel_sid", Field::Sid(c.sid)),
                    ("task_channel_sid", Field::Sid(c.task_channel_sid)),
                    (
                        "worker_channel_capacity",
                        Field::Int(i64::from(c.configured_capacity)),
                    ),
                    (
                        "worker_channel_previous_capacity",
                        Field::Int(i64::from(capacity)),
                    ),
                    (
                        "worker_channel_available_capacity",
                        Field::Int(
                            i64::from(c.configured_capacity) - i64::from(pending + assigned),
                        ),
                    ),
                    ("worker_channel_available", Field::Bool(c.available)),
                    (
                        "worker_channel_task_count",
                        Field::Int(i64::from(pending + assigned)),
                    ),
                ];
                if let Some(tc) = self.task_channels.get(&c.task_channel_sid) {
                    extra.push(("task_channel_unique_name", (&tc.unique_name).into()));
                }
                if c.configured_capacity != capacity {
                    self.emit_worker(E::WorkerCapacityUpdate, worker, now, extra.clone());
                }
                if c.available != available {
                    self.emit_worker(E::WorkerChannelAvailabilityUpdate, worker, now, extra);
                }
            }
            Before::TaskQueue(target) => {
                let changed = self
                    .task_queues
                    .get(&sid)
                    .is_some_and(|q| q.target_workers != target);
                if changed
                    && let Some(e) = self.config_event(E::TaskQueueExpressionUpdated, sid, now)
                {
                    self.push_event(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_render_in_utc() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_700_000_000_123), "2023-11-14T22:13:20Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn every_type_round_trips_and_has_a_family() {
        for &t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert!(!t.resource_type().is_empty());
        }
        assert_eq!(EventType::TaskQueueEntered.resource_type(), "taskqueue");
        assert_eq!(EventType::WorkerActivityUpdate.resource_type(), "worker");
    }

    #[test]
    fn rendered_json_is_what_serde_makes_of_the_stored_form_and_reuses_only_what_is_the_same() {
        let workspace = Arc::new(WorkspaceFacts {
            account_sid: Sid::new("AC", 1),
            workspace_sid: Sid::new("WS", 1),
            workspace_name: "Quote \" and \\ and tab\t and é".into(),
        });
        let task = Arc::new(TaskFacts {
            sid: Sid::new("WT", 3),
            attributes: r#"{"name":"Zoë \"Z\"","n":[1,2]}"#.into(),
            date_created: 1_000,
            priority: 5,
            status: TaskStatus::Canceled,
            channel: Sid::new("TC", 1),
            channel_name: Some("voice".into()),
            version: 2,
            timeout: 3600,
            queue: Some((Sid::new("WQ", 1), "Q\n1".into(), "1==1".into())),
            queue_entered: Some(1_500),
            workflow: Some((Sid::new("WW", 1), "Flow".into())),
            reason: Some("gone\u{1}".into()),
        });
        let worker = Arc::new(WorkerFacts {
            sid: Sid::new("WK", 1),
            name: "Alice".into(),
            attributes: "{}".into(),
            activity: Sid::new("WA", 1),
            activity_name: Some(("Available".into(), true)),
            version: 7,
        });
        let event = |sid: u128, at: Millis, task: Option<&Arc<TaskFacts>>| Event {
            sid: Sid::new("EV", sid),
            event_type: EventType::TaskCanceled,
            at,
            resource_sid: Sid::new("WT", 3),
            reservation: Some((Sid::new("WR", 1), ReservationStatus::Canceled)),
            workspace: workspace.clone(),
            task: task.cloned(),
            worker: Some(worker.clone()),
            data: vec![("task_canceled_reason", Field::Text("x".into()))],
            callback: true,
            assignment: None,
        };
        let reference = |e: &Event| {
            serde_json::to_string(&Stored {
                sid: e.sid,
                event_type: e.event_type.as_str(),
                event_date_ms: e.at,
                resource_sid: e.resource_sid,
                description: e.description(),
                event_data: Data(e.fields()),
            })
            .expect("serialize")
        };
        let other_task = Arc::new(TaskFacts {
            version: 3,
            ..(*task).clone()
        });
        // One `Rendered` across events, as the writer keeps one per command: the same task
        // at the same moment is reused; a later moment (task_age) or other facts are not.
        let mut rendered = Rendered::default();
        for e in [
            event(1, 1_000, Some(&task)),
            event(2, 1_000, Some(&task)),
            event(3, 9_000, Some(&task)),
            event(4, 9_000, Some(&other_task)),
            event(5, 9_000, None),
            event(6, 9_000, Some(&task)),
        ] {
            assert_eq!(e.to_json_with(&mut rendered), reference(&e));
        }
    }

    #[test]
    fn stored_json_has_string_values() {
        let e = Event {
            sid: Sid::new("EV", 2),
            event_type: EventType::TaskCreated,
            at: 1_000,
            resource_sid: Sid::new("WT", 3),
            reservation: None,
            workspace: Arc::new(WorkspaceFacts {
                account_sid: Sid::new("AC", 1),
                workspace_sid: Sid::new("WS", 1),
                workspace_name: "W".into(),
            }),
            task: None,
            worker: None,
            data: vec![
                ("task_sid", Sid::new("WT", 3).into()),
                ("task_priority", 5i64.into()),
            ],
            callback: false,
            assignment: None,
        };
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).expect("json");
        assert_eq!(v["event_data"]["task_priority"], "5");
        assert_eq!(v["event_type"], "task.created");
        assert_eq!(v["event_data"]["workspace_name"], "W");
        assert_eq!(
            v["event_data"]["workspace_sid"],
            Sid::new("WS", 1).to_string()
        );
        assert!(v.get("resource_type").is_none(), "derived at read time");
    }
}
