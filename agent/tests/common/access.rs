//! The access proxy's end-to-end environment: a real kube-apiserver, the
//! real control plane, the real `lanyard-agent` (its proxy as the
//! ServiceAccount of `deploy/proxy-rbac.yaml`, its worker as that of
//! `deploy/rbac.yaml`, each with a TokenRequest token), and members who
//! use the real `lanyard` CLI and the real kubectl, whose kubeconfig comes
//! from `lanyard cluster kubeconfig add` and whose tokens come from its
//! exec plugin.
//!
//! Two layouts: [`Layout::OneProcess`] runs the worker and the proxy in one
//! agent with a self-signed certificate it publishes (the local run's way);
//! [`Layout::Split`] runs a proxy-only agent with certificate files from a
//! test CA the cluster was registered with, and the worker as a second
//! agent started only when a test asks ([`AccessEnv::start_worker`]), as
//! the two Deployments of `deploy/` do.

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use lanyard_api_tests::{App, Options};
use lanyard_kube::{Identity, KubeCluster};
use lanyard_test_support::{Probe, wait_for};
use serde_json::Value;

use super::{SETTLE, agent_command, apply_proxy_rbac, apply_rbac, send_signal, service_account_kubeconfig};

/// The staleness limit the tests' proxies run with (seconds).
pub const MAX_STALENESS: u64 = 4;

/// How the agent's two parts run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Worker and proxy in one process, self-signed certificate published by heartbeat.
    OneProcess,
    /// A proxy-only process with certificate files; the worker separately.
    Split,
}

pub struct AccessEnv {
    pub kube: KubeCluster,
    pub app: App,
    pub admin: String,
    pub cluster_id: String,
    pub proxy_url: String,
    /// Where the agent serves `/metrics`.
    pub metrics_url: String,
    pub layout: Layout,
    credential: String,
    worker_kubeconfig: PathBuf,
    proxy_kubeconfig: PathBuf,
    tls_files: Option<(PathBuf, PathBuf)>,
    /// The CA the tests trust the proxy with (PEM).
    pub ca_pem: Option<String>,
    dir: tempfile::TempDir,
    proxy: Option<Child>,
    worker: Option<Child>,
    runs: usize,
}

impl AccessEnv {
    /// Everything up; in [`Layout::OneProcess`] the agent runs, in
    /// [`Layout::Split`] only the proxy does.
    pub fn start(layout: Layout) -> AccessEnv {
        let kube = KubeCluster::start().expect("start the Kubernetes control plane (see scripts/kube-binaries)");
        apply_rbac(&kube);
        apply_proxy_rbac(&kube);
        let dir = tempfile::tempdir().unwrap();
        let worker_kubeconfig = dir.path().join("worker.kubeconfig");
        let proxy_kubeconfig = dir.path().join("proxy.kubeconfig");
        service_account_kubeconfig(&kube, "lanyard-agent", &worker_kubeconfig);
        service_account_kubeconfig(&kube, "lanyard-proxy", &proxy_kubeconfig);

        let options = Options { extra: vec![("agent_offline_after_seconds".into(), "3".into())], ..Options::default() };
        let app = App::start_with(options);
        let admin = app.admin("acme");
        let port = free_port();
        let proxy_url = format!("https://127.0.0.1:{port}");
        let (tls_files, registered_ca) = match layout {
            Layout::OneProcess => (None, None),
            Layout::Split => {
                let (cert, key, pem) = test_certificate(dir.path());
                (Some((cert, key)), Some(pem))
            }
        };
        let mut body = serde_json::json!({"name": "e2e", "kind": "standard", "proxy_url": proxy_url});
        if let Some(pem) = &registered_ca {
            body["ca_pem"] = pem.clone().into();
        }
        let resp = app.post("/api/v1/clusters", &admin, body);
        resp.expect(201);
        let cluster_id = resp.json["cluster"]["id"].as_str().unwrap().to_owned();
        let credential = resp.json["agent_credential"].as_str().unwrap().to_owned();
        let mut env = AccessEnv {
            kube,
            app,
            admin,
            cluster_id,
            proxy_url,
            metrics_url: format!("http://127.0.0.1:{}/metrics", free_port()),
            layout,
            credential,
            worker_kubeconfig,
            proxy_kubeconfig,
            tls_files,
            ca_pem: registered_ca,
            dir,
            proxy: None,
            worker: None,
            runs: 0,
        };
        env.start_proxy();
        if layout == Layout::OneProcess {
            env.ca_pem = Some(env.wait_published_ca());
        }
        env.wait_proxy_serving();
        env
    }

