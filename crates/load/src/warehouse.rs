//! `warehouse.duckdb`: one view per table over its Parquet files, readable from anywhere.

use crate::{Error, Result};
use arrow::record_batch::RecordBatch;
use std::path::{Path, PathBuf};

/// The DuckDB database beside the Parquet files.
pub struct Warehouse {
    path: PathBuf,
    connection: duckdb::Connection,
}

/// What [`Warehouse::publish`] made.
#[derive(Debug)]
pub struct Published {
    /// Tables and views, in the order they were created.
    pub registered: Vec<String>,
    /// Analytics views DuckDB refused, with why.
    pub failed: Vec<(String, Error)>,
}

/// An analytics view: SQL over the tables' views, in which `{table}` stands for that table's own
/// files (for a view that takes the name of a table, to refine it).
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub name: &'a str,
    /// Without a view of each of these, the view is left out.
    pub inputs: &'a [&'a str],
    pub sql: &'a str,
}

/// DuckDB's settings for every database sfetl opens: extensions are neither downloaded nor
/// loaded on their own (an offline machine would wait on the network; a run must not fetch code).
pub(crate) fn offline_config() -> duckdb::Result<duckdb::Config> {
    duckdb::Config::default().with("autoinstall_known_extensions", "false")?.with("autoload_known_extensions", "false")
}

/// Every org's files of a table, as a parenthesized query with the `org` partition as first column, or `None`
/// when the table has no file yet. Paths are absolute, so the database answers from any working
/// directory.
fn table_source(root: &Path, table: &str) -> Option<String> {
    let dir = root.join(table);
    let has_files = std::fs::read_dir(&dir).into_iter().flatten().flatten().any(|partition| {
        std::fs::read_dir(partition.path())
            .into_iter()
            .flatten()
            .flatten()
            .any(|f| f.file_name().to_string_lossy().ends_with(".parquet"))
    });
    if !has_files {
        return None;
    }
    Some(hive_source(&crate::sql_literal(&dir.join("*").join("*.parquet").to_string_lossy())))
}

/// A table's files (`files`: a SQL glob or list literal) as a parenthesized query, the `org`
/// partition of their paths first.
fn hive_source(files: &str) -> String {
    format!(
        "(SELECT org, * EXCLUDE (org) FROM read_parquet({files}, hive_partitioning = true, \
         hive_types = {{'org': VARCHAR}}, union_by_name = true))"
    )
}

/// The statement that makes (or replaces) the view `name`.
fn view_sql(name: &str, select: &str) -> String {
    format!("CREATE OR REPLACE VIEW \"{name}\" AS {select}")
}

