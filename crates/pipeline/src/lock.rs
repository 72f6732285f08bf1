//! One run at a time per output directory: a run holds an exclusive lock on `<output>/.sfetl.lock`
//! (`flock`) while it writes. The operating system releases it when the process ends, however it
//! ends, so a killed run leaves no stale lock; the file keeps the last holder's pid and start
//! time for the message a refused run prints.

use crate::RunError;
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub const FILE_NAME: &str = ".sfetl.lock";

/// Held for the whole run; dropping it (or the process ending) releases the output.
#[derive(Debug)]
pub struct OutputLock {
    _file: File,
}

impl OutputLock {
    /// Takes the output's lock; when another run holds it, waits for it with `wait`, or refuses.
    pub async fn acquire(output: &Path, wait: bool) -> Result<OutputLock, RunError> {
        let path = output.join(FILE_NAME);
        let fail = |source| RunError::Lock { path: path.clone(), source };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(fail)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) if wait => {
                tracing::info!(holder = %holder(&mut file), "another run is writing this output; waiting for it to end");
                file = tokio::task::spawn_blocking(move || file.lock().map(|()| file)).await?.map_err(fail)?;
            }
            Err(TryLockError::WouldBlock) => {
                return Err(RunError::Busy { path: output.to_path_buf(), holder: holder(&mut file) });
            }
            Err(TryLockError::Error(e)) => return Err(fail(e)),
        }
        let started = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC");
        let stamp = format!("pid {} since {started}\n", std::process::id());
        let written = file.set_len(0).and_then(|()| file.rewind()).and_then(|()| file.write_all(stamp.as_bytes()));
        written.map_err(fail)?;
        Ok(OutputLock { _file: file })
    }
}

/// Who holds the lock, as its holder wrote it.
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
    let text = text.trim();
    if text.is_empty() { "a run that is starting".to_string() } else { format!("the run with {text}") }
}
