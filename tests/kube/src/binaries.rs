//! Finding the control-plane binaries (etcd, kube-apiserver,
//! kube-controller-manager) that `scripts/kube-binaries` builds from the
//! upstream Go modules into the cache outside the clone.
//!
//! The script is idempotent and returns in well under a second once the
//! binaries exist, so the fixture simply runs it (once per test process) and
//! takes the bin directory from the last line of its stdout. A cold build takes
//! a long time; its progress goes to the test's stderr. Setting
//! `LANYARD_KUBE_BIN_DIR` skips the script and uses that directory instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use lanyard_test_support::repo_root;

/// The script that builds the binaries, relative to the repository root.
pub const BUILD_SCRIPT: &str = "scripts/kube-binaries";

/// Environment variable naming a directory that already holds the binaries.
pub const BIN_DIR_ENV: &str = "LANYARD_KUBE_BIN_DIR";

/// Paths of the three control-plane binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    pub kube_controller_manager: PathBuf,
}

impl Binaries {
    /// The binaries of this test process, building them on first use.
    pub fn get() -> Result<Binaries> {
        // Concurrent tests wait here for the one that runs the script.
        static BIN_DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
        let bin_dir = BIN_DIR
            .get_or_init(|| locate_bin_dir().map_err(|error| format!("{error:#}")))
            .clone()
            .map_err(anyhow::Error::msg)?;
        Binaries::in_dir(&bin_dir)
    }

    /// The binaries in `bin_dir`, failing if one is missing.
    pub fn in_dir(bin_dir: &Path) -> Result<Binaries> {
        let binary = |name: &str| -> Result<PathBuf> {
            let path = bin_dir.join(name);
            if !path.is_file() {
                bail!("{} is missing: build the Kubernetes test binaries with `{BUILD_SCRIPT}`", path.display());
            }
            Ok(path)
        };
        Ok(Binaries {
            etcd: binary("etcd")?,
            kube_apiserver: binary("kube-apiserver")?,
            kube_controller_manager: binary("kube-controller-manager")?,
        })
    }
}

fn locate_bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
        return Ok(PathBuf::from(dir));
    }
    let script = repo_root().join(BUILD_SCRIPT);
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not run `{BUILD_SCRIPT}` ({})", script.display()))?;
    if !output.status.success() {
        bail!("`{BUILD_SCRIPT}` could not build the Kubernetes test binaries ({}); its log is above", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(last_line) = stdout.lines().rev().find(|line| !line.trim().is_empty()) else {
        bail!("`{BUILD_SCRIPT}` printed no bin directory");
    };
    Ok(PathBuf::from(last_line.trim()))
}
