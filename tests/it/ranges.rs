//! Big tables read through several query cursors at once, each over a range of Ids: the same
//! rows as page after page, each exactly once.

use crate::support::{SimOrg, all_tables, column_sorted, org_ids, sfetl, text};
use sfetl_sim::{Fault, FaultRule, Trigger};

/// The query cursors opened on `object` after the first `skip` requests, and whether pages of
/// two of them came interleaved (read at once, not one range after the other).
fn cursors_of(org: &SimOrg, object: &str, skip: usize) -> (usize, bool) {
    let log: Vec<_> = org.sim.request_log().into_iter().skip(skip).collect();
    let pages: Vec<&str> = log
        .iter()
        .filter(|r| r.object == Some(object) && r.status == 200)
        .filter_map(|r| r.path.rsplit_once("/query/").map(|(_, locator)| locator))
        .filter_map(|locator| locator.rsplit_once('-').map(|(cursor, _)| cursor))
        .collect();
    let opened = log.iter().filter(|r| r.object == Some(object) && r.path.ends_with("/query")).count();
    let mut first_seen: Vec<&str> = Vec::new();
    let mut interleaved = false;
    for cursor in &pages {
        match first_seen.iter().position(|c| c == cursor) {
            // A cursor seen before, after another's page: the two were being read together.
            Some(at) if at + 1 < first_seen.len() => interleaved = true,
            Some(_) => {}
            None => first_seen.push(cursor),
        }
    }
    (opened, interleaved)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_read_at_once_give_the_same_tables_as_page_after_page() {
    let org = SimOrg::start(12_000, 51).await;
    // A page a call: chained in one composite call, a range's few pages would come in a row
    // however the ranges are read, and this test tells ranges read at once by their pages.
    let ranged = org.pipeline("ranged", "batch_size = 500\nexclude_user_types = []\npages_per_call = 1");
    let run = sfetl(&["extract", &ranged.to_string_lossy(), "--out", "ranged"], org.dir.path());
    assert!(run.status.success(), "{}", text(&run));
    assert!(text(&run).contains("reading the rest in ranges of Ids at once"), "{}", text(&run));
    let (opened, interleaved) = cursors_of(&org, "User", 0);
    // The first page's query, the last Id's, and at least two ranges.
    assert!(opened >= 4, "{opened} User queries");
    assert!(interleaved, "the ranges were read one after the other");

    let before = org.sim.request_log().len();
    // The same org (its name is a column), read page after page.
    let sequential =
        org.pipeline("ranged", "batch_size = 500\nexclude_user_types = []\npages_per_call = 1\nparallel_cursors = 1");
    let run = sfetl(&["extract", &sequential.to_string_lossy(), "--out", "sequential"], org.dir.path());
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(cursors_of(&org, "User", before), (1, false), "parallel_cursors = 1 reads page after page");

    let (ranged, sequential) =
        (all_tables(&org.dir.path().join("ranged")), all_tables(&org.dir.path().join("sequential")));
    assert_eq!(ranged, sequential);
    for (table, object, id_column) in [
        ("users", "User", "user_id"),
        ("permission_set_license_assignments", "PermissionSetLicenseAssign", "assignment_id"),
    ] {
        let got = column_sorted(&org.dir.path().join("ranged"), table, id_column);
        assert_eq!(got, org_ids(&org, object), "{table}: every row exactly once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_survive_lost_cursors_and_flaky_requests() {
    let org = SimOrg::start(8000, 52).await;
    let pipeline = org.pipeline("ranged", "batch_size = 400\nexclude_user_types = []");
    // Cursors lost mid-read (as when a locator idles out), and transient failures.
    org.sim.add_fault(FaultRule::new(Fault::InvalidateLocators, Trigger::Rate(0.05)).on_paths("/query/"));
    org.sim.add_fault(FaultRule::new(Fault::ServiceUnavailableHtml, Trigger::Rate(0.03)));
    let run = sfetl(&["extract", &pipeline.to_string_lossy(), "--out", "faulty"], org.dir.path());
    assert!(run.status.success(), "{}", text(&run));
    assert!(
        org.sim.request_log().iter().filter(|r| r.fault.is_some()).count() >= 2,
        "too few faults to prove anything"
    );
    org.sim.clear_faults();
    let run = sfetl(&["extract", &pipeline.to_string_lossy(), "--out", "clean"], org.dir.path());
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(all_tables(&org.dir.path().join("faulty")), all_tables(&org.dir.path().join("clean")));
}

/// Salesforce orders Ids byte by byte (its own PK chunking cuts at mixed-case Ids). An org that
/// compared them without regard to case would make ranges overlap: the row that lies outside the
/// range that returned it fails the table, naming the setting that reads page after page, which
/// then reads every row exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_that_orders_ids_otherwise_is_caught_and_told_what_to_set() {
    let mut config = sfetl_sim::SimConfig::new(sfetl_sim::OrgSpec::new(53, 8000));
    config.id_order = sfetl_sim::soql::IdOrder::IgnoringCase;
    let org = SimOrg::start_with(config).await;
    let ranged = org.pipeline("odd", "batch_size = 500\nexclude_user_types = []");
    let run = sfetl(&["extract", &ranged.to_string_lossy(), "--out", "ranged"], org.dir.path());
    assert!(!run.status.success(), "{}", text(&run));
    assert!(
        text(&run).contains("does not order Ids byte by byte") && text(&run).contains("parallel_cursors = 1"),
        "{}",
        text(&run)
    );

    let sequential = org.pipeline("odd", "batch_size = 500\nexclude_user_types = []\nparallel_cursors = 1");
    let run = sfetl(&["extract", &sequential.to_string_lossy(), "--out", "sequential"], org.dir.path());
    assert!(run.status.success(), "{}", text(&run));
    let got = column_sorted(&org.dir.path().join("sequential"), "users", "user_id");
    assert_eq!(got, org_ids(&org, "User"), "every user exactly once");
}
