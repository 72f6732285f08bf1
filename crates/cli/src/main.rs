//! `sfetl`: Salesforce subscriptions (licenses) and users into Parquet and DuckDB. This binary is
//! the command line only: arguments, logging, printing and exit codes ([`exit`]); the pipeline is
//! the `sfetl-pipeline` library.

mod exit;
mod init;
mod output;
mod progress;
#[cfg(feature = "demo")]
mod sim_cmd;

use clap::{Parser, Subcommand, ValueEnum};
use exit::Exit;
use output::Format;
use sfetl_pipeline::{Mode, Pipeline, RunOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "sfetl",
    version,
    about = "Salesforce subscriptions (licenses) and users into Parquet and DuckDB",
    after_help = exit::help()
)]
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
        /// Output directory or object-storage URL, e.g. s3://bucket/prefix (overrides the
        /// pipeline's `output`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Read every table in full, ignoring where the last run stopped.
        #[arg(long)]
        full: bool,
        /// Also write the run's outcome as JSON to this file (per org and table: status, rows,
        /// API calls, seconds, errors), for schedulers.
        #[arg(long)]
        summary_json: Option<PathBuf>,
        /// When another run is writing the output directory, wait for it to end instead of
        /// exiting with code 6.
        #[arg(long)]
        wait: bool,
        /// Extract only this worker's share of the orgs: I/N, for worker I (from 0) of N. Each
        /// org belongs to one worker, by its name.
        #[arg(long, env = "SFETL_SHARD", value_name = "I/N")]
        shard: Option<sfetl_pipeline::Shard>,
        /// Like --shard, with I from the variable JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs).
        #[arg(long, env = "SFETL_SHARDS", value_name = "N", conflicts_with = "shard")]
        shards: Option<u32>,
        /// Object-storage output: the local working copy (default: ~/.cache/sfetl/work/<lake>).
        #[arg(long, env = "SFETL_WORK_DIR")]
        work_dir: Option<PathBuf>,
        /// Do not write warehouse.duckdb (workers that only fill the lake).
        #[arg(long)]
        no_warehouse: bool,
        /// Object-storage output: seconds an org's lease lasts unless renewed (1 to 604800, a
        /// week); a worker that dies holds its orgs this long.
        #[arg(long, env = "SFETL_LEASE_SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=604_800))]
        lease_seconds: u64,
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
        /// CSV: write text cells as they are, even those a spreadsheet would run as a formula
        /// (by default a cell starting with = + - @ tab or return gets a leading ').
        #[arg(long)]
        raw: bool,
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
    /// Mirror a lake's committed files (object storage) into a local directory and write
    /// warehouse.duckdb over them: only new files are downloaded, and a half-finished run is
    /// never pulled.
    #[command(
        after_help = "Examples:\n  sfetl pull s3://acme-licenses/sfetl --to /srv/sfetl\n  sfetl query --out /srv/sfetl \"select * from license_utilization\""
    )]
    Pull {
        /// The lake: s3://bucket/prefix, gs://…, az://…, file:///…
        lake: String,
        /// The local mirror (created when missing).
        #[arg(long, default_value = "data")]
        to: PathBuf,
        /// A user who has not logged in for this many days is inactive, in the views.
        #[arg(long, default_value_t = 90)]
        inactive_days: u32,
        /// When another run is writing the mirror, wait for it to end instead of exiting with code 6.
        #[arg(long)]
        wait: bool,
    },
    /// Show a lake's orgs: their newest commit, and which worker holds each org now.
    #[command(
        after_help = "Examples:\n  sfetl lake s3://acme-licenses/sfetl\n  sfetl lake s3://acme-licenses/sfetl --json"
    )]
    Lake {
        /// The lake: s3://bucket/prefix, gs://…, az://…, file:///…
        lake: String,
        /// As JSON: the committed manifests (every file's URL), for scripts and engines.
        #[arg(long, conflicts_with = "duckdb_views")]
        json: bool,
        /// Print the SQL that makes the warehouse's views over the committed files' URLs, for
        /// your own DuckDB with httpfs: sfetl lake URL --duckdb-views > lake.sql
        #[arg(long)]
        duckdb_views: bool,
        /// With --duckdb-views: a user who has not logged in for this many days is inactive.
        #[arg(long, default_value_t = 90)]
        inactive_days: u32,
    },
    /// Serve a simulated Salesforce org on loopback until interrupted.
    #[cfg(feature = "demo")]
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
        Err(e) => return fail(Exit::Internal, &anyhow::Error::new(e).context("cannot start the async runtime")),
    };
    match runtime.block_on(dispatch(cli.command, progress)) {
        Ok(exit) => exit.into(),
        Err(e) => fail(Exit::Internal, &e),
    }
}

/// A run's result, where "another run is writing the output" is printed and becomes exit code 6.
fn unless_busy<T>(result: Result<T, sfetl_pipeline::RunError>) -> anyhow::Result<Result<T, Exit>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(busy @ sfetl_pipeline::RunError::Busy { .. }) => {
            eprintln!("error: {}", output::printable(&sfetl_pipeline::chain(&busy)));
            Ok(Err(Exit::Busy))
        }
        Err(e) => Err(e.into()),
    }
}

