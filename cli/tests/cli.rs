//! The real `lanyard` binary against a real local control plane (the
//! project's host running the real Wasm components), each test in its own
//! HOME, LANYARD_CONFIG and KUBECONFIG; kubeconfig results are read by the
//! real kubectl, and kubectl runs the exec plugin.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use lanyard_api_tests::{App, ClusterFixture, Fixture, unix_now};
use lanyard_cli::{kubeconfig, token_cache};
use lanyard_core::dev::{self, SessionClaims};
use serde_json::{Value, json};

fn claims(email: &str, org: &str, admin: bool, ttl_secs: u64) -> SessionClaims {
    SessionClaims { email: email.into(), org: org.into(), admin, name: None, ttl_secs }
}

#[test]
fn login_whoami_logout() {
    let app = App::start();
    let env = Env::new();
    // Not logged in: every command that needs a session exits 3 and says how to log in.
    let out = env.run(&["cluster", "list"]);
    out.code(3);
    assert!(out.stderr.contains("lanyard login"), "{out:?}");
    env.run(&["whoami"]).code(3);

    // A session the control plane does not accept is not saved.
    let out = env.run(&["login", "--control-plane", &app.url, "--token", "garbage"]);
    out.code(3);
    assert!(!env.config.exists());
    assert!(!out.stderr.contains("garbage"), "the token is never printed: {out:?}");
    env.run(&["login", "--control-plane", "not a url", "--token", "x"]).code(2);
    // Without a token, login signs in with the identity provider the control plane names; this
    // one names none (no `GET /api/v1/login`), and says so.
    let out = env.run(&["login", "--control-plane", &app.url, "--no-browser", "--timeout", "1s"]);
    out.code(5);
    assert!(out.stderr.contains("no identity provider set up for `lanyard login`"), "{out:?}");
    assert!(!env.config.exists());

    let admin = app.token("alice@acme.example", "acme", true);
    let out = env.run(&["-o", "json", "login", "--control-plane", &format!("{}/", app.url), "--token", &admin]);
    out.ok();
    assert_eq!(out.json()["email"], "alice@acme.example");
    assert_eq!(mode(&env.config), 0o600);
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&env.config).unwrap()).unwrap();
    assert_eq!(saved, json!({"control_plane": app.url, "session_token": admin}));

    let who = env.run(&["whoami", "-o", "json"]);
    who.ok();
    let who = who.json();
    assert_eq!(
        (who["email"].as_str(), who["org"].as_str(), who["admin"].as_bool()),
        (Some("alice@acme.example"), Some("acme"), Some(true))
    );
    assert_eq!(who["control_plane"], app.url.as_str());
    assert!(who["expires_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    let table = env.run(&["whoami"]);
    table.ok();
    for word in ["alice@acme.example", "acme", &app.url, "Expires"] {
        assert!(table.stdout.contains(word), "{table:?}");
    }

    // --token-stdin, and a session the server rejects (expired) exits 3 on whoami.
    let bob = app.token("bob@acme.example", "acme", false);
    env.run_stdin(&["login", "--control-plane", &app.url, "--token-stdin"], &format!("{bob}\n")).ok();
    assert_eq!(env.run(&["whoami", "-o", "json"]).json()["admin"], false);
    let expired = dev::mint_session(
        &app.issuer,
        dev::DEV_ISSUER,
        dev::AUDIENCE,
        &claims("bob@acme.example", "acme", false, 60),
        unix_now() - 3600,
    );
    std::fs::write(&env.config, json!({"control_plane": app.url, "session_token": expired}).to_string()).unwrap();
    let out = env.run(&["whoami"]);
    out.code(3);
    assert!(out.stderr.contains("lanyard login") && !out.stderr.contains(&expired), "{out:?}");

    // --dev mints with the local run's development issuer key.
    let state = env.home().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("dev-issuer.jwk"), app.issuer.to_jwk()).unwrap();
    let state_arg = state.to_str().unwrap();
    env.run(&[
        "login",
        "--control-plane",
        &app.url,
        "--dev",
        "--email",
        "carol@acme.example",
        "--org",
        "acme",
        "--admin",
        "--state",
        state_arg,
    ])
    .ok();
    let who = env.run(&["-o", "json", "whoami"]).json();
    assert_eq!((who["email"].as_str(), who["admin"].as_bool()), (Some("carol@acme.example"), Some(true)));
    let out = env.run(&["login", "--dev", "--email", "x@acme.example", "--state", "/nonexistent"]);
    out.code(1);
    assert!(out.stderr.contains("development issuer key"), "{out:?}");
    env.run(&["login", "--token", "t", "--dev", "--email", "x@y.z"]).code(2);

    // logout keeps the control plane; login defaults to it.
    env.run(&["logout"]).ok();
    assert_eq!(mode(&env.config), 0o600);
    env.run(&["whoami"]).code(3);
    env.run(&["cluster", "list"]).code(3);
    env.run(&["login", "--token", &admin]).ok();
    env.run(&["whoami"]).ok();
}

