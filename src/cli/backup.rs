//! `backup FILE`: a consistent copy of the live database through SQLite's online backup API,
//! taken while the server keeps serving writes.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use super::{CliError, CliResult, temp_beside};
use crate::settings::Settings;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the copy (mode 0600).
    pub file: PathBuf,
    /// Overwrite FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

pub fn run(settings: &Settings, a: BackupArgs, out: &mut dyn Write) -> CliResult {
    if settings.database.postgres_url().is_some() {
        return Err(CliError::failure(
            "the database is PostgreSQL (database.url): back it up with pg_dump, e.g. \
             `pg_dump --format=custom --file=appmixer.dump \"$URL\"`, or with the server's own \
             base backups and WAL archiving; `backup` copies SQLite files only",
        ));
    }
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
    let result = crate::db::backup(&settings.database, &tmp)
        .map_err(CliError::from)
        .and_then(|users| {
            std::fs::rename(&tmp, &a.file).map_err(|e| {
                CliError::failure(format!("cannot write {}: {e}", a.file.display()))
            })?;
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
