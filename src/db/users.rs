//! The users table.

use std::fmt;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;
use serde_json::Value;

use crate::domain::{Email, UserId};
use crate::error::ApiError;

/// A stored bcrypt hash. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(pub String);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash([redacted])")
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub email: String,
    pub password_hash: PasswordHash,
    pub is_active: bool,
    pub scope: Vec<String>,
    pub plan: String,
    pub vendor: Option<String>,
    pub metadata: Value,
    /// Milliseconds since the epoch.
    pub created: i64,
    pub mtime: i64,
}

/// What clients see of a user: never a hash or a secret.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicUser<'a> {
    pub id: &'a str,
    pub username: &'a str,
    pub email: &'a str,
    pub is_active: bool,
    pub scope: &'a [String],
    pub plan: &'a str,
    pub vendor: Option<&'a str>,
    pub metadata: &'a Value,
}

/// What a user has when nothing else is said: the engine's defaults.
pub const DEFAULT_SCOPE: &str = "user";
pub const DEFAULT_PLAN: &str = "free";

pub fn default_scope() -> Vec<String> {
    vec![DEFAULT_SCOPE.to_owned()]
}

impl User {
    /// A new user with the defaults (inactive, scope `user`, plan `free`, no metadata),
    /// created now.
    pub fn new(
        id: UserId,
        username: String,
        email: String,
        password_hash: String,
        vendor: Option<String>,
    ) -> Self {
        let now = now_ms();
        Self {
            id,
            username,
            email,
            password_hash: PasswordHash(password_hash),
            is_active: false,
            scope: default_scope(),
            plan: DEFAULT_PLAN.to_owned(),
            vendor,
            metadata: Value::Object(serde_json::Map::new()),
            created: now,
            mtime: now,
        }
    }

    pub fn public(&self) -> PublicUser<'_> {
        PublicUser {
            id: self.id.as_str(),
            username: &self.username,
            email: &self.email,
            is_active: self.is_active,
            scope: &self.scope,
            plan: &self.plan,
            vendor: self.vendor.as_deref(),
            metadata: &self.metadata,
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

const COLUMNS: &str =
    "id, username, email, password_hash, is_active, scope, plan, vendor, metadata, created, mtime";

fn from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    let id: String = row.get(0)?;
    let scope: String = row.get(5)?;
    let metadata: String = row.get(8)?;
    let bad = |i, e: serde_json::Error| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    };
    Ok(User {
        id: UserId::parse(&id).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Text,
                e.to_string().into(),
            )
        })?,
        username: row.get(1)?,
        email: row.get(2)?,
        password_hash: PasswordHash(row.get(3)?),
        is_active: row.get(4)?,
        scope: serde_json::from_str(&scope).map_err(|e| bad(5, e))?,
        plan: row.get(6)?,
        vendor: row.get(7)?,
        metadata: serde_json::from_str(&metadata).map_err(|e| bad(8, e))?,
        created: row.get(9)?,
        mtime: row.get(10)?,
    })
}

/// Turns a unique-constraint failure into 409 naming the taken field; anything else is a 500.
pub fn conflict_or_internal(e: rusqlite::Error) -> ApiError {
    if let rusqlite::Error::SqliteFailure(code, Some(msg)) = &e
        && code.code == rusqlite::ErrorCode::ConstraintViolation
    {
        if msg.contains("users.username") {
            return ApiError::Conflict("Username already taken".into());
        }
        if msg.contains("users.email") {
            return ApiError::Conflict("Email already taken".into());
        }
        if msg.contains("users.id") {
            return ApiError::Conflict("A user with this id already exists".into());
        }
    }
    ApiError::internal(e)
}

/// A user's fields as SQL values, in the order of [`COLUMNS`] (`?1` … `?11`), then the
/// email's key (`?12`).
fn values(user: &User) -> Result<[rusqlite::types::Value; 12], ApiError> {
    use rusqlite::types::Value as V;
    let scope = serde_json::to_string(&user.scope).map_err(ApiError::internal)?;
    let metadata = serde_json::to_string(&user.metadata).map_err(ApiError::internal)?;
    Ok([
        V::Text(user.id.as_str().to_owned()),
        V::Text(user.username.clone()),
        V::Text(user.email.clone()),
        V::Text(user.password_hash.0.clone()),
        V::Integer(i64::from(user.is_active)),
        V::Text(scope),
        V::Text(user.plan.clone()),
        user.vendor.clone().map_or(V::Null, V::Text),
        V::Text(metadata),
        V::Integer(user.created),
        V::Integer(user.mtime),
        V::Text(Email::key_of(&user.email)),
    ])
}

