//! Moving an org between a local working copy and the lake: [`Lake::hydrate`] before a run,
//! [`Lake::publish`] after it.

use crate::manifest::{MANIFESTS, manifest_path};
use crate::{Error, FileEntry, Lake, Manifest, Result};
use futures_util::{StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Files up to this size go in one put; bigger ones in parts of this size (S3's smallest part is
/// 5 MiB), a few at a time: an upload holds at most four parts in memory.
const PART_BYTES: usize = 8 << 20;
const PARTS_AT_ONCE: usize = 2;
/// An org's files uploaded at once: most are small, and each put waits a round trip.
const UPLOADS_AT_ONCE: usize = 4;

/// What a working copy holds of an org as of a committed manifest: the manifest's sequence
/// number, and each local file's size and modification time then, with its name in the lake.
/// Kept beside the working copy; a file whose size and time still match need not be uploaded again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Synced {
    /// The lake it came from (a working copy of another lake is not reused).
    pub lake: String,
    /// 0: nothing committed yet.
    pub sequence: u64,
    pub files: BTreeMap<String, SyncedFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncedFile {
    pub size: u64,
    pub modified_ns: i128,
    /// The file's path in the lake, relative to its root.
    pub path: String,
    pub table: String,
}

/// What [`Lake::publish`] commits of an org.
#[derive(Debug)]
pub struct Commit<'a> {
    pub org: &'a str,
    /// Names the new files of tables a run replaces (`users-<run_id>.parquet`).
    pub run_id: &'a str,
    /// Who commits (host and process), recorded in the manifest.
    pub worker: &'a str,
    /// The org's incremental state as of these files.
    pub state: Option<serde_json::Value>,
    /// How old an upload no kept manifest lists must be before it is removed: the lease's
    /// length (a younger one may be a live upload of a worker that took the org over).
    pub orphan_age: Duration,
}

/// A working copy brought to an org's newest commit.
#[derive(Debug)]
pub struct Hydrated {
    pub synced: Synced,
    /// The commit's saved state when the copy's files were replaced by the commit's (the caller
    /// restores it; `Null`: none saved, read everything); `None` when the copy was already there.
    pub state: Option<serde_json::Value>,
    /// Files downloaded.
    pub downloaded: usize,
}

fn modified_ns(meta: &std::fs::Metadata) -> i128 {
    meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos() as i128)
}

/// An org's Parquet file in the working copy: `<table>/org=<slug>/<name>.parquet`.
struct LocalFile {
    table: String,
    relative: String,
    size: u64,
    modified_ns: i128,
}

fn local_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Local { path: path.to_path_buf(), source }
}

/// The tables of a working copy: its directories, but the hidden ones (`_state`, `.sfetl.lock`).
fn local_tables(work: &Path) -> Result<Vec<String>> {
    let mut tables = Vec::new();
    let entries = match std::fs::read_dir(work) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(tables),
        Err(source) => return Err(Error::Local { path: work.to_path_buf(), source }),
    };
    for entry in entries {
        let entry = entry.map_err(local_err(work))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(['_', '.']) && entry.file_type().map_err(local_err(work))?.is_dir() {
            tables.push(name);
        }
    }
    tables.sort();
    Ok(tables)
}

/// The org's Parquet files in the working copy (temporary files do not end in `.parquet`).
fn local_files(work: &Path, org: &str) -> Result<Vec<LocalFile>> {
    let mut files = Vec::new();
    for table in local_tables(work)? {
        let dir = work.join(&table).join(format!("org={org}"));
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let entry = entry.map_err(local_err(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".parquet") {
                continue;
            }
            let meta = entry.metadata().map_err(local_err(&dir))?;
            let modified_ns = modified_ns(&meta);
            let relative = format!("{table}/org={org}/{name}");
            files.push(LocalFile { table: table.clone(), relative, size: meta.len(), modified_ns });
        }
    }
    files.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(files)
}

