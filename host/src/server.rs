//! The HTTP server of the host: its configuration ([`HostConfig`]), loading
//! the app (manifest, variables, key-value store, compiled components),
//! listening and serving connections with hyper, each request handed to the
//! crate's private `dispatch` module, the graceful shutdown, and [`spawn`]
//! for running it all on a background thread (tests, the local run).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot, watch};
use wasmtime::Engine;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::dispatch;
use crate::faults::Faults;
use crate::headers::ClientSpinHeaders;
use crate::host::ComponentContext;
use crate::kv::{CasMode, KvStore};
use crate::manifest::Manifest;
use crate::outbound::AllowedHosts;
use crate::routes::Router;
use crate::runtime::{self, EpochTicker, RequestState};

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
    /// What becomes of client-sent `spin-*` headers: kept as Spin keeps
    /// them unless [`ClientSpinHeaders::Strip`] is asked for.
    pub client_spin_headers: ClientSpinHeaders,
    /// A fault switch on the key-value store, for tests of store failures
    /// ([`crate::faults`]). `None` (off) unless a test sets it: no file,
    /// variable or flag reaches it.
    pub faults: Option<Arc<Faults>>,
}

impl HostConfig {
    /// A configuration listening on `127.0.0.1:0` with the defaults: no
    /// overrides, 30 s time limit, 64 concurrent requests, the [`CasMode`]
    /// default, and client-sent `spin-*` headers kept as Spin keeps them
    /// ([`ClientSpinHeaders::KeepLikeSpin`]; set
    /// [`ClientSpinHeaders::Strip`] for the stricter host).
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
            faults: None,
        }
    }
}

/// A loaded component, ready to instantiate per request.
pub(crate) struct LoadedComponent {
    pub(crate) context: Arc<ComponentContext>,
    pub(crate) pre: ProxyPre<RequestState>,
}

/// Everything a request needs ([`dispatch`] reads it); shared by all
/// connections.
pub(crate) struct App {
    pub(crate) router: Router,
    pub(crate) components: HashMap<String, LoadedComponent>,
    pub(crate) kv: KvStore,
    pub(crate) engine: Engine,
    pub(crate) limiter: Arc<Semaphore>,
    pub(crate) request_timeout: Duration,
    pub(crate) cas_mode: CasMode,
    pub(crate) client_spin_headers: ClientSpinHeaders,
    _ticker: EpochTicker,
}

impl App {
    /// Loads the manifest, resolves variables, opens the store and compiles
    /// every routed component. Blocking (compilation).
    fn load(config: &HostConfig) -> anyhow::Result<App> {
        anyhow::ensure!(config.max_concurrent_requests > 0, "max_concurrent_requests must be at least 1");
        let manifest = Manifest::load(&config.manifest)?;
        let resolved = manifest.resolve(&config.variables, |name| std::env::var(name).ok())?;

        std::fs::create_dir_all(&config.state_dir)
            .with_context(|| format!("cannot create the state directory {}", config.state_dir.display()))?;
        let kv_path = config.state_dir.join("kv.sqlite");
        let kv = KvStore::open(&kv_path)
            .with_context(|| format!("cannot open the key-value store {}", kv_path.display()))?
            .with_faults(config.faults.clone());

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
            let templates = resolved.get(id).cloned().unwrap_or_default();
            let allowed =
                AllowedHosts::parse(&templates.allowed_outbound_hosts).with_context(|| format!("component {id:?}"))?;
            let context = Arc::new(ComponentContext {
                id: id.to_string(),
                key_value_stores: decl.key_value_stores.iter().cloned().collect(),
                variables: templates.variables,
                outbound: Arc::new(allowed),
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
        async move { Ok::<_, std::convert::Infallible>(dispatch::handle(app, req, client_addr).await) }
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
