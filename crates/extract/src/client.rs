//! The HTTP client: one session per org, re-login when it dies, bounded retries of transient
//! failures, and the API usage Salesforce reports on every response.

use crate::error::{ApiError, Error, LoginError, Result};
use crate::login::{self, Credentials, LoginRoute, LoginSession};
use crate::retry::{RetryPolicy, parse_retry_after};
use serde::de::DeserializeOwned;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The REST API versions sfetl reads with: from the first with the usage-metrics objects (52.0,
/// Summer '21) to the newest it was tested against.
pub const OLDEST_API_VERSION: &str = "52.0";
pub const NEWEST_API_VERSION: &str = "67.0";

/// Labels every call in the org's API usage reports (`Sforce-Call-Options: client=...`, REST API
/// Developer Guide, "Call Options Header"), so an admin sees what spent the quota.
pub const CALL_OPTIONS: &str = concat!("client=sfetl/", env!("CARGO_PKG_VERSION"));

/// The default cap on an answer's decompressed size: a REST page of 2,000 wide records is a few
/// megabytes, a Bulk API result set (`maxRecords`) tens of them.
pub const DEFAULT_MAX_BODY_MB: u64 = 512;

/// How to talk to one org.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// `66.0`, pinned; `None`: the highest version both the org and sfetl support, asked of the
    /// org at login (`GET /services/data/`, which costs no API request).
    pub api_version: Option<String>,
    /// An extra CA certificate (PEM) to trust, and where it came from (for error messages).
    pub ca_certificate: Option<(String, Vec<u8>)>,
    /// `Sforce-Query-Options: batchSize`, 200..=2000.
    pub batch_size: u32,
    /// Pages of one query a call may bring (1 to [`crate::QUERIES_PER_CALL`]): more than one
    /// goes through a composite call that chains them.
    pub pages_per_call: usize,
    /// Per request, headers and body.
    pub timeout: Duration,
    /// How transient failures (network, 5xx, cut bodies) are retried.
    pub retry: RetryPolicy,
    /// Limits on the org's daily API requests this run may spend.
    pub quota: QuotaGuard,
    /// The most bytes one answer may have once decompressed.
    pub max_body_bytes: u64,
}

/// Stops a run before it eats the org's daily API quota, which the org's other integrations need
/// too: before the org's usage passes `daily_share` of its daily maximum, or this run alone uses
/// more than `run_share` of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuotaGuard {
    pub daily_share: f64,
    pub run_share: f64,
}

impl Default for QuotaGuard {
    fn default() -> Self {
        QuotaGuard { daily_share: 0.8, run_share: 0.25 }
    }
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            api_version: None,
            ca_certificate: None,
            batch_size: 2000,
            pages_per_call: crate::DEFAULT_PAGES_PER_CALL,
            timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            quota: QuotaGuard::default(),
            max_body_bytes: DEFAULT_MAX_BODY_MB << 20,
        }
    }
}

/// `Sforce-Limit-Info: api-usage=used/max` as last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiUsage {
    pub used: u64,
    pub max: u64,
}

/// A logged-in connection to one org.
pub struct SalesforceClient {
    http: reqwest::Client,
    credentials: Credentials,
    pub(crate) settings: ConnectionSettings,
    session: tokio::sync::RwLock<Option<LoginSession>>,
    api_calls: AtomicU64,
    /// Daily API requests the org had used, not counting this run's, when `/limits` was read
    /// (`u64::MAX` before).
    others_usage: AtomicU64,
    retries: AtomicU64,
    usage: Mutex<Option<ApiUsage>>,
    /// Whether an API call was answered yet, and the lock its first call holds until then.
    answered: AtomicBool,
    first_call: tokio::sync::Mutex<()>,
    /// The version requests use: the pinned one, or the one agreed with the org at first login.
    version: Mutex<Option<String>>,
    /// The token host and audience that logged in, used again for every later login.
    route: Mutex<Option<LoginRoute>>,
    /// The Bulk API jobs being waited on, polled together.
    pub(crate) job_polls: crate::job_polls::JobPolls,
}

