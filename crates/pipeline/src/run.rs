//! A run: for each org, log in, read every table ([`crate::read_table`]), commit the files,
//! derive the license model ([`crate::derive`]), record the run; then publish the DuckDB views.
//! Orgs run concurrently; one failing does not stop the others. With an object-storage output,
//! each org runs in the local working copy between its lease and its commit ([`crate::lake`]).

use crate::config::{OrgPlan, Pipeline};
use crate::connect::connect;
use crate::progress::{NoProgress, Progress};
use crate::ranges::spare_cursors;
use crate::read_table::OrgShared;
use crate::shared_calls::SharedCalls;
use crate::summary::{DerivedTable, OrgOutcome, OrgSummary, RefusedView, RunSummary};
use crate::{OrgError, RunError, Shard};
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use sfetl_extract::SalesforceClient;
use sfetl_lake::Lake;
use sfetl_load::{FinishedFile, ParquetSink, View, Warehouse};
use sfetl_transform::model;
use sfetl_transform::runs::{self, RunRecord};
use sfetl_transform::tables;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How a run treats the incremental tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Only what changed since the last run (everything, the first time).
    #[default]
    Incremental,
    /// Everything, whatever the saved cursors say (`--full`).
    Full,
}

/// How to run a pipeline.
#[derive(Clone)]
pub struct RunOptions {
    /// Where the files go, instead of the pipeline's `output`: a directory, or an object-storage
    /// URL (`s3://bucket/prefix`).
    pub output: Option<PathBuf>,
    pub mode: Mode,
    pub progress: Arc<dyn Progress>,
    /// When another run is writing the output: wait for it to end (`true`) or refuse
    /// ([`RunError::Busy`]).
    pub wait_for_output: bool,
    /// Only this worker's share of the pipeline's orgs ([`Shard::owns`]).
    pub shard: Option<Shard>,
    /// An object-storage output's local working copy, instead of the pipeline's `work_dir` or
    /// [`crate::default_work_dir`].
    pub work_dir: Option<PathBuf>,
    /// Publish `warehouse.duckdb` at the end (`false`: `--no-warehouse`).
    pub warehouse: bool,
    /// An object-storage output: how long an org's lease lasts unless renewed (it is renewed
    /// every third of it while the org runs), and how old an upload no manifest lists must be
    /// before it is removed.
    pub lease: Duration,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            output: None,
            mode: Mode::Incremental,
            progress: Arc::new(NoProgress),
            wait_for_output: false,
            shard: None,
            work_dir: None,
            warehouse: true,
            lease: DEFAULT_LEASE,
        }
    }
}

/// Ten minutes: renewed every three while the org runs, so a worker that dies holds its orgs
/// for ten minutes at most, and a network stall of several minutes does not lose them.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(600);

/// Extracts every org of the pipeline (of this worker's shard) and publishes the warehouse. An
/// org's failure is in its [`OrgSummary`]; `Err` only when the run could not start or publish
/// at all.
pub async fn run(pipeline: &Pipeline, options: RunOptions) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    let target = options.output.clone().unwrap_or_else(|| pipeline.output.clone());
    let lake = match target.to_str().filter(|t| Lake::is_url(t)) {
        Some(url) => {
            let lake = Lake::open(url)?;
            lake.check_conditional_put(&crate::worker_name()).await?;
            Some(lake)
        }
        None => None,
    };
    // An object-storage output is run in a local working copy, then published org by org.
    let output = match &lake {
        Some(lake) => options
            .work_dir
            .clone()
            .or_else(|| pipeline.work_dir.clone())
            .unwrap_or_else(|| crate::default_work_dir(lake.url(), options.shard)),
        None => target.clone(),
    };
    sfetl_load::create_private_dir(&output).map_err(|source| RunError::Output { path: output.clone(), source })?;
    // Held to the end of the run: a second run on this output waits or is refused.
    let _lock = crate::lock::OutputLock::acquire(&output, options.wait_for_output).await?;
    let sink = ParquetSink::new(&output);
    let run_id = crate::state::claim_run_id(&output)?;
    let context = RunContext {
        sink: &sink,
        run_id: &run_id,
        mode: options.mode,
        concurrency: pipeline.concurrency,
        progress: options.progress.as_ref(),
        lease: options.lease,
    };
    let mine = pipeline.orgs.iter().filter(|org| options.shard.is_none_or(|shard| shard.owns(&org.name)));
    // Boxed: a `Send` future the compiler can see is one (a scheduler spawns the run).
    let runs: Vec<BoxFuture<'_, OrgSummary>> = mine
        .map(|org| {
            let (context, lake) = (&context, lake.as_ref());
            async move {
                let local = extract_and_record(org, context);
                match lake {
                    Some(lake) => crate::lake::extract_org(lake, org, context, local).await,
                    None => local.await,
                }
            }
            .boxed()
        })
        .collect();
    // At most `concurrency` orgs at once, each reading up to `concurrency` tables at once.
    let orgs: Vec<OrgSummary> = in_given_order(runs, pipeline.concurrency).await;
    sfetl_extract::release_kept_answer_maps();
    let refused_views =
        if options.warehouse { publish(output.clone(), pipeline.inactive_days).await? } else { Vec::new() };
    for refused in &refused_views {
        tracing::error!(view = refused.view, "DuckDB refused the analytics view: {}", crate::chain(&refused.error));
    }
    Ok(RunSummary {
        run_id,
        output: target,
        work_dir: lake.is_some().then_some(output),
        shard: options.shard,
        mode: options.mode,
        orgs,
        refused_views,
        elapsed: started.elapsed(),
    })
}

