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
    /// The table's fields the org lacked or hid from the user when its rows were read (their
    /// column is empty): should one become readable, the table is read again whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// For the users, the scope settings their rows were read under
    /// ([`crate::scope::UserScope::settings`]): under other settings, they are read again whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
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
    /// Per derived table, the fingerprint of the inputs its file was derived from
    /// ([`crate::derive::Derived`]); written after that file is in place.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub derived: BTreeMap<String, String>,
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

/// Removes the org's state: its tables are read in full next time.
pub fn forget(output: &Path, org: &str) -> Result<(), OrgError> {
    let path = path(output, org);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(OrgError::State { path, source }),
    }
}

/// Replaces the org's state atomically.
pub fn save(output: &Path, org: &str, state: &OrgState) -> Result<(), OrgError> {
    let path = path(output, org);
    let fail = |source| OrgError::State { path: path.clone(), source };
    let json = serde_json::to_vec_pretty(state).map_err(|e| fail(e.into()))?;
    replace_private(&path, &json).map_err(fail)
}

/// Replaces a small file of the output whole (a temporary file beside it, fsync, rename, then
/// the directory synced), owner-only, after removing what a killed run left of the same.
pub(crate) fn replace_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().map(|n| n.to_string_lossy().into_owned())) else {
        return Err(std::io::Error::other(format!("{} is not a file path", path.display())));
    };
    sfetl_load::create_private_dir(dir)?;
    sfetl_load::remove_leftovers(dir, |stem| stem == name);
    let temp = dir.join(format!("{name}.tmp-{}", std::process::id()));
    let mut file = sfetl_load::create_private_file(&temp)?;
    file.write_all(content)?;
    file.sync_all()?;
    std::fs::rename(&temp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// How run ids are written: they sort as text in time order.
const RUN_ID_FORMAT: &str = "%Y%m%dT%H%M%S%.3fZ";

/// This run's id: the clock's time, or one millisecond after the newest id the output has seen
/// when that is not earlier (a clock that ran ahead once, or went back). Ids only grow, so
/// history keeps its order and a merged file's range never covers a later run. The second value
/// is the newest id when it was ahead of the clock.
pub fn next_run_id(now: chrono::DateTime<chrono::Utc>, newest: Option<&str>) -> (String, Option<String>) {
    let clock = now.format(RUN_ID_FORMAT).to_string();
    let Some(newest) = newest.filter(|newest| *newest >= clock.as_str()) else { return (clock, None) };
    let after = chrono::NaiveDateTime::parse_from_str(newest, RUN_ID_FORMAT)
        .map(|t| (t + chrono::TimeDelta::milliseconds(1)).format(RUN_ID_FORMAT).to_string())
        // An id of another shape: keep it sorting after.
        .unwrap_or_else(|_| format!("{newest}1"));
    (after, Some(newest.to_string()))
}

/// Claims the next run id of the output (under its lock): records it in `_state/run_id`, and
/// warns when the output's newest id is ahead of this machine's clock.
pub fn claim_run_id(output: &Path) -> Result<String, crate::RunError> {
    let recorded = output.join("_state").join("run_id");
    let newest = std::fs::read_to_string(&recorded)
        .ok()
        .map(|id| id.trim().to_string())
        .into_iter()
        .chain(sfetl_load::newest_run_id(output, "runs"))
        .max();
    let (run_id, ahead) = next_run_id(chrono::Utc::now(), newest.as_deref());
    if let Some(newest) = ahead {
        tracing::warn!(
            newest,
            run_id,
            "this output's newest run id is ahead of this machine's clock: run ids continue after it so that history \
             keeps its order; check the clock (NTP)"
        );
    }
    replace_private(&recorded, run_id.as_bytes())
        .map_err(|source| crate::RunError::Output { path: recorded.clone(), source })?;
    Ok(run_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_only_grow_even_after_a_clock_ran_ahead() {
        let at =
            |s: &str| chrono::DateTime::parse_from_rfc3339(s).map(|t| t.to_utc()).unwrap_or_else(|e| panic!("{e}"));
        let now = at("2026-11-29T02:00:00Z");
        assert_eq!(next_run_id(now, None), ("20261129T020000.000Z".into(), None));
        assert_eq!(next_run_id(now, Some("20261128T020000.000Z")), ("20261129T020000.000Z".into(), None));
        let ahead = "20271129T020000.000Z";
        assert_eq!(next_run_id(now, Some(ahead)), ("20271129T020000.001Z".into(), Some(ahead.into())));
        let same = "20261129T020000.000Z";
        assert_eq!(next_run_id(now, Some(same)).0, "20261129T020000.001Z", "two runs in one millisecond");
    }
}
