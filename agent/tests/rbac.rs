//! What the agent's two ServiceAccounts may do, asked of a real kube-apiserver
//! with real kubectl, exactly as `deploy/rbac.yaml` (the reconcile worker) and
//! `deploy/proxy-rbac.yaml` (the access proxy, prepared for it) define them.
//!
//! The worker may manage role bindings and bind the four roles a grant can
//! name, and impersonate no one; the proxy may impersonate users and nothing
//! else (no groups, so never `system:masters`; no ServiceAccounts); neither
//! can read secrets or create pods. An answer that RBAC has not yet caught up
//! with would be a false "no", so each account's "yes" answers are waited for
//! first; its "no" answers are then final.

mod common;

use std::time::Duration;

use lanyard_kube::{Identity, KubeCluster};
use lanyard_test_support::{Probe, wait_for};

const WORKER: &str = "system:serviceaccount:lanyard-system:lanyard-agent";
const PROXY: &str = "system:serviceaccount:lanyard-system:lanyard-proxy";

fn can(kube: &KubeCluster, who: &str, args: &[&str]) -> bool {
    let mut all = vec!["--as", who];
    all.extend_from_slice(args);
    kube.can_i(Identity::Admin, &all).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Wait until `who` may do each of `yes` (RBAC caches catch up in a moment).
fn wait_until_allowed(kube: &KubeCluster, who: &str, yes: &[&[&str]]) {
    for args in yes {
        wait_for(&format!("{who} to be allowed `{}`", args.join(" ")), Duration::from_secs(60), || {
            Ok(if can(kube, who, args) { Probe::Ready(()) } else { Probe::NotYet("no".into()) })
        })
        .unwrap_or_else(|e| panic!("{e:#}"));
    }
}

fn assert_denied(kube: &KubeCluster, who: &str, no: &[&[&str]]) {
    let allowed: Vec<String> = no.iter().filter(|args| can(kube, who, args)).map(|args| args.join(" ")).collect();
    assert!(allowed.is_empty(), "{who} may, but must not: {allowed:?}");
}

fn start() -> KubeCluster {
    let kube = KubeCluster::start().expect("start the Kubernetes control plane (see scripts/kube-binaries)");
    common::apply_rbac(&kube);
    common::apply_proxy_rbac(&kube);
    kube
}

/// Both accounts can do none of this.
const NEITHER: &[&[&str]] = &[
    &["get", "secrets", "-A"],
    &["list", "secrets", "-A"],
    &["get", "secrets", "-n", "kube-system"],
    &["create", "pods", "-A"],
    &["create", "pods", "-n", "lanyard-system"],
    &["create", "pods", "--subresource", "exec", "-A"],
    &["create", "serviceaccounts", "--subresource", "token", "-A"],
    &["impersonate", "groups"],
    &["impersonate", "groups/system:masters"],
    &["impersonate", "serviceaccounts", "-A"],
    &["impersonate", "userextras", "--subresource", "scopes"],
    &["impersonate", "uids"],
    &["escalate", "clusterroles"],
    &["create", "clusterroles"],
    &["*", "*"],
];

#[test]
fn the_reconcile_worker_binds_roles_and_impersonates_no_one() {
    let kube = start();
    wait_until_allowed(
        &kube,
        WORKER,
        &[
            &["create", "clusterrolebindings"],
            &["delete", "rolebindings", "-A"],
            &["patch", "rolebindings", "-n", "default"],
            &["bind", "clusterroles/view"],
            &["bind", "clusterroles/edit"],
            &["bind", "clusterroles/admin"],
            &["bind", "clusterroles/cluster-admin"],
        ],
    );
    assert_denied(&kube, WORKER, NEITHER);
    assert_denied(
        &kube,
        WORKER,
        &[
            &["impersonate", "users"],
            &["impersonate", "users/lanyard:dev@acme.example"],
            &["impersonate", "users/system:admin"],
            &["bind", "clusterroles/system:kube-controller-manager"],
            &["bind", "roles", "-A"],
        ],
    );
}

#[test]
fn the_access_proxy_impersonates_users_only() {
    let kube = start();
    wait_until_allowed(&kube, PROXY, &[&["impersonate", "users"], &["impersonate", "users/lanyard:dev@acme.example"]]);
    // RBAC cannot narrow `impersonate users` to Lanyard's user names: the token can act as any user,
    // built-in ones included, with that user's rights (the README and deploy/proxy-rbac.yaml say so).
    assert!(can(&kube, PROXY, &["impersonate", "users/system:kube-controller-manager"]));
    assert_denied(&kube, PROXY, NEITHER);
    assert_denied(
        &kube,
        PROXY,
        &[
            &["create", "clusterrolebindings"],
            &["create", "rolebindings", "-A"],
            &["bind", "clusterroles/cluster-admin"],
            &["get", "pods", "-A"],
        ],
    );
}

/// Beyond `can-i`: real requests with each account's own token, impersonating.
#[test]
fn impersonation_as_each_account_with_its_own_token() {
    let kube = start();
    wait_until_allowed(&kube, PROXY, &[&["impersonate", "users"]]);
    wait_until_allowed(&kube, WORKER, &[&["create", "clusterrolebindings"]]);
    let token = |sa: &str| {
        kube.kubectl_ok(Identity::Admin, ["create", "token", sa, "-n", "lanyard-system", "--duration", "10m"])
            .unwrap()
            .trim()
            .to_owned()
    };
    let as_account = |token: &str, args: &[&str]| {
        let mut all = vec!["--token", token];
        all.extend_from_slice(args);
        kube.kubectl(Identity::Admin, &all).unwrap()
    };
    let proxy = token("lanyard-proxy");
    let worker = token("lanyard-agent");

    // Refused impersonation: "cannot impersonate resource …" (or, with constrained impersonation,
    // "cannot impersonate-on:…"), and the request never ran as anyone.
    let refused = |out: &lanyard_kube::KubectlOutput| {
        assert!(!out.success());
        assert!(out.stderr.contains("cannot impersonate"), "not refused as impersonation: {}", out.stderr);
    };

    // The proxy acts as a member: the request is then the member's (who has no grant here).
    let out = as_account(&proxy, &["--as", "lanyard:dev@acme.example", "get", "pods", "-n", "default"]);
    assert!(!out.success());
    assert!(out.stderr.contains(r#"User "lanyard:dev@acme.example" cannot list resource "pods""#), "{}", out.stderr);
    // But it cannot add a group, least of all system:masters.
    refused(&as_account(
        &proxy,
        &["--as", "lanyard:dev@acme.example", "--as-group", "system:masters", "get", "secrets", "-A"],
    ));
    // Nor act as a ServiceAccount.
    refused(&as_account(
        &proxy,
        &["--as", "system:serviceaccount:kube-system:default", "get", "pods", "-n", "default"],
    ));

    // The worker cannot impersonate anyone.
    refused(&as_account(&worker, &["--as", "lanyard:dev@acme.example", "get", "pods", "-n", "default"]));
    refused(&as_account(
        &worker,
        &["--as", "lanyard:dev@acme.example", "--as-group", "system:masters", "get", "pods", "-n", "default"],
    ));
    // Neither reads secrets as itself.
    for token in [&proxy, &worker] {
        let out = as_account(token, &["get", "secrets", "-n", "kube-system"]);
        assert!(!out.success() && out.stderr.contains("forbidden"), "{}", out.stderr);
    }
}
