//! The HTTP side of the host: the configuration, loading the app, the hyper
//! server that routes each request to a fresh component instance the way
//! Spin's HTTP trigger does, and [`spawn`] for running it on a background
//! thread (tests, the local run).
//!
//! Per request: route (plain `404` when nothing matches), add Spin's `spin-*`
//! headers, instantiate the component in a new `Store`, call its
//! `wasi:http/incoming-handler`, and stream its response. A trap, a guest
//! that returns without setting a response, or one that runs past the time
//! limit gives a `500` with `{"error":{"code":"internal","message":...}}`;
//! the host keeps serving. One structured log line per request records
//! method, path (never the query), component, status and duration; header
//! values and bodies are never logged.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http::header::{HOST, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot, watch};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::host::ComponentContext;
use crate::kv::{CasMode, KvStore};
use crate::manifest::Manifest;
use crate::routes::{RouteMatch, Router};
use crate::runtime::{self, EpochTicker, RequestState};

/// What to do with `spin-*` headers that the client itself sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientSpinHeaders {
    /// Remove them, so a client cannot forge `spin-path-match-*` and the like.
    #[default]
    Strip,
    /// Keep them, as Spin does: the host's values are added after the
    /// client's, so the header then has two values, the client's first.
    KeepLikeSpin,
}

/// How to run the host.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The Spin manifest (`spin.toml`); component paths are relative to it.
    pub manifest: PathBuf,
    /// Where to listen; port 0 picks a free port (see [`HostHandle::addr`]).
    pub listen: SocketAddr,
    /// Holds `kv.sqlite`, the key-value store; created if missing.
    pub state_dir: PathBuf,
    /// Holds precompiled components; created if missing.
    pub cache_dir: PathBuf,
    /// Variable values that win over `SPIN_VARIABLE_*` and defaults
    /// (like `spin up --variable name=value`).
    pub variables: BTreeMap<String, String>,
    /// A request still running after this is stopped (a `500` if no
    /// response was started).
    pub request_timeout: Duration,
    /// Requests executing at once; more wait. Also sizes the instance pool.
    pub max_concurrent_requests: u32,
    /// See [`CasMode`].
    pub cas_mode: CasMode,
    /// See [`ClientSpinHeaders`].
    pub client_spin_headers: ClientSpinHeaders,
}

impl HostConfig {
    /// A configuration listening on `127.0.0.1:0` with the defaults: no
    /// overrides, 30 s time limit, 64 concurrent requests, [`CasMode`] and
    /// [`ClientSpinHeaders`] defaults.
    pub fn new(
        manifest: impl Into<PathBuf>,
        state_dir: impl Into<PathBuf>,
        cache_dir: impl Into<PathBuf>,
    ) -> HostConfig {
        HostConfig {
            manifest: manifest.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_dir: state_dir.into(),
            cache_dir: cache_dir.into(),
            variables: BTreeMap::new(),
            request_timeout: Duration::from_secs(30),
            max_concurrent_requests: 64,
            cas_mode: CasMode::default(),
            client_spin_headers: ClientSpinHeaders::default(),
        }
    }
}

/// A loaded component, ready to instantiate per request.
struct LoadedComponent {
    context: Arc<ComponentContext>,
    pre: ProxyPre<RequestState>,
}

/// Everything a request needs; shared by all connections.
struct App {
    router: Router,
    components: HashMap<String, LoadedComponent>,
    kv: KvStore,
    engine: Engine,
    limiter: Arc<Semaphore>,
    request_timeout: Duration,
    cas_mode: CasMode,
    client_spin_headers: ClientSpinHeaders,
    _ticker: EpochTicker,
}

