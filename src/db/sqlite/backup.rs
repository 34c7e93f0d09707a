//! A consistent copy of a live SQLite database through SQLite's online backup API, taken
//! while the server keeps serving writes.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::{BUSY_TIMEOUT_MS, classify};
use crate::db::StoreError;

/// How long to keep retrying while the source is busy (only WAL recovery makes it so).
const BUSY_RETRY: Duration = Duration::from_secs(30);

/// Copies `src` into a new file `dst` and checks the copy; returns how many users it holds.
pub fn backup(src: &Path, dst: &Path) -> Result<u64, StoreError> {
    // Read-write (never create): a WAL reader needs the shared-memory file; no migration, so
    // the copy is exactly what is there.
    let source = Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    source.busy_timeout(Duration::from_millis(u64::from(BUSY_TIMEOUT_MS)))?;
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(dst).map_err(|e| {
            StoreError::other(anyhow::anyhow!("cannot create {}: {e}", dst.display()))
        })?;
    }
    let mut target = Connection::open(dst)?;
    {
        let backup = Backup::new(&source, &mut target)?;
        let deadline = Instant::now() + BUSY_RETRY;
        // All pages in one step: one read transaction on the source, so the copy is one
        // consistent snapshot (every commit before it, none after) and writers never wait.
        // Smaller steps would restart whenever the server commits in between.
        loop {
            match backup.step(-1)? {
                StepResult::Done => break,
                StepResult::More => {}
                StepResult::Busy | StepResult::Locked if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    return Err(StoreError::Unavailable(
                        "the database stayed busy; try again".into(),
                    ));
                }
            }
        }
    }
    drop(source);
    // The pages say WAL, as the source; a backup is better as one self-contained file.
    let mode: String = target.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("delete") {
        log::warn!("the copy kept journal mode {mode}");
    }
    let check: String = target.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(StoreError::Corrupt(format!(
            "the copy failed its integrity check: {check}"
        )));
    }
    let users: i64 = target
        .query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
        .unwrap_or(0);
    target.close().map_err(|(_, e)| classify(e))?;
    std::fs::File::open(dst)
        .and_then(|f| f.sync_all())
        .map_err(StoreError::other)?;
    Ok(users as u64)
}
