//! Cluster deletion and agent-credential rotation in the store, under real
//! concurrency on a key-value store as weak as Spin's (see
//! `store_concurrency.rs`). Threads really run at once; nothing sleeps to
//! synchronise.

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use lanyard_core::clock::SystemClock;
use lanyard_core::ids::Secret;
use lanyard_core::kv::{KeyValue, MemoryKv};
use lanyard_core::model::{ClusterKind, ClusterName};
use lanyard_core::random::SystemRandom;
use lanyard_core::records::ClusterRecord;
use lanyard_core::store::clusters::NewCluster;
use lanyard_core::store::{AGENT_CREDENTIAL_WINDOW, Store};

const NOW: u64 = 1_800_000_000;

/// Register a cluster; a failure as the API answers it (the store's error, mapped).
fn register(kv: &MemoryKv, name: &str) -> Result<(ClusterRecord, String), lanyard_core::ApiError> {
    let name = ClusterName::parse(name).unwrap();
    let credential = Secret::new("lya_", &SystemRandom).unwrap();
    let new = NewCluster {
        org: "acme",
        name: &name,
        kind: ClusterKind::Standard,
        proxy_url: "https://p.example",
        ca_pem: None,
    };
    Store::new(kv, &SystemClock)
        .register_cluster(new, &credential, "admin@ex.io", NOW)
        .map(|record| (record, credential.expose().to_owned()))
        .map_err(lanyard_core::ApiError::from)
}

fn valid(kv: &MemoryKv, cluster: &ClusterRecord, credential: &str, at: u64) -> bool {
    Store::new(kv, &SystemClock).check_agent_credential(cluster, credential, at).unwrap()
}

fn rotate(kv: &MemoryKv, cluster: &ClusterRecord, previous_valid_until: u64) -> String {
    let credential = Secret::new("lya_", &SystemRandom).unwrap();
    Store::new(kv, &SystemClock)
        .rotate_agent_credential(&cluster.id, &credential, "admin@ex.io", previous_valid_until, NOW)
        .unwrap();
    credential.expose().to_owned()
}

#[test]
fn a_replaced_credential_lives_until_the_new_one_is_used_or_its_deadline() {
    let kv = MemoryKv::new();
    let (c, first) = register(&kv, "prod").unwrap();
    assert!(valid(&kv, &c, &first, NOW));
    assert!(!valid(&kv, &c, "lya_wrong", NOW));
    let second = rotate(&kv, &c, NOW + 100);
    assert!(valid(&kv, &c, &first, NOW + 99), "before the deadline");
    assert!(!valid(&kv, &c, &first, NOW + 100), "at the deadline");
    assert!(valid(&kv, &c, &second, NOW + 100_000), "the current credential has no deadline");

    // Using the new one retires every older one at once, deadline or not.
    let third = rotate(&kv, &c, NOW + 1_000);
    assert!(valid(&kv, &c, &second, NOW));
    assert!(valid(&kv, &c, &third, NOW));
    assert!(!valid(&kv, &c, &second, NOW));

    // Each rotation caps every older credential: a later, shorter deadline wins.
    let fourth = rotate(&kv, &c, NOW + 1_000);
    let fifth = rotate(&kv, &c, NOW);
    assert!(!valid(&kv, &c, &fourth, NOW), "the last rotation refused older ones at once");
    assert!(!valid(&kv, &c, &third, NOW));
    assert!(valid(&kv, &c, &fifth, NOW));
}

#[test]
fn only_the_newest_credentials_are_looked_at() {
    let kv = MemoryKv::new();
    let (c, first) = register(&kv, "prod").unwrap();
    for _ in 0..AGENT_CREDENTIAL_WINDOW - 1 {
        rotate(&kv, &c, NOW + 1_000);
    }
    assert!(valid(&kv, &c, &first, NOW), "still among the newest");
    let newest = rotate(&kv, &c, NOW + 1_000);
    assert!(!valid(&kv, &c, &first, NOW), "pushed out of the window");
    assert!(valid(&kv, &c, &newest, NOW));
}