/// Makes, through `create`, a view per table that has files (`source`), then each analytics view
/// whose inputs were made. A view `create` refuses (a table whose files cannot be read, an
/// analytics view that does not bind) is left out and reported: the others stay.
fn create_all(
    source: impl Fn(&str) -> Option<String>,
    tables: &[&str],
    views: &[View<'_>],
    mut create: impl FnMut(&str, &str) -> Result<()>,
) -> Published {
    let mut registered = Vec::new();
    let mut failed = Vec::new();
    for table in tables {
        if let Some(source) = source(table) {
            // Files DuckDB cannot read (a foreign or damaged file under the table's folder) cost
            // that table's view, not the warehouse.
            match create(table, &format!("SELECT * FROM {source}")) {
                Ok(()) => registered.push(table.to_string()),
                Err(e) => failed.push((table.to_string(), e)),
            }
        }
    }
    for view in views {
        if !view.inputs.iter().all(|input| registered.iter().any(|r| r == input)) {
            continue;
        }
        let created = crate::expand(view.sql, &source)
            .map_err(|missing| Error::Schema {
                sql: view.name.to_string(),
                detail: format!("no files for `{missing}`"),
            })
            .and_then(|sql| create(view.name, &sql));
        match created {
            Ok(()) if registered.iter().any(|r| r == view.name) => {}
            Ok(()) => registered.push(view.name.to_string()),
            Err(e) => failed.push((view.name.to_string(), e)),
        }
    }
    Published { registered, failed }
}

/// Appends to `sql` the statements [`create_all`] would run, one per line; what it would make.
fn write_statements(
    sql: &mut String,
    source: impl Fn(&str) -> Option<String>,
    tables: &[&str],
    views: &[View<'_>],
) -> Published {
    create_all(source, tables, views, |name, select| {
        sql.push_str(&view_sql(name, select));
        sql.push_str(";\n");
        Ok(())
    })
}

impl Warehouse {
    pub const FILE_NAME: &'static str = "warehouse.duckdb";

    /// The on-disk format written: DuckDB 1.0's, so that the DuckDB 1.x drivers many BI tools and
    /// notebooks still ship can open the database too (a 2.x file is refused by them).
    const STORAGE_VERSION: &'static str = "v1.0.0";

    /// Writes a fresh `<root>/warehouse.duckdb` with a view per table that has files, then the
    /// analytics `views` whose inputs are there. A view DuckDB refuses (a table whose files it
    /// cannot read, an analytics view that does not bind) is left out and reported in
    /// [`Published::failed`]: the others stay queryable.
    ///
    /// The database holds only views, so it is rebuilt whole under a temporary name and renamed
    /// into place: a reader (or a BI tool holding the old file open) never sees it half made, and
    /// nothing but sfetl's views is kept in it: keep your own objects in another database.
    ///
    /// The views read their tables' files through globs, so another run's files need no new
    /// database: when the statements and the tables' partitions (orgs) are those the current
    /// database was made with, and `contract` (what else decides the views' columns: the tables'
    /// schemas) is the same, the database is kept as it is. What it was made with is kept in
    /// `_state/warehouse.sql`.
    pub fn publish(root: &Path, tables: &[&str], views: &[View<'_>], contract: &str) -> Result<Published> {
        let path = root.join(Self::FILE_NAME);
        let made_with = root.join("_state").join("warehouse.sql");
        let absolute = root.canonicalize().map_err(|source| Error::Io { path: root.to_path_buf(), source })?;
        let mut statements = format!("-- {contract}\n-- storage {}\n", Self::STORAGE_VERSION);
        // A new partition (another org, or a foreign folder) has files no view was checked with.
        for table in tables {
            let mut partitions: Vec<String> = std::fs::read_dir(root.join(table))
                .into_iter()
                .flatten()
                .flatten()
                .map(|partition| partition.file_name().to_string_lossy().into_owned())
                .collect();
            partitions.sort_unstable();
            statements.push_str(&format!("-- {table}: {}\n", partitions.join(", ")));
        }
        let planned = write_statements(&mut statements, |table| table_source(&absolute, table), tables, views);
        if path.exists() && std::fs::read_to_string(&made_with).is_ok_and(|made| made == statements) {
            return Ok(planned);
        }
        // Whatever happens next, the database is no longer known to match.
        let _ = std::fs::remove_file(&made_with);
        let temp = root.join(format!("{}.tmp-{}", Self::FILE_NAME, std::process::id()));
        crate::parquet_sink::remove_leftovers(root, |stem| stem == Self::FILE_NAME);
        let fail = |source| Error::DuckDb { path: temp.clone(), source };
        let config = offline_config().and_then(|c| c.with("storage_compatibility_version", Self::STORAGE_VERSION));
        let config = config.map_err(fail)?;
        let published = {
            let warehouse = Warehouse {
                path: temp.clone(),
                connection: duckdb::Connection::open_with_flags(&temp, config).map_err(fail)?,
            };
            let make = |warehouse: &Warehouse| {
                create_all(
                    |table| table_source(&absolute, table),
                    tables,
                    views,
                    |name, select| warehouse.create_view(name, select),
                )
            };
            // Every view in one transaction: a commit each, its write-ahead log synced to disk,
            // took 8 ms of a first run's 60 here (about 30 views) and takes far longer on a slow
            // or network disk. A view refused aborts the transaction: then they are made again
            // one by one, so that the others stay and each refused one is reported.
            warehouse.connection.execute_batch("BEGIN TRANSACTION").map_err(fail)?;
            let together = make(&warehouse);
            let published = match together.failed.is_empty() {
                true => {
                    warehouse.connection.execute_batch("COMMIT").map_err(fail)?;
                    together
                }
                false => {
                    warehouse.connection.execute_batch("ROLLBACK").map_err(fail)?;
                    make(&warehouse)
                }
            };
            warehouse.connection.execute_batch("CHECKPOINT").map_err(fail)?;
            published
        };
        // DuckDB creates its file with the process's umask; the views name every table's files.
        std::fs::set_permissions(&temp, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|source| Error::Io { path: temp.clone(), source })?;
        std::fs::rename(&temp, &path).map_err(|source| Error::Io { path: path.clone(), source })?;
        // A write-ahead log left by an older database would be replayed onto the new one.
        let _ = std::fs::remove_file(root.join(format!("{}.wal", Self::FILE_NAME)));
        // A view refused is tried again next run.
        if published.failed.is_empty() {
            let saved = crate::create_private_dir(&root.join("_state"))
                .and_then(|()| crate::create_private_file(&made_with))
                .and_then(|mut file| std::io::Write::write_all(&mut file, statements.as_bytes()));
            if let Err(source) = saved {
                let _ = std::fs::remove_file(&made_with);
                return Err(Error::Io { path: made_with, source });
            }
        }
        Ok(published)
    }

    /// The SQL that makes, in a reader's own DuckDB, the views [`Warehouse::publish`] makes, over
    /// the files `files` names for each table (full URLs: `s3://…` for a DuckDB with `httpfs`).
    /// A table without files, and a view without its inputs, are left out.
    pub fn script(files: impl Fn(&str) -> Vec<String>, tables: &[&str], views: &[View<'_>]) -> String {
        let source = |table: &str| {
            let listed: Vec<String> = files(table).iter().map(|url| crate::sql_literal(url)).collect();
            (!listed.is_empty()).then(|| hive_source(&format!("[{}]", listed.join(", "))))
        };
        let mut sql = String::new();
        write_statements(&mut sql, source, tables, views);
        sql
    }

    /// Opens an existing database read-only (for queries while nothing writes).
    pub fn open_existing(root: &Path) -> Result<Warehouse> {
        let path = root.join(Self::FILE_NAME);
        if !path.exists() {
            return Err(Error::Io {
                path: path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no warehouse here yet: run `sfetl extract` first",
                ),
            });
        }
        let config = offline_config()
            .and_then(|c| c.access_mode(duckdb::AccessMode::ReadOnly))
            .map_err(|source| Error::DuckDb { path: path.clone(), source })?;
        let connection = duckdb::Connection::open_with_flags(&path, config)
            .map_err(|source| Error::DuckDb { path: path.clone(), source })?;
        Ok(Warehouse { path, connection })
    }

    fn create_view(&self, name: &str, select: &str) -> Result<()> {
        let sql = view_sql(name, select);
        self.connection.execute_batch(&sql).map_err(|source| Error::DuckDb { path: self.path.clone(), source })
    }

    /// Runs SQL and returns the result as Arrow batches.
    pub fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let fail = |source| Error::DuckDb { path: self.path.clone(), source };
        let mut statement = self.connection.prepare(sql).map_err(fail)?;
        let batches = statement.query_arrow([]).map_err(fail)?.collect();
        Ok(batches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParquetSink;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(names: &[&str]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("n", DataType::Int64, false),
        ]));
        let n: Vec<i64> = (0..names.len() as i64).collect();
        RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(names.to_vec())), Arc::new(Int64Array::from(n))])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn rewrites_replace_rows_and_views_answer_from_elsewhere() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|source| Error::Io { path: "tmp".into(), source })?;
        let sink = ParquetSink::new(dir.path());
        for _ in 0..2 {
            for (org, names) in [("acme", &["Ada", "Zoë"][..]), ("2024", &["太郎"][..])] {
                let mut writer = sink.open("people", "org", org, batch(names).schema())?;
                writer.write(&batch(names))?;
                writer.commit()?;
            }
        }
        let abandoned = sink.open("people", "org", "acme", batch(&[]).schema())?;
        drop(abandoned);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("people/org=acme"))
            .map_err(|source| Error::Io { path: dir.path().into(), source })?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers, ["people.parquet"]);
        let views = [
            View { name: "people", inputs: &["people"], sql: "SELECT * FROM {people} WHERE n = 0" },
            View { name: "nobody", inputs: &["absent"], sql: "SELECT * FROM {absent}" },
            View { name: "broken", inputs: &["people"], sql: "SELECT no_such_column FROM people" },
        ];
        assert_eq!(Warehouse::publish(dir.path(), &["people", "absent"], &[], "v1")?.registered, ["people"]);
        let published = Warehouse::publish(dir.path(), &["people"], &views, "v1")?;
        assert_eq!(published.registered, ["people"], "a re-run replaces the database; `nobody` lacks its input");
        assert_eq!(published.failed.len(), 1, "{:?}", published.failed);
        let cause = std::error::Error::source(&published.failed[0].1).map(ToString::to_string).unwrap_or_default();
        assert!(cause.contains("no_such_column"), "{:?}", published.failed);
        let warehouse = Warehouse::open_existing(dir.path())?;
        let out = warehouse.query("SELECT org, count(*)::BIGINT AS n FROM people GROUP BY org ORDER BY org")?;
        let orgs = out[0]
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .map(|a| a.iter().flatten().map(String::from).collect::<Vec<_>>());
        assert_eq!(orgs, Some(vec!["2024".to_string(), "acme".to_string()]));
        let counts = out[0].column(1).as_any().downcast_ref::<Int64Array>().map(|a| a.values().to_vec());
        assert_eq!(counts, Some(vec![1, 1]), "the `people` view refines the table's own view");
        Ok(())
    }

    /// The database is made again only when its statements, the tables' partitions or the
    /// contract change; a run's new files need none, the views' globs find them.
    #[test]
    fn keeps_the_database_while_its_statements_and_contract_stay() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|source| Error::Io { path: "tmp".into(), source })?;
        let sink = ParquetSink::new(dir.path());
        let write = |table: &str, org: &str, names: &[&str]| -> Result<()> {
            let mut writer = sink.open(table, "org", org, batch(names).schema())?;
            writer.write(&batch(names))?;
            writer.commit().map(|_| ())
        };
        write("people", "acme", &["Ada"])?;
        let file = dir.path().join(Warehouse::FILE_NAME);
        let identity = || {
            std::fs::metadata(&file)
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                .map_err(|source| Error::Io { path: file.clone(), source })
        };
        let count = || -> Result<Option<i64>> {
            let out = Warehouse::open_existing(dir.path())?.query("SELECT count(*)::BIGINT FROM people")?;
            Ok(out[0].column(0).as_any().downcast_ref::<Int64Array>().map(|a| a.value(0)))
        };
        let tables = ["people", "pets"];
        Warehouse::publish(dir.path(), &tables, &[], "v1")?;
        let made = identity()?;
        let mut run_file = sink.open_file("people", "org", "acme", "people-run2", batch(&["Zoë"]).schema())?;
        run_file.write(&batch(&["Zoë"]))?;
        run_file.commit()?;
        Warehouse::publish(dir.path(), &tables, &[], "v1")?;
        assert_eq!(identity()?, made, "same statements, same contract: kept");
        assert_eq!(count()?, Some(2), "a new file of the partition is read through the kept view");
        write("people", "zeta", &["Zoë"])?;
        Warehouse::publish(dir.path(), &tables, &[], "v1")?;
        assert_ne!(identity()?, made, "another org's partition: made again");
        let made = identity()?;
        Warehouse::publish(dir.path(), &tables, &[], "v2")?;
        let remade = identity()?;
        assert_ne!(remade, made, "another contract: made again");
        write("pets", "acme", &["Rex"])?;
        let published = Warehouse::publish(dir.path(), &tables, &[], "v2")?;
        assert_ne!(identity()?, remade, "a table with its first files: made again");
        assert_eq!(published.registered, ["people", "pets"]);
        std::fs::remove_file(&file).map_err(|source| Error::Io { path: file.clone(), source })?;
        Warehouse::publish(dir.path(), &tables, &[], "v2")?;
        assert_eq!(count()?, Some(3), "a missing database is made again");
        Ok(())
    }
}
