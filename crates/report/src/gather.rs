//! The report's figures, read from the warehouse's analytics views by column name.

use crate::answer::{Answer, flag, number, text};
use crate::{CompanyReport, InactiveUser, NO_COMPANY, OrgReport, RENEWAL_DAYS, Renewal, ReportError, Seats, Trend};
use sfetl_load::Warehouse;
use std::collections::BTreeMap;

/// Inactive users listed per org; the rest are counted, and the view has them all.
const INACTIVE_LISTED: usize = 200;
const KIND_ORDER: &str = "CASE kind WHEN 'user_license' THEN 0 WHEN 'permission_set_license' THEN 1 ELSE 2 END";
const TIME: &str = "'%Y-%m-%d %H:%M UTC'";

pub fn orgs(warehouse: &Warehouse) -> Result<Vec<OrgReport>, ReportError> {
    let mut orgs: BTreeMap<String, OrgReport> = BTreeMap::new();
    let answer = Answer::of(
        warehouse,
        "orgs",
        &format!(
            "SELECT org, name, edition, instance, is_sandbox,
                    array_to_string(company_names, chr(31)) AS companies,
                    strftime(extracted_at::TIMESTAMP, {TIME}) AS read_at
             FROM orgs"
        ),
    )?;
    let [slug, name, edition, instance, sandbox, companies, read_at] =
        answer.columns(["org", "name", "edition", "instance", "is_sandbox", "companies", "read_at"])?;
    for r in &answer.rows {
        let listed = r[companies].as_deref().unwrap_or_default().split('\u{1f}').filter(|c| !c.is_empty());
        orgs.insert(
            text(&r[slug]),
            OrgReport {
                slug: text(&r[slug]),
                name: text(&r[name]),
                edition: text(&r[edition]),
                instance: text(&r[instance]),
                sandbox: flag(&r[sandbox]),
                companies: listed.map(String::from).collect(),
                extracted_at: text(&r[read_at]),
                ..OrgReport::default()
            },
        );
    }
    licenses(warehouse, &mut orgs)?;
    companies_licenses(warehouse, &mut orgs)?;
    trend(warehouse, &mut orgs)?;
    company_trend(warehouse, &mut orgs)?;
    renewals(warehouse, &mut orgs)?;
    inactive_users(warehouse, &mut orgs)?;
    Ok(orgs.into_values().collect())
}

fn licenses(warehouse: &Warehouse, orgs: &mut BTreeMap<String, OrgReport>) -> Result<(), ReportError> {
    let answer = Answer::of(
        warehouse,
        "license_utilization",
        &format!(
            "SELECT org, name, kind, total, used, held_by_inactive_users, inactive_days, held_by_frozen_users,
                    held_by_deactivated_users,
                    license_kind = 'login_based' AND monthly_logins_entitled IS NOT NULL AS counts_logins,
                    monthly_logins_entitled, monthly_logins_used
             FROM license_utilization
             WHERE is_paid AND (coalesce(total, 0) > 0 OR held_by_active_users > 0 OR total IS NULL)
             ORDER BY org, {KIND_ORDER}, total DESC NULLS FIRST, name"
        ),
    )?;
    let [org, name, kind, total, used, inactive, days, frozen, deactivated, counts_logins, entitled, logged_in] =
        answer.columns([
            "org",
            "name",
            "kind",
            "total",
            "used",
            "held_by_inactive_users",
            "inactive_days",
            "held_by_frozen_users",
            "held_by_deactivated_users",
            "counts_logins",
            "monthly_logins_entitled",
            "monthly_logins_used",
        ])?;
    for r in &answer.rows {
        let Some(report) = orgs.get_mut(&text(&r[org])) else { continue };
        report.inactive_days = text(&r[days]);
        // A login-based license is measured in this month's logins, not seats.
        let logins = flag(&r[counts_logins]);
        let (total, used) = if logins { (entitled, logged_in) } else { (total, used) };
        report.licenses.push(Seats {
            name: text(&r[name]),
            kind: text(&r[kind]),
            total: number(&r[total]),
            used: number(&r[used]).unwrap_or_default(),
            inactive: number(&r[inactive]).unwrap_or_default(),
            frozen: number(&r[frozen]).unwrap_or_default(),
            deactivated: number(&r[deactivated]).unwrap_or_default(),
            logins,
        });
    }
    Ok(())
}

