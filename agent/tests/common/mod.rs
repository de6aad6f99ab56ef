//! The end-to-end environment: the real control plane (the project's host
//! running the Wasm components), a real kube-apiserver, and the real
//! `lanyard-agent` binary running under exactly `deploy/rbac.yaml` (as the
//! reconcile worker's ServiceAccount it defines, with a token from the
//! TokenRequest API).

#![allow(dead_code)]

pub mod access;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lanyard_api_tests::{App, ClusterFixture, Fixture, Options};
use lanyard_kube::{Identity, KubeCluster};
use lanyard_test_support::{Probe, wait_for};
use serde_json::Value;

/// How long a grant may take to settle in a test.
pub const SETTLE: Duration = Duration::from_secs(60);

pub struct Env {
    pub kube: KubeCluster,
    pub app: App,
    pub admin: String,
    pub cluster_id: String,
    credential: String,
    agent_kubeconfig: PathBuf,
    dir: tempfile::TempDir,
    agent: Option<Child>,
    agent_runs: usize,
}

impl Env {
    /// Everything up, agent running.
    pub fn start() -> Env {
        let mut env = Env::start_without_agent();
        env.start_agent();
        env
    }

    pub fn start_without_agent() -> Env {
        let kube = KubeCluster::start().expect("start the Kubernetes control plane (see scripts/kube-binaries)");
        apply_rbac(&kube);
        let dir = tempfile::tempdir().unwrap();
        let agent_kubeconfig = dir.path().join("agent.kubeconfig");
        service_account_kubeconfig(&kube, "lanyard-agent", &agent_kubeconfig);
        let options = Options { extra: vec![("agent_offline_after_seconds".into(), "3".into())], ..Options::default() };
        let ClusterFixture { app, admin, cluster: cluster_id, credential } =
            Fixture::start_with(options).with_cluster("e2e");
        Env { kube, app, admin, cluster_id, credential, agent_kubeconfig, dir, agent: None, agent_runs: 0 }
    }

    /// Start the agent binary (again).
    pub fn start_agent(&mut self) {
        assert!(self.agent.is_none(), "the agent is already running");
        self.agent_runs += 1;
        let mut agent = agent_command(&self.app.url, &self.cluster_id, &self.agent_kubeconfig, &self.credential);
        agent.args(["--heartbeat-seconds", "1", "--poll-millis", "100", "--resync-seconds", "2"]);
        agent.args(["--backoff-min-millis", "200", "--backoff-max-seconds", "2", "--log-format", "text"]);
        let log = self.dir.path().join(format!("agent-{}.log", self.agent_runs));
        self.agent = Some(spawn_logged(agent, &log));
    }

    /// Stop the agent: SIGTERM (clean) or SIGKILL (a crash).
    pub fn stop_agent(&mut self, signal: i32) {
        let mut child = self.agent.take().expect("the agent is running");
        send_signal(&child, signal);
        let status = child.wait().expect("wait for the agent");
        if signal == libc::SIGTERM {
            assert!(
                status.success(),
                "the agent did not exit cleanly on SIGTERM: {status}; log:\n{}",
                self.agent_log()
            );
        }
    }

