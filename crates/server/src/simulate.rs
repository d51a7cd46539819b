//! `taskyard simulate`: a what-if run of a workspace definition against a day of arrivals,
//! through the real engine under simulated time ([`taskyard_sim`]); optionally two
//! workflows, or two definitions, side by side on the same arrivals. Prints a summary per
//! queue and writes the HTML report, the JSON and the per-interval CSV where asked.

use std::path::PathBuf;

use anyhow::Context as _;
use taskyard_sim::{Arrivals, Comparison, Definition, Options, Report};

#[derive(Debug, Clone, clap::Args)]
pub struct Simulate {
    /// The workspace: activities, workers (with schedules), task queues and workflows, as
    /// JSON (docs/simulator.md; examples/simulator/definition.json).
    #[arg(long)]
    pub definition: PathBuf,

    /// The tasks: a synthetic model or recorded tasks as JSON (docs/simulator.md;
    /// examples/simulator/arrivals.json), a CSV of `created_seconds,attributes_json,
    /// handle_seconds[,patience_seconds]` (`.csv`), or a recorded day from the Events API
    /// (`{"events": [...]}`, a list of events, or one a line).
    #[arg(long)]
    pub arrivals: PathBuf,

    /// How workers answer, for CSV and Events API arrivals (JSON; the model's `behaviour`
    /// object) [default: accept at once, never reject, no wrap-up].
    #[arg(long)]
    pub behaviour: Option<PathBuf>,

    /// For Events API arrivals: the handle time of tasks the recording does not show
    /// completed, as a distribution in JSON (`{"exponential": {"mean": 240}}`, `{"fixed":
    /// 120}`; docs/simulator.md).
    #[arg(long, value_name = "JSON")]
    pub handle: Option<String>,

    /// The workflow new tasks enter (friendly name) [default: the definition's first].
    #[arg(long)]
    pub workflow: Option<String>,

    /// Also run this workflow of the same definition on the same arrivals, and compare.
    #[arg(long, conflicts_with = "compare_definition")]
    pub compare_workflow: Option<String>,

    /// Also run this other definition (say, another staffing plan) on the same arrivals,
    /// and compare.
    #[arg(long)]
    pub compare_definition: Option<PathBuf>,

    /// Seeds arrivals and behaviour: the same seed gives the same report.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Length of a report interval, in seconds.
    #[arg(long, default_value_t = 900)]
    pub interval_seconds: u32,

    /// Answered within this many seconds counts toward the service level.
    #[arg(long, default_value_t = 20)]
    pub service_level_seconds: u32,

    /// Write the self-contained HTML report (plots included) here.
    #[arg(long)]
    pub html: Option<PathBuf>,

    /// Write the whole report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Write the per-queue, per-interval table as CSV here.
    #[arg(long)]
    pub csv: Option<PathBuf>,
}

pub fn run(args: &Simulate) -> anyhow::Result<()> {
    simulate(args).with_context(|| {
        format!(
            "simulating {} with {}",
            args.definition.display(),
            args.arrivals.display()
        )
    })
}

