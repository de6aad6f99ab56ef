//! Cluster registration and listing, and the member directory.

use lanyard_api_tests::App;
use serde_json::{Value, json};

#[test]
fn registering_a_cluster_returns_its_agent_credential_once() {
    let app = App::start();
    let admin = app.admin("acme");
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
    let app = App::start();
    let admin = app.admin("acme");
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
    let app = App::start();
    let admin = app.admin("acme");
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
    let patch = |id: &str, body: Value| app.send("PATCH", &format!("/api/v1/members/{id}"), Some(&admin), Some(&body));
    patch(me["id"].as_str().unwrap(), json!({"status": "deactivated"})).expect_error(422, "validation_failed");
    patch(carol["id"].as_str().unwrap(), json!({"status": "gone"})).expect_error(422, "validation_failed");
    patch("m_ffffffffffffffffffffffff", json!({"status": "deactivated"})).expect_error(404, "not_found");
    let r = patch(carol["id"].as_str().unwrap(), json!({"status": "deactivated"}));
    r.expect(200);
    assert_eq!(r.json["status"], "deactivated");
}
