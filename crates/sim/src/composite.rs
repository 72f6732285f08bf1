//! The composite resource, `POST /services/data/vNN.N/composite`: subrequests run one after
//! another in one call, each answered with its own status and body. "The entire series of
//! requests counts as a single call toward your API limits"; a call holds up to 25 subrequests,
//! of which up to 5 query operations (Query, QueryAll, or "Query More" for a next page) (REST API
//! Developer Guide, "Send Multiple Requests Using Composite" and "Composite"). Only GET queries
//! and next pages are served here: what a client reading data sends.
//!
//! A subrequest's URL may take a value from an earlier answer, `@{p0.nextRecordsUrl}` ("You can
//! use the output of one request as the input to a subsequent request"): a client chains one
//! query's pages that way. A reference to a value that is not there (after a query's last page)
//! or to a subrequest that failed is not executed ("Dependent subrequests aren't executed"); the
//! error code Salesforce answers it with is not documented (`PROCESSING_HALTED` here), so a client
//! must treat any failure of it alike.

use crate::LoggedRequest;
use crate::server::{
    RecordCount, SimState, answer_next_page, answer_query, api_error, authenticated_body, json_response, log,
};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
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
    // A next page by reference is a query operation too ("Query More").
    let queries =
        request.requests.iter().filter(|r| r.url.contains("/query") || r.url.contains("nextRecordsUrl}")).count();
    if request.requests.len() > MAX_SUBREQUESTS || queries > MAX_QUERIES {
        let message = format!(
            "A composite request holds up to {MAX_SUBREQUESTS} subrequests, of which up to {MAX_QUERIES} queries: this one has {} and {queries}",
            request.requests.len()
        );
        return api_error(StatusCode::BAD_REQUEST, "INVALID_INPUT", &message);
    }
    let call_options = headers.get("sforce-call-options").and_then(|v| v.to_str().ok()).map(String::from);
    // The answer is put together from the subrequests' bodies as they are: a call of five
    // pages would otherwise cost the simulator a parse and a print of each.
    let mut answer = b"{\"compositeResponse\":[".to_vec();
    let mut bodies: HashMap<String, (u16, Bytes)> = HashMap::new();
    for (i, mut sub) in request.requests.into_iter().enumerate() {
        let resolved = match state.config.composite_references {
            true => resolve(&sub.url, &bodies),
            false => Ok(sub.url.clone()),
        };
        let response = match resolved {
            Ok(url) => {
                sub.url = url;
                run(&state, &sub, &headers).await
            }
            Err(message) => api_error(StatusCode::BAD_REQUEST, "PROCESSING_HALTED", &message),
        };
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
        if i > 0 {
            answer.push(b',');
        }
        answer.extend_from_slice(b"{\"body\":");
        answer.extend_from_slice(if body.is_empty() { b"null" } else { &body });
        let reference = serde_json::to_string(&sub.reference_id).unwrap_or_default();
        answer.extend_from_slice(
            format!(",\"httpHeaders\":{{}},\"httpStatusCode\":{status},\"referenceId\":{reference}}}").as_bytes(),
        );
        bodies.insert(sub.reference_id, (status, body));
    }
    answer.extend_from_slice(b"]}");
    json_response(StatusCode::OK, answer)
}

/// `url` with each `@{referenceId.field}` replaced by that field of the earlier answer (a
/// string: what a URL takes); the message of the failure when a reference names no value of a
/// successful answer.
fn resolve(url: &str, bodies: &HashMap<String, (u16, Bytes)>) -> Result<String, String> {
    let mut resolved = String::new();
    let mut rest = url;
    while let Some(start) = rest.find("@{") {
        let Some(end) = rest[start..].find('}').map(|end| start + end) else { break };
        let reference = &rest[start + 2..end];
        let (id, path) = reference.split_once('.').unwrap_or((reference, ""));
        let fields: Vec<&str> = path.split('.').collect();
        let value = bodies.get(id).filter(|(status, _)| *status < 400).and_then(|(_, body)| {
            let found = std::cell::RefCell::new(None);
            // Parsing stops at the value (an error of its own, so the rest of a page of records
            // is not read): `nextRecordsUrl` comes before `records`.
            let _ = FieldSeed(&fields, &found).deserialize(&mut serde_json::Deserializer::from_slice(body));
            found.into_inner()
        });
        let Some(value) = value else {
            return Err(format!("Invalid reference specified. No value for {reference} found in {id}."));
        };
        resolved.push_str(&rest[..start]);
        resolved.push_str(&value);
        rest = &rest[end + 1..];
    }
    resolved.push_str(rest);
    Ok(resolved)
}

/// The string at a path of fields in a JSON object, put in the cell; parsing then stops.
struct FieldSeed<'p>(&'p [&'p str], &'p std::cell::RefCell<Option<String>>);

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        match self.0 {
            [] => match Option::<serde_json::Value>::deserialize(deserializer)? {
                Some(serde_json::Value::String(value)) => {
                    *self.1.borrow_mut() = Some(value);
                    Err(serde::de::Error::custom("found"))
                }
                _ => Ok(()),
            },
            _ => deserializer.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match self.0.split_first() {
                Some((field, rest)) if key == *field => map.next_value_seed(FieldSeed(rest, self.1))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(())
    }
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
