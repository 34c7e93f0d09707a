//! Brute-force limit on password checks: after N failures within a window, per name and per
//! client address, answer 429 without doing any bcrypt work.
//!
//! Memory is bounded in bytes, not only in entries: a name is kept as a 128-bit keyed hash
//! (whatever its length), an address as its /64 network for IPv6 or the address for IPv4, so
//! every entry has the same small size and [`CAPACITY`] entries take at most about 6.5 MiB per table (48 bytes an entry in a map kept at most 7/8 full).
//! A full table first forgets expired entries, then the ones with the fewest failures; a name
//! or address that is locked out is never forgotten before its window ends.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most names (and, separately, addresses) remembered at once.
pub const CAPACITY: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    since: Instant,
}

/// A name as the limiter keeps it: a keyed 128-bit hash, so a long name costs no more memory
/// than a short one and a collision cannot be aimed at from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct NameKey(u128);

/// An address as the limiter counts it: IPv4 as itself, IPv6 by its /64 (one subscriber's
/// network: a client that owns a /64 must not get 2^64 fresh addresses to guess from).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressKey(IpAddr);

impl AddressKey {
    /// The address or network counted.
    pub fn ip(self) -> IpAddr {
        self.0
    }

    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let bits = u128::from(v6) & !((1u128 << 64) - 1);
                    Self(IpAddr::V6(Ipv6Addr::from(bits)))
                }
            },
        }
    }
}

#[derive(Debug)]
struct Window<K> {
    entries: HashMap<K, Entry>,
    capacity: usize,
}

impl<K: std::hash::Hash + Eq + Copy> Window<K> {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Seconds until `key` may try again, if it is locked out now.
    fn locked(&mut self, key: &K, max: u32, window: Duration, now: Instant) -> Option<u64> {
        let e = self.entries.get(key)?;
        let age = now.duration_since(e.since);
        if age >= window {
            self.entries.remove(key);
            return None;
        }
        (e.failures >= max).then(|| (window - age).as_secs().max(1))
    }

    /// Counts `n` failures for `key` and answers when its current window began, which names
    /// the entry for `uncharge`. A full table of locked entries cannot take a new key: then
    /// the answer is the seconds until the first of them ends, and nothing is charged.
    fn charge(
        &mut self,
        key: &K,
        n: u32,
        max: u32,
        window: Duration,
        now: Instant,
    ) -> Result<Instant, u64> {
        if let Some(e) = self.entries.get_mut(key) {
            if now.duration_since(e.since) >= window {
                *e = Entry {
                    failures: 0,
                    since: now,
                };
            }
            e.failures = e.failures.saturating_add(n);
            return Ok(e.since);
        }
        if self.entries.len() >= self.capacity {
            self.shrink(max, window, now)?;
        }
        self.entries.insert(
            *key,
            Entry {
                failures: n,
                since: now,
            },
        );
        Ok(now)
    }

    /// Takes back `n` failures charged to the window that began at `since`. A window that has
    /// since ended or been forgotten keeps the failures of its successor.
    fn uncharge(&mut self, key: &K, since: Instant, n: u32) {
        if n == 0 {
            return;
        }
        if let Some(e) = self.entries.get_mut(key)
            && e.since == since
        {
            e.failures = e.failures.saturating_sub(n);
            if e.failures == 0 {
                self.entries.remove(key);
            }
        }
    }

