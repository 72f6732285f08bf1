//! `sfetl extract`: for each org, log in, page through every table's object, write Parquet, then
//! register the DuckDB views. Orgs run concurrently; one failing does not stop the others.

use crate::pipeline::{Connection, OrgPlan, Pipeline};
use crate::progress::Progress;
use crate::scope::UserScope;
use crate::state::Cursor;
use anyhow::Context;
use arrow::array::{AsArray, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::record_batch::RecordBatch;
use futures_util::StreamExt;
use sfetl_extract::soql::{self, SoqlQuery};
use sfetl_extract::{BulkQuery, ConnectionSettings, Credentials, SalesforceClient};
use sfetl_load::{ParquetSink, PartitionWriter, View, Warehouse};
use sfetl_transform::model;
use sfetl_transform::parse_datetime;
use sfetl_transform::runs::{self, RunRecord};
use sfetl_transform::tables::{self, TableDef};
use sfetl_transform::{BatchBuilder, CompanyMatcher};
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// What one table of one org gave.
#[derive(Debug)]
pub struct TableOutcome {
    pub table: &'static str,
    /// Rows in the table after the run.
    pub rows: u64,
    /// Rows written from this run's answers (on an incremental run, only the changed ones).
    pub fetched: u64,
    pub api_calls: u64,
    pub elapsed: Duration,
}

/// What one org gave, or why it failed.
#[derive(Debug)]
pub struct OrgOutcome {
    pub org: String,
    pub tables: Vec<TableOutcome>,
    pub api_calls: u64,
    pub elapsed: Duration,
    pub error: Option<String>,
    /// The license model's tables derived from this run's files, with their rows.
    pub derived: Vec<(&'static str, u64)>,
    /// Why the quota guard (or an exhausted quota) stopped the org early.
    pub stopped: Option<String>,
}

/// How a run treats the incremental tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only what changed since the last run (everything, the first time).
    Incremental,
    /// Everything, whatever the saved cursors say (`--full`).
    Full,
}

pub async fn extract(
    pipeline: &Pipeline,
    output: &Path,
    mode: Mode,
    progress: &Progress,
) -> anyhow::Result<Vec<OrgOutcome>> {
    std::fs::create_dir_all(output)
        .map_err(|e| anyhow::anyhow!("cannot create the output directory {}: {e}", output.display()))?;
    let sink = ParquetSink::new(output);
    let run_id = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string();
    let context = RunContext { sink: &sink, run_id: &run_id, mode, concurrency: pipeline.concurrency, progress };
    // Simulated orgs live as long as the run.
    let mut simulators = Vec::new();
    let mut runs = Vec::new();
    for org in &pipeline.orgs {
        let connection = connect(org).await?;
        simulators.extend(connection.simulator);
        let (credentials, settings, expected_url) =
            (connection.credentials, connection.settings, connection.expected_url);
        let org_run = extract_org(org, credentials, settings, expected_url, &context);
        runs.push(async { record_run(&sink, &run_id, org_run.await) });
    }
    // At most `concurrency` orgs at once, each reading up to `concurrency` tables at once.
    let outcomes: Vec<OrgOutcome> = futures_util::stream::iter(runs).buffered(pipeline.concurrency).collect().await;
    let names: Vec<&str> = tables::ALL
        .iter()
        .flat_map(|t| std::iter::once(t.name).chain(t.history))
        .chain(model::DERIVED.iter().map(|t| t.name))
        .chain(["runs"])
        .collect();
    let views = model::analytics_views(pipeline.inactive_days);
    let views: Vec<View> = views.iter().map(|v| View { name: v.name, inputs: v.inputs, sql: &v.sql }).collect();
    for (view, error) in Warehouse::publish(output, &names, &views)?.failed {
        tracing::error!(view, "the analytics view was left out of the warehouse: {error}");
    }
    drop(simulators);
    Ok(outcomes)
}

/// What every org of one run shares.
#[derive(Clone, Copy)]
struct RunContext<'a> {
    sink: &'a ParquetSink,
    /// Names this run's files in the tables that keep every run's rows.
    run_id: &'a str,
    mode: Mode,
    /// Orgs at once, and tables at once within an org.
    concurrency: usize,
    progress: &'a Progress,
}

