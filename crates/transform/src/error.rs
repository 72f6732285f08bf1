//! A record that does not fit its table's schema.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{table}.{column}: Salesforce sent {value}, expected {expected}")]
    BadValue { table: &'static str, column: &'static str, value: String, expected: &'static str },
    #[error("building {table}")]
    Arrow { table: &'static str, source: arrow::error::ArrowError },
}
