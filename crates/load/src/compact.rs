//! Tables that keep every run's rows get a file per org per run (`<table>-<run_id>.parquet`);
//! compaction merges them, many runs to a file (`<table>-<first>..<last>.parquet`), so that years
//! of nightly runs do not leave thousands of small files for every reader to open.
//!
//! Crash safety comes from the name: a merged file says which runs it holds, so a run file still
//! there beside it (a compaction killed after the rename, before the deletions) is removed by the
//! next compaction instead of being read twice for long.

use crate::local_sql::{LocalSql, sql_literal};
use crate::{Error, ParquetSink, Result};
use arrow::datatypes::{Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The footer key under which a merged file lists the run ids it holds, comma-separated.
pub const RUN_IDS_KEY: &str = "sfetl.run_ids";

/// A partition's files of one per-run table.
enum RunFile {
    /// One run's file, by run id.
    Run(String, PathBuf),
    /// Merged runs, first and last id included (`+N` tells merges of the same range apart).
    Merged { first: String, last: String, path: PathBuf },
}

fn classify(path: &Path, table: &str) -> Option<RunFile> {
    let name = path.file_name()?.to_str()?.strip_suffix(".parquet")?;
    let ids = name.strip_prefix(table)?.strip_prefix('-')?;
    Some(match ids.split_once("..") {
        Some((first, last)) => RunFile::Merged {
            first: first.to_string(),
            last: last.split_once('+').map_or(last, |(last, _)| last).to_string(),
            path: path.to_path_buf(),
        },
        None => RunFile::Run(ids.to_string(), path.to_path_buf()),
    })
}

/// The newest run id in the names of a per-run table's files, over every partition (a run's
/// file names its id, a merged file its first and last).
pub fn newest_run_id(root: &Path, table: &str) -> Option<String> {
    let partitions = std::fs::read_dir(root.join(table)).into_iter().flatten().flatten();
    let files = partitions.flat_map(|p| std::fs::read_dir(p.path()).into_iter().flatten().flatten());
    files
        .filter_map(|f| match classify(&f.path(), table)? {
            RunFile::Run(id, _) => Some(id),
            RunFile::Merged { last, .. } => Some(last),
        })
        .max()
}

/// Which run ids a merged file holds: those its footer lists. A file merged before the ids were
/// recorded is taken to hold its name's range.
enum Held {
    Exactly(HashSet<String>),
    Range(String, String),
}

impl Held {
    fn of(path: &Path, first: String, last: String) -> Result<Held> {
        let file = std::fs::File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|source| Error::Parquet { path: path.to_path_buf(), source })?;
        let listed = reader
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|kv| kv.key == RUN_IDS_KEY).and_then(|kv| kv.value.clone()));
        Ok(match listed {
            Some(ids) => Held::Exactly(ids.split(',').map(String::from).collect()),
            None => Held::Range(first, last),
        })
    }

    fn holds(&self, id: &str) -> bool {
        match self {
            Held::Exactly(ids) => ids.contains(id),
            Held::Range(first, last) => first.as_str() <= id && id <= last.as_str(),
        }
    }
}