    pub fn port(&self) -> u16 {
        self.proxy_url.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Start the proxy (in [`Layout::OneProcess`], the whole agent).
    pub fn start_proxy(&mut self) {
        assert!(self.proxy.is_none(), "the proxy is running");
        self.runs += 1;
        let mut agent = agent_command(&self.app.url, &self.cluster_id, &self.worker_kubeconfig, &self.credential);
        agent.arg("--proxy-kubeconfig").arg(&self.proxy_kubeconfig);
        agent.args(["--proxy-listen", &format!("127.0.0.1:{}", self.port())]);
        agent.args(["--access-poll-millis", "100", "--max-staleness-seconds", &MAX_STALENESS.to_string()]);
        agent.args(["--log-format", "text"]);
        let metrics = self.metrics_url.trim_start_matches("http://").trim_end_matches("/metrics");
        agent.args(["--metrics-listen", metrics]);
        match (&self.layout, &self.tls_files) {
            (Layout::Split, Some((cert, key))) => {
                agent.arg("--reconcile=false").arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
            }
            _ => {
                agent.arg("--tls-dir").arg(self.dir.path().join("tls"));
                agent.args(["--heartbeat-seconds", "1", "--poll-millis", "100", "--resync-seconds", "2"]);
                agent.args(["--backoff-min-millis", "200", "--backoff-max-seconds", "2"]);
            }
        }
        let stdout = std::fs::File::create(self.audit_path()).unwrap();
        let stderr = std::fs::File::create(self.proxy_log_path()).unwrap();
        self.proxy = Some(agent.stdout(stdout).stderr(stderr).spawn().expect("start lanyard-agent"));
    }

    /// Stop the proxy process.
    pub fn stop_proxy(&mut self) {
        let mut child = self.proxy.take().expect("the proxy is running");
        send_signal(&child, libc::SIGTERM);
        let status = child.wait().expect("wait for the proxy");
        assert!(status.success(), "the proxy did not exit cleanly: {status}; log:\n{}", self.proxy_log());
    }

    /// [`Layout::Split`]: start the reconcile worker, as its own agent.
    pub fn start_worker(&mut self) {
        assert_eq!(self.layout, Layout::Split, "in one process the worker runs with the proxy");
        assert!(self.worker.is_none(), "the worker is running");
        let mut agent = agent_command(&self.app.url, &self.cluster_id, &self.worker_kubeconfig, &self.credential);
        agent.args(["--heartbeat-seconds", "1", "--poll-millis", "100", "--resync-seconds", "2"]);
        agent.args(["--backoff-min-millis", "200", "--backoff-max-seconds", "2", "--log-format", "text"]);
        let log = std::fs::File::create(self.dir.path().join("worker.log")).unwrap();
        self.worker = Some(agent.stdout(log.try_clone().unwrap()).stderr(log).spawn().expect("start the worker"));
    }

    /// The proxy process's id.
    pub fn proxy_pid(&self) -> u32 {
        self.proxy.as_ref().expect("the proxy is running").id()
    }

    /// The proxy's own ServiceAccount token (for a benchmark's direct requests).
    pub fn proxy_sa_token(&self) -> String {
        let text = std::fs::read_to_string(&self.proxy_kubeconfig).unwrap();
        let line = text.lines().find_map(|l| l.trim().strip_prefix("token: ")).expect("a token in the kubeconfig");
        line.trim().to_owned()
    }

    /// Stop the reconcile worker ([`Layout::Split`]).
    pub fn stop_worker(&mut self) {
        let mut child = self.worker.take().expect("the worker is running");
        send_signal(&child, libc::SIGTERM);
        child.wait().expect("wait for the worker");
    }

    /// The file the proxy's audit records go to.
    pub fn audit_path(&self) -> PathBuf {
        self.dir.path().join(format!("audit-{}.jsonl", self.runs))
    }

    fn proxy_log_path(&self) -> PathBuf {
        self.dir.path().join(format!("proxy-{}.log", self.runs))
    }

    /// The proxy's log (standard error) of its current run.
    pub fn proxy_log(&self) -> String {
        std::fs::read_to_string(self.proxy_log_path()).unwrap_or_default()
    }

    /// Every audit record of the proxy's current run.
    pub fn audit(&self) -> Vec<Value> {
        let file = std::fs::File::open(self.audit_path()).expect("the audit file");
        BufReader::new(file)
            .lines()
            .map(|line| line.unwrap())
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(&line).unwrap_or_else(|e| panic!("audit line {line:?} is not JSON: {e}")))
            .collect()
    }

