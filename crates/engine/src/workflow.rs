//! Workflow configuration documents: parsing and validation.
//!
//! A workflow's `Configuration` is a JSON document (see the TaskRouter docs, "Configuring
//! Workflows"):
//!
//! ```json
//! {"task_routing": {
//!    "filters": [{"filter_friendly_name": "Gold", "expression": "tier == 'gold'",
//!                 "targets": [{"queue": "WQ…", "priority": 10, "timeout": 300}, {"priority": 20}]}],
//!    "default_filter": {"queue": "WQ…"}}}
//! ```
//!
//! Parsing resolves queue inheritance (a target without `queue` uses the previous target's) so
//! the router never has to, and accepts `priority`/`timeout` as numbers or numeric strings, as
//! Twilio's own examples send both.

use std::collections::HashMap;

use serde_json::{Map, Value};
use taskyard_expr::{Cmp, Expr, Key, Lit, Op, Operand, OrderBy, Scope, Val};

use crate::{Sid, sid::prefix};

/// A parsed workflow configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkflowConfig {
    pub filters: Vec<Filter>,
    pub default_filter: Option<Target>,
    /// Derived from `filters`: answers `key == literal` filters by lookup.
    index: FilterIndex,
}

/// One entry of `task_routing.filters`.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub friendly_name: Option<std::sync::Arc<str>>,
    /// Evaluated against task attributes (no prefix).
    pub expression: Expr,
    pub targets: Vec<Target>,
}

/// One routing step.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Always set after parsing (inherited from the previous target when omitted).
    pub queue: Sid,
    pub priority: Option<i64>,
    /// Seconds, measured cumulatively against the task's age.
    pub timeout: Option<u64>,
    /// Joins `task.` and `worker.` keys.
    pub expression: Option<Expr>,
    /// Empty when the target has no `order_by`.
    pub order_by: Vec<OrderBy>,
    /// Over `workers.available`, `workers.unavailable`, `workers.<activity sid>`.
    pub skip_if: Option<Expr>,
    /// A `task.<attribute>` holding the SID of the one worker to target.
    pub known_worker_sid: Option<Key>,
    /// A `task.<attribute>` holding the friendly name of the one worker to target.
    pub known_worker_friendly_name: Option<Key>,
}

impl WorkflowConfig {
    /// Every queue the configuration routes to, in document order (with repeats).
    pub fn queues(&self) -> impl Iterator<Item = Sid> + '_ {
        self.filters
            .iter()
            .flat_map(|f| f.targets.iter())
            .chain(self.default_filter.iter())
            .map(|t| t.queue)
    }

    /// Parses a configuration document. The error is a sentence for the API client.
    pub fn parse(text: &str) -> Result<WorkflowConfig, String> {
        let doc: Value = serde_json::from_str(text)
            .map_err(|e| format!("Configuration is not valid JSON: {e}"))?;
        let routing = doc
            .as_object()
            .and_then(|o| o.get("task_routing"))
            .and_then(Value::as_object)
            .ok_or("Configuration must be a JSON object with a 'task_routing' object")?;

        let mut filters = Vec::new();
        match routing.get("filters") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    filters.push(parse_filter(item, i)?);
                }
            }
            Some(_) => return Err("task_routing.filters must be an array".into()),
        }
        let default_filter = match routing.get("default_filter") {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => Some(parse_target(o, None, "task_routing.default_filter")?),
            Some(_) => return Err("task_routing.default_filter must be an object".into()),
        };
        let index = FilterIndex::build(&filters);
        Ok(WorkflowConfig {
            filters,
            default_filter,
            index,
        })
    }

    /// The indices of the filters whose expression matches `attrs`, in document order.
    /// Same answer as evaluating every filter, but filters of the common shape
    /// `key == literal` are answered by one lookup per key instead of one evaluation each.
    pub fn matching_filters<'a>(&'a self, attrs: &'a Value) -> impl Iterator<Item = usize> + 'a {
        // Each key's lookup happens once, when its first filter comes up (no allocation).
        let mut cache: [Option<GroupHits<'a>>; CACHED_GROUPS] = [None; CACHED_GROUPS];
        self.filters.iter().enumerate().filter_map(move |(i, f)| {
            let hits = match self.index.group_of.get(i).copied().flatten() {
                Some(g) if g < CACHED_GROUPS => {
                    *cache[g].get_or_insert_with(|| self.index.group_hits(g, attrs))
                }
                _ => None,
            };
            let matched = match hits {
                Some([a, b]) => a.contains(&i) || b.contains(&i),
                None => f.expression.eval(attrs),
            };
            matched.then_some(i)
        })
    }
}

