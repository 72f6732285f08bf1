//! `sfetl`: Salesforce subscriptions (licenses) and users into Parquet and DuckDB.
//!
//! Exit codes: 0 success; 1 an org failed (the others were still extracted); 2 the command line
//! or the pipeline file is wrong; 3 an internal or output error; 4 the API quota guard stopped an
//! org early (what it had extracted is kept).

mod check;
mod demo;
mod derive;
mod init;
mod pipeline;
mod progress;
mod read_table;
mod report;
mod run;
mod scope;
mod sim_cmd;
mod state;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "sfetl", version, about = "Salesforce subscriptions (licenses) and users into Parquet and DuckDB")]
struct Cli {
    /// More log output (-v: debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only warnings and errors; no progress bars.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Log lines (on stderr) as text or as one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Extract every org of a pipeline into Parquet and register the DuckDB views.
    #[command(
        after_help = "Examples:\n  sfetl extract                       # pipelines/demo.toml: simulated orgs\n  sfetl extract pipelines/prod.toml --out /srv/sfetl"
    )]
    Extract {
        /// The pipeline file.
        #[arg(default_value = "pipelines/demo.toml")]
        pipeline: PathBuf,
        /// Output directory (overrides the pipeline's `output`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Read every table in full, ignoring where the last run stopped.
        #[arg(long)]
        full: bool,
    },
    /// Run SQL against warehouse.duckdb and print the result.
    #[command(
        after_help = "Examples:\n  sfetl query \"select org, count(*) from users group by org\"\n  sfetl query --format csv \"select * from user_licenses\" > licenses.csv"
    )]
    Query {
        sql: String,
        /// Directory holding warehouse.duckdb.
        #[arg(long, default_value = "data")]
        out: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Write an HTML report of the licenses: utilization, trend and inactive users, per org and company.
    #[command(
        after_help = "Examples:\n  sfetl report                        # data/ -> data/report.html\n  sfetl report --out /srv/sfetl --to /srv/www/licenses.html"
    )]
    Report {
        /// Directory holding warehouse.duckdb.
        #[arg(long, default_value = "data")]
        out: PathBuf,
        /// The HTML file to write (default: report.html in the `--out` directory).
        #[arg(long)]
        to: Option<PathBuf>,
    },
    /// Make the key pair, certificate and pipeline file for a new connected app.
    #[command(after_help = "Examples:\n  sfetl init acme\n  sfetl init acme-sandbox --dir /etc/sfetl")]
    Init {
        /// A short slug for the org: it names the files.
        #[arg(default_value = "salesforce")]
        name: String,
        /// Where `keys/` and `pipelines/` are (created when missing).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Check each org's connection step by step, naming what to fix.
    #[command(
        after_help = "Examples:\n  sfetl check pipelines/prod.toml\n  sfetl check pipelines/prod.toml --format json\n  \
                      sfetl check pipelines/prod.toml --capture org-shape.json   # then: sfetl sim --shape org-shape.json"
    )]
    Check {
        /// The pipeline file.
        #[arg(default_value = "pipelines/demo.toml")]
        pipeline: PathBuf,
        #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
        format: CheckFormat,
        /// Also write each org's shape (fields, API versions, limits, license keys and counts; no
        /// personal data) to this JSON file, for `sfetl sim --shape`; with several orgs, the org's
        /// name is added to the file name.
        #[arg(long)]
        capture: Option<PathBuf>,
    },
    /// Serve a simulated Salesforce org on loopback until interrupted.
    Sim(sim_cmd::SimArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum CheckFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SFETL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let json_logs = matches!(cli.log_format, LogFormat::Json);
    let progress = progress::Progress::new(cli.quiet || json_logs);
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(progress.log_writer()).with_target(false);
    match cli.log_format {
        // One JSON object per line, for schedulers and log shippers.
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(dispatch(cli.command, progress)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::from(3)
        }
    }
}

