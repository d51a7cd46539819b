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

use serde::Serialize;

use crate::Millis;
use crate::model::{Reservation, Task, TaskStatus, Worker};
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
    /// snake_case key → value, in a stable order.
    pub data: Vec<(&'static str, Field)>,
    /// Whether the workspace's event callback wants it: a URL was set and `EventsFilter`
    /// (if any) named this type when the event happened.
    pub callback: bool,
    /// For `reservation.created` when the workflow has an assignment callback URL.
    pub assignment: Option<AssignmentTarget>,
}

/// The stored form of an event (everything but the URLs, which depend on the server's
/// public address).
#[derive(Serialize)]
struct Stored<'a> {
    sid: Sid,
    account_sid: Option<String>,
    workspace_sid: Option<String>,
    event_type: &'static str,
    event_date_ms: Millis,
    resource_type: &'static str,
    resource_sid: Sid,
    actor_type: &'static str,
    actor_sid: Option<String>,
    description: String,
    event_data: Data<'a>,
}

struct Data<'a>(&'a [(&'static str, Field)]);

impl Serialize for Data<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        let mut buf = String::new();
        for (k, v) in self.0 {
            buf.clear();
            v.write(&mut buf);
            map.serialize_entry(k, &buf)?;
        }
        map.end()
    }
}

