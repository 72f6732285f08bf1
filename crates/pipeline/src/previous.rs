//! The previous file of a table read incrementally, scanned for what the read must know of it,
//! decoding only the Id, group and stamp columns: the rows per group (the deletion check) and
//! whether it already holds every row version read this run. Then the table has not changed and
//! keeps its file: nothing is rewritten or uploaded again, and the tables derived from it need not
//! be derived again.

use crate::OrgError;
use crate::pages::{RowVersion, Versions};
use crate::verify::GroupCounts;
use arrow::array::{Array, AsArray};
use sfetl_load::ParquetSink;
use sfetl_transform::tables::TableDef;

/// What the previous file holds.
pub struct PreviousScan {
    pub rows: u64,
    /// Rows per group, the rows read this run included once (`None` unless asked for).
    pub held: Option<GroupCounts>,
    /// Every row read this run is in the file with the same version.
    pub holds_every_version: bool,
}

/// Scans the org's file of `table` (`None`: no file of the current schema). `held` starts as the
/// counts per group of the rows read this run; the file's other rows are added to it.
pub fn scan(
    sink: &ParquetSink,
    table: &TableDef,
    org: &str,
    versions: &Versions,
    mut held: Option<GroupCounts>,
) -> Result<Option<PreviousScan>, OrgError> {
    let group = table.verified_by.and_then(|field| table.column_of(field)).filter(|_| held.is_some());
    let (modstamp, activity) =
        (table.column_of("SystemModstamp"), table.activity.and_then(|field| table.column_of(field)));
    let mut columns: Vec<usize> = [Some(0), group, modstamp, activity].into_iter().flatten().collect();
    columns.sort_unstable();
    columns.dedup();
    // The projected batch keeps the schema's order.
    let at = |column: Option<usize>| column.and_then(|c| columns.iter().position(|&p| p == c));
    let (group_at, modstamp_at, activity_at) = (at(group), at(modstamp), at(activity));
    let Some(batches) = sink.existing(table.name, "org", org, &table.schema(), Some(&columns))? else {
        return Ok(None);
    };
    let (mut rows, mut matched, mut differs) = (0u64, 0usize, false);
    for batch in batches {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        let ids = batch.column(0).as_string::<i32>();
        let groups = group_at.map(|g| batch.column(g).as_string::<i32>());
        let version = RowVersion::reader(&batch, modstamp_at, activity_at);
        for row in 0..batch.num_rows() {
            let read_again = ids.is_valid(row).then(|| versions.get(ids.value(row))).flatten();
            match read_again {
                Some(read) => {
                    matched += 1;
                    differs |= *read != version(row);
                }
                None => {
                    if let (Some(groups), Some(held)) = (groups, held.as_mut()) {
                        let key = if groups.is_valid(row) { groups.value(row) } else { "" };
                        *held.entry(key.to_string()).or_default() += 1;
                    }
                }
            }
        }
    }
    Ok(Some(PreviousScan { rows, held, holds_every_version: !differs && matched == versions.len() }))
}
