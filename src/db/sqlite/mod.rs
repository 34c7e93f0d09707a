//! The SQLite backend: the pool, per-connection tuning, migrations, and the ways SQLite is
//! made fast (a short read on the calling worker, the version behind the `GET /user` memory).

mod backup;
mod users;
mod watch;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, ErrorCode};

pub use backup::backup;

use super::memory::Version;
use super::{Backend, StoreError, Taken, Work};
use crate::settings::DatabaseSettings;

type Pool = r2d2::Pool<SqliteConnectionManager>;

/// How long a writer waits for another writer (the server, or a command on the same file).
pub const BUSY_TIMEOUT_MS: u32 = 5_000;

#[derive(Debug)]
pub struct Sqlite {
    pool: Pool,
    watch: watch::Watch,
}

impl Sqlite {
    /// Opens (creating if missing, mode 0600) and migrates the database.
    pub fn open(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        let pool = open_pool(settings)?;
        Ok(Self {
            pool,
            watch: watch::Watch::new(settings),
        })
    }
}

impl Backend for Sqlite {
    fn read(&self, work: Work<'_>) -> Result<(), StoreError> {
        let conn = self.pool.get().map_err(unavailable)?;
        work(&mut users::Conn(&conn))
    }

    fn write(&self, work: Work<'_>) -> Result<(), StoreError> {
        let mut conn = self.pool.get().map_err(unavailable)?;
        // Immediate: a transaction that reads before it writes takes the write lock first,
        // so it waits for another writer (up to the busy timeout) instead of failing midway.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(classify)?;
        work(&mut users::Conn(&tx))?;
        tx.commit().map_err(classify)
    }

    fn read_now(&self, work: Work<'_>) -> Option<Result<(), StoreError>> {
        let conn = self.pool.try_get()?;
        if let Err(e) = conn.busy_timeout(Duration::ZERO) {
            return Some(Err(classify(e)));
        }
        let answer = work(&mut users::Conn(&conn));
        // sqlite3_busy_timeout cannot fail on an open connection.
        let _ = conn.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS.into()));
        Some(answer)
    }

    fn version(&self) -> Option<Version> {
        self.watch.version()
    }
}

fn unavailable(e: r2d2::Error) -> StoreError {
    StoreError::Unavailable(format!("no database connection in time: {e}"))
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        classify(e)
    }
}

/// What a SQLite error means to the store's callers.
pub(crate) fn classify(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, msg) = &e {
        match f.code {
            ErrorCode::ConstraintViolation => {
                let msg = msg.as_deref().unwrap_or("");
                if msg.contains("users.username") {
                    return StoreError::Taken(Taken::Username);
                }
                if msg.contains("users.email") {
                    return StoreError::Taken(Taken::Email);
                }
                if msg.contains("users.id") {
                    return StoreError::Taken(Taken::Id);
                }
            }
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                return StoreError::Unavailable(e.to_string());
            }
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
                return StoreError::Corrupt(e.to_string());
            }
            _ => {}
        }
    }
    if let rusqlite::Error::FromSqlConversionFailure(..) | rusqlite::Error::InvalidColumnType(..) =
        &e
    {
        return StoreError::Corrupt(e.to_string());
    }
    StoreError::other(e)
}

