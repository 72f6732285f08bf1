//! Bulk API 2.0 query jobs of one org asked about together. `GET /jobs/query` lists the org's
//! query jobs with their states ("Get Information About All Query Jobs", Bulk API 2.0 Developer
//! Guide: up to 1,000 a page, in no set order, the rest behind `nextRecordsUrl`), so the jobs a
//! run waits on at once (its big tables') share one call per poll instead of one each.
//!
//! The list is only a shortcut. A job it does not show (on a later page of a busy org's list),
//! a failed job (whose reason the list may not carry), an org that refuses the list, and a job
//! polled alone are all asked about on their own, as before.

use crate::client::SalesforceClient;
use crate::error::Result;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A list answer younger than this serves as a poll of the jobs it shows: jobs created
/// together poll a few milliseconds apart, and a state that old delays the next poll by as much.
const FRESH: Duration = Duration::from_secs(1);

/// What a poll tells of a job.
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct JobInfo {
    pub id: String,
    pub state: String,
    #[serde(rename = "errorMessage", default)]
    pub error_message: Option<String>,
}

/// The org's jobs being waited on, and the last list of their states.
#[derive(Default)]
pub(crate) struct JobPolls {
    /// Jobs created and not yet found finished.
    waiting: Mutex<HashSet<String>>,
    /// When the last list was asked, and the states it gave.
    last: Mutex<Option<(Instant, HashMap<String, JobInfo>)>>,
    /// Held while a list call is on its way: the jobs polling meanwhile wait for its answer.
    listing: tokio::sync::Mutex<()>,
    /// Set when a list did not help (the org refused it, or it left out a job waited on): every
    /// job is then asked about on its own.
    unhelpful: std::sync::atomic::AtomicBool,
}

/// A job being waited on: among those a list call serves while it lives.
pub(crate) struct Waiting<'p>(&'p JobPolls, String);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Ok(mut waiting) = self.0.waiting.lock() {
            waiting.remove(&self.1);
        }
    }
}

impl JobPolls {
    /// Notes `job` as waited on until the guard drops.
    pub fn wait(&self, job: &str) -> Waiting<'_> {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(job.to_string());
        }
        Waiting(self, job.to_string())
    }

    fn waiting(&self) -> HashSet<String> {
        self.waiting.lock().map(|waiting| waiting.clone()).unwrap_or_default()
    }

    /// The state the last list gave `job`, if it is fresh and showed it.
    fn listed(&self, job: &str) -> Option<JobInfo> {
        let last = self.last.lock().ok()?;
        let (at, states) = last.as_ref()?;
        (at.elapsed() < FRESH).then(|| states.get(job).cloned()).flatten()
    }
}

impl SalesforceClient {
    /// Where `job` stands, its calls counted in `calls`: from a list of the org's jobs asked
    /// less than a second ago, or asked now when other jobs are waited on too; else (or when
    /// the list does not show it) asked on its own.
    pub(crate) async fn job_info(&self, job: &str, calls: &AtomicU64) -> Result<JobInfo> {
        let polls = &self.job_polls;
        let version = self.api_version();
        let listed = match polls.listed(job) {
            Some(info) => Some(info),
            None if polls.waiting().len() > 1 && !polls.unhelpful.load(Ordering::SeqCst) => {
                let _listing = polls.listing.lock().await;
                // Another job's list may have come while this one waited for the lock, or shown
                // the list to be of no help.
                match polls.listed(job) {
                    Some(info) => Some(info),
                    None if polls.unhelpful.load(Ordering::SeqCst) => None,
                    None => {
                        let states = self.list_jobs(&version, calls).await.unwrap_or_default();
                        if polls.waiting().iter().any(|waited| !states.contains_key(waited)) {
                            // A busy org's first page of jobs, or an org that refuses the list:
                            // asking it again would cost a call per poll for nothing.
                            polls.unhelpful.store(true, Ordering::SeqCst);
                        }
                        states.get(job).cloned()
                    }
                }
            }
            None => None,
        };
        // A failure's reason is in the job's own answer.
        if let Some(info) = listed.filter(|info| !matches!(info.state.as_str(), "Failed" | "Aborted")) {
            return Ok(info);
        }
        self.get_counted(&format!("/services/data/v{version}/jobs/query/{job}"), &[], calls).await
    }

