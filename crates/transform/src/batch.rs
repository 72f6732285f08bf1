//! One table's Arrow column builders, filled a value at a time and finished into a batch of the
//! table's schema. The decoders ([`crate::decode`]) say which column each value belongs to.

use crate::companies::CompanyMatcher;
use crate::error::{Error, Result};
use crate::tables::{ColumnType, Source, TableDef};
use crate::values::{parse_date, parse_datetime};
use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Int64Builder, ListBuilder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

enum ColumnBuilder {
    Text(StringBuilder),
    Boolean(BooleanBuilder),
    Integer(Int64Builder),
    Timestamp(TimestampMillisecondBuilder),
    Date(Date32Builder),
    TextList(ListBuilder<StringBuilder>),
}

/// A value as Salesforce sent it: REST JSON has types, Bulk API CSV only text.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'v> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(&'v str),
}

/// The columns of the batch being built. Each record sets the columns it has values for, in any
/// order; [`Columns::end_record`] fills the rest (null, or the run's constants), so every column
/// always holds one value per record.
pub(crate) struct Columns<'t> {
    table: &'static TableDef,
    builders: Vec<ColumnBuilder>,
    /// The record number (from 1) that last set each column.
    set_in: Vec<u32>,
    record: u32,
    extracted_at: i64,
    companies: &'t CompanyMatcher,
    /// The first value that did not fit its column; the batch is refused with it.
    error: Option<Error>,
}

impl<'t> Columns<'t> {
    pub fn new(table: &'static TableDef, extracted_at: i64, companies: &'t CompanyMatcher, rows: usize) -> Self {
        let builders = table
            .columns
            .iter()
            .map(|c| match c.kind {
                ColumnType::Text => ColumnBuilder::Text(StringBuilder::with_capacity(rows, rows * 16)),
                ColumnType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(rows)),
                ColumnType::Integer => ColumnBuilder::Integer(Int64Builder::with_capacity(rows)),
                ColumnType::Timestamp => ColumnBuilder::Timestamp(TimestampMillisecondBuilder::with_capacity(rows)),
                ColumnType::Date => ColumnBuilder::Date(Date32Builder::with_capacity(rows)),
                ColumnType::TextList => ColumnBuilder::TextList(ListBuilder::with_capacity(StringBuilder::new(), rows)),
            })
            .collect();
        let set_in = vec![0; table.columns.len()];
        Columns { table, builders, set_in, record: 1, extracted_at, companies, error: None }
    }

    /// Records finished so far.
    pub fn rows(&self) -> usize {
        self.record as usize - 1
    }

    /// Sets `column` of the current record. A value that does not fit is kept as the batch's
    /// error (the column gets a null, so that the columns stay aligned).
    pub fn set(&mut self, column: usize, value: Value<'_>) {
        if self.set_in[column] == self.record {
            // A field given twice: the first value stands.
            return;
        }
        self.set_in[column] = self.record;
        if let Err(expected) = append(&mut self.builders[column], value) {
            let name = self.table.columns[column].name;
            self.reject(name, value, expected);
            append_null(&mut self.builders[column]);
        }
    }

    pub fn column_name(&self, column: usize) -> &'static str {
        self.table.columns[column].name
    }

    /// Sets the `company` column from a `CompanyName` value.
    pub fn set_company(&mut self, column: usize, company_name: Option<&str>) {
        let company = self.companies.matching(company_name);
        self.set(column, company.map_or(Value::Null, Value::Text));
    }

    /// A value the decoder could not take (an object where text belongs, say).
    pub fn reject(&mut self, column: &'static str, value: Value<'_>, expected: &'static str) {
        if self.error.is_none() {
            let value = excerpt(&match value {
                Value::Null => "null".to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Int(i) => i.to_string(),
                Value::Float(f) => f.to_string(),
                Value::Text(t) => format!("{t:?}"),
            });
            self.error = Some(Error::BadValue { table: self.table.name, column, value, expected });
        }
    }

    /// Ends the current record: the columns it did not set get the run's constants or null.
    pub fn end_record(&mut self) {
        for (i, column) in self.table.columns.iter().enumerate() {
            if self.set_in[i] == self.record {
                continue;
            }
            match (column.source, &mut self.builders[i]) {
                (Source::ExtractedAt, ColumnBuilder::Timestamp(b)) => b.append_value(self.extracted_at),
                (Source::CompanyNames, ColumnBuilder::TextList(b)) => b.append_value(self.companies.names().map(Some)),
                (_, builder) => append_null(builder),
            }
        }
        self.record += 1;
    }

    /// The batch, or the first value that did not fit.
    pub fn finish(self) -> Result<RecordBatch> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let arrays: Vec<ArrayRef> = self
            .builders
            .into_iter()
            .map(|b| -> ArrayRef {
                match b {
                    ColumnBuilder::Text(mut b) => Arc::new(b.finish()),
                    ColumnBuilder::Boolean(mut b) => Arc::new(b.finish()),
                    ColumnBuilder::Integer(mut b) => Arc::new(b.finish()),
                    ColumnBuilder::Timestamp(mut b) => Arc::new(b.finish().with_timezone("UTC")),
                    ColumnBuilder::Date(mut b) => Arc::new(b.finish()),
                    ColumnBuilder::TextList(mut b) => Arc::new(b.finish()),
                }
            })
            .collect();
        RecordBatch::try_new(self.table.schema(), arrays)
            .map_err(|source| Error::Arrow { table: self.table.name, source })
    }
}

