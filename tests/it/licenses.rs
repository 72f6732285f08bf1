//! The license rulebook: each license's billing kind and product name from its key, overridden
//! per org; unknown keys stay unknown; login-based licenses measured in monthly logins; portal
//! licenses' holders "not collected" rather than 0.

use crate::support::{SimOrg, rows};
use sfetl_sim::value::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn licenses_are_classified_by_the_rulebook_and_the_orgs_overrides() {
    let org = SimOrg::start(1500, 61).await;
    // A license Salesforce introduced after the rulebook was written.
    org.sim.update_org(|data| {
        let created = Value::DateTime(chrono::Utc::now().timestamp() * 1000);
        let row = vec![
            Value::str(sfetl_sim::record_id("100", "zzz", 999)),
            Value::str("Future Product"),
            Value::str("Future Product"),
            Value::str("PID_Future_Product"),
            Value::str("Active"),
            Value::Int(10),
            Value::Int(0),
            created.clone(),
            created.clone(),
            created.clone(),
            created,
            Value::Null,
            Value::Null,
        ];
        data.table_mut("UserLicense").push(row);
    });
    org.extract(&org.pipeline("rules", "paid_licenses = [\"Identity\"]\nfree_licenses = [\"SBQQ\"]"));
    let out = org.out();
    let kind = |name: &str| {
        rows(
            &out,
            &format!(
                "SELECT license_kind, coalesce(is_paid::VARCHAR, 'NULL'), product FROM subscriptions WHERE name = '{name}'"
            ),
        )
    };
    assert_eq!(kind("Future Product"), [["unknown", "NULL", "Future Product"]], "never silently paid");
    assert_eq!(kind("Chatter Free"), [["free", "false", "Chatter Free"]]);
    assert_eq!(kind("Salesforce Integration"), [["free_with_edition", "false", "Salesforce Integration user"]]);
    assert_eq!(kind("Identity"), [["paid_seat", "true", "Identity"]], "paid_licenses overrides the rulebook");
    assert_eq!(kind("Salesforce"), [["paid_seat", "true", "Salesforce (Sales / Service Cloud)"]]);
    assert_eq!(kind("Partner Community Login"), [["login_based", "true", "Partner Community (logins)"]]);
    assert_eq!(kind("SBQQ"), [["free", "false", "Salesforce CPQ"]], "free_licenses overrides the rulebook");

    // A login-based license is measured in monthly logins, as the org counts them.
    let data = org.sim.org();
    let licenses = data.table("UserLicense");
    let i = (0..licenses.rows.len()).find(|&i| licenses.get(i, "Name").as_str() == Some("Partner Community Login"));
    let Some(i) = i else { panic!("the org has no login-based license") };
    let (Value::Int(entitled), Value::Int(used)) =
        (licenses.get(i, "MonthlyLoginsEntitlement"), licenses.get(i, "MonthlyLoginsUsed"))
    else {
        panic!("no monthly login counts")
    };
    assert!(*used > 0, "someone logged in this month");
    let expected = format!("{:.1}", (1000.0 * *used as f64 / *entitled as f64).round() / 10.0);
    let got = rows(
        &out,
        "SELECT monthly_logins_entitled, monthly_logins_used, utilization_pct::VARCHAR
         FROM license_utilization WHERE name = 'Partner Community Login'",
    );
    assert_eq!(got, [[entitled.to_string(), used.to_string(), expected]]);

    // Portal users are left out of `users` by default: their licenses' holders are not collected.
    let portal = rows(
        &out,
        "SELECT holders_collected::VARCHAR, coalesce(held_by_active_users::VARCHAR, 'NULL'), used > 0
         FROM license_utilization WHERE name = 'Customer Community'",
    );
    assert_eq!(portal, [["false", "NULL", "true"]]);
}

/// Salesforce's own usage metrics (API 52.0+) as tables and beside sfetl's own counts in
/// `license_utilization`; an org that does not offer them (or hides them) still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salesforces_usage_metrics_are_read_where_the_org_has_them() {
    let org = SimOrg::start(1200, 62).await;
    // A month-old collection: only the last week's rows are read.
    org.sim.update_org(|data| {
        let metrics = data.table_mut("ActivePermSetLicenseMetric");
        let mut old = metrics.rows[0].clone();
        old[0] = Value::str(sfetl_sim::record_id("0mP", "zzz", 999));
        old[4] = Value::Int(999_999);
        if let Value::Date(day) = old[7] {
            old[7] = Value::Date(day - 30);
        }
        metrics.push(old);
    });
    org.extract(&org.pipeline("metrics", ""));
    let out = org.out();
    let data = org.sim.org();
    let metrics = data.table("ActivePermSetLicenseMetric");
    let mut expected: Vec<Vec<String>> = (0..metrics.rows.len() - 1)
        .map(|i| {
            let int = |field| match metrics.get(i, field) {
                Value::Int(n) => n.to_string(),
                _ => "NULL".into(),
            };
            let id = metrics.get(i, "PermissionSetLicenseId").as_str().unwrap_or_default().to_string();
            vec![id, int("AssignedUserCount"), int("ActiveUserCount")]
        })
        .collect();
    expected.sort();
    assert!(expected.len() >= 6 && expected.iter().any(|r| r[2] != "0"));
    let got = rows(
        &out,
        "SELECT subscription_id, salesforce_assigned_users, salesforce_active_users_30d FROM license_utilization
         WHERE kind = 'permission_set_license' ORDER BY 1",
    );
    assert_eq!(got, expected);
    let read = rows(&out, "SELECT count(*), max(assigned_users) < 999999 FROM perm_set_license_metrics");
    assert_eq!(read, [[expected.len().to_string(), "true".to_string()]], "the old collection is not read");
    let profiles = rows(&out, "SELECT count(*) FROM profile_metrics");
    assert_eq!(profiles[0][0], data.table("ActiveProfileMetric").rows.len().to_string());
    let features = rows(&out, "SELECT feature_type FROM feature_license_metrics ORDER BY 1");
    assert_eq!(features, [["MarketingUser"], ["SupportUser"]]);

    let mut config = sfetl_sim::SimConfig::new(sfetl_sim::OrgSpec::new(63, 200));
    config.hidden_objects =
        ["ActivePermSetLicenseMetric", "ActiveProfileMetric", "ActiveFeatureLicenseMetric"].map(String::from).to_vec();
    let without = SimOrg::start_with(config).await;
    let run = without.extract(&without.pipeline("old", ""));
    assert!(crate::support::text(&run).contains("usage metrics are not collected"));
    let empty = rows(&without.out(), "SELECT count(*), count(salesforce_active_users_30d) FROM license_utilization");
    assert_ne!(empty[0][0], "0");
    assert_eq!(empty[0][1], "0");
}
