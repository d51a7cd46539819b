//! The resources of a workspace, as the engine holds them.
//!
//! Each resource is a plain struct that serializes to the JSON row the store keeps (see
//! [`crate::Change`]). Fields marked `#[serde(skip)]` are derived (parsed attributes, parsed
//! workflow configuration) and are rebuilt by [`crate::Workspace::restore`].

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use taskyard_expr::Expr;

use crate::Sid;

/// Milliseconds since the Unix epoch. The engine never reads a clock: every operation is
/// given the current time.
pub type Millis = i64;

/// An account: the owner of workspaces, authenticated by its auth token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub sid: Sid,
    pub auth_token: String,
    pub friendly_name: String,
    /// The account that created this one (Twilio's subaccounts), if any.
    pub owner_account_sid: Option<Sid>,
    pub date_created: Millis,
    pub date_updated: Millis,
    /// The account's API keys (Twilio's `Keys` resource); kept in the account's row, which
    /// older data simply lacks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_keys: Vec<ApiKey>,
}

/// An API key: a second credential of an account (`SK…` and a secret), for REST calls and
/// for signing Access Tokens. The secret itself is never kept, only `secret_hash`, a form
/// from which a presented secret can be checked and HMACs under it computed
/// (`taskyard-auth`'s `SecretHash`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub sid: Sid,
    pub friendly_name: String,
    pub secret_hash: String,
    pub date_created: Millis,
    pub date_updated: Millis,
}

/// `FIFO` or `LIFO`, for queues and for the workspace's `prioritize_queue_order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueOrder {
    #[serde(rename = "FIFO")]
    Fifo,
    #[serde(rename = "LIFO")]
    Lifo,
}

impl QueueOrder {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueOrder::Fifo => "FIFO",
            QueueOrder::Lifo => "LIFO",
        }
    }

    pub fn parse(s: &str) -> Option<QueueOrder> {
        match s {
            "FIFO" => Some(QueueOrder::Fifo),
            "LIFO" => Some(QueueOrder::Lifo),
            _ => None,
        }
    }
}

/// The workspace's own settings (the `Workspace` REST resource).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceInfo {
    pub sid: Sid,
    pub account_sid: Sid,
    pub friendly_name: Arc<str>,
    pub event_callback_url: Option<String>,
    pub events_filter: Option<String>,
    pub multi_task_enabled: bool,
    pub default_activity_sid: Sid,
    pub timeout_activity_sid: Sid,
    pub prioritize_queue_order: QueueOrder,
    pub date_created: Millis,
    pub date_updated: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub sid: Sid,
    pub friendly_name: Arc<str>,
    /// Whether a worker in this activity can be offered tasks. Fixed at creation.
    pub available: bool,
    pub date_created: Millis,
    pub date_updated: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskChannel {
    pub sid: Sid,
    pub unique_name: Arc<str>,
    pub friendly_name: String,
    pub channel_optimized_routing: Option<bool>,
    pub date_created: Millis,
    pub date_updated: Millis,
}

/// A worker's capacity on one task channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerChannel {
    pub sid: Sid,
    pub task_channel_sid: Sid,
    pub configured_capacity: u32,
    pub available: bool,
    pub date_created: Millis,
    pub date_updated: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Worker {
    pub sid: Sid,
    pub friendly_name: Arc<str>,
    pub activity_sid: Sid,
    /// The attributes exactly as the client sent them (a JSON object).
    pub attributes: Arc<str>,
    pub date_created: Millis,
    pub date_updated: Millis,
    pub date_status_changed: Millis,
    /// Bumped on every change; the `ETag` of the worker.
    pub version: u64,
    /// One per task channel of the workspace, in task-channel creation order.
    pub channels: Vec<WorkerChannel>,
    /// When the worker was last offered a task (its creation time before that); the router
    /// offers tasks to the worker idle longest first.
    #[serde(default)]
    pub last_reserved_at: Millis,
    /// `attributes`, parsed once.
    #[serde(skip)]
    pub attrs: Value,
}