    /// Makes room: expired entries go first, then about a tenth of the table, those with the
    /// fewest failures (oldest first among equals). Locked entries stay: a flood of fresh
    /// names must not unlock a victim. Fails when every entry is locked.
    fn shrink(&mut self, max: u32, window: Duration, now: Instant) -> Result<(), u64> {
        self.entries
            .retain(|_, e| now.duration_since(e.since) < window);
        if self.entries.len() < self.capacity {
            return Ok(());
        }
        let mut open: Vec<(u32, Instant)> = self
            .entries
            .values()
            .filter(|e| e.failures < max)
            .map(|e| (e.failures, e.since))
            .collect();
        if open.is_empty() {
            let first_end = self
                .entries
                .values()
                .map(|e| window.saturating_sub(now.duration_since(e.since)))
                .min()
                .unwrap_or(window);
            log::warn!(
                "brute-force limiter: all {} entries are locked out; new names wait {}s",
                self.entries.len(),
                first_end.as_secs().max(1)
            );
            return Err(first_end.as_secs().max(1));
        }
        open.sort_unstable();
        let cut = open[(self.capacity / 10).max(1).min(open.len()) - 1];
        self.entries
            .retain(|_, e| e.failures >= max || (e.failures, e.since) > cut);
        Ok(())
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
    /// The keys of the name hash: random per process, so nobody can aim for a collision.
    hash_keys: (RandomState, RandomState),
    names: Mutex<Window<NameKey>>,
    addresses: Mutex<Window<AddressKey>>,
}

/// An attempt let through: tell the limiter how it ended ([`Limiter::succeeded`],
/// [`Limiter::abandon`]); dropped without either, its failures stay counted. Holds what it
/// charged, and to which window.
#[derive(Debug)]
pub struct Attempt {
    names: Vec<(NameKey, Instant)>,
    address: Option<(AddressKey, Instant)>,
    guesses: u32,
}

/// How an attempt that succeeded treats the names it charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// The password matched this name's user: its count starts again.
    Matched,
    /// The password was checked against a stored user of this name and did not match: a real
    /// guess at that account, so it keeps its failure whatever else succeeded.
    Failed,
    /// No stored user had this name: nobody was guessed at, the failure is taken back.
    NoUser,
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
            hash_keys: (RandomState::new(), RandomState::new()),
            names: Mutex::new(Window::new(capacity)),
            addresses: Mutex::new(Window::new(capacity)),
        }
    }

    pub fn enabled(&self) -> bool {
        self.max > 0
    }

    fn key(&self, name: &str) -> NameKey {
        let high = self.hash_keys.0.hash_one(name);
        let low = self.hash_keys.1.hash_one(name);
        NameKey((u128::from(high) << 64) | u128::from(low))
    }

    /// Lets an attempt on the given names through, or answers the seconds to wait when the
    /// address or any name is locked out. The attempt counts as a failure until told
    /// otherwise (so a burst of concurrent guesses is counted before any of them finishes):
    /// one for each distinct name, and `guesses` (at least one) for the address.
    pub fn begin(
        &self,
        names: &[&str],
        guesses: u32,
        address: Option<IpAddr>,
    ) -> Result<Attempt, u64> {
        if !self.enabled() {
            // Nothing charged, so nothing for `succeeded` to take back.
            return Ok(Attempt {
                names: Vec::new(),
                address: None,
                guesses: 0,
            });
        }
        let mut keys: Vec<NameKey> = Vec::with_capacity(names.len());
        for &name in names {
            let k = self.key(name);
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        let guesses = guesses.max(1);
        let address = address.map(AddressKey::of);
        let now = Instant::now();
        let mut addrs = self.addresses.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(addr) = &address
            && let Some(wait) = addrs.locked(addr, self.max, self.window, now)
        {
            return Err(wait);
        }
        let mut table = self.names.lock().unwrap_or_else(|e| e.into_inner());
        let wait = keys
            .iter()
            .filter_map(|k| table.locked(k, self.max, self.window, now))
            .max();
        if let Some(wait) = wait {
            return Err(wait);
        }
        let mut attempt = Attempt {
            names: Vec::with_capacity(keys.len()),
            address: None,
            guesses,
        };
        // Charged one by one; if a full table refuses one, what was charged is taken back.
        let refused = |attempt: &Attempt,
                       table: &mut Window<NameKey>,
                       addrs: &mut Window<AddressKey>,
                       wait: u64| {
            for (k, since) in &attempt.names {
                table.uncharge(k, *since, 1);
            }
            if let Some((a, since)) = &attempt.address {
                addrs.uncharge(a, *since, attempt.guesses);
            }
            Err(wait)
        };
        if let Some(addr) = address {
            match addrs.charge(&addr, guesses, self.max, self.window, now) {
                Ok(since) => attempt.address = Some((addr, since)),
                Err(wait) => return refused(&attempt, &mut table, &mut addrs, wait),
            }
        }
        for k in keys {
            match table.charge(&k, 1, self.max, self.window, now) {
                Ok(since) => attempt.names.push((k, since)),
                Err(wait) => return refused(&attempt, &mut table, &mut addrs, wait),
            }
        }
        Ok(attempt)
    }

    /// The attempt succeeded. `checked` says, for each name given to `begin` (same order),
    /// how the check against it went: the matched name's count starts again, a name whose
    /// stored user failed the check keeps its failure (so naming one's own account beside a
    /// victim's resets nothing and hides no guess), a name with no stored user is taken back.
    /// The address keeps one guess per failed name.
    pub fn succeeded(&self, attempt: Attempt, names: &[&str], checked: &[Checked]) {
        if !self.enabled() {
            return;
        }
        let mut failed = 0u32;
        {
            let mut table = self.names.lock().unwrap_or_else(|e| e.into_inner());
            for (name, how) in names.iter().zip(checked) {
                let key = self.key(name);
                let Some((_, since)) = attempt.names.iter().find(|(k, _)| *k == key) else {
                    continue;
                };
                match how {
                    Checked::Matched => table.remove(&key),
                    Checked::Failed => failed += 1,
                    Checked::NoUser => table.uncharge(&key, *since, 1),
                }
            }
        }
        if let Some((addr, since)) = &attempt.address {
            self.addresses
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .uncharge(addr, *since, attempt.guesses.saturating_sub(failed));
        }
    }

    /// The attempt never reached a password check (the hash queue was full, the database
    /// did not answer): nothing was guessed, so everything it charged is taken back. Without
    /// this, a flood of requests refused with 503 would lock names with no bcrypt work.
    pub fn abandon(&self, attempt: Attempt) {
        if !self.enabled() {
            return;
        }
        {
            let mut table = self.names.lock().unwrap_or_else(|e| e.into_inner());
            for (k, since) in &attempt.names {
                table.uncharge(k, *since, 1);
            }
        }
        if let Some((addr, since)) = &attempt.address {
            self.addresses
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .uncharge(addr, *since, attempt.guesses);
        }
    }

    /// Seconds until `address` may try again, if it is locked out now.
    pub fn address_locked(&self, address: Option<IpAddr>) -> Option<u64> {
        let addr = AddressKey::of(address?);
        if !self.enabled() {
            return None;
        }
        self.addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .locked(&addr, self.max, self.window, Instant::now())
    }

    /// Counts one failure against `address` alone (a request that told the client something
    /// it could use to guess, such as "Username already taken").
    pub fn charge_address(&self, address: Option<IpAddr>) {
        let Some(ip) = address else { return };
        if !self.enabled() {
            return;
        }
        let _ = self
            .addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .charge(
                &AddressKey::of(ip),
                1,
                self.max,
                self.window,
                Instant::now(),
            );
    }

    /// Forgets the counts and locks of these names (a password reset by its owner clears the
    /// user's failed sign-ins).
    pub fn forgive(&self, names: &[&str]) {
        if !self.enabled() {
            return;
        }
        let mut table = self.names.lock().unwrap_or_else(|e| e.into_inner());
        for name in names {
            table.remove(&self.key(name));
        }
    }

    /// Forgets every count and lock (the fixture API's way to unlock a developer's box
    /// without a restart).
    pub fn clear(&self) {
        self.names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .clear();
        self.addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .clear();
    }

    /// How many names and addresses are remembered (for tests and metrics).
    pub fn len(&self) -> (usize, usize) {
        (
            self.names
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
    fn a_name_is_locked_after_n_failures_and_freed_by_a_success_before() {
        let l = Limiter::new(3, MIN);
        for _ in 0..2 {
            l.begin(&["alice"], 1, None).unwrap();
        }
        // A success before the limit resets the count.
        let ok = l.begin(&["alice"], 1, None).unwrap();
        l.succeeded(ok, &["alice"], &[Checked::Matched]);
        for _ in 0..3 {
            l.begin(&["alice"], 1, None).unwrap();
        }
        let wait = l.begin(&["alice"], 1, None).unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(l.begin(&["bob"], 1, None).is_ok());
    }

    #[test]
    fn an_attempt_naming_two_names_charges_and_checks_both() {
        let l = Limiter::new(3, MIN);
        for _ in 0..3 {
            l.begin(&["u:x", "e:v"], 1, None).unwrap();
        }
        assert!(
            l.begin(&["e:v"], 1, None).is_err(),
            "the second name is counted"
        );
        assert!(
            l.begin(&["u:y", "e:v"], 1, None).is_err(),
            "a locked one refuses the pair"
        );
        assert!(l.begin(&["u:y"], 1, None).is_ok());
    }

    #[test]
    fn signing_in_to_ones_own_account_beside_a_victim_keeps_every_guess_at_the_victim() {
        // The bypass an adversarial review found: {username: VICTIM, email: OWN, password:
        // GUESS}. The victim's check failed, the own one matched: the victim keeps the failure.
        let l = Limiter::new(3, MIN);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let names = ["u:victim", "e:me"];
        for _ in 0..3 {
            let a = l.begin(&names, 2, Some(ip)).unwrap();
            l.succeeded(a, &names, &[Checked::Failed, Checked::Matched]);
        }
        assert!(l.begin(&["u:victim"], 1, None).is_err(), "victim locked");
        // The address kept one guess per failed check: three, so it is locked too.
        assert!(
            l.begin(&["u:other"], 1, Some(ip)).is_err(),
            "address locked"
        );
    }

    #[test]
    fn a_name_with_no_stored_user_is_taken_back_on_success() {
        // The sign-in page sends what a person typed as username and email; one of the two
        // usually names nobody. Signing in many times must not lock the person out.
        let l = Limiter::new(3, MIN);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let names = ["u:a@example.com", "e:a@example.com"];
        for _ in 0..10 {
            let a = l.begin(&names, 1, Some(ip)).unwrap();
            l.succeeded(a, &names, &[Checked::NoUser, Checked::Matched]);
        }
        assert_eq!(l.len(), (0, 0));
    }

    #[test]
    fn an_abandoned_attempt_charges_nothing() {
        let l = Limiter::new(2, MIN);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..10 {
            let a = l.begin(&["x"], 1, Some(ip)).unwrap();
            l.abandon(a);
        }
        assert_eq!(l.len(), (0, 0));
        assert!(l.begin(&["x"], 1, Some(ip)).is_ok());
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
        let names = ["me", "victim"];
        let slow = l.begin(&names, 2, Some(ip)).unwrap();
        std::thread::sleep(Duration::from_millis(510));
        // A new window for the victim's name and the address: two failures in it.
        for _ in 0..2 {
            l.begin(&["victim"], 1, Some(ip)).unwrap();
        }
        // The attempt from the old window ends now; it must not cancel the new failures.
        l.succeeded(slow, &names, &[Checked::Matched, Checked::NoUser]);
        l.begin(&["victim"], 1, Some(ip)).unwrap();
        assert!(l.begin(&["victim"], 1, None).is_err());
        assert!(
            l.begin(&["other"], 1, Some(ip)).is_err(),
            "the address keeps its three"
        );
    }

    #[test]
    fn an_address_is_locked_across_names() {
        let l = Limiter::new(3, MIN);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for name in ["a", "b", "c"] {
            l.begin(&[name], 1, Some(ip)).unwrap();
        }
        assert!(l.begin(&["d"], 1, Some(ip)).is_err());
        assert!(l.address_locked(Some(ip)).is_some());
        assert!(
            l.begin(&["d"], 1, Some("10.0.0.2".parse().unwrap()))
                .is_ok()
        );
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_network() {
        let l = Limiter::new(3, MIN);
        for i in 0..3u16 {
            let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 7, i, i, i, i));
            l.begin(&[&format!("n{i}")], 1, Some(ip)).unwrap();
        }
        let same_64: IpAddr = "2001:db8:0:7:ffff::1".parse().unwrap();
        let other_64: IpAddr = "2001:db8:0:8::1".parse().unwrap();
        assert!(l.begin(&["x"], 1, Some(same_64)).is_err());
        assert!(l.begin(&["x"], 1, Some(other_64)).is_ok());
        // An IPv4-mapped address is the IPv4 address.
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(AddressKey::of(mapped), AddressKey::of(v4));
    }

    #[test]
    fn charged_address_failures_lock_the_address() {
        let l = Limiter::new(3, MIN);
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        for _ in 0..3 {
            assert!(l.address_locked(Some(ip)).is_none());
            l.charge_address(Some(ip));
        }
        assert!(l.address_locked(Some(ip)).is_some());
    }

    #[test]
    fn a_zero_limit_never_locks() {
        let l = Limiter::new(0, MIN);
        for _ in 0..100 {
            l.begin(&["x"], 1, None).unwrap();
            l.charge_address(Some("10.0.0.1".parse().unwrap()));
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
        let (names, addrs) = l.len();
        assert!(names <= 1000 && addrs <= 1000, "{names} {addrs}");
    }

    #[test]
    fn a_flood_of_fresh_names_never_unlocks_a_victim_nor_forgets_its_count_first() {
        let l = Limiter::with_capacity(3, MIN, 1000);
        for _ in 0..3 {
            l.begin(&["locked-victim"], 1, None).unwrap();
        }
        for _ in 0..2 {
            l.begin(&["counted-victim"], 1, None).unwrap();
        }
        for i in 0..50_000u32 {
            let _ = l.begin(&[&format!("fresh{i}")], 1, None);
        }
        assert!(l.begin(&["locked-victim"], 1, None).is_err());
        // Entries with one failure went first: the victim's two are still there.
        l.begin(&["counted-victim"], 1, None).unwrap();
        assert!(l.begin(&["counted-victim"], 1, None).is_err());
    }

    #[test]
    fn a_table_full_of_locked_names_refuses_new_ones_until_a_window_ends() {
        let l = Limiter::with_capacity(1, MIN, 10);
        for i in 0..10 {
            l.begin(&[&format!("n{i}")], 1, None).unwrap();
        }
        let wait = l.begin(&["new"], 1, None).unwrap_err();
        assert!((1..=60).contains(&wait));
        assert_eq!(l.len().0, 10, "nothing was forgotten");
    }

    #[test]
    fn names_are_kept_as_fixed_size_keys() {
        let l = Limiter::new(2, MIN);
        let long_a = "a".repeat(60_000);
        let long_b = format!("{}b", "a".repeat(59_999));
        l.begin(&[&long_a], 1, None).unwrap();
        l.begin(&[&long_b], 1, None).unwrap();
        assert_eq!(l.len().0, 2, "two names, two keys");
        assert_eq!(std::mem::size_of::<NameKey>(), 16);
        // What the module's doc promises per entry, keys and counts together.
        assert!(std::mem::size_of::<(NameKey, Entry)>() <= 48);
        assert!(std::mem::size_of::<(AddressKey, Entry)>() <= 48);
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
