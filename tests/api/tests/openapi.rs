//! The OpenAPI document, `openapi.yaml`: it is well-formed, it lists exactly
//! the routes of spin.toml, its twins agree, the check the harness runs on
//! every response refuses what the document does not say, and every method at
//! every path answers as documented.

use std::collections::BTreeSet;

use lanyard_api_tests::openapi::{self, Spec};
use lanyard_api_tests::{App, ClusterFixture, Fixture, Options, repo_root};
use lanyard_host::Manifest;
use reqwest::header::{ALLOW, CONTENT_TYPE, HeaderMap};
use serde_json::{Value, json};

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Every `(json pointer, value)` in the document.
fn walk<'a>(value: &'a Value, at: String, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            map.iter().for_each(|(k, v)| walk(v, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out))
        }
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| walk(v, format!("{at}/{i}"), out)),
        _ => {}
    }
    out.push((at, value));
}

/// The methods the document lists at a path template, upper case.
fn documented_methods(spec: &Spec, template: &str) -> BTreeSet<String> {
    let item = &spec.doc()["paths"][template];
    METHODS.iter().filter(|m| item.get(**m).is_some()).map(|m| m.to_ascii_uppercase()).collect()
}

fn operations(spec: &Spec) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for template in spec.paths() {
        for method in METHODS {
            if let Some(op) = spec.doc()["paths"][template].get(method) {
                out.push((format!("{} {template}", method.to_ascii_uppercase()), op));
            }
        }
    }
    out
}

#[test]
fn the_document_parses_and_is_consistent() {
    let spec = Spec::load(&repo_root().join("openapi.yaml")).expect("openapi.yaml loads");
    let doc = spec.doc();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "OpenAPI 3.1: {}", doc["openapi"]);
    let mut all = Vec::new();
    walk(doc, String::new(), &mut all);

    // Every $ref resolves.
    for (at, value) in &all {
        if let Some(reference) = value.get("$ref").and_then(Value::as_str) {
            spec.pointer(reference).unwrap_or_else(|e| panic!("{at}: {e}"));
        }
    }
    // Every named schema is a valid 2020-12 schema, and every media type's schema compiles.
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        if let Err(e) = jsonschema::draft202012::meta::validate(schema) {
            panic!("components/schemas/{name} is not a valid JSON Schema 2020-12: {e}");
        }
    }
    let mut media_types = 0;
    for (at, value) in &all {
        for (media, content) in value.get("content").and_then(Value::as_object).into_iter().flatten() {
            spec.validator(&content["schema"]).unwrap_or_else(|e| panic!("{at}/content/{media}: {e}"));
            media_types += 1;
            // Examples of a media type match its schema.
            for (name, example) in content.get("examples").and_then(Value::as_object).into_iter().flatten() {
                spec.validate(&content["schema"], &example["value"])
                    .unwrap_or_else(|e| panic!("{at}/content/{media}/examples/{name}: {e}"));
            }
        }
    }
    assert!(media_types > 20, "only {media_types} media types found");

    // Operation ids are unique; every operation but the public ones (`security: []`,
    // the JWKS) authenticates and can fail with 401; every one can fail with 503.
    let ops = operations(&spec);
    let ids: BTreeSet<&str> = ops.iter().map(|(_, op)| op["operationId"].as_str().expect("an operationId")).collect();
    assert_eq!(ids.len(), ops.len(), "operationIds are unique");
    for (what, op) in &ops {
        let statuses: &[&str] = if is_public(op) { &["503"] } else { &["401", "503"] };
        for status in statuses {
            assert!(op["responses"].get(status).is_some(), "{what} does not document {status}");
        }
        for status in op["responses"].as_object().unwrap().keys() {
            assert!(
                status.len() == 3 && status.bytes().all(|b| b.is_ascii_digit()),
                "{what}: status {status} (use exact codes)"
            );
        }
    }
    // Every path has an answer for the methods it does not serve, and the catch-all has one.
    for template in spec.paths() {
        let other = spec.resolve(&doc["paths"][template]["x-other-methods"]).unwrap();
        assert!(other["responses"]["405"].is_object(), "{template}: x-other-methods has no 405");
    }
    assert!(spec.resolve(&doc["x-unknown-paths"]).unwrap()["responses"]["404"].is_object());
}

