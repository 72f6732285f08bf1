//! A Salesforce org simulator for sfetl's tests, demo and benchmarks.
//!
//! It speaks Salesforce's wire formats, including the unpleasant parts: the JWT bearer login with
//! Salesforce's exact refusals, the REST query API with `nextRecordsUrl` cursors that expire and
//! belong to one session, `Sforce-Limit-Info` and a daily quota, gzip, and injected faults (HTML
//! 503s, resets, truncated bodies, expired sessions). Its org is generated from a seed, shaped like
//! real orgs, and can be changed between runs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sfetl_sim::SimError> {
//! let sim = sfetl_sim::Sim::start(sfetl_sim::SimConfig::new(sfetl_sim::OrgSpec::new(1, 500))).await?;
//! let creds = sim.create_connected_app("System Administrator")?;
//! println!("{} {} {}", sim.url(), creds.consumer_key, sim.integration_username());
//! # Ok(()) }
//! ```

mod auth;
mod bulk;
mod composite;
mod describe;
mod faults;
mod generate;
mod ids;
mod license_counts;
mod metrics;
pub mod objects;
mod render;
mod server;
mod shape;
pub mod soql;
pub mod store;
pub mod value;

pub use auth::{AppKind, ConnectedApp};
pub use faults::{Fault, FaultRule, Trigger};
pub use generate::{CatalogueLicense, LicenseCatalogue, OrgSpec, generate};
pub use ids::record_id;
pub use license_counts::recount_licenses;
pub use objects::FieldAccess;
pub use server::API_VERSIONS;
/// Key pairs and certificates live in the client crate (`sfetl init` makes them in production).
pub use sfetl_extract::keys::{self, KeyAndCertificate};
pub use store::OrgData;

use axum_server::accept::NoDelayAcceptor;
use server::SimState;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How the simulated org behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub org: OrgSpec,
    /// Idle time after which a session dies (401 `INVALID_SESSION_ID`).
    pub session_timeout: Duration,
    /// Idle time after which a query locator dies (400 `INVALID_QUERY_LOCATOR`).
    pub locator_idle_timeout: Duration,
    /// The daily API request quota (`DailyApiRequests.Max`).
    pub daily_api_max: u64,
    /// API requests already spent today when the simulator starts.
    pub api_used_at_start: u64,
    /// Queries matching more rows than this answer `QUERY_TIMEOUT`, as big scans do on real orgs.
    pub query_timeout_above: Option<usize>,
    /// Serve pages no larger than this, whatever the client asks (Salesforce may do so).
    pub max_page_size: Option<usize>,
    /// Seconds the org's clock runs ahead of this machine's (a JWT may then arrive expired).
    pub clock_skew_seconds: i64,
    /// Objects the integration user may not read (answered with `INVALID_TYPE`, as Salesforce
    /// does for setup objects without "View Setup and Configuration").
    pub hidden_objects: Vec<String>,
    /// The JWT `aud` this org's connected apps accept; the simulator's own URL when `None`.
    pub login_audience: Option<String>,
    /// The org refuses token requests at the login hosts (`login.salesforce.com`): GovCloud orgs
    /// and orgs whose My Domain settings block them (salesforce-api.md section 7). The simulator's
    /// login host is [`Sim::url`] (`127.0.0.1`), its My Domain [`Sim::my_domain_url`] (`localhost`).
    pub login_hosts_blocked: bool,
    /// State and Country/Territory Picklists enabled: `User.CountryCode` and the other code fields
    /// exist. Off, they are unknown columns (`INVALID_FIELD`), as in orgs that never enabled them.
    pub state_country_picklists: bool,
    /// `Object.Field` names hidden from the integration user by field-level security.
    pub hidden_fields: Vec<String>,
    /// Every n-th user (by position) is invisible to the integration user, as when the org's
    /// sharing settings restrict user visibility ("User Sharing" with a private default): queries
    /// leave them out while `UsedLicenses` still counts them.
    pub hidden_user_every: Option<usize>,
    /// The newest API version the org serves (an org not yet on the latest release); every
    /// version of [`API_VERSIONS`] when `None`.
    pub max_api_version: Option<String>,
    /// Serve HTTPS with a generated certificate written into this directory (as `sim-ca.crt`).
    pub tls_dir: Option<PathBuf>,
    /// Port to listen on (loopback only); 0 picks a free one.
    pub port: u16,
    pub latency_per_request: Option<Duration>,
    pub latency_per_record: Option<Duration>,
    /// A Bulk API 2.0 query job's fixed processing time (real orgs: 10-15 s even for small jobs).
    pub bulk_fixed_cost: Duration,
    /// Its processing time per record.
    pub bulk_per_record: Duration,
    /// How the org compares Ids (Salesforce: byte by byte).
    pub id_order: soql::IdOrder,
    /// When set, every Bulk query job fails with this `errorMessage`.
    pub bulk_failure: Option<String>,
    /// Jobs per page of `GET /jobs/query` (Salesforce: 1,000); fewer show a busy org's list.
    pub jobs_per_list: usize,
    /// Composite subrequests may take values from earlier answers (`@{p0.nextRecordsUrl}`), as
    /// Salesforce documents. Off: a reference stays in the URL as written, and such a
    /// subrequest is answered `NOT_FOUND`: an org or a proxy on the way that does not resolve
    /// them, the other reading a client must survive.
    pub composite_references: bool,
    /// `/limits` refused to the integration user. Salesforce serves it to API users with the
    /// "View Setup and Configuration" permission (REST API Developer Guide, "Limits"), which an
    /// integration user may well lack; the refusal's code is not documented
    /// (`INSUFFICIENT_ACCESS` here, as for the setup objects such a user cannot read).
    pub limits_refused: bool,
}