fn companies_licenses(warehouse: &Warehouse, orgs: &mut BTreeMap<String, OrgReport>) -> Result<(), ReportError> {
    let answer = Answer::of(
        warehouse,
        "company_license_holders",
        &format!(
            "SELECT org, coalesce(company, '{NO_COMPANY}') AS company, name, kind, held_by_active_users,
                    held_by_inactive_users
             FROM company_license_holders WHERE is_paid AND held_by_active_users > 0
             ORDER BY org, company NULLS LAST, {KIND_ORDER}, held_by_active_users DESC, name"
        ),
    )?;
    let [org, company, name, kind, active, inactive] =
        answer.columns(["org", "company", "name", "kind", "held_by_active_users", "held_by_inactive_users"])?;
    for r in &answer.rows {
        let Some(report) = orgs.get_mut(&text(&r[org])) else { continue };
        let company = text(&r[company]);
        if report.by_company.last().is_none_or(|last| last.name != company) {
            report.by_company.push(CompanyReport { name: company, licenses: Vec::new(), trend: Vec::new() });
        }
        let Some(company) = report.by_company.last_mut() else { continue };
        company.licenses.push(Seats {
            name: text(&r[name]),
            kind: text(&r[kind]),
            total: None,
            used: number(&r[active]).unwrap_or_default(),
            inactive: number(&r[inactive]).unwrap_or_default(),
            frozen: 0,
            deactivated: 0,
            logins: false,
        });
    }
    Ok(())
}

/// The paid licenses with the most seats, over every snapshot.
fn trend(warehouse: &Warehouse, orgs: &mut BTreeMap<String, OrgReport>) -> Result<(), ReportError> {
    let answer = Answer::of(
        warehouse,
        "license_trend",
        &format!(
            "WITH ranked AS (
                 SELECT org, subscription_id, row_number() OVER (
                     PARTITION BY org ORDER BY max(coalesce(total, used)) DESC, any_value(name)) AS rank
                 FROM license_trend WHERE is_paid GROUP BY org, subscription_id)
             SELECT t.org, t.name, strftime(t.snapshot_at::TIMESTAMP, {TIME}) AS snapshot, t.total, t.used,
                    count(DISTINCT t.run_id) OVER (PARTITION BY t.org) AS snapshots
             FROM license_trend t JOIN ranked r ON r.org = t.org AND r.subscription_id = t.subscription_id
             WHERE r.rank <= 12
             ORDER BY t.org, r.rank, t.snapshot_at"
        ),
    )?;
    let [org, name, snapshot, total, used, snapshots] =
        answer.columns(["org", "name", "snapshot", "total", "used", "snapshots"])?;
    for r in &answer.rows {
        let Some(report) = orgs.get_mut(&text(&r[org])) else { continue };
        report.snapshots = number(&r[snapshots]).unwrap_or_default() as usize;
        let point = (text(&r[snapshot]), number(&r[total]), number(&r[used]).unwrap_or_default());
        add_point(&mut report.trend, &text(&r[name]), point, true);
    }
    Ok(())
}

