//! The Wasm side of the host: the wasmtime engine (pooling allocator, epoch
//! interruption), compiling each component once with an on-disk cache of
//! precompiled artefacts, the linker with WASI P2, `wasi:http` and Spin's
//! interfaces, and the per-request store state.
//!
//! Components are compiled at start-up and pre-instantiated (`ProxyPre`); each
//! request gets a fresh `Store` and instance, as Spin does.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::host::{ComponentContext, SpinHost};
use crate::kv::{CasMode, KvStore};
use crate::outbound::OutboundHttp;

/// How often the epoch advances: the granularity of guest yields and of the
/// request time limit.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(20);

/// The state of one request's `Store`.
pub(crate) struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundHttp,
    table: ResourceTable,
    spin: SpinHost,
}

impl RequestState {
    pub(crate) fn new(component: Arc<ComponentContext>, kv: KvStore, cas_mode: CasMode) -> Self {
        RequestState {
            // Guest stdout/stderr go to the host's, as `spin up` shows them.
            wasi: WasiCtx::builder().inherit_stdout().inherit_stderr().build(),
            http: WasiHttpCtx::new(),
            hooks: OutboundHttp { allowed: component.outbound.clone() },
            table: ResourceTable::new(),
            spin: SpinHost::new(component, kv, cas_mode),
        }
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

/// Builds the engine: component model, async, epoch interruption and a
/// pooling allocator sized for `max_instances` concurrent requests.
pub(crate) fn engine(max_instances: u32) -> anyhow::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(max_instances)
        .total_stacks(max_instances)
        .total_core_instances(max_instances.saturating_mul(8))
        .total_memories(max_instances.saturating_mul(4))
        .total_tables(max_instances.saturating_mul(8))
        .max_memory_size(256 << 20);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // For profiling with `perf`: names for the guests' compiled functions in
    // /tmp/perf-<pid>.map (components built without `strip` carry the names).
    if std::env::var_os("LANYARD_HOST_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    Engine::new(&config).map_err(anyhow::Error::from)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on its own thread (not a
/// tokio task: runaway guests could starve the runtime's workers) until dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine) -> std::io::Result<EpochTicker> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("lanyard-host-epoch".into()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })?;
        Ok(EpochTicker { stop, thread: Some(thread) })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The linker every component is pre-instantiated with.
pub(crate) fn linker(engine: &Engine) -> anyhow::Result<Linker<RequestState>> {
    let mut linker: Linker<RequestState> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    SpinHost::add_to_linker(&mut linker, |state| &mut state.spin)?;
    Ok(linker)
}

/// The cache key of a component: its bytes, the wasmtime version and the
/// engine's compilation settings.
fn cache_key(engine: &Engine, wasm: &[u8]) -> String {
    let digest = Sha256::digest(wasm);
    let mut settings = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut settings);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}-wasmtime-{}-{:016x}", wasmtime_version(), settings.finish())
}

fn wasmtime_version() -> &'static str {
    // Pinned in Cargo.toml; keep in step with it.
    "48.0.8"
}

/// Compiles (or loads from `cache_dir`) the component in `wasm_path`.
// The one place the host uses unsafe code: loading precompiled components.
#[allow(unsafe_code)]
pub(crate) fn load_component(
    engine: &Engine,
    wasm_path: &Path,
    cache_dir: &Path,
    loaded: &mut HashMap<String, Component>,
) -> anyhow::Result<Component> {
    let wasm = std::fs::read(wasm_path)
        .with_context(|| format!("cannot read the component {} (has it been built?)", wasm_path.display()))?;
    let key = cache_key(engine, &wasm);
    if let Some(component) = loaded.get(&key) {
        return Ok(component.clone());
    }
    let cached: PathBuf = cache_dir.join(format!("{key}.cwasm"));
    if cached.is_file() {
        // SAFETY: the file was written by `precompile_component` below into
        // the host's own cache directory, under a key that covers the exact
        // Wasm bytes, the wasmtime version and the engine settings; wasmtime
        // also checks version and settings compatibility itself.
        match unsafe { Component::deserialize_file(engine, &cached) } {
            Ok(component) => {
                tracing::debug!(path = %wasm_path.display(), "loaded precompiled component");
                loaded.insert(key, component.clone());
                return Ok(component);
            }
            Err(e) => {
                tracing::warn!(cache = %cached.display(), error = %e, "ignoring unusable precompiled component");
            }
        }
    }
    let started = std::time::Instant::now();
    let compiled = engine
        .precompile_component(&wasm)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot compile {}", wasm_path.display()))?;
    std::fs::create_dir_all(cache_dir)
        .with_context(|| format!("cannot create the cache directory {}", cache_dir.display()))?;
    // Several hosts (threads of one test process, or processes) may compile
    // the same component at once: each writes its own temporary file and
    // renames it into place, so a reader never sees a partial file.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let unique = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = cache_dir.join(format!("{key}.cwasm.tmp-{}-{unique}", std::process::id()));
    std::fs::write(&tmp, &compiled)
        .and_then(|()| std::fs::rename(&tmp, &cached))
        .with_context(|| format!("cannot write {}", cached.display()))?;
    tracing::info!(
        path = %wasm_path.display(),
        ms = started.elapsed().as_millis() as u64,
        "compiled component"
    );
    // SAFETY: the bytes come straight from `precompile_component` on this engine.
    let component = unsafe { Component::deserialize(engine, &compiled) }
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot load the compiled {}", wasm_path.display()))?;
    loaded.insert(key, component.clone());
    Ok(component)
}

/// Pre-instantiates `component` as a `wasi:http/incoming-handler`.
pub(crate) fn pre_instantiate(
    linker: &Linker<RequestState>,
    component: &Component,
    id: &str,
) -> anyhow::Result<ProxyPre<RequestState>> {
    let pre = linker
        .instantiate_pre(component)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("component {id:?} imports something the host does not provide"))?;
    ProxyPre::new(pre)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("component {id:?} does not export wasi:http/incoming-handler@0.2"))
}
