//! Bulk API 2.0 query jobs, for objects too large to page through the REST query API: a handful
//! of API calls (create, a few polls, one per result set of up to 50,000 records) instead of one
//! per 2,000 records. A job has a fixed cost of seconds, so callers use it for big reads only.

use crate::client::SalesforceClient;
use crate::error::{Error, Result};
use crate::records::{JsonRecords, RecordDecoder};
use crate::soql::SoqlQuery;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Records per result set asked for: one API call each.
const RESULT_SET: usize = 50_000;
/// Records handed out at once from a result set: a set's CSV text is held, its records are
/// made a page at a time, as from the REST API.
const PAGE: usize = 2000;
/// The wait between two polls of a job that has run for a minute.
const POLL_CEILING: Duration = Duration::from_secs(5);
/// A sparing job's first poll: a job costs a fixed 10-15 s on Salesforce's side even for a few
/// hundred rows (salesforce-api.md section 3, "seen"), so a poll before is a call spent for
/// nothing.
const SPARING_FIRST_POLL: Duration = Duration::from_secs(10);
/// A sparing job's longest wait between polls.
const SPARING_CEILING: Duration = Duration::from_secs(30);

/// One query job, read result set by result set.
pub struct BulkQuery<'c> {
    client: &'c SalesforceClient,
    soql: String,
    job: Option<String>,
    /// The next result set's locator; `None` once the last set is read.
    locator: Option<String>,
    done: bool,
    /// The result set being handed out, and its header.
    set: Option<(csv::Reader<std::io::Cursor<bytes::Bytes>>, csv::StringRecord)>,
    calls: AtomicU64,
    /// How long a job may take before sfetl gives up on it.
    timeout: Duration,
    /// Records per result set.
    result_set: usize,
    object: String,
    /// Every locator received: one that comes back would loop.
    seen_locators: std::collections::HashSet<String>,
    pace: PollPace,
}

/// How often a job is asked whether it is done: each poll is an API call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PollPace {
    /// Every second for a minute, then every five: the job was chosen for speed, and a poll
    /// that comes late wastes the time it was chosen to save.
    #[default]
    Prompt,
    /// The first poll after the fixed cost, then at a fifth of the time waited so far (never
    /// more than a fifth late), up to 30 s: for runs that save API calls (`bulk = "always"`,
    /// or an org short of daily requests). A 15-second job costs 4 polls instead of 16.
    Sparing,
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
            set: None,
            calls: AtomicU64::new(0),
            timeout: Duration::from_secs(3600),
            result_set: RESULT_SET,
            object: query.object.clone(),
            seen_locators: std::collections::HashSet::new(),
            pace: PollPace::Prompt,
        }
    }
}

