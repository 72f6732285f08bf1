//! Big full reads through Bulk API 2.0 query jobs: the same rows as REST paging, for far fewer
//! API calls; a failed job fails the org with the setting that avoids it.

use crate::support::{SimOrg, rows, sfetl, text};
use sfetl_sim::{Fault, FaultRule, OrgSpec, SimConfig, Trigger};
use std::time::Duration;

/// Requests about Bulk API query jobs the org received.
fn jobs(org: &SimOrg) -> usize {
    org.sim.request_log().iter().filter(|r| r.path.contains("/jobs/query")).count()
}

/// An org whose Bulk jobs take `fixed_cost`, whatever their size.
fn jobs_taking(spec: OrgSpec, fixed_cost: Duration) -> SimConfig {
    let mut config = SimConfig::new(spec);
    config.bulk_fixed_cost = fixed_cost;
    config.bulk_per_record = Duration::ZERO;
    config
}

async fn org(bulk_failure: Option<&str>) -> SimOrg {
    let mut config = jobs_taking(OrgSpec::new(81, 12_000), Duration::from_millis(300));
    config.bulk_failure = bulk_failure.map(String::from);
    SimOrg::start_with(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_reads_go_through_bulk_jobs_with_the_same_rows_for_fewer_calls() {
    let org = org(None).await;
    let settings = "exclude_user_types = []\nbatch_size = 500\n";
    let rest_out = org.dir.path().join("rest");
    let rest = org.pipeline("rest", &format!("{settings}bulk_threshold = 0"));
    let run = sfetl(&["extract", &rest.to_string_lossy(), "--out", &rest_out.to_string_lossy()], org.dir.path());
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(jobs(&org), 0, "bulk_threshold = 0 keeps to REST");

    org.extract(&org.pipeline("bulk", &format!("{settings}bulk_threshold = 2000\nbulk = \"always\"")));
    let out = org.out();
    assert!(jobs(&org) >= 3, "the big tables went through Bulk jobs");
    for (table, key) in [
        ("users", "user_id"),
        ("permission_set_license_assignments", "assignment_id"),
        ("user_package_licenses", "assignment_id"),
    ] {
        let files = |dir: &std::path::Path| {
            let glob = dir.join(table).join("*").join("*.parquet");
            format!("read_parquet('{}', hive_partitioning = false)", glob.to_string_lossy())
        };
        let (other, mine) = (files(&rest_out), files(&out));
        let count = rows(&out, &format!("SELECT count(*), count(DISTINCT {key}) FROM {table}"));
        let expected = rows(&out, &format!("SELECT count(*), count(*) FROM {other}"));
        assert_eq!(count, expected, "{table}: every row once");
        let ours = format!("SELECT * EXCLUDE (extracted_at) FROM {mine}");
        let theirs = format!("SELECT * EXCLUDE (extracted_at) FROM {other}");
        for (a, b) in [(&ours, &theirs), (&theirs, &ours)] {
            let differing = rows(&out, &format!("SELECT count(*) FROM ({a} EXCEPT {b})"));
            assert_eq!(differing, [["0"]], "{table}: the same values either way");
        }
    }
    let calls = |out: &std::path::Path| -> i64 { rows(out, "SELECT api_calls FROM runs")[0][0].parse().unwrap_or(0) };
    let (rest_calls, bulk_calls) = (calls(&rest_out), calls(&out));
    assert!(bulk_calls * 2 < rest_calls, "{bulk_calls} calls through Bulk jobs, {rest_calls} through REST pages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_fails_the_org_and_names_the_way_around() {
    let org = org(Some("InternalServerError: retry later")).await;
    let pipeline = org.pipeline("failing", "bulk_threshold = 2000\nbulk = \"always\"");
    let out = org.out();
    let run = sfetl(&["extract", &pipeline.to_string_lossy(), "--out", &out.to_string_lossy()], org.dir.path());
    let said = text(&run);
    assert_eq!(run.status.code(), Some(1), "{said}");
    assert!(said.contains("Bulk API query job") && said.contains("InternalServerError"), "{said}");
    assert!(said.contains("bulk_threshold = 0"), "{said}");
    let published = std::fs::read_dir(out.join("users/org=failing")).into_iter().flatten().flatten().count();
    assert_eq!(published, 0, "nothing half-read is published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_keeps_the_user_scope_on_salesforces_side() {
    let org = org(None).await;
    // Portal users left out (the default): Salesforce filters them, in the REST page and the job.
    org.extract(&org.pipeline("scoped", "bulk_threshold = 2000\nbulk = \"always\""));
    let kept: usize = rows(&org.out(), "SELECT count(*) FROM users")[0][0].parse().unwrap_or(0);
    let fetched: usize = org.sim.request_log().iter().filter(|r| r.object == Some("User")).map(|r| r.records).sum();
    let all = org.sim.org().table("User").rows.len();
    assert!(kept < all, "the org has portal users: {kept} of {all}");
    assert_eq!(fetched, kept, "only the users kept crossed the wire");
}

/// A full read that Salesforce first answered with `QUERY_TIMEOUT` is paged in `SystemModstamp`
/// windows. Switching to a Bulk job then (the unsplit query after the first window's last Id)
/// would lose the later windows' rows with lower Ids: the switch is made only on an unsplit
/// query, and every record arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_query_is_not_switched_to_bulk_and_loses_nothing() {
    let mut config = SimConfig::new(OrgSpec::new(82, 6_000));
    config.query_timeout_above = Some(2_500);
    config.bulk_fixed_cost = Duration::from_millis(100);
    let org = SimOrg::start_with(config).await;
    let run = org.extract(
        &org.pipeline("split", "exclude_user_types = []\nbatch_size = 500\nbulk_threshold = 1000\nbulk = \"always\""),
    );
    assert!(text(&run).contains("split after timeouts"), "{}", text(&run));
    let data = org.sim.org();
    let users = data.table("User");
    let mut expected: Vec<String> =
        (0..users.rows.len()).map(|i| users.get(i, "Id").as_str().unwrap_or_default().to_string()).collect();
    expected.sort();
    let read: Vec<String> =
        rows(&org.out(), "SELECT user_id FROM users ORDER BY 1").into_iter().map(|r| r[0].clone()).collect();
    let missing = expected.iter().filter(|id| read.binary_search(id).is_err()).count();
    let mut distinct = read.clone();
    distinct.dedup();
    assert_eq!((read.len() - distinct.len(), missing), (0, 0), "users read twice, users missing");
    assert_eq!(read, expected);
}

/// `bulk = "faster"` (the default): a table over `bulk_threshold` goes through a job only when
/// its remaining pages, at the second page's round trip and `parallel_cursors` at once, would take
/// twice as long as a job's wait (12 seconds and 5 µs a row). The margins are wide, so that a
/// slow debug build decides the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_a_job_is_used_only_when_it_beats_the_pages() {
    // At most 13 pages a table, without latency: a few seconds.
    let quick = org(None).await;
    quick.extract(&quick.pipeline("quick", "bulk_threshold = 1000"));
    assert_eq!(jobs(&quick), 0, "pages without latency are quicker than a job");

    let mut config = jobs_taking(OrgSpec::new(82, 6_000), Duration::from_millis(300));
    // 28 pages of users left at a second each, one after another: over twice a job's wait.
    config.latency_per_request = Some(Duration::from_secs(1));
    let slow = SimOrg::start_with(config).await;
    slow.extract(&slow.pipeline(
        "slow",
        "batch_size = 200
bulk_threshold = 1000
parallel_cursors = 1",
    ));
    assert!(jobs(&slow) >= 1, "a slow org's big reads go through jobs");
}

/// A page that waited behind others (the run's own other reads, on a busy org) is not the org's
/// distance: the choice goes by the org's quickest second page so far. Here one table's second
/// page comes 6 seconds late (`Fault::SlowAnswer`). At that round trip its remaining pages,
/// two cursors at once, would take far over twice a job's wait, but the second page asked
/// before it (another table's) came at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_slow_page_does_not_send_a_table_to_a_job() {
    let org = SimOrg::start_with(jobs_taking(OrgSpec::new(83, 5_000), Duration::from_millis(300))).await;
    // A full read's second page is asked alone, `…/query/<locator>-200`. The tables start
    // together, so which table's comes second varies from run to run (the users' too).
    let slow = Fault::SlowAnswer(Duration::from_secs(6));
    org.sim.add_fault(FaultRule::new(slow.clone(), Trigger::Nth(2)).on_paths("-200"));
    let settings = "exclude_user_types = []\nbatch_size = 200\nbulk_threshold = 1000\nparallel_cursors = 2";
    org.extract(&org.pipeline("slowpage", settings));
    let log = org.sim.request_log();
    let slowed: Vec<_> = log.iter().filter(|r| r.fault.as_ref() == Some(&slow)).map(|r| r.object).collect();
    assert_eq!(slowed.len(), 1, "{slowed:?}");
    let table_rows = org.sim.org().table(slowed[0].unwrap_or_default()).rows.len();
    // Over 8 pages left at 6 s, two at once, is over 24 s: twice a job's wait.
    assert!(table_rows > 10 * 200, "{slowed:?}: {table_rows} rows, too few pages for a job to look faster");
    assert_eq!(jobs(&org), 0, "one slow page sent a table to a Bulk job");
}

/// `bulk = "always"` saves API calls: each job is first polled once its fixed cost has passed
/// (salesforce-api.md section 3: 10-15 s even for a small job), not every second, and the jobs
/// waited on together share their polls (one list of the org's jobs, "Get Information About All
/// Query Jobs", answers all). And the jobs wait together: a table waiting for its job does not
/// keep the later tables from starting (they did, behind it, when tables were started in order
/// and only as the first in line ended).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_saving_calls_polls_its_jobs_together_about_once() {
    let org = SimOrg::start_with(jobs_taking(OrgSpec::new(83, 12_000), Duration::from_secs(4))).await;
    // A full read (`--full`) with `bulk = "always"` starts every table at once, as a first run does.
    let pipeline = org.pipeline("sparing", "exclude_user_types = []\nbulk_threshold = 2000\nbulk = \"always\"");
    let out = org.out();
    let run =
        sfetl(&["extract", "--full", &pipeline.to_string_lossy(), "--out", &out.to_string_lossy()], org.dir.path());
    assert!(run.status.success(), "{}", text(&run));
    let log = org.sim.request_log();
    let is_job = |r: &&sfetl_sim::LoggedRequest| r.path.contains("/jobs/query");
    let created = log.iter().filter(is_job).filter(|r| r.method == "POST").count();
    let polls = log.iter().filter(is_job).filter(|r| r.method == "GET" && !r.path.ends_with("/results")).count();
    assert!(created >= 3, "users and both assignment tables through jobs: {created}");
    // Done at its first poll, 10 s in (polled every second, each would take 5); the three
    // polls come within the second one list answers, unless a slow machine spread them.
    let lists = log.iter().filter(is_job).filter(|r| r.method == "GET" && r.path.ends_with("/jobs/query")).count();
    assert!(lists >= 1 && polls < created, "{polls} polls ({lists} lists) for {created} jobs");
    // Each table chose at its first page, which came in a composite call shared with the little
    // tables': no query page of the big tables' own, first or second, and no count with it (a
    // count checks deletions, which only an incremental read looks for).
    let big = ["User", "PermissionSetLicenseAssign", "UserPackageLicense"];
    let queries = |r: &&sfetl_sim::LoggedRequest| {
        r.path.contains("/query") && !r.path.contains("/jobs/") && r.object.is_some_and(|o| big.contains(&o))
    };
    let own_pages = log.iter().filter(queries).filter(|r| !r.path.starts_with("composite:")).count();
    assert_eq!(own_pages, 0, "the big tables' pages went in composite calls, then jobs");
    let shared: Vec<usize> = log.iter().filter(queries).map(|r| r.records).collect();
    assert_eq!(shared, [2000; 3], "each big table's first page, and nothing else, in composite calls");
    // Each job's rows in one result set, read as it arrives (sets of up to a million records).
    let sets = log.iter().filter(|r| r.path.ends_with("/results")).count();
    assert_eq!(sets, created, "one result set per job");
    let first_set = log.iter().position(|r| r.path.ends_with("/results"));
    let last_created = log.iter().rposition(|r| is_job(&r) && r.method == "POST");
    assert!(
        last_created < first_set,
        "every job was created before the first finished: {last_created:?} {first_set:?}"
    );
}
