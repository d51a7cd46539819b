//! [`Workspace`]: one workspace's whole state and the commands that change it.
//!
//! Every command is validated completely before anything is mutated, so an error leaves the
//! workspace exactly as it was. A successful command returns the [`Change`]s the store must
//! commit before the client is answered.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::error::EngineError;
use crate::model::*;
use crate::routing::Routing;
use crate::sid::{Sid, SidSource, prefix};
use crate::workflow::WorkflowConfig;
use taskyard_expr::{Expr, Scope};

/// Twilio's limit on friendly names of workspaces, activities, workers and task channels.
pub const MAX_FRIENDLY_NAME: usize = 64;
/// Taskyard's limit on the friendly names Twilio leaves unbounded (queues, workflows).
pub const MAX_LONG_NAME: usize = 256;
/// Twilio's limit on worker and task attributes, in characters.
pub const MAX_ATTRIBUTES: usize = 4096;
/// Twilio's limit on a workflow configuration document, in bytes.
pub const MAX_CONFIGURATION: usize = 1_038_576;
/// Longest reservation timeout a workflow may set, in seconds.
pub const MAX_RESERVATION_TIMEOUT: u32 = 86_400;
/// Most workers a task queue may reserve at once for one task.
pub const MAX_RESERVED_WORKERS: u32 = 50;
/// Largest per-channel capacity Taskyard accepts for a worker.
pub const MAX_CHANNEL_CAPACITY: u32 = 1000;

/// The kinds of stored rows (and of resources named in errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Workspace,
    Activity,
    TaskChannel,
    Worker,
    WorkerChannel,
    TaskQueue,
    Workflow,
    Task,
    Reservation,
}

impl Kind {
    /// The name used in stored rows.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Workspace => "workspace",
            Kind::Activity => "activity",
            Kind::TaskChannel => "task_channel",
            Kind::Worker => "worker",
            Kind::WorkerChannel => "worker_channel",
            Kind::TaskQueue => "task_queue",
            Kind::Workflow => "workflow",
            Kind::Task => "task",
            Kind::Reservation => "reservation",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "workspace" => Kind::Workspace,
            "activity" => Kind::Activity,
            "task_channel" => Kind::TaskChannel,
            "worker" => Kind::Worker,
            "worker_channel" => Kind::WorkerChannel,
            "task_queue" => Kind::TaskQueue,
            "workflow" => Kind::Workflow,
            "task" => Kind::Task,
            "reservation" => Kind::Reservation,
            _ => return None,
        })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Workspace => "Workspace",
            Kind::Activity => "Activity",
            Kind::TaskChannel => "TaskChannel",
            Kind::Worker => "Worker",
            Kind::WorkerChannel => "WorkerChannel",
            Kind::TaskQueue => "TaskQueue",
            Kind::Workflow => "Workflow",
            Kind::Task => "Task",
            Kind::Reservation => "Reservation",
        })
    }
}

/// One row-level change for the store to commit, scoped to the workspace that produced it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Insert or replace the row `(kind, sid)` with `body` (the resource as JSON).
    Put { kind: Kind, sid: Sid, body: Body },
    /// Remove the row `(kind, sid)`.
    Delete { kind: Kind, sid: Sid },
    /// Remove the workspace and every row it owns.
    DropWorkspace,
}

pub(crate) fn put<T: Serialize>(kind: Kind, sid: Sid, value: &T) -> Change {
    Change::Put {
        kind,
        sid,
        body: Body::Json(to_json(value)),
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Our own structs with string keys always serialize; a failure here is a programming error.
    serde_json::to_string(value).expect("engine rows serialize to JSON")
}

/// A stored row's content. Tasks and reservations — the rows written on the routing hot
/// path — travel as copies and are turned into JSON by the store, off the workspace's
/// thread; everything else is JSON already.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Json(String),
    Task(Box<Task>),
    Reservation(Box<Reservation>),
}

impl Body {
    /// The row as the JSON text the store keeps.
    pub fn to_json(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Body::Json(s) => std::borrow::Cow::Borrowed(s),
            Body::Task(t) => std::borrow::Cow::Owned(to_json(t)),
            Body::Reservation(r) => std::borrow::Cow::Owned(to_json(r)),
        }
    }
}

impl From<&str> for Body {
    fn from(s: &str) -> Body {
        Body::Json(s.to_string())
    }
}

/// What a successful command did.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The resource the command created or changed (for deletes, the one removed).
    pub sid: Sid,
    /// Rows to commit, in order.
    pub changes: Vec<Change>,
    /// What happened, in order (TaskRouter Events).
    pub events: Vec<crate::Event>,
}

/// `Template` of a new workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Template {
    #[default]
    None,
    /// Adds one queue taking every worker and a workflow that routes every task to it.
    Fifo,
}

/// Parameters of `POST /Workspaces`.
#[derive(Debug, Clone, Default)]
pub struct NewWorkspace {
    pub friendly_name: String,
    pub event_callback_url: Option<String>,
    pub events_filter: Option<String>,
    pub multi_task_enabled: Option<bool>,
    pub template: Template,
    pub prioritize_queue_order: Option<QueueOrder>,
}

/// Parameters of `POST /Workspaces/{Sid}`; `None` leaves a field unchanged, an empty string
/// clears an optional text field.
#[derive(Debug, Clone, Default)]
pub struct UpdateWorkspace {
    pub friendly_name: Option<String>,
    pub event_callback_url: Option<String>,
    pub events_filter: Option<String>,
    pub multi_task_enabled: Option<bool>,
    pub default_activity_sid: Option<Sid>,
    pub timeout_activity_sid: Option<Sid>,
    pub prioritize_queue_order: Option<QueueOrder>,
}

#[derive(Debug, Clone, Default)]
pub struct CreateWorker {
    pub friendly_name: String,
    pub activity_sid: Option<Sid>,
    pub attributes: Option<String>,
}

