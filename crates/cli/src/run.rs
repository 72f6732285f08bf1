//! `sfetl extract`: for each org, log in, page through every table's object, write Parquet, then
//! register the DuckDB views. Orgs run concurrently; one failing does not stop the others.

use crate::pipeline::{Connection, OrgPlan, Pipeline};
use crate::progress::Progress;
use sfetl_extract::soql::SoqlQuery;
use sfetl_extract::{ConnectionSettings, Credentials, SalesforceClient};
use sfetl_load::{ParquetSink, PartitionWriter, Warehouse};
use sfetl_transform::BatchBuilder;
use sfetl_transform::tables::{self, TableDef};
use std::path::Path;
use std::time::{Duration, Instant};

/// What one table of one org gave.
#[derive(Debug)]
pub struct TableOutcome {
    pub table: &'static str,
    pub rows: u64,
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
    /// Why the quota guard (or an exhausted quota) stopped the org early.
    pub stopped: Option<String>,
}

pub async fn extract(pipeline: &Pipeline, output: &Path, progress: &Progress) -> anyhow::Result<Vec<OrgOutcome>> {
    std::fs::create_dir_all(output)
        .map_err(|e| anyhow::anyhow!("cannot create the output directory {}: {e}", output.display()))?;
    let sink = ParquetSink::new(output);
    // Simulated orgs live as long as the run.
    let mut simulators = Vec::new();
    let mut runs = Vec::new();
    for org in &pipeline.orgs {
        let (credentials, ca_file, expected_url) = match &org.connection {
            Connection::Real { url, login_url, client_id, username, private_key, ca_file } => {
                let credentials = Credentials {
                    login_url: login_url.clone(),
                    client_id: client_id.clone(),
                    username: username.clone(),
                    private_key: private_key.clone(),
                };
                (credentials, ca_file.clone(), Some(url.clone()))
            }
            Connection::Simulated(spec) => {
                let (sim, credentials) = crate::demo::start(org, spec).await?;
                simulators.push(sim);
                (credentials, None, None)
            }
        };
        let settings = ConnectionSettings {
            api_version: org.api_version.clone(),
            ca_certificate: ca_file,
            batch_size: org.batch_size,
            quota: org.quota,
            ..ConnectionSettings::default()
        };
        runs.push(extract_org(org, credentials, settings, expected_url, &sink, progress));
    }
    let outcomes = futures_util::future::join_all(runs).await;
    let names: Vec<&str> = tables::ALL.iter().map(|t| t.name).collect();
    Warehouse::publish(output, &names)?;
    drop(simulators);
    Ok(outcomes)
}

async fn extract_org(
    org: &OrgPlan,
    credentials: Credentials,
    settings: ConnectionSettings,
    expected_url: Option<String>,
    sink: &ParquetSink,
    progress: &Progress,
) -> OrgOutcome {
    let started = Instant::now();
    let mut outcome = OrgOutcome {
        org: org.name.clone(),
        tables: Vec::new(),
        api_calls: 0,
        elapsed: Duration::ZERO,
        error: None,
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
        if let Some(expected) = expected_url {
            if expected.trim_end_matches('/') != session.instance_url {
                tracing::warn!(org = %org.name, configured = %expected, returned = %session.instance_url,
                    "Salesforce returned another instance URL than `url`; using the returned one");
            }
        }
        let usage = client.read_limits().await?;
        tracing::info!(org = %org.name, used = usage.used, max = usage.max, "daily API requests before this run");
        // Every table of the org is written before any replaces its previous file, so an org's
        // tables change together; a quota stop keeps the tables finished before it.
        let mut pending: Vec<PartitionWriter> = Vec::new();
        for table in tables::ALL {
            match extract_table(&client, org, table, sink, progress).await {
                Ok((writer, table_outcome)) => {
                    pending.push(writer);
                    outcome.tables.push(table_outcome);
                }
                Err(e) if e.downcast_ref::<sfetl_extract::Error>().is_some_and(|e| e.is_quota_stop()) => {
                    tracing::warn!(org = %org.name, table = table.name, "{e:#}; keeping the tables already extracted");
                    outcome.stopped = Some(format!("{e:#}"));
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        for writer in pending {
            writer.commit()?;
        }
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = result {
        progress.org_failed(&org.name, &format!("{e:#}"));
        outcome.error = Some(format!("{e:#}"));
    }
    outcome.api_calls = client.api_calls();
    outcome.elapsed = started.elapsed();
    outcome
}

async fn extract_table(
    client: &SalesforceClient,
    org: &OrgPlan,
    table: &'static TableDef,
    sink: &ParquetSink,
    progress: &Progress,
) -> anyhow::Result<(PartitionWriter, TableOutcome)> {
    let started = Instant::now();
    let calls_before = client.api_calls();
    let extracted_at = chrono::Utc::now().timestamp_millis();
    let builder = BatchBuilder::new(table, extracted_at);
    let mut writer = sink.open(table.name, "org", &org.name, table.schema())?;
    // Ordered by Id so that a lost cursor resumes after the last row received.
    let query = SoqlQuery::new(table.object, table.soql_fields()).order_by("Id");
    let mut stream = client.query(&query);
    let bar = progress.table(&org.name, table.name);
    while let Some(page) = stream.next_page().await? {
        bar.set_total(page.total_size);
        let batch = builder.build(&page.records)?;
        // Parquet encoding is CPU and disk work: keep it off the async workers' hot path.
        tokio::task::block_in_place(|| writer.write(&batch))?;
        bar.advance(page.records.len() as u64);
    }
    let rows = writer.rows();
    bar.finish(rows);
    let outcome = TableOutcome {
        table: table.name,
        rows,
        api_calls: client.api_calls() - calls_before,
        elapsed: started.elapsed(),
    };
    Ok((writer, outcome))
}