/// Per company, the paid licenses with the most holders, over every snapshot.
fn company_trend(warehouse: &Warehouse, orgs: &mut BTreeMap<String, OrgReport>) -> Result<(), ReportError> {
    let answer = Answer::of(
        warehouse,
        "company_license_trend",
        &format!(
            "WITH ranked AS (
                 SELECT org, company, subscription_id, row_number() OVER (
                     PARTITION BY org, company ORDER BY max(held_by_active_users) DESC, any_value(name)) AS rank
                 FROM company_license_trend WHERE is_paid GROUP BY org, company, subscription_id)
             SELECT t.org, coalesce(t.company, '{NO_COMPANY}') AS company, t.name,
                    strftime(t.snapshot_at::TIMESTAMP, {TIME}) AS snapshot, t.held_by_active_users
             FROM company_license_trend t
             JOIN ranked r ON r.org = t.org AND r.company IS NOT DISTINCT FROM t.company
                          AND r.subscription_id = t.subscription_id
             WHERE r.rank <= 6
             ORDER BY t.org, t.company, r.rank, t.snapshot_at"
        ),
    )?;
    let [org, company, name, snapshot, held] =
        answer.columns(["org", "company", "name", "snapshot", "held_by_active_users"])?;
    for r in &answer.rows {
        let Some(report) = orgs.get_mut(&text(&r[org])) else { continue };
        let Some(company) = report.by_company.iter_mut().find(|c| c.name == text(&r[company])) else { continue };
        let point = (text(&r[snapshot]), None, number(&r[held]).unwrap_or_default());
        add_point(&mut company.trend, &text(&r[name]), point, false);
    }
    Ok(())
}

fn renewals(warehouse: &Warehouse, orgs: &mut BTreeMap<String, OrgReport>) -> Result<(), ReportError> {
    let answer = Answer::of(
        warehouse,
        "subscriptions",
        &format!(
            "SELECT s.org, s.name, s.kind, strftime(s.expires_at::TIMESTAMP, '%Y-%m-%d') AS expires_on,
                    (epoch_ms(s.expires_at) - epoch_ms(o.extracted_at)) // 86400000 AS days, s.total, s.used
             FROM subscriptions s JOIN orgs o ON o.org = s.org
             WHERE s.is_paid AND s.expires_at IS NOT NULL
               AND epoch_ms(s.expires_at) - epoch_ms(o.extracted_at) <= {RENEWAL_DAYS} * CAST(86400000 AS BIGINT)
             ORDER BY s.org, s.expires_at, s.name"
        ),
    )?;
    let [org, name, kind, expires_on, days, total, used] =
        answer.columns(["org", "name", "kind", "expires_on", "days", "total", "used"])?;
    for r in &answer.rows {
        let Some(report) = orgs.get_mut(&text(&r[org])) else { continue };
        report.renewals.push(Renewal {
            name: text(&r[name]),
            kind: text(&r[kind]),
            expires_on: text(&r[expires_on]),
            days: number(&r[days]).unwrap_or_default(),
            total: number(&r[total]),
            used: number(&r[used]),
        });
    }
    Ok(())
}

fn inactive_users(warehouse: &Warehouse, orgs: &mut BTreeMap<String, OrgReport>) -> Result<(), ReportError> {
    let answer = Answer::of(
        warehouse,
        "inactive_licensed_users",
        &format!(
            "SELECT org, coalesce(company, '{NO_COMPANY}') AS company, name, username, profile_name,
                    coalesce(strftime(last_login_at::TIMESTAMP, '%Y-%m-%d'), 'never') AS last_login,
                    days_since_login, licenses
             FROM inactive_licensed_users
             ORDER BY org, company NULLS LAST, last_login_at NULLS FIRST, name"
        ),
    )?;
    let [org, company, name, username, profile, last_login, days, licenses] = answer.columns([
        "org",
        "company",
        "name",
        "username",
        "profile_name",
        "last_login",
        "days_since_login",
        "licenses",
    ])?;
    for r in &answer.rows {
        let Some(report) = orgs.get_mut(&text(&r[org])) else { continue };
        report.inactive_count += 1;
        if report.inactive.len() < INACTIVE_LISTED {
            report.inactive.push(InactiveUser {
                company: text(&r[company]),
                name: text(&r[name]),
                username: text(&r[username]),
                profile: text(&r[profile]),
                last_login: text(&r[last_login]),
                days: text(&r[days]),
                licenses: text(&r[licenses]),
            });
        }
    }
    Ok(())
}

/// Appends a point to the last series when it is the same license's, else starts a series (rows
/// come ordered by license, then snapshot).
fn add_point(trend: &mut Vec<Trend>, name: &str, point: (String, Option<i64>, i64), seats: bool) {
    match trend.last_mut() {
        Some(last) if last.name == name => last.points.push(point),
        _ => trend.push(Trend { name: name.to_string(), points: vec![point], seats }),
    }
}
