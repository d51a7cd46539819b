//! Real-time statistics: what a workspace, a task queue or a workflow holds *now*.
//!
//! Every figure is computed from the live state at the moment of the call, so it is exact
//! (TaskRouter's own real-time statistics "may take a few seconds to update"). Nothing is
//! kept between calls: one pass over the tasks and one over the workers (or one queue's
//! members) per request, with no allocation per task. [`Workspace::realtime_queues`] answers
//! any number of queues with those same two passes.
//!
//! What is counted (see `docs/statistics.md`):
//!
//! * **tasks** of the scope that are not finished (not canceled, not completed), by status
//!   and by priority. A queue's tasks are those whose current `task_queue_sid` is the queue,
//!   a workflow's those whose `workflow_sid` is the workflow.
//! * **longest waiting task**: the oldest *pending* task by `date_created`, and, for a queue,
//!   the pending task that entered the queue first (`task_queue_entered_date`). Ages are whole
//!   seconds, rounded down.
//! * **workers**: every worker of the workspace, or a queue's members (its eligible workers,
//!   in any activity); "available" means in an activity that is available. Per-activity
//!   counts list every activity of the workspace in creation order, zeros included.
//! * **TaskChannel**: with a channel, only the tasks of that channel are counted, and only the
//!   workers who can take that channel's tasks at all (the worker's channel is available with
//!   a capacity above zero).

use std::collections::BTreeMap;
use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use crate::model::{Millis, Task, TaskStatus, Worker};
use crate::sid::Sid;
use crate::workspace::Workspace;

/// What a set of real-time statistics is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatsScope {
    /// Every task and every worker of the workspace.
    Workspace,
    /// Every worker of the workspace, and no tasks (the task figures stay zero): the
    /// `Workers/RealTimeStatistics` resource, without the pass over the tasks.
    Workers,
    /// The tasks currently in the queue and the queue's members.
    TaskQueue(Sid),
    /// The tasks the workflow controls. Workers are not counted (TaskRouter reports no
    /// worker figures for a workflow): the worker figures stay zero and
    /// `activity_statistics` empty.
    Workflow(Sid),
}

/// Unfinished tasks by `assignment_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TasksByStatus {
    pub pending: u64,
    pub reserved: u64,
    pub assigned: u64,
    pub wrapping: u64,
}

impl TasksByStatus {
    pub fn total(&self) -> u64 {
        self.pending + self.reserved + self.assigned + self.wrapping
    }
}

/// A waiting task and how long it has waited, in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    pub sid: Sid,
    pub age: i64,
}

/// How many workers (of the scope) are in one activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityCount {
    pub sid: Sid,
    pub friendly_name: Arc<str>,
    pub workers: u64,
}

/// The real-time statistics of one scope at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RealTime {
    /// Tasks of the scope that are not canceled or completed.
    pub total_tasks: u64,
    pub tasks_by_status: TasksByStatus,
    /// Priority → number of tasks (the same tasks as `total_tasks`), in priority order.
    pub tasks_by_priority: BTreeMap<i64, u64>,
    /// The pending task created first, and its age (`now - date_created`).
    pub longest_task_waiting: Option<Waiting>,
    /// Queue scope only: the pending task that entered the queue first, and how long ago.
    pub longest_relative_task_in_queue: Option<Waiting>,
    /// Queue: its members, whatever their activity. Workspace: every worker.
    pub total_eligible_workers: u64,
    /// Of those, the workers whose activity is available (they may be busy).
    pub total_available_workers: u64,
    /// One entry per activity of the workspace, in creation order.
    pub activity_statistics: Vec<ActivityCount>,
    /// Workers of the scope (a queue's members; the workspace's workers).
    pub total_workers: u64,
}

/// A workspace's waiting tasks in brief (what `/metrics` shows per workspace).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WaitingSummary {
    pub pending: u64,
    /// Creation time of the pending task created first.
    pub oldest_created: Option<Millis>,
    pub workers: u64,
    /// Workers whose activity is available.
    pub workers_available: u64,
}

