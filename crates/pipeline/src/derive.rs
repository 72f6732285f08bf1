//! The license model's derived tables ([`sfetl_transform::model`]), computed from an org's files
//! once its run has written them.

use crate::config::OrgPlan;
use crate::counted_by_key::{CountKeys, KeyGroup};
use crate::kept_by_key::KeptBatch;
use crate::summary::DerivedTable;
use arrow::array::AsArray;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use sfetl_load::{Error, LocalSql, ParquetSink, PartitionWriter, expand, parquet_source, sql_literal};
use sfetl_transform::model::{COUNTS, CountedByKey, DERIVED, DerivedTable as DerivedTableDef};
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
    // DuckDB hands a result over while its worker threads make it, and the reader spins while it
    // waits for them. For small orgs one thread is quicker: at 100k users a second one cost a
    // tenth of the run's CPU and saved no time. (The count from the file's footer: asked of
    // DuckDB, it cost 10 ms of an incremental run.)
    let users = match written.contains(&"users") {
        true => crate::kept_by_key::rows_of(sink, org, "users")?,
        false => 0,
    };
    if users <= ONE_THREAD_USERS {
        engine.set_threads(1)?;
    }
    std::thread::scope(|scope| {
        // An incremental run usually keeps the files a table counted by key reads (the users,
        // and `user_subscriptions` when no assignment changed): its counts are made from them
        // on a second core while DuckDB derives the tables before it, and used only when this
        // derive rewrote neither (at 100k users, 60 ms of a 0.4 s run). Without a fingerprint
        // of those rows to compare (a full read, a first run), they are derived anew: counted
        // ahead, the work would be thrown away.
        let mut ahead: Vec<(&str, std::thread::ScopedJoinHandle<'_, Result<RecordBatch, Error>>)> = Vec::new();
        if let Some(last) = unchanged_since {
            for table in DERIVED {
                let Some(spec) = &table.counted_by_key else { continue };
                if last.contains_key(spec.rows)
                    && table
                        .inputs
                        .iter()
                        .all(|input| written.contains(input) || DERIVED.iter().any(|d| d.name == *input))
                {
                    let counted = move || crate::counted_by_key::counts(spec, table, sink, org);
                    ahead.push((table.name, scope.spawn(counted)));
                }
            }
        }
        let open = |table: &DerivedTableDef| {
            if table.per_run {
                sink.open_file(table.name, "org", org, &format!("{}-{run_id}", table.name), table.schema())
            } else {
                sink.open(table.name, "org", org, table.schema())
            }
        };
        // A table made by key with no fingerprint to compare (a full read, a first run) is
        // derived anew: sfetl makes it from the raw files on a second core, while DuckDB derives
        // the tables before it and its fingerprint (at 100k users, `subscriptions`, its history
        // and `user_subscriptions`' fingerprint took 70 ms of the derive's 0.2 s, one core idle).
        let mut made_ahead: Vec<(&str, std::thread::ScopedJoinHandle<'_, Result<PartitionWriter, Error>>)> = Vec::new();
        // A table that counts the rows of one made ahead by the same keys
        // (`company_subscription_history` counts `user_subscriptions` by user) counts them on a
        // third thread as they are made, instead of reading them back once written (at a million
        // users, 1.1 s on one core after the 1.2 s of making them, the other core idle), from
        // one map of the keys that the maker keeps its rows by too. Its counts are used only if
        // the file they were counted from is the one committed.
        let mut counted_along: Vec<(&str, std::thread::ScopedJoinHandle<'_, Result<RecordBatch, Error>>)> = Vec::new();
        for table in DERIVED {
            let Some(spec) = &table.kept_by_key else { continue };
            let anew = unchanged_since.and_then(|last| last.get(table.name)).is_none();
            if !anew || !table.inputs.iter().all(|input| written.contains(input)) {
                continue;
            }
            let writer = open(table)?;
            let counting = DERIVED.iter().find_map(|counting| {
                let count = counting.counted_by_key.as_ref()?;
                (count.rows == table.name && count.keys == spec.keys && count.key == spec.key)
                    .then_some((*counting, count))
            });
            let Some((counting, count)) = counting else {
                let made = move || {
                    encoded_aside(scope, table, writer, |write| {
                        crate::kept_by_key::derive(spec, table, sink, org, write)
                    })
                };
                made_ahead.push((table.name, scope.spawn(made)));
                continue;
            };
            // A few batches in flight: the counter keeps pace, or holds the maker back.
            let (batches, received) = std::sync::mpsc::sync_channel::<KeptBatch<KeyGroup>>(4);
            let (keys_sent, keys_received) = std::sync::mpsc::sync_channel::<Arc<CountKeys>>(1);
            let counted = move || {
                let keys = keys_received.recv().map_err(|_| unfit_along(counting))?;
                let mut counter = crate::counted_by_key::Counter::new(count, counting, &keys)?;
                for kept in received {
                    counter.add(&kept.batch, kept.found.as_deref())?;
                }
                counter.finish()
            };
            counted_along.push((counting.name, scope.spawn(counted)));
            let made = move || {
                encoded_aside(scope, table, writer, |write| match CountKeys::read(count, counting, sink, org) {
                    Ok(keys) => {
                        let keys = Arc::new(keys);
                        drop(keys_sent.send(keys.clone()));
                        crate::kept_by_key::derive_among(
                            spec,
                            table,
                            sink,
                            org,
                            |id| keys.get(id),
                            |kept| {
                                let batch = kept.batch.clone();
                                // A counter that failed has hung up: its table is counted again
                                // from the file, where the error is reported.
                                drop(batches.send(kept));
                                write(batch)
                            },
                        )
                    }
                    // Keys the count cannot use are reported when it counts from the file.
                    Err(_) => {
                        drop((keys_sent, batches));
                        crate::kept_by_key::derive(spec, table, sink, org, write)
                    }
                })
            };
            made_ahead.push((table.name, scope.spawn(made)));
        }
        // The tables committed from a thread started above: counts made along them are theirs.
        let mut made_here: Vec<&str> = Vec::new();
        let mut fresh = written.to_vec();
        let mut rewritten: Vec<&str> = Vec::new();
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
                    tracing::debug!(
                        org,
                        table = table.name,
                        rows,
                        "inputs unchanged: the derived table keeps its file"
                    );
                    sink.keep(table.name, "org", org);
                    derived.tables.push(DerivedTable { table: table.name, rows });
                    fresh.push(table.name);
                    continue;
                }
            }
            let writer = match joined(&mut made_ahead, table.name) {
                Some(made) => {
                    let writer = made.map_err(|_| panicked(table))??;
                    made_here.push(table.name);
                    writer
                }
                None => {
                    let mut writer = open(table)?;
                    match (&table.kept_by_key, &table.counted_by_key) {
                        (Some(spec), _) => {
                            crate::kept_by_key::derive(spec, table, sink, org, |batch| writer.write(&batch))?
                        }
                        (None, Some(spec)) => {
                            // Failed or panicked, the counts are made again here, where an error is reported.
                            let along =
                                joined(&mut counted_along, table.name).and_then(Result::ok).and_then(Result::ok);
                            let along = along.filter(|_| made_here.contains(&spec.rows));
                            let early = joined(&mut ahead, table.name).and_then(Result::ok).and_then(Result::ok);
                            let valid = !rewritten.contains(&spec.keys) && !rewritten.contains(&spec.rows);
                            let counts = match along.or(early.filter(|_| valid)) {
                                Some(counts) => counts,
                                None => crate::counted_by_key::counts(spec, table, sink, org)?,
                            };
                            let source = |input: &str| input_source(sink, org, input);
                            let write = |batch: RecordBatch| writer.write(&batch);
                            derive_counted(engine, &parameters, spec, table, source, &counts, write)?
                        }
                        (None, None) => engine.select_each(&sql, &schema, |batch| writer.write(&batch))?,
                    }
                    writer
                }
            };
            let rows = writer.commit()?;
            tracing::debug!(org, table = table.name, rows, "derived");
            derived.tables.push(DerivedTable { table: table.name, rows });
            fresh.push(table.name);
            rewritten.push(table.name);
        }
        // Counts of a table not derived: their thread is waited for, not left to the scope.
        ahead.into_iter().chain(counted_along).for_each(|(_, counting)| drop(counting.join()));
        if fresh.contains(&"subscriptions") {
            let subscriptions = sink.final_path("subscriptions", "org", org);
            let settings = [("free_licenses", &parameters.free_licenses), ("paid_licenses", &parameters.paid_licenses)];
            for (setting, names) in settings {
                warn_unknown_names(engine, &subscriptions, setting, names, org)?;
            }
        }
        Ok(derived)
    })
}

