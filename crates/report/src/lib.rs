//! `sfetl report`: one self-contained HTML page from the warehouse's analytics views: per org and
//! company, utilization per paid license, seats over the snapshots, and the inactive licensed users.
//! It opens offline (inline CSS and SVG, no script, no font or image from the network) and prints.

mod html;

use anyhow::Context;
use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use sfetl_load::Warehouse;
use std::collections::BTreeMap;
use std::path::Path;

/// Inactive users listed per org; the rest are counted, and the view has them all.
const INACTIVE_LISTED: usize = 200;
/// Paid licenses expiring within this many days of the read (or already expired) are listed.
pub const RENEWAL_DAYS: i64 = 180;

/// One license's seats, or one company's holders of it.
#[derive(Debug, Clone)]
pub struct Seats {
    pub name: String,
    pub kind: String,
    /// Seats bought; `None` when unlimited, or for a company's holders.
    pub total: Option<i64>,
    /// Seats used (Salesforce's count), or a company's active holders.
    pub used: i64,
    /// Of those, held by users inactive for the org's `inactive_days`, or who never logged in.
    pub inactive: i64,
    /// Held by frozen users (active, cannot log in) and by deactivated users (package and
    /// permission set licenses they still hold): the seats to reclaim first.
    pub frozen: i64,
    pub deactivated: i64,
    /// A login-based license: `total` and `used` are this month's entitled and used logins.
    pub logins: bool,
}

impl Seats {
    /// Seats bought, for the seat totals: `None` when unlimited or counted in logins.
    pub fn seats(&self) -> Option<i64> {
        self.total.filter(|_| !self.logins)
    }

    /// Seats to take back: every one a frozen user holds, and those deactivated users still hold
    /// (Salesforce releases a deactivated user's user license, not its package or permission set
    /// license seats), as in the `reclaimable_seats` view.
    pub fn to_reclaim(&self) -> i64 {
        self.frozen + if self.kind == "user_license" { 0 } else { self.deactivated }
    }
}

/// One license over the snapshots, oldest first: (snapshot, seats bought, seats used) for an
/// org, (snapshot, `None`, active holders) for a company.
#[derive(Debug)]
pub struct Trend {
    pub name: String,
    pub points: Vec<(String, Option<i64>, i64)>,
    /// Seats of the org (true), or a company's holders (false).
    pub seats: bool,
}

/// One legal entity of an org (or the users of none).
#[derive(Debug)]
pub struct CompanyReport {
    pub name: String,
    pub licenses: Vec<Seats>,
    pub trend: Vec<Trend>,
}

/// A paid license that expires soon, or has expired.
#[derive(Debug)]
pub struct Renewal {
    pub name: String,
    pub kind: String,
    pub expires_on: String,
    /// Days from the read to the expiry (negative: expired).
    pub days: i64,
    pub total: Option<i64>,
    pub used: Option<i64>,
}

#[derive(Debug)]
pub struct InactiveUser {
    pub company: String,
    pub name: String,
    pub username: String,
    pub profile: String,
    pub last_login: String,
    pub days: String,
    pub licenses: String,
}

#[derive(Debug, Default)]
pub struct OrgReport {
    pub slug: String,
    pub name: String,
    pub edition: String,
    pub instance: String,
    pub sandbox: bool,
    pub companies: Vec<String>,
    pub extracted_at: String,
    pub inactive_days: String,
    pub licenses: Vec<Seats>,
    /// Each company (then "no configured company") with its users' paid licenses.
    pub by_company: Vec<CompanyReport>,
    pub trend: Vec<Trend>,
    pub snapshots: usize,
    pub inactive: Vec<InactiveUser>,
    pub inactive_count: usize,
    pub renewals: Vec<Renewal>,
}

pub const NO_COMPANY: &str = "(no configured company)";

/// Writes the report of the warehouse in `out` to `to`, returning the orgs it covers.
pub fn write(out: &Path, to: &Path) -> anyhow::Result<usize> {
    let warehouse = Warehouse::open_existing(out)?;
    let orgs =
        gather(&warehouse).context("reading the analytics views (run `sfetl extract` with this version first)")?;
    if orgs.is_empty() {
        anyhow::bail!("{} has no org yet: run `sfetl extract` first", out.display());
    }
    let generated = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    let page = html::page(&orgs, &generated);
    // Written beside its final name and renamed: an open report is never half replaced.
    let temp = to.with_extension("html.tmp");
    std::fs::write(&temp, page).with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::rename(&temp, to).with_context(|| format!("cannot write {}", to.display()))?;
    Ok(orgs.len())
}

