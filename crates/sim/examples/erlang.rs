//! The simulator against Erlang C over many seeds: how far one run lands from the theory,
//! and whether the runs average out to it (no bias).
//!
//! ```sh
//! # agents, arrivals per hour, mean handle seconds, days per run, number of seeds
//! cargo run --release -p taskyard-sim --example erlang -- 10 480 60 17 12
//! ```
//!
//! Prints, per seed, the simulated probability of waiting, mean wait and occupancy and
//! their distance from Erlang C; then the mean over the seeds and the standard deviation of
//! one run's relative error — the figures the tolerances of `tests/queueing.rs` come from.

use serde_json::json;
use taskyard_sim::theory::ErlangC;
use taskyard_sim::{Arrivals, Behaviour, Definition, Dist, Model, Options, Source};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: f64| -> f64 {
        args.get(i).map_or(default, |a| {
            a.parse()
                .expect("numbers: C PER_HOUR MEAN_HANDLE DAYS SEEDS")
        })
    };
    let (c, per_hour, mean) = (num(0, 10.0) as u32, num(1, 480.0), num(2, 60.0));
    let (days, seeds) = (num(3, 17.0) as usize, num(4, 8.0) as u64);
    let def: Definition = serde_json::from_value(json!({
        "workers": [{"friendly_name": "agent", "count": c, "attributes": {"skill": "any"}}],
        "task_queues": [{"friendly_name": "Support", "target_workers": "skill == 'any'"}],
        "workflows": [{"friendly_name": "All", "configuration":
            {"task_routing": {"filters": [], "default_filter": {"queue": "Support"}}}}]
    }))
    .expect("definition");
    let arrivals = Arrivals {
        source: Source::Model(Model {
            interval_seconds: 86_400,
            per_hour: vec![per_hour; days],
            mix: Vec::new(),
            handle: Dist::Exponential { mean },
            patience: None,
        }),
        behaviour: Behaviour::default(),
    };
    let theory = ErlangC::new(c, per_hour, mean);
    println!(
        "M/M/{c}, {:.2} Erlangs: Erlang C P(wait) {:.4}, mean wait {:.3} s",
        per_hour / 3600.0 * mean,
        theory.p_wait,
        theory.mean_wait
    );
    let mut errors = Vec::new();
    for seed in 0..seeds {
        let opts = Options {
            seed,
            interval_seconds: 86_400,
            ..Options::default()
        };
        let start = std::time::Instant::now();
        let r = taskyard_sim::run(&def, &arrivals, &opts).expect("runs");
        let t = &r.queues[0].total;
        let p = t.queued as f64 / t.offered as f64;
        let w = t.wait_mean.unwrap_or(0.0);
        let (ep, ew) = (p / theory.p_wait - 1.0, w / theory.mean_wait - 1.0);
        println!(
            "seed {seed}: {} tasks, P(wait) {p:.4} ({:+.2}%), mean wait {w:.3} s ({:+.2}%), occupancy {:.4}, {:.2} s",
            t.offered,
            ep * 100.0,
            ew * 100.0,
            t.occupancy.unwrap_or(0.0),
            start.elapsed().as_secs_f64()
        );
        errors.push((ep, ew));
    }
    let n = errors.len() as f64;
    let mean_of = |f: fn(&(f64, f64)) -> f64| errors.iter().map(f).sum::<f64>() / n;
    let sd_of = |f: fn(&(f64, f64)) -> f64| {
        let m = mean_of(f);
        (errors.iter().map(|e| (f(e) - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt()
    };
    println!(
        "over {seeds} seeds: P(wait) {:+.2}% (one run's sd {:.2}%), mean wait {:+.2}% (sd {:.2}%)",
        mean_of(|e| e.0) * 100.0,
        sd_of(|e| e.0) * 100.0,
        mean_of(|e| e.1) * 100.0,
        sd_of(|e| e.1) * 100.0
    );
}
