//! Keeps `UsedLicenses` (and seat totals) consistent with who holds what, as Salesforce does.

use crate::store::OrgData;
use crate::value::Value;
use chrono::Datelike;
use std::collections::{HashMap, HashSet};

/// Recomputes every license's `UsedLicenses` from the users and assignments, and raises
/// `TotalLicenses` / `AllowedLicenses` where the seats would not cover the use.
///
/// - user licenses: active users whose profile carries the license;
/// - permission set licenses: assignments to active users;
/// - package licenses with seats: `UserPackageLicense` rows; site licenses (-1) stay -1.
pub fn recount_licenses(data: &mut OrgData, now_millis: i64) {
    let users = data.table("User");
    let profiles = data.table("Profile");
    let active: HashSet<&str> = (0..users.rows.len())
        .filter(|&i| users.get(i, "IsActive") == &Value::Bool(true))
        .filter_map(|i| users.get(i, "Id").as_str())
        .collect();

    let mut per_user_license: HashMap<String, i64> = HashMap::new();
    for i in 0..users.rows.len() {
        if users.get(i, "IsActive") != &Value::Bool(true) {
            continue;
        }
        let license = users
            .get(i, "ProfileId")
            .as_str()
            .and_then(|p| profiles.index_of(p))
            .and_then(|p| profiles.get(p, "UserLicenseId").as_str());
        if let Some(license) = license {
            *per_user_license.entry(license.to_string()).or_default() += 1;
        }
    }
    let per_psl = count_by(
        data,
        "PermissionSetLicenseAssign",
        "PermissionSetLicenseId",
        |row_user| active.contains(row_user),
        "AssigneeId",
    );
    let per_package = count_by(data, "UserPackageLicense", "PackageLicenseId", |_| true, "UserId");

    let logins_this_month = monthly_logins(data, now_millis);
    set_counts(data, "UserLicense", "TotalLicenses", &per_user_license);
    set_counts(data, "PermissionSetLicense", "TotalLicenses", &per_psl);
    set_counts(data, "PackageLicense", "AllowedLicenses", &per_package);
    let licenses = data.table_mut("UserLicense");
    for i in 0..licenses.rows.len() {
        licenses.set(i, "UsedLicensesLastUpdated", Value::DateTime(now_millis));
        let login_based = licenses.get(i, "Name").as_str().is_some_and(|n| n.ends_with("Login"));
        if login_based {
            let id = licenses.get(i, "Id").as_str().unwrap_or_default().to_string();
            let used = logins_this_month.get(&id).copied().unwrap_or(0);
            if !matches!(licenses.get(i, "MonthlyLoginsEntitlement"), Value::Int(n) if *n >= used) {
                licenses.set(i, "MonthlyLoginsEntitlement", Value::Int((used * 2).max(100)));
            }
            licenses.set(i, "MonthlyLoginsUsed", Value::Int(used));
        }
    }
}

/// Per user license, the users holding it who logged in since the start of this calendar month.
fn monthly_logins(data: &OrgData, now_millis: i64) -> HashMap<String, i64> {
    let month_start = chrono::DateTime::from_timestamp_millis(now_millis)
        .and_then(|now| now.date_naive().with_day(1))
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map_or(0, |start| start.and_utc().timestamp_millis());
    let (users, profiles) = (data.table("User"), data.table("Profile"));
    let mut counts = HashMap::new();
    for i in 0..users.rows.len() {
        let logged_in = matches!(users.get(i, "LastLoginDate"), Value::DateTime(t) if *t >= month_start);
        let license = users
            .get(i, "ProfileId")
            .as_str()
            .and_then(|p| profiles.index_of(p))
            .and_then(|p| profiles.get(p, "UserLicenseId").as_str());
        if let (true, Some(license)) = (logged_in, license) {
            *counts.entry(license.to_string()).or_default() += 1;
        }
    }
    counts
}

fn count_by(
    data: &OrgData,
    object: &str,
    license_field: &str,
    user_counts: impl Fn(&str) -> bool,
    user_field: &str,
) -> HashMap<String, i64> {
    let table = data.table(object);
    let mut counts = HashMap::new();
    for i in 0..table.rows.len() {
        let user = table.get(i, user_field).as_str().unwrap_or_default();
        if let (Some(license), true) = (table.get(i, license_field).as_str(), user_counts(user)) {
            *counts.entry(license.to_string()).or_default() += 1;
        }
    }
    counts
}

fn set_counts(data: &mut OrgData, object: &str, total_field: &str, used: &HashMap<String, i64>) {
    let table = data.table_mut(object);
    for i in 0..table.rows.len() {
        let id = table.get(i, "Id").as_str().unwrap_or_default().to_string();
        let total = match table.get(i, total_field) {
            Value::Int(-1) => continue, // a site license: unlimited, nothing counted
            Value::Int(n) => *n,
            _ => 0,
        };
        let used = used.get(&id).copied().unwrap_or(0);
        if total == 0 || total < used {
            table.set(i, total_field, Value::Int(used + used / 8 + 5));
        }
        table.set(i, "UsedLicenses", Value::Int(used));
    }
}
