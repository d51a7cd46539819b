use serde_json::{Value, json};

use super::*;

fn attrs() -> Value {
    json!({
        "languages": ["en", "es"],
        "level": 3,
        "tier": "gold",
        "skill": "6",
        "name": "Alice Smith",
        "vip": true,
        "scores": [1, 2.5, "3"],
        "customer": {"tier": "silver", "ids": [7, 8]},
        "nothing": null
    })
}

#[track_caller]
fn holds(src: &str) -> bool {
    parse(src, Scope::Attributes)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
        .eval(&attrs())
}

#[test]
fn equality_and_its_aliases() {
    assert!(holds(r#"tier == "gold""#));
    assert!(holds("tier = 'gold'"));
    assert!(!holds("tier == 'GOLD'"), "strings compare case-sensitively");
    assert!(holds("tier != 'silver'"));
    assert!(holds("level == 3"));
    assert!(holds("level == 3.0"));
    assert!(holds("vip == true"));
    assert!(holds("vip == 'true'"));
    assert!(!holds("vip == false"));
    assert!(holds("1==1"), "the always-true idiom");
    assert!(holds("1 == 1"));
    assert!(!holds("1==2"));
    assert!(holds("customer.tier == 'silver'"), "nested keys");
    assert!(holds("languages[1] == 'es'"), "array indexes");
    assert!(holds("customer.ids[0] == 7"));
}

#[test]
fn numeric_strings_compare_as_numbers() {
    assert!(
        holds("skill > 5"),
        "Twilio expects {{\"skill\": \"6\"}} to match skill > 5"
    );
    assert!(holds("skill == 6"));
    assert!(holds("skill >= '6'"));
    assert!(!holds("skill < 6"));
    assert!(holds("level <= 3"));
    assert!(holds("level < 3.5"));
    assert!(holds("level > -1"));
    assert!(
        !holds("tier > 5"),
        "a non-numeric string and a number do not compare"
    );
    assert!(
        holds("tier > 'bronze'"),
        "two non-numeric strings compare as text"
    );
    assert!(holds("tier < 'platinum'"));
}

#[test]
fn has_in_not_in_and_their_aliases() {
    assert!(holds(r#"languages HAS "en""#));
    assert!(holds(r#"languages >- "es""#));
    assert!(!holds(r#"languages HAS "fr""#));
    assert!(
        holds("scores HAS 3"),
        "HAS uses == rules, so \"3\" matches 3"
    );
    assert!(holds("tier IN ['gold', 'silver']"));
    assert!(holds("tier <- ['gold']"));
    assert!(holds("level IN [1, 2, 3]"));
    assert!(!holds("tier IN []"));
    assert!(holds("'en' IN languages"), "IN against an attribute array");
    assert!(holds("tier NOT IN ['bronze']"));
    assert!(!holds("tier NOT IN ['gold']"));
    assert!(
        holds("tier not in ['bronze']"),
        "keywords are case-insensitive"
    );
    assert!(holds("languages has 'en' and level >= 3"));
}

#[test]
fn contains_is_a_substring_test() {
    assert!(holds("name CONTAINS 'Smith'"));
    assert!(!holds("name CONTAINS 'smith'"));
    assert!(!holds("languages CONTAINS 'en'"), "not for arrays");
    assert!(!holds("level CONTAINS 3"));
}

#[test]
fn scalar_operators_on_arrays_and_array_operators_on_scalars_are_false() {
    for src in [
        "languages == 'en'",
        "languages != 'en'",
        "languages > 1",
        "tier HAS 'gold'",
        "languages IN ['en']",
        "languages NOT IN ['fr']",
        "tier IN 'gold'",
        "customer == 'x'",
    ] {
        assert!(!holds(src), "{src}");
    }
}

#[test]
fn missing_keys_are_null() {
    assert!(holds("missing == null"));
    assert!(holds("nothing == null"));
    assert!(holds("null == missing"));
    assert!(!holds("missing != null"));
    assert!(holds("tier != null"));
    assert!(holds("customer != null"), "objects are not null");
    for src in [
        "missing == 'x'",
        "missing != 'x'",
        "missing > 1",
        "missing HAS 'x'",
        "missing IN ['x']",
        "missing NOT IN ['x']",
        "missing CONTAINS 'x'",
        "customer.nope.deeper == 1",
        "languages[9] == 'en'",
    ] {
        assert!(!holds(src), "{src}");
    }
}

#[test]
fn and_binds_tighter_than_or_and_parentheses_group() {
    assert!(holds("tier == 'x' AND level == 3 OR vip == true"));
    assert!(!holds("tier == 'x' AND (level == 3 OR vip == true)"));
    assert!(holds(
        "(tier == 'gold' OR tier == 'x') AND (languages HAS 'es')"
    ));
    assert!(holds("((((level == 3))))"));
}

#[test]
fn target_scope_joins_task_and_worker() {
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
    let ctx = Join {
        task: json!({"language": "es", "requested_agent": "a7"}),
        worker: json!({"languages": ["en", "es"], "agent_id": "a7"}),
    };
    let e = parse("task.language IN worker.languages", Scope::Target).expect("parse");
    assert!(e.eval(&ctx));
    let e = parse("task.requested_agent == worker.agent_id", Scope::Target).expect("parse");
    assert!(e.eval(&ctx));
    let err = parse("language IN worker.languages", Scope::Target).expect_err("unprefixed key");
    assert_eq!(err.pos, 0);
    assert!(err.expected.contains("task."), "{err}");
    assert!(
        parse("task == 1", Scope::Target).is_err(),
        "a bare prefix is not a key"
    );
}

#[test]
fn skip_if_scope_knows_only_worker_counts() {
    assert!(parse("workers.available == 0", Scope::SkipIf).is_ok());
    assert!(
        parse(
            "workers.unavailable > 2 AND workers.available < 1",
            Scope::SkipIf
        )
        .is_ok()
    );
    assert!(
        parse(
            "workers.WA0123456789abcdef0123456789abcdef >= 1",
            Scope::SkipIf
        )
        .is_ok()
    );
    assert!(parse("1==1", Scope::SkipIf).is_ok());
    let err = parse("workers.busy == 0", Scope::SkipIf).expect_err("unknown count");
    assert!(err.expected.contains("workers.available"), "{err}");
    assert!(parse("available == 0", Scope::SkipIf).is_err());
}

#[test]
fn order_by_clauses() {
    let o =
        parse_order_by("worker.english_level ASC, worker.support desc,worker.x").expect("parse");
    let got: Vec<_> = o
        .iter()
        .map(|c| (c.key.to_string(), c.descending))
        .collect();
    assert_eq!(
        got,
        vec![
            ("worker.english_level".to_string(), false),
            ("worker.support".to_string(), true),
            ("worker.x".to_string(), false),
        ]
    );
    assert!(parse_order_by("task.level ASC").is_err());
    assert!(parse_order_by("worker.level UP").is_err());
    assert!(parse_order_by("").is_err());
}

#[test]
fn errors_name_the_position_and_what_was_expected() {
    let cases = [
        ("", 0, "a key, string"),
        ("tier ==", 7, "a key, string"),
        ("tier 'gold'", 5, "an operator"),
        ("tier == 'gold' AND", 18, "a key, string"),
        ("(tier == 'gold'", 15, "')'"),
        ("tier == 'gold')", 14, "AND, OR or the end"),
        ("tier == 'gold", 8, "a closing '"),
        ("tier NOT 'x'", 9, "IN after NOT"),
        ("tier IN ['a' 'b']", 13, "',' or ']'"),
        ("tier IN [a]", 9, "a string, number"),
        ("skills[x] == 1", 7, "an array index"),
        ("a.  == 1", 4, "an attribute name"),
        ("tier # 1", 5, "a key, value or operator"),
        ("tier == 1.2.3", 11, "AND, OR"),
    ];
    for (src, pos, expected) in cases {
        let err = parse(src, Scope::Attributes).expect_err(src);
        assert_eq!(err.pos, pos, "{src}: {err}");
        assert!(err.expected.starts_with(expected), "{src}: {err}");
        assert!(err.to_string().contains(&format!("position {pos}")));
    }
}

#[test]
fn limits_protect_the_parser() {
    let deep = format!(
        "{}1==1{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    assert!(parse(&deep, Scope::Attributes).is_err());
    let ok = format!("{}1==1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert!(parse(&ok, Scope::Attributes).is_ok());
    let long = "a == 1 OR ".repeat(MAX_LEN / 8);
    assert!(parse(&long, Scope::Attributes).is_err());
}

#[test]
fn strings_with_quotes_and_escapes() {
    let e = parse(
        r#"name == "Al \"the\" Pal" OR name == 'it\'s'"#,
        Scope::Attributes,
    )
    .expect("parse");
    let ctx = json!({"name": "it's"});
    assert!(e.eval(&ctx));
    let again = parse(&e.to_string(), Scope::Attributes).expect("reparse");
    assert_eq!(again, e);
}

// ----- property: printing then parsing gives the same tree ----------------------------------

fn random_key(rng: &mut fastrand::Rng) -> Key {
    const FIELDS: [&str; 7] = [
        "languages",
        "level",
        "tier",
        "customer",
        "a_b",
        "$x",
        "skills2",
    ];
    let mut segs = vec![Seg::Field(FIELDS[rng.usize(0..FIELDS.len())].to_string())];
    for _ in 0..rng.usize(0..3) {
        if rng.bool() {
            segs.push(Seg::Field(FIELDS[rng.usize(0..FIELDS.len())].to_string()));
        } else {
            segs.push(Seg::Index(rng.usize(0..20)));
        }
    }
    Key { segs }
}

fn random_lit(rng: &mut fastrand::Rng) -> Lit {
    match rng.u8(0..5) {
        0 => {
            let pool = ['a', 'Z', ' ', '"', '\'', '\\', 'é', '-', '1'];
            Lit::Str(
                (0..rng.usize(0..6))
                    .map(|_| pool[rng.usize(0..pool.len())])
                    .collect(),
            )
        }
        1 => Lit::Num(rng.i32(-1000..1000) as f64),
        2 => Lit::Num(rng.i32(-1000..1000) as f64 / 8.0),
        3 => Lit::Bool(rng.bool()),
        _ => Lit::Null,
    }
}

fn random_operand(rng: &mut fastrand::Rng) -> Operand {
    match rng.u8(0..3) {
        0 => Operand::Key(random_key(rng)),
        1 => Operand::Lit(random_lit(rng)),
        _ => Operand::Array((0..rng.usize(0..4)).map(|_| random_lit(rng)).collect()),
    }
}

fn random_expr(rng: &mut fastrand::Rng, depth: u32) -> Expr {
    if depth == 0 || rng.u8(0..3) == 0 {
        const OPS: [Op; 10] = [
            Op::Eq,
            Op::Ne,
            Op::Lt,
            Op::Le,
            Op::Gt,
            Op::Ge,
            Op::Has,
            Op::In,
            Op::NotIn,
            Op::Contains,
        ];
        return Expr::Cmp(Box::new(Cmp {
            left: random_operand(rng),
            op: OPS[rng.usize(0..OPS.len())],
            right: random_operand(rng),
        }));
    }
    let items = (0..rng.usize(2..4))
        .map(|_| random_expr(rng, depth - 1))
        .collect();
    if rng.bool() {
        Expr::And(items)
    } else {
        Expr::Or(items)
    }
}

#[test]
fn printing_and_reparsing_gives_the_same_tree() {
    let mut rng = fastrand::Rng::with_seed(7);
    for i in 0..20_000 {
        let e = random_expr(&mut rng, 4);
        let text = e.to_string();
        let back =
            parse(&text, Scope::Attributes).unwrap_or_else(|err| panic!("case {i}: {text}: {err}"));
        assert_eq!(back, e, "case {i}: {text}");
    }
}

#[test]
fn random_input_never_panics() {
    let mut rng = fastrand::Rng::with_seed(11);
    let pieces = [
        "a", "==", "=", "!=", "<", ">=", ">-", "<-", "HAS", "IN", "NOT", "AND", "OR", "(", ")",
        "[", "]", ",", ".", "'x'", "\"", "1", "-2.5", "null", "true", " ", "[0]", "é", "\\",
    ];
    for _ in 0..20_000 {
        let src: String = (0..rng.usize(0..12))
            .map(|_| pieces[rng.usize(0..pieces.len())])
            .collect();
        if let Ok(e) = parse(&src, Scope::Attributes) {
            e.eval(&attrs());
        }
        let _ = parse_order_by(&src);
    }
}
