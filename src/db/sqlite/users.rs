//! The store's operations in SQL: the `users` and `meta` tables.

use rusqlite::types::Value as V;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::classify;
use crate::db::outbox::{Message, Settle};
use crate::db::users::{Filter, ListQuery, PasswordHash, SortKey, User};
use crate::db::{Lookup, Ops, StoreError};
use crate::domain::{Email, UserId, Vendor};

/// One connection, or one transaction (which derefs to its connection).
pub struct Conn<'a>(pub &'a Connection);

const COLUMNS: &str = "id, username, email, password_hash, is_active, scope, plan, vendor, metadata, \
     created, mtime, tokens_since";

fn from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    let id: String = row.get(0)?;
    let scope: String = row.get(5)?;
    let metadata: String = row.get(8)?;
    let bad = |i, e: Box<dyn std::error::Error + Send + Sync>| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e)
    };
    Ok(User {
        id: UserId::parse(&id).map_err(|e| bad(0, e.to_string().into()))?,
        username: row.get(1)?,
        email: row.get(2)?,
        password_hash: PasswordHash(row.get(3)?),
        is_active: row.get(4)?,
        scope: serde_json::from_str(&scope).map_err(|e| bad(5, Box::new(e)))?,
        plan: row.get(6)?,
        vendor: row
            .get::<_, Option<String>>(7)?
            .map(|text| stored_vendor(&text)),
        metadata: serde_json::from_str(&metadata).map_err(|e| bad(8, Box::new(e)))?,
        created: row.get(9)?,
        mtime: row.get(10)?,
        tokens_since: row.get(11)?,
    })
}

/// A stored vendor: JSON text (a string or an array of strings) since schema version 4.
fn stored_vendor(text: &str) -> Vendor {
    serde_json::from_str(text).unwrap_or_else(|_| Vendor::One(text.to_owned()))
}

/// A user's fields as SQL values, in the order of [`COLUMNS`] (`?1` … `?12`), then the
/// email's key (`?13`).
fn values(user: &User) -> Result<[V; 13], StoreError> {
    let scope = serde_json::to_string(&user.scope).map_err(StoreError::other)?;
    let metadata = serde_json::to_string(&user.metadata).map_err(StoreError::other)?;
    Ok([
        V::Text(user.id.as_str().to_owned()),
        V::Text(user.username.clone()),
        V::Text(user.email.clone()),
        V::Text(user.password_hash.0.clone()),
        V::Integer(i64::from(user.is_active)),
        V::Text(scope),
        V::Text(user.plan.clone()),
        match &user.vendor {
            None => V::Null,
            Some(v) => V::Text(serde_json::to_string(v).map_err(StoreError::other)?),
        },
        V::Text(metadata),
        V::Integer(user.created),
        V::Integer(user.mtime),
        V::Integer(user.tokens_since),
        V::Text(Email::key_of(&user.email)),
    ])
}

fn column(key: SortKey) -> &'static str {
    match key {
        SortKey::Created => "created",
        SortKey::Mtime => "mtime",
        SortKey::Username => "username",
        SortKey::Email => "email",
        SortKey::Id => "id",
        SortKey::Plan => "plan",
        SortKey::IsActive => "is_active",
        SortKey::Vendor => "vendor",
    }
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// How a query finds its users: by reading rows in order and testing each (cheap when many
/// match, so a page fills early), or through the indexes (cheap when few do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Scan,
    Indexed,
}

/// Rows read in sort order before the indexes are asked: a pattern or filter that matches
/// one row in fifty fills a page of 100 within them.
const WINDOW: u32 = 5_000;

/// The trigrams of a pattern as an FTS5 query (each a quoted term, all required), or `None`
/// when it is shorter than three characters (no trigram to look up).
fn trigrams(pattern: &str) -> Option<String> {
    let chars: Vec<char> = pattern.to_lowercase().chars().collect();
    if chars.len() < 3 {
        return None;
    }
    let mut seen = std::collections::BTreeSet::new();
    for w in chars.windows(3) {
        seen.insert(w.iter().collect::<String>());
    }
    Some(
        seen.iter()
            .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(" AND "),
    )
}

/// Whether a query may match many rows or few: a pattern, or a filter other than a unique
/// username or email (those are one index lookup).
fn searches(q: &ListQuery) -> bool {
    q.pattern.is_some()
        || q.filters
            .iter()
            .any(|f| !matches!(f, Filter::Username(_) | Filter::Email(_)))
}