async fn dispatch(command: Command, progress: progress::Progress) -> anyhow::Result<ExitCode> {
    match command {
        Command::Extract { pipeline, out, full } => {
            let pipeline = match pipeline::load(&pipeline) {
                Ok(p) => p,
                Err(problems) => {
                    eprintln!("error: {problems}");
                    return Ok(ExitCode::from(2));
                }
            };
            let output = out.unwrap_or_else(|| pipeline.output.clone());
            let mode = if full { run::Mode::Full } else { run::Mode::Incremental };
            let outcomes = run::extract(&pipeline, &output, mode, &progress).await?;
            print_summary(&outcomes, &output);
            Ok(if outcomes.iter().any(|o| o.error.is_some()) {
                ExitCode::from(1)
            } else if outcomes.iter().any(|o| o.stopped.is_some()) {
                ExitCode::from(4)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Query { sql, out, format } => {
            let warehouse = sfetl_load::Warehouse::open_existing(&out)?;
            let batches = warehouse.query(&sql)?;
            print_batches(&batches, format)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Report { out, to } => {
            let to = to.unwrap_or_else(|| out.join("report.html"));
            let orgs = report::write(&out, &to)?;
            println!("wrote {} ({orgs} org{})", to.display(), if orgs == 1 { "" } else { "s" });
            Ok(ExitCode::SUCCESS)
        }
        Command::Init { name, dir } => match init::run(&dir, &name) {
            Ok(files) => {
                print!("{}", init::instructions(&files));
                Ok(ExitCode::SUCCESS)
            }
            Err(problem) => {
                eprintln!("error: {problem}");
                Ok(ExitCode::from(2))
            }
        },
        Command::Check { pipeline, format, capture } => {
            let json = matches!(format, CheckFormat::Json);
            let pipeline = match pipeline::load(&pipeline) {
                Ok(p) => p,
                Err(problems) => {
                    let step = check::Step {
                        org: "-".into(),
                        step: "settings".into(),
                        ok: false,
                        warning: false,
                        detail: problems,
                        fix: Some("correct the settings named above".into()),
                    };
                    return Ok(check::report(&[step], json));
                }
            };
            let mut steps = Vec::new();
            let several = pipeline.orgs.len() > 1;
            for org in &pipeline.orgs {
                let capture = capture.as_deref().map(|path| check::capture_path(path, &org.name, several));
                steps.extend(check::check_org(org, capture.as_deref()).await);
            }
            Ok(check::report(&steps, json))
        }
        Command::Sim(args) => sim_cmd::run(args).await,
    }
}

fn print_summary(outcomes: &[run::OrgOutcome], output: &std::path::Path) {
    let line = |org: &str, table: &str, rows: u64, fetched: u64, calls: u64, seconds: f64| {
        println!("{org:<16} {table:<36} {rows:>10} {fetched:>10} {calls:>9} {seconds:>9.2}");
    };
    println!("{:<16} {:<36} {:>10} {:>10} {:>9} {:>9}", "org", "table", "rows", "fetched", "api calls", "seconds");
    for org in outcomes {
        for t in &org.tables {
            line(&org.org, t.table, t.rows, t.fetched, t.api_calls, t.elapsed.as_secs_f64());
        }
        for (table, rows) in &org.derived {
            println!("{:<16} {table:<36} {rows:>10} {:>10} {:>9} {:>9}", org.org, "derived", "-", "-");
        }
        if let Some(reason) = &org.stopped {
            println!("{:<16} STOPPED: {reason}", org.org);
        }
        match &org.error {
            None => line(
                &org.org,
                "(all)",
                org.tables.iter().map(|t| t.rows).sum(),
                org.tables.iter().map(|t| t.fetched).sum(),
                org.api_calls,
                org.elapsed.as_secs_f64(),
            ),
            Some(e) => println!("{:<16} FAILED: {e}", org.org),
        }
    }
    println!("output: {} (DuckDB: {})", output.display(), output.join(sfetl_load::Warehouse::FILE_NAME).display());
}

fn print_batches(batches: &[arrow::record_batch::RecordBatch], format: Format) -> anyhow::Result<()> {
    let batches = batches.iter().map(with_utc_as_offset).collect::<Result<Vec<_>, _>>()?;
    let batches = &batches[..];
    let stdout = std::io::stdout();
    match format {
        Format::Table => println!("{}", arrow::util::pretty::pretty_format_batches(batches)?),
        Format::Csv => {
            let mut writer = arrow::csv::Writer::new(stdout.lock());
            for batch in batches {
                writer.write(batch).context("writing CSV")?;
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

/// An error and its causes on one line, like `{:#}`, without repeating a cause that an error's
/// own message already quotes (the crates' messages name their source so they read well alone).
pub fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn describe_names_each_cause_once() {
        let inner = std::io::Error::other("disk full");
        let outer = anyhow::Error::new(sfetl_load::Error::Io { path: "/x".into(), source: inner });
        assert_eq!(super::describe(&outer.context("writing users")), "writing users: /x: disk full");
    }
}
