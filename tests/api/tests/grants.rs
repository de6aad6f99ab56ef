//! Grants end to end over HTTP: create, list, delete, revoke-all, every
//! validation error, duplicates, eligibility and sandbox clusters.

use lanyard_api_tests::{ClusterFixture, Fixture};
use serde_json::{Value, json};

fn grants_path(cluster: &str) -> String {
    format!("/api/v1/clusters/{cluster}/access/grants")
}

#[test]
fn admin_creates_lists_and_deletes_grants() {
    let ClusterFixture { app, admin, cluster, .. } =
        Fixture::start().with_cluster("prod").with_member("dev@acme.example");

    let created = app.grant(
        &admin,
        &cluster,
        json!({"email": "Dev@Acme.example", "role": "edit", "scope": "namespace", "namespace": "team-a"}),
    );
    created.expect(201);
    let g = &created.json;
    assert_eq!(g["email"], "dev@acme.example");
    assert_eq!(g["role"], "edit");
    assert_eq!(g["scope"], "namespace");
    assert_eq!(g["namespace"], "team-a");
    assert_eq!(g["status"], "cluster_offline", "no agent has connected yet");
    assert_eq!(g["created_by"], "admin@acme.example");
    let id = g["id"].as_str().unwrap().to_owned();

    let cluster_wide =
        app.grant(&admin, &cluster, json!({"email": "dev@acme.example", "role": "view", "scope": "cluster"}));
    cluster_wide.expect(201);
    assert!(cluster_wide.json.get("namespace").is_none());

    let listed = app.grants(&admin, &cluster);
    assert_eq!(listed.len(), 2, "the same member may hold several grants");
    assert!(listed.iter().any(|x| x["id"] == id.as_str()));

    // The portal path serves the same data.
    let portal = app.get(&format!("/org/clusters/{cluster}/access/grants"), &admin);
    portal.expect(200);
    assert_eq!(portal.json["grants"].as_array().unwrap().len(), 2);

    app.delete(&format!("{}/{id}", grants_path(&cluster)), &admin).expect(204);
    let listed = app.grants(&admin, &cluster);
    assert_eq!(listed.len(), 1);
    assert_ne!(listed[0]["id"], id.as_str());
    app.delete(&format!("{}/{id}", grants_path(&cluster)), &admin).expect_error(404, "not_found");
    app.delete(&format!("{}/g_nonsense", grants_path(&cluster)), &admin).expect_error(404, "not_found");
}

#[test]
fn every_validation_error_names_its_field_and_changes_nothing() {
    let ClusterFixture { app, admin, cluster, .. } =
        Fixture::start().with_cluster("prod").with_member("dev@acme.example");
    let before = app.kv_snapshot();
    let ok = json!({"email": "dev@acme.example", "role": "view", "scope": "namespace", "namespace": "team-a"});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = ok.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let cases: Vec<(Value, &str)> = vec![
        (without("email"), "email"),
        (with("email", json!("")), "email"),
        (with("email", json!("not-an-email")), "email"),
        // Only ASCII whitespace is trimmed: these were trimmed away and the grant made (schemathesis).
        (with("email", json!("\u{3000}dev@acme.example")), "email"),
        (with("email", json!("dev@acme.example\u{a0}")), "email"),
        (with("email", json!(format!("{}dev@acme.example", " ".repeat(240)))), "email"),
        (without("role"), "role"),
        (with("role", json!("owner")), "role"),
        (with("role", json!("View")), "role"),
        (without("scope"), "scope"),
        (with("scope", json!("world")), "scope"),
        (without("namespace"), "namespace"),
        (with("namespace", json!("")), "namespace"),
        (with("namespace", json!("Team-A")), "namespace"),
        (with("namespace", json!("-team")), "namespace"),
        (with("namespace", json!("team-")), "namespace"),
        (with("namespace", json!("team.a")), "namespace"),
        (with("namespace", json!("a".repeat(64))), "namespace"),
        (with("namespace", json!("ünïcode")), "namespace"),
        (json!({"email": "dev@acme.example", "role": "view", "scope": "cluster", "namespace": "team-a"}), "namespace"),
        (with("role", json!("cluster-admin")), "role"),
    ];
    for (body, field) in cases {
        let resp = app.grant(&admin, &cluster, body.clone());
        resp.expect_error(422, "validation_failed");
        assert_eq!(resp.field(), field, "{body}: {}", resp.body);
    }
    // ASCII whitespace around the email and another letter case are the same member.
    app.grant(&admin, &cluster, with("email", json!("\t DEV@acme.example\r\n"))).expect(201);
    // 63 characters is the limit, not an error.
    app.grant(&admin, &cluster, with("namespace", json!("a".repeat(63)))).expect(201);
    let after = app.kv_snapshot();
    assert!(after.len() > before.len(), "the valid grant was stored");
}

