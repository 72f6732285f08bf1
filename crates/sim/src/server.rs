//! The HTTP side: routes, authentication, quota, cursors, gzip, faults and the request log.

use crate::auth::{self, ConnectedApp, Session};
use crate::faults::{Fault, FaultRule};
use crate::ids::record_id;
use crate::objects::FieldAccess;
use crate::render::{PageSpec, render_page};
use crate::soql::{self, Plan};
use crate::store::OrgData;
use crate::{LoggedRequest, SimConfig};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// API versions the simulated org answers, newest last.
pub const API_VERSIONS: &[(&str, &str)] = &[
    ("62.0", "Winter '25"),
    ("63.0", "Spring '25"),
    ("64.0", "Summer '25"),
    ("65.0", "Winter '26"),
    ("66.0", "Spring '26"),
    ("67.0", "Summer '26"),
];

pub(crate) struct SimState {
    pub config: SimConfig,
    pub base_url: String,
    pub org: RwLock<Arc<OrgData>>,
    pub org_id: String,
    pub apps: RwLock<Vec<ConnectedApp>>,
    pub sessions: Mutex<HashMap<String, Session>>,
    /// Every access token handed out, expired or not (for tests that look for leaks).
    pub issued: Mutex<Vec<String>>,
    pub cursors: Mutex<HashMap<String, Cursor>>,
    pub api_used: AtomicU64,
    pub log: Mutex<Vec<LoggedRequest>>,
    pub faults: Mutex<Vec<FaultRule>>,
    pub next_cursor: AtomicU64,
    pub jobs: Mutex<HashMap<String, crate::bulk::BulkJob>>,
    /// The fields the integration user's profile lets it read; an admin may grant more later
    /// ([`crate::Sim::set_hidden_fields`]).
    pub fields: std::sync::RwLock<FieldAccess>,
}

/// An open query: the org as it was when the query ran, and the matching rows in order.
#[derive(Clone)]
pub(crate) struct Cursor {
    token: String,
    data: Arc<OrgData>,
    plan: Arc<Plan>,
    rows: Arc<Vec<u32>>,
    last_used: Instant,
}

/// Set by handlers on their response so the request log can count records.
#[derive(Clone, Copy)]
pub(crate) struct RecordCount(pub usize, pub &'static str);

impl SimState {
    pub fn new(config: SimConfig, base_url: String, data: OrgData) -> SimState {
        let org_id = data.table("Organization").rows[0][0].as_str().unwrap_or_default().to_string();
        let api_used = AtomicU64::new(config.api_used_at_start);
        let fields = FieldAccess::new(config.state_country_picklists, &config.hidden_fields);
        SimState {
            fields: std::sync::RwLock::new(fields),
            config,
            base_url,
            org: RwLock::new(Arc::new(data)),
            org_id,
            apps: RwLock::new(Vec::new()),
            sessions: Mutex::new(HashMap::new()),
            issued: Mutex::new(Vec::new()),
            cursors: Mutex::new(HashMap::new()),
            api_used,
            log: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
            next_cursor: AtomicU64::new(1),
            jobs: Mutex::new(HashMap::new()),
        }
    }

    pub fn audience(&self) -> &str {
        self.config.login_audience.as_deref().unwrap_or(&self.base_url)
    }

    /// The same server under the host name `localhost`: the org's My Domain.
    pub fn my_domain_url(&self) -> String {
        self.base_url.replacen("127.0.0.1", "localhost", 1)
    }

    /// Whether the integration user may see a row of the plan's object: sharing can hide users (a
    /// query returns only the records the user may see; for users, the org's user sharing: "User
    /// Sharing", Salesforce Help). Checked as the query runs, before its LIMIT, which caps the
    /// rows returned ("LIMIT", SOQL and SOSL Reference): `ORDER BY Id DESC LIMIT 1` is the last
    /// row the user sees, not none when the last row is hidden.
    pub fn sees(&self, plan: &Plan) -> impl Fn(usize) -> bool + use<> {
        let every = self.config.hidden_user_every.filter(|&n| n > 0 && plan.object.name == "User");
        move |row| every.is_none_or(|every| !(row + 1).is_multiple_of(every))
    }

    /// The fields the integration user may read now.
    pub fn fields(&self) -> FieldAccess {
        self.fields.read().map(|f| f.clone()).unwrap_or_else(|e| e.into_inner().clone())
    }

    /// The API versions this org serves, oldest first.
    pub fn api_versions(&self) -> &'static [(&'static str, &'static str)] {
        let newest =
            self.config.max_api_version.as_deref().and_then(|max| API_VERSIONS.iter().position(|(v, _)| *v == max));
        &API_VERSIONS[..newest.map_or(API_VERSIONS.len(), |i| i + 1)]
    }

    pub fn snapshot(&self) -> Arc<OrgData> {
        self.org.read().map(|o| o.clone()).unwrap_or_else(|e| e.into_inner().clone())
    }
}

