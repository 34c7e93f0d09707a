//! The store's operations in PostgreSQL's SQL.

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{GenericClient, Row, Statement};

use super::{classify, prepared};
use crate::db::outbox::{Message, Settle};
use crate::db::users::{Filter, ListQuery, PasswordHash, SortKey, User};
use crate::db::{Lookup, Ops, StoreError};
use crate::domain::{Email, UserId, Vendor};

/// One connection or one transaction, with the connection's prepared statements.
pub struct Conn<'a, C: GenericClient> {
    pub client: &'a mut C,
    pub statements: &'a mut HashMap<String, Statement>,
}

const COLUMNS: &str = "id, username, email, password_hash, is_active, scope, plan, vendor, metadata, \
     created, mtime, tokens_since";

type Param = Box<dyn ToSql + Sync + Send>;

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("stored {what} does not parse: {e}"))
}

fn from_row(row: &Row) -> Result<User, StoreError> {
    let id: String = row.try_get(0)?;
    let scope: String = row.try_get(5)?;
    let metadata: String = row.try_get(8)?;
    Ok(User {
        id: UserId::parse(&id).map_err(|e| corrupt("id", e))?,
        username: row.try_get(1)?,
        email: row.try_get(2)?,
        password_hash: PasswordHash(row.try_get(3)?),
        is_active: row.try_get(4)?,
        scope: serde_json::from_str(&scope).map_err(|e| corrupt("scope", e))?,
        plan: row.try_get(6)?,
        vendor: row
            .try_get::<_, Option<String>>(7)?
            .map(|text| serde_json::from_str(&text).unwrap_or(Vendor::One(text))),
        metadata: serde_json::from_str(&metadata).map_err(|e| corrupt("metadata", e))?,
        created: row.try_get(9)?,
        mtime: row.try_get(10)?,
        tokens_since: row.try_get(11)?,
    })
}

/// A user's fields in the order of [`COLUMNS`] (`$1` … `$12`), then the email's key (`$13`).
fn values(user: &User) -> Result<Vec<Param>, StoreError> {
    let scope = serde_json::to_string(&user.scope).map_err(StoreError::other)?;
    let metadata = serde_json::to_string(&user.metadata).map_err(StoreError::other)?;
    let vendor = match &user.vendor {
        None => None,
        Some(v) => Some(serde_json::to_string(v).map_err(StoreError::other)?),
    };
    Ok(vec![
        Box::new(user.id.as_str().to_owned()),
        Box::new(user.username.clone()),
        Box::new(user.email.clone()),
        Box::new(user.password_hash.0.clone()),
        Box::new(user.is_active),
        Box::new(scope),
        Box::new(user.plan.clone()),
        Box::new(vendor),
        Box::new(metadata),
        Box::new(user.created),
        Box::new(user.mtime),
        Box::new(user.tokens_since),
        Box::new(Email::key_of(&user.email)),
    ])
}

/// Users' fields as one array per column, in the order of [`values`].
struct Columns {
    id: Vec<String>,
    username: Vec<String>,
    email: Vec<String>,
    password_hash: Vec<String>,
    is_active: Vec<bool>,
    scope: Vec<String>,
    plan: Vec<String>,
    vendor: Vec<Option<String>>,
    metadata: Vec<String>,
    created: Vec<i64>,
    mtime: Vec<i64>,
    tokens_since: Vec<i64>,
    email_key: Vec<String>,
}

