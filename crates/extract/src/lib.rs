//! Salesforce extraction for sfetl: the OAuth 2.0 JWT bearer login, SOQL building, the REST
//! query API's pagination and Bulk API 2.0 query jobs, page by page so no object is ever held
//! whole in memory.
//!
//! The crate knows Salesforce, not sfetl's tables: callers say which object and fields to read
//! (the transform stage owns that list) and receive [`QueryPage`]s of records, decoded by their
//! [`RecordDecoder`] (JSON maps by default).

mod body;
mod bulk;
mod client;
mod composite;
mod describe;
mod error;
pub mod hosts;
pub mod ids;
mod job_polls;
pub mod keys;
mod lean;
mod login;
mod query;
mod records;
mod result_set;
mod retry;
mod secret;
pub mod shape;
pub mod soql;
#[cfg(test)]
mod testing;

pub use body::release_kept_answer_maps;
pub use bulk::{BulkQuery, PollPace};
pub use client::{
    ApiUsage, CALL_OPTIONS, ConnectionSettings, DEFAULT_MAX_BODY_MB, NEWEST_API_VERSION, OLDEST_API_VERSION,
    QuotaGuard, SalesforceClient,
};
pub use composite::{DEFAULT_PAGES_PER_CALL, FirstPage, PageAsk, QUERIES_PER_CALL};
pub use csv::StringRecord;
pub use describe::why_missing;
pub use error::{ApiError, Error, LoginError, Result, chain};
pub use login::{Credentials, LoginRoute, LoginSession, encoding_key};
pub use query::{QueryPage, QueryStream};
pub use records::{JsonRecords, RecordDecoder};
pub use retry::RetryPolicy;
pub use secret::Secret;
