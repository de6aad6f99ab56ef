//! Grants become real RBAC on a real cluster, and the status flows back.
//! Real kube-apiserver (built from source), real kubectl, the real agent
//! binary under deploy/rbac.yaml, the real control plane. Every wait is a
//! condition with a deadline.

mod common;

use common::Env;
use lanyard_kube::Identity;
use serde_json::Value;

#[test]
fn a_grant_becomes_the_right_binding_and_shows_applied() {
    let env = Env::start();
    let ns = env.kube.fresh_namespace("team").unwrap();
    let namespaced = env.grant("dev@acme.example", "edit", Some(&ns));
    let cluster_wide = env.grant("ops@acme.example", "view", None);
    let g = env.wait_status(&namespaced, "applied");
    assert!(g.get("error").is_none());
    env.wait_status(&cluster_wide, "applied");

    let get = |args: &[&str]| -> Value {
        serde_json::from_str(&env.kube.kubectl_ok(Identity::Admin, args.iter().copied()).unwrap()).unwrap()
    };
    let selector = format!("lanyard.dev/grant={namespaced}");
    let rbs = get(&["get", "rolebindings", "-A", "-l", &selector, "-o", "json"]);
    let rb = &rbs["items"][0];
    assert_eq!(rbs["items"].as_array().unwrap().len(), 1);
    assert_eq!(rb["metadata"]["namespace"], ns.as_str());
    assert!(rb["metadata"]["name"].as_str().unwrap().starts_with("lanyard-"));
    assert_eq!(rb["metadata"]["labels"]["lanyard.dev/managed"], "true");
    assert_eq!(rb["metadata"]["labels"]["lanyard.dev/cluster"], env.cluster_id.as_str());
    assert_eq!(rb["roleRef"]["kind"], "ClusterRole");
    assert_eq!(rb["roleRef"]["name"], "edit");
    assert_eq!(
        rb["subjects"],
        serde_json::json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "lanyard:dev@acme.example"}])
    );

    let selector = format!("lanyard.dev/grant={cluster_wide}");
    let crbs = get(&["get", "clusterrolebindings", "-l", &selector, "-o", "json"]);
    assert_eq!(crbs["items"].as_array().unwrap().len(), 1);
    assert_eq!(crbs["items"][0]["roleRef"]["name"], "view");
    assert_eq!(crbs["items"][0]["subjects"][0]["name"], "lanyard:ops@acme.example");
}

#[test]
fn each_role_and_scope_gives_exactly_the_promised_access() {
    let env = Env::start();
    let ns = env.kube.fresh_namespace("inside").unwrap();
    let other = env.kube.fresh_namespace("outside").unwrap();
    // (role, scope) → member; cluster-admin cannot be granted in a namespace.
    let cases: Vec<(&str, Option<&str>)> = vec![
        ("view", Some(&ns)),
        ("edit", Some(&ns)),
        ("admin", Some(&ns)),
        ("view", None),
        ("edit", None),
        ("admin", None),
        ("cluster-admin", None),
    ];
    let members: Vec<(String, &str, Option<&str>)> = cases
        .iter()
        .map(|(role, scope)| {
            let email = format!("{role}-{}@acme.example", if scope.is_some() { "ns" } else { "cluster" });
            (email, *role, *scope)
        })
        .collect();
    for (email, role, scope) in &members {
        env.grant(email, role, *scope);
    }
    env.wait_all_applied();

    for (email, role, scope) in &members {
        let can = |args: &[&str]| env.member_can(email, args);
        let at = |n: &str| ["-n".to_owned(), n.to_owned()];
        let here = at(&ns);
        let there = at(&other);
        let check = |verb_res: &[&str], place: &[String]| {
            let mut a: Vec<&str> = verb_res.to_vec();
            a.extend(place.iter().map(String::as_str));
            can(&a)
        };
        let reads = check(&["get", "pods"], &here);
        let writes = check(&["create", "deployments"], &here);
        let manages_rbac = check(&["create", "rolebindings"], &here);
        let reads_elsewhere = check(&["get", "pods"], &there);
        let writes_elsewhere = check(&["create", "deployments"], &there);
        let cluster_scoped = can(&["create", "namespaces"]);
        let secrets = check(&["get", "secrets"], &here);

        let cluster = scope.is_none();
        let want = match *role {
            "view" => (true, false, false, cluster, false, false, false),
            "edit" => (true, true, false, cluster, cluster, false, true),
            "admin" => (true, true, true, cluster, cluster, false, true),
            "cluster-admin" => (true, true, true, true, true, true, true),
            _ => unreachable!(),
        };
        let got = (reads, writes, manages_rbac, reads_elsewhere, writes_elsewhere, cluster_scoped, secrets);
        assert_eq!(
            got,
            want,
            "{role} at {}: (get pods, create deployments, create rolebindings, get pods elsewhere, create deployments elsewhere, create namespaces, get secrets)",
            scope.unwrap_or("cluster")
        );
    }
    // Nobody without a grant gets anything.
    assert!(!env.member_can("nobody@acme.example", &["get", "pods", "-n", &ns]));
}

