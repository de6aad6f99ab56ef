//! Holes found in review and closed (issue 7), each over real HTTP through the
//! host and the real components: secrets are not cacheable, the agent API
//! authenticates before it reads a body, a client cannot supply route
//! parameters the route does not declare, deactivation ends access, and the
//! public JWKS component never sees a private key.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use lanyard_api_tests::{App, ClusterFixture, Fixture, Options, Resp, TestIssuer, repo_root};
use serde_json::json;

#[track_caller]
fn assert_no_store(r: &Resp, what: &str) {
    let header = |name: &str| r.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    assert_eq!(header("cache-control"), "no-store", "{what}: Cache-Control");
    assert_eq!(header("pragma"), "no-cache", "{what}: Pragma");
}

#[test]
fn every_response_that_carries_a_secret_is_not_cacheable() {
    let Fixture { app, admin } = Fixture::start();
    let registered = app.registration(&admin, "prod", "standard");
    registered.expect(201);
    assert_no_store(&registered, "registration (the agent credential)");
    let cluster = registered.json["cluster"]["id"].as_str().unwrap().to_owned();
    app.grant_access(&admin, &cluster, "admin@acme.example", "view", None);
    let minted = app.send("POST", &format!("/api/v1/clusters/{cluster}/k8s-token"), Some(&admin), None);
    minted.expect(200);
    assert_no_store(&minted, "k8s-token (the cluster token)");
    // The capabilities answer carries the CSRF value to cookie sessions.
    let caps = App::finish(
        app.request("GET", &format!("/org/clusters/{cluster}/access/capabilities"))
            .header("cookie", format!("lanyard_session={admin}")),
    );
    caps.expect(200);
    assert!(caps.json["csrf_token"].is_string());
    assert_no_store(&caps, "capabilities (the CSRF value)");
}

