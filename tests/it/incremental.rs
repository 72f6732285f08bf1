//! Incremental runs: only users changed since the last run are read, and the result equals a
//! full extract, including changes stamped with the very same `SystemModstamp`.

use crate::support::{SimOrg, column_sorted, is_portal, rows, sfetl, text};
use sfetl_sim::value::Value;

/// The users a run read, from its `--summary-json` file.
fn users_fetched(summary: &std::path::Path) -> u64 {
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(summary).unwrap_or_default()).unwrap_or_default();
    let users = json["orgs"][0]["tables"].as_array().into_iter().flatten().find(|t| t["table"] == "users");
    users.and_then(|t| t["fetched"].as_u64()).unwrap_or_default()
}

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
    // Page after page, so that the full run's pages can be counted exactly.
    let pipeline = org.pipeline("inc", "exclude_user_types = []\nparallel_cursors = 1");
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

/// Where most users log in every day (many real orgs), a night's changes are half the users:
/// an incremental read whose changes run to many pages goes on in ranges of Ids at once, as a
/// full read does, reads only the changes, and equals a full read. A few changes stay page after
/// page (the test above: one page).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_changes_are_read_in_ranges_and_equal_a_full_read() {
    let org = SimOrg::start(8000, 37).await;
    // Pages of 200 rows: half of 8,000 users changed are 20 pages.
    let pipeline = org.pipeline("inc", "exclude_user_types = []\nbatch_size = 200");
    // The same org read to save calls: its changes go on page after page, ranges costing calls.
    let saving = org.pipeline("inc-saving", "exclude_user_types = []\nbatch_size = 200\nbulk = \"always\"");
    let summary = org.dir.path().join("summary.json");
    // The run's log, and the users it read.
    let extract = |pipeline: &std::path::Path, dir: &std::path::Path, full: bool| {
        let mut args =
            vec!["extract", pipeline.to_str().unwrap_or_default(), "--out", dir.to_str().unwrap_or_default()];
        args.extend(["--summary-json", summary.to_str().unwrap_or_default()]);
        if full {
            args.push("--full");
        }
        let run = sfetl(&args, org.dir.path());
        assert!(run.status.success(), "{}", text(&run));
        (text(&run), users_fetched(&summary))
    };
    let in_ranges = |log: &str| {
        log.lines().any(|l| l.contains("reading the rest in ranges of Ids at once") && l.contains("object=User"))
    };
    let (out, full_out, saving_out) = (org.out(), org.dir.path().join("full"), org.dir.path().join("saving"));
    extract(&pipeline, &out, false);
    extract(&saving, &saving_out, false);
    // Stamped six minutes after the first runs, past the cursor's overlap of five.
    let later = chrono::Utc::now().timestamp() * 1000 + 6 * 60_000;
    let changed = touch(&org, 0, 2, later) as u64;
    let (log, fetched) = extract(&pipeline, &out, false);
    assert!(in_ranges(&log), "the changes were read page after page:\n{log}");
    // The changed users, and the overlap's few read again (stamped or logged in within five
    // minutes of the newest row the first run read).
    assert!((changed..changed + 20).contains(&fetched), "{fetched} users read for {changed} changed");
    extract(&pipeline, &full_out, true);
    assert_eq!(users(&out), users(&full_out), "incremental in ranges equals full");
    let (log, saved) = extract(&saving, &saving_out, false);
    assert!(!in_ranges(&log), "saving calls, the changes were read in ranges:\n{log}");
    assert_eq!(saved, fetched);
    // The org's name is a column: the two pipelines name it differently.
    let without_org = |out: &std::path::Path| rows(out, "SELECT * EXCLUDE (extracted_at, org) FROM users ORDER BY ALL");
    assert_eq!(without_org(&saving_out), without_org(&full_out), "incremental page after page equals full");
}

