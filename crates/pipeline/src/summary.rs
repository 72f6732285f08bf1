//! What a run gave, typed for programs and serializable for schedulers (`--summary-json`).

use crate::OrgError;
use crate::run::Mode;
use serde::{Serialize, Serializer};
use std::path::PathBuf;
use std::time::Duration;

/// The whole run: every org, and the views the warehouse refused.
#[derive(Debug, Serialize)]
pub struct RunSummary {
    /// Names this run's files in the tables that keep every run (`runs`, the histories).
    pub run_id: String,
    /// The output directory, or the object-storage URL.
    pub output: PathBuf,
    /// An object-storage output: the local working copy (and its warehouse).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work_dir: Option<PathBuf>,
    /// The share of the pipeline's orgs this run took (`--shard I/N`).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "shard")]
    pub shard: Option<crate::Shard>,
    pub mode: Mode,
    pub orgs: Vec<OrgSummary>,
    /// Analytics views DuckDB refused: the files are in place, the warehouse lacks these views.
    pub refused_views: Vec<RefusedView>,
    #[serde(rename = "seconds", serialize_with = "seconds")]
    pub elapsed: Duration,
}

/// How the run as a whole went, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// An org failed; the others were extracted.
    OrgFailed,
    /// The warehouse refused an analytics view; the data is extracted.
    ViewsRefused,
    /// The quota guard stopped an org early; what it had read is kept.
    QuotaStopped,
    Succeeded,
}

impl RunSummary {
    pub fn outcome(&self) -> RunOutcome {
        if self.orgs.iter().any(|o| matches!(o.outcome, OrgOutcome::Failed { .. })) {
            RunOutcome::OrgFailed
        } else if !self.refused_views.is_empty() {
            RunOutcome::ViewsRefused
        } else if self.orgs.iter().any(|o| matches!(o.outcome, OrgOutcome::Stopped { .. })) {
            RunOutcome::QuotaStopped
        } else {
            RunOutcome::Succeeded
        }
    }
}

/// One org's run.
#[derive(Debug, Serialize)]
pub struct OrgSummary {
    pub org: String,
    pub outcome: OrgOutcome,
    /// The tables read and written, in order.
    pub tables: Vec<TableSummary>,
    /// The license model's tables derived from this run's files.
    pub derived: Vec<DerivedTable>,
    pub api_calls: u64,
    /// Requests tried again after transient failures.
    pub retries: u64,
    /// An object-storage output: the number of the org's manifest this run committed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub committed: Option<u64>,
    #[serde(rename = "seconds", serialize_with = "seconds")]
    pub elapsed: Duration,
}

impl OrgSummary {
    pub(crate) fn new(org: &str) -> OrgSummary {
        OrgSummary {
            org: org.to_string(),
            outcome: OrgOutcome::Succeeded,
            tables: Vec::new(),
            derived: Vec::new(),
            api_calls: 0,
            retries: 0,
            committed: None,
            elapsed: Duration::ZERO,
        }
    }

    /// The error, when the org failed.
    pub fn error(&self) -> Option<&OrgError> {
        match &self.outcome {
            OrgOutcome::Failed { error } => Some(error),
            _ => None,
        }
    }
}

/// How one org's run ended.
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum OrgOutcome {
    Succeeded,
    /// The API quota stopped the org: the tables read before are kept, these were not read.
    Stopped {
        #[serde(serialize_with = "error_chain")]
        reason: OrgError,
        tables_left: Vec<&'static str>,
    },
    /// Another worker holds the org's lease (an object-storage output): it extracts the org.
    Skipped {
        #[serde(serialize_with = "error_chain")]
        reason: OrgError,
    },
    /// Nothing of this run was kept for the org.
    Failed {
        #[serde(serialize_with = "error_chain")]
        error: OrgError,
    },
}

/// One table of one org.
#[derive(Debug, Clone, Serialize)]
pub struct TableSummary {
    pub table: &'static str,
    /// Rows in the table after the run.
    pub rows: u64,
    /// Rows written from this run's answers (on an incremental run, only the changed ones).
    pub fetched: u64,
    pub api_calls: u64,
    #[serde(rename = "seconds", serialize_with = "seconds")]
    pub elapsed: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct DerivedTable {
    pub table: &'static str,
    pub rows: u64,
}

/// A view of the warehouse DuckDB refused, and why.
#[derive(Debug, Serialize)]
pub struct RefusedView {
    pub view: String,
    #[serde(serialize_with = "error_chain")]
    pub error: sfetl_load::Error,
}

fn shard<S: Serializer>(shard: &Option<crate::Shard>, s: S) -> Result<S::Ok, S::Error> {
    match shard {
        Some(shard) => s.serialize_str(&shard.to_string()),
        None => s.serialize_none(),
    }
}

fn seconds<S: Serializer>(elapsed: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((elapsed.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// An error as `{"kind": ..., "message": "<the whole chain>"}`.
fn error_chain<S: Serializer, E: std::error::Error + 'static + ErrorKind>(error: &E, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut out = s.serialize_struct("Error", 2)?;
    out.serialize_field("kind", error.kind())?;
    out.serialize_field("message", &crate::chain(error))?;
    out.end()
}

trait ErrorKind {
    fn kind(&self) -> &'static str;
}

impl ErrorKind for OrgError {
    fn kind(&self) -> &'static str {
        OrgError::kind(self)
    }
}

impl ErrorKind for sfetl_load::Error {
    fn kind(&self) -> &'static str {
        "view"
    }
}
