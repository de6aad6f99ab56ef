//! The reconcile worker: level-triggered, like a kube-runtime controller.
//!
//! Jobs from the control plane only say "something changed". On a job, on a
//! periodic resync, or when a retry is due, the worker reads the desired
//! state, observes the managed bindings, lets the core [`plan`] the
//! difference, executes it, reports each grant's outcome and acknowledges the
//! jobs: one round. A lost or repeated job cannot leave wrong RBAC behind.
//!
//! Pacing is [`Pacer`]'s, apart from all I/O and with the clock passed in:
//! every failure backs off (see `backoff.rs`) before its next attempt: a
//! failed lease delays the next lease; a failed round (state read, Kubernetes
//! API, report or acknowledgement) delays the next round even while jobs are
//! pending; grants that failed to apply are retried on the same schedule;
//! a failed heartbeat delays the next heartbeat. Successes reset them.
//!
//! [`plan`]: lanyard_core::rbac::plan

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lanyard_core::ids::{ClusterId, GrantId};
use lanyard_core::rbac::{self, Action};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};
use tracing::{error, info, warn};

use crate::backoff::{Backoff, Failure, Jitter, OsJitter};
use crate::cluster::{Cluster, kube_error_text};
use crate::control::{CallError, ControlPlane, Outcome};
use crate::metrics::Metrics;

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

impl Timing {
    fn backoff<J: Jitter>(&self, jitter: J) -> Backoff<J> {
        Backoff::new(self.backoff_min, self.backoff_max, jitter)
    }
}