/// Assignment tables are read by their changes (#12, point 3). A removed assignment shows in no
/// change; counting finds it: the totals differ, the license whose count differs is read again,
/// and the table equals a full read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assignment_tables_read_their_changes_and_find_deletions_by_counting() {
    const OBJECT: &str = "PermissionSetLicenseAssign";
    let org = SimOrg::start(3000, 32).await;
    let pipeline = org.pipeline("assign", "");
    let (out, full_out) = (org.out(), org.dir.path().join("full"));
    let table = "SELECT * EXCLUDE (extracted_at) FROM permission_set_license_assignments ORDER BY ALL";
    org.extract(&pipeline);
    let calls_about = |since: usize| {
        let log = org.sim.request_log();
        let about: Vec<_> = log[since..].iter().filter(|r| r.object == Some(OBJECT)).map(|r| r.records).collect();
        (about.len(), about.iter().sum::<usize>())
    };

    // Nothing changed: the changes (the rows within the overlap before the newest) and one COUNT().
    let stamps: Vec<i64> = org
        .sim
        .org()
        .table(OBJECT)
        .rows
        .iter()
        .filter_map(|r| match r[5] {
            Value::DateTime(at) => Some(at),
            _ => None,
        })
        .collect();
    let newest = stamps.iter().copied().max().unwrap_or_default();
    let overlap = stamps.iter().filter(|&&at| at >= newest - 300_000).count();
    // A file's identity: a table rewritten gets a new file (renamed into place).
    let identity = |table: &str| {
        let file = out.join(table).join("org=assign").join(format!("{table}.parquet"));
        let meta = std::fs::metadata(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        (std::os::unix::fs::MetadataExt::ino(&meta), meta.modified().ok())
    };
    let kept = ["permission_set_license_assignments", "user_package_licenses", "user_subscriptions"];
    let files = kept.map(identity);
    let before = org.sim.request_log().len();
    org.extract(&pipeline);
    assert_eq!(calls_about(before), (2, overlap));
    // The rows read again are versions the files hold: the tables keep their files, and so does
    // `user_subscriptions`, derived from their columns and the users' licenses alone.
    assert_eq!(kept.map(identity), files, "{kept:?}: unchanged tables keep their files");
    let holders = "SELECT * FROM user_subscriptions ORDER BY ALL";
    // The last run's counts per company: an incremental run counts them ahead from the files as
    // they were, and must count again when it derives `user_subscriptions` anew.
    let counts = "SELECT company, subscription_id, kind, held_by_users, held_by_active_users
                  FROM company_subscription_history
                  WHERE run_id = (SELECT max(run_id) FROM company_subscription_history) ORDER BY ALL";

    // A user moves to a profile of another user license (SystemModstamp moves too): the
    // assignment tables keep their files, `user_subscriptions` is derived again.
    let now = chrono::Utc::now().timestamp() * 1000;
    org.sim.update_org(|data| {
        let profiles = data.table("Profile");
        let license_of = |profile: &Value| {
            (0..profiles.rows.len())
                .find(|&p| profiles.get(p, "Id") == profile)
                .map(|p| profiles.get(p, "UserLicenseId").clone())
        };
        let users = data.table("User");
        let user = (0..users.rows.len()).find(|&u| users.get(u, "UserType").as_str() == Some("Standard")).unwrap_or(0);
        let current = license_of(users.get(user, "ProfileId"));
        let other = (0..profiles.rows.len())
            .find(|&p| {
                Some(profiles.get(p, "UserLicenseId")) != current.as_ref()
                    && profiles.get(p, "UserType").as_str() == Some("Standard")
            })
            .map(|p| profiles.get(p, "Id").clone())
            .unwrap_or_else(|| panic!("no Standard profile of another license"));
        let users = data.table_mut("User");
        users.set(user, "ProfileId", other);
        users.set(user, "SystemModstamp", Value::DateTime(now));
    });
    let files = kept.map(identity);
    org.extract(&pipeline);
    let after = kept.map(identity);
    assert_eq!(after[..2], files[..2], "the assignment tables did not change");
    assert_ne!(after[2], files[2], "user_subscriptions is derived again");
    let full = |dir: &std::path::Path| {
        let run = crate::support::sfetl(
            &["extract", &pipeline.to_string_lossy(), "--out", &dir.to_string_lossy(), "--full"],
            org.dir.path(),
        );
        assert!(run.status.success(), "{}", text(&run));
    };
    full(&full_out);
    assert_eq!(rows(&out, holders), rows(&full_out, holders), "user_subscriptions equals a full run's");
    assert_eq!(rows(&out, counts), rows(&full_out, counts), "the counts per company equal a full run's");

    // Three assignments of one license are removed; one is added to another license.
    let mut shrunk = String::new();
    org.sim.update_org(|data| {
        let assignments = data.table_mut(OBJECT);
        let license = |row: &Vec<Value>| row[2].as_str().unwrap_or_default().to_string();
        shrunk = license(&assignments.rows[0]);
        let mut removed = 0;
        assignments.retain(|row| {
            let gone = removed < 3 && license(row) == shrunk;
            removed += usize::from(gone);
            !gone
        });
        let mut added = assignments.rows.iter().find(|row| license(row) != shrunk).cloned().unwrap_or_default();
        added[0] = Value::str(sfetl_sim::record_id("2LA", "zzz", 4242));
        for (i, value) in added.iter_mut().enumerate() {
            if matches!(value, Value::DateTime(_)) && i > 2 {
                *value = Value::DateTime(now);
            }
        }
        assignments.push(added);
    });
    let before = org.sim.request_log().len();
    org.extract(&pipeline);
    let (calls, records) = calls_about(before);
    let licenses = org.sim.org().table("PermissionSetLicense").rows.len();
    // The change, the total, a count per license held, and the one license again.
    assert!(calls <= 2 + licenses + 1, "{calls} calls");
    let held_by_shrunk =
        org.sim.org().table(OBJECT).rows.iter().filter(|r| r[2].as_str() == Some(shrunk.as_str())).count();
    assert!(records > held_by_shrunk, "the new assignment, and the shrunk license's assignments again");
    assert_ne!(identity("permission_set_license_assignments"), files[0], "a deletion rewrites the table");
    full(&full_out);
    assert_eq!(rows(&out, table), rows(&full_out, table), "incremental equals full");
    assert_eq!(rows(&out, holders), rows(&full_out, holders), "user_subscriptions equals a full run's");
    assert_eq!(rows(&out, counts), rows(&full_out, counts), "the counts per company equal a full run's");
}

