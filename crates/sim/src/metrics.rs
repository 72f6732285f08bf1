//! Salesforce's usage metrics objects, as the org computes them once a day: per permission set
//! license, profile and feature license, the users assigned and those of them who logged in
//! within the 30 days before the metrics date (Object Reference, "ActivePermSetLicenseMetric",
//! "ActiveProfileMetric", "ActiveFeatureLicenseMetric"; available from API 52.0).

use crate::ids::record_id;
use crate::store::OrgData;
use crate::value::Value;
use std::collections::HashMap;

const DAY_MS: i64 = 86_400_000;

/// Adds the metrics of the day before `now_millis` (the last collection) from the org as it is.
pub fn collect_metrics(data: &mut OrgData, pod: &str, now_millis: i64) {
    let day = now_millis.div_euclid(DAY_MS) - 1;
    let since = day * DAY_MS - 30 * DAY_MS;
    let users = data.table("User");
    // Active users, and whether each logged in within the 30 days.
    let recent: HashMap<&str, bool> = (0..users.rows.len())
        .filter(|&i| users.get(i, "IsActive") == &Value::Bool(true))
        .filter_map(|i| {
            let id = users.get(i, "Id").as_str()?;
            Some((id, matches!(users.get(i, "LastLoginDate"), Value::DateTime(t) if *t >= since)))
        })
        .collect();
    let count = |ids: &mut dyn Iterator<Item = &str>| -> (i64, i64) {
        ids.filter_map(|id| recent.get(id)).fold((0, 0), |(assigned, active), &a| (assigned + 1, active + i64::from(a)))
    };
    let date = Value::Date(day as i32);
    let stamp = Value::DateTime(day * DAY_MS + 3 * 3_600_000);

    let (licenses, assigns) = (data.table("PermissionSetLicense"), data.table("PermissionSetLicenseAssign"));
    let mut psl_rows = Vec::new();
    for i in 0..licenses.rows.len() {
        let id = licenses.get(i, "Id").as_str().unwrap_or_default();
        let mut holders = (0..assigns.rows.len())
            .filter(|&a| assigns.get(a, "PermissionSetLicenseId").as_str() == Some(id))
            .filter_map(|a| assigns.get(a, "AssigneeId").as_str());
        let (assigned, active) = count(&mut holders);
        psl_rows.push(vec![
            Value::str(record_id("0mP", pod, psl_rows.len() as u64 + 1)),
            Value::str(id),
            licenses.get(i, "DeveloperName").clone(),
            licenses.get(i, "MasterLabel").clone(),
            Value::Int(assigned),
            Value::Int(active),
            licenses.get(i, "TotalLicenses").clone(),
            date.clone(),
            stamp.clone(),
        ]);
    }

    let profiles = data.table("Profile");
    let mut profile_rows = Vec::new();
    for p in 0..profiles.rows.len() {
        let id = profiles.get(p, "Id").as_str().unwrap_or_default();
        let mut holders = (0..users.rows.len())
            .filter(|&u| users.get(u, "ProfileId").as_str() == Some(id))
            .filter_map(|u| users.get(u, "Id").as_str());
        let (assigned, active) = count(&mut holders);
        profile_rows.push(vec![
            Value::str(record_id("0mR", pod, profile_rows.len() as u64 + 1)),
            Value::str(id),
            profiles.get(p, "UserLicenseId").clone(),
            Value::Int(assigned),
            Value::Int(active),
            date.clone(),
            stamp.clone(),
        ]);
    }

    let mut feature_rows = Vec::new();
    for (feature, field) in
        [("MarketingUser", "UserPermissionsMarketingUser"), ("SupportUser", "UserPermissionsSupportUser")]
    {
        let mut holders = (0..users.rows.len())
            .filter(|&u| users.get(u, field) == &Value::Bool(true))
            .filter_map(|u| users.get(u, "Id").as_str());
        let (assigned, active) = count(&mut holders);
        feature_rows.push(vec![
            Value::str(record_id("0mF", pod, feature_rows.len() as u64 + 1)),
            Value::str(feature),
            Value::Int(assigned),
            Value::Int(active),
            Value::Int(assigned + assigned / 10 + 5),
            date.clone(),
            stamp.clone(),
        ]);
    }
    for (object, rows) in [
        ("ActivePermSetLicenseMetric", psl_rows),
        ("ActiveProfileMetric", profile_rows),
        ("ActiveFeatureLicenseMetric", feature_rows),
    ] {
        let table = data.table_mut(object);
        for row in rows {
            table.push(row);
        }
    }
}