#[test]
fn the_documented_paths_are_exactly_the_routes_of_spin_toml() {
    let manifest = Manifest::load(&repo_root().join("spin.toml")).expect("spin.toml loads");
    let routes: BTreeSet<String> = manifest
        .triggers
        .iter()
        .filter(|t| t.route != "/...")
        .map(|t| {
            t.route
                .split('/')
                .map(|s| s.strip_prefix(':').map_or(s.to_owned(), |p| format!("{{{p}}}")))
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect();
    assert!(manifest.triggers.iter().any(|t| t.route == "/..."), "spin.toml has the catch-all route");
    let documented: BTreeSet<String> = openapi::spec().paths().map(str::to_owned).collect();
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routes).collect();
    assert!(undocumented.is_empty(), "routes of spin.toml that openapi.yaml does not document: {undocumented:?}");
    assert!(unrouted.is_empty(), "paths in openapi.yaml that spin.toml does not route: {unrouted:?}");
}

#[test]
fn portal_and_api_twins_are_documented_alike() {
    let spec = openapi::spec();
    let mut twins = 0;
    for portal in spec.paths().filter(|p| p.starts_with("/org/clusters/{cluster_id}/access/")) {
        // The kubeconfig's API twin has no `/access` (api.md): `/api/v1/clusters/{id}/kubeconfig`.
        let mut api = portal.replacen("/org/clusters/", "/api/v1/clusters/", 1);
        if spec.doc()["paths"].get(&api).is_none() {
            api = api.replacen("/access/", "/", 1);
        }
        let strip = |template: &str| {
            let mut item = spec.doc()["paths"][template].clone();
            for method in METHODS {
                if let Some(op) = item.get_mut(method).and_then(Value::as_object_mut) {
                    op.remove("operationId");
                }
            }
            item
        };
        assert!(spec.doc()["paths"].get(&api).is_some(), "{portal} has no twin {api}");
        assert_eq!(strip(portal), strip(&api), "{portal} and {api} are documented differently");
        twins += 1;
    }
    assert_eq!(twins, 6);
}

fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
    headers
}

fn error(code: &str, field: Option<&str>) -> String {
    let mut e = json!({"code": code, "message": "something is wrong"});
    if let Some(f) = field {
        e["field"] = json!(f);
    }
    json!({"error": e}).to_string()
}

