//! The composite resource, `POST /services/data/vNN.N/composite`: subrequests run one after
//! another in one call, each answered with its own status and body. "The entire series of
//! requests counts as a single call toward your API limits"; a call holds up to 25 subrequests,
//! of which up to 5 query operations (Query, QueryAll, or "Query More" for a next page) (REST API
//! Developer Guide, "Send Multiple Requests Using Composite" and "Composite"). Only GET queries
//! and next pages are served here: what a client reading data sends.

use crate::LoggedRequest;
use crate::server::{
    RecordCount, SimState, answer_next_page, answer_query, api_error, authenticated_body, json_response, log,
};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

/// Subrequests in one call, at most; and query operations among them.
const MAX_SUBREQUESTS: usize = 25;
const MAX_QUERIES: usize = 5;

#[derive(Deserialize)]
struct CompositeRequest {
    #[serde(rename = "compositeRequest")]
    requests: Vec<SubRequest>,
}

#[derive(Deserialize)]
struct SubRequest {
    method: String,
    url: String,
    #[serde(rename = "referenceId")]
    reference_id: String,
    /// Headers of this subrequest, over the call's own.
    #[serde(rename = "httpHeaders", default)]
    headers: HashMap<String, String>,
}

pub(crate) async fn composite(
    State(state): State<Arc<SimState>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let malformed = "The composite request body is not valid.";
    let request: CompositeRequest = match authenticated_body(&state, &version, &headers, &body, malformed) {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    let queries = request.requests.iter().filter(|r| r.url.contains("/query")).count();
    if request.requests.len() > MAX_SUBREQUESTS || queries > MAX_QUERIES {
        let message = format!(
            "A composite request holds up to {MAX_SUBREQUESTS} subrequests, of which up to {MAX_QUERIES} queries: this one has {} and {queries}",
            request.requests.len()
        );
        return api_error(StatusCode::BAD_REQUEST, "INVALID_INPUT", &message);
    }
    let call_options = headers.get("sforce-call-options").and_then(|v| v.to_str().ok()).map(String::from);
    let mut answers = Vec::new();
    for sub in request.requests {
        let response = run(&state, &sub, &headers).await;
        let status = response.status().as_u16();
        // Each subrequest is in the request log (with the object it read), under a path that
        // is not an API call of its own: the call is the composite request's.
        let (records, object) = response.extensions().get::<RecordCount>().map_or((0, None), |r| (r.0, Some(r.1)));
        if let Some(per_record) = state.config.latency_per_record {
            tokio::time::sleep(per_record * records as u32).await;
        }
        let path = format!("composite:{}", sub.url.split('?').next().unwrap_or_default());
        let (method, call_options) = (sub.method.clone(), call_options.clone());
        log(&state, LoggedRequest { method, path, status, records, object, fault: None, call_options });
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap_or_default();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        answers.push(serde_json::json!({
            "body": body, "httpHeaders": {}, "httpStatusCode": status, "referenceId": sub.reference_id
        }));
    }
    let body = serde_json::json!({ "compositeResponse": answers });
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

/// One subrequest, through the same handler as a request of its own.
async fn run(state: &Arc<SimState>, sub: &SubRequest, call_headers: &HeaderMap) -> Response {
    let mut headers = call_headers.clone();
    for (name, value) in &sub.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            headers.insert(name, value);
        }
    }
    let (path, raw_query) = match sub.url.split_once('?') {
        Some((path, query)) => (path, Some(query.to_string())),
        None => (sub.url.as_str(), None),
    };
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let not_found = || api_error(StatusCode::NOT_FOUND, "NOT_FOUND", "The requested resource does not exist");
    if sub.method != "GET" {
        return api_error(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "Only GET subrequests are served");
    }
    match parts.as_slice() {
        ["", "services", "data", version, "query" | "queryAll"] => {
            let version = version.to_string();
            answer_query(State(state.clone()), Path(version), RawQuery(raw_query), headers, false).await
        }
        ["", "services", "data", version, "query", locator] => {
            let key = (version.to_string(), locator.to_string());
            answer_next_page(State(state.clone()), Path(key), headers, false).await
        }
        _ => not_found(),
    }
}
