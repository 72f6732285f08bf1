//! Pipeline files (`pipelines/*.toml`): where output goes and which orgs to read, validated in full
//! before any request, with errors that name the file, the org and the setting.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A pipeline file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    /// Directory for the Parquet files and `warehouse.duckdb`, relative to the working directory;
    /// or object storage: `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`,
    /// `file:///path` (see the README, "Scaling out").
    #[serde(default = "default_output")]
    pub output: PathBuf,
    /// Orgs extracted at once, and tables read at once within each org.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// A user who has not logged in for this many days (or never) is inactive, in the analytics
    /// views and the report.
    #[serde(default = "default_inactive_days")]
    pub inactive_days: u32,
    /// When `output` is object storage (`s3://bucket/prefix`): the local working copy each run
    /// works in before publishing (default: under `~/.cache/sfetl/work/`, one per lake and shard).
    pub work_dir: Option<PathBuf>,
    #[serde(default)]
    pub orgs: Vec<OrgSettings>,
}

fn default_concurrency() -> usize {
    4
}

fn default_inactive_days() -> u32 {
    90
}

fn default_output() -> PathBuf {
    PathBuf::from("data")
}

/// One org: the connector settings of the setup guide.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgSettings {
    /// Short slug used in paths and the `org` column.
    pub name: String,
    /// The legal entities, one per entry (matched against `User.CompanyName`).
    #[serde(default)]
    pub company_names: Vec<String>,
    /// `https://company.my.salesforce.com`.
    pub url: Option<String>,
    /// `https://login.salesforce.com` (production, the default) or `https://test.salesforce.com`
    /// (sandbox, the default for a sandbox `url`).
    pub login_url: Option<String>,
    /// The JWT `aud` claim, pinned (default: `login_url`, then the org's `url` if that is refused).
    pub audience: Option<String>,
    /// Where the token is asked for, pinned (default: `login_url`, then `url`).
    pub token_url: Option<String>,
    /// The connected app's consumer key.
    pub client_id: Option<String>,
    /// The user to impersonate.
    pub username: Option<String>,
    /// Path of the `.key` file (relative to the pipeline file).
    pub private_key_file: Option<PathBuf>,
    /// Name of an environment variable holding the PEM content of the key.
    pub private_key_env: Option<String>,
    /// REST API version, e.g. `66.0`; by default the highest both the org and sfetl support.
    pub api_version: Option<String>,
    /// The `.crt` uploaded to the connected app (optional: `sfetl check` then verifies that it
    /// matches the private key), relative to the pipeline file.
    pub certificate_file: Option<PathBuf>,
    /// Extra CA certificate to trust (PEM), relative to the pipeline file.
    pub ca_file: Option<PathBuf>,
    /// Records per page asked of Salesforce (200..=2000).
    pub batch_size: Option<u32>,
    /// Pages of one query an API call may bring (default 3, 1 to 5): more than one goes through
    /// a composite call that chains them, which Salesforce counts as one call.
    pub pages_per_call: Option<u64>,
    /// `tag` (default): keep every user, with `company` set when `CompanyName` matches one of
    /// `company_names`; `only`: keep only the users of those companies.
    #[serde(default)]
    pub company_filter: CompanyFilter,
    /// User types left out of `users` (default: the portal types PowerPartner, CSPLitePortal,
    /// CustomerSuccess, PowerCustomerSuccess); `[]` keeps every user.
    pub exclude_user_types: Option<Vec<String>>,
    /// Licenses that cost nothing in this org's contract (user license `Name`, permission set
    /// license `DeveloperName`, package `NamespacePrefix`), whatever the license rulebook says.
    #[serde(default)]
    pub free_licenses: Vec<String>,
    /// Licenses this org pays for that the rulebook calls free or does not know (same names as
    /// `free_licenses`).
    #[serde(default)]
    pub paid_licenses: Vec<String>,
    /// Stop before the org's daily API usage passes this share of its maximum (default 0.8).
    pub quota_daily_share: Option<f64>,
    /// Stop before this run alone uses this share of the daily maximum (default 0.25).
    pub quota_run_share: Option<f64>,
    /// Attempts per request when it fails for a transient reason (default 6).
    pub retry_attempts: Option<u32>,
    /// Longest total wait between attempts of one request, in seconds (default 300).
    pub retry_budget_seconds: Option<u64>,
    /// How far before the last run's newest `SystemModstamp` an incremental run starts reading
    /// (default 300 seconds): rows committed late carry older stamps.
    pub incremental_overlap_seconds: Option<u64>,
    /// A full read of a table with more rows than this goes through a Bulk API 2.0 query job
    /// instead of REST pages (default 100,000; 0: never).
    pub bulk_threshold: Option<u64>,
    /// Above `bulk_threshold`: `"faster"` (default) uses a Bulk job only when the remaining REST
    /// pages (read `parallel_cursors` at once) would take twice as long, or would spend a tenth
    /// of the org's remaining daily API requests; `"always"` uses one for every such read.
    #[serde(default)]
    pub bulk: BulkChoice,
    /// The most megabytes one answer may have once decompressed (default 512, 1 to 4096).
    pub max_response_mb: Option<u64>,
    /// Query cursors one big table may be read through at once, each over a range of Ids
    /// (default 6, 1 to 10; 1 reads page after page).
    pub parallel_cursors: Option<u64>,
    /// Run against a simulated org started for this run instead of a real one.
    pub simulated: Option<SimulatedOrg>,
}