#[test]
fn invalid_requests_change_nothing() {
    let ClusterFixture { app, admin, cluster, .. } =
        Fixture::start().with_cluster("prod").with_member("dev@acme.example");
    let before = app.kv_snapshot();
    app.grant(
        &admin,
        &cluster,
        json!({"email": "dev@acme.example", "role": "view", "scope": "namespace", "namespace": "Bad"}),
    )
    .expect(422);
    app.grant(&admin, &cluster, json!({"email": "ghost@acme.example", "role": "view", "scope": "cluster"})).expect(422);
    assert_eq!(app.kv_snapshot(), before, "refused requests wrote nothing");
}

#[test]
fn an_exact_duplicate_is_a_conflict_but_a_variation_is_not() {
    let ClusterFixture { app, admin, cluster, .. } =
        Fixture::start().with_cluster("prod").with_member("dev@acme.example");
    let body = json!({"email": "dev@acme.example", "role": "view", "scope": "namespace", "namespace": "team-a"});
    app.grant(&admin, &cluster, body.clone()).expect(201);
    app.grant(&admin, &cluster, body.clone()).expect_error(409, "duplicate_grant");
    let mut other_ns = body.clone();
    other_ns["namespace"] = json!("team-b");
    app.grant(&admin, &cluster, other_ns).expect(201);
    let mut other_role = body.clone();
    other_role["role"] = json!("edit");
    app.grant(&admin, &cluster, other_role).expect(201);
    assert_eq!(app.grants(&admin, &cluster).len(), 3);
}

#[test]
fn only_active_members_are_eligible() {
    let ClusterFixture { app, admin, cluster, .. } = Fixture::start().with_cluster("prod");
    let grant = |email: &str| app.grant(&admin, &cluster, json!({"email": email, "role": "view", "scope": "cluster"}));

    grant("stranger@acme.example").expect_error(422, "member_not_eligible");

    let invited = app.post("/api/v1/members", &admin, json!({"email": "new@acme.example"}));
    invited.expect(201);
    assert_eq!(invited.json["status"], "invited");
    grant("new@acme.example").expect_error(422, "member_not_eligible");
    // Signing in turns the invitation into an active membership.
    app.sign_in("new@acme.example", "acme");
    grant("new@acme.example").expect(201);

    app.sign_in("leaver@acme.example", "acme");
    let leaver = app.member_id(&admin, "leaver@acme.example");
    app.patch_member(&admin, &leaver, json!({"status": "deactivated"})).expect(200);
    let resp = grant("leaver@acme.example");
    resp.expect_error(422, "member_not_eligible");
    assert!(resp.json["error"]["message"].as_str().unwrap().contains("deactivated"));

    // A member of another organisation is not eligible here either.
    app.sign_in("outsider@other.example", "other");
    grant("outsider@other.example").expect_error(422, "member_not_eligible");
}

