//! The license model against numbers computed here, independently, from the simulated org's own
//! records: seats per license, inactive licensed users, users per company, unlimited licenses,
//! and seat counts over three runs with the org changed in between.

use crate::support::{SimOrg, is_portal, paid_licenses, rows};
use sfetl_sim::value::Value;
use sfetl_sim::{OrgData, OrgSpec, SimConfig};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Padded, cased, with an apostrophe and non-ASCII letters; the generator also leaves some null.
const COMPANIES: [&str; 3] = ["Acme Corp", "O'Brien & Søn", "Zoë's  Bistro"];
const DAY_MS: i64 = 86_400_000;
/// Free in this org's contract (the pipeline's `free_licenses`): a user license and a permission
/// set license that would otherwise count as paid.
const FREE_HERE: [&str; 2] = ["Salesforce Platform", "SalesConsoleUser"];

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// What the org's records say, for the users sfetl keeps by default (no portal users).
struct Facts {
    /// Subscription Id -> paid?
    paid: HashMap<String, bool>,
    /// User Id -> every subscription the user holds.
    holdings: BTreeMap<String, Vec<String>>,
    /// Kept users: Id -> (active, last login in epoch ms, company as configured or "NULL").
    users: BTreeMap<String, (bool, Option<i64>, String)>,
    /// Users whose UserLogin is frozen.
    frozen: BTreeSet<String>,
    /// User licenses whose profiles are all of portal user types: their holders are not collected.
    portal_only: BTreeSet<String>,
}

impl Facts {
    fn of(data: &OrgData, companies: &[&str], free_here: &[&str]) -> Facts {
        let paid = paid_licenses(data, free_here);

        let (users, profiles) = (data.table("User"), data.table("Profile"));
        let mut kept = BTreeMap::new();
        let mut holdings: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for i in 0..users.rows.len() {
            if is_portal(text(users.get(i, "UserType"))) {
                continue;
            }
            let id = text(users.get(i, "Id")).to_string();
            let last_login = match users.get(i, "LastLoginDate") {
                Value::DateTime(ms) => Some(*ms),
                _ => None,
            };
            let company_name = users.get(i, "CompanyName").as_str().map(|c| c.trim().to_lowercase());
            let company = companies.iter().find(|c| Some(c.to_lowercase()) == company_name).map_or("NULL", |c| c);
            kept.insert(id.clone(), (users.get(i, "IsActive") == &Value::Bool(true), last_login, company.to_string()));
            let profile = profiles.index_of(text(users.get(i, "ProfileId")));
            if let Some(license) = profile.and_then(|p| profiles.get(p, "UserLicenseId").as_str()) {
                holdings.entry(id).or_default().push(license.to_string());
            }
        }
        for (object, user, license) in [
            ("PermissionSetLicenseAssign", "AssigneeId", "PermissionSetLicenseId"),
            ("UserPackageLicense", "UserId", "PackageLicenseId"),
        ] {
            let table = data.table(object);
            for i in 0..table.rows.len() {
                let user = text(table.get(i, user));
                if kept.contains_key(user) {
                    holdings.entry(user.to_string()).or_default().push(text(table.get(i, license)).to_string());
                }
            }
        }
        let frozen = data.frozen_users().into_iter().map(String::from).collect();
        let mut profile_types: BTreeMap<String, Vec<bool>> = BTreeMap::new();
        for i in 0..profiles.rows.len() {
            let license = text(profiles.get(i, "UserLicenseId")).to_string();
            profile_types.entry(license).or_default().push(is_portal(text(profiles.get(i, "UserType"))));
        }
        let portal_only =
            profile_types.into_iter().filter(|(_, portal)| portal.iter().all(|p| *p)).map(|(id, _)| id).collect();
        Facts { paid, holdings, users: kept, frozen, portal_only }
    }

    fn inactive(&self, user: &str, as_of: i64, days: i64) -> bool {
        self.users.get(user).is_some_and(|(_, last, _)| last.is_none_or(|last| (as_of - last) / DAY_MS >= days))
    }

    /// Active users holding a paid license, inactive for `days` or never logged in, with the
    /// number of paid licenses each holds.
    fn inactive_licensed(&self, as_of: i64, days: i64) -> BTreeMap<String, String> {
        self.holdings
            .iter()
            .filter(|(user, _)| self.users[*user].0 && self.inactive(user, as_of, days))
            .map(|(user, held)| (user.clone(), held.iter().filter(|s| self.paid[*s]).count()))
            .filter(|(_, paid)| *paid > 0)
            .map(|(user, paid)| (user, paid.to_string()))
            .collect()
    }

