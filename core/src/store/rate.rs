//! The token-mint rate limit: a sliding window over per-minute counters.

use super::{Store, StoreError, keys, to_json};
use crate::ids::MemberId;

impl Store<'_> {
    /// Count a token mint by `member_id` at `now` and refuse it ([`StoreError::RateLimited`]) if the
    /// member minted more than `per_minute` in the last 60 seconds.
    ///
    /// A sliding window over two fixed ones: the previous minute's count is
    /// weighted by the part of it that is still within the last 60 seconds, so
    /// a burst across a minute boundary gets no second allowance. Counters are
    /// `increment`s (no lost counts under concurrency); the small index
    /// `…/windows` lists the minutes that have a counter, so every counter is
    /// deleted once it is older than the previous minute, even after a gap.
    /// Refused attempts count too: hammering keeps a caller limited.
    pub fn limit_token_mints(&self, member_id: &MemberId, per_minute: i64, now: u64) -> Result<(), StoreError> {
        let window = now / 60;
        let count = self.kv.increment(&keys::mint_count(member_id, window), 1)?;
        let index_key = keys::mint_windows(member_id);
        let mut windows: Vec<u64> = self.get_json(&index_key)?.unwrap_or_default();
        if count == 1 {
            // The first mint of this minute maintains the index (one writer per minute).
            let (keep, stale): (Vec<u64>, Vec<u64>) = windows.iter().partition(|&&w| w + 1 >= window);
            let stale: Vec<String> = stale.iter().map(|w| keys::mint_count(member_id, w)).collect();
            self.kv.delete_many(&stale)?;
            windows = keep;
            if !windows.contains(&window) {
                windows.push(window);
            }
            windows.sort_unstable();
            self.kv.set(&index_key, &to_json(&windows)?)?;
        }
        let previous = match window.checked_sub(1) {
            Some(p) if windows.contains(&p) => self.kv.increment(&keys::mint_count(member_id, p), 0)?,
            _ => 0,
        };
        let elapsed = (now % 60) as i64;
        // Rounded up, so that the estimate never undercounts the last 60 seconds.
        let estimate = |elapsed: i64| (previous.max(0) * (60 - elapsed) + 59) / 60 + count;
        if estimate(elapsed) <= per_minute {
            return Ok(());
        }
        // When the estimate (with this minute's count as it is) falls within the limit.
        let retry_after = (elapsed + 1..60).find(|&e| estimate(e) <= per_minute).map_or(60 - elapsed, |e| e - elapsed);
        Err(StoreError::RateLimited { retry_after: retry_after.max(1) as u64 })
    }
}
