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
    // Twelve tables' queries and two assignment tables' counts, all started at once, five to a
    // composite call: 3 calls (19 before composite calls, 6-7 with a few tables at a time).
    assert!(calls <= 3, "an incremental run of an unchanged org took {calls} calls: {requests:?}");

    // The same tables as a full read.
    let reference = extract_counting(&org, &pipeline, "reference", &["--full"]);
    assert!(reference > calls);
    assert_eq!(all_tables(&org.dir.path().join("data")), all_tables(&org.dir.path().join("reference")));
}

/// A big table's next pages, several to a composite call (`pages_per_call`): the same tables as
/// a call per page, in fewer calls. A setting out of range is refused by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_pages_chained_in_composite_calls_read_the_same_tables_in_fewer_calls() {
    let org = SimOrg::start(3000, 62).await;
    let settings = |pages: usize| format!("batch_size = 200\nparallel_cursors = 1\npages_per_call = {pages}");
    let one = org.pipeline("chained", &settings(1));
    let one_calls = extract_counting(&org, &one, "one", &["--full"]);
    let five = org.pipeline("chained", &settings(5));
    let five_calls = extract_counting(&org, &five, "five", &["--full"]);
    assert_eq!(all_tables(&org.dir.path().join("one")), all_tables(&org.dir.path().join("five")));
    // Users alone are 13 pages or more of 200, assignments more: at least 12 calls fewer.
    assert!(five_calls + 12 <= one_calls, "{five_calls} calls chained, {one_calls} a page each");
    let chained = org.sim.request_log().iter().filter(|r| r.path.starts_with("composite:") && r.status != 200).count();
    assert_eq!(chained, 0, "no chained page was asked past a query's last");

    let refused = org.pipeline("chained", &settings(6));
    let run = sfetl(&["extract", refused.to_str().unwrap_or_default()], org.dir.path());
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    assert!(text(&run).contains("pages_per_call") && text(&run).contains("1 to 5"), "{}", text(&run));
}

/// The subrequests of each composite call in `log` (the simulator logs a call's subrequests,
/// then the call), as (object, by cursor) pairs: `by cursor` for a next page's locator.
fn composite_calls(log: &[sfetl_sim::LoggedRequest]) -> Vec<Vec<(Option<&'static str>, bool)>> {
    let (mut calls, mut current) = (Vec::new(), Vec::new());
    for request in log {
        if let Some(path) = request.path.strip_prefix("composite:") {
            current.push((request.object, path.contains("/query/")));
        } else if request.path.ends_with("/composite") {
            calls.push(std::mem::take(&mut current));
        }
    }
    calls
}

/// A small read's last pages, when its cursor says they are all it has left, share a composite
/// call with other reads' (up to five query operations a call): here the changed users' second
/// page and the frozen users' second page come in one call, after the first pages' calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_pages_of_small_reads_share_a_composite_call() {
    let org = SimOrg::start(8000, 63).await;
    let pipeline = org.pipeline("last", "exclude_user_types = []\nbatch_size = 200");
    extract_counting(&org, &pipeline, "data", &[]);
    let frozen = org.sim.org().table("UserLogin").rows.len();
    let logins = crate::support::rows(&org.dir.path().join("data"), "SELECT count(*)::BIGINT FROM user_logins")[0][0]
        .parse::<usize>()
        .unwrap_or_default();
    assert!((201..=400).contains(&logins), "two pages of frozen or locked users: {logins} of {frozen}");

    // 300 users log in overnight: two pages of changes.
    let ids: Vec<String> = crate::support::org_ids(&org, "User").into_iter().take(300).collect();
    org.sim.log_in(&ids, chrono::Utc::now().timestamp_millis());
    let before = org.sim.request_log().len();
    let calls = extract_counting(&org, &pipeline, "data", &[]);
    let log = org.sim.request_log();
    let composites = composite_calls(&log[before..]);
    let shared =
        composites.iter().any(|call| call.contains(&(Some("User"), true)) && call.contains(&(Some("UserLogin"), true)));
    assert!(shared, "the users' and the frozen users' last pages in one call: {composites:?}");
    // The first pages' 3 calls and the last pages' one (one more allowed for a slow start).
    assert!(calls <= 5, "{calls} calls: {composites:?}");

    let reference = extract_counting(&org, &pipeline, "reference", &["--full"]);
    assert!(reference > calls);
    assert_eq!(all_tables(&org.dir.path().join("data")), all_tables(&org.dir.path().join("reference")));
}