/// When a big full read goes through a Bulk API job instead of REST pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BulkChoice {
    /// When the job would be twice as fast as the remaining pages (a job waits 10-15 s on
    /// Salesforce's side, a page one round trip, several at once), or when the pages would spend
    /// too much of the org's daily API requests.
    #[default]
    Faster,
    /// For every full read above `bulk_threshold`.
    Always,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompanyFilter {
    #[default]
    Tag,
    Only,
}

/// The portal user types SaaS-management products leave out of seat counts.
pub const PORTAL_USER_TYPES: [&str; 4] = ["PowerPartner", "CSPLitePortal", "CustomerSuccess", "PowerCustomerSuccess"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedOrg {
    pub users: usize,
    #[serde(default = "one")]
    pub seed: u64,
    #[serde(default)]
    pub sandbox: bool,
    /// `Organization.Name`; the first company name when absent.
    pub org_name: Option<String>,
    /// The org has State and Country/Territory Picklists (and so `User.CountryCode`).
    #[serde(default = "yes")]
    pub state_country_picklists: bool,
    /// Fields field-level security hides from the integration user, as `Object.Field`.
    #[serde(default)]
    pub hidden_fields: Vec<String>,
}

fn yes() -> bool {
    true
}

fn one() -> u64 {
    1
}

/// A validated org: everything needed to connect, or a simulator to start.
#[derive(Debug, Clone)]
pub struct OrgPlan {
    pub name: String,
    pub company_names: Vec<String>,
    pub company_filter: CompanyFilter,
    pub exclude_user_types: Vec<String>,
    pub free_licenses: Vec<String>,
    pub paid_licenses: Vec<String>,
    pub connection: Connection,
    /// Pinned; `None`: agreed with the org at login.
    pub api_version: Option<String>,
    pub batch_size: u32,
    /// Pages of one query a call may bring (1: a call per page).
    pub pages_per_call: usize,
    pub quota: sfetl_extract::QuotaGuard,
    pub retry: sfetl_extract::RetryPolicy,
    pub incremental_overlap: std::time::Duration,
    /// Rows above which a full read may use a Bulk API job; `None`: never.
    pub bulk_threshold: Option<u64>,
    pub bulk: BulkChoice,
    /// The cap on one answer's decompressed size.
    pub max_body_bytes: u64,
    /// Query cursors one big full read may use at once (1: one after another).
    pub parallel_cursors: usize,
}

#[derive(Debug, Clone)]
pub enum Connection {
    Real {
        url: String,
        login_url: String,
        /// The `token_url` / `audience` settings, when either is set.
        pinned_route: Option<sfetl_extract::LoginRoute>,
        client_id: String,
        username: String,
        private_key: sfetl_extract::Secret,
        certificate: Option<(String, String)>,
        ca_file: Option<(String, Vec<u8>)>,
    },
    Simulated(SimulatedOrg),
}

#[derive(Debug)]
pub struct Pipeline {
    /// A directory, or an object-storage URL (`s3://bucket/prefix`).
    pub output: PathBuf,
    /// An object-storage output's local working copy, when set.
    pub work_dir: Option<PathBuf>,
    pub concurrency: usize,
    pub inactive_days: u32,
    pub orgs: Vec<OrgPlan>,
}

/// A pipeline file that cannot be used, with every problem found (each names the org and the
/// setting).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read pipeline file {path}")]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{}:\n  - {}", path.display(), problems.join("\n  - "))]
    Invalid { path: PathBuf, problems: Vec<String> },
}

