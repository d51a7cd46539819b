//! # taskyard-stats
//!
//! Cumulative TaskRouter statistics — reservation outcomes, task counts, wait durations,
//! `split_by_wait_time`, workers' activity durations — as sums over time buckets.
//!
//! Every committed [`Event`] *contributes* a small [`Agg`] to a few scopes (the workspace,
//! the task's queue and workflow, the worker, all workers) on one task channel. The store
//! writer adds contributions into one bucket per (scope, channel, minute) and one per
//! (scope, channel, hour), kept as rows in the same transaction as the events. A query for
//! any window up to 30 days then sums at most 720 hour buckets plus the minute buckets at
//! the window's two ends ([`plan`]), instead of reading the events.
//!
//! Windows count **whole minutes**: a window covers every minute it touches (Twilio's own
//! windows are given in minutes too).
//!
//! Aggregates merge by addition (counters, totals, histograms) and by min/max, so buckets
//! can be summed in any order and a bucket written twice with the same content is harmless.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use taskyard_engine::{Event, EventType, Field, Millis, Sid};

pub const MINUTE_MS: Millis = 60_000;
pub const HOUR_MS: Millis = 3_600_000;
/// The bucket spans every contribution is added to.
pub const SPANS: [Millis; 2] = [MINUTE_MS, HOUR_MS];

/// Scope of the workspace's task and reservation figures.
pub const WORKSPACE: &str = "workspace";
/// Scope of every worker's activity durations together.
pub const ALL_WORKERS: &str = "workers";

/// `count`, `total`, `min`, `max` of durations, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Durations {
    #[serde(rename = "n")]
    pub count: u64,
    #[serde(rename = "t")]
    pub total_ms: i64,
    #[serde(rename = "lo")]
    pub min_ms: i64,
    #[serde(rename = "hi")]
    pub max_ms: i64,
}

impl Durations {
    pub fn of(ms: i64) -> Durations {
        let ms = ms.max(0);
        Durations {
            count: 1,
            total_ms: ms,
            min_ms: ms,
            max_ms: ms,
        }
    }