    /// Wait until an audit record satisfies `want`; returns it.
    pub fn wait_audit(&self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        wait_for(what, Duration::from_secs(10), || {
            let all = self.audit();
            Ok(match all.iter().find(|r| want(r)) {
                Some(r) => Probe::Ready(r.clone()),
                None => Probe::NotYet(format!("{} records, last {:?}", all.len(), all.last())),
            })
        })
        .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// The CA the agent published (one process): wait for the cluster to show it.
    fn wait_published_ca(&self) -> String {
        wait_for("the agent to publish its proxy certificate", SETTLE, || {
            let resp = self.app.get("/api/v1/clusters", &self.admin);
            let ours = resp.json["clusters"].as_array().and_then(|all| all.iter().find(|c| c["id"] == self.cluster_id));
            Ok(match ours.and_then(|c| c["ca_pem"].as_str()) {
                Some(pem) => Probe::Ready(pem.to_owned()),
                None => Probe::NotYet(resp.body.clone()),
            })
        })
        .unwrap_or_else(|e| panic!("{e:#}\nproxy log:\n{}", self.proxy_log()))
    }

    /// Wait until the proxy answers TLS with a Kubernetes `Status` (it has synced).
    fn wait_proxy_serving(&self) {
        let client = self.http();
        wait_for("the access proxy to serve", SETTLE, || {
            Ok(match client.get(format!("{}/version", self.proxy_url)).send() {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body = resp.text().unwrap_or_default();
                    if status == 401 && !body.contains("not yet reached") {
                        Probe::Ready(())
                    } else {
                        Probe::NotYet(format!("{status} {body}"))
                    }
                }
                Err(e) => Probe::NotYet(e.to_string()),
            })
        })
        .unwrap_or_else(|e| panic!("{e:#}\nproxy log:\n{}", self.proxy_log()));
    }

    /// An HTTP client that trusts the proxy's certificate.
    pub fn http(&self) -> reqwest::blocking::Client {
        let mut builder = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30));
        if let Some(pem) = &self.ca_pem {
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
        } else {
            // Before the certificate is published: only to see that the proxy is up.
            builder = builder.danger_accept_invalid_certs(true);
        }
        builder.build().unwrap()
    }

    /// A member of `acme` who signed in, logged in with the CLI.
    pub fn member(&self, email: &str) -> Member {
        let session = self.app.sign_in(email, "acme");
        let member = Member {
            home: tempfile::tempdir().unwrap(),
            email: email.to_owned(),
            cluster_id: self.cluster_id.clone(),
            control_plane: self.app.url.clone(),
        };
        member.lanyard(&["login", "--control-plane", &self.app.url, "--token", &session]).ok();
        member
    }

    /// Grant `email` `role` at `namespace` (or the cluster); returns the grant id.
    pub fn grant(&self, email: &str, role: &str, namespace: Option<&str>) -> String {
        self.app.grant_access(&self.admin, &self.cluster_id, email, role, namespace)
    }

    /// Grant `id`'s status now.
    pub fn status(&self, id: &str) -> String {
        let grants = self.app.grants(&self.admin, &self.cluster_id);
        let grant = grants.into_iter().find(|g| g["id"] == id).expect("the grant is listed");
        grant["status"].as_str().unwrap().to_owned()
    }

    /// Wait until grant `id` shows `status`.
    pub fn wait_status(&self, id: &str, status: &str) {
        wait_for(&format!("grant {id} to be {status}"), SETTLE, || {
            let grants = self.app.grants(&self.admin, &self.cluster_id);
            let grant = grants.into_iter().find(|g| g["id"] == id);
            Ok(match grant {
                Some(g) if g["status"] == status => Probe::Ready(()),
                other => Probe::NotYet(format!("{other:?}")),
            })
        })
        .unwrap_or_else(|e| panic!("{e:#}\nproxy log:\n{}", self.proxy_log()));
    }

    /// Create namespace `name` as the cluster's admin.
    pub fn namespace(&self, name: &str) {
        self.kube.kubectl_ok(Identity::Admin, ["create", "namespace", name]).expect("create a namespace");
    }
}

