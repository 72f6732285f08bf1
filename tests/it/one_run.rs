//! One run per output (#13, point 3): a second `extract` on an output another run is writing is
//! refused (exit 6, naming the holder) or, with `--wait`, waits; both leave one complete result.

use crate::support::{SimOrg, is_portal, rows, sfetl, text};
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_the_same_output_is_refused_or_waits_and_nothing_is_lost() {
    let mut config = sfetl_sim::SimConfig::new(sfetl_sim::OrgSpec::new(23, 2000));
    config.latency_per_request = Some(Duration::from_millis(100));
    let org = SimOrg::start_with(config).await;
    let pipeline = org.pipeline("one", "batch_size = 200");
    let out = org.out();
    let (pipeline, out_arg) = (pipeline.to_string_lossy().to_string(), out.to_string_lossy().to_string());
    let args = ["extract", pipeline.as_str(), "--out", out_arg.as_str()];
    let spawn = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sfetl"))
            .args(args)
            .args(extra)
            .current_dir(org.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let first = spawn(&[]);
    let holder = format!("pid {}", first.id());
    let lock = out.join(".sfetl.lock");
    for _ in 0..200 {
        if std::fs::read_to_string(&lock).is_ok_and(|t| t.contains(&holder)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = sfetl(&args, org.dir.path());
    assert_eq!(second.status.code(), Some(6), "{}", text(&second));
    assert!(text(&second).contains(&holder) && text(&second).contains("--wait"), "{}", text(&second));
    let waiting = spawn(&["--wait"]);
    let (first, waiting) = tokio::task::spawn_blocking(move || (first.wait_with_output(), waiting.wait_with_output()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (first, waiting) = (first.unwrap_or_else(|e| panic!("{e}")), waiting.unwrap_or_else(|e| panic!("{e}")));
    assert!(first.status.success(), "{}", text(&first));
    assert!(waiting.status.success(), "the waiting run ran after: {}", text(&waiting));
    assert!(text(&waiting).contains("waiting for it to end"), "{}", text(&waiting));

    let data = org.sim.org();
    let users = data.table("User");
    let kept = (0..users.rows.len()).filter(|&i| !is_portal(users.get(i, "UserType").as_str().unwrap_or(""))).count();
    assert_eq!(rows(&out, "SELECT count(*)::BIGINT FROM users")[0][0], kept.to_string());
    let runs = rows(&out, "SELECT status FROM runs ORDER BY finished_at");
    assert_eq!(runs, [["succeeded"], ["succeeded"]], "two runs recorded, the refused one not");
}

/// History survives clocks (#13, point 4): after a run whose clock was a year ahead, later runs
/// take ids after it (with a warning), and merging the run files loses none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_after_a_clock_that_ran_ahead_keep_their_history() {
    let org = SimOrg::start(60, 24).await;
    let pipeline = org.pipeline("clock", "");
    let out = org.out();
    org.extract(&pipeline);
    // As if that run's clock had been a year ahead.
    std::fs::write(out.join("_state/run_id"), "20991231T235959.999Z").unwrap_or_else(|e| panic!("{e}"));
    let mut warned = 0;
    for _ in 0..4 {
        let run = org.extract_with_env(&pipeline, &[("SFETL_RUN_FILES_PER_MERGE", "2")]);
        warned += usize::from(text(&run).contains("ahead of this machine's clock"));
    }
    assert_eq!(warned, 4, "each run says the clock is behind the output's history");
    let ids = rows(&out, "SELECT run_id FROM runs ORDER BY finished_at");
    assert_eq!(ids.len(), 5, "every run's row is kept: {ids:?}");
    assert!(ids[1][0].as_str() > "20991231T235959.999Z", "{ids:?}");
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ids, "run ids grow in run order");
    let snapshots = rows(&out, "SELECT count(DISTINCT run_id)::BIGINT FROM subscription_history");
    assert_eq!(snapshots[0][0], "5", "every run's seat snapshot is kept");
}