    pub fn merge(&mut self, o: &Durations) {
        if o.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *o;
            return;
        }
        self.count += o.count;
        self.total_ms += o.total_ms;
        self.min_ms = self.min_ms.min(o.min_ms);
        self.max_ms = self.max_ms.max(o.max_ms);
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whole seconds: `(avg, min, max, total)`.
    pub fn seconds(&self) -> (i64, i64, i64, i64) {
        if self.count == 0 {
            return (0, 0, 0, 0);
        }
        let s = |ms: i64| ms / 1000;
        (
            s(self.total_ms / self.count as i64),
            s(self.min_ms),
            s(self.max_ms),
            s(self.total_ms),
        )
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a set of events adds up to. Field names are short: there is one row per bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agg {
    #[serde(rename = "rc", default, skip_serializing_if = "is_zero")]
    pub reservations_created: u64,
    #[serde(rename = "ra", default, skip_serializing_if = "is_zero")]
    pub reservations_accepted: u64,
    #[serde(rename = "rr", default, skip_serializing_if = "is_zero")]
    pub reservations_rejected: u64,
    #[serde(rename = "rt", default, skip_serializing_if = "is_zero")]
    pub reservations_timed_out: u64,
    #[serde(rename = "rx", default, skip_serializing_if = "is_zero")]
    pub reservations_canceled: u64,
    #[serde(rename = "rs", default, skip_serializing_if = "is_zero")]
    pub reservations_rescinded: u64,
    #[serde(rename = "tc", default, skip_serializing_if = "is_zero")]
    pub tasks_created: u64,
    /// Entered the queue (queue scope) or the workflow (workflow scope).
    #[serde(rename = "te", default, skip_serializing_if = "is_zero")]
    pub tasks_entered: u64,
    #[serde(rename = "tx", default, skip_serializing_if = "is_zero")]
    pub tasks_canceled: u64,
    #[serde(rename = "tk", default, skip_serializing_if = "is_zero")]
    pub tasks_completed: u64,
    #[serde(rename = "td", default, skip_serializing_if = "is_zero")]
    pub tasks_deleted: u64,
    #[serde(rename = "tm", default, skip_serializing_if = "is_zero")]
    pub tasks_moved: u64,
    #[serde(rename = "tw", default, skip_serializing_if = "is_zero")]
    pub tasks_timed_out_in_workflow: u64,
    /// From task creation to acceptance, per accepted reservation.
    #[serde(rename = "wa", default, skip_serializing_if = "Durations::is_empty")]
    pub wait_until_accepted: Durations,
    /// From task creation to cancellation, per canceled task.
    #[serde(rename = "wc", default, skip_serializing_if = "Durations::is_empty")]
    pub wait_until_canceled: Durations,
    /// From entering the queue to acceptance, per accepted reservation.
    #[serde(rename = "wq", default, skip_serializing_if = "Durations::is_empty")]
    pub wait_in_queue_until_accepted: Durations,
    /// Seconds waited until acceptance, rounded up → how many (for `split_by_wait_time`).
    #[serde(rename = "ha", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub accepted_after: BTreeMap<u32, u64>,
    /// Seconds waited until cancellation, rounded up → how many.
    #[serde(rename = "hc", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub canceled_after: BTreeMap<u32, u64>,
    /// Activity SID → time spent in it: periods that ended in the bucket and began in it.
    #[serde(rename = "act", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub activities: BTreeMap<String, Durations>,
    /// Activity SID → start minute → periods that ended in the bucket but began before it.
    /// A window that starts after them counts only their part inside it (see
    /// [`Agg::activity_durations`]).
    #[serde(rename = "crs", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub crossing: BTreeMap<String, BTreeMap<Millis, Crossing>>,
}

/// Periods that began in one minute and ended in a later bucket: enough to clip them to any
/// window starting on a whole minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Crossing {
    #[serde(rename = "n")]
    pub count: u64,
    #[serde(rename = "s")]
    pub sum_start: i64,
    #[serde(rename = "e")]
    pub sum_end: i64,
    #[serde(rename = "lo")]
    pub min_len: i64,
    #[serde(rename = "hi")]
    pub max_len: i64,
    #[serde(rename = "elo")]
    pub min_end: i64,
    #[serde(rename = "ehi")]
    pub max_end: i64,
    #[serde(rename = "slo")]
    pub min_start: i64,
    #[serde(rename = "shi")]
    pub max_start: i64,
}

impl Crossing {
    fn of(start: Millis, end: Millis) -> Crossing {
        Crossing {
            count: 1,
            sum_start: start,
            sum_end: end,
            min_len: end - start,
            max_len: end - start,
            min_end: end,
            max_end: end,
            min_start: start,
            max_start: start,
        }
    }

    fn merge(&mut self, o: &Crossing) {
        if self.count == 0 {
            *self = *o;
            return;
        }
        self.count += o.count;
        self.sum_start += o.sum_start;
        self.sum_end += o.sum_end;
        self.min_len = self.min_len.min(o.min_len);
        self.max_len = self.max_len.max(o.max_len);
        self.min_end = self.min_end.min(o.min_end);
        self.max_end = self.max_end.max(o.max_end);
        self.min_start = self.min_start.min(o.min_start);
        self.max_start = self.max_start.max(o.max_start);
    }
}

impl Agg {
    pub fn merge(&mut self, o: &Agg) {
        self.reservations_created += o.reservations_created;
        self.reservations_accepted += o.reservations_accepted;
        self.reservations_rejected += o.reservations_rejected;
        self.reservations_timed_out += o.reservations_timed_out;
        self.reservations_canceled += o.reservations_canceled;
        self.reservations_rescinded += o.reservations_rescinded;
        self.tasks_created += o.tasks_created;
        self.tasks_entered += o.tasks_entered;
        self.tasks_canceled += o.tasks_canceled;
        self.tasks_completed += o.tasks_completed;
        self.tasks_deleted += o.tasks_deleted;
        self.tasks_moved += o.tasks_moved;
        self.tasks_timed_out_in_workflow += o.tasks_timed_out_in_workflow;
        self.wait_until_accepted.merge(&o.wait_until_accepted);
        self.wait_until_canceled.merge(&o.wait_until_canceled);
        self.wait_in_queue_until_accepted
            .merge(&o.wait_in_queue_until_accepted);
        for (k, v) in &o.accepted_after {
            *self.accepted_after.entry(*k).or_default() += v;
        }
        for (k, v) in &o.canceled_after {
            *self.canceled_after.entry(*k).or_default() += v;
        }
        for (k, v) in &o.activities {
            self.activities.entry(k.clone()).or_default().merge(v);
        }
        for (k, starts) in &o.crossing {
            let mine = self.crossing.entry(k.clone()).or_default();
            for (minute, c) in starts {
                mine.entry(*minute).or_default().merge(c);
            }
        }
    }

