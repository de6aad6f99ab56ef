//! The endpoints driven in-process through [`lanyard_core::serve`], for the
//! properties that need a key-value store that misbehaves on cue: a
//! revoke-all landing in the middle of a token mint, a store that fails half
//! way through a deactivation, and the mint rate limit at minute boundaries
//! (with a clock the test sets). The HTTP tests in `tests/api` cover the same
//! endpoints through the real components; these cover the interleavings.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use jwt_simple::prelude::Ed25519KeyPair;
use lanyard_core::clock::SystemClock;
use lanyard_core::dev::{self, SessionClaims};
use lanyard_core::endpoint::Endpoint;
use lanyard_core::http::{Method, Request, Response};
use lanyard_core::ids::{ClusterId, GrantId, MemberId};
use lanyard_core::kv::{KeyValue, KvError, MemoryKv};
use lanyard_core::outbound::NoOutbound;
use lanyard_core::random::SystemRandom;
use lanyard_core::store::Store;
use lanyard_core::{Env, serve, token};
use serde_json::{Value, json};

const NOW: u64 = 1_800_000_000;

/// An id the API answered with, as the store takes it.
fn cluster_id(id: &str) -> ClusterId {
    ClusterId::parse(id).unwrap()
}

fn grant_id(id: &str) -> GrantId {
    GrantId::parse(id).unwrap()
}

/// A control plane in-process: the variables a deployment would set, a
/// session issuer, and a key-value store.
struct Core<K: KeyValue> {
    kv: K,
    vars: BTreeMap<String, String>,
    issuer: Ed25519KeyPair,
    signing: String,
}

impl<K: KeyValue> Core<K> {
    fn new(kv: K) -> Self {
        let issuer = dev::new_key(&lanyard_core::random::SystemRandom).unwrap();
        let signing = format!("[{}]", dev::new_key(&lanyard_core::random::SystemRandom).unwrap().to_jwk());
        let jwks = token::SigningKeys::parse(&signing).unwrap().jwks().to_string();
        let mut vars = BTreeMap::new();
        vars.insert("access_gateway_enabled".to_owned(), "true".to_owned());
        vars.insert(
            "session_issuers".to_owned(),
            json!([dev::issuer_entry(&issuer, dev::DEV_ISSUER, dev::AUDIENCE, &["acme"])]).to_string(),
        );
        vars.insert("development_mode".to_owned(), "true".to_owned());
        vars.insert("token_signing_keys".to_owned(), signing.clone());
        vars.insert("token_jwks".to_owned(), jwks);
        Core { kv, vars, issuer, signing }
    }

    fn session(&self, email: &str, admin: bool) -> String {
        let claims = SessionClaims { email: email.into(), org: "acme".into(), admin, name: None, ttl_secs: 3600 };
        dev::mint_session(&self.issuer, dev::DEV_ISSUER, dev::AUDIENCE, &claims, NOW - 10)
    }

    /// One request as Spin's router would pass it: `route` is the matched
    /// route, `params` its parameters.
    fn call(
        &self,
        endpoint: Endpoint,
        method: Method,
        route: &str,
        params: &[(&str, &str)],
        auth: &str,
        body: Option<Value>,
    ) -> Response {
        let mut path = route.to_owned();
        for (name, value) in params {
            path = path.replace(&format!(":{name}"), value);
        }
        let mut req =
            Request::new(method, path).with_header("authorization", format!("Bearer {auth}")).on_route(route, params);
        if let Some(body) = body {
            req = req.with_header("content-type", "application/json").with_body(body.to_string());
        }
        serve(
            endpoint,
            &req,
            &Env {
                kv: &self.kv,
                vars: &self.vars,
                now: NOW,
                clock: &SystemClock,
                random: &SystemRandom,
                outbound: &NoOutbound,
            },
        )
    }

    fn json(resp: &Response, status: u16) -> Value {
        let body: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        assert_eq!(resp.status, status, "{body}");
        body
    }

    /// Sign in (a member is known once they made a request).
    fn sign_in(&self, token: &str) {
        Self::json(&self.call(Endpoint::Clusters, Method::Get, "/api/v1/clusters", &[], token, None), 200);
    }

    /// Register a cluster; returns its id and agent credential.
    fn register(&self, admin: &str, name: &str) -> (String, String) {
        let body = json!({"name": name, "kind": "standard", "proxy_url": "https://proxy.example"});
        let resp =
            Self::json(&self.call(Endpoint::Clusters, Method::Post, "/api/v1/clusters", &[], admin, Some(body)), 201);
        (resp["cluster"]["id"].as_str().unwrap().to_owned(), resp["agent_credential"].as_str().unwrap().to_owned())
    }

