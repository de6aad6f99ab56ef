//! kubectl's streaming commands, run for real: `exec` (with and without
//! stdin, and its exit code), `attach` and `port-forward`, over either of
//! kubectl's transports ([`Streaming`]), each with a deadline. They take any
//! kubeconfig, so the same operations can be run straight against the API
//! server or through a proxy in front of it. Against a [`FakeNode`] Pod
//! (see `tests/kubelet/main.go`) the commands' results are known exactly.
//!
//! Also here: a TCP echo server for port-forward to reach, and the API
//! server's own count of the WebSocket streams it received, which tells a
//! test that a stream really arrived over WebSocket (kubectl falls back to
//! SPDY, silently, if a WebSocket upgrade fails).
//!
//! [`FakeNode`]: crate::FakeNode

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::kubectl::{Kubectl, KubectlOutput, RunningKubectl};
use crate::{Identity, KubeCluster, loopback};

/// How long one streaming kubectl command may take, from start to exit.
pub const STREAM_DEADLINE: Duration = Duration::from_secs(60);

/// Which transport kubectl streams over. kubectl 1.30 and later try
/// WebSocket first; the environment variables `KUBECTL_REMOTE_COMMAND_WEBSOCKETS`
/// (exec, attach) and `KUBECTL_PORT_FORWARD_WEBSOCKETS` (port-forward) choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streaming {
    /// SPDY/3.1 upgrades (`v4.channel.k8s.io`, `portforward.k8s.io`).
    Spdy,
    /// WebSocket upgrades (`v5.channel.k8s.io`, and SPDY tunnelled in
    /// WebSocket for port-forward).
    WebSocket,
}

impl Streaming {
    /// Both transports, for tests that run an operation over each.
    pub const ALL: [Streaming; 2] = [Streaming::Spdy, Streaming::WebSocket];

    /// Sets kubectl's two switches for this transport.
    fn configure(self, kubectl: Kubectl) -> Kubectl {
        let websockets = match self {
            Streaming::Spdy => "false",
            Streaming::WebSocket => "true",
        };
        kubectl.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", websockets).env("KUBECTL_PORT_FORWARD_WEBSOCKETS", websockets)
    }
}

/// `kubectl exec [-i] -n <namespace> <pod> -- <command>` through
/// `kubeconfig`, with `stdin` (closed once sent) if given. Whatever the exit,
/// the output is returned; it fails only if kubectl cannot run or outlives
/// [`STREAM_DEADLINE`].
pub fn exec(
    kubeconfig: &Path,
    namespace: &str,
    pod: &str,
    command: &[&str],
    stdin: Option<&[u8]>,
    protocol: Streaming,
) -> Result<KubectlOutput> {
    let mut args = vec!["exec"];
    if stdin.is_some() {
        args.push("-i");
    }
    args.extend(["-n", namespace, pod, "--"]);
    args.extend(command);
    run_stream(kubeconfig, &args, stdin, protocol)
}

/// `echo <words>` in `pod`: returns stdout (the words and a newline from a
/// fake kubelet), failing unless kubectl exits 0.
pub fn exec_echo(kubeconfig: &Path, namespace: &str, pod: &str, words: &[&str], protocol: Streaming) -> Result<String> {
    let command: Vec<&str> = std::iter::once("echo").chain(words.iter().copied()).collect();
    let output = exec(kubeconfig, namespace, pod, &command, None, protocol)?;
    succeeded(&output, &format!("exec echo over {protocol:?}"))
}

/// `exec -i <pod> -- cat` with `input` on stdin: returns stdout (`input`
/// back, from a fake kubelet), failing unless kubectl exits 0, which it does
/// only once the end of stdin has reached the container.
pub fn exec_cat_stdin(
    kubeconfig: &Path,
    namespace: &str,
    pod: &str,
    input: &[u8],
    protocol: Streaming,
) -> Result<String> {
    let output = exec(kubeconfig, namespace, pod, &["cat"], Some(input), protocol)?;
    succeeded(&output, &format!("exec -i cat over {protocol:?}"))
}

/// `sh -c 'exit <code>'` in `pod`: returns kubectl's own exit code, which
/// is the command's.
pub fn exec_exit_code(kubeconfig: &Path, namespace: &str, pod: &str, code: u8, protocol: Streaming) -> Result<i32> {
    let script = format!("exit {code}");
    let output = exec(kubeconfig, namespace, pod, &["sh", "-c", &script], None, protocol)?;
    output.status.code().with_context(|| format!("kubectl exec was killed by a signal ({})", output.status))
}

/// `kubectl attach -i -n <namespace> <pod>` with `input` on stdin: returns
/// stdout (`input` back, from a fake kubelet), failing unless kubectl exits 0.
pub fn attach(kubeconfig: &Path, namespace: &str, pod: &str, input: &[u8], protocol: Streaming) -> Result<String> {
    let output = run_stream(kubeconfig, &["attach", "-i", "-n", namespace, pod], Some(input), protocol)?;
    succeeded(&output, &format!("attach -i over {protocol:?}"))
}