/// Why a reconcile round failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    #[error(transparent)]
    Control(#[from] CallError),
    #[error("reading the cluster's Lanyard-managed bindings from the Kubernetes API: {}", kube_error_text(.0))]
    Kube(#[from] kube::Error),
}

impl RoundError {
    fn failure(&self) -> Failure {
        match self {
            RoundError::Control(e) => e.failure(),
            RoundError::Kube(_) => Failure::Retryable,
        }
    }
}

/// When the worker leases next and whether a lease starts a round: every
/// decision of the loop that depends on time, with the time passed in.
#[derive(Debug)]
struct Pacer<J> {
    poll: Duration,
    resync: Duration,
    lease: Backoff<J>,
    round: Backoff<J>,
    next_lease: Instant,
    /// A round is due even without jobs (resync, or a retry of failed grants).
    due: Instant,
    /// No round before this, jobs or not (a round failed).
    not_before: Instant,
}

impl<J: Jitter> Pacer<J> {
    /// Lease at once and reconcile on the first lease.
    fn new(timing: &Timing, now: Instant, jitter: impl Fn() -> J) -> Self {
        Pacer {
            poll: timing.poll,
            resync: timing.resync,
            lease: timing.backoff(jitter()),
            round: timing.backoff(jitter()),
            next_lease: now,
            due: now,
            not_before: now,
        }
    }

    fn next_lease(&self) -> Instant {
        self.next_lease
    }

    /// A lease failed: the wait before the next one.
    fn lease_failed(&mut self, now: Instant, failure: Failure) -> Duration {
        let wait = self.lease.failed(failure);
        self.next_lease = now + wait;
        wait
    }

    /// A lease answered, with or without jobs: whether to run a round now.
    fn leased(&mut self, now: Instant, jobs: bool) -> bool {
        self.lease.succeeded();
        self.next_lease = now + self.poll;
        now >= self.not_before && (jobs || now >= self.due)
    }

    /// A round failed as a whole: the wait before the next round, jobs or not.
    fn round_failed(&mut self, now: Instant, failure: Failure) -> Duration {
        let wait = self.round.failed(failure);
        self.not_before = now + wait;
        self.due = self.not_before;
        wait
    }

    /// A round finished with `failed` grants not applied: when they are retried, if any.
    fn round_done(&mut self, now: Instant, failed: usize) -> Option<Duration> {
        if failed > 0 {
            let wait = self.round.failed(Failure::Retryable);
            self.due = now + wait;
            Some(wait)
        } else {
            self.round.succeeded();
            self.due = now + self.resync;
            None
        }
    }
}

/// The wait after a failed heartbeat: the backoff, but never sooner than the next regular beat.
fn heartbeat_retry<J: Jitter>(backoff: &mut Backoff<J>, every: Duration, failure: Failure) -> Duration {
    backoff.failed(failure).max(every)
}

/// Log a failed attempt: a refused credential as an error (it needs a person), anything else as a warning.
fn log_failure(call: &'static str, error: &dyn std::fmt::Display, failure: Failure, retry_in: Duration) {
    let retry_in_ms = retry_in.as_millis() as u64;
    match failure {
        Failure::Refused => error!(call, error = %error, retry_in_ms, "the control plane refused the agent credential"),
        Failure::Retryable => warn!(call, error = %error, retry_in_ms, "failed; backing off"),
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
    pub cluster_id: ClusterId,
    pub timing: Timing,
    /// Counts the results it reports.
    pub metrics: Arc<Metrics>,
    /// Last outcome reported per grant: only changes are sent.
    reported: HashMap<GrantId, Outcome>,
}

impl Worker {
    pub fn new(
        control: ControlPlane,
        cluster: Cluster,
        cluster_id: ClusterId,
        timing: Timing,
        metrics: Arc<Metrics>,
    ) -> Self {
        Worker { control, cluster, cluster_id, timing, metrics, reported: HashMap::new() }
    }

    /// Run until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let beats = self.timing.backoff(OsJitter);
        let heartbeat = tokio::spawn(heartbeats(self.control.clone(), self.timing.heartbeat, beats, shutdown.clone()));
        let mut pacer = Pacer::new(&self.timing, Instant::now(), || OsJitter);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = sleep_until(pacer.next_lease()) => {}
            }
            if *shutdown.borrow() {
                break;
            }
            let lease = match self.control.lease().await {
                Ok(lease) => lease,
                Err(e) => {
                    let wait = pacer.lease_failed(Instant::now(), e.failure());
                    log_failure("lease jobs", &e, e.failure(), wait);
                    continue;
                }
            };
            if !pacer.leased(Instant::now(), !lease.jobs.is_empty()) {
                continue;
            }
            let round = match self.reconcile().await {
                Ok(s) => {
                    info!(
                        epoch = s.epoch,
                        grants = s.grants,
                        applied = s.applied,
                        deleted = s.deleted,
                        failed = s.failed,
                        jobs = lease.jobs.len(),
                        "reconciled"
                    );
                    if lease.jobs.is_empty() {
                        Ok(s)
                    } else {
                        self.control.ack(lease.through).await.map(|_| s).map_err(RoundError::from)
                    }
                }
                Err(e) => Err(e),
            };
            match round {
                Ok(s) => {
                    if let Some(wait) = pacer.round_done(Instant::now(), s.failed) {
                        warn!(failed = s.failed, retry_in_ms = wait.as_millis() as u64, "some grants failed; retrying");
                    }
                }
                Err(e) => {
                    let wait = pacer.round_failed(Instant::now(), e.failure());
                    log_failure("reconcile", &e, e.failure(), wait);
                }
            }
        }
        let _ = heartbeat.await;
        info!("worker stopped");
    }

    /// One level-triggered pass: make the managed bindings equal the desired set.
    pub async fn reconcile(&mut self) -> Result<Summary, RoundError> {
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

        let mut failures: HashMap<GrantId, String> = HashMap::new();
        for (action, result) in results {
            match (action, result) {
                (Action::Delete(_), Ok(())) => summary.deleted += 1,
                (Action::Delete(target), Err(e)) => {
                    summary.failed += 1;
                    warn!(binding = %target.name(), error = %kube_error_text(&e), "cannot delete an unbacked binding");
                }
                (Action::Apply(_) | Action::Replace(_), Ok(())) => summary.applied += 1,
                (Action::Apply(d) | Action::Replace(d), Err(e)) => {
                    summary.failed += 1;
                    failures.insert(d.grant_id.clone(), kube_error_text(&e));
                }
            }
        }

        // Every desired grant is applied unless its action failed; report changes only.
        let outcomes: Vec<(GrantId, Outcome)> = desired
            .iter()
            .map(|d| {
                let outcome = failures.remove(&d.grant_id).map_or(Outcome::Applied, Outcome::Failed);
                (d.grant_id.clone(), outcome)
            })
            .collect();
        let changed: Vec<(GrantId, Outcome)> =
            outcomes.iter().filter(|(id, o)| self.reported.get(id) != Some(o)).cloned().collect();
        if !changed.is_empty() {
            self.control.report(&changed).await?;
            let failed = changed.iter().filter(|(_, o)| matches!(o, Outcome::Failed(_))).count();
            self.metrics.reconciled("applied", changed.len() - failed);
            self.metrics.reconciled("failed", failed);
        }
        self.reported = outcomes.into_iter().collect();
        Ok(summary)
    }
}