/// One step of the schema: SQL, or Rust where a value has to be computed for each row.
enum Migration {
    Sql(&'static str),
    Rust(fn(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>),
}

/// Each entry moves the schema one version up; `PRAGMA user_version` records how far it went.
const MIGRATIONS: &[Migration] = &[
    Migration::Sql(
        r#"
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
"#,
    ),
    // Emails are unique without regard to case: `email_key` is the address in lower case
    // (Unicode's rules, computed here, not by SQLite's ASCII-only `lower`).
    Migration::Rust(add_email_keys),
    // System configuration stored through `/config`, and the outbox: every webhook (and later
    // mail) the server promised, written in the transaction of the change that causes it.
    Migration::Sql(
        r#"
    CREATE TABLE config (
        key   TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
    ) STRICT;
    CREATE TABLE outbox (
        id         TEXT PRIMARY KEY NOT NULL,
        event      TEXT NOT NULL,
        target     TEXT NOT NULL,
        body       TEXT NOT NULL,
        created    INTEGER NOT NULL,
        attempts   INTEGER NOT NULL DEFAULT 0,
        next_at    INTEGER NOT NULL,
        give_up_at INTEGER NOT NULL,
        state      TEXT NOT NULL DEFAULT 'pending',
        last_error TEXT
    ) STRICT;
    CREATE INDEX outbox_due ON outbox (state, next_at);
"#,
    ),
    // `vendor` holds JSON from now on (a string or an array of strings, kept as given).
    Migration::Sql("UPDATE users SET vendor = json_quote(vendor) WHERE vendor IS NOT NULL;"),
    // Token revocation: a token of this user is accepted only if issued at or after this
    // second (0: every token).
    Migration::Sql("ALTER TABLE users ADD COLUMN tokens_since INTEGER NOT NULL DEFAULT 0;"),
    // Forgot-password codes, kept only as hashes; one per user (a new request replaces it).
    Migration::Sql(
        r#"
    CREATE TABLE reset_codes (
        code_hash TEXT PRIMARY KEY NOT NULL,
        user_id   TEXT NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
        created   INTEGER NOT NULL,
        expires   INTEGER NOT NULL
    ) STRICT;
"#,
    ),
    // Searching a million users: see [`SEARCH_TABLES`].
    Migration::Rust(add_search_indexes),
];

/// A trigram index of usernames and emails (FTS5, without positions: it finds candidates, the
/// query's LIKE still decides), the names of the JSON arrays `scope` and `vendor` one per row,
/// and an index for every sort key, each ending in the id so a deep page is read from the
/// index alone. [`SEARCH_TRIGGERS`] keep the first two in step with `users` in the
/// transaction of every write.
const SEARCH_TABLES: &str = r#"
    CREATE VIRTUAL TABLE users_search USING fts5(
        username, email, content = 'users', content_rowid = 'rowid',
        tokenize = 'trigram case_sensitive 0', detail = 'none'
    );
    CREATE TABLE user_tags (
        kind       TEXT NOT NULL,
        value      TEXT NOT NULL,
        user_rowid INTEGER NOT NULL,
        PRIMARY KEY (kind, value, user_rowid)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX user_tags_user ON user_tags (user_rowid);
    DROP INDEX users_created;
    CREATE INDEX users_created ON users (created, id);
    CREATE INDEX users_mtime ON users (mtime, id);
    CREATE INDEX users_plan ON users (plan, id);
    CREATE INDEX users_is_active ON users (is_active, id);
    CREATE INDEX users_vendor ON users (vendor, id);
"#;

pub(crate) const SEARCH_TRIGGERS: &str = r#"
    CREATE TRIGGER users_search_insert AFTER INSERT ON users BEGIN
        INSERT INTO users_search (rowid, username, email) VALUES (new.rowid, new.username, new.email);
    END;
    CREATE TRIGGER users_search_delete AFTER DELETE ON users BEGIN
        INSERT INTO users_search (users_search, rowid, username, email)
            VALUES ('delete', old.rowid, old.username, old.email);
    END;
    CREATE TRIGGER users_search_update AFTER UPDATE OF username, email ON users BEGIN
        INSERT INTO users_search (users_search, rowid, username, email)
            VALUES ('delete', old.rowid, old.username, old.email);
        INSERT INTO users_search (rowid, username, email) VALUES (new.rowid, new.username, new.email);
    END;
    CREATE TRIGGER user_tags_insert AFTER INSERT ON users BEGIN
        INSERT OR IGNORE INTO user_tags (kind, value, user_rowid)
            SELECT 'scope', value, new.rowid FROM json_each(new.scope) WHERE type = 'text';
        INSERT OR IGNORE INTO user_tags (kind, value, user_rowid)
            SELECT 'vendor', value, new.rowid FROM json_each(new.vendor)
                WHERE new.vendor IS NOT NULL AND type = 'text';
    END;
    CREATE TRIGGER user_tags_delete AFTER DELETE ON users BEGIN
        DELETE FROM user_tags WHERE user_rowid = old.rowid;
    END;
    CREATE TRIGGER user_tags_update AFTER UPDATE OF scope, vendor ON users BEGIN
        DELETE FROM user_tags WHERE user_rowid = old.rowid;
        INSERT OR IGNORE INTO user_tags (kind, value, user_rowid)
            SELECT 'scope', value, new.rowid FROM json_each(new.scope) WHERE type = 'text';
        INSERT OR IGNORE INTO user_tags (kind, value, user_rowid)
            SELECT 'vendor', value, new.rowid FROM json_each(new.vendor)
                WHERE new.vendor IS NOT NULL AND type = 'text';
    END;
"#;

/// A bulk load (an import's one transaction, holding the only write lock) drops the triggers:
/// even a trigger that does nothing costs each row more than the whole rebuild afterwards.
pub(crate) const DROP_SEARCH_TRIGGERS: &str = "
    DROP TRIGGER users_search_insert; DROP TRIGGER users_search_delete;
    DROP TRIGGER users_search_update; DROP TRIGGER user_tags_insert;
    DROP TRIGGER user_tags_delete; DROP TRIGGER user_tags_update;
";

/// Brings both up to date from every user (the migration, and the end of a bulk load).
pub(crate) const REINDEX_SEARCH: &str = "
    INSERT INTO users_search (users_search) VALUES ('rebuild');
    DELETE FROM user_tags;
    INSERT OR IGNORE INTO user_tags (kind, value, user_rowid)
        SELECT 'scope', j.value, users.rowid FROM users, json_each(users.scope) AS j
            WHERE j.type = 'text';
    INSERT OR IGNORE INTO user_tags (kind, value, user_rowid)
        SELECT 'vendor', j.value, users.rowid FROM users, json_each(users.vendor) AS j
            WHERE users.vendor IS NOT NULL AND j.type = 'text';
";

fn add_search_indexes(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(SEARCH_TABLES)?;
    tx.execute_batch(REINDEX_SEARCH)?;
    tx.execute_batch(SEARCH_TRIGGERS)
}

/// Fills `email_key` for existing users and makes it unique. Where an older database holds
/// addresses that differ only in case, the first created keeps the plain key and the others
/// get one marked with their id: nothing is lost, they stay reachable by id and username, and
/// the log names them so the operator can change their emails.
fn add_email_keys(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch("ALTER TABLE users ADD COLUMN email_key TEXT NOT NULL DEFAULT ''")?;
    let rows: Vec<(String, String)> = {
        let mut stmt = tx.prepare("SELECT id, email FROM users ORDER BY created, id")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    let mut seen = std::collections::HashSet::with_capacity(rows.len());
    let mut update = tx.prepare("UPDATE users SET email_key = ?2 WHERE id = ?1")?;
    for (id, email) in rows {
        let mut key = crate::domain::Email::key_of(&email);
        if !seen.insert(key.clone()) {
            log::warn!(
                "user {id}: its email differs only in case from an earlier user's; sign-in by email finds the earlier one (change this user's email to fix it)"
            );
            key = format!("{key}#{id}");
        }
        update.execute([&id, &key])?;
    }
    tx.execute_batch("CREATE UNIQUE INDEX users_email_key ON users (email_key)")
}

/// Settings every pooled connection gets. `synchronous = FULL` makes each commit durable
/// before the request is answered: a success survives `kill -9` and power loss alike.
fn tune(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};
         PRAGMA foreign_keys = ON;
         PRAGMA synchronous = FULL;"
    ))?;
    watch::count_commits(conn)
}

/// SQLite's soft heap limit is one figure for the whole process: every connection's page
/// cache reuses its least recently used pages once SQLite's memory reaches it.
fn limit_caches(mib: u32) {
    let bytes = i64::from(mib) << 20;
    let set = Connection::open_in_memory().and_then(|c| {
        c.query_row(&format!("PRAGMA soft_heap_limit = {bytes}"), [], |r| {
            r.get::<_, i64>(0)
        })
    });
    if let Err(e) = set {
        log::warn!("cannot limit SQLite's page caches to {mib} MiB: {e}");
    }
}

fn open_pool(settings: &DatabaseSettings) -> anyhow::Result<Pool> {
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
        tighten_mode(path);
        let manager = SqliteConnectionManager::file(path).with_init(tune);
        limit_caches(settings.cache_mib);
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

/// An existing database file (and its -wal and -shm) that others may read holds every
/// password hash and, unless set elsewhere, the token secret: made owner-only, with a warning.
fn tighten_mode(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            let file = Path::new(&file);
            let Ok(meta) = std::fs::metadata(file) else {
                continue;
            };
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                match std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)) {
                    Ok(()) => log::warn!(
                        "database file {} had mode {mode:o}; set to 600 (it holds password hashes)",
                        file.display()
                    ),
                    Err(e) => log::warn!(
                        "database file {} has mode {mode:o} (others can read password hashes) and cannot be changed: {e}",
                        file.display()
                    ),
                }
            }
        }
    }
}