/// One org in the local output: extract it, then record the run and merge run files.
async fn extract_and_record(org: &OrgPlan, context: &RunContext<'_>) -> OrgSummary {
    let summary = extract_org(org, context).await;
    let (sink, run_id) = (context.sink.clone(), context.run_id.to_string());
    // Recording and merging files is disk work: off the async workers.
    match tokio::task::spawn_blocking(move || {
        record_run(&sink, &run_id, &summary);
        compact_run_files(&sink, &summary.org);
        summary
    })
    .await
    {
        Ok(summary) => summary,
        Err(e) => {
            let mut summary = OrgSummary::new(&org.name);
            summary.outcome = OrgOutcome::Failed { error: e.into() };
            summary
        }
    }
}

/// Registers every table and analytics view in `warehouse.duckdb`; the views DuckDB refused.
pub(crate) async fn publish(output: PathBuf, inactive_days: u32) -> Result<Vec<RefusedView>, RunError> {
    tokio::task::spawn_blocking(move || {
        let (names, views) = warehouse_contents(inactive_days);
        let views: Vec<View> = views.iter().map(|v| View { name: v.name, inputs: v.inputs, sql: &v.sql }).collect();
        let published =
            Warehouse::publish(&output, &names, &views, &warehouse_contract()).map_err(RunError::Warehouse)?;
        Ok(published.failed.into_iter().map(|(view, error)| RefusedView { view, error }).collect())
    })
    .await?
}

/// What the warehouse holds: a view per table (raw, histories, derived, `runs`), then the
/// analytics views.
pub(crate) fn warehouse_contents(inactive_days: u32) -> (Vec<&'static str>, Vec<model::AnalyticsView>) {
    let names: Vec<&str> = tables::ALL
        .iter()
        .flat_map(|t| std::iter::once(t.name).chain(t.history))
        .chain(model::DERIVED.iter().map(|t| t.name))
        .chain(["runs"])
        .collect();
    (names, model::analytics_views(inactive_days))
}

/// What decides the warehouse's columns besides its statements: every table's schema (a new
/// sfetl that adds a column makes the database again).
fn warehouse_contract() -> String {
    let raw = tables::ALL.iter().map(|t| (t.name, t.schema()));
    let derived = model::DERIVED.iter().map(|t| (t.name, t.schema()));
    let all: Vec<_> = raw.chain(derived).chain([("runs", runs::schema())]).collect();
    format!("schemas {:016x}", crate::shard::fnv1a(format!("{all:?}").as_bytes()))
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
    pub progress: &'a dyn Progress,
    /// An object-storage output's lease length.
    pub lease: Duration,
}

async fn extract_org(org: &OrgPlan, run: &RunContext<'_>) -> OrgSummary {
    let started = Instant::now();
    let mut summary = OrgSummary::new(&org.name);
    // The connection (and a simulated org's server) lives until the org is done.
    let connection = match connect(org).await {
        Ok(connection) => connection,
        Err(error) => return failed(summary, error, run, started),
    };
    // Moving these fields out keeps the rest (a simulator) alive to the end of this function.
    let client = match SalesforceClient::new(connection.credentials, connection.settings) {
        Ok(client) => client,
        Err(error) => return failed(summary, error.into(), run, started),
    };
    let result = read_org(org, &client, connection.expected_url.as_deref(), run, &mut summary).await;
    summary.api_calls = client.api_calls();
    summary.retries = client.retries();
    if let Some(usage) = client.api_usage() {
        tracing::info!(org = %org.name, used = usage.used, max = usage.max, "daily API requests after this run");
    }
    if summary.retries > 0 {
        tracing::info!(org = %org.name, retries = summary.retries, "requests retried after transient failures");
    }
    match result {
        Ok(()) => {
            summary.elapsed = started.elapsed();
            summary
        }
        Err(error) => failed(summary, error, run, started),
    }
}

