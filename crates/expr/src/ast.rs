//! The syntax tree, its parser (recursive descent over [`crate::lexer`] tokens) and its
//! canonical printer. Printing a tree and parsing the text gives the same tree back.

use std::fmt;

use crate::lexer::{Tok, lex};
use crate::{MAX_DEPTH, MAX_LEN, ParseError, Scope};

/// A boolean expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Two or more alternatives.
    Or(Vec<Expr>),
    /// Two or more conditions that must all hold.
    And(Vec<Expr>),
    Cmp(Box<Cmp>),
}

/// `left op right`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cmp {
    pub left: Operand,
    pub op: Op,
    pub right: Operand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `HAS` / `>-`: the left array contains the right value.
    Has,
    /// `IN` / `<-`: the left value is an element of the right array.
    In,
    NotIn,
    /// Substring test on strings.
    Contains,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Has => "HAS",
            Op::In => "IN",
            Op::NotIn => "NOT IN",
            Op::Contains => "CONTAINS",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Lit(Lit),
    Key(Key),
    /// An array literal such as `["en", "es"]`.
    Array(Vec<Lit>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

/// An attribute path: `customer.tier`, `skills[0]`, `task.language`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub segs: Vec<Seg>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    Field(String),
    Index(usize),
}

impl Key {
    /// The first segment, when it is a field name.
    pub fn root(&self) -> Option<&str> {
        match self.segs.first() {
            Some(Seg::Field(f)) => Some(f),
            _ => None,
        }
    }

    /// The key without its first segment (`task.a.b` → `a.b`).
    pub fn rest(&self) -> &[Seg] {
        self.segs.get(1..).unwrap_or(&[])
    }
}

/// Parses an expression whose keys belong to `scope`.
pub fn parse(src: &str, scope: Scope) -> Result<Expr, ParseError> {
    let mut p = Parser::new(src, scope)?;
    let e = p.or()?;
    p.expect_end("AND, OR or the end of the expression")?;
    Ok(e)
}

/// Parses a single key such as `task.last_agent_sid` (for `known_worker_sid` and friends).
pub fn parse_key(src: &str, scope: Scope) -> Result<Key, ParseError> {
    let mut p = Parser::new(src, scope)?;
    let at = p.at();
    let key = p.key("a key")?;
    scope
        .check(&key)
        .map_err(|expected| ParseError::new(at, expected, format!("'{key}'")))?;
    p.expect_end("the end of the key")?;
    Ok(key)
}

/// One `order_by` clause: `worker.<attribute> ASC|DESC`.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    pub key: Key,
    pub descending: bool,
}

/// Parses `worker.a ASC, worker.b DESC` (direction defaults to ASC).
pub fn parse_order_by(src: &str) -> Result<Vec<OrderBy>, ParseError> {
    let mut p = Parser::new(src, Scope::Attributes)?;
    let mut out = Vec::new();
    loop {
        let at = p.at();
        let key = p.key("a worker attribute such as worker.level")?;
        if key.root() != Some("worker") || key.segs.len() < 2 {
            return Err(ParseError::new(
                at,
                "a key starting with worker.",
                format!("'{key}'"),
            ));
        }
        let descending = match p.peek() {
            Tok::Asc => {
                p.bump();
                false
            }
            Tok::Desc => {
                p.bump();
                true
            }
            _ => false,
        };
        out.push(OrderBy { key, descending });
        match p.peek() {
            Tok::Comma => p.bump(),
            _ => break,
        }
    }
    p.expect_end("ASC, DESC, ',' or the end of the clause list")?;
    Ok(out)
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    scope: Scope,
    depth: usize,
}

impl Parser {
    fn new(src: &str, scope: Scope) -> Result<Parser, ParseError> {
        if src.len() > MAX_LEN {
            return Err(ParseError::new(
                MAX_LEN,
                format!("at most {MAX_LEN} bytes"),
                "a longer expression".to_string(),
            ));
        }
        Ok(Parser {
            toks: lex(src)?,
            pos: 0,
            scope,
            depth: 0,
        })
    }

