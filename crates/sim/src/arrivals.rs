//! [`Arrivals`]: the tasks a simulation creates, and [`Behaviour`]: how the simulated
//! workers and callers act on them.
//!
//! Tasks come either from a [`Model`] (Poisson arrivals with a rate per interval, an
//! attribute mix, handle-time and patience distributions) or from a [`Recorded`] list (a CSV
//! file, the Events API's `task.created` events, or JSON). Either way they are turned into
//! one sorted list of [`Arrival`]s *before* the run starts, with their handle times and
//! patience already drawn, from a generator of their own: two runs with the same seed see
//! exactly the same tasks whatever their workflows do with them, which is what a side-by-side
//! comparison needs.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::SimError;

/// A probability distribution of a duration, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dist {
    /// Always this many seconds.
    Fixed(f64),
    /// Exponential with this mean (memoryless: Erlang C's service and patience model).
    Exponential { mean: f64 },
    /// Log-normal with this mean and standard deviation (of the durations themselves, not
    /// of their logarithms): the usual shape of handle times.
    Lognormal { mean: f64, sd: f64 },
    /// Uniform between `min` and `max`.
    Uniform { min: f64, max: f64 },
}

impl Dist {
    /// One draw, in seconds (never negative).
    pub fn sample(&self, rng: &mut fastrand::Rng) -> f64 {
        let x = match *self {
            Dist::Fixed(s) => s,
            Dist::Exponential { mean } => -mean * (1.0 - rng.f64()).ln(),
            Dist::Lognormal { mean, sd } => {
                if mean <= 0.0 {
                    return 0.0;
                }
                let s2 = (1.0 + (sd / mean).powi(2)).ln();
                let mu = mean.ln() - s2 / 2.0;
                (mu + s2.sqrt() * normal(rng)).exp()
            }
            Dist::Uniform { min, max } => min + (max - min) * rng.f64(),
        };
        x.max(0.0)
    }

    /// The distribution's mean, in seconds.
    pub fn mean(&self) -> f64 {
        match *self {
            Dist::Fixed(s) => s,
            Dist::Exponential { mean } | Dist::Lognormal { mean, .. } => mean,
            Dist::Uniform { min, max } => (min + max) / 2.0,
        }
    }

    fn check(&self, what: &str) -> Result<(), SimError> {
        let ok = match *self {
            Dist::Fixed(s) => s >= 0.0 && s.is_finite(),
            Dist::Exponential { mean } => mean > 0.0 && mean.is_finite(),
            Dist::Lognormal { mean, sd } => mean > 0.0 && sd >= 0.0 && (mean + sd).is_finite(),
            Dist::Uniform { min, max } => min >= 0.0 && max >= min && max.is_finite(),
        };
        if ok {
            Ok(())
        } else {
            Err(SimError::Arrivals(format!(
                "{what}: {self:?} is not a duration distribution"
            )))
        }
    }
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut fastrand::Rng) -> f64 {
    let u1 = 1.0 - rng.f64();
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// How the simulated workers answer reservations and finish tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Behaviour {
    /// From `reservation.created` to the worker's accept (or reject); instant when absent.
    pub accept_delay: Option<Dist>,
    /// Probability that a worker rejects a reservation (after the accept delay).
    pub reject_probability: f64,
    /// Probability that a worker lets a reservation ring until the workflow's
    /// `task_reservation_timeout`: the engine then moves the worker to the timeout activity.
    pub no_answer_probability: f64,
    /// How long a worker stays in the timeout activity before going back to what its
    /// schedule says (an agent noticing it was logged off); 60 s when absent.
    pub away_after_no_answer: Option<Dist>,
    /// Wrap-up after handling (the reservation is `wrapping`, the worker still busy); none
    /// when absent.
    pub wrapup: Option<Dist>,
}

impl Default for Behaviour {
    fn default() -> Behaviour {
        Behaviour {
            accept_delay: None,
            reject_probability: 0.0,
            no_answer_probability: 0.0,
            away_after_no_answer: None,
            wrapup: None,
        }
    }
}

