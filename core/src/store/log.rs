//! Append-only logs, the store's replacement for prefix listing: `{prefix}/seq`
//! counts (an `increment`, so concurrent appends get distinct slots) and
//! `{prefix}/{n}` holds entry `n`. Readers skip slots whose writer died before
//! writing them, and de-duplicate where an entry may be appended twice.

use std::collections::HashSet;

use crate::kv::{KeyValue, KvError};

/// One log.
pub struct Log<'a> {
    kv: &'a dyn KeyValue,
    prefix: String,
}

impl<'a> Log<'a> {
    /// The log under `prefix` (a key from [`super::keys`]).
    pub fn new(kv: &'a dyn KeyValue, prefix: String) -> Self {
        Log { kv, prefix }
    }

    /// Append an entry; returns its slot.
    pub fn append(&self, entry: &[u8]) -> Result<i64, KvError> {
        let n = self.kv.increment(&self.counter(), 1)?;
        self.kv.set(&self.slot(n), entry)?;
        Ok(n)
    }

    /// The key of the log's sequence counter.
    pub fn counter(&self) -> String {
        format!("{}/seq", self.prefix)
    }

    /// The key of slot `n`.
    pub fn slot(&self, n: i64) -> String {
        format!("{}/{n}", self.prefix)
    }

    /// The newest slot (0 for an empty log).
    pub fn last(&self) -> Result<i64, KvError> {
        self.kv.increment(&self.counter(), 0)
    }

    /// Entries `from..=to` that exist (a slot whose writer died is skipped).
    pub fn range(&self, from: i64, to: i64) -> Result<Vec<(i64, Vec<u8>)>, KvError> {
        if to < from {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = (from..=to).map(|n| self.slot(n)).collect();
        let values = self.kv.get_many(&keys)?;
        Ok((from..=to).zip(values).filter_map(|(n, v)| v.map(|v| (n, v))).collect())
    }

    /// Distinct entries that `parse` accepts, in first-appearance order (an
    /// entry it refuses, which no writer appends, is skipped).
    pub fn distinct<T: Clone + Eq + std::hash::Hash>(&self, parse: fn(&str) -> Option<T>) -> Result<Vec<T>, KvError> {
        let mut seen = HashSet::new();
        Ok(self
            .range(1, self.last()?)?
            .into_iter()
            .filter_map(|(_, v)| std::str::from_utf8(&v).ok().and_then(parse))
            .filter(|id| seen.insert(id.clone()))
            .collect())
    }
}
