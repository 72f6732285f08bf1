//! `sfetl extract` end to end, checked row by row against the simulator's data.

use crate::support::{SimOrg, rows, sfetl, text};
use sfetl_sim::value::{Value, format_date};
use std::collections::HashMap;

fn as_text(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(n) => n.to_string(),
        Value::Str(s) => s.to_string(),
        Value::DateTime(t) => t.to_string(),
        Value::Date(d) => format_date(*d),
    }
}

/// Pages of 200 the users query needs: the org's users less the portal ones left out by default.
fn data_pages(org: &SimOrg) -> usize {
    let data = org.sim.org();
    let users = data.table("User");
    let kept = (0..users.rows.len())
        .filter(|&i| {
            let t = users.get(i, "UserType").as_str().unwrap_or_default().to_lowercase();
            !["powerpartner", "cspliteportal", "customersuccess", "powercustomersuccess"].contains(&t.as_str())
        })
        .count();
    kept.div_ceil(200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_users_in_pages_of_200_arrive_exactly() {
    let org = SimOrg::start(5000, 42).await;
    // Page after page, a call each, so that the pages can be counted exactly (tests/it/ranges.rs
    // reads in ranges; extract's query tests chain pages in composite calls).
    let pipeline = org.pipeline("e2e", "batch_size = 200\nparallel_cursors = 1\npages_per_call = 1");
    let out = org.out();
    let run = sfetl(&["extract", &pipeline.to_string_lossy(), "--out", &out.to_string_lossy()], org.dir.path());
    assert!(run.status.success(), "{}", text(&run));

    // 20+ pages for User alone, each one API call.
    let user_pages = org.sim.request_log().iter().filter(|r| r.records > 0 && r.path.contains("/query")).count();
    assert!(user_pages >= data_pages(&org) + 8, "{user_pages} query pages");
    // The summary charges each table its own calls, though tables are read concurrently.
    let summary = String::from_utf8_lossy(&run.stdout).to_string();
    let users_line = summary.lines().find(|l| l.split_whitespace().nth(1) == Some("users")).unwrap_or_default();
    let pages = data_pages(&org);
    assert_eq!(users_line.split_whitespace().nth(4), Some(pages.to_string().as_str()), "{summary}");

    let data = org.sim.org();
    let users = data.table("User");
    let profiles = data.table("Profile");
    let licenses = data.table("UserLicense");
    let mut expected: HashMap<String, Vec<String>> = HashMap::new();
    for i in 0..users.rows.len() {
        // Portal users are left out by default.
        let user_type = users.get(i, "UserType").as_str().unwrap_or_default().to_lowercase();
        if ["powerpartner", "cspliteportal", "customersuccess", "powercustomersuccess"].contains(&user_type.as_str()) {
            continue;
        }
        let profile = users.get(i, "ProfileId").as_str().and_then(|p| profiles.index_of(p));
        let profile_name = profile.map_or("NULL".into(), |p| as_text(profiles.get(p, "Name")));
        let license =
            profile.and_then(|p| profiles.get(p, "UserLicenseId").as_str()).and_then(|l| licenses.index_of(l));
        let license_name = license.map_or("NULL".into(), |l| as_text(licenses.get(l, "Name")));
        let id = as_text(users.get(i, "Id"));
        expected.insert(
            id.clone(),
            vec![
                id,
                as_text(users.get(i, "Username")),
                as_text(users.get(i, "Name")),
                as_text(users.get(i, "FirstName")),
                as_text(users.get(i, "IsActive")),
                as_text(users.get(i, "LastLoginDate")),
                as_text(users.get(i, "SystemModstamp")),
                as_text(users.get(i, "CompanyName")),
                profile_name,
                license_name,
                as_text(users.get(i, "ManagerId")),
            ],
        );
    }
    let got = rows(
        &out,
        "SELECT user_id, username, name, first_name, is_active::VARCHAR, epoch_ms(last_login_at)::VARCHAR, \
         epoch_ms(system_modstamp)::VARCHAR, company_name, profile_name, user_license_name, manager_id \
         FROM users WHERE org = 'e2e'",
    );
    assert_eq!(got.len(), expected.len());
    assert!(expected.len() < 5000 && expected.len() > 3000, "portal users exist and are left out");
    for row in &got {
        assert_eq!(Some(row), expected.get(&row[0]), "user {}", row[0]);
    }
    assert!(
        got.iter().any(|r| r[2].chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))),
        "CJK names arrive intact"
    );
    assert!(got.iter().any(|r| r[5] == "NULL"), "never-logged-in users keep a null login");

    // Types are the schema's: UTC timestamps, booleans, dates, integers.
    let types = rows(&out, "SELECT typeof(last_login_at), typeof(is_active), typeof(org) FROM users LIMIT 1");
    assert_eq!(types[0], ["TIMESTAMP WITH TIME ZONE", "BOOLEAN", "VARCHAR"]);
    let types = rows(&out, "SELECT typeof(expires_on), typeof(total) FROM permission_set_licenses LIMIT 1");
    assert_eq!(types[0], ["DATE", "BIGINT"]);

    // The license tables, row for row.
    let expect_table = |object: &str, fields: &[&str]| -> Vec<Vec<String>> {
        let table = data.table(object);
        let mut all: Vec<Vec<String>> =
            (0..table.rows.len()).map(|i| fields.iter().map(|f| as_text(table.get(i, f))).collect()).collect();
        all.sort();
        all
    };
    let sorted = |mut r: Vec<Vec<String>>| {
        r.sort();
        r
    };
    assert_eq!(
        sorted(rows(&out, "SELECT user_license_id, name, status, total::VARCHAR, used::VARCHAR FROM user_licenses")),
        expect_table("UserLicense", &["Id", "Name", "Status", "TotalLicenses", "UsedLicenses"])
    );
    assert_eq!(
        sorted(rows(
            &out,
            "SELECT permission_set_license_id, developer_name, total::VARCHAR, used::VARCHAR, coalesce(expires_on::VARCHAR, 'NULL') FROM permission_set_licenses"
        )),
        expect_table(
            "PermissionSetLicense",
            &["Id", "DeveloperName", "TotalLicenses", "UsedLicenses", "ExpirationDate"]
        )
    );
    assert_eq!(
        sorted(rows(
            &out,
            "SELECT package_license_id, namespace, allowed::VARCHAR, used::VARCHAR, coalesce(epoch_ms(expires_at)::VARCHAR, 'NULL') FROM package_licenses"
        )),
        expect_table("PackageLicense", &["Id", "NamespacePrefix", "AllowedLicenses", "UsedLicenses", "ExpirationDate"])
    );
    assert_eq!(
        sorted(rows(
            &out,
            "SELECT assignment_id, user_id, permission_set_license_id FROM permission_set_license_assignments"
        )),
        expect_table("PermissionSetLicenseAssign", &["Id", "AssigneeId", "PermissionSetLicenseId"])
    );
    assert_eq!(
        sorted(rows(&out, "SELECT assignment_id, user_id, package_license_id FROM user_package_licenses")),
        expect_table("UserPackageLicense", &["Id", "UserId", "PackageLicenseId"])
    );
    assert_eq!(
        rows(&out, "SELECT org_id, is_sandbox::VARCHAR FROM orgs"),
        [[org.sim.org_id().to_string(), "false".into()]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerunning_keeps_counts_and_the_database_answers_from_anywhere() {
    let org = SimOrg::start(300, 5).await;
    let pipeline = org.pipeline("twice", "");
    let out = org.out();
    let count_all = || -> Vec<Vec<String>> {
        sfetl_transform::tables::ALL
            .iter()
            .map(|t| rows(&out, &format!("SELECT '{0}', count(*)::BIGINT FROM {0}", t.name)).remove(0))
            .collect()
    };
    let first = sfetl(&["extract", &pipeline.to_string_lossy(), "--out", &out.to_string_lossy()], org.dir.path());
    assert!(first.status.success(), "{}", text(&first));
    let counts = count_all();
    assert!(counts.iter().all(|c| c[1] != "0" || c[0].contains("package")), "{counts:?}");
    let second = sfetl(&["extract", &pipeline.to_string_lossy(), "--out", &out.to_string_lossy()], org.dir.path());
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(count_all(), counts);

    // Another working directory, the real binary, every view.
    let elsewhere = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for table in sfetl_transform::tables::ALL {
        let sql = format!("select count(*) as n from {}", table.name);
        let q = sfetl(&["query", "--format", "csv", "--out", &out.to_string_lossy(), &sql], elsewhere.path());
        assert!(q.status.success(), "{}: {}", table.name, text(&q));
        let expected = counts.iter().find(|c| c[0] == table.name).map(|c| c[1].clone());
        assert_eq!(String::from_utf8_lossy(&q.stdout).lines().nth(1).map(String::from), expected, "{}", table.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_not_pre_authorized_is_told_which_setup_step_to_fix() {
    let org = SimOrg::start(200, 9).await;
    let outsider = org
        .sim
        .username_where(|profile, active| profile != "System Administrator" && active)
        .unwrap_or_else(|| panic!("no such user"));
    let pipeline = org.pipeline_as("denied", &outsider, "");
    let run = sfetl(&["extract", &pipeline.to_string_lossy(), "--out", &org.out().to_string_lossy()], org.dir.path());
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let said = text(&run);
    assert!(said.contains("pre-authorized") && said.contains("setup step 3"), "{said}");
    assert!(!said.contains("PRIVATE KEY"), "the key never reaches the output");

    // For schedulers: every log line is a JSON object, and the failure is an ERROR naming the org.
    let run = sfetl(
        &["--log-format", "json", "extract", &pipeline.to_string_lossy(), "--out", &org.out().to_string_lossy()],
        org.dir.path(),
    );
    assert_eq!(run.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&run.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.iter().any(|l| l["level"] == "ERROR" && l["fields"]["org"] == "denied"), "{lines:?}");
}
