//! Progress per org and table: bars on a terminal, plain log lines otherwise.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

pub struct Progress {
    bars: Option<MultiProgress>,
}

pub struct TableProgress {
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

    pub fn table(&self, org: &str, table: &'static str) -> TableProgress {
        let bar = self.bars.as_ref().map(|multi| {
            let bar = multi.add(ProgressBar::new(0));
            let style = ProgressStyle::with_template("{prefix:>36} {bar:30} {pos:>9}/{len:9} {per_sec:>12} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_prefix(format!("{org} {table}"));
            bar
        });
        TableProgress { bar, org: org.to_string(), table }
    }

    pub fn org_failed(&self, org: &str, error: &str) {
        tracing::error!(org, "{error}");
    }
}

impl TableProgress {
    pub fn set_total(&self, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
    }

    pub fn advance(&self, rows: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(rows);
        }
    }

    pub fn finish(&self, rows: u64) {
        match &self.bar {
            Some(bar) => bar.finish(),
            None => tracing::info!(org = %self.org, table = self.table, rows, "table extracted"),
        }
    }
}
