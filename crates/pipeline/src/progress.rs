//! How a run reports its progress: a small trait the caller implements (the CLI draws bars with
//! indicatif); [`NoProgress`] ignores it all.

use crate::OrgError;

/// Told about each table as it is read, and each org that fails.
pub trait Progress: Send + Sync {
    /// A table of an org starts being read; the handle follows it.
    fn table(&self, _org: &str, _table: &'static str) -> Box<dyn TableProgress> {
        Box::new(NoProgress)
    }

    /// An org failed (the others go on).
    fn org_failed(&self, _org: &str, _error: &OrgError) {}
}

/// One table being read.
pub trait TableProgress: Send + Sync {
    /// Salesforce's count of the rows the query will give.
    fn set_total(&self, _rows: u64) {}
    /// Rows received since the last call.
    fn advance(&self, _rows: u64) {}
    /// The table is written: its rows after the run.
    fn finish(&self, _rows: u64) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
impl TableProgress for NoProgress {}
