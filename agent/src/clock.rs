//! Wall-clock time, injected: the proxy's decisions (token expiry, the access
//! state's age) take the time from a [`WallClock`], so a test can choose it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in seconds.
pub trait WallClock: Send + Sync + 'static {
    /// Seconds since the Unix epoch.
    fn unix_now(&self) -> u64;
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemWallClock;

impl WallClock for SystemWallClock {
    fn unix_now(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
    }
}
