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

use anyhow::{Result, bail};
use lanyard_test_support::scripts::run_build_script;

/// The script that builds Dex, relative to the repository root.
pub const DEX_SCRIPT: &str = "scripts/dex";

/// Environment variable naming an already built Dex binary.
pub const DEX_ENV: &str = "LANYARD_DEX";

/// The Dex binary of this test process, building it on first use.
pub fn dex_binary() -> Result<PathBuf> {
    // Concurrent tests wait here for the one that runs the script.
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let binary =
        BINARY.get_or_init(|| locate().map_err(|error| format!("{error:#}"))).clone().map_err(anyhow::Error::msg)?;
    ensure_exists(binary)
}

fn ensure_exists(binary: PathBuf) -> Result<PathBuf> {
    if !binary.is_file() {
        bail!("the Dex binary {} is missing: build it with `{DEX_SCRIPT}`", binary.display());
    }
    Ok(binary)
}

fn locate() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(DEX_ENV) {
        return Ok(PathBuf::from(path));
    }
    run_build_script(DEX_SCRIPT, "Dex")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_names_the_script_that_builds_it() {
        let message = format!("{:#}", ensure_exists(PathBuf::from("/nonexistent/dex")).unwrap_err());
        assert!(message.contains("/nonexistent/dex is missing"), "{message}");
        assert!(message.contains("scripts/dex"), "{message}");
    }
}
