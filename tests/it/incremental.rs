//! Incremental runs: only users changed since the last run are read, and the result equals a
//! full extract, including changes stamped with the very same `SystemModstamp`.

use crate::support::{SimOrg, rows, sfetl, text};
use sfetl_sim::value::Value;

fn users(out: &std::path::Path) -> Vec<Vec<String>> {
    rows(out, "SELECT * EXCLUDE (extracted_at) FROM users ORDER BY ALL")
}

/// Gives every `step`-th user from `offset` a new title and the modstamp `at`.
fn touch(org: &SimOrg, offset: usize, step: usize, at: i64) -> usize {
    let mut touched = 0;
    org.sim.update_org(|data| {
        let users = data.table_mut("User");
        for i in (offset..users.rows.len()).step_by(step) {
            users.set(i, "Title", Value::str(format!("Changed at {at} #{i}")));
            users.set(i, "LastModifiedDate", Value::DateTime(at));
            users.set(i, "SystemModstamp", Value::DateTime(at));
            touched += 1;
        }
    });
    touched
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_runs_read_only_the_change_and_equal_a_full_extract() {
    let org = SimOrg::start(20_000, 31).await;
    let pipeline = org.pipeline("inc", "exclude_user_types = []");
    let (out, full_out) = (org.out(), org.dir.path().join("full"));
    let extract = |dir: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "extract".to_string(),
            pipeline.to_string_lossy().into(),
            "--out".into(),
            dir.to_string_lossy().into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = sfetl(&args, org.dir.path());
        assert!(run.status.success(), "{}", text(&run));
    };
    extract(&out, &[]);
    let full_run_pages = org.sim.request_log().iter().filter(|r| r.object == Some("User")).count();
    assert_eq!(full_run_pages, 10, "20,000 users in pages of 2,000");

    // 1 % of the users change, all in the same second.
    let now = chrono::Utc::now().timestamp() * 1000;
    let changed = touch(&org, 0, 100, now);
    assert_eq!(changed, 200);
    for (round, (offset, step)) in [(1, 100), (7, 400)].into_iter().enumerate() {
        if round == 1 {
            // More users change, stamped with the same second as the newest row already read.
            touch(&org, offset, step, now);
        }
        let before = org.sim.request_log().len();
        extract(&out, &[]);
        let log = org.sim.request_log();
        let user_pages: Vec<_> = log[before..].iter().filter(|r| r.object == Some("User")).collect();
        let fetched: usize = user_pages.iter().map(|r| r.records).sum();
        // Proportional to the change: one page of at most 2,000 rows instead of ten pages of 20,000.
        assert_eq!(user_pages.len(), 1, "round {round}");
        assert!((200..2000).contains(&fetched), "round {round}: {fetched} users read");

        extract(&full_out, &["--full"]);
        assert_eq!(users(&out), users(&full_out), "round {round}: incremental equals full");
    }
    let titles = rows(&out, "SELECT count(*)::BIGINT FROM users WHERE title LIKE 'Changed at %'");
    assert_eq!(titles[0][0], (200 + 50).to_string());
}
