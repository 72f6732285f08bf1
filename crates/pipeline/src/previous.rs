//! The previous file of a table read incrementally, scanned for what the read must know of it,
//! decoding only the Id, group and stamp columns: the rows per group (the deletion check) and
//! whether it already holds every row version read this run. Then the table has not changed and
//! keeps its file: nothing is rewritten or uploaded again, and the tables derived from it need not
//! be derived again. Else the changes are merged into it ([`merge`]).

use crate::OrgError;
use crate::encoder::Encoder;
use crate::pages::{RowVersion, Versions};
use crate::verify::{self, GroupCounts};
use arrow::array::{Array, AsArray, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::record_batch::RecordBatch;
use sfetl_load::{ParquetSink, PartitionWriter, RowGroups};
use sfetl_transform::tables::TableDef;
use std::collections::{BTreeSet, HashSet};

/// What the previous file holds.
pub struct PreviousScan {
    pub rows: u64,
    /// Rows per group, the rows read this run included once (`None` unless asked for).
    pub held: Option<GroupCounts>,
    /// Every row read this run that the table keeps is in the file with the same version, and
    /// none that it leaves out (out of its scope) is in the file.
    pub holds_every_version: bool,
    /// Rows read this run that the table leaves out.
    pub left_out: u64,
}

/// Scans the org's file of `table` (`None`: no file of the current schema) for the rows read
/// this run (`versions`), of which the table leaves out those in `left_out` (users out of its
/// scope: a portal user who logged in is read, and is no change unless it was in the table).
/// `held` starts as the counts per group of the rows read this run; the file's other rows are
/// added to it.
pub fn scan(
    sink: &ParquetSink,
    table: &TableDef,
    org: &str,
    (versions, left_out): (&Versions, &HashSet<String>),
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
    let Some(batches) = sink.existing(table.name, "org", org, &table.schema(), Some(&columns), RowGroups::All)? else {
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
                // Out of the scope now: the row must leave the table.
                Some(_) if left_out.contains(ids.value(row)) => differs = true,
                Some(read) => {
                    matched += 1;
                    differs |= *read != version(row);
                }
                None => {
                    if let (Some(groups), Some(held)) = (groups, held.as_mut()) {
                        verify::count_row(held, groups, row);
                    }
                }
            }
        }
    }
    // Without a SystemModstamp to compare, no row is known to be the same.
    let comparable = modstamp.is_some();
    let kept = versions.len().saturating_sub(left_out.len());
    let holds_every_version = comparable && !differs && matched == kept;
    Ok(Some(PreviousScan { rows, held, holds_every_version, left_out: left_out.len() as u64 }))
}

/// `writer` (this run's changes) completed with the previous file's rows not read again (their
/// Id `changed`, or their group `stale`), the `revoked` columns emptied in them.
pub(crate) async fn merge(
    writer: PartitionWriter,
    previous: impl Iterator<Item = sfetl_load::Result<RecordBatch>> + Send + 'static,
    table: &'static TableDef,
    changed: Versions,
    (stale, revoked): (BTreeSet<String>, Vec<usize>),
) -> Result<PartitionWriter, OrgError> {
    let group = table.verified_by.and_then(|field| table.column_of(field)).unwrap_or(0);
    // The previous file is decoded on one thread while the merged one is encoded on another: at
    // 100k users, the merge is most of an incremental run's critical path.
    let encoder = Encoder::start(writer, None);
    let merged = encoder.batches.clone();
    let decoded = tokio::task::spawn_blocking(move || -> Result<(), OrgError> {
        for batch in previous {
            let kept = kept_rows(&batch?, &changed, (group, &stale), table.name)?;
            let kept = emptied(kept, &revoked, table.name)?;
            // Refused only when the encoder stopped: its error comes from `finish`.
            if merged.blocking_send(kept).is_err() {
                break;
            }
        }
        Ok(())
    })
    .await?;
    let (writer, _) = encoder.finish().await?;
    decoded?;
    Ok(writer)
}

/// `batch` with its `columns` (indexes) all NULL.
fn emptied(batch: RecordBatch, columns: &[usize], table: &'static str) -> Result<RecordBatch, OrgError> {
    if columns.is_empty() {
        return Ok(batch);
    }
    let mut arrays = batch.columns().to_vec();
    for &column in columns {
        arrays[column] = arrow::array::new_null_array(arrays[column].data_type(), batch.num_rows());
    }
    RecordBatch::try_new(batch.schema(), arrays)
        .map_err(|source| sfetl_transform::Error::Arrow { table, source }.into())
}