/// Creates the database file readable only by its owner (SQLite gives its -wal and -shm files
/// the same permissions), or checks that the existing one is a SQLite database, so a wrong
/// path fails at once with one line instead of the pool retrying for seconds.
fn create_private(path: &Path) -> anyhow::Result<()> {
    use std::fs::OpenOptions;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display();
    if path.is_dir() {
        anyhow::bail!("database {shown} is a directory; database.path (or --db) names a file");
    }
    if path.exists() {
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("cannot open database {shown}"))?;
        return conn
            .query_row("PRAGMA schema_version", [], |_| Ok(()))
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::NotADatabase =>
                {
                    anyhow::anyhow!("database {shown} is not a SQLite database (wrong file?)")
                }
                e => anyhow::anyhow!("cannot read database {shown}: {e}"),
            });
    }
    // A missing directory is most likely a typo: creating it would start an empty tenant.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        anyhow::bail!(
            "cannot create database {shown}: the directory {} does not exist (create it first)",
            dir.display()
        );
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    match options.open(path) {
        Ok(_) => {
            // A relative database.path is relative to the current directory: a command run
            // elsewhere makes a second database with its own secret. Say where it went.
            let full = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
            log::warn!("created a new, empty database at {}", full.display());
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot create database {shown}")),
    }
}

