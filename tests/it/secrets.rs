//! Nothing leaks (#13, point 2) and what is written is its owner's only (point 6): every command,
//! good runs and failure paths, verbose and with JSON logs, is run with a known key; then
//! everything it printed and every file it wrote (Parquet values read back, the warehouse, the
//! state, the report, the summary) is searched for the key and for every token the org issued.

use crate::support::{SimOrg, files, sfetl, text};
use sfetl_sim::{Fault, FaultRule, Trigger};
use std::path::Path;

/// A file's content as text; a Parquet file's values as DuckDB reads them (its bytes are
/// compressed: a plain search would find nothing).
fn readable(path: &Path) -> String {
    let raw = String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned();
    if path.extension().is_none_or(|e| e != "parquet") {
        return raw;
    }
    let db = duckdb::Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
    let sql = format!("SELECT * FROM read_parquet('{}')", path.display());
    let mut statement = db.prepare(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut rows = statement.query([]).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut text = String::new();
    while let Some(row) = rows.next().unwrap_or_else(|e| panic!("{e}")) {
        for i in 0..row.as_ref().column_count() {
            text.push_str(&format!("{:?}\t", row.get_ref(i).map(|v| v.to_owned())));
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_command_prints_or_writes_the_key_or_a_token() {
    let org = SimOrg::start(400, 21).await;
    let good = org.pipeline("leak", "retry_attempts = 2\nretry_budget_seconds = 2");
    let (out, dir) = (org.out(), org.dir.path());
    let (pipeline, out_arg) = (good.to_string_lossy().to_string(), out.to_string_lossy().to_string());
    let summary = dir.join("summary.json").to_string_lossy().to_string();
    let mut said = Vec::new();
    let mut run = |args: &[&str]| said.push(text(&sfetl(args, dir)));
    run(&["-v", "extract", &pipeline, "--out", &out_arg, "--summary-json", &summary]);
    run(&["-v", "--log-format", "json", "extract", &pipeline, "--out", &out_arg, "--full"]);
    run(&["-v", "check", &pipeline]);
    run(&["-v", "check", &pipeline, "--format", "json"]);
    run(&["query", "--out", &out_arg, "select * from runs"]);
    run(&["report", "--out", &out_arg]);
    // Failure paths: sessions that die mid-run, a token answer that does not parse (it holds a
    // token), every API call refused (the run fails after its retries, whatever the order of
    // its concurrent calls), a foreign instance.
    for (fault, every, paths) in [
        (Fault::ExpireSessions, 2, "/query"),
        (Fault::GarbledJson, 2, "/services/oauth2/token"),
        (Fault::InternalError, 1, "/services/data/v"),
        (Fault::ForeignInstance("https://evil.example".into()), 2, "/services/oauth2/token"),
    ] {
        org.sim.add_fault(FaultRule::new(fault, Trigger::EveryNth(every)).on_paths(paths));
        run(&["-v", "extract", &pipeline, "--out", &out_arg]);
        run(&["-v", "--log-format", "json", "check", &pipeline]);
        org.sim.clear_faults();
    }
    let failed = said.iter().filter(|s| s.contains("FAILED") || s.contains("FAIL ")).count();
    assert!(failed >= 2, "the failure paths failed: {said:#?}");

    let pem = std::fs::read_to_string(dir.join("org.key")).unwrap_or_default();
    let key_line = pem.lines().nth(5).unwrap_or_default().to_string();
    assert_eq!(key_line.len(), 64, "a line of the key's base64");
    let tokens = org.sim.issued_tokens();
    assert!(tokens.len() >= 8, "{} tokens", tokens.len());
    // A token's opaque part, and its first 24 characters (what an excerpt would show).
    let secrets: Vec<String> = tokens
        .iter()
        .flat_map(|t| {
            let opaque = t.split_once('!').map_or(t.as_str(), |(_, o)| o);
            [opaque.to_string(), opaque[..24].to_string()]
        })
        .chain([key_line])
        .collect();
    let written: Vec<(String, String)> = files(dir)
        .into_iter()
        .filter(|p| p.file_name().is_none_or(|n| n != "org.key"))
        .map(|p| (p.display().to_string(), readable(&p)))
        .collect();
    assert!(written.iter().any(|(p, _)| p.ends_with("report.html")) && written.len() > 30, "{}", written.len());
    for secret in &secrets {
        for (i, output) in said.iter().enumerate() {
            assert!(!output.contains(secret.as_str()), "command {i} printed a secret: {output}");
        }
        for (path, content) in &written {
            assert!(!content.contains(secret.as_str()), "{path} holds a secret");
        }
    }
}

/// The output holds personal data: what sfetl creates there is its owner's only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_output_is_created_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let org = SimOrg::start(100, 22).await;
    let pipeline = org.pipeline("private", "");
    org.extract(&pipeline);
    let out = org.out();
    let report = sfetl(&["report", "--out", &out.to_string_lossy()], org.dir.path());
    assert!(report.status.success(), "{}", text(&report));
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777).unwrap_or_default();
    assert_eq!(mode(&out), 0o700, "the output directory");
    let written = files(&out);
    assert!(written.len() > 20);
    for file in &written {
        assert_eq!(mode(file), 0o600, "{}", file.display());
        let parent = file.parent().unwrap_or(&out);
        assert_eq!(mode(parent), 0o700, "{}", parent.display());
    }
    let left: Vec<_> =
        written.iter().filter(|f| f.file_name().is_some_and(|n| n.to_string_lossy().contains(".tmp"))).collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}
