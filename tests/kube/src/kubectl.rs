//! How the fixture runs the real kubectl: which binary, the flags every run
//! gets (its kubeconfig, a private discovery cache, never `$KUBECONFIG`), and
//! running it to the end, with input on stdin and a deadline after which it is
//! killed, its output captured as it comes so that a timeout can show it.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The kubectl the helpers run, unless `LANYARD_KUBECTL` names another.
pub const DEFAULT_KUBECTL: &str = "/usr/bin/kubectl";
/// Environment variable naming another kubectl binary.
const KUBECTL_ENV: &str = "LANYARD_KUBECTL";
/// The kubectl to run: `$LANYARD_KUBECTL`, else [`DEFAULT_KUBECTL`].
pub fn kubectl_program() -> OsString {
    std::env::var_os(KUBECTL_ENV).unwrap_or_else(|| DEFAULT_KUBECTL.into())
}

/// Every request (not a stream) gives up on the API server after this long.
const KUBECTL_REQUEST_TIMEOUT: &str = "--request-timeout=30s";

/// What a kubectl run printed, and how it exited.
#[derive(Debug, Clone)]
pub struct KubectlOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl KubectlOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// One kubectl command line, with the flags every run gets.
pub(crate) struct Kubectl {
    command: Command,
    description: String,
}

