//! # taskyard-expr
//!
//! TaskRouter's expression language, as used in TaskQueue `target_workers`, workflow filter
//! and target expressions, `skip_if`, `order_by` and the expression-filtered list endpoints:
//!
//! ```text
//! languages HAS "en" AND level >= 3
//! task.language IN worker.languages OR (tier == 'gold' AND NOT_A_KEYWORD != null)
//! ```
//!
//! * [`lexer`] — tokens with byte offsets; keywords are case-insensitive.
//! * [`ast`] — the tree, the recursive-descent parser ([`parse`], [`parse_order_by`]) and
//!   the canonical printer (`Display`; printing then parsing gives the same tree).
//! * [`eval`] — evaluation against a [`Context`] with borrowed values: parse once, evaluate
//!   many times, no allocation per evaluation. The semantic rules (NULLs, mixed types) are
//!   documented there.
//!
//! Keys are checked against a [`Scope`] while parsing, so a workflow target expression
//! without `task.`/`worker.` prefixes, or a `skip_if` naming something other than
//! `workers.available`, `workers.unavailable` or `workers.<activity sid>`, is refused with
//! the position of the offending key.

pub mod ast;
pub mod eval;
pub mod lexer;

pub use ast::{Cmp, Expr, Key, Lit, Op, Operand, OrderBy, Seg, parse, parse_key, parse_order_by};
pub use eval::{Context, Val, lookup};

/// Longest expression accepted, in bytes (Twilio publishes no limit).
pub const MAX_LEN: usize = 16 * 1024;
/// Deepest nesting of parentheses accepted.
pub const MAX_DEPTH: usize = 64;

/// A syntax error: where, what was expected, what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected} at position {pos}, found {found}")]
pub struct ParseError {
    /// Byte offset into the expression.
    pub pos: usize,
    pub expected: String,
    pub found: String,
}

impl ParseError {
    pub fn new(pos: usize, expected: impl Into<String>, found: String) -> Self {
        ParseError {
            pos,
            expected: expected.into(),
            found,
        }
    }
}

/// Which keys an expression may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Plain attribute paths (queue `target_workers`, workflow filters, list filters).
    Attributes,
    /// Workflow target expressions: keys start with `task.` or `worker.`.
    Target,
    /// `skip_if`: `workers.available`, `workers.unavailable`, `workers.<activity sid>`.
    SkipIf,
}

impl Scope {
    /// `Err(what was expected)` if `key` is not allowed here.
    pub(crate) fn check(self, key: &Key) -> Result<(), &'static str> {
        match self {
            Scope::Attributes => Ok(()),
            Scope::Target => match key.root() {
                Some("task" | "worker") if key.segs.len() >= 2 => Ok(()),
                _ => Err("a key starting with task. or worker."),
            },
            Scope::SkipIf => match (key.root(), key.rest()) {
                (Some("workers"), [Seg::Field(f)])
                    if f == "available"
                        || f == "unavailable"
                        || (f.len() == 34
                            && f.starts_with("WA")
                            && f[2..].bytes().all(|b| b.is_ascii_hexdigit())) =>
                {
                    Ok(())
                }
                _ => Err("workers.available, workers.unavailable or workers.<activity sid>"),
            },
        }
    }
}

#[cfg(test)]
mod tests;
