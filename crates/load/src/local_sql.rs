//! SQL over Parquet files in a private, in-memory DuckDB: how derived tables are computed from the
//! files an org's run has just written.

use crate::{Error, Result};
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use std::path::{Path, PathBuf};

/// An in-memory DuckDB that reads Parquet files and answers in Arrow.
pub struct LocalSql {
    connection: duckdb::Connection,
}

/// DuckDB's working memory for derived tables and merges: beyond it, joins and sorts spill to
/// disk. By default DuckDB takes up to 80 % of the machine's memory, and deriving the model of a
/// million users was a run's peak memory (225 MiB; 180 MiB with this limit, for about 2 CPU
/// seconds more spent spilling, measured on the benchmark's 1M-user org).
const MEMORY_LIMIT: &str = "64MB";

impl LocalSql {
    /// An engine that spills what does not fit [`MEMORY_LIMIT`] into `spill` (a directory only
    /// its owner can read: the rows are users').
    pub fn open(spill: &Path) -> Result<LocalSql> {
        let fail = |source| Error::DuckDb { path: PathBuf::from(":memory:"), source };
        crate::create_private_dir(spill).map_err(|source| Error::Io { path: spill.to_path_buf(), source })?;
        // sfetl's DuckDB has no time zone extension, so it computes timestamps in UTC; it must
        // not try to fetch one (or any other) from the network either.
        let config = crate::warehouse::offline_config()
            .and_then(|c| c.with("memory_limit", MEMORY_LIMIT))
            // DuckDB 1.5 starts 4 I/O threads per core for read-ahead (`async_threads`), each with
            // its own malloc arena: at 1M users the derive's peak was 127 MiB with the default
            // 8 and 91-97 with 1, in the same wall time. sfetl's inputs are local files.
            .and_then(|c| c.with("async_threads", "1"))
            .and_then(|c| c.with("temp_directory", spill.to_string_lossy()))
            .map_err(fail)?;
        let connection = duckdb::Connection::open_in_memory_with_flags(config).map_err(fail)?;
        Ok(LocalSql { connection })
    }

    /// Runs the following statements on `threads` threads (DuckDB's default: one per core).
    pub fn set_threads(&self, threads: usize) -> Result<()> {
        self.execute(&format!("SET threads = {}", threads.max(1)))
    }

    /// Runs statements that answer no rows (a temporary table's `CREATE`, `INSERT` or `DROP`).
    pub fn execute(&self, sql: &str) -> Result<()> {
        let fail = |source| Error::DuckDb { path: PathBuf::from(":memory:"), source };
        self.connection.execute_batch(sql).map_err(fail)
    }

    /// Creates (or replaces) the in-memory table `name` with `batch`'s rows: values sfetl computed
    /// (text and integer columns) for SQL to complete. Meant for a few thousand rows.
    pub fn create_table(&self, name: &str, batch: &RecordBatch) -> Result<()> {
        use duckdb::types::Value;
        let unfit = |detail: String| Error::Schema { sql: name.to_string(), detail };
        let schema = batch.schema();
        let columns = schema.fields().iter().map(|field| match field.data_type() {
            DataType::Utf8 => Ok(format!("\"{}\" VARCHAR", field.name())),
            DataType::Int64 => Ok(format!("\"{}\" BIGINT", field.name())),
            other => Err(unfit(format!("column `{}` is {other}: only text and integers are loaded", field.name()))),
        });
        let columns = columns.collect::<Result<Vec<_>>>()?;
        self.execute(&format!("CREATE OR REPLACE TABLE {name} ({})", columns.join(", ")))?;
        let fail = |source| Error::DuckDb { path: PathBuf::from(":memory:"), source };
        let mut appender = self.connection.appender(name).map_err(fail)?;
        for row in 0..batch.num_rows() {
            let values = batch.columns().iter().map(|column| {
                if column.is_null(row) {
                    Value::Null
                } else if let Some(text) = column.as_string_opt::<i32>() {
                    Value::Text(text.value(row).to_string())
                } else {
                    Value::BigInt(column.as_primitive::<arrow::datatypes::Int64Type>().value(row))
                }
            });
            appender.append_row(duckdb::appender_params_from_iter(values)).map_err(fail)?;
        }
        appender.flush().map_err(fail)
    }

