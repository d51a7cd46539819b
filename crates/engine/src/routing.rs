//! Tasks, reservations and the router.
//!
//! ## How routing works
//! A task enters its workflow: the first filter whose expression matches the task's
//! attributes is chosen, then the first of its targets whose (cumulative, task-age based)
//! timeout has not passed. The task waits in that target's queue, ordered FIFO (priority, then
//! `virtual_start_time`) or LIFO (newest first). A worker can take it when it is one of the
//! queue's members, its activity is available, it has free capacity on the task's channel
//! (any free slot at all in single-tasking workspaces), it satisfies the target expression
//! and known-worker rule, and it has not rejected this task before. Among such workers the
//! target's `order_by` decides, then the one idle longest.
//!
//! Routing is event-driven and exhaustive: every change that could make a task and a worker
//! fit (a task entering a queue, a worker becoming available or gaining capacity, a queue's
//! expression changing, …) marks the task or worker *dirty*, and `Workspace::settle`
//! processes dirty workers (each takes the best task waiting for it) and then dirty tasks
//! (each takes the best free workers, up to the queue's `max_reserved_workers`) until none is
//! left. So after every command and every timer, no pending task waits while a worker who
//! could take it is free — the invariant the simulation test checks after every step.
//!
//! Timers (reservation timeouts, step timeouts, task TTLs, removal of finished tasks) live in
//! one binary heap and are all derived from stored timestamps, so a restart re-arms them.
//! A timer found stale when it fires (its task moved on) is simply dropped.

use std::cmp::Ordering;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

// SIDs end in 64 random bits, so a fast non-cryptographic hash is plenty.
use rustc_hash::FxHashMap as HashMap;

use crate::contexts::{WorkerView, compare_workers};
use crate::error::EngineError;
use crate::events::{AssignmentTarget, Event, EventType, Field};
use crate::model::*;
use crate::sid::{Sid, SidSource, prefix};
use crate::workflow::Target;
use crate::workspace::{
    Applied, Body, Change, Command, Kind, Workspace, check_version, parse_attributes, put,
};

/// Longest a task may wait while pending or reserved (`Timeout`), in seconds.
pub const MAX_TASK_TIMEOUT: u32 = 1_209_600;
/// Default task `Timeout`, in seconds.
pub const DEFAULT_TASK_TIMEOUT: u32 = 86_400;
/// Largest task priority.
pub const MAX_PRIORITY: i64 = 2_147_483_647;
/// After this many pending → reserved transitions a task is canceled.
pub const MAX_ASSIGNMENTS: u32 = 1_000;
/// Finished (canceled or completed) tasks are removed this long after finishing.
pub const FINISHED_TASK_RETENTION_MS: Millis = 5 * 60 * 1000;
/// Assigned or wrapping tasks are removed this long after assignment.
pub const ASSIGNED_TASK_LIFETIME_MS: Millis = 24 * 60 * 60 * 1000;
/// Reservation timeout for tasks routed straight to a queue (no workflow).
pub const DEFAULT_RESERVATION_TIMEOUT: u32 = 120;

/// What a timer does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    ReservationTimeout(Sid),
    StepTimeout(Sid),
    TaskTtl(Sid),
    /// Remove a finished task, or an assigned one that was never completed.
    TaskRemoval(Sid),
}

/// Deadlines, earliest first. A binary heap: pushing is cheap, and an entry that no longer
/// matters is ignored when it comes up (see `fire`), so nothing is ever removed early.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timers(BinaryHeap<Reverse<(Millis, Timer)>>);

impl Timers {
    fn insert(&mut self, timer: (Millis, Timer)) {
        self.0.push(Reverse(timer));
    }

    fn first(&self) -> Option<&(Millis, Timer)> {
        self.0.peek().map(|r| &r.0)
    }

    fn pop_first(&mut self) -> Option<(Millis, Timer)> {
        self.0.pop().map(|r| r.0)
    }

    fn clear(&mut self) {
        self.0.clear();
    }

    fn extend(&mut self, timers: impl IntoIterator<Item = (Millis, Timer)>) {
        self.0.extend(timers.into_iter().map(Reverse));
    }
}

/// A step of a workflow: (filter, or `None` for the default filter; target; step deadline).
type StepAt = (Option<usize>, usize, Option<Millis>);

/// Where a pending task sits in its queue's order.
/// `(primary, secondary, tie-break, task)`: smaller is served first.
type QueueKey = (i64, i64, u128, Sid);

/// Tasks and reservations, plus indexes derived from them (rebuilt on restore).
#[derive(Debug, Clone, Default)]
pub(crate) struct Routing {
    pub(crate) tasks: BTreeMap<Sid, Task>,
    pub(crate) reservations: BTreeMap<Sid, Reservation>,
    /// Queue → its pending tasks in dispatch order.
    pending: HashMap<Sid, BTreeSet<QueueKey>>,
    /// Task → where it is in `pending` (queue, key) and the channel it was counted on.
    pending_at: HashMap<Sid, (Sid, QueueKey, Sid)>,
    /// Queue → how many of its pending tasks are on each channel, so that a worker with
    /// no room on any of them skips the queue instead of looking at each task (a worker
    /// has room on several channels; its queue may hold a hundred tasks on another).
    pending_channels: HashMap<Sid, Vec<(Sid, u32)>>,
    /// Worker → what it holds: active (pending, accepted, wrapping) reservations and counts
    /// per channel, so capacity checks cost no lookups.
    by_worker: HashMap<Sid, Load>,
    /// Task → all its reservations, oldest first.
    by_task: HashMap<Sid, Few>,
    timers: Timers,
    dirty_workers: BTreeSet<Sid>,
    /// Queue → members with room on at least one channel now, longest idle first. Lets a
    /// new task find its worker without scanning the queue's members (the task's own
    /// channel is checked while walking it).
    ready: HashMap<Sid, BTreeSet<(Millis, Sid)>>,
    /// Worker → its idle key and the queues it has an entry in, in `ready`.
    ready_at: HashMap<Sid, (Millis, Vec<Sid>)>,
    /// Workers whose `ready` entries may be out of date; refreshed before `ready` is read.
    stale: Vec<Sid>,
    /// Worker → the queues it is a member of.
    member_of: HashMap<Sid, Vec<Sid>>,
    dirty_tasks: BTreeSet<Sid>,
    /// Dirty tasks that must be re-evaluated against their workflow, not just retried.
    replace: BTreeSet<Sid>,
    /// Rows changed since the last flush.
    touched: Vec<(u8, Sid)>,
    /// Events recorded since the last command or tick, in order.
    pub(crate) events: Vec<Event>,
    /// A task being created: its `task.created` is recorded once it has entered its first
    /// queue (TaskRouter's order: workflow.entered, task-queue.entered, task.created,
    /// workflow.target-matched), or when its creation ends without a queue.
    announce: Option<Sid>,
    /// The workspace's part of every event, built once (see `Workspace::workspace_facts`).
    pub(crate) workspace_facts: Option<std::sync::Arc<crate::events::WorkspaceFacts>>,
    /// The facts of the last task an event described, with what they depend on (see
    /// `Workspace::task_facts`); forgotten on configuration changes and each command.
    #[allow(clippy::type_complexity)]
    pub(crate) last_task_facts: Option<(
        (Sid, u64, TaskStatus, Option<Sid>, i64, Option<Millis>),
        std::sync::Arc<crate::events::TaskFacts>,
    )>,
}

/// A worker's active reservations and, per task channel, `(pending, accepted or wrapping)`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Load {
    reservations: Vec<Sid>,
    channels: Vec<(Sid, u32, u32)>,
}

impl Load {
    fn counts(&self, channel: Sid) -> (u32, u32) {
        self.channels
            .iter()
            .find(|c| c.0 == channel)
            .map_or((0, 0), |c| (c.1, c.2))
    }

    fn slot(&mut self, channel: Sid) -> &mut (Sid, u32, u32) {
        if let Some(i) = self.channels.iter().position(|c| c.0 == channel) {
            &mut self.channels[i]
        } else {
            self.channels.push((channel, 0, 0));
            self.channels.last_mut().expect("just pushed")
        }
    }

    fn add(&mut self, r: Sid, channel: Sid) {
        self.reservations.push(r);
        self.slot(channel).1 += 1;
    }

    fn accept(&mut self, channel: Sid) {
        let s = self.slot(channel);
        s.1 = s.1.saturating_sub(1);
        s.2 += 1;
    }

    fn remove(&mut self, r: Sid, channel: Sid, was_pending: bool) {
        self.reservations.retain(|x| *x != r);
        let s = self.slot(channel);
        if was_pending {
            s.1 = s.1.saturating_sub(1);
        } else {
            s.2 = s.2.saturating_sub(1);
        }
    }
}

/// A short list of SIDs kept inline while it has one element: most tasks get exactly one
/// reservation in their life, and this runs for every task.
#[derive(Debug, Clone)]
pub(crate) enum Few {
    One(Sid),
    Many(Vec<Sid>),
}

impl Few {
    fn push(&mut self, sid: Sid) {
        match self {
            Few::One(first) => *self = Few::Many(vec![*first, sid]),
            Few::Many(v) => v.push(sid),
        }
    }

    fn as_slice(&self) -> &[Sid] {
        match self {
            Few::One(s) => std::slice::from_ref(s),
            Few::Many(v) => v,
        }
    }
}

