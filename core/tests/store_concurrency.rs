//! The store's guarantees under real concurrency, on a key-value store that is
//! exactly as weak as Spin's (each operation locked on its own; no CAS, no
//! transactions). Threads really run at once; nothing sleeps to synchronise.

// These tests time real threads against real deadlines.
#![allow(clippy::disallowed_methods)]

use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use lanyard_core::ApiError;
use lanyard_core::clock::SystemClock;
use lanyard_core::ids::{ClusterId, GrantId, MemberId};
use lanyard_core::kv::{KeyValue, MemoryKv};
use lanyard_core::model::{Email, GrantSpec, Namespace, Role, Scope};
use lanyard_core::store::{Store, StoreError, member_id};

const CLUSTER_ID: &str = "c_000000000000000000000001";

fn cluster() -> ClusterId {
    ClusterId::parse(CLUSTER_ID).unwrap()
}

fn member() -> MemberId {
    MemberId::derive(&["m_x"])
}
const NOW: u64 = 1_800_000_000;

fn spec(email: &str, role: Role, ns: Option<&str>) -> GrantSpec {
    let scope = ns.map_or(Scope::Cluster, |n| Scope::Namespace(Namespace::parse(n).unwrap()));
    GrantSpec::new(Email::parse(email).unwrap(), role, scope).unwrap()
}

/// A store failure as the API answers it (the one mapping, in the API layer).
trait AsApi {
    fn api(self) -> ApiError;
}

impl AsApi for StoreError {
    fn api(self) -> ApiError {
        ApiError::from(self)
    }
}

/// Create a grant; a failure as the API answers it (the store's error, mapped).
fn create(kv: &MemoryKv, s: &GrantSpec) -> Result<GrantId, ApiError> {
    Store::new(kv, &SystemClock)
        .create_grant(&cluster(), s, &member(), "admin@ex.io", NOW)
        .map(|g| g.id)
        .map_err(ApiError::from)
}

fn live_ids(kv: &MemoryKv) -> Vec<GrantId> {
    let mut ids: Vec<GrantId> =
        Store::new(kv, &SystemClock).grants(&cluster()).unwrap().into_iter().map(|g| g.grant.id).collect();
    ids.sort();
    ids
}

