//! How a page's records are decoded. Extraction knows Salesforce's envelopes (a REST page's
//! `totalSize`, `done`, `nextRecordsUrl`; a Bulk result set's CSV header), not sfetl's tables:
//! the caller's [`RecordDecoder`] turns the records themselves into whatever it keeps. The
//! pipeline decodes them straight into Arrow columns; [`JsonRecords`] keeps them as JSON maps.

use serde::Deserializer;
use serde_json::{Map, Value};

/// Decodes the records of one REST page or one slice of a Bulk result set.
///
/// A decoder should not fail on a value it does not expect: the page is then retried as if it
/// were garbled. It should keep the problem in its page and report it once the page is handed
/// over; only malformed JSON is an error of `decode_json`.
pub trait RecordDecoder: Clone + Send + Sync {
    /// What one page decodes into.
    type Page: Send;

    /// Decodes a REST page's `records` array: objects with nested parents (`Profile` holding
    /// `Name`), each with an `attributes` object nothing needs.
    fn decode_json<'de, D: Deserializer<'de>>(&self, records: D) -> Result<Self::Page, D::Error>;

    /// Decodes Bulk API CSV rows: `header` holds the field paths (`Profile.Name`), every value is
    /// text, an empty value is null.
    fn decode_csv(&self, header: &csv::StringRecord, rows: &[csv::StringRecord]) -> Self::Page;

    /// Records in the page.
    fn rows(page: &Self::Page) -> usize;

    /// The last record's `Id`, where a query ordered by Id resumes after losing its cursor.
    fn last_id(page: &Self::Page) -> Option<String>;
}

/// Records as JSON maps (field -> value; nested objects for parents in REST pages, flat
/// `Profile.Name` keys and text values from Bulk jobs), for the small queries that look at a few
/// fields.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonRecords;

impl RecordDecoder for JsonRecords {
    type Page = Vec<Map<String, Value>>;

    fn decode_json<'de, D: Deserializer<'de>>(&self, records: D) -> Result<Self::Page, D::Error> {
        crate::lean::records(records)
    }

    fn decode_csv(&self, header: &csv::StringRecord, rows: &[csv::StringRecord]) -> Self::Page {
        rows.iter()
            .map(|row| {
                header
                    .iter()
                    .zip(row.iter())
                    .map(|(field, value)| {
                        let value = if value.is_empty() { Value::Null } else { Value::String(value.to_string()) };
                        (field.to_string(), value)
                    })
                    .collect()
            })
            .collect()
    }

    fn rows(page: &Self::Page) -> usize {
        page.len()
    }

    fn last_id(page: &Self::Page) -> Option<String> {
        page.last().and_then(|r| r.get("Id")).and_then(Value::as_str).map(str::to_string)
    }
}