fn failed(mut summary: OrgSummary, error: OrgError, run: &RunContext<'_>, started: Instant) -> OrgSummary {
    run.progress.org_failed(&summary.org, &error);
    summary.outcome = OrgOutcome::Failed { error };
    summary.elapsed = started.elapsed();
    summary
}

/// Reads every table, commits the files, moves the cursors, derives the model.
async fn read_org(
    org: &OrgPlan,
    client: &SalesforceClient,
    expected_url: Option<&str>,
    run: &RunContext<'_>,
    summary: &mut OrgSummary,
) -> Result<(), OrgError> {
    let mut state = crate::state::load(run.sink.root(), &org.name);
    // A full read opens DuckDB only once its tables are written (see the derive below). An
    // incremental run (one with cursors to read from) holds little while it reads: DuckDB is
    // opened on a thread of its own while the login and first calls wait on the network, 13 ms
    // less on the critical path of a 0.3 s run at 100k users.
    let opening = (run.mode == Mode::Incremental && !state.cursors.is_empty()).then(|| {
        let spill = run.sink.spill_dir();
        tokio::task::spawn_blocking(move || sfetl_load::LocalSql::open(&spill))
    });
    let session = client.login().await?;
    if let Some(expected) = expected_url
        && expected.trim_end_matches('/') != session.instance_url
    {
        tracing::warn!(org = %org.name, configured = %expected, returned = %session.instance_url,
            "Salesforce returned another instance URL than `url`; using the returned one");
    }
    // No `/limits` first (one API request, and refused to users without "View Setup and
    // Configuration"): the client's first call goes alone, and its answer's `Sforce-Limit-Info`
    // tells the quota guard where the org stands before any other call.
    // Every table of the org is written before any replaces its previous file, so an org's
    // tables change together; a quota stop keeps the tables finished before it.
    // Tables are read concurrently (network waits overlap parsing and writing), in order,
    // `concurrency` at once; on an incremental run all at once, as they all expect few rows: their
    // first pages go together in composite calls (3 calls for 12 tables and 2 counts, against 6
    // a few tables at a time), and a read that needs calls of its own waits for one of the
    // `concurrency` permits. (Built in a loop, boxed: futures made in a closure hide from the
    // compiler that the run's future is `Send`.)
    // The query cursors the tables read at once leave spare, for big tables read in ranges.
    let shared = OrgShared {
        spares: Arc::new(Semaphore::new(spare_cursors(&client.api_version(), run.concurrency))),
        calls: SharedCalls::default(),
        own_reads: Semaphore::new(run.concurrency),
        round_trip: std::sync::Mutex::new(None),
    };
    // A full read with `bulk = "always"` starts every table at once too: its big tables wait on
    // jobs, and their first pages share composite calls with the little tables'.
    let at_once = match run.mode {
        Mode::Full if org.bulk != crate::config::BulkChoice::Always => run.concurrency,
        _ => tables::ALL.len(),
    };
    let shared = &shared;
    let mut reads: Vec<BoxFuture<'_, _>> = Vec::new();
    for table in tables::ALL {
        let since = match run.mode {
            Mode::Incremental if table.incremental => state.cursors.get(table.name).cloned(),
            _ => None,
        };
        let read = crate::read_table::read_table(client, org, table, since, run, shared);
        reads.push(read.map(move |read| (table, read)).boxed());
    }
    let results = in_given_order(reads, at_once).await;
    let mut pending: Vec<FinishedFile> = Vec::new();
    let mut new_cursors = Vec::new();
    let mut stopped: Option<(OrgError, Vec<&'static str>)> = None;
    for (table, result) in results {
        match result {
            Ok(read) => {
                pending.extend(read.files);
                summary.tables.push(read.summary);
                if let Some(cursor) = read.cursor.filter(|_| table.incremental) {
                    new_cursors.push((table.name, cursor));
                }
            }
            Err(e) if e.is_quota_stop() => match &mut stopped {
                Some((_, left)) => left.push(table.name),
                None => {
                    tracing::warn!(org = %org.name, table = table.name, "{}; keeping the tables already extracted", crate::chain(&e));
                    stopped = Some((e, vec![table.name]));
                }
            },
            Err(e) => return Err(e),
        }
    }
    let sink = run.sink.clone();
    let root = sink.root().to_path_buf();
    let (name, plan, run_id) = (org.name.clone(), org.clone(), run.run_id.to_string());
    let written: Vec<&'static str> = summary.tables.iter().map(|t| t.table).collect();
    let incremental = run.mode == Mode::Incremental;
    // Its failure is not reported here, before the files are in place: opened again below.
    let opened = match opening {
        Some(opening) => opening.await.ok().and_then(Result::ok),
        None => None,
    };
    let derived = tokio::task::spawn_blocking(move || -> Result<Vec<DerivedTable>, OrgError> {
        for file in pending {
            file.publish()?;
        }
        // Only now that the files are in place may the cursors move past their rows.
        if !new_cursors.is_empty() {
            state.cursors.extend(new_cursors.into_iter().map(|(name, cursor)| (name.to_string(), cursor)));
            crate::state::save(&root, &name, &state)?;
        }
        // A full read's engine is opened only now: opened while the tables were read, its memory
        // added to theirs (10-15 MiB more at the peak of a 100k-user run) to save 25 ms; opened on
        // a thread of its own while the files above were committed, 19 MiB more (their last row
        // groups are still held) to save 11 ms.
        let engine = match opened {
            Some(engine) => engine,
            None => sfetl_load::LocalSql::open(&sink.spill_dir()).map_err(OrgError::Derive)?,
        };
        let last = incremental.then_some(&state.derived);
        let derived =
            crate::derive::derive_org(&engine, &sink, &plan, &run_id, &written, last).map_err(OrgError::Derive)?;
        if derived.fingerprints != state.derived {
            state.derived = derived.fingerprints;
            crate::state::save(&root, &name, &state)?;
        }
        Ok(derived.tables)
    })
    .await??;
    summary.derived = derived;
    if let Some((reason, tables_left)) = stopped {
        summary.outcome = OrgOutcome::Stopped { reason, tables_left };
    }
    Ok(())
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
        match sfetl_load::compact_runs(sink, table, ("org", org), &schema, limit) {
            Ok(0) => {}
            Ok(merged) => tracing::info!(org, table, merged, "merged the run files into one"),
            Err(e) => {
                tracing::warn!(
                    org,
                    table,
                    "could not merge the run files (they stay as they are): {}",
                    crate::chain(&e)
                )
            }
        }
    }
}

