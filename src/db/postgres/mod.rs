//! The PostgreSQL backend (`database.url = "postgres://…"`): several replicas of the server
//! on one database.
//!
//! Every replica is stateless beyond its pool: users, metadata (the token secret), `/config`
//! keys, the outbox, reset codes and the brute-force counters ([`Counters`]) are rows every
//! replica sees. Nothing is remembered between requests ([`Backend::version`] is `None`):
//! a `GET /user` is one primary-key read, so a change made through one replica shows in the
//! next answer of every other. Migrations and the declared users run under an advisory lock,
//! so replicas started at once do that work once.

mod counters;
mod tls;
mod users;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use postgres::error::SqlState;
use postgres::{Client, Statement};

use super::{Backend, StoreError, Taken, Work};
use crate::settings::DatabaseSettings;

/// A pooled connection: the client and the statements it has prepared.
pub struct PgConn {
    client: Client,
    statements: HashMap<String, Statement>,
}

/// Most statements kept prepared per connection (list queries vary with their filters, so the
/// set is not fixed; a full cache starts again).
const STATEMENTS_KEPT: usize = 128;

fn prepared(
    client: &mut impl postgres::GenericClient,
    cache: &mut HashMap<String, Statement>,
    sql: &str,
) -> Result<Statement, postgres::Error> {
    if let Some(s) = cache.get(sql) {
        return Ok(s.clone());
    }
    let s = client.prepare(sql)?;
    if cache.len() >= STATEMENTS_KEPT {
        cache.clear();
    }
    cache.insert(sql.to_owned(), s.clone());
    Ok(s)
}

struct Manager {
    config: postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    statement_timeout_ms: u64,
}

impl r2d2::ManageConnection for Manager {
    type Connection = PgConn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<PgConn, postgres::Error> {
        let mut client = self.config.connect(self.tls.clone())?;
        client.batch_execute(&format!(
            "SET statement_timeout = {}",
            self.statement_timeout_ms
        ))?;
        Ok(PgConn {
            client,
            statements: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut PgConn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.client.is_closed()
    }
}

type Pool = r2d2::Pool<Manager>;

pub struct Postgres {
    /// Always `Some` until dropped (see the `Drop` impl).
    pool: Option<Pool>,
    /// The URL without its password, for messages.
    shown: String,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

/// The advisory lock key of schema migrations and declared users ("appmixer-auth" as a number).
const LOCK_MIGRATE: i64 = 0x6170_706d_6978_6572;

impl Postgres {
    pub fn open(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        let url = settings.postgres_url().context("database.url is not set")?;
        let shown = settings.shown();
        let mut parsed = tls::parse(url)?;
        let connect_timeout = Duration::from_secs(settings.connect_timeout.0);
        parsed.config.connect_timeout(connect_timeout);
        if parsed.config.get_application_name().is_none() {
            parsed.config.application_name("appmixer-auth");
        }
        if !parsed.verified && parsed.config.get_ssl_mode() == postgres::config::SslMode::Require {
            log::warn!(
                "database.url: sslmode=require encrypts but does not check the server's certificate; \
                 use sslmode=verify-full (with sslrootcert=FILE for a private CA) to check it"
            );
        }
        let manager = Manager {
            config: parsed.config,
            tls: parsed.tls,
            statement_timeout_ms: settings.statement_timeout.0.saturating_mul(1000),
        };
        // A connection made here first says exactly what is wrong (r2d2 keeps only the last
        // error's first line: "error performing TLS handshake", without the cause).
        if let Err(e) = r2d2::ManageConnection::connect(&manager) {
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text.push_str(&format!(": {c}"));
                cause = c.source();
            }
            anyhow::bail!("cannot connect to PostgreSQL at {shown}: {text}");
        }
        let pool = r2d2::Pool::builder()
            .max_size(settings.pool_size)
            .min_idle(Some(1))
            // A broken connection shows itself by failing (one 503) and is then dropped; a
            // check on every checkout would double the round trips of a `GET /user`.
            .test_on_check_out(false)
            .connection_timeout(connect_timeout)
            .error_handler(Box::new(QuietErrors))
            .build(manager)
            .map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL at {shown}: {e}"))?;
        let db = Self {
            pool: Some(pool),
            shown,
        };
        db.migrate()?;
        Ok(db)
    }

    fn conn(&self) -> Result<r2d2::PooledConnection<Manager>, StoreError> {
        let pool = self
            .pool
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("the database is closed".into()))?;
        pool.get().map_err(|e| {
            StoreError::Unavailable(format!(
                "no connection to PostgreSQL at {} in time: {e}",
                self.shown
            ))
        })
    }

    /// Brings the schema up to date under an advisory lock: replicas starting at once wait for
    /// the first, then find nothing to do.
    fn migrate(&self) -> anyhow::Result<()> {
        let mut conn = self.conn()?;
        let mut tx = conn.client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_MIGRATE])?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);")?;
        let version: i32 = match tx.query_opt("SELECT version FROM schema_version", &[])? {
            Some(row) => row.get(0),
            None => {
                tx.execute("INSERT INTO schema_version (version) VALUES (0)", &[])?;
                0
            }
        };
        let known = MIGRATIONS.len();
        let from = usize::try_from(version).unwrap_or(usize::MAX);
        if from > known {
            anyhow::bail!(
                "the database has schema version {version}, newer than this appmixer-auth knows ({known}); use a newer build"
            );
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(from) {
            tx.batch_execute(sql)
                .with_context(|| format!("PostgreSQL schema migration {}", i + 1))?;
            log::info!("database schema migrated to version {}", i + 1);
        }
        tx.execute(
            "UPDATE schema_version SET version = $1",
            &[&i32::try_from(known).unwrap_or(i32::MAX)],
        )?;
        tx.commit()?;
        Ok(())
    }
}

