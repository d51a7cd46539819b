//! [`Report`]: what a run comes to, per queue and per interval, and its CSV form.
//!
//! Tasks are counted in the interval in which they were *created* (contact-centre
//! convention: an interval's service level is that of the calls offered in it), and in the
//! queue they were answered from — or abandoned in, or last waiting in — so a task that
//! overflowed from one queue to another counts once, where it ended. Occupancy is per
//! interval of wall-clock simulated time: the share of the time workers were logged in
//! (available, or holding a reservation) that they spent holding one.

use serde::{Deserialize, Serialize};

use crate::sim::{Outcome, Outcomes};

/// Figures of one queue (or all of them) over one interval (or the whole run).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Start of the interval, seconds from the start of the simulation (0 for totals).
    pub start_seconds: u64,
    /// Tasks created (in this interval) that ended in this queue.
    pub offered: u64,
    /// Accepted by a worker.
    pub handled: u64,
    /// The caller hung up before anyone accepted.
    pub abandoned: u64,
    /// Canceled by the engine (task TTL, or the workflow had no target left).
    pub canceled: u64,
    /// Still waiting when the simulation stopped.
    pub unanswered: u64,
    /// Found no free worker when created (had to queue): Erlang C's "probability of
    /// waiting", counted.
    pub queued: u64,
    /// Handled within the service-level threshold.
    pub answered_within: u64,
    /// `answered_within / offered`.
    pub service_level: Option<f64>,
    /// `abandoned / offered`.
    pub abandon_rate: Option<f64>,
    /// Wait (created → accepted) of handled tasks, in seconds.
    pub wait_mean: Option<f64>,
    pub wait_p50: Option<f64>,
    pub wait_p90: Option<f64>,
    pub wait_p99: Option<f64>,
    pub wait_max: Option<f64>,
    /// Reservations of these tasks rejected, and let time out.
    pub rejected: u64,
    pub timed_out: u64,
    /// Worker time holding at least one reservation, and logged in, in seconds.
    pub busy_seconds: f64,
    pub staffed_seconds: f64,
    /// `busy_seconds / staffed_seconds`.
    pub occupancy: Option<f64>,
}

/// One queue's figures (or all queues', for [`Report::all`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueReport {
    pub name: String,
    /// Workers eligible for the queue (all workers for [`Report::all`]).
    pub workers: usize,
    pub total: Stats,
    pub intervals: Vec<Stats>,
}

/// How much work a run was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFacts {
    pub tasks: usize,
    /// Commands applied to the engine, and timer ticks.
    pub engine_commands: u64,
    pub engine_ticks: u64,
    /// Simulated time covered, including the drain after the last arrival.
    pub simulated_seconds: f64,
}

/// Everything one simulation run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// What to call the run in reports (the workflow's name unless given).
    pub label: String,
    pub workflow: String,
    pub seed: u64,
    pub interval_seconds: u32,
    pub service_level_seconds: u32,
    pub horizon_seconds: u64,
    /// All queues together (every task, including any that never reached a queue).
    pub all: QueueReport,
    pub queues: Vec<QueueReport>,
    pub run: RunFacts,
}

/// Two runs on the same arrivals, side by side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub a: Report,
    pub b: Report,
}

/// Counts and waits of a set of tasks, before they become [`Stats`].
#[derive(Default)]
struct Acc {
    s: Stats,
    waits: Vec<i64>,
}

impl Acc {
    fn add(&mut self, t: &crate::sim::TaskRec, sl_ms: i64) {
        let s = &mut self.s;
        s.offered += 1;
        s.rejected += u64::from(t.rejected);
        s.timed_out += u64::from(t.timed_out);
        if !t.reserved_on_arrival {
            s.queued += 1;
        }
        match t.outcome {
            Outcome::Handled { wait_ms } => {
                s.handled += 1;
                if wait_ms <= sl_ms {
                    s.answered_within += 1;
                }
                self.waits.push(wait_ms);
            }
            Outcome::Abandoned => s.abandoned += 1,
            Outcome::Canceled => s.canceled += 1,
            Outcome::Open => s.unanswered += 1,
        }
    }

