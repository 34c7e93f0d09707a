//! When did the SQLite database last change? The version behind the `GET /user` memory
//! (`super::super::memory`), seen without a query:
//!
//! - this process: every connection it opens counts its commits ([`count_commits`]);
//! - another process on the same file (the `users` commands, a `sqlite3` shell): in WAL mode
//!   every commit rewrites the header of the shared wal-index (the `-shm` file, part of SQLite's
//!   documented file format) before it becomes visible to readers, and that header is read with
//!   one `pread` per request.
//!
//! When neither can be watched (a file not in WAL mode, or no `-shm` to read), there is no
//! version and nothing is remembered.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Connection;

use crate::db::memory::Version;
use crate::settings::DatabaseSettings;

/// Commits made by connections of this process (any table; a rolled-back one counts too,
/// which only costs a re-read).
static COMMITS: AtomicU64 = AtomicU64::new(0);

/// The wal-index header is 48 bytes, kept twice at the start of the `-shm` file; a writer
/// updates the second copy, then the first, so two equal copies are a settled header.
const HEADER: usize = 48;
/// The header's `isInit` byte.
const IS_INIT: usize = 12;

/// Makes `conn` count its commits. Every pooled connection gets this.
pub fn count_commits(conn: &Connection) -> rusqlite::Result<()> {
    conn.commit_hook(Some(|| {
        COMMITS.fetch_add(1, Ordering::SeqCst);
        false
    }))
}

pub enum Watch {
    /// `:memory:`: only this process can write, through its one connection.
    Memory,
    /// A file in WAL mode.
    #[cfg(unix)]
    File {
        /// Never closed: closing any descriptor of a file drops every POSIX lock the process
        /// holds on it, SQLite's locks on the `-shm` file included.
        shm: &'static std::fs::File,
        /// Held open so the `-shm` file stays the one SQLite uses: the last connection to
        /// close deletes it, and the next to open would make a new one.
        _anchor: Box<Mutex<Connection>>,
    },
    /// Changes by other processes cannot be seen.
    Off,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Watch::Memory => "Watch::Memory",
            #[cfg(unix)]
            Watch::File { .. } => "Watch::File",
            Watch::Off => "Watch::Off",
        })
    }
}

impl Watch {
    /// Watches the database `settings` name (already opened and migrated).
    pub fn new(settings: &DatabaseSettings) -> Self {
        if settings.is_memory() {
            return Watch::Memory;
        }
        match file_watch(&settings.path) {
            Ok(watch) => watch,
            Err(e) => {
                log::warn!(
                    "GET /user reads the database every time: cannot watch {} for changes ({e:#})",
                    settings.path
                );
                Watch::Off
            }
        }
    }

    /// The database's version now, or `None` while it cannot be told (a commit halfway, or
    /// never).
    pub fn version(&self) -> Option<Version> {
        let mut v = [0; 64];
        v[..8].copy_from_slice(&COMMITS.load(Ordering::SeqCst).to_le_bytes());
        match self {
            Watch::Memory => {}
            #[cfg(unix)]
            Watch::File { shm, .. } => {
                use std::os::unix::fs::FileExt;
                let mut both = [0; 2 * HEADER];
                shm.read_exact_at(&mut both, 0).ok()?;
                let (first, second) = both.split_at(HEADER);
                if first != second || first[IS_INIT] != 1 {
                    return None;
                }
                v[8..8 + HEADER].copy_from_slice(first);
            }
            Watch::Off => return None,
        }
        Some(Version(v))
    }
}

