//! Why an org, or a whole run, failed. Each error either says what it is and exposes its cause
//! through `source()`, or is transparent; none does both, so [`chain`] names each cause once.

use std::path::PathBuf;

/// Why one org's run failed (the other orgs go on).
#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    /// Salesforce refused, or could not be reached (login, query, quota).
    #[error(transparent)]
    Salesforce(#[from] sfetl_extract::Error),
    /// A record did not fit its table's schema.
    #[error(transparent)]
    Transform(#[from] sfetl_transform::Error),
    /// A file could not be read or written.
    #[error(transparent)]
    Load(#[from] sfetl_load::Error),
    #[error("{object}.{field} cannot be read in this org, and `{table}` needs it: {why}")]
    RequiredFieldMissing { object: &'static str, field: String, table: &'static str, why: &'static str },
    #[error(
        "Salesforce returned {object} {id} to a query for the Ids {range}: this org does not order Ids byte by byte, so reading in ranges could repeat rows; set `parallel_cursors = 1` for it"
    )]
    IdOrder { object: String, id: String, range: String },
    #[error("cannot save the incremental state {path}")]
    State { path: PathBuf, source: std::io::Error },
    #[error("deriving the license model from the files just written")]
    Derive(#[source] sfetl_load::Error),
    #[cfg(feature = "demo")]
    #[error("cannot start the simulated org")]
    Simulator(#[source] sfetl_sim::SimError),
    #[error("a simulated org needs sfetl built with its `demo` feature")]
    NoSimulator,
    #[error("a background task of the run failed")]
    Task(#[from] tokio::task::JoinError),
    /// The object-storage output: its lease, working copy, upload or commit.
    #[error(transparent)]
    Lake(#[from] sfetl_lake::Error),
}

impl OrgError {
    /// The org's API quota stopped it (exhausted, or the guard's share reached): what was read
    /// before is kept.
    pub fn is_quota_stop(&self) -> bool {
        matches!(self, OrgError::Salesforce(e) if e.is_quota_stop())
    }

    /// A short, stable name of the kind of failure, for machines (`--summary-json`).
    pub fn kind(&self) -> &'static str {
        match self {
            OrgError::Salesforce(e) if e.login_refusal().is_some() => "login",
            OrgError::Salesforce(e) if e.is_quota_stop() => "quota",
            OrgError::Salesforce(_) | OrgError::IdOrder { .. } => "salesforce",
            OrgError::Transform(_) => "transform",
            OrgError::Load(_) | OrgError::State { .. } => "output",
            OrgError::RequiredFieldMissing { .. } => "missing_field",
            OrgError::Derive(_) => "derive",
            #[cfg(feature = "demo")]
            OrgError::Simulator(_) => "simulator",
            OrgError::NoSimulator => "simulator",
            OrgError::Task(_) => "internal",
            OrgError::Lake(sfetl_lake::Error::Held { .. }) => "leased",
            OrgError::Lake(sfetl_lake::Error::LeaseLost { .. } | sfetl_lake::Error::Superseded { .. }) => "superseded",
            OrgError::Lake(_) => "output",
        }
    }
}

/// Why a whole run could not go on (no org was extracted, or none can be recorded).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot create the output directory {path}")]
    Output { path: PathBuf, source: std::io::Error },
    #[error("cannot open the warehouse")]
    Warehouse(#[source] sfetl_load::Error),
    #[error(
        "{} is being written by {holder}: one run at a time per output; try again when it ends, or pass `--wait`",
        path.display()
    )]
    Busy { path: PathBuf, holder: String },
    #[error("cannot lock the output ({})", path.display())]
    Lock { path: PathBuf, source: std::io::Error },
    #[error("a background task of the run failed")]
    Task(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Lake(#[from] sfetl_lake::Error),
    #[error("pulling org `{org}`")]
    Pull { org: String, source: Box<OrgError> },
}

/// An error and its causes on one line, `outer: cause: root cause`.
pub use sfetl_extract::chain;

#[cfg(test)]
mod tests {
    use super::*;

    /// Each cause once, in order: the crates' messages no longer quote their source.
    #[test]
    fn the_chain_names_each_cause_once() {
        let io = std::io::Error::other("disk full");
        let load = sfetl_load::Error::Io { path: "/x/users.parquet".into(), source: io };
        assert_eq!(
            chain(&OrgError::Derive(load)),
            "deriving the license model from the files just written: /x/users.parquet: disk full"
        );
        let login = sfetl_extract::Error::Login {
            login_url: "https://login.salesforce.com".into(),
            source: sfetl_extract::LoginError::Expired,
        };
        let text = chain(&OrgError::from(login));
        assert_eq!(text.matches("login to https://login.salesforce.com failed").count(), 1, "{text}");
        assert!(text.ends_with("check this machine's clock"), "{text}");
    }
}
