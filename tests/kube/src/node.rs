//! Fake nodes: a fake kubelet (`tests/kubelet/`, built by
//! `scripts/fake-kubelet`) serving on loopback, registered as a Ready Node
//! whose kubelet the API server dials at `127.0.0.1:<port>`, and Pods bound to
//! it and marked Running, so that `kubectl exec`, `attach` and `port-forward`
//! go through the real API server to a kubelet without any container runtime.
//!
//! Nothing schedules or runs anything: a Pod is created with `spec.nodeName`
//! set and its status written through the status subresource, as a kubelet
//! would report it. No controller here touches either afterwards (no node
//! lifecycle, no pod GC), so they stay as written.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use lanyard_test_support::{Probe, wait_for};
use serde_json::{Value, json};

use crate::binaries::fake_kubelet;
use crate::kubectl::{Kubectl, KubectlOutput};
use crate::process::Supervisor;
use crate::{KubeCluster, loopback, random_hex, reserve_ports, start_timeout, write_file};

/// The one container of every Pod that [`FakeNode::pod`] makes.
pub const FAKE_CONTAINER: &str = "main";
/// The image that Pod names; nothing ever pulls it.
pub const FAKE_IMAGE: &str = "lanyard.test/fake-kubelet:none";
/// The label every fake Node carries (value `"true"`).
pub const FAKE_NODE_LABEL: &str = "lanyard.test/fake-kubelet";

/// How long one kubectl request may take, at most, here.
const REQUEST_DEADLINE: Duration = Duration::from_secs(60);

/// A fake kubelet registered as a Node of a [`KubeCluster`]. Dropping it
/// kills the kubelet (the Node object stays, unreachable); it cannot outlive
/// its cluster.
pub struct FakeNode<'cluster> {
    /// Behind a lock so that checks on it need only `&self`.
    supervisor: Mutex<Supervisor>,
    cluster: &'cluster KubeCluster,
    name: String,
    port: u16,
}

impl KubeCluster {
    /// Starts a fake kubelet on a free loopback port with a serving
    /// certificate from the cluster's kubelet CA, registers it as a Ready Node
    /// named `fake-node-<random>` (InternalIP `127.0.0.1`, its port as the
    /// kubelet endpoint), and returns once the kubelet listens and the API
    /// server shows the Node so. (The API server's node proxy refuses
    /// loopback addresses, so the first exec is the first request it sends the
    /// kubelet, over TLS verified against the cluster's kubelet CA.)
    ///
    /// The binary comes from `scripts/fake-kubelet` (or
    /// `LANYARD_FAKE_KUBELET`); if it cannot be had this fails, naming the
    /// script. On failure the error carries the end of the kubelet's log.
    pub fn start_node(&self) -> Result<FakeNode<'_>> {
        const ATTEMPTS: usize = 3;
        let binary = fake_kubelet()?;
        let timeout = start_timeout()?;
        let name = format!("fake-node-{}", random_hex(4)?);
        let dir = self.work_dir().join("nodes").join(&name);
        std::fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
        let certificate = self.kubelet_ca.serving_certificate(&name)?;
        let files =
            KubeletFiles { cert: dir.join("kubelet.crt"), key: dir.join("kubelet.key"), logs: dir.join("logs") };
        write_file(&files.cert, &certificate.cert_pem)?;
        write_file(&files.key, &certificate.key_pem)?;

        // As for the control plane, the port is free when reserved but may be
        // taken before the kubelet binds it: then the kubelet exits, and we
        // try again on another.
        let mut attempt = 1;
        let (supervisor, port) = loop {
            match start_kubelet(&binary, &files, timeout) {
                Err(error) if attempt < ATTEMPTS => {
                    eprintln!(
                        "lanyard-kube: the fake kubelet did not start ({}); trying another port ({attempt}/{ATTEMPTS})",
                        error.root_cause()
                    );
                    attempt += 1;
                }
                other => break other?,
            }
        };
        let node = FakeNode { supervisor: Mutex::new(supervisor), cluster: self, name, port };
        node.register(timeout).map_err(|error| {
            error.context(format!("could not register the fake node; its log ends with:\n{}", node.log_tails()))
        })?;
        Ok(node)
    }
}

