//! `lanyard-agent`: runs beside a cluster and dials out to the Lanyard
//! control plane with the cluster's agent credential. It runs two parts,
//! each with a Kubernetes credential of its own:
//!
//! * the **reconcile worker** (`--reconcile`, on by default): heartbeats,
//!   drains reconcile jobs, and keeps the cluster's Lanyard-managed RBAC
//!   bindings equal to the live grants, as the ServiceAccount of
//!   `deploy/rbac.yaml`;
//! * the **access proxy** (`--proxy-listen`): checks every kubectl request's
//!   Lanyard token against the access state it keeps in sync, and forwards
//!   it to the kube-apiserver impersonating the member, as the
//!   ServiceAccount of `deploy/proxy-rbac.yaml` (`--proxy-kubeconfig`).
//!
//! Configuration by flags or environment; Kubernetes access from
//! `--kubeconfig`, else `KUBECONFIG`/`~/.kube/config`, else in-cluster.
//! Logs are structured (JSON by default) on standard error; the proxy's audit
//! records are JSON lines on standard output. SIGTERM or SIGINT stop it
//! cleanly. Every failure is retried with jittered exponential backoff; a
//! refused agent credential (401) is logged as an error and retried only at
//! the maximum backoff, without exiting (see `backoff.rs`).

mod backoff;
mod clock;
mod cluster;
mod control;
mod metrics;
mod proxy;
mod worker;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use lanyard_core::ids::ClusterId;
use tokio::sync::watch;
use tracing::{error, info};

#[derive(Parser, Debug)]
#[command(
    name = "lanyard-agent",
    version,
    about = "Lanyard's agent: reconciles grants into RBAC, and proxies kubectl as the member"
)]
struct Args {
    /// The control plane's base URL.
    #[arg(long, env = "LANYARD_CONTROL_PLANE")]
    control_plane: String,
    /// This cluster's Lanyard id (`c_…`).
    #[arg(long, env = "LANYARD_CLUSTER_ID", value_parser = parse_cluster_id)]
    cluster_id: ClusterId,
    /// File holding the agent credential (else LANYARD_AGENT_CREDENTIAL).
    #[arg(long, env = "LANYARD_AGENT_CREDENTIAL_FILE")]
    credential_file: Option<PathBuf>,
    /// Kubeconfig to use instead of the default/in-cluster configuration.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    #[arg(long, env = "LANYARD_HEARTBEAT_SECONDS", default_value_t = 10)]
    heartbeat_seconds: u64,
    #[arg(long, env = "LANYARD_POLL_MILLIS", default_value_t = 1000)]
    poll_millis: u64,
    #[arg(long, env = "LANYARD_RESYNC_SECONDS", default_value_t = 60)]
    resync_seconds: u64,
    #[arg(long, env = "LANYARD_BACKOFF_MIN_MILLIS", default_value_t = 500)]
    backoff_min_millis: u64,
    #[arg(long, env = "LANYARD_BACKOFF_MAX_SECONDS", default_value_t = 60)]
    backoff_max_seconds: u64,
    /// How the log is written.
    #[arg(long, env = "LANYARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    log_format: LogFormat,
    /// Run the reconcile worker (`--reconcile=false` for a proxy-only process).
    #[arg(long, env = "LANYARD_RECONCILE", default_value_t = true, action = clap::ArgAction::Set)]
    reconcile: bool,
    /// Run the access proxy on this address (e.g. 0.0.0.0:8443).
    #[arg(long, env = "LANYARD_PROXY_LISTEN")]
    proxy_listen: Option<SocketAddr>,
    /// The proxy's own Kubernetes credential (may only impersonate users), if not --kubeconfig's.
    #[arg(long, env = "LANYARD_PROXY_KUBECONFIG")]
    proxy_kubeconfig: Option<PathBuf>,
    /// The proxy's TLS certificate chain (PEM), reloaded when it changes.
    #[arg(long, env = "LANYARD_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The proxy's TLS private key (PEM).
    #[arg(long, env = "LANYARD_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Without --tls-cert: keep a self-signed certificate here (made on first start, published to the control plane).
    #[arg(long, env = "LANYARD_TLS_DIR", conflicts_with = "tls_cert")]
    tls_dir: Option<PathBuf>,
    /// The names a self-signed certificate is valid for (DNS names or IP addresses; repeat or comma-separate).
    #[arg(long, env = "LANYARD_TLS_NAMES", value_delimiter = ',', default_values_t = ["localhost".to_owned(), "127.0.0.1".to_owned()])]
    tls_names: Vec<String>,
    /// How often the proxy reads the access state (revocations reach it within this plus a round trip).
    #[arg(long, env = "LANYARD_ACCESS_POLL_MILLIS", default_value_t = 250)]
    access_poll_millis: u64,
    /// After this long without reaching the control plane, the proxy refuses every request.
    #[arg(long, env = "LANYARD_MAX_STALENESS_SECONDS", default_value_t = 60)]
    max_staleness_seconds: u64,
    /// Serve Prometheus metrics (`/metrics`) in plain HTTP on this address (e.g. 127.0.0.1:9464).
    #[arg(long, env = "LANYARD_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
}

/// The agent's log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// One JSON object per line (for a log pipeline).
    Json,
    /// Human-readable lines.
    Text,
}