    fn finish(mut self, start_seconds: u64, busy_ms: i64, staffed_ms: i64) -> Stats {
        let mut s = self.s;
        s.start_seconds = start_seconds;
        let share = |n: u64, d: u64| (d > 0).then(|| round(n as f64 / d as f64, 6));
        s.service_level = share(s.answered_within, s.offered);
        s.abandon_rate = share(s.abandoned, s.offered);
        self.waits.sort_unstable();
        let w = &self.waits;
        let secs = |ms: i64| round(ms as f64 / 1000.0, 3);
        if !w.is_empty() {
            s.wait_mean = Some(round(
                w.iter().map(|x| *x as f64).sum::<f64>() / w.len() as f64 / 1000.0,
                3,
            ));
            // Nearest rank: the smallest wait at least `q` of the tasks did not exceed.
            let rank = |q: f64| w[((q * w.len() as f64).ceil() as usize).clamp(1, w.len()) - 1];
            s.wait_p50 = Some(secs(rank(0.5)));
            s.wait_p90 = Some(secs(rank(0.9)));
            s.wait_p99 = Some(secs(rank(0.99)));
            s.wait_max = w.last().map(|m| secs(*m));
        }
        s.busy_seconds = secs(busy_ms);
        s.staffed_seconds = secs(staffed_ms);
        s.occupancy = (staffed_ms > 0).then(|| round(busy_ms as f64 / staffed_ms as f64, 6));
        s
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// What [`build`] needs besides the outcomes.
pub(crate) struct Frame {
    pub label: String,
    pub workflow: String,
    pub seed: u64,
    pub interval_seconds: u32,
    pub service_level_seconds: u32,
    pub horizon_seconds: u64,
    pub queue_names: Vec<String>,
}

/// Aggregates a run's outcomes into its report.
pub(crate) fn build(o: &Outcomes, f: Frame) -> Report {
    let step_ms = i64::from(f.interval_seconds) * 1000;
    let n = f
        .horizon_seconds
        .div_ceil(u64::from(f.interval_seconds))
        .max(1) as usize;
    let sl_ms = i64::from(f.service_level_seconds) * 1000;
    let new_accs = || (0..n).map(|_| Acc::default()).collect::<Vec<_>>();
    let mut all = (Acc::default(), new_accs());
    let mut per_queue: Vec<_> = f
        .queue_names
        .iter()
        .map(|_| (Acc::default(), new_accs()))
        .collect();
    for t in &o.tasks {
        let i = ((t.created / step_ms) as usize).min(n - 1);
        all.0.add(t, sl_ms);
        all.1[i].add(t, sl_ms);
        if let Some(q) = t.queue {
            per_queue[q].0.add(t, sl_ms);
            per_queue[q].1[i].add(t, sl_ms);
        }
    }
    // Occupancy of a set of workers, per interval and in total.
    let occupancy = |workers: &mut dyn Iterator<Item = usize>| {
        let mut busy = vec![0i64; n];
        let mut staffed = vec![0i64; n];
        for w in workers {
            let rec = &o.workers[w];
            for i in 0..n {
                busy[i] += rec.busy_ms.get(i).copied().unwrap_or(0);
                staffed[i] += rec.staffed_ms.get(i).copied().unwrap_or(0);
            }
        }
        (busy, staffed)
    };
    let queue = |name: String, workers: usize, acc: (Acc, Vec<Acc>), occ: (Vec<i64>, Vec<i64>)| {
        let (busy, staffed) = occ;
        let total = acc.0.finish(0, busy.iter().sum(), staffed.iter().sum());
        let intervals = acc
            .1
            .into_iter()
            .enumerate()
            .map(|(i, a)| {
                a.finish(
                    i as u64 * u64::from(f.interval_seconds),
                    busy[i],
                    staffed[i],
                )
            })
            .collect();
        QueueReport {
            name,
            workers,
            total,
            intervals,
        }
    };
    let all_occ = occupancy(&mut (0..o.workers.len()));
    let all = queue("All queues".into(), o.workers.len(), all, all_occ);
    let queues = per_queue
        .into_iter()
        .zip(&f.queue_names)
        .enumerate()
        .map(|(q, (acc, name))| {
            let members = &o.members[q];
            let occ = occupancy(&mut members.iter().copied());
            queue(name.clone(), members.len(), acc, occ)
        })
        .collect();
    Report {
        label: f.label,
        workflow: f.workflow,
        seed: f.seed,
        interval_seconds: f.interval_seconds,
        service_level_seconds: f.service_level_seconds,
        horizon_seconds: f.horizon_seconds,
        all,
        queues,
        run: RunFacts {
            tasks: o.tasks.len(),
            engine_commands: o.commands,
            engine_ticks: o.ticks,
            simulated_seconds: round(o.simulated_ms as f64 / 1000.0, 3),
        },
    }
}

/// A time of the simulation as `HH:MM`, with the day from the second day on (`d2 08:15`).
pub fn clock(seconds: u64) -> String {
    let (day, s) = (seconds / 86_400, seconds % 86_400);
    let hm = format!("{:02}:{:02}", s / 3600, s / 60 % 60);
    if day == 0 {
        hm
    } else {
        format!("d{} {hm}", day + 1)
    }
}

const CSV_HEADER: &str = "queue,interval,start_seconds,offered,handled,abandoned,canceled,unanswered,queued,answered_within_sl,service_level,abandon_rate,wait_mean,wait_p50,wait_p90,wait_p99,wait_max,rejected,timed_out,busy_seconds,staffed_seconds,occupancy";

fn csv_rows(out: &mut String, prefix: &str, r: &Report) {
    let opt = |x: Option<f64>| x.map(|v| v.to_string()).unwrap_or_default();
    let quote = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    for q in std::iter::once(&r.all).chain(&r.queues) {
        let rows = q
            .intervals
            .iter()
            .map(|s| (clock(s.start_seconds), s))
            .chain(std::iter::once(("total".to_string(), &q.total)));
        for (interval, s) in rows {
            out.push_str(&format!(
                "{prefix}{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                quote(&q.name),
                interval,
                s.start_seconds,
                s.offered,
                s.handled,
                s.abandoned,
                s.canceled,
                s.unanswered,
                s.queued,
                s.answered_within,
                opt(s.service_level),
                opt(s.abandon_rate),
                opt(s.wait_mean),
                opt(s.wait_p50),
                opt(s.wait_p90),
                opt(s.wait_p99),
                opt(s.wait_max),
                s.rejected,
                s.timed_out,
                s.busy_seconds,
                s.staffed_seconds,
                opt(s.occupancy),
            ));
        }
    }
}

/// The per-interval table as CSV: one row per queue (`All queues` first) and interval,
/// then the queue's `total` row. Empty cells where a figure has no value (no task handled).
pub fn csv(report: &Report) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    csv_rows(&mut out, "", report);
    out
}

impl Comparison {
    /// Both runs' tables in one CSV, with a first `run` column holding each run's label.
    pub fn csv(&self) -> String {
        let mut out = format!("run,{CSV_HEADER}\n");
        for r in [&self.a, &self.b] {
            let label = if r.label.contains([',', '"']) {
                format!("\"{}\",", r.label.replace('"', "\"\""))
            } else {
                format!("{},", r.label)
            };
            csv_rows(&mut out, &label, r);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_shows_the_day_after_the_first() {
        assert_eq!(clock(0), "00:00");
        assert_eq!(clock(8 * 3600 + 15 * 60), "08:15");
        assert_eq!(clock(86_400 + 3600), "d2 01:00");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let a = Acc {
            s: Stats {
                offered: 100,
                ..Stats::default()
            },
            waits: (1..=100).map(|s| s * 1000).collect(),
        };
        let s = a.finish(0, 0, 0);
        assert_eq!(s.wait_p50, Some(50.0));
        assert_eq!(s.wait_p90, Some(90.0));
        assert_eq!(s.wait_p99, Some(99.0));
        assert_eq!(s.wait_max, Some(100.0));
        assert_eq!(s.wait_mean, Some(50.5));
        assert_eq!(s.occupancy, None);
    }
}
