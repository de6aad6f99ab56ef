//! Files the CLI owns: atomic writes with mode 0600, and the home directory.
//!
//! A write goes to a temporary file in the target's own directory (so the
//! rename cannot cross file systems), is flushed to disk, and is renamed over
//! the target: a concurrent reader sees the old file or the new one, never a
//! partial one. The temporary file is created 0600 and the mode is set
//! explicitly, so a secret is never readable by others, even for a moment.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::error::{CliError, Result};

/// Write `bytes` to `path` atomically, with mode 0600. Creates the parent
/// directory (mode 0700) if it is missing. If `path` is a symbolic link, the
/// file it points at is replaced, not the link.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let target = match fs::canonicalize(path) {
        Ok(real) => real,
        Err(_) => path.to_path_buf(),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_private_dir(&dir)?;
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(CliError::io(format!("creating a temporary file in {}", dir.display())))?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(CliError::io(format!("setting the mode of a temporary file in {}", dir.display())))?;
    tmp.write_all(bytes).map_err(CliError::io(format!("writing {}", target.display())))?;
    tmp.as_file().sync_all().map_err(CliError::io(format!("writing {}", target.display())))?;
    tmp.persist(&target)
        .map_err(|e| CliError::Io { context: format!("replacing {}", target.display()), source: e.error })?;
    // Make the rename itself durable; failing to sync a directory loses nothing we can fix.
    if let Ok(d) = fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Create `dir` (and its parents) with mode 0700 if it does not exist.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(CliError::io(format!("creating {}", dir.display())))
}

/// Remove `path`; a missing file is not an error. Returns whether it existed.
pub fn remove_if_exists(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(CliError::Io { context: format!("removing {}", path.display()), source: e }),
    }
}

/// The home directory (`$HOME`).
pub fn home() -> Result<PathBuf> {
    match std::env::var_os("HOME") {
        Some(h) if !h.is_empty() => Ok(PathBuf::from(h)),
        _ => Err(CliError::Failed("HOME is not set: set it, or set LANYARD_CONFIG and KUBECONFIG".into())),
    }
}

/// The current Unix time in seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
