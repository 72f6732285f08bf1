//! Pages decoded straight into Arrow batches ([`ArrowPages`]), and what a table read learns from
//! them on the way ([`PageWatch`]): the newest row (the next run's cursor), the Ids read with
//! their versions, and the rows per group for the deletion check.

use crate::state::Cursor;
use crate::verify::{self, GroupCounts};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::TimestampMillisecondType;
use sfetl_extract::{RecordDecoder, StringRecord};
use sfetl_transform::tables::TableDef;
use sfetl_transform::{DecodedPage, TableDecoder};
use std::collections::HashMap;

/// A table's [`TableDecoder`] as the extract stage's decoder.
#[derive(Clone)]
pub struct ArrowPages(pub TableDecoder);

impl RecordDecoder for ArrowPages {
    type Page = DecodedPage;

    fn decode_json<'de, D: serde::Deserializer<'de>>(&self, records: D) -> Result<DecodedPage, D::Error> {
        self.0.decode_json(records)
    }

    fn decode_csv(&self, header: &StringRecord, rows: &[StringRecord]) -> DecodedPage {
        self.0.decode_text_rows(header.iter(), rows.iter().map(StringRecord::iter))
    }

    fn rows(page: &DecodedPage) -> usize {
        page.rows
    }

    fn last_id(page: &DecodedPage) -> Option<String> {
        let batch = page.batch.as_ref().ok()?;
        let ids = batch.column(0).as_string_opt::<i32>()?;
        let last = batch.num_rows().checked_sub(1)?;
        ids.is_valid(last).then(|| ids.value(last).to_string())
    }
}

/// A row's version: its `SystemModstamp` and activity (`LastLoginDate`), both in UTC
/// milliseconds. Salesforce moves `SystemModstamp` on every change to a record, by a user or by
/// the system; a login moves only `LastLoginDate` (salesforce-api.md section 7). A row read again
/// with the version already held is the same row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowVersion {
    pub system_modstamp: Option<i64>,
    pub activity: Option<i64>,
}

impl RowVersion {
    /// Reads each row's version from `batch`, whose columns `modstamp` and `activity` (when the
    /// table has them) hold the stamps.
    pub fn reader(
        batch: &RecordBatch,
        modstamp: Option<usize>,
        activity: Option<usize>,
    ) -> impl Fn(usize) -> RowVersion {
        let stamp = |column: Option<usize>| {
            column.and_then(|c| batch.column(c).as_primitive_opt::<TimestampMillisecondType>()).cloned()
        };
        let (modstamp, activity) = (stamp(modstamp), stamp(activity));
        move |row| {
            let at = |column: &Option<arrow::array::TimestampMillisecondArray>| {
                column.as_ref().and_then(|c| c.is_valid(row).then(|| c.value(row)))
            };
            RowVersion { system_modstamp: at(&modstamp), activity: at(&activity) }
        }
    }
}

/// The Ids read by an incremental read, with their versions.
pub type Versions = HashMap<String, RowVersion>;

/// What the batches of one table read showed.
pub struct PageWatch {
    modstamp: Option<usize>,
    activity: Option<usize>,
    group: Option<usize>,
    /// The newest row by `(SystemModstamp, Id)`, and the newest activity.
    pub newest: Option<Cursor>,
    pub newest_activity: Option<i64>,
    /// The Ids read and each row's version, when they are kept (an incremental read merges by
    /// them, and keeps its previous file when it holds every one of these versions).
    pub versions: Option<Versions>,
    /// Rows observed (before a scope leaves any out).
    pub observed: u64,
    /// Rows read per group, when counted (the deletion check of an incremental read).
    pub groups: Option<GroupCounts>,
}

impl PageWatch {
    /// Watches `table`'s batches, from the cursor `since`; keeping the Ids and group counts only
    /// on an incremental read.
    pub fn new(table: &TableDef, since: Option<&Cursor>) -> PageWatch {
        let incremental = since.is_some();
        PageWatch {
            modstamp: table.column_of("SystemModstamp"),
            activity: table.activity.and_then(|field| table.column_of(field)),
            group: table.verified_by.filter(|_| incremental).and_then(|field| table.column_of(field)),
            newest: since.cloned(),
            newest_activity: since.and_then(|c| c.activity),
            versions: incremental.then(HashMap::new),
            observed: 0,
            groups: table.verified_by.filter(|_| incremental).map(|_| GroupCounts::new()),
        }
    }

    /// Takes note of a batch as read (before any scope leaves rows out).
    pub fn observe(&mut self, batch: &RecordBatch) {
        let ids = batch.column(0).as_string::<i32>();
        if let Some(stamps) = self.modstamp.map(|c| batch.column(c).as_primitive::<TimestampMillisecondType>()) {
            // The newest row of the batch first, then one comparison with the cursor.
            let newest = (0..batch.num_rows())
                .filter(|&row| stamps.is_valid(row) && ids.is_valid(row))
                .max_by(|&a, &b| (stamps.value(a), ids.value(a)).cmp(&(stamps.value(b), ids.value(b))));
            if let Some(row) = newest {
                let seen = Cursor {
                    system_modstamp: stamps.value(row),
                    id: ids.value(row).to_string(),
                    activity: None,
                    missing: Vec::new(),
                    scope: None,
                };
                if self.newest.as_ref().is_none_or(|n| seen.is_after(n)) {
                    self.newest = Some(seen);
                }
            }
        }
        if let Some(activity) = self.activity.map(|c| batch.column(c).as_primitive::<TimestampMillisecondType>()) {
            self.newest_activity = self.newest_activity.max(arrow::compute::max(activity));
        }
        self.observed += batch.num_rows() as u64;
        if let Some(kept) = self.versions.as_mut() {
            let version = RowVersion::reader(batch, self.modstamp, self.activity);
            kept.extend(
                (0..batch.num_rows())
                    .filter(|&row| ids.is_valid(row))
                    .map(|row| (ids.value(row).to_string(), version(row))),
            );
        }
        if let (Some(group), Some(counts)) = (self.group, self.groups.as_mut()) {
            verify::count_groups(counts, batch, group);
        }
    }
}
