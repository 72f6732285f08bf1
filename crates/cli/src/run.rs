//! `sfetl extract`: for each org, log in, read every table ([`crate::read_table`]), commit the
//! files, derive the license model ([`crate::derive`]), then publish the DuckDB views. Orgs run
//! concurrently; one failing does not stop the others.

use crate::pipeline::{Connection, OrgPlan, Pipeline};
use crate::progress::Progress;
use anyhow::Context;
use futures_util::StreamExt;
use sfetl_extract::{ConnectionSettings, Credentials, SalesforceClient};
use sfetl_load::{ParquetSink, PartitionWriter, View, Warehouse};
use sfetl_transform::model;
use sfetl_transform::runs::{self, RunRecord};
use sfetl_transform::tables;
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
        runs.push(async {
            let outcome = record_run(&sink, &run_id, org_run.await);
            compact_run_files(&sink, &outcome.org);
            outcome
        });
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
pub(crate) struct RunContext<'a> {
    pub sink: &'a ParquetSink,
    /// Names this run's files in the tables that keep every run's rows.
    pub run_id: &'a str,
    pub mode: Mode,
    /// Orgs at once, and tables at once within an org.
    pub concurrency: usize,
    pub progress: &'a Progress,
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
                async move { (table, crate::read_table::read_table(client, org, table, since, run).await) }
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
        Connection::Real { url, login_url, pinned_route, client_id, username, private_key, ca_file, .. } => {
            let credentials = Credentials {
                login_url: login_url.clone(),
                client_id: client_id.clone(),
                username: username.clone(),
                private_key: private_key.clone(),
                my_domain_url: Some(url.clone()),
                pinned: pinned_route.clone(),
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

/// Run files merged into one once a partition has more than this many: a file per 100 nightly
/// runs, not one per night. `SFETL_RUN_FILES_PER_MERGE` changes it (the tests use 2).
fn run_files_per_merge() -> usize {
    std::env::var("SFETL_RUN_FILES_PER_MERGE").ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or(100)
}

/// Merges the org's files of the tables that keep every run (`runs`, the histories) once they
/// pile up. A failure is logged: the files stay readable as they are.
fn compact_run_files(sink: &ParquetSink, org: &str) {
    let per_run = tables::ALL
        .iter()
        .filter_map(|t| t.history.map(|history| (history, t.schema())))
        .chain(model::DERIVED.iter().filter(|t| t.per_run).map(|t| (t.name, t.schema())))
        .chain([("runs", runs::schema())]);
    let limit = run_files_per_merge();
    for (table, schema) in per_run {
        match tokio::task::block_in_place(|| sfetl_load::compact_runs(sink, table, ("org", org), &schema, limit)) {
            Ok(0) => {}
            Ok(merged) => tracing::info!(org, table, merged, "merged the run files into one"),
            Err(e) => tracing::warn!(org, table, "could not merge the run files (they stay as they are): {e}"),
        }
    }
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
