//! The control plane's child processes: each runs in its own process group
//! with stdout and stderr in a log file, and all are killed (group-wide) and
//! reaped when the [`Supervisor`] is dropped, which also happens while a
//! panicking test unwinds.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use anyhow::{Context, Result, bail};
use lanyard_test_support::scripts::read_tail;

/// One child process of the control plane.
struct ManagedProcess {
    name: &'static str,
    child: Child,
    log_path: PathBuf,
    /// Set once the process has been reaped: its pid may then be reused.
    exit_status: Option<ExitStatus>,
}

/// Owns the control plane's processes, in start order.
pub(crate) struct Supervisor {
    log_dir: PathBuf,
    processes: Vec<ManagedProcess>,
}

impl Supervisor {
    pub(crate) fn new(log_dir: PathBuf) -> Result<Supervisor> {
        std::fs::create_dir_all(&log_dir).with_context(|| format!("could not create {}", log_dir.display()))?;
        Ok(Supervisor { log_dir, processes: Vec::new() })
    }

    /// Starts `program` as `name` in a new process group, logging to
    /// `<log_dir>/<name>.log`.
    pub(crate) fn spawn(&mut self, name: &'static str, program: &Path, args: &[String]) -> Result<()> {
        let log_path = self.log_dir.join(format!("{name}.log"));
        let log = File::create(&log_path).with_context(|| format!("could not create {}", log_path.display()))?;
        let log_for_stderr = log.try_clone().context("could not share the log file")?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_for_stderr)
            .process_group(0)
            .spawn()
            .with_context(|| format!("could not start {name} ({})", program.display()))?;
        self.processes.push(ManagedProcess { name, child, log_path, exit_status: None });
        Ok(())
    }

    /// Fails if any process has exited: the control plane never stops by itself.
    pub(crate) fn ensure_running(&mut self) -> Result<()> {
        for process in &mut self.processes {
            if process.exit_status.is_none() {
                process.exit_status =
                    process.child.try_wait().with_context(|| format!("could not check on {}", process.name))?;
            }
            if let Some(status) = process.exit_status {
                bail!("{} exited unexpectedly ({status})", process.name);
            }
        }
        Ok(())
    }

    /// The process ids, in start order.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.processes.iter().map(|process| process.child.id()).collect()
    }

    /// The end of every process's log, each under a header naming it.
    pub(crate) fn log_tails(&self) -> String {
        let mut report = String::new();
        for process in &self.processes {
            report.push_str(&format!("----- {} ({}), last lines -----\n", process.name, process.log_path.display()));
            match read_tail(&process.log_path) {
                Ok(tail) => report.push_str(&tail),
                Err(error) => report.push_str(&format!("(could not read the log: {error:#})")),
            }
            if !report.ends_with('\n') {
                report.push('\n');
            }
        }
        report
    }

    /// Kills every process group, newest first, and reaps the processes.
    pub(crate) fn stop_all(&mut self) {
        while let Some(mut process) = self.processes.pop() {
            if process.exit_status.is_none() {
                kill_group(&process.child);
                // Reap it; an error here means it is already gone.
                let _ = process.child.wait();
            }
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Sends SIGKILL to the process group led by `child` (not yet reaped, so its
/// pid, and thus the group id, cannot have been reused).
fn kill_group(child: &Child) {
    // kill(1) with a negative pid names the process group that `spawn` made
    // the child lead. Best effort: this runs on teardown, and must not panic.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}