impl SimConfig {
    pub fn new(org: OrgSpec) -> SimConfig {
        SimConfig {
            org,
            session_timeout: Duration::from_secs(2 * 3600),
            locator_idle_timeout: Duration::from_secs(15 * 60),
            daily_api_max: 100_000,
            api_used_at_start: 0,
            max_page_size: None,
            query_timeout_above: None,
            login_audience: None,
            login_hosts_blocked: false,
            state_country_picklists: true,
            hidden_fields: Vec::new(),
            max_api_version: None,
            hidden_user_every: None,
            clock_skew_seconds: 0,
            hidden_objects: Vec::new(),
            tls_dir: None,
            port: 0,
            latency_per_request: None,
            latency_per_record: None,
            bulk_fixed_cost: Duration::from_secs(10),
            bulk_per_record: Duration::from_micros(5),
            id_order: soql::IdOrder::Bytes,
            bulk_failure: None,
            jobs_per_list: 1000,
            composite_references: true,
            limits_refused: false,
        }
    }
}

/// One line of the simulator's request log.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub status: u16,
    /// Records in the response body (query pages).
    pub records: usize,
    /// The sObject a query page or Bulk result set was about.
    pub object: Option<&'static str>,
    /// The fault injected into this request, if any.
    pub fault: Option<Fault>,
    /// The request's `Sforce-Call-Options` header, which labels calls in the org's API usage.
    pub call_options: Option<String>,
}

/// The credentials of a connected app created in the simulated org.
#[derive(Debug, Clone)]
pub struct AppCredentials {
    pub consumer_key: String,
    pub key: KeyAndCertificate,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("simulator could not listen on 127.0.0.1:{port}")]
    Listen { port: u16, source: std::io::Error },
    #[error("simulator could not write its TLS certificate to {path}")]
    WriteCertificate { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    #[error(
        "the simulated org's {users} users include no active System Administrator for the integration to log in \
         as: give it more users (or another seed)"
    )]
    NoAdministrator { users: usize },
}

/// A running simulated org, listening on loopback until dropped.
pub struct Sim {
    state: Arc<SimState>,
    handle: axum_server::Handle<SocketAddr>,
    ca_file: Option<PathBuf>,
}