#[test]
fn the_check_refuses_what_the_document_does_not_say() {
    let spec = openapi::spec();
    let h = json_headers();
    let cluster = json!({"id": "c_0123456789abcdef01234567", "name": "prod", "kind": "standard",
        "proxy_url": "https://p.example", "access_supported": true, "agent": {"online": false},
        "created_at": "2026-01-01T00:00:00Z"});
    let list = |c: &Value| json!({"clusters": [c]}).to_string();
    spec.check("GET", "/api/v1/clusters", 200, &h, &list(&cluster)).unwrap();
    spec.check("GET", "/api/v1/clusters/", 200, &h, &list(&cluster)).expect("one trailing slash routes alike");

    let refused = |method: &str, path: &str, status: u16, headers: &HeaderMap, body: &str, why: &str| {
        let err = spec.check(method, path, status, headers, body).expect_err(why);
        assert!(
            err.contains(&format!("{method} {path} answered {status}")),
            "{why}: the message names the request: {err}"
        );
        err
    };
    let mut stray = cluster.clone();
    stray["agent_credential_hash"] = json!("ab12");
    let err = refused("GET", "/api/v1/clusters", 200, &h, &list(&stray), "a stray field");
    assert!(err.contains("agent_credential_hash"), "{err}");
    let mut sandbox = cluster.clone();
    sandbox["kind"] = json!("sandbox");
    refused("GET", "/api/v1/clusters", 200, &h, &list(&sandbox), "a sandbox cluster is never access_supported");
    let mut no_agent = cluster.clone();
    no_agent.as_object_mut().unwrap().remove("agent");
    refused("GET", "/api/v1/clusters", 200, &h, &list(&no_agent), "a missing field");
    refused("GET", "/api/v1/clusters", 200, &HeaderMap::new(), &list(&cluster), "no content type");
    refused("GET", "/api/v1/clusters", 200, &h, "<html>", "not JSON");

    // Statuses: undocumented for the operation, or for a path the document does not have.
    let err = refused("GET", "/api/v1/clusters", 404, &h, &error("not_found", None), "clusters has no 404");
    assert!(err.contains("not documented"), "{err}");
    refused("PUT", "/api/v1/clusters", 200, &h, "{}", "another method is 405 only");
    spec.check("GET", "/no/such/path", 404, &h, &error("not_found", None)).expect("the generic 404");
    refused("GET", "/no/such/path", 200, &h, "{}", "an unknown path is 404 only");
    refused("POST", "/no/such/path", 404, &h, &error("unauthenticated", None), "the generic 404 is not_found");

    // Error bodies: the code must be one of the status's, `field` only for validation.
    let caps = "/org/clusters/c_0123456789abcdef01234567/access/capabilities";
    refused("GET", caps, 401, &h, &error("forbidden", None), "401 is unauthenticated");
    refused("GET", caps, 403, &h, &error("csrf_required", None), "a read never needs CSRF");
    spec.check("GET", caps, 404, &h, &error("access_unavailable", None)).unwrap();
    let grants = "/api/v1/clusters/c_0123456789abcdef01234567/access/grants";
    spec.check("POST", grants, 403, &h, &error("csrf_required", None)).unwrap();
    spec.check("POST", grants, 422, &h, &error("validation_failed", Some("namespace"))).unwrap();
    refused("POST", grants, 422, &h, &error("validation_failed", None), "validation names its field");
    refused("POST", grants, 422, &h, &error("validation_failed", Some("proxy_url")), "not a grant field");
    refused("POST", grants, 409, &h, &error("member_not_eligible", Some("email")), "field only for validation");
    refused("POST", grants, 409, &h, &json!({"error": {"code": "duplicate_grant"}}).to_string(), "a message");

    // 405 needs Allow; 204 has no body.
    let mut allow = json_headers();
    allow.insert(ALLOW, "GET, POST".parse().unwrap());
    spec.check("PUT", grants, 405, &allow, &error("method_not_allowed", None)).unwrap();
    refused("PUT", grants, 405, &h, &error("method_not_allowed", None), "405 without Allow");
    let grant = format!("{grants}/g_0123456789abcdef01234567");
    spec.check("DELETE", &grant, 204, &HeaderMap::new(), "").unwrap();
    refused("DELETE", &grant, 204, &HeaderMap::new(), "{}", "204 has no body");

    // Optional fields are absent, never null; `reason` exactly when unsupported.
    let capabilities = json!({"cluster_id": "c_0123456789abcdef01234567", "cluster_name": "prod", "enabled": true,
        "supported": true, "can_manage": false, "has_access": false, "grants": [],
        "agent_online": false});
    // It carries the CSRF value to cookie sessions: never cacheable.
    refused("GET", caps, 200, &h, &capabilities.to_string(), "capabilities without Cache-Control: no-store");
    let mut h = json_headers();
    h.insert(reqwest::header::CACHE_CONTROL, "no-store".parse().unwrap());
    h.insert(reqwest::header::PRAGMA, "no-cache".parse().unwrap());
    spec.check("GET", caps, 200, &h, &capabilities.to_string()).unwrap();
    for (field, value, why) in [
        ("reason", Value::Null, "reason is never null"),
        ("supported", json!(false), "an unsupported cluster says why"),
        ("grants", Value::Null, "grants is never null"),
        ("has_access", json!(true), "has_access without a grant"),
    ] {
        let mut changed = capabilities.clone();
        changed[field] = value;
        refused("GET", caps, 200, &h, &changed.to_string(), why);
    }
}

/// A concrete path for a template.
fn fill(template: &str) -> String {
    template
        .replace("{cluster_id}", "c_ffffffffffffffffffffffff")
        .replace("{grant_id}", "g_ffffffffffffffffffffffff")
        .replace("{member_id}", "m_ffffffffffffffffffffffff")
        .replace("{file}", "app.js")
}

/// An operation that needs no authentication (`security: []`).
fn is_public(op: &Value) -> bool {
    op.get("security").and_then(Value::as_array).is_some_and(Vec::is_empty)
}

/// What a public operation answers a bare request in an app that trusts only
/// the development issuer: the sign-in endpoints have no provider to sign in
/// with there (`sso.rs` drives them against Dex).
fn public_status(template: &str) -> u16 {
    match template {
        "/api/v1/login" | "/auth/login" => 404,
        "/auth/callback" => 400,
        // The Access view's pages send a request without a session cookie to the sign-in.
        "/clusters" | "/clusters/{cluster_id}/access" => 303,
        _ => 200,
    }
}

const SENT: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

