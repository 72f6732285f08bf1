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