impl SalesforceClient {
    pub fn new(credentials: Credentials, settings: ConnectionSettings) -> Result<SalesforceClient> {
        // Answers are asked gzipped (the default headers) and inflated by `read_body` in one
        // call into a buffer of the size the gzip trailer gives; reqwest (built without its
        // `gzip` feature) leaves them as they come. Its own inflating went chunk by chunk,
        // growing the buffer as it went: 13 % more CPU for a whole run.
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(20))
            .timeout(settings.timeout)
            // A redirect would carry the request (and for API calls the token) to a host nobody
            // checked; Salesforce's API answers in place.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sfetl/", env!("CARGO_PKG_VERSION")))
            .default_headers(reqwest::header::HeaderMap::from_iter([
                (
                    reqwest::header::HeaderName::from_static("sforce-call-options"),
                    reqwest::header::HeaderValue::from_static(CALL_OPTIONS),
                ),
                (reqwest::header::ACCEPT_ENCODING, reqwest::header::HeaderValue::from_static("gzip")),
            ]));
        if let Some((path, pem)) = &settings.ca_certificate {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| Error::CaFile { path: path.clone(), message: format!("not a PEM certificate: {e}") })?;
            builder = builder.tls_certs_merge([cert]);
        }
        let http = builder
            .build()
            .map_err(|e| Error::Transport { url: credentials.login_url.clone(), message: crate::error::chain(&e) })?;
        let settings_version = settings.api_version.clone();
        Ok(SalesforceClient {
            http,
            credentials,
            settings,
            session: tokio::sync::RwLock::new(None),
            api_calls: AtomicU64::new(0),
            others_usage: AtomicU64::new(u64::MAX),
            retries: AtomicU64::new(0),
            usage: Mutex::new(None),
            answered: AtomicBool::new(false),
            first_call: tokio::sync::Mutex::new(()),
            version: Mutex::new(settings_version),
            route: Mutex::new(None),
            job_polls: crate::job_polls::JobPolls::default(),
        })
    }

    /// Signs a new JWT and opens a session, replacing any previous one. Transient failures of
    /// the token request are retried; refusals are not. The first login also agrees on the API
    /// version, unless one is pinned.
    pub async fn login(&self) -> Result<LoginSession> {
        let session = self.sign_in().await?;
        *self.session.write().await = Some(session.clone());
        if self.version.lock().map(|v| v.is_none()).unwrap_or(false) {
            let agreed = self.agree_on_version(&session.instance_url).await?;
            if let Ok(mut version) = self.version.lock() {
                *version = Some(agreed);
            }
        }
        Ok(session)
    }

    /// The route that logged in last (`None` before the first login).
    pub fn login_route(&self) -> Option<LoginRoute> {
        self.route.lock().ok().and_then(|r| r.clone())
    }

    /// Logs in through the route that worked before, or finds one: each of the credentials'
    /// routes in turn while the refusals are ones another route may not give. When every route
    /// is refused so, the first refusal (of the configured login URL) is the one reported.
    async fn sign_in(&self) -> Result<LoginSession> {
        let routes = self.login_route().map_or_else(|| self.credentials.routes(), |route| vec![route]);
        let mut first_refusal = None;
        for route in &routes {
            let (http, credentials) = (&self.http, &self.credentials);
            match self.with_retries(move || async move { login::login(http, credentials, route).await }).await {
                Ok(session) => {
                    if first_refusal.is_some() {
                        tracing::info!(token_url = %route.token_url, audience = %route.audience,
                            "logged in through another token host or audience than the login URL");
                    }
                    if let Ok(mut slot) = self.route.lock() {
                        *slot = Some(route.clone());
                    }
                    return Ok(session);
                }
                Err(e @ Error::Login { .. }) if e.login_refusal().is_some_and(LoginError::may_be_the_route) => {
                    tracing::debug!(token_url = %route.token_url, audience = %route.audience, "login refused: {e}");
                    first_refusal.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(first_refusal.unwrap_or_else(|| Error::Transport {
            url: self.credentials.login_url.clone(),
            message: "no login route to try".into(),
        }))
    }

    /// The highest API version both the org and sfetl support, from the org's version list.
    async fn agree_on_version(&self, instance_url: &str) -> Result<String> {
        let offered = self.versions_at(instance_url).await?;
        choose_version(&offered).ok_or_else(|| Error::NoCommonApiVersion { offered: offered.join(", ") })
    }

    /// The API versions the org serves (`GET /services/data/`: no session, no quota).
    pub async fn org_versions(&self) -> Result<Vec<String>> {
        let instance_url = self.current_session().await?.instance_url;
        self.versions_at(&instance_url).await
    }

    async fn versions_at(&self, instance_url: &str) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Version {
            version: String,
        }
        let url = format!("{instance_url}/services/data/");
        let url = &url;
        let listed: Vec<Version> = self
            .with_retries(move || async move {
                let (status, body) = self.get_without_session(url).await?;
                serde_json::from_slice(&body).map_err(|_| Error::UnexpectedBody {
                    url: url.clone(),
                    status,
                    excerpt: excerpt(&body),
                    retry_after: None,
                })
            })
            .await?;
        Ok(listed.into_iter().map(|v| v.version).collect())
    }

    async fn current_session(&self) -> Result<LoginSession> {
        if let Some(session) = self.session.read().await.clone() {
            return Ok(session);
        }
        self.login().await
    }

    /// REST calls made through this client (each counts against the org's daily quota).
    pub fn api_calls(&self) -> u64 {
        self.api_calls.load(Ordering::SeqCst)
    }

    pub fn api_usage(&self) -> Option<ApiUsage> {
        self.usage.lock().ok().and_then(|u| *u)
    }

    /// The API version requests use (before the first login, the pinned one or sfetl's newest).
    pub fn api_version(&self) -> String {
        let agreed = self.version.lock().ok().and_then(|v| v.clone());
        agreed.unwrap_or_else(|| NEWEST_API_VERSION.to_string())
    }

    /// Requests retried after transient failures so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// GETs `path` (which starts with `/services/data/`) on the instance and decodes the JSON.
    /// Transient failures are retried with backoff; a dead session is replaced once.
    pub async fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T> {
        self.get_counted(path, query, &AtomicU64::new(0)).await
    }

    /// Like [`SalesforceClient::get`], also counting the API calls made (retries included) in
    /// `calls`: what one query cost, while others run on the same client.
    pub async fn get_counted<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        calls: &AtomicU64,
    ) -> Result<T> {
        let request = Request { method: reqwest::Method::GET, path, query, body: None, streamed: false };
        self.call(&request, calls, decode_json).await
    }

    /// Like [`SalesforceClient::get_counted`], decoding the JSON body with `decode` (a query
    /// page's records by the caller's decoder). A body `decode` refuses is retried as garbled.
    pub(crate) async fn get_decoded<T>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        calls: &AtomicU64,
        decode: impl Fn(&[u8]) -> serde_json::Result<T>,
    ) -> Result<T> {
        let request = Request { method: reqwest::Method::GET, path, query, body: None, streamed: false };
        self.call(&request, calls, |answer| decode_body(answer, &decode)).await
    }

    /// POSTs a JSON body (a Bulk API job) and decodes the JSON answer. A retried POST may
    /// create a second job; it is never read, and costs the org nothing but its record.
    pub async fn post_json_counted<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
        calls: &AtomicU64,
    ) -> Result<T> {
        let request = Request { method: reqwest::Method::POST, path, query: &[], body: Some(body), streamed: false };
        self.call(&request, calls, decode_json).await
    }

    /// The most bytes one answer (or one streamed record) may take.
    pub(crate) fn max_body_bytes(&self) -> u64 {
        self.settings.max_body_bytes
    }

    /// Records per page asked for (`Sforce-Query-Options: batchSize`).
    pub(crate) fn batch_size(&self) -> u32 {
        self.settings.batch_size
    }

    pub(crate) fn pages_per_call(&self) -> usize {
        self.settings.pages_per_call.clamp(1, crate::QUERIES_PER_CALL)
    }

    /// Like [`SalesforceClient::post_json_counted`], decoding the answer with `decode` (a
    /// composite call's pages, each by its query's decoder).
    pub(crate) async fn post_decoded<T>(
        &self,
        path: &str,
        body: &serde_json::Value,
        calls: &AtomicU64,
        decode: impl Fn(&[u8]) -> serde_json::Result<T>,
    ) -> Result<T> {
        let request = Request { method: reqwest::Method::POST, path, query: &[], body: Some(body), streamed: false };
        self.call(&request, calls, |answer| decode_body(answer, &decode)).await
    }

    /// GETs a body to be read as it arrives (a Bulk API result set, which may hold millions of
    /// records), with its `Sforce-Locator` header. Only the answer's head is retried: a body
    /// cut on the way is the caller's to ask for again. The client's timeout bounds each wait
    /// for the next bytes ([`StreamedBody::next_bytes`]), not the whole body.
    pub(crate) async fn get_streamed_counted(
        &self,
        path: &str,
        query: &[(&str, &str)],
        calls: &AtomicU64,
    ) -> Result<StreamedBody> {
        let request = Request { method: reqwest::Method::GET, path, query, body: None, streamed: true };
        let request = &request;
        self.with_session(|session| async move {
            let head = self.send_head(&session, request, calls).await?;
            match (200..300).contains(&head.status) {
                true => Ok(StreamedBody::new(head, self.settings.timeout)),
                false => Err(self.refusal(head).await),
            }
        })
        .await
    }

    /// Sends `request` with the session, retrying transient failures (a failure to `decode` a
    /// successful answer included) and replacing a dead session once.
    async fn call<T>(
        &self,
        request: &Request<'_>,
        calls: &AtomicU64,
        decode: impl Fn(Answer) -> Result<T>,
    ) -> Result<T> {
        let decode = &decode;
        self.with_session(|session| async move { decode(self.send_once(&session, request, calls).await?) }).await
    }

    /// Runs `attempt` with the current session, retrying transient failures and replacing a
    /// dead session once.
    async fn with_session<T, F>(&self, attempt: impl Fn(LoginSession) -> F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        let mut renewed = false;
        loop {
            let session = self.current_session().await?;
            match self.with_retries(|| attempt(session.clone())).await {
                Err(e) if e.is_invalid_session() && !renewed => {
                    renewed = true;
                    self.renew_session(&session).await?;
                }
                other => return other,
            }
        }
    }

    /// Replaces a session Salesforce no longer accepts. Requests running concurrently all see
    /// the same dead session: only the first logs in again, the others use its new session.
    async fn renew_session(&self, dead: &LoginSession) -> Result<()> {
        let mut slot = self.session.write().await;
        if slot.as_ref().is_some_and(|current| current.access_token != dead.access_token) {
            return Ok(());
        }
        tracing::info!("session expired or revoked; logging in again");
        *slot = Some(self.sign_in().await?);
        Ok(())
    }

    /// Runs `request` until it succeeds, fails for good, or the retry policy is spent. (A closure
    /// that returns a future rather than an async closure: the compiler cannot yet prove an async
    /// closure's future `Send`, and a program spawns sfetl's run on a multi-threaded runtime.)
    async fn with_retries<T, F>(&self, mut request: impl FnMut() -> F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        let policy = self.settings.retry;
        let mut waited = Duration::ZERO;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match request().await {
                Err(e) if e.is_transient() && attempt < policy.max_attempts => {
                    let delay = policy.delay(attempt, e.retry_after());
                    if waited + delay > policy.budget {
                        return Err(e);
                    }
                    waited += delay;
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(attempt, error = %e, "transient failure; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    /// Whether the login URL answers at all (`GET /services/data/`, no session, no quota).
    pub async fn probe_login_url(&self) -> Result<()> {
        let url = format!("{}/services/data/", self.credentials.login_url.trim_end_matches('/'));
        let (status, _) = self.get_without_session(&url).await?;
        if status >= 500 {
            return Err(Error::UnexpectedBody { url, status, excerpt: "server error".into(), retry_after: None });
        }
        Ok(())
    }

    /// One GET of a resource that needs no session (and costs no API request): status and body.
    async fn get_without_session(&self, url: &str) -> Result<(u16, bytes::Bytes)> {
        let transport = |e: reqwest::Error| Error::Transport { url: url.to_string(), message: crate::error::chain(&e) };
        let response = self.http.get(url).send().await.map_err(transport)?;
        let status = response.status().as_u16();
        Ok((status, crate::body::read_body(response, url, self.settings.max_body_bytes).await?))
    }

    /// Reads `/limits` (the daily API quota), for `sfetl check` and the org's shape. A run does
    /// not: its first call's answer tells the same (see `first_call`), for one request less.
    pub async fn read_limits(&self) -> Result<ApiUsage> {
        #[derive(serde::Deserialize)]
        struct Limit {
            #[serde(rename = "Max")]
            max: u64,
            #[serde(rename = "Remaining")]
            remaining: u64,
        }
        #[derive(serde::Deserialize)]
        struct Limits {
            #[serde(rename = "DailyApiRequests")]
            daily: Limit,
        }
        let path = format!("/services/data/v{}/limits", self.api_version());
        let limits: Limits = self.get(&path, &[]).await?;
        let usage = ApiUsage { used: limits.daily.max.saturating_sub(limits.daily.remaining), max: limits.daily.max };
        self.others_usage.store(usage.used.saturating_sub(self.api_calls()), Ordering::SeqCst);
        if let Ok(mut slot) = self.usage.lock() {
            // The response's own Sforce-Limit-Info may be newer; keep the higher count.
            *slot = Some(slot.filter(|u| u.used > usage.used).unwrap_or(usage));
        }
        Ok(self.api_usage().unwrap_or(usage))
    }

    /// Until an API call was answered, calls go one at a time: the first answer's
    /// `Sforce-Limit-Info` ("returned in each request to REST API", REST API Developer Guide,
    /// "Limit Info Header") tells the guard where the org stands before the second call, as
    /// reading `/limits` first would, without the API request that costs. The lock is held by
    /// the first call until its answer's headers are in (or it fails, and the next call tries).
    async fn first_call(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if self.answered.load(Ordering::SeqCst) {
            return None;
        }
        let held = self.first_call.lock().await;
        (!self.answered.load(Ordering::SeqCst)).then_some(held)
    }

    /// Counts the next call against the quota, or refuses it when it would pass one of the
    /// guard's shares. The count is taken before the check, so calls made concurrently cannot
    /// slip past the limit together.
    fn reserve_call(&self) -> Result<()> {
        let reserved = self.api_calls.fetch_add(1, Ordering::SeqCst) + 1;
        let Some(usage) = self.api_usage() else { return Ok(()) };
        let guard = self.settings.quota;
        let max = usage.max as f64;
        // What the org will have used with this call: the last figure Salesforce gave, or what
        // others had used when this run started plus every call this run has reserved.
        let others = self.others_usage.load(Ordering::SeqCst);
        let projected = (usage.used + 1).max(if others == u64::MAX { 0 } else { others + reserved });
        let refusal = if projected as f64 > max * guard.daily_share {
            Some(format!(
                "the org would pass {projected} of its {} daily API requests, and the guard keeps {:.0} % for everything else",
                usage.max,
                (1.0 - guard.daily_share) * 100.0
            ))
        } else if reserved as f64 > max * guard.run_share {
            Some(format!(
                "this run has made {} API requests, the most one run may use ({:.0} % of the daily {})",
                reserved - 1,
                guard.run_share * 100.0,
                usage.max
            ))
        } else {
            None
        };
        match refusal {
            Some(message) => {
                self.api_calls.fetch_sub(1, Ordering::SeqCst);
                Err(Error::QuotaGuard(message))
            }
            None => Ok(()),
        }
    }

    async fn send_once(&self, session: &LoginSession, request: &Request<'_>, calls: &AtomicU64) -> Result<Answer> {
        let head = self.send_head(session, request, calls).await?;
        if !(200..300).contains(&head.status) {
            return Err(self.refusal(head).await);
        }
        let body = crate::body::read_body(head.response, &head.url, self.settings.max_body_bytes).await?;
        Ok(Answer { url: head.url, status: head.status, body, retry_after: head.retry_after })
    }

    /// Sends `request` and reads the answer's head: the usage it reports, the next result
    /// set's locator. A redirect is an error; any other answer is the caller's to read.
    async fn send_head(&self, session: &LoginSession, request: &Request<'_>, calls: &AtomicU64) -> Result<Head> {
        let first_call = self.first_call().await;
        self.reserve_call()?;
        calls.fetch_add(1, Ordering::SeqCst);
        let url = crate::hosts::api_url(&session.instance, request.path)?.to_string();
        let transport = |e: reqwest::Error| Error::Transport { url: url.clone(), message: crate::error::chain(&e) };
        let mut builder = self
            .http
            .request(request.method.clone(), &url)
            .bearer_auth(session.access_token.expose())
            .header("Sforce-Query-Options", format!("batchSize={}", self.settings.batch_size));
        if !request.query.is_empty() {
            builder = builder.query(request.query);
        }
        if let Some(body) = request.body {
            builder = builder.json(body);
        }
        let response = if request.streamed {
            // The body may take longer than the timeout: its reader bounds each wait for the
            // next bytes instead, and the wait for the head is bounded here.
            let sent = tokio::time::timeout(self.settings.timeout, builder.timeout(STREAMED_BODY_LIMIT).send()).await;
            let no_answer = || Error::Transport {
                url: url.clone(),
                message: format!("no answer within {:?}", self.settings.timeout),
            };
            sent.map_err(|_| no_answer())?.map_err(transport)?
        } else {
            builder.send().await.map_err(transport)?
        };
        let status = response.status().as_u16();
        if let Some(usage) =
            response.headers().get("sforce-limit-info").and_then(|h| h.to_str().ok()).and_then(parse_usage)
            && let Ok(mut slot) = self.usage.lock()
        {
            *slot = Some(usage);
            // Without `/limits` read first (a user it is refused to), the first answer's usage
            // tells what others had used when this run started.
            let others = usage.used.saturating_sub(self.api_calls());
            let _ = self.others_usage.compare_exchange(u64::MAX, others, Ordering::SeqCst, Ordering::SeqCst);
        }
        self.answered.store(true, Ordering::SeqCst);
        drop(first_call);
        let retry_after =
            response.headers().get("retry-after").and_then(|h| h.to_str().ok()).and_then(parse_retry_after);
        let locator = response
            .headers()
            .get("sforce-locator")
            .and_then(|h| h.to_str().ok())
            .filter(|l| !l.is_empty() && *l != "null")
            .map(String::from);
        if (300..400).contains(&status) {
            let location = response.headers().get("location").and_then(|h| h.to_str().ok()).unwrap_or_default();
            return Err(Error::Redirect { url, status, location: location.to_string() });
        }
        Ok(Head { url, status, response, locator, retry_after })
    }

    /// The error an unsuccessful answer's body names (or the failure to read that body).
    async fn refusal(&self, head: Head) -> Error {
        let Head { url, status, response, retry_after, .. } = head;
        let body = match crate::body::read_body(response, &url, self.settings.max_body_bytes).await {
            Ok(body) => body,
            Err(e) => return e,
        };
        let detail = serde_json::from_slice::<Vec<ApiErrorBody>>(&body)
            .ok()
            .and_then(|errors| errors.into_iter().next())
            .map(|e| ApiError { status, code: e.error_code, message: e.message, retry_after });
        match detail {
            Some(detail) if detail.code == "REQUEST_LIMIT_EXCEEDED" && self.is_daily_quota(&detail) => {
                Error::QuotaExhausted
            }
            Some(detail) => Error::Api { url, detail },
            None => Error::UnexpectedBody { url, status, excerpt: excerpt(&body), retry_after },
        }
    }
}

impl SalesforceClient {
    /// `REQUEST_LIMIT_EXCEEDED` has two meanings (salesforce-api.md section 7): `TotalRequests`,
    /// the 24-hour quota, which retrying does not cure, and `ConcurrentRequests`, too many
    /// long-running requests in the org right now, which passes. Only the message tells them
    /// apart, so a message naming neither counts as the daily quota only when the org's usage is
    /// at its maximum; otherwise it is retried (a bounded number of times) like a 503.
    fn is_daily_quota(&self, detail: &ApiError) -> bool {
        if detail.message.contains("ConcurrentRequests") {
            return false;
        }
        detail.message.contains("TotalRequests") || self.api_usage().is_some_and(|u| u.used >= u.max)
    }
}

/// The highest version offered that sfetl supports (`OLDEST_API_VERSION..=NEWEST_API_VERSION`).
fn choose_version(offered: &[String]) -> Option<String> {
    let number = |v: &str| v.parse::<f64>().ok();
    let (oldest, newest) = (number(OLDEST_API_VERSION)?, number(NEWEST_API_VERSION)?);
    offered
        .iter()
        .filter_map(|v| number(v).map(|n| (n, v)))
        .filter(|(n, _)| (oldest..=newest).contains(n))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, v)| v.clone())
}

/// What to send: the instance-relative path, its query string, and a JSON body.
struct Request<'a> {
    method: reqwest::Method,
    path: &'a str,
    query: &'a [(&'a str, &'a str)],
    body: Option<&'a serde_json::Value>,
    /// An answer read as it arrives ([`SalesforceClient::get_streamed_counted`]).
    streamed: bool,
}

