//! [`Definition`]: the workspace a simulation runs — activities, task channels, workers with
//! their shifts, task queues and workflows — and how it becomes a real engine
//! [`Workspace`].
//!
//! The shapes are the REST API's (snake_case names as in Twilio's JSON), so a definition can
//! be written by hand or exported from a running server: fields the simulator has no use for
//! (`url`, `links`, `date_created`, …) are ignored. SIDs in the input are kept only as names:
//! the simulated workspace issues its own, and every reference (a workflow target's `queue`,
//! a queue's `reservation_activity_sid`, a worker's `activity_sid`) is translated through the
//! input's SID or friendly name. Two additions that are not REST: a worker's `schedule`
//! (its activity by time of day) and `count` (that many copies of one worker entry).
//!
//! Building goes through [`Workspace::apply`] like the API does, so a definition the server
//! would refuse (a bad `target_workers` expression, a workflow naming a missing queue) is
//! refused here with the engine's own message.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use taskyard_engine::{
    Command, CountingSids, CreateWorker, Millis, NewWorkspace, QueueOrder, Sid, TaskQueueParams,
    UpdateWorkspace, WorkflowParams, Workspace,
};

use crate::SimError;

/// Seconds in a day: schedules repeat with this period.
pub const DAY: u32 = 86_400;