impl Behaviour {
    fn check(&self) -> Result<(), SimError> {
        for (p, what) in [
            (self.reject_probability, "reject_probability"),
            (self.no_answer_probability, "no_answer_probability"),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(SimError::Arrivals(format!(
                    "{what} must be between 0 and 1"
                )));
            }
        }
        if self.reject_probability + self.no_answer_probability > 1.0 {
            return Err(SimError::Arrivals(
                "reject_probability + no_answer_probability must not exceed 1".into(),
            ));
        }
        for (d, what) in [
            (&self.accept_delay, "accept_delay"),
            (&self.away_after_no_answer, "away_after_no_answer"),
            (&self.wrapup, "wrapup"),
        ] {
            if let Some(d) = d {
                d.check(what)?;
            }
        }
        Ok(())
    }
}

/// One kind of task in a [`Model`]'s mix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixEntry {
    /// Relative weight (the weights need not add up to 1).
    pub weight: f64,
    /// The task's attributes (a JSON object).
    pub attributes: Value,
    /// Overrides the model's handle time for this kind of task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<Dist>,
    /// Overrides the model's patience for this kind of task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<Dist>,
    /// Task channel unique name (`default` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
}

/// Synthetic arrivals: a Poisson process whose rate is constant within each interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Length of each rate interval, in seconds (900 when absent).
    #[serde(default = "default_interval")]
    pub interval_seconds: u32,
    /// Arrival rate of each interval in tasks per hour, from the start of the simulation;
    /// the simulated period is `per_hour.len() × interval_seconds`.
    pub per_hour: Vec<f64>,
    /// Which tasks arrive; one entry with empty attributes when absent.
    #[serde(default)]
    pub mix: Vec<MixEntry>,
    /// Handle time: from the worker's accept to the end of handling (wrap-up excluded).
    pub handle: Dist,
    /// How long a caller waits (until accepted) before hanging up; nobody abandons when
    /// absent.
    #[serde(default)]
    pub patience: Option<Dist>,
}

fn default_interval() -> u32 {
    900
}

/// One task to create: when, with what attributes, and how long it will take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arrival {
    /// Seconds from the start of the simulation.
    pub at: f64,
    /// The task's attributes (a JSON object).
    #[serde(default)]
    pub attributes: Value,
    /// Handle time in seconds; the recording's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<f64>,
    /// Seconds the caller waits before abandoning; the recording's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
}

/// A recorded list of tasks.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Recorded {
    pub tasks: Vec<Arrival>,
    /// Handle time of tasks that do not carry one (required if any does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<Dist>,
    /// Patience of tasks that do not carry one; they never abandon when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<Dist>,
}

/// Where the tasks come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Model(Model),
    Recorded(Recorded),
}

/// What a simulation feeds the workspace: `{"model": {…}, "behaviour": {…}}` or
/// `{"recorded": {"tasks": […]}, "behaviour": {…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arrivals {
    #[serde(flatten)]
    pub source: Source,
    #[serde(default)]
    pub behaviour: Behaviour,
}

/// A task ready to be created, with everything drawn.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// Milliseconds from the start.
    pub at: i64,
    /// Index into `attributes` (the mix entry, or the recorded task's own).
    pub attributes: usize,
    pub handle_ms: i64,
    pub patience_ms: Option<i64>,
    pub channel: Option<String>,
    pub priority: Option<i64>,
}

/// The prepared stream: tasks sorted by arrival, attribute texts shared between tasks.
pub(crate) struct Stream {
    pub tasks: Vec<Prepared>,
    pub attributes: Vec<String>,
    /// The simulated period in seconds, as the arrivals define it.
    pub horizon: u64,
}

fn ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

fn object_text(v: &Value, what: &str) -> Result<String, SimError> {
    match v {
        Value::Null => Ok("{}".into()),
        Value::Object(_) => Ok(v.to_string()),
        _ => Err(SimError::Arrivals(format!(
            "{what}: attributes must be a JSON object"
        ))),
    }
}