impl Drop for Postgres {
    /// A blocking client closes its connection by blocking on its own runtime, which may not
    /// happen on an async worker (a server stopped inside a test's runtime): the pool goes on
    /// a plain thread of its own.
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            let _ = std::thread::Builder::new()
                .name("postgres-close".into())
                .spawn(move || drop(pool));
        }
    }
}

/// r2d2 logs every failed connection attempt at ERROR; a database that is down is already
/// answered with 503 and logged once per request that met it.
#[derive(Debug)]
struct QuietErrors;

impl r2d2::HandleError<postgres::Error> for QuietErrors {
    fn handle_error(&self, error: postgres::Error) {
        log::debug!("PostgreSQL connection attempt failed: {error}");
    }
}

impl Backend for Postgres {
    fn read(&self, work: Work<'_>) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let conn = &mut *conn;
        work(&mut users::Conn {
            client: &mut conn.client,
            statements: &mut conn.statements,
        })
    }

    fn write(&self, work: Work<'_>) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let conn = &mut *conn;
        let mut tx = conn.client.transaction().map_err(classify)?;
        work(&mut users::Conn {
            client: &mut tx,
            statements: &mut conn.statements,
        })?;
        tx.commit().map_err(classify)
    }

    fn counters(&self) -> Option<&dyn super::Counters> {
        Some(self)
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        classify(e)
    }
}

/// What a PostgreSQL error means to the store's callers.
pub(crate) fn classify(e: postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::UNIQUE_VIOLATION {
            match db.constraint() {
                Some("users_username_unique") => return StoreError::Taken(Taken::Username),
                Some("users_email_unique") | Some("users_email_key_unique") => {
                    return StoreError::Taken(Taken::Email);
                }
                Some("users_pkey") => return StoreError::Taken(Taken::Id),
                _ => {}
            }
        }
        let class = &code.code()[..2];
        // Connection exceptions, insufficient resources, operator intervention (shutdown,
        // a cancelled statement: the statement timeout), serialization failures.
        if matches!(class, "08" | "53" | "57" | "40") {
            return StoreError::Unavailable(format!("PostgreSQL: {}", db.message()));
        }
        if class == "XX" {
            return StoreError::Corrupt(format!("PostgreSQL: {}", db.message()));
        }
        return StoreError::other(e);
    }
    // No answer from the server: the connection closed, failed or timed out.
    if e.is_closed() || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>()) {
        return StoreError::Unavailable(format!("PostgreSQL: {e}"));
    }
    StoreError::other(e)
}