#[derive(Debug, Clone)]
pub struct UpdateWorker {
    pub sid: Sid,
    pub if_match: Option<String>,
    pub activity_sid: Option<Sid>,
    pub attributes: Option<String>,
    pub friendly_name: Option<String>,
    pub reject_pending_reservations: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct TaskQueueParams {
    pub friendly_name: Option<String>,
    pub target_workers: Option<String>,
    pub max_reserved_workers: Option<u32>,
    pub task_order: Option<QueueOrder>,
    pub reservation_activity_sid: Option<Sid>,
    pub assignment_activity_sid: Option<Sid>,
}

#[derive(Debug, Clone, Default)]
pub struct WorkflowParams {
    pub friendly_name: Option<String>,
    pub configuration: Option<String>,
    pub assignment_callback_url: Option<String>,
    pub fallback_assignment_callback_url: Option<String>,
    pub task_reservation_timeout: Option<u32>,
}

/// Everything that can change a workspace. Path SIDs that do not exist answer
/// [`EngineError::NotFound`]; SIDs given as parameters answer [`EngineError::Invalid`].
#[derive(Debug, Clone)]
pub enum Command {
    UpdateWorkspace(UpdateWorkspace),
    CreateActivity {
        friendly_name: String,
        available: bool,
    },
    UpdateActivity {
        sid: Sid,
        friendly_name: Option<String>,
    },
    DeleteActivity {
        sid: Sid,
    },
    CreateTaskChannel {
        friendly_name: String,
        unique_name: String,
        channel_optimized_routing: Option<bool>,
    },
    /// `channel` is a TaskChannel SID or unique name.
    UpdateTaskChannel {
        channel: String,
        friendly_name: Option<String>,
        channel_optimized_routing: Option<bool>,
    },
    DeleteTaskChannel {
        channel: String,
    },
    CreateWorker(CreateWorker),
    UpdateWorker(UpdateWorker),
    DeleteWorker {
        sid: Sid,
        if_match: Option<String>,
    },
    /// `channel` is a WorkerChannel SID, a TaskChannel SID or a TaskChannel unique name.
    UpdateWorkerChannel {
        worker: Sid,
        channel: String,
        capacity: Option<u32>,
        available: Option<bool>,
    },
    CreateTaskQueue(TaskQueueParams),
    UpdateTaskQueue {
        sid: Sid,
        params: TaskQueueParams,
    },
    DeleteTaskQueue {
        sid: Sid,
    },
    CreateWorkflow(WorkflowParams),
    UpdateWorkflow {
        sid: Sid,
        params: WorkflowParams,
        re_evaluate_tasks: bool,
    },
    DeleteWorkflow {
        sid: Sid,
    },
    DeleteWorkspace,
    CreateTask(crate::routing::CreateTask),
    UpdateTask(crate::routing::UpdateTask),
    DeleteTask {
        sid: Sid,
        if_match: Option<String>,
    },
    UpdateReservation(crate::routing::UpdateReservation),
    /// The outcome of a reservation's assignment callback (sent by the server's dispatcher).
    AssignmentCallback(crate::routing::AssignmentCallback),
}

/// Why stored rows could not be turned back into a workspace.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("the workspace row is missing")]
    MissingWorkspace,
    #[error("stored {kind} row {sid} is unreadable: {reason}")]
    BadRow {
        kind: &'static str,
        sid: String,
        reason: String,
    },
}

/// One workspace: its settings and every resource it owns.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub(crate) info: WorkspaceInfo,
    pub(crate) activities: BTreeMap<Sid, Activity>,
    pub(crate) task_channels: BTreeMap<Sid, TaskChannel>,
    pub(crate) workers: BTreeMap<Sid, Worker>,
    pub(crate) task_queues: BTreeMap<Sid, TaskQueue>,
    pub(crate) workflows: BTreeMap<Sid, Workflow>,
    /// Lower-cased worker friendly name → worker, for the workspace-wide uniqueness rule.
    pub(crate) worker_names: HashMap<String, Sid>,
    /// Tasks, reservations and everything the router derives from them.
    pub(crate) routing: Routing,
    /// Derived from the queues' `TargetWorkers`; `None` after a queue changed (rebuilt when
    /// next needed, so creating 10,000 queues does not rebuild it 10,000 times).
    pub(crate) queue_index: Option<std::sync::Arc<QueueIndex>>,
}

/// Finds the queues a worker belongs to without evaluating every queue's `TargetWorkers`:
/// expressions of the shape `key == literal` (the usual "skill" queue) are answered by one
/// lookup per key, the rest are evaluated. With 10,000 skill queues this turns a worker's
/// membership from 10,000 evaluations into a few lookups (at restart: 100,000 workers ×
/// 10,000 queues was 10⁹ evaluations).
#[derive(Debug)]
pub(crate) struct QueueIndex {
    /// Queue SIDs in map order (the index's positions).
    sids: Vec<Sid>,
    index: crate::workflow::FilterIndex,
}

impl QueueIndex {
    fn build(queues: &BTreeMap<Sid, TaskQueue>) -> QueueIndex {
        QueueIndex {
            sids: queues.keys().copied().collect(),
            index: crate::workflow::FilterIndex::build_exprs(
                queues.values().map(|q| q.target.as_ref()),
            ),
        }
    }

    /// The queues whose `TargetWorkers` match `attrs`, in SID order.
    fn queues_of(&self, queues: &BTreeMap<Sid, TaskQueue>, attrs: &Value) -> Vec<Sid> {
        self.index
            .matching_all(attrs, |i| {
                queues
                    .get(&self.sids[i])
                    .and_then(|q| q.target.as_ref())
                    .is_some_and(|e| e.eval(attrs))
            })
            .into_iter()
            .map(|i| self.sids[i])
            .collect()
    }
}

