//! Pages of JSON records into Arrow record batches of one table's schema.

use crate::companies::CompanyMatcher;
use crate::error::{Error, Result};
use crate::tables::{ColumnType, Source, TableDef};
use crate::values::{parse_date, parse_datetime};
use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Int64Builder, ListBuilder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Turns records of one table into batches; `extracted_at` is the run's timestamp (UTC millis).
pub struct BatchBuilder {
    table: &'static TableDef,
    extracted_at: i64,
    companies: CompanyMatcher,
}

enum ColumnBuilder {
    Text(StringBuilder),
    Boolean(BooleanBuilder),
    Integer(Int64Builder),
    Timestamp(TimestampMillisecondBuilder),
    Date(Date32Builder),
    TextList(ListBuilder<StringBuilder>),
}

impl BatchBuilder {
    pub fn new(table: &'static TableDef, extracted_at: i64) -> BatchBuilder {
        BatchBuilder { table, extracted_at, companies: CompanyMatcher::default() }
    }

    /// Fills the `company` column from these configured legal entities.
    pub fn with_companies(mut self, companies: CompanyMatcher) -> BatchBuilder {
        self.companies = companies;
        self
    }

    /// One batch from one page of records. Relationship paths (`Profile.UserLicense.Name`) are
    /// followed through the nested objects; a `null` parent gives a null column.
    pub fn build(&self, records: &[Map<String, Value>]) -> Result<RecordBatch> {
        let n = records.len();
        let mut builders: Vec<ColumnBuilder> = self
            .table
            .columns
            .iter()
            .map(|c| match c.kind {
                ColumnType::Text => ColumnBuilder::Text(StringBuilder::with_capacity(n, n * 16)),
                ColumnType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(n)),
                ColumnType::Integer => ColumnBuilder::Integer(Int64Builder::with_capacity(n)),
                ColumnType::Timestamp => ColumnBuilder::Timestamp(TimestampMillisecondBuilder::with_capacity(n)),
                ColumnType::Date => ColumnBuilder::Date(Date32Builder::with_capacity(n)),
                ColumnType::TextList => ColumnBuilder::TextList(ListBuilder::with_capacity(StringBuilder::new(), n)),
            })
            .collect();
        for record in records {
            for (column, builder) in self.table.columns.iter().zip(builders.iter_mut()) {
                let derived;
                let value = match column.source {
                    Source::Field(path) => lookup(record, path),
                    Source::ExtractedAt => {
                        if let ColumnBuilder::Timestamp(b) = builder {
                            b.append_value(self.extracted_at);
                        }
                        continue;
                    }
                    Source::Company => {
                        let company_name = lookup(record, "CompanyName").as_str();
                        derived =
                            self.companies.matching(company_name).map_or(Value::Null, |c| Value::String(c.to_string()));
                        &derived
                    }
                    Source::CompanyNames => {
                        if let ColumnBuilder::TextList(b) = builder {
                            b.append_value(self.companies.names().map(Some));
                        }
                        continue;
                    }
                };
                self.append(builder, column.name, value)?;
            }
        }
        let arrays: Vec<ArrayRef> = builders
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

