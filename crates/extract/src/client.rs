//! The HTTP client: one session per org, re-login when it dies, bounded retries of transient
//! failures, and the API usage Salesforce reports on every response.

use crate::error::{ApiError, Error, Result};
use crate::login::{self, Credentials, LoginSession};
use crate::retry::{RetryPolicy, parse_retry_after};
use serde::de::DeserializeOwned;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How to talk to one org.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// `66.0`.
    pub api_version: String,
    /// An extra CA certificate (PEM) to trust, and where it came from (for error messages).
    pub ca_certificate: Option<(String, Vec<u8>)>,
    /// `Sforce-Query-Options: batchSize`, 200..=2000.
    pub batch_size: u32,
    /// Per request, headers and body.
    pub timeout: Duration,
    /// How transient failures (network, 5xx, cut bodies) are retried.
    pub retry: RetryPolicy,
    /// Limits on the org's daily API requests this run may spend.
    pub quota: QuotaGuard,
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
            api_version: "66.0".into(),
            ca_certificate: None,
            batch_size: 2000,
            timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            quota: QuotaGuard::default(),
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
}

impl SalesforceClient {
    pub fn new(credentials: Credentials, settings: ConnectionSettings) -> Result<SalesforceClient> {
        let mut builder = reqwest::Client::builder()
            .gzip(true)
            .connect_timeout(Duration::from_secs(20))
            .timeout(settings.timeout)
            .user_agent(concat!("sfetl/", env!("CARGO_PKG_VERSION")));
        if let Some((path, pem)) = &settings.ca_certificate {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| Error::CaFile { path: path.clone(), message: format!("not a PEM certificate: {e}") })?;
            builder = builder.tls_certs_merge([cert]);
        }
        let http = builder
            .build()
            .map_err(|e| Error::Transport { url: credentials.login_url.clone(), message: describe(&e) })?;
        Ok(SalesforceClient {
            http,
            credentials,
            settings,
            session: tokio::sync::RwLock::new(None),
            api_calls: AtomicU64::new(0),
            others_usage: AtomicU64::new(u64::MAX),
            retries: AtomicU64::new(0),
            usage: Mutex::new(None),
        })
    }

    /// Signs a new JWT and opens a session, replacing any previous one. Transient failures of
    /// the token request are retried; refusals are not.
    pub async fn login(&self) -> Result<LoginSession> {
        let session = self.with_retries(async || login::login(&self.http, &self.credentials).await).await?;
        *self.session.write().await = Some(session.clone());
        Ok(session)
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

    pub fn api_version(&self) -> &str {
        &self.settings.api_version
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
        let request = Request { method: reqwest::Method::GET, path, query, body: None };
        self.call(&request, calls, decode_json).await
    }

    /// POSTs a JSON body (a Bulk API job) and decodes the JSON answer. A retried POST may
    /// create a second job; it is never read, and costs the org nothing but its record.
    pub async fn post_json_counted<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
        calls: &AtomicU64,
    ) -> Result<T> {
        let request = Request { method: reqwest::Method::POST, path, query: &[], body: Some(body) };
        self.call(&request, calls, decode_json).await
    }

    /// GETs a text body (a Bulk API result set) with its `Sforce-Locator` header.
    pub async fn get_text_counted(
        &self,
        path: &str,
        query: &[(&str, &str)],
        calls: &AtomicU64,
    ) -> Result<(bytes::Bytes, Option<String>)> {
        let request = Request { method: reqwest::Method::GET, path, query, body: None };
        self.call(&request, calls, |answer| Ok((answer.body, answer.locator))).await
    }

    /// Sends `request` with the session, retrying transient failures (a failure to `decode` a
    /// successful answer included) and replacing a dead session once.
    async fn call<T>(
        &self,
        request: &Request<'_>,
        calls: &AtomicU64,
        decode: impl Fn(Answer) -> Result<T>,
    ) -> Result<T> {
        let mut renewed = false;
        loop {
            let session = self.current_session().await?;
            let attempt = async || decode(self.send_once(&session, request, calls).await?);
            match self.with_retries(attempt).await {
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
        *slot = Some(self.with_retries(async || login::login(&self.http, &self.credentials).await).await?);
        Ok(())
    }

    /// Runs `request` until it succeeds, fails for good, or the retry policy is spent.
    async fn with_retries<T>(&self, mut request: impl AsyncFnMut() -> Result<T>) -> Result<T> {
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
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| Error::Transport { url: url.clone(), message: describe(&e) })?;
        let status = response.status().as_u16();
        if status >= 500 {
            return Err(Error::UnexpectedBody { url, status, excerpt: "server error".into(), retry_after: None });
        }
        Ok(())
    }

    /// Reads `/limits` (the daily API quota) so the guard knows where the org stands before the
    /// first query; every later response's `Sforce-Limit-Info` keeps it current.
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
        let path = format!("/services/data/v{}/limits", self.settings.api_version);
        let limits: Limits = self.get(&path, &[]).await?;
        let usage = ApiUsage { used: limits.daily.max.saturating_sub(limits.daily.remaining), max: limits.daily.max };
        self.others_usage.store(usage.used.saturating_sub(self.api_calls()), Ordering::SeqCst);
        if let Ok(mut slot) = self.usage.lock() {
            // The response's own Sforce-Limit-Info may be newer; keep the higher count.
            *slot = Some(slot.filter(|u| u.used > usage.used).unwrap_or(usage));
        }
        Ok(self.api_usage().unwrap_or(usage))
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
        self.reserve_call()?;
        calls.fetch_add(1, Ordering::SeqCst);
        let url = format!("{}{}", session.instance_url, request.path);
        let transport = |e: reqwest::Error| Error::Transport { url: url.clone(), message: describe(&e) };
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
        let response = builder.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        if let Some(usage) =
            response.headers().get("sforce-limit-info").and_then(|h| h.to_str().ok()).and_then(parse_usage)
            && let Ok(mut slot) = self.usage.lock()
        {
            *slot = Some(usage);
        }
        let retry_after =
            response.headers().get("retry-after").and_then(|h| h.to_str().ok()).and_then(parse_retry_after);
        let locator = response
            .headers()
            .get("sforce-locator")
            .and_then(|h| h.to_str().ok())
            .filter(|l| !l.is_empty() && *l != "null")
            .map(String::from);
        let body = response.bytes().await.map_err(transport)?;
        if (200..300).contains(&status) {
            return Ok(Answer { url, status, body, locator, retry_after });
        }
        let detail = serde_json::from_slice::<Vec<ApiErrorBody>>(&body)
            .ok()
            .and_then(|errors| errors.into_iter().next())
            .map(|e| ApiError { status, code: e.error_code, message: e.message, retry_after });
        match detail {
            Some(detail) if detail.code == "REQUEST_LIMIT_EXCEEDED" => Err(Error::QuotaExhausted),
            Some(detail) => Err(Error::Api { url, detail }),
            None => Err(Error::UnexpectedBody { url, status, excerpt: excerpt(&body), retry_after }),
        }
    }
}

/// What to send: the instance-relative path, its query string, and a JSON body.
struct Request<'a> {
    method: reqwest::Method,
    path: &'a str,
    query: &'a [(&'a str, &'a str)],
    body: Option<&'a serde_json::Value>,
}

/// A successful answer, before decoding.
struct Answer {
    url: String,
    status: u16,
    body: bytes::Bytes,
    /// `Sforce-Locator`, when there is a next result set.
    locator: Option<String>,
    retry_after: Option<Duration>,
}

fn decode_json<T: DeserializeOwned>(answer: Answer) -> Result<T> {
    serde_json::from_slice(&answer.body).map_err(|_| Error::UnexpectedBody {
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

/// A reqwest error with its causes (reqwest alone says only "error sending request").
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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
    fn reads_the_limit_header() {
        assert_eq!(parse_usage("api-usage=10018/100000"), Some(ApiUsage { used: 10018, max: 100_000 }));
        assert_eq!(parse_usage("per-app-api-usage=1/2"), None);
    }
}
