//! An sfetl output on object storage: `output = "s3://bucket/prefix"` (or `gs://`, `az://`,
//! `file://`), written so that readers never see half a run.
//!
//! A run writes each org's files in a local working copy first: DuckDB derives the license model
//! from them, and an incremental run merges its changes into them. Then it **publishes** the org
//! ([`Lake::publish`]): every new file is uploaded under a name no earlier upload used (an object
//! appears whole or not at all), and only then a manifest listing all of the org's files is
//! committed, with a create-only put whose name carries the next sequence number. Readers follow
//! each org's newest committed manifest ([`Lake::snapshot`]), so a run killed before its commit is
//! never read, and of two workers that somehow published the same org at once only one commits.
//!
//! Layout under the lake's root (the same Hive layout as a local output):
//! - `<table>/org=<slug>/<name>.parquet`: data files, never overwritten;
//! - `_sfetl/manifests/org=<slug>/<sequence>.json`: an org's committed runs ([`Manifest`]);
//! - `_sfetl/leases/org=<slug>/<generation>.json`: which worker extracts the org now ([`Lease`]).
//!
//! Names that start with `_` are hidden from Hive-style readers (Spark, Trino, Athena skip them).

mod lease;
mod location;
mod manifest;
mod publish;

pub use lease::{Lease, LeaseRecord};
pub use location::Lake;
pub use manifest::{FileEntry, Manifest, Snapshot};
pub use publish::{Commit, Hydrated, Synced, SyncedFile};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "output `{url}` cannot be opened as object storage: {detail}. Use s3://bucket/prefix, gs://bucket/prefix, \
         az://container/prefix or file:///absolute/path, with credentials in the environment \
         (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, AWS_PROFILE, ...)"
    )]
    Url { url: String, detail: String },
    #[error("object storage, {what}")]
    Store {
        what: String,
        #[source]
        source: object_store::Error,
    },
    #[error("local working copy {path}")]
    Local {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a manifest or lease sfetl can read: {detail}")]
    Unreadable { path: String, detail: String },
    #[error("org `{org}` is being extracted by {holder} (its lease runs until {until}); skipped")]
    Held { org: String, holder: String, until: String },
    #[error(
        "lost the lease on org `{org}`: another worker took it over after it expired (a run longer than the \
         lease without renewing it: check the network to the object store); nothing of this run was committed for it"
    )]
    LeaseLost { org: String },
    #[error(
        "{url} does not refuse a create-only write over an existing object (S3's `If-None-Match: *`), which \
         sfetl's commits and leases need so that two workers cannot both commit an org; use a store that \
         supports conditional writes (Amazon S3, MinIO, Ceph, Cloudflare R2, Google Cloud Storage, Azure)"
    )]
    NoConditionalPut { url: String },
    #[error(
        "another worker committed org `{org}` while this run extracted it (manifest {path} exists); this run's \
         files for it were not committed"
    )]
    Superseded { org: String, path: String },
}

impl Error {
    fn store(what: impl Into<String>) -> impl FnOnce(object_store::Error) -> Error {
        let what = what.into();
        move |source| Error::Store { what, source }
    }
}
