//! Field values and types of the simulated org, and their Salesforce wire forms.

use chrono::{DateTime, NaiveDate, Utc};
use std::sync::Arc;

/// The Salesforce field types the simulated objects use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Id,
    Reference,
    String,
    Boolean,
    Int,
    DateTime,
    Date,
}

/// One field value. Strings are shared so cursors and snapshots stay cheap.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Str(Arc<str>),
    /// Milliseconds since the Unix epoch, UTC.
    DateTime(i64),
    /// Days since the Unix epoch.
    Date(i32),
}

impl Value {
    pub fn str(s: impl AsRef<str>) -> Value {
        Value::Str(Arc::from(s.as_ref()))
    }

    pub fn opt_str(s: Option<impl AsRef<str>>) -> Value {
        s.map_or(Value::Null, Value::str)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// `2024-01-15T10:30:00.000+0000`: Salesforce's datetime form (no colon in the offset).
pub fn format_datetime(millis: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(millis)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string())
        .unwrap_or_default()
}

pub fn format_date(days: i32) -> String {
    date_from_days(days).map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

pub fn date_from_days(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::Duration::days(days.into()))
}

pub fn days_from_date(date: NaiveDate) -> i32 {
    NaiveDate::from_ymd_opt(1970, 1, 1).map(|epoch| (date - epoch).num_days() as i32).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_use_the_salesforce_offset_form() {
        assert_eq!(format_datetime(1_705_314_600_000), "2024-01-15T10:30:00.000+0000");
        let days = days_from_date(NaiveDate::from_ymd_opt(2024, 1, 15).unwrap_or_default());
        assert_eq!(format_date(days), "2024-01-15");
    }
}