    fn append(&self, builder: &mut ColumnBuilder, column: &'static str, value: &Value) -> Result<()> {
        let bad = |expected| Error::BadValue { table: self.table.name, column, value: excerpt(value), expected };
        match (builder, value) {
            (ColumnBuilder::Text(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Boolean(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Integer(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Timestamp(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Date(b), Value::Null) => b.append_null(),
            (ColumnBuilder::TextList(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Text(b), Value::String(s)) => b.append_value(s),
            (ColumnBuilder::Boolean(b), Value::Bool(v)) => b.append_value(*v),
            // Bulk API CSV sends every value as text.
            (ColumnBuilder::Boolean(b), Value::String(v)) => b.append_value(match v.as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(bad("true or false")),
            }),
            (ColumnBuilder::Integer(b), Value::String(v)) => {
                let whole = v.parse::<i64>().ok().or_else(|| {
                    v.parse::<f64>().ok().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64)
                });
                b.append_value(whole.ok_or_else(|| bad("an integer"))?)
            }
            (ColumnBuilder::Integer(b), Value::Number(n)) => {
                // Salesforce sends some integer fields as 5.0.
                let v = n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64));
                b.append_value(v.ok_or_else(|| bad("an integer"))?)
            }
            (ColumnBuilder::Timestamp(b), Value::String(s)) => {
                b.append_value(parse_datetime(s).ok_or_else(|| bad("a datetime like 2024-01-15T10:30:00.000+0000"))?)
            }
            (ColumnBuilder::Date(b), Value::String(s)) => {
                b.append_value(parse_date(s).ok_or_else(|| bad("a date like 2024-01-15"))?)
            }
            (ColumnBuilder::Text(_), _) => return Err(bad("text")),
            (ColumnBuilder::Boolean(_), _) => return Err(bad("true or false")),
            (ColumnBuilder::Integer(_), _) => return Err(bad("an integer")),
            (ColumnBuilder::Timestamp(_), _) => return Err(bad("a datetime")),
            (ColumnBuilder::Date(_), _) => return Err(bad("a date")),
            (ColumnBuilder::TextList(_), _) => return Err(bad("a list of text")),
        }
        Ok(())
    }
}

/// Follows `Profile.UserLicense.Name` through nested objects (REST JSON), or takes the flat key
/// of that name (Bulk API CSV); a missing or null step is null.
fn lookup<'r>(record: &'r Map<String, Value>, path: &str) -> &'r Value {
    if let Some(value) = record.get(path) {
        return value;
    }
    let mut current = record;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let value = current.get(part).unwrap_or(&Value::Null);
        if parts.peek().is_none() {
            return value;
        }
        match value {
            Value::Object(next) => current = next,
            _ => return &Value::Null,
        }
    }
    &Value::Null
}

fn excerpt(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 { format!("{}…", text.chars().take(60).collect::<String>()) } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::{PROFILES, USERS};
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::TimestampMillisecondType;

    fn records(json: &str) -> Vec<Map<String, Value>> {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn flattens_parents_and_keeps_nulls() {
        let page = records(
            r#"[{"attributes":{"type":"Profile"},"Id":"00e1","Name":"Standard User","UserType":"Standard",
                 "UserLicenseId":"1001","UserLicense":{"attributes":{"type":"UserLicense"},"Name":"Salesforce"},
                 "SystemModstamp":"2024-01-15T10:30:00.000+0000"},
                {"attributes":{"type":"Profile"},"Id":"00e2","Name":"Zoë's profile","UserType":null,
                 "UserLicenseId":null,"UserLicense":null,"SystemModstamp":"2024-01-15T10:30:00.000+0000"}]"#,
        );
        let batch = BatchBuilder::new(&PROFILES, 7).build(&page).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(batch.schema(), PROFILES.schema());
        let license = batch.column_by_name("user_license_name").map(|c| c.as_string::<i32>().clone());
        let license = license.unwrap_or_else(|| panic!("column"));
        assert_eq!(license.value(0), "Salesforce");
        assert!(license.is_null(1));
        let names = batch.column(1).as_string::<i32>();
        assert_eq!(names.value(1), "Zoë's profile");
        let stamps = batch.column(5).as_primitive::<TimestampMillisecondType>();
        assert_eq!(stamps.value(0), 1_705_314_600_000);
    }

    #[test]
    fn bulk_csv_text_reads_like_rest_json() {
        let rest = records(
            r#"[{"Id":"005A","IsActive":true,"Profile":{"Name":"Std","UserLicense":{"Name":"Salesforce"}},
                 "LastLoginDate":"2024-01-15T10:30:00.000+0000","CompanyName":null}]"#,
        );
        let bulk = records(
            r#"[{"Id":"005A","IsActive":"true","Profile.Name":"Std","Profile.UserLicense.Name":"Salesforce",
                 "LastLoginDate":"2024-01-15T10:30:00.000+0000","CompanyName":null}]"#,
        );
        let build = |page| BatchBuilder::new(&USERS, 7).build(page).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(build(&rest), build(&bulk));
    }

    #[test]
    fn a_wrong_type_names_the_column() {
        let page = records(r#"[{"Id":"005x","IsActive":"yes"}]"#);
        let err = BatchBuilder::new(&USERS, 0).build(&page).unwrap_err().to_string();
        assert!(err.contains("users.is_active") && err.contains("\"yes\""), "{err}");
    }
}
