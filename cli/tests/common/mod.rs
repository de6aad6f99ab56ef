//! Shared by the CLI tests: a private environment per test (its own HOME,
//! LANYARD_CONFIG and KUBECONFIG) and a runner for the real `lanyard` binary.

#![allow(dead_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use lanyard_api_tests::App;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_lanyard");

pub struct Env {
    pub home: tempfile::TempDir,
    pub config: PathBuf,
    pub kubeconfig: PathBuf,
}

#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "expected success: {self:?}");
        self
    }

    #[track_caller]
    pub fn code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "expected exit {code}: {self:?}");
        self
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

fn out(o: Output) -> Out {
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

impl Env {
    pub fn new() -> Env {
        let home = tempfile::tempdir().expect("temp home");
        let config = home.path().join("lanyard-config/config.json");
        let kubeconfig = home.path().join("kube/config");
        Env {
            home,
            config,
            kubeconfig,
        }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The binary with this environment (and no standard input).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("HOME", self.home())
            .env("LANYARD_CONFIG", &self.config)
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("LANYARD_CONTROL_PLANE")
            .env_remove("LANYARD_STATE")
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Out {
        out(self.command(args).output().expect("run lanyard"))
    }

    pub fn run_stdin(&self, args: &[&str], input: &str) -> Out {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lanyard");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        out(child.wait_with_output().unwrap())
    }

    #[track_caller]
    pub fn login(&self, app: &App, token: &str) {
        self.run(&["login", "--control-plane", &app.url, "--token", token])
            .ok();
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.home().join(".kube/cache/lanyard")
    }
}

/// Wait for `cond` until `deadline`, polling.
#[track_caller]
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

pub fn kubectl(env: &Env, args: &[&str]) -> Out {
    let path = format!(
        "{}:{}",
        Path::new(BIN).parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    out(Command::new("/usr/bin/kubectl")
        .args(args)
        .env("HOME", env.home())
        .env("LANYARD_CONFIG", &env.config)
        .env("KUBECONFIG", &env.kubeconfig)
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .expect("run kubectl"))
}

pub fn yaml(path: &Path) -> serde_norway::Value {
    serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A kubeconfig with several clusters, users and contexts, preferences,
/// extensions and fields Lanyard does not know.
pub const EXISTING: &str = r#"apiVersion: v1
kind: Config
preferences:
  colors: true
clusters:
- name: kind-dev
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: LS0tLS1CRUdJTi0tLS0t
    extensions:
    - name: client.authentication.k8s.io/exec
      extension: {audience: dev}
- name: prod-eks
  cluster:
    server: https://eks.example:443
    insecure-skip-tls-verify: true
users:
- name: kind-dev
  user:
    token: not-a-real-token
- name: eks-user
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: aws
      args: [eks, get-token, --cluster-name, prod]
contexts:
- name: kind-dev
  context: {cluster: kind-dev, user: kind-dev, namespace: default}
- name: prod
  context: {cluster: prod-eks, user: eks-user}
current-context: kind-dev
extensions:
- name: my-extension
  extension: {x: 1}
x-custom-field: keep me
"#;
