//! A self-contained HTML report: one file, inline CSS and inline SVG charts, no script and
//! no external URL, so it can be mailed, attached to a ticket or opened from disk.
//!
//! Charts are drawn here as SVG text (a plotting library would be a heavy dependency for
//! a few lines and bars). Intervals in which nothing happened — no task offered, no worker
//! logged in, typically the night — are left out at both ends of the day.

use std::fmt::Write as _;

use crate::report::{Comparison, QueueReport, Report, Stats, clock};

const A_COLOR: &str = "#1f6feb";
const B_COLOR: &str = "#d9480f";
const PALETTE: &[&str] = &[
    "#1f6feb", "#d9480f", "#2f9e44", "#9c36b5", "#f59f00", "#0c8599", "#c2255c", "#495057",
];

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1b1f24;margin:0;background:#f6f8fa}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#57606a;margin:0 0 16px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:10px 14px;min-width:120px}
.card b{display:block;font-size:20px}.card span{color:#57606a;font-size:12px}
.chart{background:#fff;border:1px solid #d0d7de;border-radius:6px;margin:10px 0;padding:4px}
table{border-collapse:collapse;background:#fff;width:100%;font-size:13px;font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto}
th,td{border:1px solid #d0d7de;padding:3px 6px;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
th{background:#eaeef2}
.better{color:#1a7f37}.worse{color:#cf222e}
details{margin:10px 0}summary{cursor:pointer;font-weight:600}
footer{color:#57606a;font-size:12px;margin-top:28px}
";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// How a chart's values are shown.
#[derive(Clone, Copy, PartialEq)]
enum Unit {
    Seconds,
    /// Shares, drawn as 0–100%.
    Percent,
    Count,
}

impl Unit {
    fn show(self, v: f64) -> String {
        match self {
            Unit::Seconds => format!("{v:.0} s"),
            Unit::Percent => format!("{:.0}%", v * 100.0),
            Unit::Count => format!("{v:.0}"),
        }
    }
}

struct Series<'a> {
    name: String,
    color: &'a str,
    dashed: bool,
    values: Vec<Option<f64>>,
}

const W: f64 = 900.0;
const H: f64 = 262.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 34.0;

/// The smallest "round" number at least `x` whose quarters are round too (the grid has
/// four steps): 1, 1.2, 1.6, 2, 2.4, 3, 4, 5, 6 or 8 × 10ⁿ.
fn nice_ceiling(x: f64) -> f64 {
    if x <= 0.0 || !x.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(x.log10().floor());
    [1.0, 1.2, 1.6, 2.0, 2.4, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|v| *v >= x * 0.999_999)
        .unwrap_or(10.0 * p)
}

/// The x axis: each interval's label, and which of them are written under the axis (on
/// round times — every hour, every two hours, … — at most 13 of them).
struct Axis {
    labels: Vec<String>,
    marked: Vec<bool>,
}

fn axis(intervals: &[Stats], interval_seconds: u32) -> Axis {
    let step = u64::from(interval_seconds.max(1));
    let starts: Vec<u64> = intervals.iter().map(|s| s.start_seconds).collect();
    let every = [
        900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 172_800, 604_800,
    ]
    .into_iter()
    .filter(|e| e % step == 0)
    .find(|e| starts.iter().filter(|s| *s % e == 0).count() <= 13)
    .unwrap_or(u64::MAX);
    let mut marked: Vec<bool> = starts.iter().map(|s| s % every == 0).collect();
    if !marked.contains(&true) {
        // Odd interval lengths: fall back to every k-th interval.
        let k = starts.len().div_ceil(12).max(1);
        marked = (0..starts.len()).map(|i| i % k == 0).collect();
    }
    Axis {
        labels: starts.iter().map(|s| clock(*s)).collect(),
        marked,
    }
}

/// Axes, grid, interval labels and legend of a chart whose y axis runs from 0 to `max`.
fn frame(
    out: &mut String,
    title: &str,
    axis: &Axis,
    max: f64,
    unit: Unit,
    legend: &[(&str, &str, bool)],
) {
    let _ = write!(
        out,
        r#"<div class="chart"><svg viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="{t}"><text x="{LEFT}" y="18" font-size="13" font-weight="600">{t}</text>"#,
        t = esc(title)
    );
    let (plot_h, plot_w) = (H - TOP - BOTTOM, W - LEFT - RIGHT);
    for k in 0..=4 {
        let v = max * f64::from(k) / 4.0;
        let y = TOP + plot_h * (1.0 - f64::from(k) / 4.0);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}" stroke="#d0d7de" stroke-width="1"/><text x="{tx}" y="{ty:.1}" font-size="11" text-anchor="end" fill="#57606a">{l}</text>"##,
            x2 = LEFT + plot_w,
            tx = LEFT - 6.0,
            ty = y + 4.0,
            l = unit.show(v)
        );
    }
    let n = axis.labels.len().max(1);
    for (i, l) in axis.labels.iter().enumerate() {
        if !axis.marked[i] {
            continue;
        }
        let x = LEFT + plot_w * (i as f64 + 0.5) / n as f64;
        let _ = write!(
            out,
            r##"<text x="{x:.1}" y="{y}" font-size="11" text-anchor="middle" fill="#57606a">{l}</text>"##,
            y = H - BOTTOM + 16.0,
            l = esc(l)
        );
    }
    // The legend goes right of the title, or on a line of its own when they would overlap
    // (widths estimated from character counts: there is no text measurement in SVG text).
    let width = |name: &str| 7.0 * name.chars().count() as f64 + 30.0;
    let legend_width: f64 = legend.iter().map(|(n, _, _)| width(n)).sum();
    let title_end = LEFT + 7.8 * title.chars().count() as f64;
    let y = if W - RIGHT - legend_width > title_end + 12.0 {
        18.0
    } else {
        36.0
    };
    let mut x = W - RIGHT;
    for (name, color, dashed) in legend.iter().rev() {
        x -= width(name);
        let dash = if *dashed {
            r#" stroke-dasharray="4 3""#
        } else {
            ""
        };
        let _ = write!(
            out,
            r#"<line x1="{x:.1}" x2="{x2:.1}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="3"{dash}/><text x="{tx:.1}" y="{y}" font-size="12">{n}</text>"#,
            x2 = x + 16.0,
            ly = y - 4.0,
            tx = x + 20.0,
            n = esc(name)
        );
    }
}

/// A line chart: one polyline per series, broken where a value is missing.
fn line_chart(title: &str, axis: &Axis, series: &[Series<'_>], unit: Unit) -> String {
    let mut out = String::new();
    let top = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0f64, |m, v| m.max(*v));
    let max = if unit == Unit::Percent {
        1.0
    } else {
        nice_ceiling(top)
    };
    let legend: Vec<(&str, &str, bool)> = series
        .iter()
        .map(|s| (s.name.as_str(), s.color, s.dashed))
        .collect();
    frame(&mut out, title, axis, max, unit, &legend);
    let (plot_h, plot_w) = (H - TOP - BOTTOM, W - LEFT - RIGHT);
    let n = axis.labels.len().max(1) as f64;
    for s in series {
        let mut d = String::new();
        let mut pen = false;
        for (i, v) in s.values.iter().enumerate() {
            match v {
                Some(v) => {
                    let x = LEFT + plot_w * (i as f64 + 0.5) / n;
                    let y = TOP + plot_h * (1.0 - (v / max).clamp(0.0, 1.0));
                    let _ = write!(d, "{}{x:.1},{y:.1} ", if pen { "L" } else { "M" });
                    pen = true;
                }
                None => pen = false,
            }
        }
        let dash = if s.dashed {
            r#" stroke-dasharray="5 4""#
        } else {
            ""
        };
        let _ = write!(
            out,
            r#"<path d="{d}" fill="none" stroke="{c}" stroke-width="2" stroke-linejoin="round"{dash}><title>{t}</title></path>"#,
            c = s.color,
            t = esc(&s.name)
        );
    }
    out.push_str("</svg></div>\n");
    out
}

/// Stacked bars: each interval's values of the series on top of each other.
fn bar_chart(title: &str, axis: &Axis, series: &[Series<'_>]) -> String {
    let mut out = String::new();
    let n = axis.labels.len().max(1);
    let top = (0..n)
        .map(|i| {
            series
                .iter()
                .map(|s| s.values.get(i).copied().flatten().unwrap_or(0.0))
                .sum::<f64>()
        })
        .fold(0.0f64, f64::max);
    let max = nice_ceiling(top);
    let legend: Vec<(&str, &str, bool)> = series
        .iter()
        .map(|s| (s.name.as_str(), s.color, false))
        .collect();
    frame(&mut out, title, axis, max, Unit::Count, &legend);
    let (plot_h, plot_w) = (H - TOP - BOTTOM, W - LEFT - RIGHT);
    let slot = plot_w / n as f64;
    for (i, label) in axis.labels.iter().enumerate() {
        let mut base = 0.0;
        for s in series {
            let v = s.values.get(i).copied().flatten().unwrap_or(0.0);
            if v <= 0.0 {
                continue;
            }
            let (y0, y1) = (
                TOP + plot_h * (1.0 - base / max),
                TOP + plot_h * (1.0 - (base + v) / max),
            );
            let _ = write!(
                out,
                r#"<rect x="{x:.1}" y="{y1:.1}" width="{w:.1}" height="{h:.1}" fill="{c}"><title>{l} {name}: {v}</title></rect>"#,
                x = LEFT + slot * i as f64 + slot * 0.1,
                w = slot * 0.8,
                h = y0 - y1,
                c = s.color,
                l = esc(label),
                name = esc(&s.name)
            );
            base += v;
        }
    }
    out.push_str("</svg></div>\n");
    out
}

/// The intervals worth showing: from the first to the last in which any of `runs` had a
/// task offered or a worker logged in.
fn shown(runs: &[&Report]) -> std::ops::Range<usize> {
    let n = runs
        .iter()
        .map(|r| r.all.intervals.len())
        .max()
        .unwrap_or(0);
    let busy = |i: usize| {
        runs.iter().any(|r| {
            r.all
                .intervals
                .get(i)
                .is_some_and(|s| s.offered > 0 || s.staffed_seconds > 0.0)
        })
    };
    match ((0..n).find(|i| busy(*i)), (0..n).rev().find(|i| busy(*i))) {
        (Some(lo), Some(hi)) => lo..hi + 1,
        _ => 0..n,
    }
}

fn values(
    q: &QueueReport,
    range: &std::ops::Range<usize>,
    f: impl Fn(&Stats) -> Option<f64>,
) -> Vec<Option<f64>> {
    q.intervals[range.clone()].iter().map(f).collect()
}

fn pct(x: Option<f64>) -> String {
    x.map(|v| format!("{:.1}%", v * 100.0))
        .unwrap_or("–".into())
}

fn secs(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.1} s")).unwrap_or("–".into())
}

fn head(out: &mut String, title: &str) {
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body><main>",
        esc(title)
    );
}

fn foot(out: &mut String, r: &Report) {
    let _ = writeln!(
        out,
        "<footer>Taskyard simulator: the real routing engine under simulated time. Seed {}, {} tasks, {} engine commands, simulated until {}. Wait = task created → reservation accepted; service level = share of offered tasks answered within {} s; occupancy = time holding a reservation ÷ time logged in. See docs/simulator.md.</footer></main></body></html>",
        r.seed,
        r.run.tasks,
        r.run.engine_commands,
        clock(r.run.simulated_seconds as u64),
        r.service_level_seconds
    );
}

fn card(out: &mut String, value: &str, label: &str) {
    let _ = write!(
        out,
        "<div class=\"card\"><b>{}</b><span>{}</span></div>",
        esc(value),
        esc(label)
    );
}

fn queue_table(out: &mut String, r: &Report) {
    out.push_str("<div class=\"scroll\"><table><tr><th>Queue</th><th>Workers</th><th>Offered</th><th>Handled</th><th>Abandoned</th><th>Service level</th><th>Wait mean</th><th>p50</th><th>p90</th><th>p99</th><th>Occupancy</th></tr>\n");
    for q in r.queues.iter().chain(std::iter::once(&r.all)) {
        let s = &q.total;
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&q.name),
            q.workers,
            s.offered,
            s.handled,
            s.abandoned,
            pct(s.abandon_rate),
            pct(s.service_level),
            secs(s.wait_mean),
            secs(s.wait_p50),
            secs(s.wait_p90),
            secs(s.wait_p99),
            pct(s.occupancy)
        );
    }
    out.push_str("</table></div>\n");
}

fn interval_table(out: &mut String, q: &QueueReport, range: &std::ops::Range<usize>) {
    let _ = writeln!(
        out,
        "<details><summary>{} per interval</summary><div class=\"scroll\"><table><tr><th>Interval</th><th>Offered</th><th>Handled</th><th>Abandoned</th><th>Service level</th><th>Wait p50</th><th>p90</th><th>p99</th><th>Occupancy</th></tr>",
        esc(&q.name)
    );
    for s in &q.intervals[range.clone()] {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            clock(s.start_seconds),
            s.offered,
            s.handled,
            s.abandoned,
            pct(s.service_level),
            secs(s.wait_p50),
            secs(s.wait_p90),
            secs(s.wait_p99),
            pct(s.occupancy)
        );
    }
    out.push_str("</table></div></details>\n");
}