fn append_null(builder: &mut ColumnBuilder) {
    match builder {
        ColumnBuilder::Text(b) => b.append_null(),
        ColumnBuilder::Boolean(b) => b.append_null(),
        ColumnBuilder::Integer(b) => b.append_null(),
        ColumnBuilder::Timestamp(b) => b.append_null(),
        ColumnBuilder::Date(b) => b.append_null(),
        ColumnBuilder::TextList(b) => b.append_null(),
    }
}

/// Appends `value`, or says what the column expected.
fn append(builder: &mut ColumnBuilder, value: Value<'_>) -> std::result::Result<(), &'static str> {
    match (builder, value) {
        (builder, Value::Null) => append_null(builder),
        (ColumnBuilder::Text(b), Value::Text(s)) => b.append_value(s),
        (ColumnBuilder::Boolean(b), Value::Bool(v)) => b.append_value(v),
        // Bulk API CSV sends every value as text.
        (ColumnBuilder::Boolean(b), Value::Text(v)) => b.append_value(match v {
            "true" => true,
            "false" => false,
            _ => return Err("true or false"),
        }),
        (ColumnBuilder::Integer(b), Value::Int(v)) => b.append_value(v),
        // Salesforce sends some integer fields as 5.0.
        (ColumnBuilder::Integer(b), Value::Float(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
            b.append_value(f as i64)
        }
        (ColumnBuilder::Integer(b), Value::Text(v)) => {
            let whole = v
                .parse::<i64>()
                .ok()
                .or_else(|| v.parse::<f64>().ok().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64));
            b.append_value(whole.ok_or("an integer")?)
        }
        (ColumnBuilder::Timestamp(b), Value::Text(s)) => {
            b.append_value(parse_datetime(s).ok_or("a datetime like 2024-01-15T10:30:00.000+0000")?)
        }
        (ColumnBuilder::Date(b), Value::Text(s)) => b.append_value(parse_date(s).ok_or("a date like 2024-01-15")?),
        (ColumnBuilder::Text(_), _) => return Err("text"),
        (ColumnBuilder::Boolean(_), _) => return Err("true or false"),
        (ColumnBuilder::Integer(_), _) => return Err("an integer"),
        (ColumnBuilder::Timestamp(_), _) => return Err("a datetime"),
        (ColumnBuilder::Date(_), _) => return Err("a date"),
        (ColumnBuilder::TextList(_), _) => return Err("a list of text"),
    }
    Ok(())
}

fn excerpt(text: &str) -> String {
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text.to_string()
    }
}
