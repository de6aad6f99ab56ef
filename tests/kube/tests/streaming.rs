//! kubectl's streaming commands end to end, with no container runtime: the
//! real kubectl, with the admin's kubeconfig, against the real API server,
//! which forwards each session over verified TLS to a fake kubelet
//! (`tests/kubelet/`) registered as a node. Each of exec (arguments, stdin,
//! exit code), attach and port-forward runs over SPDY and over WebSocket, and
//! checks the bytes or the exit code that come back and, from the API
//! server's own counters, that the session reached it over the transport
//! asked for.
//!
//! The fake kubelet comes from `scripts/fake-kubelet` (and the control plane
//! from `scripts/kube-binaries`); if either cannot be had, every test fails
//! with a message naming the script.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use lanyard_kube::{
    FAKE_NODE_LABEL, FakeNode, Identity, KubeCluster, Streaming, WebSocketStreams, attach, exec, exec_cat_stdin,
    exec_echo, exec_exit_code, fake_kubelet, port_forward_roundtrip,
};
use lanyard_test_support::{Probe, wait_for};

const POD: &str = "target";

/// A started cluster with a fake node; the namespace holds Pod [`POD`] on it.
fn start() -> Result<KubeCluster> {
    KubeCluster::start().context("starting the test control plane (binaries from scripts/kube-binaries)")
}

fn node_with_pod<'c>(cluster: &'c KubeCluster, prefix: &str) -> Result<(FakeNode<'c>, String)> {
    let node = cluster.start_node().context("starting a fake node (binary from scripts/fake-kubelet)")?;
    let namespace = cluster.fresh_namespace(prefix)?;
    node.pod(&namespace, POD)?;
    Ok((node, namespace))
}

/// Which of the API server's WebSocket counters a command moves.
#[derive(Clone, Copy)]
enum Kind {
    RemoteCommand,
    PortForward,
}

/// Runs `operation` over each transport, and checks after each that the API
/// server received exactly one WebSocket stream of `kind` over WebSocket,
/// and none over SPDY (kubectl would fall back to SPDY silently).
fn over_each_transport(
    cluster: &KubeCluster,
    node: &FakeNode<'_>,
    kind: Kind,
    mut operation: impl FnMut(Streaming) -> Result<()>,
) -> Result<()> {
    for protocol in Streaming::ALL {
        let before = cluster.websocket_streams()?;
        operation(protocol)
            .with_context(|| format!("over {protocol:?}; the fake kubelet's log ends with:\n{}", node.log_tails()))?;
        let after = cluster.websocket_streams()?;
        let count = |streams: WebSocketStreams| match kind {
            Kind::RemoteCommand => streams.remote_command,
            Kind::PortForward => streams.port_forward,
        };
        let expected = match protocol {
            Streaming::Spdy => 0,
            Streaming::WebSocket => 1,
        };
        ensure!(
            count(after) - count(before) == expected,
            "over {protocol:?} the API server counted {} WebSocket streams, not {expected} ({before:?} then {after:?})",
            count(after) - count(before)
        );
    }
    Ok(())
}

#[test]
fn exec_prints_what_echo_is_given() -> Result<()> {
    let cluster = start()?;
    let (node, namespace) = node_with_pod(&cluster, "exec-echo")?;
    over_each_transport(&cluster, &node, Kind::RemoteCommand, |protocol| {
        let stdout = exec_echo(cluster.admin_kubeconfig(), &namespace, POD, &["hello", "from", "exec"], protocol)?;
        ensure!(stdout == "hello from exec\n", "echo printed {stdout:?}");
        Ok(())
    })
}

#[test]
fn exec_with_stdin_gets_all_of_it_to_the_container() -> Result<()> {
    let cluster = start()?;
    let (node, namespace) = node_with_pod(&cluster, "exec-stdin")?;
    // More than one frame's worth, ending without a newline.
    let input: String = (0..4000).map(|line| format!("line {line}\n")).collect::<String>() + "no newline at the end";
    over_each_transport(&cluster, &node, Kind::RemoteCommand, |protocol| {
        let stdout = exec_cat_stdin(cluster.admin_kubeconfig(), &namespace, POD, input.as_bytes(), protocol)?;
        ensure!(stdout == input, "cat returned {} bytes, not the {} sent", stdout.len(), input.len());
        Ok(())
    })
}

