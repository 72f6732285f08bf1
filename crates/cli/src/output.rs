//! What sfetl prints: the run summary, query results and check steps.

use crate::exit::Exit;
use anyhow::Context;
use sfetl_pipeline::check::Step;
use sfetl_pipeline::{OrgOutcome, RunSummary};

/// One line per table and org, then where the output is.
pub fn run_summary(summary: &RunSummary) {
    let line = |org: &str, table: &str, rows: u64, fetched: u64, calls: u64, seconds: f64| {
        println!("{org:<16} {table:<36} {rows:>10} {fetched:>10} {calls:>9} {seconds:>9.2}");
    };
    println!("{:<16} {:<36} {:>10} {:>10} {:>9} {:>9}", "org", "table", "rows", "fetched", "api calls", "seconds");
    for org in &summary.orgs {
        for t in &org.tables {
            line(&org.org, t.table, t.rows, t.fetched, t.api_calls, t.elapsed.as_secs_f64());
        }
        for d in &org.derived {
            println!("{:<16} {:<36} {:>10} {:>10} {:>9} {:>9}", org.org, d.table, d.rows, "derived", "-", "-");
        }
        let total = |org: &sfetl_pipeline::OrgSummary| {
            line(
                &org.org,
                "(all)",
                org.tables.iter().map(|t| t.rows).sum(),
                org.tables.iter().map(|t| t.fetched).sum(),
                org.api_calls,
                org.elapsed.as_secs_f64(),
            )
        };
        match &org.outcome {
            OrgOutcome::Succeeded => total(org),
            OrgOutcome::Stopped { reason, .. } => {
                println!("{:<16} STOPPED: {}", org.org, printable(&sfetl_pipeline::chain(reason)));
                total(org);
            }
            OrgOutcome::Failed { error } => {
                println!("{:<16} FAILED: {}", org.org, printable(&sfetl_pipeline::chain(error)))
            }
            OrgOutcome::Skipped { reason } => {
                println!("{:<16} SKIPPED: {}", org.org, printable(&sfetl_pipeline::chain(reason)))
            }
        }
        if let Some(sequence) = org.committed {
            println!("{:<16} committed to the lake as the org's manifest {sequence}", org.org);
        }
    }
    for refused in &summary.refused_views {
        println!("{:<16} REFUSED: {}", refused.view, printable(&sfetl_pipeline::chain(&refused.error)));
    }
    if let Some(notice) = slow_build_notice(cfg!(debug_assertions), summary) {
        tracing::warn!("{notice}");
    }
    let local = summary.work_dir.as_ref().unwrap_or(&summary.output);
    let warehouse = local.join(sfetl_load::Warehouse::FILE_NAME);
    match &summary.work_dir {
        Some(work) => println!(
            "output: {} (working copy: {}; DuckDB over it: {})",
            summary.output.display(),
            work.display(),
            warehouse.display()
        ),
        None => println!("output: {} (DuckDB: {})", summary.output.display(), warehouse.display()),
    }
}

/// One line per org pulled, then where the mirror is.
pub fn pull_summary(pulled: &sfetl_pipeline::PullSummary) {
    println!("{:<16} {:>8} {:<22} {:>6} {:>10}", "org", "commit", "run", "files", "downloaded");
    for org in &pulled.orgs {
        println!("{:<16} {:>8} {:<22} {:>6} {:>10}", org.org, org.sequence, org.run_id, org.files, org.downloaded);
    }
    for refused in &pulled.refused_views {
        println!("{:<16} REFUSED: {}", refused.view, printable(&sfetl_pipeline::chain(&refused.error)));
    }
    let warehouse = pulled.to.join(sfetl_load::Warehouse::FILE_NAME);
    println!("lake: {} -> mirror: {} (DuckDB: {})", pulled.lake, pulled.to.display(), warehouse.display());
}