#[test]
fn clusters_and_access_management() {
    let ClusterFixture { app, admin, cluster: prod, .. } = Fixture::start().with_cluster("prod");
    let sandbox = app.cluster(&admin, "play", "sandbox");
    app.sign_in("bob@acme.example", "acme");
    app.sign_in("carol@acme.example", "acme");
    let env = Env::logged_in(&app, &admin);

    let list = env.run(&["cluster", "list"]);
    list.ok();
    let header = list.stdout.lines().next().unwrap_or_default();
    assert!(["NAME", "ID", "KIND", "AGENT"].iter().all(|h| header.contains(h)), "{list:?}");
    assert!(
        list.stdout.contains(&prod) && list.stdout.contains("sandbox") && list.stdout.contains("offline"),
        "{list:?}"
    );
    let json = env.run(&["cluster", "list", "-o", "json"]).json();
    assert_eq!(json["clusters"].as_array().map(Vec::len), Some(2));

    // Grants, by name and by id.
    let g1 = env.access_grant("prod", "bob@acme.example", "view", &["--namespace", "team-a", "-o", "json"]);
    g1.ok();
    let g1 = g1.json();
    assert_eq!((g1["scope"].as_str(), g1["namespace"].as_str()), (Some("namespace"), Some("team-a")));
    let out = env.access_grant(&prod, "bob@acme.example", "edit", &["--cluster-scope"]);
    out.ok();
    assert!(out.stdout.contains("cluster") && out.stdout.contains("edit"), "{out:?}");
    env.access_grant("prod", "carol@acme.example", "admin", &["--namespace", "team-b"]).ok();

    // Main errors.
    let dup = env.access_grant("prod", "bob@acme.example", "view", &["--namespace", "team-a"]);
    dup.code(6);
    assert!(dup.stderr.contains("duplicate_grant") && dup.stderr.contains("lanyard cluster access list"), "{dup:?}");
    let bad = env.access_grant("prod", "bob@acme.example", "owner", &["--namespace", "a"]);
    bad.code(2);
    assert!(bad.stderr.contains("view, edit, admin, cluster-admin"), "the error names the valid roles: {bad:?}");
    let both = env.access_grant("prod", "b@acme.example", "view", &["--namespace", "a", "--cluster-scope"]);
    both.code(2);
    env.access_grant("prod", "b@acme.example", "view", &[]).code(2);
    let invalid = env.access_grant("prod", "bob@acme.example", "cluster-admin", &["--namespace", "a"]);
    invalid.code(2);
    assert!(invalid.stderr.contains("validation_failed") && invalid.stderr.contains("field: role"), "{invalid:?}");
    let bad_ns = env.access_grant("prod", "bob@acme.example", "view", &["--namespace", "Not_A_Label"]);
    bad_ns.code(2);
    assert!(bad_ns.stderr.contains("field: namespace"), "{bad_ns:?}");
    let stranger = env.access_grant("prod", "nobody@acme.example", "view", &["--namespace", "a"]);
    stranger.code(2);
    assert!(stranger.stderr.contains("member_not_eligible") && stranger.stderr.contains("sign in"), "{stranger:?}");
    let unknown = env.run(&["cluster", "access", "list", "nope"]);
    unknown.code(5);
    assert!(unknown.stderr.contains("lanyard cluster list"), "{unknown:?}");
    env.run(&["cluster", "access", "list", "c_000000000000000000000000"]).code(5);
    let sb = env.access_grant(&sandbox, "bob@acme.example", "view", &["--namespace", "a"]);
    sb.code(6);

    // list / status, table and JSON.
    let list = env.run(&["cluster", "access", "list", "prod"]);
    list.ok();
    let header = list.stdout.lines().next().unwrap_or_default();
    assert!(
        ["ID", "EMAIL", "ROLE", "SCOPE", "NAMESPACE", "STATUS", "ERROR"].iter().all(|h| header.contains(h)),
        "{list:?}"
    );
    assert_eq!(list.stdout.lines().count(), 4, "{list:?}");
    let grants = env.run(&["cluster", "access", "list", &prod, "-o", "json"]).json();
    assert_eq!(grants["grants"].as_array().map(Vec::len), Some(3));
    let status = env.run(&["cluster", "access", "status", "prod", "-o", "json"]);
    status.ok();
    assert!(status.json()["grants"].as_array().unwrap().iter().all(|g| g["status"] == "cluster_offline"));

    // A member is forbidden the admin commands, and told why.
    let member = Env::logged_in(&app, &app.token("bob@acme.example", "acme", false));
    member.run(&["cluster", "list"]).ok();
    for args in [
        vec!["cluster", "access", "list", "prod"],
        vec!["cluster", "access", "status", "prod"],
        vec!["cluster", "access", "grant", "prod", "--email", "bob@acme.example", "--role", "admin", "--cluster-scope"],
        vec!["cluster", "access", "revoke", "prod", g1["id"].as_str().unwrap()],
        vec!["cluster", "access", "revoke-all", "prod", "--yes"],
    ] {
        let out = member.run(&args);
        out.code(4);
        assert!(out.stderr.contains("organisation admin"), "{out:?}");
    }

    // Revoke one by id, then all of a member's by email.
    let out = env.run(&["-o", "json", "cluster", "access", "revoke", "prod", g1["id"].as_str().unwrap()]);
    out.ok();
    assert_eq!(out.json()["revoked"], json!([g1["id"]]));
    env.run(&["cluster", "access", "revoke", "prod", g1["id"].as_str().unwrap()]).code(5);
    env.run(&["cluster", "access", "revoke", "prod", "g_000000000000000000000000"]).code(5);
    env.access_grant("prod", "bob@acme.example", "view", &["--namespace", "team-c"]).ok();
    let out = env.run(&["-o", "json", "cluster", "access", "revoke", "prod", "--email", "BOB@acme.example"]);
    out.ok();
    assert_eq!(out.json()["revoked"].as_array().map(Vec::len), Some(2));
    env.run(&["cluster", "access", "revoke", "prod", "--email", "bob@acme.example"]).code(5);
    env.run(&["cluster", "access", "revoke", "prod"]).code(2);
    let left: Vec<String> = app.grants(&admin, &prod).iter().map(|g| g["email"].as_str().unwrap().to_owned()).collect();
    assert_eq!(left, ["carol@acme.example"]);

    // revoke-all: refused without a terminal and without --yes; done with --yes.
    let out = env.run(&["cluster", "access", "revoke-all", "prod"]);
    out.code(2);
    assert!(out.stderr.contains("--yes"), "{out:?}");
    assert_eq!(app.grants(&admin, &prod).len(), 1, "nothing was revoked");
    let out = env.run(&["cluster", "access", "revoke-all", "prod", "--yes", "-o", "json"]);
    out.ok();
    assert_eq!(out.json()["revoked"], 1);
    assert!(app.grants(&admin, &prod).is_empty());
    env.run(&["cluster", "access", "list", "prod"]).ok();
}