pub fn insert(conn: &Connection, user: &User) -> Result<(), ApiError> {
    conn.execute(
        &format!(
            "INSERT INTO users ({COLUMNS}, email_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
        ),
        rusqlite::params_from_iter(values(user)?),
    )
    .map_err(conflict_or_internal)?;
    Ok(())
}

fn find_one(conn: &Connection, column: &str, value: &str) -> Result<Option<User>, ApiError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE {column} = ?1"))
        .and_then(|mut stmt| stmt.query_row([value], from_row).optional())
        .map_err(ApiError::internal)
}

pub fn find_by_id(conn: &Connection, id: &UserId) -> Result<Option<User>, ApiError> {
    find_one(conn, "id", id.as_str())
}

/// The user a person names: by id, else username, else email.
pub fn find_by_any(conn: &Connection, key: &str) -> Result<Option<User>, ApiError> {
    if let Ok(id) = UserId::parse(key)
        && let Some(user) = find_by_id(conn, &id)?
    {
        return Ok(Some(user));
    }
    if let Some(user) = find_by_username(conn, key)? {
        return Ok(Some(user));
    }
    find_by_email(conn, key)
}

/// The 404 of every route about a user that is not stored.
pub fn not_found() -> ApiError {
    ApiError::NotFound("User not found".into())
}

/// The user with this id, or [`not_found`].
pub fn get(conn: &Connection, id: &UserId) -> Result<User, ApiError> {
    find_by_id(conn, id)?.ok_or_else(not_found)
}

/// [`get`] on the blocking pool.
pub async fn load(pool: &super::Pool, id: UserId) -> Result<User, ApiError> {
    super::run(pool, move |conn| get(conn, &id)).await
}

pub fn find_by_username(conn: &Connection, username: &str) -> Result<Option<User>, ApiError> {
    find_one(conn, "username", username)
}

/// The user with this email, compared without regard to case.
pub fn find_by_email(conn: &Connection, email: &str) -> Result<Option<User>, ApiError> {
    find_one(conn, "email_key", &Email::key_of(email))
}

/// Which of username and email are already taken (checked before paying for a bcrypt hash;
/// the unique indexes still decide races).
pub fn taken(conn: &Connection, username: &str, email: &str) -> Result<Option<ApiError>, ApiError> {
    if find_by_username(conn, username)?.is_some() {
        return Ok(Some(ApiError::Conflict("Username already taken".into())));
    }
    if find_by_email(conn, email)?.is_some() {
        return Ok(Some(ApiError::Conflict("Email already taken".into())));
    }
    Ok(None)
}

/// Columns `GET /users?sort=` may order by, by their API names.
pub const SORT_FIELDS: &[(&str, &str)] = &[
    ("created", "created"),
    ("mtime", "mtime"),
    ("username", "username"),
    ("email", "email"),
    ("id", "id"),
    ("plan", "plan"),
    ("isActive", "is_active"),
    ("vendor", "vendor"),
];

/// One `filter=field:value` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// The user's scope list contains this scope.
    Scope(String),
    Plan(String),
    Vendor(String),
    IsActive(bool),
    Username(String),
    Email(String),
}