    /// (company, subscription Id) -> active holders, where there are any.
    fn company_holders(&self) -> BTreeMap<(String, String), usize> {
        let mut out = BTreeMap::new();
        for (user, held) in &self.holdings {
            let (active, _, company) = &self.users[user];
            for subscription in held.iter().filter(|_| *active) {
                *out.entry((company.clone(), subscription.clone())).or_default() += 1;
            }
        }
        out
    }

    /// Subscription Id -> holders: active, active and inactive for `days` (not frozen), frozen,
    /// deactivated; `usize::MAX` (NULL) for a license whose holders are not collected.
    fn holders(&self, as_of: i64, days: i64) -> BTreeMap<String, [usize; 4]> {
        let mut out: BTreeMap<String, [usize; 4]> = self
            .paid
            .keys()
            .map(|s| (s.clone(), if self.portal_only.contains(s) { [usize::MAX; 4] } else { [0; 4] }))
            .collect();
        for (user, held) in &self.holdings {
            let active = self.users[user].0;
            let frozen = active && self.frozen.contains(user);
            let inactive = active && !frozen && self.inactive(user, as_of, days);
            for subscription in held {
                if let Some(entry) = out.get_mut(subscription).filter(|e| e[0] != usize::MAX) {
                    entry[0] += usize::from(active);
                    entry[1] += usize::from(inactive);
                    entry[2] += usize::from(frozen);
                    entry[3] += usize::from(!active);
                }
            }
        }
        out
    }
}

/// Subscription Id -> (total, used) as Salesforce reports them, unlimited (-1) as "NULL".
fn seat_counts(data: &OrgData) -> BTreeMap<String, (String, String)> {
    let count = |v: &Value| match v {
        Value::Int(n) if *n >= 0 => n.to_string(),
        _ => "NULL".to_string(),
    };
    let mut out = BTreeMap::new();
    for (object, total) in [
        ("UserLicense", "TotalLicenses"),
        ("PermissionSetLicense", "TotalLicenses"),
        ("PackageLicense", "AllowedLicenses"),
    ] {
        let table = data.table(object);
        for i in 0..table.rows.len() {
            let seats = (count(table.get(i, total)), count(table.get(i, "UsedLicenses")));
            out.insert(text(table.get(i, "Id")).to_string(), seats);
        }
    }
    out
}

fn as_map<V>(rows: Vec<Vec<String>>, value: impl Fn(&[String]) -> V) -> BTreeMap<String, V> {
    rows.into_iter().map(|r| (r[0].clone(), value(&r[1..]))).collect()
}

