//! `sfetl pull`: a local mirror of a lake's committed files, and a DuckDB warehouse over it,
//! for readers without DuckDB's `httpfs` (and for Spark or any tool that reads local Parquet).

use crate::lake::{load_synced, save_synced};
use crate::summary::RefusedView;
use crate::{OrgError, RunError};
use futures_util::{StreamExt, TryStreamExt};
use sfetl_lake::Lake;
use std::path::{Path, PathBuf};

/// Orgs downloaded at once.
const ORGS_AT_ONCE: usize = 4;

/// What a pull brought.
#[derive(Debug, serde::Serialize)]
pub struct PullSummary {
    pub lake: String,
    pub to: PathBuf,
    pub orgs: Vec<PulledOrg>,
    pub refused_views: Vec<RefusedView>,
}

/// One org of the lake, at its newest commit.
#[derive(Debug, serde::Serialize)]
pub struct PulledOrg {
    pub org: String,
    pub sequence: u64,
    pub run_id: String,
    pub committed_at: String,
    pub files: usize,
    /// Files downloaded by this pull (the others were in the mirror already).
    pub downloaded: usize,
}

/// Brings the mirror `to` to the lake's committed state, org by org (only new files are
/// downloaded; files no commit lists any more are removed), then publishes `warehouse.duckdb`
/// over it. A half-finished run in the lake is never pulled: only committed manifests are read.
pub async fn pull(url: &str, to: &Path, inactive_days: u32, wait: bool) -> Result<PullSummary, RunError> {
    let lake = Lake::open(url)?;
    sfetl_load::create_private_dir(to).map_err(|source| RunError::Output { path: to.to_path_buf(), source })?;
    let _lock = crate::lock::OutputLock::acquire(to, wait).await?;
    let snapshot = lake.snapshot().await?;
    let pulls = snapshot.manifests.iter().map(|manifest| async {
        let org = &manifest.org;
        let fail = |e: OrgError| RunError::Pull { org: org.clone(), source: Box::new(e) };
        let hydrated = lake.hydrate(to, org, load_synced(to, org)).await.map_err(|e| fail(e.into()))?;
        save_synced(to, org, &hydrated.synced).map_err(fail)?;
        Ok::<_, RunError>(PulledOrg {
            org: org.clone(),
            sequence: hydrated.synced.sequence,
            run_id: manifest.run_id.clone(),
            committed_at: manifest.committed_at.clone(),
            files: hydrated.synced.files.len(),
            downloaded: hydrated.downloaded,
        })
    });
    let orgs: Vec<PulledOrg> = futures_util::stream::iter(pulls).buffered(ORGS_AT_ONCE).try_collect().await?;
    let refused_views = crate::run::publish(to.to_path_buf(), inactive_days).await?;
    Ok(PullSummary { lake: lake.url().to_string(), to: to.to_path_buf(), orgs, refused_views })
}

/// The SQL that makes the warehouse's views over the lake's committed files, by their URLs, in a
/// reader's own DuckDB (one with `httpfs` for `s3://`, `gs://`, `az://`): `sfetl lake URL
/// --duckdb-views`. sfetl's own DuckDB never loads an extension, so it cannot make these views
/// itself (DuckDB checks a view's files when it is created).
pub async fn lake_views_sql(url: &str, inactive_days: u32) -> Result<String, RunError> {
    let lake = Lake::open(url)?;
    let snapshot = lake.snapshot().await?;
    let (names, views) = crate::run::warehouse_contents(inactive_days);
    let views: Vec<sfetl_load::View> =
        views.iter().map(|v| sfetl_load::View { name: v.name, inputs: v.inputs, sql: &v.sql }).collect();
    let orgs: Vec<&str> = snapshot.manifests.iter().map(|m| m.org.as_str()).collect();
    let header = format!(
        "-- sfetl: views over the committed files of {} ({} orgs: {}), for a DuckDB with httpfs;\n\
         -- give it the store's credentials first, e.g. CREATE SECRET (TYPE s3, PROVIDER credential_chain);\n",
        lake.url(),
        orgs.len(),
        orgs.join(", ")
    );
    Ok(header + &sfetl_load::Warehouse::script(|table| snapshot.files_of(&lake, table), &names, &views))
}
