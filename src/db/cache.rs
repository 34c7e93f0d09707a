//! The answer of `GET /user`, remembered per user for as long as the database is unchanged.
//!
//! Reading a user costs more than everything else `GET /user` does (a read transaction takes and
//! drops locks with system calls), and most clients read the same user again and again. An
//! entry is tagged with the database's version when its read began, and served only while the
//! version is still that one, so an answer never outlives a committed change, whoever made it:
//!
//! - this process: every connection it opens counts its commits ([`count_commits`]);
//! - another process on the same file (the `users` commands, a `sqlite3` shell): in WAL mode
//!   every commit rewrites the header of the shared wal-index (the `-shm` file, part of SQLite's
//!   documented file format) before it becomes visible to readers, and that header is read with
//!   one `pread` per request.
//!
//! When neither can be watched (a file not in WAL mode, or no `-shm` to read), nothing is
//! remembered and every request reads the database.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::web::Bytes;
use rusqlite::Connection;

use crate::domain::UserId;
use crate::settings::DatabaseSettings;

/// Commits made by connections of this process (any table; a rolled-back one counts too,
/// which only costs a re-read).
static COMMITS: AtomicU64 = AtomicU64::new(0);

/// Users remembered at most; the memory is emptied when it is full (about 4 MB at most).
const CAPACITY: usize = 10_000;

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

/// What the database looked like: equal versions, no commit in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    local: u64,
    shared: [u8; HEADER],
}

enum Watch {
    /// `:memory:`: only this process can write, through its one connection.
    Memory,
    /// A file in WAL mode.
    #[cfg(unix)]
    File {
        shm: std::fs::File,
        /// Held open so the `-shm` file stays the one SQLite uses: the last connection to
        /// close deletes it, and the next to open would make a new one.
        _anchor: Box<Mutex<Connection>>,
    },
    /// Changes by other processes cannot be seen: remember nothing.
    Off,
}

pub struct UserCache {
    watch: Watch,
    entries: Mutex<HashMap<UserId, (Version, Bytes)>>,
}

impl std::fmt::Debug for UserCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserCache")
            .field("on", &!matches!(self.watch, Watch::Off))
            .finish_non_exhaustive()
    }
}

impl UserCache {
    /// Watches the database `settings` name (already opened and migrated by [`super::open`]).
    pub fn new(settings: &DatabaseSettings) -> Self {
        let watch = if settings.is_memory() {
            Watch::Memory
        } else {
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
        };
        Self {
            watch,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Whether answers are remembered at all.
    pub fn is_on(&self) -> bool {
        !matches!(self.watch, Watch::Off)
    }

    /// The database's version now, or `None` while it cannot be told (a commit halfway).
    pub fn version(&self) -> Option<Version> {
        let local = COMMITS.load(Ordering::SeqCst);
        let mut shared = [0; HEADER];
        match &self.watch {
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
                shared.copy_from_slice(first);
            }
            Watch::Off => return None,
        }
        Some(Version { local, shared })
    }

    /// The remembered answer for `id`, if nothing was committed since it was read.
    pub fn get(&self, id: &UserId) -> Option<Bytes> {
        if !self.is_on() {
            return None;
        }
        let now = self.version()?;
        let entries = self.entries.lock().ok()?;
        let (version, body) = entries.get(id)?;
        (*version == now).then(|| body.clone())
    }

    /// Remembers `body`, read from the database at version `seen`, unless something was
    /// committed since (then it may already be out of date).
    pub fn put(&self, id: UserId, seen: Version, body: Bytes) {
        if self.version() != Some(seen) {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CAPACITY {
                entries.clear();
            }
            entries.insert(id, (seen, body));
        }
    }
}

#[cfg(unix)]
fn file_watch(path: &str) -> anyhow::Result<Watch> {
    use anyhow::Context;
    let anchor = Connection::open(path)?;
    let mode: String = anchor.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    anyhow::ensure!(
        mode.eq_ignore_ascii_case("wal"),
        "journal mode is {mode}, not wal"
    );
    // A read opens the wal-index.
    anchor.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })?;
    let shm_path = format!("{path}-shm");
    let shm = std::fs::File::open(&shm_path).with_context(|| format!("open {shm_path}"))?;
    let watch = Watch::File {
        shm,
        _anchor: Box::new(Mutex::new(anchor)),
    };
    let probe = UserCache {
        watch,
        entries: Mutex::new(HashMap::new()),
    };
    anyhow::ensure!(
        probe.version().is_some(),
        "{shm_path} does not hold a wal-index header"
    );
    Ok(probe.watch)
}

#[cfg(not(unix))]
fn file_watch(_path: &str) -> anyhow::Result<Watch> {
    anyhow::bail!("only watched on Unix")
}
