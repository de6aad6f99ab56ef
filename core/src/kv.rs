//! The small key-value interface the store is written against.
//!
//! It is exactly what Spin gives a component and no more: single-key get, set
//! and delete, batch get/delete, and an atomic `increment`. There are no
//! transactions, no prefix listing, and compare-and-swap is deliberately absent
//! (Spin's SQLite swap does not compare; its Redis swap may misreport): the
//! store builds everything from write-once keys and `increment`.
//!
//! [`MemoryKv`] is the native implementation for unit tests. Like Spin, it locks
//! each operation on its own, so a get-then-set by two threads really races.

use std::collections::HashMap;
use std::sync::Mutex;

/// A failure of the key-value store itself (not a missing key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key-value store: {0}")]
pub struct KvError(pub String);

/// A key-value store as Spin gives it to a component.
pub trait KeyValue {
    /// The value at `key`, if any.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    /// Set the value at `key`.
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError>;
    /// Delete `key` (a missing key is fine).
    fn delete(&self, key: &str) -> Result<(), KvError>;
    /// Atomically add `delta` to the integer at `key` (missing = 0) and return
    /// the new value. Read a counter with `increment(key, 0)`: counters are
    /// never read with `get`, since backends encode them differently.
    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError>;
    /// Values for `keys`, in order.
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        keys.iter().map(|k| self.get(k)).collect()
    }
    /// Delete `keys`.
    fn delete_many(&self, keys: &[String]) -> Result<(), KvError> {
        keys.iter().try_for_each(|k| self.delete(k))
    }
}

/// In-memory [`KeyValue`] for native tests, as weak as Spin's stores.
#[derive(Debug, Default)]
pub struct MemoryKv {
    map: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug, Clone)]
enum Entry {
    Bytes(Vec<u8>),
    Counter(i64),
}

impl MemoryKv {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock cannot leave a half-written entry.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of keys, for tests that check nothing was written.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of every key and value, for tests that compare before and after.
    pub fn snapshot(&self) -> Vec<(String, String)> {
        let mut all: Vec<_> = self
            .lock()
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Entry::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                    Entry::Counter(n) => format!("#{n}"),
                };
                (k.clone(), v)
            })
            .collect();
        all.sort();
        all
    }
}

impl Clone for MemoryKv {
    /// An independent copy of the store's contents: a fuzz target or a
    /// property test forks one seeded store per case.
    fn clone(&self) -> Self {
        MemoryKv { map: Mutex::new(self.lock().clone()) }
    }
}

impl KeyValue for MemoryKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(match self.lock().get(key) {
            Some(Entry::Bytes(b)) => Some(b.clone()),
            Some(Entry::Counter(n)) => Some(n.to_be_bytes().to_vec()),
            None => None,
        })
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.lock().insert(key.to_owned(), Entry::Bytes(value.to_vec()));
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.lock().remove(key);
        Ok(())
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        let mut map = self.lock();
        let current = match map.get(key) {
            None => 0,
            Some(Entry::Counter(n)) => *n,
            Some(Entry::Bytes(b)) => match <[u8; 8]>::try_from(b.as_slice()) {
                Ok(be) => i64::from_be_bytes(be),
                Err(_) => return Err(KvError(format!("value at {key} is not a counter"))),
            },
        };
        let next = current.checked_add(delta).ok_or_else(|| KvError(format!("counter at {key} would overflow")))?;
        map.insert(key.to_owned(), Entry::Counter(next));
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increment_creates_and_reads_counters() {
        let kv = MemoryKv::new();
        assert_eq!(kv.increment("n", 0).unwrap(), 0);
        assert_eq!(kv.increment("n", 5).unwrap(), 5);
        assert_eq!(kv.increment("n", -2).unwrap(), 3);
        kv.set("s", b"text").unwrap();
        assert!(kv.increment("s", 1).is_err());
        kv.increment("big", i64::MAX).unwrap();
        assert!(kv.increment("big", 1).is_err());
    }
}
