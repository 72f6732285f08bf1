//! Bulk API 2.0 query jobs, for objects too large to page through the REST query API: a handful
//! of API calls (create, a few polls, one per result set of up to 50,000 records) instead of one
//! per 2,000 records. A job has a fixed cost of seconds, so callers use it for big reads only.

use crate::client::SalesforceClient;
use crate::error::{Error, Result};
use crate::soql::SoqlQuery;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Records per result set asked for (Salesforce's own default and ceiling is larger; smaller
/// sets keep memory flat).
const RESULT_SET: &str = "50000";
/// Longest wait between two polls of a job's state.
const POLL_CEILING: Duration = Duration::from_secs(10);

/// One query job, read result set by result set.
pub struct BulkQuery<'c> {
    client: &'c SalesforceClient,
    soql: String,
    job: Option<String>,
    /// The next result set's locator; `None` once the last set is read.
    locator: Option<String>,
    done: bool,
    calls: AtomicU64,
    /// How long a job may take before sfetl gives up on it.
    timeout: Duration,
}

#[derive(serde::Deserialize)]
struct JobInfo {
    id: String,
    state: String,
    #[serde(rename = "errorMessage", default)]
    error_message: Option<String>,
}

impl SalesforceClient {
    /// A Bulk API 2.0 query job for `query`, which must not have ORDER BY or LIMIT (Bulk jobs
    /// refuse them). Nothing is sent before the first [`BulkQuery::next_records`].
    pub fn bulk_query(&self, query: &SoqlQuery) -> BulkQuery<'_> {
        BulkQuery {
            client: self,
            soql: query.to_string(),
            job: None,
            locator: None,
            done: false,
            calls: AtomicU64::new(0),
            timeout: Duration::from_secs(3600),
        }
    }
}

impl BulkQuery<'_> {
    /// API calls made so far (job creation, polls, result sets).
    pub fn api_calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    fn jobs_path(&self) -> String {
        format!("/services/data/v{}/jobs/query", self.client.api_version())
    }

    /// The next result set as records (field path -> value; null fields are `null`), or `None`
    /// when every set has been read. The first call creates the job and waits for it.
    pub async fn next_records(&mut self) -> Result<Option<Vec<Map<String, Value>>>> {
        if self.done {
            return Ok(None);
        }
        let job = match &self.job {
            Some(job) => job.clone(),
            None => {
                let job = self.run_job().await?;
                self.job = Some(job.clone());
                job
            }
        };
        let path = format!("{}/{job}/results", self.jobs_path());
        let mut query = vec![("maxRecords", RESULT_SET)];
        let locator = self.locator.clone();
        if let Some(locator) = &locator {
            query.push(("locator", locator));
        }
        let (body, next) = self.client.get_text_counted(&path, &query, &self.calls).await?;
        self.done = next.is_none();
        self.locator = next;
        parse_csv(&body).map(Some).map_err(|e| Error::Bulk { job, message: format!("unreadable CSV result: {e}") })
    }

    /// Creates the job and polls it, backing off, until it completes.
    async fn run_job(&self) -> Result<String> {
        let body = serde_json::json!({ "operation": "query", "query": self.soql });
        let created: JobInfo = self.client.post_json_counted(&self.jobs_path(), &body, &self.calls).await?;
        tracing::info!(job = %created.id, "Bulk API query job created");
        let started = Instant::now();
        let mut wait = Duration::from_millis(200);
        loop {
            let path = format!("{}/{}", self.jobs_path(), created.id);
            let info: JobInfo = self.client.get_counted(&path, &[], &self.calls).await?;
            match info.state.as_str() {
                "JobComplete" => return Ok(created.id),
                "Failed" | "Aborted" => {
                    let reason = info.error_message.unwrap_or_else(|| "no reason given".into());
                    return Err(Error::Bulk { job: created.id, message: format!("{}: {reason}", info.state) });
                }
                _ if started.elapsed() > self.timeout => {
                    return Err(Error::Bulk {
                        job: created.id,
                        message: format!("still {} after {:?}", info.state, self.timeout),
                    });
                }
                _ => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(POLL_CEILING);
                }
            }
        }
    }
}

/// A CSV result set as records keyed by the header's field paths; empty values are null (Bulk
/// API 2.0 writes null as nothing).
fn parse_csv(body: &[u8]) -> std::result::Result<Vec<Map<String, Value>>, csv::Error> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(body);
    let headers = reader.headers()?.clone();
    let mut records = Vec::new();
    for row in reader.records() {
        let row = row?;
        let record: Map<String, Value> = headers
            .iter()
            .zip(row.iter())
            .map(|(field, value)| {
                let value = if value.is_empty() { Value::Null } else { Value::String(value.to_string()) };
                (field.to_string(), value)
            })
            .collect();
        records.push(record);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_sets_become_records_with_nulls_and_quoted_text() {
        let body =
            b"\"Id\",\"Name\",\"Profile.Name\",\"IsActive\"\n\"005A\",\"O'Brien, \"\"Zo\xc3\xab\"\"\",\"\",\"true\"\n";
        let records = parse_csv(body).unwrap_or_default();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0]["Name"], "O'Brien, \"Zoë\"");
        assert_eq!(records[0]["Profile.Name"], Value::Null);
        assert_eq!(records[0]["IsActive"], "true");
    }
}
