//! The answers of `GET /user`, remembered per user for as long as the store is unchanged.
//!
//! Reading a user costs more than everything else `GET /user` does, and most clients read the
//! same user again and again. An answer is tagged with the store's [`Version`] from before its
//! read began and served only while the version is still that one, so it never outlives a
//! committed change, whoever made it. The backend says what a version is (SQLite: a count of
//! this process's commits and the header of the shared wal-index); a backend that cannot tell
//! gives none, and nothing is remembered.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;

use crate::domain::UserId;

/// What the store looked like: equal versions, no commit in between. Opaque bytes that only
/// the backend that made them reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version(pub [u8; 64]);

/// Answers remembered at most, and their bytes at most (metadata can make one answer up to
/// 64 KiB); the memory is emptied when either would be passed.
const CAPACITY: usize = 10_000;
const CAPACITY_BYTES: usize = 8 << 20;

/// What is remembered of a user: the public JSON of `GET /user`, and the second before which
/// its tokens are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub json: Bytes,
    pub tokens_since: i64,
}

pub struct Answers {
    on: bool,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<UserId, (Version, Entry)>,
    bytes: usize,
}

impl std::fmt::Debug for Answers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answers")
            .field("on", &self.on)
            .finish_non_exhaustive()
    }
}

impl Answers {
    pub fn new(on: bool) -> Self {
        Self {
            on,
            entries: Mutex::default(),
        }
    }

    pub fn is_on(&self) -> bool {
        self.on
    }

    /// The answer remembered for `id`, if it was read at version `now`.
    pub fn remembered(&self, id: &UserId, now: Version) -> Option<Entry> {
        let entries = self.entries.lock().ok()?;
        let (version, entry) = entries.map.get(id)?;
        (*version == now).then(|| entry.clone())
    }

    /// Remembers `body`, read at version `seen` (the caller checks that the version has not
    /// moved since: then it may already be out of date).
    pub fn put(&self, id: UserId, seen: Version, entry: Entry) {
        if !self.on {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            let size = entry.json.len();
            if entries.map.len() >= CAPACITY || entries.bytes + size > CAPACITY_BYTES {
                entries.map.clear();
                entries.bytes = 0;
            }
            entries.bytes += size;
            if let Some((_, old)) = entries.map.insert(id, (seen, entry)) {
                entries.bytes -= old.json.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_served_only_at_the_version_it_was_read_at() {
        let answers = Answers::new(true);
        let id = UserId::generate();
        let (v1, v2) = (Version([1; 64]), Version([2; 64]));
        let entry = Entry {
            json: Bytes::from_static(b"{}"),
            tokens_since: 7,
        };
        answers.put(id.clone(), v1, entry.clone());
        assert_eq!(answers.remembered(&id, v1), Some(entry));
        assert_eq!(answers.remembered(&id, v2), None);
    }

    #[test]
    fn the_memory_is_bounded_in_bytes() {
        let answers = Answers::new(true);
        let big = Bytes::from(vec![b' '; 64 * 1024]);
        for _ in 0..500 {
            let entry = Entry {
                json: big.clone(),
                tokens_since: 0,
            };
            answers.put(UserId::generate(), Version([0; 64]), entry);
            let entries = answers.entries.lock().expect("lock");
            assert!(entries.bytes <= CAPACITY_BYTES);
            assert_eq!(entries.bytes, entries.map.len() * big.len());
        }
    }
}
