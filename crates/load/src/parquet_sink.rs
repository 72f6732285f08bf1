//! Parquet files per table and partition, replaced atomically.

use crate::{Error, Result};
use arrow::datatypes::{DataType, Field, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Rows per row group at most: DuckDB reads a file's row groups in parallel and skips them by
/// their statistics, and works best with groups of about 120,000 rows.
const ROW_GROUP_ROWS: usize = 128 * 1024;
/// zstd's fastest level: level 3 took a tenth of a run's CPU for files a few percent smaller.
const ZSTD_LEVEL: i32 = 1;
/// A column's dictionary gives up (its values are then written plain) past this size. Columns
/// worth a dictionary (license names, user types, profiles, departments) hold far less; Ids,
/// names and timestamps fill it, and at parquet's default of 1 MiB each such value was hashed
/// and kept for a third of a row group before the writer gave up (a tenth of a run's CPU).
const DICTIONARY_BYTES: usize = 64 * 1024;
/// Buffered bytes at which a row group is closed before it reaches [`ROW_GROUP_ROWS`] (wide
/// rows): what one table being written holds in memory.
const ROW_GROUP_MEMORY: usize = 24 << 20;

/// Writes `<root>/<table>/<key>=<value>/<table>.parquet`.
#[derive(Debug, Clone)]
pub struct ParquetSink {
    root: PathBuf,
}

/// Which row groups of a file to read.
#[derive(Debug, Clone, Copy)]
pub enum RowGroups {
    All,
    /// Each `shares`-th, from the `share`-th: a file read by several threads at once, each its
    /// share.
    Share {
        share: usize,
        shares: usize,
    },
}

/// One partition file being written; nothing is visible until [`PartitionWriter::commit`].
pub struct PartitionWriter {
    final_path: PathBuf,
    temp_path: PathBuf,
    writer: Option<ArrowWriter<File>>,
    rows: u64,
}

impl ParquetSink {
    pub fn new(root: impl Into<PathBuf>) -> ParquetSink {
        ParquetSink { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where DuckDB spills what does not fit its memory while deriving or merging this output's
    /// tables (owner-only, beside the run's state; DuckDB removes its files when done).
    pub fn spill_dir(&self) -> PathBuf {
        self.root.join("_state").join("spill")
    }

    /// The folder of one table's partition (`<root>/<table>/<key>=<value>`).
    fn partition_dir(&self, table: &str, key: &str, value: &str) -> PathBuf {
        self.root.join(table).join(format!("{key}={value}"))
    }

    /// Where the partition's file of a table is (whether or not it exists yet).
    pub fn final_path(&self, table: &str, key: &str, value: &str) -> PathBuf {
        self.partition_dir(table, key, value).join(format!("{table}.parquet"))
    }

    /// A reader of the partition's current file, with its path, when there is one and it has
    /// `schema`.
    fn current_file(
        &self,
        table: &str,
        key: &str,
        value: &str,
        schema: &SchemaRef,
    ) -> Result<Option<(PathBuf, ParquetRecordBatchReaderBuilder<File>)>> {
        let path = self.final_path(table, key, value);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(Error::Io { path, source }),
        };
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|source| Error::Parquet { path: path.clone(), source })?;
        Ok((builder.schema().fields() == schema.fields()).then_some((path, builder)))
    }

    /// The partition's current file, batch by batch, when there is one and it has `schema`
    /// (a file from an older layout is `None`: the caller reads everything again). With
    /// `columns`, only those (by index in `schema`, in the schema's order) are read: a scan of
    /// Ids and stamps skips decoding the rest. With `groups`, only some of its row groups.
    pub fn existing(
        &self,
        table: &str,
        key: &str,
        value: &str,
        schema: &SchemaRef,
        columns: Option<&[usize]>,
        groups: RowGroups,
    ) -> Result<Option<impl Iterator<Item = Result<RecordBatch>> + use<>>> {
        let Some((path, mut builder)) = self.current_file(table, key, value, schema)? else { return Ok(None) };
        if let Some(columns) = columns {
            let mask = ProjectionMask::roots(builder.parquet_schema(), columns.iter().copied());
            builder = builder.with_projection(mask);
        }
        if let RowGroups::Share { share, shares } = groups {
            let all = builder.metadata().num_row_groups();
            builder = builder.with_row_groups((share..all).step_by(shares.max(1)).collect());
        }
        let reader = builder.build().map_err(|source| Error::Parquet { path: path.clone(), source })?;
        Ok(Some(reader.map(move |batch| {
            batch.map_err(|e| Error::Parquet { path: path.clone(), source: parquet::errors::ParquetError::from(e) })
        })))
    }

    /// The partition's current file stays as it is, unwritten this run: what a killed run left
    /// beside it is removed, as opening a new file would.
    pub fn keep(&self, table: &str, key: &str, value: &str) {
        remove_leftovers(&self.partition_dir(table, key, value), |stem| stem.ends_with(".parquet"));
    }

    /// The rows of the partition's current file, from its footer, when it exists with `schema`.
    pub fn rows_of(&self, table: &str, key: &str, value: &str, schema: &SchemaRef) -> Result<Option<u64>> {
        let file = self.current_file(table, key, value, schema)?;
        Ok(file.map(|(_, builder)| builder.metadata().file_metadata().num_rows().max(0) as u64))
    }

    /// Starts the file of one table's partition (`org=acme`), replacing the current one on commit.
    pub fn open(&self, table: &str, key: &str, value: &str, schema: SchemaRef) -> Result<PartitionWriter> {
        self.open_file(table, key, value, table, schema)
    }

    /// Like [`ParquetSink::open`], for a file of its own in the partition (`runs-<id>.parquet`):
    /// tables that keep every run's rows instead of replacing them.
    pub fn open_file(
        &self,
        table: &str,
        key: &str,
        value: &str,
        stem: &str,
        schema: SchemaRef,
    ) -> Result<PartitionWriter> {
        let final_path = self.new_file_path(table, key, value, stem)?;
        let temp_path = temp_path(&final_path);
        let file = create_private_file(&temp_path).map_err(|source| Error::Io { path: temp_path.clone(), source })?;
        let level =
            ZstdLevel::try_new(ZSTD_LEVEL).map_err(|source| Error::Parquet { path: temp_path.clone(), source })?;
        let mut props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_dictionary_page_size_limit(DICTIONARY_BYTES);
        for field in schema.fields().iter().filter(|field| !keeps_statistics(field)) {
            props =
                props.set_column_statistics_enabled(ColumnPath::from(field.name().as_str()), EnabledStatistics::None);
        }
        let writer = ArrowWriter::try_new(file, schema, Some(props.build()))
            .map_err(|source| Error::Parquet { path: temp_path.clone(), source })?;
        Ok(PartitionWriter { final_path, temp_path, writer: Some(writer), rows: 0 })
    }

    /// Where a new file of its own in the partition goes (`<stem>.parquet`, as
    /// [`ParquetSink::open_file`] would write it), its folder made and cleared of what a killed
    /// run left there. For [`FinishedFile::also_as`].
    pub fn new_file_path(&self, table: &str, key: &str, value: &str, stem: &str) -> Result<PathBuf> {
        let valid = !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(Error::BadPartition(value.to_string()));
        }
        let dir = self.partition_dir(table, key, value);
        create_private_dir(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
        // One writer per partition and run: any temporary file here is a killed run's.
        remove_leftovers(&dir, |stem| stem.ends_with(".parquet"));
        Ok(dir.join(format!("{stem}.parquet")))
    }
}

/// The name a file is written under before it is renamed into place: `<name>.tmp-<pid>`, which
/// [`remove_leftovers`] recognizes once its process is gone.
fn temp_path(final_path: &Path) -> PathBuf {
    let mut name = final_path.as_os_str().to_owned();
    name.push(format!(".tmp-{}", std::process::id()));
    PathBuf::from(name)
}

/// Whether a column's pages and row groups record their minimum and maximum. Readers skip row
/// groups by them, which pays for Ids (`…_id`: a table's own Id is in order, and rows are looked
/// up by Id), numbers, timestamps and flags. Other text (names, emails, titles, departments)
/// lies in no order in a file, so its bounds span nearly every value and skip nothing, while
/// keeping them compared each value with both: 3 % of a run's CPU.
fn keeps_statistics(field: &Field) -> bool {
    field.data_type() != &DataType::Utf8 || field.name().ends_with("_id")
}

/// Removes temporary files a killed run left behind: exactly the names `<stem>.tmp-<pid>` (and
/// `<stem>.tmp-<pid>.wal`) whose stem passes `is_stem`. They are never read (they do not end in `.parquet`), and one run at a
/// time writes an output (the pipeline holds its lock), so any such file is a dead run's.
pub fn remove_leftovers(dir: &Path, is_stem: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // `<stem>.tmp-<pid>`, or DuckDB's write-ahead log of such a file (`….tmp-<pid>.wal`).
        let leftover = name.rsplit_once(".tmp-").is_some_and(|(stem, pid)| {
            let pid = pid.strip_suffix(".wal").unwrap_or(pid);
            !pid.is_empty() && pid.chars().all(|c| c.is_ascii_digit()) && is_stem(stem)
        });
        if leftover {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Creates `dir` and its missing parents owner-only (0700): the output holds personal data.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Creates a new file readable and writable by the owner only (0600).
pub fn create_private_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)
}

impl PartitionWriter {
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if let Some(writer) = self.writer.as_mut() {
            let fail = |source| Error::Parquet { path: self.temp_path.clone(), source };
            writer.write(batch).map_err(fail)?;
            self.rows += batch.num_rows() as u64;
            // A row group is held in memory until written out: closing it at a size bounds the
            // memory of a run by the page size, not the org's (each open table holds one).
            if writer.memory_size() > ROW_GROUP_MEMORY {
                writer.flush().map_err(fail)?;
            }
        }
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Records `key = value` in the file's footer (Parquet key-value metadata).
    pub fn set_metadata(&mut self, key: &str, value: String) {
        if let Some(writer) = self.writer.as_mut() {
            writer.append_key_value_metadata(parquet::file::metadata::KeyValue::new(key.to_string(), value));
        }
    }

    /// Finishes the file, syncs it, and renames it into place. Returns the rows written.
    pub fn commit(self) -> Result<u64> {
        self.finish()?.publish()
    }

    /// Finishes the file (its last row group and its footer) and syncs it, without putting it
    /// in place: the memory its last row group held is freed now, not at the commit.
    pub fn finish(mut self) -> Result<FinishedFile> {
        let temp_path = std::mem::take(&mut self.temp_path);
        let writer = self.writer.take();
        let finished = FinishedFile {
            final_path: std::mem::take(&mut self.final_path),
            temp_path: Some(temp_path.clone()),
            rows: self.rows,
            also: Vec::new(),
        };
        if let Some(writer) = writer {
            // On an error `finished` is dropped, and the temporary file with it.
            let file = writer.into_inner().map_err(|source| Error::Parquet { path: temp_path.clone(), source })?;
            file.sync_all().map_err(|source| Error::Io { path: temp_path, source })?;
        }
        Ok(finished)
    }
}

impl Drop for PartitionWriter {
    /// An abandoned file (an error, a cancelled run) leaves nothing behind.
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = std::fs::remove_file(&self.temp_path);
        }
    }
}