impl Kubectl {
    /// A request (`get`, `create`, `auth can-i`, ...): kubectl itself gives
    /// up on the API server after 30 s.
    pub(crate) fn request<I, S>(kubeconfig: &Path, cache_dir: &Path, args: I) -> Kubectl
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Kubectl::new(kubeconfig, cache_dir, &[KUBECTL_REQUEST_TIMEOUT], args)
    }

    /// A stream (`exec`, `attach`, `port-forward`), which may last: no
    /// request timeout, the caller sets the deadline.
    pub(crate) fn stream<I, S>(kubeconfig: &Path, cache_dir: &Path, args: I) -> Kubectl
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Kubectl::new(kubeconfig, cache_dir, &[], args)
    }

    /// `kubectl --kubeconfig <kubeconfig> --cache-dir <cache_dir> <flags>
    /// <args>`, ignoring `$KUBECONFIG`.
    fn new<I, S>(kubeconfig: &Path, cache_dir: &Path, flags: &[&str], args: I) -> Kubectl
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let program = kubectl_program();
        let args: Vec<OsString> = args.into_iter().map(|arg| arg.as_ref().to_owned()).collect();
        let description = format!("`kubectl {}`", display_args(&args));
        let mut command = Command::new(program);
        command.arg("--kubeconfig").arg(kubeconfig).arg("--cache-dir").arg(cache_dir).args(flags);
        command.args(&args).env_remove("KUBECONFIG");
        Kubectl { command, description }
    }

    /// Sets an environment variable for kubectl.
    pub(crate) fn env(mut self, name: &str, value: &str) -> Kubectl {
        self.command.env(name, value);
        self
    }

    /// Runs kubectl with no stdin and waits for it (a request gives up by
    /// itself after 30 s).
    pub(crate) fn output(mut self) -> Result<KubectlOutput> {
        let output = self
            .command
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("could not run {}", self.description))?;
        Ok(KubectlOutput {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Runs kubectl with `input` on stdin (closed once written; no stdin at
    /// all for `None`) and waits until it exits. After `timeout` it is killed
    /// and the error shows what it had printed.
    pub(crate) fn run(self, input: Option<&[u8]>, timeout: Duration) -> Result<KubectlOutput> {
        let deadline = Instant::now() + timeout;
        let mut running = self.start(if input.is_some() { Stdio::piped() } else { Stdio::null() })?;
        if let Some(input) = input {
            let mut stdin = running.child.stdin.take().context("kubectl has no stdin")?;
            let input = input.to_vec();
            // A thread, so that a kubectl that reads nothing cannot block us;
            // dropping stdin at its end closes it.
            std::thread::spawn(move || {
                let _ = stdin.write_all(&input);
            });
        }
        let outcome = running.stdout.wait_for_end(deadline).and_then(|()| running.stderr.wait_for_end(deadline));
        if let Err(error) = outcome {
            running.kill();
            bail!(
                "{} {error} after {timeout:?}; it printed: {:?}; on stderr: {:?}",
                running.description,
                running.stdout.text(),
                running.stderr.text()
            );
        }
        let status = running.child.wait().with_context(|| format!("could not wait for {}", running.description))?;
        Ok(KubectlOutput { status, stdout: running.stdout.text(), stderr: running.stderr.text() })
    }

    /// Starts kubectl with no stdin, and stdout and stderr captured as they
    /// come.
    pub(crate) fn spawn(self) -> Result<RunningKubectl> {
        self.start(Stdio::null())
    }

    fn start(mut self, stdin: Stdio) -> Result<RunningKubectl> {
        let mut child = self
            .command
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("could not run {}", self.description))?;
        let stdout = Capture::start(child.stdout.take().context("kubectl has no stdout")?);
        let stderr = Capture::start(child.stderr.take().context("kubectl has no stderr")?);
        Ok(RunningKubectl { child, stdout, stderr, description: self.description })
    }
}

/// A kubectl that is running, its output being captured.
pub(crate) struct RunningKubectl {
    pub(crate) child: Child,
    pub(crate) stdout: Capture,
    pub(crate) stderr: Capture,
    pub(crate) description: String,
}

impl RunningKubectl {
    /// Kills kubectl and reaps it (it may already have exited).
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The output of one of kubectl's pipes, read on a thread as it comes.
pub(crate) struct Capture {
    bytes: Arc<Mutex<Vec<u8>>>,
    /// A message for every chunk read, and one when the pipe closes.
    events: Receiver<Event>,
    ended: bool,
}

enum Event {
    Data,
    End,
}

impl Capture {
    fn start(mut pipe: impl Read + Send + 'static) -> Capture {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let (sender, events) = mpsc::channel();
        let shared = Arc::clone(&bytes);
        std::thread::spawn(move || read_all(&mut pipe, &shared, &sender));
        Capture { bytes, events, ended: false }
    }

    /// Everything read so far, as text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }

    /// Waits until the pipe closes (kubectl exited, or closed it).
    fn wait_for_end(&mut self, deadline: Instant) -> Result<()> {
        while !self.ended {
            self.wait_for_more(deadline)?;
        }
        Ok(())
    }

    /// Waits until `found` says yes to the text read so far, and returns what
    /// it found; fails if the pipe closes first or `deadline` passes.
    pub(crate) fn wait_for_text<T>(&mut self, deadline: Instant, found: impl Fn(&str) -> Option<T>) -> Result<T> {
        loop {
            if let Some(value) = found(&self.text()) {
                return Ok(value);
            }
            if self.ended {
                bail!("closed its output");
            }
            self.wait_for_more(deadline)?;
        }
    }

    fn wait_for_more(&mut self, deadline: Instant) -> Result<()> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match self.events.recv_timeout(remaining) {
            Ok(Event::Data) => Ok(()),
            Ok(Event::End) | Err(RecvTimeoutError::Disconnected) => {
                self.ended = true;
                Ok(())
            }
            Err(RecvTimeoutError::Timeout) => bail!("did not finish"),
        }
    }
}

fn read_all(pipe: &mut impl Read, bytes: &Mutex<Vec<u8>>, events: &Sender<Event>) {
    let mut buffer = [0u8; 8192];
    loop {
        match pipe.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                bytes.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(&buffer[..n]);
                // The receiver may be gone (the run ended): keep draining.
                let _ = events.send(Event::Data);
            }
        }
    }
    let _ = events.send(Event::End);
}

/// Runs kubectl with the 30 s request timeout and no stdin; a non-zero exit
/// is not an error here, only failing to run it is.
pub(crate) fn run_kubectl<I, S>(kubeconfig: &Path, cache_dir: &Path, args: I) -> Result<KubectlOutput>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Kubectl::request(kubeconfig, cache_dir, args).output()
}

/// The arguments joined by spaces, for messages.
pub(crate) fn display_args<S: AsRef<OsStr>>(args: &[S]) -> String {
    let mut text = String::new();
    for (index, arg) in args.iter().enumerate() {
        if index > 0 {
            text.push(' ');
        }
        let _ = write!(text, "{}", arg.as_ref().to_string_lossy());
    }
    text
}
