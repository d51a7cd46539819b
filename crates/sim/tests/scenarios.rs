//! The simulator's behaviour on small scenarios whose outcome is known exactly (recorded
//! arrivals against one or two workers), and on larger ones whose outcome is known in
//! direction (patience reduces what is handled, a bigger queue waits less, workers off shift
//! take nothing), plus determinism and the report formats.

use serde_json::json;
use taskyard_sim::{
    Arrival, Arrivals, Behaviour, Definition, Dist, MixEntry, Model, Options, Recorded, Report,
    Source,
};

/// Workers `{name, count, skill, schedule?}` and queues by skill, one workflow per entry of
/// `workflows`: (name, queue of every task).
fn definition(
    groups: serde_json::Value,
    queues: &[(&str, &str)],
    workflows: &[(&str, &str)],
) -> Definition {
    let queues: Vec<_> = queues
        .iter()
        .map(|(name, target)| json!({"friendly_name": name, "target_workers": target}))
        .collect();
    let workflows: Vec<_> = workflows
        .iter()
        .map(|(name, queue)| {
            json!({"friendly_name": name, "configuration":
                {"task_routing": {"filters": [], "default_filter": {"queue": queue}}}})
        })
        .collect();
    serde_json::from_value(
        json!({"workers": groups, "task_queues": queues, "workflows": workflows}),
    )
    .expect("definition")
}

fn one_worker(count: u32) -> Definition {
    definition(
        json!([{"friendly_name": "w", "count": count, "attributes": {"skill": "a"}}]),
        &[("A", "skill == 'a'")],
        &[("Flow", "A")],
    )
}

/// Tasks at the given seconds with the given handle time (and patience).
fn recorded(tasks: &[(f64, f64, Option<f64>)], behaviour: Behaviour) -> Arrivals {
    Arrivals {
        source: Source::Recorded(Recorded {
            tasks: tasks
                .iter()
                .map(|(at, handle, patience)| Arrival {
                    at: *at,
                    attributes: json!({}),
                    handle: Some(*handle),
                    patience: *patience,
                    channel: None,
                    priority: None,
                })
                .collect(),
            handle: None,
            patience: None,
        }),
        behaviour,
    }
}

fn run(def: &Definition, arrivals: &Arrivals) -> Report {
    taskyard_sim::run(def, arrivals, &Options::default()).expect("runs")
}

#[test]
fn one_worker_serves_recorded_tasks_in_order_with_exact_waits() {
    // Handle 30 s each, arriving every 10 s: waits 0, 20, 40 (FIFO, back to back).
    let r = run(
        &one_worker(1),
        &recorded(
            &[(0.0, 30.0, None), (10.0, 30.0, None), (20.0, 30.0, None)],
            Behaviour::default(),
        ),
    );
    let t = &r.queues[0].total;
    assert_eq!((t.offered, t.handled, t.queued), (3, 3, 2));
    assert_eq!(t.wait_mean, Some(20.0));
    assert_eq!((t.wait_p50, t.wait_max), (Some(20.0), Some(40.0)));
    assert_eq!(
        t.answered_within, 2,
        "0 s and 20 s are within the 20 s threshold"
    );
    // Busy from 0 to 90 s of the first 15 minutes.
    assert_eq!(r.queues[0].intervals[0].busy_seconds, 90.0);
    assert_eq!(r.queues[0].intervals[0].staffed_seconds, 900.0);
}

#[test]
fn accept_delay_and_wrapup_add_to_the_waits() {
    let behaviour = Behaviour {
        accept_delay: Some(Dist::Fixed(5.0)),
        wrapup: Some(Dist::Fixed(20.0)),
        ..Behaviour::default()
    };
    // First: rings 5 s, accepted at 5, handled to 35, wraps to 55. Second (at 10): offered
    // at 55, accepted at 60: waited 50 s.
    let r = run(
        &one_worker(1),
        &recorded(&[(0.0, 30.0, None), (10.0, 30.0, None)], behaviour),
    );
    let t = &r.queues[0].total;
    assert_eq!(t.handled, 2);
    assert_eq!((t.wait_p50, t.wait_max), (Some(5.0), Some(50.0)));
    // Busy (ringing, handling, wrapping) from 0 to 55 s and from 55 to 110 s.
    assert_eq!(r.all.intervals[0].busy_seconds, 110.0);
}