/// `sfetl sim` plays a night in an org on SIGUSR1 (`--churn`, what `just bench`'s incremental
/// scenario uses): the next incremental run reads the users it changed and logged in, and no
/// more than those and the overlap.
#[test]
fn a_night_of_churn_is_what_the_next_incremental_run_reads() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut sim = std::process::Command::new(env!("CARGO_BIN_EXE_sfetl"))
        .args(["sim", "--users", "2000", "--churn", "2,10", "--dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut said = BufReader::new(sim.stdout.take().unwrap_or_else(|| panic!("stdout"))).lines();
    // The simulator prints its settings once it listens.
    assert!(said.by_ref().map_while(Result::ok).any(|line| line.starts_with("Ctrl-C stops it")));
    let pipeline = dir.path().join("pipeline.toml");
    let out = dir.path().join("data");
    let summary = dir.path().join("summary.json");
    let extract = || {
        let args = [
            "extract",
            &pipeline.to_string_lossy(),
            "--out",
            &out.to_string_lossy(),
            "--summary-json",
            &summary.to_string_lossy(),
        ];
        let run = sfetl(&args, dir.path());
        assert!(run.status.success(), "{}", text(&run));
        users_fetched(&summary)
    };
    extract();
    let signal = std::process::Command::new("kill").args(["-USR1", &sim.id().to_string()]).status();
    assert!(signal.is_ok_and(|s| s.success()));
    let night = said.map_while(Result::ok).find(|line| line.starts_with("churned:")).unwrap_or_default();
    assert_eq!(night, "churned: 40 users changed, 200 logged in");
    let fetched = extract();
    let _ = sim.kill();
    let _ = sim.wait();
    // Changed and logged-in users (some are portal users, left out), plus the overlap's few.
    assert!((150..=300).contains(&fetched), "{fetched} users read after the night");
}

/// An incremental read asks for every edited user, in the table's scope or not (one who left it
/// must leave the table), and for the logins of users in it; portal users, left out by default,
/// change and log in like any others. When only such users changed, the table has not: it keeps
/// its file, as the users read again in the overlap would have it keep. Users who leave the
/// scope, or enter it, are removed or added as a full read has them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_only_outside_the_scope_keep_the_users_file() {
    let org = SimOrg::start(3_000, 37).await;
    let pipeline = org.pipeline("scope", "");
    let (out, full_out) = (org.out(), org.dir.path().join("full"));
    org.extract(&pipeline);
    let file = out.join("users").join("org=scope").join("users.parquet");
    let identity = || {
        let meta = std::fs::metadata(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        (std::os::unix::fs::MetadataExt::ino(&meta), meta.modified().ok())
    };
    let before = identity();
    let user_type =
        |data: &sfetl_sim::OrgData, i: usize| data.table("User").get(i, "UserType").as_str().map(String::from);
    let portal: Vec<usize> = {
        let data = org.sim.org();
        (0..data.table("User").rows.len()).filter(|&i| user_type(&data, i).is_some_and(|t| is_portal(&t))).collect()
    };
    assert!(portal.len() > 20, "the org has portal users: {}", portal.len());
    // Portal users only: new titles for some, logins for others.
    let now = chrono::Utc::now().timestamp() * 1000;
    let mut logged_in = Vec::new();
    org.sim.update_org(|data| {
        let users = data.table_mut("User");
        for &i in portal.iter().step_by(3) {
            users.set(i, "Title", Value::str("Partner manager"));
            users.set(i, "LastModifiedDate", Value::DateTime(now));
            users.set(i, "SystemModstamp", Value::DateTime(now));
        }
        logged_in =
            portal.iter().skip(1).step_by(3).filter_map(|&i| users.get(i, "Id").as_str().map(String::from)).collect();
    });
    org.sim.log_in(&logged_in, now);
    let before_calls = org.sim.request_log().len();
    org.extract(&pipeline);
    let read: usize =
        org.sim.request_log()[before_calls..].iter().filter(|r| r.object == Some("User")).map(|r| r.records).sum();
    // The edited ones are read (an edit may take a user out of the scope), not those who only
    // logged in (a login cannot).
    let edited = portal.iter().step_by(3).count();
    assert!(read >= edited && read < edited + logged_in.len(), "{read} users read, {edited} edited");
    assert_eq!(identity(), before, "only users out of the scope changed: the table keeps its file");

    // One user leaves the scope (becomes a partner user), one portal user enters it.
    let (leaving, entering) = {
        let data = org.sim.org();
        let standard = (0..data.table("User").rows.len()).find(|&i| user_type(&data, i).as_deref() == Some("Standard"));
        (standard.unwrap_or_else(|| panic!("no standard user")), portal[0])
    };
    org.sim.update_org(|data| {
        let users = data.table_mut("User");
        for (i, new_type) in [(leaving, "PowerPartner"), (entering, "Standard")] {
            users.set(i, "UserType", Value::str(new_type));
            users.set(i, "SystemModstamp", Value::DateTime(now + 1000));
        }
    });
    org.extract(&pipeline);
    assert_ne!(identity(), before, "the table changed");
    let full = ["extract", &pipeline.to_string_lossy(), "--out", &full_out.to_string_lossy(), "--full"];
    let run = sfetl(&full, org.dir.path());
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(users(&out), users(&full_out), "incremental equals full");
    let ids = |data: &sfetl_sim::OrgData, i: usize| data.table("User").get(i, "Id").as_str().map(String::from);
    let data = org.sim.org();
    let held = column_sorted(&out, "users", "user_id");
    assert!(
        !held.contains(&ids(&data, leaving).unwrap_or_default())
            && held.contains(&ids(&data, entering).unwrap_or_default())
    );
}

/// The users' scope settings (`exclude_user_types`, `company_filter`, `company_names`) decide
/// which users the table holds and the `company` each is tagged with. Changed between runs, the
/// next incremental run reads the users again whole: the table equals a full read under the new
/// settings, though nobody changed in Salesforce. The run after that reads changes only again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_scope_settings_read_the_users_again() {
    let org = SimOrg::start(2_000, 41).await;
    let out = org.out();
    org.extract(&org.pipeline("settings", ""));
    let portal = "SELECT count(*)::BIGINT FROM users
                  WHERE lower(user_type) IN ('powerpartner', 'cspliteportal', 'customersuccess', 'powercustomersuccess')";
    assert_eq!(rows(&out, portal)[0][0], "0", "portal users are left out by default");
    let untagged = "SELECT trim(company_name) FROM users WHERE company IS NULL AND trim(company_name) <> '' LIMIT 1";
    let other_company =
        rows(&out, untagged).first().map(|r| r[0].clone()).unwrap_or_else(|| panic!("no other company"));
    let full = |pipeline: &std::path::Path, dir: &str| {
        let full_out = org.dir.path().join(dir);
        let args = ["extract", &pipeline.to_string_lossy(), "--out", &full_out.to_string_lossy(), "--full"];
        let run = sfetl(&args, org.dir.path());
        assert!(run.status.success(), "{}", text(&run));
        users(&full_out)
    };
    // Portal users kept from now on.
    let wider = org.pipeline("settings", "exclude_user_types = []");
    org.extract(&wider);
    assert_ne!(rows(&out, portal)[0][0], "0");
    assert_eq!(users(&out), full(&wider, "full-wider"), "the table holds the portal users, as a full read");
    // Another company configured: the users' `company` tags follow.
    let renamed = org.pipeline_with_companies("settings", &[&other_company], "exclude_user_types = []");
    org.extract(&renamed);
    let tagged = format!("SELECT count(*)::BIGINT FROM users WHERE company = '{}'", other_company.replace('\'', "''"));
    assert_ne!(rows(&out, &tagged)[0][0], "0", "{other_company}");
    assert_eq!(users(&out), full(&renamed, "full-renamed"), "tagged as a full read tags them");
    // The same settings again: changes only (the overlap's few rows).
    let before = org.sim.request_log().len();
    org.extract(&renamed);
    let read: usize =
        org.sim.request_log()[before..].iter().filter(|r| r.object == Some("User")).map(|r| r.records).sum();
    assert!(read < 200, "{read} users read");
}

