//! Brute-force limit on sign-in: after N failures within a window, per identifier and per
//! client address, answer 429 without doing any bcrypt work. Memory is bounded.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most identifiers (and, separately, addresses) remembered at once. Past it, expired entries
/// go first, then the oldest tenth, so a flood of random names cannot grow memory.
pub const CAPACITY: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    since: Instant,
}

#[derive(Debug)]
struct Window<K> {
    entries: HashMap<K, Entry>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone> Window<K> {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity,
        }
    }

    /// Seconds until `key` may try again, if it is locked out now.
    fn locked<Q>(&mut self, key: &Q, max: u32, window: Duration, now: Instant) -> Option<u64>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let e = self.entries.get(key)?;
        let age = now.duration_since(e.since);
        if age >= window {
            self.entries.remove(key);
            return None;
        }
        (e.failures >= max).then(|| (window - age).as_secs().max(1))
    }

    /// Counts `n` failures for `key` and answers when its current window began, which names
    /// the entry for `uncharge`.
    fn charge(&mut self, key: &K, n: u32, window: Duration, now: Instant) -> Instant {
        if let Some(e) = self.entries.get_mut(key) {
            if now.duration_since(e.since) >= window {
                *e = Entry {
                    failures: 0,
                    since: now,
                };
            }
            e.failures = e.failures.saturating_add(n);
            return e.since;
        }
        if self.entries.len() >= self.capacity {
            self.shrink(window, now);
        }
        self.entries.insert(
            key.clone(),
            Entry {
                failures: n,
                since: now,
            },
        );
        now
    }

    /// Takes back `n` failures charged to the window that began at `since`. A window that has
    /// since ended or been forgotten keeps the failures of its successor.
    fn uncharge(&mut self, key: &K, since: Instant, n: u32) {
        if let Some(e) = self.entries.get_mut(key)
            && e.since == since
        {
            e.failures = e.failures.saturating_sub(n);
            if e.failures == 0 {
                self.entries.remove(key);
            }
        }
    }

    fn shrink(&mut self, window: Duration, now: Instant) {
        self.entries
            .retain(|_, e| now.duration_since(e.since) < window);
        if self.entries.len() >= self.capacity {
            let mut ages: Vec<Instant> = self.entries.values().map(|e| e.since).collect();
            ages.sort_unstable();
            let cut = ages[(self.capacity / 10).max(1).min(ages.len() - 1)];
            self.entries.retain(|_, e| e.since > cut);
        }
    }

    fn remove(&mut self, key: &K) {
        self.entries.remove(key);
    }
}

/// The limiter shared by every worker.
#[derive(Debug)]
pub struct Limiter {
    max: u32,
    window: Duration,
    identifiers: Mutex<Window<String>>,
    addresses: Mutex<Window<IpAddr>>,
}

/// An attempt let through: tell the limiter how it ended. Holds what it charged, and to which
/// window.
#[derive(Debug)]
pub struct Attempt {
    identifiers: Vec<(String, Instant)>,
    address: Option<(IpAddr, Instant)>,
    guesses: u32,
}

impl Limiter {
    /// `max` failures per `window`; `max = 0` turns the limiter off.
    pub fn new(max: u32, window: Duration) -> Self {
        Self::with_capacity(max, window, CAPACITY)
    }

    pub fn with_capacity(max: u32, window: Duration, capacity: usize) -> Self {
        Self {
            max,
            window,
            identifiers: Mutex::new(Window::new(capacity)),
            addresses: Mutex::new(Window::new(capacity)),
        }
    }

    pub fn enabled(&self) -> bool {
        self.max > 0
    }

    /// Lets an attempt on the given identifiers through, or answers the seconds to wait when
    /// the address or any identifier is locked out. The attempt counts as a failure until told
    /// otherwise (so a burst of concurrent guesses is counted before any of them finishes):
    /// one for each distinct identifier, and `guesses` (at least one) for the address.
    pub fn begin(
        &self,
        identifiers: &[&str],
        guesses: u32,
        address: Option<IpAddr>,
    ) -> Result<Attempt, u64> {
        if !self.enabled() {
            // Nothing charged, so nothing for `succeeded` to take back.
            return Ok(Attempt {
                identifiers: Vec::new(),
                address: None,
                guesses: 0,
            });
        }
        let mut names: Vec<&str> = Vec::with_capacity(identifiers.len());
        for &id in identifiers {
            if !names.contains(&id) {
                names.push(id);
            }
        }
        let guesses = guesses.max(1);
        let now = Instant::now();
        let mut addrs = self.addresses.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(addr) = &address
            && let Some(wait) = addrs.locked(addr, self.max, self.window, now)
        {
            return Err(wait);
        }
        let mut ids = self.identifiers.lock().unwrap_or_else(|e| e.into_inner());
        let wait = names
            .iter()
            .filter_map(|&id| ids.locked(id, self.max, self.window, now))
            .max();
        if let Some(wait) = wait {
            return Err(wait);
        }
        Ok(Attempt {
            identifiers: names
                .iter()
                .map(|&id| {
                    let id = id.to_owned();
                    let since = ids.charge(&id, 1, self.window, now);
                    (id, since)
                })
                .collect(),
            address: address.map(|a| (a, addrs.charge(&a, guesses, self.window, now))),
            guesses,
        })
    }