impl Sim {
    /// Generates the org and starts serving it on the current tokio runtime.
    pub async fn start(config: SimConfig) -> Result<Sim, SimError> {
        let data = generate(&config.org);
        let port = config.port;
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", port)).map_err(|source| SimError::Listen { port, source })?;
        listener.set_nonblocking(true).map_err(|source| SimError::Listen { port, source })?;
        let addr = listener.local_addr().map_err(|source| SimError::Listen { port, source })?;
        let tls = match &config.tls_dir {
            Some(dir) => {
                let cert = keys::tls_certificate()?;
                let path = dir.join("sim-ca.crt");
                std::fs::write(&path, &cert.certificate_pem)
                    .map_err(|source| SimError::WriteCertificate { path: path.clone(), source })?;
                let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
                    cert.certificate_pem.into_bytes(),
                    cert.private_key_pem.into_bytes(),
                )
                .await
                .map_err(|source| SimError::Listen { port, source })?;
                Some((tls, path))
            }
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base_url = format!("{scheme}://127.0.0.1:{}", addr.port());
        let state = Arc::new(SimState::new(config, base_url, data));
        let app = server::router(state.clone()).into_make_service();
        let handle = axum_server::Handle::new();
        // TCP_NODELAY on every connection, as production HTTP servers set it (nginx's
        // `tcp_nodelay on` is its default for keep-alive connections). Without it, an answer
        // written in two pieces waited for the client's delayed ACK: 40 ms at random, a tenth of
        // an incremental run, that no real org adds (Nagle's algorithm, RFC 896, meeting delayed
        // ACKs, RFC 1122 4.2.3.2).
        let ca_file = match tls {
            Some((tls, path)) => {
                let server =
                    axum_server::from_tcp_rustls(listener, tls).map_err(|source| SimError::Listen { port, source })?;
                let server = server.map(|tls| tls.acceptor(NoDelayAcceptor));
                tokio::spawn(server.handle(handle.clone()).serve(app));
                Some(path)
            }
            None => {
                let server = axum_server::from_tcp(listener).map_err(|source| SimError::Listen { port, source })?;
                let server = server.acceptor(NoDelayAcceptor);
                tokio::spawn(server.handle(handle.clone()).serve(app));
                None
            }
        };
        Ok(Sim { state, handle, ca_file })
    }

    /// `http(s)://127.0.0.1:PORT`: the login URL and the instance URL alike.
    pub fn url(&self) -> &str {
        &self.state.base_url
    }

    /// `http(s)://localhost:PORT`: the org's My Domain, the same server reached under another
    /// host name, which External Client Apps take as the JWT audience.
    pub fn my_domain_url(&self) -> String {
        self.state.my_domain_url()
    }

    /// The certificate to trust when the simulator serves HTTPS.
    pub fn ca_file(&self) -> Option<&std::path::Path> {
        self.ca_file.as_deref()
    }

    pub fn org_id(&self) -> &str {
        &self.state.org_id
    }

    /// Registers a connected app (consumer key + uploaded certificate + pre-authorized profiles).
    pub fn add_connected_app(&self, app: ConnectedApp) {
        if let Ok(mut apps) = self.state.apps.write() {
            apps.push(app);
        }
    }

    /// Creates a connected app with a fresh key pair, pre-authorizing one profile.
    pub fn create_connected_app(&self, authorized_profile: &str) -> Result<AppCredentials, SimError> {
        self.create_app(AppKind::ConnectedApp, authorized_profile)
    }

    /// Creates an app of either kind with a fresh key pair, pre-authorizing one profile.
    pub fn create_app(&self, kind: AppKind, authorized_profile: &str) -> Result<AppCredentials, SimError> {
        let key = keys::rsa_key_and_certificate("sfetl simulated connected app")?;
        let n = self.state.apps.read().map(|a| a.len()).unwrap_or(0);
        let consumer_key = format!("3MVG9sim{}{n}.{}", &self.state.org_id[3..9], "Ks7dQmZ2rT8wYpL1vXnB");
        self.add_connected_app(ConnectedApp {
            consumer_key: consumer_key.clone(),
            certificate_pem: key.certificate_pem.clone(),
            authorized_profiles: vec![authorized_profile.to_string()],
            kind,
        });
        Ok(AppCredentials { consumer_key, key })
    }

