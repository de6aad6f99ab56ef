//! What the fixtures share about the programs they run: building one with a
//! repository script (whose last line of stdout is the binary's path), and
//! quoting the end of a program's log in an error.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::repo_root;

/// How much of the end of a log goes into an error.
pub const LOG_TAIL_BYTES: u64 = 6 * 1024;

/// Runs `script` (relative to the repository root), which builds `what`, and
/// returns the path on the last line of its stdout; its progress goes to the
/// test's stderr.
pub fn run_build_script(script: &str, what: &str) -> Result<PathBuf> {
    let path = repo_root().join(script);
    let output = Command::new("bash")
        .arg(&path)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not run `{script}` ({})", path.display()))?;
    if !output.status.success() {
        bail!("`{script}` could not build {what} ({}); its log is above", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(last_line) = stdout.lines().rev().find(|line| !line.trim().is_empty()) else {
        bail!("`{script}` printed no path");
    };
    Ok(PathBuf::from(last_line.trim()))
}

/// The last [`LOG_TAIL_BYTES`] of `path`, starting at a line boundary.
pub fn read_tail(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("could not open {}", path.display()))?;
    let length = file.metadata()?.len();
    let start = length.saturating_sub(LOG_TAIL_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let text = if start > 0 { text.split_once('\n').map_or(&*text, |(_, rest)| rest) } else { &text };
    Ok(text.to_owned())
}
