//! SOQL, the subset a connector uses: parsed, checked against the org's objects, and run.
//!
//! Errors carry Salesforce's `errorCode`s (`MALFORMED_QUERY`, `INVALID_FIELD`, `INVALID_TYPE`) and
//! messages in Salesforce's shape, caret diagram included.

mod lexer;
mod parser;
mod plan;

pub use parser::{Literal, Query, Select, parse};
pub use plan::{IdOrder, Plan, SelNode, plan, value_at};

/// A SOQL error as Salesforce reports it: `[{"message": ..., "errorCode": ...}]` with HTTP 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SoqlError {
    pub code: &'static str,
    pub message: String,
}

impl SoqlError {
    /// `unexpected token` with the caret diagram Salesforce draws under the query.
    pub(crate) fn malformed(soql: &str, pos: usize, token: &str) -> SoqlError {
        SoqlError { code: "MALFORMED_QUERY", message: diagram(soql, pos, &format!("unexpected token: '{token}'")) }
    }

    pub(crate) fn invalid_field(soql: &str, pos: usize, message: String) -> SoqlError {
        SoqlError { code: "INVALID_FIELD", message: diagram(soql, pos, &message) }
    }
}

fn diagram(soql: &str, pos: usize, message: &str) -> String {
    let column = soql.chars().take(pos).count();
    format!("\n{soql}\n{}^\nERROR at Row:1:Column:{}\n{message}", " ".repeat(column), column + 1)
}