impl Pipeline {
    /// Reads and validates a pipeline file; every problem found is reported at once. Paths in
    /// it (keys, certificates) are relative to the file.
    pub fn load(path: &Path) -> Result<Pipeline, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Unreadable { path: path.to_path_buf(), source })?;
        Pipeline::parse(&text, path)
    }

    /// A pipeline from its TOML text, as if read from `path` (which names it in errors; the
    /// files it names are relative to `path`'s directory).
    pub fn parse(text: &str, path: &Path) -> Result<Pipeline, ConfigError> {
        let file: PipelineFile = toml::from_str(text)
            .map_err(|e| ConfigError::Syntax { path: path.to_path_buf(), message: e.to_string() })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut problems = Vec::new();
        if !(1..=64).contains(&file.concurrency) {
            problems.push(format!("`concurrency` is {}: choose 1 to 64", file.concurrency));
        }
        if !(1..=3650).contains(&file.inactive_days) {
            problems.push(format!("`inactive_days` is {}: choose 1 to 3650 days", file.inactive_days));
        }
        if file.orgs.is_empty() {
            problems.push("no [[orgs]]: add one table per Salesforce org".to_string());
        }
        let mut orgs = Vec::new();
        for (i, org) in file.orgs.iter().enumerate() {
            let label = if org.name.is_empty() { format!("orgs[{i}]") } else { format!("org `{}`", org.name) };
            let mut complain = |setting: &str, what: String| problems.push(format!("{label}: `{setting}` {what}"));
            if let Some(plan) = validate(org, base, &mut complain) {
                if orgs.iter().any(|o: &OrgPlan| o.name == plan.name) {
                    complain("name", "is used by another org: each org needs its own name".into());
                }
                orgs.push(plan);
            }
        }
        if problems.is_empty() {
            Ok(Pipeline {
                output: file.output,
                work_dir: file.work_dir,
                concurrency: file.concurrency,
                inactive_days: file.inactive_days,
                orgs,
            })
        } else {
            Err(ConfigError::Invalid { path: path.to_path_buf(), problems })
        }
    }
}

