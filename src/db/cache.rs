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

/// Answers remembered at most, and their bytes at most (metadata can make one answer up to
/// 64 KiB); the memory is emptied when either would be passed.
const CAPACITY: usize = 10_000;
const CAPACITY_BYTES: usize = 8 << 20;

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
struct Version {
    local: u64,
    shared: [u8; HEADER],
}

enum Watch {
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
    /// Changes by other processes cannot be seen: remember nothing.
    Off,
}

pub struct UserCache {
    watch: Watch,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<UserId, (Version, Bytes)>,
    bytes: usize,
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
            entries: Mutex::default(),
        }
    }

    /// Whether answers are remembered at all.
    pub fn is_on(&self) -> bool {
        !matches!(self.watch, Watch::Off)
    }

    /// The database's version now, or `None` while it cannot be told (a commit halfway).
    fn version(&self) -> Option<Version> {
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

    /// The answer for `id`: the remembered one if nothing was committed since it was read,
    /// else what `read` answers, remembered. The version is taken before `read` starts, so a
    /// commit that lands while it runs leaves the answer unremembered.
    pub async fn get_or_read<E, Fut>(
        &self,
        id: &UserId,
        read: impl FnOnce() -> Fut,
    ) -> Result<Bytes, E>
    where
        Fut: Future<Output = Result<Bytes, E>>,
    {
        // One version for both: the entry must be of it, and a read that misses starts at it.
        let seen = self.version();
        if let Some(body) = seen.and_then(|seen| self.remembered(id, seen)) {
            return Ok(body);
        }
        let body = read().await?;
        if let Some(seen) = seen {
            self.put(id.clone(), seen, body.clone());
        }
        Ok(body)
    }

    /// The answer remembered for `id`, if it was read at version `now`.
    fn remembered(&self, id: &UserId, now: Version) -> Option<Bytes> {
        let entries = self.entries.lock().ok()?;
        let (version, body) = entries.map.get(id)?;
        (*version == now).then(|| body.clone())
    }

    /// The remembered answer for `id`, if nothing was committed since it was read.
    #[cfg(test)]
    fn get(&self, id: &UserId) -> Option<Bytes> {
        self.remembered(id, self.version()?)
    }

    /// Remembers `body`, read from the database at version `seen`, unless something was
    /// committed since (then it may already be out of date).
    fn put(&self, id: UserId, seen: Version, body: Bytes) {
        if self.version() != Some(seen) {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.map.len() >= CAPACITY || entries.bytes + body.len() > CAPACITY_BYTES {
                entries.map.clear();
                entries.bytes = 0;
            }
            entries.bytes += body.len();
            if let Some((_, old)) = entries.map.insert(id, (seen, body)) {
                entries.bytes -= old.len();
            }
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
    // The name SQLite itself uses (it follows symbolic links).
    let main = anchor
        .path()
        .filter(|p| !p.is_empty())
        .context("SQLite names no file")?;
    let shm_path = format!("{main}-shm");
    let shm: &'static std::fs::File = Box::leak(Box::new(
        std::fs::File::open(&shm_path).with_context(|| format!("open {shm_path}"))?,
    ));
    let probe = UserCache {
        watch: Watch::File {
            shm,
            _anchor: Box::new(Mutex::new(anchor)),
        },
        entries: Mutex::default(),
    };
    // Another process may be halfway through a commit: its two header copies differ for
    // a moment.
    for _ in 0..100 {
        if probe.version().is_some() {
            return Ok(probe.watch);
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

    fn settings(path: &str) -> DatabaseSettings {
        DatabaseSettings {
            path: path.to_owned(),
            pool_size: 2,
        }
    }

    /// A database file opened as the server opens it, its cache, and a plain second
    /// connection to it (as another process would have).
    fn watched_file() -> (tempfile::TempDir, super::super::Pool, UserCache, Connection) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.db").to_string_lossy().into_owned();
        let pool = super::super::open(&settings(&path)).expect("open");
        let cache = UserCache::new(&settings(&path));
        let other = Connection::open(&path).expect("second connection");
        (dir, pool, cache, other)
    }

    /// Some commit, by a plain connection: not counted by this process, as another process's.
    fn commit_elsewhere(conn: &Connection) {
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('test', ?1)",
            [UserId::generate().as_str()],
        )
        .expect("commit");
    }

    /// Other tests commit too (the commit counter is the process's), so an answer that should
    /// be kept is tried a few times.
    fn kept(cache: &UserCache, id: &UserId, body: &Bytes) -> bool {
        (0..50).any(|_| {
            if let Some(seen) = cache.version() {
                cache.put(id.clone(), seen, body.clone());
            }
            cache.get(id).as_ref() == Some(body)
        })
    }

    #[test]
    fn an_answer_is_served_only_until_the_next_commit_and_never_if_read_before_one() {
        let (_dir, _pool, cache, other) = watched_file();
        assert!(cache.is_on());
        let id = UserId::generate();
        let body = Bytes::from_static(b"{\"username\":\"a\"}");

        // Read before a commit, offered after it: not kept.
        let seen = cache.version().expect("settled");
        commit_elsewhere(&other);
        cache.put(id.clone(), seen, body.clone());
        assert_eq!(cache.get(&id), None);

        assert!(kept(&cache, &id, &body));
        commit_elsewhere(&other);
        assert_eq!(cache.get(&id), None);
    }

    #[test]
    fn an_answer_read_while_a_commit_lands_is_answered_but_not_remembered() {
        let (_dir, _pool, cache, other) = watched_file();
        let id = UserId::generate();
        let body = Bytes::from_static(b"{\"plan\":\"old\"}");
        let read = || async {
            commit_elsewhere(&other);
            Ok::<_, ()>(body.clone())
        };
        let answer = actix_web::rt::System::new().block_on(cache.get_or_read(&id, read));
        assert_eq!(answer, Ok(body));
        assert_eq!(cache.get(&id), None);
    }

    #[test]
    fn in_memory_commits_through_the_pool_are_seen() {
        let pool = super::super::open(&settings(":memory:")).expect("open");
        let cache = UserCache::new(&settings(":memory:"));
        let id = UserId::generate();
        let body = Bytes::from_static(b"{}");
        assert!(kept(&cache, &id, &body));
        let conn = pool.get().expect("connection");
        // DELETE without WHERE: the one change SQLite's row hooks do not report.
        conn.execute("DELETE FROM meta", []).expect("delete");
        assert_eq!(cache.get(&id), None);
    }

    #[test]
    fn a_symlinked_path_is_watched_where_sqlite_keeps_the_wal_index() {
        let dir = tempfile::tempdir().expect("temp dir");
        let real = dir.path().join("real.db");
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let link_path = link.to_string_lossy().into_owned();
        let _pool = super::super::open(&settings(&link_path)).expect("open");
        // A stale copy of the wal-index where a careless reader would look.
        std::fs::copy(
            dir.path().join("real.db-shm"),
            dir.path().join("link.db-shm"),
        )
        .expect("copy");
        let cache = UserCache::new(&settings(&link_path));
        let other = Connection::open(&real).expect("second connection");
        let id = UserId::generate();
        let body = Bytes::from_static(b"{}");
        assert!(kept(&cache, &id, &body));
        commit_elsewhere(&other);
        assert_eq!(cache.get(&id), None);
    }

    #[test]
    fn the_memory_is_bounded_in_bytes() {
        let cache = UserCache::new(&settings(":memory:"));
        let big = Bytes::from(vec![b' '; 64 * 1024]);
        for _ in 0..500 {
            if let Some(seen) = cache.version() {
                cache.put(UserId::generate(), seen, big.clone());
            }
            let entries = cache.entries.lock().expect("lock");
            assert!(entries.bytes <= CAPACITY_BYTES);
            assert_eq!(entries.bytes, entries.map.len() * big.len());
        }
    }
}