impl App {
    /// Loads the manifest, resolves variables, opens the store and compiles
    /// every routed component. Blocking (compilation).
    fn load(config: &HostConfig) -> anyhow::Result<App> {
        anyhow::ensure!(config.max_concurrent_requests > 0, "max_concurrent_requests must be at least 1");
        let manifest = Manifest::load(&config.manifest)?;
        let variables = manifest.resolve_variables(&config.variables, |name| std::env::var(name).ok())?;

        std::fs::create_dir_all(&config.state_dir)
            .with_context(|| format!("cannot create the state directory {}", config.state_dir.display()))?;
        let kv_path = config.state_dir.join("kv.sqlite");
        let kv = KvStore::open(&kv_path)
            .with_context(|| format!("cannot open the key-value store {}", kv_path.display()))?;

        let engine = runtime::engine(config.max_concurrent_requests)?;
        let linker = runtime::linker(&engine)?;
        let routed: BTreeSet<&str> = manifest.triggers.iter().map(|t| t.component.as_str()).collect();
        let mut compiled = HashMap::new();
        let mut components = HashMap::new();
        for id in routed {
            let Some(decl) = manifest.components.get(id) else {
                anyhow::bail!("route names component {id:?}, which is not defined");
            };
            let component = runtime::load_component(&engine, &decl.source, &config.cache_dir, &mut compiled)?;
            let pre = runtime::pre_instantiate(&linker, &component, id)?;
            let context = Arc::new(ComponentContext {
                id: id.to_string(),
                key_value_stores: decl.key_value_stores.iter().cloned().collect(),
                variables: variables.get(id).cloned().unwrap_or_default(),
            });
            components.insert(id.to_string(), LoadedComponent { context, pre });
        }
        let router = Router::build(manifest.triggers.iter().map(|t| (t.route.as_str(), t.component.as_str())));
        let ticker = EpochTicker::start(engine.clone()).context("cannot start the epoch thread")?;
        Ok(App {
            router,
            components,
            kv,
            engine,
            limiter: Arc::new(Semaphore::new(config.max_concurrent_requests as usize)),
            request_timeout: config.request_timeout,
            cas_mode: config.cas_mode,
            client_spin_headers: config.client_spin_headers,
            _ticker: ticker,
        })
    }
}

/// A loaded app bound to its listening socket, not yet serving.
pub struct Server {
    app: Arc<App>,
    listener: TcpListener,
    addr: SocketAddr,
}

impl Server {
    /// Loads the app (compiling components, or loading them from the cache)
    /// and binds the listener. Must run inside a multi-thread tokio runtime.
    pub async fn bind(config: HostConfig) -> anyhow::Result<Server> {
        let listen = config.listen;
        let app =
            tokio::task::spawn_blocking(move || App::load(&config)).await.context("loading the app panicked")??;
        let listener = TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, routes = app.router.routes().len(), "lanyard-host listening");
        Ok(Server { app: Arc::new(app), listener, addr })
    }

    /// The address the server listens on (the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` completes, then stops accepting, lets
    /// in-flight requests finish (up to 5 s) and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let Server { app, listener, .. } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut connections = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, client_addr)) => {
                        connections.spawn(serve_connection(app.clone(), stream, client_addr, stop_rx.clone()));
                    }
                    Err(e) => {
                        // E.g. out of file descriptors: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(listener);
        let _ = stop_tx.send(true);
        let drained =
            tokio::time::timeout(Duration::from_secs(5), async { while connections.join_next().await.is_some() {} })
                .await;
        if drained.is_err() {
            tracing::warn!("connections still open after 5 s: closing them");
        }
        connections.shutdown().await;
        tracing::info!("lanyard-host stopped");
        Ok(())
    }
}

async fn serve_connection(
    app: Arc<App>,
    stream: tokio::net::TcpStream,
    client_addr: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let app = app.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(app, req, client_addr).await) }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection error");
            }
        }
        () = stopping(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection error while shutting down");
            }
        }
    }
}

/// Completes once the server is stopping (or the sender is gone).
async fn stopping(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// The outcome of dispatching one request, for the log line.
struct Outcome {
    component: Option<String>,
    response: Response<HyperOutgoingBody>,
    error: Option<String>,
}

async fn handle(app: Arc<App>, req: Request<Incoming>, client_addr: SocketAddr) -> Response<HyperOutgoingBody> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let Outcome { component, response, error } = dispatch(&app, req, client_addr).await;
    let status = response.status().as_u16();
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let component = component.as_deref().unwrap_or("-");
    match error {
        None => tracing::info!(%method, %path, component, status, duration_ms, "request"),
        Some(error) => {
            tracing::warn!(%method, %path, component, status, duration_ms, %error, "request failed")
        }
    }
    response
}

