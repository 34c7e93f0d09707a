//! The brute-force limit as requests use it: in this process's memory ([`Limiter`]) when the
//! server is alone on its database, or in the database ([`Counters`]) when replicas share it,
//! so that every replica counts the same failures.
//!
//! The rules are the same in both: an attempt is charged before its password check, refused
//! while any of its names or its address is locked, and told afterwards how it went.

use std::net::IpAddr;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::limiter::{AddressKey, Attempt, Checked, Limiter};
use crate::db::{CounterKey, CounterKind, Store, StoreError};

/// The metadata key of the key that hashes names in the shared counters.
const NAME_KEY: &str = "limiter_name_key";

#[derive(Debug)]
pub enum Limits {
    Local(Limiter),
    Shared(Shared),
}

/// Counters in the database: the store, and the key names are hashed with (kept in the
/// database, the same for every replica, never sent anywhere).
#[derive(Debug)]
pub struct Shared {
    store: Store,
    name_key: crate::domain::Secret,
    max: u32,
    window_ms: i64,
}

/// An attempt let through (see [`Limiter::begin`]).
#[derive(Debug)]
pub enum Pass {
    Local(Attempt),
    Shared {
        names: Vec<(CounterKey, i64)>,
        address: Option<(CounterKey, i64)>,
        guesses: u32,
    },
    /// The limit is off.
    Off,
}

fn now_ms() -> i64 {
    crate::db::users::now_ms()
}

impl Limits {
    /// `max` failures per `window` (`max = 0`: off), shared through the store when its
    /// database is shared.
    pub fn new(store: &Store, max: u32, window: Duration) -> Result<Self, StoreError> {
        if store.counters().is_none() || max == 0 {
            return Ok(Limits::Local(Limiter::new(max, window)));
        }
        let fresh = crate::secret::fresh();
        let key = store.write_blocking(|ops| ops.meta_or_insert(NAME_KEY, &fresh))?;
        Ok(Limits::Shared(Shared {
            store: store.clone(),
            name_key: crate::domain::Secret::new(key),
            max,
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
        }))
    }

    /// [`Limiter::begin`]: `Ok(Err(seconds))` when locked out.
    pub async fn begin(
        &self,
        names: &[&str],
        guesses: u32,
        address: Option<IpAddr>,
    ) -> Result<Result<Pass, u64>, StoreError> {
        match self {
            Limits::Local(l) => Ok(l.begin(names, guesses, address).map(Pass::Local)),
            Limits::Shared(s) => {
                let guesses = guesses.max(1);
                let mut keys: Vec<(CounterKey, u32)> = Vec::with_capacity(names.len() + 1);
                if let Some(ip) = address {
                    keys.push((address_key(ip), guesses));
                }
                for name in names {
                    let k = s.name(name);
                    if !keys.iter().any(|(have, _)| *have == k) {
                        keys.push((k, 1));
                    }
                }
                let (max, window_ms, now) = (s.max, s.window_ms, now_ms());
                let charged = keys.clone();
                let since = s
                    .store
                    .with_counters(move |c| c.charge(&charged, true, max, window_ms, now))
                    .await?;
                Ok(since.map(|since| {
                    let mut charged = keys.iter().zip(since).map(|((k, _), t)| (*k, t));
                    let address = address.and_then(|_| charged.next());
                    Pass::Shared {
                        names: charged.collect(),
                        address,
                        guesses,
                    }
                }))
            }
        }
    }

    /// [`Limiter::succeeded`].
    pub async fn succeeded(&self, pass: Pass, names: &[&str], checked: &[Checked]) {
        match (self, pass) {
            (Limits::Local(l), Pass::Local(a)) => l.succeeded(a, names, checked),
            (
                Limits::Shared(s),
                Pass::Shared {
                    names: charged,
                    address,
                    guesses,
                },
            ) => {
                let mut failed = 0u32;
                let mut undo = Vec::new();
                let mut forget = Vec::new();
                for (name, how) in names.iter().zip(checked) {
                    let key = s.name(name);
                    let Some((_, since)) = charged.iter().find(|(k, _)| *k == key) else {
                        continue;
                    };
                    match how {
                        Checked::Matched => forget.push(key),
                        Checked::Failed => failed += 1,
                        Checked::NoUser => undo.push((key, *since, 1)),
                    }
                }
                if let Some((k, since)) = address {
                    undo.push((k, since, guesses.saturating_sub(failed)));
                }
                s.settle(forget, undo).await;
            }
            _ => {}
        }
    }