#[test]
fn a_grant_in_a_missing_namespace_fails_then_recovers_by_itself() {
    let env = Env::start();
    let ns = format!("later-{}", &env.cluster_id[2..10]);
    let id = env.grant("dev@acme.example", "view", Some(&ns));
    let failed = env.wait_status(&id, "failed");
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains(&format!("namespaces \"{ns}\" not found")), "{error}");
    env.kube.kubectl_ok(Identity::Admin, ["create", "namespace", ns.as_str()]).unwrap();
    let g = env.wait_status(&id, "applied");
    assert!(g.get("error").is_none(), "{g}");
    assert!(env.member_can("dev@acme.example", &["get", "pods", "-n", &ns]));
}

#[test]
fn deleting_and_revoking_remove_managed_bindings_only() {
    let env = Env::start();
    let ns = env.kube.fresh_namespace("team").unwrap();
    let a = env.grant("a@acme.example", "view", Some(&ns));
    let _b = env.grant("b@acme.example", "edit", Some(&ns));
    let _c = env.grant("c@acme.example", "view", None);
    env.wait_all_applied();
    assert_eq!(env.managed_bindings().len(), 3);
    // An unmanaged binding someone made by hand.
    env.kube
        .kubectl_ok(
            Identity::Admin,
            ["create", "rolebinding", "hand-made", "--clusterrole=view", "--user=someone", "-n", ns.as_str()],
        )
        .unwrap();

    env.app.delete(&format!("/api/v1/clusters/{}/access/grants/{a}", env.cluster_id), &env.admin).expect(204);
    env.wait_bindings("the deleted grant's binding to go", |b| b.len() == 2);
    assert!(!env.member_can("a@acme.example", &["get", "pods", "-n", &ns]));

    env.app
        .send("POST", &format!("/api/v1/clusters/{}/access/revoke-all", env.cluster_id), Some(&env.admin), None)
        .expect(200);
    env.wait_bindings("revoke-all to remove every managed binding", |b| b.is_empty());
    let hand_made = env.kube.kubectl(Identity::Admin, ["get", "rolebinding", "hand-made", "-n", ns.as_str()]).unwrap();
    assert!(hand_made.success(), "the unmanaged binding must stay: {}", hand_made.stderr);
}