/// Port-forwards a local port to a [`TcpEchoServer`] of its own through
/// `pod` (a fake kubelet dials that port on this machine), sends 64 KiB of
/// every byte value through it and checks that they all come back, in order.
pub fn port_forward_roundtrip(kubeconfig: &Path, namespace: &str, pod: &str, protocol: Streaming) -> Result<()> {
    let echo = TcpEchoServer::start()?;
    let forward = PortForward::start(kubeconfig, namespace, pod, echo.port(), protocol)?;
    let payload: Vec<u8> = (0..64 * 1024).map(|index| (index % 251) as u8).collect();
    let echoed = forward
        .roundtrip(&payload)
        .with_context(|| format!("port-forward over {protocol:?}; kubectl's stderr: {}", forward.stderr().trim()))?;
    ensure!(
        echoed == payload,
        "port-forward over {protocol:?} returned {} bytes that differ from the {} sent",
        echoed.len(),
        payload.len()
    );
    Ok(())
}

/// A running `kubectl port-forward`, from a local port kubectl chose on
/// `127.0.0.1` to a port of a pod. Dropping it kills kubectl.
pub struct PortForward {
    kubectl: RunningKubectl,
    local_port: u16,
    _cache_dir: tempfile::TempDir,
}

impl PortForward {
    /// Runs `kubectl port-forward -n <namespace> pod/<pod> --address
    /// 127.0.0.1 :<remote_port>` and waits until it says where it listens.
    pub fn start(
        kubeconfig: &Path,
        namespace: &str,
        pod: &str,
        remote_port: u16,
        protocol: Streaming,
    ) -> Result<PortForward> {
        let cache_dir = kubectl_cache_dir()?;
        let target = format!("pod/{pod}");
        let ports = format!(":{remote_port}");
        let args = ["port-forward", "-n", namespace, &target, "--address", "127.0.0.1", &ports];
        let mut kubectl = protocol.configure(Kubectl::stream(kubeconfig, cache_dir.path(), args)).spawn()?;
        let deadline = Instant::now() + STREAM_DEADLINE;
        // "Forwarding from 127.0.0.1:<local> -> <remote>"
        let listening = kubectl.stdout.wait_for_text(deadline, |text| {
            text.lines().find_map(|line| {
                line.strip_prefix("Forwarding from 127.0.0.1:")?.split_once(" -> ")?.0.parse::<u16>().ok()
            })
        });
        match listening {
            Ok(local_port) => Ok(PortForward { kubectl, local_port, _cache_dir: cache_dir }),
            Err(error) => {
                kubectl.kill();
                bail!(
                    "{} did not start forwarding over {protocol:?} ({error}); it printed: {:?}; on stderr: {:?}",
                    kubectl.description,
                    kubectl.stdout.text(),
                    kubectl.stderr.text()
                )
            }
        }
    }

    /// The local port kubectl listens on.
    pub fn local_port(&self) -> u16 {
        self.local_port
    }

    /// What kubectl has written to stderr so far.
    pub fn stderr(&self) -> String {
        self.kubectl.stderr.text()
    }

    /// Opens a connection to the local port, sends `payload` (then ends the
    /// sending side) and reads until the other end closes, within
    /// [`STREAM_DEADLINE`]. Against a [`TcpEchoServer`] that is `payload`.
    pub fn roundtrip(&self, payload: &[u8]) -> Result<Vec<u8>> {
        let deadline = Instant::now() + STREAM_DEADLINE;
        let mut stream = TcpStream::connect(loopback(self.local_port))
            .with_context(|| format!("could not connect to kubectl's port {}", self.local_port))?;
        let mut writer = stream.try_clone().context("could not share the forwarded connection")?;
        let payload = payload.to_vec();
        // Writing on a thread: what comes back must be read meanwhile.
        let sender = std::thread::spawn(move || -> std::io::Result<()> {
            writer.write_all(&payload)?;
            writer.shutdown(Shutdown::Write)
        });
        let mut received = Vec::new();
        let mut buffer = [0u8; 16 * 1024];
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                bail!(
                    "the forwarded connection was still open after {STREAM_DEADLINE:?} ({} bytes back)",
                    received.len()
                );
            }
            stream.set_read_timeout(Some(remaining)).context("could not set a read deadline")?;
            match stream.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
                Err(error) => {
                    bail!("reading from the forwarded connection failed after {} bytes: {error}", received.len())
                }
            }
        }
        match sender.join() {
            Ok(Ok(())) => Ok(received),
            Ok(Err(error)) => bail!("writing to the forwarded connection failed: {error}"),
            Err(_) => bail!("the thread writing to the forwarded connection panicked"),
        }
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        self.kubectl.kill();
    }
}