impl Drop for AccessEnv {
    fn drop(&mut self) {
        for child in [self.proxy.take(), self.worker.take()].into_iter().flatten() {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A member's machine: a home with the CLI's config and a kubeconfig.
pub struct Member {
    home: tempfile::TempDir,
    pub email: String,
    cluster_id: String,
    control_plane: String,
}

/// What a command printed and how it ended.
#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    #[track_caller]
    pub fn ok(&self) -> &Out {
        assert_eq!(self.code, Some(0), "failed: {self:?}");
        self
    }

    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl From<Output> for Out {
    fn from(o: Output) -> Out {
        Out {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Member {
    pub fn kubeconfig(&self) -> PathBuf {
        self.home.path().join(".kube/config")
    }

    fn env(&self, command: &mut Command) {
        let path = format!("{}:{}", cli_dir().display(), std::env::var("PATH").unwrap_or_default());
        command
            .env("HOME", self.home.path())
            .env("LANYARD_CONFIG", self.home.path().join("lanyard/config.json"))
            .env("KUBECONFIG", self.kubeconfig())
            .env("PATH", path)
            .env_remove("LANYARD_CONTROL_PLANE")
            .stdin(Stdio::null());
    }

    /// Run the CLI.
    pub fn lanyard(&self, args: &[&str]) -> Out {
        let mut command = Command::new(cli_dir().join("lanyard"));
        command.args(args);
        self.env(&mut command);
        command.output().expect("run lanyard").into()
    }

    /// `lanyard cluster kubeconfig add` for the cluster.
    pub fn add_kubeconfig(&self) {
        self.lanyard(&["cluster", "kubeconfig", "add", &self.cluster_id, "--set-current"]).ok();
    }

    /// A copy of the member's kubeconfig that works from any environment:
    /// its exec plugin names the CLI by path and carries the member's
    /// `HOME` and `LANYARD_CONFIG` (for helpers that run kubectl themselves).
    pub fn portable_kubeconfig(&self) -> PathBuf {
        let q = |p: &Path| Value::from(p.display().to_string()).to_string();
        let text = std::fs::read_to_string(self.kubeconfig()).unwrap();
        let mut out = String::new();
        for line in text.lines() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("command:") && trimmed.contains("lanyard") {
                let indent = &line[..line.len() - trimmed.len()];
                out.push_str(&format!("{indent}command: {}\n{indent}env:\n", q(&cli_dir().join("lanyard"))));
                out.push_str(&format!("{indent}- name: HOME\n{indent}  value: {}\n", q(self.home.path())));
                let config = self.home.path().join("lanyard/config.json");
                out.push_str(&format!("{indent}- name: LANYARD_CONFIG\n{indent}  value: {}\n", q(&config)));
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        assert!(out.contains("LANYARD_CONFIG"), "no exec plugin in the kubeconfig:\n{text}");
        let path = self.home.path().join("portable.kubeconfig");
        std::fs::write(&path, out).unwrap();
        path
    }

    /// A kubectl command with the member's kubeconfig and the CLI on `PATH`.
    pub fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(lanyard_kube::kubectl_program());
        command.args(args).args(["--request-timeout", "20s"]);
        self.env(&mut command);
        command
    }

    /// Run kubectl.
    pub fn kubectl(&self, args: &[&str]) -> Out {
        self.kubectl_command(args).output().expect("run kubectl").into()
    }

    /// A cluster token, as the exec plugin gets it.
    pub fn token(&self) -> String {
        let out =
            self.lanyard(&["cluster", "token", "--control-plane", &self.control_plane, "--cluster", &self.cluster_id]);
        let credential: Value = serde_json::from_str(&out.ok().stdout).expect("an ExecCredential");
        credential["status"]["token"].as_str().expect("a token").to_owned()
    }

    /// Wait until `kubectl args` succeeds; returns its output.
    pub fn wait_kubectl_ok(&self, args: &[&str]) -> Out {
        wait_for(&format!("`kubectl {}` to succeed", args.join(" ")), SETTLE, || {
            let out = self.kubectl(args);
            Ok(if out.success() { Probe::Ready(out) } else { Probe::NotYet(out.stderr) })
        })
        .unwrap_or_else(|e| panic!("{e:#}"))
    }
}

/// The directory of the `lanyard` CLI built beside the agent.
pub fn cli_dir() -> PathBuf {
    let dir = super::agent_binary().parent().unwrap().to_path_buf();
    assert!(
        dir.join("lanyard").exists(),
        "{} is missing: build the CLI first (`cargo build -p lanyard-cli`; `bash scripts/test` does)",
        dir.join("lanyard").display()
    );
    dir
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A test CA's certificate for 127.0.0.1 and localhost, as files; returns (cert, key, CA PEM).
fn test_certificate(dir: &Path) -> (PathBuf, PathBuf, String) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "lanyard e2e test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let (cert, key) = (dir.join("proxy.crt"), dir.join("proxy.key"));
    std::fs::write(&cert, leaf.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    (cert, key, ca.pem())
}

/// `GET path` on the proxy over HTTP/2 (ALPN `h2`, as kubectl negotiates it)
/// with `token`: the negotiated protocol and the status.
pub fn http2_get(env: &AccessEnv, path: &str, token: &str) -> (Option<Vec<u8>>, u16) {
    use http_body_util::BodyExt as _;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        let pem = env.ca_pem.as_ref().expect("the proxy's CA");
        use rustls_pki_types::pem::PemObject as _;
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", env.port())).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp).await.unwrap();
        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let io = hyper_util::rt::TokioIo::new(tls);
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await.unwrap();
        tokio::spawn(conn);
        let req = http::Request::get(format!("{}{path}", env.proxy_url))
            .header("authorization", format!("Bearer {token}"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let _ = resp.into_body().collect().await;
        (alpn, status)
    })
}
