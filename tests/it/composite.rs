//! Small tables' first pages gathered into composite calls (one API call for up to five
//! queries): the same tables for fewer calls, and an incremental run that costs a handful.

use crate::support::{SimOrg, all_tables, sfetl, text};

/// Runs an extract and returns the org's API calls from `--summary-json`.
fn extract_counting(org: &SimOrg, pipeline: &std::path::Path, out: &str, extra: &[&str]) -> u64 {
    let summary = org.dir.path().join("summary.json");
    let mut args = vec!["extract", pipeline.to_str().unwrap_or_default(), "--out", out];
    args.extend(["--summary-json", summary.to_str().unwrap_or_default()]);
    args.extend(extra);
    let run = sfetl(&args, org.dir.path());
    assert!(run.status.success(), "{}", text(&run));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).unwrap_or_default()).unwrap_or_default();
    json["orgs"][0]["api_calls"].as_u64().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_tables_share_composite_calls_and_an_unchanged_org_costs_a_handful() {
    let org = SimOrg::start(3000, 61).await;
    let pipeline = org.pipeline("composite", "exclude_user_types = []");
    let full_calls = extract_counting(&org, &pipeline, "data", &[]);
    let log = org.sim.request_log();
    let composites = log.iter().filter(|r| r.path.ends_with("/composite") && r.status == 200).count();
    assert!(composites >= 2, "{composites} composite calls");
    // Every API request the org counted is one the summary reports.
    let counted = log.iter().filter(|r| r.path.starts_with("/services/data/v")).count() as u64;
    assert_eq!(full_calls, counted);
    // A composite call is one call against the daily quota, whatever it holds.
    assert_eq!(org.sim.api_usage().0, full_calls);

    // Nothing changed overnight: every table asks only for its changes, a few queries a call.
    let before = org.sim.request_log().len();
    let calls = extract_counting(&org, &pipeline, "data", &[]);
    let requests: Vec<String> = org.sim.request_log().into_iter().skip(before).map(|r| r.path).collect();
    // The limits, then twelve tables' queries and two assignment tables' counts, mostly in
    // composite calls (a query that starts alone asks alone): 19 calls before composite calls.
    assert!(calls <= 10, "an incremental run of an unchanged org took {calls} calls: {requests:?}");

    // The same tables as a full read.
    let reference = extract_counting(&org, &pipeline, "reference", &["--full"]);
    assert!(reference > calls);
    assert_eq!(all_tables(&org.dir.path().join("data")), all_tables(&org.dir.path().join("reference")));
}
