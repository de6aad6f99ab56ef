//! Smoke tests of the Kubernetes test fixture against the real control plane:
//! the cluster starts and serves, RBAC decides as upstream Kubernetes does
//! (admin yes, strangers no, the aggregated `view` role exactly what it
//! promises), the agent identity starts with no rights, the namespace
//! controller finishes deletions, clusters run side by side, and teardown
//! leaves no process or directory behind even when a test panics.
//!
//! The binaries come from `scripts/kube-binaries`; if they cannot be built,
//! every test fails with a message naming that script.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use lanyard_kube::{AGENT_USER, Identity, KubeCluster};
use lanyard_test_support::{Probe, wait_for};

/// How long an RBAC or namespace change may take to show.
const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(60);

fn start() -> Result<KubeCluster> {
    KubeCluster::start().context("starting the test control plane (binaries from scripts/kube-binaries)")
}

/// Waits until `kubectl auth can-i <args>` as `identity` answers `expected`.
fn wait_for_answer(cluster: &KubeCluster, identity: Identity, args: &[&str], expected: bool) -> Result<()> {
    wait_for(&format!("`auth can-i {}` to answer {expected}", args.join(" ")), PROPAGATION_TIMEOUT, || {
        let answer = cluster.can_i(identity, args)?;
        Ok(if answer == expected { Probe::Ready(()) } else { Probe::NotYet(format!("answered {answer}")) })
    })
}