fn push_few(map: &mut HashMap<Sid, Few>, key: Sid, sid: Sid) {
    match map.entry(key) {
        std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().push(sid),
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(Few::One(sid));
        }
    }
}

const T_TASK: u8 = 0;
const T_RESERVATION: u8 = 1;
const T_WORKER: u8 = 2;

/// Parameters of `POST /Tasks`.
#[derive(Debug, Clone, Default)]
pub struct CreateTask {
    pub attributes: Option<String>,
    pub priority: Option<i64>,
    pub timeout: Option<u32>,
    /// TaskChannel SID or unique name (default `default`).
    pub task_channel: Option<String>,
    pub workflow_sid: Option<Sid>,
    pub task_queue_sid: Option<Sid>,
    pub virtual_start_time: Option<Millis>,
    /// A workflow (`WW…`) or queue (`WQ…`) SID to route to.
    pub routing_target: Option<String>,
    pub ignore_capacity: Option<bool>,
}

/// Parameters of `POST /Tasks/{Sid}`.
#[derive(Debug, Clone)]
pub struct UpdateTask {
    pub sid: Sid,
    pub if_match: Option<String>,
    pub attributes: Option<String>,
    pub priority: Option<i64>,
    pub assignment_status: Option<TaskStatus>,
    pub reason: Option<String>,
    pub task_channel: Option<String>,
    pub virtual_start_time: Option<Millis>,
}

/// Parameters of `POST …/Reservations/{Sid}` (task- or worker-scoped).
#[derive(Debug, Clone)]
pub struct UpdateReservation {
    pub sid: Sid,
    /// The task or worker of the path; the reservation must belong to it.
    pub task: Option<Sid>,
    pub worker: Option<Sid>,
    pub if_match: Option<String>,
    pub status: Option<ReservationStatus>,
    pub worker_activity_sid: Option<Sid>,
}

/// What a reservation's assignment callback came to, reported by whoever made the HTTP
/// calls: every attempt (the callback URL, then perhaps the fallback URL) and the
/// instruction the application answered, if it is one the engine carries out.
#[derive(Debug, Clone)]
pub struct AssignmentCallback {
    pub reservation: Sid,
    pub attempts: Vec<CallbackAttempt>,
    pub instruction: Option<CallbackInstruction>,
}

/// One HTTP attempt of an assignment callback.
#[derive(Debug, Clone, Default)]
pub struct CallbackAttempt {
    pub url: String,
    pub kind: CallbackKind,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    pub duration_ms: u64,
    /// `deferred`, `failed`, `invalid`, `forwarded`, `unsupported`, … (for the attempt
    /// that carried an instruction, the engine records what the instruction did).
    pub outcome: String,
    /// Twilio's debugger code for a bad answer (40000, 40001, 40005, 55555, …).
    pub error_code: Option<u32>,
    pub message: String,
}

/// Which URL an attempt went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallbackKind {
    /// The workflow's `AssignmentCallbackUrl`.
    #[default]
    Assignment,
    /// The workflow's `FallbackAssignmentCallbackUrl`.
    Fallback,
    /// The server's media connector, handed a telephony instruction.
    MediaConnector,
}

impl CallbackKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackKind::Assignment => "assignment",
            CallbackKind::Fallback => "fallback",
            CallbackKind::MediaConnector => "media-connector",
        }
    }
}

/// An instruction from an assignment callback answer that changes TaskRouter state.
#[derive(Debug, Clone, PartialEq)]
pub enum CallbackInstruction {
    Accept,
    Reject { activity_sid: Option<String> },
}

impl Routing {
    /// Counts a pending task of `queue` on `channel` in or out of `pending_channels`.
    fn count_channel(&mut self, queue: Sid, channel: Sid, up: bool) {
        let counts = self.pending_channels.entry(queue).or_default();
        match counts.iter().position(|c| c.0 == channel) {
            Some(i) if up => counts[i].1 += 1,
            Some(i) => {
                counts[i].1 = counts[i].1.saturating_sub(1);
                if counts[i].1 == 0 {
                    counts.swap_remove(i);
                }
            }
            None if up => counts.push((channel, 1)),
            None => {}
        }
    }

    /// The queues `worker` is a member of.
    pub(crate) fn member_of(&self, worker: Sid) -> &[Sid] {
        self.member_of.get(&worker).map_or(&[], Vec::as_slice)
    }

    pub(crate) fn set_member_of(&mut self, worker: Sid, queues: Vec<Sid>) {
        if queues.is_empty() {
            self.member_of.remove(&worker);
        } else {
            self.member_of.insert(worker, queues);
        }
        self.stale.push(worker);
    }

    /// The worker may now fit tasks it could not (or no longer fit some): route it again.
    fn mark_worker(&mut self, worker: Sid) {
        self.dirty_workers.insert(worker);
        self.stale.push(worker);
    }
}

impl Workspace {
    // ----- read access -------------------------------------------------------------------

    pub fn tasks(&self) -> &BTreeMap<Sid, Task> {
        &self.routing.tasks
    }

    pub fn reservations(&self) -> &BTreeMap<Sid, Reservation> {
        &self.routing.reservations
    }

    /// A task's reservations, oldest first.
    pub fn task_reservations(&self, task: Sid) -> impl Iterator<Item = &Reservation> {
        self.routing
            .by_task
            .get(&task)
            .into_iter()
            .flat_map(Few::as_slice)
            .filter_map(|r| self.routing.reservations.get(r))
    }

    /// Reservations holding a slot of the worker's capacity (pending, accepted, wrapping).
    pub fn active_reservations(&self, worker: Sid) -> impl Iterator<Item = &Reservation> {
        self.routing
            .by_worker
            .get(&worker)
            .into_iter()
            .flat_map(|l| l.reservations.iter())
            .filter_map(|r| self.routing.reservations.get(r))
    }

    /// `(pending, accepted or wrapping)` reservations of a worker on one channel.
    pub fn channel_counts(&self, worker: Sid, channel: Sid) -> (u32, u32) {
        self.routing
            .by_worker
            .get(&worker)
            .map_or((0, 0), |l| l.counts(channel))
    }

