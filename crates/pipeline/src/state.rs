//! Where each org's incremental tables stopped: `<output>/_state/<org>.json`, written only after
//! the Parquet files it describes are durably in place, so a cursor never runs ahead of the data.

use crate::OrgError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The newest row read of one table: its `SystemModstamp` (UTC milliseconds) and Id, and for a
/// table with an activity field (`User.LastLoginDate`), the newest value of that field read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub system_modstamp: i64,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<i64>,
}

impl Cursor {
    /// Whether this row comes after `other` in `(SystemModstamp, Id)` order.
    pub fn is_after(&self, other: &Cursor) -> bool {
        (self.system_modstamp, &self.id) > (other.system_modstamp, &other.id)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct OrgState {
    #[serde(default)]
    pub cursors: BTreeMap<String, Cursor>,
}

fn path(output: &Path, org: &str) -> PathBuf {
    output.join("_state").join(format!("{org}.json"))
}

/// The org's state; none yet, or unreadable (then every table is read in full, which is safe).
pub fn load(output: &Path, org: &str) -> OrgState {
    let path = path(output, org);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(file = %path.display(), "unreadable incremental state ({e}); reading every table in full");
            OrgState::default()
        }),
        Err(_) => OrgState::default(),
    }
}

/// Replaces the org's state atomically (temporary file, fsync, rename).
pub fn save(output: &Path, org: &str, state: &OrgState) -> Result<(), OrgError> {
    use std::io::Write;
    let path = path(output, org);
    let dir = path.parent().unwrap_or(output).to_path_buf();
    let fail = |source| OrgError::State { path: path.clone(), source };
    sfetl_load::create_private_dir(&dir).map_err(fail)?;
    let stem = format!("{org}.json");
    sfetl_load::remove_leftovers(&dir, |s| s == stem);
    let temp = dir.join(format!("{org}.json.tmp-{}", std::process::id()));
    let json = serde_json::to_vec_pretty(state).map_err(|e| fail(e.into()))?;
    let write = || -> std::io::Result<()> {
        let mut file = sfetl_load::create_private_file(&temp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        std::fs::rename(&temp, &path)?;
        std::fs::File::open(&dir)?.sync_all()
    };
    write().map_err(fail)
}