impl Arrivals {
    /// Reads arrivals from their JSON text.
    pub fn from_json(text: &str) -> Result<Arrivals, SimError> {
        serde_json::from_str(text).map_err(|source| SimError::Json {
            what: "arrivals",
            source,
        })
    }

    /// Arrivals from a CSV file (see [`Recorded::from_csv`]) and the given behaviour.
    pub fn from_csv(text: &str, behaviour: Behaviour) -> Result<Arrivals, SimError> {
        Ok(Arrivals {
            source: Source::Recorded(Recorded::from_csv(text)?),
            behaviour,
        })
    }

    /// Arrivals from Events API JSON (see [`Recorded::from_events`]).
    pub fn from_events(
        text: &str,
        handle: Option<Dist>,
        behaviour: Behaviour,
    ) -> Result<Arrivals, SimError> {
        let mut recorded = Recorded::from_events(text)?;
        recorded.handle = handle;
        Ok(Arrivals {
            source: Source::Recorded(recorded),
            behaviour,
        })
    }

    /// Draws the task stream for `seed`: the same seed gives the same tasks, handle times
    /// and patience, whatever the workspace does with them.
    pub(crate) fn prepare(&self, seed: u64) -> Result<Stream, SimError> {
        self.behaviour.check()?;
        let mut rngs = Rngs::new(seed);
        match &self.source {
            Source::Model(m) => m.prepare(&mut rngs),
            Source::Recorded(r) => r.prepare(&mut rngs),
        }
    }
}

/// The arrivals' generators, apart from the workers' behaviour (so the stream does not
/// depend on how many reservations a workflow makes), and apart from each other: times and
/// mix, handle times, patience. Changing the patience model of a what-if leaves the same
/// tasks arriving at the same moments with the same handle times.
pub(crate) struct Rngs {
    times: fastrand::Rng,
    handle: fastrand::Rng,
    patience: fastrand::Rng,
}