impl Workspace {
    /// Builds a new workspace with Twilio's default activities and task channels (and, for
    /// the FIFO template, a queue and workflow). Returns it with the rows to commit.
    pub fn create(
        account_sid: Sid,
        p: NewWorkspace,
        now: Millis,
        ids: &mut dyn SidSource,
    ) -> Result<(Workspace, Applied), EngineError> {
        let friendly_name =
            required_name(Some(p.friendly_name), "FriendlyName", MAX_FRIENDLY_NAME)?;
        let event_callback_url = optional_url(p.event_callback_url, "EventCallbackUrl")?;
        let events_filter = p.events_filter.filter(|s| !s.trim().is_empty());
        let sid = ids.next_sid(prefix::WORKSPACE, now);

        let mut activities = BTreeMap::new();
        let mut offline = None;
        for (name, available) in [
            ("Offline", false),
            ("Available", true),
            ("Unavailable", false),
        ] {
            let a = Activity {
                sid: ids.next_sid(prefix::ACTIVITY, now),
                friendly_name: name.into(),
                available,
                date_created: now,
                date_updated: now,
            };
            offline.get_or_insert(a.sid);
            activities.insert(a.sid, a);
        }
        let offline = offline.expect("three default activities were just created");

        let mut task_channels = BTreeMap::new();
        for (unique, friendly) in [
            ("default", "Default"),
            ("voice", "Voice"),
            ("sms", "SMS"),
            ("chat", "Chat"),
            ("video", "Video"),
        ] {
            let c = TaskChannel {
                sid: ids.next_sid(prefix::TASK_CHANNEL, now),
                unique_name: unique.into(),
                friendly_name: friendly.into(),
                channel_optimized_routing: None,
                date_created: now,
                date_updated: now,
            };
            task_channels.insert(c.sid, c);
        }

        let mut ws = Workspace {
            info: WorkspaceInfo {
                sid,
                account_sid,
                friendly_name: friendly_name.into(),
                event_callback_url,
                events_filter,
                multi_task_enabled: p.multi_task_enabled.unwrap_or(true),
                default_activity_sid: offline,
                timeout_activity_sid: offline,
                prioritize_queue_order: p.prioritize_queue_order.unwrap_or(QueueOrder::Fifo),
                date_created: now,
                date_updated: now,
            },
            activities,
            task_channels,
            workers: BTreeMap::new(),
            task_queues: BTreeMap::new(),
            workflows: BTreeMap::new(),
            worker_names: HashMap::new(),
            routing: Routing::default(),
            queue_index: None,
        };

        if p.template == Template::Fifo {
            let queue = ws.build_task_queue(
                None,
                TaskQueueParams {
                    friendly_name: Some("Sample Queue".into()),
                    ..Default::default()
                },
                now,
                ids,
            )?;
            let config = format!(
                r#"{{"task_routing":{{"filters":[],"default_filter":{{"queue":"{}"}}}}}}"#,
                queue.sid
            );
            ws.task_queues.insert(queue.sid, queue);
            let wf = ws.build_workflow(
                None,
                WorkflowParams {
                    friendly_name: Some("Default Fifo Workflow".into()),
                    configuration: Some(config),
                    ..Default::default()
                },
                now,
                ids,
            )?;
            ws.workflows.insert(wf.sid, wf);
        }

        let changes = ws.all_rows();
        if let Some(e) = ws.config_event(crate::EventType::WorkspaceCreated, sid, now) {
            ws.push_event(e);
        }
        let events = ws.take_events(now, ids);
        Ok((
            ws,
            Applied {
                sid,
                changes,
                events,
            },
        ))
    }

    /// Rebuilds a workspace from its stored rows (in any order).
    pub fn restore(
        rows: impl IntoIterator<Item = (Kind, String)>,
    ) -> Result<Workspace, RestoreError> {
        fn parse<T: serde::de::DeserializeOwned>(
            kind: Kind,
            body: &str,
        ) -> Result<T, RestoreError> {
            serde_json::from_str(body).map_err(|e| RestoreError::BadRow {
                kind: kind.as_str(),
                sid: String::new(),
                reason: e.to_string(),
            })
        }
        let mut info = None;
        let mut ws = Workspace {
            info: WorkspaceInfo {
                sid: Sid::new(prefix::WORKSPACE, 0),
                account_sid: Sid::new(prefix::ACCOUNT, 0),
                friendly_name: "".into(),
                event_callback_url: None,
                events_filter: None,
                multi_task_enabled: true,
                default_activity_sid: Sid::new(prefix::ACTIVITY, 0),
                timeout_activity_sid: Sid::new(prefix::ACTIVITY, 0),
                prioritize_queue_order: QueueOrder::Fifo,
                date_created: 0,
                date_updated: 0,
            },
            activities: BTreeMap::new(),
            task_channels: BTreeMap::new(),
            workers: BTreeMap::new(),
            task_queues: BTreeMap::new(),
            workflows: BTreeMap::new(),
            worker_names: HashMap::new(),
            routing: Routing::default(),
            queue_index: None,
        };
        for (kind, body) in rows {
            match kind {
                Kind::Workspace => info = Some(parse::<WorkspaceInfo>(kind, &body)?),
                Kind::Activity => {
                    let a: Activity = parse(kind, &body)?;
                    ws.activities.insert(a.sid, a);
                }
                Kind::TaskChannel => {
                    let c: TaskChannel = parse(kind, &body)?;
                    ws.task_channels.insert(c.sid, c);
                }
                Kind::Worker => {
                    let mut w: Worker = parse(kind, &body)?;
                    w.attrs =
                        serde_json::from_str(&w.attributes).map_err(|e| RestoreError::BadRow {
                            kind: kind.as_str(),
                            sid: w.sid.to_string(),
                            reason: e.to_string(),
                        })?;
                    ws.worker_names
                        .insert(w.friendly_name.to_lowercase(), w.sid);
                    ws.workers.insert(w.sid, w);
                }
                Kind::TaskQueue => {
                    let mut q: TaskQueue = parse(kind, &body)?;
                    q.target = compile_target_workers(&q.target_workers).map_err(|e| {
                        RestoreError::BadRow {
                            kind: kind.as_str(),
                            sid: q.sid.to_string(),
                            reason: e.to_string(),
                        }
                    })?;
                    ws.task_queues.insert(q.sid, q);
                }
                Kind::Workflow => {
                    let mut wf: Workflow = parse(kind, &body)?;
                    wf.config = WorkflowConfig::parse(&wf.configuration).map_err(|reason| {
                        RestoreError::BadRow {
                            kind: kind.as_str(),
                            sid: wf.sid.to_string(),
                            reason,
                        }
                    })?;
                    ws.workflows.insert(wf.sid, wf);
                }
                Kind::Task => {
                    let mut t: Task = parse(kind, &body)?;
                    t.attrs =
                        std::sync::Arc::new(serde_json::from_str(&t.attributes).map_err(|e| {
                            RestoreError::BadRow {
                                kind: kind.as_str(),
                                sid: t.sid.to_string(),
                                reason: e.to_string(),
                            }
                        })?);
                    ws.routing.tasks.insert(t.sid, t);
                }
                Kind::Reservation => {
                    let r: Reservation = parse(kind, &body)?;
                    ws.routing.reservations.insert(r.sid, r);
                }
                Kind::WorkerChannel => {} // stored inside their worker's row
            }
        }
        ws.info = info.ok_or(RestoreError::MissingWorkspace)?;
        // Membership worker by worker through the index: a few lookups per worker instead
        // of one evaluation per (queue, worker) pair.
        let index = ws.queue_index();
        for w in ws.workers.values() {
            for q in index.queues_of(&ws.task_queues, &w.attrs) {
                if let Some(q) = ws.task_queues.get_mut(&q) {
                    q.members.insert(w.sid);
                }
            }
        }
        ws.rebuild_routing_indexes();
        Ok(ws)
    }

