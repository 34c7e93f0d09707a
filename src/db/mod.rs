//! SQLite: the pool, per-connection tuning, migrations and small key/value metadata.

pub mod cache;
pub mod users;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OptionalExtension};

use crate::error::ApiError;
use crate::settings::DatabaseSettings;

pub type Pool = r2d2::Pool<SqliteConnectionManager>;

/// How long a writer waits for another writer (the server, or the CLI on the same file).
pub const BUSY_TIMEOUT_MS: u32 = 5_000;

/// Each entry moves the schema one version up; `PRAGMA user_version` records how far it went.
const MIGRATIONS: &[&str] = &[r#"
    CREATE TABLE users (
        id            TEXT PRIMARY KEY NOT NULL,
        username      TEXT NOT NULL UNIQUE,
        email         TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        is_active     INTEGER NOT NULL DEFAULT 0,
        scope         TEXT NOT NULL DEFAULT '["user"]',
        plan          TEXT NOT NULL DEFAULT 'free',
        vendor        TEXT,
        metadata      TEXT NOT NULL DEFAULT '{}',
        created       INTEGER NOT NULL,
        mtime         INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX users_created ON users (created);
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
    ) STRICT;
"#];

/// Settings every pooled connection gets. `synchronous = FULL` makes each commit durable
/// before the request is answered: a success survives `kill -9` and power loss alike.
fn tune(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};
         PRAGMA foreign_keys = ON;
         PRAGMA synchronous = FULL;"
    ))?;
    cache::count_commits(conn)
}

/// Opens (creating if missing, mode 0600) and migrates the database.
pub fn open(settings: &DatabaseSettings) -> anyhow::Result<Pool> {
    let pool = if settings.is_memory() {
        // One connection holds the in-memory database for the life of the process: every
        // request shares it, and it is gone at exit.
        r2d2::Pool::builder()
            .max_size(1)
            .min_idle(Some(1))
            .idle_timeout(None)
            .max_lifetime(None)
            .build(SqliteConnectionManager::memory().with_init(tune))?
    } else {
        let path = Path::new(&settings.path);
        create_private(path)?;
        let manager = SqliteConnectionManager::file(path).with_init(tune);
        let pool = r2d2::Pool::builder()
            .max_size(settings.pool_size)
            .min_idle(Some(1))
            // A SQLite connection does not go stale like a network one; r2d2's default check
            // runs a statement on every checkout, which costs more than the lookup it guards.
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .with_context(|| format!("cannot open database {}", path.display()))?;
        // WAL lets readers go on while one writer commits; it is a property of the file.
        let conn = pool.get()?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            log::warn!("database {} is not in WAL mode ({mode})", path.display());
        }
        pool
    };
    migrate(&mut *pool.get()?)?;
    Ok(pool)
}

/// Creates the database file readable only by its owner; SQLite gives its -wal and -shm
/// files the same permissions.
fn create_private(path: &Path) -> anyhow::Result<()> {
    use std::fs::OpenOptions;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot create database {}", path.display())),
    }
}

/// Brings the schema up to date. Each step runs in an immediate transaction that re-reads
/// the version inside it, so two processes opening a new file at once (the server and the
/// CLI) cannot both run the same step.
pub fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    loop {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        if version > MIGRATIONS.len() {
            anyhow::bail!(
                "the database has schema version {version}, newer than this appmixer-auth knows ({}); use a newer build",
                MIGRATIONS.len()
            );
        }
        let Some(sql) = MIGRATIONS.get(version) else {
            return Ok(());
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (version + 1) as i64)?;
        tx.commit()?;
        log::info!("database schema migrated to version {}", version + 1);
    }
}

/// The token secret kept in the database: generated once (32 random bytes, hex) and reused, so
/// tokens survive restarts.
pub fn stored_jwt_secret(conn: &Connection) -> anyhow::Result<String> {
    let fresh: [u8; 32] = rand::random();
    let fresh: String = fresh.iter().map(|b| format!("{b:02x}")).collect();
    conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('jwt_secret', ?1)",
        [&fresh],
    )?;
    conn.query_row("SELECT value FROM meta WHERE key = 'jwt_secret'", [], |r| {
        r.get(0)
    })
    .optional()?
    .context("jwt secret missing after insert")
}

/// Runs `work` with a pooled connection on the blocking thread pool: one hop per request,
/// and the connection is back in the pool before any bcrypt work starts.
pub async fn run<T, F>(pool: &Pool, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> Result<T, ApiError> + Send + 'static,
{
    let pool = pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get().map_err(ApiError::internal)?;
        work(&mut conn)
    })
    .await
    .map_err(ApiError::internal)?
}

/// Runs a short read (a lookup by key: microseconds) on the calling worker when a pooled
/// connection is free at once; the hop to the blocking pool costs more than such a read.
/// A worker never waits: when the pool is busy, or the read would have to wait for a lock
/// (another process recovering the file, say), it is done again through [`run`].
pub async fn read<T, F>(pool: &Pool, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: Fn(&mut Connection) -> Result<T, ApiError> + Send + 'static,
{
    if let Some(mut conn) = pool.try_get() {
        let answer = conn
            .busy_timeout(Duration::ZERO)
            .map_err(ApiError::internal)
            .and_then(|()| work(&mut conn));
        // sqlite3_busy_timeout cannot fail on an open connection.
        let _ = conn.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS.into()));
        if !matches!(answer, Err(ApiError::Internal(_))) {
            return answer;
        }
    }
    run(pool, work).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_opening_a_new_file_at_once_migrate_it_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = DatabaseSettings {
            path: dir.path().join("race.db").to_string_lossy().into_owned(),
            pool_size: 2,
        };
        let opened: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..6)
                .map(|_| s.spawn(|| open(&settings).map(|_| ())))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        for result in opened {
            result.expect("every opener succeeds");
        }
        let pool = open(&settings).expect("reopen");
        let version: i64 = pool
            .get()
            .expect("conn")
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(version, MIGRATIONS.len() as i64);
    }
}
