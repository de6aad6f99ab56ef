//! Who may call what: sessions, organisation boundaries, admin-only
//! endpoints, CSRF for cookie writes, and the gateway switch.

use jwt_simple::prelude::*;
use lanyard_api_tests::{App, ClusterFixture, Fixture, Options, TestIssuer, unix_now};
use lanyard_core::dev::{self, SessionClaims};
use serde_json::json;

/// Every access endpoint as (method, path template); `{c}` cluster, `{g}` grant.
const ACCESS: &[(&str, &str)] = &[
    ("GET", "/org/clusters/{c}/access/capabilities"),
    ("GET", "/api/v1/clusters/{c}/access/capabilities"),
    ("GET", "/org/clusters/{c}/access/members"),
    ("GET", "/api/v1/clusters/{c}/access/members"),
    ("GET", "/org/clusters/{c}/access/grants"),
    ("GET", "/api/v1/clusters/{c}/access/grants"),
    ("POST", "/org/clusters/{c}/access/grants"),
    ("POST", "/api/v1/clusters/{c}/access/grants"),
    ("DELETE", "/org/clusters/{c}/access/grants/{g}"),
    ("DELETE", "/api/v1/clusters/{c}/access/grants/{g}"),
    ("POST", "/org/clusters/{c}/access/revoke-all"),
    ("POST", "/api/v1/clusters/{c}/access/revoke-all"),
];

fn path(template: &str, cluster: &str, grant: &str) -> String {
    template.replace("{c}", cluster).replace("{g}", grant)
}

fn grant_body() -> serde_json::Value {
    json!({"email": "dev@acme.example", "role": "view", "scope": "cluster"})
}

#[test]
fn no_or_bad_session_is_401_everywhere() {
    let ClusterFixture { app, cluster, .. } = Fixture::start().with_cluster("prod");
    let foreign = dev::new_key(&lanyard_core::random::SystemRandom).unwrap();
    let claims = |ttl| SessionClaims {
        email: "admin@acme.example".into(),
        org: "acme".into(),
        admin: true,
        name: None,
        ttl_secs: ttl,
    };
    let now = unix_now();
    let bad_tokens = [
        ("garbage", "not-a-jwt".to_owned()),
        ("foreign issuer key", dev::mint_session(&foreign, dev::DEV_ISSUER, dev::AUDIENCE, &claims(600), now)),
        ("wrong issuer", dev::mint_session(&app.issuer, "https://evil.example", dev::AUDIENCE, &claims(600), now)),
        ("wrong audience", dev::mint_session(&app.issuer, dev::DEV_ISSUER, "someone-else", &claims(600), now)),
        ("expired", dev::mint_session(&app.issuer, dev::DEV_ISSUER, dev::AUDIENCE, &claims(60), now - 3600)),
    ];
    let mut endpoints: Vec<(&str, String)> =
        ACCESS.iter().map(|(m, t)| (*m, path(t, &cluster, "g_000000000000000000000000"))).collect();
    endpoints.extend([
        ("GET", "/api/v1/clusters".into()),
        ("POST", "/api/v1/clusters".into()),
        ("GET", "/api/v1/members".into()),
    ]);
    for (method, p) in &endpoints {
        let body = method.ne(&"GET").then(grant_body);
        app.send(method, p, None, body.as_ref()).expect_error(401, "unauthenticated");
        for (what, token) in &bad_tokens {
            let r = app.send(method, p, Some(token), body.as_ref());
            r.expect_error(401, "unauthenticated");
            assert!(!r.body.contains(token.as_str()), "{what}: the token is echoed");
        }
    }
    let expired = app.get("/api/v1/clusters", &bad_tokens[4].1);
    assert!(expired.json["error"]["message"].as_str().unwrap().contains("expired"), "{}", expired.body);
    // A malformed Authorization header is also 401.
    let r = App::finish(app.request("GET", "/api/v1/clusters").header("authorization", "Basic Zm9vOmJhcg=="));
    r.expect_error(401, "unauthenticated");
}