#[test]
fn drift_is_corrected() {
    let env = Env::start();
    let ns = env.kube.fresh_namespace("drift").unwrap();
    let id = env.grant("dev@acme.example", "edit", Some(&ns));
    env.wait_status(&id, "applied");
    let before = env.managed_bindings();
    let name = before[0].rsplit('/').next().unwrap().to_owned();

    // Deleted by hand: restored.
    env.kube.kubectl_ok(Identity::Admin, ["delete", "rolebinding", name.as_str(), "-n", ns.as_str()]).unwrap();
    env.wait_bindings("the deleted binding to come back", |b| b == before.as_slice());

    // Edited by hand (an extra subject): restored.
    let patch = r#"[{"op":"add","path":"/subjects/-","value":{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"intruder"}}]"#;
    env.kube
        .kubectl_ok(
            Identity::Admin,
            ["patch", "rolebinding", name.as_str(), "-n", ns.as_str(), "--type=json", "-p", patch],
        )
        .unwrap();
    common::eventually("the extra subject to be removed", common::SETTLE, || {
        let subjects = env.kube.kubectl_ok(
            Identity::Admin,
            ["get", "rolebinding", name.as_str(), "-n", ns.as_str(), "-o", "jsonpath={.subjects[*].name}"],
        )?;
        Ok(if subjects.trim() == "lanyard:dev@acme.example" {
            lanyard_test_support::Probe::Ready(())
        } else {
            lanyard_test_support::Probe::NotYet(subjects)
        })
    });

    // A managed binding that no grant backs: removed.
    let stray = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: lanyard-stray\n  namespace: {ns}\n  labels:\n    lanyard.dev/managed: \"true\"\n    lanyard.dev/cluster: {}\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: admin\nsubjects:\n- apiGroup: rbac.authorization.k8s.io\n  kind: User\n  name: sneaky\n",
        env.cluster_id
    );
    let path = std::env::temp_dir().join(format!("stray-{}.yaml", env.cluster_id));
    std::fs::write(&path, stray).unwrap();
    env.kube.kubectl_ok(Identity::Admin, ["apply", "-f", path.to_str().unwrap()]).unwrap();
    env.wait_bindings("the stray managed binding to go", |b| b == before.as_slice());
    let _ = std::fs::remove_file(path);
}

#[test]
fn grants_show_cluster_offline_while_the_agent_is_down_and_apply_when_it_returns() {
    let mut env = Env::start();
    let ns = env.kube.fresh_namespace("offline").unwrap();
    let first = env.grant("a@acme.example", "view", Some(&ns));
    env.wait_status(&first, "applied");
    env.stop_agent(libc::SIGTERM);
    let second = env.grant("b@acme.example", "view", Some(&ns));
    env.wait_status(&second, "cluster_offline");
    // An applied grant stays applied: its binding is still live.
    env.wait_status(&first, "applied");
    env.start_agent();
    env.wait_status(&second, "applied");
    assert!(env.member_can("b@acme.example", &["get", "pods", "-n", &ns]));
}

#[test]
fn an_agent_killed_mid_work_loses_nothing() {
    let mut env = Env::start_without_agent();
    let ns = env.kube.fresh_namespace("crash").unwrap();
    let ids: Vec<String> = (0..40).map(|i| env.grant(&format!("m{i}@acme.example"), "view", Some(&ns))).collect();
    env.start_agent();
    // Kill it as soon as it has started writing, before it can finish.
    env.wait_bindings("the agent to start applying", |b| !b.is_empty());
    env.stop_agent(libc::SIGKILL);
    // While it is down: delete some grants, add one.
    for id in &ids[..5] {
        env.app.delete(&format!("/api/v1/clusters/{}/access/grants/{id}", env.cluster_id), &env.admin).expect(204);
    }
    let late = env.grant("late@acme.example", "edit", Some(&ns));
    env.start_agent();
    env.wait_all_applied();
    env.wait_status(&late, "applied");
    let bindings = env.wait_bindings("exactly the live grants' bindings", |b| b.len() == 36);
    assert_eq!(bindings.len(), 36);
    assert!(
        !env.member_can("m0@acme.example", &["get", "pods", "-n", &ns]),
        "a grant deleted while the agent was down"
    );
    assert!(env.member_can("m39@acme.example", &["get", "pods", "-n", &ns]));
}