#[test]
fn exec_exit_code_is_kubectls() -> Result<()> {
    let cluster = start()?;
    let (node, namespace) = node_with_pod(&cluster, "exec-exit")?;
    for code in [0, 3, 42] {
        over_each_transport(&cluster, &node, Kind::RemoteCommand, |protocol| {
            let exit = exec_exit_code(cluster.admin_kubeconfig(), &namespace, POD, code, protocol)?;
            ensure!(exit == i32::from(code), "`exit {code}` made kubectl exit {exit}");
            Ok(())
        })?;
    }
    over_each_transport(&cluster, &node, Kind::RemoteCommand, |protocol| {
        let output = exec(cluster.admin_kubeconfig(), &namespace, POD, &["no-such-command"], None, protocol)?;
        ensure!(output.status.code() == Some(127), "an unknown command made kubectl exit {}", output.status);
        ensure!(output.stderr.contains("no-such-command: command not found"), "stderr: {}", output.stderr);
        Ok(())
    })
}

#[test]
fn attach_copies_stdin_to_stdout() -> Result<()> {
    let cluster = start()?;
    let (node, namespace) = node_with_pod(&cluster, "attach")?;
    over_each_transport(&cluster, &node, Kind::RemoteCommand, |protocol| {
        let input = format!("attached over {protocol:?}\nsecond line\n");
        let stdout = attach(cluster.admin_kubeconfig(), &namespace, POD, input.as_bytes(), protocol)?;
        ensure!(stdout == input, "attach returned {stdout:?}");
        Ok(())
    })
}

#[test]
fn port_forward_reaches_a_port_and_back() -> Result<()> {
    let cluster = start()?;
    let (node, namespace) = node_with_pod(&cluster, "port-forward")?;
    over_each_transport(&cluster, &node, Kind::PortForward, |protocol| {
        port_forward_roundtrip(cluster.admin_kubeconfig(), &namespace, POD, protocol)
    })
}

/// A fake kubelet run by hand, killed when dropped.
struct KilledOnDrop(Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn api_server_refuses_a_kubelet_certificate_its_ca_did_not_sign() -> Result<()> {
    let cluster = start()?;
    let (node, namespace) = node_with_pod(&cluster, "untrusted")?;
    let selector = format!("{FAKE_NODE_LABEL}=true");
    let nodes = cluster.kubectl_ok(Identity::Admin, ["get", "nodes", "-l", &selector, "-o", "name"])?;
    ensure!(nodes.trim() == format!("node/{}", node.name()), "fake nodes: {nodes}");
    let trusted = exec_echo(cluster.admin_kubeconfig(), &namespace, POD, &["trusted"], Streaming::Spdy)?;
    ensure!(trusted == "trusted\n", "echo printed {trusted:?}");

    // Without certificate flags the fake kubelet signs its own certificate.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(fake_kubelet()?)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("could not start a self-signed fake kubelet")?;
    let _untrusted = KilledOnDrop(child);
    wait_for("the self-signed fake kubelet to listen", Duration::from_secs(60), || {
        Ok(match TcpStream::connect(("127.0.0.1", port)) {
            Ok(_) => Probe::Ready(()),
            Err(error) => Probe::NotYet(error.to_string()),
        })
    })?;
    let status = format!(r#"{{"status":{{"daemonEndpoints":{{"kubeletEndpoint":{{"Port":{port}}}}}}}}}"#);
    cluster.kubectl_ok(
        Identity::Admin,
        ["patch", "node", node.name(), "--subresource=status", "--type=merge", "-p", &status],
    )?;
    let refused = exec(cluster.admin_kubeconfig(), &namespace, POD, &["echo", "untrusted"], None, Streaming::Spdy)?;
    ensure!(!refused.success(), "the API server trusted a self-signed kubelet: {}", refused.stdout);
    ensure!(
        refused.stderr.contains("x509: certificate signed by unknown authority"),
        "expected the API server to refuse the kubelet's certificate, got: {}",
        refused.stderr
    );
    Ok(())
}