#[test]
fn members_are_forbidden_admin_endpoints() {
    let ClusterFixture { app, cluster, .. } = Fixture::start().with_cluster("prod");
    let member = app.sign_in("dev@acme.example", "acme");
    for (method, template) in ACCESS {
        if template.ends_with("capabilities") {
            continue;
        }
        let body = method.ne(&"GET").then(grant_body);
        app.send(method, &path(template, &cluster, "g_000000000000000000000000"), Some(&member), body.as_ref())
            .expect_error(403, "forbidden");
    }
    app.post("/api/v1/clusters", &member, json!({"name": "x", "proxy_url": "https://p.example"}))
        .expect_error(403, "forbidden");
    app.get("/api/v1/members", &member).expect_error(403, "forbidden");
    app.post("/api/v1/members", &member, json!({"email": "x@acme.example"})).expect_error(403, "forbidden");
    // ...but may see capabilities and the cluster list.
    app.get(&format!("/api/v1/clusters/{cluster}/access/capabilities"), &member).expect(200);
    app.get("/api/v1/clusters", &member).expect(200);
}

#[test]
fn another_organisations_cluster_is_not_found_never_forbidden() {
    let ClusterFixture { app, admin: acme, cluster, .. } = Fixture::start().with_cluster("prod");
    let globex = app.admin("globex");
    let globex_member = app.sign_in("dev@globex.example", "globex");
    for (method, template) in ACCESS {
        let body = method.ne(&"GET").then(grant_body);
        let p = path(template, &cluster, "g_000000000000000000000000");
        app.send(method, &p, Some(&globex), body.as_ref()).expect_error(404, "not_found");
        app.send(method, &p, Some(&globex_member), body.as_ref()).expect_error(404, "not_found");
        // An unknown cluster id answers exactly the same.
        let unknown = path(template, "c_ffffffffffffffffffffffff", "g_000000000000000000000000");
        app.send(method, &unknown, Some(&acme), body.as_ref()).expect_error(404, "not_found");
    }
    let listed = app.get("/api/v1/clusters", &globex);
    assert_eq!(listed.json["clusters"].as_array().unwrap().len(), 0);
}

#[test]
fn cookie_writes_need_the_csrf_header() {
    let ClusterFixture { app, admin, cluster, .. } =
        Fixture::start().with_cluster("prod").with_member("dev@acme.example");
    let cookie = format!("lanyard_session={admin}");
    let grants = format!("/org/clusters/{cluster}/access/grants");

    // A cookie read works and hands out the CSRF value.
    let caps = App::finish(
        app.request("GET", &format!("/org/clusters/{cluster}/access/capabilities")).header("cookie", &cookie),
    );
    caps.expect(200);
    let csrf = caps.json["csrf_token"].as_str().expect("cookie sessions get a csrf_token").to_owned();

    let before = app.kv_snapshot();
    let post = |csrf: Option<&str>| {
        let mut req = app
            .request("POST", &grants)
            .header("cookie", &cookie)
            .header("content-type", "application/json")
            .body(grant_body().to_string());
        if let Some(c) = csrf {
            req = req.header("x-csrf-token", c);
        }
        App::finish(req)
    };
    post(None).expect_error(403, "csrf_required");
    post(Some("wrong")).expect_error(403, "csrf_required");
    let del =
        App::finish(app.request("DELETE", &format!("{grants}/g_000000000000000000000000")).header("cookie", &cookie));
    del.expect_error(403, "csrf_required");
    let revoke = App::finish(
        app.request("POST", &format!("/org/clusters/{cluster}/access/revoke-all")).header("cookie", &cookie),
    );
    revoke.expect_error(403, "csrf_required");
    assert_eq!(app.kv_snapshot(), before, "nothing changed");

    post(Some(&csrf)).expect(201);
    // Bearer-authenticated writes need no CSRF header.
    let mut body = grant_body();
    body["role"] = json!("edit");
    app.grant(&admin, &cluster, body).expect(201);
}