#[test]
fn cluster_starts_and_serves_the_pinned_release() -> Result<()> {
    let cluster = start()?;
    ensure!(cluster.server_url().starts_with("https://127.0.0.1:"), "server {}", cluster.server_url());
    ensure!(cluster.admin_kubeconfig().is_file() && cluster.agent_kubeconfig().is_file());
    ensure!(cluster.ca_cert_pem().contains("BEGIN CERTIFICATE"));

    let readyz = cluster.kubectl_ok(Identity::Admin, ["get", "--raw=/readyz"])?;
    assert_eq!(readyz.trim(), "ok");
    let version = cluster.kubectl_ok(Identity::Admin, ["get", "--raw=/version"])?;
    assert!(version.contains(r#""gitVersion": "v1.37.2""#), "server version: {version}");

    // The service-account controller gave the new namespace its account.
    let namespace = cluster.fresh_namespace("smoke")?;
    wait_for("the default service account", PROPAGATION_TIMEOUT, || {
        let output = cluster.kubectl(Identity::Admin, ["get", "serviceaccount", "default", "-n", &namespace])?;
        Ok(if output.success() { Probe::Ready(()) } else { Probe::NotYet(output.stderr) })
    })?;
    Ok(())
}

#[test]
fn admin_may_do_everything() -> Result<()> {
    let cluster = start()?;
    let whoami = cluster.kubectl_ok(Identity::Admin, ["auth", "whoami", "-o", "jsonpath={.status.userInfo.groups}"])?;
    assert!(whoami.contains("system:masters"), "admin groups: {whoami}");
    for args in [
        &["*", "*", "--all-namespaces"][..],
        &["create", "clusterrolebindings"],
        &["delete", "namespaces"],
        &["impersonate", "users"],
        &["bind", "clusterroles"],
        &["get", "secrets", "-n", "kube-system"],
    ] {
        assert!(cluster.can_i(Identity::Admin, args)?, "admin may not {args:?}");
    }
    Ok(())
}

#[test]
fn user_without_bindings_may_do_nothing() -> Result<()> {
    let cluster = start()?;
    let namespace = cluster.fresh_namespace("stranger")?;
    for args in [
        &["list", "pods", "-n", namespace.as_str()][..],
        &["get", "namespaces"],
        &["create", "deployments", "-n", "default"],
        &["*", "*", "--all-namespaces"],
    ] {
        let with_user: Vec<&str> = args.iter().copied().chain(["--as", "nobody-in-particular"]).collect();
        assert!(!cluster.can_i(Identity::Admin, &with_user)?, "a user with no bindings may {args:?}");
    }
    Ok(())
}

#[test]
fn aggregated_view_role_reads_but_does_not_write() -> Result<()> {
    let cluster = start()?;
    let namespace = cluster.fresh_namespace("view")?;
    let other_namespace = cluster.fresh_namespace("elsewhere")?;
    let user = "viewer@example.com";
    let as_user = ["--as", user];
    let in_namespace = ["-n", namespace.as_str()];
    let list_pods: Vec<&str> = ["list", "pods"].iter().chain(&in_namespace).chain(&as_user).copied().collect();
    assert!(!cluster.can_i(Identity::Admin, &list_pods)?, "{user} may list pods before any binding");

    cluster.kubectl_ok(
        Identity::Admin,
        ["create", "rolebinding", "viewer", "--clusterrole=view", "--user", user, "-n", &namespace],
    )?;
    // `view` itself has no rules: only the aggregation controller gives it these.
    wait_for_answer(&cluster, Identity::Admin, &list_pods, true)?;
    let ask = |verb_and_resource: &[&str], namespace_args: &[&str]| -> Result<bool> {
        let args: Vec<&str> = verb_and_resource.iter().chain(namespace_args).chain(&as_user).copied().collect();
        cluster.can_i(Identity::Admin, &args)
    };
    assert!(ask(&["get", "deployments"], &in_namespace)?, "view must read deployments");
    assert!(ask(&["watch", "configmaps"], &in_namespace)?, "view must watch configmaps");
    assert!(!ask(&["create", "deployments"], &in_namespace)?, "view must not create deployments");
    assert!(!ask(&["delete", "pods"], &in_namespace)?, "view must not delete pods");
    assert!(!ask(&["get", "secrets"], &in_namespace)?, "view must not read secrets");
    assert!(!ask(&["list", "pods"], &["-n", &other_namespace])?, "the binding leaked to another namespace");
    assert!(!ask(&["list", "pods"], &["--all-namespaces"])?, "the binding leaked to the cluster scope");
    Ok(())
}

#[test]
fn agent_identity_may_do_nothing_by_default() -> Result<()> {
    let cluster = start()?;
    let namespace = cluster.fresh_namespace("agent")?;

    // It authenticates (whoami works for any authenticated user)...
    let username =
        cluster.kubectl_ok(Identity::Agent, ["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"])?;
    assert_eq!(username.trim(), AGENT_USER);
    let groups = cluster.kubectl_ok(Identity::Agent, ["auth", "whoami", "-o", "jsonpath={.status.userInfo.groups}"])?;
    assert_eq!(groups.trim(), r#"["system:authenticated"]"#);

    // ...but is authorized for nothing.
    for args in [
        &["list", "pods", "-n", namespace.as_str()][..],
        &["create", "rolebindings", "-n", namespace.as_str()],
        &["create", "clusterrolebindings"],
        &["bind", "clusterroles"],
        &["impersonate", "users"],
        &["get", "namespaces"],
        &["*", "*", "--all-namespaces"],
    ] {
        assert!(!cluster.can_i(Identity::Agent, args)?, "the agent may {args:?}");
    }
    let denied = cluster.kubectl(Identity::Agent, ["get", "pods", "-n", &namespace])?;
    assert!(!denied.success(), "the agent listed pods: {}", denied.stdout);
    assert!(
        denied.stderr.contains(&format!("User \"{AGENT_USER}\" cannot list resource \"pods\"")),
        "expected a 403 for {AGENT_USER}, got: {}",
        denied.stderr
    );
    Ok(())
}

#[test]
fn namespace_controller_finishes_deletion() -> Result<()> {
    let cluster = start()?;
    let namespace = cluster.fresh_namespace("doomed")?;
    cluster.kubectl_ok(Identity::Admin, ["create", "configmap", "content", "-n", &namespace])?;
    cluster.kubectl_ok(Identity::Admin, ["delete", "namespace", &namespace, "--wait=false"])?;
    // Without the namespace controller it would stay Terminating forever.
    wait_for("the deleted namespace to disappear", PROPAGATION_TIMEOUT, || {
        let output =
            cluster.kubectl(Identity::Admin, ["get", "namespace", &namespace, "-o", "jsonpath={.status.phase}"])?;
        Ok(if !output.success() && output.stderr.contains("NotFound") {
            Probe::Ready(())
        } else {
            Probe::NotYet(format!("phase {:?} {}", output.stdout, output.stderr.trim()))
        })
    })
}

#[test]
fn two_clusters_run_side_by_side() -> Result<()> {
    let (first, second) = std::thread::scope(|scope| {
        let first = scope.spawn(start);
        let second = scope.spawn(start);
        (join(first), join(second))
    });
    let (first, second) = (first?, second?);
    assert_ne!(first.server_url(), second.server_url());
    assert_ne!(first.work_dir(), second.work_dir());

    let namespace = first.fresh_namespace("only-first")?;
    second.kubectl_ok(Identity::Admin, ["get", "--raw=/readyz"])?;
    let lookup = second.kubectl(Identity::Admin, ["get", "namespace", &namespace])?;
    assert!(!lookup.success() && lookup.stderr.contains("NotFound"), "second cluster sees {namespace}: {lookup:?}");
    // Tokens are per cluster: the first's admin token means nothing to the second.
    assert_ne!(first.token(Identity::Admin), second.token(Identity::Admin));
    Ok(())
}

fn join<T>(handle: std::thread::ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
    handle.join().map_err(|_| anyhow::anyhow!("a cluster start panicked"))?
}

#[test]
fn teardown_on_panic_kills_processes_and_removes_the_directory() -> Result<()> {
    let mut observed: Option<(Vec<u32>, PathBuf)> = None;
    let unwound = catch_unwind(AssertUnwindSafe(|| {
        let cluster = start().expect("the cluster starts");
        observed = Some((cluster.process_ids(), cluster.work_dir().to_path_buf()));
        panic!("a test failing while its cluster runs");
    }));
    ensure!(unwound.is_err(), "the closure should have panicked");
    let (pids, work_dir) = observed.context("the cluster never started")?;
    ensure!(pids.len() == 3, "expected etcd, kube-apiserver and kube-controller-manager, got {pids:?}");
    for pid in pids {
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
        ensure!(!alive, "process {pid} outlived its cluster");
    }
    ensure!(!work_dir.exists(), "{} outlived its cluster", work_dir.display());
    Ok(())
}
