//! Fault injection for tests: a switch that makes one chosen key-value
//! *write* fail, so a test can check what every request leaves behind when
//! the store fails at each point of it.
//!
//! A [`Faults`] is off until a test arms it ([`Faults::arm`]) with a
//! [`Plan`]: fail the `n`th write from now (counting from 1), optionally only
//! among writes to keys that start with a prefix. While armed it also counts
//! the matching writes ([`Faults::writes`]), so a test can first arm a plan
//! that never fires ([`Plan::count`]) to learn how many writes a request
//! makes, then sweep the fault over each of them. Exactly one write fails per
//! arming (the store "recovers" at once): what a request does after a failed
//! write is part of what is tested.
//!
//! A write is what changes the store: `set`, `delete`, `set_many`,
//! `delete_many`, a compare-and-swap's `swap`, and an `increment` by a
//! non-zero delta. `increment(key, 0)` is how the core *reads* a counter, and
//! is not counted. The injected failure is the error a store failure gives in
//! Spin's interfaces, `error::other(message)`, before anything is written.
//!
//! It cannot be turned on in production: there is no configuration file
//! setting, environment variable or command-line flag for it. Only the Rust
//! API reaches it, through [`crate::HostConfig::faults`] (`None` unless a test
//! sets it), which `lanyard-host`'s binary never sets.

use std::sync::Mutex;

use crate::kv::KvError;

/// Which write to fail, and which writes count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The matching write that fails, counting from 1; `None` fails none
    /// (only counts).
    pub fail_at: Option<u64>,
    /// Only writes touching a key that starts with this count (for a batch,
    /// any of its keys); `None` counts every write.
    pub key_prefix: Option<String>,
}

impl Plan {
    /// Count every write, fail none.
    pub fn count() -> Plan {
        Plan::default()
    }

    /// Fail the `n`th write from now (`n` ≥ 1).
    pub fn fail_at(n: u64) -> Plan {
        Plan { fail_at: Some(n), key_prefix: None }
    }

    /// The same plan, counting only writes to keys under `prefix`.
    pub fn under(mut self, prefix: impl Into<String>) -> Plan {
        self.key_prefix = Some(prefix.into());
        self
    }
}

/// What an armed switch saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// Matching writes attempted since arming (the failed one included).
    pub writes: u64,
    /// The write that was failed: operation, store label and key.
    pub failed: Option<String>,
}

/// The kind of a write, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOp {
    Set,
    Delete,
    SetMany,
    DeleteMany,
    Increment,
    Swap,
}

#[derive(Debug, Default)]
struct State {
    plan: Option<Plan>,
    seen: Seen,
}

/// The fault switch; share it as `Arc<Faults>` between the test and the host.
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<State>,
}

impl Faults {
    /// A switch that is off.
    pub fn new() -> Faults {
        Faults::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Arm `plan`, starting its count from zero.
    pub fn arm(&self, plan: Plan) {
        let mut state = self.lock();
        state.plan = Some(plan);
        state.seen = Seen::default();
    }

    /// What the armed plan has seen so far.
    pub fn seen(&self) -> Seen {
        self.lock().seen.clone()
    }

    /// Matching writes since arming.
    pub fn writes(&self) -> u64 {
        self.lock().seen.writes
    }

    /// Turn the switch off; returns what the plan saw.
    pub fn disarm(&self) -> Seen {
        let mut state = self.lock();
        state.plan = None;
        std::mem::take(&mut state.seen)
    }

    /// Called by the store before each write: the injected error if this is
    /// the write to fail.
    pub(crate) fn check(&self, op: WriteOp, store: &str, keys: &[&str]) -> Result<(), KvError> {
        let mut state = self.lock();
        let State { plan: Some(plan), seen } = &mut *state else {
            return Ok(());
        };
        if let Some(prefix) = &plan.key_prefix
            && !keys.iter().any(|k| k.starts_with(prefix.as_str()))
        {
            return Ok(());
        }
        seen.writes += 1;
        if plan.fail_at != Some(seen.writes) {
            return Ok(());
        }
        let what = format!("{op:?} of {} in store {store:?}", keys.join(", "));
        seen.failed = Some(what.clone());
        Err(KvError::Injected(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_until_armed_and_fails_exactly_the_nth_matching_write() {
        let faults = Faults::new();
        assert!(faults.check(WriteOp::Set, "default", &["a"]).is_ok());
        assert_eq!(faults.writes(), 0, "an unarmed switch counts nothing");

        faults.arm(Plan::fail_at(2).under("v1/x"));
        assert!(faults.check(WriteOp::Set, "default", &["v1/y"]).is_ok());
        assert!(faults.check(WriteOp::Set, "default", &["v1/x/1"]).is_ok());
        let err = faults.check(WriteOp::DeleteMany, "default", &["v1/y", "v1/x/2"]).unwrap_err();
        assert!(err.to_string().contains("DeleteMany"), "{err}");
        assert!(faults.check(WriteOp::Set, "default", &["v1/x/3"]).is_ok(), "only one write fails");
        let seen = faults.disarm();
        assert_eq!(seen.writes, 3);
        assert!(seen.failed.as_deref().is_some_and(|f| f.contains("v1/x/2")));
        assert!(faults.check(WriteOp::Set, "default", &["v1/x/4"]).is_ok());
        assert_eq!(faults.writes(), 0);
    }

    #[test]
    fn a_counting_plan_fails_nothing() {
        let faults = Faults::new();
        faults.arm(Plan::count());
        for _ in 0..5 {
            assert!(faults.check(WriteOp::Increment, "default", &["n"]).is_ok());
        }
        assert_eq!(faults.disarm(), Seen { writes: 5, failed: None });
    }
}