impl Workspace {
    /// [`WaitingSummary`]: one pass over the tasks reading only their status and creation
    /// time, and one over the workers.
    pub fn waiting_summary(&self) -> WaitingSummary {
        let mut out = WaitingSummary {
            workers: self.workers.len() as u64,
            ..Default::default()
        };
        for t in self.routing.tasks.values() {
            if t.assignment_status == TaskStatus::Pending {
                out.pending += 1;
                if out.oldest_created.is_none_or(|o| t.date_created < o) {
                    out.oldest_created = Some(t.date_created);
                }
            }
        }
        for w in self.workers.values() {
            if self
                .activities
                .get(&w.activity_sid)
                .is_some_and(|a| a.available)
            {
                out.workers_available += 1;
            }
        }
        out
    }

    /// The real-time statistics of `scope` at `now`, counting only tasks (and workers able
    /// to take tasks) of `channel` when it is given. A queue or workflow that does not
    /// exist has no tasks and no workers.
    pub fn realtime(&self, scope: StatsScope, channel: Option<Sid>, now: Millis) -> RealTime {
        let activities = Activities::of(self);
        let mut out = [TaskAcc::new(matches!(scope, StatsScope::TaskQueue(_)))];
        match scope {
            StatsScope::Workspace => self.scan_tasks(&mut out, channel, |_| Some(0)),
            StatsScope::Workers => {}
            StatsScope::TaskQueue(q) => {
                let q = Some(q);
                self.scan_tasks(&mut out, channel, |t| (t.task_queue_sid == q).then_some(0))
            }
            StatsScope::Workflow(w) => {
                let w = Some(w);
                self.scan_tasks(&mut out, channel, |t| (t.workflow_sid == w).then_some(0))
            }
        }
        let [tasks] = out;
        let mut rt = tasks.finish(now);
        match scope {
            StatsScope::Workspace | StatsScope::Workers => {
                let mut counts = vec![0u64; activities.sids.len()];
                for w in self.workers.values() {
                    if can_take(w, channel)
                        && let Some(i) = activities.index(w.activity_sid)
                    {
                        counts[i] += 1;
                    }
                }
                activities.fill(&mut rt, &counts);
            }
            StatsScope::TaskQueue(q) => {
                let mut counts = vec![0u64; activities.sids.len()];
                if let Some(queue) = self.task_queues.get(&q) {
                    let members = &queue.members;
                    // A large queue is walked alongside the workers (both are sorted by
                    // SID); a small one looks its members up.
                    if members.len() * 16 >= self.workers.len() {
                        let mut workers = self.workers.values().peekable();
                        for m in members {
                            while workers.next_if(|w| w.sid < *m).is_some() {}
                            match workers.peek() {
                                Some(w) if w.sid == *m => {
                                    count_worker(&activities, &mut counts, w, channel)
                                }
                                Some(_) => {}
                                None => break,
                            }
                        }
                    } else {
                        for m in members {
                            if let Some(w) = self.workers.get(m) {
                                count_worker(&activities, &mut counts, w, channel);
                            }
                        }
                    }
                }
                activities.fill(&mut rt, &counts);
            }
            StatsScope::Workflow(_) => {}
        }
        rt
    }

