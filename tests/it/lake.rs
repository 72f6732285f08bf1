//! Object-storage output ("Beyond one machine"): sharded workers filling a lake on a local
//! S3-compatible server (moto, from the Python environment `scripts/venv.sh` makes), a worker
//! killed mid-run, and the lake read by DuckDB, polars and Spark.

use crate::support::{rows, sfetl_env, text};
use sfetl_lake::Lake;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Python environment with moto, boto3, polars and PySpark.
fn python() -> PathBuf {
    let venv = std::env::var_os("SFETL_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/sfetl/venv"));
    let python = venv.join("bin/python");
    assert!(python.exists(), "{} is missing: run scripts/venv.sh (`just test` does)", python.display());
    python
}

/// A moto S3 server on a free loopback port, with one bucket; stopped when dropped.
struct Moto {
    server: Child,
    endpoint: String,
}

impl Moto {
    fn start(bucket: &str) -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let server = Command::new(python())
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting moto: {e}"));
        let moto = Moto { server, endpoint: format!("http://127.0.0.1:{port}") };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(60), "moto did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let create = format!(
            "import boto3; boto3.client('s3', endpoint_url='{}').create_bucket(Bucket='{bucket}')",
            moto.endpoint
        );
        let made = Command::new(python()).args(["-c", &create]).envs(moto.env()).output();
        let made = made.unwrap_or_else(|e| panic!("{e}"));
        assert!(made.status.success(), "{}", text(&made));
        moto
    }

    /// The standard variables a worker (and boto3, polars) reads.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    fn lake(&self, url: &str) -> Lake {
        let settings = [
            ("aws_access_key_id", "testing"),
            ("aws_secret_access_key", "testing"),
            ("aws_region", "us-east-1"),
            ("aws_endpoint_url", self.endpoint.as_str()),
            ("aws_allow_http", "true"),
        ];
        Lake::open_with(url, &settings).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
        .block_on(future)
}

/// A pipeline of simulated orgs, `(name, users)`, started in the worker's own process.
fn pipeline(dir: &Path, orgs: &[(String, usize)], concurrency: usize) -> PathBuf {
    let mut text = format!("concurrency = {concurrency}\n");
    for (seed, (name, users)) in orgs.iter().enumerate() {
        text.push_str(&format!(
            "[[orgs]]\nname = \"{name}\"\ncompany_names = [\"Acme Corp\"]\nexclude_user_types = []\n\
             simulated = {{ users = {users}, seed = {} }}\n",
            seed + 1
        ));
    }
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    path
}

