//! A query's answer as text, read by column name: the report never depends on the order of a
//! view's columns.

use crate::ReportError;
use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use sfetl_load::Warehouse;

/// Every value of a query as text (NULL as `None`); the SQL formats timestamps itself.
pub struct Answer {
    view: &'static str,
    columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl Answer {
    /// Runs `sql`, which reads `view` (named in errors).
    pub fn of(warehouse: &Warehouse, view: &'static str, sql: &str) -> Result<Answer, ReportError> {
        let batches = warehouse.query(sql).map_err(ReportError::Views)?;
        let columns =
            batches.first().map(|b| b.schema().fields().iter().map(|f| f.name().clone()).collect()).unwrap_or_default();
        let mut rows = Vec::new();
        for batch in batches {
            let text = batch
                .columns()
                .iter()
                .map(|c| cast(c, &DataType::Utf8))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|source| ReportError::Value { view, source })?;
            for row in 0..batch.num_rows() {
                rows.push(
                    text.iter()
                        .map(|c| (!c.is_null(row)).then(|| c.as_string::<i32>().value(row).to_string()))
                        .collect(),
                );
            }
        }
        Ok(Answer { view, columns, rows })
    }

    /// Where each named column is, or which one is missing (an answer without rows has none).
    pub fn columns<const N: usize>(&self, names: [&'static str; N]) -> Result<[usize; N], ReportError> {
        let mut at = [0; N];
        for (slot, name) in at.iter_mut().zip(names) {
            *slot = match self.columns.iter().position(|c| c == name) {
                Some(i) => i,
                None if self.rows.is_empty() => 0,
                None => return Err(ReportError::MissingColumn { view: self.view, column: name }),
            };
        }
        Ok(at)
    }
}

pub fn text(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}

pub fn number(value: &Option<String>) -> Option<i64> {
    value.as_deref().and_then(|v| v.parse().ok())
}

pub fn flag(value: &Option<String>) -> bool {
    value.as_deref() == Some("true")
}
