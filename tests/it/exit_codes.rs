//! Each exit code of the table in `sfetl --help` (and the README), produced for real. Codes 1 and
//! 4 (an org failed, the quota guard stopped) are also covered where those behaviours are.

use crate::support::{SimOrg, sfetl, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_lists_the_exit_codes() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let help = sfetl(&["--help"], dir.path());
    assert_eq!(help.status.code(), Some(0));
    let said = text(&help);
    for code in
        ["0  success", "1  an org failed", "2  the command line", "3  an output", "4  the API quota", "5  the data"]
    {
        assert!(said.contains(code), "--help lacks `{code}`: {said}");
    }
}

/// 2: a bad pipeline, for `extract` and `check` alike, and SQL DuckDB refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pipeline_or_query_exits_2() {
    let org = SimOrg::start(50, 3).await;
    let bad = org.pipeline("bad", "batch_size = 5");
    for command in ["extract", "check"] {
        let run = sfetl(&[command, &bad.to_string_lossy()], org.dir.path());
        assert_eq!(run.status.code(), Some(2), "{command}: {}", text(&run));
        assert!(text(&run).contains("`batch_size` is 5"), "{command}: {}", text(&run));
    }
    let good = org.pipeline("good", "");
    org.extract(&good);
    let out = org.out();
    let query = sfetl(&["query", "--out", &out.to_string_lossy(), "select nonsense from users"], org.dir.path());
    assert_eq!(query.status.code(), Some(2), "{}", text(&query));
    assert!(text(&query).contains("nonsense"), "{}", text(&query));
}

/// 3: the output cannot be written; nothing is requested of the org.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_output_exits_3() {
    let org = SimOrg::start(50, 3).await;
    let pipeline = org.pipeline("o", "");
    let file = org.dir.path().join("a-file");
    std::fs::write(&file, "").unwrap_or_else(|e| panic!("{e}"));
    let out = file.join("data");
    let run = sfetl(&["extract", &pipeline.to_string_lossy(), "--out", &out.to_string_lossy()], org.dir.path());
    assert_eq!(run.status.code(), Some(3), "{}", text(&run));
    assert!(text(&run).contains("cannot create the output directory"), "{}", text(&run));
    assert!(org.sim.request_log().is_empty(), "no request before the output is known to be writable");
}

/// 5: a table's folder holds a file DuckDB cannot read. The org is extracted, the warehouse
/// leaves that view out (and the views built on it), the others stay queryable, and the summary
/// JSON names the refused view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_duckdb_refuses_exits_5_and_keeps_the_rest() {
    let org = SimOrg::start(80, 5).await;
    let pipeline = org.pipeline("v", "");
    let out = org.out();
    org.extract(&pipeline);
    let foreign = out.join("users").join("org=other");
    std::fs::create_dir_all(&foreign).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(foreign.join("users.parquet"), "not parquet").unwrap_or_else(|e| panic!("{e}"));
    let summary_file = org.dir.path().join("summary.json");
    let run = sfetl(
        &[
            "extract",
            &pipeline.to_string_lossy(),
            "--out",
            &out.to_string_lossy(),
            "--summary-json",
            &summary_file.to_string_lossy(),
        ],
        org.dir.path(),
    );
    assert_eq!(run.status.code(), Some(5), "{}", text(&run));
    assert!(String::from_utf8_lossy(&run.stdout).contains("REFUSED"), "{}", text(&run));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary_file).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary["refused_views"][0]["view"], "users", "{summary}");
    assert_eq!(summary["orgs"][0]["outcome"]["status"], "succeeded", "{summary}");
    let query =
        sfetl(&["query", "--out", &out.to_string_lossy(), "select count(*) from user_licenses"], org.dir.path());
    assert_eq!(query.status.code(), Some(0), "{}", text(&query));
}

/// `--no-default-features` gives a production binary without the simulator: no `sfetl-sim`,
/// no axum server, in its dependency tree (what `cargo build -p sfetl --no-default-features`
/// links).
#[test]
fn the_production_build_links_no_simulator() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let tree = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO"))
            .args(["tree", "--manifest-path", manifest, "-p", "sfetl", "-e", "normal", "--prefix", "none"])
            .args(extra)
            .output()
            .unwrap_or_else(|e| panic!("cargo tree: {e}"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(' ').next().map(String::from))
            .collect::<Vec<_>>()
    };
    let demo = tree(&[]);
    assert!(demo.iter().any(|c| c == "sfetl-sim"), "the default build has the demo: {demo:?}");
    let production = tree(&["--no-default-features"]);
    for absent in ["sfetl-sim", "axum", "axum-server"] {
        assert!(!production.iter().any(|c| c == absent), "{absent} in the production build");
    }
    assert!(production.iter().any(|c| c == "sfetl-pipeline"));
}