/// Every org of a lake: its newest commit and who holds its lease; or, with `json`, the
/// committed manifests with each file's full URL.
pub async fn lake_status(lake: &sfetl_lake::Lake, json: bool) -> anyhow::Result<()> {
    let snapshot = lake.snapshot().await?;
    if json {
        let orgs: Vec<serde_json::Value> = snapshot
            .manifests
            .iter()
            .map(|m| {
                let files: Vec<serde_json::Value> = m
                    .files
                    .iter()
                    .map(|f| serde_json::json!({"table": f.table, "url": lake.url_of(&f.path), "size": f.size}))
                    .collect();
                serde_json::json!({
                    "org": m.org, "sequence": m.sequence, "run_id": m.run_id,
                    "committed_at": m.committed_at, "worker": m.worker, "files": files,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"lake": lake.url(), "orgs": orgs}))?);
        return Ok(());
    }
    println!("{:<16} {:>8} {:<22} {:<26} {:>6}  held by", "org", "commit", "run", "committed at", "files");
    for m in &snapshot.manifests {
        let holder = match lake.lease_holder(&m.org).await? {
            Some(lease) => lease.holder,
            None => "-".to_string(),
        };
        println!(
            "{:<16} {:>8} {:<22} {:<26} {:>6}  {}",
            m.org,
            m.sequence,
            m.run_id,
            m.committed_at,
            m.files.len(),
            printable(&holder)
        );
    }
    println!("lake: {} ({} orgs committed)", lake.url(), snapshot.manifests.len());
    Ok(())
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

pub fn batches(batches: &[arrow::record_batch::RecordBatch], format: Format, raw: bool) -> anyhow::Result<()> {
    let batches = batches.iter().map(with_utc_as_offset).collect::<Result<Vec<_>, _>>()?;
    let batches = &batches[..];
    let stdout = std::io::stdout();
    match format {
        Format::Table => println!("{}", printable(&arrow::util::pretty::pretty_format_batches(batches)?.to_string())),
        Format::Csv => {
            let mut writer = arrow::csv::Writer::new(stdout.lock());
            for batch in batches {
                let batch = if raw { batch.clone() } else { without_formulas(batch)? };
                writer.write(&batch).context("writing CSV")?;
            }
        }
        Format::Json => {
            let mut writer = arrow::json::ArrayWriter::new(stdout.lock());
            let refs: Vec<&arrow::record_batch::RecordBatch> = batches.iter().collect();
            writer.write_batches(&refs).context("writing JSON")?;
            writer.finish().context("writing JSON")?;
            println!();
        }
    }
    Ok(())
}

/// The batch with its `UTC` timestamps labelled `+00:00`: arrow formats named time zones only
/// with its `chrono-tz` feature, offsets always; the instants are the same.
fn with_utc_as_offset(
    batch: &arrow::record_batch::RecordBatch,
) -> Result<arrow::record_batch::RecordBatch, arrow::error::ArrowError> {
    use arrow::datatypes::{DataType, Field, Schema};
    let utc = |t: &DataType| match t {
        DataType::Timestamp(unit, Some(tz)) if tz.eq_ignore_ascii_case("utc") => {
            Some(DataType::Timestamp(*unit, Some("+00:00".into())))
        }
        _ => None,
    };
    let schema = batch.schema();
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        match utc(field.data_type()) {
            Some(offset) => {
                columns.push(arrow::compute::cast(column, &offset)?);
                fields.push(Field::new(field.name(), offset, field.is_nullable()));
            }
            None => {
                columns.push(column.clone());
                fields.push(field.as_ref().clone());
            }
        }
    }
    arrow::record_batch::RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns)
}

/// Text from elsewhere (a server's error message, a user's name) made safe for a terminal:
/// control characters, ANSI escape sequences included, are shown escaped instead of obeyed.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The batch with each text cell that a spreadsheet would run as a formula (starting with
/// `=`, `+`, `-`, `@`, tab or carriage return: OWASP, "CSV Injection") prefixed with `'`. User
/// names and titles are typed by the users themselves.
fn without_formulas(
    batch: &arrow::record_batch::RecordBatch,
) -> Result<arrow::record_batch::RecordBatch, arrow::error::ArrowError> {
    use arrow::array::{Array, AsArray, StringArray};
    let risky = |v: &str| v.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let columns = batch
        .columns()
        .iter()
        .map(|column| match column.as_string_opt::<i32>() {
            Some(text) if text.iter().flatten().any(risky) => {
                let safe: StringArray =
                    text.iter().map(|v| v.map(|v| if risky(v) { format!("'{v}") } else { v.to_string() })).collect();
                std::sync::Arc::new(safe) as std::sync::Arc<dyn Array>
            }
            _ => column.clone(),
        })
        .collect();
    arrow::record_batch::RecordBatch::try_new(batch.schema(), columns)
}

/// Prints the check's steps (text or JSON); success only when every step passed.
pub fn check_steps(steps: &[Step], json: bool) -> Exit {
    if json {
        println!("{}", serde_json::to_string_pretty(steps).unwrap_or_else(|_| "[]".into()));
    } else {
        for step in steps {
            let mark = match (step.ok, step.warning) {
                (true, false) => "ok  ",
                (true, true) => "warn",
                (false, _) => "FAIL",
            };
            println!("{mark} {:<14} {:<34} {}", step.org, step.step, printable(&step.detail));
            if let Some(fix) = &step.fix {
                println!("     {:<14} {:<34} fix: {}", "", "", printable(fix));
            }
        }
        let failed = steps.iter().filter(|s| !s.ok).count();
        println!("{} passed, {failed} failed", steps.len() - failed);
    }
    if steps.iter().all(|s| s.ok) { Exit::Success } else { Exit::OrgFailed }
}