    /// The newest SID this workspace has issued (new SIDs must sort after it).
    pub fn newest_sid(&self) -> Sid {
        let mut newest = self.info.sid;
        let mut see = |s: Sid| {
            if s.id() > newest.id() {
                newest = s;
            }
        };
        self.activities.keys().for_each(|&s| see(s));
        self.task_channels.keys().for_each(|&s| see(s));
        self.task_queues.keys().for_each(|&s| see(s));
        self.workflows.keys().for_each(|&s| see(s));
        for w in self.workers.values() {
            see(w.sid);
            w.channels.iter().for_each(|c| see(c.sid));
        }
        newest
    }

    /// Every row of the workspace, as [`Change::Put`]s (used on creation).
    pub fn all_rows(&self) -> Vec<Change> {
        let mut rows = vec![put(Kind::Workspace, self.info.sid, &self.info)];
        rows.extend(
            self.activities
                .values()
                .map(|a| put(Kind::Activity, a.sid, a)),
        );
        rows.extend(
            self.task_channels
                .values()
                .map(|c| put(Kind::TaskChannel, c.sid, c)),
        );
        rows.extend(self.workers.values().map(|w| put(Kind::Worker, w.sid, w)));
        rows.extend(
            self.task_queues
                .values()
                .map(|q| put(Kind::TaskQueue, q.sid, q)),
        );
        rows.extend(
            self.workflows
                .values()
                .map(|w| put(Kind::Workflow, w.sid, w)),
        );
        rows.extend(
            self.routing
                .tasks
                .values()
                .map(|t| put(Kind::Task, t.sid, t)),
        );
        rows.extend(
            self.routing
                .reservations
                .values()
                .map(|r| put(Kind::Reservation, r.sid, r)),
        );
        rows
    }

    // ----- read access -------------------------------------------------------------------

    pub fn info(&self) -> &WorkspaceInfo {
        &self.info
    }
    pub fn sid(&self) -> Sid {
        self.info.sid
    }
    pub fn activities(&self) -> &BTreeMap<Sid, Activity> {
        &self.activities
    }
    pub fn task_channels(&self) -> &BTreeMap<Sid, TaskChannel> {
        &self.task_channels
    }
    pub fn workers(&self) -> &BTreeMap<Sid, Worker> {
        &self.workers
    }
    pub fn task_queues(&self) -> &BTreeMap<Sid, TaskQueue> {
        &self.task_queues
    }
    pub fn workflows(&self) -> &BTreeMap<Sid, Workflow> {
        &self.workflows
    }

    /// A task channel by SID or unique name.
    pub fn find_task_channel(&self, key: &str) -> Option<&TaskChannel> {
        match key.parse::<Sid>() {
            Ok(sid) => self.task_channels.get(&sid),
            Err(_) => self.task_channels.values().find(|c| &*c.unique_name == key),
        }
    }