#[test]
fn an_agent_authenticating_during_concurrent_rotations_is_never_refused() {
    let kv = MemoryKv::new();
    let (c, first) = register(&kv, "prod").unwrap();
    let rotations = (AGENT_CREDENTIAL_WINDOW - 1) as usize;
    let barrier = Barrier::new(rotations + 1);
    let done = AtomicBool::new(false);
    let issued: Vec<String> = thread::scope(|s| {
        let (kv, c, first, barrier, done) = (&kv, &c, &first, &barrier, &done);
        let agent = s.spawn(move || {
            barrier.wait();
            let mut checks = 0;
            while !done.load(Ordering::SeqCst) || checks == 0 {
                assert!(valid(kv, c, first, NOW), "the agent was refused during a rotation");
                checks += 1;
            }
        });
        let rotators: Vec<_> = (0..rotations)
            .map(|_| {
                s.spawn(move || {
                    barrier.wait();
                    rotate(kv, c, NOW + 3_600)
                })
            })
            .collect();
        let issued = rotators.into_iter().map(|h| h.join().unwrap()).collect();
        done.store(true, Ordering::SeqCst);
        agent.join().unwrap();
        issued
    });
    // Every issued credential works until the agent uses one; then exactly one
    // (the newest: nothing newer can retire it) is left.
    assert!(valid(&kv, &c, &first, NOW));
    for credential in &issued {
        let _ = valid(&kv, &c, credential, NOW);
    }
    let working: Vec<&String> = issued.iter().filter(|cr| valid(&kv, &c, cr, NOW)).collect();
    assert_eq!(working.len(), 1, "exactly one current credential");
    assert!(!valid(&kv, &c, &first, NOW));
}

#[test]
fn a_deleted_cluster_is_gone_and_its_name_gets_a_fresh_id() {
    let kv = MemoryKv::new();
    let (c, credential) = register(&kv, "prod").unwrap();
    let (other, _) = register(&kv, "other").unwrap();
    let store = Store::new(&kv, &SystemClock);
    assert_eq!(register(&kv, "prod").unwrap_err().code().as_str(), "duplicate_cluster");
    store.delete_cluster(&c, "admin@ex.io", NOW).unwrap();
    assert!(store.cluster(&c.id).unwrap().is_none());
    assert_eq!(store.clusters("acme").unwrap(), vec![other.clone()]);
    assert!(store.epoch(&c.id).unwrap() >= 1, "its tokens are revoked");
    let (again, _) = register(&kv, "prod").unwrap();
    assert_ne!(again.id, c.id);
    assert!(!valid(&kv, &again, &credential, NOW), "the old credential is worthless on the new cluster");
    assert_eq!(store.epoch(&again.id).unwrap(), 0);
    let names: Vec<String> = store.clusters("acme").unwrap().into_iter().map(|c| c.name.to_string()).collect();
    assert_eq!(names, ["other", "prod"]);
}

#[test]
fn a_deleter_that_died_before_releasing_the_name_does_not_block_it() {
    let kv = MemoryKv::new();
    let (c, _) = register(&kv, "prod").unwrap();
    // The tombstone alone, as a deleter that crashed right after writing it leaves it. Key layout: store.rs.
    kv.set(&format!("v1/cluster/{}/deleted", c.id), br#"{"by":"admin@ex.io","at":1800000000}"#).unwrap();
    assert!(Store::new(&kv, &SystemClock).cluster(&c.id).unwrap().is_none());
    let (again, _) = register(&kv, "prod").unwrap();
    assert_ne!(again.id, c.id);
    assert_eq!(register(&kv, "prod").unwrap_err().code().as_str(), "duplicate_cluster");
}

#[test]
fn deleting_and_registering_a_name_concurrently_leaves_at_most_one_cluster() {
    for round in 0..30 {
        let kv = MemoryKv::new();
        let (c, _) = register(&kv, "prod").unwrap();
        let barrier = Barrier::new(4);
        let results: Vec<_> = thread::scope(|s| {
            let (kv, c, barrier) = (&kv, &c, &barrier);
            let deleter = s.spawn(move || {
                barrier.wait();
                Store::new(kv, &SystemClock).delete_cluster(c, "admin@ex.io", NOW).unwrap();
            });
            let registrants: Vec<_> = (0..3)
                .map(|_| {
                    s.spawn(move || {
                        barrier.wait();
                        register(kv, "prod").map(|(r, _)| r.id)
                    })
                })
                .collect();
            deleter.join().unwrap();
            registrants.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for r in &results {
            if let Err(e) = r {
                assert_eq!(e.code().as_str(), "duplicate_cluster", "round {round}");
            }
        }
        let created: Vec<&lanyard_core::ids::ClusterId> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert!(created.len() <= 1, "round {round}: {results:?}");
        let live = Store::new(&kv, &SystemClock).clusters("acme").unwrap();
        assert_eq!(live.len(), created.len(), "round {round}: {live:?}");
        assert!(live.iter().all(|l| l.id != c.id), "round {round}: the deleted cluster is back");
        // The next registration agrees with what is listed.
        match register(&kv, "prod") {
            Ok(_) => assert!(live.is_empty(), "round {round}: a second prod beside {live:?}"),
            Err(e) => assert_eq!((e.code().as_str(), live.len()), ("duplicate_cluster", 1), "round {round}"),
        }
    }
}