/// Rows read past which a debug build says what it costs: the demo and the tests read far fewer.
const SLOW_BUILD_ROWS: u64 = 100_000;

/// For a debug build (`debug`) that read many rows, what to say: `just extract` runs the build
/// the tests share, and a real org's nightly run deserves the release one (the benchmark's 100k-user
/// org: 8.6 s and 10.5 s of CPU in the debug build, 0.95 s and 0.8 s in the release build).
fn slow_build_notice(debug: bool, summary: &RunSummary) -> Option<String> {
    let rows: u64 = summary.orgs.iter().flat_map(|org| &org.tables).map(|table| table.fetched).sum();
    (debug && rows >= SLOW_BUILD_ROWS).then(|| {
        format!(
            "this sfetl is a debug build (no optimizations): it read these {rows} rows in about nine times \
             the time the release build takes; install that one with `just install` \
             (or `cargo build --release`) and run it instead"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_reading(orgs: &[&[u64]]) -> RunSummary {
        let org = |(n, fetched): (usize, &&[u64])| sfetl_pipeline::OrgSummary {
            org: format!("org{n}"),
            outcome: OrgOutcome::Succeeded,
            tables: fetched
                .iter()
                .map(|&fetched| sfetl_pipeline::TableSummary {
                    table: "users",
                    rows: fetched * 2,
                    fetched,
                    api_calls: 1,
                    elapsed: std::time::Duration::ZERO,
                })
                .collect(),
            derived: Vec::new(),
            api_calls: 1,
            retries: 0,
            committed: None,
            elapsed: std::time::Duration::ZERO,
        };
        RunSummary {
            run_id: "r".into(),
            output: "data".into(),
            work_dir: None,
            shard: None,
            mode: sfetl_pipeline::Mode::Full,
            orgs: orgs.iter().enumerate().map(org).collect(),
            refused_views: Vec::new(),
            elapsed: std::time::Duration::ZERO,
        }
    }

    /// A debug build says so once the rows read, over every org and table (not the rows kept),
    /// reach the threshold; a release build never does.
    #[test]
    fn only_a_debug_build_reading_many_rows_says_so() {
        let many = run_reading(&[&[60_000], &[30_000, 10_000]]);
        let notice = slow_build_notice(true, &many).expect("100,000 rows read in a debug build");
        assert!(notice.contains("100000 rows") && notice.contains("just install"), "{notice}");
        assert_eq!(slow_build_notice(false, &many), None);
        // Fewer read than kept (an incremental run): what was read counts.
        assert_eq!(slow_build_notice(true, &run_reading(&[&[60_000], &[39_999]])), None);
        assert_eq!(slow_build_notice(true, &run_reading(&[])), None);
    }

    #[test]
    fn server_text_cannot_drive_the_terminal() {
        let hostile = "Bad \u{1b}[2J\u{1b}]0;title\u{7} query\r\nline two";
        let shown = printable(hostile);
        assert!(!shown.chars().any(|c| c.is_control() && c != '\n'), "{shown:?}");
        assert!(shown.contains("\\u{1b}[2J") && shown.contains("\\r\nline two"), "{shown}");
    }

    #[test]
    fn csv_cells_that_would_be_formulas_are_defused() -> Result<(), arrow::error::ArrowError> {
        use arrow::array::{AsArray, Int64Array, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        let names = StringArray::from(vec![
            Some("=HYPERLINK(\"http://x\",\"y\")"),
            Some("+1"),
            Some("-2"),
            Some("@SUM(A1)"),
            Some("\tcmd"),
            Some("O'Brien"),
            None,
        ]);
        let numbers = Int64Array::from(vec![-1, 2, 3, 4, 5, 6, 7]);
        let schema =
            Schema::new(vec![Field::new("name", DataType::Utf8, true), Field::new("n", DataType::Int64, false)]);
        let batch = arrow::record_batch::RecordBatch::try_new(
            std::sync::Arc::new(schema),
            vec![std::sync::Arc::new(names), std::sync::Arc::new(numbers)],
        )?;
        let safe = without_formulas(&batch)?;
        let text: Vec<Option<&str>> = safe.column(0).as_string::<i32>().iter().collect();
        assert_eq!(
            text,
            [
                Some("'=HYPERLINK(\"http://x\",\"y\")"),
                Some("'+1"),
                Some("'-2"),
                Some("'@SUM(A1)"),
                Some("'\tcmd"),
                Some("O'Brien"),
                None
            ]
        );
        assert_eq!(safe.column(1), batch.column(1), "numbers are not text");
        Ok(())
    }
}