    /// Time per activity inside the window `[start, end)` (whole minutes) of periods that
    /// ended **after** it (`self` holds buckets later than the window): those that began
    /// before `end` count from `max(begin, start)` to `end`.
    pub fn activity_until(&self, start: Millis, end: Millis) -> BTreeMap<String, Durations> {
        let mut out: BTreeMap<String, Durations> = BTreeMap::new();
        for (activity, starts) in &self.crossing {
            for (&minute, c) in starts.range(..end) {
                let part = if minute >= start {
                    Durations {
                        count: c.count,
                        total_ms: c.count as i64 * end - c.sum_start,
                        min_ms: end - c.max_start,
                        max_ms: end - c.min_start,
                    }
                } else {
                    let len = end - start;
                    Durations {
                        count: c.count,
                        total_ms: c.count as i64 * len,
                        min_ms: len,
                        max_ms: len,
                    }
                };
                out.entry(activity.clone()).or_default().merge(&part);
            }
        }
        out
    }

    /// Time per activity inside a window starting at `window_start` (a whole minute):
    /// periods that began before it count from it on.
    pub fn activity_durations(&self, window_start: Millis) -> BTreeMap<String, Durations> {
        let mut out = self.activities.clone();
        for (activity, starts) in &self.crossing {
            let d = out.entry(activity.clone()).or_default();
            for (&minute, c) in starts {
                let part = if minute >= window_start {
                    Durations {
                        count: c.count,
                        total_ms: c.sum_end - c.sum_start,
                        min_ms: c.min_len,
                        max_ms: c.max_len,
                    }
                } else {
                    Durations {
                        count: c.count,
                        total_ms: c.sum_end - c.count as i64 * window_start,
                        min_ms: c.min_end - window_start,
                        max_ms: c.max_end - window_start,
                    }
                };
                d.merge(&part);
            }
        }
        out
    }

    /// `(below, above)` counts of `histogram` around `threshold` seconds: a wait of at most
    /// the threshold counts as below, a longer one as above.
    pub fn split(histogram: &BTreeMap<u32, u64>, threshold: u32) -> (u64, u64) {
        let below = histogram.range(..=threshold).map(|(_, n)| n).sum();
        let above = histogram.range(threshold + 1..).map(|(_, n)| n).sum();
        (below, above)
    }

    /// The bucket row's text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A bucket row's text, read back (an unreadable row counts as empty).
    pub fn from_json(s: &str) -> Agg {
        serde_json::from_str(s).unwrap_or_default()
    }
}

/// Whose figures a bucket holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// The workspace's tasks and reservations.
    Workspace,
    /// Every worker's activity durations.
    AllWorkers,
    /// A queue's, a workflow's or a worker's.
    Of(Sid),
}

impl Scope {
    /// The text the store keys buckets by: [`WORKSPACE`], [`ALL_WORKERS`] or the SID.
    pub fn text(&self) -> String {
        match self {
            Scope::Workspace => WORKSPACE.to_string(),
            Scope::AllWorkers => ALL_WORKERS.to_string(),
            Scope::Of(sid) => sid.to_string(),
        }
    }
}

/// One bucket of one workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub scope: Scope,
    pub span_ms: Millis,
    pub start_ms: Millis,
    /// The task channel; `None` for activity durations (workers have no channel).
    pub channel: Option<Sid>,
}

/// A worker's activity period that just ended: `(activity, start, end)`.
pub type Period = (Sid, Millis, Millis);

/// The activity period a `worker.activity.update` ended, and the scopes it counts for.
pub fn period(e: &Event) -> Option<(Period, [Scope; 2])> {
    if e.event_type != EventType::WorkerActivityUpdate {
        return None;
    }
    let (Some(w), Some(prev), Some(Field::Int(ms))) = (
        &e.worker,
        e.sid_of("worker_previous_activity_sid"),
        e.get("worker_time_in_previous_activity_ms"),
    ) else {
        return None;
    };
    Some((
        (prev, e.at - ms.max(0), e.at),
        [Scope::Of(w.sid), Scope::AllWorkers],
    ))
}

