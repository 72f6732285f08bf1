//! Bulk API 2.0 query jobs: create, poll (`UploadComplete` -> `InProgress` -> `JobComplete`),
//! abort, and results as CSV sets with `Sforce-Locator` / `Sforce-NumberOfRecords`.

use crate::server::{SimState, api_error, authenticate, authenticated_body, json_response};
use crate::soql::{self, Plan, value_at};
use crate::store::OrgData;
use crate::value::{Value, format_date, format_datetime};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A query job: the org as it was at creation, the rows, and when processing ends.
pub(crate) struct BulkJob {
    id: String,
    operation: String,
    data: Arc<OrgData>,
    plan: Arc<Plan>,
    rows: Vec<u32>,
    created: Instant,
    created_at: i64,
    processing: Duration,
    state: JobState,
}

#[derive(Clone, PartialEq)]
enum JobState {
    Running,
    Aborted,
    Failed(String),
}

impl BulkJob {
    fn state_name(&self) -> &'static str {
        match &self.state {
            JobState::Aborted => "Aborted",
            JobState::Failed(_) => "Failed",
            JobState::Running if self.created.elapsed() < self.processing / 10 => "UploadComplete",
            JobState::Running if self.created.elapsed() < self.processing => "InProgress",
            JobState::Running => "JobComplete",
        }
    }

    fn describe(&self, version: &str) -> serde_json::Value {
        let state = self.state_name();
        let mut job = serde_json::json!({
            "id": self.id,
            "operation": self.operation,
            "object": self.plan.object.name,
            "createdDate": format_datetime(self.created_at),
            "systemModstamp": format_datetime(self.created_at),
            "state": state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": version.parse::<f64>().unwrap_or(66.0),
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        });
        if state == "JobComplete" {
            job["numberRecordsProcessed"] = self.rows.len().into();
            job["retries"] = 0.into();
            job["totalProcessingTime"] = (self.processing.as_millis() as u64).into();
        }
        if let JobState::Failed(message) = &self.state {
            job["errorMessage"] = message.clone().into();
        }
        job
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct CreateJob {
    operation: String,
    query: String,
}

pub(crate) async fn create(
    State(state): State<Arc<SimState>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let malformed = "Expected a JSON job with operation and query";
    let request: CreateJob = match authenticated_body(&state, &version, &headers, &body, malformed) {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    if request.operation != "query" && request.operation != "queryAll" {
        return api_error(StatusCode::BAD_REQUEST, "INVALIDJOB", "Operation must be query or queryAll");
    }
    let parsed = match soql::parse(&request.query) {
        Ok(q) => q,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, e.code, &e.message),
    };
    let unsupported = [
        (parsed.select == soql::Select::Count, "COUNT()"),
        (!parsed.order_by.is_empty(), "ORDER BY"),
        (parsed.limit.is_some(), "LIMIT"),
        (parsed.offset.is_some(), "OFFSET"),
    ];
    if let Some((_, clause)) = unsupported.iter().find(|(used, _)| *used) {
        let message = format!("{clause} is not supported by Bulk API 2.0 query jobs");
        return api_error(StatusCode::BAD_REQUEST, "INVALIDJOB", &message);
    }
    let plan = match soql::plan(&request.query, &parsed, &state.fields()) {
        Ok(plan) => plan,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, e.code, &e.message),
    };
    let data = state.snapshot();
    let rows = plan.run(&data, state.sees(&plan));
    let number = state.next_cursor.fetch_add(1, Ordering::SeqCst);
    let id = crate::ids::record_id("750", &state.org_id[3..6], number);
    let config = &state.config;
    let processing = config.bulk_fixed_cost + config.bulk_per_record * rows.len() as u32;
    let job = BulkJob {
        id: id.clone(),
        operation: request.operation,
        data,
        plan: Arc::new(plan),
        rows,
        created: Instant::now(),
        created_at: chrono::Utc::now().timestamp() * 1000,
        processing,
        state: config.bulk_failure.clone().map_or(JobState::Running, JobState::Failed),
    };
    let version = version.trim_start_matches('v');
    let mut described = job.describe(version);
    described["state"] = "UploadComplete".into();
    if let Ok(mut jobs) = state.jobs.lock() {
        jobs.insert(id, job);
    }
    json_response(StatusCode::OK, described.to_string().into_bytes())
}

fn not_found() -> Response {
    api_error(StatusCode::NOT_FOUND, "NOT_FOUND", "The requested resource does not exist")
}

pub(crate) async fn status(
    State(state): State<Arc<SimState>>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authenticate(&state, &version, &headers) {
        return refused;
    }
    let Ok(jobs) = state.jobs.lock() else { return not_found() };
    match jobs.get(&id) {
        Some(job) => {
            json_response(StatusCode::OK, job.describe(version.trim_start_matches('v')).to_string().into_bytes())
        }
        None => not_found(),
    }
}

