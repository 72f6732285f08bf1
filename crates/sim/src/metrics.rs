//! Salesforce's usage metrics objects, as the org computes them once a day: per permission set
//! license, profile and feature license, the users assigned and those of them who logged in
//! within the 30 days before the metrics date (Object Reference, "ActivePermSetLicenseMetric",
//! "ActiveProfileMetric", "ActiveFeatureLicenseMetric"; available from API 52.0).

use crate::ids::record_id;
use crate::store::{OrgData, Row};
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
    // (assigned, active) per key, in one pass over the holders.
    let tally = |pairs: &mut dyn Iterator<Item = (&str, &str)>| -> HashMap<String, (i64, i64)> {
        let mut counts: HashMap<String, (i64, i64)> = HashMap::new();
        for (key, user) in pairs {
            if let Some(&logged_in) = recent.get(user) {
                let entry = counts.entry(key.to_string()).or_default();
                entry.0 += 1;
                entry.1 += i64::from(logged_in);
            }
        }
        counts
    };
    let date = Value::Date(day as i32);
    let stamp = Value::DateTime(day * DAY_MS + 3 * 3_600_000);

    let (licenses, assigns) = (data.table("PermissionSetLicense"), data.table("PermissionSetLicenseAssign"));
    let per_psl = tally(&mut (0..assigns.rows.len()).filter_map(|a| {
        Some((assigns.get(a, "PermissionSetLicenseId").as_str()?, assigns.get(a, "AssigneeId").as_str()?))
    }));
    let psl_rows: Vec<Row> = (0..licenses.rows.len())
        .map(|i| {
            let id = licenses.get(i, "Id").as_str().unwrap_or_default();
            let (assigned, active) = per_psl.get(id).copied().unwrap_or_default();
            vec![
                Value::str(record_id("0mP", pod, i as u64 + 1)),
                Value::str(id),
                licenses.get(i, "DeveloperName").clone(),
                licenses.get(i, "MasterLabel").clone(),
                Value::Int(assigned),
                Value::Int(active),
                licenses.get(i, "TotalLicenses").clone(),
                date.clone(),
                stamp.clone(),
            ]
        })
        .collect();

    let profiles = data.table("Profile");
    let per_profile = tally(
        &mut (0..users.rows.len())
            .filter_map(|u| Some((users.get(u, "ProfileId").as_str()?, users.get(u, "Id").as_str()?))),
    );
    let profile_rows: Vec<Row> = (0..profiles.rows.len())
        .map(|p| {
            let id = profiles.get(p, "Id").as_str().unwrap_or_default();
            let (assigned, active) = per_profile.get(id).copied().unwrap_or_default();
            vec![
                Value::str(record_id("0mR", pod, p as u64 + 1)),
                Value::str(id),
                profiles.get(p, "UserLicenseId").clone(),
                Value::Int(assigned),
                Value::Int(active),
                date.clone(),
                stamp.clone(),
            ]
        })
        .collect();

    let features = [("MarketingUser", "UserPermissionsMarketingUser"), ("SupportUser", "UserPermissionsSupportUser")];
    let per_feature = tally(&mut (0..users.rows.len()).flat_map(|u| {
        features
            .iter()
            .filter(move |(_, field)| users.get(u, field) == &Value::Bool(true))
            .filter_map(move |(feature, _)| Some((*feature, users.get(u, "Id").as_str()?)))
    }));
    let feature_rows: Vec<Row> = features
        .iter()
        .enumerate()
        .map(|(n, (feature, _))| {
            let (assigned, active) = per_feature.get(*feature).copied().unwrap_or_default();
            vec![
                Value::str(record_id("0mF", pod, n as u64 + 1)),
                Value::str(*feature),
                Value::Int(assigned),
                Value::Int(active),
                Value::Int(assigned + assigned / 10 + 5),
                date.clone(),
                stamp.clone(),
            ]
        })
        .collect();
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