/// Rows of `run_id` then the entry's columns, in snapshot order: one map per run.
fn per_run<K: Ord, V>(rows: Vec<Vec<String>>, entry: impl Fn(&[String]) -> (K, V)) -> Vec<BTreeMap<K, V>> {
    let mut runs: Vec<(String, BTreeMap<K, V>)> = Vec::new();
    for row in rows {
        if runs.last().is_none_or(|(run, _)| *run != row[0]) {
            runs.push((row[0].clone(), BTreeMap::new()));
        }
        if let Some((_, map)) = runs.last_mut() {
            let (key, value) = entry(&row[1..]);
            map.insert(key, value);
        }
    }
    runs.into_iter().map(|(_, map)| map).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_agree_with_the_orgs_own_records() {
    let mut spec = OrgSpec::new(404, 2500);
    spec.companies = COMPANIES.iter().map(|c| c.to_string()).collect();
    let org = SimOrg::start_with(SimConfig::new(spec)).await;
    let free_here = format!("free_licenses = [\"{}\", \"NoSuchLicense\"]", FREE_HERE.join("\", \""));
    let run = org.extract(&org.pipeline_with_companies("model", &COMPANIES, &free_here));
    let said = crate::support::text(&run);
    assert!(said.contains("`free_licenses` names no license of this org: NoSuchLicense;"), "{said}");
    let out = org.out();
    let data = org.sim.org();
    let facts = Facts::of(&data, &COMPANIES, &FREE_HERE);
    let free = rows(&out, "SELECT name FROM subscriptions WHERE NOT is_paid AND kind <> 'package_license' ORDER BY 1");
    for name in FREE_HERE {
        assert!(free.iter().any(|r| r[0] == name), "{name} is free here: {free:?}");
    }
    let as_of: i64 = rows(&out, "SELECT epoch_ms(extracted_at) FROM orgs")[0][0].parse().unwrap_or_default();

    // Seats as Salesforce counts them, every kind of license, unlimited ones with no total.
    let expected_seats = seat_counts(&data);
    let got = as_map(
        rows(
            &out,
            "SELECT subscription_id, coalesce(total::VARCHAR, 'NULL'), coalesce(used::VARCHAR, 'NULL') FROM license_utilization",
        ),
        |r| (r[0].clone(), r[1].clone()),
    );
    assert_eq!(got, expected_seats);
    let unlimited: BTreeSet<_> =
        expected_seats.iter().filter(|(_, (total, _))| total == "NULL").map(|(id, _)| id).collect();
    assert!(!unlimited.is_empty(), "the org must have a site license");
    assert!(unlimited.iter().all(|id| id.starts_with("050")), "only package licenses are unlimited");

    // Holders among the users kept: active, inactive for N = 90 (frozen ones apart), frozen,
    // deactivated (who keep their package and permission set licenses).
    let got = as_map(
        rows(
            &out,
            "SELECT subscription_id, held_by_active_users, held_by_inactive_users, held_by_frozen_users,
                    held_by_deactivated_users FROM license_utilization",
        ),
        |r| [0, 1, 2, 3].map(|i| r[i].parse().unwrap_or(usize::MAX)),
    );
    let expected = facts.holders(as_of, 90);
    assert_eq!(got, expected);
    assert!(expected.values().any(|[active, inactive, _, _]| *inactive > 0 && inactive < active));
    assert!(expected.values().any(|[_, _, frozen, _]| *frozen > 0), "the org must have frozen holders");
    assert!(expected.values().any(|[_, _, _, deactivated]| *deactivated > 0));
    assert!(expected.values().any(|held| held[0] == usize::MAX), "portal licenses: not collected");
    // The split adds up: logged in + inactive + frozen + deactivated = every holder.
    let unbalanced = rows(
        &out,
        "SELECT count(*) FROM license_utilization WHERE held_by_users <> held_by_logged_in_users
             + held_by_inactive_users + held_by_frozen_users + held_by_deactivated_users
             OR held_by_active_users <> held_by_users - held_by_deactivated_users",
    );
    assert_eq!(unbalanced[0][0], "0");
    // Per company, the same split: summed over the companies, the org's.
    let per_company_differs = rows(
        &out,
        "SELECT count(*) FROM (
             SELECT org, subscription_id, sum(held_by_inactive_users) AS i, sum(held_by_frozen_users) AS f,
                    sum(held_by_deactivated_users) AS d
             FROM company_license_holders GROUP BY ALL) c
         JOIN license_utilization l USING (org, subscription_id)
         WHERE c.i <> l.held_by_inactive_users OR c.f <> l.held_by_frozen_users OR c.d <> l.held_by_deactivated_users",
    );
    assert_eq!(per_company_differs[0][0], "0");
    // Reclaimable: every license of a frozen user, and the non-user licenses of deactivated users.
    let reclaimable: usize = facts
        .holdings
        .iter()
        .map(|(user, held)| {
            let (active, frozen) = (facts.users[user].0, facts.frozen.contains(user));
            held.iter().filter(|s| (active && frozen) || (!active && !s.starts_with("100"))).count()
        })
        .sum();
    assert_eq!(rows(&out, "SELECT count(*) FROM reclaimable_seats")[0][0], reclaimable.to_string());

    let got = as_map(rows(&out, "SELECT user_id, paid_licenses FROM inactive_licensed_users"), |r| r[0].clone());
    let expected = facts.inactive_licensed(as_of, 90);
    assert_eq!(got, expected);
    let never = facts.users.values().filter(|(active, last, _)| *active && last.is_none()).count();
    assert!(expected.len() > 20 && never > 0, "{} inactive, {never} never logged in", expected.len());

    let mut per_company: BTreeMap<String, String> = BTreeMap::new();
    for (_, _, company) in facts.users.values() {
        let n = per_company.entry(company.clone()).or_insert_with(|| "0".into());
        *n = (n.parse::<usize>().unwrap_or_default() + 1).to_string();
    }
    let got =
        as_map(rows(&out, "SELECT coalesce(company, 'NULL'), count(*) FROM users GROUP BY ALL"), |r| r[0].clone());
    assert_eq!(got, per_company);
    assert_eq!(got.len(), COMPANIES.len() + 1, "every company and the users of none: {got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn license_trend_keeps_one_snapshot_per_run() {
    let org = SimOrg::start(600, 405).await;
    let pipeline = org.pipeline("trend", "");
    let out = org.out();
    let mut expected = Vec::new();
    let mut expected_by_company = Vec::new();
    let mut deactivated = Vec::new();
    let integration_user = org.sim.integration_username();
    for run in 0..3 {
        if run == 1 {
            // Ten Salesforce users leave, and the org buys five more Salesforce seats.
            org.sim.update_org(|data| {
                let now = chrono::Utc::now().timestamp_millis();
                let licenses = data.table("UserLicense");
                let full = (0..licenses.rows.len()).find(|&i| text(licenses.get(i, "Name")) == "Salesforce");
                let full = full.map(|i| (i, text(licenses.get(i, "Id")).to_string()));
                let Some((license_row, license)) = full else { panic!("no Salesforce license") };
                let seats = match data.table("UserLicense").get(license_row, "TotalLicenses") {
                    Value::Int(n) => *n,
                    _ => 0,
                };
                data.table_mut("UserLicense").set(license_row, "TotalLicenses", Value::Int(seats + 5));
                let profiles: BTreeSet<String> = {
                    let p = data.table("Profile");
                    (0..p.rows.len())
                        .filter(|&i| text(p.get(i, "UserLicenseId")) == license)
                        .map(|i| text(p.get(i, "Id")).into())
                        .collect()
                };
                let users = data.table("User");
                let leaving: Vec<usize> = (0..users.rows.len())
                    .filter(|&i| {
                        users.get(i, "IsActive") == &Value::Bool(true)
                            && profiles.contains(text(users.get(i, "ProfileId")))
                            && text(users.get(i, "Username")) != integration_user
                    })
                    .take(10)
                    .collect();
                deactivated = leaving.iter().map(|&i| text(users.get(i, "Id")).to_string()).collect();
                let users = data.table_mut("User");
                for i in leaving {
                    users.set(i, "IsActive", Value::Bool(false));
                    users.set(i, "SystemModstamp", Value::DateTime(now));
                }
            });
        }
        if run == 2 {
            // Every assignment of one permission set license is removed.
            org.sim.update_org(|data| {
                let psl = text(data.table("PermissionSetLicense").get(0, "Id")).to_string();
                let assignments = data.table_mut("PermissionSetLicenseAssign");
                let license = assignments.def.field_index("PermissionSetLicenseId").unwrap_or_else(|| panic!("field"));
                assignments.retain(|row| text(&row[license]) != psl);
            });
        }
        // Run files merged past two: the third run merges every per-run table's files.
        org.extract_with_env(&pipeline, &[("SFETL_RUN_FILES_PER_MERGE", "2")]);
        expected.push(seat_counts(&org.sim.org()));
        expected_by_company.push(Facts::of(&org.sim.org(), &["Acme Corp"], &[]).company_holders());
    }
    assert_ne!(expected[0], expected[1]);
    assert_ne!(expected[1], expected[2]);

    let trend = rows(
        &out,
        "SELECT run_id, subscription_id, coalesce(total::VARCHAR, 'NULL'), coalesce(used::VARCHAR, 'NULL')
         FROM license_trend ORDER BY snapshot_at, run_id",
    );
    let got = per_run(trend, |r| (r[0].clone(), (r[1].clone(), r[2].clone())));
    assert_eq!(got.len(), 3, "one snapshot per run");
    assert_eq!(got, expected);

    // The same per legal entity, counted from the users sfetl keeps.
    let trend = rows(
        &out,
        "SELECT run_id, coalesce(company, 'NULL'), subscription_id, held_by_active_users FROM company_license_trend
         WHERE held_by_active_users > 0 ORDER BY snapshot_at, run_id",
    );
    let got = per_run(trend, |r| ((r[0].clone(), r[1].clone()), r[2].parse::<usize>().unwrap_or_default()));
    assert_eq!(got, expected_by_company);
    assert_ne!(expected_by_company[0], expected_by_company[1]);

    for table in ["runs", "subscription_history", "company_subscription_history", "user_history"] {
        let files: Vec<String> = std::fs::read_dir(out.join(table).join("org=trend"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(files.len() == 1 && files[0].contains(".."), "{table}: {files:?}");
    }
    assert_eq!(rows(&out, "SELECT count(*) FROM runs"), [["3"]]);

    // The latest state is one row per user; the users who left have two versions in the history.
    let duplicates = rows(&out, "SELECT count(*) - count(DISTINCT user_id) FROM users");
    assert_eq!(duplicates, [["0"]]);
    let versions = as_map(rows(&out, "SELECT user_id, count(*) FROM user_history GROUP BY ALL"), |r| r[0].clone());
    for user in &deactivated {
        assert_eq!(versions.get(user).map(String::as_str), Some("2"), "{user}");
    }
    let once = versions.values().filter(|n| *n == "1").count();
    assert_eq!(once, versions.len() - deactivated.len(), "unchanged users have one version");
}