    /// The attempt succeeded through `matched` (one of its identifiers): that identifier's
    /// count starts again. The others, and the address, are not charged for it; they keep the
    /// failures they had, so naming a victim beside one's own account resets nothing.
    pub fn succeeded(&self, attempt: Attempt, matched: &str) {
        if !self.enabled() {
            return;
        }
        {
            let mut ids = self.identifiers.lock().unwrap_or_else(|e| e.into_inner());
            for (id, since) in &attempt.identifiers {
                if id == matched {
                    ids.remove(id);
                } else {
                    ids.uncharge(id, *since, 1);
                }
            }
        }
        if let Some((addr, since)) = &attempt.address {
            self.addresses
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .uncharge(addr, *since, attempt.guesses);
        }
    }

    /// How many identifiers and addresses are remembered (for tests and metrics).
    pub fn len(&self) -> (usize, usize) {
        (
            self.identifiers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entries
                .len(),
            self.addresses
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entries
                .len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn an_identifier_is_locked_after_n_failures_and_freed_by_a_success_before() {
        let l = Limiter::new(3, MIN);
        for _ in 0..2 {
            l.begin(&["alice"], 1, None).unwrap();
        }
        // A success before the limit resets the count.
        let ok = l.begin(&["alice"], 1, None).unwrap();
        l.succeeded(ok, "alice");
        for _ in 0..3 {
            l.begin(&["alice"], 1, None).unwrap();
        }
        let wait = l.begin(&["alice"], 1, None).unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(l.begin(&["bob"], 1, None).is_ok());
    }

    #[test]
    fn an_attempt_naming_two_identifiers_charges_and_checks_both() {
        let l = Limiter::new(3, MIN);
        for _ in 0..3 {
            l.begin(&["u:x", "e:v"], 1, None).unwrap();
        }
        assert!(
            l.begin(&["e:v"], 1, None).is_err(),
            "the second identifier is counted"
        );
        assert!(
            l.begin(&["u:y", "e:v"], 1, None).is_err(),
            "a locked one refuses the pair"
        );
        assert!(l.begin(&["u:y"], 1, None).is_ok());
    }

    #[test]
    fn a_success_resets_only_the_identifier_that_matched() {
        let l = Limiter::new(3, MIN);
        for _ in 0..2 {
            l.begin(&["e:victim"], 1, None).unwrap();
        }
        // Signing in to one's own account while naming the victim's email as well: the own
        // count starts again, the victim's keeps its two failures and is not charged a third.
        for _ in 0..5 {
            let ok = l.begin(&["u:me", "e:victim"], 1, None).unwrap();
            l.succeeded(ok, "u:me");
        }
        l.begin(&["e:victim"], 1, None).unwrap();
        assert!(l.begin(&["e:victim"], 1, None).is_err());
    }

    #[test]
    fn a_name_given_twice_is_counted_once_and_the_address_its_guesses() {
        let l = Limiter::new(4, MIN);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        l.begin(&["x", "x"], 1, Some(ip)).unwrap();
        assert_eq!(l.len(), (1, 1));
        l.begin(&["y", "z"], 2, Some(ip)).unwrap();
        // 1 + 2 failures for the address: one more, then locked.
        l.begin(&["w"], 1, Some(ip)).unwrap();
        assert!(l.begin(&["v"], 1, Some(ip)).is_err());
    }

    #[test]
    fn a_success_takes_back_only_what_its_own_window_was_charged() {
        // Half a second for what follows the sleep: ample even on a loaded machine.
        let l = Limiter::new(3, Duration::from_millis(500));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let slow = l.begin(&["me", "victim"], 2, Some(ip)).unwrap();
        std::thread::sleep(Duration::from_millis(510));
        // A new window for the victim's name and the address: two failures in it.
        for _ in 0..2 {
            l.begin(&["victim"], 1, Some(ip)).unwrap();
        }
        // The attempt from the old window ends now; it must not cancel the new failures.
        l.succeeded(slow, "me");
        l.begin(&["victim"], 1, Some(ip)).unwrap();
        assert!(l.begin(&["victim"], 1, None).is_err());
        assert!(
            l.begin(&["other"], 1, Some(ip)).is_err(),
            "the address keeps its three"
        );
    }

    #[test]
    fn an_address_is_locked_across_identifiers() {
        let l = Limiter::new(3, MIN);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for name in ["a", "b", "c"] {
            l.begin(&[name], 1, Some(ip)).unwrap();
        }
        assert!(l.begin(&["d"], 1, Some(ip)).is_err());
        assert!(
            l.begin(&["d"], 1, Some("10.0.0.2".parse().unwrap()))
                .is_ok()
        );
    }

    #[test]
    fn a_zero_limit_never_locks() {
        let l = Limiter::new(0, MIN);
        for _ in 0..100 {
            l.begin(&["x"], 1, None).unwrap();
        }
        assert_eq!(l.len(), (0, 0));
    }

    #[test]
    fn a_flood_of_random_names_cannot_grow_memory_past_the_capacity() {
        let l = Limiter::with_capacity(10, MIN, 1000);
        for i in 0..50_000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            let _ = l.begin(&[&format!("user{i}")], 1, Some(ip));
        }
        let (ids, addrs) = l.len();
        assert!(ids <= 1000 && addrs <= 1000, "{ids} {addrs}");
    }

    #[test]
    fn the_window_expires() {
        let l = Limiter::new(1, Duration::from_millis(50));
        l.begin(&["x"], 1, None).unwrap();
        assert!(l.begin(&["x"], 1, None).is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert!(l.begin(&["x"], 1, None).is_ok());
    }
}
