//! `sfetl report`: one HTML file naming each org's paid licenses and inactive licensed users,
//! with every name escaped and nothing fetched from outside the file.

use crate::support::{SimOrg, paid_licenses, rows, sfetl, text};
use sfetl_sim::value::Value;
use sfetl_sim::{OrgSpec, SimConfig};

/// The names the report must show for an org: each paid license that has seats.
fn paid_license_names(org: &SimOrg) -> Vec<String> {
    let data = org.sim.org();
    let paid = paid_licenses(&data, &[]);
    let mut names = Vec::new();
    for (object, name, total) in [
        ("UserLicense", "Name", "TotalLicenses"),
        ("PermissionSetLicense", "DeveloperName", "TotalLicenses"),
        ("PackageLicense", "NamespacePrefix", "AllowedLicenses"),
    ] {
        let table = data.table(object);
        for i in 0..table.rows.len() {
            let seats = matches!(table.get(i, total), Value::Int(n) if *n != 0);
            if seats && paid[table.get(i, "Id").as_str().unwrap_or_default()] {
                names.push(table.get(i, name).as_str().unwrap_or_default().to_string());
            }
        }
    }
    names
}

/// (expiry date, days from now) of each paid license that expires.
fn expiries(org: &SimOrg) -> Vec<(String, i64)> {
    let data = org.sim.org();
    let paid = paid_licenses(&data, &[]);
    let now = chrono::Utc::now().timestamp_millis();
    let mut out = Vec::new();
    for object in ["PermissionSetLicense", "PackageLicense"] {
        let table = data.table(object);
        for i in 0..table.rows.len() {
            if !paid[table.get(i, "Id").as_str().unwrap_or_default()] {
                continue;
            }
            let millis = match table.get(i, "ExpirationDate") {
                Value::Date(days) => i64::from(*days) * 86_400_000,
                Value::DateTime(ms) => *ms,
                _ => continue,
            };
            let date = chrono::DateTime::from_timestamp_millis(millis).map(|t| t.format("%Y-%m-%d").to_string());
            out.push((date.unwrap_or_default(), (millis - now).div_euclid(86_400_000)));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_names_each_orgs_licenses_and_fetches_nothing() {
    let first = SimOrg::start(500, 61).await;
    let mut spec = OrgSpec::new(62, 300);
    spec.name = "Zoë & <Partners> \"EU\"".into();
    let second = SimOrg::start_with(SimConfig::new(spec)).await;
    let pipeline = first.dir.path().join("two.toml");
    let both = format!(
        "inactive_days = 30\n{}\n{}",
        first.org_block("first", &first.sim.integration_username(), ""),
        second.org_block("second", &second.sim.integration_username(), "")
    );
    std::fs::write(&pipeline, both).unwrap_or_else(|e| panic!("{e}"));
    first.extract(&pipeline);
    first.extract(&pipeline);

    let out = first.out();
    let to = first.dir.path().join("licenses.html");
    let run = sfetl(&["report", "--out", &out.to_string_lossy(), "--to", &to.to_string_lossy()], first.dir.path());
    assert!(run.status.success(), "{}", text(&run));
    assert!(text(&run).contains("2 orgs"), "{}", text(&run));
    let html = std::fs::read_to_string(&to).unwrap_or_else(|e| panic!("{e}"));

    for org in [&first, &second] {
        let names = paid_license_names(org);
        assert!(names.len() > 10, "{names:?}");
        for name in names {
            assert!(html.contains(&format!(">{name}")), "{name} is missing");
        }
    }
    assert!(html.contains("Zoë &amp; &lt;Partners&gt; &quot;EU&quot;"));
    // Renewals: the paid licenses expiring within 180 days (or expired), and no later ones.
    let section = |html: &str, from: &str, to: &str| -> String {
        let start = html.find(from).unwrap_or(html.len());
        let end = html[start..].find(to).map_or(html.len(), |i| start + i);
        html[start..end].to_string()
    };
    let first_org = section(&html, "id=\"org-first\"", "id=\"org-second\"");
    let renewals = section(&first_org, "<h3>Renewals</h3>", "<h3>Inactive");
    let expiring = expiries(&first);
    assert!(expiring.iter().any(|(_, days)| *days < 170) && expiring.iter().any(|(_, days)| *days > 190));
    for (date, days) in expiring {
        if days < 170 {
            assert!(renewals.contains(&format!(">{date}<")), "{date} ({days} days) is missing");
        } else if days > 190 {
            assert!(!renewals.contains(&format!(">{date}<")), "{date} ({days} days) is listed");
        }
    }
    assert!(!html.contains("<Partners>"), "names are escaped");
    // Every inactive licensed user of the first org (N = 30) is listed by username.
    let inactive = rows(&out, "SELECT username FROM inactive_licensed_users WHERE org = 'first'");
    assert!(inactive.len() > 10 && inactive.len() < 200, "{}", inactive.len());
    assert!(inactive.iter().all(|u| html.contains(&u[0])));
    // Seats held by frozen users, and package or permission set seats deactivated users still hold.
    let reclaim = rows(
        &out,
        "SELECT sum(held_by_frozen_users + CASE WHEN kind = 'user_license' THEN 0 ELSE held_by_deactivated_users END)::BIGINT
         FROM license_utilization
         WHERE org = 'first' AND is_paid AND (coalesce(total, 0) > 0 OR held_by_active_users > 0 OR total IS NULL)",
    );
    assert_ne!(reclaim[0][0], "0");
    let listed = rows(&out, "SELECT count(*) FROM reclaimable_seats WHERE org = 'first' AND is_paid");
    assert_eq!(listed, reclaim, "the figure counts the seats reclaimable_seats lists");
    assert!(first_org.contains(&format!("Seats to reclaim<b>{}</b>", reclaim[0][0])), "{}", reclaim[0][0]);
    assert!(first_org.contains(" frozen") && first_org.contains(" deactivated"));
    // A login-based license is shown in this month's logins, as the org counts them.
    let data = first.sim.org();
    let licenses = data.table("UserLicense");
    let login_based =
        (0..licenses.rows.len()).find(|&i| licenses.get(i, "Name").as_str() == Some("Partner Community Login"));
    let Some(i) = login_based else { panic!("no login-based license") };
    let (Value::Int(entitled), Value::Int(used)) =
        (licenses.get(i, "MonthlyLoginsEntitlement"), licenses.get(i, "MonthlyLoginsUsed"))
    else {
        panic!("no monthly logins")
    };
    assert!(first_org.contains(&format!("{used} / {entitled} logins this month")), "monthly logins are missing");
    assert!(html.contains("Seats over 2 snapshots"));
    assert!(html.contains("held by "), "each company's holders over the snapshots");
    // Offline: no address outside the file, no script, no external style or font.
    for outside in ["http:", "https:", "//", "<script", "src=", "@import", "url("] {
        let at = html.find(outside).map(|i| &html[i.saturating_sub(60)..(i + 60).min(html.len())]);
        assert_eq!(at, None, "`{outside}` in the report");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_warehouse_says_to_extract_first() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let run = sfetl(&["report", "--out", "nowhere"], dir.path());
    assert_eq!(run.status.code(), Some(3));
    assert!(text(&run).contains("sfetl extract"), "{}", text(&run));
    assert!(!dir.path().join("nowhere/report.html").exists());
}
