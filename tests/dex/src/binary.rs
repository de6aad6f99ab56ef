//! Finding the Dex binary, which `scripts/dex` builds from source (the Go
//! module pinned by `tests/dex/go/`) into the cache outside the clone.
//!
//! The script is idempotent and returns at once when the binary exists, so
//! the fixture runs it once per test process and takes the path from the last
//! line of its stdout; a cold build takes about a minute, and its progress
//! goes to the test's stderr. Setting `LANYARD_DEX` (which `scripts/test`
//! does) skips the script. A missing binary is an error naming the script
//! that builds it: no test skips.

use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::Result;
use lanyard_test_support::scripts::Built;

/// The script that builds Dex, relative to the repository root.
pub const DEX_SCRIPT: &str = "scripts/dex";

/// Environment variable naming an already built Dex binary.
pub const DEX_ENV: &str = "LANYARD_DEX";

const DEX: Built = Built { what: "the Dex binary", script: DEX_SCRIPT, env: DEX_ENV };

/// The Dex binary of this test process, building it on first use.
pub fn dex_binary() -> Result<PathBuf> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DEX.require_file(DEX.locate(&BINARY)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_names_the_script_that_builds_it() {
        let message = format!("{:#}", DEX.require_file(PathBuf::from("/nonexistent/dex")).unwrap_err());
        assert!(message.contains("/nonexistent/dex is missing"), "{message}");
        assert!(message.contains("scripts/dex"), "{message}");
    }
}