#[test]
fn concurrent_different_creates_all_succeed_and_are_all_listed() {
    let kv = MemoryKv::new();
    let threads = 8;
    let per_thread = 40;
    let barrier = Barrier::new(threads);
    let mut created: Vec<GrantId> = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (kv, barrier) = (&kv, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    (0..per_thread)
                        .map(|i| create(kv, &spec(&format!("u{t}-{i}@ex.io"), Role::View, Some("team-a"))).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    created.sort();
    assert_eq!(created.len(), threads * per_thread);
    assert_eq!(live_ids(&kv), created, "every created grant is listed, once");
}

#[test]
fn concurrent_identical_creates_give_one_grant() {
    for round in 0..20 {
        let kv = MemoryKv::new();
        let threads = 8;
        let barrier = Barrier::new(threads);
        let s = spec("dup@ex.io", Role::Edit, Some("team-b"));
        let results: Vec<_> = thread::scope(|sc| {
            let hs: Vec<_> = (0..threads)
                .map(|_| {
                    let (kv, barrier, s) = (&kv, &barrier, &s);
                    sc.spawn(move || {
                        barrier.wait();
                        create(kv, s)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let ok: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(ok.len(), 1, "round {round}: exactly one create succeeds: {results:?}");
        for r in &results {
            if let Err(e) = r {
                assert_eq!(e.code().as_str(), "duplicate_grant", "round {round}");
            }
        }
        assert_eq!(live_ids(&kv), vec![ok[0].clone()], "round {round}");
    }
}

#[test]
fn delete_racing_create_leaves_a_consistent_state() {
    let s = spec("race@ex.io", Role::Admin, Some("team-c"));
    for round in 0..30 {
        let kv = MemoryKv::new();
        let first = create(&kv, &s).unwrap();
        let barrier = Barrier::new(3);
        thread::scope(|sc| {
            let (kv, barrier, s, first) = (&kv, &barrier, &s, &first);
            sc.spawn(move || {
                barrier.wait();
                let _ = Store::new(kv, &SystemClock).delete_grant(&cluster(), first, NOW);
            });
            for _ in 0..2 {
                sc.spawn(move || {
                    barrier.wait();
                    let _ = create(kv, s);
                });
            }
        });
        // At rest: at most one live grant for the spec, and the next create
        // agrees with what is listed.
        let live = live_ids(&kv);
        assert!(live.len() <= 1, "round {round}: {live:?}");
        match create(&kv, &s) {
            Ok(id) => assert!(live.is_empty(), "round {round}: created {id} beside live {live:?}"),
            Err(e) => {
                assert_eq!(e.code().as_str(), "duplicate_grant");
                assert_eq!(live.len(), 1, "round {round}: duplicate refused but nothing is live");
            }
        }
        assert_eq!(live_ids(&kv).len(), 1, "round {round}");
    }
}

#[test]
fn deleted_grants_can_be_created_again_and_double_deletes_are_harmless() {
    let kv = MemoryKv::new();
    let s = spec("again@ex.io", Role::View, None);
    let a = create(&kv, &s).unwrap();
    assert_eq!(create(&kv, &s).unwrap_err().code().as_str(), "duplicate_grant");
    Store::new(&kv, &SystemClock).delete_grant(&cluster(), &a, NOW).unwrap();
    assert_eq!(
        Store::new(&kv, &SystemClock).delete_grant(&cluster(), &a, NOW).unwrap_err().api().code().as_str(),
        "not_found"
    );
    let b = create(&kv, &s).unwrap();
    assert_ne!(a, b, "a recreated grant has a new id");
    assert_eq!(live_ids(&kv), vec![b]);
}

#[test]
fn an_abandoned_claim_is_completed_by_the_next_create() {
    let kv = MemoryKv::new();
    let s = spec("crash@ex.io", Role::View, None);
    // A create that died right after winning its claim (generation 1, after
    // one create and delete), before writing anything else. Key layout: store.rs.
    let first = create(&kv, &s).unwrap();
    Store::new(&kv, &SystemClock).delete_grant(&cluster(), &first, NOW).unwrap();
    let claim = format!("v1/cluster/{CLUSTER_ID}/e/0/claim/{}/1", s.fingerprint());
    assert_eq!(kv.increment(&claim, 1).unwrap(), 1, "the dead writer's claim");
    let started = Instant::now();
    let store = Store::new(&kv, &SystemClock).with_claim_patience(Duration::from_millis(200));
    let id = store.create_grant(&cluster(), &s, &member(), "admin@ex.io", NOW).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200), "it waited for the in-flight writer first");
    assert_eq!(live_ids(&kv), vec![id.id]);
    assert_eq!(create(&kv, &s).unwrap_err().code().as_str(), "duplicate_grant");
}

#[test]
fn revoke_all_kills_every_grant_at_once_even_under_concurrent_creates() {
    let kv = MemoryKv::new();
    let before: Vec<GrantId> =
        (0..50).map(|i| create(&kv, &spec(&format!("p{i}@ex.io"), Role::View, None)).unwrap()).collect();
    let barrier = Barrier::new(2);
    let (revocation, during) = thread::scope(|sc| {
        let (kv, barrier) = (&kv, &barrier);
        let creator = sc.spawn(move || {
            barrier.wait();
            (0..50).map(|i| create(kv, &spec(&format!("q{i}@ex.io"), Role::View, None)).unwrap()).collect::<Vec<_>>()
        });
        barrier.wait();
        let r = Store::new(kv, &SystemClock).revoke_all(&cluster(), NOW).unwrap();
        (r, creator.join().unwrap())
    });
    assert_eq!(revocation.epoch, 1);
    let live = live_ids(&kv);
    for id in &before {
        assert!(!live.contains(id), "a grant from before revoke-all survived");
        assert!(Store::new(&kv, &SystemClock).grant(&cluster(), id).unwrap().is_none());
    }
    // Creates that raced the revoke-all either died with the old epoch or live
    // in the new one; none is lost from the listing while live.
    for id in &during {
        let is_live = Store::new(&kv, &SystemClock).grant(&cluster(), id).unwrap().is_some();
        assert_eq!(is_live, live.contains(id));
    }
    // The same specs can be granted again after revoke-all.
    create(&kv, &spec("p0@ex.io", Role::View, None)).unwrap();
}

fn identity(issuer: &str, subject: &str, email: &str) -> lanyard_core::identity::Identity {
    lanyard_core::identity::Identity {
        issuer: issuer.into(),
        subject: subject.into(),
        email: Email::parse(email).unwrap(),
        name: None,
        org: "acme".into(),
        role: lanyard_core::model::OrgRole::Member,
        expires_at: u64::MAX,
    }
}

#[test]
fn concurrent_first_sign_ins_list_a_member_once() {
    let kv = MemoryKv::new();
    let mut identity = identity("https://sso", "s1", "new@ex.io");
    identity.name = Some("New".into());
    let barrier = Barrier::new(8);
    thread::scope(|sc| {
        for _ in 0..8 {
            let (kv, barrier, identity) = (&kv, &barrier, &identity);
            sc.spawn(move || {
                barrier.wait();
                Store::new(kv, &SystemClock).admit(identity, NOW).unwrap();
            });
        }
    });
    let members = Store::new(&kv, &SystemClock).members("acme").unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].id, member_id("acme", &identity.email));
}

#[test]
fn a_member_is_pinned_to_the_identity_that_first_signed_in() {
    let kv = MemoryKv::new();
    let store = Store::new(&kv, &SystemClock);
    let first = identity("https://sso.acme", "alice-1", "alice@ex.io");
    let m = store.admit(&first, NOW).unwrap();
    for (other, what) in [
        (identity("https://sso.acme", "mallory", "alice@ex.io"), "another subject of the same issuer"),
        (identity("https://other-idp", "alice-1", "alice@ex.io"), "the same subject at another issuer"),
    ] {
        let err = store.admit(&other, NOW + 1).unwrap_err().api();
        assert_eq!(err.status(), 403, "{what}");
        assert!(
            err.message().contains("release_identity") && err.message().contains(m.id.as_str()),
            "{what}: {}",
            err.message()
        );
    }
    // The pinned identity still signs in, and its profile was never overwritten.
    assert_eq!(store.admit(&first, NOW + 2).unwrap().id, m.id);
    let profile =
        kv.get(&format!("v1/org/{}/member/{}", &lanyard_core::ids::digest_hex(&["acme"])[..24], m.id)).unwrap();
    let profile: serde_json::Value = serde_json::from_slice(&profile.unwrap()).unwrap();
    assert_eq!((profile["issuer"].as_str(), profile["subject"].as_str()), (Some("https://sso.acme"), Some("alice-1")));
}

#[test]
fn concurrent_first_sign_ins_of_different_identities_pin_exactly_one() {
    for round in 0..20 {
        let kv = MemoryKv::new();
        let threads = 8;
        let barrier = Barrier::new(threads);
        let results: Vec<(usize, Result<_, _>)> = thread::scope(|sc| {
            let hs: Vec<_> = (0..threads)
                .map(|t| {
                    let (kv, barrier) = (&kv, &barrier);
                    sc.spawn(move || {
                        let me = identity("https://sso", &format!("subject-{t}"), "contested@ex.io");
                        barrier.wait();
                        (t, Store::new(kv, &SystemClock).admit(&me, NOW))
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<usize> = results.iter().filter(|(_, r)| r.is_ok()).map(|(t, _)| *t).collect();
        assert_eq!(winners.len(), 1, "round {round}: exactly one identity is admitted: {results:?}");
        for (_, r) in &results {
            if let Err(e) = r {
                assert_eq!(e.clone().api().status(), 403, "round {round}: {e:?}");
            }
        }
        // At rest the pin is the winner's, for every later sign-in.
        for t in 0..threads {
            let later = Store::new(&kv, &SystemClock)
                .admit(&identity("https://sso", &format!("subject-{t}"), "contested@ex.io"), NOW + 1);
            assert_eq!(later.is_ok(), t == winners[0], "round {round}: subject-{t}");
        }
        assert_eq!(Store::new(&kv, &SystemClock).members("acme").unwrap().len(), 1, "round {round}");
    }
}

#[test]
fn an_admin_release_lets_the_next_sign_in_pin_the_member_again() {
    let kv = MemoryKv::new();
    let store = Store::new(&kv, &SystemClock);
    let old = identity("https://old-idp", "u-1", "moved@ex.io");
    let new = identity("https://new-idp", "u-9", "moved@ex.io");
    let m = store.admit(&old, NOW).unwrap();
    store.set_deactivated("acme", &m.id, true, "admin@ex.io", NOW).unwrap();
    assert_eq!(store.admit(&new, NOW).unwrap_err().api().status(), 403);
    assert_eq!(store.release_identity("acme", &m.id).unwrap().id, m.id);
    // The first sign-in after the release takes the member over, status included.
    let taken = store.admit(&new, NOW + 1).unwrap();
    assert_eq!((taken.id.as_str(), taken.status), (m.id.as_str(), lanyard_core::model::MemberStatus::Deactivated));
    assert_eq!(store.admit(&old, NOW + 2).unwrap_err().api().status(), 403, "the old identity is now refused");
    // Releasing twice before anyone signs in releases once; an unknown member is not found.
    store.release_identity("acme", &m.id).unwrap();
    store.release_identity("acme", &m.id).unwrap();
    store.admit(&old, NOW + 3).unwrap();
    assert_eq!(store.admit(&new, NOW + 4).unwrap_err().api().status(), 403);
    assert_eq!(
        store
            .release_identity("acme", &MemberId::parse("m_000000000000000000000000").unwrap())
            .unwrap_err()
            .api()
            .code()
            .as_str(),
        "not_found"
    );
}

#[test]
fn an_abandoned_pin_claim_is_given_up_after_the_patience() {
    let kv = MemoryKv::new();
    let me = identity("https://sso", "s-1", "crash@ex.io");
    let id = member_id("acme", &me.email);
    // A first sign-in that died right after winning the pin claim (generation 0), before writing the pin.
    let claim = format!("v1/org/{}/member/{id}/pin/0/claim", &lanyard_core::ids::digest_hex(&["acme"])[..24]);
    assert_eq!(kv.increment(&claim, 1).unwrap(), 1, "the dead writer's claim");
    let started = Instant::now();
    let store = Store::new(&kv, &SystemClock).with_claim_patience(Duration::from_millis(200));
    assert_eq!(store.admit(&me, NOW).unwrap().id, id);
    assert!(started.elapsed() >= Duration::from_millis(200), "it waited for the in-flight writer first");
    assert_eq!(store.admit(&identity("https://sso", "s-2", "crash@ex.io"), NOW).unwrap_err().api().status(), 403);
}

#[test]
fn a_member_from_before_pinning_is_pinned_to_its_recorded_identity() {
    let kv = MemoryKv::new();
    let real = identity("https://sso", "real", "early@ex.io");
    let id = member_id("acme", &real.email);
    let key = format!("v1/org/{}/member/{id}", &lanyard_core::ids::digest_hex(&["acme"])[..24]);
    let profile = serde_json::json!({
        "id": id, "email": "early@ex.io", "issuer": "https://sso", "subject": "real", "role": "member", "joined_at": NOW - 100
    });
    kv.set(&key, profile.to_string().as_bytes()).unwrap();
    let store = Store::new(&kv, &SystemClock);
    assert_eq!(
        store.admit(&identity("https://sso", "first-after-upgrade", "early@ex.io"), NOW).unwrap_err().api().status(),
        403
    );
    assert_eq!(store.admit(&real, NOW).unwrap().id, id);
}

#[test]
fn a_sign_in_never_undoes_a_deactivation() {
    use lanyard_core::model::MemberStatus;
    let kv = MemoryKv::new();
    let mut identity = identity("https://sso", "s1", "gone@ex.io");
    let store = Store::new(&kv, &SystemClock);
    let m = store.admit(&identity, NOW).unwrap();
    store.set_deactivated("acme", &m.id, true, "admin@ex.io", NOW).unwrap();
    identity.name = Some("Changed name".into()); // forces a profile write
    assert_eq!(store.admit(&identity, NOW + 1).unwrap().status, MemberStatus::Deactivated);
}
