//! The store: the one way the rest of the server reaches users, metadata and any later table.
//!
//! [`Store`] is what routes, sign-in, fixtures and commands hold. It runs work given as a
//! closure over [`Ops`] (the operations one connection or transaction offers) on a [`Backend`].
//! A backend is a trait object rather than an enum so that a second one (PostgreSQL) is one new
//! module implementing two traits, with no match to extend anywhere else; the indirect call
//! costs nanoseconds next to a query. SQLite ([`sqlite`]) is the default, and what makes it
//! fast (a read on the calling worker when a connection is free, the commit counter and
//! wal-index watch behind the `GET /user` memory) stays inside it. PostgreSQL ([`postgres`],
//! `database.url`) serves several replicas of the server on one database; it also keeps the
//! brute-force counters ([`Counters`]) that replicas share.
//!
//! Errors are the store's own ([`StoreError`]); `crate::error` turns them into HTTP answers.

pub mod memory;
pub mod outbox;
mod postgres;
mod sqlite;
pub mod users;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::domain::UserId;
use crate::settings::DatabaseSettings;
use users::{ListQuery, User};

/// Which unique field a write collided with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    Username,
    Email,
    Id,
}

impl Taken {
    /// What a client is told (the engine's wording for the first two).
    pub fn message(self) -> &'static str {
        match self {
            Taken::Username => "Username already taken",
            Taken::Email => "Email already taken",
            Taken::Id => "A user with this id already exists",
        }
    }
}

/// What can go wrong in the store, by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique field already belongs to another record.
    #[error("{}", .0.message())]
    Taken(Taken),
    /// The user the operation is about is not stored.
    #[error("not found")]
    NotFound,
    /// The database cannot answer now (busy, locked, no connection in time); worth a retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// What is stored cannot be read (a damaged file, a row that does not parse).
    #[error("database corrupt: {0}")]
    Corrupt(String),
    /// The caller's work failed and its transaction was rolled back (its own error is
    /// returned to it; this value never leaves [`Store`]).
    #[error("rolled back")]
    RolledBack,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl StoreError {
    pub fn other(e: impl Into<anyhow::Error>) -> Self {
        StoreError::Other(e.into())
    }
}

