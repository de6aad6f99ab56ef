//! A real, throwaway Kubernetes control plane for Lanyard's end-to-end tests.
//!
//! [`KubeCluster::start`] runs etcd, kube-apiserver and kube-controller-manager
//! (built from the upstream Go modules by `scripts/kube-binaries`) on loopback,
//! on free ports, in a private temporary directory:
//!
//! - the API server serves TLS on `127.0.0.1` with a certificate it generates
//!   itself, authorizes with `Node,RBAC`, and authenticates two static token
//!   identities: an admin (group `system:masters`) and the agent (user
//!   [`AGENT_USER`], with no group beyond `system:authenticated`);
//! - the controller manager runs the ClusterRole aggregation controller (which
//!   fills the built-in `view`, `edit` and `admin` roles), the namespace
//!   controller (which finishes namespace deletion) and the service-account
//!   controller (which gives each namespace its `default` account).
//!
//! `start` returns once `/readyz` says ok and the aggregated roles have rules.
//!
//! Dropping the cluster, also while a failed test unwinds, kills every process
//! group and removes the directory; set `LANYARD_KUBE_KEEP_DIR=1` to keep the
//! directory (with the logs) for a post-mortem. Clusters are independent:
//! several may run at once.
//!
//! There is no container runtime on the test machines, so nothing can run a
//! Pod; but `kubectl exec`, `attach` and `port-forward` must still be tested
//! for real, through the API server, which forwards them to the Pod's
//! kubelet. [`KubeCluster::start_node`] starts a *fake kubelet*
//! (`tests/kubelet/`, Go, built by `scripts/fake-kubelet`): it serves the
//! kubelet's streaming endpoints with the kubelet's own streaming libraries
//! over a runtime whose answers are fixed (`echo`, `cat`, `exit N`; attach
//! copies stdin; port-forward dials the port on this machine), and is
//! registered as a Ready Node. [`FakeNode::pod`] creates a Pod bound to it and
//! reports it Running. The API server verifies the fake kubelet's
//! certificate against a CA the cluster makes at start
//! (`--kubelet-certificate-authority`). The helpers [`exec`] (and
//! [`exec_echo`], [`exec_cat_stdin`], [`exec_exit_code`]), [`attach`] and
//! [`port_forward_roundtrip`] (or [`PortForward`]) run the real kubectl
//! commands against any kubeconfig, over either [`Streaming`] transport.

mod binaries;
mod kubectl;
mod kubelet_ca;
mod node;
mod process;
mod streaming;

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use lanyard_test_support::{Probe, wait_for};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

pub use binaries::{BIN_DIR_ENV, BUILD_SCRIPT, Binaries, FAKE_KUBELET_ENV, FAKE_KUBELET_SCRIPT, fake_kubelet};
pub use kubectl::{DEFAULT_KUBECTL, KubectlOutput, kubectl_program};
pub use node::{FAKE_CONTAINER, FAKE_IMAGE, FAKE_NODE_LABEL, FakeNode};
pub use streaming::{
    PortForward, STREAM_DEADLINE, Streaming, TcpEchoServer, WebSocketStreams, attach, exec, exec_cat_stdin, exec_echo,
    exec_exit_code, port_forward_roundtrip,
};

use kubectl::{display_args, run_kubectl};
use kubelet_ca::KubeletCa;
use process::Supervisor;

/// User name of the admin identity (group `system:masters`).
pub const ADMIN_USER: &str = "lanyard-admin";
/// User name of the agent identity (no bindings, no extra groups).
pub const AGENT_USER: &str = "lanyard-agent";
/// The service IP range the API server allocates from.
pub const SERVICE_CLUSTER_IP_RANGE: &str = "10.96.0.0/16";

