//! A test harness for the control plane over real HTTP: it starts the
//! project's wasmtime host on `spin.toml` (the real, built components) with a
//! fresh key-value store, trusts a throwaway development issuer, and gives
//! tests a small client. Nothing here mocks Lanyard: requests go through the
//! host's router into the Wasm components and their key-value store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jwt_simple::prelude::Ed25519KeyPair;
use lanyard_core::dev::{self, SessionClaims};
use lanyard_host::{HostConfig, HostHandle};
use serde_json::Value;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

/// Fails, naming the command to run, if a component has not been built.
fn require_components(manifest: &Path) {
    let text = std::fs::read_to_string(manifest).expect("read spin.toml");
    let missing: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("source = \"")?.strip_suffix('"'))
        .filter(|src| !manifest.parent().unwrap().join(src).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "the Wasm components are not built ({} missing, e.g. {}): run `bash scripts/test`, or `bash scripts/build-wasm` before `cargo test`",
        missing.len(),
        missing[0]
    );
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A running control plane with its own store.
pub struct App {
    host: Option<HostHandle>,
    pub url: String,
    pub issuer: Ed25519KeyPair,
    state: tempfile::TempDir,
    variables: BTreeMap<String, String>,
    client: reqwest::blocking::Client,
}

/// A response: status, headers, and the body as JSON (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
    pub json: Value,
}

impl Resp {
    /// The error code of an error response.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    /// The field of a validation error.
    pub fn field(&self) -> &str {
        self.json["error"]["field"].as_str().unwrap_or("")
    }

    /// Assert the status and, for errors, that the body is the contract's JSON.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.body);
        if status >= 400 {
            assert!(self.json["error"]["code"].is_string(), "error body is not the contract's JSON: {}", self.body);
            assert!(self.json["error"]["message"].is_string(), "error has no message: {}", self.body);
            let ct = self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
            assert!(ct.starts_with("application/json"), "error content-type {ct}");
        }
        self
    }

    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> &Self {
        self.expect(status);
        assert_eq!(self.code(), code, "body: {}", self.body);
        self
    }
}

/// How to start an [`App`].
pub struct Options {
    pub gateway: bool,
    pub extra: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options { gateway: true, extra: Vec::new() }
    }
}

impl App {
    pub fn start() -> App {
        App::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> App {
        let root = repo_root();
        let manifest = root.join("spin.toml");
        require_components(&manifest);
        let issuer = dev::new_key();
        let mut variables = BTreeMap::new();
        let issuers = Value::Array(vec![dev::issuer_entry(&issuer, dev::DEV_ISSUER, dev::AUDIENCE)]);
        variables.insert("session_issuers".to_owned(), issuers.to_string());
        variables.insert("access_gateway_enabled".to_owned(), options.gateway.to_string());
        variables.extend(options.extra);
        let state = tempfile::tempdir().expect("temp dir");
        let mut app = App {
            host: None,
            url: String::new(),
            issuer,
            state,
            variables,
            client: reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap(),
        };
        app.boot();
        app
    }

    fn boot(&mut self) {
        let root = repo_root();
        let cache = root.join("target/lanyard-test-cache");
        let mut config = HostConfig::new(root.join("spin.toml"), self.state.path(), cache);
        config.variables = self.variables.clone();
        // As Spin does: client-sent spin-* headers reach the component, before
        // the router's own values. The core must not be fooled by them.
        config.client_spin_headers = lanyard_host::ClientSpinHeaders::KeepLikeSpin;
        let host = lanyard_host::spawn(config).expect("start lanyard-host");
        self.url = host.url();
        self.host = Some(host);
    }

    /// Stop the host and start it again on the same store.
    pub fn restart(&mut self) {
        if let Some(host) = self.host.take() {
            host.shutdown().expect("host shut down cleanly");
        }
        self.boot();
    }

    /// The key-value store's path.
    pub fn kv_path(&self) -> PathBuf {
        self.state.path().join("kv.sqlite")
    }

    /// Every row of the key-value store, for "nothing changed" assertions.
    pub fn kv_snapshot(&self) -> Vec<(String, String, Vec<u8>)> {
        let conn = rusqlite::Connection::open_with_flags(self.kv_path(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open kv.sqlite");
        let mut stmt = conn.prepare("SELECT store, key, CAST(value AS BLOB) FROM spin_key_value ORDER BY store, key").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
    }

    /// A session token from the test issuer.
    pub fn token(&self, email: &str, org: &str, admin: bool) -> String {
        let claims = SessionClaims { email: email.into(), org: org.into(), admin, name: None, ttl_secs: 600 };
        dev::mint_session(&self.issuer, dev::DEV_ISSUER, dev::AUDIENCE, &claims, unix_now())
    }

    pub fn admin(&self, org: &str) -> String {
        self.token(&format!("admin@{org}.example"), org, true)
    }

    /// Send a request. `auth` is a bearer token; `body` is sent as JSON.
    pub fn send(&self, method: &str, path: &str, auth: Option<&str>, body: Option<&Value>) -> Resp {
        let mut req = self.request(method, path);
        if let Some(token) = auth {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body.to_string());
        }
        Self::finish(req)
    }

    pub fn request(&self, method: &str, path: &str) -> reqwest::blocking::RequestBuilder {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        self.client.request(method, format!("{}{path}", self.url))
    }

    pub fn finish(req: reqwest::blocking::RequestBuilder) -> Resp {
        let resp = req.send().expect("request reached the host");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().unwrap_or_default();
        let json = serde_json::from_str(&body).unwrap_or(Value::Null);
        Resp { status, headers, body, json }
    }

    pub fn get(&self, path: &str, auth: &str) -> Resp {
        self.send("GET", path, Some(auth), None)
    }

    pub fn post(&self, path: &str, auth: &str, body: Value) -> Resp {
        self.send("POST", path, Some(auth), Some(&body))
    }

    pub fn delete(&self, path: &str, auth: &str) -> Resp {
        self.send("DELETE", path, Some(auth), None)
    }

    /// Register a cluster; returns its id.
    pub fn cluster(&self, admin: &str, name: &str, kind: &str) -> String {
        let resp = self.post(
            "/api/v1/clusters",
            admin,
            serde_json::json!({"name": name, "kind": kind, "proxy_url": "https://proxy.example:8443"}),
        );
        resp.expect(201);
        resp.json["cluster"]["id"].as_str().unwrap().to_owned()
    }

    /// Make `email` known to the directory (as their first sign-in does).
    pub fn sign_in(&self, email: &str, org: &str) -> String {
        let token = self.token(email, org, false);
        self.get("/api/v1/clusters", &token).expect(200);
        token
    }

    /// Create a grant as `admin`.
    pub fn grant(&self, admin: &str, cluster: &str, body: Value) -> Resp {
        self.post(&format!("/api/v1/clusters/{cluster}/access/grants"), admin, body)
    }

    pub fn grants(&self, admin: &str, cluster: &str) -> Vec<Value> {
        let resp = self.get(&format!("/api/v1/clusters/{cluster}/access/grants"), admin);
        resp.expect(200);
        resp.json["grants"].as_array().unwrap().clone()
    }
}
