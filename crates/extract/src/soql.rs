//! SOQL text built safely: field lists, and string literals escaped as SOQL requires.

/// `SELECT fields FROM object [WHERE conditions] [ORDER BY ...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoqlQuery {
    pub object: String,
    pub fields: Vec<String>,
    /// Conditions every row meets (joined with AND).
    pub conditions: Vec<String>,
    pub order_by: Option<String>,
    pub limit: Option<u32>,
}

impl SoqlQuery {
    pub fn new(object: impl Into<String>, fields: impl IntoIterator<Item = impl Into<String>>) -> SoqlQuery {
        SoqlQuery {
            object: object.into(),
            fields: fields.into_iter().map(Into::into).collect(),
            conditions: Vec::new(),
            order_by: None,
            limit: None,
        }
    }

    /// Adds a condition; a query with several keeps the rows that meet them all.
    pub fn filter(mut self, condition: impl Into<String>) -> SoqlQuery {
        self.conditions.push(condition.into());
        self
    }

    pub fn order_by(mut self, order: impl Into<String>) -> SoqlQuery {
        self.order_by = Some(order.into());
        self
    }

    pub fn limit(mut self, rows: u32) -> SoqlQuery {
        self.limit = Some(rows);
        self
    }
}

impl std::fmt::Display for SoqlQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SELECT {} FROM {}", self.fields.join(", "), self.object)?;
        match self.conditions.as_slice() {
            [] => {}
            [only] => write!(f, " WHERE {only}")?,
            all => write!(f, " WHERE ({})", all.join(") AND ("))?,
        }
        if let Some(order) = &self.order_by {
            write!(f, " ORDER BY {order}")?;
        }
        if let Some(limit) = self.limit {
            write!(f, " LIMIT {limit}")?;
        }
        Ok(())
    }
}

/// `2024-01-15T10:30:00Z`: SOQL's unquoted datetime literal, from UTC milliseconds.
pub fn datetime(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// A `LIKE` pattern matching text that contains `value`: quoted like any literal, with `%` and
/// `_` escaped too so they match themselves.
pub fn like_contains(value: &str) -> String {
    let mut out = String::from("'%");
    for c in value.chars() {
        match c {
            '%' => out.push_str("\\%"),
            '_' => out.push_str("\\_"),
            c => escape_into(&mut out, c),
        }
    }
    out.push_str("%'");
    out
}

/// A string as a quoted SOQL literal: backslash, quotes and control characters escaped.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        escape_into(&mut out, c);
    }
    out.push('\'');
    out
}

fn escape_into(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\'' => out.push_str("\\'"),
        '"' => out.push_str("\\\""),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(quote(r"O'Brien \ Co"), r"'O\'Brien \\ Co'");
        assert_eq!(like_contains(r"50%_O'B\"), r"'%50\%\_O\'B\\%'");
        let q = SoqlQuery::new("User", ["Id", "Profile.Name"]).filter("IsActive = true").order_by("Id");
        assert_eq!(q.to_string(), "SELECT Id, Profile.Name FROM User WHERE IsActive = true ORDER BY Id");
        let q = q.filter("CompanyName LIKE '%a%' OR CompanyName LIKE '%b%'");
        assert_eq!(
            q.to_string(),
            "SELECT Id, Profile.Name FROM User WHERE (IsActive = true) AND (CompanyName LIKE '%a%' OR \
             CompanyName LIKE '%b%') ORDER BY Id",
            "conditions combine, each kept whole"
        );
    }
}
