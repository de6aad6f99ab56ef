//! Shared by the CLI tests: a private environment per test (its own HOME,
//! LANYARD_CONFIG and KUBECONFIG) and a runner for the real `lanyard` binary.

#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lanyard_api_tests::App;
use lanyard_test_support::{Probe, wait_for};
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
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
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
        Env { home, config, kubeconfig }
    }

    /// A new environment, logged in to `app` with the session `token`.
    #[track_caller]
    pub fn logged_in(app: &App, token: &str) -> Env {
        let env = Env::new();
        env.login(app, token);
        env
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The binary with this environment (and no standard input).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args);
        self.with_env(&mut c);
        c
    }

    /// `sh -c script sh args…` with this environment and `$LANYARD` naming
    /// the binary: each run is a new parent process of the CLI, as each
    /// kubectl is of its exec plugin.
    pub fn shell(&self, script: &str, args: &[&str]) -> Out {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script).arg("sh").args(args).env("LANYARD", BIN);
        self.with_env(&mut c);
        out(c.output().expect("run sh"))
    }

    fn with_env(&self, c: &mut Command) {
        c.env("HOME", self.home())
            .env("LANYARD_CONFIG", &self.config)
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("LANYARD_CONTROL_PLANE")
            .env_remove("LANYARD_STATE")
            .stdin(Stdio::null());
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
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        out(child.wait_with_output().unwrap())
    }

    #[track_caller]
    pub fn login(&self, app: &App, token: &str) {
        self.run(&["login", "--control-plane", &app.url, "--token", token]).ok();
    }

    /// `lanyard cluster access grant CLUSTER --email EMAIL --role ROLE`, then
    /// `rest` (the scope, `--namespace N` or `--cluster-scope`, and any other
    /// argument).
    pub fn access_grant(&self, cluster: &str, email: &str, role: &str, rest: &[&str]) -> Out {
        let mut args = vec!["cluster", "access", "grant", cluster, "--email", email, "--role", role];
        args.extend_from_slice(rest);
        self.run(&args)
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.home().join(".kube/cache/lanyard")
    }
}

/// Wait for `cond` until `timeout` passes, polling (the suites' one [`wait_for`]).
#[track_caller]
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let waited =
        wait_for(what, timeout, || Ok(if cond() { Probe::Ready(()) } else { Probe::NotYet("not yet".into()) }));
    if let Err(error) = waited {
        panic!("{error:#}");
    }
}

pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

pub fn kubectl(env: &Env, args: &[&str]) -> Out {
    let path = format!("{}:{}", Path::new(BIN).parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
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

/// What a [`Proxy`] does to an answer: `(method, path, status, body)` → `(status, body)`.
pub type Tamper = Box<dyn Fn(&str, &str, u16, String) -> (u16, String) + Send>;

/// A plain-HTTP proxy on loopback in front of a real control plane: it
/// forwards every request (method, path and query, `Authorization`,
/// `Content-Type`, body) and passes each answer through its [`Tamper`], so a
/// test can play a control plane that answers something Lanyard's never
/// would. It records the requests it forwarded (`METHOD path`).
pub struct Proxy {
    pub url: String,
    tamper: Arc<Mutex<Tamper>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    /// A proxy to `upstream` that changes nothing until [`Proxy::tamper`].
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let tamper: Arc<Mutex<Tamper>> = Arc::new(Mutex::new(Box::new(|_, _, s, b| (s, b))));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (upstream, t, r) = (upstream.to_owned(), tamper.clone(), requests.clone());
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
            for tcp in listener.incoming().flatten() {
                let _ = forward(tcp, &client, &upstream, &t, &r);
            }
        });
        Proxy { url, tamper, requests }
    }

    /// Rewrite every answer with `f` from now on.
    pub fn tamper(&self, f: impl Fn(&str, &str, u16, String) -> (u16, String) + Send + 'static) {
        *self.tamper.lock().unwrap() = Box::new(f);
    }

    /// The requests forwarded so far, as `METHOD path`.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn forward(
    tcp: TcpStream,
    client: &reqwest::blocking::Client,
    upstream: &str,
    tamper: &Mutex<Tamper>,
    requests: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(tcp.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or("GET").to_owned(), parts.next().unwrap_or("/").to_owned());
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
            if name == "content-length" {
                length = value.parse().unwrap_or(0);
            }
            if ["authorization", "content-type"].contains(&name.as_str()) {
                headers.push((name, value));
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    requests.lock().unwrap().push(format!("{method} {path}"));
    let mut req = client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), format!("{upstream}{path}"));
    for (name, value) in headers {
        req = req.header(name, value);
    }
    let (status, content_type, text) = match req.body(body).send() {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let ct = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_owned();
            (status, ct, resp.text().unwrap_or_default())
        }
        Err(e) => (502, "text/plain".to_owned(), e.to_string()),
    };
    let (status, text) = (tamper.lock().unwrap())(&method, &path, status, text);
    let mut tcp = tcp;
    write!(
        tcp,
        "HTTP/1.1 {status} Lanyard-Test\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    tcp.flush()
}

/// `text` with the first `from` replaced by `to`; panics if `from` is not there
/// (so that a tampering test cannot pass by changing nothing).
#[track_caller]
pub fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} is not in {text}");
    text.replacen(from, to, 1)
}

/// The characters of `text` a terminal would act on (every control character but the line break).
pub fn raw_controls(text: &str) -> Vec<char> {
    text.chars().filter(|c| c.is_control() && *c != '\n').collect()
}
