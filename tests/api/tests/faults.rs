//! Store failures at every point of every state-changing request (issue 12).
//!
//! For each request the host's fault switch ([`lanyard_host::faults`]) first
//! counts the key-value writes the request makes; then, for every write `k`,
//! on fresh state, the `k`th write fails. The request must answer a `5xx`
//! with the contract's JSON error, or succeed completely when the failed write
//! was best effort; the state it leaves must be whole (checked through the
//! public API, and where useful the raw store); and the same request sent
//! again must succeed and give exactly one result. The spec's rule:
//! no failure of the store loses a grant, a status or a revocation.
//!
//! Every token a sweep uses has made a request before (a session's first
//! request of a few minutes remembers its verification), so the writes
//! counted are the request's own, the same at every `k`.

use std::collections::BTreeSet;

use base64::Engine as _;
use lanyard_api_tests::{App, Options, Resp};
use lanyard_host::Plan;
use serde_json::{Value, json};

/// What one fault point gave.
#[derive(Debug)]
struct Point {
    /// The write that failed (the switch's description), if it fired.
    write: Option<String>,
    /// The answer to the request whose write failed.
    status: u16,
}

/// A fresh app with the fault switch, and its admin's session (used once, so remembered).
fn start() -> (App, String) {
    let app = App::start_with(Options { faults: true, ..Options::default() });
    let admin = app.admin("acme");
    app.get("/api/v1/clusters", &admin).expect(200);
    (app, admin)
}

#[track_caller]
fn assert_5xx(r: &Resp, what: &str) {
    assert!((500..600).contains(&r.status), "{what}: expected a 5xx, got {}: {}", r.status, r.body);
    r.expect(r.status);
}

/// Sweep a fault over every write of `request`.
///
/// `setup(k)` makes fresh state for fault point `k` (0 for the counting
/// run); `partial(s, r)` checks the state a failed request left (`r` is its
/// answer); `done(s, r)` checks the state after a request that succeeded
/// (`r` its answer), including once after the retry of every fault point.
/// `retry_also` are answers besides 2xx a retry may give because the first
/// attempt's change is already complete (a delete's `404`).
fn sweep<S>(
    app: &App,
    name: &str,
    setup: impl Fn(u64) -> S,
    request: impl Fn(&S) -> Resp,
    partial: impl Fn(&S, &Resp),
    done: impl Fn(&S, &Resp),
    retry_also: &[u16],
) -> Vec<Point> {
    let faults = app.faults();
    let s = setup(0);
    faults.arm(Plan::count());
    let r = request(&s);
    let writes = faults.disarm().writes;
    assert!(r.status < 400, "{name}: the request without a fault failed: {} {}", r.status, r.body);
    done(&s, &r);
    let mut points = Vec::new();
    for k in 1..=writes {
        let s = setup(k);
        faults.arm(Plan::fail_at(k));
        let r = request(&s);
        let seen = faults.disarm();
        let what = format!("{name}, write {k} of {writes} ({})", seen.failed.as_deref().unwrap_or("not reached"));
        if r.status < 400 {
            // The failed write was best effort (or not reached): the request is complete.
            done(&s, &r);
        } else {
            assert_5xx(&r, &what);
            partial(&s, &r);
        }
        let retry = request(&s);
        assert!(
            retry.status < 400 || retry_also.contains(&retry.status),
            "{what}: the retry answered {}: {}",
            retry.status,
            retry.body
        );
        done(&s, &retry);
        points.push(Point { write: seen.failed, status: r.status });
    }
    eprintln!("{name}: {writes} fault points");
    for (k, p) in points.iter().enumerate() {
        eprintln!("  {}: {} -> {}", k + 1, p.write.as_deref().unwrap_or("(not reached)"), p.status);
    }
    assert!(writes > 0 || name.contains("lease"), "{name}: no writes counted");
    points
}

fn grants_path(cluster: &str) -> String {
    format!("/api/v1/clusters/{cluster}/access/grants")
}

fn agent_state(app: &App, cluster: &str, credential: &str) -> Value {
    let r = app.get(&format!("/agent/v1/clusters/{cluster}/state"), credential);
    r.expect(200);
    r.json
}

fn ids(values: &[Value], field: &str) -> BTreeSet<String> {
    values.iter().map(|v| v[field].as_str().unwrap().to_owned()).collect()
}

