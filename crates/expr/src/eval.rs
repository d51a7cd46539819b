//! Evaluation. Values are borrowed from the context (JSON attributes, built-ins), so
//! evaluating an expression allocates nothing.
//!
//! The rules, where Twilio's documentation leaves room for choice:
//! * A missing key is NULL. A comparison involving NULL is false, except the null tests
//!   `key == null` (true when the key is missing or JSON null) and `key != null`.
//! * `==`/`!=`/`<`/… compare scalars. A number and a string compare numerically when the
//!   string parses as a number (`"6" > 5` holds: Twilio expects `{"skill": "6"}` to match
//!   `skill > 5`); two strings that are not both numeric compare as text (byte order); a
//!   boolean equals `true`/`false` and the strings `"true"`/`"false"`. Any other mix is
//!   false, and so is any scalar operator applied to an array or object.
//! * `HAS` needs an array on the left, `IN`/`NOT IN` an array on the right; otherwise false.
//!   `NOT IN` with a NULL left side is false (NULL is not a value that can be absent).
//! * `CONTAINS` is a case-sensitive substring test between two strings.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

use crate::ast::{Cmp, Expr, Key, Lit, Op, Operand, Seg};

/// A value during evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Val<'a> {
    Null,
    Bool(bool),
    Num(f64),
    Str(Cow<'a, str>),
    /// A JSON array from the context.
    Arr(&'a [Value]),
    /// An array literal from the expression.
    Lits(&'a [Lit]),
    /// A JSON object: only the null tests see it as anything.
    Obj,
}

impl<'a> Val<'a> {
    pub fn from_json(v: &'a Value) -> Val<'a> {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => n.as_f64().map(Val::Num).unwrap_or(Val::Null),
            Value::String(s) => Val::Str(Cow::Borrowed(s)),
            Value::Array(a) => Val::Arr(a),
            Value::Object(_) => Val::Obj,
        }
    }

    fn from_lit(l: &'a Lit) -> Val<'a> {
        match l {
            Lit::Str(s) => Val::Str(Cow::Borrowed(s)),
            Lit::Num(n) => Val::Num(*n),
            Lit::Bool(b) => Val::Bool(*b),
            Lit::Null => Val::Null,
        }
    }

    /// The value as a number under the comparison rules: numbers, and strings that parse
    /// as finite numbers.
    pub fn as_number(&self) -> Option<f64> {
        number(self)
    }

    fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    fn is_array(&self) -> bool {
        matches!(self, Val::Arr(_) | Val::Lits(_))
    }

    /// Calls `f` on each element of an array value; returns `None` for non-arrays.
    fn any(&self, mut f: impl FnMut(&Val<'_>) -> bool) -> Option<bool> {
        match self {
            Val::Arr(items) => Some(items.iter().any(|v| f(&Val::from_json(v)))),
            Val::Lits(items) => Some(items.iter().any(|l| f(&Val::from_lit(l)))),
            _ => None,
        }
    }
}

/// Looks a path up in JSON attributes: fields of objects, indexes of arrays.
pub fn lookup<'a>(root: &'a Value, segs: &[Seg]) -> Val<'a> {
    let mut v = root;
    for s in segs {
        let next = match s {
            Seg::Field(f) => v.as_object().and_then(|o| o.get(f.as_str())),
            Seg::Index(i) => v.as_array().and_then(|a| a.get(*i)),
        };
        match next {
            Some(n) => v = n,
            None => return Val::Null,
        }
    }
    Val::from_json(v)
}

/// Where keys get their values.
pub trait Context {
    fn get(&self, key: &Key) -> Val<'_>;
}

/// Plain attributes: every key is a path into this JSON document.
impl Context for Value {
    fn get(&self, key: &Key) -> Val<'_> {
        lookup(self, &key.segs)
    }
}

impl Expr {
    /// Evaluates the expression against `ctx`.
    pub fn eval<C: Context + ?Sized>(&self, ctx: &C) -> bool {
        match self {
            Expr::Or(items) => items.iter().any(|e| e.eval(ctx)),
            Expr::And(items) => items.iter().all(|e| e.eval(ctx)),
            Expr::Cmp(c) => c.eval(ctx),
        }
    }
}

fn operand<'a, C: Context + ?Sized>(o: &'a Operand, ctx: &'a C) -> Val<'a> {
    match o {
        Operand::Lit(l) => Val::from_lit(l),
        Operand::Key(k) => ctx.get(k),
        Operand::Array(items) => Val::Lits(items),
    }
}

impl Cmp {
    fn eval<C: Context + ?Sized>(&self, ctx: &C) -> bool {
        let l = operand(&self.left, ctx);
        let r = operand(&self.right, ctx);
        // The null tests.
        let null_lit = |o: &Operand| matches!(o, Operand::Lit(Lit::Null));
        if matches!(self.op, Op::Eq | Op::Ne) && (null_lit(&self.left) || null_lit(&self.right)) {
            let other = if null_lit(&self.left) { &r } else { &l };
            return (self.op == Op::Eq) == other.is_null();
        }
        if l.is_null() || r.is_null() {
            return false;
        }
        match self.op {
            Op::Eq => !l.is_array() && !r.is_array() && equal(&l, &r),
            Op::Ne => !l.is_array() && !r.is_array() && !equal(&l, &r),
            Op::Lt => order(&l, &r) == Some(Ordering::Less),
            Op::Le => matches!(order(&l, &r), Some(Ordering::Less | Ordering::Equal)),
            Op::Gt => order(&l, &r) == Some(Ordering::Greater),
            Op::Ge => matches!(order(&l, &r), Some(Ordering::Greater | Ordering::Equal)),
            Op::Has => !r.is_array() && l.any(|e| equal(e, &r)).unwrap_or(false),
            Op::In => !l.is_array() && r.any(|e| equal(&l, e)).unwrap_or(false),
            Op::NotIn => !l.is_array() && r.any(|e| equal(&l, e)).is_some_and(|found| !found),
            Op::Contains => match (&l, &r) {
                (Val::Str(a), Val::Str(b)) => a.contains(b.as_ref()),
                _ => false,
            },
        }
    }
}

fn number(v: &Val<'_>) -> Option<f64> {
    match v {
        Val::Num(n) => Some(*n),
        Val::Str(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    }
}

fn equal(a: &Val<'_>, b: &Val<'_>) -> bool {
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Num(_), Val::Str(_)) | (Val::Str(_), Val::Num(_)) | (Val::Num(_), Val::Num(_)) => {
            match (number(a), number(b)) {
                (Some(x), Some(y)) => x == y,
                _ => false,
            }
        }
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Bool(x), Val::Str(s)) | (Val::Str(s), Val::Bool(x)) => {
            s.eq_ignore_ascii_case(if *x { "true" } else { "false" })
        }
        _ => false,
    }
}

fn order(a: &Val<'_>, b: &Val<'_>) -> Option<Ordering> {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y),
        _ => match (a, b) {
            (Val::Str(x), Val::Str(y)) => Some(x.as_ref().cmp(y.as_ref())),
            _ => None,
        },
    }
}