/// A TCP server on a free `127.0.0.1` port that sends back whatever each
/// connection sends, and closes the connection when the client has ended its
/// side. Dropping it stops accepting.
pub struct TcpEchoServer {
    port: u16,
    stopping: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl TcpEchoServer {
    pub fn start() -> Result<TcpEchoServer> {
        let listener = TcpListener::bind(loopback(0)).context("could not listen for the echo server")?;
        let port = listener.local_addr().context("could not read the echo server's port")?.port();
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&stopping);
        let acceptor = std::thread::spawn(move || {
            for connection in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(connection) = connection {
                    std::thread::spawn(move || echo(connection));
                }
            }
        });
        Ok(TcpEchoServer { port, stopping, acceptor: Some(acceptor) })
    }

    /// The port it listens on, on `127.0.0.1`.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for TcpEchoServer {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the acceptor, which then sees the flag.
        let _ = TcpStream::connect(loopback(self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Copies a connection back to itself until the client ends its side (or
/// goes quiet for longer than any test runs), then closes it.
fn echo(connection: TcpStream) {
    let _ = connection.set_read_timeout(Some(STREAM_DEADLINE));
    let (Ok(mut reader), mut writer) = (connection.try_clone(), connection) else {
        return;
    };
    let _ = std::io::copy(&mut reader, &mut writer);
    let _ = writer.shutdown(Shutdown::Both);
}

/// How many WebSocket streams the API server has received, by kind. It
/// turns each into SPDY towards the kubelet, and counts it as it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WebSocketStreams {
    /// exec and attach sessions (`apiserver_stream_translator_requests_total`).
    pub remote_command: u64,
    /// port-forward sessions (`apiserver_stream_tunnel_requests_total`).
    pub port_forward: u64,
}

impl KubeCluster {
    /// The API server's counts of the WebSocket streams it has received,
    /// from its `/metrics`: a test compares them before and after a command
    /// to know which transport reached the API server.
    pub fn websocket_streams(&self) -> Result<WebSocketStreams> {
        let metrics = self.kubectl_ok(Identity::Admin, ["get", "--raw=/metrics"])?;
        Ok(WebSocketStreams {
            remote_command: metric_sum(&metrics, "apiserver_stream_translator_requests_total"),
            port_forward: metric_sum(&metrics, "apiserver_stream_tunnel_requests_total"),
        })
    }
}

/// The sum of a counter's samples over all its labels (0 if it has none).
fn metric_sum(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let value = if rest.starts_with('{') { rest.split_once("} ")?.1 } else { rest.strip_prefix(' ')? };
            // Counters print as integers or floats ("3", "3e+00").
            value.trim().parse::<f64>().ok()
        })
        .sum::<f64>() as u64
}

/// Runs one streaming kubectl command to its end, within [`STREAM_DEADLINE`].
fn run_stream(kubeconfig: &Path, args: &[&str], stdin: Option<&[u8]>, protocol: Streaming) -> Result<KubectlOutput> {
    let cache_dir = kubectl_cache_dir()?;
    protocol.configure(Kubectl::stream(kubeconfig, cache_dir.path(), args)).run(stdin, STREAM_DEADLINE)
}

/// A private discovery cache for one kubectl run: the helpers take any
/// kubeconfig, so they keep nothing beside it.
fn kubectl_cache_dir() -> Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix("lanyard-kubectl-").tempdir().context("could not create a kubectl cache directory")
}

/// The stdout of a run that must have exited 0.
fn succeeded(output: &KubectlOutput, what: &str) -> Result<String> {
    if !output.success() {
        bail!("kubectl {what} failed ({}): {}", output.status, output.stderr.trim());
    }
    Ok(output.stdout.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sums_add_every_label() {
        let metrics = "# HELP apiserver_stream_translator_requests_total ...\n\
                       apiserver_stream_translator_requests_total{code=\"200\"} 2\n\
                       apiserver_stream_translator_requests_total{code=\"500\"} 1\n\
                       apiserver_stream_tunnel_requests_total{code=\"101\"} 4\n\
                       apiserver_stream_translator_requests_total_other 9\n";
        assert_eq!(metric_sum(metrics, "apiserver_stream_translator_requests_total"), 3);
        assert_eq!(metric_sum(metrics, "apiserver_stream_tunnel_requests_total"), 4);
        assert_eq!(metric_sum(metrics, "apiserver_websocket_streaming_requests_total"), 0);
    }

    #[test]
    fn echo_server_sends_back_what_it_gets() -> Result<()> {
        let server = TcpEchoServer::start()?;
        let mut stream = TcpStream::connect(loopback(server.port()))?;
        stream.set_read_timeout(Some(STREAM_DEADLINE))?;
        stream.write_all(b"hello, echo")?;
        stream.shutdown(Shutdown::Write)?;
        let mut back = Vec::new();
        stream.read_to_end(&mut back)?;
        assert_eq!(back, b"hello, echo");
        Ok(())
    }
}