/// Every value of a query as text (NULL as `None`); the SQL formats timestamps itself.
fn rows(warehouse: &Warehouse, sql: &str) -> anyhow::Result<Vec<Vec<Option<String>>>> {
    let mut out = Vec::new();
    for batch in warehouse.query(sql)? {
        let columns = batch
            .columns()
            .iter()
            .map(|c| cast(c, &DataType::Utf8))
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("reading `{sql}`"))?;
        for row in 0..batch.num_rows() {
            out.push(
                columns
                    .iter()
                    .map(|c| (!c.is_null(row)).then(|| c.as_string::<i32>().value(row).to_string()))
                    .collect(),
            );
        }
    }
    Ok(out)
}

fn text(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}

fn number(value: &Option<String>) -> Option<i64> {
    value.as_deref().and_then(|v| v.parse().ok())
}

const KIND_ORDER: &str = "CASE kind WHEN 'user_license' THEN 0 WHEN 'permission_set_license' THEN 1 ELSE 2 END";
const TIME: &str = "'%Y-%m-%d %H:%M UTC'";

fn gather(warehouse: &Warehouse) -> anyhow::Result<Vec<OrgReport>> {
    let mut orgs: BTreeMap<String, OrgReport> = BTreeMap::new();
    let sql = format!(
        "SELECT org, name, edition, instance, is_sandbox, array_to_string(company_names, chr(31)),
                strftime(extracted_at::TIMESTAMP, {TIME}) FROM orgs"
    );
    for r in rows(warehouse, &sql)? {
        let slug = text(&r[0]);
        let companies = r[5].as_deref().unwrap_or_default().split('\u{1f}').filter(|c| !c.is_empty());
        orgs.insert(
            slug.clone(),
            OrgReport {
                slug,
                name: text(&r[1]),
                edition: text(&r[2]),
                instance: text(&r[3]),
                sandbox: r[4].as_deref() == Some("true"),
                companies: companies.map(String::from).collect(),
                extracted_at: text(&r[6]),
                ..OrgReport::default()
            },
        );
    }
    let sql = format!(
        "SELECT org, name, kind, total, used, held_by_inactive_users, inactive_days, held_by_frozen_users,
                held_by_deactivated_users, license_kind = 'login_based' AND monthly_logins_entitled IS NOT NULL,
                monthly_logins_entitled, monthly_logins_used FROM license_utilization
         WHERE is_paid AND (coalesce(total, 0) > 0 OR held_by_active_users > 0 OR total IS NULL)
         ORDER BY org, {KIND_ORDER}, total DESC NULLS FIRST, name"
    );
    for r in rows(warehouse, &sql)? {
        if let Some(org) = orgs.get_mut(&text(&r[0])) {
            org.inactive_days = text(&r[6]);
            // A login-based license is measured in this month's logins, not seats.
            let logins = r[9].as_deref() == Some("true");
            let (total, used) = if logins { (10, 11) } else { (3, 4) };
            org.licenses.push(Seats {
                name: text(&r[1]),
                kind: text(&r[2]),
                total: number(&r[total]),
                used: number(&r[used]).unwrap_or_default(),
                inactive: number(&r[5]).unwrap_or_default(),
                frozen: number(&r[7]).unwrap_or_default(),
                deactivated: number(&r[8]).unwrap_or_default(),
                logins,
            });
        }
    }
    let sql = format!(
        "SELECT org, coalesce(company, '{NO_COMPANY}'), name, kind, held_by_active_users, held_by_inactive_users
         FROM company_license_holders WHERE is_paid AND held_by_active_users > 0
         ORDER BY org, company NULLS LAST, {KIND_ORDER}, held_by_active_users DESC, name"
    );
    for r in rows(warehouse, &sql)? {
        if let Some(org) = orgs.get_mut(&text(&r[0])) {
            let company = text(&r[1]);
            if org.by_company.last().is_none_or(|last| last.name != company) {
                org.by_company.push(CompanyReport { name: company, licenses: Vec::new(), trend: Vec::new() });
            }
            let Some(company) = org.by_company.last_mut() else { continue };
            company.licenses.push(Seats {
                name: text(&r[2]),
                kind: text(&r[3]),
                total: None,
                used: number(&r[4]).unwrap_or_default(),
                inactive: number(&r[5]).unwrap_or_default(),
                frozen: 0,
                deactivated: 0,
                logins: false,
            });
        }
    }
    gather_trend(warehouse, &mut orgs)?;
    let sql = format!(
        "SELECT s.org, s.name, s.kind, strftime(s.expires_at::TIMESTAMP, '%Y-%m-%d'),
                (epoch_ms(s.expires_at) - epoch_ms(o.extracted_at)) // 86400000, s.total, s.used
         FROM subscriptions s JOIN orgs o ON o.org = s.org
         WHERE s.is_paid AND s.expires_at IS NOT NULL
           AND epoch_ms(s.expires_at) - epoch_ms(o.extracted_at) <= {RENEWAL_DAYS} * CAST(86400000 AS BIGINT)
         ORDER BY s.org, s.expires_at, s.name"
    );
    for r in rows(warehouse, &sql)? {
        if let Some(org) = orgs.get_mut(&text(&r[0])) {
            org.renewals.push(Renewal {
                name: text(&r[1]),
                kind: text(&r[2]),
                expires_on: text(&r[3]),
                days: number(&r[4]).unwrap_or_default(),
                total: number(&r[5]),
                used: number(&r[6]),
            });
        }
    }
    let sql = format!(
        "SELECT org, coalesce(company, '{NO_COMPANY}'), name, username, profile_name,
                coalesce(strftime(last_login_at::TIMESTAMP, '%Y-%m-%d'), 'never'), days_since_login, licenses
         FROM inactive_licensed_users
         ORDER BY org, company NULLS LAST, last_login_at NULLS FIRST, name"
    );
    for r in rows(warehouse, &sql)? {
        if let Some(org) = orgs.get_mut(&text(&r[0])) {
            org.inactive_count += 1;
            if org.inactive.len() < INACTIVE_LISTED {
                org.inactive.push(InactiveUser {
                    company: text(&r[1]),
                    name: text(&r[2]),
                    username: text(&r[3]),
                    profile: text(&r[4]),
                    last_login: text(&r[5]),
                    days: text(&r[6]),
                    licenses: text(&r[7]),
                });
            }
        }
    }
    Ok(orgs.into_values().collect())
}