    fn grant(&self, admin: &str, cluster: &str, email: &str) -> String {
        let body = json!({"email": email, "role": "view", "scope": "cluster"});
        let route = "/api/v1/clusters/:cluster_id/access/grants";
        let resp = Self::json(
            &self.call(Endpoint::Grants, Method::Post, route, &[("cluster_id", cluster)], admin, Some(body)),
            201,
        );
        resp["id"].as_str().unwrap().to_owned()
    }

    fn mint(&self, cluster: &str, token: &str) -> Response {
        self.call(
            Endpoint::K8sToken,
            Method::Post,
            "/api/v1/clusters/:cluster_id/k8s-token",
            &[("cluster_id", cluster)],
            token,
            None,
        )
    }

    /// The grant ids in the agent's access state.
    fn agent_state(&self, cluster: &str, credential: &str) -> Vec<String> {
        let route = "/agent/v1/clusters/:cluster_id/state";
        let state = Self::json(
            &self.call(Endpoint::AgentState, Method::Get, route, &[("cluster_id", cluster)], credential, None),
            200,
        );
        state["grants"].as_array().unwrap().iter().map(|g| g["id"].as_str().unwrap().to_owned()).collect()
    }

    fn set_status(&self, admin: &str, member_id: &str, status: &str) -> Response {
        let body = json!({ "status": status });
        self.call(
            Endpoint::Directory,
            Method::Patch,
            "/api/v1/members/:member_id",
            &[("member_id", member_id)],
            admin,
            Some(body),
        )
    }

    fn member_id(&self, admin: &str, email: &str) -> String {
        let dir = Self::json(&self.call(Endpoint::Directory, Method::Get, "/api/v1/members", &[], admin, None), 200);
        let member = dir["members"].as_array().unwrap().iter().find(|m| m["email"] == email).unwrap();
        member["id"].as_str().unwrap().to_owned()
    }
}

/// A key-value store that misbehaves on cue: while `revoke_on_epoch_read` is
/// `n > 0`, a revoke-all lands just before the `n`th read of a revocation
/// epoch; while `failing_deletes` is set, batch deletes fail.
#[derive(Default)]
struct ScriptedKv {
    inner: MemoryKv,
    revoke_on_epoch_read: AtomicUsize,
    epoch_reads: AtomicUsize,
    failing_deletes: AtomicBool,
}

impl KeyValue for ScriptedKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.inner.set(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.inner.delete(key)
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        let nth = self.revoke_on_epoch_read.load(Ordering::SeqCst);
        if nth > 0
            && delta == 0
            && key.ends_with("/epoch")
            && self.epoch_reads.fetch_add(1, Ordering::SeqCst) + 1 == nth
        {
            // What revoke-all does at its linearisation point.
            self.inner.increment(key, 1)?;
        }
        self.inner.increment(key, delta)
    }
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.inner.get_many(keys)
    }
    fn delete_many(&self, keys: &[String]) -> Result<(), KvError> {
        if self.failing_deletes.load(Ordering::SeqCst) {
            return Err(KvError("injected failure".into()));
        }
        self.inner.delete_many(keys)
    }
}

#[test]
fn a_revoke_all_during_a_mint_never_yields_a_token_that_outlives_it() {
    // Wherever the revoke-all lands among the mint's reads of the epoch, a
    // token that the cluster's current epoch accepts must rest on a grant that
    // is live at that epoch.
    for nth in 1..=3 {
        let core = Core::new(ScriptedKv::default());
        let admin = core.session("admin@acme.example", true);
        let dev = core.session("dev@acme.example", false);
        core.sign_in(&admin);
        core.sign_in(&dev);
        let (cluster, _) = core.register(&admin, "prod");
        core.grant(&admin, &cluster, "dev@acme.example");
        core.kv.revoke_on_epoch_read.store(nth, Ordering::SeqCst);
        let resp = core.mint(&cluster, &dev);
        core.kv.revoke_on_epoch_read.store(0, Ordering::SeqCst);
        let store = Store::new(&core.kv, &SystemClock);
        let id = cluster_id(&cluster);
        if store.epoch(&id).unwrap() == 0 {
            // The mint read the epoch fewer than `nth` times: the revoke-all comes after it.
            store.revoke_all(&id, NOW).unwrap();
        }
        let epoch = store.epoch(&id).unwrap();
        assert_eq!(epoch, 1);
        if resp.status != 200 {
            assert_eq!(resp.status, 403, "no grant left: refused (nth {nth})");
            continue;
        }
        let body: Value = serde_json::from_slice(&resp.body).unwrap();
        let jwt = body["status"]["token"].as_str().unwrap();
        let jwks = token::SigningKeys::parse(&core.signing).unwrap().jwks();
        let accepted = token::verify(jwt, &jwks, &id, epoch, NOW).is_ok();
        let still_granted = !store.grants(&id).unwrap().is_empty();
        assert!(!accepted || still_granted, "a token minted across a revoke-all is still accepted (nth {nth})");
    }
}