/// An index over filters of the shape `key == literal` (or `literal == key`), grouped by
/// key. For a task, one lookup per group finds every such filter it matches; the rules are
/// those of `==` (a number equals a string that parses to it; strings compare as text).
/// Also used for queues' `TargetWorkers` (see `QueueIndex`), where the "filters" are the
/// queues' expressions and the attributes a worker's.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FilterIndex {
    groups: Vec<Group>,
    /// Filter → its group, for indexed filters.
    group_of: Vec<Option<usize>>,
    /// The filters in no group (evaluated one by one), so that `matching_all` need not walk
    /// `group_of`: 10,000 skill queues × 100,000 workers at restart made that walk most of
    /// the restore.
    ungrouped: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
struct Group {
    key: Key,
    /// String literal → filters.
    text: HashMap<String, Vec<usize>>,
    /// Every filter of the group (evaluated when the attribute is a boolean).
    members: Vec<usize>,
    /// Number literal (bits) → filters.
    numbers: HashMap<u64, Vec<usize>>,
    /// Value of a numeric string literal (bits) → filters (matched by number attributes).
    numeric_text: HashMap<u64, Vec<usize>>,
}

/// How many keys of `key == literal` filters are answered by lookup (the rest evaluate).
const CACHED_GROUPS: usize = 4;

/// What one key's lookup found: the (up to two) lists of filters it matches, or `None` when
/// those filters must be evaluated instead (a boolean attribute, compared with "true" text).
type GroupHits<'a> = Option<[&'a [usize]; 2]>;

fn bits(n: f64) -> u64 {
    // -0.0 == 0.0 under `==`.
    if n == 0.0 {
        0f64.to_bits()
    } else {
        n.to_bits()
    }
}

impl FilterIndex {
    fn build(filters: &[Filter]) -> FilterIndex {
        FilterIndex::build_exprs(filters.iter().map(|f| Some(&f.expression)))
    }