/// The WHERE clause and its parameters for a query's pattern and filters, as `plan` reads.
fn where_clause(q: &ListQuery, plan: Plan) -> (String, Vec<V>) {
    let mut parts = Vec::new();
    let mut args: Vec<V> = Vec::new();
    if let Some(p) = &q.pattern {
        args.push(V::Text(format!("%{}%", escape_like(p))));
        let n = args.len();
        parts.push(format!(
            "(username LIKE ?{n} ESCAPE '\\' OR email LIKE ?{n} ESCAPE '\\')"
        ));
        if plan == Plan::Indexed
            && let Some(terms) = trigrams(p)
        {
            args.push(V::Text(terms));
            parts.push(format!(
                "users.rowid IN (SELECT rowid FROM users_search WHERE users_search MATCH ?{})",
                args.len()
            ));
        }
    }
    for f in &q.filters {
        let (sql, arg) = match (f, plan) {
            (Filter::Scope(s), Plan::Scan) => (
                "EXISTS (SELECT 1 FROM json_each(users.scope) WHERE json_each.value = ?N)",
                V::Text(s.clone()),
            ),
            (Filter::Scope(s), Plan::Indexed) => (
                "users.rowid IN (SELECT user_rowid FROM user_tags WHERE kind = 'scope' AND value = ?N)",
                V::Text(s.clone()),
            ),
            // A string vendor, or an array holding the name.
            (Filter::Vendor(s), Plan::Scan) => (
                "EXISTS (SELECT 1 FROM json_each(users.vendor) WHERE json_each.value = ?N)",
                V::Text(s.clone()),
            ),
            (Filter::Vendor(s), Plan::Indexed) => (
                "users.rowid IN (SELECT user_rowid FROM user_tags WHERE kind = 'vendor' AND value = ?N)",
                V::Text(s.clone()),
            ),
            // `+column`: in a scan, SQLite must not answer the filter from its index (a
            // common plan would read most of the table through it before the window).
            (Filter::Plan(s), Plan::Scan) => ("+plan = ?N", V::Text(s.clone())),
            (Filter::Plan(s), Plan::Indexed) => ("plan = ?N", V::Text(s.clone())),
            (Filter::IsActive(b), Plan::Scan) => ("+is_active = ?N", V::Integer(i64::from(*b))),
            (Filter::IsActive(b), Plan::Indexed) => ("is_active = ?N", V::Integer(i64::from(*b))),
            (Filter::Username(s), _) => ("username = ?N", V::Text(s.clone())),
            (Filter::Email(s), _) => ("email_key = ?N", V::Text(Email::key_of(s))),
        };
        args.push(arg);
        parts.push(sql.replace("?N", &format!("?{}", args.len())));
    }
    if parts.is_empty() {
        (String::new(), args)
    } else {
        (format!("WHERE {}", parts.join(" AND ")), args)
    }
}

impl Conn<'_> {
    fn users(&self, sql: &str, args: Vec<V>) -> Result<Vec<User>, StoreError> {
        let mut stmt = self.0.prepare_cached(sql).map_err(classify)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), from_row)
            .map_err(classify)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(classify)
    }

    fn count(&self, sql: &str, args: Vec<V>) -> Result<u64, StoreError> {
        self.0
            .prepare_cached(sql)
            .and_then(|mut stmt| {
                stmt.query_row(rusqlite::params_from_iter(args), |r| r.get::<_, i64>(0))
            })
            .map(|n| n as u64)
            .map_err(classify)
    }

    fn find_one(&self, column: &str, value: &str) -> Result<Option<User>, StoreError> {
        self.0
            .prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE {column} = ?1"))
            .and_then(|mut stmt| stmt.query_row([value], from_row).optional())
            .map_err(classify)
    }

    /// The user of a code good at `now`, by `sql` (`?1` the hash, `?2` now, one `user_id`).
    fn code_user(
        &self,
        sql: &str,
        code_hash: &str,
        now: i64,
    ) -> Result<Option<UserId>, StoreError> {
        let id: Option<String> = self
            .0
            .prepare_cached(sql)?
            .query_row(params![code_hash, now], |r| r.get(0))
            .optional()?;
        Ok(id.and_then(|id| UserId::parse(&id).ok()))
    }

    fn change(&self, sql: &str, args: impl rusqlite::Params) -> Result<usize, StoreError> {
        self.0
            .prepare_cached(sql)
            .and_then(|mut stmt| stmt.execute(args))
            .map_err(classify)
    }
}