/// The counts made along a table could not start: the thread making it ended before it read
/// the keys (its own error is the one reported).
fn unfit_along(table: &DerivedTableDef) -> Error {
    crate::kept_by_key::unfit(table, "the table it counts was not made".into())
}

/// `writer` given the rows `make` hands over, encoding them on a thread of its own: at a
/// million users, reading `user_subscriptions`' inputs and keeping their rows by key took about
/// as long as encoding the rows kept, and both were the derive's critical path on one thread.
fn encoded_aside<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    table: &DerivedTableDef,
    mut writer: PartitionWriter,
    make: impl FnOnce(&mut dyn FnMut(RecordBatch) -> Result<(), Error>) -> Result<(), Error>,
) -> Result<PartitionWriter, Error> {
    // A few batches in flight: the encoder keeps pace, or holds the maker back.
    let (batches, received) = std::sync::mpsc::sync_channel::<RecordBatch>(4);
    let encoder = scope.spawn(move || -> Result<PartitionWriter, Error> {
        for batch in received {
            writer.write(&batch)?;
        }
        Ok(writer)
    });
    let stopped = || crate::kept_by_key::unfit(table, "its writer stopped".into());
    let made = make(&mut |batch| batches.send(batch).map_err(|_| stopped()));
    drop(batches);
    // The encoder's error first: a maker whose batches were refused stopped because of it.
    let writer = encoder.join().map_err(|_| panicked(table))??;
    made.map(|()| writer)
}