    /// An index over `exprs` (`None` stands for an expression that matches nothing).
    pub(crate) fn build_exprs<'a>(exprs: impl Iterator<Item = Option<&'a Expr>>) -> FilterIndex {
        let exprs: Vec<Option<&Expr>> = exprs.collect();
        let mut index = FilterIndex {
            groups: Vec::new(),
            group_of: vec![None; exprs.len()],
            ungrouped: Vec::new(),
        };
        for (i, e) in exprs.iter().enumerate() {
            let Some(Expr::Cmp(c)) = e else {
                continue;
            };
            let Some((key, lit)) = key_equals_literal(c) else {
                continue;
            };
            let g = match index.groups.iter().position(|g| g.key == *key) {
                Some(g) => g,
                None => {
                    index.groups.push(Group {
                        key: key.clone(),
                        text: HashMap::new(),
                        members: Vec::new(),
                        numbers: HashMap::new(),
                        numeric_text: HashMap::new(),
                    });
                    index.groups.len() - 1
                }
            };
            let group = &mut index.groups[g];
            group.members.push(i);
            match lit {
                Lit::Num(n) => group.numbers.entry(bits(*n)).or_default().push(i),
                Lit::Str(s) => {
                    group.text.entry(s.clone()).or_default().push(i);
                    if let Some(n) = Val::Str(s.as_str().into()).as_number() {
                        group.numeric_text.entry(bits(n)).or_default().push(i);
                    }
                }
                _ => unreachable!("only string and number literals are indexed"),
            }
            index.group_of[i] = Some(g);
        }
        index.ungrouped = (0..exprs.len())
            .filter(|&i| index.group_of[i].is_none())
            .collect();
        index
    }

    /// The indices of every expression that matches `attrs`, ascending: each indexed group
    /// costs one lookup; `eval(i)` decides the others (and a group whose attribute is a
    /// boolean). Same answer as evaluating all of them.
    pub(crate) fn matching_all(&self, attrs: &Value, eval: impl Fn(usize) -> bool) -> Vec<usize> {
        let mut out = Vec::new();
        for (g, group) in self.groups.iter().enumerate() {
            match self.group_hits(g, attrs) {
                Some([a, b]) => {
                    out.extend_from_slice(a);
                    out.extend_from_slice(b);
                }
                None => out.extend(group.members.iter().copied().filter(|&i| eval(i))),
            }
        }
        out.extend(self.ungrouped.iter().copied().filter(|&i| eval(i)));
        out.sort_unstable();
        out.dedup();
        out
    }

    fn group_hits<'a>(&'a self, g: usize, attrs: &Value) -> GroupHits<'a> {
        let group = &self.groups[g];
        let found = |m: Option<&'a Vec<usize>>| m.map_or(&[][..], Vec::as_slice);
        let v = taskyard_expr::lookup(attrs, &group.key.segs);
        match &v {
            Val::Str(s) => Some([
                found(group.text.get(s.as_ref())),
                v.as_number()
                    .map_or(&[][..], |n| found(group.numbers.get(&bits(n)))),
            ]),
            Val::Num(n) => Some([
                found(group.numbers.get(&bits(*n))),
                found(group.numeric_text.get(&bits(*n))),
            ]),
            // Booleans compare with "true"/"false" strings: leave those to evaluation.
            Val::Bool(_) => None,
            // Null, arrays and objects equal no literal.
            _ => Some([&[], &[]]),
        }
    }
}

/// `key == "text"`, `key == 5`, or the mirror image.
fn key_equals_literal(c: &Cmp) -> Option<(&Key, &Lit)> {
    if c.op != Op::Eq {
        return None;
    }
    let (key, lit) = match (&c.left, &c.right) {
        (Operand::Key(k), Operand::Lit(l)) | (Operand::Lit(l), Operand::Key(k)) => (k, l),
        _ => return None,
    };
    matches!(lit, Lit::Str(_) | Lit::Num(_)).then_some((key, lit))
}

fn parse_filter(item: &Value, index: usize) -> Result<Filter, String> {
    let at = format!("task_routing.filters[{index}]");
    let obj = item
        .as_object()
        .ok_or_else(|| format!("{at} must be an object"))?;
    let expression = opt_string(obj, "expression", &at)?
        .ok_or_else(|| format!("{at}.expression is required"))?;
    let expression = expression_in(&expression, Scope::Attributes, &format!("{at}.expression"))?;
    let friendly_name = opt_string(obj, "filter_friendly_name", &at)?;
    let targets_json = match obj.get("targets") {
        Some(Value::Array(t)) if !t.is_empty() => t,
        _ => return Err(format!("{at}.targets must be a non-empty array")),
    };
    let mut targets: Vec<Target> = Vec::with_capacity(targets_json.len());
    for (i, t) in targets_json.iter().enumerate() {
        let t_at = format!("{at}.targets[{i}]");
        let t = t
            .as_object()
            .ok_or_else(|| format!("{t_at} must be an object"))?;
        let inherited = targets.last().map(|p| p.queue);
        targets.push(parse_target(t, inherited, &t_at)?);
    }
    Ok(Filter {
        friendly_name: friendly_name.map(Into::into),
        expression,
        targets,
    })
}

