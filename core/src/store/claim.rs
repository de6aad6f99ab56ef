//! The claim protocol, the store's one way to let exactly one of many
//! concurrent writers create a write-once record: the writer whose
//! `increment` of the claim key returns 1 owns it; every other writer waits
//! (on the injected clock) for the record to appear or for the thing
//! claimed to move on, and completes a claim whose owner died.

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
