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
    let free_licenses = text_list(&plan.free_licenses);
    let paid_licenses = text_list(&plan.paid_licenses);
    let excluded: Vec<String> = plan.exclude_user_types.iter().map(|t| t.to_lowercase()).collect();
    let excluded_user_types = text_list(&excluded);
    let rulebook = sfetl_transform::rulebook::values_sql();
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
            "paid_licenses" => Some(paid_licenses.clone()),
            "excluded_user_types" => Some(excluded_user_types.clone()),
            "rulebook" => Some(rulebook.clone()),
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
    if fresh.contains(&"subscriptions") {
        let subscriptions = sink.final_path("subscriptions", "org", org);
        for (setting, names) in [("free_licenses", &free_licenses), ("paid_licenses", &paid_licenses)] {
            warn_unknown_names(&engine, &subscriptions, setting, names, org)?;
        }
    }
    Ok(derived)
}

/// A list of names as a DuckDB `VARCHAR[]` literal.
fn text_list(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| sql_literal(name)).collect();
    format!("CAST([{}] AS VARCHAR[])", quoted.join(", "))
}

/// A name in `free_licenses` or `paid_licenses` (`setting`) that matches no license is a typo or a
/// license the org lost: say so.
fn warn_unknown_names(
    engine: &LocalSql,
    subscriptions: &std::path::Path,
    setting: &str,
    names: &str,
    org: &str,
) -> anyhow::Result<()> {
    let sql = format!("SELECT unnest({names}) EXCEPT SELECT name FROM {}", parquet_source(subscriptions));
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
            "`{setting}` names no license of this org: {}; use a user license's Name, a permission set \
             license's DeveloperName or a package's namespace, as in the `subscriptions` table",
            unknown.join(", ")
        );
    }
    Ok(())
}