impl Rngs {
    pub(crate) fn new(seed: u64) -> Rngs {
        let derive =
            |k: u64| fastrand::Rng::with_seed(seed ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        Rngs {
            times: derive(1),
            handle: derive(2),
            patience: derive(3),
        }
    }
}

impl Model {
    fn prepare(&self, rngs: &mut Rngs) -> Result<Stream, SimError> {
        if self.interval_seconds == 0 {
            return Err(SimError::Arrivals(
                "interval_seconds must be positive".into(),
            ));
        }
        if self.per_hour.is_empty() {
            return Err(SimError::Arrivals("per_hour is empty".into()));
        }
        if let Some(r) = self
            .per_hour
            .iter()
            .find(|r| !(r.is_finite() && **r >= 0.0))
        {
            return Err(SimError::Arrivals(format!(
                "rate {r} per hour is not a rate"
            )));
        }
        self.handle.check("handle")?;
        if let Some(p) = &self.patience {
            p.check("patience")?;
        }
        let default_mix = [MixEntry {
            weight: 1.0,
            attributes: Value::Object(Default::default()),
            handle: None,
            patience: None,
            channel: None,
            priority: None,
        }];
        let mix: &[MixEntry] = if self.mix.is_empty() {
            &default_mix
        } else {
            &self.mix
        };
        let mut attributes = Vec::with_capacity(mix.len());
        let mut cumulative = Vec::with_capacity(mix.len());
        let mut total = 0.0;
        for (i, m) in mix.iter().enumerate() {
            let what = format!("mix entry {}", i + 1);
            if !(m.weight.is_finite() && m.weight >= 0.0) {
                return Err(SimError::Arrivals(format!("{what}: weight must be ≥ 0")));
            }
            for (d, name) in [(&m.handle, "handle"), (&m.patience, "patience")] {
                if let Some(d) = d {
                    d.check(&format!("{what}: {name}"))?;
                }
            }
            attributes.push(object_text(&m.attributes, &what)?);
            total += m.weight;
            cumulative.push(total);
        }
        if total <= 0.0 {
            return Err(SimError::Arrivals("the mix's weights add up to 0".into()));
        }
        let interval = f64::from(self.interval_seconds);
        let mut tasks = Vec::new();
        for (i, rate) in self.per_hour.iter().enumerate() {
            if *rate == 0.0 {
                continue;
            }
            let (start, end) = (i as f64 * interval, (i + 1) as f64 * interval);
            let per_second = rate / 3600.0;
            // Exponential gaps, restarted at each interval's start: the process is
            // memoryless, so this is exactly a Poisson process of piecewise-constant rate.
            let mut t = start;
            loop {
                t += -(1.0 - rngs.times.f64()).ln() / per_second;
                if t >= end {
                    break;
                }
                let u = rngs.times.f64() * total;
                let k = cumulative.partition_point(|c| *c <= u).min(mix.len() - 1);
                let m = &mix[k];
                let handle = m
                    .handle
                    .as_ref()
                    .unwrap_or(&self.handle)
                    .sample(&mut rngs.handle);
                let patience = m
                    .patience
                    .as_ref()
                    .or(self.patience.as_ref())
                    .map(|p| ms(p.sample(&mut rngs.patience)));
                tasks.push(Prepared {
                    at: ms(t),
                    attributes: k,
                    handle_ms: ms(handle),
                    patience_ms: patience,
                    channel: m.channel.clone(),
                    priority: m.priority,
                });
            }
        }
        Ok(Stream {
            tasks,
            attributes,
            horizon: u64::from(self.interval_seconds) * self.per_hour.len() as u64,
        })
    }
}

impl Recorded {
    fn prepare(&self, rngs: &mut Rngs) -> Result<Stream, SimError> {
        if let Some(h) = &self.handle {
            h.check("handle")?;
        }
        if let Some(p) = &self.patience {
            p.check("patience")?;
        }
        let mut order: Vec<usize> = (0..self.tasks.len()).collect();
        // Stable, so tasks recorded at the same moment keep their recorded order.
        order.sort_by(|a, b| self.tasks[*a].at.total_cmp(&self.tasks[*b].at));
        let mut tasks = Vec::with_capacity(order.len());
        let mut attributes = Vec::with_capacity(order.len());
        for i in order {
            let a = &self.tasks[i];
            let what = format!("task {} (at {} s)", i + 1, a.at);
            if !(a.at.is_finite() && a.at >= 0.0) {
                return Err(SimError::Arrivals(format!("{what}: time must be ≥ 0")));
            }
            let handle = match (a.handle, &self.handle) {
                (Some(h), _) if h.is_finite() && h >= 0.0 => h,
                (Some(_), _) => {
                    return Err(SimError::Arrivals(format!("{what}: bad handle time")));
                }
                (None, Some(d)) => d.sample(&mut rngs.handle),
                (None, None) => {
                    return Err(SimError::Arrivals(format!(
                        "{what}: no handle time, and the recording gives no default"
                    )));
                }
            };
            let patience = match (a.patience, &self.patience) {
                (Some(p), _) => Some(ms(p.max(0.0))),
                (None, Some(d)) => Some(ms(d.sample(&mut rngs.patience))),
                (None, None) => None,
            };
            attributes.push(object_text(&a.attributes, &what)?);
            tasks.push(Prepared {
                at: ms(a.at),
                attributes: attributes.len() - 1,
                handle_ms: ms(handle),
                patience_ms: patience,
                channel: a.channel.clone(),
                priority: a.priority,
            });
        }
        let last = tasks.last().map_or(0, |t| t.at);
        Ok(Stream {
            tasks,
            attributes,
            // Whole 15-minute intervals covering the last arrival.
            horizon: ((last / 1000) as u64 / 900 + 1) * 900,
        })
    }