fn parse_cluster_id(s: &str) -> Result<ClusterId, String> {
    ClusterId::parse(s)
        .ok_or_else(|| format!("{s:?} is not a cluster id (c_ and 24 hex digits): `lanyard cluster list` shows it"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    match args.log_format {
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init(),
        LogFormat::Json => tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lanyard-agent: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %format!("{e:#}"), "lanyard-agent failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    if !args.reconcile && args.proxy_listen.is_none() {
        anyhow::bail!("nothing to run: --reconcile=false needs --proxy-listen");
    }
    let credential = match &args.credential_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the agent credential from {}", path.display()))?,
        None => std::env::var("LANYARD_AGENT_CREDENTIAL")
            .context("no agent credential: set --credential-file or LANYARD_AGENT_CREDENTIAL")?,
    };
    let credential = credential.trim().to_owned();
    let clock: Arc<dyn clock::WallClock> = Arc::new(clock::SystemWallClock);
    let metrics = Arc::new(metrics::Metrics::default());
    let mut control = control::ControlPlane::new(&args.control_plane, &args.cluster_id, credential)?;
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();

    if let Some(address) = args.proxy_listen {
        let source = match (&args.tls_cert, &args.tls_key, &args.tls_dir) {
            (Some(cert), Some(key), _) => proxy::tls::TlsSource::Files { cert: cert.clone(), key: key.clone() },
            (None, None, Some(dir)) => {
                proxy::tls::TlsSource::SelfSigned { dir: dir.clone(), names: args.tls_names.clone() }
            }
            _ => anyhow::bail!(
                "the access proxy needs a TLS certificate: --tls-cert and --tls-key, or --tls-dir for a self-signed one"
            ),
        };
        let tls = proxy::tls::ServerTls::new(&source)?;
        if tls.self_signed_pem.is_some() && !args.reconcile {
            anyhow::bail!(
                "a self-signed certificate is published with the reconcile worker's heartbeat: give a proxy-only \
                 process --tls-cert and --tls-key"
            );
        }
        control = control.publish_proxy_ca(tls.self_signed_pem.clone());
        let kube_config = kube_config(args.proxy_kubeconfig.as_deref().or(args.kubeconfig.as_deref())).await?;
        let upstream = proxy::upstream::Upstream::new(&kube_config)?;
        let timing = proxy::sync::SyncTiming {
            poll: Duration::from_millis(args.access_poll_millis.max(50)),
            jwks_every: Duration::from_secs(5),
            max_staleness: Duration::from_secs(args.max_staleness_seconds.max(1)),
        };
        let (sync, view) = proxy::sync::AccessSync::new(
            control.clone(),
            args.cluster_id.clone(),
            timing,
            clock.clone(),
            metrics.clone(),
        );
        let service = Arc::new(proxy::service::Proxy {
            cluster_id: args.cluster_id.clone(),
            view,
            max_staleness: timing.max_staleness,
            upstream,
            audit: proxy::audit::Audit,
            metrics: metrics.clone(),
            clock: clock.clone(),
            tokens: Default::default(),
        });
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("the access proxy cannot listen on {address}"))?;
        tasks.push(tokio::spawn(sync.run(stopped.clone())));
        tokio::spawn(tls.clone().reload_every(Duration::from_secs(5)));
        tasks.push(tokio::spawn(proxy::serve(listener, tls, service, stopped.clone())));
    }
    if let Some(address) = args.metrics_listen {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("the metrics cannot listen on {address}"))?;
        tasks.push(tokio::spawn(metrics::serve(listener, metrics.clone(), clock.clone(), stopped.clone())));
    }
    if args.reconcile {
        let mut kube_config = kube_config(args.kubeconfig.as_deref()).await?;
        // One retry policy for every failure, the agent's own backoff: no retries inside the Kubernetes client.
        kube_config.default_retry = false;
        let client = kube::Client::try_from(kube_config)?;
        let timing = worker::Timing {
            heartbeat: Duration::from_secs(args.heartbeat_seconds.max(1)),
            poll: Duration::from_millis(args.poll_millis.max(50)),
            resync: Duration::from_secs(args.resync_seconds.max(1)),
            backoff_min: Duration::from_millis(args.backoff_min_millis.max(10)),
            backoff_max: Duration::from_secs(args.backoff_max_seconds.max(1)),
        };
        let cluster = cluster::Cluster::new(client, &args.cluster_id);
        let worker = worker::Worker::new(control, cluster, args.cluster_id.clone(), timing, metrics.clone());
        tasks.push(tokio::spawn(worker.run(stopped)));
    }

    info!(
        cluster = %args.cluster_id,
        control_plane = %args.control_plane,
        reconcile = args.reconcile,
        proxy = ?args.proxy_listen,
        "lanyard-agent started"
    );
    shutdown_signal().await?;
    info!("shutting down");
    let _ = stop.send(true);
    for task in tasks {
        task.await?;
    }
    Ok(())
}

/// The Kubernetes configuration of `kubeconfig`, else the default one (`KUBECONFIG`, `~/.kube/config`, in-cluster).
async fn kube_config(kubeconfig: Option<&Path>) -> Result<kube::Config> {
    match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading the kubeconfig {}", path.display()))?;
            Ok(kube::Config::from_custom_kubeconfig(file, &Default::default()).await?)
        }
        None => kube::Config::infer().await.context("no Kubernetes configuration (kubeconfig or in-cluster)"),
    }
}

async fn shutdown_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
