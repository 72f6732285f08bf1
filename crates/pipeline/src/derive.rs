//! The license model's derived tables ([`sfetl_transform::model`]), computed from an org's files
//! once its run has written them.

use crate::config::OrgPlan;
use crate::summary::DerivedTable;
use arrow::array::AsArray;
use arrow::datatypes::{DataType, Field, Schema};
use sfetl_load::{Error, LocalSql, ParquetSink, expand, parquet_source, sql_literal};
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
) -> Result<Vec<DerivedTable>, Error> {
    let free_licenses = text_list(&plan.free_licenses);
    let paid_licenses = text_list(&plan.paid_licenses);
    let excluded: Vec<String> = plan.exclude_user_types.iter().map(|t| t.to_lowercase()).collect();
    let excluded_user_types = text_list(&excluded);
    let rulebook = sfetl_transform::rulebook::values_sql();
    let org = plan.name.as_str();
    let engine = LocalSql::open(&sink.spill_dir())?;
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
        .map_err(|name| Error::Schema {
            sql: table.name.to_string(),
            detail: format!("unknown placeholder {{{name}}}"),
        })?;
        let schema = table.schema();
        let mut writer = if table.per_run {
            sink.open_file(table.name, "org", org, &format!("{}-{run_id}", table.name), schema.clone())?
        } else {
            sink.open(table.name, "org", org, schema.clone())?
        };
        engine.select_each(&sql, &schema, |batch| writer.write(&batch))?;
        let rows = writer.commit()?;
        tracing::debug!(org, table = table.name, rows, "derived");
        derived.push(DerivedTable { table: table.name, rows });
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
) -> Result<(), Error> {
    let sql = format!("SELECT unnest({names}) AS name EXCEPT SELECT name FROM {}", parquet_source(subscriptions));
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

#[cfg(test)]
mod tests {
    use super::*;
    use sfetl_transform::{model, runs, tables};

    /// Over empty files of every declared schema, every derived table is derived (its SQL's
    /// columns match the declaration) and every view of the warehouse binds: a contract broken
    /// on either side fails here, not in a customer's run.
    #[test]
    fn every_derived_table_and_view_builds_over_empty_files_of_the_declared_schemas() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let sink = ParquetSink::new(dir.path());
        let run_id = "20260101T000000.000Z";
        let empty = |name: &str, schema, per_run: bool| {
            let writer = if per_run {
                sink.open_file(name, "org", "acme", &format!("{name}-{run_id}"), schema)
            } else {
                sink.open(name, "org", "acme", schema)
            };
            writer.and_then(|w| w.commit()).unwrap_or_else(|e| panic!("{name}: {}", crate::chain(&e)))
        };
        for table in tables::ALL {
            empty(table.name, table.schema(), false);
            if let Some(history) = table.history {
                empty(history, table.schema(), true);
            }
        }
        empty("runs", runs::schema(), true);
        let key = sfetl_extract::keys::rsa_key_and_certificate("t").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("k.key"), key.private_key_pem).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(dir.path().join("k.key"), std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap_or_else(|e| panic!("{e}"));
        let toml = "[[orgs]]\nname = \"acme\"\nurl = \"https://acme.my.salesforce.com\"\nclient_id = \"c\"\n\
                    username = \"u\"\nprivate_key_file = \"k.key\"\npaid_licenses = [\"Nonesuch\"]\n";
        let pipeline = crate::Pipeline::parse(toml, &dir.path().join("p.toml"));
        let plan = pipeline.unwrap_or_else(|e| panic!("{e}")).orgs[0].clone();
        let written: Vec<&'static str> = tables::ALL.iter().map(|t| t.name).collect();
        let derived = derive_org(&sink, &plan, run_id, &written).unwrap_or_else(|e| panic!("{}", crate::chain(&e)));
        let names: Vec<&str> = derived.iter().map(|d| d.table).collect();
        let declared: Vec<&str> = model::DERIVED.iter().map(|t| t.name).collect();
        assert_eq!(names, declared);
        assert!(derived.iter().all(|d| d.rows == 0), "{derived:?}");

        let all: Vec<&str> = tables::ALL
            .iter()
            .flat_map(|t| std::iter::once(t.name).chain(t.history))
            .chain(declared.iter().copied())
            .chain(["runs"])
            .collect();
        let views = model::analytics_views(90);
        let views: Vec<sfetl_load::View> =
            views.iter().map(|v| sfetl_load::View { name: v.name, inputs: v.inputs, sql: &v.sql }).collect();
        let published = sfetl_load::Warehouse::publish(dir.path(), &all, &views).unwrap_or_else(|e| panic!("{e}"));
        let refused: Vec<String> =
            published.failed.iter().map(|(view, e)| format!("{view}: {}", crate::chain(e))).collect();
        assert!(refused.is_empty(), "{refused:#?}");
        for view in &views {
            assert!(published.registered.iter().any(|r| r == view.name), "{} is not in the warehouse", view.name);
        }
    }
}