#[test]
fn every_method_at_every_path_answers_as_documented() {
    // Every response below is also checked against the document by the harness.
    let spec = openapi::spec();
    for gateway in [true, false] {
        let app = App::start_with(Options { gateway, ..Options::default() });
        for template in spec.paths() {
            let path = fill(template);
            let documented = documented_methods(spec, template);
            let item = &spec.doc()["paths"][template];
            let access = item["x-other-methods"]["$ref"].as_str().is_some_and(|r| r.ends_with("/access"));
            for method in SENT {
                let r = App::finish(app.request(method, &path));
                let op_method = if method == "HEAD" { "get" } else { &method.to_ascii_lowercase() };
                let public = item.get(op_method).is_some_and(is_public);
                let served = documented.contains(method) || (method == "HEAD" && documented.contains("GET"));
                let want = match (access && !gateway, served) {
                    (true, _) => 404,
                    (false, true) if public => public_status(template),
                    (false, true) => 401,
                    (false, false) => 405,
                };
                assert_eq!(r.status, want, "{method} {path} (gateway {gateway}): {}", r.body);
                if r.status == 405 {
                    let allow: BTreeSet<String> =
                        r.headers[ALLOW].to_str().unwrap().split(", ").map(str::to_owned).collect();
                    assert_eq!(allow, documented, "{method} {path}: Allow lists the documented methods");
                }
            }
        }
        for path in [
            "/",
            "/api",
            "/api/v2/clusters",
            "/org/clusters/c_ffffffffffffffffffffffff/access",
            "/api/v1/clusters//access/grants",
            "/api/v1/members/m_ffffffffffffffffffffffff/x",
        ] {
            for method in SENT {
                let r = App::finish(app.request(method, path));
                assert_eq!(r.status, 404, "{method} {path}");
            }
        }
    }
}

#[test]
fn the_agent_api_answers_as_documented() {
    // The user-facing endpoints are exercised by the other test files; the
    // agent API's answers are exercised here, each checked by the harness.
    let ClusterFixture { app, admin, cluster, credential } =
        Fixture::start().with_cluster("prod").with_member("dev@acme.example");
    let grant_id = app.grant_access(&admin, &cluster, "dev@acme.example", "edit", Some("team-a"));
    let agent = |p: &str| format!("/agent/v1/clusters/{cluster}/{p}");

    App::finish(app.request("POST", &agent("heartbeat")).bearer_auth(&credential)).expect(200);
    let beat = app.post(&agent("heartbeat"), &credential, json!({"version": "0.1.0"}));
    beat.expect(200);
    assert_eq!(beat.json["revocation_epoch"], 0);

    let lease = app.post(&agent("jobs/lease"), &credential, json!({}));
    lease.expect(200);
    assert_eq!(lease.json["jobs"][0]["job"]["kind"], "grant_created");
    let through = lease.json["through"].as_i64().unwrap();
    assert_eq!(app.post(&agent("jobs/ack"), &credential, json!({"through": through})).json["acked"], through);
    app.post(&agent("jobs/ack"), &credential, json!({"through": -1})).expect_error(422, "validation_failed");

    let report = |state: &str| {
        let r = app.post(
            &agent("reports"),
            &credential,
            json!({"results": [
                {"grant_id": grant_id, "state": state, "error": "namespaces \"team-a\" not found"},
                {"grant_id": "g_ffffffffffffffffffffffff", "state": "applied"},
            ]}),
        );
        r.expect(200);
        assert_eq!((r.json["recorded"].clone(), r.json["ignored"].clone()), (json!(1), json!(1)));
    };
    report("failed");
    let listed = app.grants(&admin, &cluster);
    assert_eq!((listed[0]["status"].as_str(), listed[0]["error"].is_string()), (Some("failed"), true));
    report("applied");
    assert_eq!(app.grants(&admin, &cluster)[0]["status"], "applied");
    app.post(&agent("reports"), &credential, json!({"results": [{"grant_id": grant_id, "state": "done"}]}))
        .expect_error(400, "malformed_request");
    // A result is an object, not an array of its fields (serde's derive read this as applied).
    app.post(&agent("reports"), &credential, json!({"results": [[grant_id, "applied"]]}))
        .expect_error(400, "malformed_request");
    app.post(&agent("jobs/ack"), &credential, json!([0])).expect_error(400, "malformed_request");
    let text = App::finish(
        app.request("POST", &agent("reports")).bearer_auth(&credential).header("content-type", "text/plain").body("x"),
    );
    text.expect_error(415, "unsupported_media_type");

    let state = app.get(&agent("state"), &credential);
    state.expect(200);
    assert_eq!(state.json["grants"][0]["user"], "lanyard:dev@acme.example");

    app.post(&format!("/api/v1/clusters/{cluster}/access/revoke-all"), &admin, json!({})).expect(200);
    let lease = app.post(&agent("jobs/lease"), &credential, json!({}));
    assert!(lease.json["jobs"].as_array().unwrap().iter().any(|j| j["job"]["kind"] == "revoke_all"), "{}", lease.body);
    assert_eq!(app.get(&agent("state"), &credential).json["revocation_epoch"], 1);

    // A wrong credential, another cluster's, and an admin's session are all 401.
    let (_, other_credential) = app.register(&admin, "other", "standard");
    for token in ["lya_wrong", other_credential.as_str(), admin.as_str()] {
        app.get(&agent("state"), token).expect_error(401, "unauthenticated");
    }
}