/// The name a new file gets in the lake: a table's replaced file (`users.parquet`) takes the
/// run's id (`users-<run_id>.parquet`); a per-run or merged file keeps its own unique name,
/// unless the previous commit used that name already (then the run id is added too).
fn lake_name(file: &LocalFile, run_id: &str, taken: &HashSet<&str>) -> String {
    let stem = file.relative.strip_suffix(".parquet").unwrap_or(&file.relative);
    let own = stem.rsplit('/').next().is_some_and(|name| name != file.table) && !taken.contains(file.relative.as_str());
    if own { file.relative.clone() } else { format!("{stem}-{run_id}.parquet") }
}

impl Lake {
    /// Brings the working copy's org in line with its newest committed manifest, when the copy
    /// is not already at that commit (`synced` is what the copy holds). Files the copy already
    /// holds unchanged under the same name in the lake are kept; the others are downloaded, and
    /// the org's files the manifest does not list are removed.
    pub async fn hydrate(&self, work: &Path, org: &str, synced: Synced) -> Result<Hydrated> {
        let newest = self.newest_manifest(org).await?;
        let committed = newest.as_ref().map_or(0, |m| m.sequence);
        if synced.lake == self.url() && synced.sequence == committed {
            // This copy made that commit (or downloaded it) and nothing came after: it is a
            // descendant of the committed files, and its state matches its own files.
            return Ok(Hydrated { synced, state: None, downloaded: 0 });
        }
        // Another worker committed since (or this copy is new): start from the lake's files.
        let wanted: BTreeMap<&str, &FileEntry> =
            newest.iter().flat_map(|m| m.files.iter()).map(|f| (f.local.as_str(), f)).collect();
        let mut files = BTreeMap::new();
        for file in local_files(work, org)? {
            let same = |s: &&SyncedFile| s.size == file.size && s.modified_ns == file.modified_ns;
            let kept = synced.lake == self.url()
                && wanted.get(file.relative.as_str()).is_some_and(|entry| {
                    synced.files.get(&file.relative).filter(same).is_some_and(|s| s.path == entry.path)
                });
            if kept {
                if let Some(s) = synced.files.get(&file.relative) {
                    files.insert(file.relative.clone(), s.clone());
                }
            } else {
                let path = work.join(&file.relative);
                std::fs::remove_file(&path).map_err(local_err(&path))?;
            }
        }
        let Some(manifest) = newest else {
            let synced = Synced { lake: self.url().to_string(), sequence: 0, files };
            return Ok(Hydrated { synced, state: Some(serde_json::Value::Null), downloaded: 0 });
        };
        let mut downloaded = 0;
        let missing: Vec<&FileEntry> = manifest.files.iter().filter(|f| !files.contains_key(&f.local)).collect();
        for entry in missing {
            let target = work.join(&entry.local);
            self.download(&entry.path, &target).await?;
            downloaded += 1;
            let meta = std::fs::metadata(&target).map_err(local_err(&target))?;
            let file = SyncedFile {
                size: meta.len(),
                modified_ns: modified_ns(&meta),
                path: entry.path.clone(),
                table: entry.table.clone(),
            };
            files.insert(entry.local.clone(), file);
        }
        tracing::info!(org, downloaded, sequence = committed, "the working copy is at the org's newest commit");
        let synced = Synced { lake: self.url().to_string(), sequence: committed, files };
        Ok(Hydrated { synced, state: Some(manifest.state.unwrap_or(serde_json::Value::Null)), downloaded })
    }

