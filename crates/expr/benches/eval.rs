//! Evaluations per second of typical TaskRouter expressions against realistic attributes.
//!
//!     cargo bench -p taskyard-expr --bench eval
//!
//! Each case is parsed once and evaluated in a tight loop on one thread for about a second,
//! five times; the best and median rates are printed. (A plain timing loop rather than a
//! statistics framework: the figure wanted is a throughput, and this keeps the build light.)

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use taskyard_expr::{Context, Key, Scope, Val, lookup, parse};

/// A worker as contact centres describe them: a dozen attributes, a few arrays.
fn worker() -> Value {
    json!({
        "languages": ["es", "fr", "en"],
        "level": 4,
        "skills": ["billing", "sales", "support", "returns"],
        "region": "emea",
        "team": "tier2",
        "contact_uri": "client:alice",
        "email": "alice@example.com",
        "shift": "early",
        "certifications": ["pci", "gdpr"],
        "seniority_years": 6,
        "department": "customer-care",
        "max_chats": 3
    })
}

fn task() -> Value {
    json!({"language": "en", "type": "support", "priority_customer": true, "customer_id": "C123"})
}

/// `task.` and `worker.` keys, as in workflow target expressions.
struct Join {
    task: Value,
    worker: Value,
}

impl Context for Join {
    fn get(&self, key: &Key) -> Val<'_> {
        match key.root() {
            Some("task") => lookup(&self.task, key.rest()),
            Some("worker") => lookup(&self.worker, key.rest()),
            _ => Val::Null,
        }
    }
}

fn measure(name: &str, mut f: impl FnMut() -> bool) {
    let mut rates = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let mut n: u64 = 0;
        let mut hits: u64 = 0;
        while start.elapsed() < Duration::from_millis(1000) {
            for _ in 0..10_000 {
                hits += u64::from(black_box(f()));
            }
            n += 10_000;
        }
        black_box(hits);
        rates.push(n as f64 / start.elapsed().as_secs_f64());
    }
    rates.sort_by(|a, b| b.total_cmp(a));
    println!(
        "{name:<58} best {:>6.2} M evals/s   median {:>6.2} M evals/s",
        rates[0] / 1e6,
        rates[2] / 1e6
    );
}

fn main() {
    let w = worker();
    let e = parse(r#"languages HAS "en" AND level >= 3"#, Scope::Attributes).expect("parse");
    assert!(e.eval(&w));
    measure(r#"languages HAS "en" AND level >= 3"#, || {
        e.eval(black_box(&w))
    });

    let join = Join {
        task: task(),
        worker: worker(),
    };
    let e = parse("task.language IN worker.languages", Scope::Target).expect("parse");
    assert!(e.eval(&join));
    measure("task.language IN worker.languages", || {
        e.eval(black_box(&join))
    });

    // Twenty clauses, written the way large queues are: mostly ANDed requirements with a
    // few alternatives; it holds for this worker, so every clause is evaluated.
    let twenty = [
        r#"languages HAS "en""#,
        "level >= 3",
        r#"skills HAS "support""#,
        r#"region IN ["emea", "apac"]"#,
        r#"team != "tier1""#,
        "seniority_years > 2",
        r#"certifications HAS "pci""#,
        r#"shift == "early""#,
        "max_chats >= 2",
        r#"department CONTAINS "care""#,
        r#"(skills HAS "billing" OR skills HAS "refunds")"#,
        "email != null",
        "missing_attribute == null",
        r#"region NOT IN ["amer"]"#,
        "level < 10",
        r#"(team == "tier2" OR team == "tier3")"#,
        r#"languages HAS "es""#,
        r#"contact_uri CONTAINS "client:""#,
        r#"skills HAS "returns""#,
        "seniority_years <= 40",
    ]
    .join(" AND ");
    let e = parse(&twenty, Scope::Attributes).expect("parse");
    assert!(e.eval(&w));
    measure("20-clause expression (all clauses evaluated)", || {
        e.eval(black_box(&w))
    });

    let e = parse("1==1", Scope::Attributes).expect("parse");
    measure("1==1", || e.eval(black_box(&w)));
}