fn validate(org: &OrgSettings, base: &Path, complain: &mut impl FnMut(&str, String)) -> Option<OrgPlan> {
    let slug_ok = !org.name.is_empty()
        && org.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !slug_ok {
        complain(
            "name",
            format!("is `{}`: use a short slug of lower-case letters, digits, `-` or `_` (it names folders)", org.name),
        );
    }
    for company in &org.company_names {
        if company.trim().is_empty() {
            complain(
                "company_names",
                "has an empty entry: give each legal entity's name as in User.CompanyName".into(),
            );
        }
    }
    let api_version = org.api_version.clone();
    if let Some(version) = &api_version {
        let version_ok = version.split_once('.').is_some_and(|(major, minor)| {
            major.len() == 2 && major.chars().all(|c| c.is_ascii_digit()) && minor == "0"
        });
        if !version_ok {
            complain(
                "api_version",
                format!(
                    "is `{version}`: expected a version like `{}`, or leave it out",
                    sfetl_extract::NEWEST_API_VERSION
                ),
            );
        }
    }
    let batch_size = org.batch_size.unwrap_or(2000);
    if !(200..=2000).contains(&batch_size) {
        complain("batch_size", format!("is {batch_size}: Salesforce accepts 200 to 2000"));
    }
    let defaults = sfetl_extract::QuotaGuard::default();
    let quota = sfetl_extract::QuotaGuard {
        daily_share: org.quota_daily_share.unwrap_or(defaults.daily_share),
        run_share: org.quota_run_share.unwrap_or(defaults.run_share),
    };
    for (key, share) in [("quota_daily_share", quota.daily_share), ("quota_run_share", quota.run_share)] {
        if !(share > 0.0 && share <= 1.0) {
            complain(
                key,
                format!("is {share}: give a share of the daily API maximum, above 0 and at most 1 (0.8 = 80 %)"),
            );
        }
    }
    let default_retry = sfetl_extract::RetryPolicy::default();
    let retry = sfetl_extract::RetryPolicy {
        max_attempts: org.retry_attempts.unwrap_or(default_retry.max_attempts),
        budget: org.retry_budget_seconds.map_or(default_retry.budget, std::time::Duration::from_secs),
        ..default_retry
    };
    if !(1..=20).contains(&retry.max_attempts) {
        complain("retry_attempts", format!("is {}: choose 1 (no retry) to 20", retry.max_attempts));
    }
    let ranges = [
        ("retry_budget_seconds", org.retry_budget_seconds, 1..=86_400, "seconds"),
        ("incremental_overlap_seconds", org.incremental_overlap_seconds, 0..=86_400, "seconds"),
        ("bulk_threshold", org.bulk_threshold, 0..=1_000_000_000, "rows (0: never)"),
        ("max_response_mb", org.max_response_mb, 1..=4096, "megabytes"),
        ("parallel_cursors", org.parallel_cursors, 1..=10, "cursors"),
        ("pages_per_call", org.pages_per_call, 1..=sfetl_extract::QUERIES_PER_CALL as u64, "pages"),
    ];
    for (key, value, range, unit) in ranges {
        if let Some(value) = value.filter(|v| !range.contains(v)) {
            complain(key, format!("is {value}: choose {} to {} {unit}", range.start(), range.end()));
        }
    }
    let connection = if let Some(sim) = &org.simulated {
        let set: Vec<&str> = [
            ("url", org.url.is_some()),
            ("login_url", org.login_url.is_some()),
            ("client_id", org.client_id.is_some()),
            ("username", org.username.is_some()),
            ("private_key_file", org.private_key_file.is_some()),
            ("private_key_env", org.private_key_env.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect();
        if !set.is_empty() {
            complain(
                "simulated",
                format!("cannot be combined with {}: a simulated org brings its own", set.join(", ")),
            );
        }
        if cfg!(not(feature = "demo")) {
            complain(
                "simulated",
                "needs sfetl built with its `demo` feature (the default): use a real org here".into(),
            );
        }
        if !(10..=2_000_000).contains(&sim.users) {
            complain("simulated.users", format!("is {}: choose 10 to 2000000", sim.users));
        }
        Connection::Simulated(sim.clone())
    } else {
        crate::connection::real_connection(org, base, complain)?
    };
    for name in org.paid_licenses.iter().filter(|name| org.free_licenses.contains(name)) {
        complain("paid_licenses", format!("and `free_licenses` both name `{name}`: keep it in one"));
    }
    if org.company_filter == CompanyFilter::Only && org.company_names.is_empty() {
        complain("company_filter", "is \"only\" but `company_names` is empty: list the companies to keep".into());
    }
    Some(OrgPlan {
        name: org.name.clone(),
        company_names: org.company_names.clone(),
        company_filter: org.company_filter,
        exclude_user_types: org
            .exclude_user_types
            .clone()
            .unwrap_or_else(|| PORTAL_USER_TYPES.iter().map(|t| t.to_string()).collect()),
        free_licenses: org.free_licenses.clone(),
        paid_licenses: org.paid_licenses.clone(),
        connection,
        api_version,
        batch_size,
        pages_per_call: org.pages_per_call.map_or(sfetl_extract::DEFAULT_PAGES_PER_CALL, |pages| pages as usize),
        quota,
        retry,
        incremental_overlap: std::time::Duration::from_secs(org.incremental_overlap_seconds.unwrap_or(300)),
        bulk_threshold: Some(org.bulk_threshold.unwrap_or(100_000)).filter(|&rows| rows > 0),
        bulk: org.bulk,
        max_body_bytes: org.max_response_mb.unwrap_or(sfetl_extract::DEFAULT_MAX_BODY_MB).min(4096) << 20,
        parallel_cursors: org.parallel_cursors.unwrap_or(6).clamp(1, 10) as usize,
    })
}