impl Columns {
    fn of(users: &[User]) -> Result<Self, StoreError> {
        let n = users.len();
        let mut c = Self {
            id: Vec::with_capacity(n),
            username: Vec::with_capacity(n),
            email: Vec::with_capacity(n),
            password_hash: Vec::with_capacity(n),
            is_active: Vec::with_capacity(n),
            scope: Vec::with_capacity(n),
            plan: Vec::with_capacity(n),
            vendor: Vec::with_capacity(n),
            metadata: Vec::with_capacity(n),
            created: Vec::with_capacity(n),
            mtime: Vec::with_capacity(n),
            tokens_since: Vec::with_capacity(n),
            email_key: Vec::with_capacity(n),
        };
        for u in users {
            c.id.push(u.id.as_str().to_owned());
            c.username.push(u.username.clone());
            c.email.push(u.email.clone());
            c.password_hash.push(u.password_hash.0.clone());
            c.is_active.push(u.is_active);
            c.scope
                .push(serde_json::to_string(&u.scope).map_err(StoreError::other)?);
            c.plan.push(u.plan.clone());
            c.vendor.push(match &u.vendor {
                None => None,
                Some(v) => Some(serde_json::to_string(v).map_err(StoreError::other)?),
            });
            c.metadata
                .push(serde_json::to_string(&u.metadata).map_err(StoreError::other)?);
            c.created.push(u.created);
            c.mtime.push(u.mtime);
            c.tokens_since.push(u.tokens_since);
            c.email_key.push(Email::key_of(&u.email));
        }
        Ok(c)
    }

    fn refs(&self) -> [&(dyn ToSql + Sync); 13] {
        [
            &self.id,
            &self.username,
            &self.email,
            &self.password_hash,
            &self.is_active,
            &self.scope,
            &self.plan,
            &self.vendor,
            &self.metadata,
            &self.created,
            &self.mtime,
            &self.tokens_since,
            &self.email_key,
        ]
    }
}

fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

