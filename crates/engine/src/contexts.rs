//! What the keys of an expression mean in each place TaskRouter evaluates one.
//!
//! * [`WorkerView`] — worker attributes plus `sid`, `friendly_name`, `activity_sid`,
//!   `activity_name` (`Workers?TargetWorkersExpression=`).
//! * [`TargetView`] — a workflow target expression: `task.<attr>` from the task's attributes,
//!   `worker.<attr>` from the worker's, with the built-ins above and
//!   `worker.channel.<unique name>.<configured_capacity | assigned_tasks |
//!   available_capacity_percentage | available>`.
//! * [`SkipIfView`] — `workers.available`, `workers.unavailable`, `workers.<activity SID>`:
//!   counts of a queue's eligible workers.
//! * [`compare_workers`] — an `order_by` list as a comparison between two workers.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde_json::Value;
use taskyard_expr::{Context, Key, OrderBy, Seg, Val, lookup};

use crate::{Sid, Worker, WorkerChannel, Workspace};

/// How loaded one worker channel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelLoad {
    pub assigned_tasks: u32,
    /// `floor((1 - assigned / configured) * 100)`, 0 when the capacity is 0.
    pub available_capacity_percentage: u32,
}

impl Workspace {
    /// The load of a worker's channel: accepted and wrapping reservations are its assigned
    /// tasks; pending ones count against its free capacity too.
    pub fn channel_load(&self, worker: &Worker, channel: &WorkerChannel) -> ChannelLoad {
        let (pending, assigned) = self.channel_counts(worker.sid, channel.task_channel_sid);
        let used = pending + assigned;
        let cap = channel.configured_capacity;
        let available_capacity_percentage = if cap == 0 || used >= cap {
            0
        } else {
            100 - (used * 100).div_ceil(cap)
        };
        ChannelLoad {
            assigned_tasks: assigned,
            available_capacity_percentage,
        }
    }

    /// Counts for a queue's `skip_if`: its eligible workers by activity.
    pub fn skip_if_view(&self, queue: Sid) -> SkipIfView {
        let mut view = SkipIfView::default();
        let Some(q) = self.task_queues().get(&queue) else {
            return view;
        };
        for w in q.members.iter().filter_map(|s| self.workers().get(s)) {
            let available = self
                .activities()
                .get(&w.activity_sid)
                .is_some_and(|a| a.available);
            if available {
                view.available += 1;
            } else {
                view.unavailable += 1;
            }
            *view
                .by_activity
                .entry(w.activity_sid.to_string())
                .or_default() += 1;
        }
        view
    }
}

/// A worker with its built-in fields, for expressions without prefixes.
pub struct WorkerView<'a> {
    pub workspace: &'a Workspace,
    pub worker: &'a Worker,
}

impl WorkerView<'_> {
    /// Resolves a path relative to the worker (no `worker.` prefix).
    fn resolve(&self, segs: &[Seg]) -> Val<'_> {
        let w = self.worker;
        if let [Seg::Field(f)] = segs {
            let builtin = match f.as_str() {
                "sid" => Some(w.sid.to_string()),
                "friendly_name" => Some(w.friendly_name.to_string()),
                "activity_sid" => Some(w.activity_sid.to_string()),
                "activity_name" => self
                    .workspace
                    .activities()
                    .get(&w.activity_sid)
                    .map(|a| a.friendly_name.to_string()),
                _ => None,
            };
            if let Some(v) = builtin {
                return Val::Str(v.into());
            }
        }
        if let [Seg::Field(channel), Seg::Field(name), Seg::Field(field)] = segs
            && channel == "channel"
            && let Some(c) = self.workspace.find_worker_channel(w, name)
        {
            let load = self.workspace.channel_load(w, c);
            return match field.as_str() {
                "configured_capacity" => Val::Num(c.configured_capacity.into()),
                "assigned_tasks" => Val::Num(load.assigned_tasks.into()),
                "available_capacity_percentage" => {
                    Val::Num(load.available_capacity_percentage.into())
                }
                "available" => Val::Bool(c.available),
                _ => Val::Null,
            };
        }
        lookup(&w.attrs, segs)
    }
}

impl Context for WorkerView<'_> {
    fn get(&self, key: &Key) -> Val<'_> {
        self.resolve(&key.segs)
    }
}

/// A task and a worker, for workflow target expressions (`task.` / `worker.` keys).
pub struct TargetView<'a> {
    pub task_attributes: &'a Value,
    pub worker: WorkerView<'a>,
}

impl Context for TargetView<'_> {
    fn get(&self, key: &Key) -> Val<'_> {
        match key.root() {
            Some("task") => lookup(self.task_attributes, key.rest()),
            Some("worker") => self.worker.resolve(key.rest()),
            _ => Val::Null,
        }
    }
}

/// Worker counts of one queue, for `skip_if`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SkipIfView {
    pub available: u32,
    pub unavailable: u32,
    /// Activity SID (as text) → eligible workers in it.
    pub by_activity: HashMap<String, u32>,
}

impl Context for SkipIfView {
    fn get(&self, key: &Key) -> Val<'_> {
        match (key.root(), key.rest()) {
            (Some("workers"), [Seg::Field(f)]) => Val::Num(match f.as_str() {
                "available" => self.available.into(),
                "unavailable" => self.unavailable.into(),
                sid => self.by_activity.get(sid).copied().unwrap_or(0).into(),
            }),
            _ => Val::Null,
        }
    }
}