#[test]
fn a_caller_out_of_patience_abandons_and_frees_the_queue() {
    // The second caller gives up at 25 s, before the worker is free at 30: the third is
    // answered at 30 instead of 60.
    let r = run(
        &one_worker(1),
        &recorded(
            &[
                (0.0, 30.0, None),
                (5.0, 30.0, Some(20.0)),
                (10.0, 30.0, None),
            ],
            Behaviour::default(),
        ),
    );
    let t = &r.queues[0].total;
    assert_eq!((t.handled, t.abandoned), (2, 1));
    assert_eq!(t.wait_max, Some(20.0));
    assert_eq!(t.abandon_rate, Some(0.333333));
}

#[test]
fn rejected_tasks_are_not_offered_to_the_same_workers_again() {
    let behaviour = Behaviour {
        reject_probability: 1.0,
        ..Behaviour::default()
    };
    let r = run(&one_worker(2), &recorded(&[(0.0, 30.0, None)], behaviour));
    let t = &r.queues[0].total;
    assert_eq!((t.handled, t.rejected, t.unanswered), (0, 2, 1));
}

#[test]
fn workers_who_let_reservations_time_out_come_back_later() {
    // Every third reservation rings out (the workflow's 120 s timeout) and sends the worker
    // to Offline for 60 s; without coming back the two workers would soon all be offline.
    let behaviour = Behaviour {
        no_answer_probability: 0.3,
        ..Behaviour::default()
    };
    let tasks: Vec<_> = (0..200)
        .map(|i| (f64::from(i) * 60.0, 20.0, None))
        .collect();
    let r = run(&one_worker(2), &recorded(&tasks, behaviour));
    let t = &r.queues[0].total;
    assert!(t.timed_out > 30, "{t:?}");
    assert_eq!(t.handled, 200, "{t:?}");
}

fn synthetic(per_hour: Vec<f64>, handle: f64, patience: Option<f64>) -> Arrivals {
    Arrivals {
        source: Source::Model(Model {
            interval_seconds: 900,
            per_hour,
            mix: vec![MixEntry {
                weight: 1.0,
                attributes: json!({"topic": "billing"}),
                handle: None,
                patience: None,
                channel: None,
                priority: None,
            }],
            handle: Dist::Exponential { mean: handle },
            patience: patience.map(|mean| Dist::Exponential { mean }),
        }),
        behaviour: Behaviour::default(),
    }
}

#[test]
fn the_same_seed_gives_the_same_report_and_another_seed_does_not() {
    let def = one_worker(8);
    let mut arrivals = synthetic(vec![400.0; 16], 60.0, Some(90.0));
    arrivals.behaviour = Behaviour {
        accept_delay: Some(Dist::Uniform { min: 1.0, max: 6.0 }),
        reject_probability: 0.05,
        no_answer_probability: 0.02,
        away_after_no_answer: None,
        wrapup: Some(Dist::Lognormal {
            mean: 15.0,
            sd: 10.0,
        }),
    };
    let opts = |seed| Options {
        seed,
        ..Options::default()
    };
    let json = |seed| {
        let r = taskyard_sim::run(&def, &arrivals, &opts(seed)).expect("runs");
        serde_json::to_string(&r).expect("serializes")
    };
    let first = json(7);
    assert_eq!(first, json(7));
    assert_ne!(first, json(8));
}

#[test]
fn patience_reduces_what_is_handled() {
    // 10 agents offered 12 Erlangs: the queue grows without bound unless callers give up.
    let def = one_worker(10);
    let patient = run(&def, &synthetic(vec![720.0; 8], 60.0, None));
    let impatient = run(&def, &synthetic(vec![720.0; 8], 60.0, Some(30.0)));
    let (p, i) = (&patient.queues[0].total, &impatient.queues[0].total);
    assert_eq!(
        p.offered, i.offered,
        "the same seed gives the same arrivals"
    );
    assert_eq!(p.abandoned, 0);
    assert!(i.abandoned > i.offered / 10, "{i:?}");
    assert_eq!(i.handled + i.abandoned, i.offered);
    // The patient run's backlog is all handled after the period; the impatient callers who
    // stay wait far less.
    assert_eq!(p.handled, p.offered);
    assert!(i.handled < p.handled, "{} vs {}", i.handled, p.handled);
    assert!(i.wait_mean < p.wait_mean);
}

