//! Manifests: what an org's committed run consists of, and what readers follow.

use crate::{Error, Lake, Result};
use futures_util::{StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, PutMode, PutOptions};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Requests to the store at once when reading many small objects (manifests, an org's uploads).
pub(crate) const READS_AT_ONCE: usize = 8;

/// Where the manifests live, under the lake's root.
pub(crate) const MANIFESTS: &str = "_sfetl/manifests";

/// The files of one org as one run committed them. The newest manifest of an org is the org's
/// current data; the one before it stays readable until the next commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// 1: this layout.
    pub format: u32,
    pub org: String,
    /// Counts the org's commits from 1; a manifest's name starts with it, so the newest is the
    /// greatest whatever the workers' clocks say, and two commits of the same number cannot both
    /// succeed (the put is create-only).
    pub sequence: u64,
    pub run_id: String,
    /// When it was committed (RFC 3339, UTC).
    pub committed_at: String,
    /// Which worker committed it (host and process).
    pub worker: String,
    pub files: Vec<FileEntry>,
    /// The org's incremental state as of these files (opaque here: the pipeline's cursors), so a
    /// worker on another machine continues where this one stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<serde_json::Value>,
}

/// One Parquet file of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub table: String,
    /// Relative to the lake's root: `<table>/org=<slug>/<name>.parquet`.
    pub path: String,
    /// Relative to a working copy's root: where the file goes when a worker downloads the org.
    pub local: String,
    pub size: u64,
}

impl Manifest {
    pub const FORMAT: u32 = 1;

    /// Its path relative to the lake's root.
    pub fn path(&self) -> String {
        manifest_path(&self.org, self.sequence)
    }
}

/// Named by the sequence number alone: two workers committing the same number write the same
/// name, and the store's create-only put lets one of them.
pub(crate) fn manifest_path(org: &str, sequence: u64) -> String {
    format!("{MANIFESTS}/org={org}/{sequence:010}.json")
}

/// Every org's newest committed manifest: the lake as a reader should see it now.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub manifests: Vec<Manifest>,
}

impl Snapshot {
    /// The full URLs of a table's files over every org, in org order.
    pub fn files_of(&self, lake: &Lake, table: &str) -> Vec<String> {
        let files = self.manifests.iter().flat_map(|m| m.files.iter());
        files.filter(|f| f.table == table).map(|f| lake.url_of(&f.path)).collect()
    }

    /// Every table with at least one file, sorted.
    pub fn tables(&self) -> Vec<String> {
        let mut tables: Vec<String> =
            self.manifests.iter().flat_map(|m| m.files.iter().map(|f| f.table.clone())).collect();
        tables.sort();
        tables.dedup();
        tables
    }
}

impl Lake {
    /// The org's committed manifests' paths (relative to the root), oldest first.
    pub(crate) async fn manifest_paths(&self, org: &str) -> Result<Vec<String>> {
        let prefix = self.path(&format!("{MANIFESTS}/org={org}"));
        let listed: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(Error::store(format!("listing {}", self.url_of(&format!("{MANIFESTS}/org={org}")))))?;
        let mut paths: Vec<String> = listed
            .iter()
            .filter_map(|meta| self.relative(&meta.location))
            .filter(|path| path.ends_with(".json"))
            .collect();
        paths.sort();
        Ok(paths)
    }

    /// Reads one manifest.
    pub(crate) async fn read_manifest(&self, relative: &str) -> Result<Manifest> {
        let what = || format!("reading {}", self.url_of(relative));
        let got = self.store.get(&self.path(relative)).await.map_err(Error::store(what()))?;
        let bytes = got.bytes().await.map_err(Error::store(what()))?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Unreadable { path: self.url_of(relative), detail: e.to_string() })?;
        if manifest.format != Manifest::FORMAT {
            let detail = format!("format {} (this sfetl reads {})", manifest.format, Manifest::FORMAT);
            return Err(Error::Unreadable { path: self.url_of(relative), detail });
        }
        Ok(manifest)
    }

    /// The org's manifest of commit `sequence`, if it is still kept (the newest two are).
    pub async fn manifest(&self, org: &str, sequence: u64) -> Result<Option<Manifest>> {
        let relative = manifest_path(org, sequence);
        match self.store.head(&self.path(&relative)).await {
            Ok(_) => Ok(Some(self.read_manifest(&relative).await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(Error::Store { what: format!("reading {}", self.url_of(&relative)), source }),
        }
    }

    /// Every object under the lake's root, relative to it, sorted.
    pub async fn objects(&self) -> Result<Vec<String>> {
        let listed: Vec<_> = self
            .store
            .list(Some(&self.root))
            .try_collect()
            .await
            .map_err(Error::store(format!("listing {}", self.url)))?;
        let mut paths: Vec<String> = listed.iter().filter_map(|meta| self.relative(&meta.location)).collect();
        paths.sort();
        Ok(paths)
    }

    /// The org's newest committed manifest, if it was ever committed.
    pub async fn newest_manifest(&self, org: &str) -> Result<Option<Manifest>> {
        match self.manifest_paths(org).await?.last() {
            Some(path) => Ok(Some(self.read_manifest(path).await?)),
            None => Ok(None),
        }
    }

    /// Commits a manifest: create-only, so when another worker committed the same sequence
    /// number first, this fails with [`Error::Superseded`] and nothing changes.
    pub(crate) async fn commit_manifest(&self, manifest: &Manifest) -> Result<()> {
        let relative = manifest.path();
        let json = serde_json::to_vec_pretty(manifest)
            .map_err(|e| Error::Unreadable { path: relative.clone(), detail: e.to_string() })?;
        let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        match self.store.put_opts(&self.path(&relative), json.into(), options).await {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => {
                Err(Error::Superseded { org: manifest.org.clone(), path: self.url_of(&relative) })
            }
            Err(source) => Err(Error::Store { what: format!("committing {}", self.url_of(&relative)), source }),
        }
    }

    /// Every org's newest committed manifest (one listing of the manifests, one read per org).
    pub async fn snapshot(&self) -> Result<Snapshot> {
        let prefix = self.path(MANIFESTS);
        let listed: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(Error::store(format!("listing {}", self.url_of(MANIFESTS))))?;
        let mut newest: BTreeMap<String, String> = BTreeMap::new();
        for relative in listed.iter().filter_map(|meta| self.relative(&meta.location)) {
            let Some(rest) = relative.strip_prefix(&format!("{MANIFESTS}/org=")) else { continue };
            let Some((org, name)) = rest.split_once('/') else { continue };
            if !name.ends_with(".json") {
                continue;
            }
            let entry = newest.entry(org.to_string()).or_default();
            if relative > *entry {
                *entry = relative.clone();
            }
        }
        let reads = futures_util::stream::iter(newest.values()).map(|path| self.read_manifest(path));
        let manifests = reads.buffered(READS_AT_ONCE).try_collect().await?;
        Ok(Snapshot { manifests })
    }
}
