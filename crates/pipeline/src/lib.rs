//! The sfetl pipeline as a library: what a scheduler or a Rust program calls to extract
//! Salesforce orgs into Parquet and DuckDB without spawning the `sfetl` binary.
//!
//! A pipeline file ([`Pipeline::load`]) names the output and the orgs; [`run`] reads every table
//! of every org ([`sfetl_extract`]), builds typed Arrow batches ([`sfetl_transform`]), writes
//! Parquet and publishes the DuckDB views ([`sfetl_load`]), and returns a typed, serializable
//! [`RunSummary`]. Data flows one way: extract -> transform -> load, orchestrated here. An
//! output on object storage (`s3://…`) is run org by org in a local working copy and published
//! to it ([`sfetl_lake`]); [`RunOptions::shard`] takes one worker's share of the orgs, and
//! [`pull`] mirrors a lake for readers.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let pipeline = sfetl_pipeline::Pipeline::load("pipelines/prod.toml".as_ref())?;
//! let summary = sfetl_pipeline::run(&pipeline, sfetl_pipeline::RunOptions::default()).await?;
//! println!("{}", serde_json::to_string_pretty(&summary)?);
//! # Ok(()) }
//! ```
//!
//! The run never blocks an async worker: Parquet encoding and DuckDB work go through
//! `tokio::task::spawn_blocking`, so it runs on a current-thread runtime as well.

pub mod check;
mod config;
mod connect;
mod connection;
mod counted_by_key;
#[cfg(feature = "demo")]
mod demo;
mod derive;
mod encoder;
mod error;
mod kept_by_key;
mod key_map;
mod lake;
mod lock;
mod pages;
mod previous;
mod progress;
mod pull;
mod ranges;
mod read_plan;
mod read_table;
mod run;
mod scope;
mod shard;
mod shared_calls;
mod state;
mod summary;
mod verify;

pub use config::{
    BulkChoice, CompanyFilter, ConfigError, Connection, OrgPlan, OrgSettings, PORTAL_USER_TYPES, Pipeline,
    PipelineFile, SimulatedOrg,
};
pub use connection::my_domain;
pub use error::{OrgError, RunError, chain};
pub use lake::{default_work_dir, worker_name};
pub use progress::{NoProgress, Progress, TableProgress};
pub use pull::{PullSummary, PulledOrg, lake_views_sql, pull};
pub use run::{Mode, RunOptions, run};
pub use shard::Shard;
pub use state::Cursor;
pub use summary::{DerivedTable, OrgOutcome, OrgSummary, RefusedView, RunOutcome, RunSummary, TableSummary};