#[test]
fn a_workflow_routing_to_a_bigger_queue_waits_less() {
    // Six agents know billing, six more only general; "Billing only" sends every task to
    // the six, "Everyone" to all twelve.
    let def = definition(
        json!([
            {"friendly_name": "billing", "count": 6, "attributes": {"skills": ["billing", "general"]}},
            {"friendly_name": "general", "count": 6, "attributes": {"skills": ["general"]}}
        ]),
        &[
            ("Billing", "skills HAS 'billing'"),
            ("Everyone", "skills HAS 'general'"),
        ],
        &[("Billing only", "Billing"), ("Everyone", "Everyone")],
    );
    let arrivals = synthetic(vec![300.0; 16], 60.0, Some(120.0));
    let c = taskyard_sim::compare_workflows(
        &def,
        "Billing only",
        "Everyone",
        &arrivals,
        &Options::default(),
    )
    .expect("runs");
    let (a, b) = (&c.a.all.total, &c.b.all.total);
    assert_eq!(
        (c.a.label.as_str(), c.b.label.as_str()),
        ("Billing only", "Everyone")
    );
    assert_eq!(a.offered, b.offered);
    assert!(
        b.wait_mean < a.wait_mean,
        "{:?} vs {:?}",
        b.wait_mean,
        a.wait_mean
    );
    assert!(b.service_level > a.service_level);
    assert!(b.abandoned < a.abandoned);
    // The queues are reported by name in both runs; only the queue the workflow used has
    // tasks.
    assert_eq!(c.a.queues[0].total.offered, a.offered);
    assert_eq!(c.b.queues[1].total.offered, b.offered);
    assert_eq!(c.b.queues[0].workers, 6);
    assert_eq!(c.b.queues[1].workers, 12);
}

#[test]
fn workers_off_shift_take_nothing() {
    // Four agents on shift 02:00–04:00 only; tasks arrive from midnight to 06:00.
    let def = definition(
        json!([{"friendly_name": "night", "count": 4, "attributes": {"skill": "a"},
                "schedule": [{"from": "02:00", "to": "04:00", "activity": "Available"}]}]),
        &[("A", "skill == 'a'")],
        &[("Flow", "A")],
    );
    let r = run(&def, &synthetic(vec![40.0; 24], 60.0, None));
    let q = &r.queues[0];
    for (i, s) in q.intervals.iter().enumerate() {
        match i {
            8..16 => assert_eq!(s.staffed_seconds, 4.0 * 900.0, "interval {i}: {s:?}"),
            // At 04:00 they log off, finishing the calls they are on.
            16 => assert!(s.staffed_seconds < 4.0 * 300.0, "interval {i}: {s:?}"),
            _ => assert_eq!(s.staffed_seconds, 0.0, "interval {i}: {s:?}"),
        }
        if i < 8 {
            // Created before the shift: answered at 02:00 at the earliest.
            let to_shift = (8 - i as u64 - 1) * 900;
            assert!(
                s.wait_p50.is_none_or(|w| w >= to_shift as f64),
                "interval {i}: {s:?}"
            );
        }
        if i >= 16 {
            assert_eq!(s.handled, 0, "interval {i}: {s:?}");
            assert_eq!(s.unanswered, s.offered, "interval {i}: {s:?}");
        }
    }
    assert!(q.intervals[..8].iter().map(|s| s.handled).sum::<u64>() > 0);
}

#[test]
fn csv_arrivals_run_like_recorded_ones() {
    let text = "created_seconds,attributes_json,handle_seconds,patience_seconds\n\
                0,\"{\"\"topic\"\":\"\"x\"\"}\",30,\n\
                10,{},30,\n";
    let from_csv = Arrivals::from_csv(text, Behaviour::default()).expect("parses");
    let r = run(&one_worker(1), &from_csv);
    assert_eq!(r.all.total.handled, 2);
    assert_eq!(r.all.total.wait_max, Some(20.0));
}

