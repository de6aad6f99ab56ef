//! `lanyard-agent`: runs beside a cluster, dials out to the Lanyard control
//! plane with the cluster's agent credential, heartbeats, drains reconcile
//! jobs, and keeps the cluster's Lanyard-managed RBAC bindings equal to the
//! live grants. (The access proxy arrives with the next issue.)
//!
//! Configuration by flags or environment; Kubernetes access from
//! `--kubeconfig`, else `KUBECONFIG`/`~/.kube/config`, else in-cluster.
//! Logs are structured (JSON by default). SIGTERM or SIGINT stop it cleanly.
//! Every failure is retried with jittered exponential backoff; a refused
//! agent credential (401) is logged as an error and retried only at the
//! maximum backoff, without exiting (see `backoff.rs`).

mod backoff;
mod cluster;
mod control;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use lanyard_core::ids::ClusterId;
use tokio::sync::watch;
use tracing::{error, info};

#[derive(Parser, Debug)]
#[command(name = "lanyard-agent", version, about = "Lanyard's agent: reconciles grants into RBAC")]
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
    let credential = match &args.credential_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the agent credential from {}", path.display()))?,
        None => std::env::var("LANYARD_AGENT_CREDENTIAL")
            .context("no agent credential: set --credential-file or LANYARD_AGENT_CREDENTIAL")?,
    };
    let credential = credential.trim().to_owned();
    let mut kube_config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer().await.context("no Kubernetes configuration (kubeconfig or in-cluster)")?,
    };
    // One retry policy for every failure, the agent's own backoff: no retries inside the Kubernetes client.
    kube_config.default_retry = false;
    let client = kube::Client::try_from(kube_config)?;
    let control = control::ControlPlane::new(&args.control_plane, &args.cluster_id, credential)?;
    let timing = worker::Timing {
        heartbeat: Duration::from_secs(args.heartbeat_seconds.max(1)),
        poll: Duration::from_millis(args.poll_millis.max(50)),
        resync: Duration::from_secs(args.resync_seconds.max(1)),
        backoff_min: Duration::from_millis(args.backoff_min_millis.max(10)),
        backoff_max: Duration::from_secs(args.backoff_max_seconds.max(1)),
    };
    let worker =
        worker::Worker::new(control, cluster::Cluster::new(client, &args.cluster_id), args.cluster_id.clone(), timing);

    let (stop, stopped) = watch::channel(false);
    let running = tokio::spawn(worker.run(stopped));
    info!(cluster = %args.cluster_id, control_plane = %args.control_plane, "lanyard-agent started");
    shutdown_signal().await?;
    info!("shutting down");
    let _ = stop.send(true);
    running.await?;
    Ok(())
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
