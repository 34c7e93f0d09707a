//! The administration commands (`users …`, `token`, `healthcheck`, `config`, `backup`): they
//! work on the database file directly, safe beside a running server (WAL and a busy timeout).
//!
//! `main.rs` parses the command line and calls one `run` function here; every function writes
//! its answer to the `out` it is given and returns a [`CliError`] that carries the exit code.

pub mod backup;
pub mod config;
pub mod health;
pub mod secret;
pub mod token;
pub mod transfer;
pub mod users;

use std::fmt;
use std::io::{self, BufRead, IsTerminal, Write};

use crate::db::users::User;
use crate::db::{Store, StoreError};
use crate::domain::Invalid;
use crate::settings::{ConfigFile, Overrides, Settings};

/// Exit code of a command that ran and failed (user not found, conflict, server down).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a command that was called wrongly (bad argument, bad settings).
pub const EXIT_USAGE: u8 = 2;

/// A failed command: the message for stderr and the exit code.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    /// The command was called wrongly: exit 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// The command ran and failed: exit 1.
    pub fn failure(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_FAILURE,
            message: message.into(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        Self::failure(format!("{e:#}"))
    }
}

impl From<io::Error> for CliError {
    fn from(e: io::Error) -> Self {
        Self::failure(e.to_string())
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Taken(_) => Self::failure(e.to_string()),
            StoreError::NotFound => Self::failure("no such user"),
            e => Self::failure(format!("database: {e:#}")),
        }
    }
}