#[test]
fn with_the_gateway_off_every_access_endpoint_is_404() {
    let ClusterFixture { app, admin, cluster, .. } =
        Fixture::start_with(Options { gateway: false, ..Options::default() }).with_cluster("prod");
    for (method, template) in ACCESS {
        let p = path(template, &cluster, "g_000000000000000000000000");
        app.send(method, &p, Some(&admin), None).expect_error(404, "access_unavailable");
        app.send(method, &p, None, None).expect_error(404, "access_unavailable");
    }
}

#[test]
fn wrong_methods_and_unknown_paths() {
    let ClusterFixture { app, admin, cluster, .. } = Fixture::start().with_cluster("prod");
    let r = app.send("PUT", &format!("/api/v1/clusters/{cluster}/access/grants"), Some(&admin), None);
    r.expect_error(405, "method_not_allowed");
    assert_eq!(r.headers.get("allow").unwrap(), "GET, POST");
    app.send("GET", &format!("/api/v1/clusters/{cluster}/access/revoke-all"), Some(&admin), None)
        .expect_error(405, "method_not_allowed");
    app.send("GET", "/nothing/here", None, None).expect_error(404, "not_found");
    app.send("GET", "/", None, None).expect_error(404, "not_found");
}

#[test]
fn a_deactivated_member_can_do_nothing() {
    let ClusterFixture { app, admin, cluster, .. } = Fixture::start().with_cluster("prod");
    let other_admin = app.sign_in("boss@acme.example", "acme");
    let boss_admin = app.token("boss@acme.example", "acme", true);
    let id = app.member_id(&admin, "boss@acme.example");
    app.patch_member(&admin, &id, json!({"status": "deactivated"})).expect(200);
    for token in [&other_admin, &boss_admin] {
        app.get(&format!("/api/v1/clusters/{cluster}/access/capabilities"), token).expect_error(403, "forbidden");
        app.get("/api/v1/clusters", token).expect_error(403, "forbidden");
    }
    app.patch_member(&admin, &id, json!({"status": "active"})).expect(200);
    app.get("/api/v1/clusters", &boss_admin).expect(200);
}

#[test]
fn es256_and_rs256_issuers_are_trusted_too() {
    let es = ES256KeyPair::generate().with_key_id("es-1");
    let rs = RS256KeyPair::generate(2048).unwrap().with_key_id("rs-1");
    let jwk = |s: String| serde_json::from_str::<serde_json::Value>(&s).unwrap();
    let issuers = json!([
        {"issuer": "https://es.example", "audience": "lanyard", "org": "acme", "jwks": {"keys": [jwk(es.public_key().to_jwk())]}},
        {"issuer": "https://rs.example", "audience": "lanyard", "org": "globex", "jwks": {"keys": [jwk(rs.public_key().to_jwk())]}},
    ]);
    let app =
        App::start_with(Options { extra: vec![("session_issuers".into(), issuers.to_string())], ..Options::default() });
    let claims = |iss: &str, org: &str| {
        let mut custom = serde_json::Map::new();
        custom.insert("email".into(), "ops@acme.example".into());
        custom.insert("email_verified".into(), true.into());
        custom.insert("org".into(), org.into());
        custom.insert("org_role".into(), "admin".into());
        jwt_simple::claims::Claims::with_custom_claims(custom, Duration::from_mins(5))
            .with_issuer(iss)
            .with_audience("lanyard")
            .with_subject("ops")
    };
    for token in [
        es.sign(claims("https://es.example", "acme")).unwrap(),
        rs.sign(claims("https://rs.example", "globex")).unwrap(),
    ] {
        app.get("/api/v1/clusters", &token).expect(200);
    }
    // The default dev issuer is not trusted by this deployment.
    app.get("/api/v1/clusters", &app.admin("acme")).expect_error(401, "unauthenticated");
}

