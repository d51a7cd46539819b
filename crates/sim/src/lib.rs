//! # taskyard-sim
//!
//! A what-if simulator: replays a day of tasks against a workspace definition through the
//! real engine ([`taskyard_engine::Workspace`]) under simulated time, and reports waits,
//! service level, abandonment and occupancy per queue and per interval. There is no second
//! routing implementation: the engine routes, the simulator only plays the people (callers
//! arriving and hanging up, workers answering, handling, wrapping up and following their
//! shifts). Time jumps from one event to the next, so a day takes seconds, and a run is a
//! function of its seed.
//!
//! * [`definition`] — the workspace ([`Definition`]): REST-shaped activities, workers (with
//!   schedules), task queues and workflows.
//! * [`arrivals`] — the tasks ([`Arrivals`]: a Poisson [`Model`] or a [`Recorded`] list from
//!   CSV or the Events API) and how people behave ([`Behaviour`]).
//! * [`sim`] — the discrete-event loop over the engine.
//! * [`report`] — [`Report`] and its CSV; [`Comparison`] of two runs.
//! * [`html`] — a self-contained HTML report with inline SVG charts.
//! * [`theory`] — Erlang C, which the tests hold the simulator to.
//!
//! ```no_run
//! # fn main() -> Result<(), taskyard_sim::SimError> {
//! let def = taskyard_sim::Definition::from_json(&std::fs::read_to_string("definition.json").unwrap())?;
//! let arrivals = taskyard_sim::Arrivals::from_json(&std::fs::read_to_string("arrivals.json").unwrap())?;
//! let report = taskyard_sim::run(&def, &arrivals, &taskyard_sim::Options::default())?;
//! std::fs::write("report.html", taskyard_sim::html(&report)).unwrap();
//! # Ok(()) }
//! ```

pub mod arrivals;
pub mod definition;
pub mod error;
pub mod html;
pub mod report;
pub mod sim;
pub mod theory;

use serde::{Deserialize, Serialize};

pub use arrivals::{Arrival, Arrivals, Behaviour, Dist, MixEntry, Model, Recorded, Source};
pub use definition::Definition;
pub use error::SimError;
pub use html::{html, html_comparison};
pub use report::{Comparison, QueueReport, Report, RunFacts, Stats, csv};

/// How to run a simulation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Options {
    /// Seeds the arrivals and the workers' behaviour: the same seed, definition and
    /// arrivals give the same report.
    pub seed: u64,
    /// The workflow new tasks enter (friendly name or input SID); the definition's first
    /// when absent.
    pub workflow: Option<String>,
    /// The run's name in reports; the workflow's name when absent.
    pub label: Option<String>,
    /// Length of a report interval, seconds.
    pub interval_seconds: u32,
    /// The service-level threshold: a task answered within this many seconds counts as
    /// answered in time.
    pub service_level_seconds: u32,
    /// The simulated period; the arrivals' own when absent (a model's intervals, or the
    /// recorded tasks rounded up to 15 minutes).
    pub horizon_seconds: Option<u64>,
    /// After the period ends, how long tasks still waiting may go on (they are then
    /// reported as unanswered).
    pub drain_seconds: u64,
    /// The simulated start, Unix milliseconds (midnight UTC of the simulated day: workers'
    /// schedules are times of that day).
    pub start_ms: i64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            seed: 1,
            workflow: None,
            label: None,
            interval_seconds: 900,
            service_level_seconds: 20,
            horizon_seconds: None,
            drain_seconds: 4 * 3600,
            // 2026-01-01T00:00:00Z: any midnight would do; the engine only needs a clock.
            start_ms: 1_767_225_600_000,
        }
    }
}

/// Runs one simulation.
pub fn run(def: &Definition, arrivals: &Arrivals, opts: &Options) -> Result<Report, SimError> {
    simulate(def, arrivals, opts, false).map(|(r, _)| r)
}

/// [`run`], also returning every event the engine recorded during the run (after the
/// workspace was built), oldest first, as the JSON the server's store keeps — the shape the
/// Events API serves, so [`Recorded::from_events`] reads it back. For looking at a run in
/// detail (who was offered which task, when), and for replaying it. Rendering the events
/// costs about as much again as the run.
pub fn run_with_events(
    def: &Definition,
    arrivals: &Arrivals,
    opts: &Options,
) -> Result<(Report, Vec<String>), SimError> {
    simulate(def, arrivals, opts, true).map(|(r, e)| (r, e.unwrap_or_default()))
}

fn simulate(
    def: &Definition,
    arrivals: &Arrivals,
    opts: &Options,
    keep_events: bool,
) -> Result<(Report, Option<Vec<String>>), SimError> {
    if opts.interval_seconds == 0 {
        return Err(SimError::Arrivals(
            "interval_seconds must be positive".into(),
        ));
    }
    let stream = arrivals.prepare(opts.seed)?;
    let built = definition::build(def, opts.start_ms)?;
    let (name, workflow) = match &opts.workflow {
        None => built
            .workflows
            .first()
            .map(|(n, _, s)| (n.clone(), *s))
            .ok_or_else(|| SimError::Definition("no workflow".into()))?,
        Some(key) => built
            .workflows
            .iter()
            .find(|(n, input, s)| {
                n == key || input.as_deref() == Some(key.as_str()) || s.to_string() == *key
            })
            .map(|(n, _, s)| (n.clone(), *s))
            .ok_or_else(|| SimError::Definition(format!("no workflow {key:?}")))?,
    };
    let horizon_seconds = opts.horizon_seconds.unwrap_or(stream.horizon).max(1);
    let queue_names = built.queues.iter().map(|(_, n)| n.clone()).collect();
    let outcomes = sim::run(sim::Setup {
        built,
        workflow,
        stream: &stream,
        behaviour: &arrivals.behaviour,
        seed: opts.seed,
        start_ms: opts.start_ms,
        interval_ms: i64::from(opts.interval_seconds) * 1000,
        horizon_ms: horizon_seconds as i64 * 1000,
        drain_ms: opts.drain_seconds as i64 * 1000,
        keep_events,
    })?;
    let report = report::build(
        &outcomes,
        report::Frame {
            label: opts.label.clone().unwrap_or_else(|| name.clone()),
            workflow: name,
            seed: opts.seed,
            interval_seconds: opts.interval_seconds,
            service_level_seconds: opts.service_level_seconds,
            horizon_seconds,
            queue_names,
        },
    );
    Ok((report, outcomes.events))
}

/// Runs two definitions (say, the same workspace with two staffing plans) on the same
/// arrivals with the same seed: both see exactly the same tasks.
pub fn compare(
    a: &Definition,
    b: &Definition,
    arrivals: &Arrivals,
    opts: &Options,
) -> Result<Comparison, SimError> {
    Ok(Comparison {
        a: run(a, arrivals, opts)?,
        b: run(b, arrivals, opts)?,
    })
}

/// Runs two workflows of one definition on the same arrivals with the same seed.
pub fn compare_workflows(
    def: &Definition,
    workflow_a: &str,
    workflow_b: &str,
    arrivals: &Arrivals,
    opts: &Options,
) -> Result<Comparison, SimError> {
    let with = |w: &str| Options {
        workflow: Some(w.to_string()),
        label: None,
        ..opts.clone()
    };
    Ok(Comparison {
        a: run(def, arrivals, &with(workflow_a))?,
        b: run(def, arrivals, &with(workflow_b))?,
    })
}