/// `--shards N`: this worker's index from `JOB_COMPLETION_INDEX`, as Kubernetes sets it in
/// each pod of an Indexed Job.
fn kubernetes_shard(count: u32) -> Result<sfetl_pipeline::Shard, String> {
    let index = std::env::var("JOB_COMPLETION_INDEX")
        .map_err(|_| format!("--shards {count} takes this worker's index from JOB_COMPLETION_INDEX, which is not set; use --shard I/{count}"))?;
    format!("{}/{count}", index.trim()).parse().map_err(|e| format!("JOB_COMPLETION_INDEX with --shards: {e}"))
}

/// Prints the error and its causes, each once, and gives the exit code.
fn fail(exit: Exit, error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", output::printable(&format!("{error:#}")));
    exit.into()
}

async fn dispatch(command: Command, progress: progress::Progress) -> anyhow::Result<Exit> {
    match command {
        Command::Extract {
            pipeline,
            out,
            full,
            summary_json,
            wait,
            shard,
            shards,
            work_dir,
            no_warehouse,
            lease_seconds,
        } => {
            let shard = match (shard, shards) {
                (Some(shard), _) => Some(shard),
                (None, Some(count)) => match kubernetes_shard(count) {
                    Ok(shard) => Some(shard),
                    Err(problem) => {
                        eprintln!("error: {problem}");
                        return Ok(Exit::Usage);
                    }
                },
                (None, None) => None,
            };
            let pipeline = match Pipeline::load(&pipeline) {
                Ok(p) => p,
                Err(problems) => {
                    eprintln!("error: {}", output::printable(&sfetl_pipeline::chain(&problems)));
                    return Ok(Exit::Usage);
                }
            };
            let mode = if full { Mode::Full } else { Mode::Incremental };
            let options = RunOptions {
                output: out,
                mode,
                progress: Arc::new(progress),
                wait_for_output: wait,
                shard,
                work_dir,
                warehouse: !no_warehouse,
                lease: std::time::Duration::from_secs(lease_seconds),
            };
            let summary = match unless_busy(sfetl_pipeline::run(&pipeline, options).await)? {
                Ok(summary) => summary,
                Err(exit) => return Ok(exit),
            };
            output::run_summary(&summary);
            if let Some(path) = summary_json {
                let json = serde_json::to_vec_pretty(&summary)?;
                std::fs::write(&path, json).map_err(|e| {
                    anyhow::Error::new(e).context(format!("cannot write --summary-json {}", path.display()))
                })?;
            }
            Ok(summary.outcome().into())
        }
        Command::Query { sql, out, format, raw } => {
            let warehouse = sfetl_load::Warehouse::open_existing(&out)?;
            let batches = match warehouse.query(&sql) {
                Ok(batches) => batches,
                // DuckDB refused the statement: the SQL is the user's to fix.
                Err(e) => {
                    eprintln!("error: {}", output::printable(&sfetl_pipeline::chain(&e)));
                    return Ok(Exit::Usage);
                }
            };
            output::batches(&batches, format, raw)?;
            Ok(Exit::Success)
        }
        Command::Report { out, to } => {
            let to = to.unwrap_or_else(|| out.join("report.html"));
            let orgs = sfetl_report::write(&out, &to)?;
            println!("wrote {} ({orgs} org{})", to.display(), if orgs == 1 { "" } else { "s" });
            Ok(Exit::Success)
        }
        Command::Init { name, dir } => match init::run(&dir, &name) {
            Ok(files) => {
                print!("{}", init::instructions(&files));
                Ok(Exit::Success)
            }
            Err(problem) => {
                eprintln!("error: {problem}");
                Ok(Exit::Usage)
            }
        },
        Command::Check { pipeline, format, capture } => {
            let json = matches!(format, CheckFormat::Json);
            let pipeline = match Pipeline::load(&pipeline) {
                Ok(p) => p,
                Err(problems) => {
                    let step = sfetl_pipeline::check::Step {
                        org: "-".into(),
                        step: "settings".into(),
                        ok: false,
                        warning: false,
                        detail: sfetl_pipeline::chain(&problems),
                        fix: Some("correct the settings named above".into()),
                    };
                    output::check_steps(&[step], json);
                    return Ok(Exit::Usage);
                }
            };
            let mut steps = Vec::new();
            let several = pipeline.orgs.len() > 1;
            for org in &pipeline.orgs {
                let capture =
                    capture.as_deref().map(|path| sfetl_pipeline::check::capture_path(path, &org.name, several));
                steps.extend(sfetl_pipeline::check::check_org(org, capture.as_deref()).await);
            }
            Ok(output::check_steps(&steps, json))
        }
        Command::Pull { lake, to, inactive_days, wait } => {
            let pulled = match unless_busy(sfetl_pipeline::pull(&lake, &to, inactive_days, wait).await)? {
                Ok(pulled) => pulled,
                Err(exit) => return Ok(exit),
            };
            output::pull_summary(&pulled);
            Ok(if pulled.refused_views.is_empty() { Exit::Success } else { Exit::ViewsRefused })
        }
        Command::Lake { lake, duckdb_views: true, inactive_days, .. } => {
            print!("{}", sfetl_pipeline::lake_views_sql(&lake, inactive_days).await?);
            Ok(Exit::Success)
        }
        Command::Lake { lake, json, .. } => {
            let lake = sfetl_lake::Lake::open(&lake)?;
            output::lake_status(&lake, json).await?;
            Ok(Exit::Success)
        }
        #[cfg(feature = "demo")]
        Command::Sim(args) => sim_cmd::run(args).await,
    }
}
