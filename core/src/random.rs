//! Randomness, injected: the core draws random bytes only through a
//! [`Random`] it is handed (in [`crate::Env`]), never behind a function's
//! signature, so every secret it makes can be reproduced in a test.
//! [`SystemRandom`] is the one place that reads the platform's randomness
//! (`core/clippy.toml` forbids it anywhere else).

/// The platform has no randomness to give (the secret is not made).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the platform has no randomness: {0}")]
pub struct NoRandomness(pub String);

/// A source of random bytes.
pub trait Random {
    /// Fill `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]) -> Result<(), NoRandomness>;
}

/// The platform's randomness (`getrandom`: the OS, or WASI's `random`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemRandom;

impl Random for SystemRandom {
    #[allow(clippy::disallowed_methods)] // The one use.
    fn fill(&self, buf: &mut [u8]) -> Result<(), NoRandomness> {
        getrandom::fill(buf).map_err(|e| NoRandomness(e.to_string()))
    }
}