async fn extract_org(
    org: &OrgPlan,
    credentials: Credentials,
    settings: ConnectionSettings,
    expected_url: Option<String>,
    run: &RunContext<'_>,
) -> OrgOutcome {
    let RunContext { sink, run_id, mode, concurrency, progress } = *run;
    let started = Instant::now();
    let mut outcome = OrgOutcome {
        org: org.name.clone(),
        tables: Vec::new(),
        api_calls: 0,
        elapsed: Duration::ZERO,
        error: None,
        derived: Vec::new(),
        stopped: None,
    };
    let client = match SalesforceClient::new(credentials, settings) {
        Ok(client) => client,
        Err(e) => {
            outcome.error = Some(e.to_string());
            return outcome;
        }
    };
    let result = async {
        let session = client.login().await?;
        if let Some(expected) = expected_url
            && expected.trim_end_matches('/') != session.instance_url
        {
            tracing::warn!(org = %org.name, configured = %expected, returned = %session.instance_url,
                "Salesforce returned another instance URL than `url`; using the returned one");
        }
        let usage = client.read_limits().await?;
        tracing::info!(org = %org.name, used = usage.used, max = usage.max, "daily API requests before this run");
        // Every table of the org is written before any replaces its previous file, so an org's
        // tables change together; a quota stop keeps the tables finished before it.
        let mut state = crate::state::load(sink.root(), &org.name);
        // Tables are read concurrently (network waits overlap parsing and writing), in order.
        let results: Vec<_> = futures_util::stream::iter(tables::ALL)
            .map(|table| {
                let since = match mode {
                    Mode::Incremental if table.incremental => state.cursors.get(table.name).cloned(),
                    _ => None,
                };
                let client = &client;
                async move { (table, extract_table(client, org, table, since, run).await) }
            })
            .buffered(concurrency)
            .collect()
            .await;
        let mut pending: Vec<PartitionWriter> = Vec::new();
        let mut new_cursors = Vec::new();
        for (table, result) in results {
            match result {
                Ok((writers, table_outcome, cursor)) => {
                    pending.extend(writers);
                    outcome.tables.push(table_outcome);
                    if let Some(cursor) = cursor.filter(|_| table.incremental) {
                        new_cursors.push((table.name, cursor));
                    }
                }
                Err(e) if e.downcast_ref::<sfetl_extract::Error>().is_some_and(|e| e.is_quota_stop()) => {
                    tracing::warn!(org = %org.name, table = table.name, "{}; keeping the tables already extracted", crate::describe(&e));
                    outcome.stopped.get_or_insert(crate::describe(&e));
                }
                Err(e) => return Err(e),
            }
        }
        for writer in pending {
            writer.commit()?;
        }
        // Only now that the files are in place may the cursors move past their rows.
        if !new_cursors.is_empty() {
            state.cursors.extend(new_cursors.into_iter().map(|(name, cursor)| (name.to_string(), cursor)));
            crate::state::save(sink.root(), &org.name, &state)?;
        }
        let written: Vec<&'static str> = outcome.tables.iter().map(|t| t.table).collect();
        outcome.derived = tokio::task::block_in_place(|| crate::derive::derive_org(sink, org, run_id, &written))
            .context("deriving the license model from the files just written")?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = result {
        progress.org_failed(&org.name, &crate::describe(&e));
        outcome.error = Some(crate::describe(&e));
    }
    outcome.api_calls = client.api_calls();
    if client.retries() > 0 {
        tracing::info!(org = %org.name, retries = client.retries(), "requests retried after transient failures");
    }
    outcome.elapsed = started.elapsed();
    outcome
}

/// What connecting to one org takes: credentials, settings, the URL the configuration expects,
/// and for a simulated org, the simulator (it serves as long as this value lives).
pub struct OrgConnection {
    pub credentials: Credentials,
    pub settings: ConnectionSettings,
    pub expected_url: Option<String>,
    pub simulator: Option<sfetl_sim::Sim>,
}

pub async fn connect(org: &OrgPlan) -> anyhow::Result<OrgConnection> {
    let (credentials, ca_file, expected_url, simulator) = match &org.connection {
        Connection::Real { url, login_url, client_id, username, private_key, ca_file, .. } => {
            let credentials = Credentials {
                login_url: login_url.clone(),
                client_id: client_id.clone(),
                username: username.clone(),
                private_key: private_key.clone(),
            };
            (credentials, ca_file.clone(), Some(url.clone()), None)
        }
        Connection::Simulated(spec) => {
            let (sim, credentials) = crate::demo::start(org, spec).await?;
            (credentials, None, None, Some(sim))
        }
    };
    let settings = ConnectionSettings {
        api_version: org.api_version.clone(),
        ca_certificate: ca_file,
        batch_size: org.batch_size,
        quota: org.quota,
        retry: org.retry,
        ..ConnectionSettings::default()
    };
    Ok(OrgConnection { credentials, settings, expected_url, simulator })
}

/// Appends the org's row to `runs` (a file per run: `runs/org=<slug>/runs-<run_id>.parquet`). A
/// failure to record is logged, not fatal: the data itself is already in place.
fn record_run(sink: &ParquetSink, run_id: &str, outcome: OrgOutcome) -> OrgOutcome {
    let finished_at = chrono::Utc::now().timestamp_millis();
    let record = RunRecord {
        run_id: run_id.to_string(),
        started_at: finished_at - outcome.elapsed.as_millis() as i64,
        finished_at,
        status: match (&outcome.error, &outcome.stopped) {
            (Some(_), _) => "failed",
            (None, Some(_)) => "stopped",
            (None, None) => "succeeded",
        },
        error: outcome.error.clone().or_else(|| outcome.stopped.clone()),
        api_calls: outcome.api_calls as i64,
        rows: outcome
            .tables
            .iter()
            .map(|t| (t.table, t.rows as i64))
            .chain(outcome.derived.iter().map(|(table, rows)| (*table, *rows as i64)))
            .collect(),
    };
    let written = (|| -> anyhow::Result<()> {
        let mut writer = sink.open_file("runs", "org", &outcome.org, &format!("runs-{run_id}"), runs::schema())?;
        writer.write(&runs::batch(&[record])?)?;
        writer.commit()?;
        Ok(())
    })();
    if let Err(e) = written {
        tracing::error!(org = %outcome.org, "could not record the run in `runs`: {}", crate::describe(&e));
    }
    outcome
}

/// Reads one table of one org into a new (uncommitted) partition file, and for a table with a
/// history, every row read into this run's file of the history too. With a cursor (`since`)
/// and a previous file to merge into, only rows changed since the cursor, less the overlap, are
/// asked for; the previous file's other rows are carried over. Returns the writer, what it took,
/// and the newest row seen (the next cursor).
async fn extract_table(
    client: &SalesforceClient,
    org: &OrgPlan,
    table: &'static TableDef,
    since: Option<Cursor>,
    run: &RunContext<'_>,
) -> anyhow::Result<(Vec<PartitionWriter>, TableOutcome, Option<Cursor>)> {
    let RunContext { sink, run_id, progress, .. } = *run;
    let started = Instant::now();
    let extracted_at = chrono::Utc::now().timestamp_millis();
    // Only the users table has a scope (user types, companies); the others keep every row.
    let scope = (table.object == "User").then(|| UserScope::new(org));
    let builder = BatchBuilder::new(table, extracted_at).with_companies(CompanyMatcher::new(&org.company_names));
    let schema = table.schema();
    // The previous file, for an incremental run; without one (first run, new layout), read all.
    let previous = match &since {
        Some(_) => sink.existing(table.name, "org", &org.name, &schema)?,
        None => None,
    };
    let since = since.filter(|_| previous.is_some());
    let mut history = match table.history {
        Some(name) => Some(sink.open_file(name, "org", &org.name, &format!("{name}-{run_id}"), schema.clone())?),
        None => None,
    };
    let mut writer = sink.open(table.name, "org", &org.name, schema)?;
    // Ordered by Id so that a lost cursor resumes after the last row received.
    let mut query = SoqlQuery::new(table.object, table.soql_fields()).order_by("Id");
    if let Some(cursor) = &since {
        // Rows committed late can carry a SystemModstamp a little behind the newest one seen.
        let from = cursor.system_modstamp - org.incremental_overlap.as_millis() as i64;
        query = query.filter(format!("SystemModstamp >= {}", soql::datetime(from)));
    } else if let Some(condition) = scope.as_ref().and_then(UserScope::soql_condition) {
        // On a full read Salesforce leaves out most unwanted users. An incremental read asks for
        // every changed user, so that one who left the scope is removed from the table too.
        query = query.filter(condition);
    }
    let mut stream = client.query(&query);
    let mut bulk: Option<BulkQuery> = None;
    let bar = progress.table(&org.name, table.name);
    let mut changed: HashSet<String> = HashSet::new();
    let mut newest = since.clone();
    loop {
        let mut records = match bulk.as_mut() {
            Some(job) => match job.next_records().await? {
                Some(records) => records,
                None => break,
            },
            None => match stream.next_page().await? {
                Some(page) => {
                    bar.set_total(page.total_size);
                    let more = page.total_size > page.records.len() as u64;
                    if since.is_none() && more && org.bulk_threshold.is_some_and(|rows| page.total_size > rows) {
                        // A big full read goes on in one Bulk API job: a few calls instead of one
                        // per page. The first page was ordered by Id: the job reads what follows.
                        let last = page.records.last().and_then(|r| r.get("Id")).and_then(|v| v.as_str());
                        let mut rest = SoqlQuery::new(table.object, table.soql_fields());
                        if let Some(condition) = scope.as_ref().and_then(UserScope::soql_condition) {
                            rest = rest.filter(condition);
                        }
                        if let Some(last) = last {
                            rest = rest.filter(format!("Id > {}", soql::quote(last)));
                        }
                        tracing::info!(org = %org.name, table = table.name, rows = page.total_size,
                            "reading the rest through a Bulk API query job");
                        bulk = Some(client.bulk_query(&rest));
                    }
                    page.records
                }
                None => break,
            },
        };
        for record in &records {
            let id = record.get("Id").and_then(|v| v.as_str()).unwrap_or_default();
            let modstamp = record.get("SystemModstamp").and_then(|v| v.as_str()).and_then(parse_datetime);
            if let Some(modstamp) = modstamp {
                let seen = Cursor { system_modstamp: modstamp, id: id.to_string() };
                if newest.as_ref().is_none_or(|n| seen > *n) {
                    newest = Some(seen);
                }
            }
            if since.is_some() {
                changed.insert(id.to_string());
            }
        }
        let received = records.len() as u64;
        if let Some(scope) = &scope {
            records.retain(|record| scope.keeps(record));
        }
        let batch = builder.build(&records)?;
        // Parquet encoding is CPU and disk work: keep it off the async workers' hot path.
        tokio::task::block_in_place(|| -> anyhow::Result<()> {
            writer.write(&batch)?;
            if let Some(history) = history.as_mut() {
                history.write(&batch)?;
            }
            Ok(())
        })?;
        bar.advance(received);
    }
    let fetched = writer.rows();
    if let Some(previous) = previous.filter(|_| since.is_some()) {
        tokio::task::block_in_place(|| -> anyhow::Result<()> {
            for batch in previous {
                writer.write(&without_ids(&batch?, &changed)?)?;
            }
            Ok(())
        })?;
    }
    let rows = writer.rows();
    bar.finish(rows);
    if since.is_some() {
        tracing::info!(org = %org.name, table = table.name, changed = fetched, rows, "merged the changes into the table");
    }
    if stream.resumes() > 0 || stream.splits() > 0 {
        tracing::info!(org = %org.name, table = table.name, resumed = stream.resumes(), split = stream.splits(),
            "the query recovered: resumed after lost cursors, split after timeouts");
    }
    let api_calls = stream.api_calls() + bulk.as_ref().map_or(0, BulkQuery::api_calls);
    let outcome = TableOutcome { table: table.name, rows, fetched, api_calls, elapsed: started.elapsed() };
    Ok((std::iter::once(writer).chain(history).collect(), outcome, newest))
}

/// The batch without the rows whose Id (first column) is in `ids`.
fn without_ids(batch: &RecordBatch, ids: &HashSet<String>) -> anyhow::Result<RecordBatch> {
    let column = batch.column(0).as_string::<i32>();
    let keep: BooleanArray = column.iter().map(|id| Some(!id.is_some_and(|id| ids.contains(id)))).collect();
    Ok(filter_record_batch(batch, &keep)?)
}
