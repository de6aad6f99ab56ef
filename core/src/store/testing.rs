//! Test doubles for the store's unit tests: a key-value store that fails
//! one chosen write, and a fake clock that counts the claim waits.

use std::cell::Cell;
use std::time::Duration;

use crate::kv::{KeyValue, KvError, MemoryKv};

/// A store whose `n`th write (counting from 1; `increment` by 0 is a read) fails.
pub struct FailingKv {
    kv: MemoryKv,
    pub fail_at: Cell<u64>,
    pub writes: Cell<u64>,
}

impl FailingKv {
    pub fn new(fail_at: u64) -> Self {
        FailingKv { kv: MemoryKv::new(), fail_at: Cell::new(fail_at), writes: Cell::new(0) }
    }

    fn write(&self) -> Result<(), KvError> {
        self.writes.set(self.writes.get() + 1);
        if self.writes.get() == self.fail_at.get() { Err(KvError("injected".into())) } else { Ok(()) }
    }
}

impl KeyValue for FailingKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.kv.get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.write()?;
        self.kv.set(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.write()?;
        self.kv.delete(key)
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        if delta != 0 {
            self.write()?;
        }
        self.kv.increment(key, delta)
    }
}

/// A fake clock that counts the claim waits (each sleep moves it on).
#[derive(Default)]
pub struct CountingClock {
    now: Cell<Duration>,
    pub sleeps: Cell<u32>,
}

impl crate::clock::Clock for CountingClock {
    fn monotonic(&self) -> Duration {
        self.now.get()
    }
    fn sleep(&self, d: Duration) {
        self.now.set(self.now.get() + d);
        self.sleeps.set(self.sleeps.get() + 1);
    }
}
