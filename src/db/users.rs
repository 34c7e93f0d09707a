//! What the store keeps of a user, and how a list of users is asked for. No backend here.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::domain::{UserId, Vendor, iso8601};

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
    pub vendor: Option<Vendor>,
    pub metadata: Value,
    /// Milliseconds since the epoch.
    pub created: i64,
    pub mtime: i64,
    /// Seconds since the epoch: tokens issued before are refused (revocation); 0 for none.
    pub tokens_since: i64,
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
    pub vendor: Option<&'a Vendor>,
    pub metadata: &'a Value,
}

/// What administrators see of a user: the public fields, and when it was created and last
/// changed (ISO-8601 UTC with milliseconds, as the engine's MongoDB dates serialise).
#[derive(Debug, Serialize)]
pub struct AdminView<'a> {
    #[serde(flatten)]
    pub public: PublicUser<'a>,
    pub created: String,
    pub mtime: String,
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
        vendor: Option<Vendor>,
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
            tokens_since: 0,
        }
    }

    pub fn admin_view(&self) -> AdminView<'_> {
        AdminView {
            public: self.public(),
            created: iso8601(self.created),
            mtime: iso8601(self.mtime),
        }
    }

    /// The same profile: every field a person or a settings file gives (not the id, the
    /// dates or the revocation second).
    pub fn same_profile(&self, other: &User) -> bool {
        self.username == other.username
            && self.email == other.email
            && self.password_hash == other.password_hash
            && self.is_active == other.is_active
            && self.scope == other.scope
            && self.plan == other.plan
            && self.vendor == other.vendor
            && self.metadata == other.metadata
    }

    /// Every stored field equal (metadata objects by content, not key order).
    pub fn same_record(&self, other: &User) -> bool {
        self.id == other.id
            && self.same_profile(other)
            && self.created == other.created
            && self.mtime == other.mtime
            && self.tokens_since == other.tokens_since
    }

    pub fn public(&self) -> PublicUser<'_> {
        PublicUser {
            id: self.id.as_str(),
            username: &self.username,
            email: &self.email,
            is_active: self.is_active,
            scope: &self.scope,
            plan: &self.plan,
            vendor: self.vendor.as_ref(),
            metadata: &self.metadata,
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What a list of users can be ordered by (then by id, in the same direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Created,
    Mtime,
    Username,
    Email,
    Id,
    Plan,
    IsActive,
    Vendor,
}

/// The sort keys by their API names (`GET /users?sort=`, `users list --sort`).
pub const SORT_FIELDS: &[(&str, SortKey)] = &[
    ("created", SortKey::Created),
    ("mtime", SortKey::Mtime),
    ("username", SortKey::Username),
    ("email", SortKey::Email),
    ("id", SortKey::Id),
    ("plan", SortKey::Plan),
    ("isActive", SortKey::IsActive),
    ("vendor", SortKey::Vendor),
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
    /// The key and ascending or not.
    pub sort: (SortKey, bool),
    /// Substring of username or email, case-insensitive.
    pub pattern: Option<String>,
    pub filters: Vec<Filter>,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            limit: 100,
            offset: 0,
            sort: (SortKey::Created, true),
            pattern: None,
            filters: Vec::new(),
        }
    }
}