#[test]
fn cluster_delete_and_credential_rotate() {
    let ClusterFixture { app, admin, cluster: prod, credential: old } = Fixture::start().with_cluster("prod");
    let bob = app.sign_in("bob@acme.example", "acme");
    let env = Env::logged_in(&app, &admin);
    let agent = |credential: &str| app.get(&format!("/agent/v1/clusters/{prod}/state"), credential).status;

    // Rotate: the new credential alone on stdout, the advice on stderr; the
    // old one works until the agent uses the new one.
    let out = env.run(&["cluster", "credential", "rotate", "prod"]);
    out.ok();
    let new = out.stdout.trim().to_owned();
    assert!(new.starts_with("lya_") && out.stdout.lines().count() == 1, "{out:?}");
    assert!(out.stderr.contains("shown this once") && !out.stderr.contains(&new), "{out:?}");
    assert_eq!(agent(&old), 200, "the old credential still works");
    assert_eq!(agent(&new), 200);
    assert_eq!(agent(&old), 401, "retired once the agent used the new one");
    // --previous-valid-for 0 refuses the old one at once; -o json prints the answer.
    let out = env.run(&["-o", "json", "cluster", "credential", "rotate", &prod, "--previous-valid-for", "0"]);
    out.ok();
    let newest = out.json()["agent_credential"].as_str().unwrap().to_owned();
    assert!(out.json()["previous_valid_until"].is_string());
    assert_eq!(agent(&new), 401);
    assert_eq!(agent(&newest), 200);
    // Out of range is the server's 422 (exit 2), and rotates nothing.
    let out = env.run(&["cluster", "credential", "rotate", "prod", "--previous-valid-for", "90000"]);
    out.code(2);
    assert!(out.stderr.contains("86400"), "{out:?}");
    assert_eq!(agent(&newest), 200);
    // The CLI keeps no credential anywhere.
    for entry in walk(env.home()) {
        let text = std::fs::read_to_string(&entry).unwrap_or_default();
        assert!(!text.contains(&new) && !text.contains(&newest), "{} holds a credential", entry.display());
    }

    // Members may do neither (exit 4); unknown clusters are exit 5.
    let member = Env::logged_in(&app, &bob);
    member.run(&["cluster", "credential", "rotate", "prod"]).code(4);
    member.run(&["cluster", "delete", "prod", "--yes"]).code(4);
    env.run(&["cluster", "delete", "nope", "--yes"]).code(5);
    env.run(&["cluster", "credential", "rotate", "nope"]).code(5);

    // Delete: refused without a terminal and without --yes; nothing deleted.
    let out = env.run(&["cluster", "delete", "prod"]);
    out.code(2);
    assert!(out.stderr.contains("--yes"), "{out:?}");
    assert_eq!(app.get("/api/v1/clusters", &admin).json["clusters"][0]["id"], prod);
    let out = env.run(&["cluster", "delete", "prod", "--yes"]);
    out.ok();
    assert!(out.stderr.contains("Deleted cluster prod"), "{out:?}");
    assert!(!env.run(&["cluster", "list"]).stdout.contains(&prod), "no longer listed");
    assert_eq!(agent(&newest), 401, "its agent is refused");
    env.run(&["cluster", "delete", &prod, "--yes"]).code(5);
    // The name can be registered again; -o json says what was deleted.
    let again = app.cluster(&admin, "prod", "standard");
    assert_ne!(again, prod);
    let out = env.run(&["-o", "json", "cluster", "delete", "prod", "-y"]);
    out.ok();
    assert_eq!(out.json(), json!({"cluster": again, "deleted": true}));
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn access_status_waits_until_grants_settle() {
    let ClusterFixture { app, admin, cluster, credential } =
        Fixture::start().with_cluster("prod").with_member("bob@acme.example");
    let agent = |what: &str| format!("/agent/v1/clusters/{cluster}/{what}");
    app.post(&agent("heartbeat"), &credential, json!({})).expect(200);
    let env = Env::logged_in(&app, &admin);

    let grant = |ns: &str| app.grant_access(&admin, &cluster, "bob@acme.example", "view", Some(ns));
    let report = |id: &str, state: &str| {
        let mut result = json!({"grant_id": id, "state": state});
        if state == "failed" {
            result["error"] = "namespaces \"x\" not found".into();
        }
        app.post(&agent("reports"), &credential, json!({"results": [result]})).expect(200);
    };

    // --wait returns once the agent applied the grant.
    let g1 = grant("team-a");
    let mut child = env
        .command(&["cluster", "access", "status", "prod", "--wait", "--timeout", "60", "-o", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(child.try_wait().unwrap().is_none(), "status --wait returned while a grant was pending");
    report(&g1, "applied");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "status --wait did not return after the grant was applied");
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let body: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!((body["settled"].as_bool(), body["grants"][0]["status"].as_str()), (Some(true), Some("applied")));

    // A grant still pending at the timeout: exit 1, saying so.
    let g2 = grant("team-b");
    let started = Instant::now();
    let out = env.run(&["cluster", "access", "status", "prod", "--wait", "--timeout", "1"]);
    out.code(1);
    assert!(out.stderr.contains("timed out") && out.stdout.contains("pending"), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
    env.run(&["cluster", "access", "status", "prod"]).ok();

    // Settled but failed: exit 1, with the agent's error in the table.
    report(&g2, "failed");
    let out = env.run(&["cluster", "access", "status", "prod", "--wait", "--timeout", "30"]);
    out.code(1);
    assert!(
        out.stdout.contains("failed") && out.stdout.contains("not found") && out.stderr.contains("1 grant(s) failed"),
        "{out:?}"
    );
}

/// A kubeconfig file with the existing multi-cluster content.
fn existing_kubeconfig(env: &Env) {
    std::fs::create_dir_all(env.kubeconfig.parent().unwrap()).unwrap();
    std::fs::write(&env.kubeconfig, EXISTING).unwrap();
}

/// Every entry of `before` other than Lanyard's is in `after`, unchanged and in order.
#[track_caller]
fn assert_kept(before: &serde_norway::Value, after: &serde_norway::Value, lanyard: &str) {
    let map = before.as_mapping().unwrap();
    for (key, value) in map {
        let key = key.as_str().unwrap();
        match key {
            "clusters" | "users" | "contexts" => {
                let theirs: Vec<_> =
                    after[key].as_sequence().unwrap().iter().filter(|e| e["name"].as_str() != Some(lanyard)).collect();
                let mine: Vec<_> = value.as_sequence().unwrap().iter().collect();
                assert_eq!(theirs, mine, "{key}");
            }
            _ => assert_eq!(&after[key], value, "{key}"),
        }
    }
}

#[test]
fn kubeconfig_add_list_remove_and_kubectl_reads_it() {
    let ClusterFixture { app, admin, cluster, .. } = Fixture::start().with_cluster("prod");
    app.cluster(&admin, "other", "standard");
    let bob = app.sign_in("bob@acme.example", "acme");
    app.grant_access(&admin, &cluster, "bob@acme.example", "view", Some("team-a"));
    let env = Env::logged_in(&app, &bob);
    existing_kubeconfig(&env);
    let before = yaml(&env.kubeconfig);

    // Bob has no grant on `other`: 403 with the command an admin would run.
    let out = env.run(&["cluster", "kubeconfig", "add", "other"]);
    out.code(4);
    assert!(out.stderr.contains("lanyard cluster access grant other --email bob@acme.example"), "{out:?}");
    assert_eq!(yaml(&env.kubeconfig), before, "nothing written");
    env.run(&["cluster", "kubeconfig", "add", "nope"]).code(5);

    let out = env.run(&["cluster", "kubeconfig", "add", "prod", "-o", "json"]);
    out.ok();
    assert_eq!(out.json()["context"], "lanyard-prod");
    assert_eq!(mode(&env.kubeconfig), 0o600);
    let after = yaml(&env.kubeconfig);
    assert_kept(&before, &after, "lanyard-prod");
    assert_eq!(after["current-context"].as_str(), Some("kind-dev"), "current-context kept without --set-current");
    // Adding again (by id) changes nothing.
    env.run(&["cluster", "kubeconfig", "add", &cluster]).ok();
    assert_eq!(yaml(&env.kubeconfig), after);

    // The real kubectl reads the result.
    let contexts = kubectl(&env, &["config", "get-contexts", "-o", "name"]);
    contexts.ok();
    let mut names: Vec<&str> = contexts.stdout.lines().collect();
    names.sort_unstable();
    assert_eq!(names, ["kind-dev", "lanyard-prod", "prod"], "{contexts:?}");
    let table = kubectl(&env, &["config", "get-contexts"]);
    table.ok();
    assert!(table.stdout.lines().any(|l| l.starts_with('*') && l.contains("kind-dev")), "{table:?}");
    let view = kubectl(&env, &["config", "view", "--minify", "--context", "lanyard-prod", "-o", "json"]);
    view.ok();
    let view = view.json();
    assert_eq!(view["clusters"][0]["cluster"]["server"], "https://proxy.example:8443");
    assert_eq!(view["contexts"][0]["context"]["namespace"], "team-a");
    let exec = &view["users"][0]["user"]["exec"];
    assert_eq!(exec["command"], "lanyard");
    assert_eq!(exec["apiVersion"], "client.authentication.k8s.io/v1");
    assert_eq!(exec["args"], json!(["cluster", "token", "--control-plane", app.url, "--cluster", cluster]));
    assert!(!serde_json::to_string(&view).unwrap().contains(&bob), "no session in the kubeconfig");

    let list = env.run(&["cluster", "kubeconfig", "list"]);
    list.ok();
    assert!(
        list.stdout.contains("lanyard-prod") && list.stdout.contains(&cluster) && list.stdout.contains("team-a"),
        "{list:?}"
    );
    let list = env.run(&["cluster", "kubeconfig", "list", "-o", "json"]).json();
    assert_eq!(list["contexts"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["contexts"][0]["current"], false);

    // remove restores the file exactly (parsed).
    env.run(&["cluster", "kubeconfig", "remove", "prod"]).ok();
    assert_eq!(yaml(&env.kubeconfig), before);
    env.run(&["cluster", "kubeconfig", "remove", "prod"]).code(5);

    // --set-current switches; remove (by id) then unsets it.
    env.run(&["cluster", "kubeconfig", "add", "prod", "--set-current"]).ok();
    let current = kubectl(&env, &["config", "current-context"]);
    assert_eq!(current.stdout.trim(), "lanyard-prod", "{current:?}");
    let mut switched = before.clone();
    switched["current-context"] = "lanyard-prod".into();
    assert_kept(&switched, &yaml(&env.kubeconfig), "lanyard-prod");
    env.run(&["cluster", "kubeconfig", "remove", &cluster]).ok();
    let removed = yaml(&env.kubeconfig);
    assert!(removed.get("current-context").is_none());
    let mut expected = before.clone();
    expected.as_mapping_mut().unwrap().remove("current-context");
    assert_eq!(removed, expected);

    // Only the first file of a KUBECONFIG list is written; a missing file is created 0600.
    let second = env.home().join("second.yaml");
    std::fs::write(&second, EXISTING).unwrap();
    let first = env.home().join("fresh/config");
    let list = format!("{}:{}", first.display(), second.display());
    let out = env.command(&["cluster", "kubeconfig", "add", "prod"]).env("KUBECONFIG", &list).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&second).unwrap(), EXISTING);
    assert_eq!(mode(&first), 0o600);
    assert_eq!(kubeconfig::lanyard_contexts(&kubeconfig::load(&first).unwrap()).len(), 1);
    // And ~/.kube/config without KUBECONFIG.
    let out = env.command(&["cluster", "kubeconfig", "add", "prod"]).env_remove("KUBECONFIG").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(mode(&env.home().join(".kube/config")), 0o600);
}

#[test]
fn a_concurrent_reader_never_sees_a_partial_kubeconfig() {
    let env = Env::new();
    existing_kubeconfig(&env);
    // Make the file large enough that a torn write would show.
    let mut doc = yaml(&env.kubeconfig);
    for i in 0..300 {
        let entry: serde_norway::Value = serde_norway::from_str(&format!(
            "{{name: filler-{i}, cluster: {{server: 'https://filler-{i}.example:6443', certificate-authority-data: '{}'}}}}",
            "Q".repeat(200)
        ))
        .unwrap();
        doc["clusters"].as_sequence_mut().unwrap().push(entry);
    }
    kubeconfig::save(&env.kubeconfig, &doc).unwrap();
    let incoming = |ns: &str| {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: lanyard-prod\n  cluster:\n    server: https://proxy.example:8443\n\
             users:\n- name: lanyard-prod\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: lanyard\n      \
             args: [cluster, token, --control-plane, 'http://cp', --cluster, c_0123456789abcdef01234567]\n      interactiveMode: Never\n\
             contexts:\n- name: lanyard-prod\n  context:\n    cluster: lanyard-prod\n    user: lanyard-prod\n    namespace: {ns}\n"
        )
    };
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let path = env.kubeconfig.clone();
    let reader = {
        let (stop, reads) = (stop.clone(), reads.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let text = std::fs::read_to_string(&path).expect("the file is always there");
                let doc = kubeconfig::parse(&text).unwrap_or_else(|e| panic!("a reader saw a partial file ({e})"));
                assert_eq!(
                    doc["clusters"].as_sequence().map(|s| s.len() >= 302),
                    Some(true),
                    "a reader saw a partial file"
                );
                reads.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    wait_until("the reader to start", Duration::from_secs(10), || reads.load(Ordering::Relaxed) > 0);
    let (cluster_id, cluster_name) = (
        lanyard_core::ids::ClusterId::parse("c_0123456789abcdef01234567").unwrap(),
        lanyard_core::model::ClusterName::parse("prod").unwrap(),
    );
    let expected =
        kubeconfig::Expected { control_plane: "http://cp", cluster_id: &cluster_id, cluster_name: &cluster_name };
    for i in 0..150 {
        kubeconfig::merge_file(&env.kubeconfig, &incoming(&format!("ns-{i}")), &expected, i % 2 == 0).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("every read parsed");
    assert!(reads.load(Ordering::Relaxed) > 10, "the reader read while merging");
    let last = yaml(&env.kubeconfig);
    assert_eq!(last["contexts"][2]["context"]["namespace"].as_str(), Some("ns-149"));
    assert_eq!(mode(&env.kubeconfig), 0o600);
    // No temporary files left behind.
    let left: Vec<_> =
        std::fs::read_dir(env.kubeconfig.parent().unwrap()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, [std::ffi::OsString::from("config")]);
}

fn credential_token(v: &Value) -> String {
    v["status"]["token"].as_str().unwrap_or_else(|| panic!("no status.token in {v}")).to_owned()
}

#[test]
fn token_plugin_caches_and_refreshes() {
    let ClusterFixture { app, admin, cluster, .. } = Fixture::start().with_cluster("prod");
    let other = app.cluster(&admin, "other", "standard");
    let bob = app.sign_in("bob@acme.example", "acme");
    app.grant_access(&admin, &cluster, "bob@acme.example", "view", Some("team-a"));
    let env = Env::new();
    let args = |c: &str| {
        vec![
            "cluster".to_owned(),
            "token".into(),
            "--control-plane".into(),
            app.url.clone(),
            "--cluster".into(),
            c.into(),
        ]
    };
    // As kubectl runs it: each command a new parent process (a second request from the same one means a refusal).
    let run =
        |c: &str| env.shell(r#""$LANYARD" "$@"; exit $?"#, &args(c).iter().map(String::as_str).collect::<Vec<_>>());
    run(&cluster).code(3);
    env.login(&app, &bob);

    let started = Instant::now();
    let first = run(&cluster);
    let mint = started.elapsed();
    first.ok();
    let cred = first.json();
    assert_eq!(
        (cred["apiVersion"].as_str(), cred["kind"].as_str()),
        (Some("client.authentication.k8s.io/v1"), Some("ExecCredential"))
    );
    let cache = token_cache::file(&env.cache_dir(), &app.url, &lanyard_core::ids::ClusterId::parse(&cluster).unwrap());
    assert_eq!(mode(&cache), 0o600);
    assert_eq!(mode(&env.cache_dir()), 0o700);

    // Reused by another process: the same credential.
    let started = Instant::now();
    let second = run(&cluster);
    let warm = started.elapsed();
    second.ok();
    assert_eq!(second.json(), cred);
    eprintln!("cluster token: first (mint) {mint:?}, warm cache {warm:?}");
    // A process that asks twice (kubectl after a 401) gets a fresh token the second time.
    let args_of = args(&cluster);
    let twice = env.shell(
        r#""$LANYARD" "$@" && "$LANYARD" "$@"; exit $?"#,
        &args_of.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    twice.ok();
    let tokens: Vec<String> =
        twice.stdout.lines().map(|l| credential_token(&serde_json::from_str(l).unwrap())).collect();
    assert_eq!(tokens.len(), 2, "{twice:?}");
    assert_eq!(tokens[0], credential_token(&cred), "the first request of a process reuses the cache");
    assert_ne!(tokens[1], tokens[0], "its second request mints anew");

    // Proof that a cached credential is served without a request: plant one.
    let far = json!({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
        "status": {"token": "planted", "expirationTimestamp": "2099-01-01T00:00:00Z"}});
    token_cache::write(&cache, &bob, &far, 1).unwrap();
    assert_eq!(credential_token(&run(&cluster).json()), "planted");
    // Near expiry (under 60 s left): a fresh one is minted and cached.
    let soon = lanyard_core::ids::rfc3339(unix_now() + 30);
    let near = json!({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
        "status": {"token": "near-expiry", "expirationTimestamp": soon}});
    token_cache::write(&cache, &bob, &near, 1).unwrap();
    let fresh = run(&cluster).json();
    assert!(!["near-expiry", "planted"].contains(&credential_token(&fresh).as_str()));
    assert!(token_cache::expiry(&fresh).unwrap() > unix_now() + 60);
    assert_eq!(credential_token(&token_cache::reuse(&cache, &bob, unix_now(), 1).unwrap()), credential_token(&fresh));
    // Another session does not reuse the cache.
    let carol = app.sign_in("carol@acme.example", "acme");
    env.login(&app, &carol);
    let out = run(&cluster);
    out.code(4);
    assert!(out.stderr.contains("--email carol@acme.example --role view --namespace"), "{out:?}");
    assert!(out.stdout.is_empty());
    env.login(&app, &bob);

    // Errors: no grant (4), unknown cluster (5), another control plane (3).
    let out = run(&other);
    out.code(4);
    assert!(out.stderr.contains("lanyard cluster access grant"), "{out:?}");
    run("c_000000000000000000000000").code(5);
    let elsewhere = env.run(&["cluster", "token", "--control-plane", "http://127.0.0.1:1", "--cluster", &cluster]);
    elsewhere.code(3);
    assert!(elsewhere.stderr.contains("lanyard login --control-plane http://127.0.0.1:1"), "{elsewhere:?}");

    // logout drops cached tokens.
    env.run(&["logout"]).ok();
    assert!(!cache.exists());
}

/// A loopback "API server" over TLS (client-go runs exec plugins only for
/// TLS servers) that answers `/version` to requests with a bearer token and
/// records the tokens it saw. Returns its URL, its CA (PEM) and the tokens.
fn fake_apiserver() -> (String, String, Arc<Mutex<Vec<String>>>) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let ca_pem = cert.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                continue;
            };
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut reader = BufReader::new(&mut tls);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut auth = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("authorization")
                {
                    auth = value.trim().strip_prefix("Bearer ").map(str::to_owned);
                }
            }
            let ok = request_line.starts_with("GET /version") && auth.is_some();
            if let Some(token) = auth {
                record.lock().unwrap().push(token);
            }
            let (status, body) = if ok {
                ("200 OK", r#"{"major":"1","minor":"32","gitVersion":"v1.32.0-lanyard-test","platform":"linux/amd64"}"#)
            } else {
                ("401 Unauthorized", r#"{"kind":"Status","apiVersion":"v1","status":"Failure","code":401}"#)
            };
            let _ = write!(
                tls,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.flush();
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    (url, ca_pem, seen)
}

#[test]
fn kubectl_runs_the_exec_plugin_and_sends_the_minted_token() {
    let Fixture { app, admin } = Fixture::start();
    let (server, ca_pem, seen) = fake_apiserver();
    let created = app.post(
        "/api/v1/clusters",
        &admin,
        json!({"name": "prod", "kind": "standard", "proxy_url": server, "ca_pem": ca_pem}),
    );
    created.expect(201);
    let cluster = created.json["cluster"]["id"].as_str().unwrap().to_owned();
    let bob = app.sign_in("bob@acme.example", "acme");
    let env = Env::new();
    existing_kubeconfig(&env);

    // The newcomer's path: login, an admin grants view in a namespace, kubeconfig add, kubectl.
    env.login(&app, &bob);
    let admin_env = Env::logged_in(&app, &admin);
    admin_env.access_grant("prod", "bob@acme.example", "view", &["--namespace", "team-a"]).ok();
    env.run(&["cluster", "kubeconfig", "add", "prod", "--set-current"]).ok();
    let cache = token_cache::file(&env.cache_dir(), &app.url, &lanyard_core::ids::ClusterId::parse(&cluster).unwrap());
    assert!(!cache.exists());

    let out = kubectl(&env, &["get", "--raw", "/version"]);
    assert_eq!(out.code, 0, "{out:#?} seen {:?}", seen.lock().unwrap());
    assert!(out.stdout.contains("v1.32.0-lanyard-test"), "{out:?}");
    // The plugin ran (its cache exists) and kubectl sent exactly the token it minted.
    let cached = token_cache::reuse(&cache, &bob, unix_now(), 0).expect("the exec plugin cached its credential");
    let token = credential_token(&cached);
    let sent = seen.lock().unwrap().clone();
    assert!(!sent.is_empty() && sent.iter().all(|t| *t == token), "kubectl sent {sent:?}");
    // It is the control plane's: it verifies against the published keys, for this cluster.
    let jwks: Value = reqwest::blocking::get(format!("{}/.well-known/jwks.json", app.url)).unwrap().json().unwrap();
    let verified = lanyard_core::token::verify(
        &token,
        &jwks,
        &lanyard_core::ids::ClusterId::parse(&cluster).unwrap(),
        0,
        unix_now(),
    );
    assert!(verified.is_ok(), "the token kubectl sent does not verify: {verified:?}");
    let payload = lanyard_cli::config::decode_claims(&token).unwrap();
    assert_eq!(payload["aud"], cluster.as_str());

    // A second kubectl command reuses the cached token.
    kubectl(&env, &["get", "--raw", "/version"]).ok();
    assert!(seen.lock().unwrap().iter().all(|t| *t == token));
    assert!(Path::new(&env.kubeconfig).exists());
}

#[test]
fn cluster_arguments_cannot_reach_other_endpoints() {
    let ClusterFixture { app, admin, cluster, .. } = Fixture::start().with_cluster("prod");
    let bob = app.sign_in("bob@acme.example", "acme");
    app.grant_access(&admin, &cluster, "bob@acme.example", "view", Some("team-a"));
    let grant = app.grants(&admin, &cluster)[0]["id"].as_str().unwrap().to_owned();
    // The admin runs the exec plugin with a crafted --cluster (e.g. from a kubeconfig someone sent them).
    let env = Env::logged_in(&app, &admin);
    for crafted in [
        format!("{cluster}/../../../../api/v1/clusters/{cluster}/access/revoke-all?"),
        format!("{cluster}/../{cluster}/access/revoke-all#"),
        format!("{cluster}%2F..%2F..%2F{cluster}%2Faccess%2Frevoke-all"),
        "..".to_owned(),
        format!("{cluster}?x=1"),
    ] {
        let out = env.run(&["cluster", "token", "--control-plane", &app.url, "--cluster", &crafted]);
        assert_eq!(app.grants(&admin, &cluster).len(), 1, "{crafted:?} revoked the grants: {out:?}");
        out.code(2);
        assert!(out.stderr.contains("neither a cluster id") && out.stderr.contains("lanyard cluster list"), "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    // The same for the access commands' CLUSTER and GRANT_ID.
    let traversal = format!("{grant}/../../revoke-all");
    for args in [
        vec!["cluster", "access", "list", "prod/../x"],
        vec!["cluster", "access", "revoke-all", "prod/../prod", "--yes"],
        vec!["cluster", "access", "revoke", "prod", &traversal],
    ] {
        let out = env.run(&args);
        out.code(2);
        assert!(out.stderr.contains("lanyard cluster"), "{out:?}");
    }
    assert_eq!(app.grants(&admin, &cluster).len(), 1, "nothing was revoked");

    // A cluster name is resolved to its id.
    let member = Env::logged_in(&app, &bob);
    let out = member.run(&["cluster", "token", "--control-plane", &app.url, "--cluster", "prod"]);
    out.ok();
    let token = credential_token(&out.json());
    assert_eq!(lanyard_cli::config::decode_claims(&token).unwrap()["aud"], cluster.as_str());
    assert!(
        token_cache::file(&member.cache_dir(), &app.url, &lanyard_core::ids::ClusterId::parse(&cluster).unwrap())
            .exists()
    );
    member.run(&["cluster", "token", "--control-plane", &app.url, "--cluster", "nope"]).code(5);
}

#[test]
fn plain_http_only_to_loopback() {
    let ClusterFixture { app, admin, cluster, .. } = Fixture::start().with_cluster("prod");
    let env = Env::new();
    // Login refuses plain http to another host before sending the session anywhere.
    for url in ["http://lanyard.invalid:3000", "http://10.0.0.1:3000", "http://[::2]:3000"] {
        let out = env.run(&["login", "--control-plane", url, "--token", &admin]);
        out.code(2);
        assert!(out.stderr.contains("https://") && out.stderr.contains("plain http"), "{out:?}");
        assert!(!out.stderr.contains(&admin), "{out:?}");
        assert!(!env.config.exists());
    }
    // Loopback by name is fine.
    let port = app.url.rsplit(':').next().unwrap();
    let localhost = format!("http://localhost:{port}");
    env.run(&["login", "--control-plane", &localhost, "--token", &admin]).ok();
    env.run(&["login", "--control-plane", &app.url, "--token", &admin]).ok();

    // The exec plugin refuses it too (not merely "another control plane").
    let out = env.run(&["cluster", "token", "--control-plane", "http://lanyard.invalid", "--cluster", &cluster]);
    out.code(2);
    assert!(out.stderr.contains("https://") && out.stdout.is_empty(), "{out:?}");

    // A saved config that says plain http to another host is refused before any request.
    std::fs::write(
        &env.config,
        json!({"control_plane": "http://lanyard.invalid:3000", "session_token": admin}).to_string(),
    )
    .unwrap();
    let out = env.run(&["cluster", "list"]);
    out.code(2);
    assert!(out.stderr.contains("https://") && out.stderr.contains("log in again"), "{out:?}");
}

/// `body` (a kubeconfig) with its `--control-plane` argument replaced by `url`.
fn with_control_plane(body: &str, url: &str) -> String {
    let marker = "- \"--control-plane\"\n      - \"";
    let start = body.find(marker).unwrap_or_else(|| panic!("no --control-plane in {body}")) + marker.len();
    let end = start + body[start..].find('"').unwrap();
    format!("{}{url}{}", &body[..start], &body[end..])
}

#[test]
fn kubeconfig_add_merges_only_what_lanyard_writes() {
    let ClusterFixture { app, admin, cluster, .. } = Fixture::start().with_cluster("prod");
    let other = app.cluster(&admin, "other", "standard");
    let bob = app.sign_in("bob@acme.example", "acme");
    app.grant_access(&admin, &cluster, "bob@acme.example", "view", Some("team-a"));
    // Bob talks to the control plane through a proxy that plays a malicious one.
    let proxy = Proxy::start(&app.url);
    let env = Env::new();
    env.run(&["login", "--control-plane", &proxy.url, "--token", &bob]).ok();
    existing_kubeconfig(&env);
    let before = std::fs::read(&env.kubeconfig).unwrap();

    type Edit = Box<dyn Fn(&str) -> String + Send + Sync>;
    let edits: Vec<(&str, Edit)> = vec![
        ("another command", Box::new(|k| replace_once(k, "command: lanyard", "command: sh"))),
        ("another lanyard", Box::new(|k| replace_once(k, "command: lanyard", "command: /tmp/evil/lanyard"))),
        (
            "extra arguments",
            Box::new(|k| replace_once(k, "      - \"token\"\n", "      - \"token\"\n      - \"--debug-shell\"\n")),
        ),
        (
            "env",
            Box::new(|k| {
                replace_once(
                    k,
                    "interactiveMode: Never\n",
                    "interactiveMode: Never\n      env: [{name: LD_PRELOAD, value: /tmp/x.so}]\n",
                )
            }),
        ),
        ("interactive", Box::new(|k| replace_once(k, "interactiveMode: Never", "interactiveMode: Always"))),
        (
            "apiVersion",
            Box::new(|k| {
                replace_once(
                    k,
                    "apiVersion: client.authentication.k8s.io/v1\n",
                    "apiVersion: client.authentication.k8s.io/v1beta1\n",
                )
            }),
        ),
        ("another cluster's id", {
            let (cluster, other) = (cluster.clone(), other.clone());
            Box::new(move |k| k.replace(&cluster, &other))
        }),
        (
            "an existing user's name",
            Box::new(|k| {
                replace_once(k, "users:\n- name: \"lanyard-prod\"", "users:\n- name: \"kind-dev\"")
                    .replace("user: \"lanyard-prod\"", "user: \"kind-dev\"")
            }),
        ),
        (
            "a token next to the exec plugin",
            Box::new(|k| replace_once(k, "  user:\n    exec:", "  user:\n    token: planted\n    exec:")),
        ),
        (
            "an insecure cluster",
            Box::new(|k| replace_once(k, "    server:", "    insecure-skip-tls-verify: true\n    server:")),
        ),
    ];
    let proxy_url = proxy.url.clone();
    let honest = move |k: &str| with_control_plane(k, &proxy_url);
    let edits: Vec<(&str, Edit)> = edits
        .into_iter()
        .map(|(what, edit)| {
            let honest = honest.clone();
            (what, Box::new(move |k: &str| edit(&honest(k))) as Edit)
        })
        // The control plane's own kubeconfig says another control plane than the one Bob logged in to.
        .chain(std::iter::once(("another control plane", Box::new(|k: &str| k.to_owned()) as Edit)))
        .collect();
    for (what, edit) in edits {
        let edit = Arc::new(edit);
        let e = edit.clone();
        proxy.tamper(
            move |_, path, status, body| {
                if path.ends_with("/kubeconfig") && status == 200 { (status, e(&body)) } else { (status, body) }
            },
        );
        let out = env.run(&["cluster", "kubeconfig", "add", "prod", "--set-current"]);
        out.code(1);
        assert!(
            out.stderr.contains("unexpected kubeconfig") && out.stderr.contains("nothing was changed"),
            "{what}: {out:?}"
        );
        assert_eq!(std::fs::read(&env.kubeconfig).unwrap(), before, "{what}: the kubeconfig changed");
    }
    assert!(proxy.requests().iter().any(|r| r.ends_with("/kubeconfig")));

    // What Lanyard writes, for the control plane Bob logged in to, is merged.
    proxy.tamper(
        move |_, path, status, body| {
            if path.ends_with("/kubeconfig") && status == 200 { (status, honest(&body)) } else { (status, body) }
        },
    );
    env.run(&["cluster", "kubeconfig", "add", "prod"]).ok();
    let found = kubeconfig::lanyard_contexts(&kubeconfig::load(&env.kubeconfig).unwrap());
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].cluster_id.as_deref(), found[0].control_plane.as_deref()),
        (Some(cluster.as_str()), Some(proxy.url.as_str()))
    );
}

#[test]
fn human_output_escapes_control_characters() {
    let ClusterFixture { app, admin, cluster, credential } =
        Fixture::start().with_cluster("prod").with_member("bob@acme.example");
    let grant = app.grant_access(&admin, &cluster, "bob@acme.example", "view", Some("team-a"));
    app.post(&format!("/agent/v1/clusters/{cluster}/heartbeat"), &credential, json!({})).expect(200);
    // The agent reports a failure whose text would clear the screen, retitle the
    // terminal, ring the bell and overwrite the line.
    let hostile = "boom\u{1b}[2J\u{1b}]0;pwned\u{7}\rall good\u{9b}31m\u{202e}dlrow";
    app.post(
        &format!("/agent/v1/clusters/{cluster}/reports"),
        &credential,
        json!({"results": [{"grant_id": grant, "state": "failed", "error": hostile}]}),
    )
    .expect(200);
    let env = Env::logged_in(&app, &admin);

    for args in [
        vec!["cluster", "access", "list", "prod"],
        vec!["cluster", "access", "status", "prod"],
        vec!["cluster", "access", "status", "prod", "--wait", "--timeout", "5"],
    ] {
        let out = env.run(&args);
        assert!(raw_controls(&out.stdout).is_empty(), "{args:?}: {out:?}");
        assert!(raw_controls(&out.stderr).is_empty(), "{args:?}: {out:?}");
        assert!(
            out.stdout.contains(r"boom\u{1b}[2J\u{1b}]0;pwned\u{7}\rall good\u{9b}31m\u{202e}dlrow"),
            "{args:?}: {out:?}"
        );
    }
    // JSON stays exact.
    let json = env.run(&["-o", "json", "cluster", "access", "list", "prod"]).json();
    assert_eq!(json["grants"][0]["error"], hostile);

    // Names and error messages from the server, through a proxy that plays a hostile one.
    let proxy = Proxy::start(&app.url);
    let via = Env::new();
    via.run(&["login", "--control-plane", &proxy.url, "--token", &admin]).ok();
    proxy.tamper(|method, path, status, body| {
        if method == "GET" && path == "/api/v1/clusters" {
            (status, replace_once(&body, r#""name":"prod""#, r#""name":"pr\u001b[2Jod\r\u0007""#))
        } else {
            (status, body)
        }
    });
    // A cluster name that is no DNS-1123 label is not a Lanyard answer: the table refuses it,
    // saying so without echoing it; the JSON output passes the answer on exactly, escaped.
    let out = via.run(&["cluster", "list"]);
    out.code(1);
    assert!(raw_controls(&out.stdout).is_empty() && raw_controls(&out.stderr).is_empty(), "{out:?}");
    assert!(out.stderr.contains("unexpected cluster list"), "{out:?}");
    let json = via.run(&["-o", "json", "cluster", "list"]).json();
    assert_eq!(json["clusters"][0]["name"], "pr\u{1b}[2Jod\r\u{7}");
    proxy.tamper(|_method, path, status, body| {
        if path.ends_with("/access/grants") {
            (403, r#"{"error":{"code":"forbidden","message":"no\u001b[31m\r\nlanyard: all fine"}}"#.to_owned())
        } else {
            (status, body)
        }
    });
    let out = via.run(&["cluster", "access", "list", &cluster]);
    out.code(4);
    assert!(raw_controls(&out.stderr).is_empty(), "{out:?}");
    assert!(
        out.stderr.contains(r"no\u{1b}[31m\r\nlanyard: all fine")
            && !out.stderr.lines().any(|l| l.starts_with("lanyard: all fine")),
        "the server's message stays on its line: {out:?}"
    );
}
