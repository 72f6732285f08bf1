//! The run's progress ([`sfetl_pipeline::Progress`]) per org and table: bars on a terminal, plain
//! log lines otherwise.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::io::{IsTerminal, Write};

#[derive(Clone)]
pub struct Progress {
    bars: Option<MultiProgress>,
}

/// Log lines go through the bars (`suspend`), so a line never tears a bar or repeats it.
#[derive(Clone)]
pub struct LogWriter {
    bars: Option<MultiProgress>,
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &self.bars {
            Some(bars) => bars.suspend(|| std::io::stderr().write_all(buf)).map(|()| buf.len()),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        self.clone()
    }
}

struct TableBar {
    bar: Option<ProgressBar>,
    org: String,
    table: &'static str,
}

impl Progress {
    /// Bars only when stderr is a terminal and not quiet.
    pub fn new(quiet: bool) -> Progress {
        let bars = (!quiet && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress { bars }
    }

    /// Where log lines are written while these bars are shown.
    pub fn log_writer(&self) -> LogWriter {
        LogWriter { bars: self.bars.clone() }
    }
}

impl sfetl_pipeline::Progress for Progress {
    fn table(&self, org: &str, table: &'static str) -> Box<dyn sfetl_pipeline::TableProgress> {
        let bar = self.bars.as_ref().map(|multi| {
            let bar = multi.add(ProgressBar::new(0));
            let style = ProgressStyle::with_template("{prefix:>48} {bar:30} {pos:>9}/{len:9} {rate:>10} eta {eta}")
                .map(|style| {
                    style.with_key("rate", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.0}/s", state.per_sec());
                    })
                })
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_prefix(format!("{org} {table}"));
            bar
        });
        Box::new(TableBar { bar, org: org.to_string(), table })
    }

    fn org_failed(&self, org: &str, error: &sfetl_pipeline::OrgError) {
        tracing::error!(org, "{}", sfetl_pipeline::chain(error));
    }
}

impl sfetl_pipeline::TableProgress for TableBar {
    fn set_total(&self, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
    }

    fn advance(&self, rows: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(rows);
        }
    }

    fn finish(&self, rows: u64) {
        match &self.bar {
            Some(bar) => bar.finish(),
            None => tracing::info!(org = %self.org, table = self.table, rows, "table extracted"),
        }
    }
}