/// The report of one run as a self-contained HTML page.
pub fn html(r: &Report) -> String {
    let mut out = String::new();
    let title = format!("Simulation: {}", r.label);
    head(&mut out, &title);
    let _ = write!(
        out,
        "<h1>{}</h1><p class=\"sub\">Workflow {} · {} tasks · {} workers · {}-minute intervals · service level within {} s</p>\n<div class=\"cards\">",
        esc(&title),
        esc(&r.workflow),
        r.all.total.offered,
        r.all.workers,
        r.interval_seconds / 60,
        r.service_level_seconds
    );
    let t = &r.all.total;
    card(
        &mut out,
        &pct(t.service_level),
        &format!("answered within {} s", r.service_level_seconds),
    );
    card(&mut out, &secs(t.wait_mean), "mean wait");
    card(&mut out, &secs(t.wait_p90), "wait p90");
    card(&mut out, &pct(t.abandon_rate), "abandoned");
    card(&mut out, &pct(t.occupancy), "occupancy");
    out.push_str("</div>\n");

    let range = shown(&[r]);
    let ax = axis(&r.all.intervals[range.clone()], r.interval_seconds);
    out.push_str("<h2>All queues</h2>\n");
    out.push_str(&bar_chart(
        "Tasks per interval (by creation)",
        &ax,
        &[
            Series {
                name: "handled".into(),
                color: "#2f9e44",
                dashed: false,
                values: values(&r.all, &range, |s| Some(s.handled as f64)),
            },
            Series {
                name: "abandoned".into(),
                color: "#e03131",
                dashed: false,
                values: values(&r.all, &range, |s| Some(s.abandoned as f64)),
            },
            Series {
                name: "other".into(),
                color: "#adb5bd",
                dashed: false,
                values: values(&r.all, &range, |s| Some((s.canceled + s.unanswered) as f64)),
            },
        ],
    ));
    out.push_str(&line_chart(
        "Wait (created → accepted)",
        &ax,
        &[
            Series {
                name: "p50".into(),
                color: PALETTE[0],
                dashed: false,
                values: values(&r.all, &range, |s| s.wait_p50),
            },
            Series {
                name: "p90".into(),
                color: PALETTE[1],
                dashed: false,
                values: values(&r.all, &range, |s| s.wait_p90),
            },
            Series {
                name: "p99".into(),
                color: PALETTE[3],
                dashed: true,
                values: values(&r.all, &range, |s| s.wait_p99),
            },
        ],
        Unit::Seconds,
    ));
    let by_queue = |f: fn(&Stats) -> Option<f64>| -> Vec<Series<'static>> {
        r.queues
            .iter()
            .enumerate()
            .map(|(i, q)| Series {
                name: q.name.clone(),
                color: PALETTE[i % PALETTE.len()],
                dashed: i >= PALETTE.len(),
                values: values(q, &range, f),
            })
            .collect()
    };
    out.push_str(&line_chart(
        &format!(
            "Service level (answered within {} s), by queue",
            r.service_level_seconds
        ),
        &ax,
        &by_queue(|s| s.service_level),
        Unit::Percent,
    ));
    out.push_str(&line_chart(
        "Wait p90, by queue",
        &ax,
        &by_queue(|s| s.wait_p90),
        Unit::Seconds,
    ));
    out.push_str(&line_chart(
        "Occupancy, by queue's workers",
        &ax,
        &by_queue(|s| s.occupancy),
        Unit::Percent,
    ));
    out.push_str("<h2>Queues, whole run</h2>\n");
    queue_table(&mut out, r);
    out.push_str("<h2>Intervals</h2>\n");
    for q in std::iter::once(&r.all).chain(&r.queues) {
        interval_table(&mut out, q, &range);
    }
    foot(&mut out, r);
    out
}

