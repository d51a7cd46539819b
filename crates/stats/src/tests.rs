use super::*;

/// Every whole minute of `[from, to]` is covered by exactly one bucket of the plan.
#[test]
fn a_plan_covers_every_minute_once() {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: i64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as i64
    };
    let base = 1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS;
    for _ in 0..2_000 {
        let from = base + next(3 * 24 * 60) * MINUTE_MS + next(MINUTE_MS);
        let long = next(2) == 0;
        let to = from + next(if long { 3 * 24 * 60 } else { 180 }) * MINUTE_MS;
        let mut covered: Vec<Millis> = Vec::new();
        for (span, first, last) in plan(from, to) {
            assert_eq!(first.rem_euclid(span), 0);
            let mut b = first;
            while b <= last {
                let mut m = b;
                while m < b + span {
                    covered.push(m);
                    m += MINUTE_MS;
                }
                b += span;
            }
        }
        let first = from - from.rem_euclid(MINUTE_MS);
        let last = to - to.rem_euclid(MINUTE_MS);
        let want: Vec<Millis> = (0..)
            .map(|i| first + i * MINUTE_MS)
            .take_while(|m| *m <= last)
            .collect();
        assert_eq!(covered, want, "window {from}..{to}");
        let hours = plan(from, to).iter().filter(|p| p.0 == HOUR_MS).count();
        assert!(hours <= 1, "whole hours come from one range");
    }
}

#[test]
fn a_long_window_reads_few_buckets() {
    let from = 1_700_000_000_000;
    let to = from + 30 * 24 * HOUR_MS;
    let buckets: i64 = plan(from, to)
        .iter()
        .map(|(span, a, b)| (b - a) / span + 1)
        .sum();
    assert!(buckets <= 720 + 2 * 60, "{buckets} buckets");
}

#[test]
fn aggregates_merge_in_any_order() {
    let mut a = Agg {
        reservations_accepted: 2,
        wait_until_accepted: Durations::of(4_000),
        ..Default::default()
    };
    a.accepted_after.insert(4, 2);
    a.activities.insert("WA1".into(), Durations::of(10_000));
    let mut b = Agg {
        reservations_accepted: 1,
        wait_until_accepted: Durations::of(1_000),
        ..Default::default()
    };
    b.accepted_after.insert(1, 1);
    b.activities.insert("WA1".into(), Durations::of(30_000));
    let mut ab = a.clone();
    ab.merge(&b);
    let mut ba = b.clone();
    ba.merge(&a);
    assert_eq!(ab, ba);
    assert_eq!(ab.reservations_accepted, 3);
    assert_eq!(ab.wait_until_accepted.seconds(), (2, 1, 4, 5));
    assert_eq!(ab.activities["WA1"].seconds(), (20, 10, 30, 40));
    assert_eq!(Agg::from_json(&ab.to_json()), ab);
    // A split: waits of 1 s and 4 s (twice) around 2 s and around 4 s.
    assert_eq!(Agg::split(&ab.accepted_after, 2), (1, 2));
    assert_eq!(Agg::split(&ab.accepted_after, 4), (3, 0));
    // Empty things are not stored.
    assert_eq!(Agg::default().to_json(), "{}");
}