async fn dispatch(app: &Arc<App>, mut req: Request<Incoming>, client_addr: SocketAddr) -> Outcome {
    let path = req.uri().path().to_string();

    // Spin answers these itself; they never reach the app.
    if let Some(rest) = path.strip_prefix("/.well-known/spin/") {
        let response = match rest {
            "health" => plain(StatusCode::OK, "OK"),
            _ => plain(StatusCode::NOT_FOUND, ""),
        };
        return Outcome { component: None, response, error: None };
    }

    let Some(route) = app.router.route(&path) else {
        return Outcome { component: None, response: plain(StatusCode::NOT_FOUND, ""), error: None };
    };
    let component_id = route.component.clone();
    let fail = |message: String| Outcome {
        component: Some(component_id.clone()),
        response: internal_error(&message),
        error: Some(message),
    };
    let Some(component) = app.components.get(&route.component) else {
        return fail(format!("component {:?} is not loaded", route.component));
    };

    if let Err(e) = prepare_request(&mut req, &route, client_addr, app.client_spin_headers) {
        return fail(e);
    }

    // Wait for a free slot; held until the guest is done.
    let Ok(permit) = app.limiter.clone().acquire_owned().await else {
        return fail("the host is shutting down".to_string());
    };

    let mut store = Store::new(&app.engine, RequestState::new(component.context.clone(), app.kv.clone(), app.cas_mode));
    let time_limit = app.request_timeout;
    let deadline = Instant::now() + time_limit;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            Err(wasmtime::Error::new(TimedOut(time_limit)))
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });

    let incoming = match store.data_mut().http().new_incoming_request(Scheme::Http, req) {
        Ok(incoming) => incoming,
        Err(e) => return fail(format!("cannot pass the request to the component: {e}")),
    };
    let (response_tx, response_rx) = oneshot::channel();
    let outparam = match store.data_mut().http().new_response_outparam(response_tx) {
        Ok(outparam) => outparam,
        Err(e) => return fail(format!("cannot create the response: {e}")),
    };

    let pre = component.pre.clone();
    let mut slot = GuestSlot { store, _permit: permit, _app: app.clone() };
    let guest = tokio::spawn(async move {
        let store = &mut slot.store;
        let run = async {
            let proxy = pre.instantiate_async(&mut *store).await?;
            proxy.wasi_http_incoming_handler().call_handle(&mut *store, incoming, outparam).await
        };
        let result = match tokio::time::timeout(time_limit, run).await {
            Ok(result) => result,
            Err(_elapsed) => Err(wasmtime::Error::new(TimedOut(time_limit))),
        };
        drop(slot);
        result
    });
    let abort = guest.abort_handle();

    match response_rx.await {
        Ok(Ok(response)) => {
            // The guest may still be writing the body; report a later failure.
            let id = component_id.clone();
            tokio::spawn(async move {
                match guest.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(
                        component = %id,
                        error = %describe(&e),
                        "component failed after its response started"
                    ),
                    Err(e) if e.is_cancelled() => {}
                    Err(e) => tracing::warn!(component = %id, error = %e, "component task failed"),
                }
            });
            // As Spin: when the client goes away (the body is dropped), stop the guest.
            let response = response.map(|body| AbortOnDrop { body, abort }.boxed_unsync());
            Outcome { component: Some(component_id), response, error: None }
        }
        Ok(Err(code)) => fail(format!("the component answered with an error: {code:?}")),
        Err(_) => {
            let reason = match guest.await {
                Ok(Ok(())) => "the component returned without setting a response".to_string(),
                Ok(Err(e)) => describe(&e),
                Err(e) => format!("the component task failed: {e}"),
            };
            fail(reason)
        }
    }
}

/// What a running guest holds. Fields drop in order: the store (freeing its
/// pooled instance) before the permit that lets the next request in, and the
/// app (whose epoch thread the guest needs) last.
struct GuestSlot {
    store: Store<RequestState>,
    _permit: tokio::sync::OwnedSemaphorePermit,
    _app: Arc<App>,
}

/// Gives the request an absolute URI and Spin's `spin-*` headers.
fn prepare_request(
    req: &mut Request<Incoming>,
    route: &RouteMatch,
    client_addr: SocketAddr,
    client_spin_headers: ClientSpinHeaders,
) -> Result<(), String> {
    let host = match req.headers().get(HOST) {
        Some(value) => value.to_str().map_err(|_| "the Host header is not valid UTF-8".to_string())?.to_string(),
        None => match req.uri().authority() {
            Some(authority) => authority.to_string(),
            None => return Err("the request has no Host header".to_string()),
        },
    };
    let path_and_query =
        req.uri().path_and_query().map(|pq| pq.as_str().to_string()).unwrap_or_else(|| "/".to_string());
    let full_url = format!("http://{host}{path_and_query}");
    *req.uri_mut() = Uri::builder()
        .scheme("http")
        .authority(host.as_str())
        .path_and_query(path_and_query.as_str())
        .build()
        .map_err(|e| format!("invalid request URI: {e}"))?;

    let headers = req.headers_mut();
    if client_spin_headers == ClientSpinHeaders::Strip {
        let forged: Vec<HeaderName> =
            headers.keys().filter(|name| name.as_str().starts_with("spin-")).cloned().collect();
        for name in forged {
            headers.remove(&name);
        }
    }
    let mut add = |name: String, value: &str| {
        // As Spin, a name or value that is not a valid header is skipped.
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            headers.append(name, value);
        }
    };
    add("spin-path-info".into(), &route.path_info);
    add("spin-full-url".into(), &full_url);
    add("spin-matched-route".into(), &route.based_route);
    add("spin-base-path".into(), "/");
    add("spin-raw-component-route".into(), &route.raw_route);
    add("spin-component-route".into(), &route.component_route);
    add("spin-client-addr".into(), &client_addr.to_string());
    for (name, value) in &route.params {
        add(spin_path_match_header(name), value);
    }
    Ok(())
}