/// Runs `futures` at most `at_once` at a time and gives their outputs in the order given. The
/// next starts as soon as any has finished: `buffered` counts finished outputs held behind an
/// unfinished first one, so a table waiting for its Bulk job (10-15 s on Salesforce's side),
/// or a big org, kept the later ones from starting while the machine sat idle.
/// (Numbered in a loop: futures made in a closure hide from the compiler that they are `Send`.)
async fn in_given_order<T, F: Future<Output = T>>(futures: Vec<F>, at_once: usize) -> Vec<T> {
    let mut numbered = Vec::with_capacity(futures.len());
    for (i, future) in futures.into_iter().enumerate() {
        numbered.push(async move { (i, future.await) });
    }
    let mut outputs: Vec<(usize, T)> =
        futures_util::stream::iter(numbered).buffer_unordered(at_once.max(1)).collect().await;
    outputs.sort_unstable_by_key(|(i, _)| *i);
    outputs.into_iter().map(|(_, output)| output).collect()
}

/// Appends the org's row to `runs` (a file per run: `runs/org=<slug>/runs-<run_id>.parquet`). A
/// failure to record is logged, not fatal: the data itself is already in place.
fn record_run(sink: &ParquetSink, run_id: &str, summary: &OrgSummary) {
    let finished_at = chrono::Utc::now().timestamp_millis();
    let (status, error) = match &summary.outcome {
        OrgOutcome::Succeeded => ("succeeded", None),
        OrgOutcome::Stopped { reason, .. } => ("stopped", Some(crate::chain(reason))),
        OrgOutcome::Failed { error } => ("failed", Some(crate::chain(error))),
        OrgOutcome::Skipped { reason } => ("skipped", Some(crate::chain(reason))),
    };
    let record = RunRecord {
        run_id: run_id.to_string(),
        started_at: finished_at - summary.elapsed.as_millis() as i64,
        finished_at,
        status,
        error,
        api_calls: summary.api_calls as i64,
        rows: summary
            .tables
            .iter()
            .map(|t| (t.table, t.rows as i64))
            .chain(summary.derived.iter().map(|d| (d.table, d.rows as i64)))
            .collect(),
    };
    let written = (|| -> Result<(), OrgError> {
        let mut writer = sink.open_file("runs", "org", &summary.org, &format!("runs-{run_id}"), runs::schema())?;
        writer.write(&runs::batch(&[record])?)?;
        writer.commit()?;
        Ok(())
    })();
    if let Err(e) = written {
        tracing::error!(org = %summary.org, "could not record the run in `runs`: {}", crate::chain(&e));
    }
}