/// Merges the run files of `table` in one partition once there are more than `limit`, and
/// removes run files an earlier merge already holds (exactly the ids its footer lists: a run id
/// that falls between a merged file's first and last, after a clock ran ahead, is not one of
/// them). The merged file keeps every column of every input: `schema`'s, cast to it, then any
/// other column the inputs have (a column an upgrade renamed or dropped), NULL where an input
/// lacks it. Returns how many run files were merged (0: none).
pub fn compact_runs(
    sink: &ParquetSink,
    table: &str,
    (key, value): (&str, &str),
    schema: &SchemaRef,
    limit: usize,
) -> Result<usize> {
    let dir = sink.final_path(table, key, value).with_file_name("");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => return Err(Error::Io { path: dir, source }),
    };
    let (mut runs, mut merged, mut names) = (Vec::new(), Vec::new(), HashSet::new());
    for entry in entries.flatten() {
        names.insert(entry.file_name().to_string_lossy().into_owned());
        match classify(&entry.path(), table) {
            Some(RunFile::Run(id, path)) => runs.push((id, path)),
            Some(RunFile::Merged { first, last, path }) => merged.push(Held::of(&path, first, last)?),
            None => {}
        }
    }
    let (held, mut runs): (Vec<_>, Vec<_>) =
        runs.into_iter().partition(|(id, _)| merged.iter().any(|held| held.holds(id)));
    for (_, path) in held {
        std::fs::remove_file(&path).map_err(|source| Error::Io { path, source })?;
    }
    if runs.len() <= limit {
        return Ok(0);
    }
    runs.sort();
    let (first, last) = (runs[0].0.clone(), runs[runs.len() - 1].0.clone());
    let mut inputs = Vec::new();
    for (_, path) in &runs {
        let file = std::fs::File::open(path).map_err(|source| Error::Io { path: path.clone(), source })?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|source| Error::Parquet { path: path.clone(), source })?;
        inputs.push(reader.schema().clone());
    }
    let union = union_of(schema, &inputs);
    let quoted = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let columns: Vec<String> = union
        .fields()
        .iter()
        .map(|f| match inputs.iter().any(|input| input.field_with_name(f.name()).is_ok()) {
            true => quoted(f.name()),
            false => format!("NULL AS {}", quoted(f.name())),
        })
        .collect();
    let files: Vec<String> = runs.iter().map(|(_, path)| sql_literal(&path.to_string_lossy())).collect();
    let sql = format!(
        "SELECT {} FROM read_parquet([{}], union_by_name = true, hive_partitioning = false)",
        columns.join(", "),
        files.join(", ")
    );
    // Never over another merge's file (two merges of the same first and last run).
    let stem = (1..)
        .map(|n| if n == 1 { format!("{table}-{first}..{last}") } else { format!("{table}-{first}..{last}+{n}") })
        .find(|stem| !names.contains(&format!("{stem}.parquet")))
        .unwrap_or_default();
    let mut writer = sink.open_file(table, key, value, &stem, union.clone())?;
    let ids: Vec<&str> = runs.iter().map(|(id, _)| id.as_str()).collect();
    writer.set_metadata(RUN_IDS_KEY, ids.join(","));
    LocalSql::open(&sink.spill_dir())?.select_each(&sql, &union, |batch| writer.write(&batch))?;
    writer.commit()?;
    for (_, path) in &runs {
        std::fs::remove_file(path).map_err(|source| Error::Io { path: path.clone(), source })?;
    }
    Ok(runs.len())
}