    /// A worker's channel by WorkerChannel SID, TaskChannel SID or TaskChannel unique name.
    pub fn find_worker_channel<'a>(
        &'a self,
        worker: &'a Worker,
        key: &str,
    ) -> Option<&'a WorkerChannel> {
        if let Ok(sid) = key.parse::<Sid>()
            && sid.prefix() == prefix::WORKER_CHANNEL
        {
            return worker.channels.iter().find(|c| c.sid == sid);
        }
        let tc = self.find_task_channel(key)?;
        worker.channel(tc.sid)
    }

    // ----- commands ----------------------------------------------------------------------

    /// Applies one configuration command (routing commands are in `routing.rs`).
    pub(crate) fn apply_config(
        &mut self,
        cmd: Command,
        now: Millis,
        ids: &mut dyn SidSource,
    ) -> Result<Applied, EngineError> {
        match cmd {
            Command::UpdateWorkspace(p) => self.update_workspace(p, now),
            Command::CreateTask(_)
            | Command::UpdateTask(_)
            | Command::DeleteTask { .. }
            | Command::UpdateReservation(_)
            | Command::AssignmentCallback(_) => unreachable!("routed by Workspace::apply"),
            Command::DeleteWorkspace => Ok(Applied {
                sid: self.info.sid,
                changes: vec![Change::DropWorkspace],
                events: Vec::new(),
            }),
            Command::CreateActivity {
                friendly_name,
                available,
            } => {
                let a = Activity {
                    sid: ids.next_sid(prefix::ACTIVITY, now),
                    friendly_name: required_name(
                        Some(friendly_name),
                        "FriendlyName",
                        MAX_FRIENDLY_NAME,
                    )?
                    .into(),
                    available,
                    date_created: now,
                    date_updated: now,
                };
                let change = put(Kind::Activity, a.sid, &a);
                let sid = a.sid;
                self.activities.insert(sid, a);
                Ok(one(sid, change))
            }
            Command::UpdateActivity { sid, friendly_name } => {
                let name = optional_name(friendly_name, "FriendlyName", MAX_FRIENDLY_NAME)?;
                let a = self
                    .activities
                    .get_mut(&sid)
                    .ok_or_else(|| EngineError::not_found(Kind::Activity, sid))?;
                if let Some(name) = name {
                    a.friendly_name = name.into();
                }
                a.date_updated = now;
                Ok(one(sid, put(Kind::Activity, sid, &*a)))
            }
            Command::DeleteActivity { sid } => self.delete_activity(sid),
            Command::CreateTaskChannel {
                friendly_name,
                unique_name,
                channel_optimized_routing,
            } => self.create_task_channel(
                friendly_name,
                unique_name,
                channel_optimized_routing,
                now,
                ids,
            ),
            Command::UpdateTaskChannel {
                channel,
                friendly_name,
                channel_optimized_routing,
            } => {
                let name = optional_name(friendly_name, "FriendlyName", MAX_FRIENDLY_NAME)?;
                let sid = self
                    .find_task_channel(&channel)
                    .ok_or_else(|| EngineError::not_found(Kind::TaskChannel, &channel))?
                    .sid;
                let c = self.task_channels.get_mut(&sid).expect("found above");
                if let Some(name) = name {
                    c.friendly_name = name;
                }
                if channel_optimized_routing.is_some() {
                    c.channel_optimized_routing = channel_optimized_routing;
                }
                c.date_updated = now;
                Ok(one(sid, put(Kind::TaskChannel, sid, &*c)))
            }
            Command::DeleteTaskChannel { channel } => self.delete_task_channel(&channel),
            Command::CreateWorker(p) => self.create_worker(p, now, ids),
            Command::UpdateWorker(p) => self.update_worker(p, now),
            Command::DeleteWorker { sid, if_match } => {
                let w = self
                    .workers
                    .get(&sid)
                    .ok_or_else(|| EngineError::not_found(Kind::Worker, sid))?;
                check_version(if_match.as_deref(), w.version)?;
                let name = w.friendly_name.to_lowercase();
                self.worker_names.remove(&name);
                self.workers.remove(&sid);
                self.refresh_membership(sid);
                Ok(one(
                    sid,
                    Change::Delete {
                        kind: Kind::Worker,
                        sid,
                    },
                ))
            }
            Command::UpdateWorkerChannel {
                worker,
                channel,
                capacity,
                available,
            } => self.update_worker_channel(worker, &channel, capacity, available, now),
            Command::CreateTaskQueue(p) => {
                let q = self.build_task_queue(None, p, now, ids)?;
                let sid = q.sid;
                let change = put(Kind::TaskQueue, sid, &q);
                self.task_queues.insert(sid, q);
                self.queue_index = None;
                Ok(one(sid, change))
            }
            Command::UpdateTaskQueue { sid, params } => {
                let existing = self
                    .task_queues
                    .get(&sid)
                    .ok_or_else(|| EngineError::not_found(Kind::TaskQueue, sid))?;
                let q = self.build_task_queue(Some(existing), params, now, ids)?;
                let change = put(Kind::TaskQueue, sid, &q);
                self.task_queues.insert(sid, q);
                self.queue_index = None;
                Ok(one(sid, change))
            }
            Command::DeleteTaskQueue { sid } => {
                if !self.task_queues.contains_key(&sid) {
                    return Err(EngineError::not_found(Kind::TaskQueue, sid));
                }
                if let Some(wf) = self
                    .workflows
                    .values()
                    .find(|wf| wf.config.queues().any(|q| q == sid))
                {
                    return Err(EngineError::refused(format!(
                        "Cannot delete TaskQueue {sid}: it is used by Workflow {} ({}). Remove it from the workflow configuration first.",
                        wf.sid, wf.friendly_name
                    )));
                }
                self.task_queues.remove(&sid);
                self.queue_index = None;
                Ok(one(
                    sid,
                    Change::Delete {
                        kind: Kind::TaskQueue,
                        sid,
                    },
                ))
            }
            Command::CreateWorkflow(p) => {
                let wf = self.build_workflow(None, p, now, ids)?;
                let sid = wf.sid;
                let change = put(Kind::Workflow, sid, &wf);
                self.workflows.insert(sid, wf);
                Ok(one(sid, change))
            }
            Command::UpdateWorkflow {
                sid,
                params,
                re_evaluate_tasks: _,
            } => {
                // Re-evaluation only concerns tasks, which this workspace does not route yet.
                let existing = self
                    .workflows
                    .get(&sid)
                    .ok_or_else(|| EngineError::not_found(Kind::Workflow, sid))?;
                let wf = self.build_workflow(Some(existing), params, now, ids)?;
                let change = put(Kind::Workflow, sid, &wf);
                self.workflows.insert(sid, wf);
                Ok(one(sid, change))
            }
            Command::DeleteWorkflow { sid } => {
                if self.workflows.remove(&sid).is_none() {
                    return Err(EngineError::not_found(Kind::Workflow, sid));
                }
                Ok(one(
                    sid,
                    Change::Delete {
                        kind: Kind::Workflow,
                        sid,
                    },
                ))
            }
        }
    }

    fn update_workspace(
        &mut self,
        p: UpdateWorkspace,
        now: Millis,
    ) -> Result<Applied, EngineError> {
        let friendly_name = optional_name(p.friendly_name, "FriendlyName", MAX_FRIENDLY_NAME)?;
        for (sid, param) in [
            (p.default_activity_sid, "DefaultActivitySid"),
            (p.timeout_activity_sid, "TimeoutActivitySid"),
        ] {
            if let Some(sid) = sid {
                self.activity_param(sid, param)?;
            }
        }
        let event_callback_url = match p.event_callback_url {
            Some(url) => Some(optional_url(Some(url), "EventCallbackUrl")?),
            None => None,
        };
        let info = &mut self.info;
        if let Some(name) = friendly_name {
            info.friendly_name = name.into();
        }
        if let Some(url) = event_callback_url {
            info.event_callback_url = url;
        }
        if let Some(filter) = p.events_filter {
            info.events_filter = Some(filter).filter(|s| !s.trim().is_empty());
        }
        if let Some(m) = p.multi_task_enabled {
            info.multi_task_enabled = m;
        }
        if let Some(sid) = p.default_activity_sid {
            info.default_activity_sid = sid;
        }
        if let Some(sid) = p.timeout_activity_sid {
            info.timeout_activity_sid = sid;
        }
        if let Some(o) = p.prioritize_queue_order {
            info.prioritize_queue_order = o;
        }
        info.date_updated = now;
        Ok(one(info.sid, put(Kind::Workspace, info.sid, &*info)))
    }

    fn delete_activity(&mut self, sid: Sid) -> Result<Applied, EngineError> {
        let a = self
            .activities
            .get(&sid)
            .ok_or_else(|| EngineError::not_found(Kind::Activity, sid))?;
        let role = if sid == self.info.default_activity_sid {
            Some("the workspace's default activity")
        } else if sid == self.info.timeout_activity_sid {
            Some("the workspace's timeout activity")
        } else {
            None
        };
        if let Some(role) = role {
            return Err(EngineError::refused(format!(
                "Cannot delete Activity {sid} ({}): it is {role}",
                a.friendly_name
            )));
        }
        let workers = self
            .workers
            .values()
            .filter(|w| w.activity_sid == sid)
            .count();
        if workers > 0 {
            return Err(EngineError::refused(format!(
                "Cannot delete Activity {sid} ({}): {workers} worker(s) are in it",
                a.friendly_name
            )));
        }
        if let Some(q) = self.task_queues.values().find(|q| {
            q.reservation_activity_sid == Some(sid) || q.assignment_activity_sid == Some(sid)
        }) {
            return Err(EngineError::refused(format!(
                "Cannot delete Activity {sid} ({}): TaskQueue {} uses it",
                a.friendly_name, q.sid
            )));
        }
        self.activities.remove(&sid);
        Ok(one(
            sid,
            Change::Delete {
                kind: Kind::Activity,
                sid,
            },
        ))
    }

    fn create_task_channel(
        &mut self,
        friendly_name: String,
        unique_name: String,
        channel_optimized_routing: Option<bool>,
        now: Millis,
        ids: &mut dyn SidSource,
    ) -> Result<Applied, EngineError> {
        let friendly_name = required_name(Some(friendly_name), "FriendlyName", MAX_FRIENDLY_NAME)?;
        validate_channel_name(&unique_name)?;
        if self
            .task_channels
            .values()
            .any(|c| *c.unique_name == *unique_name)
        {
            return Err(EngineError::Conflict {
                message: format!(
                    "A TaskChannel with UniqueName '{unique_name}' already exists in this workspace"
                ),
            });
        }
        let channel = TaskChannel {
            sid: ids.next_sid(prefix::TASK_CHANNEL, now),
            unique_name: unique_name.into(),
            friendly_name,
            channel_optimized_routing,
            date_created: now,
            date_updated: now,
        };
        let sid = channel.sid;
        let mut changes = vec![put(Kind::TaskChannel, sid, &channel)];
        self.task_channels.insert(sid, channel);
        // Every worker gets a channel for it, as Twilio does.
        for w in self.workers.values_mut() {
            w.channels.push(new_worker_channel(sid, now, ids));
            changes.push(put(Kind::Worker, w.sid, &*w));
        }
        Ok(Applied {
            sid,
            changes,
            events: Vec::new(),
        })
    }

    fn delete_task_channel(&mut self, key: &str) -> Result<Applied, EngineError> {
        let sid = self
            .find_task_channel(key)
            .ok_or_else(|| EngineError::not_found(Kind::TaskChannel, key))?
            .sid;
        self.task_channels.remove(&sid);
        let mut changes = vec![Change::Delete {
            kind: Kind::TaskChannel,
            sid,
        }];
        for w in self.workers.values_mut() {
            let before = w.channels.len();
            w.channels.retain(|c| c.task_channel_sid != sid);
            if w.channels.len() != before {
                changes.push(put(Kind::Worker, w.sid, &*w));
            }
        }
        Ok(Applied {
            sid,
            changes,
            events: Vec::new(),
        })
    }

    fn create_worker(
        &mut self,
        p: CreateWorker,
        now: Millis,
        ids: &mut dyn SidSource,
    ) -> Result<Applied, EngineError> {
        let friendly_name =
            required_name(Some(p.friendly_name), "FriendlyName", MAX_FRIENDLY_NAME)?;
        let key = friendly_name.to_lowercase();
        if self.worker_names.contains_key(&key) {
            return Err(duplicate_worker(&friendly_name));
        }
        let activity_sid = match p.activity_sid {
            Some(sid) => self.activity_param(sid, "ActivitySid")?.sid,
            None => self.info.default_activity_sid,
        };
        let (attributes, attrs) =
            parse_attributes(p.attributes.unwrap_or_else(|| "{}".into()), "Attributes")?;
        let sid = ids.next_sid(prefix::WORKER, now);
        let channels = self
            .task_channels
            .keys()
            .map(|&tc| new_worker_channel(tc, now, ids))
            .collect();
        let w = Worker {
            sid,
            friendly_name: friendly_name.into(),
            activity_sid,
            attributes: attributes.into(),
            date_created: now,
            date_updated: now,
            date_status_changed: now,
            version: 0,
            channels,
            last_reserved_at: now,
            attrs,
        };
        let change = put(Kind::Worker, sid, &w);
        self.worker_names.insert(key, sid);
        self.workers.insert(sid, w);
        self.refresh_membership(sid);
        Ok(one(sid, change))
    }

    fn update_worker(&mut self, p: UpdateWorker, now: Millis) -> Result<Applied, EngineError> {
        let sid = p.sid;
        let w = self
            .workers
            .get(&sid)
            .ok_or_else(|| EngineError::not_found(Kind::Worker, sid))?;
        check_version(p.if_match.as_deref(), w.version)?;
        let friendly_name = optional_name(p.friendly_name, "FriendlyName", MAX_FRIENDLY_NAME)?;
        if let Some(name) = &friendly_name
            && let Some(&other) = self.worker_names.get(&name.to_lowercase())
            && other != sid
        {
            return Err(duplicate_worker(name));
        }
        let activity = match p.activity_sid {
            Some(a) => Some(self.activity_param(a, "ActivitySid")?),
            None => None,
        };
        if p.reject_pending_reservations == Some(true) && activity.is_none_or(|a| a.available) {
            return Err(EngineError::invalid(
                "RejectPendingReservations",
                "RejectPendingReservations is only valid together with an ActivitySid whose availability is false",
            ));
        }
        let activity_sid = activity.map(|a| a.sid);
        let attributes = match p.attributes {
            Some(text) => Some(parse_attributes(text, "Attributes")?),
            None => None,
        };

        let w = self.workers.get_mut(&sid).expect("checked above");
        if let Some(name) = friendly_name {
            self.worker_names.remove(&w.friendly_name.to_lowercase());
            self.worker_names.insert(name.to_lowercase(), sid);
            w.friendly_name = name.into();
        }
        if let Some(a) = activity_sid
            && a != w.activity_sid
        {
            w.activity_sid = a;
            w.date_status_changed = now;
        }
        let attributes_changed = attributes.is_some();
        if let Some((text, value)) = attributes {
            w.attributes = text.into();
            w.attrs = value;
        }
        w.version += 1;
        w.date_updated = now;
        let change = put(Kind::Worker, sid, &*w);
        if attributes_changed {
            self.refresh_membership(sid);
        }
        Ok(one(sid, change))
    }

    fn update_worker_channel(
        &mut self,
        worker: Sid,
        key: &str,
        capacity: Option<u32>,
        available: Option<bool>,
        now: Millis,
    ) -> Result<Applied, EngineError> {
        let w = self
            .workers
            .get(&worker)
            .ok_or_else(|| EngineError::not_found(Kind::Worker, worker))?;
        let wc_sid = self
            .find_worker_channel(w, key)
            .ok_or_else(|| EngineError::not_found(Kind::WorkerChannel, key))?
            .sid;
        if let Some(c) = capacity
            && c > MAX_CHANNEL_CAPACITY
        {
            return Err(EngineError::invalid(
                "Capacity",
                format!("Capacity must be between 0 and {MAX_CHANNEL_CAPACITY}"),
            ));
        }
        let w = self.workers.get_mut(&worker).expect("checked above");
        let wc = w
            .channels
            .iter_mut()
            .find(|c| c.sid == wc_sid)
            .expect("found above");
        if let Some(c) = capacity {
            wc.configured_capacity = c;
        }
        if let Some(a) = available {
            wc.available = a;
        }
        wc.date_updated = now;
        w.version += 1;
        w.date_updated = now;
        Ok(one(wc_sid, put(Kind::Worker, worker, &*w)))
    }

    /// Builds a queue from `p`, on top of `existing` for updates. Validates everything.
    fn build_task_queue(
        &self,
        existing: Option<&TaskQueue>,
        p: TaskQueueParams,
        now: Millis,
        ids: &mut dyn SidSource,
    ) -> Result<TaskQueue, EngineError> {
        let friendly_name = match existing {
            None => required_name(p.friendly_name, "FriendlyName", MAX_LONG_NAME)?,
            Some(q) => optional_name(p.friendly_name, "FriendlyName", MAX_LONG_NAME)?
                .unwrap_or_else(|| q.friendly_name.to_string()),
        };
        if let Some(n) = p.max_reserved_workers
            && !(1..=MAX_RESERVED_WORKERS).contains(&n)
        {
            return Err(EngineError::invalid(
                "MaxReservedWorkers",
                format!("MaxReservedWorkers must be between 1 and {MAX_RESERVED_WORKERS}"),
            ));
        }
        for (sid, param) in [
            (p.reservation_activity_sid, "ReservationActivitySid"),
            (p.assignment_activity_sid, "AssignmentActivitySid"),
        ] {
            if let Some(sid) = sid {
                self.activity_param(sid, param)?;
            }
        }
        let target = match &p.target_workers {
            Some(text) => Some((text.clone(), compile_target_workers(text)?)),
            None => None,
        };
        let mut q = match existing {
            None => TaskQueue {
                sid: ids.next_sid(prefix::TASK_QUEUE, now),
                friendly_name: friendly_name.into(),
                target_workers: p.target_workers.unwrap_or_else(|| "1==1".into()).into(),
                max_reserved_workers: p.max_reserved_workers.unwrap_or(1),
                task_order: p.task_order.unwrap_or(QueueOrder::Fifo),
                reservation_activity_sid: p.reservation_activity_sid,
                assignment_activity_sid: p.assignment_activity_sid,
                date_created: now,
                date_updated: now,
                target: compile_target_workers("1==1")?,
                members: Default::default(),
            },
            Some(q) => TaskQueue {
                sid: q.sid,
                friendly_name: friendly_name.into(),
                target_workers: p
                    .target_workers
                    .unwrap_or_else(|| q.target_workers.to_string())
                    .into(),
                max_reserved_workers: p.max_reserved_workers.unwrap_or(q.max_reserved_workers),
                task_order: p.task_order.unwrap_or(q.task_order),
                reservation_activity_sid: p.reservation_activity_sid.or(q.reservation_activity_sid),
                assignment_activity_sid: p.assignment_activity_sid.or(q.assignment_activity_sid),
                date_created: q.date_created,
                date_updated: now,
                target: q.target.clone(),
                members: q.members.clone(),
            },
        };
        // Membership is recomputed over all workers only when the expression changes.
        if let Some((text, compiled)) = target {
            q.target_workers = text.into();
            q.target = compiled;
            q.members = self.matching_workers(q.target.as_ref());
        } else if existing.is_none() {
            q.members = self.matching_workers(q.target.as_ref());
        }
        Ok(q)
    }

    /// Workers whose attributes satisfy `target`.
    fn matching_workers(&self, target: Option<&Expr>) -> BTreeSet<Sid> {
        match target {
            None => BTreeSet::new(),
            Some(e) => self
                .workers
                .values()
                .filter(|w| e.eval(&w.attrs))
                .map(|w| w.sid)
                .collect(),
        }
    }

    /// Re-evaluates one worker's membership in every queue (after its attributes changed,
    /// or it was created). `None` removes it everywhere (deleted).
    fn refresh_membership(&mut self, worker: Sid) {
        let index = self.queue_index();
        let member_of = match self.workers.get(&worker) {
            Some(w) => index.queues_of(&self.task_queues, &w.attrs),
            None => Vec::new(),
        };
        // The worker's queues until now (kept current by every command that changes
        // membership): leave those it no longer matches, join the new ones.
        for q in self.routing.member_of(worker).to_vec() {
            if member_of.binary_search(&q).is_err()
                && let Some(q) = self.task_queues.get_mut(&q)
            {
                q.members.remove(&worker);
            }
        }
        for q in &member_of {
            if let Some(q) = self.task_queues.get_mut(q) {
                q.members.insert(worker);
            }
        }
        self.routing.set_member_of(worker, member_of);
    }

    /// The queue index, built now if a queue changed since it was last built.
    fn queue_index(&mut self) -> std::sync::Arc<QueueIndex> {
        self.queue_index
            .get_or_insert_with(|| std::sync::Arc::new(QueueIndex::build(&self.task_queues)))
            .clone()
    }

    /// Builds a workflow from `p`, on top of `existing` for updates. Validates everything,
    /// including that every queue the configuration names exists.
    fn build_workflow(
        &self,
        existing: Option<&Workflow>,
        p: WorkflowParams,
        now: Millis,
        ids: &mut dyn SidSource,
    ) -> Result<Workflow, EngineError> {
        let friendly_name = match existing {
            None => required_name(p.friendly_name, "FriendlyName", MAX_LONG_NAME)?,
            Some(w) => optional_name(p.friendly_name, "FriendlyName", MAX_LONG_NAME)?
                .unwrap_or_else(|| w.friendly_name.to_string()),
        };
        let (configuration, config) = match (p.configuration, existing) {
            (Some(text), _) => {
                let config = self.parse_configuration(&text)?;
                (text, config)
            }
            (None, Some(w)) => (w.configuration.clone(), w.config.clone()),
            (None, None) => {
                return Err(EngineError::invalid(
                    "Configuration",
                    "Missing required parameter Configuration in the post body",
                ));
            }
        };
        let callback = |given: Option<String>, old: Option<&Option<String>>, param| match given {
            Some(url) => optional_url(Some(url), param),
            None => Ok(old.cloned().flatten()),
        };
        let assignment_callback_url = callback(
            p.assignment_callback_url,
            existing.map(|w| &w.assignment_callback_url),
            "AssignmentCallbackUrl",
        )?;
        let fallback_assignment_callback_url = callback(
            p.fallback_assignment_callback_url,
            existing.map(|w| &w.fallback_assignment_callback_url),
            "FallbackAssignmentCallbackUrl",
        )?;
        if let Some(t) = p.task_reservation_timeout
            && !(1..=MAX_RESERVATION_TIMEOUT).contains(&t)
        {
            return Err(EngineError::invalid(
                "TaskReservationTimeout",
                format!(
                    "TaskReservationTimeout must be between 1 and {MAX_RESERVATION_TIMEOUT} seconds"
                ),
            ));
        }
        Ok(Workflow {
            sid: existing
                .map(|w| w.sid)
                .unwrap_or_else(|| ids.next_sid(prefix::WORKFLOW, now)),
            friendly_name: friendly_name.into(),
            configuration,
            assignment_callback_url,
            fallback_assignment_callback_url,
            task_reservation_timeout: p
                .task_reservation_timeout
                .or(existing.map(|w| w.task_reservation_timeout))
                .unwrap_or(120),
            date_created: existing.map(|w| w.date_created).unwrap_or(now),
            date_updated: now,
            config,
        })
    }

    /// A workflow configuration checked as a create or update checks it: its size, its
    /// grammar, and that every queue it names is one of this workspace's.
    pub fn parse_configuration(&self, text: &str) -> Result<WorkflowConfig, EngineError> {
        if text.len() > MAX_CONFIGURATION {
            return Err(EngineError::invalid(
                "Configuration",
                format!("Configuration is larger than {MAX_CONFIGURATION} bytes"),
            ));
        }
        let config =
            WorkflowConfig::parse(text).map_err(|m| EngineError::invalid("Configuration", m))?;
        if let Some(q) = config.queues().find(|q| !self.task_queues.contains_key(q)) {
            return Err(EngineError::invalid(
                "Configuration",
                format!(
                    "Configuration refers to TaskQueue {q}, which does not exist in this workspace"
                ),
            ));
        }
        Ok(config)
    }

    /// An activity named by a request parameter (a missing one is a 400, not a 404).
    pub(crate) fn activity_param(
        &self,
        sid: Sid,
        param: &'static str,
    ) -> Result<&Activity, EngineError> {
        self.activities.get(&sid).ok_or_else(|| {
            EngineError::invalid(
                param,
                format!("{param} {sid} is not an Activity of this workspace"),
            )
        })
    }
}

