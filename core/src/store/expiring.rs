//! Entries that expire, in a store that has no expiry (Spin's): each entry is
//! logged under the period it was written in, and writers sweep the periods
//! whose entries are all past their life, a few periods per call and best
//! effort (what one call fails to delete, a later call deletes). Used by the
//! browser sign-ins in progress ([`super::sign_in`]) and the verified-session
//! cache ([`super::sessions`]).

use super::{Store, StoreError, log::Log, to_json};

/// One family of expiring entries.
pub(super) struct Expiring {
    /// The key of the log of entries written in period `p`.
    pub log: fn(u64) -> String,
    /// The key of the last period swept (a JSON number).
    pub swept: fn() -> String,
    /// Length of a period, in seconds.
    pub period: u64,
    /// How long an entry lives, in seconds.
    pub life: u64,
    /// The most periods one call sweeps.
    pub sweep_max: u64,
    /// The keys that make up the entry logged as `digest`.
    pub keys_of: fn(&str) -> Vec<String>,
}

impl Store<'_> {
    /// Log the entry `digest` as written at `at` (before writing it, so that
    /// an entry that is stored is always found by the sweep).
    pub(super) fn log_expiring(&self, family: &Expiring, digest: &str, at: u64) -> Result<(), StoreError> {
        Log::new(self.kv, (family.log)(at / family.period)).append(digest.as_bytes())?;
        Ok(())
    }

    /// Delete the entries of periods past their life at `now`.
    pub(super) fn sweep_expiring(&self, family: &Expiring, now: u64) {
        // The newest period all of whose entries are older than `life`.
        let Some(last_due) = (now.saturating_sub(family.life) / family.period).checked_sub(1) else { return };
        let swept: Option<u64> = self.get_json(&(family.swept)()).ok().flatten();
        let first = swept.map_or(last_due.saturating_sub(family.sweep_max), |s| s + 1);
        let last = last_due.min(first + family.sweep_max - 1);
        if first > last {
            return;
        }
        for period in first..=last {
            let log = Log::new(self.kv, (family.log)(period));
            let Ok(entries) = log.last().and_then(|n| log.range(1, n)) else { return };
            let mut doomed: Vec<String> = Vec::with_capacity(entries.len() * 3 + 1);
            for (n, digest) in entries {
                if let Ok(digest) = String::from_utf8(digest) {
                    doomed.extend((family.keys_of)(&digest));
                }
                doomed.push(log.slot(n));
            }
            doomed.push(log.counter());
            if self.kv.delete_many(&doomed).is_err() {
                return;
            }
        }
        if let Ok(bytes) = to_json(&last) {
            let _ = self.kv.set(&(family.swept)(), &bytes);
        }
    }
}
