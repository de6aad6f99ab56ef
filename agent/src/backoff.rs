//! How long the agent waits after a failure, on every path that can fail
//! (control-plane calls and the Kubernetes API alike): exponential, capped,
//! jittered, reset by a success. The randomness is injected ([`Jitter`]) and
//! the schedule returns durations, so the callers pass in their clock and the
//! whole schedule is unit-testable without sleeping.
//!
//! After the n-th consecutive failure (n ≥ 1) the wait is a uniformly random
//! point between half and all of `min · 2ⁿ`, capped at `max`, and never less
//! than `min`: by default (500 ms, 60 s) 0.5–1 s, 1–2 s, 2–4 s, … up to
//! 30–60 s. So one endpoint that keeps failing gets at most 4 attempts in the
//! first 5 s and then about one a minute; the jitter keeps a fleet of agents
//! from retrying in step after an outage.
//!
//! A refused credential (HTTP 401: revoked, rotated away, or the cluster was
//! removed) is not going to heal by retrying soon, so it goes straight to the
//! maximum and stays there until a call succeeds.

use std::time::Duration;

/// How a failed attempt failed, for the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Worth retrying soon: unreachable, 5xx, 429, a Kubernetes API error, …
    Retryable,
    /// The credential was refused (401): retry only at the maximum.
    Refused,
}

/// A source of jitter: each call returns a fraction in `[0, 1]`.
pub trait Jitter: Send {
    fn fraction(&mut self) -> f64;
}

/// Jitter from the operating system's random source.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsJitter;

impl Jitter for OsJitter {
    fn fraction(&mut self) -> f64 {
        // Without randomness (it never fails on Linux) the wait is the longest one.
        getrandom::u32().map_or(1.0, |r| f64::from(r) / f64::from(u32::MAX))
    }
}

/// The consecutive-failure count and the waits it implies.
#[derive(Debug, Clone)]
pub struct Backoff<J = OsJitter> {
    min: Duration,
    max: Duration,
    failures: u32,
    jitter: J,
}

/// Doubling beyond this many failures cannot matter (2³¹ · 1 ms is weeks).
const MAX_DOUBLINGS: u32 = 31;

impl<J: Jitter> Backoff<J> {
    /// `max` below `min` is taken as `min`.
    pub fn new(min: Duration, max: Duration, jitter: J) -> Self {
        Backoff { min, max: max.max(min), failures: 0, jitter }
    }

    /// One more failure: how long to wait before the next attempt.
    pub fn failed(&mut self, failure: Failure) -> Duration {
        self.failures = match failure {
            Failure::Retryable => self.failures.saturating_add(1),
            Failure::Refused => MAX_DOUBLINGS,
        };
        let ceiling = self.min.saturating_mul(1 << self.failures.min(MAX_DOUBLINGS)).min(self.max);
        let floor = (ceiling / 2).max(self.min);
        let fraction = self.jitter.fraction().clamp(0.0, 1.0);
        floor + (ceiling - floor).mul_f64(fraction)
    }

    /// A success: the next failure starts the schedule again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Jitter that replays fractions (the last one repeats).
    #[derive(Debug, Clone)]
    pub(crate) struct Replay(pub Vec<f64>, pub usize);

    impl Replay {
        pub(crate) fn constant(f: f64) -> Replay {
            Replay(vec![f], 0)
        }
    }

    impl Jitter for Replay {
        fn fraction(&mut self) -> f64 {
            let f = self.0[self.1.min(self.0.len() - 1)];
            self.1 += 1;
            f
        }
    }

    fn ms(d: Duration) -> u64 {
        d.as_millis() as u64
    }

    fn schedule(jitter: f64, n: usize, min_ms: u64, max_ms: u64) -> Vec<u64> {
        let mut b =
            Backoff::new(Duration::from_millis(min_ms), Duration::from_millis(max_ms), Replay::constant(jitter));
        (0..n).map(|_| ms(b.failed(Failure::Retryable))).collect()
    }

    #[test]
    fn the_shortest_waits_double_from_min_and_stop_at_half_the_cap() {
        assert_eq!(schedule(0.0, 9, 500, 60_000), [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
    }

    #[test]
    fn the_longest_waits_double_from_twice_min_and_stop_at_the_cap() {
        assert_eq!(schedule(1.0, 9, 500, 60_000), [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    }

    #[test]
    fn the_jitter_picks_a_point_between_half_and_all_of_each_step() {
        assert_eq!(schedule(0.5, 4, 500, 60_000), [750, 1500, 3000, 6000]);
        let mut b =
            Backoff::new(Duration::from_millis(500), Duration::from_secs(60), Replay(vec![0.0, 1.0, 0.25, 0.75], 0));
        let waits: Vec<u64> = (0..4).map(|_| ms(b.failed(Failure::Retryable))).collect();
        assert_eq!(waits, [500, 2000, 2500, 7000]);
    }

    #[test]
    fn never_less_than_min_nor_more_than_max_even_when_they_are_close() {
        // max < 2·min: every wait in [min, max].
        assert_eq!(schedule(0.0, 3, 500, 800), [500, 500, 500]);
        assert_eq!(schedule(1.0, 3, 500, 800), [800, 800, 800]);
        // max below min is min.
        assert_eq!(schedule(0.7, 3, 500, 100), [500, 500, 500]);
        // Out-of-range jitter is clamped.
        assert_eq!(schedule(7.0, 1, 500, 60_000), [1000]);
        assert_eq!(schedule(-1.0, 1, 500, 60_000), [500]);
    }

    #[test]
    fn a_success_starts_the_schedule_again() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(60), Replay::constant(1.0));
        for _ in 0..5 {
            b.failed(Failure::Retryable);
        }
        assert_eq!(b.failed(Failure::Retryable), Duration::from_secs(32));
        b.succeeded();
        assert_eq!(b.failed(Failure::Retryable), Duration::from_secs(1));
        assert_eq!(b.failed(Failure::Retryable), Duration::from_secs(2));
    }

    #[test]
    fn thousands_of_failures_do_not_overflow() {
        let mut b = Backoff::new(Duration::from_secs(3600), Duration::from_secs(86_400), Replay::constant(1.0));
        for _ in 0..10_000 {
            assert!(b.failed(Failure::Retryable) <= Duration::from_secs(86_400));
        }
    }

    #[test]
    fn a_refused_credential_waits_at_the_maximum_until_a_success() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(60), Replay(vec![0.0, 1.0, 0.5], 0));
        assert_eq!(b.failed(Failure::Refused), Duration::from_secs(30));
        assert_eq!(b.failed(Failure::Refused), Duration::from_secs(60));
        // A retryable failure after a refusal stays at the maximum too.
        assert_eq!(b.failed(Failure::Retryable), Duration::from_secs(45));
        b.succeeded();
        assert_eq!(b.failed(Failure::Retryable), Duration::from_millis(750));
    }

    #[test]
    fn the_os_jitter_spreads_a_fleet() {
        let waits: std::collections::BTreeSet<Duration> = (0..50)
            .map(|_| {
                Backoff::new(Duration::from_millis(500), Duration::from_secs(60), OsJitter).failed(Failure::Retryable)
            })
            .collect();
        assert!(waits.iter().all(|w| (Duration::from_millis(500)..=Duration::from_secs(1)).contains(w)), "{waits:?}");
        assert!(waits.len() > 40, "50 agents' first waits should nearly all differ: {waits:?}");
    }
}
