//! The cluster's job log: what changed, for the agent. Reconcile is
//! level-triggered, so a job is only a wake-up signal; the agent
//! acknowledges the jobs it has looked at with a cursor.

use super::{Store, StoreError, from_json, keys, to_json};
use crate::ids::ClusterId;
use crate::records::Job;

impl Store<'_> {
    /// Append a job; returns its sequence number.
    pub fn enqueue(&self, cluster_id: &ClusterId, job: &Job) -> Result<i64, StoreError> {
        Ok(self.log(keys::jobs(cluster_id)).append(&to_json(job)?)?)
    }

    /// Jobs after sequence number `after`, at most `limit`.
    pub fn jobs_after(&self, cluster_id: &ClusterId, after: i64, limit: i64) -> Result<Vec<(i64, Job)>, StoreError> {
        let log = self.log(keys::jobs(cluster_id));
        let last = log.last()?.min(after.saturating_add(limit));
        log.range(after + 1, last)?.into_iter().map(|(n, bytes)| Ok((n, from_json(&log.slot(n), &bytes)?))).collect()
    }

    /// The agent's acknowledged job cursor (0 before the first ack).
    pub fn acked_jobs(&self, cluster_id: &ClusterId) -> Result<i64, StoreError> {
        Ok(self.get_json(&keys::jobs_acked(cluster_id))?.unwrap_or(0))
    }

    /// Acknowledge jobs up to `through` (never beyond the last job, never
    /// backwards). A racing ack may win with a lower value: that only makes a
    /// level-triggered agent look once more.
    pub fn ack_jobs(&self, cluster_id: &ClusterId, through: i64) -> Result<i64, StoreError> {
        let last = self.log(keys::jobs(cluster_id)).last()?;
        let acked = self.acked_jobs(cluster_id)?.max(through.min(last));
        self.kv.set(&keys::jobs_acked(cluster_id), &to_json(&acked)?)?;
        Ok(acked)
    }
}