/// The paid licenses with the most seats, over every snapshot; per company, those with the most
/// holders.
fn gather_trend(warehouse: &Warehouse, orgs: &mut BTreeMap<String, OrgReport>) -> anyhow::Result<()> {
    let sql = format!(
        "WITH ranked AS (
             SELECT org, subscription_id, row_number() OVER (
                 PARTITION BY org ORDER BY max(coalesce(total, used)) DESC, any_value(name)) AS rank
             FROM license_trend WHERE is_paid GROUP BY org, subscription_id)
         SELECT t.org, t.subscription_id, t.name, strftime(t.snapshot_at::TIMESTAMP, {TIME}), t.total, t.used,
                count(DISTINCT t.run_id) OVER (PARTITION BY t.org)
         FROM license_trend t JOIN ranked r ON r.org = t.org AND r.subscription_id = t.subscription_id
         WHERE r.rank <= 12
         ORDER BY t.org, r.rank, t.snapshot_at"
    );
    for r in rows(warehouse, &sql)? {
        let Some(org) = orgs.get_mut(&text(&r[0])) else { continue };
        org.snapshots = number(&r[6]).unwrap_or_default() as usize;
        let point = (text(&r[3]), number(&r[4]), number(&r[5]).unwrap_or_default());
        add_point(&mut org.trend, &text(&r[2]), point, true);
    }
    let sql = format!(
        "WITH ranked AS (
             SELECT org, company, subscription_id, row_number() OVER (
                 PARTITION BY org, company ORDER BY max(held_by_active_users) DESC, any_value(name)) AS rank
             FROM company_license_trend WHERE is_paid GROUP BY org, company, subscription_id)
         SELECT t.org, coalesce(t.company, '{NO_COMPANY}'), t.name, strftime(t.snapshot_at::TIMESTAMP, {TIME}),
                t.held_by_active_users
         FROM company_license_trend t
         JOIN ranked r ON r.org = t.org AND r.company IS NOT DISTINCT FROM t.company
                      AND r.subscription_id = t.subscription_id
         WHERE r.rank <= 6
         ORDER BY t.org, t.company, r.rank, t.snapshot_at"
    );
    for r in rows(warehouse, &sql)? {
        let Some(org) = orgs.get_mut(&text(&r[0])) else { continue };
        let Some(company) = org.by_company.iter_mut().find(|c| c.name == text(&r[1])) else { continue };
        add_point(&mut company.trend, &text(&r[2]), (text(&r[3]), None, number(&r[4]).unwrap_or_default()), false);
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