pub(crate) fn one(sid: Sid, change: Change) -> Applied {
    Applied {
        sid,
        changes: vec![change],
        events: Vec::new(),
    }
}

fn new_worker_channel(
    task_channel_sid: Sid,
    now: Millis,
    ids: &mut dyn SidSource,
) -> WorkerChannel {
    WorkerChannel {
        sid: ids.next_sid(prefix::WORKER_CHANNEL, now),
        task_channel_sid,
        configured_capacity: 1,
        available: true,
        date_created: now,
        date_updated: now,
    }
}

fn duplicate_worker(name: &str) -> EngineError {
    EngineError::Conflict {
        message: format!(
            "A Worker with FriendlyName '{name}' already exists in this workspace (names are case-insensitive)"
        ),
    }
}

/// Compares an `If-Match` header with a version. Accepts `"3"`, `3` and `W/"3"`.
pub(crate) fn check_version(if_match: Option<&str>, current: u64) -> Result<(), EngineError> {
    let Some(given) = if_match else { return Ok(()) };
    let bare = given.trim().trim_start_matches("W/").trim_matches('"');
    if bare == "*" || bare.parse::<u64>() == Ok(current) {
        Ok(())
    } else {
        Err(EngineError::VersionMismatch {
            given: given.to_string(),
            current,
        })
    }
}