/// What a period that ended in a bucket starting at `bucket_start` adds to it.
pub fn period_agg((activity, start, end): Period, bucket_start: Millis) -> Agg {
    let mut a = Agg::default();
    if start >= bucket_start {
        a.activities
            .insert(activity.to_string(), Durations::of(end - start));
    } else {
        let minute = start - start.rem_euclid(MINUTE_MS);
        a.crossing
            .entry(activity.to_string())
            .or_default()
            .insert(minute, Crossing::of(start, end));
    }
    a
}

/// What one event adds to tasks' and reservations' figures, and where: `(scope, channel,
/// contribution)`. (Activity periods: [`period`].)
pub fn contributions(e: &Event) -> Vec<(Scope, Option<Sid>, Agg)> {
    use EventType as E;
    let mut out = Vec::new();
    let Some(t) = &e.task else { return out };
    let waited = e.at - t.date_created;
    let mut a = Agg::default();
    // Which scopes: the workspace, the task's queue and workflow (as they were).
    let mut queue = t.queue.as_ref().map(|q| q.0);
    let workflow = t.workflow.as_ref().map(|w| w.0);
    let mut worker = false;
    match e.event_type {
        E::ReservationCreated => {
            a.reservations_created = 1;
            worker = true;
        }
        E::ReservationAccepted => {
            a.reservations_accepted = 1;
            a.wait_until_accepted = Durations::of(waited);
            a.accepted_after.insert(seconds_up(waited), 1);
            if let Some(entered) = t.queue_entered {
                a.wait_in_queue_until_accepted = Durations::of(e.at - entered);
            }
            worker = true;
        }
        E::ReservationRejected => {
            a.reservations_rejected = 1;
            worker = true;
        }
        E::ReservationTimeout => {
            a.reservations_timed_out = 1;
            worker = true;
        }
        E::ReservationCanceled => {
            a.reservations_canceled = 1;
            worker = true;
        }
        E::ReservationRescinded => {
            a.reservations_rescinded = 1;
            worker = true;
        }
        E::TaskCreated => a.tasks_created = 1,
        E::TaskQueueEntered => {
            a.tasks_entered = 1;
            return queue
                .map(|q| vec![(Scope::Of(q), Some(t.channel), a)])
                .unwrap_or_default();
        }
        E::WorkflowEntered => {
            a.tasks_entered = 1;
            return workflow
                .map(|w| vec![(Scope::Of(w), Some(t.channel), a)])
                .unwrap_or_default();
        }
        E::TaskCanceled => {
            a.tasks_canceled = 1;
            a.wait_until_canceled = Durations::of(waited);
            a.canceled_after.insert(seconds_up(waited), 1);
        }
        E::TaskCompleted => a.tasks_completed = 1,
        E::TaskDeleted => a.tasks_deleted = 1,
        E::TaskQueueMoved => {
            // Counted for the queue the task moved out of.
            a.tasks_moved = 1;
            queue = e.sid_of("task_queue_previous_sid");
        }
        E::WorkflowTimeout => {
            a.tasks_timed_out_in_workflow = 1;
            queue = None;
        }
        _ => return out,
    }
    let channel = Some(t.channel);
    if worker && let Some(w) = &e.worker {
        out.push((Scope::Of(w.sid), channel, a.clone()));
    }
    if let Some(q) = queue {
        out.push((Scope::Of(q), channel, a.clone()));
    }
    if let Some(w) = workflow {
        out.push((Scope::Of(w), channel, a.clone()));
    }
    out.push((Scope::Workspace, channel, a));
    out
}

/// A wait in whole seconds, rounded **up**: then "waited more than `t` seconds" is exactly
/// "rounded-up seconds above `t`", so `split_by_wait_time` thresholds compare exactly.
fn seconds_up(ms: i64) -> u32 {
    u32::try_from((ms.max(0) + 999) / 1000).unwrap_or(u32::MAX)
}