    /// Reads `created_seconds,attributes_json,handle_seconds[,patience_seconds]` lines
    /// (RFC 4180 quoting: the attributes are usually quoted, their quotes doubled). A first
    /// line whose first field is not a number is taken as a header; blank lines and lines
    /// starting with `#` are skipped. An empty patience means the caller never abandons.
    pub fn from_csv(text: &str) -> Result<Recorded, SimError> {
        let mut tasks = Vec::new();
        let header = first_line(text);
        for (n, line) in text.lines().enumerate() {
            let line_no = n + 1;
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let bad = |message: String| SimError::Csv {
                line: line_no,
                message,
            };
            let fields = csv_fields(line).map_err(|m| bad(m.into()))?;
            let number = |i: usize, name: &str| -> Result<Option<f64>, SimError> {
                match fields.get(i).map(|f| f.trim()) {
                    None | Some("") => Ok(None),
                    Some(f) => f
                        .parse::<f64>()
                        .map(Some)
                        .map_err(|_| bad(format!("{name} {f:?} is not a number"))),
                }
            };
            if n == header && fields[0].trim().parse::<f64>().is_err() {
                continue;
            }
            let Some(at) = number(0, "created_seconds")? else {
                return Err(bad("created_seconds is missing".into()));
            };
            let attributes = match fields.get(1).map(|f| f.trim()) {
                None | Some("") => Value::Object(Default::default()),
                Some(f) => serde_json::from_str(f)
                    .map_err(|e| bad(format!("attributes are not JSON: {e}")))?,
            };
            if !attributes.is_object() {
                return Err(bad("attributes must be a JSON object".into()));
            }
            let handle = number(2, "handle_seconds")?;
            let patience = number(3, "patience_seconds")?;
            tasks.push(Arrival {
                at,
                attributes,
                handle,
                patience,
                channel: None,
                priority: None,
            });
        }
        Ok(Recorded {
            tasks,
            handle: None,
            patience: None,
        })
    }