/// Orders two workers by `order_by` clauses: each compares an integer attribute; a worker
/// without an integer value there sorts after one with it, whatever the direction; ties go
/// to the next clause and finally compare equal (the router then prefers the longest idle).
pub fn compare_workers(order_by: &[OrderBy], a: &WorkerView<'_>, b: &WorkerView<'_>) -> Ordering {
    for clause in order_by {
        let int = |v: &WorkerView<'_>| match v.resolve(clause.key.rest()) {
            Val::Num(n) if n.fract() == 0.0 => Some(n),
            _ => None,
        };
        let ord = match (int(a), int(b)) {
            (Some(x), Some(y)) => {
                let o = x.total_cmp(&y);
                if clause.descending { o.reverse() } else { o }
            }
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Command, CountingSids, CreateWorker, NewWorkspace, TaskQueueParams};
    use serde_json::json;
    use taskyard_expr::{Scope, parse, parse_order_by};

    fn setup() -> (Workspace, Vec<Sid>, CountingSids) {
        let mut ids = CountingSids(0);
        let (mut ws, _) = Workspace::create(
            Sid::new("AC", 1),
            NewWorkspace {
                friendly_name: "W".into(),
                ..Default::default()
            },
            1,
            &mut ids,
        )
        .expect("workspace");
        let available = ws
            .activities()
            .values()
            .find(|a| a.available)
            .expect("available")
            .sid;
        let mut workers = Vec::new();
        for (name, attrs, avail) in [
            (
                "Alice",
                json!({"finance": 10, "support": 8, "langs": ["en"]}),
                true,
            ),
            (
                "Bob",
                json!({"finance": 10, "support": 5, "langs": ["en", "es"]}),
                true,
            ),
            ("Cy", json!({"finance": 10, "langs": ["es"]}), false),
        ] {
            let cmd = Command::CreateWorker(CreateWorker {
                friendly_name: name.into(),
                activity_sid: avail.then_some(available),
                attributes: Some(attrs.to_string()),
            });
            workers.push(ws.apply(cmd, 2, &mut ids).expect("worker").sid);
        }
        (ws, workers, ids)
    }

    #[test]
    fn worker_view_has_builtins_channels_and_attributes() {
        let (ws, workers, _) = setup();
        let w = &ws.workers()[&workers[0]];
        let view = WorkerView {
            workspace: &ws,
            worker: w,
        };
        let holds = |src: &str| parse(src, Scope::Attributes).expect(src).eval(&view);
        assert!(holds("friendly_name == 'Alice'"));
        assert!(holds(&format!("sid == '{}'", w.sid)));
        assert!(holds("activity_name == 'Available'"));
        assert!(holds("finance >= 10 AND langs HAS 'en'"));
        assert!(holds("channel.voice.configured_capacity == 1"));
        assert!(holds("channel.voice.assigned_tasks == 0"));
        assert!(holds("channel.voice.available_capacity_percentage == 100"));
        assert!(holds("channel.voice.available == true"));
        assert!(
            !holds("channel.fax.configured_capacity == 1"),
            "unknown channel is null"
        );
    }

    #[test]
    fn target_view_joins_task_and_worker() {
        let (ws, workers, _) = setup();
        let task = json!({"language": "es", "agent": "Bob"});
        let check = |i: usize, src: &str| {
            let view = TargetView {
                task_attributes: &task,
                worker: WorkerView {
                    workspace: &ws,
                    worker: &ws.workers()[&workers[i]],
                },
            };
            parse(src, Scope::Target).expect(src).eval(&view)
        };
        assert!(!check(0, "task.language IN worker.langs"));
        assert!(check(1, "task.language IN worker.langs"));
        assert!(check(1, "task.agent == worker.friendly_name"));
        assert!(check(1, "worker.channel.default.configured_capacity >= 1"));
    }

    #[test]
    fn skip_if_counts_eligible_workers_by_activity() {
        let (mut ws, workers, mut ids) = setup();
        let q = ws
            .apply(
                Command::CreateTaskQueue(TaskQueueParams {
                    friendly_name: Some("Spanish".into()),
                    target_workers: Some("langs HAS 'es'".into()),
                    ..Default::default()
                }),
                3,
                &mut ids,
            )
            .expect("queue")
            .sid;
        let view = ws.skip_if_view(q);
        assert_eq!(
            (view.available, view.unavailable),
            (1, 1),
            "Bob available, Cy offline"
        );
        let offline = ws.workers()[&workers[2]].activity_sid;
        let holds = |src: &str| parse(src, Scope::SkipIf).expect(src).eval(&view);
        assert!(holds("workers.available == 1 AND workers.unavailable == 1"));
        assert!(holds(&format!("workers.{offline} == 1")));
        assert!(!holds("workers.available == 0"));
    }

    #[test]
    fn order_by_compares_integer_attributes_in_sequence() {
        // Twilio's example: `worker.finance ASC, worker.support ASC` puts Bob (support 5)
        // before Alice (support 8); a worker without `support` sorts after both.
        let (ws, workers, _) = setup();
        let view = |i: usize| WorkerView {
            workspace: &ws,
            worker: &ws.workers()[&workers[i]],
        };
        let asc = parse_order_by("worker.finance ASC, worker.support ASC").expect("parse");
        assert_eq!(compare_workers(&asc, &view(1), &view(0)), Ordering::Less);
        assert_eq!(compare_workers(&asc, &view(2), &view(0)), Ordering::Greater);
        let desc = parse_order_by("worker.support DESC").expect("parse");
        assert_eq!(compare_workers(&desc, &view(0), &view(1)), Ordering::Less);
        assert_eq!(
            compare_workers(&desc, &view(2), &view(1)),
            Ordering::Greater,
            "missing still last"
        );
        let none = parse_order_by("worker.nothing ASC").expect("parse");
        assert_eq!(compare_workers(&none, &view(0), &view(1)), Ordering::Equal);
    }
}
