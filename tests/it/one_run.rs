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
