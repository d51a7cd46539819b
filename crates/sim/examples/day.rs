//! A day of a 500-agent contact centre (about 49,000 tasks), simulated and timed: the
//! example workspace of `examples/simulator/` by default.
//!
//! ```sh
//! cargo run --release -p taskyard-sim --example day
//! cargo run --release -p taskyard-sim --example day -- --repeat 5 --out examples/simulator
//! cargo run --release -p taskyard-sim --example day -- --definition my.json --arrivals day.csv \
//!     --workflow "Skills only" --seed 7 --out /some/dir
//! ```
//!
//! Prints the wall time of each run and its speed-up over real time (the simulated period
//! divided by the wall time), then the headline figures. With `--out DIR`, writes the
//! comparison of the definition's first two workflows (or of `--workflow A --workflow B`)
//! as `report.html`, `report.json` and `report.csv` in `DIR`. An arrivals file ending in
//! `.csv` is read as `created_seconds,attributes_json,handle_seconds[,patience_seconds]`.

use std::time::Instant;

use taskyard_sim::{Arrivals, Behaviour, Definition, Options, Report};

const DEFINITION: &str = include_str!("../../../examples/simulator/definition.json");
const ARRIVALS: &str = include_str!("../../../examples/simulator/arrivals.json");

fn arg_values(args: &[String], name: &str) -> Vec<String> {
    args.windows(2)
        .filter(|w| w[0] == name)
        .map(|w| w[1].clone())
        .collect()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn summary(r: &Report) {
    let t = &r.all.total;
    let pct = |x: Option<f64>| x.map_or("-".into(), |v| format!("{:.1}%", v * 100.0));
    let secs = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.1} s"));
    println!(
        "{:<30} {:>6} tasks  SL {:>6}  wait mean {:>7}  p90 {:>7}  abandoned {:>6}  occupancy {:>6}",
        r.label,
        t.offered,
        pct(t.service_level),
        secs(t.wait_mean),
        secs(t.wait_p90),
        pct(t.abandon_rate),
        pct(t.occupancy)
    );
    for q in &r.queues {
        let s = &q.total;
        println!(
            "    {:<26} {:>6} tasks  SL {:>6}  wait mean {:>7}  p90 {:>7}  abandoned {:>6}  occupancy {:>6}",
            q.name,
            s.offered,
            pct(s.service_level),
            secs(s.wait_mean),
            secs(s.wait_p90),
            pct(s.abandon_rate),
            pct(s.occupancy)
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let one = |name: &str| arg_values(&args, name).into_iter().next();
    let definition = one("--definition").map_or(DEFINITION.to_string(), |p| read(&p));
    let def = Definition::from_json(&definition).expect("definition");
    let arrivals = match one("--arrivals") {
        None => Arrivals::from_json(ARRIVALS),
        Some(p) if p.ends_with(".csv") => Arrivals::from_csv(&read(&p), Behaviour::default()),
        Some(p) => Arrivals::from_json(&read(&p)),
    }
    .expect("arrivals");
    let repeat: usize = one("--repeat").map_or(3, |r| r.parse().expect("--repeat N"));
    let seed: u64 = one("--seed").map_or(1, |s| s.parse().expect("--seed N"));
    let mut workflows = arg_values(&args, "--workflow");
    if workflows.is_empty() {
        workflows = def
            .workflows
            .iter()
            .take(2)
            .map(|w| w.friendly_name.clone())
            .collect();
    }
    let opts = Options {
        seed,
        workflow: workflows.first().cloned(),
        ..Options::default()
    };

    let workers: u32 = def.workers.iter().map(|w| w.count.unwrap_or(1)).sum();
    println!(
        "{workers} workers, {} queues, workflow {:?}, seed {seed}; {repeat} runs",
        def.task_queues.len(),
        opts.workflow.as_deref().unwrap_or("?")
    );
    let mut walls = Vec::new();
    let mut report = None;
    for _ in 0..repeat.max(1) {
        let start = Instant::now();
        let r = taskyard_sim::run(&def, &arrivals, &opts).expect("runs");
        let wall = start.elapsed();
        let day = r.horizon_seconds as f64;
        println!(
            "  {} tasks, {} engine commands, {:.0} s simulated ({:.0} s of arrivals period): {:.3} s wall, {:.0}× real time",
            r.run.tasks,
            r.run.engine_commands,
            r.run.simulated_seconds,
            day,
            wall.as_secs_f64(),
            day / wall.as_secs_f64()
        );
        walls.push(wall);
        report = Some(r);
    }
    walls.sort();
    let (best, median) = (walls[0], walls[walls.len() / 2]);
    let r = report.expect("at least one run");
    println!(
        "best {:.3} s ({:.0}× real time), median {:.3} s ({:.0}×)",
        best.as_secs_f64(),
        r.horizon_seconds as f64 / best.as_secs_f64(),
        median.as_secs_f64(),
        r.horizon_seconds as f64 / median.as_secs_f64()
    );
    summary(&r);

    if workflows.len() >= 2 {
        let start = Instant::now();
        let c =
            taskyard_sim::compare_workflows(&def, &workflows[0], &workflows[1], &arrivals, &opts)
                .expect("runs");
        println!(
            "comparison ({:.3} s for both):",
            start.elapsed().as_secs_f64()
        );
        summary(&c.a);
        summary(&c.b);
        if let Some(dir) = one("--out") {
            let dir = std::path::Path::new(&dir);
            std::fs::create_dir_all(dir).expect("output directory");
            let write = |name: &str, text: String| {
                let path = dir.join(name);
                std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                println!("wrote {}", path.display());
            };
            write("report.html", taskyard_sim::html_comparison(&c));
            write(
                "report.json",
                serde_json::to_string_pretty(&c).expect("serializes") + "\n",
            );
            write("report.csv", c.csv());
        }
    } else if let Some(dir) = one("--out") {
        let dir = std::path::Path::new(&dir);
        std::fs::create_dir_all(dir).expect("output directory");
        std::fs::write(dir.join("report.html"), taskyard_sim::html(&r)).expect("write");
        std::fs::write(
            dir.join("report.json"),
            serde_json::to_string_pretty(&r).expect("serializes") + "\n",
        )
        .expect("write");
        std::fs::write(dir.join("report.csv"), taskyard_sim::csv(&r)).expect("write");
        println!(
            "wrote report.html, report.json, report.csv in {}",
            dir.display()
        );
    }
}