/// A figure of the comparison: its name, how it is read from [`Stats`] and shown, how a
/// difference is shown, and whether lower is better (`None`: neither).
struct Figure {
    name: &'static str,
    get: fn(&Stats) -> Option<f64>,
    show: fn(Option<f64>) -> String,
    change: fn(f64) -> String,
    lower_is_better: Option<bool>,
}

fn count(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.0}"))
}

const FIGURES: &[Figure] = &[
    Figure {
        name: "Offered",
        get: |s| Some(s.offered as f64),
        show: count,
        change: |d| format!("{d:+.0}"),
        lower_is_better: None,
    },
    Figure {
        name: "Handled",
        get: |s| Some(s.handled as f64),
        show: count,
        change: |d| format!("{d:+.0}"),
        lower_is_better: Some(false),
    },
    Figure {
        name: "Abandoned",
        get: |s| s.abandon_rate,
        show: pct,
        change: |d| format!("{:+.1} pts", d * 100.0),
        lower_is_better: Some(true),
    },
    Figure {
        name: "Service level",
        get: |s| s.service_level,
        show: pct,
        change: |d| format!("{:+.1} pts", d * 100.0),
        lower_is_better: Some(false),
    },
    Figure {
        name: "Wait mean",
        get: |s| s.wait_mean,
        show: secs,
        change: |d| format!("{d:+.1} s"),
        lower_is_better: Some(true),
    },
    Figure {
        name: "Wait p50",
        get: |s| s.wait_p50,
        show: secs,
        change: |d| format!("{d:+.1} s"),
        lower_is_better: Some(true),
    },
    Figure {
        name: "Wait p90",
        get: |s| s.wait_p90,
        show: secs,
        change: |d| format!("{d:+.1} s"),
        lower_is_better: Some(true),
    },
    Figure {
        name: "Wait p99",
        get: |s| s.wait_p99,
        show: secs,
        change: |d| format!("{d:+.1} s"),
        lower_is_better: Some(true),
    },
    Figure {
        name: "Occupancy",
        get: |s| s.occupancy,
        show: pct,
        change: |d| format!("{:+.1} pts", d * 100.0),
        lower_is_better: None,
    },
];