/// Brings the schema up to date. Each step runs in an immediate transaction that re-reads
/// the version inside it, so two processes opening a new file at once (the server and the
/// CLI) cannot both run the same step.
fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
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
        let Some(step) = MIGRATIONS.get(version) else {
            return Ok(());
        };
        match step {
            Migration::Sql(sql) => tx.execute_batch(sql)?,
            Migration::Rust(f) => f(&tx)?,
        }
        tx.pragma_update(None, "user_version", (version + 1) as i64)?;
        tx.commit()?;
        log::info!("database schema migrated to version {}", version + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Ops;

    #[test]
    fn the_page_caches_share_one_limit() {
        limit_caches(8);
        let c = Connection::open_in_memory().unwrap();
        let limit: i64 = c
            .query_row("PRAGMA soft_heap_limit", [], |r| r.get(0))
            .unwrap();
        assert_eq!(limit, 8 << 20);
    }

    #[test]
    fn processes_opening_a_new_file_at_once_migrate_it_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = DatabaseSettings {
            path: dir.path().join("race.db").to_string_lossy().into_owned(),
            pool_size: 2,
            ..DatabaseSettings::default()
        };
        let opened: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..6)
                .map(|_| s.spawn(|| Sqlite::open(&settings).map(|_| ())))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        for result in opened {
            result.expect("every opener succeeds");
        }
        let db = Sqlite::open(&settings).expect("reopen");
        let version: i64 = db
            .pool
            .get()
            .expect("conn")
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(version, MIGRATIONS.len() as i64);
    }

    #[cfg(unix)]
    #[test]
    fn an_existing_database_that_others_can_read_is_made_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("open.db");
        std::fs::write(&path, b"").expect("file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let settings = DatabaseSettings {
            path: path.to_string_lossy().into_owned(),
            pool_size: 1,
            ..DatabaseSettings::default()
        };
        Sqlite::open(&settings).expect("open");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn the_email_key_migration_keeps_case_variant_duplicates_apart() {
        let mut conn = Connection::open_in_memory().expect("db");
        // Version 1 only, with two emails that differ only in case.
        let tx = conn.transaction().expect("tx");
        if let Migration::Sql(sql) = &MIGRATIONS[0] {
            tx.execute_batch(sql).expect("v1");
        }
        tx.pragma_update(None, "user_version", 1).expect("version");
        tx.execute_batch(
            "INSERT INTO users (id, username, email, password_hash, created, mtime) VALUES
               ('5c88c7cc04a917256c726c3d', 'a', 'Ann@example.com', 'x', 1, 1),
               ('5c88c7cc04a917256c726c3e', 'b', 'ann@example.com', 'x', 2, 2);",
        )
        .expect("rows");
        tx.commit().expect("commit");
        migrate(&mut conn).expect("migrate");
        let ops: &mut dyn Ops = &mut users::Conn(&conn);
        let first = ops
            .find_by_email("ANN@example.com")
            .expect("lookup")
            .expect("found");
        assert_eq!(first.username, "a", "the first created keeps the address");
        assert!(ops.find_by_username("b").expect("b").is_some());
    }
}
