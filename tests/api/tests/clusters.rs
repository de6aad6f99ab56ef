//! Cluster registration, listing and deletion, agent-credential rotation, and
//! the member directory.

use lanyard_api_tests::{App, ClusterFixture, Fixture, unix_now};
use lanyard_core::ids::ClusterId;
use lanyard_core::token::{self, TokenError};
use serde_json::{Value, json};

#[test]
fn registering_a_cluster_returns_its_agent_credential_once() {
    let Fixture { app, admin } = Fixture::start();
    let r = app.post(
        "/api/v1/clusters",
        &admin,
        json!({"name": "prod-eu", "kind": "standard", "proxy_url": "https://proxy.prod-eu.example:8443",
               "ca_pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}),
    );
    r.expect(201);
    let credential = r.json["agent_credential"].as_str().unwrap().to_owned();
    assert!(credential.starts_with("lya_") && credential.len() > 40);
    assert_eq!(r.json["cluster"]["name"], "prod-eu");
    assert_eq!(r.json["cluster"]["agent"]["online"], false);

    let listed = app.get("/api/v1/clusters", &admin);
    listed.expect(200);
    assert!(!listed.body.contains(&credential), "the credential is shown once only");
    assert!(!listed.body.contains("credential_hash"));
    assert_eq!(listed.json["clusters"].as_array().unwrap().len(), 1);
    // Nor is it in the store.
    let stored = app.kv_snapshot();
    assert!(stored.iter().all(|(_, _, v)| !String::from_utf8_lossy(v).contains(&credential)));
}

#[test]
fn registration_validates_every_field() {
    let Fixture { app, admin } = Fixture::start();
    let ok = json!({"name": "prod", "proxy_url": "https://p.example"});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    let cases = [
        (json!({"proxy_url": "https://p.example"}), "name"),
        (with("name", json!("Prod")), "name"),
        (with("name", json!("a".repeat(64))), "name"),
        (with("kind", json!("huge")), "kind"),
        (json!({"name": "prod"}), "proxy_url"),
        (with("proxy_url", json!("ftp://p.example")), "proxy_url"),
        (with("proxy_url", json!("http://p.example")), "proxy_url"),
        (with("proxy_url", json!("https://")), "proxy_url"),
        (with("proxy_url", json!("https://user:pw@p.example")), "proxy_url"),
        (with("proxy_url", json!("https://p.example/ x")), "proxy_url"),
        (with("ca_pem", json!("not a certificate")), "ca_pem"),
        // Accepted before (schemathesis): a port with a sign, leading zeros or none after the
        // colon, a non-ASCII URL, non-ASCII PEM text.
        (with("proxy_url", json!("https://p.example:+443")), "proxy_url"),
        (with("proxy_url", json!("https://p.example:0443")), "proxy_url"),
        (with("proxy_url", json!("http://[::1]:")), "proxy_url"),
        (with("proxy_url", json!("https://p.example/caf\u{e9}")), "proxy_url"),
        (with("ca_pem", json!("-----BEGIN CERTIFICATE-----\n\u{e9}\n-----END CERTIFICATE-----\n")), "ca_pem"),
    ];
    for (body, field) in cases {
        let r = app.post("/api/v1/clusters", &admin, body.clone());
        r.expect_error(422, "validation_failed");
        assert_eq!(r.field(), field, "{body}");
    }
    app.post("/api/v1/clusters", &admin, with("proxy_url", json!("http://127.0.0.1:8443"))).expect(201);
    let dup = app.post("/api/v1/clusters", &admin, with("proxy_url", json!("https://other.example")));
    dup.expect_error(409, "duplicate_cluster");
    // Names are per organisation.
    app.post("/api/v1/clusters", &app.admin("globex"), ok).expect(201);
}

#[test]
fn the_directory_invites_lists_and_deactivates() {
    let Fixture { app, admin } = Fixture::start();
    app.post("/api/v1/members", &admin, json!({"email": "Carol@Acme.example"})).expect(201);
    app.post("/api/v1/members", &admin, json!({"email": "carol@acme.example"})).expect_error(409, "member_exists");
    app.post("/api/v1/members", &admin, json!({"email": "nope"})).expect_error(422, "validation_failed");
    app.sign_in("carol@acme.example", "acme");
    let list = app.get("/api/v1/members", &admin);
    list.expect(200);
    let members = list.json["members"].as_array().unwrap();
    let carol = members.iter().find(|m| m["email"] == "carol@acme.example").unwrap();
    assert_eq!(carol["status"], "active");
    let me = members.iter().find(|m| m["email"] == "admin@acme.example").unwrap();
    let patch = |id: &str, body: Value| app.patch_member(&admin, id, body);
    patch(me["id"].as_str().unwrap(), json!({"status": "deactivated"})).expect_error(422, "validation_failed");
    patch(carol["id"].as_str().unwrap(), json!({"status": "gone"})).expect_error(422, "validation_failed");
    patch("m_ffffffffffffffffffffffff", json!({"status": "deactivated"})).expect_error(404, "not_found");
    let r = patch(carol["id"].as_str().unwrap(), json!({"status": "deactivated"}));
    r.expect(200);
    assert_eq!(r.json["status"], "deactivated");
}

// ----- deletion and agent-credential rotation --------------------------------

/// The counter at `key` in the store (counters are 8 little-endian bytes).
fn counter(app: &App, key: &str) -> i64 {
    app.kv_snapshot()
        .into_iter()
        .find(|(_, k, _)| k == key)
        .map_or(0, |(_, _, v)| i64::from_le_bytes(v.as_slice().try_into().expect("a counter")))
}

/// Every user-facing endpoint of a cluster, as (method, path).
fn cluster_endpoints(cluster: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for base in [format!("/org/clusters/{cluster}/access"), format!("/api/v1/clusters/{cluster}/access")] {
        out.push(("GET", format!("{base}/capabilities")));
        out.push(("GET", format!("{base}/members")));
        out.push(("GET", format!("{base}/grants")));
        out.push(("POST", format!("{base}/grants")));
        out.push(("DELETE", format!("{base}/grants/g_ffffffffffffffffffffffff")));
        out.push(("POST", format!("{base}/revoke-all")));
    }
    out.push(("POST", format!("/org/clusters/{cluster}/access/kubeconfig")));
    out.push(("GET", format!("/api/v1/clusters/{cluster}/kubeconfig")));
    out.push(("POST", format!("/api/v1/clusters/{cluster}/k8s-token")));
    out.push(("POST", format!("/api/v1/clusters/{cluster}/agent-credential")));
    out.push(("DELETE", format!("/api/v1/clusters/{cluster}")));
    out
}

/// Every agent endpoint of a cluster, as (method, path, body).
fn agent_endpoints(cluster: &str) -> Vec<(&'static str, String, Option<Value>)> {
    let agent = |p: &str| format!("/agent/v1/clusters/{cluster}/{p}");
    vec![
        ("POST", agent("heartbeat"), Some(json!({}))),
        ("POST", agent("jobs/lease"), Some(json!({}))),
        ("POST", agent("jobs/ack"), Some(json!({"through": 0}))),
        ("POST", agent("reports"), Some(json!({"results": []}))),
        ("GET", agent("state"), None),
    ]
}

#[test]
fn deleting_a_cluster_ends_its_grants_credential_and_tokens() {
    let ClusterFixture { app, admin, cluster: prod, credential } = Fixture::start().with_cluster("prod");
    let staging = app.cluster(&admin, "staging", "standard");
    let dev = app.sign_in("dev@acme.example", "acme");
    app.grant_access(&admin, &prod, "dev@acme.example", "edit", None);
    let minted = app.send("POST", &format!("/api/v1/clusters/{prod}/k8s-token"), Some(&dev), None);
    minted.expect(200);
    let token = minted.json["status"]["token"].as_str().unwrap().to_owned();
    let epoch_key = format!("v1/cluster/{prod}/epoch");
    assert!(
        token::verify(&token, &app.jwks(), &ClusterId::parse(&prod).unwrap(), counter(&app, &epoch_key), unix_now())
            .is_ok()
    );
    app.post(&format!("/agent/v1/clusters/{prod}/heartbeat"), &credential, json!({})).expect(200);

    // Members may not, other organisations do not see it; nothing changes.
    let globex = app.admin("globex");
    app.get("/api/v1/clusters", &globex).expect(200);
    let before = app.kv_snapshot();
    app.delete(&format!("/api/v1/clusters/{prod}"), &dev).expect_error(403, "forbidden");
    app.delete(&format!("/api/v1/clusters/{prod}"), &globex).expect_error(404, "not_found");
    app.delete("/api/v1/clusters/c_ffffffffffffffffffffffff", &admin).expect_error(404, "not_found");
    app.delete("/api/v1/clusters/not-an-id", &admin).expect_error(404, "not_found");
    assert_eq!(app.kv_snapshot(), before, "refused deletes change nothing");

    let r = app.delete(&format!("/api/v1/clusters/{prod}"), &admin);
    r.expect(204);
    assert!(r.body.is_empty());

    // Gone from the list, and every endpoint of it is 404, for admins and members alike.
    let listed = app.get("/api/v1/clusters", &admin);
    let ids: Vec<&str> =
        listed.json["clusters"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [staging.as_str()]);
    for (method, path) in cluster_endpoints(&prod) {
        for caller in [&admin, &dev] {
            let body = (method == "POST").then(|| json!({}));
            app.send(method, &path, Some(caller), body.as_ref()).expect_error(404, "not_found");
        }
    }
    // Its agent is refused everywhere.
    for (method, path, body) in agent_endpoints(&prod) {
        app.send(method, &path, Some(&credential), body.as_ref()).expect_error(401, "unauthenticated");
    }
    // Tokens minted for it are refused by the epoch check (revoke-all).
    assert_eq!(
        token::verify(&token, &app.jwks(), &ClusterId::parse(&prod).unwrap(), counter(&app, &epoch_key), unix_now()),
        Err(TokenError::Revoked)
    );
    // The other cluster is untouched.
    app.get(&format!("/api/v1/clusters/{staging}/access/grants"), &admin).expect(200);

    // The name can be registered again, as a new cluster that inherits nothing.
    let (again, new_credential) = app.register(&admin, "prod", "standard");
    assert_ne!(again, prod, "a re-registered name gets a fresh id");
    assert!(app.grants(&admin, &again).is_empty(), "no grant of the old cluster");
    for (method, path, body) in agent_endpoints(&again) {
        app.send(method, &path, Some(&credential), body.as_ref()).expect_error(401, "unauthenticated");
        app.send(method, &path, Some(&new_credential), body.as_ref()).expect(200);
    }
    let epoch = counter(&app, &format!("v1/cluster/{again}/epoch"));
    assert_eq!(
        token::verify(&token, &app.jwks(), &ClusterId::parse(&again).unwrap(), epoch, unix_now()),
        Err(TokenError::WrongCluster)
    );
    app.send("POST", &format!("/api/v1/clusters/{again}/k8s-token"), Some(&dev), None).expect_error(403, "forbidden");
    app.send("POST", &format!("/api/v1/clusters/{prod}/k8s-token"), Some(&dev), None).expect_error(404, "not_found");
    let listed = app.get("/api/v1/clusters", &admin);
    assert_eq!(listed.json["clusters"].as_array().unwrap().len(), 2);
    // And it can be deleted and registered once more.
    app.delete(&format!("/api/v1/clusters/{again}"), &admin).expect(204);
    let (third, _) = app.register(&admin, "prod", "standard");
    assert!(third != again && third != prod);
}

#[test]
fn deleting_a_cluster_survives_a_restart_and_a_cookie_needs_csrf() {
    let ClusterFixture { mut app, admin, cluster: prod, credential } = Fixture::start().with_cluster("prod");
    // A cookie-authenticated delete without the CSRF header is refused.
    let r = App::finish(
        app.request("DELETE", &format!("/api/v1/clusters/{prod}")).header("cookie", format!("lanyard_session={admin}")),
    );
    r.expect_error(403, "csrf_required");
    app.delete(&format!("/api/v1/clusters/{prod}"), &admin).expect(204);
    app.restart();
    app.get(&format!("/api/v1/clusters/{prod}/access/grants"), &admin).expect_error(404, "not_found");
    app.get(&format!("/agent/v1/clusters/{prod}/state"), &credential).expect_error(401, "unauthenticated");
    app.post("/api/v1/clusters", &admin, json!({"name": "prod", "proxy_url": "https://p.example"})).expect(201);
    app.post("/api/v1/clusters", &admin, json!({"name": "prod", "proxy_url": "https://p.example"}))
        .expect_error(409, "duplicate_cluster");
}

fn rotate(app: &App, admin: &str, cluster: &str, body: Option<Value>) -> lanyard_api_tests::Resp {
    app.send("POST", &format!("/api/v1/clusters/{cluster}/agent-credential"), Some(admin), body.as_ref())
}

/// Whether `credential` authenticates on the cluster's agent API.
fn works(app: &App, cluster: &str, credential: &str) -> bool {
    let r = app.get(&format!("/agent/v1/clusters/{cluster}/state"), credential);
    match r.status {
        200 => true,
        401 => false,
        other => panic!("agent state answered {other}: {}", r.body),
    }
}

#[test]
fn rotating_the_agent_credential_keeps_the_old_one_until_the_new_one_is_used() {
    let ClusterFixture { app, admin, cluster: prod, credential: old } = Fixture::start().with_cluster("prod");
    let other = app.cluster(&admin, "other", "standard");
    let member = app.sign_in("dev@acme.example", "acme");
    assert!(works(&app, &prod, &old));

    rotate(&app, &member, &prod, None).expect_error(403, "forbidden");
    rotate(&app, &app.admin("globex"), &prod, None).expect_error(404, "not_found");
    rotate(&app, &admin, "c_ffffffffffffffffffffffff", None).expect_error(404, "not_found");

    let started = unix_now();
    let r = rotate(&app, &admin, &prod, None);
    r.expect(201);
    let header = |name: &str| r.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert_eq!(header("cache-control"), "no-store", "the credential is not cacheable");
    assert_eq!(header("pragma"), "no-cache");
    let new = r.json["agent_credential"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let until = r.json["previous_valid_until"].as_str().unwrap();
    let expected = [started + 3600, started + 3601, unix_now() + 3600].map(lanyard_core::ids::rfc3339);
    assert!(expected.iter().any(|e| e == until), "the old credential is valid for an hour: {until}");
    assert!(
        app.kv_snapshot().iter().all(|(_, _, v)| !String::from_utf8_lossy(v).contains(&new)),
        "never stored in clear"
    );
    assert!(!works(&app, &other, &new), "worthless on another cluster");

    // Both work until the agent uses the new one; from then on only the new one.
    assert!(works(&app, &prod, &old), "the old credential still works");
    assert!(works(&app, &prod, &old), "and again");
    assert!(works(&app, &prod, &new));
    assert!(!works(&app, &prod, &old), "retired once the agent used the new one");
    assert!(works(&app, &prod, &new));
    let refused = app.get(&format!("/agent/v1/clusters/{prod}/state"), &old);
    assert!(refused.json["error"]["message"].as_str().unwrap().contains("rotated"), "{}", refused.body);

    // With previous_valid_for_seconds 0 (a leaked credential) the old one is refused at once.
    let r = rotate(&app, &admin, &prod, Some(json!({"previous_valid_for_seconds": 0})));
    r.expect(201);
    let newest = r.json["agent_credential"].as_str().unwrap().to_owned();
    assert!(!works(&app, &prod, &new), "refused at once");
    assert!(works(&app, &prod, &newest));
}

#[test]
fn a_replaced_agent_credential_expires_at_its_deadline() {
    let ClusterFixture { app, admin, cluster: prod, credential: old } = Fixture::start().with_cluster("prod");
    let r = rotate(&app, &admin, &prod, Some(json!({"previous_valid_for_seconds": 1})));
    r.expect(201);
    let new = r.json["agent_credential"].as_str().unwrap().to_owned();
    // The new credential is never used, so only the deadline can retire the old one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while works(&app, &prod, &old) {
        assert!(std::time::Instant::now() < deadline, "the old credential outlived its deadline");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(works(&app, &prod, &new));
}

#[test]
fn rotation_validates_its_body_and_changes_nothing_when_refused() {
    let ClusterFixture { app, admin, cluster: prod, credential: old } = Fixture::start().with_cluster("prod");
    let before = app.kv_snapshot();
    for (body, status, code) in [
        (json!({"previous_valid_for_seconds": -1}), 422, "validation_failed"),
        (json!({"previous_valid_for_seconds": 86401}), 422, "validation_failed"),
        (json!({"previous_valid_for_seconds": "60"}), 400, "malformed_request"),
        (json!({"previous_valid_for_seconds": 1.5}), 400, "malformed_request"),
        (json!({"grace": 60}), 400, "malformed_request"),
        (json!([]), 400, "malformed_request"),
    ] {
        let r = rotate(&app, &admin, &prod, Some(body.clone()));
        r.expect_error(status, code);
        if status == 422 {
            assert_eq!(r.field(), "previous_valid_for_seconds", "{body}");
        }
    }
    let text = App::finish(
        app.request("POST", &format!("/api/v1/clusters/{prod}/agent-credential"))
            .bearer_auth(&admin)
            .header("content-type", "text/plain")
            .body("x"),
    );
    text.expect_error(415, "unsupported_media_type");
    assert_eq!(app.kv_snapshot(), before, "refused rotations change nothing");
    assert!(works(&app, &prod, &old));
    // An empty body takes the defaults; so does `{}`.
    rotate(&app, &admin, &prod, None).expect(201);
    rotate(&app, &admin, &prod, Some(json!({}))).expect(201);
    rotate(&app, &admin, &prod, Some(json!({"previous_valid_for_seconds": 86400}))).expect(201);
}

#[test]
fn concurrent_rotations_leave_exactly_one_current_credential() {
    let ClusterFixture { app, admin, cluster: prod, credential: old } = Fixture::start().with_cluster("prod");
    let barrier = std::sync::Barrier::new(6);
    let credentials: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let (app, admin, prod, barrier) = (&app, &admin, &prod, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let r = rotate(app, admin, prod, None);
                    r.expect(201);
                    r.json["agent_credential"].as_str().unwrap().to_owned()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let distinct: std::collections::BTreeSet<&String> = credentials.iter().collect();
    assert_eq!(distinct.len(), 6);
    // Before the agent uses any, every one works (the old one too: each is within its deadline).
    // Trying them all in turn leaves the newest as the one that worked last ...
    assert!(works(&app, &prod, &old));
    let mut newest_works = false;
    for c in &credentials {
        newest_works = works(&app, &prod, c) || newest_works;
    }
    assert!(newest_works);
    // ... and from then on exactly one credential works, whatever the order of the rotations.
    let working: Vec<&String> = credentials.iter().filter(|c| works(&app, &prod, c)).collect();
    assert_eq!(working.len(), 1, "exactly one current credential");
    assert!(!works(&app, &prod, &old));
    assert!(works(&app, &prod, working[0]));
}

/// The CA the cluster listing shows for `id`.
fn listed_ca(app: &App, admin: &str, id: &str) -> Option<String> {
    let listed = app.get("/api/v1/clusters", admin);
    let cluster = listed.json["clusters"].as_array().unwrap().iter().find(|c| c["id"] == id).cloned().unwrap();
    cluster["ca_pem"].as_str().map(str::to_owned)
}

#[test]
fn a_proxy_publishes_its_certificate_by_heartbeat_and_a_registered_ca_wins() {
    use base64::Engine as _;
    let ClusterFixture { app, admin, cluster, credential } = Fixture::start().with_cluster("prod");
    let beat = |id: &str, credential: &str, body: Value| {
        app.post(&format!("/agent/v1/clusters/{id}/heartbeat"), credential, body)
    };
    beat(&cluster, &credential, json!({})).expect(200);
    let before = app.kv_snapshot();
    beat(&cluster, &credential, json!({"proxy_ca_pem": "not a certificate"})).expect_error(422, "validation_failed");
    let huge = format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", "A".repeat(17 * 1024));
    let refused = beat(&cluster, &credential, json!({"proxy_ca_pem": huge}));
    refused.expect_error(422, "validation_failed");
    assert_eq!(refused.field(), "proxy_ca_pem");
    // PEM is ASCII (16 KiB of it is then 16 KiB in characters, as openapi.yaml says).
    let accented = "-----BEGIN CERTIFICATE-----\n\u{e9}\n-----END CERTIFICATE-----\n";
    beat(&cluster, &credential, json!({"proxy_ca_pem": accented})).expect_error(422, "validation_failed");
    assert_eq!(app.kv_snapshot(), before, "a refused heartbeat changes nothing");
    assert_eq!(listed_ca(&app, &admin, &cluster), None);

    let pem = "-----BEGIN CERTIFICATE-----\nMIIBpublished\n-----END CERTIFICATE-----\n";
    beat(&cluster, &credential, json!({"version": "0.1.0", "proxy_ca_pem": pem})).expect(200);
    assert_eq!(listed_ca(&app, &admin, &cluster).as_deref(), Some(pem), "the listing carries it");
    let dev = app.sign_in("dev@acme.example", "acme");
    app.grant_access(&admin, &cluster, "dev@acme.example", "view", Some("team-a"));
    let kubeconfig = app.get(&format!("/api/v1/clusters/{cluster}/kubeconfig"), &dev);
    kubeconfig.expect(200);
    let data = base64::engine::general_purpose::STANDARD.encode(pem);
    assert!(kubeconfig.body.contains(&format!("certificate-authority-data: \"{data}\"")), "{}", kubeconfig.body);

    // A CA the admin registered beats the agent's word.
    let registered = "-----BEGIN CERTIFICATE-----\nMIIBregistered\n-----END CERTIFICATE-----\n";
    let body =
        json!({"name": "staging", "kind": "standard", "proxy_url": "https://proxy.example:8443", "ca_pem": registered});
    let resp = app.post("/api/v1/clusters", &admin, body);
    resp.expect(201);
    let staging = resp.json["cluster"]["id"].as_str().unwrap().to_owned();
    let staging_credential = resp.json["agent_credential"].as_str().unwrap().to_owned();
    beat(&staging, &staging_credential, json!({"proxy_ca_pem": pem})).expect(200);
    assert_eq!(listed_ca(&app, &admin, &staging).as_deref(), Some(registered));
}
