//! What the fixtures share about the programs they run: finding one that a
//! repository script builds ([`Built`]: an environment variable naming it, or
//! the script's last line of stdout), and quoting the end of a program's log
//! in an error.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

use crate::repo_root;

/// How much of the end of a log goes into an error.
pub const LOG_TAIL_BYTES: u64 = 6 * 1024;

/// A program (or folder of programs) that a repository script builds into
/// the cache outside the clone. The script is idempotent and returns at once
/// when it is built, so a fixture runs it once per test process.
#[derive(Debug, Clone, Copy)]
pub struct Built {
    /// What it is, for messages ("the fake kubelet").
    pub what: &'static str,
    /// The script that builds it, relative to the repository root.
    pub script: &'static str,
    /// The environment variable that names it when it is built already
    /// (`scripts/test` sets these); the script is not run then.
    pub env: &'static str,
}

impl Built {
    /// Its path, found once per test process: `cell` (a `static` of the
    /// caller's) keeps the answer, and concurrent tests wait for the one that
    /// runs the script.
    pub fn locate(&self, cell: &'static OnceLock<Result<PathBuf, String>>) -> Result<PathBuf> {
        cell.get_or_init(|| self.find().map_err(|error| format!("{error:#}"))).clone().map_err(anyhow::Error::msg)
    }

    fn find(&self) -> Result<PathBuf> {
        match std::env::var_os(self.env) {
            Some(path) => Ok(PathBuf::from(path)),
            None => run_build_script(self.script, self.what),
        }
    }

    /// `path` if it is a file; else an error naming the script that builds it.
    pub fn require_file(&self, path: PathBuf) -> Result<PathBuf> {
        if !path.is_file() {
            bail!("{} {} is missing: build it with `{}`", self.what, path.display(), self.script);
        }
        Ok(path)
    }
}

/// Runs `script` (relative to the repository root), which builds `what`, and
/// returns the path on the last line of its stdout; its progress goes to the
/// test's stderr.
fn run_build_script(script: &str, what: &str) -> Result<PathBuf> {
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
