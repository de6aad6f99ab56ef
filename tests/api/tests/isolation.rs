//! Organisation isolation across issuers, over HTTP: an issuer speaks only for
//! the organisations it is bound to, a configuration that lets two issuers
//! speak for one organisation (or trusts the development issuer outside a
//! development deployment) serves nothing, and a member is pinned to the
//! (issuer, subject) that first signed in with its email.

use lanyard_api_tests::{App, ClusterFixture, Fixture, Options, TestIssuer};
use serde_json::{Value, json};

/// Every user-facing endpoint as (method, path template, body); `{c}` cluster,
/// `{g}` grant, `{m}` member.
fn endpoints() -> Vec<(&'static str, &'static str, Option<Value>)> {
    let grant = json!({"email": "dev@acme.example", "role": "cluster-admin", "scope": "cluster"});
    let cluster = json!({"name": "stolen", "kind": "standard", "proxy_url": "https://proxy.example"});
    vec![
        ("GET", "/org/clusters/{c}/access/capabilities", None),
        ("GET", "/api/v1/clusters/{c}/access/capabilities", None),
        ("GET", "/org/clusters/{c}/access/members", None),
        ("GET", "/api/v1/clusters/{c}/access/members", None),
        ("GET", "/org/clusters/{c}/access/grants", None),
        ("GET", "/api/v1/clusters/{c}/access/grants", None),
        ("POST", "/org/clusters/{c}/access/grants", Some(grant.clone())),
        ("POST", "/api/v1/clusters/{c}/access/grants", Some(grant)),
        ("DELETE", "/org/clusters/{c}/access/grants/{g}", None),
        ("DELETE", "/api/v1/clusters/{c}/access/grants/{g}", None),
        ("POST", "/org/clusters/{c}/access/revoke-all", None),
        ("POST", "/api/v1/clusters/{c}/access/revoke-all", None),
        ("GET", "/api/v1/clusters", None),
        ("POST", "/api/v1/clusters", Some(cluster)),
        ("GET", "/api/v1/members", None),
        ("POST", "/api/v1/members", Some(json!({"email": "mole@acme.example"}))),
        ("PATCH", "/api/v1/members/{m}", Some(json!({"status": "deactivated"}))),
        ("PATCH", "/api/v1/members/{m}", Some(json!({"release_identity": true}))),
        ("POST", "/api/v1/clusters/{c}/k8s-token", None),
        ("GET", "/api/v1/clusters/{c}/kubeconfig", None),
        ("GET", "/org/clusters/{c}/access/kubeconfig", None),
    ]
}

fn fill(template: &str, cluster: &str, grant: &str, member: &str) -> String {
    template.replace("{c}", cluster).replace("{g}", grant).replace("{m}", member)
}