#[test]
fn deactivation_ends_access_even_when_it_fails_half_way_and_reactivation_revives_nothing() {
    let core = Core::new(ScriptedKv::default());
    let admin = core.session("admin@acme.example", true);
    let dev = core.session("dev@acme.example", false);
    core.sign_in(&admin);
    core.sign_in(&dev);
    let (prod, prod_credential) = core.register(&admin, "prod");
    let (stage, stage_credential) = core.register(&admin, "stage");
    let dev_prod = core.grant(&admin, &prod, "dev@acme.example");
    core.grant(&admin, &stage, "dev@acme.example");
    let admin_prod = core.grant(&admin, &prod, "admin@acme.example");
    assert_eq!(core.agent_state(&prod, &prod_credential).len(), 2);
    let dev_id = core.member_id(&admin, "dev@acme.example");

    // The store fails after the deactivation marker is written: the request
    // fails, but the member's grants are out of the access state already.
    core.kv.failing_deletes.store(true, Ordering::SeqCst);
    assert_eq!(core.set_status(&admin, &dev_id, "deactivated").status, 503);
    core.kv.failing_deletes.store(false, Ordering::SeqCst);
    assert_eq!(core.agent_state(&prod, &prod_credential), vec![admin_prod.clone()], "deactivated: out of the state");
    assert!(core.agent_state(&stage, &stage_credential).is_empty());
    assert!(
        Store::new(&core.kv, &SystemClock).grant(&cluster_id(&prod), &grant_id(&dev_prod)).unwrap().is_some(),
        "the failed request left the record"
    );

    // Reactivation deletes what the failed deactivation left, so nothing revives.
    assert_eq!(core.set_status(&admin, &dev_id, "active").status, 200);
    assert_eq!(core.agent_state(&prod, &prod_credential), vec![admin_prod.clone()]);
    assert!(core.agent_state(&stage, &stage_credential).is_empty());
    assert_eq!(core.mint(&prod, &dev).status, 403, "no grant: no token after reactivation");

    // A clean deactivation deletes the grants, with a job for each.
    let again = core.grant(&admin, &prod, "dev@acme.example");
    assert_eq!(core.set_status(&admin, &dev_id, "deactivated").status, 200);
    assert!(
        Store::new(&core.kv, &SystemClock).grant(&cluster_id(&prod), &grant_id(&again)).unwrap().is_none(),
        "deleted"
    );
    assert_eq!(core.agent_state(&prod, &prod_credential), vec![admin_prod]);
    assert_eq!(core.mint(&prod, &dev).status, 403, "deactivated: no token");
}

#[test]
fn the_mint_limit_slides_across_minute_boundaries() {
    let kv = MemoryKv::new();
    let store = Store::new(&kv, &SystemClock);
    let member = MemberId::derive(&["m_1"]);
    let minute = NOW / 60 * 60;
    // 30 at the end of one minute, then the next minute's start is refused:
    // a burst across the boundary gets no second allowance.
    for i in 0..30 {
        store.limit_token_mints(&member, 30, minute + 58).unwrap_or_else(|e| panic!("mint {i}: {e}"));
    }
    let err = lanyard_core::ApiError::from(store.limit_token_mints(&member, 30, minute + 61).unwrap_err());
    assert_eq!(err.status(), 429);
    let lanyard_core::ApiError::RateLimited { retry_after } = err else { unreachable!() };
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // Once the previous minute has slid out, minting works again.
    store.limit_token_mints(&member, 30, minute + 60 + 59).unwrap();
    store.limit_token_mints(&member, 30, minute + 180).unwrap();
}

#[test]
fn mint_counters_are_deleted_once_they_no_longer_count() {
    let kv = MemoryKv::new();
    let store = Store::new(&kv, &SystemClock);
    let member = MemberId::derive(&["m_1"]);
    // A member who mints now and then over a day, with gaps.
    for hour in 0..24u64 {
        for minute in [0u64, 1, 7] {
            store.limit_token_mints(&member, 30, NOW + hour * 3600 + minute * 60).unwrap();
        }
    }
    let keys: Vec<String> = kv.snapshot().into_iter().map(|(k, _)| k).filter(|k| k.starts_with("v1/rate/")).collect();
    assert!(keys.len() <= 3, "rate counters pile up: {keys:?}");
}