    /// Downloads an object to `target` whole: into a temporary file, synced, then renamed.
    async fn download(&self, relative: &str, target: &Path) -> Result<()> {
        let what = || format!("reading {}", self.url_of(relative));
        let got = self.store.get(&self.path(relative)).await.map_err(Error::store(what()))?;
        let mut stream = got.into_stream();
        let dir = target.parent().unwrap_or(Path::new(".")).to_path_buf();
        let temp = PathBuf::from(format!("{}.tmp-{}", target.display(), std::process::id()));
        let opened = temp.clone();
        let mut file = on_disk(&temp, move || {
            create_private_dir(&dir)?;
            create_private_file(&opened)
        })
        .await?;
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let chunk = stream.try_next().await.map_err(Error::store(what()))?;
            let last = chunk.is_none();
            pending.extend_from_slice(chunk.as_deref().unwrap_or_default());
            if pending.len() >= PART_BYTES || (last && !pending.is_empty()) {
                let bytes = std::mem::take(&mut pending);
                file = on_disk(&temp, move || std::io::Write::write_all(&mut file, &bytes).map(|()| file)).await?;
            }
            if last {
                break;
            }
        }
        let (from, to) = (temp.clone(), target.to_path_buf());
        on_disk(target, move || {
            file.sync_all()?;
            std::fs::rename(&from, &to)
        })
        .await
    }

    /// Uploads the org's new and changed files and commits a manifest listing all of them, as
    /// the commit after `synced.sequence`; then removes what no manifest kept refers to. The
    /// commit fails with [`Error::Superseded`] when another worker committed that number first.
    pub async fn publish(&self, work: &Path, synced: &Synced, commit: Commit<'_>) -> Result<(Manifest, Synced)> {
        let Commit { org, run_id, worker, state, orphan_age } = commit;
        let local = local_files(work, org)?;
        let taken: HashSet<&str> = synced.files.values().map(|f| f.path.as_str()).collect();
        let (mut entries, mut files, mut uploads) = (Vec::with_capacity(local.len()), BTreeMap::new(), Vec::new());
        for file in &local {
            let unchanged = synced
                .files
                .get(&file.relative)
                .filter(|s| s.size == file.size && s.modified_ns == file.modified_ns && s.table == file.table);
            let path = match unchanged {
                Some(same) => same.path.clone(),
                None => {
                    let path = lake_name(file, run_id, &taken);
                    uploads.push((work.join(&file.relative), path.clone()));
                    path
                }
            };
            let (size, modified_ns, table) = (file.size, file.modified_ns, file.table.clone());
            files.insert(file.relative.clone(), SyncedFile { size, modified_ns, path: path.clone(), table });
            entries.push(FileEntry { table: file.table.clone(), path, local: file.relative.clone(), size: file.size });
        }
        let uploaded = uploads.len();
        // Owned items: a closure over borrowed ones would keep the run's future from being `Send`.
        let uploading =
            futures_util::stream::iter(uploads).map(|(local, path)| async move { self.upload(&local, &path).await });
        uploading.buffer_unordered(UPLOADS_AT_ONCE).try_collect::<Vec<()>>().await?;
        let manifest = Manifest {
            format: Manifest::FORMAT,
            org: org.to_string(),
            sequence: synced.sequence + 1,
            run_id: run_id.to_string(),
            committed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            worker: worker.to_string(),
            files: entries,
            state,
        };
        self.commit_manifest(&manifest).await?;
        tracing::info!(org, uploaded, files = manifest.files.len(), sequence = manifest.sequence, "committed");
        let kept: HashSet<String> = synced
            .files
            .values()
            .map(|f| f.path.clone())
            .chain(manifest.files.iter().map(|f| f.path.clone()))
            .collect();
        if let Err(e) = self.collect_garbage(org, manifest.sequence, &kept, orphan_age).await {
            tracing::warn!(org, "could not remove files no manifest refers to (they stay unread): {e}");
        }
        let synced = Synced { lake: self.url().to_string(), sequence: manifest.sequence, files };
        Ok((manifest, synced))
    }

    /// Uploads a local file whole: one put, or a multipart upload that the store shows only once
    /// complete (an upload cut off stays invisible; a bucket lifecycle rule clears its parts).
    async fn upload(&self, local: &Path, relative: &str) -> Result<()> {
        let what = || format!("uploading {} to {}", local.display(), self.url_of(relative));
        let path = local.to_path_buf();
        let (mut file, size) = on_disk(local, move || {
            let file = std::fs::File::open(&path)?;
            let size = file.metadata()?.len();
            Ok((file, size))
        })
        .await?;
        let target = self.path(relative);
        if size <= PART_BYTES as u64 {
            let bytes = on_disk(local, move || {
                let mut bytes = Vec::with_capacity(size as usize);
                file.read_to_end(&mut bytes).map(|_| bytes)
            })
            .await?;
            self.store.put(&target, PutPayload::from(bytes)).await.map_err(Error::store(what()))?;
            return Ok(());
        }
        let upload = self.store.put_multipart(&target).await.map_err(Error::store(what()))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut buffer = vec![0; PART_BYTES];
        loop {
            let read = on_disk(local, move || {
                let read = file.read(&mut buffer)?;
                Ok((file, buffer, read))
            })
            .await;
            let read = match read {
                Ok((back, filled, read)) => {
                    (file, buffer) = (back, filled);
                    read
                }
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            };
            if read == 0 {
                break;
            }
            if let Err(source) = writer.wait_for_capacity(PARTS_AT_ONCE).await {
                return Err(Error::Store { what: what(), source });
            }
            writer.write(&buffer[..read]);
        }
        writer.finish().await.map_err(Error::store(what()))?;
        Ok(())
    }

    /// After commit `sequence`: removes the org's manifests older than the one before it, and
    /// its data files that neither of those two manifests lists (`kept`): files the previous
    /// commits replaced, and uploads of runs killed before their commit. The manifest before
    /// stays whole, so a reader that started on it can finish. An unlisted file younger than
    /// `orphan_age` (the lease's length) is left: it may be a live upload of a worker that took
    /// the org over.
    async fn collect_garbage(
        &self,
        org: &str,
        sequence: u64,
        kept: &HashSet<String>,
        orphan_age: Duration,
    ) -> Result<()> {
        let keep_from = manifest_path(org, sequence.saturating_sub(1));
        for path in self.manifest_paths(org).await? {
            if path < keep_from {
                self.store.delete(&self.path(&path)).await.map_err(Error::store(format!("removing {path}")))?;
            }
        }
        let top = self.store.list_with_delimiter(Some(&self.root)).await.map_err(Error::store("listing the lake"))?;
        // No cutoff (an age beyond the calendar): no upload is old enough to remove.
        let cutoff =
            chrono::TimeDelta::from_std(orphan_age).ok().and_then(|age| chrono::Utc::now().checked_sub_signed(age));
        for table in top.common_prefixes.iter().filter_map(|p| self.relative(p)) {
            if table.starts_with(['_', '.']) || table == MANIFESTS {
                continue;
            }
            let dir = self.path(&format!("{table}/org={org}"));
            let listed: Vec<_> =
                self.store.list(Some(&dir)).try_collect().await.map_err(Error::store(format!("listing {table}")))?;
            for meta in listed {
                let Some(relative) = self.relative(&meta.location) else { continue };
                if !kept.contains(&relative) && cutoff.is_some_and(|cutoff| meta.last_modified < cutoff) {
                    self.store.delete(&meta.location).await.map_err(Error::store(format!("removing {relative}")))?;
                }
            }
        }
        Ok(())
    }
}