/// A deployment that also trusts `idp` for organisation `bravo`, with `options` on its entry.
fn with_bravo_idp(idp: &TestIssuer, options: serde_json::Value) -> App {
    let mut entry = idp.entry(json!({"org": "bravo"}));
    for (k, v) in options.as_object().unwrap() {
        entry[k] = v.clone();
    }
    App::start_with(Options { issuers: vec![entry], ..Options::default() })
}

#[test]
fn sessions_need_a_verified_ascii_email() {
    let idp = TestIssuer::new("https://idp.bravo.example");
    let app = with_bravo_idp(&idp, json!({}));
    let unstated = idp.token_with("a@bravo.example", "bravo", true, |mut c| {
        c.custom.remove("email_verified");
        c
    });
    let r = app.get("/api/v1/clusters", &unstated);
    r.expect_error(401, "unauthenticated");
    assert!(r.body.contains("allow_missing_email_verified"), "{}", r.body);
    let unverified = idp.token_with("a@bravo.example", "bravo", true, |mut c| {
        c.custom.insert("email_verified".into(), false.into());
        c
    });
    app.get("/api/v1/clusters", &unverified).expect_error(401, "unauthenticated");
    // U+212A KELVIN SIGN folds to `k`: refused, not mapped onto kim@bravo.example.
    app.get("/api/v1/clusters", &idp.token("kim@bravo.example", "bravo", true)).expect(200);
    app.get("/api/v1/clusters", &idp.token("\u{212A}im@bravo.example", "bravo", true))
        .expect_error(401, "unauthenticated");
    let admin = idp.token("kim@bravo.example", "bravo", true);
    let members = app.get("/api/v1/members", &admin);
    assert_eq!(members.json["members"].as_array().unwrap().len(), 1, "{}", members.body);
    // A provider that never sends the claim can be trusted without it, by its entry only; `false` stays refused.
    let lenient = with_bravo_idp(&idp, json!({"allow_missing_email_verified": true}));
    lenient.get("/api/v1/clusters", &unstated).expect(200);
    lenient.get("/api/v1/clusters", &unverified).expect_error(401, "unauthenticated");
}

#[test]
fn a_session_issued_to_another_application_is_refused() {
    let idp = TestIssuer::new("https://idp.bravo.example");
    let app = with_bravo_idp(&idp, json!({}));
    let token = |azp: Option<&str>| {
        idp.token_with("a@bravo.example", "bravo", true, |c| {
            let mut c = c.with_audiences(HashSet::from_strings(&["other-app", "lanyard"]));
            if let Some(azp) = azp {
                c.custom.insert("azp".into(), azp.into());
            }
            c
        })
    };
    for (azp, why) in [(None, "azp"), (Some("other-app"), "another application")] {
        let r = app.get("/api/v1/clusters", &token(azp));
        r.expect_error(401, "unauthenticated");
        assert!(r.body.contains(why), "{}", r.body);
    }
    app.get("/api/v1/clusters", &token(Some("lanyard"))).expect(200);
}

#[test]
fn keys_not_meant_for_verifying_sessions_are_not_used() {
    let idp = TestIssuer::new("https://idp.bravo.example");
    let token = idp.token("a@bravo.example", "bravo", true);
    let jwk: serde_json::Value = serde_json::from_str(&idp.key.public_key().to_jwk()).unwrap();
    for (member, value) in
        [("use", json!("enc")), ("alg", json!("ES256")), ("key_ops", json!([])), ("key_ops", json!(["encrypt"]))]
    {
        let mut marked = jwk.clone();
        marked[member] = value.clone();
        let app = with_bravo_idp(&idp, json!({"jwks": {"keys": [marked]}}));
        app.get("/api/v1/clusters", &token).expect_error(401, "unauthenticated");
    }
    let mut marked = jwk.clone();
    marked["key_ops"] = json!(["verify"]);
    with_bravo_idp(&idp, json!({"jwks": {"keys": [marked]}})).get("/api/v1/clusters", &token).expect(200);
}
