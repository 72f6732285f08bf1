//! An org's run when the output is object storage ([`sfetl_lake`]): take the org's lease, bring
//! the local working copy to the org's newest commit, run the org there as for a local output,
//! then publish it and give the lease back.

use crate::run::RunContext;
use crate::summary::{OrgOutcome, OrgSummary};
use crate::{OrgError, OrgPlan};
use sfetl_lake::{Commit, Lake, Lease, Synced};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// Where an object-storage output's working copy is kept when neither `--work-dir` nor the
/// pipeline's `work_dir` says: under the user's cache, one per lake and shard (two shards on one
/// machine must not share a copy: a copy is locked by the run that uses it).
pub fn default_work_dir(lake_url: &str, shard: Option<crate::Shard>) -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    let mut name: String = lake_url.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    if let Some(shard) = shard {
        name.push_str(&format!("-shard-{}-of-{}", shard.index, shard.count));
    }
    cache.join("sfetl").join("work").join(name)
}

/// This worker, as leases and manifests name it: host and process.
pub fn worker_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

fn synced_path(work: &Path, org: &str) -> PathBuf {
    work.join("_state").join(format!("{org}.lake.json"))
}

/// What the working copy holds of the org (nothing known: a fresh copy, downloaded again).
pub(crate) fn load_synced(work: &Path, org: &str) -> Synced {
    std::fs::read(synced_path(work, org)).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default()
}

pub(crate) fn save_synced(work: &Path, org: &str, synced: &Synced) -> Result<(), OrgError> {
    let path = synced_path(work, org);
    let json =
        serde_json::to_vec_pretty(synced).map_err(|e| OrgError::State { path: path.clone(), source: e.into() })?;
    crate::state::replace_private(&path, &json).map_err(|source| OrgError::State { path, source })
}

/// Runs one org against the lake; `extract` is the org's run in the working copy.
pub(crate) async fn extract_org(
    lake: &Lake,
    org: &OrgPlan,
    run: &RunContext<'_>,
    extract: impl std::future::Future<Output = OrgSummary>,
) -> OrgSummary {
    let work = run.sink.root().to_path_buf();
    let worker = worker_name();
    let lease = match lake.acquire(&org.name, &worker, run.lease).await {
        Ok(lease) => Arc::new(Mutex::new(lease)),
        Err(e @ sfetl_lake::Error::Held { .. }) => {
            tracing::info!(org = %org.name, "{e}");
            let mut summary = OrgSummary::new(&org.name);
            summary.outcome = OrgOutcome::Skipped { reason: e.into() };
            return summary;
        }
        Err(e) => return failed(run, &org.name, e.into()),
    };
    let heartbeat = tokio::spawn(renew_every_third(lease.clone()));
    let summary = extract_and_publish(lake, org, run, &work, &worker, &lease, extract).await;
    heartbeat.abort();
    // Cancelled, the task drops its handle on the lease: then the lease is ours alone again.
    let _ = heartbeat.await;
    let released = match Arc::try_unwrap(lease) {
        Ok(lease) => lease.into_inner().release().await,
        Err(_) => Ok(()),
    };
    if let Err(e) = released {
        tracing::warn!(org = %org.name, "could not give the lease back (it expires by itself): {e}");
    }
    summary
}

async fn extract_and_publish(
    lake: &Lake,
    org: &OrgPlan,
    run: &RunContext<'_>,
    work: &Path,
    worker: &str,
    lease: &Mutex<Lease>,
    extract: impl std::future::Future<Output = OrgSummary>,
) -> OrgSummary {
    let synced = match hydrate(lake, work, &org.name).await {
        Ok(synced) => synced,
        Err(e) => return failed(run, &org.name, e),
    };
    let mut summary = extract.await;
    // Even a failed org's run is published: its row in `runs` says why; its data files are
    // the ones it had (a failed org writes none of this run's).
    let published = async {
        // Renewed right before the commit: another worker cannot take the org over (and start
        // uploading) for a whole lease from here.
        lease.lock().await.renew().await?;
        let state = crate::state::load(work, &org.name);
        let state = serde_json::to_value(&state).ok();
        let commit = Commit { org: &org.name, run_id: run.run_id, worker, state, orphan_age: run.lease };
        let (manifest, synced) = lake.publish(work, &synced, commit).await?;
        save_synced(work, &org.name, &synced)?;
        Ok::<_, OrgError>(manifest.sequence)
    };
    match published.await {
        Ok(sequence) => summary.committed = Some(sequence),
        // The org's own failure is the one to report; the record of it did not reach the lake.
        Err(error) if matches!(summary.outcome, OrgOutcome::Failed { .. }) => {
            tracing::warn!(org = %summary.org, "could not publish the failed run's record: {}", crate::chain(&error));
        }
        Err(error) => {
            run.progress.org_failed(&summary.org, &error);
            summary.outcome = OrgOutcome::Failed { error };
        }
    }
    summary
}

/// Brings the working copy to the org's newest commit and restores its incremental state.
async fn hydrate(lake: &Lake, work: &Path, org: &str) -> Result<Synced, OrgError> {
    let hydrated = lake.hydrate(work, org, load_synced(work, org)).await?;
    let synced = hydrated.synced;
    match hydrated.state {
        None => {}
        // The commit's cursors go with its files; no state: every table is read in full.
        Some(serde_json::Value::Null) => crate::state::forget(work, org)?,
        Some(state) => {
            let state: crate::state::OrgState = serde_json::from_value(state).unwrap_or_default();
            crate::state::save(work, org, &state)?;
        }
    }
    save_synced(work, org, &synced)?;
    Ok(synced)
}

/// Renews the lease every third of its length until aborted; a renewal refused (the lease
/// lost) or failing is logged, and the commit's own renewal then decides.
async fn renew_every_third(lease: Arc<Mutex<Lease>>) {
    let period = lease.lock().await.ttl() / 3;
    loop {
        tokio::time::sleep(period.max(Duration::from_millis(100))).await;
        let mut lease = lease.lock().await;
        match lease.renew().await {
            Ok(()) => {}
            Err(e @ sfetl_lake::Error::LeaseLost { .. }) => {
                tracing::error!(org = lease.org(), "{e}");
                return;
            }
            Err(e) => tracing::warn!(org = lease.org(), "could not renew the lease (trying again): {e}"),
        }
    }
}

fn failed(run: &RunContext<'_>, org: &str, error: OrgError) -> OrgSummary {
    run.progress.org_failed(org, &error);
    let mut summary = OrgSummary::new(org);
    summary.outcome = OrgOutcome::Failed { error };
    summary
}
