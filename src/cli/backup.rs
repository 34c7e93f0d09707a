//! `backup FILE`: a consistent copy of the live database through SQLite's online backup API,
//! taken while the server keeps serving writes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::{CliError, CliResult, create_private, temp_beside};
use crate::db::BUSY_TIMEOUT_MS;
use crate::settings::Settings;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the copy (mode 0600).
    pub file: PathBuf,
    /// Overwrite FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

/// How long to keep retrying while the source is busy (only WAL recovery makes it so).
const BUSY_RETRY: Duration = Duration::from_secs(30);

pub fn run(settings: &Settings, a: BackupArgs, out: &mut dyn Write) -> CliResult {
    if settings.database.is_memory() {
        return Err(CliError::usage(
            "nothing to back up: the database is in memory (:memory: or --ephemeral)",
        ));
    }
    let src_path = Path::new(&settings.database.path);
    if !src_path.is_file() {
        return Err(CliError::failure(format!(
            "database {} does not exist",
            src_path.display()
        )));
    }
    if a.file.exists() {
        if !a.force {
            return Err(CliError::failure(format!(
                "{} exists; add --force to overwrite it",
                a.file.display()
            )));
        }
        if same_file(src_path, &a.file) {
            return Err(CliError::usage(
                "the backup cannot overwrite the database itself",
            ));
        }
    }
    super::parent_must_exist(&a.file)?;
    let tmp = temp_beside(&a.file);
    let result = copy(src_path, &tmp).and_then(|users| {
        std::fs::rename(&tmp, &a.file)
            .map_err(|e| CliError::failure(format!("cannot write {}: {e}", a.file.display())))?;
        Ok(users)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    let users = result?;
    let bytes = std::fs::metadata(&a.file).map(|m| m.len()).unwrap_or(0);
    writeln!(
        out,
        "backed up {users} users from {} to {} ({bytes} bytes)",
        src_path.display(),
        a.file.display()
    )?;
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Copies `src` into a new file `dst` and checks the copy; returns how many users it holds.
fn copy(src: &Path, dst: &Path) -> CliResult<i64> {
    // Read-write (never create): a WAL reader needs the shared-memory file; no migration, so
    // the copy is exactly what is there.
    let source = Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    source.busy_timeout(Duration::from_millis(u64::from(BUSY_TIMEOUT_MS)))?;
    drop(create_private(dst)?);
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
                _ => return Err(CliError::failure("the database stayed busy; try again")),
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
        return Err(CliError::failure(format!(
            "the copy failed its integrity check: {check}"
        )));
    }
    let users: i64 = target
        .query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
        .unwrap_or(0);
    target
        .close()
        .map_err(|(_, e)| CliError::failure(format!("database: {e}")))?;
    std::fs::File::open(dst)?.sync_all()?;
    Ok(users)
}