/// Disk work, off the async workers: a run may be driven by a current-thread runtime, whose one
/// thread must not wait on reads, writes or fsync.
async fn on_disk<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(done) => done.map_err(local_err(path)),
        Err(join) => Err(Error::Local { path: path.to_path_buf(), source: std::io::Error::other(join) }),
    }
}

// The twins of `sfetl_load::create_private_dir` and `create_private_file`, kept here so that this
// crate does not link DuckDB (sfetl-load does), and `cargo test -p sfetl-lake` stays quick.

/// Creates `dir` and its missing parents owner-only (0700): the files hold personal data.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Creates a new file readable and writable by the owner only (0600).
fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        lake: Lake,
        root: PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path().to_path_buf();
        let lake = Lake::open(&format!("file://{}/lake", root.display())).unwrap_or_else(|e| panic!("{e}"));
        Fixture { _dir: dir, lake, root }
    }

    /// A commit of org `acme` that saves no state and removes orphans at once.
    fn commit<'a>(run_id: &'a str, worker: &'a str) -> Commit<'a> {
        Commit { org: "acme", run_id, worker, state: None, orphan_age: Duration::ZERO }
    }

    fn write(work: &Path, relative: &str, content: &str) {
        let path = work.join(relative);
        std::fs::create_dir_all(path.parent().unwrap_or(work)).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(path, content).unwrap_or_else(|e| panic!("{e}"));
    }

    async fn objects(lake: &Lake) -> Vec<String> {
        lake.objects().await.unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn commits_follow_one_another_and_only_the_new_files_are_uploaded() -> Result<()> {
        let f = fixture();
        let work = f.root.join("work-a");
        write(&work, "users/org=acme/users.parquet", "users v1");
        write(&work, "runs/org=acme/runs-r1.parquet", "run 1");
        write(&work, "users/org=globex/users.parquet", "another org");
        let Hydrated { synced: fresh, state, .. } = f.lake.hydrate(&work, "acme", Synced::default()).await?;
        assert_eq!((fresh.sequence, state), (0, Some(serde_json::Value::Null)), "nothing committed yet");
        // Hydrating a fresh copy clears the org's local files (they were never committed).
        assert!(!work.join("users/org=acme/users.parquet").exists());
        assert!(work.join("users/org=globex/users.parquet").exists(), "other orgs are left alone");

        write(&work, "users/org=acme/users.parquet", "users v1");
        write(&work, "runs/org=acme/runs-r1.parquet", "run 1");
        let state = Some(serde_json::json!({"cursors": {"users": 1}}));
        let (first, synced) =
            f.lake.publish(&work, &fresh, Commit { state: state.clone(), ..commit("r1", "a") }).await?;
        assert_eq!(first.sequence, 1);
        let paths: Vec<&str> = first.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["runs/org=acme/runs-r1.parquet", "users/org=acme/users-r1.parquet"]);

        // Run 2 replaces users and adds a run file; the run file of run 1 is unchanged.
        std::thread::sleep(Duration::from_millis(5));
        write(&work, "users/org=acme/users.parquet", "users v2");
        write(&work, "runs/org=acme/runs-r2.parquet", "run 2");
        let Hydrated { synced: hydrated, state: restored, .. } = f.lake.hydrate(&work, "acme", synced).await?;
        assert_eq!(restored, None, "the copy made the newest commit: nothing downloaded");
        let (second, synced) = f.lake.publish(&work, &hydrated, commit("r2", "a")).await?;
        assert_eq!(second.sequence, 2);
        let paths: Vec<&str> = second.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            ["runs/org=acme/runs-r1.parquet", "runs/org=acme/runs-r2.parquet", "users/org=acme/users-r2.parquet"]
        );
        // Commit 1's users file is kept for readers that started on it; a third commit removes it.
        assert!(objects(&f.lake).await.contains(&"users/org=acme/users-r1.parquet".to_string()));
        std::thread::sleep(Duration::from_millis(5));
        write(&work, "users/org=acme/users.parquet", "users v3");
        let (third, _) = f.lake.publish(&work, &synced, commit("r3", "a")).await?;
        let all = objects(&f.lake).await;
        assert!(!all.contains(&"users/org=acme/users-r1.parquet".to_string()), "{all:#?}");
        assert!(all.contains(&"users/org=acme/users-r2.parquet".to_string()), "{all:#?}");
        assert!(!all.iter().any(|p| p.ends_with(&format!("{:010}.json", 1))), "old manifests go: {all:#?}");

        // Another machine's copy downloads the newest commit and its state.
        let other = f.root.join("work-b");
        let Hydrated { synced: copy, state, downloaded } = f.lake.hydrate(&other, "acme", Synced::default()).await?;
        assert_eq!((copy.sequence, downloaded), (third.sequence, 3));
        assert_eq!(state, Some(serde_json::Value::Null), "commit 3 saved no state");
        let users = std::fs::read_to_string(other.join("users/org=acme/users.parquet")).unwrap_or_default();
        assert_eq!(users, "users v3");
        assert!(other.join("runs/org=acme/runs-r1.parquet").exists());
        let snapshot = f.lake.snapshot().await?;
        assert_eq!(snapshot.manifests.len(), 1);
        assert_eq!(snapshot.files_of(&f.lake, "runs").len(), 2);
        Ok(())
    }

    /// Two workers that both start from commit 1 (a lease that expired under the first): only one
    /// commits 2; the other's uploads are orphans, which the next commit removes.
    #[tokio::test]
    async fn of_two_commits_after_the_same_one_only_the_first_lands() -> Result<()> {
        let f = fixture();
        let (a, b) = (f.root.join("a"), f.root.join("b"));
        write(&a, "users/org=acme/users.parquet", "a1");
        let (_, synced) = f.lake.publish(&a, &Synced::default(), commit("r1", "a")).await?;
        let from_b = f.lake.hydrate(&b, "acme", Synced::default()).await?.synced;
        write(&a, "users/org=acme/users.parquet", "a2");
        write(&b, "users/org=acme/users.parquet", "b2");
        f.lake.publish(&a, &synced, commit("r2a", "a")).await?;
        let lost = f.lake.publish(&b, &from_b, commit("r2b", "b")).await;
        assert!(matches!(lost, Err(Error::Superseded { .. })), "{lost:?}");
        assert!(objects(&f.lake).await.contains(&"users/org=acme/users-r2b.parquet".to_string()));
        let newest = f.lake.newest_manifest("acme").await?.map(|m| m.run_id);
        assert_eq!(newest.as_deref(), Some("r2a"));
        // b catches up and commits 3; the orphan of its lost attempt is gone.
        let caught_up = f.lake.hydrate(&b, "acme", from_b).await?;
        // Only the users file changed between commits 1 and 2: it alone is downloaded.
        assert_eq!(caught_up.downloaded, 1);
        let caught_up = caught_up.synced;
        write(&b, "users/org=acme/users.parquet", "b3");
        f.lake.publish(&b, &caught_up, commit("r3", "b")).await?;
        assert!(!objects(&f.lake).await.contains(&"users/org=acme/users-r2b.parquet".to_string()));
        Ok(())
    }

    /// A file of several parts goes up as a multipart upload and comes back byte for byte.
    #[tokio::test]
    async fn a_file_bigger_than_a_part_goes_up_in_parts_and_comes_back_whole() -> Result<()> {
        let f = fixture();
        let (a, b) = (f.root.join("a"), f.root.join("b"));
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let bytes: Vec<u8> = (0..(PART_BYTES * 5 / 2))
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let relative = "users/org=acme/users.parquet";
        std::fs::create_dir_all(a.join("users/org=acme")).map_err(local_err(&a))?;
        std::fs::write(a.join(relative), &bytes).map_err(local_err(&a))?;
        f.lake.publish(&a, &Synced::default(), commit("r1", "a")).await?;
        let copy = f.lake.hydrate(&b, "acme", Synced::default()).await?;
        assert_eq!(copy.downloaded, 1);
        let back = std::fs::read(b.join(relative)).map_err(local_err(&b))?;
        assert!(back == bytes, "{} bytes back of {}", back.len(), bytes.len());
        Ok(())
    }
}
