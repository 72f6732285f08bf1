//! `sfetl report`: one self-contained HTML page from the warehouse's analytics views: per org and
//! company, utilization per paid license, seats over the snapshots, and the inactive licensed users.
//! It opens offline (inline CSS and SVG, no script, no font or image from the network) and prints.

mod answer;
mod gather;
mod html;

use sfetl_load::Warehouse;
use std::path::{Path, PathBuf};

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

/// Why the report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot open the warehouse")]
    Warehouse(#[source] sfetl_load::Error),
    #[error("reading the analytics views (run `sfetl extract` with this version first)")]
    Views(#[source] sfetl_load::Error),
    #[error("the query of `{view}` gave no column `{column}` (run `sfetl extract` with this version first)")]
    MissingColumn { view: &'static str, column: &'static str },
    #[error("reading `{view}`")]
    Value { view: &'static str, source: arrow::error::ArrowError },
    #[error("{} has no org yet: run `sfetl extract` first", .0.display())]
    NoOrg(PathBuf),
    #[error("cannot write {}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

/// Writes the report of the warehouse in `out` to `to`, returning the orgs it covers.
pub fn write(out: &Path, to: &Path) -> Result<usize, ReportError> {
    let warehouse = Warehouse::open_existing(out).map_err(ReportError::Warehouse)?;
    let orgs = gather::orgs(&warehouse)?;
    if orgs.is_empty() {
        return Err(ReportError::NoOrg(out.to_path_buf()));
    }
    let generated = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    let page = html::page(&orgs, &generated).into_string();
    // Written to a new file of an unpredictable name beside the report (owner-only: it lists
    // people), then renamed over it: an open report is never half replaced, and a link planted
    // at a predictable temporary name is never followed.
    let fail = |source| ReportError::Write { path: to.to_path_buf(), source };
    let dir = to.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new().prefix(".report-").suffix(".tmp").tempfile_in(dir).map_err(fail)?;
    std::io::Write::write_all(&mut temp, page.as_bytes()).map_err(fail)?;
    temp.persist(to).map_err(|e| fail(e.error))?;
    Ok(orgs.len())
}
