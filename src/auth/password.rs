//! Password hashing and checking off the HTTP workers (bcrypt for new hashes; any scheme of
//! `hashes` for checks), bounded so a sign-in flood cannot starve the server.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

use crate::domain::Password;
use crate::error::ApiError;

/// Hashes and verifies passwords. At most `concurrency` hashes run at once (one per core by
/// default); at most `queue` more wait for a slot, and beyond that callers get 503 at once
/// instead of piling up.
pub struct PasswordHasher {
    cost: u32,
    /// Verified against when a sign-in names no known user, so that case costs the same
    /// bcrypt work as a wrong password and cannot be told apart by timing.
    dummy_hash: String,
    slots: Semaphore,
    waiting: AtomicUsize,
    queue: usize,
    verifications: AtomicUsize,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("cost", &self.cost)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    pub fn new(cost: u32, concurrency: usize, queue: usize) -> anyhow::Result<Self> {
        // A well-formed hash of a random password at the configured cost. It is made at the
        // cheapest cost and relabelled, so start-up does not pay for a full hash; verifying
        // against it still does the full work of `cost` (and never matches).
        let random: [u8; 16] = rand::random();
        let cheap = bcrypt::hash(random, 4)?;
        let dummy_hash = cheap.replacen("$04$", &format!("${cost:02}$"), 1);
        Ok(Self {
            cost,
            dummy_hash,
            slots: Semaphore::new(concurrency.max(1)),
            waiting: AtomicUsize::new(0),
            queue,
            verifications: AtomicUsize::new(0),
        })
    }

    /// Hashes a new password. `Password` holds at most 72 bytes, all of which bcrypt reads, so
    /// nothing is ever cut off. (The crate's `non_truncating_*` functions refuse exactly 72
    /// bytes because the C string's terminator would not fit; no password byte is lost then.)
    pub async fn hash(&self, password: Password) -> Result<String, ApiError> {
        let cost = self.cost;
        self.run(move || bcrypt::hash(password.expose(), cost))
            .await?
            .map_err(ApiError::internal)
    }

    /// Checks a password against a stored hash, or against the dummy hash when there is none.
    /// Returns false for an unknown user, a wrong password or an unreadable stored hash.
    pub async fn verify(&self, password: Password, hash: Option<String>) -> Result<bool, ApiError> {
        Ok(self
            .verify_each(password, vec![hash])
            .await?
            .first()
            .is_some_and(|&ok| ok))
    }

    /// Checks a password against each of `hashes` in turn, the dummy hash standing in for a
    /// missing one, and answers which matched. Every one is checked, whatever the earlier
    /// ones gave, so the time depends only on how many there are.
    pub async fn verify_each(
        &self,
        password: Password,
        hashes: Vec<Option<String>>,
    ) -> Result<Vec<bool>, ApiError> {
        self.verifications
            .fetch_add(hashes.len(), Ordering::Relaxed);
        let dummy = self.dummy_hash.clone();
        let results = self
            .run(move || {
                hashes
                    .iter()
                    .map(|hash| {
                        // Any scheme `hashes::check` accepts (the dummy is bcrypt at the
                        // configured cost, what a user of this server has).
                        let ok = crate::auth::hashes::verify(
                            password.expose(),
                            hash.as_ref().unwrap_or(&dummy),
                        );
                        hash.is_some() && ok
                    })
                    .collect::<Vec<bool>>()
            })
            .await?;
        Ok(results)
    }

    /// How many verifications have run (the timing-equality tests count them).
    pub fn verifications(&self) -> usize {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Hashes waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = match self.slots.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                let waiting = WaitGuard::enter(&self.waiting);
                if waiting.position > self.queue {
                    return Err(ApiError::ServiceUnavailable(
                        "Server is busy, try again shortly".into(),
                    ));
                }
                self.slots.acquire().await.map_err(ApiError::internal)?
            }
        };
        let out = actix_web::web::block(work)
            .await
            .map_err(ApiError::internal)?;
        drop(permit);
        Ok(out)
    }
}

/// Counts a waiter for as long as it waits, even if its request is dropped.
struct WaitGuard<'a> {
    counter: &'a AtomicUsize,
    position: usize,
}

impl<'a> WaitGuard<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        let position = counter.fetch_add(1, Ordering::AcqRel) + 1;
        Self { counter, position }
    }
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
    }
}
