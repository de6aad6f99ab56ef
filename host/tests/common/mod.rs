//! Shared helpers for the end-to-end tests: the fixture component, a test
//! manifest around it, temporary state directories and a small HTTP client.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use lanyard_host::{HostConfig, HostHandle};
use serde_json::Value;

/// The fixture component, which must have been built for wasm32-wasip2.
pub fn fixture_wasm() -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        // At run time: a test binary may be reused by another checkout.
        None => Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("run the tests with cargo")).join("../target"),
    };
    let wasm = target.join("wasm32-wasip2/release/host_fixture.wasm");
    assert!(
        wasm.is_file(),
        "\n\nThe test component is missing: {}\n\
         Build it first, from the repository root:\n\
         \n    rustup target add wasm32-wasip2\
         \n    cargo build --target wasm32-wasip2 --release -p host-fixture\n\n",
        wasm.display()
    );
    wasm
}

/// A directory under cargo's per-target temp dir, emptied on creation and
/// removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "lanyard-host-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Precompiled components shared by all tests (keyed by content, so safe).
pub fn shared_cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("lanyard-host-component-cache")
}

/// The secret the tests pass as an override for the required variable.
pub const TOKEN: &str = "override-token";

/// The test app's `[[trigger.http]]` routes, `(route, component)` in manifest
/// order: every fixture operation on `main`, and the `other/` and `nokv/`
/// prefixes on the other two mounts.
const ROUTES: &[(&str, &str)] = &[
    ("/clusters/:cluster_id/grants/:grant_id", "main"),
    ("/echo/...", "main"),
    ("/var/:name", "main"),
    ("/kv", "main"),
    ("/wkv", "main"),
    ("/trap", "main"),
    ("/exit", "main"),
    ("/noresponse", "main"),
    ("/loop", "main"),
    ("/other/...", "second"),
    ("/nokv/...", "nokv"),
];

/// A test app: the fixture mounted as `main` (with key-value access and
/// variables), `second` (other variable values) and `nokv` (neither), served
/// on [`ROUTES`].
pub fn write_manifest(dir: &Path) -> PathBuf {
    let wasm = fixture_wasm();
    let source = wasm.display().to_string().replace('\\', "\\\\");
    let triggers: String = ROUTES
        .iter()
        .map(|(route, component)| format!("[[trigger.http]]\nroute = \"{route}\"\ncomponent = \"{component}\"\n\n"))
        .collect();
    let manifest = format!(
        r#"spin_manifest_version = 2

[application]
name = "host-fixture-app"

[variables]
greeting = {{ default = "hello" }}
secret_token = {{ required = true, secret = true }}
suffix = {{ default = "!" }}

{triggers}[component.main]
source = "{source}"
key_value_stores = ["default"]
allowed_outbound_hosts = []
[component.main.variables]
greeting = "{{{{ greeting }}}}"
token = "{{{{ secret_token }}}}"
combined = "pre-{{{{greeting}}}}-{{{{ secret_token }}}}{{{{ suffix }}}}"

[component.second]
source = "{source}"
key_value_stores = ["default"]
[component.second.variables]
greeting = "second says {{{{ greeting }}}}"

[component.nokv]
source = "{source}"
"#
    );
    let path = dir.join("spin.toml");
    std::fs::write(&path, manifest).expect("write manifest");
    path
}

/// A host configuration for the test app with its state in `state`.
pub fn config(app_dir: &Path, state: &Path) -> HostConfig {
    let manifest = write_manifest(app_dir);
    let mut config = HostConfig::new(manifest, state, shared_cache_dir());
    config.variables.insert("secret_token".into(), TOKEN.into());
    config.max_concurrent_requests = 16;
    config
}

/// One test's app: the test manifest in `dir` (`<tag>-app`) and the host's
/// state in `state` (`<tag>-state`).
pub struct TestApp {
    pub dir: TempDir,
    pub state: TempDir,
}

impl TestApp {
    pub fn new(tag: &str) -> TestApp {
        TestApp { dir: TempDir::new(&format!("{tag}-app")), state: TempDir::new(&format!("{tag}-state")) }
    }

    /// The host configuration for this app (see [`config`]).
    pub fn config(&self) -> HostConfig {
        config(self.dir.path(), self.state.path())
    }

    /// Starts a host on this app's configuration.
    pub fn spawn(&self) -> HostHandle {
        self.spawn_with(|_| {})
    }

    /// Starts a host on this app's configuration as `adjust` changes it.
    pub fn spawn_with(&self, adjust: impl FnOnce(&mut HostConfig)) -> HostHandle {
        let mut config = self.config();
        adjust(&mut config);
        lanyard_host::spawn(config).expect("host starts")
    }
}

/// Sends logs to the test harness's captured output.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
}

/// A response, read to the end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request on a new connection.
pub async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect to the host");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("HTTP handshake");
    tokio::spawn(connection);
    let mut builder = Request::builder().method(method).uri(path).header("host", addr.to_string());
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Full::new(Bytes::copy_from_slice(body))).expect("valid request");
    let response = sender.send_request(request).await.expect("send request");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.expect("read response body").to_bytes();
    Reply { status, headers, body }
}

pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, "GET", path, &[], b"").await
}

/// The `ok` value of a fixture answer, failing the test on `err`.
pub fn ok(reply: &Reply) -> Value {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let json = reply.json();
    match json.get("ok") {
        Some(value) => value.clone(),
        None => panic!("expected ok, got {json}"),
    }
}

/// The `err` text of a fixture answer, failing the test on `ok`.
pub fn err(reply: &Reply) -> String {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let json = reply.json();
    match json.get("err").and_then(Value::as_str) {
        Some(text) => text.to_string(),
        None => panic!("expected err, got {json}"),
    }
}

/// All values of header `name` in the fixture's echo, in order.
pub fn header_values(echo: &Value, name: &str) -> Vec<String> {
    echo["headers"]
        .as_array()
        .expect("headers array")
        .iter()
        .filter(|pair| pair[0].as_str() == Some(name))
        .map(|pair| pair[1].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The one value of header `name`, failing if it is absent or repeated.
pub fn header(echo: &Value, name: &str) -> String {
    let values = header_values(echo, name);
    assert_eq!(values.len(), 1, "header {name}: {values:?} in {echo}");
    values.into_iter().next().unwrap_or_default()
}

/// Hex of an i64 as 8 little-endian bytes (how increment stores counters).
pub fn le_hex(n: i64) -> String {
    n.to_le_bytes().iter().map(|b| format!("{b:02x}")).collect()
}
