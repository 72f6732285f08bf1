//! Query results in Salesforce's JSON shape, written straight into a byte buffer: pages are
//! rendered from the prepared row list on request, so the simulator is never a benchmark's
//! bottleneck.

use crate::objects::ObjectDef;
use crate::soql::SelNode;
use crate::store::{OrgData, Row};
use crate::value::{Value, format_date, format_datetime};
use std::io::Write;

/// One page of a query: `{"totalSize", "done", ["nextRecordsUrl",] "records"}`.
pub struct PageSpec<'a> {
    pub api_version: &'a str,
    pub total_size: usize,
    pub next_records_url: Option<String>,
}

pub fn render_page(
    out: &mut Vec<u8>,
    data: &OrgData,
    object: &'static ObjectDef,
    selection: &[SelNode],
    rows: &[u32],
    page: &PageSpec<'_>,
) {
    let _ = write!(out, "{{\"totalSize\":{},\"done\":{}", page.total_size, page.next_records_url.is_none());
    if let Some(next) = &page.next_records_url {
        out.extend_from_slice(b",\"nextRecordsUrl\":");
        string(out, next);
    }
    out.extend_from_slice(b",\"records\":[");
    let table = data.table(object.name);
    for (n, &row) in rows.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        record(out, data, object, &table.rows[row as usize], selection, page.api_version);
    }
    out.extend_from_slice(b"]}");
}

fn record(out: &mut Vec<u8>, data: &OrgData, object: &ObjectDef, row: &Row, selection: &[SelNode], version: &str) {
    let id = row[0].as_str().unwrap_or_default();
    let _ = write!(
        out,
        "{{\"attributes\":{{\"type\":\"{0}\",\"url\":\"/services/data/v{version}/sobjects/{0}/{id}\"}}",
        object.name
    );
    for node in selection {
        match node {
            SelNode::Field { index, name } => {
                let _ = write!(out, ",\"{name}\":");
                value(out, &row[*index]);
            }
            SelNode::Parent { name, lookup, object: parent, children } => {
                let _ = write!(out, ",\"{name}\":");
                let parent_row = row[*lookup].as_str().and_then(|id| data.table(parent.name).by_id(id));
                match parent_row {
                    Some(parent_row) => record(out, data, parent, parent_row, children, version),
                    None => out.extend_from_slice(b"null"),
                }
            }
        }
    }
    out.push(b'}');
}

fn value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Str(s) => string(out, s),
        Value::DateTime(t) => {
            let _ = write!(out, "\"{}\"", format_datetime(*t));
        }
        Value::Date(d) => {
            let _ = write!(out, "\"{}\"", format_date(*d));
        }
    }
}

fn string(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping, without an intermediate String.
    let _ = serde_json::to_writer(&mut *out, s);
}