/// How a user is looked up.
#[derive(Debug, Clone, Copy)]
pub enum Lookup<'a> {
    Id(&'a UserId),
    Username(&'a str),
    /// Compared without regard to case (`Email::key_of`).
    Email(&'a str),
}

/// What one connection (or one transaction) of a backend can do.
pub trait Ops {
    fn find_user(&mut self, by: Lookup<'_>) -> Result<Option<User>, StoreError>;
    /// Fails with [`StoreError::Taken`] when the id, username or email is someone's.
    fn insert_user(&mut self, user: &User) -> Result<(), StoreError>;
    /// Writes every field of `user` over the stored user with its id; false when none is.
    fn replace_user(&mut self, user: &User) -> Result<bool, StoreError>;
    /// Sets a password hash and mtime, and with `tokens_since` refuses every token of the user
    /// issued so far: from then on only tokens issued at or after that second, or after the
    /// previous such second, whichever is later, count. False when the user is not stored.
    fn set_password_hash(
        &mut self,
        id: &UserId,
        hash: &str,
        mtime: i64,
        tokens_since: Option<i64>,
    ) -> Result<bool, StoreError>;
    /// Replaces the user's hash with `new` if it is still `old` (a sign-in's upgrade to bcrypt
    /// must not undo a password change made meanwhile); nothing else changes, mtime included.
    fn upgrade_password_hash(
        &mut self,
        id: &UserId,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError>;
    /// Refuses every token of the user issued so far, as `set_password_hash` does; the second
    /// from which tokens count now, or `None` when the user is not stored.
    fn revoke_tokens(
        &mut self,
        id: &UserId,
        since: i64,
        mtime: i64,
    ) -> Result<Option<i64>, StoreError>;
    /// False when the user was not stored.
    fn delete_user(&mut self, id: &UserId) -> Result<bool, StoreError>;
    /// Deletes every user whose id is not in `keep`; how many went.
    fn delete_users_except(&mut self, keep: &[UserId]) -> Result<usize, StoreError>;
    /// The same for a long list, taken one id at a time (an import's `--replace` of a
    /// million users).
    fn delete_users_except_each(
        &mut self,
        keep: &mut dyn Iterator<Item = UserId>,
    ) -> Result<usize, StoreError>;
    fn list_users(&mut self, q: &ListQuery) -> Result<Vec<User>, StoreError>;
    /// How many users match `q`'s pattern and filters (its order and page do not matter).
    fn count_users(&mut self, q: &ListQuery) -> Result<u64, StoreError>;
    /// Every user in creation order, one at a time.
    fn each_user(
        &mut self,
        each: &mut dyn FnMut(User) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    fn meta(&mut self, key: &str) -> Result<Option<String>, StoreError>;
    fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError>;
    /// Stores `value` under `key` unless a value is there; answers the stored one.
    fn meta_or_insert(&mut self, key: &str, value: &str) -> Result<String, StoreError>;

    /// Every system configuration key stored through `/config`, by key.
    fn config_all(&mut self) -> Result<Vec<(String, String)>, StoreError>;
    fn config_get(&mut self, key: &str) -> Result<Option<String>, StoreError>;
    /// Stores or replaces a key.
    fn config_set(&mut self, key: &str, value: &str) -> Result<(), StoreError>;
    /// False when the key was not stored.
    fn config_delete(&mut self, key: &str) -> Result<bool, StoreError>;

    /// Stores a forgot-password code's hash for a user (replacing the user's earlier code) and
    /// forgets expired codes of anyone.
    fn reset_code_put(
        &mut self,
        user: &UserId,
        code_hash: &str,
        created: i64,
        expires: i64,
    ) -> Result<(), StoreError>;
    /// The same work as [`Ops::reset_code_put`] leaving nothing behind: an unknown address costs
    /// what a known one does.
    fn reset_code_decoy(&mut self, code_hash: &str, now: i64) -> Result<(), StoreError>;
    /// The user of a code that is good at `now`, without using it.
    fn reset_code_peek(&mut self, code_hash: &str, now: i64) -> Result<Option<UserId>, StoreError>;
    /// Uses a code that is good at `now`: its user, and the code is gone.
    fn reset_code_take(&mut self, code_hash: &str, now: i64) -> Result<Option<UserId>, StoreError>;

    /// Records a message to send.
    fn outbox_add(&mut self, message: &outbox::Message) -> Result<(), StoreError>;
    /// Takes up to `limit` pending messages due at `now` and leases them until `lease_until`
    /// (a claim another worker or process skips until then; a crash lets the lease run out
    /// and the message is sent again). Each comes with its attempt count, this one included.
    fn outbox_claim(
        &mut self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<outbox::Message>, StoreError>;
    /// Settles a claimed message: delivered, retried at a time, or abandoned.
    fn outbox_settle(&mut self, id: &str, outcome: &outbox::Settle) -> Result<(), StoreError>;
    /// Replaces a settled message's body (one that held a secret, such as a reset code).
    fn outbox_redact(&mut self, id: &str) -> Result<(), StoreError>;
    /// The newest `limit` messages, newest last (for the fixture API's inbox).
    fn outbox_recent(&mut self, limit: u32) -> Result<Vec<outbox::Message>, StoreError>;
    /// Forgets settled messages created before `before`; how many went.
    fn outbox_prune(&mut self, before: i64) -> Result<usize, StoreError>;
    /// The earliest time a pending message is due, if any is.
    fn outbox_next_due(&mut self) -> Result<Option<i64>, StoreError>;

    /// The stored users among `ids`, in any order: one query where the backend is across a
    /// network (an import asks for its records a chunk at a time).
    fn find_users_by_id(&mut self, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(user) = self.find_user(Lookup::Id(id))? {
                found.push(user);
            }
        }
        Ok(found)
    }

    /// Inserts `users` in order, each as [`Ops::insert_user`] would, in one statement where
    /// the backend is across a network. On failure: the index of the first user that could
    /// not be inserted and why; the caller then rolls the transaction back.
    fn insert_users(&mut self, users: &[User]) -> Result<(), (usize, StoreError)> {
        for (i, user) in users.iter().enumerate() {
            self.insert_user(user).map_err(|e| (i, e))?;
        }
        Ok(())
    }

    /// Makes the rest of this transaction wait for any other process doing the same (the
    /// declared users, applied by replicas starting at once). SQLite's write transactions
    /// already take the one write lock: nothing more to do there.
    fn lock_exclusive(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Many writes follow in this transaction (an import): the backend may stop keeping its
    /// search indexes in step row by row, until [`Ops::bulk_end`], in the same transaction,
    /// brings them up to date at once.
    fn bulk_begin(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    fn bulk_end(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl dyn Ops + '_ {
    pub fn find_by_id(&mut self, id: &UserId) -> Result<Option<User>, StoreError> {
        self.find_user(Lookup::Id(id))
    }

    pub fn find_by_username(&mut self, username: &str) -> Result<Option<User>, StoreError> {
        self.find_user(Lookup::Username(username))
    }

    pub fn find_by_email(&mut self, email: &str) -> Result<Option<User>, StoreError> {
        self.find_user(Lookup::Email(email))
    }

    /// The user a person names: by id, else username, else email.
    pub fn find_by_any(&mut self, key: &str) -> Result<Option<User>, StoreError> {
        if let Ok(id) = UserId::parse(key)
            && let Some(user) = self.find_by_id(&id)?
        {
            return Ok(Some(user));
        }
        if let Some(user) = self.find_by_username(key)? {
            return Ok(Some(user));
        }
        self.find_by_email(key)
    }

    /// The user with this id, or [`StoreError::NotFound`].
    pub fn get(&mut self, id: &UserId) -> Result<User, StoreError> {
        self.find_by_id(id)?.ok_or(StoreError::NotFound)
    }

    /// Which of username and email is someone's already (checked before paying for a hash;
    /// the unique indexes still decide races).
    pub fn taken(&mut self, username: &str, email: &str) -> Result<Option<Taken>, StoreError> {
        if self.find_by_username(username)?.is_some() {
            return Ok(Some(Taken::Username));
        }
        if self.find_by_email(email)?.is_some() {
            return Ok(Some(Taken::Email));
        }
        Ok(None)
    }

    /// The token secret kept in the store: `fresh` the first time, the same value after.
    pub fn jwt_secret(&mut self, fresh: &str) -> Result<String, StoreError> {
        self.meta_or_insert(JWT_SECRET_KEY, fresh)
    }
}

/// The metadata key of the token secret.
pub const JWT_SECRET_KEY: &str = "jwt_secret";

/// A closure given to a backend: runs on one connection or transaction.
pub type Work<'a> = &'a mut dyn FnMut(&mut dyn Ops) -> Result<(), StoreError>;

/// A database the store can run on. Every method blocks; [`Store`] moves them off the
/// request workers.
pub trait Backend: Send + Sync + fmt::Debug {
    /// Runs `work` on a connection, each statement seeing committed data.
    fn read(&self, work: Work<'_>) -> Result<(), StoreError>;
    /// Runs `work` in one transaction, committed (durably) when it returns `Ok`, rolled back
    /// otherwise.
    fn write(&self, work: Work<'_>) -> Result<(), StoreError>;
    /// [`Backend::read`], but only if it needs no waiting at all (a free connection, no lock to
    /// wait for): `None`, or [`StoreError::Unavailable`], when it would wait. Short reads are
    /// cheaper done in place than handed to another thread.
    fn read_now(&self, _work: Work<'_>) -> Option<Result<(), StoreError>> {
        None
    }
    /// A value that changes with every committed change, by anyone; `None` when that cannot be
    /// told (then nothing is remembered between requests).
    fn version(&self) -> Option<memory::Version> {
        None
    }
    /// Failure counters shared with every other process on this database; `None` when the
    /// server is the only one (then they are kept in memory).
    fn counters(&self) -> Option<&dyn Counters> {
        None
    }
}

/// What a brute-force counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CounterKind {
    Name = 0,
    Address = 1,
}

/// One counter: a name (as a keyed hash) or an address, in 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CounterKey {
    pub kind: CounterKind,
    pub bytes: [u8; 16],
}

/// Most counters of each kind kept in the database (as many as the in-memory tables keep).
pub const COUNTERS_KEPT: usize = 65_536;

/// Brute-force counters every replica sees. Times are milliseconds since the epoch (replicas
/// share a clock through NTP, as token expiry already needs); a counter's window began at its
/// `since`, and it is locked while it holds at least `max` failures in its window.
pub trait Counters: Send + Sync {
    /// Charges each `(key, n)`, all or nothing: with `check`, nothing is charged when any of
    /// them is locked, and the answer is the seconds until the latest of those locks ends.
    /// Otherwise the window start of each key, in the order given (for `uncharge`).
    fn charge(
        &self,
        keys: &[(CounterKey, u32)],
        check: bool,
        max: u32,
        window_ms: i64,
        now_ms: i64,
    ) -> Result<Result<Vec<i64>, u64>, StoreError>;
    /// Seconds until `key` may try again, if it is locked now.
    fn locked(
        &self,
        key: CounterKey,
        max: u32,
        window_ms: i64,
        now_ms: i64,
    ) -> Result<Option<u64>, StoreError>;
    /// Takes back `n` failures charged to the window that began at `since`.
    fn uncharge(&self, key: CounterKey, since: i64, n: u32) -> Result<(), StoreError>;
    fn remove(&self, keys: &[CounterKey]) -> Result<(), StoreError>;
    fn clear(&self) -> Result<(), StoreError>;
    /// How many names and addresses are counted.
    fn counted(&self) -> Result<(u64, u64), StoreError>;
}

/// The stored `/config` keys and values, by key.
pub type ConfigKeys = Arc<Vec<(String, String)>>;

/// The store: a backend, and the memory of `GET /user` answers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Arc<dyn Backend>,
    answers: Arc<memory::Answers>,
    /// The stored `/config` keys, with the version they were read at.
    config: Arc<std::sync::Mutex<Option<(memory::Version, ConfigKeys)>>>,
}

impl Store {
    /// Opens (creating and migrating when needed) the database the settings name.
    pub fn open(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        let backend: Arc<dyn Backend> = if settings.postgres_url().is_some() {
            // The blocking PostgreSQL client runs its own small runtime per connection, which
            // must not start inside another (the server calls this from its runtime).
            off_runtime(|| postgres::Postgres::open(settings))?.map(Arc::new)?
        } else {
            Arc::new(sqlite::Sqlite::open(settings)?)
        };
        let answers = memory::Answers::new(backend.version().is_some());
        Ok(Self {
            backend,
            answers: Arc::new(answers),
            config: Arc::default(),
        })
    }

    /// Runs `work` and answers what it answers; blocks (commands, start-up).
    pub fn read_blocking<T>(
        &self,
        mut work: impl FnMut(&mut dyn Ops) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut out = None;
        self.backend.read(&mut |ops| {
            out = Some(work(ops)?);
            Ok(())
        })?;
        out.ok_or_else(|| StoreError::other(anyhow::anyhow!("read gave no answer")))
    }

    /// Runs `work` in one transaction: committed when it answers `Ok`, rolled back when it
    /// answers its own error (which is returned) or the store fails; blocks.
    pub fn write_blocking<T, E: From<StoreError>>(
        &self,
        work: impl FnOnce(&mut dyn Ops) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut work = Some(work);
        let mut out: Option<Result<T, E>> = None;
        let done = self.backend.write(&mut |ops| {
            let work = work
                .take()
                .ok_or_else(|| StoreError::other(anyhow::anyhow!("write work ran twice")))?;
            match work(ops) {
                Ok(t) => {
                    out = Some(Ok(t));
                    Ok(())
                }
                Err(e) => {
                    out = Some(Err(e));
                    Err(StoreError::RolledBack)
                }
            }
        });
        match (done, out) {
            (Ok(()), Some(answer)) | (Err(StoreError::RolledBack), Some(answer @ Err(_))) => answer,
            (Err(e), _) => Err(e.into()),
            (Ok(()), None) => {
                Err(StoreError::other(anyhow::anyhow!("write gave no answer")).into())
            }
        }
    }

    /// [`Store::read_blocking`] for a request: in place when the backend can do it without
    /// waiting, else on the blocking pool.
    pub async fn read<T: Send + 'static>(
        &self,
        mut work: impl FnMut(&mut dyn Ops) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let mut out = None;
        match self.backend.read_now(&mut |ops| {
            out = Some(work(ops)?);
            Ok(())
        }) {
            Some(Ok(())) => {
                if let Some(answer) = out {
                    return Ok(answer);
                }
            }
            None | Some(Err(StoreError::Unavailable(_))) => {}
            Some(Err(e)) => return Err(e),
        }
        let store = self.clone();
        blocking(move || store.read_blocking(work)).await?
    }

    /// [`Store::write_blocking`] for a request, on the blocking pool.
    pub async fn write<T, E>(
        &self,
        work: impl FnOnce(&mut dyn Ops) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let store = self.clone();
        blocking(move || store.write_blocking(work)).await?
    }

    /// The user with this id, or [`StoreError::NotFound`].
    pub async fn user(&self, id: UserId) -> Result<User, StoreError> {
        self.read(move |ops| ops.get(&id)).await
    }

    /// What every token check and `GET /user` need of a user (its public JSON, and the second
    /// before which its tokens are refused), remembered while nothing is committed.
    pub async fn user_entry(&self, id: &UserId) -> Result<memory::Entry, StoreError> {
        let seen = self.backend.version();
        if let Some(entry) = seen.and_then(|v| self.answers.remembered(id, v)) {
            return Ok(entry);
        }
        let user = self.user(id.clone()).await?;
        let entry = memory::Entry {
            json: bytes::Bytes::from(
                serde_json::to_vec(&user.public()).map_err(StoreError::other)?,
            ),
            tokens_since: user.tokens_since,
        };
        if let Some(seen) = seen
            && self.backend.version() == Some(seen)
        {
            self.answers.put(id.clone(), seen, entry.clone());
        }
        Ok(entry)
    }

    /// The system configuration keys stored through `/config`: read again only after a
    /// commit (by anyone) when the backend can tell, else on every call.
    pub async fn config(&self) -> Result<ConfigKeys, StoreError> {
        let seen = self.backend.version();
        if let Some(seen) = seen
            && let Ok(cached) = self.config.lock()
            && let Some((version, keys)) = cached.as_ref()
            && *version == seen
        {
            return Ok(keys.clone());
        }
        let keys = Arc::new(self.read(|ops| ops.config_all()).await?);
        if let Some(seen) = seen
            && self.backend.version() == Some(seen)
            && let Ok(mut cached) = self.config.lock()
        {
            *cached = Some((seen, keys.clone()));
        }
        Ok(keys)
    }

    /// Whether `GET /user` answers are remembered (the backend can tell when they go stale).
    pub fn remembers_answers(&self) -> bool {
        self.answers.is_on()
    }

    /// The brute-force counters every replica shares, when the database is shared.
    pub fn counters(&self) -> Option<&dyn Counters> {
        self.backend.counters()
    }

    /// Runs `work` on the shared counters, on the blocking pool (PostgreSQL only; an error
    /// elsewhere).
    pub async fn with_counters<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn Counters) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        blocking(move || match store.backend.counters() {
            Some(c) => work(c),
            None => Err(StoreError::other(anyhow::anyhow!(
                "this database keeps no shared counters"
            ))),
        })
        .await?
    }

    /// Runs blocking store work, moved to a plain thread when the caller is on an async
    /// runtime (start-up, tests), where PostgreSQL's blocking client may not run.
    pub fn off_runtime<T: Send>(work: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
        off_runtime(work)
    }
}

/// A new, empty schema on the PostgreSQL server at `url`, and the URL that uses it (tests
/// share one server, each in its own schema).
pub fn new_postgres_schema(url: &str) -> anyhow::Result<String> {
    off_runtime(|| postgres::new_schema(url))?
}

/// Runs `work` on a plain thread when called from inside an async runtime, else in place.
fn off_runtime<T: Send>(work: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Ok(work());
    }
    std::thread::scope(|s| {
        s.spawn(work)
            .join()
            .map_err(|_| anyhow::anyhow!("store work panicked"))
    })
}

/// Runs blocking store work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(StoreError::other)
}

/// A consistent copy of the live database into a new file `to`; how many users it holds.
pub fn backup(settings: &DatabaseSettings, to: &Path) -> Result<u64, StoreError> {
    sqlite::backup(Path::new(&settings.path), to)
}

/// How long a writer waits for another writer (the server, or a command on the same file).
pub use sqlite::BUSY_TIMEOUT_MS;