    /// The real-time statistics of each queue in `queues` (in that order; a SID may repeat),
    /// computed together: one pass over the tasks, at most one over the workers, then each
    /// queue's members. A queue that does not exist in this workspace gets all-zero figures (and
    /// every activity listed with zero workers).
    pub fn realtime_queues(
        &self,
        queues: &[Sid],
        channel: Option<Sid>,
        now: Millis,
    ) -> Vec<RealTime> {
        let activities = Activities::of(self);
        // Distinct queues → accumulator slot.
        let mut slot: HashMap<Sid, usize> = HashMap::default();
        let mut distinct: Vec<Sid> = Vec::new();
        for &q in queues {
            slot.entry(q).or_insert_with(|| {
                distinct.push(q);
                distinct.len() - 1
            });
        }
        let mut tasks: Vec<TaskAcc> = distinct.iter().map(|_| TaskAcc::new(true)).collect();
        match distinct.as_slice() {
            [] => {}
            [one] => {
                let one = Some(*one);
                self.scan_tasks(&mut tasks, channel, |t| {
                    (t.task_queue_sid == one).then_some(0)
                })
            }
            _ => {
                // Most tasks are in queues not asked for: a bit test turns them away
                // without a hash probe, which keeps this memory-bound loop tight.
                let mut filter = [0u64; 64];
                for &q in &distinct {
                    let b = filter_bit(q);
                    filter[b / 64] |= 1 << (b % 64);
                }
                self.scan_tasks(&mut tasks, channel, |t| {
                    let q = t.task_queue_sid?;
                    let b = filter_bit(q);
                    if filter[b / 64] & (1 << (b % 64)) == 0 {
                        return None;
                    }
                    slot.get(&q).copied()
                })
            }
        }
        // Each worker's activity, once (`None`: cannot take the channel's tasks).
        let member_total: usize = distinct
            .iter()
            .filter_map(|q| self.task_queues.get(q))
            .map(|q| q.members.len())
            .sum();
        let by_worker: Option<HashMap<Sid, Option<usize>>> =
            (member_total * 4 >= self.workers.len()).then(|| {
                self.workers
                    .values()
                    .map(|w| {
                        let i = if can_take(w, channel) {
                            activities.index(w.activity_sid)
                        } else {
                            None
                        };
                        (w.sid, i)
                    })
                    .collect()
            });
        let mut computed: Vec<RealTime> = Vec::with_capacity(distinct.len());
        let mut counts = vec![0u64; activities.sids.len()];
        for (q, acc) in distinct.iter().zip(tasks) {
            let mut rt = acc.finish(now);
            counts.iter_mut().for_each(|c| *c = 0);
            if let Some(queue) = self.task_queues.get(q) {
                for m in &queue.members {
                    let i = match &by_worker {
                        Some(map) => map.get(m).copied().flatten(),
                        None => self
                            .workers
                            .get(m)
                            .filter(|w| can_take(w, channel))
                            .and_then(|w| activities.index(w.activity_sid)),
                    };
                    if let Some(i) = i {
                        counts[i] += 1;
                    }
                }
            }
            activities.fill(&mut rt, &counts);
            computed.push(rt);
        }
        if computed.len() == queues.len() {
            // No SID repeated: `distinct` is `queues`.
            return computed;
        }
        queues.iter().map(|q| computed[slot[q]].clone()).collect()
    }

    /// Every queue's real-time statistics, in queue creation order (see
    /// [`Workspace::realtime_queues`]).
    pub fn realtime_all_queues(&self, channel: Option<Sid>, now: Millis) -> Vec<(Sid, RealTime)> {
        let sids: Vec<Sid> = self.task_queues.keys().copied().collect();
        let stats = self.realtime_queues(&sids, channel, now);
        sids.into_iter().zip(stats).collect()
    }

    /// One pass over the tasks: each unfinished task of `channel` that `slot` places is
    /// counted in that accumulator.
    fn scan_tasks(
        &self,
        acc: &mut [TaskAcc],
        channel: Option<Sid>,
        slot: impl Fn(&Task) -> Option<usize>,
    ) {
        // The SID is read from the map's key, not the task: every field read is a cache
        // line per task, and this loop is memory-bound.
        for (&sid, t) in &self.routing.tasks {
            let Some(i) = slot(t) else { continue };
            if channel.is_some_and(|c| c != t.task_channel_sid) {
                continue;
            }
            acc[i].add(sid, t);
        }
    }
}

/// A SID's bit in a 4,096-bit filter.
#[inline(always)]
fn filter_bit(sid: Sid) -> usize {
    let id = sid.id();
    (((id as u64) ^ ((id >> 64) as u64)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) as usize
}

/// Can this worker take tasks of `channel` at all (always, without a channel)?
fn can_take(w: &Worker, channel: Option<Sid>) -> bool {
    match channel {
        None => true,
        Some(c) => w
            .channel(c)
            .is_some_and(|wc| wc.available && wc.configured_capacity > 0),
    }
}

fn count_worker(activities: &Activities, counts: &mut [u64], w: &Worker, channel: Option<Sid>) {
    if can_take(w, channel)
        && let Some(i) = activities.index(w.activity_sid)
    {
        counts[i] += 1;
    }
}

/// The workspace's activities, sorted by SID (= creation order), for counting by index.
struct Activities<'a> {
    ws: &'a Workspace,
    sids: Vec<Sid>,
}

