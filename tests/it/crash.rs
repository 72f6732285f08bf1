//! Killed at any moment (SIGKILL), a run leaves the warehouse answering, and the next run ends as
//! if nothing had happened.

use crate::support::{SimOrg, rows, sfetl, text};
use std::process::Command;

fn every_table(out: &std::path::Path) -> Vec<Vec<Vec<String>>> {
    sfetl_transform::tables::ALL
        .iter()
        .map(|t| rows(out, &format!("SELECT * EXCLUDE (extracted_at) FROM {} ORDER BY ALL", t.name)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_kills_at_random_moments_change_nothing() {
    let org = SimOrg::start(6000, 41).await;
    let pipeline = org.pipeline("crash", "batch_size = 500");
    let (reference, out) = (org.dir.path().join("reference"), org.out());
    let extract = |dir: &std::path::Path| {
        let run = sfetl(&["extract", &pipeline.to_string_lossy(), "--out", &dir.to_string_lossy()], org.dir.path());
        assert!(run.status.success(), "{}", text(&run));
    };
    let started = std::time::Instant::now();
    extract(&reference);
    let full_run = started.elapsed();
    extract(&out);

    // Kill moments spread over a whole run, from a fixed seed so a failure can be replayed.
    let mut seed: u64 = 0x5EED;
    for kill in 0..10 {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let delay = full_run.mul_f64((seed >> 11) as f64 / (1u64 << 53) as f64);
        let mut child = Command::new(env!("CARGO_BIN_EXE_sfetl"))
            .args(["--quiet", "extract", &pipeline.to_string_lossy(), "--out", &out.to_string_lossy(), "--full"])
            .current_dir(org.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        tokio::time::sleep(delay).await;
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // The views answer after every kill, with whole files only.
        for table in sfetl_transform::tables::ALL {
            let n = rows(&out, &format!("SELECT count(*)::BIGINT FROM {}", table.name));
            assert!(!n.is_empty(), "kill {kill} after {delay:?}: {} does not answer", table.name);
        }
    }
    extract(&out);
    assert_eq!(every_table(&out), every_table(&reference), "the run after the kills equals an uninterrupted one");
    let leftovers: Vec<_> =
        crate::support::files(&out).into_iter().filter(|p| p.to_string_lossy().contains(".tmp-")).collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}
