//! The load stage: Parquet files written atomically in Hive partitions, and a DuckDB database
//! with one view per table over them.
//!
//! Layout under the output directory: `<table>/org=<slug>/<table>.parquet` (or, for a table that
//! keeps every run's rows, `<table>/org=<slug>/<table>-<run_id>.parquet`), and `warehouse.duckdb`. A file is written under a temporary name that does not end in `.parquet`
//! (DuckDB's globs would read it), synced, then renamed over the previous one: a reader sees the
//! old file or the new one, never half of one, and a re-run replaces rows instead of adding them.

mod compact;
mod local_sql;
mod parquet_sink;
mod warehouse;

pub use compact::{compact_runs, newest_run_id};
pub use local_sql::{LocalSql, expand, parquet_source, sql_literal};
pub use parquet_sink::{
    FinishedFile, ParquetSink, PartitionWriter, RowGroups, create_private_dir, create_private_file, remove_leftovers,
};
pub use warehouse::{Published, View, Warehouse};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error("writing Parquet {path}")]
    Parquet { path: std::path::PathBuf, source: parquet::errors::ParquetError },
    #[error("DuckDB database {path}")]
    DuckDb { path: std::path::PathBuf, source: duckdb::Error },
    #[error("the rows of `{sql}` do not fit the table's declared schema: {detail}")]
    Schema { sql: String, detail: String },
    #[error("partition value `{0}` must be a non-empty slug of letters, digits, `-` and `_`")]
    BadPartition(String),
}