/// A partition file written whole and synced, not yet visible: [`FinishedFile::publish`] puts
/// it in place. Dropped unpublished (an error, a cancelled run), it leaves nothing behind.
pub struct FinishedFile {
    final_path: PathBuf,
    /// `None` once published.
    temp_path: Option<PathBuf>,
    rows: u64,
    also: Vec<PathBuf>,
}

impl FinishedFile {
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Once published, the file is also at `path` (from [`ParquetSink::new_file_path`]): a
    /// second file of the same rows without encoding them twice. It is a hard link (Parquet
    /// files are never written in place, and a file replaced later is a new file, so the two
    /// stay equal), or a copy where the file system has no links.
    pub fn also_as(&mut self, path: PathBuf) {
        self.also.push(path);
    }

    /// Renames the file into place, then gives it its other names ([`FinishedFile::also_as`]),
    /// each durable before this returns. Returns the rows written.
    pub fn publish(mut self) -> Result<u64> {
        let Some(written) = &self.temp_path else { return Ok(self.rows) };
        std::fs::rename(written, &self.final_path)
            .map_err(|source| Error::Io { path: self.final_path.clone(), source })?;
        self.temp_path = None;
        sync_parent(&self.final_path)?;
        for path in &self.also {
            // Made under a temporary name and renamed over: a file of that name left by an
            // earlier attempt is replaced whole.
            let temp = temp_path(path);
            if std::fs::hard_link(&self.final_path, &temp).is_err() {
                copy_synced(&self.final_path, &temp)?;
            }
            std::fs::rename(&temp, path).map_err(|source| Error::Io { path: path.clone(), source })?;
            sync_parent(path)?;
        }
        Ok(self.rows)
    }
}