fn required_name(
    name: Option<String>,
    param: &'static str,
    max: usize,
) -> Result<String, EngineError> {
    match optional_name(name, param, max)? {
        Some(n) => Ok(n),
        None => Err(EngineError::invalid(
            param,
            format!("Missing required parameter {param} in the post body"),
        )),
    }
}

/// `None` stays `None`; an empty name is refused; a name longer than `max` characters too.
fn optional_name(
    name: Option<String>,
    param: &'static str,
    max: usize,
) -> Result<Option<String>, EngineError> {
    match name {
        None => Ok(None),
        Some(n) if n.trim().is_empty() => Err(EngineError::invalid(
            param,
            format!("{param} must not be empty"),
        )),
        Some(n) if n.chars().count() > max => Err(EngineError::invalid(
            param,
            format!("{param} must be at most {max} characters long"),
        )),
        Some(n) => Ok(Some(n)),
    }
}

/// `Some("")` clears the URL (`Ok(None)`); anything else must be an absolute http(s) URL.
fn optional_url(url: Option<String>, param: &'static str) -> Result<Option<String>, EngineError> {
    match url {
        None => Ok(None),
        Some(u) if u.is_empty() => Ok(None),
        Some(u) => {
            let rest = u
                .strip_prefix("https://")
                .or_else(|| u.strip_prefix("http://"))
                .unwrap_or("");
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            if host.is_empty() || u.chars().any(char::is_whitespace) {
                Err(EngineError::invalid(
                    param,
                    format!("{param} must be an absolute http:// or https:// URL"),
                ))
            } else {
                Ok(Some(u))
            }
        }
    }
}

