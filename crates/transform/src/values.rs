//! Salesforce's value formats.

use chrono::{DateTime, NaiveDate};

/// `2024-01-15T10:30:00.000+0000` (an offset without a colon, which RFC 3339 parsers reject) or
/// the RFC 3339 form; milliseconds since the epoch, UTC.
pub fn parse_datetime(text: &str) -> Option<i64> {
    DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(text))
        .ok()
        .map(|t| t.timestamp_millis())
}

/// `2024-01-15`: days since the epoch.
pub fn parse_date(text: &str) -> Option<i32> {
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from((date - epoch).num_days()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salesforce_datetimes_are_utc_millis() {
        assert_eq!(parse_datetime("2024-01-15T10:30:00.000+0000"), Some(1_705_314_600_000));
        assert_eq!(parse_datetime("2024-01-15T11:30:00.000+0100"), Some(1_705_314_600_000));
        assert_eq!(parse_datetime("2024-01-15T10:30:00Z"), Some(1_705_314_600_000));
        assert_eq!(parse_datetime("15/01/2024"), None);
        assert_eq!(parse_date("1970-01-02"), Some(1));
    }
}