#[cfg(unix)]
fn file_watch(path: &str) -> anyhow::Result<Watch> {
    use anyhow::Context;
    let anchor = Connection::open(path)?;
    // Another process may be opening (migrating) the same new file right now.
    anchor.busy_timeout(std::time::Duration::from_millis(
        super::BUSY_TIMEOUT_MS.into(),
    ))?;
    let mode: String = anchor.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    anyhow::ensure!(
        mode.eq_ignore_ascii_case("wal"),
        "journal mode is {mode}, not wal"
    );
    // A read opens the wal-index.
    anchor.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })?;
    // The name SQLite itself uses (it follows symbolic links).
    let main = anchor
        .path()
        .filter(|p| !p.is_empty())
        .context("SQLite names no file")?;
    let shm_path = format!("{main}-shm");
    let shm: &'static std::fs::File = Box::leak(Box::new(
        std::fs::File::open(&shm_path).with_context(|| format!("open {shm_path}"))?,
    ));
    let probe = Watch::File {
        shm,
        _anchor: Box::new(Mutex::new(anchor)),
    };
    // Another process may be halfway through a commit: its two header copies differ for
    // a moment.
    for _ in 0..100 {
        if probe.version().is_some() {
            return Ok(probe);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    anyhow::bail!("{shm_path} does not hold a wal-index header")
}

#[cfg(not(unix))]
fn file_watch(_path: &str) -> anyhow::Result<Watch> {
    anyhow::bail!("only watched on Unix")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserId;

    fn settings(path: &str) -> DatabaseSettings {
        DatabaseSettings {
            path: path.to_owned(),
            pool_size: 2,
            ..DatabaseSettings::default()
        }
    }

    /// A database file opened as the server opens it, its watch, and a plain second
    /// connection to it (as another process would have).
    fn watched_file() -> (tempfile::TempDir, super::super::Sqlite, Watch, Connection) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.db").to_string_lossy().into_owned();
        let db = super::super::Sqlite::open(&settings(&path)).expect("open");
        let watch = Watch::new(&settings(&path));
        let other = Connection::open(&path).expect("second connection");
        (dir, db, watch, other)
    }

    /// Some commit, by a plain connection: not counted by this process, as another process's.
    fn commit_elsewhere(conn: &Connection) {
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('test', ?1)",
            [UserId::generate().as_str()],
        )
        .expect("commit");
    }

    /// Other tests commit too (the commit counter is the process's), so a version that should
    /// stand is tried a few times.
    fn stands(watch: &Watch, between: impl Fn()) -> bool {
        (0..50).any(|_| {
            let before = watch.version();
            between();
            before.is_some() && watch.version() == before
        })
    }

    #[test]
    fn another_process_commit_moves_the_version_and_nothing_else_does() {
        let (_dir, _db, watch, other) = watched_file();
        assert!(stands(&watch, || {}));
        let before = watch.version().expect("settled");
        commit_elsewhere(&other);
        assert_ne!(watch.version(), Some(before));
    }

    #[test]
    fn in_memory_commits_through_the_pool_are_seen() {
        let db = super::super::Sqlite::open(&settings(":memory:")).expect("open");
        let watch = Watch::new(&settings(":memory:"));
        assert!(stands(&watch, || {}));
        let before = watch.version();
        let conn = db.pool.get().expect("connection");
        // DELETE without WHERE: the one change SQLite's row hooks do not report.
        conn.execute("DELETE FROM meta", []).expect("delete");
        assert_ne!(watch.version(), before);
    }

    #[test]
    fn a_symlinked_path_is_watched_where_sqlite_keeps_the_wal_index() {
        let dir = tempfile::tempdir().expect("temp dir");
        let real = dir.path().join("real.db");
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let link_path = link.to_string_lossy().into_owned();
        let _db = super::super::Sqlite::open(&settings(&link_path)).expect("open");
        // A stale copy of the wal-index where a careless reader would look.
        std::fs::copy(
            dir.path().join("real.db-shm"),
            dir.path().join("link.db-shm"),
        )
        .expect("copy");
        let watch = Watch::new(&settings(&link_path));
        let other = Connection::open(&real).expect("second connection");
        assert!(stands(&watch, || {}));
        let before = watch.version().expect("settled");
        commit_elsewhere(&other);
        assert_ne!(watch.version(), Some(before));
    }
}