/// A field hidden from the integration user (field-level security) when the rows were read is
/// granted later: the next incremental run reads the table again whole, so the column is filled
/// for every row as a full read fills it. While it stays hidden, runs read changes only. Hidden
/// again, the column is emptied in the rows kept too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_granted_later_is_filled_for_every_row() {
    let mut config = sfetl_sim::SimConfig::new(sfetl_sim::OrgSpec::new(43, 1_500));
    config.hidden_fields = vec!["User.Department".into()];
    let org = SimOrg::start_with(config).await;
    let pipeline = org.pipeline("grant", "");
    let out = org.out();
    org.extract(&pipeline);
    let departments = "SELECT count(department)::BIGINT FROM users";
    assert_eq!(rows(&out, departments)[0][0], "0", "hidden: the column is empty");
    let users_read = |since: usize| -> usize {
        org.sim.request_log()[since..].iter().filter(|r| r.object == Some("User")).map(|r| r.records).sum()
    };
    let before = org.sim.request_log().len();
    org.extract(&pipeline);
    assert!(users_read(before) < 100, "still hidden: changes only ({} users read)", users_read(before));
    // The field known missing is left out from the start: no query is refused for it.
    let refused = org.sim.request_log()[before..].iter().filter(|r| r.status == 400).count();
    assert_eq!(refused, 0, "no INVALID_FIELD");
    org.sim.set_hidden_fields(&[]);
    let before = org.sim.request_log().len();
    org.extract(&pipeline);
    assert!(users_read(before) > 1_000, "granted: every user read again ({})", users_read(before));
    assert_ne!(rows(&out, departments)[0][0], "0");
    let full_out = org.dir.path().join("full");
    let args = ["extract", &pipeline.to_string_lossy(), "--out", &full_out.to_string_lossy(), "--full"];
    let run = sfetl(&args, org.dir.path());
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(users(&out), users(&full_out), "as a full read fills it");
    let before = org.sim.request_log().len();
    org.extract(&pipeline);
    assert!(users_read(before) < 100, "then changes only again ({})", users_read(before));
    // Hidden again: a full read has the column empty, and so does the table.
    org.sim.set_hidden_fields(&["User.Department".to_string()]);
    org.extract(&pipeline);
    assert_eq!(rows(&out, departments)[0][0], "0", "revoked: the column is empty again");
    let full_out = org.dir.path().join("full-revoked");
    let args = ["extract", &pipeline.to_string_lossy(), "--out", &full_out.to_string_lossy(), "--full"];
    let run = sfetl(&args, org.dir.path());
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(users(&out), users(&full_out), "as a full read leaves it");
}