fn panicked(table: &DerivedTableDef) -> Error {
    crate::kept_by_key::unfit(table, "its thread panicked".into())
}

/// What the thread started ahead for `table` (its name first) returned, once it is done; `None`
/// when none was started.
fn joined<T>(
    threads: &mut Vec<(&str, std::thread::ScopedJoinHandle<'_, T>)>,
    table: &str,
) -> Option<std::thread::Result<T>> {
    let at = threads.iter().position(|(name, _)| *name == table)?;
    Some(threads.swap_remove(at).1.join())
}

/// Users up to which the derive's DuckDB runs on one thread. Above it, DuckDB keeps a thread per
/// core for its bigger scans (`user_subscriptions`' fingerprint reads every assignment). At a
/// million users one thread or two made no difference this session's measurements could tell
/// apart (wall 9.3-9.9 s, peak 97-105 MiB either way) now that sfetl counts
/// `company_subscription_history` itself.
const ONE_THREAD_USERS: usize = 250_000;

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
        self.expand(table.name, table.sql, |input| input_source(sink, org, input))
    }

    /// `sql` (of the table `name`) with the run's values and each input as `source` gives it.
    fn expand(&self, name: &str, sql: &str, source: impl Fn(&str) -> String) -> Result<String, Error> {
        expand(sql, |placeholder| match placeholder {
            "run_id" => Some(self.run_id.clone()),
            "free_licenses" => Some(self.free_licenses.clone()),
            "paid_licenses" => Some(self.paid_licenses.clone()),
            "excluded_user_types" => Some(self.excluded_user_types.clone()),
            "rulebook" => Some(self.rulebook.clone()),
            input => Some(source(input)),
        })
        .map_err(|placeholder| Error::Schema {
            sql: name.to_string(),
            detail: format!("unknown placeholder {{{placeholder}}}"),
        })
    }
}