/// The ids of the grant records of revocation epoch `epoch` in the raw
/// store for `cluster` (whether they list or not; those of older epochs are
/// dead, and may be left as garbage).
fn grant_records(app: &App, cluster: &str, epoch: i64) -> BTreeSet<String> {
    let prefix = format!("v1/cluster/{cluster}/grant/");
    app.kv_snapshot()
        .into_iter()
        .filter(|(_, key, _)| key.strip_prefix(&prefix).is_some_and(|rest| !rest.contains('/')))
        .filter_map(|(_, _, value)| {
            let record: Value = serde_json::from_slice(&value).expect("a grant record is JSON");
            (record["epoch"] == epoch).then(|| record["id"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// The jobs of the cluster the agent has not acknowledged.
fn leased_jobs(app: &App, cluster: &str, credential: &str) -> Vec<Value> {
    let r = app.post(&format!("/agent/v1/clusters/{cluster}/jobs/lease"), credential, json!({}));
    r.expect(200);
    r.json["jobs"].as_array().unwrap().iter().map(|j| j["job"].clone()).collect()
}

/// A grant that lists is whole: it has a status, the agent's state has it,
/// and its record is the only one in the store.
#[track_caller]
fn grants_whole(app: &App, admin: &str, cluster: &str, credential: &str) -> Vec<Value> {
    let listed = app.grants(admin, cluster);
    for g in &listed {
        assert!(g["status"].is_string(), "a listed grant has no status: {g}");
    }
    let state = agent_state(app, cluster, credential);
    let live = ids(state["grants"].as_array().unwrap(), "id");
    assert_eq!(ids(&listed, "id"), live, "the list and the agent's state disagree");
    let epoch = state["revocation_epoch"].as_i64().unwrap();
    assert_eq!(ids(&listed, "id"), grant_records(app, cluster, epoch), "a live grant record does not list");
    listed
}

/// One standard cluster per fault point.
struct Cluster {
    id: String,
    credential: String,
}

fn cluster(app: &App, admin: &str, name: String) -> Cluster {
    let (id, credential) = app.register(admin, &name, "standard");
    Cluster { id, credential }
}

fn view_in_team_a(email: &str) -> Value {
    json!({"email": email, "role": "view", "scope": "namespace", "namespace": "team-a"})
}

#[test]
fn grant_create() {
    let (app, admin) = start();
    app.sign_in("dev@acme.example", "acme");
    let points = sweep(
        &app,
        "grant create",
        |k| cluster(&app, &admin, format!("create-{k}")),
        |c| app.grant(&admin, &c.id, view_in_team_a("dev@acme.example")),
        |c, _| {
            let listed = grants_whole(&app, &admin, &c.id, &c.credential);
            assert!(listed.is_empty(), "a create that answered an error left a grant: {listed:?}");
        },
        |c, r| {
            let listed = grants_whole(&app, &admin, &c.id, &c.credential);
            assert_eq!(listed.len(), 1, "{listed:?}");
            if r.status == 201 {
                assert_eq!(listed[0]["id"], r.json["id"]);
            }
            // Its wake-up job is best effort (the agent's state, checked above, is what it applies).
        },
        // A retry of a create that succeeded (its failed write best effort) is the duplicate.
        &[409],
    );
    assert!(points.len() >= 5, "{points:?}");
}

#[test]
fn grant_delete() {
    let (app, admin) = start();
    app.sign_in("dev@acme.example", "acme");
    let body = view_in_team_a("dev@acme.example");
    let setup = |k| {
        let c = cluster(&app, &admin, format!("delete-{k}"));
        let id = app.grant_access(&admin, &c.id, "dev@acme.example", "view", Some("team-a"));
        (c, id)
    };
    let points = sweep(
        &app,
        "grant delete",
        setup,
        |(c, id)| app.delete(&format!("{}/{id}", grants_path(&c.id)), &admin),
        |(c, _), _| {
            // Either still whole or gone: grants_whole checks both.
            assert!(grants_whole(&app, &admin, &c.id, &c.credential).len() <= 1);
        },
        |(c, _), _| {
            assert!(grants_whole(&app, &admin, &c.id, &c.credential).is_empty());
            // The same grant can be made again, once.
            app.grant(&admin, &c.id, body.clone()).expect(201);
            app.grant(&admin, &c.id, body.clone()).expect_error(409, "duplicate_grant");
            let listed = grants_whole(&app, &admin, &c.id, &c.credential);
            assert_eq!(listed.len(), 1);
            let again = listed[0]["id"].as_str().unwrap();
            app.delete(&format!("{}/{again}", grants_path(&c.id)), &admin).expect(204);
        },
        &[404],
    );
    assert!(points.len() >= 3, "{points:?}");
}

/// The `rev` claim of a cluster token.
fn token_rev(token: &str) -> i64 {
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url");
    let claims: Value = serde_json::from_slice(&bytes).expect("JSON claims");
    claims["rev"].as_i64().expect("a rev claim")
}

#[test]
fn revoke_all() {
    let (app, admin) = start();
    let member = app.sign_in("dev@acme.example", "acme");
    let setup = |k| {
        let c = cluster(&app, &admin, format!("revoke-{k}"));
        app.grant_access(&admin, &c.id, "dev@acme.example", "view", Some("team-a"));
        let minted = app.post(&format!("/api/v1/clusters/{}/k8s-token", c.id), &member, json!({}));
        minted.expect(200);
        let rev = token_rev(minted.json["status"]["token"].as_str().unwrap());
        (c, rev)
    };
    let revoked = |c: &Cluster, rev: i64| {
        let state = agent_state(&app, &c.id, &c.credential);
        let epoch = state["revocation_epoch"].as_i64().unwrap();
        let listed = grants_whole(&app, &admin, &c.id, &c.credential);
        if epoch > rev {
            // Happened: the token's rev is below the epoch (the proxy refuses it), no grant lives.
            assert!(listed.is_empty(), "revoked, yet grants list: {listed:?}");
            true
        } else {
            assert_eq!(listed.len(), 1, "not revoked, yet the grant is gone");
            false
        }
    };
    let points = sweep(
        &app,
        "revoke-all",
        setup,
        |(c, _)| app.post(&format!("/api/v1/clusters/{}/access/revoke-all", c.id), &admin, json!({})),
        |(c, rev), _| {
            revoked(c, *rev);
        },
        |(c, rev), _| {
            assert!(revoked(c, *rev), "revoke-all answered a success and did not revoke");
            // A new grant after it works, and is the only one.
            app.grant(&admin, &c.id, view_in_team_a("dev@acme.example")).expect(201);
            assert_eq!(grants_whole(&app, &admin, &c.id, &c.credential).len(), 1);
            let id = app.grants(&admin, &c.id)[0]["id"].as_str().unwrap().to_owned();
            app.delete(&format!("{}/{id}", grants_path(&c.id)), &admin).expect(204);
        },
        &[],
    );
    assert!(!points.is_empty());
}

/// The directory entries of `email`.
fn directory_entries(app: &App, admin: &str, email: &str) -> Vec<Value> {
    let r = app.get("/api/v1/members", admin);
    r.expect(200);
    r.json["members"].as_array().unwrap().iter().filter(|m| m["email"] == email).cloned().collect()
}

#[test]
fn member_invite() {
    let (app, admin) = start();
    sweep(
        &app,
        "member invite",
        |k| format!("invitee-{k}@acme.example"),
        |email| app.post("/api/v1/members", &admin, json!({"email": email})),
        |email, _| {
            assert!(directory_entries(&app, &admin, email).is_empty(), "a failed invite lists");
        },
        |email, _| {
            let entries = directory_entries(&app, &admin, email);
            assert_eq!(entries.len(), 1, "{entries:?}");
            assert_eq!(entries[0]["status"], "invited");
        },
        &[],
    );
}

#[test]
fn member_deactivate_and_reactivate() {
    let (app, admin) = start();
    let c = cluster(&app, &admin, "members".into());
    let setup = |deactivated: bool, k: u64| {
        let email = format!("m{}-{k}@acme.example", u8::from(deactivated));
        let token = app.sign_in(&email, "acme");
        let grant = app.grant_access(&admin, &c.id, &email, "view", Some("team-a"));
        let id = app.member_id(&admin, &email);
        if deactivated {
            app.patch_member(&admin, &id, json!({"status": "deactivated"})).expect(200);
        }
        (email, token, grant, id)
    };
    // Whether the member may mint a token on the cluster.
    let mints = |token: &str| {
        let r = app.post(&format!("/api/v1/clusters/{}/k8s-token", c.id), token, json!({}));
        assert!(r.status == 200 || r.status == 403, "{} {}", r.status, r.body);
        r.status == 200
    };
    let live_for = |grant: &str| -> bool {
        let state = agent_state(&app, &c.id, &c.credential);
        ids(state["grants"].as_array().unwrap(), "id").contains(grant)
    };
    let status = |email: &str| directory_entries(&app, &admin, email)[0]["status"].as_str().unwrap().to_owned();
    // Deactivation: whatever failed, the member either still has everything or has no access at all.
    sweep(
        &app,
        "member deactivate",
        |k| setup(false, k),
        |(_, _, _, id)| app.patch_member(&admin, id, json!({"status": "deactivated"})),
        |(email, token, grant, _), _| {
            if status(email) == "active" {
                assert!(live_for(grant) && mints(token), "still active, but access is gone");
            } else {
                assert!(!live_for(grant) && !mints(token), "deactivated, but access remains");
            }
        },
        |(email, token, grant, _), _| {
            assert_eq!(status(email), "deactivated");
            assert!(!live_for(grant) && !mints(token));
            assert!(app.grants(&admin, &c.id).iter().all(|g| g["id"] != grant.as_str()), "its grant still lists");
        },
        &[],
    );
    // Reactivation never revives old grants, and a failed one leaves the member without access.
    sweep(
        &app,
        "member reactivate",
        |k| setup(true, k),
        |(_, _, _, id)| app.patch_member(&admin, id, json!({"status": "active"})),
        |(_, token, grant, _), _| {
            assert!(!live_for(grant) && !mints(token), "a failed reactivation gave access");
        },
        |(email, token, grant, _), _| {
            assert_eq!(status(email), "active");
            assert!(!live_for(grant) && !mints(token), "reactivation revived a grant");
        },
        &[],
    );
}

#[test]
fn cluster_create() {
    let (app, admin) = start();
    let listed = |name: &str| -> Vec<Value> {
        let r = app.get("/api/v1/clusters", &admin);
        r.expect(200);
        r.json["clusters"].as_array().unwrap().iter().filter(|c| c["name"] == name).cloned().collect()
    };
    sweep(
        &app,
        "cluster create",
        |k| format!("new-{k}"),
        |name| app.registration(&admin, name, "standard"),
        |name, _| assert!(listed(name).is_empty(), "a failed registration lists"),
        |name, r| {
            let found = listed(name);
            assert_eq!(found.len(), 1, "{found:?}");
            if r.status == 201 {
                // The credential it answered works.
                let id = r.json["cluster"]["id"].as_str().unwrap();
                assert_eq!(found[0]["id"], id);
                agent_state(&app, id, r.json["agent_credential"].as_str().unwrap());
            }
        },
        &[],
    );
}

/// A delete whose store failed after the name's `released/{i}` guard and
/// before the `gen` increment once left the name unregistrable (registration
/// found the tombstoned claim, could not advance `gen`, and looped until the
/// request's time limit); the incarnation is now the first unreleased one.
#[test]
fn cluster_delete() {
    let (app, admin) = start();
    app.sign_in("dev@acme.example", "acme");
    let setup = |k| {
        let name = format!("doomed-{k}");
        let c = cluster(&app, &admin, name.clone());
        app.grant_access(&admin, &c.id, "dev@acme.example", "view", Some("team-a"));
        (name, c)
    };
    let is_listed = |id: &str| {
        let r = app.get("/api/v1/clusters", &admin);
        r.expect(200);
        r.json["clusters"].as_array().unwrap().iter().any(|c| c["id"] == id)
    };
    let gone = |c: &Cluster| {
        app.get(&grants_path(&c.id), &admin).expect_error(404, "not_found");
        app.get(&format!("/agent/v1/clusters/{}/state", c.id), &c.credential).expect_error(401, "unauthenticated");
    };
    sweep(
        &app,
        "cluster delete",
        setup,
        |(_, c)| app.delete(&format!("/api/v1/clusters/{}", c.id), &admin),
        |(_, c), _| {
            if is_listed(&c.id) {
                // Not deleted: whole, its grant revoked or not, never half.
                grants_whole(&app, &admin, &c.id, &c.credential);
            } else {
                gone(c);
            }
        },
        |(name, c), _| {
            assert!(!is_listed(&c.id));
            gone(c);
            // The name is free again, for a new cluster with nothing of the old.
            let (id, credential) = app.register(&admin, name, "standard");
            assert_ne!(&id, &c.id);
            assert!(grants_whole(&app, &admin, &id, &credential).is_empty());
            app.delete(&format!("/api/v1/clusters/{id}"), &admin).expect(204);
        },
        &[404],
    );
}

#[test]
fn agent_report() {
    let (app, admin) = start();
    app.sign_in("dev@acme.example", "acme");
    let setup = |k| {
        let c = cluster(&app, &admin, format!("report-{k}"));
        // Online, so that the status shown is the one reported.
        app.post(&format!("/agent/v1/clusters/{}/heartbeat", c.id), &c.credential, json!({})).expect(200);
        let grant = app.grant_access(&admin, &c.id, "dev@acme.example", "view", Some("team-a"));
        (c, grant)
    };
    let status =
        |c: &Cluster| grants_whole(&app, &admin, &c.id, &c.credential)[0]["status"].as_str().unwrap().to_owned();
    sweep(
        &app,
        "agent report",
        setup,
        |(c, grant)| {
            let body = json!({"results": [{"grant_id": grant, "state": "applied"}]});
            app.post(&format!("/agent/v1/clusters/{}/reports", c.id), &c.credential, body)
        },
        |(c, _), _| {
            let s = status(c);
            assert_eq!(s, "pending");
        },
        |(c, _), r| {
            assert_eq!(status(c), "applied");
            assert_eq!(r.json["recorded"], 1);
        },
        &[],
    );
}

#[test]
fn agent_lease_and_ack() {
    let (app, admin) = start();
    app.sign_in("dev@acme.example", "acme");
    let setup = |prefix: &str, k| {
        let c = cluster(&app, &admin, format!("{prefix}-{k}"));
        app.grant_access(&admin, &c.id, "dev@acme.example", "view", Some("team-a"));
        c
    };
    let lease = |c: &Cluster| app.post(&format!("/agent/v1/clusters/{}/jobs/lease", c.id), &c.credential, json!({}));
    let lease_points = sweep(
        &app,
        "job lease",
        |k| setup("lease", k),
        lease,
        |_, _| {},
        |c, r| assert_eq!(r.json["jobs"].as_array().unwrap().len(), leased_jobs(&app, &c.id, &c.credential).len()),
        &[],
    );
    assert!(lease_points.is_empty(), "a lease is a read: {lease_points:?}");
    let through = |c: &Cluster| lease(c).json["through"].as_i64().unwrap();
    sweep(
        &app,
        "job ack",
        |k| setup("ack", k),
        |c| app.post(&format!("/agent/v1/clusters/{}/jobs/ack", c.id), &c.credential, json!({"through": through(c)})),
        |c, _| {
            // Not acknowledged: the job is leased again (level-triggered, so only a second look).
            assert_eq!(leased_jobs(&app, &c.id, &c.credential).len(), 1);
        },
        |c, r| {
            assert_eq!(r.json["acked"], through(c));
            assert!(leased_jobs(&app, &c.id, &c.credential).is_empty());
        },
        &[],
    );
}

#[test]
fn first_sign_in() {
    let (app, admin) = start();
    let c = cluster(&app, &admin, "signin".into());
    sweep(
        &app,
        "first sign-in",
        |k| {
            let email = format!("new-{k}@acme.example");
            let token = app.token(&email, "acme", false);
            (email, token)
        },
        |(_, token)| app.get("/api/v1/clusters", token),
        |(email, _), _| {
            let entries = directory_entries(&app, &admin, email);
            assert!(entries.len() <= 1, "{entries:?}");
            assert!(entries.iter().all(|m| m["status"] == "active"), "{entries:?}");
        },
        |(email, token), _| {
            let entries = directory_entries(&app, &admin, email);
            assert_eq!(entries.len(), 1, "{entries:?}");
            assert_eq!(entries[0]["status"], "active");
            // A member in full: granted, and minting on the grant.
            let body = view_in_team_a(email);
            let created = app.grant(&admin, &c.id, body);
            assert!(created.status == 201 || created.code() == "duplicate_grant", "{}", created.body);
            app.post(&format!("/api/v1/clusters/{}/k8s-token", c.id), token, json!({})).expect(200);
        },
        &[],
    );
}

#[test]
fn token_mint() {
    let (app, admin) = start();
    let c = cluster(&app, &admin, "mint".into());
    sweep(
        &app,
        "token mint",
        |k| {
            let email = format!("minter-{k}@acme.example");
            let token = app.sign_in(&email, "acme");
            app.grant_access(&admin, &c.id, &email, "view", Some("team-a"));
            token
        },
        |token| app.post(&format!("/api/v1/clusters/{}/k8s-token", c.id), token, json!({})),
        |_, _| {},
        |_, r| {
            assert_eq!(token_rev(r.json["status"]["token"].as_str().unwrap()), 0);
        },
        &[],
    );
}