/// Each entry moves the schema one version up; `schema_version` records how far it went.
/// Text is compared byte by byte (`COLLATE "C"` where sorted), as SQLite does.
const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE users (
        id            TEXT NOT NULL CONSTRAINT users_pkey PRIMARY KEY,
        username      TEXT NOT NULL CONSTRAINT users_username_unique UNIQUE,
        email         TEXT NOT NULL CONSTRAINT users_email_unique UNIQUE,
        email_key     TEXT NOT NULL CONSTRAINT users_email_key_unique UNIQUE,
        password_hash TEXT NOT NULL,
        is_active     BOOLEAN NOT NULL DEFAULT false,
        scope         TEXT NOT NULL DEFAULT '["user"]',
        plan          TEXT NOT NULL DEFAULT 'free',
        vendor        TEXT,
        metadata      TEXT NOT NULL DEFAULT '{}',
        created       BIGINT NOT NULL,
        mtime         BIGINT NOT NULL,
        tokens_since  BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX users_created ON users (created, id);
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE config (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE outbox (
        seq        BIGSERIAL NOT NULL UNIQUE,
        id         TEXT PRIMARY KEY,
        event      TEXT NOT NULL,
        target     TEXT NOT NULL,
        body       TEXT NOT NULL,
        created    BIGINT NOT NULL,
        attempts   INTEGER NOT NULL DEFAULT 0,
        next_at    BIGINT NOT NULL,
        give_up_at BIGINT NOT NULL,
        state      TEXT NOT NULL DEFAULT 'pending',
        last_error TEXT
    );
    CREATE INDEX outbox_due ON outbox (state, next_at);
    CREATE TABLE reset_codes (
        code_hash TEXT PRIMARY KEY,
        user_id   TEXT NOT NULL UNIQUE
                  CONSTRAINT reset_codes_user REFERENCES users (id) ON DELETE CASCADE
                  DEFERRABLE INITIALLY IMMEDIATE,
        created   BIGINT NOT NULL,
        expires   BIGINT NOT NULL
    );
    CREATE TABLE limiter (
        kind     SMALLINT NOT NULL,
        key      BYTEA NOT NULL,
        failures INTEGER NOT NULL,
        since    BIGINT NOT NULL,
        PRIMARY KEY (kind, key)
    );
    CREATE INDEX limiter_since ON limiter (since);
"#,
    // Searching a million users: trigram indexes (pg_trgm, a trusted extension any owner of
    // the database may create) for the pattern's ILIKE, the JSON names of scope and vendor,
    // and an index for every sort key, each ending in the id.
    r#"
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX users_username_trgm ON users USING gin (username gin_trgm_ops);
    CREATE INDEX users_email_trgm ON users USING gin (email gin_trgm_ops);
    CREATE INDEX users_scope_names ON users USING gin ((scope::jsonb));
    CREATE INDEX users_vendor_names ON users USING gin ((vendor::jsonb));
    DROP INDEX users_created;
    CREATE INDEX users_created ON users (created, id COLLATE "C");
    CREATE INDEX users_mtime ON users (mtime, id COLLATE "C");
    CREATE INDEX users_username_order ON users (username COLLATE "C", id COLLATE "C");
    CREATE INDEX users_email_order ON users (email COLLATE "C", id COLLATE "C");
    CREATE INDEX users_id_order ON users (id COLLATE "C");
    CREATE INDEX users_plan ON users (plan COLLATE "C", id COLLATE "C");
    CREATE INDEX users_is_active ON users (is_active, id COLLATE "C");
    CREATE INDEX users_vendor ON users (vendor COLLATE "C", id COLLATE "C");
"#,
    // One trigram index over username and email together, joined by a newline, not one each:
    // a pattern that matches few users (`user99999` of a million) took two index scans of
    // about 10 ms, one per column, where it now takes one (see `where_clause` in users.rs).
    // ANALYZE gives the planner the new expression's figures at once, or a common pattern is
    // planned as a rare one until autovacuum comes by.
    r#"
    CREATE INDEX users_names_trgm ON users USING gin ((username || E'\n' || email) gin_trgm_ops);
    DROP INDEX users_username_trgm;
    DROP INDEX users_email_trgm;
    ANALYZE users;
"#,
];

/// Makes a new, empty schema on the server at `url` and answers a URL whose connections use
/// it: one database server, many isolated tenants (each test its own).
pub fn new_schema(url: &str) -> anyhow::Result<String> {
    let parsed = tls::parse(url)?;
    let mut client = parsed.config.connect(parsed.tls)?;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    client.batch_execute(&format!("CREATE SCHEMA {name}"))?;
    // Extensions are one per database: pg_trgm goes in `public`, on every tenant's path (two
    // tests creating it at once: one of them finds it made).
    if let Err(e) = client.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
        && e.code() != Some(&SqlState::UNIQUE_VIOLATION)
    {
        return Err(e.into());
    }
    let joiner = if url.contains('?') { '&' } else { '?' };
    Ok(format!(
        "{url}{joiner}options=-c%20search_path%3D{name}%2Cpublic"
    ))
}