#[test]
fn the_reports_come_as_csv_and_self_contained_html() {
    let def = definition(
        json!([{"friendly_name": "w", "count": 3, "attributes": {"skill": "a"}}]),
        &[("A", "skill == 'a'"), ("B <unused>", "skill == 'b'")],
        &[("Flow", "A")],
    );
    let arrivals = synthetic(vec![100.0; 8], 60.0, Some(60.0));
    let r = run(&def, &arrivals);
    let csv = taskyard_sim::csv(&r);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("queue,interval,start_seconds,offered"));
    // (All queues + 2 queues) × (8 intervals + total).
    assert_eq!(lines.len(), 1 + 3 * 9);
    assert!(lines[9].starts_with("All queues,total,0,"), "{}", lines[9]);
    let html = taskyard_sim::html(&r);
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<svg"));
    assert!(html.contains("B &lt;unused&gt;"));
    for forbidden in ["<script", "http://", "https://", "src="] {
        assert!(
            !html.contains(forbidden),
            "the report must be self-contained: {forbidden}"
        );
    }
    let c =
        taskyard_sim::compare(&def, &one_worker(5), &arrivals, &Options::default()).expect("runs");
    let html = taskyard_sim::html_comparison(&c);
    assert!(html.contains("<svg") && !html.contains("http"));
    assert_eq!(c.csv().lines().count(), 1 + 3 * 9 + 2 * 9);
}

#[test]
fn replaying_a_runs_own_event_log_reproduces_it_exactly() {
    // A run with everything in it (rings, rejections, timeouts, wrap-up, callers hanging
    // up) leaves the engine's events. Read back as the Events API serves them — newest
    // first — they give the tasks (times and attributes from task.created, handle times from
    // accepted → wrap-up, patience of those who hung up); run again with the same seed and
    // behaviour, they must make the same assignments, event for event, and the same report.
    let def = definition(
        json!([
            {"friendly_name": "billing", "count": 4, "attributes": {"skills": ["billing", "general"]}},
            {"friendly_name": "general", "count": 6, "attributes": {"skills": ["general"]}}
        ]),
        &[
            ("Billing", "skills HAS 'billing'"),
            ("Everyone", "skills HAS 'general'"),
        ],
        &[("Billing only", "Billing")],
    );
    let mut arrivals = synthetic(vec![240.0; 8], 60.0, Some(60.0));
    arrivals.behaviour = Behaviour {
        accept_delay: Some(Dist::Uniform { min: 1.0, max: 9.0 }),
        reject_probability: 0.05,
        no_answer_probability: 0.03,
        away_after_no_answer: Some(Dist::Exponential { mean: 30.0 }),
        wrapup: Some(Dist::Fixed(10.0)),
    };
    let opts = Options {
        horizon_seconds: Some(8 * 900),
        ..Options::default()
    };
    let (first, log) = taskyard_sim::run_with_events(&def, &arrivals, &opts).expect("runs");
    assert!(
        first.all.total.abandoned > 0 && first.all.total.timed_out > 0,
        "{:?}",
        first.all.total
    );
    let newest_first: Vec<serde_json::Value> = log
        .iter()
        .rev()
        .map(|e| serde_json::from_str(e).expect("event JSON"))
        .collect();
    let page = json!({ "events": newest_first }).to_string();
    // Tasks still waiting at the end have no recorded handle time: any will do, nobody
    // handles them.
    let replay = Arrivals::from_events(&page, Some(Dist::Fixed(60.0)), arrivals.behaviour.clone())
        .expect("events parse");
    let (second, replayed) = taskyard_sim::run_with_events(&def, &replay, &opts).expect("runs");
    for (i, (a, b)) in log.iter().zip(&replayed).enumerate() {
        assert_eq!(a, b, "event {i} differs");
    }
    assert_eq!(log.len(), replayed.len());
    assert_eq!(first, second);
}
