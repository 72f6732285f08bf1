//! Salesforce's value formats.

use chrono::{DateTime, NaiveDate};

/// `2024-01-15T10:30:00.000+0000` (an offset without a colon, which RFC 3339 parsers reject) or
/// the RFC 3339 form; milliseconds since the epoch, UTC.
pub fn parse_datetime(text: &str) -> Option<i64> {
    // Every datetime Salesforce sends has one shape: read it by position (a user row has half a
    // dozen, and a format-string parse of each was a good share of a page's CPU).
    salesforce_datetime(text.as_bytes()).or_else(|| {
        DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
            .or_else(|_| DateTime::parse_from_rfc3339(text))
            .ok()
            .map(|t| t.timestamp_millis())
    })
}

/// `2024-01-15`: days since the epoch.
pub fn parse_date(text: &str) -> Option<i32> {
    if let [_, _, _, _, b'-', _, _, b'-', _, _] = text.as_bytes() {
        let b = text.as_bytes();
        let (y, m, d) = (number(&b[0..4])?, number(&b[5..7])?, number(&b[8..10])?);
        return i32::try_from(days_from_civil(y, m, d)?).ok();
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from((date - epoch).num_days()).ok()
}

/// `2024-01-15T10:30:00.000+0000`, the REST API's shape, in UTC milliseconds; `None` for any
/// other shape (the general parser then tries).
fn salesforce_datetime(b: &[u8]) -> Option<i64> {
    let [_, _, _, _, b'-', _, _, b'-', _, _, b'T', _, _, b':', _, _, b':', _, _, b'.', _, _, _, sign, _, _, _, _] = b
    else {
        return None;
    };
    let (y, mo, d) = (number(&b[0..4])?, number(&b[5..7])?, number(&b[8..10])?);
    let (h, mi, s, ms) = (number(&b[11..13])?, number(&b[14..16])?, number(&b[17..19])?, number(&b[20..23])?);
    let (oh, om) = (number(&b[24..26])?, number(&b[26..28])?);
    if h > 23 || mi > 59 || s > 59 || oh > 23 || om > 59 {
        return None;
    }
    let offset = match sign {
        b'+' => oh * 3600 + om * 60,
        b'-' => -(oh * 3600 + om * 60),
        _ => return None,
    };
    let seconds = days_from_civil(y, mo, d)? * 86_400 + h * 3600 + mi * 60 + s - offset;
    Some(seconds * 1000 + ms)
}

/// ASCII digits as a number.
fn number(digits: &[u8]) -> Option<i64> {
    digits.iter().try_fold(0i64, |n, &c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')))
}

/// Days from 1970-01-01 to a valid proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`); `None` for a month or day that does not exist.
fn days_from_civil(y: i64, m: i64, d: i64) -> Option<i64> {
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&m) || d < 1 || d > month_days[(m - 1) as usize] {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
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

    /// The positional parser agrees with chrono's on every day of four centuries (leap years,
    /// the Gregorian rules) at many times and offsets, and refuses what does not exist.
    #[test]
    fn the_fast_parser_agrees_with_chrono() {
        let chrono_millis =
            |text: &str| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z").ok().map(|t| t.timestamp_millis());
        let chrono_days = |text: &str| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| NaiveDate::from_ymd_opt(1970, 1, 1).map(|e| (d - e).num_days() as i32))
        };
        let mut day = NaiveDate::from_ymd_opt(1800, 1, 1).unwrap_or_default();
        let mut checked = 0;
        while day < NaiveDate::from_ymd_opt(2200, 1, 1).unwrap_or_default() {
            let date = day.format("%Y-%m-%d").to_string();
            assert_eq!(parse_date(&date), chrono_days(&date), "{date}");
            let n = checked % 97;
            let time = format!(
                "{date}T{:02}:{:02}:{:02}.{:03}{}{:02}{:02}",
                n % 24,
                n % 60,
                (n * 7) % 60,
                n * 9,
                if n % 2 == 0 { '+' } else { '-' },
                n % 15,
                (n % 4) * 15
            );
            assert_eq!(salesforce_datetime(time.as_bytes()), chrono_millis(&time), "{time}");
            day = day.succ_opt().unwrap_or(day);
            checked += 1;
        }
        assert!(checked > 146_000);
        for impossible in [
            "2023-02-29T00:00:00.000+0000",
            "2024-13-01T00:00:00.000+0000",
            "2024-01-15T24:00:00.000+0000",
            "2024-01-15T10:30:00.000*0000",
        ] {
            assert_eq!(salesforce_datetime(impossible.as_bytes()), None, "{impossible}");
            assert_eq!(parse_datetime(impossible), chrono_millis(impossible), "{impossible}");
        }
        assert_eq!(parse_date("2023-02-29"), None);
    }
}