fn worker(moto: &Moto, pipeline: &Path, url: &str, work: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sfetl"));
    command
        .args(["--quiet", "extract", &pipeline.to_string_lossy(), "--out", url, "--work-dir"])
        .arg(work)
        .args(extra)
        .env("NO_COLOR", "1")
        .envs(moto.env())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Every data object of the lake (not under `_sfetl/`), relative to its root.
fn data_objects(lake: &Lake) -> BTreeSet<String> {
    block_on(lake.objects())
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .filter(|p| !p.starts_with("_sfetl/"))
        .collect()
}

/// Rows of the `users` table per org, as the mirror's warehouse reads them.
fn users_per_org(mirror: &Path) -> BTreeMap<String, String> {
    rows(mirror, "SELECT org, count(*) FROM users GROUP BY org ORDER BY org")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect()
}

fn pull(moto: &Moto, url: &str, mirror: &Path) {
    let env = moto.env();
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let pulled = sfetl_env(&["pull", url, "--to", &mirror.to_string_lossy()], mirror.parent().unwrap_or(mirror), &vars);
    assert!(pulled.status.success(), "{}", text(&pulled));
}

/// 30 orgs, 3 workers started at once with `--shard I/3`: every org is extracted by exactly one
/// worker and committed once, and the lake reads the same in DuckDB (through `sfetl pull`),
/// polars (straight from S3, following the manifests) and Spark (over the pulled tree).
#[test]
fn three_sharded_workers_fill_a_lake_that_every_engine_reads_alike() {
    let moto = Moto::start("lake");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let orgs: Vec<(String, usize)> = (0..30).map(|n| (format!("org-{n:02}"), 80 + 2 * n)).collect();
    let pipeline = pipeline(dir.path(), &orgs, 4);
    let url = "s3://lake/licenses";
    let workers: Vec<Child> = (0..3)
        .map(|i| {
            let summary = dir.path().join(format!("summary-{i}.json"));
            let args = ["--shard", &format!("{i}/3"), "--no-warehouse", "--summary-json", &summary.to_string_lossy()];
            worker(&moto, &pipeline, url, &dir.path().join(format!("work-{i}")), &args)
                .spawn()
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    for child in workers {
        let done = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        assert!(done.status.success(), "{}", text(&done));
    }
    // Each org in exactly one worker's summary, committed as its first manifest.
    let mut committed: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut users_read: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..3 {
        let json = std::fs::read(dir.path().join(format!("summary-{i}.json"))).unwrap_or_else(|e| panic!("{e}"));
        let summary: serde_json::Value = serde_json::from_slice(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(summary["shard"], format!("{i}/3"));
        let mine = summary["orgs"].as_array().cloned().unwrap_or_default();
        assert!(!mine.is_empty() && mine.len() < 30, "worker {i} took {} orgs", mine.len());
        for org in mine {
            let name = org["org"].as_str().unwrap_or_default().to_string();
            assert_eq!(org["outcome"]["status"], "succeeded", "{org}");
            committed.entry(name.clone()).or_default().push(org["committed"].as_u64().unwrap_or(0));
            let users = org["tables"].as_array().into_iter().flatten().find(|t| t["table"] == "users");
            users_read.insert(name, users.map(|t| t["rows"].to_string()).unwrap_or_default());
        }
    }
    let expected: BTreeMap<String, Vec<u64>> = orgs.iter().map(|(name, _)| (name.clone(), vec![1])).collect();
    assert_eq!(committed, expected, "every org once, as its first commit");
    let lake = moto.lake(url);
    for (org, _) in &orgs {
        let holder = block_on(lake.lease_holder(org)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(holder, None, "{org}'s lease is given back at the end of the run");
    }
    let snapshot = block_on(lake.snapshot()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(snapshot.manifests.len(), 30);
    // Every file a manifest lists is in the store, and nothing else is.
    let listed: BTreeSet<String> =
        snapshot.manifests.iter().flat_map(|m| m.files.iter().map(|f| f.path.clone())).collect();
    assert_eq!(data_objects(&lake), listed);

    let mirror = dir.path().join("mirror");
    pull(&moto, url, &mirror);
    assert_eq!(users_per_org(&mirror), users_read, "DuckDB over the pulled lake reads what the workers wrote");

    let duckdb = rows(
        &mirror,
        "SELECT org, subscription_id, total, used, held_by_users FROM license_utilization ORDER BY org, subscription_id",
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/recipes/lake_readers.py");
    let read = Command::new(python())
        .args([script, url, &mirror.to_string_lossy()])
        .envs(moto.env())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(read.status.success(), "{}", text(&read));
    let answers: BTreeMap<String, Vec<Vec<serde_json::Value>>> =
        serde_json::from_slice(&read.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&read)));
    let as_text = |rows: &Vec<Vec<serde_json::Value>>| -> Vec<Vec<String>> {
        rows.iter()
            .map(|row| {
                row.iter()
                    .map(|v| match v {
                        serde_json::Value::Null => "NULL".to_string(),
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect()
            })
            .collect()
    };
    assert!(duckdb.len() > 30, "{} licenses", duckdb.len());
    for engine in ["polars", "spark"] {
        assert_eq!(as_text(&answers[engine]), duckdb, "{engine} and DuckDB disagree");
    }
}

/// A worker killed while it extracts leaves nothing readers see of that org, and the next run,
/// on another machine's working copy, takes the org once the lease expired: in the end every
/// org is committed, and no object is left that no manifest lists.
#[test]
fn a_worker_killed_mid_run_leaves_no_partial_data_and_its_org_is_taken_next_run() {
    let moto = Moto::start("lake");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let orgs = [("small-a".to_string(), 20), ("small-b".to_string(), 25), ("big".to_string(), 40_000)];
    // One org at a time, in order: the big one comes last.
    let pipeline = pipeline(dir.path(), &orgs, 1);
    let url = "s3://lake/killed";
    let lake = moto.lake(url);
    let mut first = worker(&moto, &pipeline, url, &dir.path().join("work-1"), &["--lease-seconds", "4"])
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    loop {
        // Killed while it extracts the big org: the small ones committed, the big one leased.
        let snapshot = block_on(lake.snapshot()).unwrap_or_else(|e| panic!("{e}"));
        let big_leased = block_on(lake.lease_holder("big")).unwrap_or_else(|e| panic!("{e}")).is_some();
        if snapshot.manifests.len() >= 2 && big_leased {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the small orgs were not committed");
        assert!(first.try_wait().ok().flatten().is_none(), "the worker ended before it could be killed");
        std::thread::sleep(Duration::from_millis(50));
    }
    first.kill().unwrap_or_else(|e| panic!("{e}"));
    let _ = first.wait();
    let snapshot = block_on(lake.snapshot()).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = snapshot.manifests.iter().map(|m| m.org.as_str()).collect();
    assert_eq!(names, ["small-a", "small-b"], "nothing of the killed org is committed");
    let dead = block_on(lake.lease_holder("big")).unwrap_or_else(|e| panic!("{e}"));
    assert!(dead.is_some(), "the dead worker's lease holds until it expires");
    let mirror = dir.path().join("mirror");
    pull(&moto, url, &mirror);
    assert_eq!(users_per_org(&mirror).keys().collect::<Vec<_>>(), ["small-a", "small-b"]);

    // The next run, from another working copy, once the dead worker's lease has expired.
    std::thread::sleep(Duration::from_millis(4500));
    let summary = dir.path().join("summary.json");
    let args = ["--lease-seconds", "2", "--summary-json", &summary.to_string_lossy()];
    let second = worker(&moto, &pipeline, url, &dir.path().join("work-2"), &args).output();
    let second = second.unwrap_or_else(|e| panic!("{e}"));
    assert!(second.status.success(), "{}", text(&second));
    let snapshot = block_on(lake.snapshot()).unwrap_or_else(|e| panic!("{e}"));
    let sequences: Vec<(&str, u64)> = snapshot.manifests.iter().map(|m| (m.org.as_str(), m.sequence)).collect();
    assert_eq!(sequences, [("big", 1), ("small-a", 2), ("small-b", 2)]);
    pull(&moto, url, &mirror);
    let users = users_per_org(&mirror);
    let json = std::fs::read(&summary).unwrap_or_else(|e| panic!("{e}"));
    let summary: serde_json::Value = serde_json::from_slice(&json).unwrap_or_else(|e| panic!("{e}"));
    for org in summary["orgs"].as_array().into_iter().flatten() {
        let name = org["org"].as_str().unwrap_or_default();
        let read = org["tables"].as_array().into_iter().flatten().find(|t| t["table"] == "users");
        assert_eq!(users.get(name).map(String::as_str), read.map(|t| t["rows"].to_string()).as_deref(), "{name}");
        // The small orgs continue from the cursors their commit saved, though this working copy
        // never saw them: only what changed since is fetched.
        let fetched = read.and_then(|t| t["fetched"].as_u64()).unwrap_or_default();
        let rows = read.and_then(|t| t["rows"].as_u64()).unwrap_or_default();
        if name.starts_with("small") {
            assert!(fetched < rows, "{name}: {fetched} of {rows} users fetched");
        } else {
            assert_eq!(fetched, rows, "{name} is read in full the first time");
        }
    }
    // Each object is listed by an org's newest or previous manifest (kept for readers that
    // started on it); whatever the killed worker had uploaded is gone.
    let mut kept = BTreeSet::new();
    for manifest in &snapshot.manifests {
        kept.extend(manifest.files.iter().map(|f| f.path.clone()));
        if let Some(previous) =
            block_on(lake.manifest(&manifest.org, manifest.sequence - 1)).unwrap_or_else(|e| panic!("{e}"))
        {
            kept.extend(previous.files.iter().map(|f| f.path.clone()));
        }
    }
    assert_eq!(data_objects(&lake), kept);
}

/// An org whose lease another worker holds is skipped (named, not a failure: exit 0), and the
/// others are extracted.
#[test]
fn an_org_another_worker_holds_is_skipped_and_the_run_succeeds() {
    let moto = Moto::start("lake");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let pipeline = pipeline(dir.path(), &[("held".to_string(), 90), ("free".to_string(), 90)], 2);
    let url = "s3://lake/held";
    let lake = moto.lake(url);
    let other = block_on(lake.acquire("held", "worker-on-another-host:42", Duration::from_secs(600)));
    let _other = other.unwrap_or_else(|e| panic!("{e}"));
    let summary = dir.path().join("summary.json");
    let args = ["--no-warehouse", "--summary-json", &summary.to_string_lossy()];
    let run = worker(&moto, &pipeline, url, &dir.path().join("work"), &args).output().unwrap_or_else(|e| panic!("{e}"));
    assert!(run.status.success(), "{}", text(&run));
    let json = std::fs::read(&summary).unwrap_or_else(|e| panic!("{e}"));
    let summary: serde_json::Value = serde_json::from_slice(&json).unwrap_or_else(|e| panic!("{e}"));
    let outcome = |org: &str| {
        let orgs = summary["orgs"].as_array().cloned().unwrap_or_default();
        orgs.into_iter().find(|o| o["org"] == org).map(|o| o["outcome"].clone()).unwrap_or_default()
    };
    assert_eq!(outcome("free")["status"], "succeeded");
    assert_eq!(outcome("held")["status"], "skipped");
    assert_eq!(outcome("held")["reason"]["kind"], "leased");
    let message = outcome("held")["reason"]["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("worker-on-another-host:42"), "{message}");
    let snapshot = block_on(lake.snapshot()).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = snapshot.manifests.iter().map(|m| m.org.as_str()).collect();
    assert_eq!(names, ["free"]);
}

/// A lake on local files (`file://`): `sfetl lake --duckdb-views` gives the SQL that makes the
/// warehouse's views over the committed files' URLs in a reader's own DuckDB, and those views
/// answer as the pulled mirror's warehouse does.
#[test]
fn the_duckdb_views_script_reads_the_committed_files_by_their_urls() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let pipeline = pipeline(dir.path(), &[("acme".to_string(), 120), ("globex".to_string(), 90)], 2);
    let url = format!("file://{}/lake", dir.path().display());
    let cwd = dir.path();
    let work = dir.path().join("work").to_string_lossy().into_owned();
    let run =
        sfetl_env(&["--quiet", "extract", &pipeline.to_string_lossy(), "--out", &url, "--work-dir", &work], cwd, &[]);
    assert!(run.status.success(), "{}", text(&run));
    let mirror = dir.path().join("mirror");
    let pulled = sfetl_env(&["pull", &url, "--to", &mirror.to_string_lossy()], cwd, &[]);
    assert!(pulled.status.success(), "{}", text(&pulled));
    let script = sfetl_env(&["lake", &url, "--duckdb-views"], cwd, &[]);
    assert!(script.status.success(), "{}", text(&script));
    let sql = String::from_utf8_lossy(&script.stdout).into_owned();
    assert!(sql.contains(&format!("'{url}/users/org=acme/users-")), "views name the files' URLs:\n{sql}");
    assert!(!sql.contains(&mirror.to_string_lossy().into_owned()) && !sql.contains(&work), "{sql}");

    let question = "SELECT org, subscription_id, total, used, held_by_users FROM license_utilization ORDER BY ALL";
    let db = duckdb::Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
    db.execute_batch(&sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
    let mut statement = db.prepare(question).unwrap_or_else(|e| panic!("{e}"));
    let answer: Vec<Vec<String>> = statement
        .query_map([], |row| {
            (0..5)
                .map(|i| {
                    row.get::<_, Option<String>>(i)
                        .or_else(|_| row.get::<_, Option<i64>>(i).map(|v| v.map(|v| v.to_string())))
                        .map(|v| v.unwrap_or_else(|| "NULL".into()))
                })
                .collect()
        })
        .unwrap_or_else(|e| panic!("{e}"))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(answer.len() > 10, "{answer:?}");
    assert_eq!(answer, rows(&mirror, question));
}
