//! SOQL syntax: `SELECT fields | COUNT() FROM object [WHERE ...] [ORDER BY ...] [LIMIT n] [OFFSET n]`.

use super::SoqlError;
use super::lexer::{Tok, tokenize};

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub select: Select,
    pub object: String,
    pub object_pos: usize,
    pub filter: Option<Expr>,
    pub order_by: Vec<OrderKey>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Select {
    Count,
    Fields(Vec<FieldRef>),
}

/// A field path as written (`Profile.UserLicense.Name`) and where it starts in the query.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldRef {
    pub path: Vec<String>,
    pub pos: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Compare { field: FieldRef, op: &'static str, value: Literal },
    In { field: FieldRef, values: Vec<Literal>, negated: bool },
    Like { field: FieldRef, pattern: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Number(f64),
    Str(String),
    DateTime(i64),
    Date(i32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderKey {
    pub field: FieldRef,
    pub descending: bool,
    pub nulls_last: bool,
}

pub fn parse(soql: &str) -> Result<Query, SoqlError> {
    let tokens = tokenize(soql)?;
    let mut p = Parser { soql, tokens, at: 0 };
    let query = p.query()?;
    p.expect_end()?;
    Ok(query)
}

struct Parser<'a> {
    soql: &'a str,
    tokens: Vec<(Tok, usize)>,
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.tokens[self.at].0
    }

    fn pos(&self) -> usize {
        self.tokens[self.at].1
    }

    fn unexpected(&self) -> SoqlError {
        SoqlError::malformed(self.soql, self.pos(), &self.peek().text())
    }

    fn bump(&mut self) -> Tok {
        let tok = self.tokens[self.at].0.clone();
        if self.at + 1 < self.tokens.len() {
            self.at += 1;
        }
        tok
    }

    fn keyword(&mut self, keyword: &str) -> bool {
        let found = self.peek().is_keyword(keyword);
        if found {
            self.bump();
        }
        found
    }

    fn expect_keyword(&mut self, keyword: &str) -> Result<(), SoqlError> {
        if self.keyword(keyword) { Ok(()) } else { Err(self.unexpected()) }
    }

    fn expect(&mut self, tok: Tok) -> Result<(), SoqlError> {
        if *self.peek() == tok {
            self.bump();
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn expect_end(&self) -> Result<(), SoqlError> {
        if *self.peek() == Tok::End { Ok(()) } else { Err(self.unexpected()) }
    }

    fn query(&mut self) -> Result<Query, SoqlError> {
        self.expect_keyword("SELECT")?;
        let select =
            if self.peek().is_keyword("COUNT") && self.tokens.get(self.at + 1).map(|t| &t.0) == Some(&Tok::LParen) {
                self.bump();
                self.expect(Tok::LParen)?;
                self.expect(Tok::RParen)?;
                Select::Count
            } else {
                let mut fields = vec![self.field()?];
                while *self.peek() == Tok::Comma {
                    self.bump();
                    fields.push(self.field()?);
                }
                Select::Fields(fields)
            };
        self.expect_keyword("FROM")?;
        let object_pos = self.pos();
        let object = match self.bump() {
            Tok::Ident(name) => name,
            _ => return Err(SoqlError::malformed(self.soql, object_pos, &self.tokens[self.at - 1].0.text())),
        };
        let filter = if self.keyword("WHERE") { Some(self.or_expr()?) } else { None };
        let mut order_by = Vec::new();
        if self.keyword("ORDER") {
            self.expect_keyword("BY")?;
            loop {
                order_by.push(self.order_key()?);
                if *self.peek() != Tok::Comma {
                    break;
                }
                self.bump();
            }
        }
        let limit = if self.keyword("LIMIT") { Some(self.count()?) } else { None };
        let offset = if self.keyword("OFFSET") { Some(self.count()?) } else { None };
        Ok(Query { select, object, object_pos, filter, order_by, limit, offset })
    }

    fn count(&mut self) -> Result<usize, SoqlError> {
        match self.peek().clone() {
            Tok::Number(n) if n >= 0.0 && n.fract() == 0.0 => {
                self.bump();
                Ok(n as usize)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn field(&mut self) -> Result<FieldRef, SoqlError> {
        let pos = self.pos();
        let mut path = Vec::new();
        loop {
            match self.peek().clone() {
                Tok::Ident(name) if !is_reserved(&name) || !path.is_empty() => {
                    self.bump();
                    path.push(name);
                }
                _ => return Err(self.unexpected()),
            }
            if *self.peek() != Tok::Dot {
                return Ok(FieldRef { path, pos });
            }
            self.bump();
        }
    }

    fn order_key(&mut self) -> Result<OrderKey, SoqlError> {
        let field = self.field()?;
        let descending = self.keyword("DESC") || {
            self.keyword("ASC");
            false
        };
        // Salesforce's defaults: nulls first ascending, nulls last descending.
        let mut nulls_last = descending;
        if self.keyword("NULLS") {
            nulls_last = if self.keyword("LAST") {
                true
            } else {
                self.expect_keyword("FIRST")?;
                false
            };
        }
        Ok(OrderKey { field, descending, nulls_last })
    }

    /// SOQL refuses `a AND b OR c`: mixing AND and OR needs parentheses.
    fn or_expr(&mut self) -> Result<Expr, SoqlError> {
        let first = self.unary()?;
        let joiner = if self.peek().is_keyword("AND") {
            "AND"
        } else if self.peek().is_keyword("OR") {
            "OR"
        } else {
            return Ok(first);
        };
        let mut terms = vec![first];
        while self.keyword(joiner) {
            terms.push(self.unary()?);
        }
        if self.peek().is_keyword("AND") || self.peek().is_keyword("OR") {
            return Err(self.unexpected());
        }
        Ok(if joiner == "AND" { Expr::And(terms) } else { Expr::Or(terms) })
    }

    fn unary(&mut self) -> Result<Expr, SoqlError> {
        if self.keyword("NOT") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if *self.peek() == Tok::LParen {
            self.bump();
            let inner = self.or_expr()?;
            self.expect(Tok::RParen)?;
            return Ok(inner);
        }
        self.condition()
    }

    fn condition(&mut self) -> Result<Expr, SoqlError> {
        let field = self.field()?;
        if self.keyword("LIKE") {
            return match self.bump() {
                Tok::Str(pattern) => Ok(Expr::Like { field, pattern }),
                _ => {
                    Err(SoqlError::malformed(self.soql, self.tokens[self.at - 1].1, &self.tokens[self.at - 1].0.text()))
                }
            };
        }
        let negated = self.keyword("NOT");
        if negated || self.peek().is_keyword("IN") {
            self.expect_keyword("IN")?;
            self.expect(Tok::LParen)?;
            let mut values = vec![self.literal()?];
            while *self.peek() == Tok::Comma {
                self.bump();
                values.push(self.literal()?);
            }
            self.expect(Tok::RParen)?;
            return Ok(Expr::In { field, values, negated });
        }
        let op = match self.peek() {
            Tok::Op(op) => *op,
            _ => return Err(self.unexpected()),
        };
        self.bump();
        let value = self.literal()?;
        Ok(Expr::Compare { field, op, value })
    }

    fn literal(&mut self) -> Result<Literal, SoqlError> {
        let lit = match self.peek().clone() {
            Tok::Str(s) => Literal::Str(s),
            Tok::Number(n) => Literal::Number(n),
            Tok::DateTime(t) => Literal::DateTime(t),
            Tok::Date(d) => Literal::Date(d),
            Tok::Ident(word) if word.eq_ignore_ascii_case("null") => Literal::Null,
            Tok::Ident(word) if word.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Tok::Ident(word) if word.eq_ignore_ascii_case("false") => Literal::Bool(false),
            _ => return Err(self.unexpected()),
        };
        self.bump();
        Ok(lit)
    }
}

fn is_reserved(word: &str) -> bool {
    ["FROM", "WHERE", "SELECT", "AND", "OR", "NOT", "ORDER", "BY", "LIMIT", "OFFSET", "IN", "LIKE", "NULL"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_connector_subset() {
        let q = parse(
            "SELECT Id, Profile.UserLicense.Name FROM User WHERE (IsActive = true OR Name LIKE 'a\\_%') \
             AND SystemModstamp >= 2024-01-15T10:30:00Z AND CompanyName NOT IN ('O\\'Brien', null) \
             ORDER BY SystemModstamp DESC NULLS FIRST, Id LIMIT 10",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.object, "User");
        assert_eq!(q.limit, Some(10));
        assert_eq!(q.order_by.len(), 2);
        assert!(q.order_by[0].descending && !q.order_by[0].nulls_last);
        let Some(Expr::And(terms)) = &q.filter else { panic!("{:?}", q.filter) };
        assert_eq!(terms.len(), 3);
        assert!(
            matches!(&terms[2], Expr::In { negated: true, values, .. } if values[0] == Literal::Str("O'Brien".into()))
        );
        assert!(matches!(&terms[1], Expr::Compare { value: Literal::DateTime(1_705_314_600_000), .. }));
    }

    #[test]
    fn malformed_queries_point_at_the_token() {
        let err = parse("SELECT Id Frm User").unwrap_err();
        assert_eq!(err.code, "MALFORMED_QUERY");
        assert!(err.message.ends_with("ERROR at Row:1:Column:11\nunexpected token: 'Frm'"), "{}", err.message);
        assert_eq!(parse("SELECT Id FROM User WHERE a = 1 AND b = 2 OR c = 3").unwrap_err().code, "MALFORMED_QUERY");
        assert_eq!(parse("SELECT FROM User").unwrap_err().code, "MALFORMED_QUERY");
        assert_eq!(parse("SELECT Id FROM User WHERE Name = 'open").unwrap_err().code, "MALFORMED_QUERY");
        assert!(parse("SELECT COUNT() FROM User").is_ok_and(|q| q.select == Select::Count));
        assert!(parse("SELECT Id FROM User WHERE CreatedDate > 2024-01-15T10:30:00+01:00").is_ok());
    }
}
