//! Waiting on a condition with a deadline: the only way the test suites and
//! their fixtures wait for anything. There is no fixed sleep: a probe is
//! re-run with a short, growing pause until it reports ready, fails hard, or
//! the deadline passes; the timeout error carries the last thing it observed.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// What one run of a probe saw.
#[derive(Debug)]
pub enum Probe<T> {
    /// The condition holds; waiting ends with this value.
    Ready(T),
    /// Not yet; the text says what was observed, for the timeout error.
    NotYet(String),
}

const FIRST_PAUSE: Duration = Duration::from_millis(50);
const LONGEST_PAUSE: Duration = Duration::from_millis(500);

/// Runs `probe` until it returns [`Probe::Ready`] or an error, or `timeout`
/// passes (then fails naming `what` and the last observation).
pub fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Result<Probe<T>>) -> Result<T> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut pause = FIRST_PAUSE;
    loop {
        let observed = match probe()? {
            Probe::Ready(value) => return Ok(value),
            Probe::NotYet(observed) => observed,
        };
        let now = Instant::now();
        if now >= deadline {
            bail!("timed out after {:.1?} waiting for {what}; last observed: {observed}", now - started);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}
