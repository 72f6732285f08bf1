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
        .chain(run_ids(output))
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
    let fail = |source| crate::RunError::Output { path: recorded.clone(), source };
    sfetl_load::create_private_dir(&output.join("_state")).map_err(fail)?;
    let temp = recorded.with_extension(format!("tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut file = sfetl_load::create_private_file(&temp)?;
        file.write_all(run_id.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, &recorded)
    };
    write().map_err(fail)?;
    Ok(run_id)
}

/// The run ids in the names of the output's `runs` files (`runs-<id>`, `runs-<first>..<last>`).
fn run_ids(output: &Path) -> Vec<String> {
    let partitions = std::fs::read_dir(output.join("runs")).into_iter().flatten().flatten();
    let names = partitions.flat_map(|p| std::fs::read_dir(p.path()).into_iter().flatten().flatten());
    names
        .filter_map(|f| {
            let name = f.file_name().to_string_lossy().into_owned();
            let ids = name.strip_prefix("runs-")?.strip_suffix(".parquet")?.to_string();
            let last = ids.split_once("..").map_or(ids.as_str(), |(_, last)| last);
            Some(last.split_once('+').map_or(last, |(last, _)| last).to_string())
        })
        .collect()
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
