//! A test harness for the control plane over real HTTP: it starts the
//! project's wasmtime host on `spin.toml` (the real, built components) with a
//! fresh key-value store, as a development deployment (`development_mode`)
//! that trusts a throwaway development issuer for the organisations in
//! [`ORGS`] (and any further issuers a test adds, [`TestIssuer`]), and gives
//! tests a small client. Nothing here mocks Lanyard: requests go through the
//! host's router into the Wasm components and their key-value store.
//!
//! Every response the harness receives is checked against the OpenAPI
//! document, `openapi.yaml` at the repository root ([`openapi`]): a status the
//! document does not give for the request's method and path, or a body that
//! does not match its schema, fails the test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jwt_simple::prelude::Ed25519KeyPair;
use lanyard_core::dev::{self, SessionClaims};
use lanyard_host::{Faults, HostConfig, HostHandle};
use serde_json::Value;

pub mod sso;

pub use lanyard_test_support::repo_root;

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

/// The `token_jwks` value that publishes the public halves of a
/// `token_signing_keys` value.
pub fn public_jwks(signing_keys: &str) -> String {
    lanyard_core::token::SigningKeys::parse(signing_keys).expect("valid signing keys").jwks().to_string()
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
    faults: Option<Arc<Faults>>,
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

/// The organisations the harness's development issuer speaks for.
pub const ORGS: &[&str] = &["acme", "globex", "other"];

/// How to start an [`App`].
pub struct Options {
    pub gateway: bool,
    /// Further `session_issuers` entries, after the development issuer's.
    pub issuers: Vec<Value>,
    /// Variables, applied last (so `session_issuers` here replaces them all).
    pub extra: Vec<(String, String)>,
    /// Start the host with a key-value fault switch ([`App::faults`]), off
    /// until the test arms it.
    pub faults: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { gateway: true, issuers: Vec::new(), extra: Vec::new(), faults: false }
    }
}

/// Another trusted SSO issuer, with its own key and `iss`, for tests of
/// several issuers: put [`TestIssuer::entry`] in [`Options::issuers`].
pub struct TestIssuer {
    pub key: Ed25519KeyPair,
    pub iss: String,
}

impl TestIssuer {
    pub fn new(iss: &str) -> TestIssuer {
        TestIssuer { key: dev::new_key(&lanyard_core::random::SystemRandom).unwrap(), iss: iss.to_owned() }
    }

    /// Its `session_issuers` entry, with the members of `binding` (`org` or
    /// `orgs`, and any other option) added.
    pub fn entry(&self, binding: Value) -> Value {
        let jwk: Value = serde_json::from_str(&self.key.public_key().to_jwk()).unwrap();
        let mut entry = serde_json::json!({"issuer": self.iss, "audience": dev::AUDIENCE, "jwks": {"keys": [jwk]}});
        for (k, v) in binding.as_object().expect("binding is a JSON object") {
            entry[k] = v.clone();
        }
        entry
    }

    /// A session token of this issuer.
    pub fn token(&self, email: &str, org: &str, admin: bool) -> String {
        let claims = SessionClaims { email: email.into(), org: org.into(), admin, name: None, ttl_secs: 600 };
        dev::mint_session(&self.key, &self.iss, dev::AUDIENCE, &claims, unix_now())
    }

    /// A session token of this issuer as [`TestIssuer::token`] makes it,
    /// after `f` changed its claims.
    pub fn token_with(&self, email: &str, org: &str, admin: bool, f: impl FnOnce(SessionJwt) -> SessionJwt) -> String {
        use jwt_simple::prelude::*;
        let mut custom = serde_json::Map::new();
        custom.insert("email".into(), email.into());
        custom.insert("email_verified".into(), true.into());
        custom.insert("org".into(), org.into());
        custom.insert("org_role".into(), if admin { "admin" } else { "member" }.into());
        let claims = Claims::with_custom_claims(custom, Duration::from_secs(600))
            .with_issuer(&self.iss)
            .with_audience(dev::AUDIENCE)
            .with_subject(format!("dev|{email}"));
        let mut claims = f(claims);
        claims.invalid_before = None;
        self.key.sign(claims).expect("sign a session")
    }
}

/// The claims of a session token, for [`TestIssuer::token_with`].
pub type SessionJwt = jwt_simple::claims::JWTClaims<serde_json::Map<String, Value>>;