/// The previous file's batch without the rows whose Id (first column) is in `ids` (read again
/// this run), nor those whose group column is one of the `stale` groups (read again whole).
pub(crate) fn kept_rows(
    batch: &RecordBatch,
    ids: &Versions,
    (group, stale): (usize, &BTreeSet<String>),
    table: &'static str,
) -> Result<RecordBatch, OrgError> {
    let column = batch.column(0).as_string::<i32>();
    let groups = batch.column(group).as_string::<i32>();
    let keep: BooleanArray = column
        .iter()
        .zip(groups.iter())
        .map(|(id, group)| {
            let read_again = id.is_some_and(|id| ids.contains_key(id)) || stale.contains(group.unwrap_or_default());
            Some(!read_again)
        })
        .collect();
    filter_record_batch(batch, &keep).map_err(|source| sfetl_transform::Error::Arrow { table, source }.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, StringArray, TimestampMillisecondArray, new_null_array};
    use arrow::datatypes::DataType;
    use arrow::record_batch::RecordBatch;
    use std::sync::Arc;

    /// An assignment table's file of three rows: Ids `a`, `b`, `c`, stamped 1, 2, 3, in groups
    /// `g1`, `g1`, `g2` (every other column empty).
    fn write_file(sink: &ParquetSink, table: &TableDef) {
        let schema = table.schema();
        let (stamp, group) = (table.column_of("SystemModstamp"), table.verified_by.and_then(|f| table.column_of(f)));
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, field)| -> ArrayRef {
                match (i, field.data_type()) {
                    (0, _) => Arc::new(StringArray::from(vec!["a", "b", "c"])),
                    (i, DataType::Timestamp(_, zone)) if Some(i) == stamp => {
                        Arc::new(TimestampMillisecondArray::from(vec![1, 2, 3]).with_timezone_opt(zone.clone()))
                    }
                    (i, _) if Some(i) == group => Arc::new(StringArray::from(vec!["g1", "g1", "g2"])),
                    // `extracted_at`, which every row has.
                    (_, DataType::Timestamp(_, zone)) if !field.is_nullable() => {
                        Arc::new(TimestampMillisecondArray::from(vec![0; 3]).with_timezone_opt(zone.clone()))
                    }
                    (_, kind) => new_null_array(kind, 3),
                }
            })
            .collect();
        let batch = RecordBatch::try_new(schema.clone(), columns).unwrap_or_else(|e| panic!("{e}"));
        let mut writer = sink.open(table.name, "org", "acme", schema).unwrap_or_else(|e| panic!("{e}"));
        writer.write(&batch).unwrap_or_else(|e| panic!("{e}"));
        writer.commit().unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn a_file_holds_the_rows_read_only_with_their_very_versions() {
        let table = sfetl_transform::tables::ALL.iter().find(|t| t.verified_by.is_some());
        let table = table.unwrap_or_else(|| panic!("no table checked by counts"));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let sink = ParquetSink::new(dir.path());
        write_file(&sink, table);
        let version = |at| RowVersion { system_modstamp: Some(at), activity: None };
        let scan_leaving_out = |read: &[(&str, i64)], left_out: &[&str]| {
            let versions: Versions = read.iter().map(|(id, at)| (id.to_string(), version(*at))).collect();
            let left_out: HashSet<String> = left_out.iter().map(|id| id.to_string()).collect();
            let held = GroupCounts::from([("g2".to_string(), read.len() as u64)]);
            scan(&sink, table, "acme", (&versions, &left_out), Some(held)).unwrap_or_else(|e| panic!("{e}"))
        };
        let scan = |read: &[(&str, i64)]| scan_leaving_out(read, &[]);
        let same = scan(&[("c", 3)]).unwrap_or_else(|| panic!("no file"));
        assert!(same.holds_every_version);
        assert_eq!(same.rows, 3);
        // The row read counts once (as read); the file's other rows by their group.
        assert_eq!(same.held, Some(GroupCounts::from([("g1".to_string(), 2), ("g2".to_string(), 1)])));
        assert!(!scan(&[("c", 4)]).is_some_and(|s| s.holds_every_version), "a newer stamp is a change");
        assert!(!scan(&[("c", 3), ("d", 3)]).is_some_and(|s| s.holds_every_version), "a new row is a change");
        assert!(scan(&[]).is_some_and(|s| s.holds_every_version), "nothing read, nothing changed");
        // Rows read that the table leaves out (out of its scope) are no change unless the file
        // holds them: then they must leave it.
        let outside = scan_leaving_out(&[("c", 3), ("x", 9)], &["x"]);
        assert!(outside.as_ref().is_some_and(|s| s.holds_every_version && s.left_out == 1));
        assert!(!scan_leaving_out(&[("c", 3), ("b", 2)], &["b"]).is_some_and(|s| s.holds_every_version), "b left");
        assert!(!scan_leaving_out(&[("x", 9), ("d", 3)], &["x"]).is_some_and(|s| s.holds_every_version), "d is new");
        let other = ParquetSink::new(dir.path().join("empty"));
        let nothing = (&Versions::new(), &HashSet::new());
        assert!(super::scan(&other, table, "acme", nothing, None).unwrap_or_else(|e| panic!("{e}")).is_none());
    }
}