/// The buckets the store writer keeps current: every contribution of every event, added
/// into its minute and hour buckets. Recent buckets stay in memory (they are the ones new
/// events land in); others are read back through `load` when an event needs them.
///
/// The map lives on the store writer's thread, where a pause holds back every commit. A hash
/// map grows by doubling, and a doubling moves every entry at once: with 200,000 buckets
/// inline (≈ 300 bytes each) one insert took 100–140 ms, boxed 30–40 ms. A B-tree of
/// boxes never moves more than a node, with inserts and lookups about as fast
/// (`cargo run --release -p taskyard-stats --example bucket_map_pause`).
#[derive(Debug, Default)]
pub struct Rollup {
    buckets: BTreeMap<(Sid, Key), Box<Agg>>,
}

impl Rollup {
    /// Adds `events` of `workspace`; returns the buckets changed, in key order, once each
    /// ([`Rollup::body`] renders their new content).
    pub fn add(
        &mut self,
        workspace: Sid,
        events: &[Event],
        mut load: impl FnMut(&Key) -> Option<Agg>,
    ) -> Vec<Key> {
        let mut touched: Vec<Key> = Vec::new();
        for e in events {
            if let Some((p, scopes)) = period(e) {
                for scope in scopes {
                    for span in SPANS {
                        let key = Key {
                            scope,
                            span_ms: span,
                            start_ms: e.at - e.at.rem_euclid(span),
                            channel: None,
                        };
                        let a = period_agg(p, key.start_ms);
                        self.buckets
                            .entry((workspace, key))
                            .or_insert_with(|| Box::new(load(&key).unwrap_or_default()))
                            .merge(&a);
                        touched.push(key);
                    }
                }
            }
            for (scope, channel, a) in contributions(e) {
                for span in SPANS {
                    let key = Key {
                        scope,
                        span_ms: span,
                        start_ms: e.at - e.at.rem_euclid(span),
                        channel,
                    };
                    let slot = self
                        .buckets
                        .entry((workspace, key))
                        .or_insert_with(|| Box::new(load(&key).unwrap_or_default()));
                    slot.merge(&a);
                    touched.push(key);
                }
            }
        }
        touched.sort();
        touched.dedup();
        touched
    }

    /// The content of one bucket of `workspace`, as stored (empty if it holds nothing).
    pub fn body(&self, workspace: Sid, key: &Key) -> String {
        self.buckets
            .get(&(workspace, *key))
            .map(|a| a.to_json())
            .unwrap_or_default()
    }

    /// Forgets buckets that ended more than two of their spans before `now` (events are
    /// stamped with the time they happen, so none land there any more; if one does, the
    /// bucket is read back).
    pub fn evict(&mut self, now: Millis) {
        self.buckets
            .retain(|(_, k), _| k.start_ms + 3 * k.span_ms >= now);
    }

    /// Forgets a deleted workspace's buckets.
    pub fn forget(&mut self, workspace: Sid) {
        self.buckets.retain(|(w, _), _| *w != workspace);
    }
}

/// Which buckets make up a window: `(span, first start, last start)` ranges, every bucket
/// inside the whole minutes `[from, to]` exactly once: whole hours from hour buckets, the
/// minutes before the first and after the last whole hour from minute buckets.
pub fn plan(from_ms: Millis, to_ms: Millis) -> Vec<(Millis, Millis, Millis)> {
    let first_minute = from_ms - from_ms.rem_euclid(MINUTE_MS);
    let last_minute = to_ms - to_ms.rem_euclid(MINUTE_MS);
    if last_minute < first_minute {
        return Vec::new();
    }
    let end = last_minute + MINUTE_MS; // exclusive
    let first_hour = first_minute + (HOUR_MS - first_minute.rem_euclid(HOUR_MS)) % HOUR_MS;
    let hours_end = end - end.rem_euclid(HOUR_MS); // exclusive
    if first_hour + HOUR_MS > end || hours_end <= first_hour {
        return vec![(MINUTE_MS, first_minute, last_minute)];
    }
    let mut ranges = Vec::new();
    if first_minute < first_hour {
        ranges.push((MINUTE_MS, first_minute, first_hour - MINUTE_MS));
    }
    ranges.push((HOUR_MS, first_hour, hours_end - HOUR_MS));
    if hours_end < end {
        ranges.push((MINUTE_MS, hours_end, last_minute));
    }
    ranges
}

#[cfg(test)]
mod tests;