/// `GET .../jobs/query?queryLocator=L`: the org's query jobs, a page of
/// [`crate::SimConfig::jobs_per_list`] at a time, the next behind `nextRecordsUrl`. Salesforce
/// gives them "in an indeterminate order" ("Get Information About All Query Jobs", Bulk API 2.0
/// Developer Guide): here, by Id from the newest. What the list carries of a failure's reason
/// is not documented: here, nothing (the job's own answer has it).
pub(crate) async fn list(
    State(state): State<Arc<SimState>>,
    Path(version): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authenticate(&state, &version, &headers) {
        return refused;
    }
    let Some(start) = offset_at(&query_params(raw), "queryLocator") else { return invalid_locator() };
    let Ok(jobs) = state.jobs.lock() else { return not_found() };
    let mut ids: Vec<&String> = jobs.keys().collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    let per_page = state.config.jobs_per_list.max(1);
    let number = version.trim_start_matches('v');
    let records: Vec<serde_json::Value> = ids
        .iter()
        .skip(start)
        .take(per_page)
        .filter_map(|id| jobs.get(*id))
        .map(|job| {
            let mut listed = job.describe(number);
            if let Some(fields) = listed.as_object_mut() {
                fields.remove("errorMessage");
                fields.insert("jobType".into(), "V2Query".into());
            }
            listed
        })
        .collect();
    let end = start + records.len();
    let done = end >= ids.len();
    let next = (!done).then(|| format!("/services/data/{version}/jobs/query?queryLocator={}", encode_locator(end)));
    let body = serde_json::json!({ "done": done, "records": records, "nextRecordsUrl": next });
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

#[derive(serde::Deserialize)]
pub(crate) struct StateChange {
    state: String,
}

/// `PATCH .../jobs/query/{id}` with `{"state": "Aborted"}`.
pub(crate) async fn abort(
    State(state): State<Arc<SimState>>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(change): Json<StateChange>,
) -> Response {
    if let Err(refused) = authenticate(&state, &version, &headers) {
        return refused;
    }
    let Ok(mut jobs) = state.jobs.lock() else { return not_found() };
    let Some(job) = jobs.get_mut(&id) else { return not_found() };
    if change.state != "Aborted" || job.state_name() == "JobComplete" {
        return api_error(StatusCode::BAD_REQUEST, "INVALIDJOBSTATE", "Job can only be aborted while it runs");
    }
    job.state = JobState::Aborted;
    json_response(StatusCode::OK, job.describe(version.trim_start_matches('v')).to_string().into_bytes())
}

/// `GET .../jobs/query/{id}/results?locator=L&maxRecords=N`: one CSV result set.
pub(crate) async fn results(
    State(state): State<Arc<SimState>>,
    Path((version, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authenticate(&state, &version, &headers) {
        return refused;
    }
    let params = query_params(raw);
    let Ok(jobs) = state.jobs.lock() else { return not_found() };
    let Some(job) = jobs.get(&id) else { return not_found() };
    if job.state_name() != "JobComplete" {
        return api_error(StatusCode::BAD_REQUEST, "INVALIDJOBSTATE", "Job is not complete: results are not available");
    }
    let Some(start) = offset_at(&params, "locator").filter(|&n| n <= job.rows.len()) else {
        return invalid_locator();
    };
    let max = params.get("maxRecords").and_then(|m| m.parse::<usize>().ok()).filter(|&m| m > 0).unwrap_or(100_000);
    let end = (start + max).min(job.rows.len());
    let mut csv = String::new();
    let names: Vec<String> = job.plan.columns.iter().map(|(name, _)| quote(name)).collect();
    csv.push_str(&names.join(","));
    csv.push('\n');
    for &row in &job.rows[start..end] {
        let values: Vec<String> = job
            .plan
            .columns
            .iter()
            .map(|(_, path)| quote(&csv_value(value_at(&job.data, job.plan.object, row as usize, path))))
            .collect();
        csv.push_str(&values.join(","));
        csv.push('\n');
    }
    let next = if end < job.rows.len() { encode_locator(end) } else { "null".to_string() };
    let mut response = (StatusCode::OK, csv).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
    if let Ok(v) = HeaderValue::from_str(&next) {
        headers.insert("sforce-locator", v);
    }
    if let Ok(v) = HeaderValue::from_str(&(end - start).to_string()) {
        headers.insert("sforce-numberofrecords", v);
    }
    response.extensions_mut().insert(crate::server::RecordCount(end - start, job.plan.object.name));
    response
}

fn query_params(raw: Option<String>) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect()
}

/// The offset the locator parameter `name` names: 0 without one, `None` for one not given out.
fn offset_at(params: &std::collections::HashMap<String, String>, name: &str) -> Option<usize> {
    match params.get(name).map(String::as_str) {
        None | Some("") => Some(0),
        Some(locator) => decode_locator(locator),
    }
}

fn invalid_locator() -> Response {
    api_error(StatusCode::BAD_REQUEST, "INVALID_LOCATOR", "Invalid locator")
}

/// Locators are opaque to clients; here, the offset in base 36.
fn encode_locator(offset: usize) -> String {
    let mut n = offset;
    let mut digits = Vec::new();
    while n > 0 || digits.is_empty() {
        digits.push(char::from_digit((n % 36) as u32, 36).unwrap_or('0'));
        n /= 36;
    }
    digits.iter().rev().collect::<String>().to_uppercase()
}

fn decode_locator(locator: &str) -> Option<usize> {
    usize::from_str_radix(&locator.to_lowercase(), 36).ok()
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// A value as Bulk API 2.0 writes it: empty for null.
fn csv_value(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Int(n) => n.to_string(),
        Value::Str(s) => s.to_string(),
        Value::DateTime(t) => format_datetime(*t),
        Value::Date(d) => format_date(*d),
    }
}
