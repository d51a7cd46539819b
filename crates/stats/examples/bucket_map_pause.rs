//! Why the store writer's statistics buckets live in a B-tree of boxes.
//!
//! The writer adds every committed event into its minute and hour buckets ([`Rollup`]); a
//! pause there holds back every commit. A workspace of many workers grows the map by
//! hundreds of thousands of buckets, and a hash map grows by doubling: one insert moves
//! every entry. This inserts `N` buckets (default 200,000) into three layouts and prints the
//! worst single insert (the writer's pause), the total insert time, and a lookup's mean:
//!
//! ```sh
//! cargo run --release -p taskyard-stats --example bucket_map_pause [N]
//! ```
//!
//! [`Rollup`]: taskyard_stats::Rollup

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use taskyard_engine::Sid;
use taskyard_stats::{Agg, Key, Scope};

fn key(i: u128) -> (Sid, Key) {
    (
        Sid::new("WS", 1),
        Key {
            scope: Scope::Of(Sid::new("WK", i)),
            span_ms: 60_000,
            start_ms: 0,
            channel: Some(Sid::new("TC", 1)),
        },
    )
}

/// Inserts `n` buckets into `$map`, then looks each one up again, and prints the worst
/// single insert, all inserts, and a lookup's mean.
macro_rules! measure {
    ($name:expr, $n:expr, $map:expr) => {{
        let mut map = $map;
        let (mut worst, started) = (0f64, Instant::now());
        for i in 0..$n {
            let t = Instant::now();
            map.entry(key(i)).or_default().tasks_created += 1;
            worst = worst.max(t.elapsed().as_secs_f64());
        }
        let total = started.elapsed().as_secs_f64();
        let t = Instant::now();
        for i in 0..$n {
            if let Some(a) = map.get_mut(&key(i)) {
                a.tasks_created += 1;
            }
        }
        let lookup = t.elapsed().as_secs_f64() / $n as f64;
        println!(
            "{:32} worst insert {:7.2} ms   all inserts {:5.0} ms   lookup {:4.0} ns",
            $name,
            worst * 1e3,
            total * 1e3,
            lookup * 1e9
        );
    }};
}

fn main() {
    let n: u128 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    println!("{n} buckets of {} bytes each", std::mem::size_of::<Agg>());
    measure!(
        "HashMap<_, Agg> (inline)",
        n,
        HashMap::<(Sid, Key), Agg>::new()
    );
    measure!(
        "FxHashMap<_, Box<Agg>>",
        n,
        rustc_hash::FxHashMap::<(Sid, Key), Box<Agg>>::default()
    );
    measure!(
        "BTreeMap<_, Box<Agg>> (Rollup's)",
        n,
        BTreeMap::<(Sid, Key), Box<Agg>>::new()
    );
}
