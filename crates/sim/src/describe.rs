//! `GET /services/data/vNN.N/sobjects/{object}/describe`: an object's fields as the integration
//! user sees them (REST API Developer Guide, "sObject Describe"). Fields the org lacks or
//! field-level security hides are left out, as Salesforce leaves them out. Only the keys a client
//! reads are served; a real describe has many more.

use crate::objects;
use crate::server::{SimState, api_error, authenticate, json_response};
use crate::value::FieldKind;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use std::sync::Arc;

pub(crate) async fn describe(
    State(state): State<Arc<SimState>>,
    Path((version, object)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authenticate(&state, &version, &headers) {
        return refused;
    }
    let hidden = |name: &str| state.config.hidden_objects.iter().any(|o| o.eq_ignore_ascii_case(name));
    let Some(def) = objects::by_name(&object).filter(|d| !hidden(d.name)) else {
        return api_error(StatusCode::NOT_FOUND, "NOT_FOUND", "The requested resource does not exist");
    };
    let access = state.fields();
    let fields: Vec<serde_json::Value> = def
        .fields
        .iter()
        .filter(|f| access.visible(def.name, f.name))
        .map(|f| {
            serde_json::json!({
                "name": f.name,
                "type": type_name(f.kind),
                "nillable": f.kind != FieldKind::Id,
                "filterable": true,
                "relationshipName": f.relationship.map(|r| r.0),
                "referenceTo": f.relationship.map(|r| vec![r.1]).unwrap_or_default(),
            })
        })
        .collect();
    let body = serde_json::json!({
        "name": def.name,
        "label": def.name,
        "keyPrefix": def.key_prefix,
        "queryable": true,
        "fields": fields,
    });
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

/// The describe `type` of a field kind.
fn type_name(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Id => "id",
        FieldKind::Reference => "reference",
        FieldKind::String => "string",
        FieldKind::Boolean => "boolean",
        FieldKind::Int => "int",
        FieldKind::DateTime => "datetime",
        FieldKind::Date => "date",
    }
}