/// Send `head` and part of a body whose declared length is much larger, then
/// wait (up to `patience`) for the response's status line.
fn status_without_sending_the_body(app: &App, head: &str, patience: Duration) -> Option<String> {
    let addr = app.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(b"{\"results\": [").unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let deadline = Instant::now() + patience;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(2).any(|w| w == b"\r\n") {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(e) => panic!("reading the response: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&got);
    text.lines().next().filter(|l| l.starts_with("HTTP/")).map(str::to_owned)
}

#[test]
fn the_agent_api_refuses_a_wrong_credential_without_reading_the_body() {
    let ClusterFixture { app, cluster, credential, .. } = Fixture::start().with_cluster("prod");
    // A body of 512 KiB (within the agent limit) is announced, and never sent.
    let head = |auth: &str| {
        format!(
            "POST /agent/v1/clusters/{cluster}/reports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {auth}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            512 * 1024
        )
    };
    let refused = status_without_sending_the_body(&app, &head("lya_wrong"), Duration::from_secs(10));
    assert!(
        refused.as_deref().is_some_and(|l| l.contains(" 401")),
        "a wrong credential is answered at once, without waiting for the body: {refused:?}"
    );
    let unknown = head(&credential).replace(&cluster, "c_ffffffffffffffffffffffff");
    let refused = status_without_sending_the_body(&app, &unknown, Duration::from_secs(10));
    assert!(refused.as_deref().is_some_and(|l| l.contains(" 401")), "an unknown cluster too: {refused:?}");
    // The right credential does wait for the body (it is read only now).
    let waiting = status_without_sending_the_body(&app, &head(&credential), Duration::from_secs(1));
    assert_eq!(waiting, None, "an authenticated request waits for its body");
}

#[test]
fn a_client_cannot_supply_a_route_parameter_the_route_does_not_declare() {
    let Fixture { app, admin } = Fixture::start();
    app.sign_in("dev@acme.example", "acme");
    let dev = app.member_id(&admin, "dev@acme.example");
    let before = app.kv_snapshot();
    // `/api/v1/members` declares no `:member_id`; Spin passes a client's
    // `spin-path-match-member-id` header through, so only the route decides.
    let forged = App::finish(
        app.request("PATCH", "/api/v1/members")
            .bearer_auth(&admin)
            .header("spin-path-match-member-id", &dev)
            .header("content-type", "application/json")
            .body(json!({"status": "deactivated"}).to_string()),
    );
    forged.expect_error(405, "method_not_allowed");
    assert_eq!(app.kv_snapshot(), before, "nothing changed");
    let status = app.get("/api/v1/members", &admin).json["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == dev.as_str())
        .unwrap()["status"]
        .clone();
    assert_eq!(status, "active");
}

#[test]
fn deactivating_a_member_ends_their_access_and_reactivating_revives_nothing() {
    let ClusterFixture { app, admin, cluster, credential } = Fixture::start().with_cluster("prod");
    let dev = app.sign_in("dev@acme.example", "acme");
    app.grant_access(&admin, &cluster, "dev@acme.example", "edit", Some("team-a"));
    let dev_id = app.member_id(&admin, "dev@acme.example");
    let state = || {
        let r = app.send("GET", &format!("/agent/v1/clusters/{cluster}/state"), Some(&credential), None);
        r.expect(200);
        r.json["grants"].as_array().unwrap().len()
    };
    assert_eq!(state(), 1);
    let patch = |status: &str| app.patch_member(&admin, &dev_id, json!({"status": status}));
    patch("deactivated").expect(200);
    assert_eq!(state(), 0, "the agent removes the binding");
    assert!(app.grants(&admin, &cluster).is_empty(), "the grant is gone");
    patch("active").expect(200);
    assert_eq!(state(), 0, "reactivation does not revive the grant");
    let caps = app.get(&format!("/api/v1/clusters/{cluster}/access/capabilities"), &dev);
    caps.expect(200);
    assert_eq!(caps.json["has_access"], false);
    app.send("POST", &format!("/api/v1/clusters/{cluster}/k8s-token"), Some(&dev), None).expect_error(403, "forbidden");
}

#[test]
fn only_the_minting_component_receives_the_private_signing_keys() {
    let manifest: toml::Table = std::fs::read_to_string(repo_root().join("spin.toml")).unwrap().parse().unwrap();
    let components = manifest["component"].as_table().unwrap();
    let holders: Vec<&str> = components
        .iter()
        .filter(|(_, c)| c.get("variables").and_then(|v| v.get("token_signing_keys")).is_some())
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(holders, ["k8s-token"], "token_signing_keys reaches only the component that signs");
    let jwks_vars: Vec<&String> = components["jwks"]["variables"].as_table().unwrap().keys().collect();
    assert_eq!(jwks_vars, ["access_gateway_enabled", "token_jwks"]);
}

#[test]
fn the_jwks_serves_the_configured_public_keys_and_a_mint_needs_its_key_published() {
    let signing = format!("[{}]", lanyard_core::dev::new_key(&lanyard_core::random::SystemRandom).unwrap().to_jwk());
    let other = format!("[{}]", lanyard_core::dev::new_key(&lanyard_core::random::SystemRandom).unwrap().to_jwk());
    // The published keys are not the signer's: minting fails closed.
    let ClusterFixture { app, admin, cluster, .. } = Fixture::start_with(Options {
        extra: vec![
            ("token_signing_keys".into(), signing.clone()),
            ("token_jwks".into(), lanyard_api_tests::public_jwks(&other)),
        ],
        ..Options::default()
    })
    .with_cluster("prod");
    app.grant_access(&admin, &cluster, "admin@acme.example", "view", None);
    let jwks = app.send("GET", "/.well-known/jwks.json", None, None);
    jwks.expect(200);
    assert_eq!(jwks.json.to_string(), lanyard_api_tests::public_jwks(&other), "exactly what token_jwks says");
    app.send("POST", &format!("/api/v1/clusters/{cluster}/k8s-token"), Some(&admin), None)
        .expect_error(503, "unavailable");
    // A private key put in token_jwks is never published.
    let leaky = App::start_with(Options {
        extra: vec![("token_jwks".into(), format!(r#"{{"keys":{signing}}}"#))],
        ..Options::default()
    });
    let r = leaky.send("GET", "/.well-known/jwks.json", None, None);
    r.expect_error(503, "unavailable");
    assert!(!r.body.contains("\"d\""), "{}", r.body);
}

#[test]
fn outside_development_mode_a_kubeconfig_needs_the_public_url() {
    // A production deployment: a real issuer, no development issuer, no public_url.
    let idp = TestIssuer::new("https://idp.acme.example");
    let production = |extra: Vec<(String, String)>| {
        let mut vars = vec![
            ("session_issuers".to_owned(), json!([idp.entry(json!({"org": "acme"}))]).to_string()),
            ("development_mode".to_owned(), "false".to_owned()),
        ];
        vars.extend(extra);
        App::start_with(Options { extra: vars, ..Options::default() })
    };
    let app = production(Vec::new());
    let admin = idp.token("admin@acme.example", "acme", true);
    let cluster = app.cluster(&admin, "prod", "standard");
    app.grant_access(&admin, &cluster, "admin@acme.example", "view", None);
    let refused = app.get(&format!("/api/v1/clusters/{cluster}/kubeconfig"), &admin);
    refused.expect_error(503, "not_configured");
    assert!(refused.json["error"]["message"].as_str().unwrap().contains("public_url"), "{}", refused.body);
    // With public_url set, the kubeconfig names it, whatever the request said.
    let app = production(vec![("public_url".into(), "https://lanyard.acme.example".into())]);
    let cluster = app.cluster(&admin, "prod", "standard");
    app.grant_access(&admin, &cluster, "admin@acme.example", "view", None);
    let served = app.get(&format!("/api/v1/clusters/{cluster}/kubeconfig"), &admin);
    served.expect(200);
    assert!(served.body.contains("https://lanyard.acme.example"), "{}", served.body);
}

#[test]
fn session_configuration_reaches_exactly_the_components_that_verify_sessions() {
    let manifest: toml::Table = std::fs::read_to_string(repo_root().join("spin.toml")).unwrap().parse().unwrap();
    // The agent API authenticates agents; the JWKS, the not-found route and sign-out nobody.
    let sessionless =
        ["agent-heartbeat", "agent-jobs", "agent-reports", "agent-state", "jwks", "not-found", "auth-logout", "portal"];
    for (name, component) in manifest["component"].as_table().unwrap() {
        let vars = component.get("variables").and_then(|v| v.as_table());
        let has = |var: &str| vars.is_some_and(|v| v.contains_key(var));
        if sessionless.contains(&name.as_str()) {
            assert!(!has("session_issuers"), "component {name} verifies no session but receives session_issuers");
        } else {
            assert!(has("session_issuers"), "component {name} cannot verify sessions");
            // Without it the component would refuse the local run's issuer.
            assert!(has("development_mode"), "component {name} verifies sessions without development_mode");
        }
    }
}