impl App {
    pub fn start() -> App {
        App::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> App {
        let root = repo_root();
        let manifest = root.join("spin.toml");
        require_components(&manifest);
        let issuer = dev::new_key(&lanyard_core::random::SystemRandom).unwrap();
        let mut variables = BTreeMap::new();
        let mut issuers = vec![dev::issuer_entry(&issuer, dev::DEV_ISSUER, dev::AUDIENCE, ORGS)];
        issuers.extend(options.issuers);
        variables.insert("session_issuers".to_owned(), Value::Array(issuers).to_string());
        variables.insert("development_mode".to_owned(), "true".to_owned());
        variables.insert("access_gateway_enabled".to_owned(), options.gateway.to_string());
        let signing = format!("[{}]", dev::new_key(&lanyard_core::random::SystemRandom).unwrap().to_jwk());
        variables.insert("token_jwks".to_owned(), public_jwks(&signing));
        variables.insert("token_signing_keys".to_owned(), signing);
        variables.extend(options.extra);
        let state = tempfile::tempdir().expect("temp dir");
        let mut app = App {
            host: None,
            url: String::new(),
            issuer,
            state,
            variables,
            // Redirects are answers to check, not to follow (the sign-in and the Access view redirect).
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            faults: options.faults.then(|| Arc::new(Faults::new())),
        };
        app.boot();
        app
    }

    fn boot(&mut self) {
        self.boot_at(None);
    }

    fn boot_at(&mut self, listen: Option<std::net::SocketAddr>) {
        let root = repo_root();
        let cache = root.join("target/lanyard-test-cache");
        let mut config = HostConfig::new(root.join("spin.toml"), self.state.path(), cache);
        if let Some(listen) = listen {
            config.listen = listen;
        }
        config.variables = self.variables.clone();
        // As Spin does: client-sent spin-* headers reach the component, before
        // the router's own values. The core must not be fooled by them.
        config.client_spin_headers = lanyard_host::ClientSpinHeaders::KeepLikeSpin;
        config.faults = self.faults.clone();
        let host = lanyard_host::spawn(config).expect("start lanyard-host");
        self.url = host.url();
        self.host = Some(host);
    }

    /// Stop the host and start it again on the same store.
    pub fn restart(&mut self) {
        self.stop();
        self.boot();
    }

    /// Stop the host, keeping its store and address: the control plane is
    /// unreachable until [`App::resume`].
    pub fn stop(&mut self) {
        if let Some(host) = self.host.take() {
            host.shutdown().expect("host shut down cleanly");
        }
    }

    /// Start the host again, on the store and the address it had.
    pub fn resume(&mut self) {
        assert!(self.host.is_none(), "the host is running");
        let address = self.url.trim_start_matches("http://").parse().expect("the host's address");
        self.boot_at(Some(address));
    }

    /// Change a variable; the host reads it at its next start ([`App::resume`]).
    pub fn set_variable(&mut self, name: &str, value: impl Into<String>) {
        self.variables.insert(name.to_owned(), value.into());
    }

    /// A variable the host runs with (e.g. `token_signing_keys`).
    pub fn variable(&self, name: &str) -> Option<&str> {
        self.variables.get(name).map(String::as_str)
    }

    /// The host's key-value fault switch: arm it with a
    /// [`lanyard_host::Plan`], read what it saw, disarm it. Only for an app
    /// started with [`Options::faults`].
    #[track_caller]
    pub fn faults(&self) -> &Faults {
        self.faults.as_deref().expect("the app was started without Options::faults")
    }

    /// The key-value store's path.
    pub fn kv_path(&self) -> PathBuf {
        self.state.path().join("kv.sqlite")
    }

    /// Every row of the key-value store, for "nothing changed" assertions.
    pub fn kv_snapshot(&self) -> Vec<(String, String, Vec<u8>)> {
        let conn = rusqlite::Connection::open_with_flags(self.kv_path(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open kv.sqlite");
        let mut stmt =
            conn.prepare("SELECT store, key, CAST(value AS BLOB) FROM spin_key_value ORDER BY store, key").unwrap();
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
    #[track_caller]
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

    /// Send a request built with [`App::request`], and check the response
    /// against `openapi.yaml`.
    #[track_caller]
    pub fn finish(req: reqwest::blocking::RequestBuilder) -> Resp {
        let (client, req) = req.build_split();
        let req = req.expect("a valid request");
        let (method, path) = (req.method().to_string(), req.url().path().to_owned());
        let resp = client.execute(req).expect("request reached the host");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().unwrap_or_default();
        if let Err(problem) = openapi::spec().check(&method, &path, status, &headers, &body) {
            panic!("{problem}");
        }
        let json = serde_json::from_str(&body).unwrap_or(Value::Null);
        Resp { status, headers, body, json }
    }

    #[track_caller]
    pub fn get(&self, path: &str, auth: &str) -> Resp {
        self.send("GET", path, Some(auth), None)
    }

    #[track_caller]
    pub fn post(&self, path: &str, auth: &str, body: Value) -> Resp {
        self.send("POST", path, Some(auth), Some(&body))
    }

    #[track_caller]
    pub fn delete(&self, path: &str, auth: &str) -> Resp {
        self.send("DELETE", path, Some(auth), None)
    }

    /// Register a cluster; returns its id.
    #[track_caller]
    pub fn cluster(&self, admin: &str, name: &str, kind: &str) -> String {
        self.register(admin, name, kind).0
    }

    /// Register a cluster; returns its id and its agent credential.
    #[track_caller]
    pub fn register(&self, admin: &str, name: &str, kind: &str) -> (String, String) {
        let resp = self.registration(admin, name, kind);
        resp.expect(201);
        let id = resp.json["cluster"]["id"].as_str().unwrap().to_owned();
        (id, resp.json["agent_credential"].as_str().unwrap().to_owned())
    }

    /// The answer to registering a cluster (proxied at `https://proxy.example:8443`).
    #[track_caller]
    pub fn registration(&self, admin: &str, name: &str, kind: &str) -> Resp {
        let body = serde_json::json!({"name": name, "kind": kind, "proxy_url": "https://proxy.example:8443"});
        self.post("/api/v1/clusters", admin, body)
    }

    /// Make `email` known to the directory (as their first sign-in does).
    #[track_caller]
    pub fn sign_in(&self, email: &str, org: &str) -> String {
        let token = self.token(email, org, false);
        self.get("/api/v1/clusters", &token).expect(200);
        token
    }

    /// Create a grant as `admin`.
    #[track_caller]
    pub fn grant(&self, admin: &str, cluster: &str, body: Value) -> Resp {
        self.post(&format!("/api/v1/clusters/{cluster}/access/grants"), admin, body)
    }

    /// Grant `email` (a member who signed in) `role` on `cluster` as `admin`:
    /// in `namespace`, or cluster-wide for `None`. The grant must be created;
    /// returns its id.
    #[track_caller]
    pub fn grant_access(&self, admin: &str, cluster: &str, email: &str, role: &str, namespace: Option<&str>) -> String {
        let body = match namespace {
            Some(ns) => serde_json::json!({"email": email, "role": role, "scope": "namespace", "namespace": ns}),
            None => serde_json::json!({"email": email, "role": role, "scope": "cluster"}),
        };
        let resp = self.grant(admin, cluster, body);
        resp.expect(201);
        resp.json["id"].as_str().unwrap().to_owned()
    }

    #[track_caller]
    pub fn grants(&self, admin: &str, cluster: &str) -> Vec<Value> {
        let resp = self.get(&format!("/api/v1/clusters/{cluster}/access/grants"), admin);
        resp.expect(200);
        resp.json["grants"].as_array().unwrap().clone()
    }

    /// The directory id of `email`, as `admin` lists it.
    #[track_caller]
    pub fn member_id(&self, admin: &str, email: &str) -> String {
        let members = self.get("/api/v1/members", admin);
        members.expect(200);
        let found = members.json["members"].as_array().unwrap().iter().find(|m| m["email"] == email).cloned();
        found.unwrap_or_else(|| panic!("{email} is not in the directory: {}", members.body))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Change the member `id` (`PATCH /api/v1/members/{id}`) as `admin`.
    #[track_caller]
    pub fn patch_member(&self, admin: &str, id: &str, body: Value) -> Resp {
        self.send("PATCH", &format!("/api/v1/members/{id}"), Some(admin), Some(&body))
    }

    /// The published JWKS.
    #[track_caller]
    pub fn jwks(&self) -> Value {
        let resp = self.send("GET", "/.well-known/jwks.json", None, None);
        resp.expect(200);
        resp.json
    }
}

/// The set-up most tests share: a fresh control plane and the session of
/// `admin@acme.example`, an admin of `acme` ([`Fixture::start`]), to which
/// [`Fixture::with_cluster`] adds a registered cluster and
/// [`ClusterFixture::with_member`] members who signed in. Tests take it apart
/// into the names they use:
///
/// ```text
/// let ClusterFixture { app, admin, cluster, .. } =
///     Fixture::start().with_cluster("prod").with_member("dev@acme.example");
/// app.grant_access(&admin, &cluster, "dev@acme.example", "view", Some("team-a"));
/// ```
///
/// (A test that needs a member's session takes it from [`App::sign_in`].)
pub struct Fixture {
    pub app: App,
    /// The session of `admin@acme.example`, an admin of `acme`.
    pub admin: String,
}

/// A [`Fixture`] with a standard cluster its admin registered.
pub struct ClusterFixture {
    pub app: App,
    /// The session of `admin@acme.example`, an admin of `acme`.
    pub admin: String,
    /// The cluster's id.
    pub cluster: String,
    /// The cluster's agent credential.
    pub credential: String,
}

impl Fixture {
    /// A control plane started with the default [`Options`], and its admin.
    pub fn start() -> Fixture {
        Fixture::start_with(Options::default())
    }

    /// A control plane started with `options`, and its admin.
    pub fn start_with(options: Options) -> Fixture {
        let app = App::start_with(options);
        let admin = app.admin("acme");
        Fixture { app, admin }
    }

    /// The standard cluster `name`, registered by the admin.
    #[track_caller]
    pub fn with_cluster(self, name: &str) -> ClusterFixture {
        let (cluster, credential) = self.app.register(&self.admin, name, "standard");
        ClusterFixture { app: self.app, admin: self.admin, cluster, credential }
    }
}

impl ClusterFixture {
    /// `email` signed in once, which makes them an active member of `acme`.
    #[track_caller]
    pub fn with_member(self, email: &str) -> ClusterFixture {
        self.app.sign_in(email, "acme");
        self
    }
}

/// The OpenAPI document and the check every response goes through.
///
/// `openapi.yaml` is loaded once. A request is matched to what documents it:
/// the operation of its method at the path template that matches its path
/// (`{param}` is one non-empty segment; one trailing slash is ignored, as Spin
/// routes); for a method the path does not serve, the path's
/// `x-other-methods`; for a path the document does not list, the document's
/// `x-unknown-paths`. The response's status must be one of those responses,
/// its required headers present, and its body what the response's content
/// says: no body when it has none, else JSON of the documented media type that
/// validates (JSON Schema 2020-12) against the schema.
pub mod openapi {
    use std::path::Path;
    use std::sync::OnceLock;

    use reqwest::header::{CONTENT_TYPE, HeaderMap};
    use serde_json::{Value, json};

    /// A loaded OpenAPI document.
    pub struct Spec {
        doc: Value,
    }

    /// The repository's `openapi.yaml`, loaded on first use.
    pub fn spec() -> &'static Spec {
        static SPEC: OnceLock<Spec> = OnceLock::new();
        SPEC.get_or_init(|| Spec::load(&super::repo_root().join("openapi.yaml")).unwrap_or_else(|e| panic!("{e}")))
    }

    impl Spec {
        pub fn load(path: &Path) -> Result<Spec, String> {
            let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let doc: Value =
                serde_norway::from_str(&text).map_err(|e| format!("{} is not valid YAML: {e}", path.display()))?;
            Ok(Spec { doc })
        }

        /// The whole document, as JSON.
        pub fn doc(&self) -> &Value {
            &self.doc
        }

        /// The path templates, in document order.
        pub fn paths(&self) -> impl Iterator<Item = &str> {
            self.doc["paths"].as_object().into_iter().flatten().map(|(k, _)| k.as_str())
        }

        /// The value a local `$ref` (`#/json/pointer`) points at.
        pub fn pointer(&self, reference: &str) -> Result<&Value, String> {
            reference
                .strip_prefix('#')
                .and_then(|p| self.doc.pointer(p))
                .ok_or_else(|| format!("openapi.yaml: $ref {reference} does not resolve"))
        }

        /// `value`, or what its `$ref` (chain) points at.
        pub fn resolve<'a>(&'a self, mut value: &'a Value) -> Result<&'a Value, String> {
            for _ in 0..8 {
                match value.get("$ref").and_then(Value::as_str) {
                    Some(reference) => value = self.pointer(reference)?,
                    None => return Ok(value),
                }
            }
            Err("openapi.yaml: $ref chain too long".into())
        }

        /// The path template that documents `path`, if any.
        pub fn template_for(&self, path: &str) -> Option<&str> {
            let path = if path.len() > 1 { path.strip_suffix('/').unwrap_or(path) } else { path };
            self.paths().find(|template| template_matches(template, path))
        }

        /// The responses that document `method` at `path`, and what they are
        /// (for messages).
        pub fn responses_for(&self, method: &str, path: &str) -> Result<(String, &Value), String> {
            let Some(template) = self.template_for(path) else {
                let unknown = self.resolve(&self.doc["x-unknown-paths"])?;
                return Ok(("x-unknown-paths".into(), &unknown["responses"]));
            };
            let item = self.resolve(&self.doc["paths"][template])?;
            let mut key = method.to_ascii_lowercase();
            if key == "head" && item.get("head").is_none() {
                key = "get".into(); // HEAD is answered as GET, without the body.
            }
            match item.get(&key) {
                Some(operation) => Ok((format!("{} {template}", key.to_ascii_uppercase()), &operation["responses"])),
                None => {
                    let other = self.resolve(&item["x-other-methods"])?;
                    Ok((format!("x-other-methods of {template}"), &other["responses"]))
                }
            }
        }

        /// Check one response against the document.
        pub fn check(
            &self,
            method: &str,
            path: &str,
            status: u16,
            headers: &HeaderMap,
            body: &str,
        ) -> Result<(), String> {
            let (what, responses) = self.responses_for(method, path)?;
            let fail = |problem: String| {
                format!("{method} {path} answered {status}: {problem} ({what} in openapi.yaml); body: {body}")
            };
            let response =
                responses.get(status.to_string()).ok_or_else(|| fail("this status is not documented".into()))?;
            let response = self.resolve(response)?;
            for (name, header) in response["headers"].as_object().into_iter().flatten() {
                if self.resolve(header)?["required"] == true && !headers.contains_key(name.as_str()) {
                    return Err(fail(format!("the required header {name} is missing")));
                }
            }
            let Some(content) = response.get("content").and_then(Value::as_object) else {
                return if body.is_empty() {
                    Ok(())
                } else {
                    Err(fail("documented without a body, but it has one".into()))
                };
            };
            if method == "HEAD" {
                return Ok(());
            }
            let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            let media = content
                .get(&essence)
                .ok_or_else(|| fail(format!("content type {content_type:?} is not documented")))?;
            if matches!(essence.as_str(), "text/html" | "text/javascript" | "text/css") {
                return Ok(()); // a page for a person: documented, not schema-checked
            }
            let instance: Value = if essence == "application/yaml" {
                serde_norway::from_str(body).map_err(|e| fail(format!("the body is not YAML: {e}")))?
            } else {
                serde_json::from_str(body).map_err(|e| fail(format!("the body is not JSON: {e}")))?
            };
            self.validate(&media["schema"], &instance).map_err(fail)
        }

        /// A JSON Schema 2020-12 validator for a schema of the document; its
        /// `$ref`s to `#/components/schemas/...` resolve against the document.
        pub fn validator(&self, schema: &Value) -> Result<jsonschema::Validator, String> {
            let root = json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "components": {"schemas": self.doc["components"]["schemas"]},
                "allOf": [schema],
            });
            jsonschema::draft202012::options()
                .should_validate_formats(true)
                .build(&root)
                .map_err(|e| format!("openapi.yaml: a schema does not compile: {e}"))
        }

        /// Validate `instance`, naming every violation.
        pub fn validate(&self, schema: &Value, instance: &Value) -> Result<(), String> {
            let validator = self.validator(schema)?;
            let errors: Vec<String> =
                validator.iter_errors(instance).map(|e| format!("at '{}': {e}", e.instance_path())).collect();
            if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
        }
    }

    /// Whether `path` matches `template`: literal segments equal, `{param}`
    /// segments non-empty.
    pub fn template_matches(template: &str, path: &str) -> bool {
        let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
        t.len() == p.len()
            && t.iter()
                .zip(&p)
                .all(|(t, p)| if t.starts_with('{') && t.ends_with('}') { !p.is_empty() } else { t == p })
    }
}
