//! sfetl's exit codes: one table, printed by `--help`, copied in the README (a test keeps the two
//! equal) and used by every command.

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success,
    OrgFailed,
    Usage,
    Internal,
    QuotaStopped,
    ViewsRefused,
    Busy,
}

/// Each code and what it means, in order.
pub const TABLE: [(Exit, u8, &str); 7] = [
    (Exit::Success, 0, "success"),
    (Exit::OrgFailed, 1, "an org failed (the others were extracted), or a `check` step failed"),
    (Exit::Usage, 2, "the command line, the pipeline file or the SQL is wrong: nothing was done"),
    (Exit::Internal, 3, "an output or internal error (the output directory cannot be written, ...)"),
    (Exit::QuotaStopped, 4, "the API quota guard stopped an org early: what it had extracted is kept"),
    (Exit::ViewsRefused, 5, "the data was extracted, but DuckDB refused a view of the warehouse"),
    (Exit::Busy, 6, "another run is writing the output directory: nothing was done (`--wait` waits for it)"),
];

impl Exit {
    pub fn code(self) -> u8 {
        TABLE.iter().find(|(exit, ..)| *exit == self).map_or(3, |(_, code, _)| *code)
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

impl From<sfetl_pipeline::RunOutcome> for Exit {
    fn from(outcome: sfetl_pipeline::RunOutcome) -> Exit {
        match outcome {
            sfetl_pipeline::RunOutcome::Succeeded => Exit::Success,
            sfetl_pipeline::RunOutcome::OrgFailed => Exit::OrgFailed,
            sfetl_pipeline::RunOutcome::QuotaStopped => Exit::QuotaStopped,
            sfetl_pipeline::RunOutcome::ViewsRefused => Exit::ViewsRefused,
        }
    }
}

/// The table as `--help` ends it and the README shows it.
pub fn help() -> String {
    let lines: Vec<String> = TABLE.iter().map(|(_, code, meaning)| format!("  {code}  {meaning}")).collect();
    format!("Exit codes:\n{}", lines.join("\n"))
}

#[cfg(test)]
mod tests {
    /// The README's table is this one, line for line.
    #[test]
    fn the_readme_lists_the_same_exit_codes() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
            .unwrap_or_else(|e| panic!("README.md: {e}"));
        for (_, code, meaning) in super::TABLE {
            let line = format!("| {code} | {meaning} |");
            assert!(readme.contains(&line), "README.md lacks the exit code line `{line}`");
        }
    }
}