/// Set to `1` to keep a cluster's directory (logs, data) after it is dropped.
const KEEP_DIR_ENV: &str = "LANYARD_KUBE_KEEP_DIR";
/// Overrides the time `start` allows each phase, in seconds.
const START_TIMEOUT_ENV: &str = "LANYARD_KUBE_START_TIMEOUT_SECS";
/// Per phase: generous, as a 2-core machine may be starting several clusters.
const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(180);
/// The built-in ClusterRoles that the aggregation controller fills.
const AGGREGATED_ROLES: [&str; 3] = ["view", "edit", "admin"];
const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Which of the cluster's two token identities a request runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// [`ADMIN_USER`], in group `system:masters`: may do anything, including
    /// impersonating others with `--as`.
    Admin,
    /// [`AGENT_USER`]: authenticated, but bound to nothing.
    Agent,
}

/// A running control plane; dropping it tears everything down.
pub struct KubeCluster {
    // Field order matters: the processes stop before the directory goes.
    supervisor: Supervisor,
    layout: Layout,
    server_url: String,
    ca_cert_pem: String,
    admin_token: String,
    agent_token: String,
    /// Signs the fake kubelets' serving certificates; the API server trusts it.
    kubelet_ca: KubeletCa,
    work_dir: tempfile::TempDir,
}

