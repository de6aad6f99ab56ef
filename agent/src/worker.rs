//! The reconcile worker: level-triggered, like a kube-runtime controller.
//!
//! Jobs from the control plane only say "something changed". On a job, on a
//! periodic resync, or when a retry is due, the worker reads the desired
//! state, observes the managed bindings, lets the core [`plan`] the
//! difference, executes it, and reports each grant's outcome. A lost or
//! repeated job cannot leave wrong RBAC behind; a failure is retried with
//! exponential backoff until its cause goes away.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use futures::StreamExt;
use lanyard_core::rbac::{self, Action};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until};
use tracing::{info, warn};

use crate::cluster::{Cluster, kube_error_text};
use crate::control::{ControlPlane, Outcome};

/// Cluster writes in flight at once.
const CONCURRENCY: usize = 16;

#[derive(Debug, Clone)]
pub struct Timing {
    pub heartbeat: Duration,
    pub poll: Duration,
    pub resync: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

/// Exponential backoff between `min` and `max`.
#[derive(Debug)]
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Backoff { min, max, next: min }
    }
    fn next(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
    fn reset(&mut self) {
        self.next = self.min;
    }
}

/// What one reconcile did.
#[derive(Debug, Default)]
pub struct Summary {
    pub epoch: i64,
    pub grants: usize,
    pub applied: usize,
    pub deleted: usize,
    pub failed: usize,
}

pub struct Worker {
    pub control: ControlPlane,
    pub cluster: Cluster,
    pub cluster_id: String,
    pub timing: Timing,
    /// Last outcome reported per grant: only changes are sent.
    reported: HashMap<String, Outcome>,
}

impl Worker {
    pub fn new(control: ControlPlane, cluster: Cluster, cluster_id: String, timing: Timing) -> Self {
        Worker { control, cluster, cluster_id, timing, reported: HashMap::new() }
    }

    /// Run until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let heartbeat = tokio::spawn(heartbeats(self.control.clone(), self.timing.heartbeat, shutdown.clone()));
        let mut poll = interval(self.timing.poll);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut backoff = Backoff::new(self.timing.backoff_min, self.timing.backoff_max);
        let mut due = Instant::now(); // reconcile at once on start
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = poll.tick() => {}
                _ = sleep_until(due) => {}
            }
            if *shutdown.borrow() {
                break;
            }
            let lease = match self.control.lease().await {
                Ok(lease) => lease,
                Err(e) => {
                    warn!(error = %format!("{e:#}"), "cannot lease jobs");
                    continue;
                }
            };
            if lease.jobs.is_empty() && Instant::now() < due {
                continue;
            }
            match self.reconcile().await {
                Ok(s) => {
                    info!(epoch = s.epoch, grants = s.grants, applied = s.applied, deleted = s.deleted, failed = s.failed, jobs = lease.jobs.len(), "reconciled");
                    if let Err(e) = self.control.ack(lease.through).await {
                        warn!(error = %format!("{e:#}"), "cannot acknowledge jobs");
                    }
                    if s.failed > 0 {
                        let wait = backoff.next();
                        warn!(failed = s.failed, retry_in_ms = wait.as_millis() as u64, "some grants failed; retrying");
                        due = Instant::now() + wait;
                    } else {
                        backoff.reset();
                        due = Instant::now() + self.timing.resync;
                    }
                }
                Err(e) => {
                    let wait = backoff.next();
                    warn!(error = %format!("{e:#}"), retry_in_ms = wait.as_millis() as u64, "reconcile failed");
                    due = Instant::now() + wait;
                }
            }
        }
        let _ = heartbeat.await;
        info!("worker stopped");
    }

    /// One level-triggered pass: make the managed bindings equal the desired set.
    pub async fn reconcile(&mut self) -> Result<Summary> {
        let state = self.control.state().await?;
        let desired: Vec<_> = state.grants.iter().map(|g| rbac::desired_binding(&self.cluster_id, g)).collect();
        let observed = self.cluster.observed().await?;
        let actions = rbac::plan(&desired, &observed);
        let mut summary = Summary { epoch: state.revocation_epoch, grants: desired.len(), ..Summary::default() };

        let cluster = &self.cluster;
        let results: Vec<(Action, Result<(), kube::Error>)> = futures::stream::iter(actions)
            .map(|action| async move {
                let result = match &action {
                    Action::Apply(d) => cluster.apply(d).await,
                    Action::Replace(d) => match cluster.delete(&d.target).await {
                        Ok(()) => cluster.apply(d).await,
                        Err(e) => Err(e),
                    },
                    Action::Delete(target) => cluster.delete(target).await,
                };
                (action, result)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;

        let mut failures: HashMap<String, String> = HashMap::new();
        for (action, result) in results {
            match (action, result) {
                (Action::Delete(_), Ok(())) => summary.deleted += 1,
                (Action::Delete(target), Err(e)) => {
                    summary.failed += 1;
                    warn!(binding = %target.name, error = %kube_error_text(&e), "cannot delete an unbacked binding");
                }
                (Action::Apply(_) | Action::Replace(_), Ok(())) => summary.applied += 1,
                (Action::Apply(d) | Action::Replace(d), Err(e)) => {
                    summary.failed += 1;
                    failures.insert(d.grant_id.clone(), kube_error_text(&e));
                }
            }
        }

        // Every desired grant is applied unless its action failed; report changes only.
        let outcomes: Vec<(String, Outcome)> = desired
            .iter()
            .map(|d| {
                let outcome = failures.remove(&d.grant_id).map_or(Outcome::Applied, Outcome::Failed);
                (d.grant_id.clone(), outcome)
            })
            .collect();
        let changed: Vec<(String, Outcome)> =
            outcomes.iter().filter(|(id, o)| self.reported.get(id) != Some(o)).cloned().collect();
        if !changed.is_empty() {
            self.control.report(&changed).await?;
        }
        self.reported = outcomes.into_iter().collect();
        Ok(summary)
    }
}

async fn heartbeats(control: ControlPlane, every: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut tick = interval(every);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {
                if let Err(e) = control.heartbeat().await {
                    warn!(error = %format!("{e:#}"), "heartbeat failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));
        let seq: Vec<u64> = (0..6).map(|_| b.next().as_millis() as u64).collect();
        assert_eq!(seq, [500, 1000, 2000, 4000, 4000, 4000]);
        b.reset();
        assert_eq!(b.next(), Duration::from_millis(500));
    }
}