/// Which users, in which order, how many: the admin list and count.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub limit: u32,
    pub offset: u32,
    /// A column from [`SORT_FIELDS`] (the SQL name) and ascending or not.
    pub sort: (&'static str, bool),
    /// Substring of username or email, case-insensitive.
    pub pattern: Option<String>,
    pub filters: Vec<Filter>,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            limit: 100,
            offset: 0,
            sort: ("created", true),
            pattern: None,
            filters: Vec::new(),
        }
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
fn where_clause(q: &ListQuery) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value as V;
    let mut parts = Vec::new();
    let mut args: Vec<V> = Vec::new();
    if let Some(p) = &q.pattern {
        args.push(V::Text(format!("%{}%", escape_like(p))));
        let n = args.len();
        parts.push(format!(
            "(username LIKE ?{n} ESCAPE '\\' OR email LIKE ?{n} ESCAPE '\\')"
        ));
    }
    for f in &q.filters {
        let (sql, arg) = match f {
            Filter::Scope(s) => (
                "EXISTS (SELECT 1 FROM json_each(users.scope) WHERE json_each.value = ?N)",
                V::Text(s.clone()),
            ),
            Filter::Plan(s) => ("plan = ?N", V::Text(s.clone())),
            Filter::Vendor(s) => ("vendor = ?N", V::Text(s.clone())),
            Filter::IsActive(b) => ("is_active = ?N", V::Integer(i64::from(*b))),
            Filter::Username(s) => ("username = ?N", V::Text(s.clone())),
            Filter::Email(s) => ("email_key = ?N", V::Text(Email::key_of(s))),
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

pub fn list(conn: &Connection, q: &ListQuery) -> Result<Vec<User>, ApiError> {
    let (where_sql, mut args) = where_clause(q);
    let (column, ascending) = q.sort;
    args.push(rusqlite::types::Value::Integer(i64::from(q.limit)));
    args.push(rusqlite::types::Value::Integer(i64::from(q.offset)));
    let n = args.len();
    let sql = format!(
        "SELECT {COLUMNS} FROM users {where_sql} ORDER BY {column} {dir}, id {dir} LIMIT ?{} OFFSET ?{n}",
        n - 1,
        dir = if ascending { "ASC" } else { "DESC" },
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(ApiError::internal)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), from_row)
        .map_err(ApiError::internal)?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .map_err(ApiError::internal)
}

pub fn count(conn: &Connection, q: &ListQuery) -> Result<u64, ApiError> {
    let (where_sql, args) = where_clause(q);
    conn.prepare_cached(&format!("SELECT COUNT(*) FROM users {where_sql}"))
        .and_then(|mut stmt| {
            stmt.query_row(rusqlite::params_from_iter(args), |r| r.get::<_, i64>(0))
        })
        .map(|n| n as u64)
        .map_err(ApiError::internal)
}

/// Every user, in creation order (for export).
pub fn all(conn: &Connection) -> Result<Vec<User>, ApiError> {
    let mut stmt = conn
        .prepare(&format!("SELECT {COLUMNS} FROM users ORDER BY created, id"))
        .map_err(ApiError::internal)?;
    let rows = stmt.query_map([], from_row).map_err(ApiError::internal)?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .map_err(ApiError::internal)
}

/// Writes every field of `user` over the stored row with the same id (mtime as given).
/// Returns false when no such user exists.
pub fn replace(conn: &Connection, user: &User) -> Result<bool, ApiError> {
    let n = conn
        .execute(
            "UPDATE users SET username = ?2, email = ?3, password_hash = ?4, is_active = ?5,
                 scope = ?6, plan = ?7, vendor = ?8, metadata = ?9, created = ?10, mtime = ?11,
                 email_key = ?12
             WHERE id = ?1",
            rusqlite::params_from_iter(values(user)?),
        )
        .map_err(conflict_or_internal)?;
    Ok(n == 1)
}

/// Sets a user's password hash; false when the user does not exist.
pub fn set_password_hash(conn: &Connection, id: &UserId, hash: &str) -> Result<bool, ApiError> {
    let n = conn
        .execute(
            "UPDATE users SET password_hash = ?2, mtime = ?3 WHERE id = ?1",
            params![id.as_str(), hash, now_ms()],
        )
        .map_err(ApiError::internal)?;
    Ok(n == 1)
}

/// Deletes a user; false when there was none.
pub fn delete(conn: &Connection, id: &UserId) -> Result<bool, ApiError> {
    let n = conn
        .execute("DELETE FROM users WHERE id = ?1", [id.as_str()])
        .map_err(ApiError::internal)?;
    Ok(n == 1)
}

/// Deletes every user whose id is not in `keep`; returns how many went.
pub fn delete_all_except(conn: &Connection, keep: &[UserId]) -> Result<usize, ApiError> {
    let keep: Vec<&str> = keep.iter().map(UserId::as_str).collect();
    let keep = serde_json::to_string(&keep).map_err(ApiError::internal)?;
    conn.execute(
        "DELETE FROM users WHERE id NOT IN (SELECT value FROM json_each(?1))",
        [keep],
    )
    .map_err(ApiError::internal)
}