impl BulkQuery<'_> {
    /// Asks for result sets of `records` (default 50,000): fewer calls, or less text held at once.
    pub fn result_set(mut self, records: usize) -> Self {
        self.result_set = records.max(1);
        self
    }

    /// How often the job is polled.
    pub fn pace(mut self, pace: PollPace) -> Self {
        self.pace = pace;
        self
    }

    /// API calls made so far (job creation, polls, result sets).
    pub fn api_calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    fn jobs_path(&self) -> String {
        format!("/services/data/v{}/jobs/query", self.client.api_version())
    }

    /// The next records, up to 2,000 (field path -> value; null fields are `null`), or `None`
    /// when every result set has been read. The first call creates the job and waits for it.
    pub async fn next_records(&mut self) -> Result<Option<Vec<Map<String, Value>>>> {
        self.next_decoded(&JsonRecords).await
    }

    /// Like [`BulkQuery::next_records`], the records decoded by `decoder`.
    pub async fn next_decoded<D: RecordDecoder>(&mut self, decoder: &D) -> Result<Option<D::Page>> {
        loop {
            if let Some((reader, header)) = self.set.as_mut() {
                let job = self.job.clone().unwrap_or_default();
                let rows = read_rows(reader)
                    .map_err(|e| Error::Bulk { job, message: format!("unreadable CSV result: {e}") })?;
                if !rows.is_empty() {
                    return Ok(Some(decoder.decode_csv(header, &rows)));
                }
                self.set = None;
            }
            if self.done {
                return Ok(None);
            }
            self.next_set().await?;
        }
    }

    /// Fetches the next result set (creating and awaiting the job first).
    async fn next_set(&mut self) -> Result<()> {
        let job = match &self.job {
            Some(job) => job.clone(),
            None => {
                let job = self.run_job().await?;
                self.job = Some(job.clone());
                job
            }
        };
        let path = format!("{}/{job}/results", self.jobs_path());
        let max_records = self.result_set.to_string();
        let mut query = vec![("maxRecords", max_records.as_str())];
        let locator = self.locator.clone();
        if let Some(locator) = &locator {
            query.push(("locator", locator));
        }
        let (body, next) = self.client.get_text_counted(&path, &query, &self.calls).await?;
        // A locator given twice would read the same result set again, without end.
        if let Some(next) = &next
            && (Some(next) == locator.as_ref() || !self.seen_locators.insert(next.clone()))
        {
            let why = format!("the Bulk API result locator {next} came back");
            return Err(Error::Looping { object: self.object.clone(), why });
        }
        self.done = next.is_none();
        self.locator = next;
        let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(std::io::Cursor::new(body));
        let header =
            reader.headers().map_err(|e| Error::Bulk { job, message: format!("unreadable CSV result: {e}") })?.clone();
        self.set = Some((reader, header));
        Ok(())
    }

    /// Creates the job and polls it ([`poll_interval`]) until it completes.
    async fn run_job(&self) -> Result<String> {
        let body = serde_json::json!({ "operation": "query", "query": self.soql });
        let created: JobInfo = self.client.post_json_counted(&self.jobs_path(), &body, &self.calls).await?;
        tracing::info!(job = %created.id, "Bulk API query job created");
        let started = Instant::now();
        if let Some(wait) = first_poll(self.pace) {
            tokio::time::sleep(wait).await;
        }
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
                _ => tokio::time::sleep(poll_interval(self.pace, started.elapsed())).await,
            }
        }
    }
}

/// How long after its creation a job is first asked about (`None`: at once).
fn first_poll(pace: PollPace) -> Option<Duration> {
    (pace == PollPace::Sparing).then_some(SPARING_FIRST_POLL)
}

/// How long to wait before asking about a job again. Prompt: a steady second while a job is
/// young (most finish within seconds of their fixed cost, and a doubling wait would find them up
/// to its whole length late), then every five seconds, so that a long job costs few API calls.
/// Sparing: a fifth of the time waited so far, between one and thirty seconds.
fn poll_interval(pace: PollPace, elapsed: Duration) -> Duration {
    match pace {
        PollPace::Prompt if elapsed < Duration::from_secs(60) => Duration::from_secs(1),
        PollPace::Prompt => POLL_CEILING,
        PollPace::Sparing => (elapsed / 5).clamp(Duration::from_secs(1), SPARING_CEILING),
    }
}