impl Drop for FinishedFile {
    fn drop(&mut self) {
        if let Some(temp_path) = self.temp_path.take() {
            let _ = std::fs::remove_file(temp_path);
        }
    }
}

/// Copies `from` to a new owner-only file `to`, synced.
fn copy_synced(from: &Path, to: &Path) -> Result<()> {
    let io = |source| Error::Io { path: to.to_path_buf(), source };
    let mut source = File::open(from).map_err(|source| Error::Io { path: from.to_path_buf(), source })?;
    let mut copy = create_private_file(to).map_err(io)?;
    std::io::copy(&mut source, &mut copy).map_err(io)?;
    copy.sync_all().map_err(io)
}

/// Syncs the folder of `path`: a rename or a link is durable only once the directory entry is.
fn sync_parent(path: &Path) -> Result<()> {
    let Some(dir) = path.parent() else { return Ok(()) };
    File::open(dir).and_then(|d| d.sync_all()).map_err(|source| Error::Io { path: dir.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::Schema;
    use std::sync::Arc;

    /// Ids and numbers keep their bounds (readers skip row groups by them); other text does not.
    #[test]
    fn ids_and_numbers_keep_statistics_other_text_does_not() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|source| Error::Io { path: "tmp".into(), source })?;
        let sink = ParquetSink::new(tmp.path());
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Utf8, true),
            Field::new("email", DataType::Utf8, true),
            Field::new("total", DataType::Int64, true),
        ]));
        let columns: Vec<arrow::array::ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["005B", "005A"])),
            Arc::new(StringArray::from(vec!["b@example.com", "a@example.com"])),
            Arc::new(Int64Array::from(vec![2, 1])),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| Error::Schema { sql: "test".into(), detail: e.to_string() })?;
        let mut writer = sink.open("users", "org", "acme", schema.clone())?;
        writer.write(&batch)?;
        writer.commit()?;
        let Some((_, reader)) = sink.current_file("users", "org", "acme", &schema)? else { panic!("no file") };
        let group = &reader.metadata().row_groups()[0];
        let bounds =
            |column: usize| group.column(column).statistics().and_then(|s| s.min_bytes_opt().map(<[u8]>::to_vec));
        assert_eq!(bounds(0), Some(b"005A".to_vec()));
        assert_eq!(bounds(1), None);
        assert_eq!(bounds(2), Some(1i64.to_le_bytes().to_vec()));
        Ok(())
    }

    /// Row groups read in shares (as by several threads) are each read once: the shares hold
    /// every row of the file between them, none twice.
    #[test]
    fn shares_of_row_groups_hold_every_row_once() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|source| Error::Io { path: "tmp".into(), source })?;
        let sink = ParquetSink::new(tmp.path());
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let rows = 2 * ROW_GROUP_ROWS as i64 + 10;
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from_iter_values(0..rows))])
            .map_err(|e| Error::Schema { sql: "test".into(), detail: e.to_string() })?;
        let mut writer = sink.open("numbers", "org", "acme", schema.clone())?;
        writer.write(&batch)?;
        writer.commit()?;
        let read = |groups| -> Result<Vec<i64>> {
            let Some(batches) = sink.existing("numbers", "org", "acme", &schema, None, groups)? else {
                panic!("no file")
            };
            let mut values = Vec::new();
            for batch in batches {
                let batch = batch?;
                let numbers = batch.column(0).as_any().downcast_ref::<Int64Array>().map(|n| n.values().to_vec());
                values.extend(numbers.unwrap_or_default());
            }
            Ok(values)
        };
        let (first, second) =
            (read(RowGroups::Share { share: 0, shares: 2 })?, read(RowGroups::Share { share: 1, shares: 2 })?);
        assert_eq!((first.len(), second.len()), (ROW_GROUP_ROWS + 10, ROW_GROUP_ROWS), "3 row groups, 2 and 1");
        let mut both = [first, second].concat();
        both.sort_unstable();
        assert_eq!(both, read(RowGroups::All)?);
        Ok(())
    }

    /// A finished file is invisible until published, and gone if dropped unpublished; its
    /// second name is the same file (a link: no second encoding), put in place with it.
    #[test]
    fn a_finished_file_is_published_under_each_of_its_names() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|source| Error::Io { path: "tmp".into(), source })?;
        let sink = ParquetSink::new(tmp.path());
        let schema = Arc::new(Schema::new(vec![Field::new("user_id", DataType::Utf8, true)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec!["005A", "005B"]))])
            .map_err(|e| Error::Schema { sql: "test".into(), detail: e.to_string() })?;
        let files = |table: &str| -> Vec<String> {
            let dir = tmp.path().join(table).join("org=acme");
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .map(|entries| entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            names.sort();
            names
        };

        let mut dropped = sink.open("users", "org", "acme", schema.clone())?;
        dropped.write(&batch)?;
        drop(dropped.finish()?);
        assert_eq!(files("users"), Vec::<String>::new(), "a dropped finished file leaves nothing");

        let mut writer = sink.open("users", "org", "acme", schema.clone())?;
        writer.write(&batch)?;
        let mut finished = writer.finish()?;
        finished.also_as(sink.new_file_path("user_history", "org", "acme", "user_history-run1")?);
        assert_eq!(files("users").len(), 1, "only the temporary file before publishing");
        assert!(sink.rows_of("users", "org", "acme", &schema)?.is_none());
        assert_eq!(finished.publish()?, 2);
        assert_eq!(files("users"), ["users.parquet"]);
        assert_eq!(files("user_history"), ["user_history-run1.parquet"]);
        let read = |path: PathBuf| -> Vec<u8> { std::fs::read(path).unwrap_or_default() };
        let history = tmp.path().join("user_history/org=acme/user_history-run1.parquet");
        assert_eq!(read(sink.final_path("users", "org", "acme")), read(history.clone()));

        // The table's next file replaces it; the history keeps the rows it had.
        let mut next = sink.open("users", "org", "acme", schema.clone())?;
        next.write(&batch.slice(0, 1))?;
        next.commit()?;
        assert_eq!(sink.rows_of("users", "org", "acme", &schema)?, Some(1));
        let kept = ParquetRecordBatchReaderBuilder::try_new(
            File::open(&history).map_err(|source| Error::Io { path: history.clone(), source })?,
        )
        .map_err(|source| Error::Parquet { path: history.clone(), source })?;
        assert_eq!(kept.metadata().file_metadata().num_rows(), 2);
        Ok(())
    }

    /// Wide rows close their row group by size, long before its row count: the memory a table
    /// being written holds does not grow with the org.
    #[test]
    fn wide_rows_close_row_groups_by_size() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|source| Error::Io { path: "tmp".into(), source })?;
        let sink = ParquetSink::new(tmp.path());
        let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, true)]));
        let mut writer = sink.open("wide", "org", "acme", schema.clone())?;
        // 60,000 rows of 1 KB of pseudo-random hex (it compresses about 2:1): 30 MB encoded.
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut noise = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            format!("{state:016x}")
        };
        for _ in 0..30 {
            let values: Vec<String> = (0..2000).map(|_| (0..64).map(|_| noise()).collect()).collect();
            let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(values))])
                .map_err(|e| Error::Schema { sql: "test".into(), detail: e.to_string() })?;
            writer.write(&batch)?;
        }
        assert_eq!(writer.commit()?, 60_000);
        let Some((_, reader)) = sink.current_file("wide", "org", "acme", &schema)? else { panic!("no file") };
        let groups: Vec<i64> = reader.metadata().row_groups().iter().map(|g| g.num_rows()).collect();
        assert!(groups.len() >= 2, "{groups:?}");
        assert!(groups.iter().all(|&rows| rows < 50_000), "{groups:?}");
        assert_eq!(groups.iter().sum::<i64>(), 60_000);
        Ok(())
    }
}