impl Ops for Conn<'_> {
    fn find_user(&mut self, by: Lookup<'_>) -> Result<Option<User>, StoreError> {
        match by {
            Lookup::Id(id) => self.find_one("id", id.as_str()),
            Lookup::Username(u) => self.find_one("username", u),
            Lookup::Email(e) => self.find_one("email_key", &Email::key_of(e)),
        }
    }

    fn insert_user(&mut self, user: &User) -> Result<(), StoreError> {
        self.change(
            &format!(
                "INSERT INTO users ({COLUMNS}, email_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
            ),
            rusqlite::params_from_iter(values(user)?),
        )?;
        Ok(())
    }

    fn replace_user(&mut self, user: &User) -> Result<bool, StoreError> {
        // A pending reset code was sent to the address as it was: it goes with any rewrite.
        self.change(
            "DELETE FROM reset_codes WHERE user_id = ?1",
            [user.id.as_str()],
        )?;
        let n = self.change(
            "UPDATE users SET username = ?2, email = ?3, password_hash = ?4, is_active = ?5,
                 scope = ?6, plan = ?7, vendor = ?8, metadata = ?9, created = ?10, mtime = ?11,
                 tokens_since = ?12, email_key = ?13
             WHERE id = ?1",
            rusqlite::params_from_iter(values(user)?),
        )?;
        Ok(n == 1)
    }

    fn set_password_hash(
        &mut self,
        id: &UserId,
        hash: &str,
        mtime: i64,
        tokens_since: Option<i64>,
    ) -> Result<bool, StoreError> {
        // A new password makes any pending reset code moot.
        self.change("DELETE FROM reset_codes WHERE user_id = ?1", [id.as_str()])?;
        let n = self.change(
            "UPDATE users SET password_hash = ?2, mtime = ?3,
                 tokens_since = CASE WHEN ?4 IS NULL THEN tokens_since
                                     ELSE MAX(?4, tokens_since + 1) END
             WHERE id = ?1",
            params![id.as_str(), hash, mtime, tokens_since],
        )?;
        Ok(n == 1)
    }

    fn upgrade_password_hash(
        &mut self,
        id: &UserId,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        let n = self.change(
            "UPDATE users SET password_hash = ?3 WHERE id = ?1 AND password_hash = ?2",
            params![id.as_str(), old, new],
        )?;
        Ok(n == 1)
    }

    fn revoke_tokens(
        &mut self,
        id: &UserId,
        since: i64,
        mtime: i64,
    ) -> Result<Option<i64>, StoreError> {
        // Signing out everywhere also cancels a pending reset code.
        self.change("DELETE FROM reset_codes WHERE user_id = ?1", [id.as_str()])?;
        Ok(self
            .0
            .prepare_cached(
                "UPDATE users SET tokens_since = MAX(?2, tokens_since + 1), mtime = ?3
                 WHERE id = ?1 RETURNING tokens_since",
            )?
            .query_row(params![id.as_str(), since, mtime], |r| r.get(0))
            .optional()?)
    }

    fn delete_user(&mut self, id: &UserId) -> Result<bool, StoreError> {
        Ok(self.change("DELETE FROM users WHERE id = ?1", [id.as_str()])? == 1)
    }

    fn delete_users_except(&mut self, keep: &[UserId]) -> Result<usize, StoreError> {
        let keep: Vec<&str> = keep.iter().map(UserId::as_str).collect();
        let keep = serde_json::to_string(&keep).map_err(StoreError::other)?;
        self.change(
            "DELETE FROM users WHERE id NOT IN (SELECT value FROM json_each(?1))",
            [keep],
        )
    }

    fn delete_users_except_each(
        &mut self,
        keep: &mut dyn Iterator<Item = UserId>,
    ) -> Result<usize, StoreError> {
        self.0.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS keep_ids (id TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID;
             DELETE FROM temp.keep_ids;",
        )?;
        for id in keep {
            self.change(
                "INSERT OR IGNORE INTO temp.keep_ids (id) VALUES (?1)",
                [id.as_str()],
            )?;
        }
        let n = self.change(
            "DELETE FROM users WHERE id NOT IN (SELECT id FROM temp.keep_ids)",
            [],
        )?;
        self.change("DELETE FROM temp.keep_ids", [])?;
        Ok(n)
    }

    fn list_users(&mut self, q: &ListQuery) -> Result<Vec<User>, StoreError> {
        let (key, ascending) = q.sort;
        let order = format!(
            "ORDER BY {column} {dir}, id {dir}",
            column = column(key),
            dir = if ascending { "ASC" } else { "DESC" },
        );
        if searches(q) && q.limit > 0 {
            // The first rows in order, tested one by one: when they hold the whole page, it is
            // the answer (the page is the first matches in order, all among them).
            let (where_sql, mut args) = where_clause(q, Plan::Scan);
            let and = if where_sql.is_empty() { "WHERE" } else { "AND" };
            args.push(V::Integer(i64::from(q.limit)));
            args.push(V::Integer(i64::from(q.offset)));
            let n = args.len();
            let page = self.users(
                &format!(
                    "SELECT {COLUMNS} FROM users {where_sql} {and} users.rowid IN
                         (SELECT rowid FROM users {order} LIMIT {WINDOW})
                     {order} LIMIT ?{} OFFSET ?{n}",
                    n - 1
                ),
                args,
            )?;
            if page.len() == q.limit as usize {
                return Ok(page);
            }
        }
        // Through the indexes; the page's rows are found in the index of the sort key (the
        // rows skipped by the offset are not read) and then read whole.
        let (where_sql, mut args) = where_clause(q, Plan::Indexed);
        args.push(V::Integer(i64::from(q.limit)));
        args.push(V::Integer(i64::from(q.offset)));
        let n = args.len();
        self.users(
            &format!(
                "SELECT {COLUMNS} FROM users WHERE users.rowid IN
                     (SELECT users.rowid FROM users {where_sql} {order} LIMIT ?{} OFFSET ?{n})
                 {order}",
                n - 1
            ),
            args,
        )
    }

    fn count_users(&mut self, q: &ListQuery) -> Result<u64, StoreError> {
        let mut plan = Plan::Indexed;
        if q.pattern.is_some() {
            // A pattern found in many of the first rows is common: testing every row costs
            // less than joining the long lists of its trigrams.
            let (where_sql, args) = where_clause(q, Plan::Scan);
            let and = if where_sql.is_empty() { "WHERE" } else { "AND" };
            let sample = self.count(
                &format!(
                    "SELECT COUNT(*) FROM users {where_sql} {and} users.rowid IN
                         (SELECT rowid FROM users ORDER BY created LIMIT {WINDOW})"
                ),
                args,
            )?;
            if sample * 20 > u64::from(WINDOW) {
                plan = Plan::Scan;
            }
        }
        let (where_sql, args) = where_clause(q, plan);
        self.count(&format!("SELECT COUNT(*) FROM users {where_sql}"), args)
    }

    fn each_user(
        &mut self,
        each: &mut dyn FnMut(User) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .0
            .prepare(&format!("SELECT {COLUMNS} FROM users ORDER BY created, id"))
            .map_err(classify)?;
        let mut rows = stmt.query([]).map_err(classify)?;
        while let Some(row) = rows.next().map_err(classify)? {
            each(from_row(row).map_err(classify)?)?;
        }
        Ok(())
    }

    fn meta(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        self.0
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")
            .and_then(|mut stmt| stmt.query_row([key], |r| r.get(0)).optional())
            .map_err(classify)
    }

    fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.change(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }

    fn meta_or_insert(&mut self, key: &str, value: &str) -> Result<String, StoreError> {
        self.change(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
            [key, value],
        )?;
        self.meta(key)?
            .ok_or_else(|| StoreError::other(anyhow::anyhow!("meta {key} missing after insert")))
    }

    fn bulk_begin(&mut self) -> Result<(), StoreError> {
        self.0
            .execute_batch(super::DROP_SEARCH_TRIGGERS)
            .map_err(classify)
    }

    fn bulk_end(&mut self) -> Result<(), StoreError> {
        self.0
            .execute_batch(super::REINDEX_SEARCH)
            .and_then(|()| self.0.execute_batch(super::SEARCH_TRIGGERS))
            .map_err(classify)
    }

    fn config_all(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self
            .0
            .prepare_cached("SELECT key, value FROM config ORDER BY key")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn config_get(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT value FROM config WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    fn config_set(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.change(
            "INSERT INTO config (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }

    fn config_delete(&mut self, key: &str) -> Result<bool, StoreError> {
        Ok(self.change("DELETE FROM config WHERE key = ?1", [key])? == 1)
    }

    fn reset_code_put(
        &mut self,
        user: &UserId,
        code_hash: &str,
        created: i64,
        expires: i64,
    ) -> Result<(), StoreError> {
        self.change("DELETE FROM reset_codes WHERE expires <= ?1", [created])?;
        self.change(
            "INSERT INTO reset_codes (code_hash, user_id, created, expires) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (user_id) DO UPDATE SET code_hash = excluded.code_hash,
                 created = excluded.created, expires = excluded.expires",
            params![code_hash, user.as_str(), created, expires],
        )?;
        Ok(())
    }

    fn reset_code_decoy(&mut self, code_hash: &str, now: i64) -> Result<(), StoreError> {
        self.change("DELETE FROM reset_codes WHERE expires <= ?1", [now])?;
        // No user has this id (ids are 24 hex digits), and the row goes again at once; the
        // write and its commit cost what a real code's do.
        self.0
            .execute_batch("PRAGMA defer_foreign_keys = ON")
            .map_err(super::classify)?;
        self.change(
            "INSERT INTO reset_codes (code_hash, user_id, created, expires) VALUES (?1, ?1, ?2, ?2)",
            params![code_hash, now],
        )?;
        self.change("DELETE FROM reset_codes WHERE code_hash = ?1", [code_hash])?;
        Ok(())
    }

    fn reset_code_peek(&mut self, code_hash: &str, now: i64) -> Result<Option<UserId>, StoreError> {
        self.code_user(
            "SELECT user_id FROM reset_codes WHERE code_hash = ?1 AND expires > ?2",
            code_hash,
            now,
        )
    }

    fn reset_code_take(&mut self, code_hash: &str, now: i64) -> Result<Option<UserId>, StoreError> {
        self.code_user(
            "DELETE FROM reset_codes WHERE code_hash = ?1 AND expires > ?2 RETURNING user_id",
            code_hash,
            now,
        )
    }

    fn outbox_add(&mut self, m: &Message) -> Result<(), StoreError> {
        self.change(
            "INSERT INTO outbox (id, event, target, body, created, attempts, next_at, give_up_at, state)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?5, ?6, ?7)",
            params![m.id, m.event, m.target, m.body, m.created, m.give_up_at, m.state],
        )?;
        Ok(())
    }

    fn outbox_claim(
        &mut self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        let mut stmt = self.0.prepare_cached(&format!(
            "UPDATE outbox SET attempts = attempts + 1, next_at = ?2
             WHERE id IN (SELECT id FROM outbox WHERE state = 'pending' AND next_at <= ?1
                          ORDER BY next_at LIMIT ?3)
             RETURNING {MESSAGE}"
        ))?;
        let rows = stmt.query_map(params![now, lease_until, limit], message_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn outbox_settle(&mut self, id: &str, outcome: &Settle) -> Result<(), StoreError> {
        match outcome {
            // Only a pending message is settled: an attempt that outlived its lease, finishing
            // after another attempt settled the message, changes nothing.
            Settle::Delivered => self.change(
                "UPDATE outbox SET state = 'delivered', last_error = NULL
                 WHERE id = ?1 AND state = 'pending'",
                [id],
            )?,
            Settle::Retry { at, error } => self.change(
                "UPDATE outbox SET next_at = ?2, last_error = ?3 WHERE id = ?1 AND state = 'pending'",
                params![id, at, error],
            )?,
            Settle::Abandoned { error } => self.change(
                "UPDATE outbox SET state = 'abandoned', last_error = ?2
                 WHERE id = ?1 AND state = 'pending'",
                params![id, error],
            )?,
        };
        Ok(())
    }

    fn outbox_redact(&mut self, id: &str) -> Result<(), StoreError> {
        self.change(
            "UPDATE outbox SET body = '\"[removed after delivery]\"' WHERE id = ?1",
            [id],
        )?;
        Ok(())
    }

    fn outbox_recent(&mut self, limit: u32) -> Result<Vec<Message>, StoreError> {
        let mut stmt = self.0.prepare_cached(&format!(
            "SELECT * FROM (SELECT {MESSAGE} FROM outbox ORDER BY created DESC, rowid DESC LIMIT ?1)
             ORDER BY created, rowid"
        ))?;
        let rows = stmt.query_map([limit], message_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn outbox_prune(&mut self, before: i64) -> Result<usize, StoreError> {
        self.change(
            "DELETE FROM outbox WHERE state <> 'pending' AND created < ?1",
            [before],
        )
    }

    fn outbox_next_due(&mut self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT MIN(next_at) FROM outbox WHERE state = 'pending'")?
            .query_row([], |r| r.get(0))?)
    }
}

const MESSAGE: &str = "id, event, target, body, created, attempts, give_up_at, state, rowid";

fn message_from_row(row: &Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        id: row.get(0)?,
        event: row.get(1)?,
        target: row.get(2)?,
        body: row.get(3)?,
        created: row.get(4)?,
        attempts: row.get(5)?,
        give_up_at: row.get(6)?,
        state: row.get(7)?,
    })
}
