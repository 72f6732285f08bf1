//! Nothing leaks: the access token goes only to the org's instance, whatever the answers say
//! (#13, point 1), and answers cannot make sfetl loop or fill the memory (point 5). Each attack
//! is played by the simulator; a second simulator stands for the attacker's host and must see
//! no request at all.

use crate::support::{SimOrg, sfetl, text};
use sfetl_sim::{Fault, FaultRule, Trigger};

/// Runs `extract` on the org with `fault` on the paths containing `paths`; returns what it said
/// and its exit code, after checking that the attacker's host saw nothing and that the org's
/// tables were not published (nothing of a refused run is kept).
async fn attacked(
    org_users: usize,
    fault: impl FnOnce(&str) -> Fault,
    paths: &str,
    extra: &str,
) -> (Option<i32>, String) {
    let org = SimOrg::start(org_users, 13).await;
    let attacker = SimOrg::start(10, 99).await;
    let host = attacker.sim.url().trim_start_matches("http://").to_string();
    org.sim.add_fault(FaultRule::new(fault(&host), Trigger::Rate(1.0)).on_paths(paths));
    let pipeline = org.pipeline("victim", extra);
    let out = org.out();
    let run = sfetl(&["-v", "extract", &pipeline.to_string_lossy(), "--out", &out.to_string_lossy()], org.dir.path());
    assert!(attacker.sim.request_log().is_empty(), "the attacker's host was called: {:?}", attacker.sim.request_log());
    assert!(!out.join("users/org=victim/users.parquet").exists(), "a refused run published its users");
    (run.status.code(), text(&run))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_answer_naming_another_instance_is_refused() {
    let (code, said) =
        attacked(100, |host| Fault::ForeignInstance(format!("http://{host}")), "/services/oauth2/token", "").await;
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("sends the access token nowhere else"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_records_url_naming_another_host_is_refused() {
    // `instance` + `@host/services/...` glued as text is a URL whose host is the attacker's.
    let (code, said) =
        attacked(600, |host| Fault::HostileNextUrl(format!("@{host}")), "/query", "batch_size = 200").await;
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("not a path under /services/data/"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_not_followed() {
    let (code, said) =
        attacked(100, |host| Fault::Redirect(format!("http://{host}/services/data/")), "/query", "").await;
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("follows no redirect"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_records_url_that_repeats_ends_the_table_instead_of_looping() {
    let org = SimOrg::start(600, 14).await;
    org.sim.add_fault(FaultRule::new(Fault::RepeatNextUrl, Trigger::Nth(1)).on_paths("/query/"));
    // Next pages on their own, where the fault is (a chained page goes through the same check).
    let pipeline = org.pipeline("loop", "batch_size = 200\npages_per_call = 1");
    let out = org.out();
    let run = sfetl(&["extract", &pipeline.to_string_lossy(), "--out", &out.to_string_lossy()], org.dir.path());
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    assert!(text(&run).contains("went round in circles"), "{}", text(&run));
    let query_pages = org.sim.request_log().iter().filter(|r| r.path.contains("/query")).count();
    assert!(query_pages < 40, "stopped at the repeat, not at the quota guard: {query_pages} pages");
    assert!(!out.join("users/org=loop/users.parquet").exists(), "a refused run published its users");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_larger_than_the_cap_is_refused() {
    let org = SimOrg::start(3000, 15).await;
    // A page of 2,000 users is about a megabyte of JSON: over a 1 MB cap, decompressed.
    let pipeline = org.pipeline("big", "max_response_mb = 1");
    let out = org.out();
    let run = sfetl(&["extract", &pipeline.to_string_lossy(), "--out", &out.to_string_lossy()], org.dir.path());
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    assert!(text(&run).contains("more than 1 MB"), "{}", text(&run));
    let pipeline = org.pipeline("big", "max_response_mb = 64");
    org.extract(&pipeline);
}