    /// Runs `sql` and hands its rows to `each`, batch by batch as DuckDB produces them (a large
    /// result is never held whole), with `schema`: the declared contract. Before any row is
    /// handed on, the result's columns must be the declared ones, by name and order, each of a
    /// type of the declared kind ([`fits`]); each is then cast to the declared type, so that a
    /// table's files keep one schema whatever DuckDB infers.
    pub fn select_each(
        &self,
        sql: &str,
        schema: &SchemaRef,
        mut each: impl FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let fail = |source| Error::DuckDb { path: PathBuf::from(":memory:"), source };
        let mut statement = self.connection.prepare(sql).map_err(fail)?;
        let mismatch = |detail: String| Error::Schema { sql: excerpt(sql), detail };
        let stream = statement.stream_arrow([]).map_err(fail)?;
        let result = stream.get_schema();
        if result.fields().len() != schema.fields().len() {
            return Err(mismatch(format!("{} columns, {} declared", result.fields().len(), schema.fields().len())));
        }
        for (got, declared) in result.fields().iter().zip(schema.fields()) {
            if got.name() != declared.name() {
                return Err(mismatch(format!("column `{}` where `{}` is declared", got.name(), declared.name())));
            }
            if !fits(got.data_type(), declared.data_type()) {
                return Err(mismatch(format!(
                    "column `{}` is {}, declared {}",
                    got.name(),
                    got.data_type(),
                    declared.data_type()
                )));
            }
        }
        for batch in stream {
            let batch = batch.map_err(fail)?;
            let columns = batch
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(column, field)| {
                    conform(column, field.data_type()).map_err(|e| mismatch(format!("column `{}`: {e}", field.name())))
                })
                .collect::<Result<Vec<_>>>()?;
            each(RecordBatch::try_new(schema.clone(), columns).map_err(|e| mismatch(e.to_string()))?)?;
        }
        Ok(())
    }
}

/// Whether DuckDB's type `got` holds values of the declared kind `declared`: the same type, any
/// integer (or a decimal without fraction, what `sum` gives) for an integer, any string for a
/// string, a timestamp (in any unit or zone: an instant) or a date for a timestamp, and NULL for
/// anything.
/// A number is not text and text is not a number: a cast would hide a column computed wrong.
fn fits(got: &DataType, declared: &DataType) -> bool {
    use DataType::*;
    let integer = |t: &DataType| t.is_integer() || matches!(t, Decimal128(_, 0));
    match (got, declared) {
        (Null, _) => true,
        (got, declared) if got == declared => true,
        (got, Int64 | Int32) => integer(got),
        (Utf8 | LargeUtf8 | Utf8View, Utf8) => true,
        (Timestamp(..), Timestamp(..)) => true,
        (Date32 | Date64, Timestamp(..) | Date32) => true,
        (List(got) | LargeList(got), List(declared)) => fits(got.data_type(), declared.data_type()),
        _ => false,
    }
}

/// The column cast to `to`. A timestamp without a time zone is read as UTC (DuckDB computes in
/// UTC), labelled by offset first: arrow resolves zone names only with its `chrono-tz` feature.
fn conform(column: &ArrayRef, to: &DataType) -> std::result::Result<ArrayRef, arrow::error::ArrowError> {
    match (column.data_type(), to) {
        (DataType::Timestamp(unit, None), DataType::Timestamp(_, Some(_))) => {
            cast(&cast(column, &DataType::Timestamp(*unit, Some("+00:00".into())))?, to)
        }
        _ => cast(column, to),
    }
}

/// `read_parquet('<path>')`, quoted for SQL. The file's own columns only: DuckDB would otherwise
/// add the `org=<slug>` directory as a column.
pub fn parquet_source(path: &Path) -> String {
    format!("read_parquet({}, hive_partitioning = false)", sql_literal(&path.to_string_lossy()))
}