/// Whether B's value is better or worse than A's for `f`: only when the difference shows
/// in the figures as written (a tenth of a second or of a point is noise to a reader).
fn verdict(f: &Figure, a: Option<f64>, b: Option<f64>) -> &'static str {
    match (a, b, f.lower_is_better) {
        (Some(x), Some(y), Some(low)) if (f.show)(a) != (f.show)(b) => {
            if (y < x) == low {
                "better"
            } else {
                "worse"
            }
        }
        _ => "",
    }
}

/// Two runs on the same arrivals as one self-contained HTML page: figures side by side,
/// B's marked better or worse than A's, charts of both.
pub fn html_comparison(c: &Comparison) -> String {
    let (a, b) = (&c.a, &c.b);
    let mut out = String::new();
    let title = format!("Simulation: {} vs {}", a.label, b.label);
    head(&mut out, &title);
    let _ = writeln!(
        out,
        "<h1>{}</h1><p class=\"sub\">The same {} tasks (seed {}) through both · {}-minute intervals · service level within {} s · <b>A</b> = {}, <b>B</b> = {}</p>",
        esc(&title),
        a.all.total.offered,
        a.seed,
        a.interval_seconds / 60,
        a.service_level_seconds,
        esc(&a.label),
        esc(&b.label)
    );
    let _ = writeln!(
        out,
        "<h2>All queues, whole run</h2><div class=\"scroll\"><table><tr><th>Figure</th><th>A: {}</th><th>B: {}</th><th>B − A</th></tr>",
        esc(&a.label),
        esc(&b.label)
    );
    for f in FIGURES {
        let (va, vb) = ((f.get)(&a.all.total), (f.get)(&b.all.total));
        let class = verdict(f, va, vb);
        let change = va.zip(vb).map_or("–".into(), |(x, y)| (f.change)(y - x));
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"{class}\">{}</td><td class=\"{class}\">{change}</td></tr>",
            f.name,
            (f.show)(va),
            (f.show)(vb)
        );
    }
    out.push_str("</table></div>\n");
    // Queues present in either run, A's order first.
    let mut names: Vec<&str> = a.queues.iter().map(|q| q.name.as_str()).collect();
    for q in &b.queues {
        if !names.contains(&q.name.as_str()) {
            names.push(&q.name);
        }
    }
    let find = |r: &'_ Report, name: &str| {
        r.queues
            .iter()
            .find(|q| q.name == name)
            .map(|q| q.total.clone())
    };
    let per_queue = [0usize, 2, 3, 4, 6, 8];
    out.push_str(
        "<h2>By queue, whole run</h2><div class=\"scroll\"><table><tr><th rowspan=\"2\">Queue</th>",
    );
    for &k in &per_queue {
        let _ = write!(out, "<th colspan=\"2\">{}</th>", FIGURES[k].name);
    }
    out.push_str("</tr><tr>");
    for _ in &per_queue {
        out.push_str("<th>A</th><th>B</th>");
    }
    out.push_str("</tr>\n");
    for name in &names {
        let (sa, sb) = (find(a, name), find(b, name));
        let _ = write!(out, "<tr><td>{}</td>", esc(name));
        for &k in &per_queue {
            let f = &FIGURES[k];
            let (va, vb) = (sa.as_ref().and_then(f.get), sb.as_ref().and_then(f.get));
            let _ = write!(
                out,
                "<td>{}</td><td class=\"{}\">{}</td>",
                (f.show)(va),
                verdict(f, va, vb),
                (f.show)(vb)
            );
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table></div>\n");

    let range = shown(&[a, b]);
    let ax = axis(&a.all.intervals[range.clone()], a.interval_seconds);
    let pair = |f: fn(&Stats) -> Option<f64>, qa: &QueueReport, qb: &QueueReport| {
        vec![
            Series {
                name: a.label.clone(),
                color: A_COLOR,
                dashed: false,
                values: values(qa, &range, f),
            },
            Series {
                name: b.label.clone(),
                color: B_COLOR,
                dashed: false,
                values: values(qb, &range, f),
            },
        ]
    };
    out.push_str("<h2>All queues</h2>\n");
    out.push_str(&bar_chart(
        "Tasks offered per interval (the same in both runs)",
        &ax,
        &[Series {
            name: "offered".into(),
            color: "#868e96",
            dashed: false,
            values: values(&a.all, &range, |s| Some(s.offered as f64)),
        }],
    ));
    for (title, f, unit) in [
        (
            "Wait p90",
            (|s: &Stats| s.wait_p90) as fn(&Stats) -> Option<f64>,
            Unit::Seconds,
        ),
        ("Wait mean", |s: &Stats| s.wait_mean, Unit::Seconds),
        ("Service level", |s: &Stats| s.service_level, Unit::Percent),
        ("Abandoned", |s: &Stats| s.abandon_rate, Unit::Percent),
        ("Occupancy", |s: &Stats| s.occupancy, Unit::Percent),
    ] {
        out.push_str(&line_chart(title, &ax, &pair(f, &a.all, &b.all), unit));
    }
    for qa in &a.queues {
        let Some(qb) = b.queues.iter().find(|q| q.name == qa.name) else {
            continue;
        };
        let _ = writeln!(out, "<h2>{}</h2>", esc(&qa.name));
        out.push_str(&line_chart(
            "Wait p90",
            &ax,
            &pair(|s| s.wait_p90, qa, qb),
            Unit::Seconds,
        ));
        out.push_str(&line_chart(
            "Service level",
            &ax,
            &pair(|s| s.service_level, qa, qb),
            Unit::Percent,
        ));
    }
    foot(&mut out, a);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 8.0);
        assert_eq!(nice_ceiling(12.0), 12.0);
        assert_eq!(nice_ceiling(115.0), 120.0);
        assert_eq!(nice_ceiling(250.0), 300.0);
        assert_eq!(nice_ceiling(0.03), 0.03);
    }

    #[test]
    fn the_axis_is_labelled_on_round_times() {
        let stats = |from: u64, n: u64, step: u64| -> Vec<Stats> {
            (0..n)
                .map(|i| Stats {
                    start_seconds: from + i * step,
                    ..Stats::default()
                })
                .collect()
        };
        // 07:45 to 20:00 in quarters: every hour.
        let a = axis(&stats(7 * 3600 + 2700, 50, 900), 900);
        let marked: Vec<&str> = a
            .labels
            .iter()
            .zip(&a.marked)
            .filter(|(_, m)| **m)
            .map(|(l, _)| l.as_str())
            .collect();
        assert_eq!(marked.first(), Some(&"08:00"));
        assert_eq!(marked.len(), 13);
        // A whole day in quarters: every two hours.
        assert_eq!(
            axis(&stats(0, 96, 900), 900)
                .marked
                .iter()
                .filter(|m| **m)
                .count(),
            12
        );
        // Seventeen one-day intervals: some labels still.
        assert!(
            axis(&stats(0, 17, 86_400), 86_400)
                .marked
                .iter()
                .any(|m| *m)
        );
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