    /// [`Limiter::abandon`].
    pub async fn abandon(&self, pass: Pass) {
        match (self, pass) {
            (Limits::Local(l), Pass::Local(a)) => l.abandon(a),
            (
                Limits::Shared(s),
                Pass::Shared {
                    names,
                    address,
                    guesses,
                },
            ) => {
                let mut undo: Vec<_> = names.into_iter().map(|(k, t)| (k, t, 1)).collect();
                if let Some((k, t)) = address {
                    undo.push((k, t, guesses));
                }
                s.settle(Vec::new(), undo).await;
            }
            _ => {}
        }
    }

    /// [`Limiter::address_locked`]; a database that does not answer is an error.
    pub async fn address_locked(&self, address: Option<IpAddr>) -> Result<Option<u64>, StoreError> {
        match self {
            Limits::Local(l) => Ok(l.address_locked(address)),
            Limits::Shared(s) => {
                let Some(ip) = address else { return Ok(None) };
                let (key, max, window_ms, now) = (address_key(ip), s.max, s.window_ms, now_ms());
                s.store
                    .with_counters(move |c| c.locked(key, max, window_ms, now))
                    .await
            }
        }
    }

    /// [`Limiter::charge_address`].
    pub async fn charge_address(&self, address: Option<IpAddr>) {
        match self {
            Limits::Local(l) => l.charge_address(address),
            Limits::Shared(s) => {
                let Some(ip) = address else { return };
                let (key, max, window_ms, now) = (address_key(ip), s.max, s.window_ms, now_ms());
                if let Err(e) = s
                    .store
                    .with_counters(move |c| c.charge(&[(key, 1)], false, max, window_ms, now))
                    .await
                {
                    log::warn!("brute-force counters: an address was not charged: {e}");
                }
            }
        }
    }

    /// [`Limiter::forgive`].
    pub async fn forgive(&self, names: &[&str]) {
        match self {
            Limits::Local(l) => l.forgive(names),
            Limits::Shared(s) => {
                let keys: Vec<CounterKey> = names.iter().map(|n| s.name(n)).collect();
                s.settle(keys, Vec::new()).await;
            }
        }
    }

    /// [`Limiter::clear`]: for every replica when they share the counters.
    pub async fn clear(&self) -> Result<(), StoreError> {
        match self {
            Limits::Local(l) => {
                l.clear();
                Ok(())
            }
            Limits::Shared(s) => s.store.with_counters(|c| c.clear()).await,
        }
    }

    /// How many names and addresses are counted.
    pub async fn counted(&self) -> Result<(u64, u64), StoreError> {
        match self {
            Limits::Local(l) => {
                let (n, a) = l.len();
                Ok((n as u64, a as u64))
            }
            Limits::Shared(s) => s.store.with_counters(|c| c.counted()).await,
        }
    }
}

impl Shared {
    /// A name as a counter: its HMAC under the shared key, so a name's length costs nothing
    /// and nobody outside can aim two names at one counter.
    fn name(&self, name: &str) -> CounterKey {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.name_key.expose().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(name.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        CounterKey {
            kind: CounterKind::Name,
            bytes,
        }
    }

    /// Forgets some counters and takes back charges; a failure leaves the failures counted
    /// (the safe side) and is logged.
    async fn settle(&self, forget: Vec<CounterKey>, undo: Vec<(CounterKey, i64, u32)>) {
        if forget.is_empty() && undo.iter().all(|(_, _, n)| *n == 0) {
            return;
        }
        let done = self
            .store
            .with_counters(move |c| {
                if !forget.is_empty() {
                    c.remove(&forget)?;
                }
                for (key, since, n) in &undo {
                    if *n > 0 {
                        c.uncharge(*key, *since, *n)?;
                    }
                }
                Ok(())
            })
            .await;
        if let Err(e) = done {
            log::warn!("brute-force counters: a charge was not taken back: {e}");
        }
    }
}

/// An address as a counter: IPv4 as itself, IPv6 by its /64 ([`AddressKey`]), in 16 bytes.
fn address_key(ip: IpAddr) -> CounterKey {
    let bytes = match AddressKey::of(ip).ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    CounterKey {
        kind: CounterKind::Address,
        bytes,
    }
}