fn simulate(args: &Simulate) -> anyhow::Result<()> {
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
    };
    let definition = Definition::from_json(&read(&args.definition)?)
        .with_context(|| format!("{}", args.definition.display()))?;
    let arrivals = arrivals(args, &read(&args.arrivals)?)
        .with_context(|| format!("{}", args.arrivals.display()))?;
    let opts = Options {
        seed: args.seed,
        workflow: args.workflow.clone(),
        interval_seconds: args.interval_seconds,
        service_level_seconds: args.service_level_seconds,
        ..Options::default()
    };
    let started = std::time::Instant::now();
    let comparison = match (&args.compare_workflow, &args.compare_definition) {
        (Some(other), _) => {
            let mine = opts
                .workflow
                .clone()
                .or_else(|| {
                    definition
                        .workflows
                        .first()
                        .map(|w| w.friendly_name.clone())
                })
                .context("the definition has no workflow")?;
            Some(taskyard_sim::compare_workflows(
                &definition,
                &mine,
                other,
                &arrivals,
                &opts,
            )?)
        }
        (None, Some(path)) => {
            let other = Definition::from_json(&read(path)?)
                .with_context(|| format!("{}", path.display()))?;
            let mut c = taskyard_sim::compare(&definition, &other, &arrivals, &opts)?;
            c.a.label = format!("{} ({})", c.a.label, file_name(&args.definition));
            c.b.label = format!("{} ({})", c.b.label, file_name(path));
            Some(c)
        }
        (None, None) => None,
    };
    let single = match &comparison {
        Some(_) => None,
        None => Some(taskyard_sim::run(&definition, &arrivals, &opts)?),
    };
    let took = started.elapsed().as_secs_f64();
    let reports: Vec<&Report> = match (&comparison, &single) {
        (Some(c), _) => vec![&c.a, &c.b],
        (None, Some(r)) => vec![r],
        (None, None) => Vec::new(),
    };
    for r in &reports {
        print!("{}", summary(r));
    }
    let simulated: f64 = reports.iter().map(|r| r.run.simulated_seconds).sum();
    println!(
        "simulated {:.1} h in {took:.2} s ({:.0}x real time)",
        simulated / 3600.0,
        simulated / took.max(1e-9)
    );
    let write = |p: &PathBuf, text: String| {
        std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))
    };
    if let Some(p) = &args.html {
        write(
            p,
            match (&comparison, &single) {
                (Some(c), _) => taskyard_sim::html_comparison(c),
                (None, Some(r)) => taskyard_sim::html(r),
                (None, None) => String::new(),
            },
        )?;
    }
    if let Some(p) = &args.json {
        let text = match (&comparison, &single) {
            (Some(c), _) => serde_json::to_string_pretty::<Comparison>(c)?,
            (None, Some(r)) => serde_json::to_string_pretty::<Report>(r)?,
            (None, None) => String::new(),
        };
        write(p, text)?;
    }
    if let Some(p) = &args.csv {
        write(
            p,
            match (&comparison, &single) {
                (Some(c), _) => c.csv(),
                (None, Some(r)) => taskyard_sim::csv(r),
                (None, None) => String::new(),
            },
        )?;
    }
    Ok(())
}

/// The arrivals file in whichever of its three forms it is.
fn arrivals(args: &Simulate, text: &str) -> anyhow::Result<Arrivals> {
    let behaviour = || -> anyhow::Result<taskyard_sim::Behaviour> {
        match &args.behaviour {
            None => Ok(taskyard_sim::Behaviour::default()),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                serde_json::from_str(&text).with_context(|| format!("{}", p.display()))
            }
        }
    };
    let is_csv = args
        .arrivals
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        return Ok(Arrivals::from_csv(text, behaviour()?)?);
    }
    // Events API JSON: a page of events, a list of them, or one a line.
    let trimmed = text.trim_start();
    let events = trimmed.starts_with('[')
        || serde_json::from_str::<serde_json::Value>(text)
            .map(|v| v.get("events").is_some())
            .unwrap_or_else(|_| trimmed.starts_with('{'));
    if events {
        let handle = match &args.handle {
            Some(h) => Some(serde_json::from_str(h).context("--handle")?),
            None => None,
        };
        return Ok(Arrivals::from_events(text, handle, behaviour()?)?);
    }
    anyhow::ensure!(
        args.behaviour.is_none(),
        "--behaviour is for CSV and Events API arrivals; a model's behaviour is in its file"
    );
    Ok(Arrivals::from_json(text)?)
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// One line per queue: what a person reads first.
fn summary(r: &Report) -> String {
    let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.1}%", v * 100.0));
    let secs = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
    let mut out = format!(
        "{} (workflow {}, seed {}, {} tasks)\n{:<28} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>9}\n",
        r.label,
        r.workflow,
        r.seed,
        r.run.tasks,
        "queue",
        "offered",
        "handled",
        "abandoned",
        format!("SL {}s", r.service_level_seconds),
        "wait p50",
        "wait p90",
        "occupancy"
    );
    for q in std::iter::once(&r.all).chain(&r.queues) {
        let t = &q.total;
        out.push_str(&format!(
            "{:<28} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>9}\n",
            q.name.chars().take(28).collect::<String>(),
            t.offered,
            t.handled,
            t.abandoned,
            pct(t.service_level),
            secs(t.wait_p50),
            secs(t.wait_p90),
            pct(t.occupancy)
        ));
    }
    out.push('\n');
    out
}
