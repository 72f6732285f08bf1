//! sfetl as a library: a program drives `sfetl_pipeline::run` itself, on a current-thread
//! runtime (which `block_in_place` would have panicked on), and reads the typed summary.

use crate::support::{SimOrg, is_portal, rows};
use sfetl_pipeline::{OrgOutcome, Pipeline, Progress, RunOptions, RunOutcome, TableProgress};
use sfetl_transform::tables;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counts what the run reports through the progress trait.
#[derive(Default)]
struct Recorder {
    finished: Mutex<Vec<(String, &'static str, u64)>>,
    received: Arc<AtomicU64>,
    failed: Mutex<Vec<String>>,
}

struct RecordedTable<'a> {
    recorder: &'a Recorder,
    org: String,
    table: &'static str,
}

impl Progress for &'static Recorder {
    fn table(&self, org: &str, table: &'static str) -> Box<dyn TableProgress> {
        Box::new(RecordedTable { recorder: self, org: org.to_string(), table })
    }

    fn org_failed(&self, org: &str, _error: &sfetl_pipeline::OrgError) {
        self.failed.lock().unwrap_or_else(|e| e.into_inner()).push(org.to_string());
    }
}

impl TableProgress for RecordedTable<'static> {
    fn advance(&self, rows: u64) {
        self.recorder.received.fetch_add(rows, Ordering::SeqCst);
    }

    fn finish(&self, rows: u64) {
        self.recorder.finished.lock().unwrap_or_else(|e| e.into_inner()).push((self.org.clone(), self.table, rows));
    }
}

fn assert_send<T: Send>(_: &T) {}

#[test]
fn a_program_runs_the_pipeline_on_a_current_thread_runtime_and_reads_a_typed_summary() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        let org = SimOrg::start(600, 31).await;
        // One good org and one whose consumer key Salesforce does not know.
        let good = org.org_block("good", &org.sim.integration_username(), "batch_size = 200");
        let bad = org.org_block("bad", &org.sim.integration_username(), "").replace(&org.app.consumer_key, "nobody");
        let path = org.dir.path().join("lib.toml");
        let pipeline = Pipeline::parse(&format!("{good}{bad}"), &path).unwrap_or_else(|e| panic!("{e}"));
        let recorder: &'static Recorder = Box::leak(Box::default());
        let options = RunOptions { output: Some(org.out()), progress: Arc::new(recorder), ..RunOptions::default() };
        let run = sfetl_pipeline::run(&pipeline, options);
        // A scheduler may spawn it on a multi-threaded runtime too.
        assert_send(&run);
        let summary = run.await.unwrap_or_else(|e| panic!("{}", sfetl_pipeline::chain(&e)));

        assert_eq!(summary.outcome(), RunOutcome::OrgFailed);
        let [good, bad] = &summary.orgs[..] else { panic!("two orgs: {summary:?}") };
        assert!(matches!(good.outcome, OrgOutcome::Succeeded), "{:?}", good.outcome);
        let error = bad.error().unwrap_or_else(|| panic!("the bad org fails: {:?}", bad.outcome));
        assert_eq!(error.kind(), "login");
        assert!(sfetl_pipeline::chain(error).contains("client_id"), "{}", sfetl_pipeline::chain(error));
        assert_eq!(*recorder.failed.lock().unwrap_or_else(|e| e.into_inner()), ["bad"]);

        // Every table, in order, with the rows now in its file and the org's own counts.
        let names: Vec<&str> = good.tables.iter().map(|t| t.table).collect();
        let expected: Vec<&str> = tables::ALL.iter().map(|t| t.name).collect();
        assert_eq!(names, expected);
        let data = org.sim.org();
        let users = data.table("User");
        let kept = (0..users.rows.len()).filter(|&i| !is_portal(users.get(i, "UserType").as_str().unwrap_or("")));
        let users_summary = good.tables.iter().find(|t| t.table == "users").unwrap_or_else(|| panic!("users"));
        assert_eq!(users_summary.rows, kept.count() as u64);
        for table in &good.tables {
            let in_file = rows(&org.out(), &format!("SELECT count(*)::BIGINT FROM {} WHERE org = 'good'", table.table));
            assert_eq!(in_file[0][0], table.rows.to_string(), "{}", table.table);
        }
        let subscriptions = good.derived.iter().find(|d| d.table == "subscriptions").map(|d| d.rows);
        let licenses = ["UserLicense", "PermissionSetLicense", "PackageLicense"].map(|o| data.table(o).rows.len());
        assert_eq!(subscriptions, Some(licenses.iter().sum::<usize>() as u64));
        // The calls charged are the ones the org counted (the bad org never got a session).
        let api_requests = org.sim.request_log().iter().filter(|r| r.path.starts_with("/services/data/v")).count();
        assert_eq!(good.api_calls + bad.api_calls, api_requests as u64);

        // The progress trait saw each table finish with its rows, and every record received.
        let finished = recorder.finished.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(finished.len(), tables::ALL.len());
        for (org_name, table, rows) in &finished {
            let t = good.tables.iter().find(|t| t.table == *table).unwrap_or_else(|| panic!("{table}"));
            assert_eq!((org_name.as_str(), *rows), ("good", t.rows));
        }
        assert!(recorder.received.load(Ordering::SeqCst) >= good.tables.iter().map(|t| t.fetched).sum::<u64>());

        // What `--summary-json` writes.
        let json = serde_json::to_value(&summary).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(json["orgs"][0]["outcome"]["status"], "succeeded");
        assert_eq!(json["orgs"][1]["outcome"]["status"], "failed");
        assert_eq!(json["orgs"][1]["outcome"]["error"]["kind"], "login");
        assert_eq!(json["orgs"][0]["tables"][0]["table"], expected[0]);
        assert_eq!(json["mode"], "incremental");
        assert!(json["orgs"][0]["seconds"].as_f64().is_some_and(|s| s > 0.0), "{json}");
        assert_eq!(json["orgs"][0]["api_calls"], good.api_calls);
    });
}