/// The longest a streamed body may take in all: a day, for a result set of millions of records
/// on a slow line. Each wait for its next bytes is bounded by the client's timeout.
const STREAMED_BODY_LIMIT: Duration = Duration::from_secs(86_400);

/// An answer whose body is still to be read.
struct Head {
    url: String,
    status: u16,
    response: reqwest::Response,
    /// `Sforce-Locator`, when there is a next result set.
    locator: Option<String>,
    retry_after: Option<Duration>,
}

/// A successful answer's body as it arrives, inflated when it came gzipped.
pub(crate) struct StreamedBody {
    url: String,
    response: reqwest::Response,
    /// The next result set's locator (`Sforce-Locator`).
    pub locator: Option<String>,
    /// `Sforce-NumberOfRecords`, when given: what the body must hold.
    pub records: Option<u64>,
    inflate: Option<flate2::write::MultiGzDecoder<Vec<u8>>>,
    /// The longest wait for the next bytes.
    stall: Duration,
}

impl StreamedBody {
    fn new(head: Head, stall: Duration) -> StreamedBody {
        let headers = head.response.headers();
        let gzipped = crate::body::is_gzipped(headers);
        let records =
            headers.get("sforce-numberofrecords").and_then(|h| h.to_str().ok()).and_then(|n| n.trim().parse().ok());
        StreamedBody {
            url: head.url,
            response: head.response,
            locator: head.locator,
            records,
            inflate: gzipped.then(|| flate2::write::MultiGzDecoder::new(Vec::new())),
            stall,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The body's next bytes (inflated), or `None` at its end. A body cut short, or stalled
    /// past the timeout, is a transient [`Error::Transport`].
    pub async fn next_bytes(&mut self) -> Result<Option<Vec<u8>>> {
        use std::io::Write;
        let url = &self.url;
        let transport = |message: String| Error::Transport { url: url.clone(), message };
        loop {
            let chunk = match tokio::time::timeout(self.stall, self.response.chunk()).await {
                Ok(chunk) => chunk.map_err(|e| transport(crate::error::chain(&e)))?,
                Err(_) => return Err(transport(format!("no data for {:?}", self.stall))),
            };
            let Some(inflate) = &mut self.inflate else { return Ok(chunk.map(|c| c.to_vec())) };
            let corrupt = |e: std::io::Error| transport(format!("a gzip body that does not inflate: {e}"));
            match chunk {
                Some(chunk) => inflate.write_all(&chunk).map_err(corrupt)?,
                None => {
                    // An unfinished member (a body cut at a chunk's end) fails here.
                    inflate.try_finish().map_err(corrupt)?;
                    let rest = std::mem::take(inflate.get_mut());
                    self.inflate = None;
                    return Ok((!rest.is_empty()).then_some(rest));
                }
            }
            let inflated = std::mem::take(inflate.get_mut());
            if !inflated.is_empty() {
                return Ok(Some(inflated));
            }
        }
    }
}

/// A successful answer, before decoding.
struct Answer {
    url: String,
    status: u16,
    body: bytes::Bytes,
    retry_after: Option<Duration>,
}

fn decode_json<T: DeserializeOwned>(answer: Answer) -> Result<T> {
    decode_body(answer, |body| serde_json::from_slice(body))
}

fn decode_body<T>(answer: Answer, decode: impl Fn(&[u8]) -> serde_json::Result<T>) -> Result<T> {
    decode(&answer.body).map_err(|_| Error::UnexpectedBody {
        url: answer.url,
        status: answer.status,
        excerpt: excerpt(&answer.body),
        retry_after: answer.retry_after,
    })
}

#[derive(serde::Deserialize)]
struct ApiErrorBody {
    #[serde(rename = "errorCode")]
    error_code: String,
    #[serde(default)]
    message: String,
}

fn parse_usage(header: &str) -> Option<ApiUsage> {
    let value = header.split(',').find_map(|kv| kv.trim().strip_prefix("api-usage="))?;
    let (used, max) = value.split_once('/')?;
    Some(ApiUsage { used: used.trim().parse().ok()?, max: max.trim().parse().ok()? })
}

/// The start of a body that is not the JSON expected, for the error message.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut cut: String = flat.chars().take(160).collect();
    if flat.chars().count() > 160 {
        cut.push('…');
    }
    if cut.is_empty() { "empty body".into() } else { cut }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_newest_both_sides_support() {
        let offered = |list: &[&str]| list.iter().map(|v| v.to_string()).collect::<Vec<_>>();
        assert_eq!(choose_version(&offered(&["62.0", "63.0", "64.0"])), Some("64.0".into()));
        assert_eq!(choose_version(&offered(&["66.0", "67.0", "68.0"])), Some(NEWEST_API_VERSION.into()));
        assert_eq!(choose_version(&offered(&["9.0", "10.0", "51.0"])), None);
    }

    #[test]
    fn reads_the_limit_header() {
        assert_eq!(parse_usage("api-usage=10018/100000"), Some(ApiUsage { used: 10018, max: 100_000 }));
        assert_eq!(parse_usage("per-app-api-usage=1/2"), None);
    }
}