impl KubeCluster {
    /// Builds or reuses the binaries, starts etcd, kube-apiserver and
    /// kube-controller-manager, and waits until the API server is ready and
    /// the aggregated ClusterRoles have rules. On failure every process is
    /// stopped and the error carries the tails of their logs.
    ///
    /// A port is reserved and released just before its process binds it, so
    /// on a busy machine (tests start clusters in parallel) another process
    /// can take it in between: then etcd cannot bind, or another listener
    /// answers on the API server's port. A start that fails after the
    /// binaries are found is therefore tried again on new ports, up to three
    /// times in all; the last failure is the one reported.
    pub fn start() -> Result<KubeCluster> {
        const ATTEMPTS: usize = 3;
        let binaries = Binaries::get()?;
        let mut attempt = 1;
        loop {
            match Self::start_once(&binaries) {
                Err(e) if attempt < ATTEMPTS => {
                    eprintln!(
                        "lanyard-kube: the control plane did not start ({}); \
                         starting again on new ports ({attempt}/{ATTEMPTS})",
                        e.root_cause()
                    );
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn start_once(binaries: &Binaries) -> Result<KubeCluster> {
        let mut work_dir = tempfile::Builder::new()
            .prefix("lanyard-kube-")
            .tempdir()
            .context("could not create the cluster's temporary directory")?;
        if std::env::var_os(KEEP_DIR_ENV).is_some_and(|value| value == "1") {
            work_dir.disable_cleanup(true);
            eprintln!("lanyard-kube: keeping {}", work_dir.path().display());
        }
        let layout = Layout::new(work_dir.path());
        let mut supervisor = Supervisor::new(layout.logs.clone())?;
        let admin_token = random_hex(32)?;
        let agent_token = random_hex(32)?;
        let kubelet_ca = KubeletCa::new()?;
        write_file(&layout.kubelet_ca_cert, &kubelet_ca.cert_pem())?;

        let booted = boot(binaries, &layout, &mut supervisor, &admin_token, &agent_token);
        let endpoint = match booted {
            Ok(endpoint) => endpoint,
            Err(error) => {
                // The tails go into the error, which the failing test prints.
                let tails = supervisor.log_tails();
                return Err(error.context(format!(
                    "the test Kubernetes control plane failed to start; its logs end with:\n{tails}"
                )));
            }
        };
        Ok(KubeCluster {
            supervisor,
            layout,
            server_url: endpoint.server_url,
            ca_cert_pem: endpoint.ca_cert_pem,
            admin_token,
            agent_token,
            kubelet_ca,
            work_dir,
        })
    }

    /// The API server's URL, `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// PEM of the certificate(s) a client must trust for [`Self::server_url`]:
    /// the API server's self-generated serving certificate and its CA. No
    /// client needs to skip TLS verification.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// A file holding [`Self::ca_cert_pem`].
    pub fn ca_cert_path(&self) -> &Path {
        &self.layout.ca_cert
    }

    /// The bearer token of `identity`.
    pub fn token(&self, identity: Identity) -> &str {
        match identity {
            Identity::Admin => &self.admin_token,
            Identity::Agent => &self.agent_token,
        }
    }

    /// A kubeconfig (server, CA data, token) for `identity`.
    pub fn kubeconfig(&self, identity: Identity) -> &Path {
        match identity {
            Identity::Admin => &self.layout.admin_kubeconfig,
            Identity::Agent => &self.layout.agent_kubeconfig,
        }
    }

    /// The admin identity's kubeconfig.
    pub fn admin_kubeconfig(&self) -> &Path {
        self.kubeconfig(Identity::Admin)
    }

    /// The agent identity's kubeconfig.
    pub fn agent_kubeconfig(&self) -> &Path {
        self.kubeconfig(Identity::Agent)
    }

    /// Runs the real kubectl as `identity`; a non-zero exit is not an error
    /// here (`auth can-i` exits 1 for "no"), only failing to run it is.
    pub fn kubectl<I, S>(&self, identity: Identity, args: I) -> Result<KubectlOutput>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_kubectl(self.kubeconfig(identity), &self.layout.kubectl_cache, args)
    }

    /// Runs kubectl as `identity` and returns its stdout, failing (with its
    /// stderr) if it exits non-zero.
    pub fn kubectl_ok<I, S>(&self, identity: Identity, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<S> = args.into_iter().collect();
        let output = self.kubectl(identity, &args)?;
        if !output.success() {
            bail!(
                "`kubectl {}` as {identity:?} failed ({}): {}",
                display_args(&args),
                output.status,
                output.stderr.trim()
            );
        }
        Ok(output.stdout)
    }

    /// `kubectl auth can-i <args>` as `identity`: `Ok(true)` for "yes",
    /// `Ok(false)` for "no", an error for anything else.
    pub fn can_i<I, S>(&self, identity: Identity, args: I) -> Result<bool>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<S> = args.into_iter().collect();
        let mut full_args: Vec<&OsStr> = vec![OsStr::new("auth"), OsStr::new("can-i")];
        full_args.extend(args.iter().map(AsRef::as_ref));
        let output = self.kubectl(identity, &full_args)?;
        match (output.stdout.lines().next().map(str::trim), output.status.code()) {
            (Some("yes"), Some(0)) => Ok(true),
            (Some("no"), Some(1)) => Ok(false),
            _ => bail!(
                "`kubectl auth can-i {}` as {identity:?} answered neither yes nor no ({}): {}{}",
                display_args(&args),
                output.status,
                output.stdout.trim(),
                output.stderr.trim()
            ),
        }
    }

    /// Creates a namespace named `<prefix>-<random>` that no other test uses,
    /// and returns its name. `prefix` must be a lowercase DNS label of at
    /// most 40 characters.
    pub fn fresh_namespace(&self, prefix: &str) -> Result<String> {
        validate_namespace_prefix(prefix)?;
        let name = format!("{prefix}-{}", random_hex(4)?);
        self.kubectl_ok(Identity::Admin, ["create", "namespace", name.as_str()])
            .with_context(|| format!("could not create namespace {name}"))?;
        Ok(name)
    }

    /// The private directory holding the data, certificates and logs.
    pub fn work_dir(&self) -> &Path {
        self.work_dir.path()
    }

    /// Ids of the etcd, kube-apiserver and kube-controller-manager processes.
    pub fn process_ids(&self) -> Vec<u32> {
        self.supervisor.pids()
    }

    /// The end of each process's log, for a failure report.
    pub fn log_tails(&self) -> String {
        self.supervisor.log_tails()
    }
}

/// Where everything lives in a cluster's directory.
struct Layout {
    etcd_data: PathBuf,
    apiserver_certs: PathBuf,
    logs: PathBuf,
    token_file: PathBuf,
    service_account_key: PathBuf,
    service_account_public_key: PathBuf,
    ca_cert: PathBuf,
    kubelet_ca_cert: PathBuf,
    admin_kubeconfig: PathBuf,
    agent_kubeconfig: PathBuf,
    kubectl_cache: PathBuf,
}

impl Layout {
    fn new(dir: &Path) -> Layout {
        Layout {
            etcd_data: dir.join("etcd"),
            apiserver_certs: dir.join("apiserver-certs"),
            logs: dir.join("logs"),
            token_file: dir.join("tokens.csv"),
            service_account_key: dir.join("service-account.key"),
            service_account_public_key: dir.join("service-account.pub"),
            ca_cert: dir.join("ca.crt"),
            kubelet_ca_cert: dir.join("kubelet-ca.crt"),
            admin_kubeconfig: dir.join("admin.kubeconfig"),
            agent_kubeconfig: dir.join("agent.kubeconfig"),
            kubectl_cache: dir.join("kubectl-cache"),
        }
    }

    /// The certificate kube-apiserver generates for itself in `--cert-dir`.
    fn apiserver_generated_cert(&self) -> PathBuf {
        self.apiserver_certs.join("apiserver.crt")
    }
}

/// How clients reach a started API server.
struct Endpoint {
    server_url: String,
    ca_cert_pem: String,
}

/// Starts the three processes in order, each once the previous is usable.
fn boot(
    binaries: &Binaries,
    layout: &Layout,
    supervisor: &mut Supervisor,
    admin_token: &str,
    agent_token: &str,
) -> Result<Endpoint> {
    let timeout = start_timeout()?;
    write_token_file(&layout.token_file, admin_token, agent_token)?;
    write_service_account_keys(layout)?;

    let [etcd_client, etcd_peer, apiserver] = reserve_ports()?;
    let etcd_client_port = etcd_client.port;
    let etcd_peer_port = etcd_peer.port;
    let apiserver_port = apiserver.port;

    etcd_client.release();
    etcd_peer.release();
    supervisor.spawn("etcd", &binaries.etcd, &etcd_args(layout, etcd_client_port, etcd_peer_port))?;
    wait_for("etcd to report itself healthy", timeout, || {
        supervisor.ensure_running()?;
        Ok(match etcd_health(etcd_client_port) {
            Ok(body) if body.contains(r#""health":"true""#) => Probe::Ready(()),
            Ok(body) => Probe::NotYet(format!("/health answered {body:?}")),
            Err(error) => Probe::NotYet(format!("{error:#}")),
        })
    })?;

    apiserver.release();
    let apiserver_args = apiserver_args(layout, etcd_client_port, apiserver_port);
    supervisor.spawn("kube-apiserver", &binaries.kube_apiserver, &apiserver_args)?;
    // The serving certificate is written before the port opens.
    wait_for("kube-apiserver to open its port", timeout, || {
        supervisor.ensure_running()?;
        Ok(match TcpStream::connect(loopback(apiserver_port)) {
            Ok(_) => Probe::Ready(()),
            Err(error) => Probe::NotYet(error.to_string()),
        })
    })?;
    let cert_path = layout.apiserver_generated_cert();
    let ca_cert_pem = std::fs::read_to_string(&cert_path)
        .with_context(|| format!("kube-apiserver wrote no certificate at {}", cert_path.display()))?;
    if !ca_cert_pem.contains("-----BEGIN CERTIFICATE-----") {
        bail!("{} holds no PEM certificate", cert_path.display());
    }
    write_file(&layout.ca_cert, &ca_cert_pem)?;
    let server_url = format!("https://127.0.0.1:{apiserver_port}");
    write_file(&layout.admin_kubeconfig, &kubeconfig(&server_url, &ca_cert_pem, ADMIN_USER, admin_token))?;
    write_file(&layout.agent_kubeconfig, &kubeconfig(&server_url, &ca_cert_pem, AGENT_USER, agent_token))?;

    wait_for("kube-apiserver's /readyz to say ok", timeout, || {
        supervisor.ensure_running()?;
        let output = run_kubectl(&layout.admin_kubeconfig, &layout.kubectl_cache, ["get", "--raw=/readyz"])?;
        Ok(if output.success() && output.stdout.trim() == "ok" {
            Probe::Ready(())
        } else {
            Probe::NotYet(format!("{} {}", output.stdout.trim(), output.stderr.trim()))
        })
    })?;

    supervisor.spawn("kube-controller-manager", &binaries.kube_controller_manager, &controller_manager_args(layout))?;
    for role in AGGREGATED_ROLES {
        wait_for(&format!("the aggregated ClusterRole {role} to have rules"), timeout, || {
            supervisor.ensure_running()?;
            let output = run_kubectl(
                &layout.admin_kubeconfig,
                &layout.kubectl_cache,
                ["get", "clusterrole", role, "-o", "jsonpath={.rules[*].verbs}"],
            )?;
            Ok(if output.success() && !output.stdout.trim().is_empty() {
                Probe::Ready(())
            } else {
                Probe::NotYet(format!("rules {:?} {}", output.stdout.trim(), output.stderr.trim()))
            })
        })?;
    }
    Ok(Endpoint { server_url, ca_cert_pem })
}

fn etcd_args(layout: &Layout, client_port: u16, peer_port: u16) -> Vec<String> {
    let client_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    vec![
        "--name=lanyard-test".into(),
        format!("--data-dir={}", layout.etcd_data.display()),
        format!("--listen-client-urls={client_url}"),
        format!("--advertise-client-urls={client_url}"),
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--initial-cluster=lanyard-test={peer_url}"),
        // Throwaway data: durability only costs time.
        "--unsafe-no-fsync=true".into(),
        "--log-level=warn".into(),
    ]
}

fn apiserver_args(layout: &Layout, etcd_client_port: u16, port: u16) -> Vec<String> {
    vec![
        format!("--etcd-servers=http://127.0.0.1:{etcd_client_port}"),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        // The reconciler of the `kubernetes` Service's endpoints refuses a
        // loopback address; nothing here routes to that Service anyway.
        "--endpoint-reconciler-type=none".into(),
        format!("--secure-port={port}"),
        format!("--cert-dir={}", layout.apiserver_certs.display()),
        "--authorization-mode=Node,RBAC".into(),
        format!("--token-auth-file={}", layout.token_file.display()),
        format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"),
        format!("--service-account-key-file={}", layout.service_account_public_key.display()),
        format!("--service-account-signing-key-file={}", layout.service_account_key.display()),
        format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
        // Verify the kubelets' serving certificates (without a CA the API
        // server would not), and dial them at their InternalIP, 127.0.0.1,
        // whatever other addresses a Node reports.
        format!("--kubelet-certificate-authority={}", layout.kubelet_ca_cert.display()),
        "--kubelet-preferred-address-types=InternalIP".into(),
        "--profiling=false".into(),
    ]
}

fn controller_manager_args(layout: &Layout) -> Vec<String> {
    vec![
        format!("--kubeconfig={}", layout.admin_kubeconfig.display()),
        "--controllers=clusterrole-aggregation-controller,namespace-controller,serviceaccount-controller".into(),
        "--leader-elect=false".into(),
        // No HTTPS endpoint of its own: nothing here scrapes it, and it would
        // need a free port.
        "--secure-port=0".into(),
        "--profiling=false".into(),
    ]
}

/// The static token file: `token,user,uid,"groups"` per line.
fn write_token_file(path: &Path, admin_token: &str, agent_token: &str) -> Result<()> {
    let contents = format!(
        "{admin_token},{ADMIN_USER},{ADMIN_USER},\"system:masters\"\n\
         {agent_token},{AGENT_USER},{AGENT_USER}\n"
    );
    write_file(path, &contents)
}

/// A fresh RSA key pair that signs and verifies service-account tokens.
fn write_service_account_keys(layout: &Layout) -> Result<()> {
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
        .context("could not generate the service-account signing key")?;
    let private_pem = key.to_pkcs8_pem(LineEnding::LF).context("could not encode the service-account signing key")?;
    let public_pem = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .context("could not encode the service-account public key")?;
    write_file(&layout.service_account_key, &private_pem)?;
    write_file(&layout.service_account_public_key, &public_pem)
}

fn kubeconfig(server_url: &str, ca_cert_pem: &str, user: &str, token: &str) -> String {
    let ca_data = base64::engine::general_purpose::STANDARD.encode(ca_cert_pem);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: lanyard-test
  cluster:
    server: {server_url}
    certificate-authority-data: {ca_data}
users:
- name: {user}
  user:
    token: {token}
contexts:
- name: {user}
  context:
    cluster: lanyard-test
    user: {user}
current-context: {user}
"
    )
}

/// A loopback port held open until it is handed to the process that uses it,
/// so that ports reserved together are distinct.
struct ReservedPort {
    port: u16,
    listener: TcpListener,
}

impl ReservedPort {
    fn release(self) {
        drop(self.listener);
    }
}

fn reserve_ports<const N: usize>() -> Result<[ReservedPort; N]> {
    let mut ports = Vec::with_capacity(N);
    for _ in 0..N {
        let listener = TcpListener::bind(loopback(0)).context("could not reserve a loopback port")?;
        let port = listener.local_addr().context("could not read a reserved port")?.port();
        ports.push(ReservedPort { port, listener });
    }
    ports.try_into().map_err(|_| anyhow::anyhow!("reserved the wrong number of ports"))
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// The body of etcd's plain-HTTP `/health` endpoint.
fn etcd_health(port: u16) -> Result<String> {
    let mut stream = TcpStream::connect_timeout(&loopback(port), Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response.split_once("\r\n\r\n").map_or(response.as_str(), |(_, body)| body).to_owned())
}

fn start_timeout() -> Result<Duration> {
    match std::env::var(START_TIMEOUT_ENV) {
        Ok(seconds) => {
            let seconds: u64 = seconds
                .trim()
                .parse()
                .with_context(|| format!("{START_TIMEOUT_ENV}={seconds:?} is not a number of seconds"))?;
            Ok(Duration::from_secs(seconds))
        }
        Err(_) => Ok(DEFAULT_START_TIMEOUT),
    }
}

fn validate_namespace_prefix(prefix: &str) -> Result<()> {
    let valid = !prefix.is_empty()
        && prefix.len() <= 40
        && prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && !prefix.ends_with('-')
        && prefix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        bail!("namespace prefix {prefix:?} is not a lowercase DNS label of at most 40 characters");
    }
    Ok(())
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
    let mut text = String::with_capacity(bytes * 2);
    for byte in buffer {
        let _ = write!(text, "{byte:02x}");
    }
    Ok(text)
}

fn write_file(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents).with_context(|| format!("could not write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_prefixes_are_dns_labels() {
        assert!(validate_namespace_prefix("view-binding").is_ok());
        assert!(validate_namespace_prefix("a1").is_ok());
        for bad in ["", "Upper", "1abc", "trailing-", "under_score", &"x".repeat(41)] {
            assert!(validate_namespace_prefix(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn reserved_ports_are_distinct() -> Result<()> {
        let ports: [ReservedPort; 4] = reserve_ports()?;
        let mut numbers: Vec<u16> = ports.iter().map(|reserved| reserved.port).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), 4);
        Ok(())
    }

    #[test]
    fn kubeconfig_names_server_ca_and_token() {
        let text = kubeconfig("https://127.0.0.1:6443", "PEM", "someone", "secret");
        assert!(text.contains("server: https://127.0.0.1:6443"));
        assert!(text.contains("certificate-authority-data: UEVN"));
        assert!(text.contains("token: secret"));
        assert!(text.contains("current-context: someone"));
    }
}