/// `schema`'s fields, then every other field of the inputs (first seen first, nullable).
fn union_of(schema: &SchemaRef, inputs: &[SchemaRef]) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for input in inputs {
        for field in input.fields() {
            if !fields.iter().any(|f| f.name() == field.name()) {
                fields.push(field.as_ref().clone().with_nullable(true));
            }
        }
    }
    Arc::new(Schema::new(fields))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use std::sync::Arc;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("run_id", DataType::Utf8, true), Field::new("n", DataType::Int64, true)]))
    }

    fn write_run(sink: &ParquetSink, run: &str) -> Result<()> {
        let batch = RecordBatch::try_new(
            schema(),
            vec![Arc::new(StringArray::from(vec![run, run])), Arc::new(Int64Array::from(vec![1, 2]))],
        )
        .map_err(|e| Error::Schema { sql: "test".into(), detail: e.to_string() })?;
        let mut writer = sink.open_file("history", "org", "acme", &format!("history-{run}"), schema())?;
        writer.write(&batch)?;
        writer.commit()?;
        Ok(())
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn rows(dir: &Path) -> Result<Vec<String>> {
        texts(&format!(
            "SELECT run_id || ':' || n AS row FROM read_parquet('{}/*.parquet') ORDER BY 1",
            dir.to_string_lossy()
        ))
    }

    /// The one text column `row` of a query's answer.
    fn texts(sql: &str) -> Result<Vec<String>> {
        let text = Arc::new(Schema::new(vec![Field::new("row", DataType::Utf8, true)]));
        let mut out = Vec::new();
        let spill = std::env::temp_dir().join(format!("sfetl-spill-test-{}", std::process::id()));
        LocalSql::open(&spill)?.select_each(sql, &text, |batch| {
            let column = batch.column(0).as_any().downcast_ref::<StringArray>().cloned();
            out.extend(column.into_iter().flat_map(|c| c.iter().flatten().map(String::from).collect::<Vec<_>>()));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn merges_past_the_limit_and_clears_what_a_killed_merge_left() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|source| Error::Io { path: "tmp".into(), source })?;
        let sink = ParquetSink::new(tmp.path());
        let dir = tmp.path().join("history/org=acme");
        for run in ["r1", "r2", "r3"] {
            write_run(&sink, run)?;
        }
        assert_eq!(compact_runs(&sink, "history", ("org", "acme"), &schema(), 3)?, 0);
        write_run(&sink, "r4")?;
        let before = rows(&dir)?;
        assert_eq!(compact_runs(&sink, "history", ("org", "acme"), &schema(), 3)?, 4);
        assert_eq!(files(&dir), ["history-r1..r4.parquet"]);
        assert_eq!(rows(&dir)?, before, "every row once");

        // A merge killed after its rename, before its deletions: the run file is in both.
        write_run(&sink, "r2")?;
        write_run(&sink, "r5")?;
        assert_eq!(compact_runs(&sink, "history", ("org", "acme"), &schema(), 3)?, 0);
        assert_eq!(files(&dir), ["history-r1..r4.parquet", "history-r5.parquet"]);
        assert_eq!(rows(&dir)?.len(), 10, "r2 is read once again");
        Ok(())
    }

    /// One run's clock a year ahead makes a merged file whose name spans every later run's id:
    /// the later runs' files are kept (they are not among the ids the merged file lists), and
    /// after 150 runs every run's rows are there, once.
    #[test]
    fn a_run_from_a_clock_a_year_ahead_costs_no_later_run() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|source| Error::Io { path: "tmp".into(), source })?;
        let sink = ParquetSink::new(tmp.path());
        let dir = tmp.path().join("history/org=acme");
        let id = |day: u32| format!("20261129T{:02}{:02}00.000Z", day / 60, day % 60);
        write_run(&sink, "20271129T000000.000Z")?;
        for run in 0..150 {
            write_run(&sink, &id(run))?;
            compact_runs(&sink, "history", ("org", "acme"), &schema(), 2)?;
        }
        let rows = rows(&dir)?;
        assert_eq!(rows.len(), 151 * 2, "{} rows", rows.len());
        let distinct: HashSet<&String> = rows.iter().collect();
        assert_eq!(distinct.len(), 151 * 2, "every row once");
        Ok(())
    }

    /// A column an older version wrote and the current schema lacks (renamed or dropped) survives
    /// a merge, and a column the current schema added is NULL for the older runs.
    #[test]
    fn merges_keep_every_column_of_every_input() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|source| Error::Io { path: "tmp".into(), source })?;
        let sink = ParquetSink::new(tmp.path());
        let old = Arc::new(Schema::new(vec![
            Field::new("run_id", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new("old_name", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            old.clone(),
            vec![
                Arc::new(StringArray::from(vec!["r0"])),
                Arc::new(Int64Array::from(vec![7])),
                Arc::new(StringArray::from(vec!["kept"])),
            ],
        )
        .map_err(|e| Error::Schema { sql: "test".into(), detail: e.to_string() })?;
        let mut writer = sink.open_file("history", "org", "acme", "history-r0", old)?;
        writer.write(&batch)?;
        writer.commit()?;
        for run in ["r1", "r2"] {
            write_run(&sink, run)?;
        }
        let current = Arc::new(Schema::new(vec![
            Field::new("run_id", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new("added", DataType::Int64, true),
        ]));
        assert_eq!(compact_runs(&sink, "history", ("org", "acme"), &current, 2)?, 3);
        let dir = tmp.path().join("history/org=acme");
        let sql = format!(
            "SELECT run_id || ':' || coalesce(old_name, '-') || ':' || coalesce(added::VARCHAR, 'null') AS row \
             FROM read_parquet('{}/*.parquet') ORDER BY 1",
            dir.to_string_lossy()
        );
        assert_eq!(texts(&sql)?, ["r0:kept:null", "r1:-:null", "r1:-:null", "r2:-:null", "r2:-:null"]);
        Ok(())
    }
}
