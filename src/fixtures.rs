//! Declared users (`[[users]]` in the settings file): validated at start-up and applied so the
//! database holds exactly what the file says about them.

use std::collections::HashSet;

use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::db::users::{self, PasswordHash, User};
use crate::domain::{Email, Password, UserId, Username, check_label};
use crate::error::ApiError;
use crate::settings::Secret;

/// One declared user. Fields left out take the defaults of a new user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FixtureUser {
    /// A fixed 24-hex id, so tests can rely on it. Unset: kept from an existing user of that
    /// username, or generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub username: String,
    pub email: String,
    /// Plain password, hashed at `auth.bcrypt_cost`. Give this or `password_hash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// An existing bcrypt hash (`$2b$…`), used as it is.
    #[serde(
        default,
        alias = "passwordHash",
        skip_serializing_if = "Option::is_none"
    )]
    pub password_hash: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    #[serde(
        default,
        rename = "isActive",
        alias = "is_active",
        skip_serializing_if = "Option::is_none"
    )]
    pub is_active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// Does this look like a bcrypt hash the verifier can read?
pub fn is_bcrypt_hash(h: &str) -> bool {
    let b = h.as_bytes();
    h.len() == 60
        && (h.starts_with("$2a$") || h.starts_with("$2b$") || h.starts_with("$2y$"))
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && b[6] == b'$'
        && h[7..]
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'/')
}

fn reason(e: ApiError) -> String {
    e.to_string()
}

impl FixtureUser {
    /// A user with a plain password and the defaults of a new user for everything else.
    pub fn with_password(username: &str, email: &str, password: &str) -> Self {
        Self {
            id: None,
            username: username.into(),
            email: email.into(),
            password: Some(Secret::new(password)),
            password_hash: None,
            scope: None,
            plan: None,
            is_active: None,
            vendor: None,
            metadata: None,
        }
    }

    /// Checks one entry; the message names the field.
    pub fn check(&self) -> Result<(), String> {
        Username::parse(&self.username).map_err(|e| format!("username: {}", reason(e)))?;
        Email::parse(&self.email).map_err(|e| format!("email: {}", reason(e)))?;
        if let Some(id) = &self.id {
            UserId::parse(id).map_err(|_| "id: must be 24 hexadecimal characters".to_owned())?;
        }
        match (&self.password, &self.password_hash) {
            (Some(_), Some(_)) => {
                return Err("give either password or password_hash, not both".into());
            }
            (None, None) => return Err("password or password_hash is required".into()),
            (Some(p), None) => {
                Password::parse_new("password", p.expose())
                    .map_err(|e| format!("password: {}", reason(e)))?;
            }
            (None, Some(h)) => {
                if !is_bcrypt_hash(h.expose()) {
                    return Err("password_hash: not a bcrypt hash ($2b$NN$ + 53 characters)".into());
                }
            }
        }
        for s in self.scope.iter().flatten() {
            check_label("scope", s).map_err(|e| format!("scope: {}", reason(e)))?;
        }
        if let Some(p) = &self.plan {
            check_label("plan", p).map_err(|e| format!("plan: {}", reason(e)))?;
        }
        if let Some(v) = &self.vendor {
            check_label("vendor", v).map_err(|e| format!("vendor: {}", reason(e)))?;
        }
        if self.metadata.as_ref().is_some_and(|m| !m.is_object()) {
            return Err("metadata: must be a table (object)".into());
        }
        Ok(())
    }
}

/// Checks every entry and that no two share an id, username or email.
pub fn validate(fixtures: &[FixtureUser]) -> Result<(), String> {
    let mut ids = HashSet::new();
    let mut names = HashSet::new();
    let mut emails = HashSet::new();
    for (i, f) in fixtures.iter().enumerate() {
        let at = || format!("users[{i}] ({:?})", f.username);
        f.check().map_err(|e| format!("{}: {e}", at()))?;
        if let Some(id) = &f.id
            && !ids.insert(id.to_ascii_lowercase())
        {
            return Err(format!("{}: id: {id} is declared twice", at()));
        }
        if !names.insert(f.username.as_str()) {
            return Err(format!("{}: username: declared twice", at()));
        }
        if !emails.insert(Email::key_of(&f.email)) {
            return Err(format!("{}: email: declared twice", at()));
        }
    }
    Ok(())
}

/// What applying fixtures did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Report {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

/// The stored user a fixture declares: the one with its id, else the one with its username.
pub fn stored(conn: &Connection, f: &FixtureUser) -> Result<Option<User>, ApiError> {
    match &f.id {
        Some(id) => users::find_by_id(conn, &UserId::parse(id)?),
        None => users::find_by_username(conn, &f.username),
    }
}

/// The ids of the declared users that are stored (see [`stored`]): the users a reset keeps.
pub fn stored_ids(conn: &Connection, declared: &[FixtureUser]) -> Result<Vec<UserId>, ApiError> {
    let mut ids = Vec::with_capacity(declared.len());
    for f in declared {
        ids.extend(stored(conn, f)?.map(|u| u.id));
    }
    Ok(ids)
}