impl<'a> Activities<'a> {
    fn of(ws: &'a Workspace) -> Self {
        Activities {
            ws,
            sids: ws.activities.keys().copied().collect(),
        }
    }

    fn index(&self, sid: Sid) -> Option<usize> {
        self.sids.binary_search(&sid).ok()
    }

    /// Sets the worker figures of `rt` from per-activity counts.
    fn fill(&self, rt: &mut RealTime, counts: &[u64]) {
        let mut total = 0;
        let mut available = 0;
        rt.activity_statistics = self
            .ws
            .activities
            .values()
            .zip(counts)
            .map(|(a, &n)| {
                total += n;
                if a.available {
                    available += n;
                }
                ActivityCount {
                    sid: a.sid,
                    friendly_name: a.friendly_name.clone(),
                    workers: n,
                }
            })
            .collect();
        rt.total_workers = total;
        rt.total_eligible_workers = total;
        rt.total_available_workers = available;
    }
}

/// Priorities `0..SMALL` are counted in an array, others in a map.
const SMALL: usize = 16;

/// Task figures of one scope, while the tasks are read.
#[derive(Default)]
struct TaskAcc {
    by_status: TasksByStatus,
    /// Priority → count. Most workspaces use a handful of small priorities: those are
    /// counted by index, without hashing or searching; any others in a map.
    small_priorities: [u64; SMALL],
    by_priority: HashMap<i64, u64>,
    /// `(date_created, sid)` of the oldest pending task.
    oldest: Option<(Millis, Sid)>,
    /// Queue scope: also find the pending task in the queue longest.
    in_queue: bool,
    /// `(task_queue_entered_date, sid)` of the pending task in its queue longest.
    first_in_queue: Option<(Millis, Sid)>,
}

impl TaskAcc {
    fn new(in_queue: bool) -> TaskAcc {
        TaskAcc {
            in_queue,
            ..TaskAcc::default()
        }
    }

    #[inline(always)]
    fn add(&mut self, sid: Sid, t: &Task) {
        let s = &mut self.by_status;
        match t.assignment_status {
            TaskStatus::Pending => {
                s.pending += 1;
                let key = (t.date_created, sid);
                if self.oldest.is_none_or(|o| key < o) {
                    self.oldest = Some(key);
                }
                if self.in_queue
                    && let Some(entered) = t.task_queue_entered_date
                {
                    let key = (entered, sid);
                    if self.first_in_queue.is_none_or(|o| key < o) {
                        self.first_in_queue = Some(key);
                    }
                }
            }
            TaskStatus::Reserved => s.reserved += 1,
            TaskStatus::Assigned => s.assigned += 1,
            TaskStatus::Wrapping => s.wrapping += 1,
            TaskStatus::Canceled | TaskStatus::Completed => return,
        }
        match usize::try_from(t.priority) {
            Ok(p) if p < SMALL => self.small_priorities[p] += 1,
            _ => *self.by_priority.entry(t.priority).or_default() += 1,
        }
    }

    fn finish(self, now: Millis) -> RealTime {
        let mut by_priority: BTreeMap<i64, u64> = self.by_priority.into_iter().collect();
        by_priority.extend((0..).zip(self.small_priorities).filter(|&(_, n)| n > 0));
        let age = |(at, sid): (Millis, Sid)| Waiting {
            sid,
            age: (now - at).max(0) / 1000,
        };
        RealTime {
            total_tasks: self.by_status.total(),
            tasks_by_status: self.by_status,
            tasks_by_priority: by_priority,
            longest_task_waiting: self.oldest.map(age),
            longest_relative_task_in_queue: self.first_in_queue.map(age),
            ..RealTime::default()
        }
    }
}
