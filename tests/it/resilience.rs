//! Extraction that survives what real orgs do: flaky requests and sessions dying mid-pagination.

use crate::support::{SimOrg, all_tables, column_sorted, org_ids, rows, sfetl, text};
use sfetl_sim::{Fault, FaultRule, Trigger};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_requests_change_nothing() {
    let org = SimOrg::start(6000, 21).await;
    let pipeline = org.pipeline("flaky", "batch_size = 200\nexclude_user_types = []");
    // 10 % of requests: HTML 503s, connections reset, bodies cut in half.
    for fault in [Fault::ServiceUnavailableHtml, Fault::ResetConnection, Fault::TruncatedBody] {
        org.sim.add_fault(FaultRule::new(fault, Trigger::Rate(0.034)));
    }
    let faulty_out = org.dir.path().join("faulty");
    let run = sfetl(&["extract", &pipeline.to_string_lossy(), "--out", &faulty_out.to_string_lossy()], org.dir.path());
    assert!(run.status.success(), "{}", text(&run));
    assert!(text(&run).contains("requests retried after transient failures"), "{}", text(&run));
    let faults = org.sim.request_log().iter().filter(|r| r.fault.is_some()).count();
    assert!(faults >= 4, "only {faults} faults were injected: the test proves nothing");

    org.sim.clear_faults();
    let clean_out = org.dir.path().join("clean");
    let run = sfetl(&["extract", &pipeline.to_string_lossy(), "--out", &clean_out.to_string_lossy()], org.dir.path());
    assert!(run.status.success(), "{}", text(&run));
    let (faulty, clean) = (all_tables(&faulty_out), all_tables(&clean_out));
    assert_eq!(faulty.iter().find(|t| t.0 == "users").map(|t| t.1.len()), Some(6000));
    assert_eq!(faulty, clean, "a flaky run ends with the same tables as a clean one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_dying_mid_pagination_resumes_without_gaps_or_repeats() {
    // Next pages a call each, the 20th finding its session gone; then next pages three to a
    // composite call, the 5th of those calls finding it gone (the call is retried after a new
    // login, and the locators the dead session owned are refused inside it).
    for (setting, path, nth) in [("pages_per_call = 1", "/query/", 20), ("pages_per_call = 3", "/composite", 5)] {
        let org = SimOrg::start(10_000, 22).await;
        let pipeline = org.pipeline("expiring", &format!("batch_size = 200\nexclude_user_types = []\n{setting}"));
        org.sim.add_fault(FaultRule::new(Fault::ExpireSessions, Trigger::Nth(nth)).on_paths(path));
        let out = org.out();
        let run = sfetl(&["extract", &pipeline.to_string_lossy(), "--out", &out.to_string_lossy()], org.dir.path());
        assert!(run.status.success(), "{setting}: {}", text(&run));

        let log = org.sim.request_log();
        let logins = log.iter().filter(|r| r.path.ends_with("/oauth2/token") && r.status == 200).count();
        assert_eq!(logins, 2, "{setting}: one login, one re-login");
        assert!(log.iter().any(|r| r.status == 401), "{setting}: the session did die");
        // Each cursor the dead session held (one per range of Ids being read) resumes.
        assert!(text(&run).contains("resumed="), "{setting}: {}", text(&run));

        let got = column_sorted(&out, "users", "user_id");
        assert_eq!(got.len(), 10_000, "{setting}");
        assert_eq!(got, org_ids(&org, "User"), "{setting}: every user exactly once");
    }
}

/// A full extract of 5,000 users from an org where any query matching more than 1,500 rows is
/// "too long" (`QUERY_TIMEOUT`), with `settings`: the org and the output folder. The run must
/// succeed and say that its queries recovered.
async fn extract_with_timeouts(seed: u64, settings: &str) -> (SimOrg, std::path::PathBuf) {
    let mut config = sfetl_sim::SimConfig::new(sfetl_sim::OrgSpec::new(seed, 5000));
    config.query_timeout_above = Some(1500);
    let org = SimOrg::start_with(config).await;
    let pipeline = org.pipeline("slow", settings);
    let out = org.out();
    let run = sfetl(&["extract", &pipeline.to_string_lossy(), "--out", &out.to_string_lossy()], org.dir.path());
    assert!(run.status.success(), "{}", text(&run));
    assert!(text(&run).contains("the query recovered"), "{}", text(&run));
    (org, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_that_time_out_are_split_until_they_answer() {
    let (org, out) = extract_with_timeouts(23, "exclude_user_types = []").await;
    let timeouts = org.sim.request_log().iter().filter(|r| r.status == 400).count();
    assert!(timeouts >= 2, "{timeouts} QUERY_TIMEOUTs: users and assignments must both have been split");

    for (table, object, id_column) in [
        ("users", "User", "user_id"),
        ("permission_set_license_assignments", "PermissionSetLicenseAssign", "assignment_id"),
    ] {
        let expected = org_ids(&org, object);
        let got = column_sorted(&out, table, id_column);
        assert!(expected.len() > 1500, "{table} must be big enough to time out");
        assert_eq!(got, expected, "{table}: every row exactly once");
    }
}

/// After a split, a full read may no longer change course (to ranges or a job), and the hold
/// on chaining it keeps until then is released: the windows' next pages come several to a
/// composite call again, and every row still comes exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_after_a_split_are_chained_again() {
    // Pages of 200: a window of up to 1,500 users has several.
    let (org, out) = extract_with_timeouts(25, "batch_size = 200\nexclude_user_types = []").await;
    let log = org.sim.request_log();
    let user_pages = |chained: bool| {
        log.iter()
            .filter(|r| r.object == Some("User") && r.status == 200 && r.path.contains("/query/"))
            .filter(|r| r.path.starts_with("composite:") == chained)
            .count()
    };
    assert!(log.iter().any(|r| r.status == 400), "the users' query must have timed out");
    assert!(user_pages(true) > 0, "no next page of users came chained after the split ({} alone)", user_pages(false));
    assert_eq!(column_sorted(&out, "users", "user_id"), org_ids(&org, "User"), "every user exactly once");
}

/// A run does not read `/limits` first: its first call goes alone, and that answer's
/// `Sforce-Limit-Info` ("returned in each request to REST API", REST API Developer Guide, "Limit
/// Info Header") stops the run when the org is already past the guard's share. The org pays the
/// one request that `/limits` would have cost, and every other run pays one request less.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_past_the_guard_at_the_start_costs_one_call() {
    let mut config = sfetl_sim::SimConfig::new(sfetl_sim::OrgSpec::new(24, 1000));
    config.daily_api_max = 1000;
    config.api_used_at_start = 850; // past the guard's 80 % before the run
    // Slow enough that the tables' first calls would all be on their way before one is answered.
    config.latency_per_request = Some(std::time::Duration::from_millis(150));
    let org = SimOrg::start_with(config).await;
    let run = org.run_extract(&org.pipeline("over", "batch_size = 200"), &[]);
    let said = text(&run);
    assert_eq!(run.status.code(), Some(4), "{said}");
    assert!(said.contains("quota guard"), "{said}");
    let log = org.sim.request_log();
    let calls: Vec<&str> =
        log.iter().filter(|r| r.path.starts_with("/services/data/v")).map(|r| r.path.as_str()).collect();
    assert_eq!(calls.len(), 1, "one call, then the guard: {calls:?}");
    assert!(!calls[0].contains("/limits"), "{calls:?}");
    assert_eq!(org.sim.api_usage().0, 851);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quota_guard_stops_in_time_keeps_what_it_has_and_the_next_day_finishes() {
    let mut config = sfetl_sim::SimConfig::new(sfetl_sim::OrgSpec::new(24, 4000));
    config.daily_api_max = 1000;
    config.api_used_at_start = 770; // 30 requests left below the guard's 80 %
    let org = SimOrg::start_with(config).await;
    let pipeline = org.pipeline("quota", "batch_size = 200\nexclude_user_types = []");
    let out = org.out();
    let run = org.run_extract(&pipeline, &[]);
    let said = text(&run);
    assert_eq!(run.status.code(), Some(4), "{said}");
    assert!(said.contains("STOPPED") && said.contains("quota guard"), "{said}");
    let (used, max) = org.sim.api_usage();
    assert!(used <= max * 8 / 10, "the org's usage stayed within 80 %: {used}/{max}");

    // The API calls the summary reports are the ones the org counted.
    let api_requests = org.sim.request_log().iter().filter(|r| r.path.starts_with("/services/data/v")).count();
    let reported = String::from_utf8_lossy(&run.stdout)
        .lines()
        .find(|l| l.starts_with("quota ") && l.contains("(all)"))
        .and_then(|l| l.split_whitespace().nth(4).map(String::from));
    assert_eq!(reported, Some(api_requests.to_string()), "{said}");
    assert_eq!(api_requests as u64, used - 770);

    // Tables finished before the stop are kept.
    assert_eq!(
        rows(&out, "SELECT count(*)::BIGINT FROM user_licenses")[0][0],
        org.sim.org().table("UserLicense").rows.len().to_string()
    );

    // The users were not all read, so nothing is derived from them yet.
    assert!(!out.join("user_subscriptions").exists(), "derived from a partial run");

    let recorded = rows(&out, "SELECT status, api_calls::VARCHAR FROM runs");
    assert_eq!(recorded, [["stopped".to_string(), api_requests.to_string()]], "the run is recorded as stopped");

    org.sim.reset_day();
    org.extract(&pipeline);
    assert_eq!(rows(&out, "SELECT count(*)::BIGINT FROM users")[0][0], "4000");
    let holders = rows(&out, "SELECT count(DISTINCT user_id)::BIGINT FROM user_subscriptions");
    assert!(holders[0][0].parse::<u32>().unwrap_or(0) > 3000, "{holders:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_org_failing_does_not_stop_or_lose_the_others() {
    let good = SimOrg::start(300, 25).await;
    let bad = SimOrg::start(300, 26).await;
    let bad_settings = std::fs::read_to_string(bad.pipeline("bad", "")).unwrap_or_default();
    let bad_settings = bad_settings.replace(&bad.app.consumer_key, "not-the-consumer-key");
    let both = format!(
        "{}\n{bad_settings}",
        std::fs::read_to_string(good.pipeline("good", "exclude_user_types = []")).unwrap_or_default(),
    );
    let pipeline = good.dir.path().join("both.toml");
    std::fs::write(&pipeline, both).unwrap_or_else(|e| panic!("{e}"));
    let out = good.out();
    let run = sfetl(&["extract", &pipeline.to_string_lossy(), "--out", &out.to_string_lossy()], good.dir.path());
    let said = text(&run);
    assert_eq!(run.status.code(), Some(1), "{said}");
    assert!(said.contains("bad") && said.contains("FAILED") && said.contains("client_id"), "{said}");
    assert_eq!(
        rows(&out, "SELECT org, count(*)::BIGINT FROM users GROUP BY org"),
        [["good".to_string(), "300".to_string()]]
    );
}