/// Where one fake kubelet keeps its files.
struct KubeletFiles {
    cert: PathBuf,
    key: PathBuf,
    logs: PathBuf,
}

/// Starts the kubelet on a freshly reserved port and waits until it listens.
fn start_kubelet(binary: &Path, files: &KubeletFiles, timeout: Duration) -> Result<(Supervisor, u16)> {
    let mut supervisor = Supervisor::new(files.logs.clone())?;
    let [reserved] = reserve_ports()?;
    let port = reserved.port;
    reserved.release();
    let args = vec![
        format!("--port={port}"),
        format!("--tls-cert-file={}", files.cert.display()),
        format!("--tls-private-key-file={}", files.key.display()),
    ];
    supervisor.spawn("fake-kubelet", binary, &args)?;
    let listening = wait_for("the fake kubelet to open its port", timeout, || {
        supervisor.ensure_running()?;
        Ok(match TcpStream::connect(loopback(port)) {
            Ok(_) => Probe::Ready(()),
            Err(error) => Probe::NotYet(error.to_string()),
        })
    });
    match listening {
        Ok(()) => Ok((supervisor, port)),
        Err(error) => Err(error.context(format!("the fake kubelet's log ends with:\n{}", supervisor.log_tails()))),
    }
}

impl FakeNode<'_> {
    /// The Node's name, `fake-node-<random>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The loopback port the fake kubelet serves on.
    pub fn kubelet_port(&self) -> u16 {
        self.port
    }

    /// The fake kubelet's process id.
    pub fn process_id(&self) -> u32 {
        self.supervisor().pids()[0]
    }

    /// The end of the fake kubelet's log (one line per request it served).
    pub fn log_tails(&self) -> String {
        self.supervisor().log_tails()
    }

    fn supervisor(&self) -> MutexGuard<'_, Supervisor> {
        self.supervisor.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates Pod `namespace/name` bound to this node, with one container
    /// [`FAKE_CONTAINER`] (stdin open, as `kubectl run -i` makes), and reports
    /// it Running and Ready through the status subresource, as a kubelet
    /// would; returns once the API server shows it so. Waits first for the
    /// namespace's `default` service account, without which the API server
    /// refuses Pods.
    pub fn pod(&self, namespace: &str, name: &str) -> Result<()> {
        let what = format!("pod {namespace}/{name} on {}", self.name);
        self.create_pod(namespace, name).with_context(|| format!("could not create {what}"))?;
        let status = json!({
            "status": {
                "phase": "Running",
                "conditions": [
                    { "type": "PodScheduled", "status": "True" },
                    { "type": "Initialized", "status": "True" },
                    { "type": "ContainersReady", "status": "True" },
                    { "type": "Ready", "status": "True" },
                ],
                "containerStatuses": [{
                    "name": FAKE_CONTAINER,
                    "image": FAKE_IMAGE,
                    "imageID": "",
                    "ready": true,
                    "started": true,
                    "restartCount": 0,
                    "state": { "running": {} },
                }],
            },
        });
        self.admin_ok(
            &["patch", "pod", name, "-n", namespace, "--subresource=status", "--type=merge", "-p", &status.to_string()],
            None,
        )
        .with_context(|| format!("could not report {what} Running"))?;
        wait_for(&format!("{what} to be Running and Ready"), REQUEST_DEADLINE, || {
            self.ensure_running()?;
            let output = self.admin(
                &[
                    "get",
                    "pod",
                    name,
                    "-n",
                    namespace,
                    "-o",
                    r#"jsonpath={.status.phase} {.status.conditions[?(@.type=="Ready")].status}"#,
                ],
                None,
            )?;
            Ok(match output.stdout.trim() {
                "Running True" if output.success() => Probe::Ready(()),
                _ => Probe::NotYet(format!("{} {}", output.stdout.trim(), output.stderr.trim())),
            })
        })
    }

    /// Fails if the fake kubelet has exited: it never stops by itself.
    pub fn ensure_running(&self) -> Result<()> {
        let mut supervisor = self.supervisor();
        supervisor.ensure_running().map_err(|error| {
            error.context(format!("the fake kubelet of {}; its log ends with:\n{}", self.name, supervisor.log_tails()))
        })
    }

    fn create_pod(&self, namespace: &str, name: &str) -> Result<()> {
        wait_for(&format!("the default service account of {namespace}"), REQUEST_DEADLINE, || {
            let output = self.admin(&["get", "serviceaccount", "default", "-n", namespace], None)?;
            Ok(if output.success() { Probe::Ready(()) } else { Probe::NotYet(output.stderr) })
        })?;
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": { "name": name, "namespace": namespace },
            "spec": {
                "nodeName": self.name,
                "automountServiceAccountToken": false,
                "terminationGracePeriodSeconds": 0,
                "containers": [{
                    "name": FAKE_CONTAINER,
                    "image": FAKE_IMAGE,
                    "stdin": true,
                }],
            },
        });
        self.create(&pod)
    }

    /// Creates the Node, then writes its status as a kubelet reports it, and
    /// waits until the API server shows it.
    fn register(&self, timeout: Duration) -> Result<()> {
        let node = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    FAKE_NODE_LABEL: "true",
                },
            },
        });
        self.create(&node)?;
        let status = json!({
            "status": {
                "addresses": [{ "type": "InternalIP", "address": "127.0.0.1" }],
                "daemonEndpoints": { "kubeletEndpoint": { "Port": self.port } },
                "conditions": [{
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "the fake kubelet is serving",
                }],
            },
        });
        self.admin_ok(
            &["patch", "node", &self.name, "--subresource=status", "--type=merge", "-p", &status.to_string()],
            None,
        )?;
        // The API server's node proxy refuses loopback addresses, so it cannot
        // check the kubelet here; exec, attach and port-forward do not.
        let expected = format!("127.0.0.1 {} True", self.port);
        wait_for(&format!("node {} to show its address, port and readiness", self.name), timeout, || {
            self.ensure_running()?;
            let output = self.admin(
                &[
                    "get",
                    "node",
                    &self.name,
                    "-o",
                    r#"jsonpath={.status.addresses[?(@.type=="InternalIP")].address} {.status.daemonEndpoints.kubeletEndpoint.Port} {.status.conditions[?(@.type=="Ready")].status}"#,
                ],
                None,
            )?;
            Ok(if output.success() && output.stdout.trim() == expected {
                Probe::Ready(())
            } else {
                Probe::NotYet(format!("{} {}", output.stdout.trim(), output.stderr.trim()))
            })
        })
    }

    /// `kubectl create -f -` of `object`, as the admin.
    fn create(&self, object: &Value) -> Result<()> {
        self.admin_ok(&["create", "-f", "-"], Some(object.to_string().as_bytes())).map(drop)
    }

    /// Runs a kubectl request as the admin; a non-zero exit is not an error.
    fn admin(&self, args: &[&str], input: Option<&[u8]>) -> Result<KubectlOutput> {
        let layout = &self.cluster.layout;
        Kubectl::request(&layout.admin_kubeconfig, &layout.kubectl_cache, args).run(input, REQUEST_DEADLINE)
    }

    /// Runs a kubectl request as the admin, failing on a non-zero exit.
    fn admin_ok(&self, args: &[&str], input: Option<&[u8]>) -> Result<String> {
        let output = self.admin(args, input)?;
        if !output.success() {
            bail!("`kubectl {}` failed ({}): {}", args.join(" "), output.status, output.stderr.trim());
        }
        Ok(output.stdout)
    }
}