/// Hands a [`CountedByKey`] table's rows to `write`: its counts, made by sfetl
/// ([`crate::counted_by_key::counts`]) and loaded as the table `{counts}`, completed by its SQL.
fn derive_counted(
    engine: &LocalSql,
    parameters: &Parameters,
    spec: &CountedByKey,
    table: &DerivedTableDef,
    source: impl Fn(&str) -> String,
    counts: &RecordBatch,
    write: impl FnMut(RecordBatch) -> Result<(), Error>,
) -> Result<(), Error> {
    engine.create_table(COUNTS, counts)?;
    let sql = parameters.expand(table.name, spec.sql, |input| match input {
        COUNTS => COUNTS.to_string(),
        input => source(input),
    })?;
    let completed = engine.select_each(&sql, &table.schema(), write);
    engine.execute(&format!("DROP TABLE {COUNTS}"))?;
    completed
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

    /// `user_subscriptions` made by key has the rows of its SQL: each user's licenses once, an
    /// assignment of a user out of scope (or of none) left out, assignment dates kept. The counts
    /// per company and license made by sfetl are those of `company_subscription_history`'s SQL.
    #[test]
    fn tables_made_by_key_have_the_rows_of_their_sql() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let sink = ParquetSink::new(dir.path());
        let users = ["u0", "u1", "u2", "u3", "u4", "u5", "u6"].map(Some);
        let licenses = [Some("L1"), Some("L1"), Some("L2"), None, Some("L1"), Some("L2"), Some("L1")];
        let companies = [Some("Acme"), Some("Acme"), None, Some("Beta"), Some("Beta"), Some("Acme"), None];
        let active = [Some("true"), Some("false"), Some("true"), Some("true"), None, Some("false"), Some("true")];
        let columns = [("user_id", &users[..]), ("user_license_id", &licenses), ("company", &companies)];
        write_rows(&sink, "users", &[columns[0], columns[1], columns[2], ("is_active", &active)]);
        // u9 is out of scope, and one assignment has no user.
        let holders = [Some("u0"), Some("u0"), Some("u3"), Some("u6"), Some("u9"), None, Some("u5")];
        let held = [Some("P1"), Some("P2"), Some("P1"), Some("P1"), Some("P1"), Some("P2"), Some("P2")];
        // Milliseconds: arrow parses a zone's name only with its chrono-tz feature.
        let at = [Some("1705314600000"), None, Some("1675209600000"), None, None, None, None];
        write_rows(
            &sink,
            "permission_set_license_assignments",
            &[("user_id", &holders), ("permission_set_license_id", &held), ("assigned_at", &at)],
        );
        // K3 is no subscription: its holders are counted, then dropped by the join.
        let holders = [Some("u1"), Some("u9"), Some("u4"), Some("u2")];
        let held = [Some("K1"), Some("K1"), Some("K2"), Some("K3")];
        write_rows(&sink, "user_package_licenses", &[("user_id", &holders), ("package_license_id", &held)]);

        write_rows(&sink, "orgs", &[("org_id", &[Some("00D1")])]);
        let ids = [Some("L1"), Some("L2"), Some("P1"), Some("P2"), Some("K1"), Some("K2")];
        write_rows(&sink, "subscriptions", &[("subscription_id", &ids), ("name", &ids)]);

        let plan = sample_plan(dir.path());
        let engine = LocalSql::open(&sink.spill_dir()).unwrap_or_else(|e| panic!("{e}"));
        let parameters = Parameters::of(&plan, "r");
        let by_sql = |table: &DerivedTableDef| -> Vec<String> {
            let sql = parameters.sql(table, &sink, "acme").unwrap_or_else(|e| panic!("{e}"));
            let mut rows = Vec::new();
            let selected = engine.select_each(&sql, &table.schema(), |batch| {
                rows.extend(formatted_rows(&batch));
                Ok(())
            });
            selected.unwrap_or_else(|e| panic!("{}: {}", table.name, crate::chain(&e)));
            rows.sort();
            rows
        };

        let user_subscriptions = by_sql(&model::USER_SUBSCRIPTIONS);
        // Six user licenses; of the users in scope, five permission set and three package licenses.
        assert_eq!(user_subscriptions.len(), 14, "{user_subscriptions:#?}");
        assert!(user_subscriptions.contains(&"u0 | P1 | permission_set_license | 1705314600000".to_string()));
        let Some(spec) = &model::USER_SUBSCRIPTIONS.kept_by_key else { panic!("user_subscriptions is made by key") };
        let table = &model::USER_SUBSCRIPTIONS;
        let mut file = sink.open(table.name, "org", "acme", table.schema()).unwrap_or_else(|e| panic!("{e}"));
        let mut by_key = Vec::new();
        let made = crate::kept_by_key::derive(spec, table, &sink, "acme", |batch| {
            by_key.extend(formatted_rows(&batch));
            file.write(&batch)
        });
        made.unwrap_or_else(|e| panic!("{}", crate::chain(&e)));
        file.commit().unwrap_or_else(|e| panic!("{e}"));
        by_key.sort();
        assert_eq!(by_key, user_subscriptions);

        let table = &model::COMPANY_SUBSCRIPTION_HISTORY;
        let by_company = by_sql(table);
        assert!(
            by_company.contains(&"r | Acme | L1 | user_license | L1 | NULL | 2 | 1 | 0".to_string()),
            "{by_company:#?}"
        );
        assert!(by_company.contains(&"r | Beta | P1 | permission_set_license | P1 | NULL | 1 | 1 | 0".to_string()));
        // u4's flag is NULL: held, not by an active user.
        assert!(by_company.contains(&"r | Beta | K2 | package_license | K2 | NULL | 1 | 0 | 0".to_string()));
        assert!(!by_company.iter().any(|row| row.contains("K3")), "{by_company:#?}");
        let Some(spec) = &table.counted_by_key else { panic!("{} is counted by key", table.name) };
        let mut counted = Vec::new();
        let counts = crate::counted_by_key::counts(spec, table, &sink, "acme").unwrap_or_else(|e| panic!("{e}"));
        let source = |input: &str| input_source(&sink, "acme", input);
        let made = derive_counted(&engine, &parameters, spec, table, source, &counts, |batch| {
            counted.extend(formatted_rows(&batch));
            Ok(())
        });
        made.unwrap_or_else(|e| panic!("{}", crate::chain(&e)));
        counted.sort();
        assert_eq!(counted, by_company);

        // Counted as `user_subscriptions` is made (a full read's derive), by the map its maker
        // keeps rows by, each kept row's key as the maker found it: the counts of its file.
        let made = &model::USER_SUBSCRIPTIONS;
        let Some(kept) = &made.kept_by_key else { panic!("user_subscriptions is made by key") };
        let keys = CountKeys::read(spec, table, &sink, "acme").unwrap_or_else(|e| panic!("{e}"));
        let mut counter = crate::counted_by_key::Counter::new(spec, table, &keys).unwrap_or_else(|e| panic!("{e}"));
        let mut made_batches = Vec::new();
        let made_along = crate::kept_by_key::derive_among(
            kept,
            made,
            &sink,
            "acme",
            |id| keys.get(id),
            |b| {
                made_batches.push(b.batch.clone());
                counter.add(&b.batch, b.found.as_deref())
            },
        );
        made_along.unwrap_or_else(|e| panic!("{}", crate::chain(&e)));
        let mut along = formatted_rows(&counter.finish().unwrap_or_else(|e| panic!("{e}")));
        let mut from_file = formatted_rows(&counts);
        along.sort();
        from_file.sort();
        assert!(!along.is_empty());
        assert_eq!(along, from_file);

        // Counted in two shares (as on two cores), each numbering the values in its own order,
        // then merged: the same counts.
        assert!(made_batches.len() > 1, "the rows come in several batches");
        let counter = |batches: &mut dyn Iterator<Item = &RecordBatch>| {
            let mut counter = crate::counted_by_key::Counter::new(spec, table, &keys).unwrap_or_else(|e| panic!("{e}"));
            batches.for_each(|batch| counter.add(batch, None).unwrap_or_else(|e| panic!("{e}")));
            counter
        };
        let mut merged = counter(&mut made_batches.iter().step_by(2));
        merged.merge(counter(&mut made_batches.iter().skip(1).step_by(2).rev()));
        let mut merged = formatted_rows(&merged.finish().unwrap_or_else(|e| panic!("{e}")));
        merged.sort();
        assert_eq!(merged, from_file);

        // Counted from the file in shares of its row groups, on threads of their own (what a
        // run does from two million rows): the same counts, whatever the number of shares.
        let path = sink.final_path(made.name, "org", "acme");
        rewrite_in_row_groups_of(&path, 3);
        for shares in [1, 2, 3, 5, 8] {
            let counts = crate::counted_by_key::counts_in_shares(spec, table, &sink, "acme", shares);
            let mut in_shares = formatted_rows(&counts.unwrap_or_else(|e| panic!("{shares} shares: {e}")));
            in_shares.sort();
            assert_eq!(in_shares, from_file, "{shares} shares");
        }
    }

    /// Writes the Parquet file at `path` again, its rows in row groups of `rows` rows.
    fn rewrite_in_row_groups_of(path: &std::path::Path, rows: usize) {
        use parquet::arrow::ArrowWriter;
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).and_then(|b| b.build());
        let reader = reader.unwrap_or_else(|e| panic!("{e}"));
        let schema = arrow::record_batch::RecordBatchReader::schema(&reader);
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap_or_else(|e| panic!("{e}"))).collect();
        let properties = parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(Some(rows));
        let file = std::fs::File::create(path).unwrap_or_else(|e| panic!("{e}"));
        let mut writer = ArrowWriter::try_new(file, schema, Some(properties.build())).unwrap_or_else(|e| panic!("{e}"));
        batches.iter().for_each(|batch| writer.write(batch).unwrap_or_else(|e| panic!("{e}")));
        let written = writer.close().unwrap_or_else(|e| panic!("{e}"));
        assert!(written.num_row_groups() > 3, "{} row groups", written.num_row_groups());
    }

    /// Writes `columns` as the org's file of a raw table: the other columns are NULL, or a
    /// placeholder where the schema allows none.
    fn write_rows(sink: &ParquetSink, table: &str, columns: &[(&str, &[Option<&str>])]) {
        use arrow::array::{ArrayRef, Int64Array, StringArray, new_null_array};
        let raw = tables::ALL.iter().find(|t| t.name == table).map(|t| t.schema());
        let schema = raw.or_else(|| DERIVED.iter().find(|t| t.name == table).map(|t| t.schema()));
        let schema = schema.unwrap_or_else(|| panic!("{table} is not a table"));
        let rows = columns[0].1.len();
        let arrays: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|field| match columns.iter().find(|(name, _)| name == field.name()) {
                Some((_, values)) => {
                    let text = Arc::new(StringArray::from(values.to_vec())) as ArrayRef;
                    let text = match field.data_type() {
                        DataType::Timestamp(..) => arrow::compute::cast(&text, &DataType::Int64),
                        _ => Ok(text),
                    };
                    let cast = text.and_then(|text| arrow::compute::cast(&text, field.data_type()));
                    cast.unwrap_or_else(|e| panic!("{e}"))
                }
                None if field.is_nullable() => new_null_array(field.data_type(), rows),
                None if field.data_type() == &DataType::Utf8 => {
                    Arc::new(StringArray::from_iter_values((0..rows).map(|i| format!("row{i}"))))
                }
                None => {
                    arrow::compute::cast(&(Arc::new(Int64Array::from(vec![0; rows])) as ArrayRef), field.data_type())
                        .unwrap_or_else(|e| panic!("{e}"))
                }
            })
            .collect();
        let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap_or_else(|e| panic!("{e}"));
        let written =
            sink.open(table, "org", "acme", schema).and_then(|mut w| w.write(&batch).and_then(|()| w.commit()));
        written.unwrap_or_else(|e| panic!("{table}: {}", crate::chain(&e)));
    }

    /// Rows made on one thread and encoded on another are all written; when the encoder fails
    /// (here, a batch of another table's columns), its error is the one reported, not the maker's
    /// refused batches.
    #[test]
    fn rows_encoded_aside_are_written_and_an_encoders_failure_is_reported() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let sink = ParquetSink::new(dir.path());
        let table = &model::USER_SUBSCRIPTIONS;
        let batch = |rows: usize| {
            use arrow::array::{ArrayRef, Int64Array, StringArray};
            let schema = table.schema();
            let columns = schema.fields().iter().map(|field| match field.data_type() {
                DataType::Utf8 => {
                    Arc::new(StringArray::from_iter_values((0..rows).map(|i| format!("u{i}")))) as ArrayRef
                }
                kind => arrow::compute::cast(&(Arc::new(Int64Array::from(vec![0; rows])) as ArrayRef), kind)
                    .unwrap_or_else(|e| panic!("{e}")),
            });
            RecordBatch::try_new(schema.clone(), columns.collect()).unwrap_or_else(|e| panic!("{e}"))
        };
        let open = || sink.open(table.name, "org", "acme", table.schema()).unwrap_or_else(|e| panic!("{e}"));
        let written = std::thread::scope(|scope| {
            encoded_aside(scope, table, open(), |write| (0..10).try_for_each(|rows| write(batch(rows))))
        });
        assert_eq!(written.and_then(|writer| writer.commit()).unwrap_or_else(|e| panic!("{e}")), 45);

        let foreign = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("other", DataType::Int64, true)])),
            vec![Arc::new(arrow::array::Int64Array::from(vec![1]))],
        );
        let foreign = foreign.unwrap_or_else(|e| panic!("{e}"));
        let failed = std::thread::scope(|scope| {
            encoded_aside(scope, table, open(), |write| (0..10).try_for_each(|_| write(foreign.clone())))
        });
        let error = failed.err().map(|e| crate::chain(&e)).unwrap_or_else(|| panic!("a foreign batch was written"));
        assert!(!error.contains("its writer stopped"), "{error}");
    }

    fn formatted_rows(batch: &RecordBatch) -> Vec<String> {
        use arrow::util::display::{ArrayFormatter, FormatOptions};
        let options = FormatOptions::default().with_null("NULL");
        // Timestamps as numbers: arrow formats a zone by name only with its chrono-tz feature.
        let columns: Vec<arrow::array::ArrayRef> = batch
            .columns()
            .iter()
            .map(|c| match c.data_type() {
                DataType::Timestamp(..) => arrow::compute::cast(c, &DataType::Int64).unwrap_or_else(|e| panic!("{e}")),
                _ => c.clone(),
            })
            .collect();
        let formatters: Vec<ArrayFormatter> = columns
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        (0..batch.num_rows())
            .map(|row| formatters.iter().map(|f| f.value(row).to_string()).collect::<Vec<_>>().join(" | "))
            .collect()
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