impl From<Invalid> for CliError {
    fn from(e: Invalid) -> Self {
        Self::usage(e.message)
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// Where the settings come from, as the command line said: `config` reports it.
#[derive(Debug, Clone)]
pub struct Source {
    pub file: ConfigFile,
    pub overrides: Overrides,
    /// The settings keys set by flags, with the flag that set each (`server.port`, `--port`).
    pub flags: Vec<(&'static str, &'static str)>,
}

impl Source {
    pub fn load(&self) -> Result<Settings, String> {
        Settings::load(&self.file, &self.overrides)
    }
}

/// Opens the configured database (creating and migrating it like the server does) as the
/// store. Every write waits up to [`crate::db::BUSY_TIMEOUT_MS`] for the server.
pub fn connect(settings: &Settings) -> CliResult<Store> {
    if settings.database.is_memory() {
        log::warn!("the database is in memory (--ephemeral): nothing is kept after this command");
    }
    Ok(Store::open(&settings.database)?)
}

/// [`connect`] for commands that only read or change what is there: a database file that does
/// not exist is an error (a mistyped `--db` would otherwise create an empty one).
pub fn connect_existing(settings: &Settings) -> CliResult<Store> {
    let path = &settings.database.path;
    if settings.database.is_file() && !std::path::Path::new(path).exists() {
        return Err(CliError::failure(format!(
            "no database at {path} (the server, `users add`, `users import` or `users reset` \
             creates it; users declared in the settings file are stored by the server at start \
             or by `users reset`)"
        )));
    }
    connect(settings)
}

/// Finds a user by id, username or email, in that order; not found is exit 1.
pub fn find_user(store: &Store, key: &str) -> CliResult<User> {
    store
        .read_blocking(|ops| ops.find_by_any(key))?
        .ok_or_else(|| CliError::failure(format!("no user with id, username or email `{key}`")))
}

/// The given password, else one line read from stdin: on a terminal after a prompt, with the
/// typing hidden. Only the line ending is removed: spaces count.
pub fn password_or_stdin(given: Option<String>, prompt: &str) -> CliResult<String> {
    if let Some(p) = given {
        return Ok(p);
    }
    let stdin = io::stdin();
    if stdin.is_terminal() {
        return Ok(rpassword::prompt_password(format!("{prompt}: "))?);
    }
    let mut line = String::new();
    if stdin.lock().read_line(&mut line)? == 0 {
        return Err(CliError::usage(
            "no password: give --password or write it as one line on standard input",
        ));
    }
    let line = line.strip_suffix('\n').unwrap_or(&line);
    Ok(line.strip_suffix('\r').unwrap_or(line).to_owned())
}

/// Asks a yes/no question on stderr and reads the answer from stdin; anything but y/yes is no.
pub fn confirm(question: &str) -> CliResult<bool> {
    eprint!("{question} [y/N] ");
    io::stderr().flush()?;
    let mut line = String::new();
    io::stdin().lock().read_line(&mut line)?;
    let answer = line.trim().to_ascii_lowercase();
    Ok(answer == "y" || answer == "yes")
}

/// `1 user`, `2 users`, `0 users`.
pub fn count_of(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Milliseconds since the epoch as `2026-01-31 12:00:00Z` (UTC).
pub fn format_time(ms: i64) -> String {
    let (date, (h, m, s)) = crate::domain::civil(ms);
    format!("{date} {h:02}:{m:02}:{s:02}Z")
}

/// Writes rows as columns separated by two spaces, the first row being the header.
pub fn write_table(out: &mut dyn Write, rows: &[Vec<String>]) -> io::Result<()> {
    // Stored text is untrusted: what an older database or another tool put there could move
    // the cursor or forge lines in the operator's terminal.
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| shown(c)).collect())
        .collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = widths[c] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Untrusted text made safe to print: control, invisible and direction-changing characters
/// are written as `\u{…}` escapes (and a backslash as `\\`), everything else as it is.
pub fn shown(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if c.is_control() || crate::domain::is_invisible(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes a file readable only by its owner, atomically: a temporary file beside it is
/// renamed over `path` once complete, so a reader never sees half of it.
pub fn write_private(
    path: &std::path::Path,
    write: impl FnOnce(&mut io::BufWriter<std::fs::File>) -> CliResult<()>,
) -> CliResult<()> {
    parent_must_exist(path)?;
    let tmp = temp_beside(path);
    let result = (|| {
        let file = create_private(&tmp)?;
        let mut w = io::BufWriter::new(file);
        write(&mut w)?;
        let file = w
            .into_inner()
            .map_err(|e| CliError::failure(e.to_string()))?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
            .map_err(|e| CliError::failure(format!("cannot write {}: {e}", path.display())))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A new file with mode 0600 (it holds password hashes); fails if it exists.
pub fn create_private(path: &std::path::Path) -> CliResult<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .map_err(|e| CliError::failure(format!("cannot create {}: {e}", path.display())))
}

/// A file is written only into a directory that exists; the error names the file the user
/// gave, not the temporary file beside it.
pub fn parent_must_exist(path: &std::path::Path) -> CliResult<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => Err(CliError::failure(format!(
            "cannot write {}: the directory {} does not exist",
            path.display(),
            dir.display()
        ))),
        _ => Ok(()),
    }
}

/// `dir/.name.tmp-PID` beside `path`.
pub fn temp_beside(path: &std::path::Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_text_is_shown_with_its_controls_escaped() {
        assert_eq!(shown("plain ünïcode"), "plain ünïcode");
        assert_eq!(shown("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(shown("x\ny"), "x\\u{a}y");
        assert_eq!(shown("\u{202e}rev"), "\\u{202e}rev");
        assert_eq!(shown("back\\slash"), "back\\\\slash");
    }

    #[test]
    fn times_print_as_utc_dates() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00Z");
        assert_eq!(format_time(951_782_400_000), "2000-02-29 00:00:00Z");
        assert_eq!(format_time(1_767_225_599_999), "2025-12-31 23:59:59Z");
    }

    #[test]
    fn tables_pad_every_column_but_the_last() {
        let mut out = Vec::new();
        write_table(
            &mut out,
            &[
                vec!["ID".into(), "NAME".into()],
                vec!["1".into(), "alice".into()],
            ],
        )
        .expect("writes");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "ID  NAME\n1   alice\n"
        );
    }
}