    fn peek(&self) -> &Tok {
        &self.toks[self.pos].0
    }
    fn at(&self) -> usize {
        self.toks[self.pos].1
    }
    fn bump(&mut self) {
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
    }
    fn fail<T>(&self, expected: &str) -> Result<T, ParseError> {
        Err(ParseError::new(self.at(), expected, self.peek().describe()))
    }
    fn expect_end(&self, expected: &str) -> Result<(), ParseError> {
        match self.peek() {
            Tok::End => Ok(()),
            _ => self.fail(expected),
        }
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut items = vec![self.and()?];
        while *self.peek() == Tok::Or {
            self.bump();
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut items = vec![self.primary()?];
        while *self.peek() == Tok::And {
            self.bump();
            items.push(self.primary()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        if *self.peek() == Tok::LParen {
            if self.depth >= MAX_DEPTH {
                return self.fail(&format!("at most {MAX_DEPTH} nested parentheses"));
            }
            self.bump();
            self.depth += 1;
            let e = self.or()?;
            self.depth -= 1;
            if *self.peek() != Tok::RParen {
                return self.fail("')'");
            }
            self.bump();
            return Ok(e);
        }
        let left = self.operand()?;
        let op = match self.peek() {
            Tok::Eq => Op::Eq,
            Tok::Ne => Op::Ne,
            Tok::Lt => Op::Lt,
            Tok::Le => Op::Le,
            Tok::Gt => Op::Gt,
            Tok::Ge => Op::Ge,
            Tok::Has | Tok::HasArrow => Op::Has,
            Tok::In | Tok::InArrow => Op::In,
            Tok::Contains => Op::Contains,
            Tok::Not => {
                self.bump();
                if *self.peek() != Tok::In {
                    return self.fail("IN after NOT");
                }
                Op::NotIn
            }
            _ => return self.fail("an operator (==, !=, <, <=, >, >=, HAS, IN, NOT IN, CONTAINS)"),
        };
        self.bump();
        let right = self.operand()?;
        Ok(Expr::Cmp(Box::new(Cmp { left, op, right })))
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        match self.peek() {
            Tok::Ident(_) => {
                let at = self.at();
                let key = self.key("a key")?;
                self.scope
                    .check(&key)
                    .map_err(|expected| ParseError::new(at, expected, format!("'{key}'")))?;
                Ok(Operand::Key(key))
            }
            Tok::LBracket => {
                self.bump();
                let mut items = Vec::new();
                if *self.peek() != Tok::RBracket {
                    loop {
                        items.push(self.literal("a string, number, true, false or null")?);
                        match self.peek() {
                            Tok::Comma => self.bump(),
                            Tok::RBracket => break,
                            _ => return self.fail("',' or ']'"),
                        }
                    }
                }
                self.bump();
                Ok(Operand::Array(items))
            }
            _ => Ok(Operand::Lit(self.literal(
                "a key, string, number, true, false, null, array or '('",
            )?)),
        }
    }

    fn literal(&mut self, expected: &str) -> Result<Lit, ParseError> {
        let lit = match self.peek() {
            Tok::Str(s) => Lit::Str(s.clone()),
            Tok::Num(n) => Lit::Num(*n),
            Tok::True => Lit::Bool(true),
            Tok::False => Lit::Bool(false),
            Tok::Null => Lit::Null,
            _ => return self.fail(expected),
        };
        self.bump();
        Ok(lit)
    }

    fn key(&mut self, expected: &str) -> Result<Key, ParseError> {
        let Tok::Ident(first) = self.peek().clone() else {
            return self.fail(expected);
        };
        self.bump();
        let mut segs = vec![Seg::Field(first)];
        loop {
            match self.peek() {
                Tok::Dot => {
                    self.bump();
                    match self.peek().clone() {
                        Tok::Ident(f) => segs.push(Seg::Field(f)),
                        _ => return self.fail("an attribute name after '.'"),
                    }
                    self.bump();
                }
                Tok::LBracket => {
                    self.bump();
                    match *self.peek() {
                        Tok::Num(n) if n >= 0.0 && n.fract() == 0.0 && n < 1e9 => {
                            segs.push(Seg::Index(n as usize))
                        }
                        _ => return self.fail("an array index (0, 1, …)"),
                    }
                    self.bump();
                    if *self.peek() != Tok::RBracket {
                        return self.fail("']'");
                    }
                    self.bump();
                }
                _ => return Ok(Key { segs }),
            }
        }
    }
}

// ----- printing ------------------------------------------------------------------------------

impl fmt::Display for Expr {
    /// Canonical text: keywords upper-case, strings double-quoted, every nested AND/OR group
    /// parenthesized, so that parsing the text gives this exact tree back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = |f: &mut fmt::Formatter<'_>, items: &[Expr], sep: &str| {
            for (i, e) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                match e {
                    Expr::Cmp(_) => write!(f, "{e}")?,
                    _ => write!(f, "({e})")?,
                }
            }
            Ok(())
        };
        match self {
            Expr::Or(items) => group(f, items, " OR "),
            Expr::And(items) => group(f, items, " AND "),
            Expr::Cmp(c) => write!(f, "{} {} {}", c.left, c.op.as_str(), c.right),
        }
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Lit(l) => write!(f, "{l}"),
            Operand::Key(k) => write!(f, "{k}"),
            Operand::Array(items) => {
                f.write_str("[")?;
                for (i, l) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{l}")?;
                }
                f.write_str("]")
            }
        }
    }
}

impl fmt::Display for Lit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lit::Str(s) => {
                f.write_str("\"")?;
                for c in s.chars() {
                    if c == '"' || c == '\\' {
                        f.write_str("\\")?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str("\"")
            }
            Lit::Num(n) => write!(f, "{n}"),
            Lit::Bool(b) => write!(f, "{b}"),
            Lit::Null => f.write_str("null"),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.segs.iter().enumerate() {
            match s {
                Seg::Field(name) if i == 0 => f.write_str(name)?,
                Seg::Field(name) => write!(f, ".{name}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}
