//! The `runs` table: one row per org per run, so a scheduler (or a person) can see when each org
//! was last read, how it ended, and what it cost in API calls.

use crate::error::{Error, Result};
use crate::model::DERIVED;
use crate::tables::ALL;
use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

/// How one org's run ended.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub run_id: String,
    pub started_at: i64,
    pub finished_at: i64,
    /// `succeeded`, `stopped` (the quota guard) or `failed`.
    pub status: &'static str,
    pub error: Option<String>,
    pub api_calls: i64,
    /// Rows per table after the run, by table name (absent: the table was not written).
    pub rows: Vec<(&'static str, i64)>,
}

/// The tables whose rows a run counts: the raw ones, then the derived ones.
fn counted() -> impl Iterator<Item = &'static str> {
    ALL.iter().map(|t| t.name).chain(DERIVED.iter().map(|t| t.name))
}

/// `run_id, started_at, finished_at, status, error, api_calls`, then `rows_<table>` per table.
pub fn schema() -> SchemaRef {
    let timestamp = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let mut fields = vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("started_at", timestamp.clone(), false),
        Field::new("finished_at", timestamp, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, true),
        Field::new("api_calls", DataType::Int64, false),
    ];
    fields.extend(counted().map(|name| Field::new(format!("rows_{name}"), DataType::Int64, true)));
    Arc::new(Schema::new(fields))
}

pub fn batch(records: &[RunRecord]) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(records.iter().map(|r| r.run_id.as_str()))),
        Arc::new(
            TimestampMillisecondArray::from_iter_values(records.iter().map(|r| r.started_at)).with_timezone("UTC"),
        ),
        Arc::new(
            TimestampMillisecondArray::from_iter_values(records.iter().map(|r| r.finished_at)).with_timezone("UTC"),
        ),
        Arc::new(StringArray::from_iter_values(records.iter().map(|r| r.status))),
        Arc::new(StringArray::from(records.iter().map(|r| r.error.as_deref()).collect::<Vec<_>>())),
        Arc::new(Int64Array::from_iter_values(records.iter().map(|r| r.api_calls))),
    ];
    for table in counted() {
        let rows = records.iter().map(|r| r.rows.iter().find(|(name, _)| *name == table).map(|(_, n)| *n));
        columns.push(Arc::new(Int64Array::from_iter(rows)));
    }
    RecordBatch::try_new(schema(), columns).map_err(|source| Error::Arrow { table: "runs", source })
}
