//! `lanyard-demo-cluster`: the test suite's real Kubernetes control plane
//! (etcd, kube-apiserver, kube-controller-manager on loopback), for the local
//! run (`scripts/run`). It starts the cluster, copies its admin kubeconfig
//! to the path given as the only argument, prints that path, and runs until
//! SIGTERM or SIGINT, when it stops every process and removes its directory.
//! A fresh cluster each time: the agent re-applies every live grant.

use std::path::PathBuf;
use std::process::ExitCode;

use lanyard_kube::KubeCluster;

fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: lanyard-demo-cluster ADMIN_KUBECONFIG_PATH");
        return ExitCode::from(2);
    };
    let cluster = match KubeCluster::start() {
        Ok(cluster) => cluster,
        Err(e) => {
            eprintln!("lanyard-demo-cluster: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::copy(cluster.admin_kubeconfig(), &out) {
        eprintln!("lanyard-demo-cluster: cannot write {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    println!("{}", out.display());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build();
    let waited = runtime.map(|rt| {
        rt.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let (mut term, mut int) = (signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?);
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            Ok::<_, std::io::Error>(())
        })
    });
    if let Err(e) | Ok(Err(e)) = waited {
        eprintln!("lanyard-demo-cluster: cannot wait for a signal: {e}");
    }
    drop(cluster);
    ExitCode::SUCCESS
}
