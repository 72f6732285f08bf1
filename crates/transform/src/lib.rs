//! Salesforce records to typed Arrow record batches.
//!
//! Each table sfetl writes is defined once, in [`tables`]: its columns, their Arrow types and the
//! Salesforce field each comes from. The extract stage asks a table for its SOQL field list; the
//! load stage writes the batches built here; the tests check against the same definitions.

mod batch;
mod companies;
mod decode;
mod error;
pub mod model;
pub mod rulebook;
pub mod runs;
pub mod tables;
mod values;

pub use companies::CompanyMatcher;
pub use decode::{DecodedPage, TableDecoder};
pub use error::{Error, Result};
pub use tables::{Column, ColumnType, Source, TableDef};
pub use values::parse_datetime;