/// Up to [`PAGE`] rows of a CSV result set.
fn read_rows(reader: &mut csv::Reader<impl std::io::Read>) -> std::result::Result<Vec<csv::StringRecord>, csv::Error> {
    let mut rows = Vec::with_capacity(PAGE);
    let mut row = csv::StringRecord::new();
    while rows.len() < PAGE && reader.read_record(&mut row)? {
        rows.push(row.clone());
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_sets_become_pages_of_records_with_nulls_and_quoted_text() {
        let mut body =
            b"\"Id\",\"Name\",\"Profile.Name\",\"IsActive\"\n\"005A\",\"O'Brien, \"\"Zo\xc3\xab\"\"\",\"\",\"true\"\n"
                .to_vec();
        for i in 0..PAGE {
            body.extend(format!("\"005{i}\",\"n\",\"p\",\"false\"\n").bytes());
        }
        let mut reader = csv::ReaderBuilder::new().from_reader(&body[..]);
        let header = reader.headers().cloned().unwrap_or_default();
        let page =
            |reader: &mut csv::Reader<&[u8]>| JsonRecords.decode_csv(&header, &read_rows(reader).unwrap_or_default());
        let records = page(&mut reader);
        assert_eq!(records.len(), PAGE);
        assert_eq!(records[0]["Name"], "O'Brien, \"Zoë\"");
        assert_eq!(records[0]["Profile.Name"], Value::Null);
        assert_eq!(records[0]["IsActive"], "true");
        assert_eq!(page(&mut reader).len(), 1, "the rest, on the next page");
        assert_eq!(page(&mut reader).len(), 0);
    }

    /// Polls a job of `seconds` costs at each pace, and how late the last finds it done.
    fn polls_for(pace: PollPace, seconds: f64) -> (usize, f64) {
        let mut at = first_poll(pace).unwrap_or_default().as_secs_f64();
        let mut polls = 1;
        while at < seconds {
            at += poll_interval(pace, Duration::from_secs_f64(at)).as_secs_f64();
            polls += 1;
        }
        (polls, at - seconds)
    }

    #[test]
    fn a_sparing_pace_polls_a_job_a_few_times_and_finds_it_done_at_most_a_fifth_late() {
        // A 15-second job (the simulator's at a million rows; Salesforce's 10-15 s fixed cost).
        assert_eq!(polls_for(PollPace::Prompt, 15.0).0, 16);
        assert_eq!(polls_for(PollPace::Sparing, 15.0).0, 4);
        for seconds in [0.5, 9.0, 12.0, 15.0, 40.0, 120.0, 600.0, 3000.0] {
            let (prompt, _) = polls_for(PollPace::Prompt, seconds);
            let (sparing, late) = polls_for(PollPace::Sparing, seconds);
            assert!(sparing <= prompt, "{seconds} s: {sparing} sparing polls against {prompt}");
            let first = SPARING_FIRST_POLL.as_secs_f64();
            let allowed = if seconds < first { first - seconds } else { (seconds / 5.0).clamp(1.0, 30.0) };
            assert!(late <= allowed + 1e-9, "{seconds} s: found done {late} s late");
        }
        assert!(polls_for(PollPace::Sparing, 3000.0).0 < 120, "an hour-long job: waits of up to 30 s");
    }

    /// Every User record through a job read in many small result sets, against the simulator.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_read_in_many_result_sets_gives_every_record_once() {
        let mut config = sfetl_sim::SimConfig::new(sfetl_sim::OrgSpec::new(5, 4_500));
        config.bulk_fixed_cost = Duration::from_millis(100);
        config.bulk_per_record = Duration::ZERO;
        let sim = sfetl_sim::Sim::start(config).await.unwrap_or_else(|e| panic!("{e}"));
        let client = crate::testing::client_of(&sim, crate::ConnectionSettings::default());
        let query = SoqlQuery::new("User", ["Id", "Profile.Name", "IsActive"]);
        let mut job = client.bulk_query(&query).result_set(1_000);
        let mut ids = Vec::new();
        while let Some(records) = job.next_records().await.unwrap_or_else(|e| panic!("{e}")) {
            assert!(records.len() <= PAGE);
            ids.extend(records.iter().filter_map(|r| r["Id"].as_str().map(String::from)));
            assert!(records.iter().all(|r| r.contains_key("Profile.Name")));
        }
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!((count, ids.len()), (4_500, 4_500), "every record, once");
        let sets = sim.request_log().iter().filter(|r| r.path.ends_with("/results")).count();
        assert_eq!(sets, 5, "4,500 records in sets of 1,000");
        assert!(job.api_calls() >= 7, "create, poll, five sets: {}", job.api_calls());
    }

    /// A result locator that comes back (salesforce-api.md: each set names the next; a server
    /// that repeats one would be read forever) ends the job with an error.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_locator_that_comes_back_ends_the_job() {
        let mut config = sfetl_sim::SimConfig::new(sfetl_sim::OrgSpec::new(5, 3_000));
        config.bulk_fixed_cost = Duration::from_millis(100);
        config.bulk_per_record = Duration::ZERO;
        let sim = sfetl_sim::Sim::start(config).await.unwrap_or_else(|e| panic!("{e}"));
        let client = crate::testing::client_of(&sim, crate::ConnectionSettings::default());
        // The second set (asked with the first set's locator) names that locator again.
        sim.add_fault(
            sfetl_sim::FaultRule::new(sfetl_sim::Fault::RepeatLocator, sfetl_sim::Trigger::Nth(2)).on_paths("/results"),
        );
        let mut job = client.bulk_query(&SoqlQuery::new("User", ["Id"])).result_set(1_000);
        let mut read = 0;
        let error = loop {
            match job.next_records().await {
                Ok(Some(records)) => read += records.len(),
                Ok(None) => panic!("the job ended normally after {read} records"),
                Err(e) => break e,
            }
        };
        assert!(matches!(error, Error::Looping { .. }), "{error}");
        let sets = sim.request_log().iter().filter(|r| r.path.ends_with("/results")).count();
        assert_eq!(sets, 2, "stopped at the repeated locator");
    }
}