fn parse_target(
    obj: &Map<String, Value>,
    inherited: Option<Sid>,
    at: &str,
) -> Result<Target, String> {
    let queue = match opt_string(obj, "queue", at)? {
        Some(q) => Sid::parse_with(&q, prefix::TASK_QUEUE)
            .map_err(|_| format!("{at}.queue '{q}' is not a TaskQueue SID"))?,
        None => inherited.ok_or_else(|| format!("{at}.queue is required"))?,
    };
    let timeout = match opt_int(obj, "timeout", at)? {
        None => None,
        Some(t) if t > 0 => Some(t as u64),
        Some(_) => return Err(format!("{at}.timeout must be a positive number of seconds")),
    };
    let compile = |key: &str, scope| -> Result<Option<Expr>, String> {
        opt_string(obj, key, at)?
            .map(|src| expression_in(&src, scope, &format!("{at}.{key}")))
            .transpose()
    };
    let order_by = match opt_string(obj, "order_by", at)? {
        None => Vec::new(),
        Some(src) => taskyard_expr::parse_order_by(&src)
            .map_err(|e| format!("{at}.order_by '{src}' is not valid: {e}"))?,
    };
    let task_key = |key: &str| -> Result<Option<Key>, String> {
        let Some(src) = opt_string(obj, key, at)? else {
            return Ok(None);
        };
        match taskyard_expr::parse_key(&src, Scope::Target) {
            Ok(k) if k.root() == Some("task") => Ok(Some(k)),
            _ => Err(format!(
                "{at}.{key} must name a task attribute, such as task.last_agent_sid"
            )),
        }
    };
    Ok(Target {
        queue,
        priority: opt_int(obj, "priority", at)?,
        timeout,
        expression: compile("expression", Scope::Target)?,
        order_by,
        skip_if: compile("skip_if", Scope::SkipIf)?,
        known_worker_sid: task_key("known_worker_sid")?,
        known_worker_friendly_name: task_key("known_worker_friendly_name")?,
    })
}

fn expression_in(src: &str, scope: Scope, at: &str) -> Result<Expr, String> {
    taskyard_expr::parse(src, scope)
        .map_err(|e| format!("{at} '{src}' is not a valid expression: {e}"))
}

fn opt_string(obj: &Map<String, Value>, key: &str, at: &str) -> Result<Option<String>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{at}.{key} must be a string")),
    }
}

