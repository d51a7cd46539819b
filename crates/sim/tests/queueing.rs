//! The simulator against queueing theory: one skill, `c` agents, Poisson arrivals,
//! exponential handle times, instant answers, nobody abandons — M/M/c, whose probability of
//! waiting, mean wait, service level and occupancy Erlang C gives exactly. A long run with a
//! fixed seed must land within a few percent of each. This holds the whole chain to account:
//! the arrival process, the engine's routing (a free worker takes the oldest task at once,
//! no worker idles while a task waits), and the simulator's measurements.

use serde_json::json;
use taskyard_sim::theory::ErlangC;
use taskyard_sim::{Arrivals, Behaviour, Definition, Dist, Model, Options, Report, Source};

/// `c` identical agents in one queue that every task goes to.
fn one_skill(c: u32) -> Definition {
    serde_json::from_value(json!({
        "workers": [{"friendly_name": "agent", "count": c, "attributes": {"skill": "any"}}],
        "task_queues": [{"friendly_name": "Support", "target_workers": "skill == 'any'"}],
        "workflows": [{"friendly_name": "All to Support",
            "configuration": {"task_routing": {"filters": [], "default_filter": {"queue": "Support"}}}}]
    }))
    .expect("definition")
}

/// Poisson arrivals at `per_hour` for `days` days, exponential handle times.
fn poisson(per_hour: f64, mean_handle: f64, days: usize) -> Arrivals {
    Arrivals {
        source: Source::Model(Model {
            interval_seconds: 86_400,
            per_hour: vec![per_hour; days],
            mix: Vec::new(),
            handle: Dist::Exponential { mean: mean_handle },
            patience: None,
        }),
        behaviour: Behaviour::default(),
    }
}

fn within(what: &str, simulated: f64, theory: f64, tolerance: f64) {
    let err = (simulated - theory).abs() / theory;
    println!(
        "{what}: simulated {simulated:.4}, Erlang C {theory:.4}, off by {:.2}%",
        err * 100.0
    );
    assert!(
        err <= tolerance,
        "{what}: simulated {simulated:.4} vs Erlang C {theory:.4} ({:.2}% off, more than {:.0}%)",
        err * 100.0,
        tolerance * 100.0
    );
}

/// Tolerances, relative to the theory.
struct Tolerance {
    p_wait: f64,
    mean_wait: f64,
    service_level: f64,
    occupancy: f64,
}

fn check(
    c: u32,
    per_hour: f64,
    mean_handle: f64,
    days: usize,
    seed: u64,
    tol: Tolerance,
) -> Report {
    let opts = Options {
        seed,
        interval_seconds: 86_400,
        ..Options::default()
    };
    let report = taskyard_sim::run(&one_skill(c), &poisson(per_hour, mean_handle, days), &opts)
        .expect("runs");
    let t = &report.queues[0].total;
    let theory = ErlangC::new(c, per_hour, mean_handle);
    println!(
        "c = {c}, {:.1} Erlangs, {} tasks (seed {seed}):",
        per_hour / 3600.0 * mean_handle,
        t.offered
    );
    assert_eq!(
        t.handled, t.offered,
        "nobody abandons: every task is handled"
    );
    within(
        "P(wait)",
        t.queued as f64 / t.offered as f64,
        theory.p_wait,
        tol.p_wait,
    );
    within(
        "mean wait (s)",
        t.wait_mean.expect("waits"),
        theory.mean_wait,
        tol.mean_wait,
    );
    within(
        "service level (20 s)",
        t.service_level.expect("service level"),
        theory.service_level(c, per_hour, mean_handle, 20.0),
        tol.service_level,
    );
    within(
        "occupancy",
        t.occupancy.expect("occupancy"),
        theory.occupancy,
        tol.occupancy,
    );
    report
}

// How far a run of this length can honestly be expected to land: measured with
// `cargo run --release -p taskyard-sim --example erlang -- C PER_HOUR 60 DAYS SEEDS` over
// 10–12 seeds of about 200,000 tasks each. The simulator shows no bias (the average over the
// seeds is within about one standard error of Erlang C for every figure), but waits are
// strongly correlated in time, so one run's mean wait spreads with a standard deviation of
// 4.6% at 10 agents and ρ = 0.8 (P(wait): 1.6%), and 2.2% at 2 agents and ρ = 0.7 (P(wait):
// 0.7%). The tolerances are two and a half to three of those standard deviations: an error
// of that size in routing or measurement fails the test (handle times 1 s too long, 1.7%,
// fail both), noise does not.

#[test]
fn ten_agents_at_eight_erlangs_agree_with_erlang_c() {
    // λ = 480/h, 1/μ = 60 s: 8 Erlangs on 10 agents (ρ = 0.8), about 196,000 tasks.
    let tol = Tolerance {
        p_wait: 0.04,
        mean_wait: 0.12,
        service_level: 0.03,
        occupancy: 0.01,
    };
    check(10, 480.0, 60.0, 17, 1, tol);
}

#[test]
fn two_agents_at_seventy_percent_agree_with_erlang_c() {
    // λ = 84/h, 1/μ = 60 s: 1.4 Erlangs on 2 agents, about 201,000 tasks — a queue whose
    // mean wait a run of this length pins down to a few percent.
    let tol = Tolerance {
        p_wait: 0.02,
        mean_wait: 0.05,
        service_level: 0.03,
        occupancy: 0.01,
    };
    check(2, 84.0, 60.0, 100, 1, tol);
}
