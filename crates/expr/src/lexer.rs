//! Tokens of the expression language, with the byte offset where each starts.

use crate::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// An attribute name segment (`languages`, `task`, `skills`).
    Ident(String),
    Str(String),
    Num(f64),
    True,
    False,
    Null,
    And,
    Or,
    Not,
    Has,
    In,
    Contains,
    Asc,
    Desc,
    /// `==` or `=`.
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `>-`, an alias of `HAS`.
    HasArrow,
    /// `<-`, an alias of `IN`.
    InArrow,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    End,
}

impl Tok {
    /// How the token is named in error messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Str(s) => format!("string \"{s}\""),
            Tok::Num(n) => format!("number {n}"),
            Tok::End => "end of expression".into(),
            other => format!("'{}'", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Tok::True => "true",
            Tok::False => "false",
            Tok::Null => "null",
            Tok::And => "AND",
            Tok::Or => "OR",
            Tok::Not => "NOT",
            Tok::Has => "HAS",
            Tok::In => "IN",
            Tok::Contains => "CONTAINS",
            Tok::Asc => "ASC",
            Tok::Desc => "DESC",
            Tok::Eq => "==",
            Tok::Ne => "!=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::HasArrow => ">-",
            Tok::InArrow => "<-",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Comma => ",",
            Tok::Dot => ".",
            Tok::Ident(_) | Tok::Str(_) | Tok::Num(_) | Tok::End => "",
        }
    }
}

/// Splits `src` into tokens; the last one is always [`Tok::End`].
pub fn lex(src: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let two = if i + 1 < b.len() {
            &b[i..i + 2]
        } else {
            &b[i..i + 1]
        };
        let (tok, len) = match two {
            b"==" => (Tok::Eq, 2),
            b"!=" => (Tok::Ne, 2),
            b"<=" => (Tok::Le, 2),
            b">=" => (Tok::Ge, 2),
            b">-" => (Tok::HasArrow, 2),
            b"<-" => (Tok::InArrow, 2),
            _ => match c {
                b'=' => (Tok::Eq, 1),
                b'<' => (Tok::Lt, 1),
                b'>' => (Tok::Gt, 1),
                b'(' => (Tok::LParen, 1),
                b')' => (Tok::RParen, 1),
                b'[' => (Tok::LBracket, 1),
                b']' => (Tok::RBracket, 1),
                b',' => (Tok::Comma, 1),
                b'.' if !b.get(i + 1).is_some_and(u8::is_ascii_digit) => (Tok::Dot, 1),
                b'\'' | b'"' => {
                    let (s, len) = string(src, i)?;
                    (Tok::Str(s), len)
                }
                b'0'..=b'9' | b'-' | b'.' => {
                    let (n, len) = number(src, i)?;
                    (Tok::Num(n), len)
                }
                c if c.is_ascii_alphabetic() || c == b'_' || c == b'$' || c == b'@' => {
                    let len = b[i..]
                        .iter()
                        .take_while(|c| {
                            c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$' | b'@')
                        })
                        .count();
                    (word(&src[i..i + len]), len)
                }
                _ => {
                    let ch = src[i..].chars().next().unwrap_or('?');
                    return Err(ParseError::new(
                        start,
                        "a key, value or operator",
                        format!("'{ch}'"),
                    ));
                }
            },
        };
        out.push((tok, start));
        i += len;
    }
    out.push((Tok::End, src.len()));
    Ok(out)
}

fn word(w: &str) -> Tok {
    // Keywords are case-insensitive: Twilio's docs use `AND`/`HAS`, its examples also `in`.
    match w.to_ascii_uppercase().as_str() {
        "AND" => Tok::And,
        "OR" => Tok::Or,
        "NOT" => Tok::Not,
        "HAS" => Tok::Has,
        "IN" => Tok::In,
        "CONTAINS" => Tok::Contains,
        "TRUE" => Tok::True,
        "FALSE" => Tok::False,
        "NULL" => Tok::Null,
        "ASC" => Tok::Asc,
        "DESC" => Tok::Desc,
        _ => Tok::Ident(w.to_string()),
    }
}

/// A quoted string starting at `at`; `\` escapes the next character.
fn string(src: &str, at: usize) -> Result<(String, usize), ParseError> {
    let quote = src.as_bytes()[at] as char;
    let mut out = String::new();
    let mut chars = src[at + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, e)) => out.push(e),
                None => break,
            },
            c if c == quote => return Ok((out, off + 2)),
            c => out.push(c),
        }
    }
    Err(ParseError::new(
        at,
        format!("a closing {quote}"),
        "end of expression".to_string(),
    ))
}

fn number(src: &str, at: usize) -> Result<(f64, usize), ParseError> {
    let b = &src.as_bytes()[at..];
    let mut len = usize::from(b[0] == b'-');
    len += b[len..].iter().take_while(|c| c.is_ascii_digit()).count();
    if b.get(len) == Some(&b'.') {
        len += 1;
        len += b[len..].iter().take_while(|c| c.is_ascii_digit()).count();
    }
    let text = &src[at..at + len];
    match text.parse::<f64>() {
        Ok(n) if n.is_finite() => Ok((n, len)),
        _ => Err(ParseError::new(at, "a number", format!("'{text}'"))),
    }
}