/// Worker and task attributes: a JSON object of at most [`MAX_ATTRIBUTES`] characters.
pub fn parse_attributes(text: String, param: &'static str) -> Result<(String, Value), EngineError> {
    if text.chars().count() > MAX_ATTRIBUTES {
        return Err(EngineError::invalid(
            param,
            format!("{param} must be at most {MAX_ATTRIBUTES} characters long"),
        ));
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => Ok((text, v)),
        Ok(_) => Err(EngineError::invalid(
            param,
            format!("{param} must be a JSON object"),
        )),
        Err(e) => Err(EngineError::invalid(
            param,
            format!("{param} is not valid JSON: {e}"),
        )),
    }
}

/// Parses a queue's `TargetWorkers`; an empty expression means no worker is eligible
/// (Twilio: tasks then wait until they are moved or deleted).
fn compile_target_workers(text: &str) -> Result<Option<Expr>, EngineError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    taskyard_expr::parse(text, Scope::Attributes)
        .map(Some)
        .map_err(|e| {
            EngineError::invalid(
                "TargetWorkers",
                format!("TargetWorkers is not a valid expression: {e}"),
            )
        })
}

/// TaskChannel unique names: letters, digits, `_` and `$`, not starting with a digit.
fn validate_channel_name(name: &str) -> Result<(), EngineError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_FRIENDLY_NAME
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if ok {
        Ok(())
    } else {
        Err(EngineError::invalid(
            "UniqueName",
            "UniqueName must be 1 to 64 letters, digits, '_' or '$', and must not start with a digit",
        ))
    }
}