impl Event {
    /// The value of one `event_data` key.
    pub fn get(&self, key: &str) -> Option<&Field> {
        self.data.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The value of one `event_data` key as a SID.
    pub fn sid_of(&self, key: &str) -> Option<Sid> {
        match self.get(key)? {
            Field::Sid(s) => Some(*s),
            _ => None,
        }
    }

    fn text_of(&self, key: &str) -> String {
        self.get(key).map(Field::text).unwrap_or_default()
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

    /// The event as the JSON the store keeps (the Event resource without its URLs).
    pub fn to_json(&self) -> String {
        let stored = Stored {
            sid: self.sid,
            account_sid: self.get("account_sid").map(Field::text),
            workspace_sid: self.get("workspace_sid").map(Field::text),
            event_type: self.event_type.as_str(),
            event_date_ms: self.at,
            resource_type: self.event_type.resource_type(),
            resource_sid: self.resource_sid,
            actor_type: "workspace",
            actor_sid: self.get("workspace_sid").map(Field::text),
            description: self.description(),
            event_data: Data(&self.data),
        };
        // Plain structs and string maps always serialize.
        serde_json::to_string(&stored).unwrap_or_default()
    }
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
    Deleted(EventType, Vec<(&'static str, Field)>),
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

    /// Records an event (its SID is given when the events are handed out).
    pub(crate) fn emit(
        &mut self,
        event_type: EventType,
        resource_sid: Sid,
        data: Vec<(&'static str, Field)>,
        now: Millis,
    ) {
        let callback = self.wants_callback(event_type);
        self.routing.events.push(Event {
            sid: Sid::new(prefix::EVENT, 0),
            event_type,
            at: now,
            resource_sid,
            data,
            callback,
            assignment: None,
        });
    }

    /// Hands out the events recorded since the last call, with their SIDs.
    pub(crate) fn take_events(&mut self, now: Millis, ids: &mut dyn SidSource) -> Vec<Event> {
        let mut events = std::mem::take(&mut self.routing.events);
        for e in &mut events {
            e.sid = ids.next_sid(prefix::EVENT, now);
        }
        events
    }

    /// `account_sid`, `workspace_sid`, `workspace_name`: present in every event.
    fn base_fields(&self, capacity: usize) -> Vec<(&'static str, Field)> {
        let mut d = Vec::with_capacity(capacity + 3);
        d.push(("account_sid", Field::Sid(self.info.account_sid)));
        d.push(("workspace_sid", Field::Sid(self.info.sid)));
        d.push(("workspace_name", (&self.info.friendly_name).into()));
        d
    }

    fn task_fields(&self, t: &Task, now: Millis, d: &mut Vec<(&'static str, Field)>) {
        d.push(("task_sid", Field::Sid(t.sid)));
        d.push(("task_attributes", (&t.attributes).into()));
        d.push(("task_age", Field::Int((now - t.date_created).max(0) / 1000)));
        d.push(("task_priority", Field::Int(t.priority)));
        d.push((
            "task_assignment_status",
            Field::Static(t.assignment_status.as_str()),
        ));
        d.push(("task_channel_sid", Field::Sid(t.task_channel_sid)));
        if let Some(c) = self.task_channels.get(&t.task_channel_sid) {
            d.push(("task_channel_unique_name", (&c.unique_name).into()));
        }
        d.push(("task_date_created", Field::Date(t.date_created)));
        d.push(("task_version", Field::Int(t.version as i64)));
        d.push(("task_timeout", Field::Int(i64::from(t.timeout))));
        if let Some(q) = t.task_queue_sid {
            d.push(("task_queue_sid", Field::Sid(q)));
            if let Some(q) = self.task_queues.get(&q) {
                d.push(("task_queue_name", (&q.friendly_name).into()));
                d.push(("task_queue_target_expression", (&q.target_workers).into()));
            }
            if let Some(at) = t.task_queue_entered_date {
                d.push(("task_queue_entered_date", Field::Date(at)));
            }
        }
        if let Some(w) = t.workflow_sid {
            d.push(("workflow_sid", Field::Sid(w)));
            if let Some(w) = self.workflows.get(&w) {
                d.push(("workflow_name", (&w.friendly_name).into()));
            }
        }
        match t.assignment_status {
            TaskStatus::Canceled => d.push((
                "task_canceled_reason",
                Field::Text(t.reason.as_deref().unwrap_or("").into()),
            )),
            TaskStatus::Completed => d.push((
                "task_completed_reason",
                Field::Text(t.reason.as_deref().unwrap_or("").into()),
            )),
            _ => {}
        }
    }

    fn worker_fields(&self, w: &Worker, d: &mut Vec<(&'static str, Field)>) {
        d.push(("worker_sid", Field::Sid(w.sid)));
        d.push(("worker_name", (&w.friendly_name).into()));
        d.push(("worker_attributes", (&w.attributes).into()));
        d.push(("worker_activity_sid", Field::Sid(w.activity_sid)));
        if let Some(a) = self.activities.get(&w.activity_sid) {
            d.push(("worker_activity_name", (&a.friendly_name).into()));
            d.push(("worker_available", Field::Bool(a.available)));
        }
        d.push(("worker_version", Field::Int(w.version as i64)));
    }

    /// An event about a task (with the task's fields and `extra`).
    pub(crate) fn emit_task(
        &mut self,
        event_type: EventType,
        task: Sid,
        now: Millis,
        extra: Vec<(&'static str, Field)>,
    ) {
        let Some(t) = self.routing.tasks.get(&task) else {
            return;
        };
        let mut d = self.base_fields(20 + extra.len());
        self.task_fields(t, now, &mut d);
        d.extend(extra);
        self.emit(event_type, task, d, now);
    }

    /// The data of a reservation event: the reservation, its task and its worker.
    pub(crate) fn reservation_fields(
        &self,
        r: &Reservation,
        now: Millis,
    ) -> Vec<(&'static str, Field)> {
        let mut d = self.base_fields(30);
        d.push(("reservation_sid", Field::Sid(r.sid)));
        d.push(("reservation_status", Field::Static(r.status.as_str())));
        if let Some(t) = self.routing.tasks.get(&r.task_sid) {
            self.task_fields(t, now, &mut d);
        } else {
            d.push(("task_sid", Field::Sid(r.task_sid)));
        }
        if let Some(w) = self.workers.get(&r.worker_sid) {
            self.worker_fields(w, &mut d);
        } else {
            d.push(("worker_sid", Field::Sid(r.worker_sid)));
        }
        d
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
                Some(Event {
                    sid: r.sid,
                    event_type: EventType::ReservationCreated,
                    at: now,
                    resource_sid: r.sid,
                    data: self.reservation_fields(r, now),
                    callback: false,
                    assignment: Some(assignment),
                })
            })
            .collect()
    }

    /// An event about a reservation.
    pub(crate) fn emit_reservation(&mut self, event_type: EventType, sid: Sid, now: Millis) {
        let Some(r) = self.routing.reservations.get(&sid) else {
            return;
        };
        let d = self.reservation_fields(r, now);
        self.emit(event_type, sid, d, now);
    }

    /// An event about a worker (with the worker's fields and `extra`).
    pub(crate) fn emit_worker(
        &mut self,
        event_type: EventType,
        worker: Sid,
        now: Millis,
        extra: Vec<(&'static str, Field)>,
    ) {
        let Some(w) = self.workers.get(&worker) else {
            return;
        };
        let mut d = self.base_fields(8 + extra.len());
        self.worker_fields(w, &mut d);
        d.extend(extra);
        self.emit(event_type, worker, d, now);
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

    /// The fields describing a configuration resource (activity, task channel, task queue,
    /// workflow, workspace), or `None` if it does not exist.
    pub(crate) fn config_fields(&self, sid: Sid) -> Option<Vec<(&'static str, Field)>> {
        let mut d = self.base_fields(6);
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
                self.worker_fields(w, &mut d);
            }
            prefix::WORKSPACE => {}
            _ => return None,
        }
        Some(d)
    }

    /// What `cmd` will need to describe itself once applied.
    pub(crate) fn before(&self, cmd: &Command) -> Before {
        use EventType as E;
        let deleted = |t: EventType, sid: Sid| match self.config_fields(sid) {
            Some(d) => Before::Deleted(t, d),
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
                if let Some(d) = self.config_fields(sid) {
                    let resource = if t == E::WorkspaceUpdated {
                        self.info.sid
                    } else {
                        sid
                    };
                    self.emit(t, resource, d, now);
                }
            }
            Before::Deleted(t, d) => self.emit(t, sid, d, now),
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
                if changed && let Some(d) = self.config_fields(sid) {
                    self.emit(E::TaskQueueExpressionUpdated, sid, d, now);
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
    fn stored_json_has_string_values() {
        let ws = Sid::new("WS", 1);
        let e = Event {
            sid: Sid::new("EV", 2),
            event_type: EventType::TaskCreated,
            at: 1_000,
            resource_sid: Sid::new("WT", 3),
            data: vec![
                ("workspace_sid", ws.into()),
                ("task_sid", Sid::new("WT", 3).into()),
                ("task_priority", 5i64.into()),
            ],
            callback: false,
            assignment: None,
        };
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).expect("json");
        assert_eq!(v["event_data"]["task_priority"], "5");
        assert_eq!(v["event_type"], "task.created");
        assert_eq!(v["resource_type"], "task");
    }
}