pub(crate) fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/services/oauth2/token", post(token))
        .route("/services/data", get(versions))
        .route("/services/data/", get(versions))
        .route("/services/data/{version}/sobjects/{object}/describe", get(crate::describe::describe))
        .route("/services/data/{version}/sobjects/{object}/describe/", get(crate::describe::describe))
        .route("/services/data/{version}/limits", get(limits))
        .route("/services/data/{version}/limits/", get(limits))
        .route("/services/data/{version}/query", get(query))
        .route("/services/data/{version}/query/", get(query))
        .route("/services/data/{version}/queryAll", get(query))
        .route("/services/data/{version}/queryAll/", get(query))
        .route("/services/data/{version}/query/{locator}", get(next_page))
        .route("/services/data/{version}/composite", post(crate::composite::composite))
        .route("/services/data/{version}/jobs/query", post(crate::bulk::create).get(crate::bulk::list))
        .route("/services/data/{version}/jobs/query/{id}", get(crate::bulk::status).patch(crate::bulk::abort))
        .route("/services/data/{version}/jobs/query/{id}/results", get(crate::bulk::results))
        .layer(axum::middleware::from_fn_with_state(state.clone(), around))
        .with_state(state)
}

pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json;charset=UTF-8"));
    response
}

/// Salesforce's REST error body: `[{"message": ..., "errorCode": ...}]`.
pub(crate) fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!([{ "message": message, "errorCode": code }]);
    json_response(status, body.to_string().into_bytes())
}

async fn token(State(state): State<Arc<SimState>>, headers: HeaderMap, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let refuse = |error: &str, description: &str| {
        let body = serde_json::json!({ "error": error, "error_description": description });
        json_response(StatusCode::BAD_REQUEST, body.to_string().into_bytes())
    };
    if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return refuse("unsupported_grant_type", "grant type not supported");
    }
    let Some(assertion) = form.get("assertion") else {
        return refuse("invalid_grant", "invalid assertion");
    };
    let at_my_domain =
        headers.get(header::HOST).and_then(|h| h.to_str().ok()).is_some_and(|h| h.starts_with("localhost"));
    if state.config.login_hosts_blocked && !at_my_domain {
        // What such an org answers at the login host is not documented (unsure): the generic
        // refusal is the least helpful reading, so the client must not depend on its text.
        return refuse("invalid_grant", "authentication failure");
    }
    let apps = state.apps.read().map(|a| a.clone()).unwrap_or_default();
    // The org's clock may run ahead of the client's (`clock_skew_seconds`).
    let now = chrono::Utc::now().timestamp() + state.config.clock_skew_seconds;
    let my_domain = state.my_domain_url();
    let (claims, app) = match auth::verify_assertion(assertion, &apps, state.audience(), &my_domain, now) {
        Ok(ok) => ok,
        Err(refusal) => return refuse(refusal.error, refusal.description),
    };
    let data = state.snapshot();
    let users = data.table("User");
    let username = users.column("Username");
    let Some(user) = users.rows.iter().position(|row| row[username].as_str() == Some(claims.username.as_str())) else {
        return refuse("invalid_grant", "user not found");
    };
    let user_id = users.get(user, "Id").as_str().unwrap_or_default().to_string();
    let frozen = data.is_frozen(&user_id);
    if users.get(user, "IsActive") != &crate::value::Value::Bool(true) || frozen {
        return refuse("invalid_grant", "authentication failure");
    }
    let profile_name = users
        .get(user, "ProfileId")
        .as_str()
        .and_then(|p| data.table("Profile").by_id(p).and_then(|row| row[1].as_str().map(String::from)));
    if !profile_name.is_some_and(|p| app.authorized_profiles.iter().any(|a| a.eq_ignore_ascii_case(&p))) {
        return refuse("invalid_grant", "user hasn't approved this consumer");
    }
    let token = auth::new_access_token(&state.org_id);
    if let Ok(mut sessions) = state.sessions.lock() {
        sessions.insert(token.clone(), Session { last_used: Instant::now() });
    }
    if let Ok(mut issued) = state.issued.lock() {
        issued.push(token.clone());
    }
    let body = serde_json::json!({
        "access_token": token,
        "scope": "api",
        // Salesforce answers with the org's My Domain. The simulator's login host doubles as its
        // instance for clients that log in there, so that one URL serves both in tests.
        "instance_url": if at_my_domain { my_domain.clone() } else { state.base_url.clone() },
        "id": format!("{}/id/{}/{}", state.audience().trim_end_matches('/'), state.org_id, user_id),
        "token_type": "Bearer",
        "issued_at": (chrono::Utc::now().timestamp_millis()).to_string(),
        "signature": "c2ltdWxhdGVkLXNpZ25hdHVyZQ==",
    });
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

