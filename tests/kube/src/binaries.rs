//! Finding the binaries the fixture runs, which scripts build from source
//! into the cache outside the clone: the control plane (etcd, kube-apiserver,
//! kube-controller-manager) from the upstream Go modules by
//! `scripts/kube-binaries`, and the fake kubelet from `tests/kubelet/` by
//! `scripts/fake-kubelet`.
//!
//! Both scripts are idempotent and return in well under a second once their
//! binaries exist, so the fixture simply runs each (once per test process)
//! and takes the path from the last line of its stdout. A cold build takes a
//! while (the control plane about 20 minutes, the fake kubelet under a
//! minute); its progress goes to the test's stderr. Setting
//! `LANYARD_KUBE_BIN_DIR` (a directory with the three control-plane binaries)
//! or `LANYARD_FAKE_KUBELET` (the fake kubelet's path, which `scripts/test`
//! sets) skips the script. A missing binary is an error naming the script
//! that builds it: no test skips.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Result, bail};
use lanyard_test_support::scripts::Built;

/// The script that builds the binaries, relative to the repository root.
pub const BUILD_SCRIPT: &str = "scripts/kube-binaries";

/// Environment variable naming a directory that already holds the binaries.
pub const BIN_DIR_ENV: &str = "LANYARD_KUBE_BIN_DIR";

/// The script that builds the fake kubelet, relative to the repository root.
pub const FAKE_KUBELET_SCRIPT: &str = "scripts/fake-kubelet";

/// Environment variable naming an already built fake kubelet binary.
pub const FAKE_KUBELET_ENV: &str = "LANYARD_FAKE_KUBELET";

const CONTROL_PLANE: Built = Built { what: "the Kubernetes test binaries", script: BUILD_SCRIPT, env: BIN_DIR_ENV };
const FAKE_KUBELET: Built = Built { what: "the fake kubelet", script: FAKE_KUBELET_SCRIPT, env: FAKE_KUBELET_ENV };

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
        static BIN_DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
        Binaries::in_dir(&CONTROL_PLANE.locate(&BIN_DIR)?)
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

/// The fake kubelet of this test process (see `tests/kubelet/main.go`),
/// building it on first use.
pub fn fake_kubelet() -> Result<PathBuf> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FAKE_KUBELET.require_file(FAKE_KUBELET.locate(&BINARY)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_fake_kubelet_names_the_script_that_builds_it() {
        let error = FAKE_KUBELET.require_file(PathBuf::from("/nonexistent/fake-kubelet")).unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("/nonexistent/fake-kubelet is missing"), "{message}");
        assert!(message.contains("scripts/fake-kubelet"), "{message}");
    }
}