fn opt_int(obj: &Map<String, Value>, key: &str, at: &str) -> Result<Option<i64>, String> {
    let bad = || format!("{at}.{key} must be an integer");
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(bad),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q1: &str = "WQ00000000000000000000000000000001";
    const Q2: &str = "WQ00000000000000000000000000000002";

    #[test]
    fn parses_filters_targets_and_inherits_queues() {
        let doc = format!(
            r#"{{"task_routing": {{"filters": [{{"filter_friendly_name": "Gold",
                "expression": "tier == 'gold'",
                "targets": [{{"queue": "{Q1}", "priority": "10", "timeout": 300,
                              "expression": "task.a == worker.a", "skip_if": "workers.available == 0",
                              "order_by": "worker.level DESC", "known_worker_sid": "task.agent"}},
                            {{"priority": 20}}]}}],
                "default_filter": {{"queue": "{Q2}"}}}}}}"#
        );
        let c = WorkflowConfig::parse(&doc).expect("valid");
        assert_eq!(c.filters.len(), 1);
        let f = &c.filters[0];
        assert_eq!(f.friendly_name.as_deref(), Some("Gold"));
        assert_eq!(f.targets[0].priority, Some(10));
        assert_eq!(f.targets[0].timeout, Some(300));
        assert_eq!(f.targets[0].order_by.len(), 1);
        assert!(f.targets[0].order_by[0].descending);
        assert!(f.targets[0].skip_if.is_some() && f.targets[0].expression.is_some());
        assert_eq!(
            f.targets[0]
                .known_worker_sid
                .as_ref()
                .map(|k| k.to_string()),
            Some("task.agent".into())
        );
        assert_eq!(f.targets[1].queue.to_string(), Q1, "queue inherited");
        assert_eq!(f.targets[1].priority, Some(20));
        assert_eq!(
            c.default_filter.as_ref().map(|t| t.queue.to_string()),
            Some(Q2.to_string())
        );
        assert_eq!(c.queues().count(), 3);
    }

    #[test]
    fn rejects_bad_documents_with_a_reason() {
        let cases = [
            ("not json", "not valid JSON"),
            ("[]", "task_routing"),
            (r#"{"task_routing": {"filters": {}}}"#, "must be an array"),
            (
                r#"{"task_routing": {"filters": [{"targets": [{"queue": "WQ1"}]}]}}"#,
                "expression is required",
            ),
            (
                r#"{"task_routing": {"filters": [{"expression": "1==1", "targets": []}]}}"#,
                "non-empty",
            ),
            (
                r#"{"task_routing": {"filters": [{"expression": "1==1", "targets": [{"priority": 1}]}]}}"#,
                "queue is required",
            ),
            (
                r#"{"task_routing": {"filters": [{"expression": "1==1", "targets": [{"queue": "WQ1"}]}]}}"#,
                "not a TaskQueue SID",
            ),
            (
                &format!(
                    r#"{{"task_routing": {{"filters": [{{"expression": "1==1", "targets": [{{"queue": "{Q1}", "timeout": -5}}]}}]}}}}"#
                ),
                "positive",
            ),
            (
                &format!(
                    r#"{{"task_routing": {{"filters": [{{"expression": "1==1", "targets": [{{"queue": "{Q1}", "priority": "high"}}]}}]}}}}"#
                ),
                "integer",
            ),
        ];
        for (doc, want) in cases {
            let err = WorkflowConfig::parse(doc).expect_err(doc);
            assert!(err.contains(want), "{doc}: {err} should mention {want}");
        }
    }

    #[test]
    fn indexed_filter_matching_agrees_with_evaluating_every_filter() {
        let exprs = [
            "skill == 3",
            "skill == '3'",
            "skill == 'a'",
            "3 == skill",
            "tier == 'gold'",
            "skill == 3.0",
            "skill == -0",
            "vip == 'true'",
            "skill > 2",
            "1==1",
            "skill == 'x' OR tier == 'gold'",
            "tier == 'silver'",
            "skill == ' 3 '",
            "nested.k == 1",
        ];
        let values = [
            serde_json::json!(3),
            serde_json::json!("3"),
            serde_json::json!("3.0"),
            serde_json::json!(" 3 "),
            serde_json::json!("a"),
            serde_json::json!(0),
            serde_json::json!(-0.0),
            serde_json::json!(true),
            serde_json::json!(null),
            serde_json::json!([3]),
            serde_json::json!({"k": 1}),
            serde_json::json!("true"),
        ];
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..2_000 {
            let n = rng.usize(1..10);
            let chosen: Vec<&str> = (0..n).map(|_| exprs[rng.usize(0..exprs.len())]).collect();
            let filters = chosen
                .iter()
                .map(|e| {
                    format!(
                        r#"{{"expression": "{}", "targets": [{{"queue": "{Q1}"}}]}}"#,
                        e.replace('"', "\\\"")
                    )
                })
                .collect::<Vec<_>>()
                .join(",");
            let config = WorkflowConfig::parse(&format!(
                r#"{{"task_routing": {{"filters": [{filters}]}}}}"#
            ))
            .expect("valid");
            let mut attrs = serde_json::Map::new();
            for k in ["skill", "tier", "vip", "nested"] {
                if rng.bool() {
                    attrs.insert(k.into(), values[rng.usize(0..values.len())].clone());
                }
            }
            let attrs = Value::Object(attrs);
            let fast: Vec<usize> = config.matching_filters(&attrs).collect();
            let slow: Vec<usize> = (0..config.filters.len())
                .filter(|&i| config.filters[i].expression.eval(&attrs))
                .collect();
            assert_eq!(fast, slow, "{chosen:?} against {attrs}");
            // The same index answering for a set of expressions (queues' TargetWorkers).
            let exprs = || config.filters.iter().map(|f| Some(&f.expression));
            let all = FilterIndex::build_exprs(exprs().chain([None])).matching_all(&attrs, |i| {
                config
                    .filters
                    .get(i)
                    .is_some_and(|f| f.expression.eval(&attrs))
            });
            assert_eq!(all, slow, "matching_all: {chosen:?} against {attrs}");
        }
    }

    #[test]
    fn empty_routing_is_allowed() {
        let c = WorkflowConfig::parse(r#"{"task_routing": {}}"#).expect("valid");
        assert!(c.filters.is_empty() && c.default_filter.is_none());
    }
}
