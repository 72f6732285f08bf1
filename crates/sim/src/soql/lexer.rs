//! SOQL tokens, with the character offset each starts at (for Salesforce's caret diagrams).

use super::SoqlError;
use chrono::{DateTime, NaiveDate, NaiveDateTime};

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    Str(String),
    Number(f64),
    DateTime(i64),
    Date(i32),
    Comma,
    Dot,
    LParen,
    RParen,
    Op(&'static str),
    End,
}

impl Tok {
    pub fn text(&self) -> String {
        match self {
            Tok::Ident(s) => s.clone(),
            Tok::Str(s) => format!("'{s}'"),
            Tok::Number(n) => n.to_string(),
            Tok::DateTime(_) | Tok::Date(_) => "date literal".into(),
            Tok::Comma => ",".into(),
            Tok::Dot => ".".into(),
            Tok::LParen => "(".into(),
            Tok::RParen => ")".into(),
            Tok::Op(op) => (*op).into(),
            Tok::End => "<EOF>".into(),
        }
    }

    pub fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self, Tok::Ident(s) if s.eq_ignore_ascii_case(keyword))
    }
}

pub fn tokenize(soql: &str) -> Result<Vec<(Tok, usize)>, SoqlError> {
    let chars: Vec<char> = soql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let tok = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            ',' => {
                i += 1;
                Tok::Comma
            }
            '.' => {
                i += 1;
                Tok::Dot
            }
            '(' => {
                i += 1;
                Tok::LParen
            }
            ')' => {
                i += 1;
                Tok::RParen
            }
            '=' => {
                i += 1;
                Tok::Op("=")
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                i += 2;
                Tok::Op("!=")
            }
            '<' if chars.get(i + 1) == Some(&'>') => {
                i += 2;
                Tok::Op("!=")
            }
            '<' if chars.get(i + 1) == Some(&'=') => {
                i += 2;
                Tok::Op("<=")
            }
            '>' if chars.get(i + 1) == Some(&'=') => {
                i += 2;
                Tok::Op(">=")
            }
            '<' => {
                i += 1;
                Tok::Op("<")
            }
            '>' => {
                i += 1;
                Tok::Op(">")
            }
            '\'' => {
                let (s, next) = string_literal(soql, &chars, i)?;
                i = next;
                Tok::Str(s)
            }
            c if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) => {
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || ":.+-".contains(chars[j])) {
                    j += 1;
                }
                let text: String = chars[i..j].iter().collect();
                i = j;
                number_or_date(&text).ok_or_else(|| SoqlError::malformed(soql, start, &text))?
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                let text: String = chars[i..j].iter().collect();
                i = j;
                Tok::Ident(text)
            }
            other => return Err(SoqlError::malformed(soql, start, &other.to_string())),
        };
        out.push((tok, start));
    }
    out.push((Tok::End, chars.len()));
    Ok(out)
}

/// `\%` and `\_` in a string literal: a `%` and `_` that LIKE must take literally. They are kept
/// apart from the wildcards as private-use characters until a LIKE (or a comparison) reads them.
pub const LIKE_PERCENT: char = '\u{E000}';
pub const LIKE_UNDERSCORE: char = '\u{E001}';

/// A quoted string with SOQL's backslash escapes.
fn string_literal(soql: &str, chars: &[char], start: usize) -> Result<(String, usize), SoqlError> {
    let mut s = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err(SoqlError::malformed(soql, start, "'")),
            Some('\'') => return Ok((s, i + 1)),
            Some('\\') => {
                let escaped = chars.get(i + 1).copied();
                match escaped {
                    Some('\'') | Some('"') | Some('\\') => s.push(escaped.unwrap_or_default()),
                    Some('n') => s.push('\n'),
                    Some('r') => s.push('\r'),
                    Some('t') => s.push('\t'),
                    Some('b') => s.push('\u{8}'),
                    Some('f') => s.push('\u{c}'),
                    Some('%') => s.push(LIKE_PERCENT),
                    Some('_') => s.push(LIKE_UNDERSCORE),
                    Some('u') => {
                        let hex: String = chars.iter().skip(i + 2).take(4).collect();
                        let c = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                        s.push(c.ok_or_else(|| SoqlError::malformed(soql, i, "\\u"))?);
                        i += 4;
                    }
                    _ => {
                        return Err(SoqlError {
                            code: "MALFORMED_QUERY",
                            message: "Invalid string literal: Illegal escape sequence".into(),
                        });
                    }
                }
                i += 2;
            }
            Some(c) => {
                s.push(*c);
                i += 1;
            }
        }
    }
}

fn number_or_date(text: &str) -> Option<Tok> {
    if let Ok(n) = text.parse::<f64>() {
        return Some(Tok::Number(n));
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(Tok::Date(crate::value::days_from_date(date)));
    }
    if let Some(utc) = text.strip_suffix('Z') {
        let t = NaiveDateTime::parse_from_str(utc, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
        return Some(Tok::DateTime(t.and_utc().timestamp_millis()));
    }
    DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%:z").ok().map(|t| Tok::DateTime(t.timestamp_millis()))
}
