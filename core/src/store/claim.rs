//! The claim protocol, the store's one way to let exactly one of many
//! concurrent writers create a write-once record: the writer whose
//! `increment` of the claim key returns 1 owns it; every other writer waits
//! (on the injected clock) for the record to appear or for the thing
//! claimed to move on, and completes a claim whose owner died. And the
//! generations that claims are made in: a counted sequence whose members
//! are released once each.

use std::time::Duration;

use super::Store;
use crate::kv::KvError;

/// How often a waiting writer looks again.
const CLAIM_POLL: Duration = Duration::from_millis(20);

/// The outcome of a claim.
pub(super) enum Claim {
    /// Ours: we create the record.
    Won,
    /// The record exists: a true duplicate.
    Exists,
    /// The thing the claim was for moved on (generation advanced): start over.
    Retry,
    /// Claimed long ago by a writer that never wrote the record: complete it.
    Abandoned,
}

impl Store<'_> {
    /// Claim `claim_key`; if someone else holds it, wait for `record_key` to
    /// appear or `still_current` to turn false, up to the store's patience
    /// ([`super::CLAIM_PATIENCE`] by default).
    pub(super) fn claim(
        &self,
        claim_key: &str,
        record_key: &str,
        still_current: &dyn Fn() -> Result<bool, KvError>,
    ) -> Result<Claim, KvError> {
        if self.kv.increment(claim_key, 1)? == 1 {
            return Ok(Claim::Won);
        }
        let deadline = self.clock.monotonic() + self.patience;
        loop {
            if self.kv.get(record_key)?.is_some() {
                return Ok(Claim::Exists);
            }
            if !still_current()? {
                return Ok(Claim::Retry);
            }
            if self.clock.monotonic() >= deadline {
                return Ok(Claim::Abandoned);
            }
            self.clock.sleep(CLAIM_POLL);
        }
    }
}

/// A sequence of generations (of a grant fingerprint, a member's pin, a
/// cluster name): generation `g` is released at most once, by the
/// once-guard counter `released(g)`, and the current generation is the
/// first one not released. The `counter` key (advanced by whoever set a
/// marker) is only where to start looking: a releaser that failed between
/// its marker and that increment leaves it one behind, and a sequence whose
/// count lagged would otherwise stay on a released generation for good.
pub(super) struct Generations<F: Fn(i64) -> String> {
    /// The counter: a lower bound of the current generation.
    pub counter: String,
    /// The once-guard counter of generation `g`.
    pub released: F,
}

impl Store<'_> {
    /// The sequence's current generation: the first one not released.
    pub(super) fn current<F: Fn(i64) -> String>(&self, seq: &Generations<F>) -> Result<i64, KvError> {
        let mut generation = self.kv.increment(&seq.counter, 0)?;
        while self.kv.increment(&(seq.released)(generation), 0)? > 0 {
            generation += 1;
        }
        Ok(generation)
    }

    /// Release `generation`; whether this call did (only one caller ever does).
    /// From the marker on, [`Self::current`] is past it; the counter after it
    /// only saves later scans a step, so its failure is not the caller's.
    pub(super) fn release<F: Fn(i64) -> String>(&self, seq: &Generations<F>, generation: i64) -> Result<bool, KvError> {
        if self.kv.increment(&(seq.released)(generation), 1)? != 1 {
            return Ok(false);
        }
        let _ = self.kv.increment(&seq.counter, 1);
        Ok(true)
    }
}