#[test]
fn an_issuer_cannot_act_in_an_organisation_it_is_not_bound_to() {
    let bravo_idp = TestIssuer::new("https://idp.bravo.example");
    let options = Options { issuers: vec![bravo_idp.entry(json!({"org": "bravo"}))], ..Options::default() };
    // acme, through its own issuer: a cluster, a member with a grant.
    let ClusterFixture { app, admin: acme_admin, cluster, .. } =
        Fixture::start_with(options).with_cluster("prod").with_member("dev@acme.example");
    let grant = app.grant_access(&acme_admin, &cluster, "dev@acme.example", "view", None);
    let acme_admin_id = app.member_id(&acme_admin, "admin@acme.example");

    // Issuer B signs an acme admin session, with acme's admin's email: refused everywhere, nothing changes.
    let forged = bravo_idp.token("admin@acme.example", "acme", true);
    let forged_member = bravo_idp.token("dev@acme.example", "acme", false);
    let before = app.kv_snapshot();
    for (method, template, body) in endpoints() {
        let path = fill(template, &cluster, &grant, &acme_admin_id);
        for token in [&forged, &forged_member] {
            let r = app.send(method, &path, Some(token), body.as_ref());
            r.expect_error(401, "unauthenticated");
            let message = r.json["error"]["message"].as_str().unwrap();
            assert!(message.contains("not trusted to speak for organisation \"acme\""), "{method} {path}: {message}");
        }
    }
    assert_eq!(app.kv_snapshot(), before, "nothing changed");

    // B's own organisation works, end to end.
    let bravo_admin = bravo_idp.token("admin@acme.example", "bravo", true);
    let (bravo_cluster, _) = app.register(&bravo_admin, "prod", "standard");
    assert_ne!(bravo_cluster, cluster);
    let bravo_dev = bravo_idp.token("dev@bravo.example", "bravo", false);
    app.get("/api/v1/clusters", &bravo_dev).expect(200);
    app.grant_access(&bravo_admin, &bravo_cluster, "dev@bravo.example", "edit", None);
    app.send("POST", &format!("/api/v1/clusters/{bravo_cluster}/k8s-token"), Some(&bravo_dev), None).expect(200);
    let listed = app.get("/api/v1/clusters", &bravo_admin);
    let names: Vec<&str> =
        listed.json["clusters"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(names, [bravo_cluster.as_str()], "bravo sees only its own cluster");
    // A bravo session for an organisation its issuer does not name is refused too (the binding is fixed).
    app.get("/api/v1/clusters", &bravo_idp.token("admin@acme.example", "globex", true))
        .expect_error(401, "unauthenticated");
    // acme is as it was: its admin is still its admin, alone in its directory's admin seat.
    let acme_members = app.get("/api/v1/members", &acme_admin);
    acme_members.expect(200);
    assert_eq!(acme_members.json["members"].as_array().unwrap().len(), 2, "{}", acme_members.body);
}

#[test]
fn two_issuers_for_one_organisation_or_the_development_issuer_in_production_serve_nothing() {
    let other_acme = TestIssuer::new("https://idp.other.example");
    let overlapping =
        App::start_with(Options { issuers: vec![other_acme.entry(json!({"org": "acme"}))], ..Options::default() });
    let not_development =
        App::start_with(Options { extra: vec![("development_mode".into(), "false".into())], ..Options::default() });
    for app in [&overlapping, &not_development] {
        let token = app.admin("acme");
        for (method, template, body) in endpoints() {
            let path = fill(
                template,
                "c_000000000000000000000001",
                "g_000000000000000000000001",
                "m_000000000000000000000001",
            );
            let r = app.send(method, &path, Some(&token), body.as_ref());
            r.expect_error(503, "unavailable");
            assert!(
                !r.body.contains("keys") && !r.body.contains("session_issuers"),
                "the reason is for the log: {}",
                r.body
            );
        }
        assert!(app.kv_snapshot().is_empty(), "nothing was written");
    }
    // Explicitly shared, both sides: served.
    let shared = TestIssuer::new("https://idp.shared.example");
    let both = App::start_with(Options {
        extra: vec![(
            "session_issuers".into(),
            Value::Array(vec![
                other_acme.entry(json!({"org": "acme", "allow_shared_orgs": true})),
                shared.entry(json!({"orgs": ["acme"], "allow_shared_orgs": true})),
            ])
            .to_string(),
        )],
        ..Options::default()
    });
    both.get("/api/v1/clusters", &other_acme.token("a@acme.example", "acme", true)).expect(200);
    both.get("/api/v1/clusters", &shared.token("b@acme.example", "acme", true)).expect(200);
}

#[test]
fn a_member_is_pinned_to_the_account_that_first_signed_in_until_an_admin_releases_it() {
    let old_idp = TestIssuer::new("https://idp.old.example");
    let new_idp = TestIssuer::new("https://idp.new.example");
    let issuers = Value::Array(vec![
        old_idp.entry(json!({"org": "acme", "allow_shared_orgs": true})),
        new_idp.entry(json!({"org": "acme", "allow_shared_orgs": true})),
    ]);
    let app =
        App::start_with(Options { extra: vec![("session_issuers".into(), issuers.to_string())], ..Options::default() });
    let admin = old_idp.token("admin@acme.example", "acme", true);
    let cluster = app.cluster(&admin, "prod", "standard");
    let bob_old = old_idp.token("bob@acme.example", "acme", false);
    app.get("/api/v1/clusters", &bob_old).expect(200);
    app.grant_access(&admin, &cluster, "bob@acme.example", "view", None);
    let bob = app.member_id(&admin, "bob@acme.example");

    // The same email from another account is refused: the admin's too, and nothing of theirs is inherited.
    let bob_new = new_idp.token("bob@acme.example", "acme", false);
    let admin_elsewhere = new_idp.token("admin@acme.example", "acme", true);
    for token in [&bob_new, &admin_elsewhere] {
        let before = app.kv_snapshot();
        let r = app.get("/api/v1/clusters", token);
        r.expect_error(403, "forbidden");
        assert!(r.json["error"]["message"].as_str().unwrap().contains("release_identity"), "{}", r.body);
        app.send("POST", &format!("/api/v1/clusters/{cluster}/k8s-token"), Some(token), None)
            .expect_error(403, "forbidden");
        assert_eq!(app.kv_snapshot(), before, "a refused sign-in writes nothing");
    }
    app.get("/api/v1/clusters", &bob_old).expect(200);

    // A member cannot release anyone; an admin can, and the next sign-in takes the member over.
    app.patch_member(&bob_old, &bob, json!({"release_identity": true})).expect_error(403, "forbidden");
    app.patch_member(&admin, &bob, json!({"release_identity": false})).expect_error(422, "validation_failed");
    let released = app.patch_member(&admin, &bob, json!({"release_identity": true}));
    released.expect(200);
    assert_eq!(released.json["id"], bob.as_str());
    app.send("POST", &format!("/api/v1/clusters/{cluster}/k8s-token"), Some(&bob_new), None).expect(200);
    app.get("/api/v1/clusters", &bob_old).expect_error(403, "forbidden");
    // Released and deactivated in one call: the next sign-in pins and is still deactivated.
    let both = app.patch_member(&admin, &bob, json!({"release_identity": true, "status": "deactivated"}));
    both.expect(200);
    assert_eq!(both.json["status"], "deactivated");
    app.get("/api/v1/clusters", &bob_old).expect_error(403, "forbidden");
    app.get("/api/v1/clusters", &bob_new).expect_error(403, "forbidden");
}