async fn heartbeats(control: ControlPlane, every: Duration, mut backoff: Backoff, mut shutdown: watch::Receiver<bool>) {
    let mut next = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = sleep_until(next) => {}
        }
        let started = Instant::now();
        next = match control.heartbeat().await {
            Ok(_) => {
                backoff.succeeded();
                started + every
            }
            Err(e) => {
                let wait = heartbeat_retry(&mut backoff, every, e.failure());
                log_failure("heartbeat", &e, e.failure(), wait);
                Instant::now() + wait
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::tests::Replay;

    const POLL: Duration = Duration::from_millis(100);
    const RESYNC: Duration = Duration::from_secs(60);

    fn timing() -> Timing {
        Timing {
            heartbeat: Duration::from_secs(10),
            poll: POLL,
            resync: RESYNC,
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
        }
    }

    /// What happened when, in a simulated run (each call takes no time).
    #[derive(Debug, Default)]
    struct Run {
        leases: Vec<Duration>,
        rounds: Vec<Duration>,
    }

    /// Drive a pacer (jitter `f`) for `span` of simulated time: `lease(t)` is
    /// whether a lease at `t` has jobs (or how it failed), `round(t)` how many
    /// grants a round at `t` failed to apply (or how it failed).
    fn simulate(
        f: f64,
        span: Duration,
        lease: impl Fn(Duration) -> Result<bool, Failure>,
        round: impl Fn(Duration) -> Result<usize, Failure>,
    ) -> Run {
        let start = Instant::now();
        let mut pacer = Pacer::new(&timing(), start, || Replay::constant(f));
        let mut run = Run::default();
        loop {
            let now = pacer.next_lease();
            let t = now - start;
            if t > span {
                return run;
            }
            run.leases.push(t);
            match lease(t) {
                Err(failure) => {
                    pacer.lease_failed(now, failure);
                }
                Ok(jobs) => {
                    if pacer.leased(now, jobs) {
                        run.rounds.push(t);
                        match round(t) {
                            Ok(failed) => {
                                pacer.round_done(now, failed);
                            }
                            Err(failure) => {
                                pacer.round_failed(now, failure);
                            }
                        }
                    }
                }
            }
        }
    }

    fn ms(v: &[Duration]) -> Vec<u64> {
        v.iter().map(|d| d.as_millis() as u64).collect()
    }

    const FIVE_S: Duration = Duration::from_secs(5);

    #[test]
    fn a_failing_lease_is_retried_four_times_in_five_seconds_at_most() {
        // The shortest waits (jitter 0): 0.5 s, 1 s, 2 s, 4 s.
        let run = simulate(0.0, FIVE_S, |_| Err(Failure::Retryable), |_| unreachable!());
        assert_eq!(ms(&run.leases), [0, 500, 1500, 3500]);
        // The longest: 1 s, 2 s, 4 s.
        let run = simulate(1.0, FIVE_S, |_| Err(Failure::Retryable), |_| unreachable!());
        assert_eq!(ms(&run.leases), [0, 1000, 3000]);
        // Then, at the cap, every 30–60 s: with the shortest waits, 0 … 31.5 s, then every 30 s.
        let run = simulate(0.0, Duration::from_secs(600), |_| Err(Failure::Retryable), |_| unreachable!());
        assert_eq!(run.leases.len(), 7 + 18);
    }

    #[test]
    fn a_lease_that_recovers_polls_at_the_normal_pace_again() {
        let run = simulate(
            0.0,
            FIVE_S,
            |t| if t < Duration::from_secs(1) { Err(Failure::Retryable) } else { Ok(false) },
            |_| Ok(0),
        );
        // 0, 0.5 fail; 1.5 succeeds (first round); then every 100 ms.
        assert_eq!(ms(&run.leases[..4]), [0, 500, 1500, 1600]);
        assert_eq!(ms(&run.rounds), [1500]);
        assert!(run.leases.len() > 30);
    }

    #[test]
    fn a_refused_credential_is_retried_at_the_maximum_only() {
        let run = simulate(0.0, Duration::from_secs(300), |_| Err(Failure::Refused), |_| unreachable!());
        // Half the maximum at the soonest (jitter 0): every 30 s.
        assert_eq!(run.leases.len(), 11);
        assert!(run.leases.windows(2).all(|w| w[1] - w[0] == Duration::from_secs(30)));
    }

    #[test]
    fn pending_jobs_do_not_bypass_the_backoff_of_a_failed_round() {
        // The lease always has jobs (a failed round acknowledges nothing); the round always fails.
        let run = simulate(0.0, FIVE_S, |_| Ok(true), |_| Err(Failure::Retryable));
        assert_eq!(ms(&run.rounds), [0, 500, 1500, 3500]);
        // Leasing itself succeeded, so it kept polling.
        assert_eq!(run.leases.len(), 51);
    }

    #[test]
    fn without_jobs_a_round_runs_at_start_and_at_each_resync() {
        let run = simulate(0.0, Duration::from_secs(130), |_| Ok(false), |_| Ok(0));
        assert_eq!(ms(&run.rounds), [0, 60_000, 120_000]);
    }

    #[test]
    fn a_job_starts_a_round_at_the_next_poll() {
        let job_at = Duration::from_millis(2000);
        let run = simulate(0.0, FIVE_S, |t| Ok(t == job_at), |_| Ok(0));
        assert_eq!(ms(&run.rounds), [0, 2000]);
    }

    #[test]
    fn failed_grants_are_retried_with_backoff_and_a_success_resets_it() {
        // Grants fail until 3.5 s, then apply.
        let run = simulate(0.0, FIVE_S, |_| Ok(false), |t| Ok(usize::from(t < Duration::from_millis(3500))));
        assert_eq!(ms(&run.rounds), [0, 500, 1500, 3500]);
        // A new failure after the success starts again at the shortest wait.
        let fails = |t: Duration| t < Duration::from_secs(2) || t >= Duration::from_secs(63);
        let run = simulate(0.0, Duration::from_secs(65), |_| Ok(false), |t| Ok(usize::from(fails(t))));
        assert_eq!(ms(&run.rounds), [0, 500, 1500, 3500, 63_500, 64_000, 65_000]);
    }

    #[test]
    fn a_job_may_retry_failed_grants_early_but_not_a_failed_round() {
        let job_at = Duration::from_millis(200);
        // Grants failed at 0 (retry due at 0.5): the job at 0.2 runs a round at once.
        let run = simulate(0.0, Duration::from_secs(1), |t| Ok(t == job_at), |t| Ok(usize::from(t.is_zero())));
        assert_eq!(ms(&run.rounds), [0, 200]);
        // The round failed at 0: the job at 0.2 waits for 0.5.
        let run = simulate(
            0.0,
            Duration::from_secs(1),
            |t| Ok(t == job_at || t == Duration::from_millis(500)),
            |t| {
                if t.is_zero() { Err(Failure::Retryable) } else { Ok(0) }
            },
        );
        assert_eq!(ms(&run.rounds), [0, 500]);
    }

    #[test]
    fn a_failing_heartbeat_backs_off_but_never_beats_faster_than_its_interval() {
        let every = Duration::from_secs(10);
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(60), Replay::constant(1.0));
        let waits: Vec<u64> = (0..8).map(|_| heartbeat_retry(&mut b, every, Failure::Retryable).as_secs()).collect();
        assert_eq!(waits, [10, 10, 10, 10, 16, 32, 60, 60]);
        b.succeeded();
        assert_eq!(heartbeat_retry(&mut b, every, Failure::Refused), Duration::from_secs(60));
    }
}
