//! Bulk API 2.0 query jobs, for objects too large to page through the REST query API: a handful
//! of API calls (create, a few polls, one per result set of up to a million records, read as it
//! arrives: [`crate::result_set`]) instead of one per 2,000 records. A job has a fixed cost of
//! seconds, so callers use it for big reads only.

use crate::client::SalesforceClient;
use crate::error::{Error, Result};
use crate::job_polls::JobInfo;
use crate::records::{JsonRecords, RecordDecoder};
use crate::result_set::ResultSet;
use crate::soql::SoqlQuery;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Records per result set asked for (`maxRecords`): one API call each. A set is read as it
/// arrives, so its size costs no memory. "Get Results for a Query Job" (Bulk API 2.0 Developer
/// Guide): `maxRecords` is a maximum, a set "is still subject to the size limits" (Salesforce
/// gives fewer, and the next set's locator), and a very large set may time out; a locator "does
/// not change" while the job exists and its set may be retrieved "multiple times". So a set cut
/// short is asked for again, and the sets after it smaller, down to [`SMALLEST_RESULT_SET`].
const RESULT_SET: usize = 1_000_000;
/// The smallest result set asked for after cuts: the size sfetl asked for before it streamed.
const SMALLEST_RESULT_SET: usize = 50_000;
/// How often one result set is asked for again after its body was cut.
const SET_ATTEMPTS: u32 = 4;
/// Records handed out at once from a result set, as pages come from the REST API.
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
    /// The result set being handed out, the locator and the size it was asked with.
    set: Option<(ResultSet, Option<String>, usize)>,
    /// Times the set being read was asked for again after its body was cut.
    set_attempts: u32,
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
            set_attempts: 0,
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
    /// Asks for result sets of up to `records` (default a million): one API call per set.
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
            if let Some((set, asked_with, size)) = self.set.as_mut() {
                match set.next_page(PAGE).await {
                    Ok(Some((header, rows))) => return Ok(Some(decoder.decode_csv(&header, &rows))),
                    Ok(None) => {
                        self.set = None;
                        self.set_attempts = 0;
                    }
                    Err(e) if e.is_transient() && self.set_attempts + 1 < SET_ATTEMPTS => {
                        // The same set again (the same size: the records handed out already
                        // are its first), skipping those; the sets after it are asked smaller,
                        // in case its size was the trouble.
                        let (read, locator, size) = (set.read, asked_with.clone(), *size);
                        self.set_attempts += 1;
                        self.result_set = (self.result_set / 2).max(SMALLEST_RESULT_SET.min(self.result_set));
                        tracing::warn!(object = %self.object, records_read = read, error = %e,
                            "a Bulk API result set was cut short; asking for it again");
                        self.set = None;
                        self.open_set(locator, size, read).await?;
                    }
                    Err(e) => return Err(e),
                }
                continue;
            }
            if self.done {
                return Ok(None);
            }
            self.open_set(self.locator.clone(), self.result_set, 0).await?;
        }
    }

    /// Asks for the result set of up to `size` records at `locator` (the first: `None`),
    /// creating and awaiting the job first; `skip`: the set was cut after that many records,
    /// dropped this time.
    async fn open_set(&mut self, locator: Option<String>, size: usize, skip: u64) -> Result<()> {
        let again = self.set_attempts > 0;
        let job = match &self.job {
            Some(job) => job.clone(),
            None => {
                let job = self.run_job().await?;
                self.job = Some(job.clone());
                job
            }
        };
        let path = format!("{}/{job}/results", self.jobs_path());
        let max_records = size.to_string();
        let mut query = vec![("maxRecords", max_records.as_str())];
        if let Some(locator) = &locator {
            query.push(("locator", locator));
        }
        let body = self.client.get_streamed_counted(&path, &query, &self.calls).await?;
        let set = ResultSet::new(body, &job, skip, self.client.max_body_bytes());
        let next = set.next_locator().cloned();
        // A locator given twice would read the same result set again, without end. (A set
        // asked for again names the same next locator it named the first time.)
        if !again
            && let Some(next) = &next
            && (Some(next) == locator.as_ref() || !self.seen_locators.insert(next.clone()))
        {
            let why = format!("the Bulk API result locator {next} came back");
            return Err(Error::Looping { object: self.object.clone(), why });
        }
        self.done = next.is_none();
        self.locator = next;
        self.set = Some((set, locator, size));
        Ok(())
    }

    /// Creates the job and polls it ([`poll_interval`]) until it completes.
    async fn run_job(&self) -> Result<String> {
        let body = serde_json::json!({ "operation": "query", "query": self.soql });
        let created: JobInfo = self.client.post_json_counted(&self.jobs_path(), &body, &self.calls).await?;
        tracing::info!(job = %created.id, "Bulk API query job created");
        // The org's other jobs waited on meanwhile are polled in the same calls.
        let _waiting = self.client.job_polls.wait(&created.id);
        let started = Instant::now();
        if let Some(wait) = first_poll(self.pace) {
            tokio::time::sleep(wait).await;
        }
        loop {
            let info = self.client.job_info(&created.id, &self.calls).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_records_become_records_with_nulls_and_quoted_text() {
        let body =
            b"\"Id\",\"Name\",\"Profile.Name\",\"IsActive\"\n\"005A\",\"O'Brien, \"\"Zo\xc3\xab\"\"\",\"\",\"true\"\n";
        let mut reader = csv::ReaderBuilder::new().from_reader(&body[..]);
        let header = reader.headers().cloned().unwrap_or_default();
        let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap_or_else(|e| panic!("{e}"))).collect();
        let records = JsonRecords.decode_csv(&header, &rows);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0]["Name"], "O'Brien, \"Zoë\"");
        assert_eq!(records[0]["Profile.Name"], Value::Null, "an empty value is null");
        assert_eq!(records[0]["IsActive"], "true");
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

    /// Every User record through a job whose result set is cut by `fault` (the simulator sends
    /// half the body, then breaks or stalls the connection): the set is asked for again and the
    /// records already handed out are skipped, so none is lost or doubled. Returns the result
    /// sets asked for.
    async fn read_through(fault: sfetl_sim::Fault, settings: crate::ConnectionSettings) -> usize {
        let mut config = sfetl_sim::SimConfig::new(sfetl_sim::OrgSpec::new(5, 9_000));
        config.bulk_fixed_cost = Duration::from_millis(100);
        config.bulk_per_record = Duration::ZERO;
        let sim = sfetl_sim::Sim::start(config).await.unwrap_or_else(|e| panic!("{e}"));
        let client = crate::testing::client_of(&sim, settings);
        sim.add_fault(sfetl_sim::FaultRule::new(fault, sfetl_sim::Trigger::Nth(1)).on_paths("/results"));
        let mut job = client.bulk_query(&SoqlQuery::new("User", ["Id", "Username"])).result_set(6_000);
        let (mut ids, mut pages) = (Vec::new(), 0);
        while let Some(records) = job.next_records().await.unwrap_or_else(|e| panic!("{e}")) {
            pages += 1;
            ids.extend(records.iter().filter_map(|r| r["Id"].as_str().map(String::from)));
        }
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!((count, ids.len()), (9_000, 9_000), "every record, once");
        assert!(pages >= 5, "pages of at most 2,000: {pages}");
        sim.request_log().iter().filter(|r| r.path.ends_with("/results")).count()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_result_set_cut_short_is_read_again_skipping_what_was_handed_out() {
        let sets = read_through(sfetl_sim::Fault::TruncatedBody, crate::ConnectionSettings::default()).await;
        assert_eq!(sets, 3, "the cut set, the same set again, then the second");
    }

    /// A set whose body stops coming is given up after the timeout, counted per wait for the
    /// next bytes (a set of millions of records may take longer in all), and asked for again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_result_set_that_stalls_is_asked_for_again_after_the_timeout() {
        let settings = crate::ConnectionSettings { timeout: Duration::from_secs(1), ..Default::default() };
        let started = Instant::now();
        let sets = read_through(sfetl_sim::Fault::StalledBody(Duration::from_secs(60)), settings).await;
        assert_eq!(sets, 3);
        assert!(started.elapsed() < Duration::from_secs(30), "given up after the timeout: {:?}", started.elapsed());
    }

    /// A set's body may take longer than the timeout, but not its head: an answer that does not
    /// come is given up after the timeout and asked for again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_result_set_whose_answer_does_not_come_is_asked_for_again_after_the_timeout() {
        let settings = crate::ConnectionSettings { timeout: Duration::from_secs(1), ..Default::default() };
        let started = Instant::now();
        read_through(sfetl_sim::Fault::SlowAnswer(Duration::from_secs(60)), settings).await;
        assert!(started.elapsed() < Duration::from_secs(30), "given up after the timeout: {:?}", started.elapsed());
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
