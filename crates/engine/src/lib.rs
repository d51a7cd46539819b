//! # taskyard-engine
//!
//! The TaskRouter state machine, with no I/O: no clock, no network, no database, no threads.
//! One [`Workspace`] value holds everything a workspace owns; the server keeps one per actor.
//!
//! * [`sid`] — time-ordered Twilio-style identifiers and the injected [`SidSource`].
//! * [`model`] — the resources (activities, task channels, workers and their channels, task
//!   queues, workflows) as plain structs that double as the stored rows.
//! * [`workflow`] — parsing and validating workflow configuration documents.
//! * [`contexts`] — what expression keys mean for a worker, a task/worker pair, a queue's
//!   `skip_if` counts, and `order_by`.
//! * [`workspace`] — [`Workspace::apply`]: a typed [`Command`] in, an [`Applied`] (the affected
//!   SID and the [`Change`]s to persist) or an [`EngineError`] out. A failed command changes
//!   nothing. [`Workspace::restore`] rebuilds the state from stored rows.
//! * [`events`] — the TaskRouter [`Event`]s every command and timer leaves behind, compact
//!   on the way out and rendered to JSON or callback parameters by the caller.
//! * [`preview`] — [`Workspace::preview_route`]: which filter, queue and workers a workflow
//!   would give task attributes, without a task.
//! * [`stats`] — real-time statistics ([`Workspace::realtime`], [`Workspace::realtime_queues`]):
//!   exact figures of a workspace, queue or workflow at a given instant.
//!
//! Time is always a parameter (`now`, in Unix milliseconds), so tests and simulations can
//! drive hours of activity in microseconds and replay any run exactly.

pub mod contexts;
pub mod error;
pub mod events;
pub mod model;
pub mod preview;
pub mod routing;
pub mod sid;
pub mod stats;
pub mod workflow;
pub mod workspace;

pub use contexts::{ChannelLoad, SkipIfView, TargetView, WorkerView, compare_workers};
pub use error::EngineError;
pub use events::{AssignmentTarget, Event, EventType, Field, Rendered};
pub use model::*;
pub use preview::{PreviewStep, RoutePreview};
pub use routing::{
    AssignmentCallback, CallbackAttempt, CallbackInstruction, CallbackKind, CreateTask,
    UpdateReservation, UpdateTask,
};
pub use sid::{CountingSids, Sid, SidError, SidSource, TimeOrderedSids};
pub use stats::{ActivityCount, RealTime, StatsScope, TasksByStatus, Waiting, WaitingSummary};
pub use workflow::{Filter, Target, WorkflowConfig};
pub use workspace::*;
