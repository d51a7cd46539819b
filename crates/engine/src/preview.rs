//! "What would route where": a workflow's answer for task attributes, without a task.
//!
//! [`Workspace::preview_route`] walks a workflow configuration the way routing a new task
//! does ([`Workspace::apply`] with `CreateTask`): the filters whose expression matches, in
//! document order, each with its targets; the default filter when no filter matches or
//! every matching step is skipped. For every step it says which of the queue's workers the
//! step admits (its target expression and known-worker rules, as the router checks them)
//! and which of those have room now, and it marks the step a task created at this instant
//! would stop at: the first one with a worker to reserve, else the first one not skipped by
//! `skip_if`. It changes nothing and needs no SID, so the console (and any API user) can try
//! attributes, or an unsaved configuration, against the live workspace.
//!
//! Deliberately not predicted: which of several admitted workers the router picks (longest
//! idle first, then `order_by`; it depends on reservations that may come and go), and steps
//! reached later by timeouts, which are listed in order with their cumulative timeouts.

use serde_json::Value;

use crate::contexts::{TargetView, WorkerView};
use crate::workflow::{Target, WorkflowConfig};
use crate::workspace::{Workspace, parse_attributes};
use crate::{EngineError, Sid, Worker};

/// How many admitted workers a step lists by SID (the counts are always whole).
pub const PREVIEW_WORKERS: usize = 50;

/// One step of the route, in the order routing would try them.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviewStep {
    /// Index in `task_routing.filters`; `None` for the default filter.
    pub filter: Option<usize>,
    pub filter_friendly_name: Option<std::sync::Arc<str>>,
    pub target: usize,
    pub queue: Sid,
    pub priority: Option<i64>,
    /// Seconds after the task's creation when routing leaves this step (cumulative).
    pub leaves_after: Option<u64>,
    /// The queue's members this step admits.
    pub admitted: usize,
    /// Of those, the ones with room for the task now (available activity, free capacity).
    pub with_room: usize,
    /// The first [`PREVIEW_WORKERS`] admitted workers, those with room first.
    pub workers: Vec<(Sid, bool)>,
    /// Whether `skip_if` holds now (always `false` without one).
    pub skipped: bool,
}

/// Where a task with given attributes would go.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutePreview {
    /// Whether any filter's expression matched (else the default filter, if any, applies).
    pub matched: bool,
    pub steps: Vec<PreviewStep>,
    /// Index in `steps` of the step a task created now would stop at; `None` when it would
    /// be canceled (every step skipped, no default) or wait without a queue (nothing matched,
    /// no default).
    pub stops_at: Option<usize>,
}

impl Workspace {
    /// The route of a task with `attributes` (a JSON object text) on the task channel `channel`
    /// (SID or unique name), under `config`, in this workspace as it is now.
    pub fn preview_route(
        &self,
        config: &WorkflowConfig,
        attributes: &str,
        channel: &str,
    ) -> Result<RoutePreview, EngineError> {
        let (_, attrs) = parse_attributes(attributes.to_string(), "Attributes")?;
        let channel = self.channel_param(channel)?;
        let mut steps = Vec::new();
        let mut matched = false;
        for fi in config.matching_filters(&attrs) {
            matched = true;
            let filter = &config.filters[fi];
            let mut cumulative = 0u64;
            for (ti, target) in filter.targets.iter().enumerate() {
                let leaves_after = target.timeout.map(|s| {
                    cumulative += s;
                    cumulative
                });
                // A step whose timeout is already over at age 0 is passed over, as routing does.
                if leaves_after == Some(0) {
                    continue;
                }
                steps.push(self.preview_step(
                    Some(fi),
                    filter.friendly_name.clone(),
                    ti,
                    target,
                    leaves_after,
                    &attrs,
                    channel,
                ));
            }
        }
        let routed = steps.len();
        let mut stops_at = steps.iter().position(|s| s.with_room > 0 || !s.skipped);
        if let Some(d) = &config.default_filter {
            // Routing falls back to the default filter when nothing matched or every step of
            // what matched was skipped; a matched route whose steps all timed out at once
            // cancels the task instead, so the default is not listed then.
            if !matched || (routed > 0 && stops_at.is_none()) {
                steps.push(self.preview_step(None, None, 0, d, None, &attrs, channel));
                stops_at = stops_at.or(Some(routed));
            }
        }
        Ok(RoutePreview {
            matched,
            steps,
            stops_at,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn preview_step(
        &self,
        filter: Option<usize>,
        filter_friendly_name: Option<std::sync::Arc<str>>,
        target_index: usize,
        target: &Target,
        leaves_after: Option<u64>,
        attrs: &Value,
        channel: Sid,
    ) -> PreviewStep {
        let mut admitted = 0;
        let mut with_room = 0;
        let (mut roomy, mut others) = (Vec::new(), Vec::new());
        if let Some(q) = self.task_queues().get(&target.queue) {
            for w in q.members.iter().filter_map(|s| self.workers().get(s)) {
                if !self.target_admits(attrs, w, target) {
                    continue;
                }
                admitted += 1;
                let room = self.has_room(w, channel);
                if room {
                    with_room += 1;
                    if roomy.len() < PREVIEW_WORKERS {
                        roomy.push((w.sid, true));
                    }
                } else if others.len() < PREVIEW_WORKERS {
                    others.push((w.sid, false));
                }
            }
        }
        roomy.extend(others);
        roomy.truncate(PREVIEW_WORKERS);
        let skipped = target
            .skip_if
            .as_ref()
            .is_some_and(|e| e.eval(&self.skip_if_view(target.queue)));
        PreviewStep {
            filter,
            filter_friendly_name,
            target: target_index,
            queue: target.queue,
            priority: target.priority,
            leaves_after,
            admitted,
            with_room,
            workers: roomy,
            skipped,
        }
    }

    /// Whether a workflow target admits `worker` for a task with `attrs`: its known-worker
    /// rules and its target expression (queue membership and room are checked elsewhere).
    pub(crate) fn target_admits(&self, attrs: &Value, worker: &Worker, target: &Target) -> bool {
        if let Some(key) = &target.known_worker_sid {
            let wanted = taskyard_expr::lookup(attrs, key.rest());
            if !matches!(wanted, taskyard_expr::Val::Str(ref s) if *s == *worker.sid.to_string()) {
                return false;
            }
        }
        if let Some(key) = &target.known_worker_friendly_name {
            let wanted = taskyard_expr::lookup(attrs, key.rest());
            if !matches!(wanted, taskyard_expr::Val::Str(ref s) if s.eq_ignore_ascii_case(&worker.friendly_name))
            {
                return false;
            }
        }
        match &target.expression {
            None => true,
            Some(e) => e.eval(&TargetView {
                task_attributes: attrs,
                worker: WorkerView {
                    workspace: self,
                    worker,
                },
            }),
        }
    }
}
