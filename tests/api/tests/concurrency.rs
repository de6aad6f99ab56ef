//! Concurrent writers through the real host and its SQLite store, which is
//! exactly as weak as Spin's: requests really run in parallel, and nothing
//! sleeps to synchronise.

use std::sync::Barrier;
use std::thread;

use lanyard_api_tests::{App, ClusterFixture, Fixture};
use serde_json::json;

#[test]
fn two_admins_creating_different_grants_at_once_both_succeed() {
    let app = App::start();
    let alice = app.token("alice@acme.example", "acme", true);
    let bob = app.token("bob@acme.example", "acme", true);
    let cluster = app.cluster(&alice, "prod", "standard");
    let per_admin = 25;
    for i in 0..per_admin {
        app.sign_in(&format!("u{i}@acme.example"), "acme");
    }
    let barrier = Barrier::new(2);
    let ids: Vec<String> = thread::scope(|s| {
        let hs: Vec<_> = [(&alice, "team-a"), (&bob, "team-b")]
            .into_iter()
            .map(|(admin, ns)| {
                let (app, barrier, cluster) = (&app, &barrier, &cluster);
                s.spawn(move || {
                    barrier.wait();
                    (0..per_admin)
                        .map(|i| {
                            let r = app.grant(admin, cluster, json!({"email": format!("u{i}@acme.example"), "role": "edit", "scope": "namespace", "namespace": ns}));
                            r.expect(201);
                            r.json["id"].as_str().unwrap().to_owned()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let listed = app.grants(&alice, &cluster);
    assert_eq!(listed.len(), 2 * per_admin);
    for id in ids {
        assert!(listed.iter().any(|g| g["id"] == id.as_str()), "{id} is missing from the list");
    }
}

#[test]
fn concurrent_identical_creates_give_one_grant() {
    let ClusterFixture { app, admin, cluster, .. } =
        Fixture::start().with_cluster("prod").with_member("dev@acme.example");
    let body = json!({"email": "dev@acme.example", "role": "view", "scope": "namespace", "namespace": "team-a"});
    for round in 0..5 {
        let n = 8;
        let barrier = Barrier::new(n);
        let statuses: Vec<u16> = thread::scope(|s| {
            let hs: Vec<_> = (0..n)
                .map(|_| {
                    let (app, barrier, admin, cluster, body) = (&app, &barrier, &admin, &cluster, &body);
                    s.spawn(move || {
                        barrier.wait();
                        let r = app.grant(admin, cluster, body.clone());
                        if r.status == 409 {
                            assert_eq!(r.code(), "duplicate_grant");
                        }
                        r.status
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(statuses.iter().filter(|&&s| s == 201).count(), 1, "round {round}: {statuses:?}");
        assert!(statuses.iter().all(|&s| s == 201 || s == 409), "round {round}: {statuses:?}");
        let listed = app.grants(&admin, &cluster);
        assert_eq!(listed.len(), 1, "round {round}");
        // Clear for the next round.
        let id = listed[0]["id"].as_str().unwrap();
        app.delete(&format!("/api/v1/clusters/{cluster}/access/grants/{id}"), &admin).expect(204);
    }
}

#[test]
fn a_delete_racing_a_create_leaves_a_consistent_state() {
    let ClusterFixture { app, admin, cluster, .. } =
        Fixture::start().with_cluster("prod").with_member("dev@acme.example");
    let body = json!({"email": "dev@acme.example", "role": "admin", "scope": "namespace", "namespace": "ops"});
    for round in 0..5 {
        let first = app.grant(&admin, &cluster, body.clone());
        first.expect(201);
        let id = first.json["id"].as_str().unwrap().to_owned();
        let barrier = Barrier::new(2);
        let (deleted, created) = thread::scope(|s| {
            let (app, barrier, admin, cluster, body, id) = (&app, &barrier, &admin, &cluster, &body, &id);
            let d = s.spawn(move || {
                barrier.wait();
                app.delete(&format!("/api/v1/clusters/{cluster}/access/grants/{id}"), admin).status
            });
            let c = s.spawn(move || {
                barrier.wait();
                app.grant(admin, cluster, body.clone()).status
            });
            (d.join().unwrap(), c.join().unwrap())
        });
        assert_eq!(deleted, 204, "round {round}");
        assert!(created == 201 || created == 409, "round {round}: {created}");
        let listed = app.grants(&admin, &cluster);
        assert_eq!(
            listed.len(),
            usize::from(created == 201),
            "round {round}: delete {deleted}, create {created}, listed {listed:?}"
        );
        // The next create agrees with the list.
        let again = app.grant(&admin, &cluster, body.clone());
        if listed.is_empty() {
            again.expect(201);
        } else {
            again.expect_error(409, "duplicate_grant");
        }
        for g in app.grants(&admin, &cluster) {
            app.delete(&format!("/api/v1/clusters/{cluster}/access/grants/{}", g["id"].as_str().unwrap()), &admin)
                .expect(204);
        }
    }
}
