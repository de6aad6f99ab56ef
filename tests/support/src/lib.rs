//! Helpers that every test suite shares (the API, CLI, agent and Kubernetes
//! tests): where the repository is, the one way a test waits for
//! something, a condition polled until a deadline ([`wait_for`]), and running
//! the scripts that build the fixtures' programs ([`scripts`]).

pub mod scripts;
mod wait;

use std::path::{Path, PathBuf};

pub use wait::{Probe, wait_for};

/// The repository root: the nearest directory holding `spin.toml` above the
/// package whose tests are running (cargo sets `CARGO_MANIFEST_DIR` when it
/// runs a test), else above the working directory (a benchmark binary that
/// a script runs from the checkout). Found at run time, not baked in at
/// compile time, because several checkouts share one cached target directory
/// and a binary built in one may be reused by another; the path it was
/// compiled at is the last resort.
pub fn repo_root() -> PathBuf {
    let candidates = [
        std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from),
        std::env::current_dir().ok(),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR"))),
    ];
    let found = candidates
        .iter()
        .flatten()
        .find_map(|start| start.ancestors().find(|dir| dir.join("spin.toml").is_file()).map(Path::to_path_buf));
    found.unwrap_or_else(|| {
        panic!("no spin.toml above {candidates:?}: run the tests with cargo, or the benchmarks, from the repository")
    })
}
