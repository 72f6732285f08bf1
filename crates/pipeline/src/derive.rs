//! The license model's derived tables ([`sfetl_transform::model`]), computed from an org's files
//! once its run has written them.

use crate::config::OrgPlan;
use crate::summary::DerivedTable;
use arrow::array::AsArray;
use arrow::datatypes::{DataType, Field, Schema};
use sfetl_load::{Error, LocalSql, ParquetSink, expand, parquet_source, sql_literal};
use sfetl_transform::model::{DERIVED, DerivedTable as DerivedTableDef};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The derived tables of one run, and the fingerprint of each one's inputs (for the tables that
/// declare what they read): the org's state keeps them for the next run.
#[derive(Debug, Default)]
pub struct Derived {
    pub tables: Vec<DerivedTable>,
    pub fingerprints: BTreeMap<String, String>,
}

/// Writes each derived table of the org whose inputs were all read by this run (`written`), in
/// order, and returns them with their row counts. A table whose inputs are older keeps its file:
/// derived rows always agree with one run's raw rows. With `unchanged_since` (an incremental
/// run: the fingerprints the last run derived from), a table whose declared input columns hold
/// the same values keeps its file too, as it would be derived again identical.
/// `engine`: an engine from [`LocalSql::open`] over the sink's spill directory.
pub fn derive_org(
    engine: &LocalSql,
    sink: &ParquetSink,
    plan: &OrgPlan,
    run_id: &str,
    written: &[&'static str],
    unchanged_since: Option<&BTreeMap<String, String>>,
) -> Result<Derived, Error> {
    let parameters = Parameters::of(plan, run_id);
    let org = plan.name.as_str();
    let mut fresh = written.to_vec();
    let mut derived = Derived::default();
    for table in DERIVED {
        if !table.inputs.iter().all(|input| fresh.contains(input)) {
            continue;
        }
        let sql = parameters.sql(table, sink, org)?;
        let schema = table.schema();
        let fingerprint = fingerprint(engine, &sql, table.reads, |input| input_source(sink, org, input))?;
        if let Some(fingerprint) = &fingerprint {
            derived.fingerprints.insert(table.name.to_string(), fingerprint.clone());
            let same = unchanged_since.and_then(|last| last.get(table.name)) == Some(fingerprint);
            if let Some(rows) = sink.rows_of(table.name, "org", org, &schema)?.filter(|_| same) {
                tracing::debug!(org, table = table.name, rows, "inputs unchanged: the derived table keeps its file");
                sink.keep(table.name, "org", org);
                derived.tables.push(DerivedTable { table: table.name, rows });
                fresh.push(table.name);
                continue;
            }
        }
        let mut writer = if table.per_run {
            sink.open_file(table.name, "org", org, &format!("{}-{run_id}", table.name), schema.clone())?
        } else {
            sink.open(table.name, "org", org, schema.clone())?
        };
        engine.select_each(&sql, &schema, |batch| writer.write(&batch))?;
        let rows = writer.commit()?;
        tracing::debug!(org, table = table.name, rows, "derived");
        derived.tables.push(DerivedTable { table: table.name, rows });
        fresh.push(table.name);
    }
    if fresh.contains(&"subscriptions") {
        let subscriptions = sink.final_path("subscriptions", "org", org);
        let settings = [("free_licenses", &parameters.free_licenses), ("paid_licenses", &parameters.paid_licenses)];
        for (setting, names) in settings {
            warn_unknown_names(engine, &subscriptions, setting, names, org)?;
        }
    }
    Ok(derived)
}

/// The values of a run that a derived table's SQL takes ([`sfetl_transform::model::PARAMETERS`]).
struct Parameters {
    run_id: String,
    free_licenses: String,
    paid_licenses: String,
    excluded_user_types: String,
    rulebook: String,
}

impl Parameters {
    fn of(plan: &OrgPlan, run_id: &str) -> Parameters {
        let excluded: Vec<String> = plan.exclude_user_types.iter().map(|t| t.to_lowercase()).collect();
        Parameters {
            run_id: sql_literal(run_id),
            free_licenses: text_list(&plan.free_licenses),
            paid_licenses: text_list(&plan.paid_licenses),
            excluded_user_types: text_list(&excluded),
            rulebook: sfetl_transform::rulebook::values_sql(),
        }
    }

    /// The table's SQL, over the org's files of its inputs.
    fn sql(&self, table: &DerivedTableDef, sink: &ParquetSink, org: &str) -> Result<String, Error> {
        expand(table.sql, |name| match name {
            "run_id" => Some(self.run_id.clone()),
            "free_licenses" => Some(self.free_licenses.clone()),
            "paid_licenses" => Some(self.paid_licenses.clone()),
            "excluded_user_types" => Some(self.excluded_user_types.clone()),
            "rulebook" => Some(self.rulebook.clone()),
            input => Some(input_source(sink, org, input)),
        })
        .map_err(|name| Error::Schema {
            sql: table.name.to_string(),
            detail: format!("unknown placeholder {{{name}}}"),
        })
    }
}

/// The org's file of an input table, as a DuckDB source.
fn input_source(sink: &ParquetSink, org: &str, input: &str) -> String {
    parquet_source(&sink.final_path(input, "org", org))
}

/// What a derived table is computed from: its SQL, and per declared input (`reads`) the row
/// count and the sum of a hash of each row's declared columns (any row added, removed or changed
/// in those columns changes it). `None` for a table that declares nothing: derived every run.
fn fingerprint(
    engine: &LocalSql,
    sql: &str,
    reads: &[(&str, &[&str])],
    source: impl Fn(&str) -> String,
) -> Result<Option<String>, Error> {
    if reads.is_empty() {
        return Ok(None);
    }
    let inputs = reads.iter().map(|(input, columns)| {
        let columns: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
        format!(
            "(SELECT count(*)::VARCHAR || ':' || coalesce(sum(hash({})), 0)::VARCHAR FROM {})",
            columns.join(", "),
            source(input)
        )
    });
    let all = std::iter::once(format!("hash({})::VARCHAR", sql_literal(sql))).chain(inputs).collect::<Vec<_>>();
    let query = format!("SELECT concat_ws('|', {}) AS fingerprint", all.join(", "));
    let schema = Arc::new(Schema::new(vec![Field::new("fingerprint", DataType::Utf8, true)]));
    let mut fingerprint = None;
    engine.select_each(&query, &schema, |batch| {
        fingerprint =
            fingerprint.take().or_else(|| batch.column(0).as_string::<i32>().iter().flatten().next().map(String::from));
        Ok(())
    })?;
    Ok(fingerprint)
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
    /// A table that declares the columns it reads (`reads`) is kept when those hold the same
    /// values: a column read but not declared would leave it stale. Its SQL must therefore bind
    /// over files of the declared columns alone; and leaving out any one of them must not.
    #[test]
    fn tables_that_declare_their_reads_read_nothing_else() {
        let plan = sample_plan(tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")).path());
        let declaring: Vec<_> = DERIVED.iter().filter(|t| !t.reads.is_empty()).collect();
        assert!(!declaring.is_empty());
        for table in declaring {
            assert!(!table.per_run, "{}: a per-run table is written every run", table.name);
            let mut declared: Vec<&str> = table.reads.iter().map(|(input, _)| *input).collect();
            declared.sort_unstable();
            let mut inputs = table.inputs.to_vec();
            inputs.sort_unstable();
            assert_eq!(declared, inputs, "{}: every input's columns are declared", table.name);
            let bind = |left_out: Option<(&str, &str)>| -> Result<(), String> {
                let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
                let sink = ParquetSink::new(dir.path());
                for (input, columns) in table.reads {
                    let full = tables::ALL.iter().find(|t| t.name == *input).map(|t| t.schema());
                    let full = full.ok_or_else(|| format!("{input} is not a raw table"))?;
                    let fields = full
                        .fields()
                        .iter()
                        .filter(|f| columns.contains(&f.name().as_str()) && left_out != Some((*input, f.name())))
                        .cloned()
                        .collect::<Vec<_>>();
                    let schema = Arc::new(Schema::new(fields));
                    sink.open(input, "org", "acme", schema).and_then(|w| w.commit()).map_err(|e| e.to_string())?;
                }
                let sql = Parameters::of(&plan, "r").sql(table, &sink, "acme").map_err(|e| e.to_string())?;
                let engine = LocalSql::open(&sink.spill_dir()).map_err(|e| e.to_string())?;
                engine.select_each(&sql, &table.schema(), |_| Ok(())).map_err(|e| crate::chain(&e))
            };
            bind(None).unwrap_or_else(|e| panic!("{} reads an undeclared column: {e}", table.name));
            for (input, columns) in table.reads {
                for column in *columns {
                    assert!(
                        bind(Some((input, column))).is_err(),
                        "{}: {input}.{column} is declared, never read",
                        table.name
                    );
                }
            }
        }
    }

    fn sample_plan(dir: &std::path::Path) -> OrgPlan {
        let key = sfetl_extract::keys::rsa_key_and_certificate("t").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("k.key"), key.private_key_pem).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(dir.join("k.key"), std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap_or_else(|e| panic!("{e}"));
        let toml = "[[orgs]]\nname = \"acme\"\nurl = \"https://acme.my.salesforce.com\"\nclient_id = \"c\"\n\
                    username = \"u\"\nprivate_key_file = \"k.key\"\npaid_licenses = [\"Nonesuch\"]\n";
        let pipeline = crate::Pipeline::parse(toml, &dir.join("p.toml"));
        pipeline.unwrap_or_else(|e| panic!("{e}")).orgs[0].clone()
    }

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
        let plan = sample_plan(dir.path());
        let written: Vec<&'static str> = tables::ALL.iter().map(|t| t.name).collect();
        let derived = LocalSql::open(&sink.spill_dir())
            .and_then(|engine| derive_org(&engine, &sink, &plan, run_id, &written, None));
        let derived = derived.unwrap_or_else(|e| panic!("{}", crate::chain(&e)));
        let derived = derived.tables;
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
        let published =
            sfetl_load::Warehouse::publish(dir.path(), &all, &views, "test").unwrap_or_else(|e| panic!("{e}"));
        let refused: Vec<String> =
            published.failed.iter().map(|(view, e)| format!("{view}: {}", crate::chain(e))).collect();
        assert!(refused.is_empty(), "{refused:#?}");
        for view in &views {
            assert!(published.registered.iter().any(|r| r == view.name), "{} is not in the warehouse", view.name);
        }
    }
}
