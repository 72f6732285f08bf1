//! The license model's derived tables ([`sfetl_transform::model`]), computed from an org's files
//! once its run has written them.

use crate::pipeline::OrgPlan;
use arrow::array::AsArray;
use arrow::datatypes::{DataType, Field, Schema};
use sfetl_load::{LocalSql, ParquetSink, expand, parquet_source, sql_literal};
use sfetl_transform::model::DERIVED;
use std::sync::Arc;

/// Writes each derived table of the org whose inputs were all written by this run (`written`), in
/// order, and returns them with their row counts. A table whose inputs are older keeps its file:
/// derived rows always agree with one run's raw rows.
pub fn derive_org(
    sink: &ParquetSink,
    plan: &OrgPlan,
    run_id: &str,
    written: &[&'static str],
) -> anyhow::Result<Vec<(&'static str, u64)>> {
    let free: Vec<String> = plan.free_licenses.iter().map(|name| sql_literal(name)).collect();
    let free_licenses = format!("CAST([{}] AS VARCHAR[])", free.join(", "));
    let org = plan.name.as_str();
    let engine = LocalSql::open()?;
    let mut fresh = written.to_vec();
    let mut derived = Vec::new();
    for table in DERIVED {
        if !table.inputs.iter().all(|input| fresh.contains(input)) {
            continue;
        }
        let sql = expand(table.sql, |name| match name {
            "run_id" => Some(sql_literal(run_id)),
            "free_licenses" => Some(free_licenses.clone()),
            input => Some(parquet_source(&sink.final_path(input, "org", org))),
        })
        .map_err(|name| anyhow::anyhow!("{}: unknown placeholder {{{name}}}", table.name))?;
        let schema = table.schema();
        let mut writer = if table.per_run {
            sink.open_file(table.name, "org", org, &format!("{}-{run_id}", table.name), schema.clone())?
        } else {
            sink.open(table.name, "org", org, schema.clone())?
        };
        engine.select_each(&sql, &schema, |batch| writer.write(&batch))?;
        let rows = writer.commit()?;
        tracing::debug!(org, table = table.name, rows, "derived");
        derived.push((table.name, rows));
        fresh.push(table.name);
    }
    if !plan.free_licenses.is_empty() && fresh.contains(&"subscriptions") {
        warn_unknown_free_licenses(&engine, &sink.final_path("subscriptions", "org", org), &free_licenses, org)?;
    }
    Ok(derived)
}

/// A name in `free_licenses` that matches no license is a typo or a license the org lost: say so.
fn warn_unknown_free_licenses(
    engine: &LocalSql,
    subscriptions: &std::path::Path,
    free_licenses: &str,
    org: &str,
) -> anyhow::Result<()> {
    let sql = format!("SELECT unnest({free_licenses}) EXCEPT SELECT name FROM {}", parquet_source(subscriptions));
    let schema = Arc::new(Schema::new(vec![Field::new("name", DataType::Utf8, true)]));
    let mut unknown = Vec::new();
    engine.select_each(&sql, &schema, |batch| {
        unknown.extend(batch.column(0).as_string::<i32>().iter().flatten().map(String::from));
        Ok(())
    })?;
    if !unknown.is_empty() {
        unknown.sort();
        tracing::warn!(
            org,
            "`free_licenses` names no license of this org: {}; use a user license's Name, a permission set \
             license's DeveloperName or a package's namespace, as in the `subscriptions` table",
            unknown.join(", ")
        );
    }
    Ok(())
}
