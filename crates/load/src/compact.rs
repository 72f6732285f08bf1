//! Tables that keep every run's rows get a file per org per run (`<table>-<run_id>.parquet`);
//! compaction merges them, many runs to a file (`<table>-<first>..<last>.parquet`), so that years
//! of nightly runs do not leave thousands of small files for every reader to open.
//!
//! Crash safety comes from the name: a merged file says which runs it holds, so a run file still
//! there beside it (a compaction killed after the rename, before the deletions) is removed by the
//! next compaction instead of being read twice for long.

use crate::local_sql::{LocalSql, sql_literal};
use crate::{Error, ParquetSink, Result};
use arrow::datatypes::SchemaRef;
use std::path::{Path, PathBuf};

/// A partition's files of one per-run table.
enum RunFile {
    /// One run's file, by run id.
    Run(String, PathBuf),
    /// Merged runs, first and last id included.
    Merged(String, String),
}

fn classify(path: &Path, table: &str) -> Option<RunFile> {
    let name = path.file_name()?.to_str()?.strip_suffix(".parquet")?;
    let ids = name.strip_prefix(table)?.strip_prefix('-')?;
    Some(match ids.split_once("..") {
        Some((first, last)) => RunFile::Merged(first.to_string(), last.to_string()),
        None => RunFile::Run(ids.to_string(), path.to_path_buf()),
    })
}

/// Merges the run files of `table` in one partition once there are more than `limit`, with the
/// rows cast to `schema`, and removes run files an earlier merge already holds. Returns how many
/// run files were merged (0: none).
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
    let (mut runs, mut merged) = (Vec::new(), Vec::new());
    for entry in entries.flatten() {
        match classify(&entry.path(), table) {
            Some(RunFile::Run(id, path)) => runs.push((id, path)),
            Some(RunFile::Merged(first, last)) => merged.push((first, last)),
            None => {}
        }
    }
    let (held, mut runs): (Vec<_>, Vec<_>) =
        runs.into_iter().partition(|(id, _)| merged.iter().any(|(first, last)| first <= id && id <= last));
    for (_, path) in held {
        std::fs::remove_file(&path).map_err(|source| Error::Io { path, source })?;
    }
    if runs.len() <= limit {
        return Ok(0);
    }
    runs.sort();
    let (first, last) = (runs[0].0.clone(), runs[runs.len() - 1].0.clone());
    let files: Vec<String> = runs.iter().map(|(_, path)| sql_literal(&path.to_string_lossy())).collect();
    let columns: Vec<String> =
        schema.fields().iter().map(|f| format!("\"{}\"", f.name().replace('"', "\"\""))).collect();
    let sql = format!(
        "SELECT {} FROM read_parquet([{}], union_by_name = true, hive_partitioning = false)",
        columns.join(", "),
        files.join(", ")
    );
    let mut writer = sink.open_file(table, key, value, &format!("{table}-{first}..{last}"), schema.clone())?;
    LocalSql::open()?.select_each(&sql, schema, |batch| writer.write(&batch))?;
    writer.commit()?;
    for (_, path) in &runs {
        std::fs::remove_file(path).map_err(|source| Error::Io { path: path.clone(), source })?;
    }
    Ok(runs.len())
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
        let sql = format!(
            "SELECT run_id || ':' || n AS row FROM read_parquet('{}/*.parquet') ORDER BY 1",
            dir.to_string_lossy()
        );
        let text = Arc::new(Schema::new(vec![Field::new("row", DataType::Utf8, true)]));
        let mut out = Vec::new();
        LocalSql::open()?.select_each(&sql, &text, |batch| {
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
}
