//! Time and waiting, injected. Nothing else in the core reads a clock or
//! sleeps (`core/clippy.toml` bans it): a function that needs to wait takes a
//! [`Clock`], so a test can run it on a clock of its own.

use std::time::{Duration, Instant};

/// A monotonic clock that can also wait.
pub trait Clock {
    /// Time since an arbitrary origin that never goes backwards.
    fn monotonic(&self) -> Duration;
    /// Block the caller for `duration`.
    fn sleep(&self, duration: Duration);
}

/// The process's own clock: what the components and the native tests use.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place the core reads the clock
    fn monotonic(&self) -> Duration {
        use std::sync::OnceLock;
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed()
    }

    #[allow(clippy::disallowed_methods)] // the one place the core waits
    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}