    /// Reads the Events API's JSON (a page `{"events": […]}`, a list of events, or one
    /// event per line) and keeps one task per `task.created`: its time and attributes; its
    /// handle time when the log also shows it accepted and then wrapped or completed; its
    /// patience when the log shows it canceled before anyone accepted it. Times are taken
    /// from the start of the UTC day of the first task.
    pub fn from_events(text: &str) -> Result<Recorded, SimError> {
        let events = parse_events(text)?;
        struct Seen {
            created: i64,
            attributes: Value,
            accepted: Option<i64>,
            handled: Option<i64>,
            canceled: Option<i64>,
            priority: Option<i64>,
            channel: Option<String>,
        }
        let mut by_task: std::collections::BTreeMap<String, Seen> = Default::default();
        let mut order = Vec::new();
        let data = |e: &Value, k: &str| {
            e.get("event_data")
                .and_then(|d| d.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        for e in &events {
            let (Some(kind), Some(at)) = (
                e.get("event_type").and_then(Value::as_str),
                e.get("event_date_ms").and_then(Value::as_i64),
            ) else {
                continue;
            };
            let Some(task) = data(e, "task_sid") else {
                continue;
            };
            if kind == "task.created" {
                let attributes = match data(e, "task_attributes") {
                    Some(t) => serde_json::from_str(&t).map_err(|err| {
                        SimError::Events(format!("task {task}: task_attributes: {err}"))
                    })?,
                    None => Value::Object(Default::default()),
                };
                order.push(task.clone());
                by_task.insert(
                    task,
                    Seen {
                        created: at,
                        attributes,
                        accepted: None,
                        handled: None,
                        canceled: None,
                        priority: data(e, "task_priority").and_then(|p| p.parse().ok()),
                        channel: data(e, "task_channel_unique_name"),
                    },
                );
                continue;
            }
            let Some(s) = by_task.get_mut(&task) else {
                continue;
            };
            match kind {
                "reservation.accepted" => {
                    s.accepted.get_or_insert(at);
                }
                "reservation.wrapup"
                | "task.wrapup"
                | "reservation.completed"
                | "task.completed"
                    if s.accepted.is_some() =>
                {
                    s.handled.get_or_insert(at);
                }
                "task.canceled" if s.accepted.is_none() => {
                    s.canceled.get_or_insert(at);
                }
                _ => {}
            }
        }
        if order.is_empty() {
            return Err(SimError::Events("no task.created events".into()));
        }
        let first = order
            .iter()
            .filter_map(|t| by_task.get(t))
            .map(|s| s.created)
            .min()
            .unwrap_or(0);
        let day_start = first - first.rem_euclid(86_400_000);
        let tasks = order
            .iter()
            .filter_map(|t| by_task.get(t))
            .map(|s| Arrival {
                at: (s.created - day_start) as f64 / 1000.0,
                attributes: s.attributes.clone(),
                handle: s
                    .accepted
                    .zip(s.handled)
                    .map(|(a, h)| (h - a).max(0) as f64 / 1000.0),
                patience: s.canceled.map(|c| (c - s.created).max(0) as f64 / 1000.0),
                channel: s.channel.clone(),
                priority: s.priority,
            })
            .collect();
        Ok(Recorded {
            tasks,
            handle: None,
            patience: None,
        })
    }
}

/// Events, sorted by time, from any of the accepted shapes.
fn parse_events(text: &str) -> Result<Vec<Value>, SimError> {
    let mut events: Vec<Value> = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(a)) => a,
        Ok(Value::Object(mut o)) => match o.remove("events") {
            Some(Value::Array(a)) => a,
            _ => vec![Value::Object(o)],
        },
        Ok(_) => return Err(SimError::Events("expected events".into())),
        Err(_) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).map_err(|source| SimError::Json {
                    what: "events (one per line)",
                    source,
                })
            })
            .collect::<Result<_, _>>()?,
    };
    // The API lists newest first; a replay needs them in the order they happened (events
    // of one millisecond in SID order, which is the order the engine made them).
    events.sort_by(|a, b| {
        let key = |e: &Value| {
            (
                e.get("event_date_ms").and_then(Value::as_i64).unwrap_or(0),
                e.get("sid")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
    Ok(events)
}

/// The index of the first line that is not blank or a comment.
fn first_line(text: &str) -> usize {
    text.lines()
        .position(|l| !(l.trim().is_empty() || l.trim().starts_with('#')))
        .unwrap_or(0)
}

/// Splits one CSV line into fields (RFC 4180: a quoted field may hold commas and doubled
/// quotes).
fn csv_fields(line: &str) -> Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.trim().is_empty() && !was_quoted => {
                field.clear();
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                fields.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field");
    }
    fields.push(field);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_honour_quotes() {
        assert_eq!(
            csv_fields(r#"1.5,"{""skill"":""a,b""}",30"#).ok(),
            Some(vec![
                "1.5".to_string(),
                r#"{"skill":"a,b"}"#.to_string(),
                "30".to_string()
            ])
        );
        assert!(csv_fields(r#"1,"open"#).is_err());
    }

    #[test]
    fn csv_reads_rows_skips_a_header_and_names_bad_lines() {
        let text = "created_seconds,attributes_json,handle_seconds,patience_seconds\n\
                    10,\"{\"\"skill\"\":\"\"sales\"\"}\",120,\n\
                    # a comment\n\
                    5,{},60,30\n";
        let r = Recorded::from_csv(text).expect("parses");
        assert_eq!(r.tasks.len(), 2);
        assert_eq!(r.tasks[0].attributes["skill"], "sales");
        assert_eq!(r.tasks[0].patience, None);
        assert_eq!(r.tasks[1].patience, Some(30.0));
        let err = Recorded::from_csv("1,{},60\nx,{},60\n").expect_err("bad line");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn events_give_times_attributes_handle_and_patience() {
        let ev = |sid: &str, kind: &str, at: i64, task: &str, attrs: &str| {
            serde_json::json!({"sid": sid, "event_type": kind, "event_date_ms": at,
                "event_data": {"task_sid": task, "task_attributes": attrs}})
        };
        let day = 1_767_225_600_000i64;
        let page = serde_json::json!({"events": [
            ev("EV4", "task.completed", day + 100_000, "WT1", "{}"),
            ev("EV3", "reservation.accepted", day + 40_000, "WT1", "{}"),
            ev("EV1", "task.created", day + 10_000, "WT1", "{\"skill\":\"x\"}"),
            ev("EV2", "task.created", day + 20_000, "WT2", "{}"),
            ev("EV5", "task.canceled", day + 50_000, "WT2", "{}"),
        ]});
        let r = Recorded::from_events(&page.to_string()).expect("parses");
        assert_eq!(r.tasks.len(), 2);
        assert_eq!(r.tasks[0].at, 10.0);
        assert_eq!(r.tasks[0].attributes["skill"], "x");
        assert_eq!(r.tasks[0].handle, Some(60.0));
        assert_eq!(r.tasks[1].patience, Some(30.0));
        assert_eq!(r.tasks[1].handle, None);
    }

    #[test]
    fn the_model_draws_about_its_rate_and_its_mix() {
        let m = Model {
            interval_seconds: 3600,
            per_hour: vec![1000.0, 0.0, 3000.0],
            mix: vec![
                MixEntry {
                    weight: 3.0,
                    attributes: serde_json::json!({"k": "a"}),
                    handle: None,
                    patience: None,
                    channel: None,
                    priority: None,
                },
                MixEntry {
                    weight: 1.0,
                    attributes: serde_json::json!({"k": "b"}),
                    handle: Some(Dist::Fixed(7.0)),
                    patience: None,
                    channel: None,
                    priority: None,
                },
            ],
            handle: Dist::Exponential { mean: 100.0 },
            patience: None,
        };
        let s = m.prepare(&mut Rngs::new(3)).expect("prepares");
        assert_eq!(s.horizon, 3 * 3600);
        let in_hour = |h: i64| s.tasks.iter().filter(|t| t.at / 3_600_000 == h).count() as f64;
        assert!((in_hour(0) - 1000.0).abs() < 4.0 * 1000f64.sqrt());
        assert_eq!(in_hour(1), 0.0);
        assert!((in_hour(2) - 3000.0).abs() < 4.0 * 3000f64.sqrt());
        let b: Vec<_> = s.tasks.iter().filter(|t| t.attributes == 1).collect();
        let share = b.len() as f64 / s.tasks.len() as f64;
        assert!((share - 0.25).abs() < 0.03, "{share}");
        assert!(b.iter().all(|t| t.handle_ms == 7000));
        assert!(s.tasks.windows(2).all(|w| w[0].at <= w[1].at));
    }

    #[test]
    fn distributions_have_their_means() {
        let mut rng = fastrand::Rng::with_seed(11);
        for d in [
            Dist::Exponential { mean: 50.0 },
            Dist::Lognormal {
                mean: 50.0,
                sd: 30.0,
            },
            Dist::Uniform {
                min: 20.0,
                max: 80.0,
            },
            Dist::Fixed(50.0),
        ] {
            let n = 200_000;
            let mean = (0..n).map(|_| d.sample(&mut rng)).sum::<f64>() / n as f64;
            assert!((mean - 50.0).abs() < 0.5, "{d:?}: {mean}");
        }
    }

    #[test]
    fn arrivals_json_has_a_source_and_a_behaviour() {
        let text = r#"{"model": {"per_hour": [60], "handle": {"exponential": {"mean": 30}},
                       "patience": {"fixed": 20}},
                       "behaviour": {"accept_delay": {"uniform": {"min": 1, "max": 3}},
                                     "reject_probability": 0.1}}"#;
        let a = Arrivals::from_json(text).expect("parses");
        assert!(matches!(a.source, Source::Model(ref m) if m.interval_seconds == 900));
        assert_eq!(a.behaviour.reject_probability, 0.1);
        let text = r#"{"recorded": {"tasks": [{"at": 3, "handle": 10}]}}"#;
        let a = Arrivals::from_json(text).expect("parses");
        assert!(matches!(a.source, Source::Recorded(ref r) if r.tasks.len() == 1));
    }
}
