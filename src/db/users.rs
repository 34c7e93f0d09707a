//! The users table.

use std::fmt;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;
use serde_json::Value;

use crate::domain::UserId;
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

impl User {
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

pub fn insert(conn: &Connection, user: &User) -> Result<(), ApiError> {
    conn.execute(
        &format!(
            "INSERT INTO users ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ),
        params![
            user.id.as_str(),
            user.username,
            user.email,
            user.password_hash.0,
            user.is_active,
            serde_json::to_string(&user.scope).map_err(ApiError::internal)?,
            user.plan,
            user.vendor,
            serde_json::to_string(&user.metadata).map_err(ApiError::internal)?,
            user.created,
            user.mtime,
        ],
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

pub fn find_by_username(conn: &Connection, username: &str) -> Result<Option<User>, ApiError> {
    find_one(conn, "username", username)
}

pub fn find_by_email(conn: &Connection, email: &str) -> Result<Option<User>, ApiError> {
    find_one(conn, "email", email)
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