impl Worker {
    pub fn channel(&self, task_channel: Sid) -> Option<&WorkerChannel> {
        self.channels
            .iter()
            .find(|c| c.task_channel_sid == task_channel)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskQueue {
    pub sid: Sid,
    pub friendly_name: Arc<str>,
    pub target_workers: Arc<str>,
    pub max_reserved_workers: u32,
    pub task_order: QueueOrder,
    pub reservation_activity_sid: Option<Sid>,
    pub assignment_activity_sid: Option<Sid>,
    pub date_created: Millis,
    pub date_updated: Millis,
    /// `target_workers`, parsed once; `None` when it is empty (no worker is eligible).
    #[serde(skip)]
    pub target: Option<Expr>,
    /// The eligible workers: those whose attributes match `target`. Kept current as workers
    /// and the expression change, one worker or one queue at a time.
    #[serde(skip)]
    pub members: BTreeSet<Sid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    pub sid: Sid,
    pub friendly_name: Arc<str>,
    /// The configuration document exactly as the client sent it.
    pub configuration: String,
    pub assignment_callback_url: Option<String>,
    pub fallback_assignment_callback_url: Option<String>,
    pub task_reservation_timeout: u32,
    pub date_created: Millis,
    pub date_updated: Millis,
    /// `configuration`, parsed and checked once.
    #[serde(skip)]
    pub config: crate::WorkflowConfig,
}

/// A task's `assignment_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Pending,
    Reserved,
    Assigned,
    Canceled,
    Completed,
    Wrapping,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Reserved => "reserved",
            TaskStatus::Assigned => "assigned",
            TaskStatus::Canceled => "canceled",
            TaskStatus::Completed => "completed",
            TaskStatus::Wrapping => "wrapping",
        }
    }

    pub fn parse(s: &str) -> Option<TaskStatus> {
        Some(match s {
            "pending" => TaskStatus::Pending,
            "reserved" => TaskStatus::Reserved,
            "assigned" => TaskStatus::Assigned,
            "canceled" => TaskStatus::Canceled,
            "completed" => TaskStatus::Completed,
            "wrapping" => TaskStatus::Wrapping,
            _ => return None,
        })
    }

    /// Canceled and completed tasks are finished: they wait only to be removed.
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskStatus::Canceled | TaskStatus::Completed)
    }
}

/// Where a task stands in its workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Index into the workflow's filters; `None` for the default filter or a direct queue.
    pub filter: Option<usize>,
    /// Index into that filter's targets.
    pub target: usize,
    /// When the step times out (task creation + the cumulative target timeouts), if it does.
    pub deadline: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub sid: Sid,
    /// The attributes exactly as the client sent them (a JSON object).
    /// (Shared, so that handing the row to the store copies no text.)
    pub attributes: Arc<str>,
    pub assignment_status: TaskStatus,
    pub priority: i64,
    /// Seconds the task may stay pending or reserved before it is canceled.
    pub timeout: u32,
    pub task_channel_sid: Sid,
    pub workflow_sid: Option<Sid>,
    pub task_queue_sid: Option<Sid>,
    pub task_queue_entered_date: Option<Millis>,
    pub virtual_start_time: Millis,
    pub date_created: Millis,
    pub date_updated: Millis,
    pub reason: Option<String>,
    pub routing_target: Option<String>,
    pub ignore_capacity: bool,
    /// Bumped on every change; the `ETag` of the task.
    pub version: u64,
    /// Position in the workflow while routed by one.
    pub step: Option<Step>,
    /// Pending → reserved transitions so far (Twilio cancels a task after 1,000).
    pub assignment_count: u32,
    /// Workers that rejected this task; it is not offered to them again.
    #[serde(default)]
    pub rejected_by: Vec<Sid>,
    /// When the task became assigned, canceled or completed (for its automatic removal).
    pub status_changed_at: Millis,
    /// `attributes`, parsed once (shared, so that handing the row to the store is cheap).
    #[serde(skip)]
    pub attrs: Arc<Value>,
}

/// A reservation's `reservation_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReservationStatus {
    Pending,
    Accepted,
    Rejected,
    Timeout,
    Canceled,
    Rescinded,
    Wrapping,
    Completed,
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Pending => "pending",
            ReservationStatus::Accepted => "accepted",
            ReservationStatus::Rejected => "rejected",
            ReservationStatus::Timeout => "timeout",
            ReservationStatus::Canceled => "canceled",
            ReservationStatus::Rescinded => "rescinded",
            ReservationStatus::Wrapping => "wrapping",
            ReservationStatus::Completed => "completed",
        }
    }

    pub fn parse(s: &str) -> Option<ReservationStatus> {
        Some(match s {
            "pending" => ReservationStatus::Pending,
            "accepted" => ReservationStatus::Accepted,
            "rejected" => ReservationStatus::Rejected,
            "timeout" => ReservationStatus::Timeout,
            "canceled" => ReservationStatus::Canceled,
            "rescinded" => ReservationStatus::Rescinded,
            "wrapping" => ReservationStatus::Wrapping,
            "completed" => ReservationStatus::Completed,
            _ => return None,
        })
    }

    /// Pending, accepted and wrapping reservations hold a slot of the worker's capacity.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            ReservationStatus::Pending | ReservationStatus::Accepted | ReservationStatus::Wrapping
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    pub sid: Sid,
    pub task_sid: Sid,
    pub worker_sid: Sid,
    pub status: ReservationStatus,
    /// The task's channel when the reservation was made (the capacity it holds).
    pub task_channel_sid: Sid,
    pub task_queue_sid: Option<Sid>,
    pub workflow_sid: Option<Sid>,
    pub date_created: Millis,
    pub date_updated: Millis,
    /// When a pending reservation times out.
    pub timeout_at: Millis,
    /// Single-tasking: the worker's activity before the reservation moved it, restored on
    /// a rejection without `WorkerActivitySid`.
    pub previous_activity_sid: Option<Sid>,
    pub version: u64,
}