/// Brings the database to what the fixtures say, in one transaction: missing users are created,
/// existing ones (matched by id, else username) are overwritten with the declared fields and
/// the defaults for the rest. Plain passwords are hashed at `cost` (in parallel), unless the
/// stored hash already matches.
pub fn apply(
    conn: &mut Connection,
    fixtures: &[FixtureUser],
    cost: u32,
    default_vendor: Option<&str>,
) -> Result<Report, String> {
    validate(fixtures)?;
    let db_err = |e: ApiError| format!("database: {e:#}");
    let existing = fixtures
        .iter()
        .map(|f| stored(conn, f).map_err(db_err))
        .collect::<Result<Vec<_>, _>>()?;
    let hashes = password_hashes(fixtures, &existing, cost)?;
    let now = users::now_ms();
    let tx = conn.transaction().map_err(|e| format!("database: {e}"))?;
    let mut report = Report::default();
    for (i, ((f, old), hash)) in fixtures.iter().zip(existing).zip(hashes).enumerate() {
        let id = match (&f.id, &old) {
            (Some(id), _) => UserId::parse(id).map_err(db_err)?,
            (None, Some(u)) => u.id.clone(),
            (None, None) => UserId::generate(),
        };
        let mut user = User {
            id,
            username: f.username.clone(),
            email: f.email.clone(),
            password_hash: PasswordHash(hash),
            is_active: f.is_active.unwrap_or(false),
            scope: f.scope.clone().unwrap_or_else(users::default_scope),
            plan: f
                .plan
                .clone()
                .unwrap_or_else(|| users::DEFAULT_PLAN.to_owned()),
            vendor: f
                .vendor
                .clone()
                .or_else(|| default_vendor.map(str::to_owned)),
            metadata: f.metadata.clone().unwrap_or_else(|| json!({})),
            created: old.as_ref().map_or(now, |u| u.created),
            mtime: now,
        };
        let at = |e: ApiError| format!("users[{i}] ({:?}): {e}", f.username);
        match old {
            None => {
                users::insert(&tx, &user).map_err(at)?;
                report.created += 1;
            }
            Some(old) if same(&old, &user) => report.unchanged += 1,
            Some(_) => {
                user.mtime = now;
                users::replace(&tx, &user).map_err(at)?;
                report.updated += 1;
            }
        }
    }
    tx.commit().map_err(|e| format!("database: {e}"))?;
    Ok(report)
}

fn same(a: &User, b: &User) -> bool {
    a.username == b.username
        && a.email == b.email
        && a.password_hash == b.password_hash
        && a.is_active == b.is_active
        && a.scope == b.scope
        && a.plan == b.plan
        && a.vendor == b.vendor
        && a.metadata == b.metadata
}

/// The hash each fixture should have: its `password_hash`, the stored hash when the plain
/// password still matches it, or a fresh hash (computed on every core).
fn password_hashes(
    fixtures: &[FixtureUser],
    existing: &[Option<User>],
    cost: u32,
) -> Result<Vec<String>, String> {
    let jobs: Vec<(usize, &str, Option<&str>)> = fixtures
        .iter()
        .zip(existing)
        .enumerate()
        .filter_map(|(i, (f, old))| {
            f.password.as_ref().map(|p| {
                (
                    i,
                    p.expose(),
                    old.as_ref().map(|u| u.password_hash.0.as_str()),
                )
            })
        })
        .collect();
    let mut out: Vec<String> = fixtures
        .iter()
        .map(|f| {
            f.password_hash
                .as_ref()
                .map(|h| h.expose().to_owned())
                .unwrap_or_default()
        })
        .collect();
    if jobs.is_empty() {
        return Ok(out);
    }
    let threads = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .min(jobs.len());
    let chunk = jobs.len().div_ceil(threads);
    let results: Vec<Result<Vec<(usize, String)>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|&(i, plain, old)| {
                            if let Some(old) = old
                                && bcrypt::verify(plain, old).unwrap_or(false)
                            {
                                return Ok((i, old.to_owned()));
                            }
                            bcrypt::hash(plain, cost)
                                .map(|h| (i, h))
                                .map_err(|e| format!("users[{i}]: cannot hash password: {e}"))
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("password hashing thread failed".into()))
            })
            .collect()
    });
    for part in results {
        for (i, h) in part? {
            out[i] = h;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(username: &str) -> FixtureUser {
        FixtureUser::with_password(username, &format!("{username}@example.com"), "secret-1")
    }

    #[test]
    fn a_bad_entry_is_named_with_its_field() {
        let mut bad = fixture("alice");
        bad.email = "nope".into();
        let err = validate(&[fixture("ok"), bad]).unwrap_err();
        assert!(err.starts_with("users[1] (\"alice\"): email"), "{err}");

        let mut bad = fixture("bob");
        bad.password = None;
        bad.password_hash = Some(Secret::new("plaintext"));
        let err = validate(&[bad]).unwrap_err();
        assert!(err.contains("password_hash"), "{err}");
        assert!(!err.contains("plaintext"), "{err}");

        let mut bad = fixture("carol");
        bad.id = Some("123".into());
        assert!(validate(&[bad]).unwrap_err().contains("id"));

        let err = validate(&[fixture("dave"), fixture("dave")]).unwrap_err();
        assert!(err.contains("twice"), "{err}");
    }

    #[test]
    fn bcrypt_hashes_are_recognised() {
        let h = bcrypt::hash("x", 4).unwrap();
        assert!(is_bcrypt_hash(&h));
        assert!(!is_bcrypt_hash("$2b$04$short"));
        assert!(!is_bcrypt_hash(&h.replace("$2b$", "$1$x")));
    }
}
