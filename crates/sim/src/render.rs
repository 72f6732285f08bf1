//! Query results in Salesforce's JSON shape, written straight into a byte buffer: pages are
//! rendered from the prepared row list on request, so the simulator is never a benchmark's
//! bottleneck.

use crate::objects::ObjectDef;
use crate::soql::SelNode;
use crate::store::{OrgData, Row};
use crate::value::{Value, format_date};
use std::io::Write;

/// One page of a query: `{"totalSize", "done", ["nextRecordsUrl",] "records"}`.
pub struct PageSpec<'a> {
    pub api_version: &'a str,
    pub total_size: usize,
    pub next_records_url: Option<String>,
}

pub fn render_page(
    out: &mut Vec<u8>,
    data: &OrgData,
    object: &'static ObjectDef,
    selection: &[SelNode],
    rows: &[u32],
    page: &PageSpec<'_>,
) {
    let _ = write!(out, "{{\"totalSize\":{},\"done\":{}", page.total_size, page.next_records_url.is_none());
    if let Some(next) = &page.next_records_url {
        out.extend_from_slice(b",\"nextRecordsUrl\":");
        string(out, next);
    }
    out.extend_from_slice(b",\"records\":[");
    let table = data.table(object.name);
    for (n, &row) in rows.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        record(out, data, object, &table.rows[row as usize], selection, page.api_version);
    }
    out.extend_from_slice(b"]}");
}

fn record(out: &mut Vec<u8>, data: &OrgData, object: &ObjectDef, row: &Row, selection: &[SelNode], version: &str) {
    let id = row[0].as_str().unwrap_or_default();
    out.extend_from_slice(b"{\"attributes\":{\"type\":\"");
    out.extend_from_slice(object.name.as_bytes());
    out.extend_from_slice(b"\",\"url\":\"/services/data/v");
    out.extend_from_slice(version.as_bytes());
    out.extend_from_slice(b"/sobjects/");
    out.extend_from_slice(object.name.as_bytes());
    out.push(b'/');
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b"\"}");
    for node in selection {
        match node {
            SelNode::Field { index, name } => {
                key(out, name);
                value(out, &row[*index]);
            }
            SelNode::Parent { name, lookup, object: parent, children } => {
                key(out, name);
                let parent_row = row[*lookup].as_str().and_then(|id| data.table(parent.name).by_id(id));
                match parent_row {
                    Some(parent_row) => record(out, data, parent, parent_row, children, version),
                    None => out.extend_from_slice(b"null"),
                }
            }
        }
    }
    out.push(b'}');
}

fn key(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

fn value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Str(s) => string(out, s),
        Value::DateTime(t) => {
            out.push(b'"');
            push_datetime(out, *t);
            out.push(b'"');
        }
        Value::Date(d) => {
            let _ = write!(out, "\"{}\"", format_date(*d));
        }
    }
}

fn string(out: &mut Vec<u8>, s: &str) {
    // Most values need no escaping: copy them. The rest go through serde_json's escaping.
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// `n` as exactly `width` decimal digits (zero-padded).
fn push_digits(out: &mut Vec<u8>, n: i64, width: usize) {
    let mut buf = [b'0'; 4];
    let mut n = n;
    for slot in buf[..width].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&buf[..width]);
}

/// `2024-01-15T10:30:00.000+0000`, written digit by digit: datetimes are most of a User record
/// and chrono's formatter, which interprets its format string on every call, was the simulator's
/// bottleneck. `format_datetime` is the reference this is tested against.
fn push_datetime(out: &mut Vec<u8>, millis: i64) {
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let (days, day_secs) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    push_digits(out, year, 4);
    for (n, width, separator) in [
        (0, 0, b'-'),
        (month, 2, b'-'),
        (day, 2, b'T'),
        (day_secs / 3600, 2, b':'),
        (day_secs / 60 % 60, 2, b':'),
        (day_secs % 60, 2, b'.'),
        (ms, 3, b'+'),
    ] {
        push_digits(out, n, width);
        out.push(separator);
    }
    out.extend_from_slice(b"0000");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::format_datetime;

    #[test]
    fn fast_datetimes_match_the_reference_formatter() {
        for millis in [0, 1_705_314_600_000, 951_782_400_000, 4_102_444_799_999, 1_709_210_096_123] {
            let mut out = Vec::new();
            push_datetime(&mut out, millis);
            assert_eq!(String::from_utf8_lossy(&out), format_datetime(millis), "{millis}");
        }
    }

    #[test]
    fn strings_are_escaped_only_when_needed() {
        let mut out = Vec::new();
        string(&mut out, "O'Brien \"Søn\" \\ 田中\n");
        assert_eq!(serde_json::from_slice::<String>(&out).ok().as_deref(), Some("O'Brien \"Søn\" \\ 田中\n"));
    }
}