    /// One page of the org's query jobs, kept as the last list; `None` when the org refused it.
    async fn list_jobs(&self, version: &str, calls: &AtomicU64) -> Option<HashMap<String, JobInfo>> {
        let path = format!("/services/data/v{version}/jobs/query");
        let asked = Instant::now();
        // Read loosely: the list is a shortcut, and an answer of another shape (a job without
        // a state, say) only means the jobs it does not show are polled on their own.
        let list: serde_json::Value = match self.get_counted(&path, &[("jobType", "V2Query")], calls).await {
            Ok(list) => list,
            Err(e) => {
                tracing::debug!("the org's list of query jobs was refused ({e}); each job is polled on its own");
                return None;
            }
        };
        let records = list.get("records").and_then(|records| records.as_array()).cloned().unwrap_or_default();
        let states: HashMap<String, JobInfo> = records
            .into_iter()
            .filter_map(|record| serde_json::from_value::<JobInfo>(record).ok())
            .map(|info| (info.id.clone(), info))
            .collect();
        if let Ok(mut last) = self.job_polls.last.lock() {
            *last = Some((asked, states.clone()));
        }
        Some(states)
    }
}

#[cfg(test)]
mod tests {
    use crate::soql::SoqlQuery;
    use std::time::Duration;

    /// The simulator's requests for one job's state, and for the org's list of jobs.
    fn polls(sim: &sfetl_sim::Sim) -> (usize, usize) {
        let log = sim.request_log();
        let jobs = log.iter().filter(|r| r.method == "GET" && r.path.contains("/jobs/query"));
        let (listed, single): (Vec<_>, Vec<_>) =
            jobs.filter(|r| !r.path.ends_with("/results")).partition(|r| r.path.ends_with("/jobs/query"));
        (single.len(), listed.len())
    }

    async fn sim_with(per_list: usize, failure: Option<&str>) -> sfetl_sim::Sim {
        let mut config = sfetl_sim::SimConfig::new(sfetl_sim::OrgSpec::new(5, 3_000));
        config.bulk_fixed_cost = Duration::from_millis(2_500);
        config.bulk_per_record = Duration::ZERO;
        config.jobs_per_list = per_list;
        config.bulk_failure = failure.map(String::from);
        sfetl_sim::Sim::start(config).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Three jobs read at once, each with every record of its object.
    async fn three_jobs(client: &crate::SalesforceClient) -> Vec<crate::Result<usize>> {
        let read = |object: &'static str| async move {
            let mut job = client.bulk_query(&SoqlQuery::new(object, ["Id"]));
            let mut records = 0;
            while let Some(page) = job.next_records().await? {
                records += page.len();
            }
            Ok(records)
        };
        let (a, b, c) = tokio::join!(read("User"), read("PermissionSetLicenseAssign"), read("UserPackageLicense"));
        vec![a, b, c]
    }

    /// The polls (single, listed) of three jobs read in full at once, in an org that lists
    /// `per_list` jobs a page.
    async fn polls_reading_three_jobs(per_list: usize) -> (usize, usize) {
        let sim = sim_with(per_list, None).await;
        let client = crate::testing::client_of(&sim, crate::ConnectionSettings::default());
        for read in three_jobs(&client).await {
            assert!(read.unwrap_or_else(|e| panic!("{e}")) > 0);
        }
        polls(&sim)
    }

    /// Three jobs of 2.5 s polled every second would cost about twelve calls on their own; from
    /// the org's list, about four (a job's first poll may come before the others exist).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_waited_on_together_share_each_poll() {
        let (single, listed) = polls_reading_three_jobs(1000).await;
        assert!(listed >= 2, "the list was used: {listed} lists, {single} single polls");
        assert!(single + listed <= 7, "{listed} lists and {single} single polls");
    }

    /// A list that does not show a job waited on (a busy org's first page) is not asked again:
    /// every job is then polled on its own, and read in full.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_list_that_leaves_out_a_job_is_given_up() {
        let (single, listed) = polls_reading_three_jobs(1).await;
        assert!(listed <= 1, "the first list that missed a job waited on is the last: {listed}");
        assert!(single >= 6, "the jobs polled on their own: {single}");
    }

    /// A job the list shows failed is asked about on its own, for the reason the list may not
    /// carry (the simulator's does not).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failure_seen_in_the_list_is_reported_with_its_reason() {
        let sim = sim_with(1000, Some("QUERY_TIMEOUT: the query ran too long")).await;
        let client = crate::testing::client_of(&sim, crate::ConnectionSettings::default());
        for read in three_jobs(&client).await {
            let error = read.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.contains("the query ran too long"), "{error}");
        }
    }
}