    pub fn agent_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("agent-{}.log", self.agent_runs))).unwrap_or_default()
    }

    /// Sign a member in and grant them `role` at `namespace` (or the cluster).
    pub fn grant(&self, email: &str, role: &str, namespace: Option<&str>) -> String {
        self.app.sign_in(email, "acme");
        self.app.grant_access(&self.admin, &self.cluster_id, email, role, namespace)
    }

    pub fn grants(&self) -> Vec<Value> {
        self.app.grants(&self.admin, &self.cluster_id)
    }

    /// Wait until a grant shows `status`; returns the grant.
    pub fn wait_status(&self, grant_id: &str, status: &str) -> Value {
        let what = format!("grant {grant_id} to be {status}");
        wait_for(&what, SETTLE, || {
            let grant = self.grants().into_iter().find(|g| g["id"] == grant_id);
            Ok(match grant {
                Some(g) if g["status"] == status => Probe::Ready(g),
                other => Probe::NotYet(format!("{other:?}")),
            })
        })
        .unwrap_or_else(|e| panic!("{e:#}\nagent log:\n{}", self.agent_log()))
    }

    /// Wait until every listed grant is `applied`.
    pub fn wait_all_applied(&self) {
        wait_for("every grant to be applied", SETTLE, || {
            let pending: Vec<Value> = self.grants().into_iter().filter(|g| g["status"] != "applied").collect();
            Ok(if pending.is_empty() {
                Probe::Ready(())
            } else {
                Probe::NotYet(format!("{} not applied, e.g. {}", pending.len(), pending[0]))
            })
        })
        .unwrap_or_else(|e| panic!("{e:#}\nagent log:\n{}", self.agent_log()));
    }

    /// The managed bindings on the cluster, as `kind/namespace/name`.
    pub fn managed_bindings(&self) -> Vec<String> {
        let selector = format!("lanyard.dev/managed=true,lanyard.dev/cluster={}", self.cluster_id);
        let out = self
            .kube
            .kubectl_ok(
                Identity::Admin,
                ["get", "clusterrolebindings,rolebindings", "-A", "-l", &selector, "-o", "json"],
            )
            .expect("list managed bindings");
        let list: Value = serde_json::from_str(&out).unwrap();
        let mut names: Vec<String> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                let m = &b["metadata"];
                format!(
                    "{}/{}/{}",
                    b["kind"].as_str().unwrap(),
                    m["namespace"].as_str().unwrap_or(""),
                    m["name"].as_str().unwrap()
                )
            })
            .collect();
        names.sort();
        names
    }

    /// Wait until the managed bindings are exactly `want` (as `managed_bindings`).
    pub fn wait_bindings(&self, what: &str, want: impl Fn(&[String]) -> bool) -> Vec<String> {
        wait_for(what, SETTLE, || {
            let have = self.managed_bindings();
            Ok(if want(&have) { Probe::Ready(have) } else { Probe::NotYet(format!("{have:?}")) })
        })
        .unwrap_or_else(|e| panic!("{e:#}\nagent log:\n{}", self.agent_log()))
    }

    /// `kubectl auth can-i` as the member, impersonated by the admin.
    pub fn member_can(&self, email: &str, args: &[&str]) -> bool {
        let user = format!("lanyard:{email}");
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--as", &user]);
        self.kube.can_i(Identity::Admin, all).expect("kubectl auth can-i")
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(mut child) = self.agent.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The agent binary for cluster `cluster_id` of `control_plane`, with
/// `kubeconfig` (never `$KUBECONFIG`), its `credential` in the environment
/// and standard input closed; further arguments go after these.
pub fn agent_command(control_plane: &str, cluster_id: &str, kubeconfig: &Path, credential: &str) -> Command {
    let mut command = Command::new(agent_binary());
    command
        .args(["--control-plane", control_plane, "--cluster-id", cluster_id])
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("LANYARD_AGENT_CREDENTIAL", credential)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null());
    command
}

/// Start `agent` (an [`agent_command`]) with both its outputs in the file `log`.
pub fn spawn_logged(mut agent: Command, log: &Path) -> Child {
    let file = std::fs::File::create(log).unwrap();
    agent.stdout(file.try_clone().unwrap()).stderr(file).spawn().expect("start lanyard-agent")
}

/// The agent binary: Cargo's for tests; `target/debug` for the benchmark example.
pub fn agent_binary() -> PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_lanyard-agent") {
        return PathBuf::from(path);
    }
    let path = repo_root().join("target/debug/lanyard-agent");
    assert!(path.exists(), "{} is missing: run `bash scripts/build` first", path.display());
    path
}

pub use lanyard_test_support::repo_root;

/// Apply `deploy/rbac.yaml`: the namespace and the reconcile worker's ServiceAccount and rights.
pub fn apply_rbac(kube: &KubeCluster) {
    apply(kube, "deploy/rbac.yaml");
}

/// Apply `deploy/proxy-rbac.yaml`: the access proxy's ServiceAccount and rights (after [`apply_rbac`]).
pub fn apply_proxy_rbac(kube: &KubeCluster) {
    apply(kube, "deploy/proxy-rbac.yaml");
}

fn apply(kube: &KubeCluster, file: &str) {
    let path = repo_root().join(file);
    kube.kubectl_ok(Identity::Admin, ["apply", "-f", path.to_str().unwrap()])
        .unwrap_or_else(|e| panic!("apply {file}: {e:#}"));
}

/// Write to `path` a kubeconfig for ServiceAccount `name` of `lanyard-system`,
/// with a token from the TokenRequest API.
pub fn service_account_kubeconfig(kube: &KubeCluster, name: &str, path: &Path) {
    let token = kube
        .kubectl_ok(Identity::Admin, ["create", "token", name, "-n", "lanyard-system", "--duration", "2h"])
        .unwrap_or_else(|e| panic!("a token for the ServiceAccount {name}: {e:#}"))
        .trim()
        .to_owned();
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: {name}\n  user:\n    token: {token}\ncontexts:\n- name: e2e\n  context:\n    cluster: e2e\n    user: {name}\ncurrent-context: e2e\n",
        kube.server_url(),
        kube.ca_cert_path().display()
    );
    std::fs::write(path, text).unwrap();
}

/// Wait for a condition with a deadline (re-exported for tests).
pub fn eventually<T>(what: &str, within: Duration, probe: impl FnMut() -> anyhow::Result<Probe<T>>) -> T {
    let started = Instant::now();
    wait_for(what, within, probe).unwrap_or_else(|e| panic!("after {:?}: {e:#}", started.elapsed()))
}

/// Send `signal` to our own child with kill(1) (no unsafe code here).
pub fn send_signal(child: &std::process::Child, signal: i32) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {} failed", child.id());
}