    /// The earliest moment [`Workspace::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.routing.timers.first().map(|&(at, _)| at)
    }

    // ----- the command entry point -------------------------------------------------------

    /// Applies one command at time `now`. On error nothing has changed. The returned
    /// changes include every row the router touched (reservations made, workers moved).
    pub fn apply(
        &mut self,
        cmd: Command,
        now: Millis,
        ids: &mut dyn SidSource,
    ) -> Result<Applied, EngineError> {
        self.refresh_workspace_facts();
        let result = match cmd {
            Command::CreateTask(p) => self.create_task(p, now, ids),
            Command::UpdateTask(p) => self.update_task(p, now, ids),
            Command::DeleteTask { sid, if_match } => self.delete_task(sid, if_match, now),
            Command::UpdateReservation(p) => self.update_reservation(p, now),
            Command::AssignmentCallback(p) => Ok(self.assignment_callback(p, now)),
            cmd => self.check_config_command(&cmd).and_then(|()| {
                self.forget_facts();
                let follow_up = FollowUp::of(&cmd);
                let before = self.before(&cmd);
                let applied = self.apply_config(cmd, now, ids)?;
                self.config_events(before, applied.sid, now);
                self.follow_up(follow_up, &applied, now, ids);
                Ok(applied)
            }),
        };
        let mut applied = match result {
            Ok(a) => a,
            Err(e) => {
                // A refused command changed nothing, so it has nothing to tell.
                self.routing.events.clear();
                self.routing.announce = None;
                return Err(e);
            }
        };
        self.settle(now, ids);
        applied.changes.extend(self.flush());
        applied.events = self.take_events(now, ids);
        Ok(applied)
    }

    /// Fires every timer due at `now` and routes whatever that frees. Returns the rows to
    /// commit (nothing, when nothing was due).
    pub fn tick(&mut self, now: Millis, ids: &mut dyn SidSource) -> (Vec<Change>, Vec<Event>) {
        self.refresh_workspace_facts();
        while let Some(&(at, timer)) = self.routing.timers.first() {
            if at > now {
                break;
            }
            self.routing.timers.pop_first();
            self.fire(at, timer, now);
        }
        self.settle(now, ids);
        (self.flush(), self.take_events(now, ids))
    }

    // ----- configuration commands that touch routing -------------------------------------

    /// Refuses configuration changes that would strand tasks or reservations.
    fn check_config_command(&self, cmd: &Command) -> Result<(), EngineError> {
        let live = || {
            self.routing
                .tasks
                .values()
                .filter(|t| !t.assignment_status.is_terminal())
        };
        match cmd {
            Command::DeleteWorker { sid, .. } => {
                let n = self.active_reservations(*sid).count();
                if n > 0 {
                    return Err(EngineError::Refused {
                        message: format!(
                            "Cannot delete Worker {sid}: it has {n} pending or accepted reservation(s). Complete or reject them first."
                        ),
                    });
                }
            }
            Command::DeleteTaskQueue { sid } => {
                if let Some(t) = live().find(|t| t.task_queue_sid == Some(*sid)) {
                    return Err(EngineError::Refused {
                        message: format!("Cannot delete TaskQueue {sid}: Task {} is in it", t.sid),
                    });
                }
            }
            Command::DeleteWorkflow { sid } => {
                if let Some(t) = live().find(|t| t.workflow_sid == Some(*sid)) {
                    return Err(EngineError::Refused {
                        message: format!(
                            "Cannot delete Workflow {sid}: it is routing Task {}",
                            t.sid
                        ),
                    });
                }
            }
            Command::DeleteTaskChannel { channel } => {
                if let Some(c) = self.find_task_channel(channel)
                    && let Some(t) = live().find(|t| t.task_channel_sid == c.sid)
                {
                    return Err(EngineError::Refused {
                        message: format!(
                            "Cannot delete TaskChannel {}: Task {} uses it",
                            c.sid, t.sid
                        ),
                    });
                }
            }
            Command::UpdateWorkspace(p)
                if p.multi_task_enabled
                    .is_some_and(|m| m != self.info.multi_task_enabled)
                    && self
                        .routing
                        .by_worker
                        .values()
                        .any(|l| !l.reservations.is_empty()) =>
            {
                return Err(EngineError::Refused {
                    message: "MultiTaskEnabled cannot change while workers hold reservations"
                        .into(),
                });
            }
            _ => {}
        }
        Ok(())
    }

    fn follow_up(&mut self, f: FollowUp, applied: &Applied, now: Millis, ids: &mut dyn SidSource) {
        match f {
            FollowUp::None => {}
            FollowUp::Worker { reject_pending } => {
                if reject_pending {
                    let pending: Vec<Sid> = self
                        .active_reservations(applied.sid)
                        .filter(|r| r.status == ReservationStatus::Pending)
                        .map(|r| r.sid)
                        .collect();
                    for r in pending {
                        self.end_reservation(r, ReservationStatus::Rejected, now);
                    }
                }
                self.routing.mark_worker(applied.sid);
            }
            FollowUp::WorkerOfChannel(worker) => {
                self.routing.mark_worker(worker);
            }
            FollowUp::Queue => {
                self.rebuild_member_of();
                self.requeue(applied.sid);
            }
            FollowUp::WorkerGone(w) => {
                self.routing.member_of.remove(&w);
                self.routing.stale.push(w);
            }
            FollowUp::Workflow { re_evaluate } => {
                if re_evaluate {
                    let pending: Vec<Sid> = self
                        .routing
                        .tasks
                        .values()
                        .filter(|t| {
                            t.workflow_sid == Some(applied.sid)
                                && t.assignment_status == TaskStatus::Pending
                        })
                        .map(|t| t.sid)
                        .collect();
                    for t in pending {
                        self.place(t, now, ids);
                    }
                }
            }
            FollowUp::AllWorkers => {
                let all: Vec<Sid> = self.workers.keys().copied().collect();
                for w in all {
                    self.routing.mark_worker(w);
                }
            }
        }
    }

    /// Re-sorts a queue's pending tasks (its order may have changed) and retries them all
    /// (its members may have changed).
    fn requeue(&mut self, queue: Sid) {
        let tasks: Vec<Sid> = self
            .routing
            .pending
            .get(&queue)
            .map(|set| set.iter().map(|k| k.3).collect())
            .unwrap_or_default();
        for t in tasks {
            self.unqueue(t);
            self.enqueue(t, queue);
            self.routing.dirty_tasks.insert(t);
        }
    }

    // ----- tasks -------------------------------------------------------------------------

    fn create_task(
        &mut self,
        p: CreateTask,
        now: Millis,
        ids: &mut dyn SidSource,
    ) -> Result<Applied, EngineError> {
        let (workflow_sid, task_queue_sid) = self.route_of(&p)?;
        let (attributes, attrs) =
            parse_attributes(p.attributes.unwrap_or_else(|| "{}".into()), "Attributes")?;
        let priority = p.priority.unwrap_or(0);
        check_priority(priority)?;
        let timeout = p.timeout.unwrap_or(DEFAULT_TASK_TIMEOUT);
        if !(1..=MAX_TASK_TIMEOUT).contains(&timeout) {
            return Err(EngineError::invalid(
                "Timeout",
                format!("Timeout must be between 1 and {MAX_TASK_TIMEOUT} seconds"),
            ));
        }
        let channel = self.channel_param(p.task_channel.as_deref().unwrap_or("default"))?;
        let vst = match p.virtual_start_time {
            Some(v) => check_virtual_start_time(v, now)?,
            None => now,
        };

        let sid = ids.next_sid(prefix::TASK, now);
        let task = Task {
            sid,
            attributes: attributes.into(),
            assignment_status: TaskStatus::Pending,
            priority,
            timeout,
            task_channel_sid: channel,
            workflow_sid,
            task_queue_sid,
            task_queue_entered_date: None,
            virtual_start_time: vst,
            date_created: now,
            date_updated: now,
            reason: None,
            routing_target: p.routing_target,
            ignore_capacity: p.ignore_capacity.unwrap_or(false),
            version: 0,
            step: None,
            assignment_count: 0,
            rejected_by: Vec::new(),
            status_changed_at: now,
            attrs: std::sync::Arc::new(attrs),
        };
        self.routing.tasks.insert(sid, task);
        self.routing
            .timers
            .insert((now + i64::from(timeout) * 1000, Timer::TaskTtl(sid)));
        self.touch(T_TASK, sid);
        if workflow_sid.is_some() {
            self.emit_task(EventType::WorkflowEntered, sid, now, Vec::new());
        }
        self.routing.announce = Some(sid);
        self.place(sid, now, ids);
        self.announce_created(sid, now);
        Ok(Applied {
            sid,
            changes: Vec::new(),
            events: Vec::new(),
        })
    }

    /// The workflow and/or queue a new task is routed by.
    fn route_of(&self, p: &CreateTask) -> Result<(Option<Sid>, Option<Sid>), EngineError> {
        if let Some(target) = &p.routing_target {
            let sid: Sid = target.parse().map_err(|_| {
                EngineError::invalid(
                    "RoutingTarget",
                    "RoutingTarget must be a Workflow (WW…) or TaskQueue (WQ…) SID",
                )
            })?;
            return match sid.prefix() {
                prefix::WORKFLOW if self.workflows.contains_key(&sid) => Ok((Some(sid), None)),
                prefix::TASK_QUEUE if self.task_queues.contains_key(&sid) => Ok((None, Some(sid))),
                prefix::WORKER => Err(EngineError::invalid(
                    "RoutingTarget",
                    "Routing a task straight to a Worker is not supported by Taskyard yet; route it through a queue or workflow",
                )),
                _ => Err(EngineError::invalid(
                    "RoutingTarget",
                    format!("RoutingTarget {sid} is not a Workflow or TaskQueue of this workspace"),
                )),
            };
        }
        if let Some(q) = p.task_queue_sid {
            if !self.task_queues.contains_key(&q) {
                return Err(EngineError::invalid(
                    "TaskQueueSid",
                    format!("TaskQueueSid {q} is not a TaskQueue of this workspace"),
                ));
            }
            if p.workflow_sid.is_none() {
                return Ok((None, Some(q)));
            }
        }
        match p.workflow_sid {
            Some(w) if self.workflows.contains_key(&w) => Ok((Some(w), None)),
            Some(w) => Err(EngineError::invalid(
                "WorkflowSid",
                format!("WorkflowSid {w} is not a Workflow of this workspace"),
            )),
            None => match self.workflows.len() {
                1 => Ok((self.workflows.keys().next().copied(), None)),
                0 => Err(EngineError::invalid(
                    "WorkflowSid",
                    "This workspace has no Workflow; create one or pass TaskQueueSid",
                )),
                _ => Err(EngineError::invalid(
                    "WorkflowSid",
                    "WorkflowSid is required when the workspace has more than one Workflow",
                )),
            },
        }
    }

    fn update_task(
        &mut self,
        p: UpdateTask,
        now: Millis,
        ids: &mut dyn SidSource,
    ) -> Result<Applied, EngineError> {
        let sid = p.sid;
        let t = self
            .routing
            .tasks
            .get(&sid)
            .ok_or_else(|| EngineError::not_found(Kind::Task, sid))?;
        check_version(p.if_match.as_deref(), t.version)?;
        let status = t.assignment_status;
        let attributes = p
            .attributes
            .map(|a| parse_attributes(a, "Attributes"))
            .transpose()?;
        if let Some(pr) = p.priority {
            check_priority(pr)?;
        }
        let channel = p
            .task_channel
            .as_deref()
            .map(|c| self.channel_param(c))
            .transpose()?;
        let vst = p
            .virtual_start_time
            .map(|v| check_virtual_start_time(v, now))
            .transpose()?;
        let describe = |verb: &str, why: &str| EngineError::Refused {
            message: format!(
                "Cannot {verb} {sid} in workspace {} for account {} because it is {why}.",
                self.info.sid, self.info.account_sid
            ),
        };
        if let Some(target) = p.assignment_status {
            let allowed = match target {
                TaskStatus::Canceled => {
                    matches!(status, TaskStatus::Pending | TaskStatus::Reserved)
                        .then_some(())
                        .ok_or_else(|| describe("cancel task", "not pending or reserved"))
                }
                TaskStatus::Wrapping => (status == TaskStatus::Assigned)
                    .then_some(())
                    .ok_or_else(|| describe("wrap up a task", "not currently assigned")),
                TaskStatus::Completed => {
                    matches!(status, TaskStatus::Assigned | TaskStatus::Wrapping)
                        .then_some(())
                        .ok_or_else(|| describe("complete task", "not assigned or wrapping"))
                }
                other => Err(EngineError::invalid(
                    "AssignmentStatus",
                    format!(
                        "AssignmentStatus can only be set to canceled, wrapping or completed, not {}",
                        other.as_str()
                    ),
                )),
            };
            allowed?;
            if matches!(target, TaskStatus::Canceled | TaskStatus::Completed) && p.reason.is_none()
            {
                return Err(EngineError::invalid(
                    "Reason",
                    "Reason is required when a task is canceled or completed",
                ));
            }
        }
        if (channel.is_some() || vst.is_some()) && status.is_terminal() {
            return Err(describe("update task", "finished"));
        }

        // Validated: apply.
        let t = self.routing.tasks.get_mut(&sid).expect("checked above");
        let mut reroute = false;
        let attributes_changed = attributes.is_some();
        if let Some((text, value)) = attributes {
            t.attributes = text.into();
            t.attrs = std::sync::Arc::new(value);
            reroute |= t.assignment_status == TaskStatus::Pending;
        }
        if let Some(pr) = p.priority {
            t.priority = pr;
        }
        if let Some(c) = channel {
            t.task_channel_sid = c;
        }
        if let Some(v) = vst {
            t.virtual_start_time = v;
        }
        if p.reason.is_some() && p.assignment_status.is_none() {
            t.reason = p.reason.clone();
        }
        t.version += 1;
        t.date_updated = now;
        let pending = t.assignment_status == TaskStatus::Pending;
        self.touch(T_TASK, sid);
        let updated = attributes_changed
            || p.priority.is_some()
            || channel.is_some()
            || vst.is_some()
            || (p.reason.is_some() && p.assignment_status.is_none());
        if updated {
            self.emit_task(EventType::TaskUpdated, sid, now, Vec::new());
        }
        match p.assignment_status {
            Some(TaskStatus::Canceled) => {
                self.finish_task(sid, TaskStatus::Canceled, p.reason, now)
            }
            Some(TaskStatus::Completed) => {
                self.finish_task(sid, TaskStatus::Completed, p.reason, now)
            }
            Some(TaskStatus::Wrapping) => self.wrap_task(sid, now),
            _ => {}
        }
        if reroute {
            // New attributes may match another filter: evaluate the workflow again.
            self.place(sid, now, ids);
        } else if pending && (p.priority.is_some() || vst.is_some() || channel.is_some()) {
            // Same queue, new place in its order (or new channel): retry.
            if let Some((queue, _, _)) = self.routing.pending_at.get(&sid).copied() {
                self.unqueue(sid);
                self.enqueue(sid, queue);
            }
            self.routing.dirty_tasks.insert(sid);
        }
        Ok(Applied {
            sid,
            changes: Vec::new(),
            events: Vec::new(),
        })
    }

    fn delete_task(
        &mut self,
        sid: Sid,
        if_match: Option<String>,
        now: Millis,
    ) -> Result<Applied, EngineError> {
        let t = self
            .routing
            .tasks
            .get(&sid)
            .ok_or_else(|| EngineError::not_found(Kind::Task, sid))?;
        check_version(if_match.as_deref(), t.version)?;
        self.remove_task(sid, now, EventType::TaskDeleted);
        Ok(Applied {
            sid,
            changes: Vec::new(),
            events: Vec::new(),
        })
    }

    /// Removes a task and its reservations, freeing whatever capacity they held.
    fn remove_task(&mut self, sid: Sid, now: Millis, event: EventType) {
        let active: Vec<Sid> = self
            .task_reservations(sid)
            .filter(|r| r.status.is_active())
            .map(|r| r.sid)
            .collect();
        for r in active {
            // Pending ones are canceled; accepted/wrapping ones just end with the task.
            self.end_reservation(r, ReservationStatus::Canceled, now);
        }
        self.emit_task(event, sid, now, Vec::new());
        self.unqueue(sid);
        let removed = self.routing.by_task.remove(&sid);
        for &r in removed.iter().flat_map(Few::as_slice) {
            if let Some(res) = self.routing.reservations.remove(&r)
                && self.workers.contains_key(&res.worker_sid)
            {
                // The reservation carried the worker's last-reserved time; the worker row
                // keeps it from now on (see `reserve`).
                self.touch(T_WORKER, res.worker_sid);
            }
            self.touch(T_RESERVATION, r);
        }
        self.routing.tasks.remove(&sid);
        self.touch(T_TASK, sid);
    }

    /// Cancels or completes a task, ending its reservations.
    /// (The task is finished first, so that ending its pending reservations does not put it
    /// back to routing.)
    fn finish_task(&mut self, sid: Sid, status: TaskStatus, reason: Option<String>, now: Millis) {
        self.announce_created(sid, now);
        self.unqueue(sid);
        let Some(t) = self.routing.tasks.get_mut(&sid) else {
            return;
        };
        t.assignment_status = status;
        t.reason = reason;
        t.status_changed_at = now;
        t.date_updated = now;
        t.version += 1;
        self.routing
            .timers
            .insert((now + FINISHED_TASK_RETENTION_MS, Timer::TaskRemoval(sid)));
        self.touch(T_TASK, sid);
        let event = if status == TaskStatus::Completed {
            EventType::TaskCompleted
        } else {
            EventType::TaskCanceled
        };
        self.emit_task(event, sid, now, Vec::new());
        let active: Vec<(Sid, ReservationStatus)> = self
            .task_reservations(sid)
            .filter(|r| r.status.is_active())
            .map(|r| (r.sid, r.status))
            .collect();
        for (r, rs) in active {
            let end = match (status, rs) {
                (TaskStatus::Completed, _) => ReservationStatus::Completed,
                (_, ReservationStatus::Pending) => ReservationStatus::Canceled,
                _ => ReservationStatus::Completed,
            };
            self.end_reservation(r, end, now);
        }
    }

    /// Moves an assigned task (and its accepted reservation) to wrapping.
    fn wrap_task(&mut self, sid: Sid, now: Millis) {
        let accepted: Vec<Sid> = self
            .task_reservations(sid)
            .filter(|r| r.status == ReservationStatus::Accepted)
            .map(|r| r.sid)
            .collect();
        for &r in &accepted {
            if let Some(res) = self.routing.reservations.get_mut(&r) {
                res.status = ReservationStatus::Wrapping;
                res.date_updated = now;
                res.version += 1;
                self.touch(T_RESERVATION, r);
            }
        }
        if let Some(t) = self.routing.tasks.get_mut(&sid) {
            t.assignment_status = TaskStatus::Wrapping;
            t.date_updated = now;
            self.touch(T_TASK, sid);
        }
        self.emit_task(EventType::TaskWrapup, sid, now, Vec::new());
        for r in accepted {
            self.emit_reservation(EventType::ReservationWrapup, r, now);
        }
    }

    // ----- reservations ------------------------------------------------------------------

    fn update_reservation(
        &mut self,
        p: UpdateReservation,
        now: Millis,
    ) -> Result<Applied, EngineError> {
        let sid = p.sid;
        let r = self
            .routing
            .reservations
            .get(&sid)
            .filter(|r| {
                p.task.is_none_or(|t| t == r.task_sid) && p.worker.is_none_or(|w| w == r.worker_sid)
            })
            .ok_or_else(|| EngineError::not_found(Kind::Reservation, sid))?;
        check_version(p.if_match.as_deref(), r.version)?;
        let current = r.status;
        let task_sid = r.task_sid;
        let worker_sid = r.worker_sid;
        if let Some(a) = p.worker_activity_sid {
            self.activity_param(a, "WorkerActivitySid")?;
        }
        let Some(target) = p.status else {
            return Err(EngineError::invalid(
                "ReservationStatus",
                "ReservationStatus is required (accepted, rejected, wrapping or completed)",
            ));
        };
        let bad = |what: &str| EngineError::Refused {
            message: format!(
                "Cannot {what} reservation {sid} because it is {}",
                current.as_str()
            ),
        };
        match target {
            ReservationStatus::Accepted => {
                if current == ReservationStatus::Rescinded {
                    return Err(EngineError::Gone {
                        message: format!(
                            "Reservation {sid} was rescinded: another worker accepted the task"
                        ),
                    });
                }
                if current != ReservationStatus::Pending {
                    return Err(bad("accept"));
                }
                self.accept(sid, now);
            }
            ReservationStatus::Rejected => {
                if current != ReservationStatus::Pending {
                    return Err(bad("reject"));
                }
                self.end_reservation(sid, ReservationStatus::Rejected, now);
                if let Some(t) = self.routing.tasks.get_mut(&task_sid)
                    && !t.rejected_by.contains(&worker_sid)
                {
                    t.rejected_by.push(worker_sid);
                    self.touch(T_TASK, task_sid);
                }
                let restore = self
                    .routing
                    .reservations
                    .get(&sid)
                    .and_then(|r| r.previous_activity_sid);
                if let Some(a) = p.worker_activity_sid.or(restore) {
                    self.set_activity(worker_sid, a, now);
                }
            }
            ReservationStatus::Wrapping => {
                if current != ReservationStatus::Accepted {
                    return Err(bad("wrap up"));
                }
                self.wrap_task(task_sid, now);
            }
            ReservationStatus::Completed => {
                if !matches!(
                    current,
                    ReservationStatus::Accepted | ReservationStatus::Wrapping
                ) {
                    return Err(bad("complete"));
                }
                self.finish_task(
                    task_sid,
                    TaskStatus::Completed,
                    Some("reservation completed".into()),
                    now,
                );
            }
            other => {
                return Err(EngineError::invalid(
                    "ReservationStatus",
                    format!(
                        "ReservationStatus can be set to accepted, rejected, wrapping or completed, not {}",
                        other.as_str()
                    ),
                ));
            }
        }
        Ok(Applied {
            sid,
            changes: Vec::new(),
            events: Vec::new(),
        })
    }

    /// Records an assignment callback's attempts as `reservation.assignment-callback` events
    /// and carries out its instruction, if any. Never refused: a reservation that moved on
    /// (or vanished) while the application answered only gets its answer recorded.
    fn assignment_callback(&mut self, p: AssignmentCallback, now: Millis) -> Applied {
        let sid = p.reservation;
        let mut attempts = p.attempts;
        let start = self.routing.events.len();
        if let Some(instruction) = p.instruction {
            let (status, activity) = match instruction {
                CallbackInstruction::Accept => (ReservationStatus::Accepted, None),
                CallbackInstruction::Reject { activity_sid } => {
                    (ReservationStatus::Rejected, activity_sid)
                }
            };
            let activity = match activity.map(|a| a.parse::<Sid>()) {
                None => Ok(None),
                Some(Ok(a)) if self.activities.contains_key(&a) => Ok(Some(a)),
                Some(_) => Err((40100, "activity_sid is not an Activity of this workspace")),
            };
            let outcome = match activity {
                Err((code, message)) => Err((Some(code), message.to_string())),
                Ok(worker_activity_sid) => {
                    let current = self.routing.reservations.get(&sid).map(|r| r.status);
                    match current {
                        Some(ReservationStatus::Pending) => self
                            .update_reservation(
                                UpdateReservation {
                                    sid,
                                    task: None,
                                    worker: None,
                                    if_match: None,
                                    status: Some(status),
                                    worker_activity_sid,
                                },
                                now,
                            )
                            .map(|_| status.as_str().to_string())
                            .map_err(|e| (None, e.to_string())),
                        Some(other) => Err((
                            None,
                            format!("ignored: the reservation is {}", other.as_str()),
                        )),
                        None => Err((None, "ignored: the reservation no longer exists".into())),
                    }
                }
            };
            if let Some(last) = attempts.last_mut() {
                match outcome {
                    Ok(done) => last.outcome = done,
                    Err((code, message)) => {
                        last.outcome = "error".into();
                        last.error_code = code;
                        last.message = message;
                    }
                }
            }
        }
        let n = attempts.len();
        for a in attempts {
            let mut e =
                match self.reservation_event(EventType::ReservationAssignmentCallback, sid, now) {
                    Some(e) => e,
                    None => {
                        let mut e =
                            self.new_event(EventType::ReservationAssignmentCallback, sid, now);
                        e.data.push(("reservation_sid", Field::Sid(sid)));
                        e
                    }
                };
            let d = &mut e.data;
            d.push(("callback_url", Field::Text(a.url.as_str().into())));
            d.push(("callback_kind", Field::Static(a.kind.as_str())));
            if let Some(code) = a.status {
                d.push(("callback_status_code", Field::Int(i64::from(code))));
            }
            d.push(("callback_duration_ms", Field::Int(a.duration_ms as i64)));
            d.push(("callback_outcome", Field::Text(a.outcome.as_str().into())));
            if let Some(code) = a.error_code {
                d.push(("callback_error_code", Field::Int(i64::from(code))));
            }
            if !a.message.is_empty() {
                d.push(("callback_message", Field::Text(a.message.as_str().into())));
            }
            self.push_event(e);
        }
        // The attempts come first: they happened before what the instruction caused.
        self.routing.events[start..].rotate_right(n);
        Applied {
            sid,
            changes: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Accepts a pending reservation: the task is assigned, the task's other pending
    /// reservations are rescinded.
    fn accept(&mut self, sid: Sid, now: Millis) {
        let Some(r) = self.routing.reservations.get_mut(&sid) else {
            return;
        };
        r.status = ReservationStatus::Accepted;
        r.date_updated = now;
        r.version += 1;
        let (task_sid, worker_sid, queue, channel) = (
            r.task_sid,
            r.worker_sid,
            r.task_queue_sid,
            r.task_channel_sid,
        );
        self.touch(T_RESERVATION, sid);
        if let Some(l) = self.routing.by_worker.get_mut(&worker_sid) {
            l.accept(channel);
        }
        if let Some(t) = self.routing.tasks.get_mut(&task_sid) {
            t.assignment_status = TaskStatus::Assigned;
            t.status_changed_at = now;
            t.date_updated = now;
            t.version += 1;
            self.routing.timers.insert((
                now + ASSIGNED_TASK_LIFETIME_MS,
                Timer::TaskRemoval(task_sid),
            ));
            self.touch(T_TASK, task_sid);
        }
        self.emit_reservation(EventType::ReservationAccepted, sid, now);
        let others: Vec<Sid> = self
            .task_reservations(task_sid)
            .filter(|o| o.sid != sid && o.status == ReservationStatus::Pending)
            .map(|o| o.sid)
            .collect();
        for o in others {
            self.end_reservation(o, ReservationStatus::Rescinded, now);
        }
        if !self.info.multi_task_enabled
            && let Some(a) = queue
                .and_then(|q| self.task_queues.get(&q))
                .and_then(|q| q.assignment_activity_sid)
        {
            self.set_activity(worker_sid, a, now);
        }
    }

    /// Ends a reservation with `status`, releasing the worker's capacity when it stops
    /// being active, and puts the task back to routing when its last pending reservation
    /// ended without acceptance.
    fn end_reservation(&mut self, sid: Sid, status: ReservationStatus, now: Millis) {
        let Some(r) = self.routing.reservations.get_mut(&sid) else {
            return;
        };
        let was = r.status;
        r.status = status;
        r.date_updated = now;
        r.version += 1;
        let (task_sid, worker_sid, channel) = (r.task_sid, r.worker_sid, r.task_channel_sid);
        self.touch(T_RESERVATION, sid);
        if was.is_active() && !status.is_active() {
            if let Some(l) = self.routing.by_worker.get_mut(&worker_sid) {
                l.remove(sid, channel, was == ReservationStatus::Pending);
            }
            self.routing.mark_worker(worker_sid);
        }
        if was == ReservationStatus::Pending
            && matches!(
                status,
                ReservationStatus::Rejected
                    | ReservationStatus::Timeout
                    | ReservationStatus::Canceled
            )
        {
            let still_pending = self
                .task_reservations(task_sid)
                .any(|o| o.status == ReservationStatus::Pending);
            if !still_pending
                && let Some(t) = self.routing.tasks.get_mut(&task_sid)
                && t.assignment_status == TaskStatus::Reserved
            {
                t.assignment_status = TaskStatus::Pending;
                t.date_updated = now;
                t.version += 1;
                self.touch(T_TASK, task_sid);
                self.routing.dirty_tasks.insert(task_sid);
                // Re-evaluated against the workflow when the dirty task is settled.
                self.routing.replace.insert(task_sid);
            }
        }
        let event = match status {
            ReservationStatus::Rejected => Some(EventType::ReservationRejected),
            ReservationStatus::Timeout => Some(EventType::ReservationTimeout),
            ReservationStatus::Canceled => Some(EventType::ReservationCanceled),
            ReservationStatus::Rescinded => Some(EventType::ReservationRescinded),
            ReservationStatus::Completed => Some(EventType::ReservationCompleted),
            _ => None,
        };
        if let Some(e) = event {
            self.emit_reservation(e, sid, now);
        }
    }

    fn set_activity(&mut self, worker: Sid, activity: Sid, now: Millis) {
        if let Some(w) = self.workers.get_mut(&worker)
            && w.activity_sid != activity
        {
            let (previous, since) = (w.activity_sid, w.date_status_changed);
            w.activity_sid = activity;
            w.date_status_changed = now;
            w.date_updated = now;
            w.version += 1;
            self.touch(T_WORKER, worker);
            self.routing.mark_worker(worker);
            self.emit_activity_change(worker, previous, since, now);
        }
    }

    // ----- placement in the workflow -----------------------------------------------------

    /// (Re-)evaluates a task's workflow at `now` and puts it in the right queue, trying to
    /// reserve workers for it and applying `skip_if`. Cancels it when it fell off the end.
    fn place(&mut self, sid: Sid, now: Millis, ids: &mut dyn SidSource) {
        self.routing.replace.remove(&sid);
        if self
            .routing
            .tasks
            .get(&sid)
            .is_none_or(|t| t.assignment_status != TaskStatus::Pending)
        {
            return;
        }
        self.unqueue(sid);
        let t = &self.routing.tasks[&sid];
        let Some(wf_sid) = t.workflow_sid else {
            // Routed straight to a queue.
            if let Some(q) = t.task_queue_sid {
                self.enter_queue(sid, q, None, None, now);
                self.reserve_or_wait(sid, now, ids);
            }
            return;
        };
        let Some(wf) = self.workflows.get(&wf_sid) else {
            return;
        };
        let has_default = wf.config.default_filter.is_some();
        let (first, matched_any) = self.step_after(wf_sid, sid, now, None);
        if first.is_none() {
            if matched_any {
                self.emit_task(EventType::WorkflowTimeout, sid, now, Vec::new());
                self.finish_task(
                    sid,
                    TaskStatus::Canceled,
                    Some("Task canceled on Workflow Timeout".into()),
                    now,
                );
            } else if has_default {
                self.enter_target(sid, wf_sid, None, 0, None, now);
                self.reserve_or_wait(sid, now, ids);
            }
            // No filter and no default: the task waits, without a queue, until its TTL.
            return;
        }
        let mut step = first;
        while let Some((fi, ti, deadline)) = step {
            self.enter_target(sid, wf_sid, fi, ti, deadline, now);
            if self.try_reserve(sid, now, ids) {
                return;
            }
            let target = self.target_at(wf_sid, fi, ti);
            let queue = self.routing.tasks.get(&sid).and_then(|t| t.task_queue_sid);
            let skip = match (target.and_then(|t| t.skip_if.as_ref()), queue) {
                (Some(e), Some(q)) => e.eval(&self.skip_if_view(q)),
                _ => false,
            };
            if !skip {
                self.wait_in_queue(sid);
                return;
            }
            self.emit_task(EventType::WorkflowSkipped, sid, now, Vec::new());
            step = self.step_after(wf_sid, sid, now, Some((fi, ti))).0;
        }
        // Every step was skipped.
        if has_default {
            self.enter_target(sid, wf_sid, None, 0, None, now);
            self.reserve_or_wait(sid, now, ids);
        } else {
            self.finish_task(
                sid,
                TaskStatus::Canceled,
                Some("Task canceled on Workflow skip".into()),
                now,
            );
        }
    }

    /// The first open step of the task's workflow after `after` (or the first of all):
    /// matching filters in order, their targets in order, skipping targets whose cumulative
    /// timeout the task's age has passed. Also says whether any filter matched at all.
    fn step_after(
        &self,
        workflow: Sid,
        task: Sid,
        now: Millis,
        after: Option<(Option<usize>, usize)>,
    ) -> (Option<StepAt>, bool) {
        let (Some(wf), Some(t)) = (self.workflows.get(&workflow), self.routing.tasks.get(&task))
        else {
            return (None, false);
        };
        let age_ms = now - t.date_created;
        let mut matched_any = false;
        let mut passed = after.is_none();
        for fi in wf.config.matching_filters(&t.attrs) {
            matched_any = true;
            let mut cumulative: u64 = 0;
            for (ti, target) in wf.config.filters[fi].targets.iter().enumerate() {
                let deadline = target.timeout.map(|s| {
                    cumulative += s;
                    t.date_created + cumulative as i64 * 1000
                });
                if deadline.is_some_and(|d| age_ms >= d - t.date_created) {
                    continue;
                }
                if passed {
                    return (Some((Some(fi), ti, deadline)), true);
                }
                passed = after == Some((Some(fi), ti));
            }
        }
        (None, matched_any)
    }

    /// A workflow's target by position (`filter: None` is the default filter).
    fn target_at(&self, workflow: Sid, filter: Option<usize>, target: usize) -> Option<&Target> {
        let wf = self.workflows.get(&workflow)?;
        match filter {
            Some(f) => wf.config.filters.get(f)?.targets.get(target),
            None => wf.config.default_filter.as_ref(),
        }
    }

    fn enter_target(
        &mut self,
        sid: Sid,
        workflow: Sid,
        filter: Option<usize>,
        target: usize,
        deadline: Option<Millis>,
        now: Millis,
    ) {
        let Some((queue, priority)) = self
            .target_at(workflow, filter, target)
            .map(|t| (t.queue, t.priority))
        else {
            return;
        };
        let filter_name = match filter {
            Some(f) => self
                .workflows
                .get(&workflow)
                .and_then(|w| w.config.filters.get(f))
                .and_then(|f| f.friendly_name.clone())
                .map_or(Field::Static(""), Field::Text),
            None => Field::Static("default"),
        };
        self.enter_queue(
            sid,
            queue,
            Some(Step {
                filter,
                target,
                deadline,
            }),
            priority,
            now,
        );
        if let Some(d) = deadline {
            self.routing.timers.insert((d, Timer::StepTimeout(sid)));
        }
        let extra = vec![
            ("workflow_filter_name", filter_name),
            ("workflow_filter_target_index", Field::Int(target as i64)),
        ];
        self.emit_task(EventType::WorkflowTargetMatched, sid, now, extra);
    }

    fn enter_queue(
        &mut self,
        sid: Sid,
        queue: Sid,
        step: Option<Step>,
        priority: Option<i64>,
        now: Millis,
    ) {
        let Some(t) = self.routing.tasks.get_mut(&sid) else {
            return;
        };
        let previous = t.task_queue_sid;
        let entered = previous != Some(queue) || t.task_queue_entered_date.is_none();
        if entered {
            t.task_queue_entered_date = Some(now);
        }
        t.task_queue_sid = Some(queue);
        t.step = step;
        if let Some(p) = priority {
            t.priority = p;
        }
        self.touch(T_TASK, sid);
        if entered {
            if let Some(p) = previous.filter(|&p| p != queue) {
                let extra = vec![("task_queue_previous_sid", Field::Sid(p))];
                self.emit_task(EventType::TaskQueueMoved, sid, now, extra);
            }
            self.emit_task(EventType::TaskQueueEntered, sid, now, Vec::new());
        }
        self.announce_created(sid, now);
    }

    /// Records `task.created` for a task being created, once (see `Routing::announce`).
    fn announce_created(&mut self, sid: Sid, now: Millis) {
        if self.routing.announce == Some(sid) {
            self.routing.announce = None;
            self.emit_task(EventType::TaskCreated, sid, now, Vec::new());
        }
    }

    /// Reserves workers for the task at its queue now, or leaves it waiting in the queue.
    /// (A task only joins the queue's order when it has to wait: most never do.)
    fn reserve_or_wait(&mut self, sid: Sid, now: Millis, ids: &mut dyn SidSource) {
        if !self.try_reserve(sid, now, ids) {
            self.wait_in_queue(sid);
        }
    }

    fn wait_in_queue(&mut self, sid: Sid) {
        let queue = self
            .routing
            .tasks
            .get(&sid)
            .filter(|t| t.assignment_status == TaskStatus::Pending)
            .and_then(|t| t.task_queue_sid);
        if let Some(q) = queue {
            self.enqueue(sid, q);
        }
    }

    fn queue_key(&self, t: &Task, queue: Sid) -> QueueKey {
        let lifo = self
            .task_queues
            .get(&queue)
            .is_some_and(|q| q.task_order == QueueOrder::Lifo);
        if lifo {
            // Newest first (ties: the later created); priority is ignored in LIFO queues.
            (-t.virtual_start_time, 0, !t.sid.id(), t.sid)
        } else {
            (-t.priority, t.virtual_start_time, t.sid.id(), t.sid)
        }
    }

    fn enqueue(&mut self, sid: Sid, queue: Sid) {
        let Some(t) = self.routing.tasks.get(&sid) else {
            return;
        };
        let (key, channel) = (self.queue_key(t, queue), t.task_channel_sid);
        self.routing.pending.entry(queue).or_default().insert(key);
        if let Some((q, _, c)) = self.routing.pending_at.insert(sid, (queue, key, channel)) {
            self.routing.count_channel(q, c, false);
        }
        self.routing.count_channel(queue, channel, true);
    }

    fn unqueue(&mut self, sid: Sid) {
        if let Some((queue, key, channel)) = self.routing.pending_at.remove(&sid) {
            if let Some(set) = self.routing.pending.get_mut(&queue) {
                set.remove(&key);
            }
            self.routing.count_channel(queue, channel, false);
        }
    }

    // ----- matching ----------------------------------------------------------------------

    /// Recomputes every worker's queue list from the queues' member sets.
    fn rebuild_member_of(&mut self) {
        let mut member_of: HashMap<Sid, Vec<Sid>> = HashMap::default();
        for q in self.task_queues.values() {
            for w in &q.members {
                member_of.entry(*w).or_default().push(q.sid);
            }
        }
        self.routing.member_of = member_of;
        let all: Vec<Sid> = self.workers.keys().copied().collect();
        self.routing.stale.extend(all);
    }

    /// Brings `ready` up to date for every stale worker.
    fn refresh_ready(&mut self) {
        if self.routing.stale.is_empty() {
            return;
        }
        let mut stale = std::mem::take(&mut self.routing.stale);
        stale.sort_unstable();
        stale.dedup();
        for &w in &stale {
            let (old_idle, mut at) = self.routing.ready_at.remove(&w).unwrap_or_default();
            for q in &at {
                if let Some(set) = self.routing.ready.get_mut(q) {
                    set.remove(&(old_idle, w));
                }
            }
            let Some(worker) = self.workers.get(&w) else {
                continue;
            };
            let Some(queues) = self.routing.member_of.get(&w) else {
                continue;
            };
            if !worker
                .channels
                .iter()
                .any(|c| self.has_room(worker, c.task_channel_sid))
            {
                continue;
            }
            let idle = worker.last_reserved_at;
            // Reuse the worker's previous queue list (this runs once per reservation).
            at.clear();
            at.extend_from_slice(queues);
            for &q in &at {
                self.routing.ready.entry(q).or_default().insert((idle, w));
            }
            self.routing.ready_at.insert(w, (idle, at));
        }
        stale.clear();
        self.routing.stale = stale;
    }

    /// Whether `worker` has room for a task on `channel` right now.
    pub(crate) fn has_room(&self, worker: &Worker, channel: Sid) -> bool {
        if !self
            .activities
            .get(&worker.activity_sid)
            .is_some_and(|a| a.available)
        {
            return false;
        }
        let Some(c) = worker.channel(channel) else {
            return false;
        };
        if !c.available || c.configured_capacity == 0 {
            return false;
        }
        let load = self.routing.by_worker.get(&worker.sid);
        if self.info.multi_task_enabled {
            let (pending, assigned) = load.map_or((0, 0), |l| l.counts(channel));
            pending + assigned < c.configured_capacity
        } else {
            load.is_none_or(|l| l.reservations.is_empty())
        }
    }

    /// Whether `worker` may be offered `task` at the task's current step (membership of the
    /// queue is checked by the caller).
    fn fits(&self, task: &Task, worker: &Worker, target: Option<&Target>) -> bool {
        self.has_room(worker, task.task_channel_sid) && self.fits_step(task, worker, target)
    }

    /// The step's own rules (rejections, known worker, target expression); room and queue
    /// membership are checked by the caller.
    fn fits_step(&self, task: &Task, worker: &Worker, target: Option<&Target>) -> bool {
        if task.rejected_by.contains(&worker.sid) {
            return false;
        }
        target.is_none_or(|t| self.target_admits(&task.attrs, worker, t))
    }

    /// The workflow target a task is at, if routed by a workflow.
    fn target_of(&self, task: &Task) -> Option<&Target> {
        let step = task.step?;
        self.target_at(task.workflow_sid?, step.filter, step.target)
    }

    /// Reserves the best free workers for a pending task in its queue (up to the queue's
    /// `max_reserved_workers`). Returns whether any reservation was made.
    fn try_reserve(&mut self, sid: Sid, now: Millis, ids: &mut dyn SidSource) -> bool {
        self.refresh_ready();
        let Some(t) = self.routing.tasks.get(&sid) else {
            return false;
        };
        if t.assignment_status != TaskStatus::Pending {
            return false;
        }
        let Some(q) = t.task_queue_sid.and_then(|q| self.task_queues.get(&q)) else {
            return false;
        };
        let Some(ready) = self.routing.ready.get(&q.sid) else {
            return false;
        };
        let target = self.target_of(t);
        let k = (q.max_reserved_workers as usize).max(1);
        // Free members, longest idle first, that also pass the step's own rules.
        let fitting = ready
            .iter()
            .filter_map(|(_, w)| self.workers.get(w))
            .filter(|w| self.fits(t, w, target));
        let order_by = target.map(|t| t.order_by.as_slice()).unwrap_or(&[]);
        if order_by.is_empty() && k == 1 {
            // The common case (one reservation, no order_by): no list needed.
            let Some(w) = fitting.map(|w| w.sid).next() else {
                return false;
            };
            self.reserve(sid, &[w], now, ids);
            return true;
        }
        let chosen: Vec<Sid> = if order_by.is_empty() {
            fitting.take(k).map(|w| w.sid).collect()
        } else {
            let mut all: Vec<&Worker> = fitting.collect();
            let better = |a: &&Worker, b: &&Worker| {
                compare_workers(
                    order_by,
                    &WorkerView {
                        workspace: self,
                        worker: a,
                    },
                    &WorkerView {
                        workspace: self,
                        worker: b,
                    },
                )
                .then_with(|| (a.last_reserved_at, a.sid).cmp(&(b.last_reserved_at, b.sid)))
            };
            if all.len() > k {
                all.select_nth_unstable_by(k - 1, better);
                all.truncate(k);
            }
            all.sort_by(better);
            all.into_iter().map(|w| w.sid).collect()
        };
        if chosen.is_empty() {
            return false;
        }
        self.reserve(sid, &chosen, now, ids);
        true
    }

    /// Creates reservations of `task` for `workers` and marks the task reserved.
    fn reserve(&mut self, task_sid: Sid, workers: &[Sid], now: Millis, ids: &mut dyn SidSource) {
        let Some(t) = self.routing.tasks.get(&task_sid) else {
            return;
        };
        if t.assignment_count >= MAX_ASSIGNMENTS {
            self.finish_task(
                task_sid,
                TaskStatus::Canceled,
                Some(format!(
                    "Task canceled after {MAX_ASSIGNMENTS} assignment attempts"
                )),
                now,
            );
            return;
        }
        let timeout = t
            .workflow_sid
            .and_then(|w| self.workflows.get(&w))
            .map_or(DEFAULT_RESERVATION_TIMEOUT, |w| w.task_reservation_timeout);
        let (channel, queue, workflow) = (t.task_channel_sid, t.task_queue_sid, t.workflow_sid);
        let assignment = workflow.and_then(|w| self.workflows.get(&w)).and_then(|w| {
            Some(AssignmentTarget {
                url: w.assignment_callback_url.clone()?,
                fallback_url: w.fallback_assignment_callback_url.clone(),
            })
        });
        let mut created: Vec<Sid> = Vec::with_capacity(workers.len());
        let reservation_activity = (!self.info.multi_task_enabled)
            .then(|| {
                queue
                    .and_then(|q| self.task_queues.get(&q))
                    .and_then(|q| q.reservation_activity_sid)
            })
            .flatten();
        for &worker in workers {
            let sid = ids.next_sid(prefix::RESERVATION, now);
            let previous_activity_sid = reservation_activity
                .and_then(|_| self.workers.get(&worker).map(|w| w.activity_sid));
            let r = Reservation {
                sid,
                task_sid,
                worker_sid: worker,
                status: ReservationStatus::Pending,
                task_channel_sid: channel,
                task_queue_sid: queue,
                workflow_sid: workflow,
                date_created: now,
                date_updated: now,
                timeout_at: now + i64::from(timeout) * 1000,
                previous_activity_sid,
                version: 0,
            };
            self.routing
                .timers
                .insert((r.timeout_at, Timer::ReservationTimeout(sid)));
            self.routing.reservations.insert(sid, r);
            self.routing
                .by_worker
                .entry(worker)
                .or_default()
                .add(sid, channel);
            push_few(&mut self.routing.by_task, task_sid, sid);
            self.touch(T_RESERVATION, sid);
            created.push(sid);
            // Not written to the worker row here (that would double the writes per task): the
            // reservation row carries the time, a restore takes the newest, and when the
            // reservation is removed the worker row is written instead.
            if let Some(w) = self.workers.get_mut(&worker) {
                w.last_reserved_at = now;
            }
            self.routing.stale.push(worker);
            if let Some(a) = reservation_activity {
                self.set_activity(worker, a, now);
            }
        }
        self.unqueue(task_sid);
        if let Some(t) = self.routing.tasks.get_mut(&task_sid) {
            t.assignment_status = TaskStatus::Reserved;
            t.assignment_count += 1;
            t.date_updated = now;
            t.version += 1;
            self.touch(T_TASK, task_sid);
        }
        for r in created {
            self.emit_reservation(EventType::ReservationCreated, r, now);
            if let Some(e) = self.routing.events.last_mut() {
                e.assignment = assignment.clone().map(Box::new);
            }
        }
    }

    /// The best pending task `worker` can take now, across the queues it belongs to.
    fn best_task_for(&self, worker: &Worker) -> Option<Sid> {
        // A task fits only where the worker has room on its channel: a worker with room on
        // no channel (unavailable, or full after the reservation it just got) would walk
        // every waiting task of its queues for nothing — a tree lookup each, among a
        // million tasks.
        if !worker
            .channels
            .iter()
            .any(|c| self.has_room(worker, c.task_channel_sid))
        {
            return None;
        }
        let prefer_lifo = self.info.prioritize_queue_order == QueueOrder::Lifo;
        let mut best: Option<(bool, QueueKey)> = None;
        // Only the worker's own queues: walking every queue with waiting tasks costs
        // milliseconds with 10,000 queues.
        for qsid in self.routing.member_of(worker.sid) {
            let Some(set) = self.routing.pending.get(qsid) else {
                continue;
            };
            if set.is_empty() {
                continue;
            }
            let room_for_one = self
                .routing
                .pending_channels
                .get(qsid)
                .is_some_and(|counts| counts.iter().any(|&(c, _)| self.has_room(worker, c)));
            if !room_for_one {
                continue;
            }
            let Some(q) = self.task_queues.get(qsid) else {
                continue;
            };
            let lifo = q.task_order == QueueOrder::Lifo;
            // The first task of the queue (in its order) this worker can take.
            let found = set.iter().find(|k| {
                self.routing
                    .tasks
                    .get(&k.3)
                    .is_some_and(|t| self.fits(t, worker, self.target_of(t)))
            });
            let Some(&key) = found else { continue };
            let better = match &best {
                None => true,
                Some((best_lifo, best_key)) => {
                    if lifo != *best_lifo {
                        lifo == prefer_lifo
                    } else {
                        key.cmp(best_key) == Ordering::Less
                    }
                }
            };
            if better {
                best = Some((lifo, key));
            }
        }
        best.map(|(_, k)| k.3)
    }

    /// Gives `worker` the best waiting tasks until it has no room or nothing fits.
    fn offer_worker(&mut self, worker: Sid, now: Millis, ids: &mut dyn SidSource) {
        for _ in 0..MAX_OFFERS_PER_SETTLE {
            let Some(w) = self.workers.get(&worker) else {
                return;
            };
            let Some(task) = self.best_task_for(w) else {
                return;
            };
            self.try_reserve(task, now, ids);
            let still_pending = self
                .routing
                .tasks
                .get(&task)
                .is_some_and(|t| t.assignment_status == TaskStatus::Pending);
            if still_pending {
                // Cannot happen (the same rules chose it), but never spin on it.
                return;
            }
        }
    }

    /// Routes everything marked dirty until nothing is: workers first (each takes the best
    /// task waiting for it), then tasks (each takes the best free workers).
    pub(crate) fn settle(&mut self, now: Millis, ids: &mut dyn SidSource) {
        loop {
            if let Some(w) = self.routing.dirty_workers.pop_first() {
                self.offer_worker(w, now, ids);
                continue;
            }
            if let Some(t) = self.routing.dirty_tasks.pop_first() {
                if self.routing.replace.contains(&t) {
                    self.place(t, now, ids);
                } else {
                    self.try_reserve(t, now, ids);
                }
                continue;
            }
            break;
        }
    }

    // ----- timers ------------------------------------------------------------------------

    fn fire(&mut self, at: Millis, timer: Timer, now: Millis) {
        match timer {
            Timer::ReservationTimeout(r) => {
                let Some(res) = self.routing.reservations.get(&r) else {
                    return;
                };
                if res.status != ReservationStatus::Pending || res.timeout_at != at {
                    return;
                }
                let worker = res.worker_sid;
                self.end_reservation(r, ReservationStatus::Timeout, now);
                let timeout_activity = self.info.timeout_activity_sid;
                self.set_activity(worker, timeout_activity, now);
            }
            Timer::StepTimeout(t) => {
                let Some(task) = self.routing.tasks.get(&t) else {
                    return;
                };
                if task.assignment_status == TaskStatus::Pending
                    && task.step.and_then(|s| s.deadline) == Some(at)
                {
                    self.routing.dirty_tasks.insert(t);
                    // The same deadline may be armed twice (a task re-placed in the same
                    // step); it times out once.
                    if self.routing.replace.insert(t) {
                        self.emit_task(EventType::TaskQueueTimeout, t, now, Vec::new());
                    }
                }
            }
            Timer::TaskTtl(t) => {
                let Some(task) = self.routing.tasks.get(&t) else {
                    return;
                };
                let due = task.date_created + i64::from(task.timeout) * 1000;
                if due == at
                    && matches!(
                        task.assignment_status,
                        TaskStatus::Pending | TaskStatus::Reserved
                    )
                {
                    self.finish_task(
                        t,
                        TaskStatus::Canceled,
                        Some("Task TTL Exceeded".into()),
                        now,
                    );
                }
            }
            Timer::TaskRemoval(t) => {
                let Some(task) = self.routing.tasks.get(&t) else {
                    return;
                };
                let due = removal_due(task);
                if due == Some(at) {
                    self.remove_task(t, now, EventType::TaskSystemDeleted);
                }
            }
        }
    }

    // ----- persistence -------------------------------------------------------------------

    fn touch(&mut self, kind: u8, sid: Sid) {
        self.routing.touched.push((kind, sid));
    }

    /// The rows changed since the last flush, as puts and deletes.
    fn flush(&mut self) -> Vec<Change> {
        let mut touched = std::mem::take(&mut self.routing.touched);
        touched.sort_unstable();
        touched.dedup();
        touched
            .into_iter()
            .map(|(kind, sid)| match kind {
                T_TASK => match self.routing.tasks.get(&sid) {
                    Some(t) => Change::Put {
                        kind: Kind::Task,
                        sid,
                        body: Body::Task(Box::new(t.clone())),
                    },
                    None => Change::Delete {
                        kind: Kind::Task,
                        sid,
                    },
                },
                T_RESERVATION => match self.routing.reservations.get(&sid) {
                    Some(r) => Change::Put {
                        kind: Kind::Reservation,
                        sid,
                        body: Body::Reservation(Box::new(r.clone())),
                    },
                    None => Change::Delete {
                        kind: Kind::Reservation,
                        sid,
                    },
                },
                _ => match self.workers.get(&sid) {
                    Some(w) => put(Kind::Worker, sid, w),
                    None => Change::Delete {
                        kind: Kind::Worker,
                        sid,
                    },
                },
            })
            .collect()
    }

    /// Rebuilds every derived routing index and timer from the stored tasks and
    /// reservations (after a restore).
    pub(crate) fn rebuild_routing_indexes(&mut self) {
        self.rebuild_member_of();
        self.routing.ready.clear();
        self.routing.ready_at.clear();
        let r = &mut self.routing;
        r.pending.clear();
        r.pending_at.clear();
        r.pending_channels.clear();
        r.by_worker.clear();
        r.by_task.clear();
        r.timers.clear();
        for res in r.reservations.values() {
            if let Some(w) = self.workers.get_mut(&res.worker_sid) {
                w.last_reserved_at = w.last_reserved_at.max(res.date_created);
            }
            push_few(&mut r.by_task, res.task_sid, res.sid);
            if res.status.is_active() {
                let load = r.by_worker.entry(res.worker_sid).or_default();
                load.add(res.sid, res.task_channel_sid);
                if res.status != ReservationStatus::Pending {
                    load.accept(res.task_channel_sid);
                }
            }
            if res.status == ReservationStatus::Pending {
                r.timers
                    .insert((res.timeout_at, Timer::ReservationTimeout(res.sid)));
            }
        }
        let tasks: Vec<Sid> = r.tasks.keys().copied().collect();
        for sid in tasks {
            let t = &self.routing.tasks[&sid];
            let mut timers = Vec::new();
            if matches!(
                t.assignment_status,
                TaskStatus::Pending | TaskStatus::Reserved
            ) {
                timers.push((
                    t.date_created + i64::from(t.timeout) * 1000,
                    Timer::TaskTtl(sid),
                ));
            }
            if let Some(d) = t.step.and_then(|s| s.deadline)
                && t.assignment_status == TaskStatus::Pending
            {
                timers.push((d, Timer::StepTimeout(sid)));
            }
            if let Some(d) = removal_due(t) {
                timers.push((d, Timer::TaskRemoval(sid)));
            }
            let queue = (t.assignment_status == TaskStatus::Pending)
                .then_some(t.task_queue_sid)
                .flatten();
            self.routing.timers.extend(timers);
            if let Some(q) = queue {
                self.enqueue(sid, q);
            }
        }
    }
}

/// When a task is due for automatic removal, if it is.
fn removal_due(t: &Task) -> Option<Millis> {
    match t.assignment_status {
        TaskStatus::Canceled | TaskStatus::Completed => {
            Some(t.status_changed_at + FINISHED_TASK_RETENTION_MS)
        }
        TaskStatus::Assigned | TaskStatus::Wrapping => {
            Some(t.status_changed_at + ASSIGNED_TASK_LIFETIME_MS)
        }
        _ => None,
    }
}

/// Bounds one worker's offers in a single settle (a worker with capacity 1,000 on a busy
/// queue takes at most this many tasks before others get a turn).
const MAX_OFFERS_PER_SETTLE: usize = 1_000;

/// What a configuration command means for routing, decided before it is consumed.
enum FollowUp {
    None,
    Worker { reject_pending: bool },
    WorkerOfChannel(Sid),
    Queue,
    WorkerGone(Sid),
    Workflow { re_evaluate: bool },
    AllWorkers,
}

impl FollowUp {
    fn of(cmd: &Command) -> FollowUp {
        match cmd {
            Command::CreateWorker(_) => FollowUp::Worker {
                reject_pending: false,
            },
            Command::UpdateWorker(p) => FollowUp::Worker {
                reject_pending: p.reject_pending_reservations == Some(true),
            },
            Command::UpdateWorkerChannel { worker, .. } => FollowUp::WorkerOfChannel(*worker),
            Command::CreateTaskQueue(_)
            | Command::UpdateTaskQueue { .. }
            | Command::DeleteTaskQueue { .. } => FollowUp::Queue,
            Command::DeleteWorker { sid, .. } => FollowUp::WorkerGone(*sid),
            Command::CreateTaskChannel { .. } | Command::DeleteTaskChannel { .. } => {
                FollowUp::AllWorkers
            }
            Command::UpdateWorkflow {
                re_evaluate_tasks, ..
            } => FollowUp::Workflow {
                re_evaluate: *re_evaluate_tasks,
            },
            Command::UpdateWorkspace(_) => FollowUp::AllWorkers,
            _ => FollowUp::None,
        }
    }
}

fn check_priority(p: i64) -> Result<(), EngineError> {
    if (0..=MAX_PRIORITY).contains(&p) {
        Ok(())
    } else {
        Err(EngineError::invalid(
            "Priority",
            format!("Priority must be between 0 and {MAX_PRIORITY}"),
        ))
    }
}

/// `VirtualStartTime` may not be in the future nor before 1900.
fn check_virtual_start_time(v: Millis, now: Millis) -> Result<Millis, EngineError> {
    const YEAR_1900_MS: Millis = -2_208_988_800_000;
    if v > now || v < YEAR_1900_MS {
        Err(EngineError::invalid(
            "VirtualStartTime",
            "VirtualStartTime can't be in the future or before the year 1900",
        ))
    } else {
        Ok(v)
    }
}

impl Workspace {
    pub(crate) fn channel_param(&self, key: &str) -> Result<Sid, EngineError> {
        self.find_task_channel(key).map(|c| c.sid).ok_or_else(|| {
            EngineError::invalid(
                "TaskChannel",
                format!("TaskChannel '{key}' does not exist in this workspace"),
            )
        })
    }
}