#[test]
fn revoke_all_removes_every_grant_and_bumps_the_revocation_epoch() {
    let ClusterFixture { app, admin, cluster, .. } = Fixture::start().with_cluster("prod");
    let other = app.cluster(&admin, "staging", "standard");
    for i in 0..5 {
        let email = format!("u{i}@acme.example");
        app.sign_in(&email, "acme");
        app.grant_access(&admin, &cluster, &email, "view", None);
    }
    app.grant_access(&admin, &other, "u0@acme.example", "view", None);

    let r = app.post(&format!("/api/v1/clusters/{cluster}/access/revoke-all"), &admin, json!({}));
    r.expect(200);
    assert_eq!(r.json["revoked"], 5);
    assert_eq!(r.json["revocation_epoch"], 1);
    assert!(app.grants(&admin, &cluster).is_empty());
    assert_eq!(app.grants(&admin, &other).len(), 1, "other clusters are untouched");

    // Revoke-all needs no body, and the portal twin works the same way.
    let r = app.send("POST", &format!("/org/clusters/{cluster}/access/revoke-all"), Some(&admin), None);
    r.expect(200);
    assert_eq!(r.json["revocation_epoch"], 2);
    // Grants can be made again afterwards.
    app.grant(&admin, &cluster, json!({"email": "u1@acme.example", "role": "view", "scope": "cluster"})).expect(201);
}

#[test]
fn sandbox_clusters_do_not_support_access() {
    let Fixture { app, admin } = Fixture::start();
    let sandbox = app.cluster(&admin, "play", "sandbox");
    app.sign_in("dev@acme.example", "acme");
    let caps = app.get(&format!("/api/v1/clusters/{sandbox}/access/capabilities"), &admin);
    caps.expect(200);
    assert_eq!(caps.json["enabled"], true);
    assert_eq!(caps.json["supported"], false);
    assert!(caps.json["reason"].as_str().unwrap().contains("sandbox"));
    app.grant(&admin, &sandbox, json!({"email": "dev@acme.example", "role": "view", "scope": "cluster"}))
        .expect_error(409, "cluster_access_unsupported");
    assert!(app.grants(&admin, &sandbox).is_empty());
}

#[test]
fn capabilities_show_the_callers_own_access() {
    let ClusterFixture { app, admin, cluster, .. } = Fixture::start().with_cluster("prod");
    let dev = app.sign_in("dev@acme.example", "acme");
    let caps = |token: &str| {
        let r = app.get(&format!("/api/v1/clusters/{cluster}/access/capabilities"), token);
        r.expect(200);
        r.json
    };
    let c = caps(&dev);
    assert_eq!((c["enabled"].clone(), c["supported"].clone()), (json!(true), json!(true)));
    assert_eq!(c["can_manage"], false);
    assert_eq!(c["has_access"], false);
    let a = caps(&admin);
    assert_eq!(a["can_manage"], true);
    assert_eq!(a["has_access"], false, "managing access is not kubectl access");

    app.grant_access(&admin, &cluster, "dev@acme.example", "edit", Some("team-a"));
    let c = caps(&dev);
    assert_eq!(c["has_access"], true);
    assert_eq!(c["grants"].as_array().unwrap().len(), 1);
    assert_eq!(c["grants"][0]["namespace"], "team-a");
    assert_eq!(caps(&admin)["has_access"], false);
}

#[test]
fn eligible_members_lists_active_members_only() {
    let ClusterFixture { app, admin, cluster, .. } =
        Fixture::start().with_cluster("prod").with_member("a@acme.example");
    app.sign_in("b@other.example", "other");
    app.post("/api/v1/members", &admin, json!({"email": "invited@acme.example"})).expect(201);
    let r = app.get(&format!("/org/clusters/{cluster}/access/members"), &admin);
    r.expect(200);
    let mut emails: Vec<&str> =
        r.json["members"].as_array().unwrap().iter().map(|m| m["email"].as_str().unwrap()).collect();
    emails.sort();
    assert_eq!(emails, ["a@acme.example", "admin@acme.example"]);
}

#[test]
fn state_survives_a_restart() {
    let ClusterFixture { mut app, admin, cluster, .. } =
        Fixture::start().with_cluster("prod").with_member("dev@acme.example");
    app.grant_access(&admin, &cluster, "dev@acme.example", "admin", Some("ops"));
    app.restart();
    let grants = app.grants(&admin, &cluster);
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0]["role"], "admin");
    let clusters = app.get("/api/v1/clusters", &admin);
    assert_eq!(clusters.json["clusters"][0]["name"], "prod");
}