/// `spin-path-match-<name>` for route parameter `:name`, `_` becoming `-`.
pub fn spin_path_match_header(param: &str) -> String {
    format!("spin-path-match-{}", param.replace('_', "-").to_ascii_lowercase())
}

/// The request ran past the time limit.
#[derive(Debug)]
struct TimedOut(Duration);

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the request exceeded the time limit of {:?}", self.0)
    }
}

impl std::error::Error for TimedOut {}

/// A one-line description of why a guest failed.
fn describe(error: &wasmtime::Error) -> String {
    if let Some(timeout) = error.downcast_ref::<TimedOut>() {
        return timeout.to_string();
    }
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return format!("the component exited (status {}) without setting a response", exit.0);
    }
    if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
        return format!("the component trapped: {trap}");
    }
    let text = error.to_string();
    text.lines().next().unwrap_or("unknown error").to_string()
}

fn plain(status: StatusCode, body: &'static str) -> Response<HyperOutgoingBody> {
    let mut response = Response::new(full(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    if !body.is_empty() {
        response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    response
}

/// The host's own `500`, in the app's error format.
fn internal_error(message: &str) -> Response<HyperOutgoingBody> {
    let body = serde_json::json!({
        "error": { "code": "internal", "message": message }
    });
    let mut response = Response::new(full(Bytes::from(body.to_string())));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn full(bytes: Bytes) -> HyperOutgoingBody {
    Full::new(bytes).map_err(|never: std::convert::Infallible| match never {}).boxed_unsync()
}

/// A response body that aborts the guest's task when dropped.
struct AbortOnDrop {
    body: HyperOutgoingBody,
    abort: tokio::task::AbortHandle,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.abort.abort();
    }
}

impl http_body::Body for AbortOnDrop {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A running host, on its own thread and tokio runtime. Dropping it (or
/// [`HostHandle::shutdown`]) stops the server and frees the port.
pub struct HostHandle {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl HostHandle {
    /// The address the host listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits for it: in-flight requests get up to 5 s.
    pub fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(thread) => match thread.join() {
                Ok(result) => result,
                Err(_) => Err(anyhow::anyhow!("the host thread panicked")),
            },
            None => Ok(()),
        }
    }
}

impl Drop for HostHandle {
    fn drop(&mut self) {
        if let Err(e) = self.stop_and_join() {
            tracing::warn!(error = %e, "lanyard-host stopped with an error");
        }
    }
}

/// Starts the host on a background thread with its own multi-thread tokio
/// runtime and returns once it is listening (or failed to start).
pub fn spawn(config: HostConfig) -> anyhow::Result<HostHandle> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<SocketAddr>>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("lanyard-host".into())
        .spawn(move || -> anyhow::Result<()> {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("lanyard-host-worker")
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = ready_tx.send(Err(anyhow::Error::from(e).context("cannot start tokio")));
                    return Ok(());
                }
            };
            let result = runtime.block_on(async move {
                let server = match Server::bind(config).await {
                    Ok(server) => server,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return Ok(());
                    }
                };
                let _ = ready_tx.send(Ok(server.local_addr()));
                server
                    .serve(async move {
                        let _ = stop_rx.await;
                    })
                    .await
            });
            runtime.shutdown_timeout(Duration::from_secs(5));
            result
        })
        .context("cannot start the host thread")?;
    match ready_rx.recv() {
        Ok(Ok(addr)) => Ok(HostHandle { addr, stop: Some(stop_tx), thread: Some(thread) }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(anyhow::anyhow!("the host thread stopped before it was ready"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_match_header_names() {
        assert_eq!(spin_path_match_header("cluster_id"), "spin-path-match-cluster-id");
        assert_eq!(spin_path_match_header("id"), "spin-path-match-id");
        assert_eq!(spin_path_match_header("Member_ID"), "spin-path-match-member-id");
    }

    #[test]
    fn internal_error_body_is_the_error_contract() {
        let response = internal_error("boom");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers().get(http::header::CONTENT_TYPE).unwrap(), "application/json");
    }
}
