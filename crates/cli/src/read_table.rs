//! One table of one org: REST pages (or, for a big full read, a Bulk API job after the first
//! page), scoped, built into batches and written to a new partition file; on an incremental run,
//! merged by Id with the previous file.

use crate::pipeline::OrgPlan;
use crate::run::{RunContext, TableOutcome};
use crate::scope::UserScope;
use crate::state::Cursor;
use arrow::array::{AsArray, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::record_batch::RecordBatch;
use sfetl_extract::soql::{self, SoqlQuery};
use sfetl_extract::{BulkQuery, SalesforceClient};
use sfetl_load::PartitionWriter;
use sfetl_transform::tables::TableDef;
use sfetl_transform::{BatchBuilder, CompanyMatcher, parse_datetime};
use std::collections::HashSet;
use std::time::Instant;

/// Reads one table of one org into a new (uncommitted) partition file, and for a table with a
/// history, every row read into this run's file of the history too. With a cursor (`since`)
/// and a previous file to merge into, only rows changed since the cursor, less the overlap, are
/// asked for; the previous file's other rows are carried over. Returns the writer, what it took,
/// and the newest row seen (the next cursor).
pub(crate) async fn read_table(
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
                        // per page. The first page was ordered by Id: the job (which takes no
                        // ORDER BY) reads the same rows after its last.
                        let mut rest = SoqlQuery { order_by: None, ..query.clone() };
                        if let Some(last) = page.records.last().and_then(|r| r.get("Id")).and_then(|v| v.as_str()) {
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