fn column(key: SortKey) -> &'static str {
    match key {
        SortKey::Created => "created",
        SortKey::Mtime => "mtime",
        SortKey::Username => "username COLLATE \"C\"",
        SortKey::Email => "email COLLATE \"C\"",
        SortKey::Id => "id COLLATE \"C\"",
        SortKey::Plan => "plan COLLATE \"C\"",
        SortKey::IsActive => "is_active",
        SortKey::Vendor => "vendor COLLATE \"C\"",
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

/// The WHERE clause and its parameters for a query's pattern and filters.
fn where_clause(q: &ListQuery) -> (String, Vec<Param>) {
    let mut parts = Vec::new();
    let mut args: Vec<Param> = Vec::new();
    if let Some(p) = &q.pattern {
        args.push(Box::new(format!("%{}%", escape_like(p))));
        let n = args.len();
        // One test of the two names joined by a newline, which their trigram index
        // (`users_names_trgm`) answers: a match without a newline cannot cross the joint, so
        // it lies in one name. A pattern with a newline, or too short for a trigram, tests
        // each name instead: no index serves it, and two short tests cost half of one over
        // the joined names (a two-letter pattern over a million users: 0.56 s against 1.2 s).
        parts.push(if p.contains('\n') || p.chars().count() < 3 {
            format!("(username ILIKE ${n} ESCAPE '\\' OR email ILIKE ${n} ESCAPE '\\')")
        } else {
            format!("(username || E'\\n' || email) ILIKE ${n} ESCAPE '\\'")
        });
    }
    for f in &q.filters {
        let (sql, arg): (&str, Param) = match f {
            // A JSON array of names, or (vendor) a name alone: `?` finds an element or the
            // string itself.
            Filter::Scope(s) => ("scope::jsonb ? $N", Box::new(s.clone())),
            Filter::Plan(s) => ("plan = $N", Box::new(s.clone())),
            Filter::Vendor(s) => ("vendor::jsonb ? $N", Box::new(s.clone())),
            Filter::IsActive(b) => ("is_active = $N", Box::new(*b)),
            Filter::Username(s) => ("username = $N", Box::new(s.clone())),
            Filter::Email(s) => ("email_key = $N", Box::new(Email::key_of(s))),
        };
        args.push(arg);
        parts.push(sql.replace("$N", &format!("${}", args.len())));
    }
    if parts.is_empty() {
        (String::new(), args)
    } else {
        (format!("WHERE {}", parts.join(" AND ")), args)
    }
}

impl<C: GenericClient> Conn<'_, C> {
    fn statement(&mut self, sql: &str) -> Result<Statement, StoreError> {
        prepared(self.client, self.statements, sql).map_err(classify)
    }

    fn change(&mut self, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let stmt = self.statement(sql)?;
        Ok(self.client.execute(&stmt, args)?)
    }

    fn opt(&mut self, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>, StoreError> {
        let stmt = self.statement(sql)?;
        Ok(self.client.query_opt(&stmt, args)?)
    }

    fn rows(&mut self, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StoreError> {
        let stmt = self.statement(sql)?;
        Ok(self.client.query(&stmt, args)?)
    }

    fn find_one(&mut self, column: &str, value: &str) -> Result<Option<User>, StoreError> {
        self.opt(
            &format!("SELECT {COLUMNS} FROM users WHERE {column} = $1"),
            &[&value],
        )?
        .map(|r| from_row(&r))
        .transpose()
    }

    fn code_user(
        &mut self,
        sql: &str,
        code_hash: &str,
        now: i64,
    ) -> Result<Option<UserId>, StoreError> {
        let id: Option<String> = self.opt(sql, &[&code_hash, &now])?.map(|r| r.get(0));
        Ok(id.and_then(|id| UserId::parse(&id).ok()))
    }
}

impl<C: GenericClient> Ops for Conn<'_, C> {
    fn find_user(&mut self, by: Lookup<'_>) -> Result<Option<User>, StoreError> {
        match by {
            Lookup::Id(id) => self.find_one("id", id.as_str()),
            Lookup::Username(u) => self.find_one("username", u),
            Lookup::Email(e) => self.find_one("email_key", &Email::key_of(e)),
        }
    }

    fn insert_user(&mut self, user: &User) -> Result<(), StoreError> {
        let values = values(user)?;
        self.change(
            &format!(
                "INSERT INTO users ({COLUMNS}, email_key)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            ),
            &refs(&values),
        )?;
        Ok(())
    }

    fn find_users_by_id(&mut self, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        let ids: Vec<&str> = ids.iter().map(UserId::as_str).collect();
        self.rows(
            &format!("SELECT {COLUMNS} FROM users WHERE id = ANY($1)"),
            &[&ids],
        )?
        .iter()
        .map(from_row)
        .collect()
    }

    /// One `INSERT … SELECT FROM UNNEST` of column arrays under a savepoint; when a name is
    /// taken, back to the savepoint and one at a time, to say which user it was.
    fn insert_users(&mut self, users: &[User]) -> Result<(), (usize, StoreError)> {
        let one_by_one = |this: &mut Self| {
            for (i, user) in users.iter().enumerate() {
                this.insert_user(user).map_err(|e| (i, e))?;
            }
            Ok(())
        };
        if users.len() < 2 {
            return one_by_one(self);
        }
        let columns = Columns::of(users).map_err(|e| (0, e))?;
        let whole = |e: StoreError| (0, e);
        self.client
            .batch_execute("SAVEPOINT insert_users")
            .map_err(|e| whole(e.into()))?;
        let inserted = self.change(
            &format!(
                "INSERT INTO users ({COLUMNS}, email_key)
                 SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[],
                     $5::BOOLEAN[], $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[],
                     $10::BIGINT[], $11::BIGINT[], $12::BIGINT[], $13::TEXT[])"
            ),
            &columns.refs(),
        );
        match inserted {
            Ok(_) => self
                .client
                .batch_execute("RELEASE SAVEPOINT insert_users")
                .map_err(|e| whole(e.into())),
            Err(StoreError::Taken(_)) => {
                self.client
                    .batch_execute(
                        "ROLLBACK TO SAVEPOINT insert_users; RELEASE SAVEPOINT insert_users",
                    )
                    .map_err(|e| whole(e.into()))?;
                one_by_one(self)
            }
            Err(e) => Err(whole(e)),
        }
    }

    fn replace_user(&mut self, user: &User) -> Result<bool, StoreError> {
        self.change(
            "DELETE FROM reset_codes WHERE user_id = $1",
            &[&user.id.as_str()],
        )?;
        let values = values(user)?;
        let n = self.change(
            "UPDATE users SET username = $2, email = $3, password_hash = $4, is_active = $5,
                 scope = $6, plan = $7, vendor = $8, metadata = $9, created = $10, mtime = $11,
                 tokens_since = $12, email_key = $13
             WHERE id = $1",
            &refs(&values),
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
        self.change(
            "DELETE FROM reset_codes WHERE user_id = $1",
            &[&id.as_str()],
        )?;
        let n = self.change(
            "UPDATE users SET password_hash = $2, mtime = $3,
                 tokens_since = CASE WHEN $4::BIGINT IS NULL THEN tokens_since
                                     ELSE GREATEST($4::BIGINT, tokens_since + 1) END
             WHERE id = $1",
            &[&id.as_str(), &hash, &mtime, &tokens_since],
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
            "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2",
            &[&id.as_str(), &old, &new],
        )?;
        Ok(n == 1)
    }

    fn revoke_tokens(
        &mut self,
        id: &UserId,
        since: i64,
        mtime: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.change(
            "DELETE FROM reset_codes WHERE user_id = $1",
            &[&id.as_str()],
        )?;
        Ok(self
            .opt(
                "UPDATE users SET tokens_since = GREATEST($2, tokens_since + 1), mtime = $3
                 WHERE id = $1 RETURNING tokens_since",
                &[&id.as_str(), &since, &mtime],
            )?
            .map(|r| r.get(0)))
    }

    fn delete_user(&mut self, id: &UserId) -> Result<bool, StoreError> {
        Ok(self.change("DELETE FROM users WHERE id = $1", &[&id.as_str()])? == 1)
    }

    fn delete_users_except(&mut self, keep: &[UserId]) -> Result<usize, StoreError> {
        let keep: Vec<&str> = keep.iter().map(UserId::as_str).collect();
        let n = self.change("DELETE FROM users WHERE NOT (id = ANY($1))", &[&keep])?;
        Ok(n as usize)
    }

    fn delete_users_except_each(
        &mut self,
        keep: &mut dyn Iterator<Item = UserId>,
    ) -> Result<usize, StoreError> {
        self.client.batch_execute(
            "CREATE TEMP TABLE IF NOT EXISTS keep_ids (id TEXT PRIMARY KEY);
             TRUNCATE keep_ids;",
        )?;
        {
            use std::io::Write;
            let mut copy = self.client.copy_in("COPY keep_ids (id) FROM STDIN")?;
            let mut seen = std::collections::HashSet::new();
            for id in keep {
                // Ids are 24 hex digits: nothing in them needs COPY's escaping.
                if seen.insert(id.clone()) {
                    writeln!(copy, "{}", id.as_str()).map_err(StoreError::other)?;
                }
            }
            copy.finish()?;
        }
        let n = self.change(
            "DELETE FROM users WHERE id NOT IN (SELECT id FROM keep_ids)",
            &[],
        )?;
        self.client.batch_execute("TRUNCATE keep_ids")?;
        Ok(n as usize)
    }

    fn list_users(&mut self, q: &ListQuery) -> Result<Vec<User>, StoreError> {
        let (where_sql, mut args) = where_clause(q);
        let (key, ascending) = q.sort;
        args.push(Box::new(i64::from(q.limit)));
        args.push(Box::new(i64::from(q.offset)));
        let n = args.len();
        let dir = if ascending { "ASC" } else { "DESC" };
        // The page's ids come from the index of the sort key (the rows skipped by the offset
        // are not read), then the page is read whole.
        let order = format!(
            "ORDER BY {column} {dir}, id COLLATE \"C\" {dir}",
            column = column(key)
        );
        let sql = format!(
            "SELECT {COLUMNS} FROM users WHERE id IN
                 (SELECT id FROM users {where_sql} {order} LIMIT ${} OFFSET ${n})
             {order}",
            n - 1,
        );
        self.rows(&sql, &refs(&args))?
            .iter()
            .map(from_row)
            .collect()
    }

    fn count_users(&mut self, q: &ListQuery) -> Result<u64, StoreError> {
        let (where_sql, args) = where_clause(q);
        let n: i64 = self
            .rows(
                &format!("SELECT count(*) FROM users {where_sql}"),
                &refs(&args),
            )?
            .first()
            .map(|r| r.get(0))
            .unwrap_or(0);
        Ok(n as u64)
    }

    fn each_user(
        &mut self,
        each: &mut dyn FnMut(User) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM users ORDER BY created, id COLLATE \"C\"");
        let params: [&(dyn ToSql + Sync); 0] = [];
        let mut rows = self.client.query_raw(sql.as_str(), params)?;
        while let Some(row) = postgres::fallible_iterator::FallibleIterator::next(&mut rows)? {
            each(from_row(&row)?)?;
        }
        Ok(())
    }

    fn meta(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .opt("SELECT value FROM meta WHERE key = $1", &[&key])?
            .map(|r| r.get(0)))
    }

    fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.change(
            "INSERT INTO meta (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, &value],
        )?;
        Ok(())
    }

    fn meta_or_insert(&mut self, key: &str, value: &str) -> Result<String, StoreError> {
        // Replicas starting at once: the first insert wins, the others wait for its commit
        // and then read its value.
        self.change(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            &[&key, &value],
        )?;
        self.meta(key)?
            .ok_or_else(|| StoreError::other(anyhow::anyhow!("meta {key} missing after insert")))
    }

    /// After many rows, the planner's figures are out of date until autovacuum comes by:
    /// refreshed here, in the import's transaction (which ANALYZE sees), so the first search
    /// after a large import already picks the indexes.
    fn bulk_end(&mut self) -> Result<(), StoreError> {
        self.client.batch_execute("ANALYZE users")?;
        Ok(())
    }

    fn lock_exclusive(&mut self) -> Result<(), StoreError> {
        self.change("SELECT pg_advisory_xact_lock($1)", &[&super::LOCK_MIGRATE])?;
        Ok(())
    }

    fn config_all(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(self
            .rows(
                "SELECT key, value FROM config ORDER BY key COLLATE \"C\"",
                &[],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    fn config_get(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .opt("SELECT value FROM config WHERE key = $1", &[&key])?
            .map(|r| r.get(0)))
    }

    fn config_set(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.change(
            "INSERT INTO config (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, &value],
        )?;
        Ok(())
    }

    fn config_delete(&mut self, key: &str) -> Result<bool, StoreError> {
        Ok(self.change("DELETE FROM config WHERE key = $1", &[&key])? == 1)
    }

    fn reset_code_put(
        &mut self,
        user: &UserId,
        code_hash: &str,
        created: i64,
        expires: i64,
    ) -> Result<(), StoreError> {
        self.change("DELETE FROM reset_codes WHERE expires <= $1", &[&created])?;
        self.change(
            "INSERT INTO reset_codes (code_hash, user_id, created, expires) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id) DO UPDATE SET code_hash = excluded.code_hash,
                 created = excluded.created, expires = excluded.expires",
            &[&code_hash, &user.as_str(), &created, &expires],
        )?;
        Ok(())
    }

    fn reset_code_decoy(&mut self, code_hash: &str, now: i64) -> Result<(), StoreError> {
        self.change("DELETE FROM reset_codes WHERE expires <= $1", &[&now])?;
        // No user has this id; the row goes again before the commit checks the reference.
        self.client
            .batch_execute("SET CONSTRAINTS reset_codes_user DEFERRED")?;
        self.change(
            "INSERT INTO reset_codes (code_hash, user_id, created, expires) VALUES ($1, $1, $2, $2)",
            &[&code_hash, &now],
        )?;
        self.change(
            "DELETE FROM reset_codes WHERE code_hash = $1",
            &[&code_hash],
        )?;
        Ok(())
    }

    fn reset_code_peek(&mut self, code_hash: &str, now: i64) -> Result<Option<UserId>, StoreError> {
        self.code_user(
            "SELECT user_id FROM reset_codes WHERE code_hash = $1 AND expires > $2",
            code_hash,
            now,
        )
    }

    fn reset_code_take(&mut self, code_hash: &str, now: i64) -> Result<Option<UserId>, StoreError> {
        self.code_user(
            "DELETE FROM reset_codes WHERE code_hash = $1 AND expires > $2 RETURNING user_id",
            code_hash,
            now,
        )
    }

    fn outbox_add(&mut self, m: &Message) -> Result<(), StoreError> {
        self.change(
            "INSERT INTO outbox (id, event, target, body, created, attempts, next_at, give_up_at, state)
             VALUES ($1, $2, $3, $4, $5, 0, $5, $6, $7)",
            &[&m.id, &m.event, &m.target, &m.body, &m.created, &m.give_up_at, &m.state],
        )?;
        Ok(())
    }

    fn outbox_claim(
        &mut self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        // SKIP LOCKED: replicas claiming at once take different messages.
        self.rows(
            &format!(
                "UPDATE outbox SET attempts = attempts + 1, next_at = $2
                 WHERE id IN (SELECT id FROM outbox WHERE state = 'pending' AND next_at <= $1
                              ORDER BY next_at LIMIT $3 FOR UPDATE SKIP LOCKED)
                 RETURNING {MESSAGE}"
            ),
            &[&now, &lease_until, &i64::from(limit)],
        )?
        .iter()
        .map(message_from_row)
        .collect()
    }

    fn outbox_settle(&mut self, id: &str, outcome: &Settle) -> Result<(), StoreError> {
        match outcome {
            Settle::Delivered => self.change(
                "UPDATE outbox SET state = 'delivered', last_error = NULL
                 WHERE id = $1 AND state = 'pending'",
                &[&id],
            )?,
            Settle::Retry { at, error } => self.change(
                "UPDATE outbox SET next_at = $2, last_error = $3 WHERE id = $1 AND state = 'pending'",
                &[&id, at, error],
            )?,
            Settle::Abandoned { error } => self.change(
                "UPDATE outbox SET state = 'abandoned', last_error = $2
                 WHERE id = $1 AND state = 'pending'",
                &[&id, error],
            )?,
        };
        Ok(())
    }

    fn outbox_redact(&mut self, id: &str) -> Result<(), StoreError> {
        self.change(
            "UPDATE outbox SET body = '\"[removed after delivery]\"' WHERE id = $1",
            &[&id],
        )?;
        Ok(())
    }

    fn outbox_recent(&mut self, limit: u32) -> Result<Vec<Message>, StoreError> {
        self.rows(
            &format!(
                "SELECT * FROM (SELECT {MESSAGE}, seq FROM outbox ORDER BY created DESC, seq DESC LIMIT $1) t
                 ORDER BY created, seq"
            ),
            &[&i64::from(limit)],
        )?
        .iter()
        .map(message_from_row)
        .collect()
    }

    fn outbox_prune(&mut self, before: i64) -> Result<usize, StoreError> {
        Ok(self.change(
            "DELETE FROM outbox WHERE state <> 'pending' AND created < $1",
            &[&before],
        )? as usize)
    }

    fn outbox_next_due(&mut self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .opt(
                "SELECT min(next_at) FROM outbox WHERE state = 'pending'",
                &[],
            )?
            .and_then(|r| r.get(0)))
    }
}

const MESSAGE: &str = "id, event, target, body, created, attempts, give_up_at, state";

fn message_from_row(row: &Row) -> Result<Message, StoreError> {
    Ok(Message {
        id: row.try_get(0)?,
        event: row.try_get(1)?,
        target: row.try_get(2)?,
        body: row.try_get(3)?,
        created: row.try_get(4)?,
        attempts: row.try_get::<_, i32>(5)?.try_into().unwrap_or(u32::MAX),
        give_up_at: row.try_get(6)?,
        state: row.try_get(7)?,
    })
}