/// A SQL string literal.
pub fn sql_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Replaces each `{name}` in `sql` with what `resolve` gives for it; the first name it has no
/// answer for is the error.
pub fn expand(sql: &str, mut resolve: impl FnMut(&str) -> Option<String>) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start + 1..].find('}') else { break };
        let name = &rest[start + 1..start + 1 + len];
        out.push_str(&resolve(name).ok_or_else(|| name.to_string())?);
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn excerpt(sql: &str) -> String {
    let flat = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 80 { format!("{}…", flat.chars().take(80).collect::<String>()) } else { flat }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::datatypes::{Field, Schema, TimeUnit};
    use std::sync::Arc;

    fn spill_dir() -> PathBuf {
        std::env::temp_dir().join(format!("sfetl-spill-test-{}", std::process::id()))
    }

    #[test]
    fn expands_placeholders_and_reports_the_unknown_one() {
        let resolve = |name: &str| (name == "users").then(|| "read_parquet('u.parquet')".to_string());
        assert_eq!(expand("SELECT * FROM {users}", resolve), Ok("SELECT * FROM read_parquet('u.parquet')".into()));
        assert_eq!(expand("SELECT * FROM {users} JOIN {orgs}", resolve), Err("orgs".into()));
        assert_eq!(sql_literal("O'Brien"), "'O''Brien'");
    }

    #[test]
    fn reads_with_the_settings_it_was_opened_with() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("io_threads", DataType::Int64, true),
            Field::new("memory_limit", DataType::Utf8, true),
        ]));
        let sql = "SELECT current_setting('async_threads')::BIGINT AS io_threads, \
                   current_setting('memory_limit') AS memory_limit";
        let mut settings = Vec::new();
        LocalSql::open(&spill_dir())?.select_each(sql, &schema, |batch| {
            let limit = batch.column(1).as_string::<i32>().value(0).to_string();
            settings.push((batch.column(0).as_primitive::<arrow::datatypes::Int64Type>().value(0), limit));
            Ok(())
        })?;
        assert_eq!(settings.len(), 1);
        assert_eq!(settings[0].0, 1, "one I/O thread");
        assert!(settings[0].1.starts_with("61") || settings[0].1.starts_with("64"), "{:?}", settings[0].1);
        Ok(())
    }

    #[test]
    fn casts_to_the_declared_schema_and_refuses_a_wrong_column_count() -> Result<()> {
        let utc = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("at", utc.clone(), true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let sql = "SELECT 1::INTEGER AS n, CAST(DATE '2024-01-15' AS TIMESTAMP) AS at, 'x' AS name \
                   UNION ALL SELECT 2, NULL, NULL";
        let mut batches = Vec::new();
        LocalSql::open(&spill_dir())?.select_each(sql, &schema, |batch| {
            batches.push(batch);
            Ok(())
        })?;
        assert_eq!(batches[0].schema(), schema);
        let at = batches[0].column(1).as_primitive::<arrow::datatypes::TimestampMillisecondType>();
        assert_eq!(at.value(0), 1_705_276_800_000);
        let err = LocalSql::open(&spill_dir())?.select_each("SELECT 1", &schema, |_| Ok(())).unwrap_err().to_string();
        assert!(err.contains("1 columns, 3 declared"), "{err}");
        // By name and kind, before any row: a misnamed column, and text where a number is declared.
        let mut handed = 0;
        let mut count = |_| -> Result<()> {
            handed += 1;
            Ok(())
        };
        let misnamed = "SELECT 1::INTEGER AS n, NULL AS at, 'x' AS title";
        let err = LocalSql::open(&spill_dir())?.select_each(misnamed, &schema, &mut count).unwrap_err().to_string();
        assert!(err.contains("column `title` where `name` is declared"), "{err}");
        let text_for_number = "SELECT '1' AS n, NULL AS at, 'x' AS name";
        let err =
            LocalSql::open(&spill_dir())?.select_each(text_for_number, &schema, &mut count).unwrap_err().to_string();
        assert!(err.contains("column `n` is Utf8, declared Int64"), "{err}");
        assert_eq!(handed, 0);
        Ok(())
    }
}