    /// An active, unfrozen System Administrator: the user to impersonate in the demo and tests.
    pub fn integration_username(&self) -> String {
        self.username_where(|profile, active| profile == "System Administrator" && active).unwrap_or_default()
    }

    /// The first user whose profile name and ability to log in (active and not frozen) satisfy
    /// `pred`.
    pub fn username_where(&self, pred: impl Fn(&str, bool) -> bool) -> Option<String> {
        let data = self.org();
        let users = data.table("User");
        let profiles = data.table("Profile");
        let frozen = data.frozen_users();
        (0..users.rows.len()).find_map(|i| {
            let profile =
                users.get(i, "ProfileId").as_str().and_then(|p| profiles.by_id(p)).and_then(|r| r[1].as_str())?;
            let id = users.get(i, "Id").as_str().unwrap_or_default();
            let active = users.get(i, "IsActive") == &value::Value::Bool(true) && !frozen.contains(id);
            pred(profile, active).then(|| users.get(i, "Username").as_str().unwrap_or_default().to_string())
        })
    }

    /// The org as it is now (open cursors keep reading the state they started on).
    pub fn org(&self) -> Arc<OrgData> {
        self.state.snapshot()
    }

    /// Users log in at `at` (UTC milliseconds): `LastLoginDate` moves, nothing else. A login is
    /// not an edit: `LastModifiedDate` stays, and `SystemModstamp` cannot be relied on to move
    /// (salesforce-api.md section 7), so the simulator takes the stricter reading and keeps it.
    pub fn log_in(&self, user_ids: &[String], at: i64) {
        if let Ok(mut org) = self.state.org.write() {
            let users = Arc::make_mut(&mut org).table_mut("User");
            for id in user_ids {
                if let Some(i) = users.index_of(id) {
                    users.set(i, "LastLoginDate", value::Value::DateTime(at));
                }
            }
        }
    }

    /// Hides these fields (`Object.Field`) from the integration user from now on, and only
    /// these: what an admin's change to its profile's field-level security does.
    pub fn set_hidden_fields(&self, hidden: &[String]) {
        let access = FieldAccess::new(self.state.config.state_country_picklists, hidden);
        if let Ok(mut fields) = self.state.fields.write() {
            *fields = access;
        }
    }

    /// Changes the org; license counts are recomputed afterwards.
    pub fn update_org(&self, change: impl FnOnce(&mut OrgData)) {
        if let Ok(mut org) = self.state.org.write() {
            let data = Arc::make_mut(&mut org);
            change(data);
            recount_licenses(data, chrono::Utc::now().timestamp() * 1000);
        }
    }

    pub fn add_fault(&self, rule: FaultRule) {
        if let Ok(mut faults) = self.state.faults.lock() {
            faults.push(rule);
        }
    }

    pub fn clear_faults(&self) {
        if let Ok(mut faults) = self.state.faults.lock() {
            faults.clear();
        }
    }

    /// Query cursors open now (their locators not yet read to the end, expired or let go).
    pub fn open_cursors(&self) -> usize {
        self.state.cursors.lock().map_or(0, |cursors| cursors.len())
    }

    /// Every access token the org has handed out.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state.issued.lock().map(|t| t.clone()).unwrap_or_default()
    }

    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.state.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// API requests counted against the daily quota so far, and the quota.
    pub fn api_usage(&self) -> (u64, u64) {
        (self.state.api_used.load(Ordering::SeqCst), self.state.config.daily_api_max)
    }

    /// A new day: the quota's usage starts again from zero.
    pub fn reset_day(&self) {
        self.state.api_used.store(0, Ordering::SeqCst);
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}