async fn versions(State(state): State<Arc<SimState>>) -> Response {
    let list: Vec<_> = state
        .api_versions()
        .iter()
        .map(|(v, label)| serde_json::json!({ "version": v, "url": format!("/services/data/v{v}"), "label": label }))
        .collect();
    json_response(StatusCode::OK, serde_json::Value::from(list).to_string().into_bytes())
}

/// The caller's session token, after the checks Salesforce makes on every API call: the
/// version exists, the header is a bearer token, the session is alive, the daily quota is not spent.
// The error is the response to send as it is, as axum handlers return them: boxing it would buy
// nothing on a path taken once per request.
#[allow(clippy::result_large_err)]
pub(crate) fn authenticate(state: &SimState, version: &str, headers: &HeaderMap) -> Result<String, Response> {
    authorize(state, version, headers, true)
}

/// An authenticated call's JSON body, or the answer Salesforce gives when it is not one.
#[allow(clippy::result_large_err)]
pub(crate) fn authenticated_body<T: serde::de::DeserializeOwned>(
    state: &SimState,
    version: &str,
    headers: &HeaderMap,
    body: &[u8],
    malformed: &str,
) -> Result<T, Response> {
    authenticate(state, version, headers)?;
    serde_json::from_slice(body).map_err(|_| api_error(StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR", malformed))
}

/// [`authenticate`], counting the call against the daily quota or not (a composite call's
/// subrequests: the composite call is the one call).
#[allow(clippy::result_large_err)]
pub(crate) fn authorize(
    state: &SimState,
    version: &str,
    headers: &HeaderMap,
    counted: bool,
) -> Result<String, Response> {
    let known = version.strip_prefix('v').is_some_and(|v| state.api_versions().iter().any(|(known, _)| *known == v));
    if !known {
        return Err(api_error(StatusCode::NOT_FOUND, "NOT_FOUND", "The requested resource does not exist"));
    }
    let header = headers.get(header::AUTHORIZATION).and_then(|h| h.to_str().ok()).unwrap_or_default();
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("OAuth "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| api_error(StatusCode::UNAUTHORIZED, "INVALID_AUTH_HEADER", "INVALID_HEADER_TYPE"))?;
    let mut sessions = state.sessions.lock().map_err(|_| internal())?;
    let alive = match sessions.get_mut(token) {
        Some(session) if !session.expired(state.config.session_timeout) => {
            session.last_used = Instant::now();
            true
        }
        _ => false,
    };
    if !alive {
        sessions.remove(token);
        return Err(api_error(StatusCode::UNAUTHORIZED, "INVALID_SESSION_ID", "Session expired or invalid"));
    }
    drop(sessions);
    if !counted {
        return Ok(token.to_string());
    }
    let used = state.api_used.fetch_add(1, Ordering::SeqCst) + 1;
    if used > state.config.daily_api_max {
        state.api_used.fetch_sub(1, Ordering::SeqCst);
        return Err(api_error(StatusCode::FORBIDDEN, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."));
    }
    Ok(token.to_string())
}

fn internal() -> Response {
    api_error(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN_EXCEPTION", "An unexpected error occurred.")
}

async fn limits(State(state): State<Arc<SimState>>, Path(version): Path<String>, headers: HeaderMap) -> Response {
    if let Err(refused) = authenticate(&state, &version, &headers) {
        return refused;
    }
    if state.config.limits_refused {
        let message = "You do not have the permission to view this resource: View Setup and Configuration";
        return api_error(StatusCode::FORBIDDEN, "INSUFFICIENT_ACCESS", message);
    }
    let max = state.config.daily_api_max;
    let used = state.api_used.load(Ordering::SeqCst).min(max);
    let body = serde_json::json!({
        "DailyApiRequests": { "Max": max, "Remaining": max - used },
        "DailyBulkV2QueryJobs": { "Max": 10000, "Remaining": 10000 },
        "DailyBulkV2QueryFileStorageMB": { "Max": 976562, "Remaining": 976562 },
    });
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

/// `batchSize` from `Sforce-Query-Options`, within Salesforce's 200..=2000, then the
/// simulator's own cap (Salesforce may return smaller pages than asked).
fn page_size(state: &SimState, headers: &HeaderMap) -> usize {
    let asked = headers
        .get("sforce-query-options")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.split(',').find_map(|kv| kv.trim().strip_prefix("batchSize=")))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .map_or(2000, |n| n.clamp(200, 2000));
    state.config.max_page_size.map_or(asked, |cap| asked.min(cap.max(1)))
}

async fn query(
    State(state): State<Arc<SimState>>,
    Path(version): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    answer_query(State(state), Path(version), RawQuery(raw), headers, true).await
}

/// A query's first page; `counted`: whether it is an API call of its own.
pub(crate) async fn answer_query(
    State(state): State<Arc<SimState>>,
    Path(version): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    counted: bool,
) -> Response {
    let token = match authorize(&state, &version, &headers, counted) {
        Ok(token) => token,
        Err(refused) => return refused,
    };
    let q = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.into_owned());
    let Some(soql_text) = q else {
        return api_error(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", "A query string has to be specified");
    };
    let fields = state.fields();
    let plan = match soql::parse(&soql_text).and_then(|query| soql::plan(&soql_text, &query, &fields)) {
        Ok(mut plan) => {
            plan.ids = state.config.id_order;
            plan
        }
        Err(e) => return api_error(StatusCode::BAD_REQUEST, e.code, &e.message),
    };
    if state.config.hidden_objects.iter().any(|o| o.eq_ignore_ascii_case(plan.object.name)) {
        // What a user without "View Setup and Configuration" gets for setup objects.
        let message = format!(
            "sObject type '{}' is not supported. If you are attempting to use a custom object, be sure to append \
             the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.",
            plan.object.name
        );
        return api_error(StatusCode::BAD_REQUEST, "INVALID_TYPE", &message);
    }
    let data = state.snapshot();
    let rows = plan.run(&data, state.sees(&plan));
    if state.config.query_timeout_above.is_some_and(|limit| rows.len() > limit) {
        return api_error(StatusCode::BAD_REQUEST, "QUERY_TIMEOUT", "Your query request was running for too long.");
    }
    if plan.selection.is_none() {
        let body = serde_json::json!({ "totalSize": rows.len(), "done": true, "records": [] });
        let mut response = json_response(StatusCode::OK, body.to_string().into_bytes());
        // A COUNT() is a call about the object too (the request log says which).
        response.extensions_mut().insert(RecordCount(0, plan.object.name));
        return response;
    }
    let number = state.next_cursor.fetch_add(1, Ordering::SeqCst);
    let locator = record_id("01g", &state.org_id[3..6], number);
    let cursor = Cursor { token, data, plan: Arc::new(plan), rows: Arc::new(rows), last_used: Instant::now() };
    let version = version.trim_start_matches('v').to_string();
    let size = page_size(&state, &headers);
    let response = render(&cursor, &locator, 0, size, &version);
    if cursor.rows.len() > size
        && let Ok(mut cursors) = state.cursors.lock()
    {
        // Cursors left idle past the timeout are dropped as new ones open, not only when asked
        // for again: a client abandons a cursor whenever it reads the rest another way (sfetl's
        // ranges and Bulk jobs do after a big table's second page), and each holds the org's
        // state as it was, which a later change to the org then copies.
        let idle = state.config.locator_idle_timeout;
        cursors.retain(|_, open| open.last_used.elapsed() <= idle);
        cursors.insert(locator, cursor);
    }
    response
}

fn render(cursor: &Cursor, locator: &str, offset: usize, size: usize, version: &str) -> Response {
    let end = (offset + size).min(cursor.rows.len());
    let next = (end < cursor.rows.len()).then(|| format!("/services/data/v{version}/query/{locator}-{end}"));
    let page = PageSpec { api_version: version, total_size: cursor.rows.len(), next_records_url: next };
    // Sized for a wide User record, so the buffer is not regrown (and copied) while rendering.
    let mut body = Vec::with_capacity(1024 * (end - offset) + 256);
    let selection = cursor.plan.selection.as_deref().unwrap_or_default();
    render_page(&mut body, &cursor.data, cursor.plan.object, selection, &cursor.rows[offset..end], &page);
    let mut response = json_response(StatusCode::OK, body);
    response.extensions_mut().insert(RecordCount(end - offset, cursor.plan.object.name));
    response
}

async fn next_page(
    State(state): State<Arc<SimState>>,
    Path(key): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    answer_next_page(State(state), Path(key), headers, true).await
}

/// A query's next page; `counted`: whether it is an API call of its own.
pub(crate) async fn answer_next_page(
    State(state): State<Arc<SimState>>,
    Path((version, locator)): Path<(String, String)>,
    headers: HeaderMap,
    counted: bool,
) -> Response {
    let token = match authorize(&state, &version, &headers, counted) {
        Ok(token) => token,
        Err(refused) => return refused,
    };
    let invalid = || api_error(StatusCode::BAD_REQUEST, "INVALID_QUERY_LOCATOR", "invalid query locator");
    let Some((id, offset)) = locator.rsplit_once('-') else { return invalid() };
    let Ok(offset) = offset.parse::<usize>() else { return invalid() };
    let size = page_size(&state, &headers);
    let idle = state.config.locator_idle_timeout;
    // Rendering happens outside the lock: a cursor's data is shared, immutable, behind `Arc`s.
    let cursor = {
        let Ok(mut cursors) = state.cursors.lock() else { return internal() };
        let Some(cursor) = cursors.get_mut(id) else { return invalid() };
        // A locator belongs to the session that opened it, and dies when left idle.
        let expired = cursor.last_used.elapsed() > idle;
        if cursor.token != token || expired || offset >= cursor.rows.len() {
            if expired {
                cursors.remove(id);
            }
            return invalid();
        }
        cursor.last_used = Instant::now();
        let cursor = cursor.clone();
        if offset + size >= cursor.rows.len() {
            cursors.remove(id);
        }
        cursor
    };
    let version = version.trim_start_matches('v').to_string();
    render(&cursor, id, offset, size, &version)
}

/// Around every request: faults, `Sforce-Limit-Info`, gzip, and the request log.
async fn around(State(state): State<Arc<SimState>>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let call_options = request.headers().get("sforce-call-options").and_then(|h| h.to_str().ok()).map(String::from);
    let wants_gzip = request
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h.contains("gzip"));
    let fault = state
        .faults
        .lock()
        .ok()
        .and_then(|mut rules| rules.iter_mut().find_map(|r| r.hits(&path).then(|| r.fault.clone())));
    match &fault {
        Some(Fault::ExpireSessions) => {
            if let Ok(mut s) = state.sessions.lock() {
                s.clear();
            }
        }
        Some(Fault::InvalidateLocators) => {
            if let Ok(mut c) = state.cursors.lock() {
                c.clear();
            }
        }
        _ => {}
    }
    if let Some(early) = early_fault(fault.as_ref()) {
        let status = early.status().as_u16();
        log(&state, LoggedRequest { method, path, status, records: 0, object: None, fault, call_options });
        return early;
    }
    if let Some(delay) = state.config.latency_per_request {
        tokio::time::sleep(delay).await;
    }
    if let Some(Fault::SlowAnswer(delay)) = &fault {
        tokio::time::sleep(*delay).await;
    }
    let query = request.uri().query().unwrap_or_default().to_string();
    let mut response = next.run(request).await;
    if let Some(fault) = &fault {
        response = rewrite(response, fault, &path, &query).await;
    }
    let (records, object) = response.extensions().get::<RecordCount>().map_or((0, None), |r| (r.0, Some(r.1)));
    if let Some(per_record) = state.config.latency_per_record {
        tokio::time::sleep(per_record * records as u32).await;
    }
    let status = response.status();
    if path.starts_with("/services/data/v") && status != StatusCode::UNAUTHORIZED {
        let used = state.api_used.load(Ordering::SeqCst).min(state.config.daily_api_max);
        let info = format!("api-usage={used}/{}", state.config.daily_api_max);
        if let Ok(value) = HeaderValue::from_str(&info) {
            response.headers_mut().insert("sforce-limit-info", value);
        }
    }
    log(
        &state,
        LoggedRequest {
            method,
            path: path.clone(),
            status: status.as_u16(),
            records,
            object,
            fault: fault.clone(),
            call_options,
        },
    );
    if wants_gzip || matches!(fault, Some(Fault::TruncatedBody | Fault::StalledBody(_))) {
        let (mut parts, body) = response.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else { return internal() };
        let bytes = if wants_gzip {
            parts.headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            gzip(&bytes)
        } else {
            bytes.to_vec()
        };
        parts.headers.remove(header::CONTENT_LENGTH);
        let body = match fault {
            Some(Fault::TruncatedBody) => broken_body(bytes, None),
            Some(Fault::StalledBody(stall)) => broken_body(bytes, Some(stall)),
            _ => Body::from(bytes),
        };
        return Response::from_parts(parts, body);
    }
    response
}

/// The faults that alter a good answer: its JSON (`instance_url`, `nextRecordsUrl`) or its
/// `Sforce-Locator`.
async fn rewrite(response: Response, fault: &Fault, path: &str, query: &str) -> Response {
    if let Fault::RepeatLocator = fault {
        let (mut parts, body) = response.into_parts();
        let asked = query.split('&').find_map(|kv| kv.strip_prefix("locator="));
        if let Some(value) = asked.and_then(|l| HeaderValue::from_str(l).ok()) {
            parts.headers.insert("sforce-locator", value);
        }
        return Response::from_parts(parts, body);
    }
    if let Fault::GarbledJson = fault {
        let (mut parts, body) = response.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else { return internal() };
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::from([&bytes[..], b"<!-- -->"].concat()));
    }
    let field = match fault {
        Fault::ForeignInstance(_) => "instance_url",
        Fault::HostileNextUrl(_) | Fault::RepeatNextUrl => "nextRecordsUrl",
        _ => return response,
    };
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else { return internal() };
    let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    if let Some(value) = json.get_mut(field) {
        let current = value.as_str().unwrap_or_default().to_string();
        *value = serde_json::Value::String(match fault {
            Fault::ForeignInstance(url) => url.clone(),
            Fault::HostileNextUrl(prefix) => format!("{prefix}{current}"),
            _ => path.to_string(),
        });
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(json.to_string()))
}

fn early_fault(fault: Option<&Fault>) -> Option<Response> {
    Some(match fault? {
        Fault::ServiceUnavailableHtml => {
            let html = "<html><head><title>Service Unavailable</title></head><body><h1>Down for maintenance</h1>\
                        <p>Salesforce is temporarily unavailable. Please try again later.</p></body></html>";
            let mut r = (StatusCode::SERVICE_UNAVAILABLE, html).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
            r
        }
        Fault::InternalError => internal(),
        // Too many long-running requests in the org at once: the same errorCode as the daily
        // quota, told apart by its message only (salesforce-api.md section 7).
        Fault::ConcurrentRequests => {
            api_error(StatusCode::FORBIDDEN, "REQUEST_LIMIT_EXCEEDED", "ConcurrentRequests Limit exceeded.")
        }
        Fault::QueryTimeout => {
            api_error(StatusCode::BAD_REQUEST, "QUERY_TIMEOUT", "Your query request was running for too long.")
        }
        Fault::Redirect(origin) => {
            let mut r = StatusCode::TEMPORARY_REDIRECT.into_response();
            if let Ok(location) = HeaderValue::from_str(origin) {
                r.headers_mut().insert(header::LOCATION, location);
            }
            r
        }
        Fault::ResetConnection => {
            let stream = futures_util::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"))
            });
            Response::new(Body::from_stream(stream))
        }
        _ => return None,
    })
}

/// The first half of a body, then an error (the connection drops) or a stall.
fn broken_body(bytes: Vec<u8>, stall: Option<std::time::Duration>) -> Body {
    let half = Bytes::from(bytes[..bytes.len() / 2].to_vec());
    let stream = futures_util::stream::unfold(0u8, move |step| {
        let half = half.clone();
        async move {
            match step {
                0 => Some((Ok(half), 1)),
                1 => {
                    if let Some(stall) = stall {
                        tokio::time::sleep(stall).await;
                    }
                    Some((Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "truncated")), 2))
                }
                _ => None,
            }
        }
    });
    Body::from_stream(stream)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 4), flate2::Compression::fast());
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

pub(crate) fn log(state: &SimState, entry: LoggedRequest) {
    if let Ok(mut log) = state.log.lock() {
        log.push(entry);
    }
}