/// Everything the simulated workspace holds before the first task arrives.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    #[serde(default)]
    pub friendly_name: Option<String>,
    /// The workspace's `multi_task_enabled` (TaskRouter's default, true, when absent).
    #[serde(default)]
    pub multi_task_enabled: Option<bool>,
    /// Where a worker who lets a reservation time out is moved (the workspace's
    /// `timeout_activity_sid`): an activity name or input SID; `Offline` when absent.
    #[serde(default)]
    pub timeout_activity: Option<String>,
    /// The activity of a scheduled worker outside its shifts; `Offline` when absent.
    #[serde(default)]
    pub off_shift_activity: Option<String>,
    /// Activities beyond TaskRouter's three defaults (`Offline`, `Available`, `Unavailable`,
    /// which always exist; listing them again is harmless).
    #[serde(default)]
    pub activities: Vec<ActivityDef>,
    /// Task channels beyond the defaults (`default`, `voice`, `sms`, `chat`, `video`).
    #[serde(default)]
    pub task_channels: Vec<TaskChannelDef>,
    #[serde(default)]
    pub workers: Vec<WorkerDef>,
    #[serde(default)]
    pub task_queues: Vec<TaskQueueDef>,
    #[serde(default)]
    pub workflows: Vec<WorkflowDef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityDef {
    pub friendly_name: String,
    #[serde(default)]
    pub available: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskChannelDef {
    pub unique_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub friendly_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerDef {
    pub friendly_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// A JSON object, or a string holding one (the REST shape).
    #[serde(default)]
    pub attributes: Value,
    /// The worker's activity when it has no `schedule` (`Available` when neither this nor
    /// `activity_sid` is given: a simulated worker without a schedule works all day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_sid: Option<String>,
    /// The worker's activity by time of day; outside every entry the worker is in the
    /// definition's `off_shift_activity`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<Shift>,
    /// Capacity per task channel unique name (multitasking workspaces), e.g. `{"chat": 3}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub channels: BTreeMap<String, u32>,
    /// Creates this many identical workers named `{friendly_name}-1` … `{friendly_name}-n`
    /// (a staffing group); one worker named `friendly_name` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

/// One entry of a worker's schedule: `activity` from `from` until `to` (times of day). An
/// entry whose `to` is not after its `from` runs past midnight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shift {
    pub from: Clock,
    pub to: Clock,
    /// An activity name or input SID.
    pub activity: String,
}

/// A time of day: seconds since midnight, or `"HH:MM"` / `"HH:MM:SS"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Clock {
    Seconds(u32),
    Text(String),
}

impl Clock {
    /// Seconds since midnight (`24:00` is the end of the day).
    pub fn seconds(&self) -> Result<u32, SimError> {
        let bad = || SimError::Definition(format!("{self:?} is not a time of day"));
        let s = match self {
            Clock::Seconds(s) => *s,
            Clock::Text(t) => {
                let parts: Vec<&str> = t.trim().split(':').collect();
                if !(2..=3).contains(&parts.len()) {
                    return Err(bad());
                }
                let mut n = [0u32; 3];
                for (i, p) in parts.iter().enumerate() {
                    n[i] = p.parse().map_err(|_| bad())?;
                }
                if n[1] >= 60 || n[2] >= 60 {
                    return Err(bad());
                }
                n[0] * 3600 + n[1] * 60 + n[2]
            }
        };
        if s > DAY {
            return Err(bad());
        }
        Ok(s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskQueueDef {
    pub friendly_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_workers: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reserved_workers: Option<u32>,
    /// `FIFO` or `LIFO`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_order: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_activity_sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_activity_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment_activity_sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment_activity_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowDef {
    pub friendly_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// TaskRouter's configuration document, as a JSON string (the REST shape) or inline.
    /// Targets name their `queue` by SID (an exported workflow) or by friendly name.
    pub configuration: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_reservation_timeout: Option<u32>,
}

impl Definition {
    /// Reads a definition from its JSON text.
    pub fn from_json(text: &str) -> Result<Definition, SimError> {
        serde_json::from_str(text).map_err(|source| SimError::Json {
            what: "definition",
            source,
        })
    }
}

/// A worker as the simulation drives it.
#[derive(Debug, Clone)]
pub(crate) struct BuiltWorker {
    pub sid: Sid,
    /// `(from, to, activity)` in seconds of the day, `from < to` (entries over midnight are
    /// split in two); empty means `fixed` all day.
    pub shifts: Vec<(u32, u32, Sid)>,
    /// The activity outside the shifts, or all day for a worker without a schedule.
    pub fixed: Sid,
}

impl BuiltWorker {
    /// The activity the worker's schedule gives at `second` of the day.
    pub fn scheduled(&self, second: u32) -> Sid {
        self.shifts
            .iter()
            .find(|(from, to, _)| (*from..*to).contains(&second))
            .map_or(self.fixed, |s| s.2)
    }

    /// The next second of the day after `second` at which the schedule changes, if it ever
    /// does (a boundary of `DAY` is the next midnight).
    pub fn next_change(&self, second: u32) -> Option<u32> {
        self.shifts
            .iter()
            .flat_map(|(from, to, _)| [*from, *to])
            .filter(|b| *b > second)
            .min()
            .or_else(|| (!self.shifts.is_empty()).then_some(DAY))
    }
}

/// The workspace built from a definition, with what the simulation needs to drive it.
pub(crate) struct Built {
    pub ws: Workspace,
    pub ids: CountingSids,
    /// Workflows in definition order: (friendly name, input SID, engine SID).
    pub workflows: Vec<(String, Option<String>, Sid)>,
    /// Queues in definition order: (engine SID, friendly name).
    pub queues: Vec<(Sid, String)>,
    pub workers: Vec<BuiltWorker>,
}

/// Name and input-SID lookup of the resources created so far.
#[derive(Default)]
struct Names {
    by_name: BTreeMap<String, Sid>,
    by_input_sid: BTreeMap<String, Sid>,
}

impl Names {
    fn add(&mut self, name: &str, input_sid: Option<&str>, sid: Sid) {
        self.by_name.entry(name.to_string()).or_insert(sid);
        self.by_name.entry(name.to_lowercase()).or_insert(sid);
        if let Some(s) = input_sid {
            self.by_input_sid.insert(s.to_string(), sid);
        }
        self.by_input_sid.insert(sid.to_string(), sid);
    }

    fn find(&self, key: &str) -> Option<Sid> {
        self.by_input_sid
            .get(key)
            .or_else(|| self.by_name.get(key))
            .or_else(|| self.by_name.get(&key.to_lowercase()))
            .copied()
    }
}

/// The attributes of a worker entry as the JSON text the engine takes.
fn attributes_text(v: &Value, what: &str) -> Result<String, SimError> {
    match v {
        Value::Null => Ok("{}".into()),
        Value::Object(_) => Ok(v.to_string()),
        Value::String(s) => {
            let parsed: Value = serde_json::from_str(s).map_err(|e| {
                SimError::Definition(format!("{what}: attributes are not JSON: {e}"))
            })?;
            attributes_text(&parsed, what)
        }
        _ => Err(SimError::Definition(format!(
            "{what}: attributes must be a JSON object"
        ))),
    }
}

/// Replaces every workflow target's `queue` (an input SID or a friendly name) by the
/// simulated queue's SID. Unknown names are left alone: the engine then refuses the
/// configuration with its own message naming the queue.
fn rewrite_queues(config: &mut Value, queues: &Names) {
    fn fix(target: &mut Value, queues: &Names) {
        if let Some(q) = target.get_mut("queue")
            && let Some(name) = q.as_str()
            && let Some(sid) = queues.find(name)
        {
            *q = Value::String(sid.to_string());
        }
    }
    let Some(routing) = config.get_mut("task_routing") else {
        return;
    };
    if let Some(filters) = routing.get_mut("filters").and_then(Value::as_array_mut) {
        for f in filters {
            if let Some(targets) = f.get_mut("targets").and_then(Value::as_array_mut) {
                for t in targets {
                    fix(t, queues);
                }
            }
        }
    }
    if let Some(d) = routing.get_mut("default_filter") {
        fix(d, queues);
    }
}

/// Builds the workspace at `now` (the simulation's start).
pub(crate) fn build(def: &Definition, now: Millis) -> Result<Built, SimError> {
    let mut ids = CountingSids(0);
    let (mut ws, _) = Workspace::create(
        Sid::new("AC", 1),
        NewWorkspace {
            friendly_name: def
                .friendly_name
                .clone()
                .unwrap_or_else(|| "Simulation".into()),
            multi_task_enabled: def.multi_task_enabled,
            ..Default::default()
        },
        now,
        &mut ids,
    )
    .map_err(|e| SimError::engine("workspace", e))?;
    let mut apply = |ws: &mut Workspace, cmd: Command, what: &dyn Fn() -> String| {
        ws.apply(cmd, now, &mut ids)
            .map(|a| a.sid)
            .map_err(|e| SimError::engine(what(), e))
    };

    let mut activities = Names::default();
    for a in ws.activities().values() {
        activities.add(&a.friendly_name, None, a.sid);
    }
    for a in &def.activities {
        // TaskRouter's defaults already exist: a definition exported from a server lists
        // them too, and they must not be created twice.
        let existing = ws
            .activities()
            .values()
            .find(|x| *x.friendly_name == *a.friendly_name && x.available == a.available)
            .map(|x| x.sid);
        let sid = match existing {
            Some(s) => s,
            None => apply(
                &mut ws,
                Command::CreateActivity {
                    friendly_name: a.friendly_name.clone(),
                    available: a.available,
                },
                &|| format!("activity {}", a.friendly_name),
            )?,
        };
        activities.add(&a.friendly_name, a.sid.as_deref(), sid);
    }
    let activity = |key: &str, what: &str| {
        activities
            .find(key)
            .ok_or_else(|| SimError::Definition(format!("{what}: no activity {key:?}")))
    };
    let offline = activity("Offline", "workspace")?;
    let timeout_activity = match &def.timeout_activity {
        Some(a) => activity(a, "timeout_activity")?,
        None => offline,
    };
    if timeout_activity != ws.info().timeout_activity_sid {
        apply(
            &mut ws,
            Command::UpdateWorkspace(UpdateWorkspace {
                timeout_activity_sid: Some(timeout_activity),
                ..Default::default()
            }),
            &|| "timeout_activity".into(),
        )?;
    }
    let off_shift = match &def.off_shift_activity {
        Some(a) => activity(a, "off_shift_activity")?,
        None => offline,
    };

    for c in &def.task_channels {
        if ws.find_task_channel(&c.unique_name).is_none() {
            apply(
                &mut ws,
                Command::CreateTaskChannel {
                    friendly_name: c.friendly_name.clone().unwrap_or(c.unique_name.clone()),
                    unique_name: c.unique_name.clone(),
                    channel_optimized_routing: None,
                },
                &|| format!("task channel {}", c.unique_name),
            )?;
        }
    }

    let mut queue_names = Names::default();
    let mut queues = Vec::new();
    for q in &def.task_queues {
        let what = format!("task queue {}", q.friendly_name);
        let act = |sid: &Option<String>, name: &Option<String>| {
            sid.as_ref()
                .or(name.as_ref())
                .map(|k| activity(k, &what))
                .transpose()
        };
        let task_order = match q.task_order.as_deref() {
            None => None,
            Some(o) => Some(QueueOrder::parse(o).ok_or_else(|| {
                SimError::Definition(format!("{what}: task_order must be FIFO or LIFO"))
            })?),
        };
        let params = TaskQueueParams {
            friendly_name: Some(q.friendly_name.clone()),
            target_workers: q.target_workers.clone(),
            max_reserved_workers: q.max_reserved_workers,
            task_order,
            reservation_activity_sid: act(
                &q.reservation_activity_sid,
                &q.reservation_activity_name,
            )?,
            assignment_activity_sid: act(&q.assignment_activity_sid, &q.assignment_activity_name)?,
        };
        let sid = apply(&mut ws, Command::CreateTaskQueue(params), &|| what.clone())?;
        queue_names.add(&q.friendly_name, q.sid.as_deref(), sid);
        queues.push((sid, q.friendly_name.clone()));
    }

    let mut workflows = Vec::new();
    for w in &def.workflows {
        let what = format!("workflow {}", w.friendly_name);
        let mut config = match &w.configuration {
            Value::String(s) => serde_json::from_str(s).map_err(|e| {
                SimError::Definition(format!("{what}: configuration is not JSON: {e}"))
            })?,
            v => v.clone(),
        };
        rewrite_queues(&mut config, &queue_names);
        let sid = apply(
            &mut ws,
            Command::CreateWorkflow(WorkflowParams {
                friendly_name: Some(w.friendly_name.clone()),
                configuration: Some(config.to_string()),
                task_reservation_timeout: w.task_reservation_timeout,
                ..Default::default()
            }),
            &|| what.clone(),
        )?;
        workflows.push((w.friendly_name.clone(), w.sid.clone(), sid));
    }

    let mut workers = Vec::new();
    for w in &def.workers {
        let what = format!("worker {}", w.friendly_name);
        let attributes = attributes_text(&w.attributes, &what)?;
        let mut shifts = Vec::new();
        for s in &w.schedule {
            let (from, to) = (s.from.seconds()?, s.to.seconds()?);
            let a = activity(&s.activity, &what)?;
            if from < to {
                shifts.push((from, to, a));
            } else {
                shifts.push((from, DAY, a));
                shifts.push((0, to, a));
            }
        }
        let fixed = if w.schedule.is_empty() {
            match w.activity_sid.as_ref().or(w.activity_name.as_ref()) {
                Some(k) => activity(k, &what)?,
                None => activity("Available", &what)?,
            }
        } else {
            off_shift
        };
        let n = w.count.unwrap_or(1);
        for i in 1..=n {
            let name = match w.count {
                Some(_) => format!("{}-{i}", w.friendly_name),
                None => w.friendly_name.clone(),
            };
            let mut built = BuiltWorker {
                sid: Sid::new("WK", 0),
                shifts: shifts.clone(),
                fixed,
            };
            let sid = apply(
                &mut ws,
                Command::CreateWorker(CreateWorker {
                    friendly_name: name.clone(),
                    activity_sid: Some(built.scheduled(0)),
                    attributes: Some(attributes.clone()),
                }),
                &|| format!("worker {name}"),
            )?;
            for (channel, capacity) in &w.channels {
                apply(
                    &mut ws,
                    Command::UpdateWorkerChannel {
                        worker: sid,
                        channel: channel.clone(),
                        capacity: Some(*capacity),
                        available: None,
                    },
                    &|| format!("worker {name}: channel {channel}"),
                )?;
            }
            built.sid = sid;
            workers.push(built);
        }
    }
    Ok(Built {
        ws,
        ids,
        workflows,
        queues,
        workers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_parse_seconds_and_text() {
        assert_eq!(Clock::Seconds(3600).seconds().ok(), Some(3600));
        assert_eq!(Clock::Text("08:30".into()).seconds().ok(), Some(30_600));
        assert_eq!(Clock::Text("24:00".into()).seconds().ok(), Some(DAY));
        assert!(Clock::Text("8h".into()).seconds().is_err());
        assert!(Clock::Text("08:61".into()).seconds().is_err());
    }

    #[test]
    fn a_schedule_gives_the_activity_of_the_moment_and_its_next_change() {
        let (a, b, off) = (Sid::new("WA", 1), Sid::new("WA", 2), Sid::new("WA", 3));
        let w = BuiltWorker {
            sid: Sid::new("WK", 1),
            shifts: vec![(3600, 7200, a), (7200, 9000, b)],
            fixed: off,
        };
        assert_eq!(w.scheduled(0), off);
        assert_eq!(w.scheduled(3600), a);
        assert_eq!(w.scheduled(7199), a);
        assert_eq!(w.scheduled(7200), b);
        assert_eq!(w.scheduled(9000), off);
        assert_eq!(w.next_change(0), Some(3600));
        assert_eq!(w.next_change(7200), Some(9000));
        assert_eq!(w.next_change(9000), Some(DAY));
    }

    #[test]
    fn workflow_targets_name_queues_by_friendly_name_or_input_sid() {
        let text = r#"{
          "workers": [{"friendly_name": "a", "attributes": "{\"skill\":\"x\"}"}],
          "task_queues": [
            {"friendly_name": "X", "sid": "WQ00000000000000000000000000000001", "target_workers": "skill == 'x'"},
            {"friendly_name": "All"}],
          "workflows": [{"friendly_name": "F", "configuration": {"task_routing": {
            "filters": [{"expression": "1==1", "targets": [{"queue": "WQ00000000000000000000000000000001"}]}],
            "default_filter": {"queue": "All"}}}}]
        }"#;
        let def = Definition::from_json(text).expect("parses");
        let built = build(&def, 1_000).expect("builds");
        let wf = &built.ws.workflows()[&built.workflows[0].2];
        let (x, all) = (built.queues[0].0.to_string(), built.queues[1].0.to_string());
        assert!(wf.configuration.contains(&x) && wf.configuration.contains(&all));
        assert_eq!(built.ws.task_queues()[&built.queues[0].0].members.len(), 1);
    }

    #[test]
    fn a_workflow_naming_a_missing_queue_is_refused_by_the_engine() {
        let text = r#"{"workflows": [{"friendly_name": "F",
            "configuration": "{\"task_routing\":{\"filters\":[],\"default_filter\":{\"queue\":\"Nope\"}}}"}]}"#;
        let def = Definition::from_json(text).expect("parses");
        let err = build(&def, 1_000).err().expect("refused");
        assert!(err.to_string().starts_with("workflow F:"), "{err}");
    }
}
