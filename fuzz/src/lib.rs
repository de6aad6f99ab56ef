//! What Lanyard's fuzz targets share: a control plane seeded once, in
//! memory (an admin and a member of `acme` who signed in, a registered
//! cluster with its agent credential, one grant), that each case forks, so
//! that every case starts from the same state and a crash replays.
//!
//! The core is the whole control plane short of the Wasm glue: a request
//! here goes through the same [`lanyard_core::serve`] that every component
//! calls, with the same variables the local run uses.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use lanyard_core::clock::SystemClock;
use lanyard_core::dev::{self, SessionClaims};
use lanyard_core::endpoint::{ENDPOINTS, Endpoint, Env};
use lanyard_core::http::{Method, Request, Response};
use lanyard_core::kv::MemoryKv;
use lanyard_core::outbound::NoOutbound;
use lanyard_core::random::{NoRandomness, Random};
use serde_json::{Value, json};

/// The instant every case runs at (tokens are minted for it).
pub const NOW: u64 = 1_900_000_000;

/// A seeded control plane.
pub struct Plane {
    /// The seeded store; each case works on a clone.
    pub kv: MemoryKv,
    /// The variables of the local run.
    pub vars: BTreeMap<String, String>,
    /// `admin@acme.example`'s session.
    pub admin: String,
    /// `dev@acme.example`'s session (a member with a grant).
    pub member: String,
    /// The cluster's agent credential.
    pub agent: String,
    /// The cluster's id.
    pub cluster: String,
    /// The grant's id.
    pub grant: String,
    /// The deployment's public keys for cluster tokens.
    pub jwks: Value,
    /// A cluster token minted for the member.
    pub cluster_token: String,
    /// The member's kubeconfig for the cluster, as the endpoint serves it.
    pub kubeconfig: String,
}

/// The plane, seeded on first use.
pub fn plane() -> &'static Plane {
    static PLANE: OnceLock<Plane> = OnceLock::new();
    PLANE.get_or_init(Plane::seed)
}

impl Plane {
    fn seed() -> Plane {
        let random = Counter::default();
        let issuer = dev::new_key(&random).expect("randomness");
        let signing = format!("[{}]", dev::new_key(&random).expect("randomness").to_jwk());
        let keys = lanyard_core::token::SigningKeys::parse(&signing).expect("signing keys");
        let mut vars = BTreeMap::new();
        let entry = dev::issuer_entry(&issuer, dev::DEV_ISSUER, dev::AUDIENCE, &["acme", "globex"]);
        vars.insert("session_issuers".to_owned(), Value::Array(vec![entry]).to_string());
        vars.insert("development_mode".to_owned(), "true".to_owned());
        vars.insert("access_gateway_enabled".to_owned(), "true".to_owned());
        vars.insert("public_url".to_owned(), "https://lanyard.example".to_owned());
        vars.insert("token_jwks".to_owned(), keys.jwks().to_string());
        vars.insert("token_signing_keys".to_owned(), signing);
        let session = |email: &str, admin: bool| {
            let claims = SessionClaims { email: email.into(), org: "acme".into(), admin, name: None, ttl_secs: 3600 };
            dev::mint_session(&issuer, dev::DEV_ISSUER, dev::AUDIENCE, &claims, NOW)
        };
        let mut plane = Plane {
            kv: MemoryKv::new(),
            vars,
            admin: session("admin@acme.example", true),
            member: session("dev@acme.example", false),
            agent: String::new(),
            cluster: String::new(),
            grant: String::new(),
            jwks: keys.jwks(),
            cluster_token: String::new(),
            kubeconfig: String::new(),
        };
        let kv = plane.kv.clone();
        let call = |endpoint, method, path: &str, params: &[(&str, &str)], bearer: &str, body: Option<Value>| {
            let route = route_of(endpoint, path);
            let mut req = Request::new(method, path).on_route(route, params);
            req = req.with_header("authorization", format!("Bearer {bearer}"));
            if let Some(body) = body {
                req = req.with_header("content-type", "application/json").with_body(body.to_string());
            }
            let resp = plane.serve_with(&kv, endpoint, &req, &random);
            serde_json::from_slice::<Value>(&resp.body).unwrap_or(Value::Null)
        };
        call(Endpoint::Clusters, Method::Get, "/api/v1/clusters", &[], &plane.member, None);
        let registered = call(
            Endpoint::Clusters,
            Method::Post,
            "/api/v1/clusters",
            &[],
            &plane.admin,
            Some(json!({"name": "prod", "kind": "standard", "proxy_url": "https://proxy.example:8443"})),
        );
        let cluster = registered["cluster"]["id"].as_str().expect("the cluster registered").to_owned();
        let agent = registered["agent_credential"].as_str().expect("its credential").to_owned();
        let grants = format!("/api/v1/clusters/{cluster}/access/grants");
        let grant = call(
            Endpoint::Grants,
            Method::Post,
            &grants,
            &[("cluster_id", &cluster)],
            &plane.admin,
            Some(json!({"email": "dev@acme.example", "role": "edit", "scope": "namespace", "namespace": "team-a"})),
        );
        let grant = grant["id"].as_str().expect("the grant was created").to_owned();
        let minted = call(
            Endpoint::K8sToken,
            Method::Post,
            &format!("/api/v1/clusters/{cluster}/k8s-token"),
            &[("cluster_id", &cluster)],
            &plane.member,
            None,
        );
        let token = minted["status"]["token"].as_str().expect("a cluster token was minted").to_owned();
        let path = format!("/api/v1/clusters/{cluster}/kubeconfig");
        let req = Request::new(Method::Get, path.clone())
            .on_route(route_of(Endpoint::Kubeconfig, &path), &[("cluster_id", &cluster)])
            .with_header("authorization", format!("Bearer {}", plane.member));
        let kubeconfig = plane.serve_with(&kv, Endpoint::Kubeconfig, &req, &random);
        assert_eq!(kubeconfig.status, 200, "the kubeconfig: {}", String::from_utf8_lossy(&kubeconfig.body));
        plane.kubeconfig = String::from_utf8(kubeconfig.body).expect("YAML text");
        plane.kv = kv;
        plane.agent = agent;
        plane.cluster = cluster;
        plane.grant = grant;
        plane.cluster_token = token;
        plane
    }

    /// Serve `req` as `endpoint`'s component would, on `kv` (a fork of
    /// [`Plane::kv`]).
    pub fn serve_on(&self, kv: &MemoryKv, endpoint: Endpoint, req: &Request) -> Response {
        // Its own stream: a case never draws the secrets the seeding drew.
        self.serve_with(kv, endpoint, req, &Counter(AtomicU64::new(1 << 48)))
    }

    fn serve_with(&self, kv: &MemoryKv, endpoint: Endpoint, req: &Request, random: &dyn Random) -> Response {
        let env = Env { kv, vars: &self.vars, now: NOW, clock: &SystemClock, random, outbound: &NoOutbound };
        lanyard_core::serve(endpoint, req, &env)
    }
}

/// Randomness that is the same on every run (splitmix64 over a counter):
/// each case draws from a fresh one, so a crash replays byte for byte.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Random for Counter {
    fn fill(&self, buf: &mut [u8]) -> Result<(), NoRandomness> {
        for chunk in buf.chunks_mut(8) {
            let mut z = self.0.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed).wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
        Ok(())
    }
}

/// A token the fuzzer builds: its own bytes, or a real token with edits
/// (so that mutations of a valid token are reached without a seed corpus).
#[derive(Debug, arbitrary::Arbitrary)]
pub enum TokenInput {
    /// Any string.
    Raw(String),
    /// The real token with bytes replaced, inserted or removed.
    Edited(Vec<Edit>),
}

/// One edit of a real token.
#[derive(Debug, arbitrary::Arbitrary)]
pub enum Edit {
    /// Replace the byte at the position (modulo the length).
    Set(u16, u8),
    /// Insert a byte.
    Insert(u16, u8),
    /// Remove the byte.
    Remove(u16),
}

impl TokenInput {
    /// The token, given the real one.
    pub fn token(&self, real: &str) -> String {
        match self {
            TokenInput::Raw(s) => s.clone(),
            TokenInput::Edited(edits) => {
                let mut bytes = real.as_bytes().to_vec();
                for edit in edits.iter().take(8) {
                    let at = |i: u16, len: usize| usize::from(i) % len.max(1);
                    match *edit {
                        Edit::Set(i, b) if !bytes.is_empty() => {
                            let i = at(i, bytes.len());
                            bytes[i] = b;
                        }
                        Edit::Insert(i, b) => {
                            let i = at(i, bytes.len() + 1);
                            bytes.insert(i, b);
                        }
                        Edit::Remove(i) if !bytes.is_empty() => {
                            let i = at(i, bytes.len());
                            bytes.remove(i);
                        }
                        _ => {}
                    }
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
        }
    }
}

/// The route template of `endpoint` that `path` is an instance of (its first
/// route when none matches, as a request the host misrouted would be).
pub fn route_of(endpoint: Endpoint, path: &str) -> &'static str {
    let routes = endpoint.spec().routes;
    let segments: Vec<&str> = path.split('/').collect();
    routes
        .iter()
        .find(|r| {
            let template: Vec<&str> = r.path.split('/').collect();
            template.len() == segments.len()
                && template.iter().zip(&segments).all(|(t, s)| t.starts_with(':') || t == s)
        })
        .or(routes.first())
        .map_or("/...", |r| r.path)
}

/// Every endpoint, in the table's order.
pub fn endpoints() -> Vec<Endpoint> {
    ENDPOINTS.iter().map(|s| s.endpoint).collect()
}

/// What every answer must be, whatever was asked: a status the contract
/// knows, and for an error the spec's JSON body with a code and a message
/// that never repeats a credential of the plane.
pub fn check_answer(plane: &Plane, resp: &Response) {
    assert!((200..600).contains(&resp.status), "status {}", resp.status);
    // The browser's pages (the Access view, the sign-in flow) answer in HTML.
    let html = resp.headers.iter().any(|(n, v)| n == "content-type" && v.starts_with("text/html"));
    if resp.status >= 400 && !html && !resp.body.is_empty() {
        let body: Value = serde_json::from_slice(&resp.body).unwrap_or_else(|_| {
            panic!("a {} without a JSON body: {:?}", resp.status, String::from_utf8_lossy(&resp.body))
        });
        let error = &body["error"];
        assert!(error["code"].is_string() && error["message"].is_string(), "not the error contract: {body}");
    }
    assert!(resp.status < 500, "a {} answer: {}", resp.status, String::from_utf8_lossy(&resp.body));
    let text = String::from_utf8_lossy(&resp.body);
    for (whose, secret) in [("admin", &plane.admin), ("member", &plane.member), ("agent", &plane.agent)] {
        assert!(!text.contains(secret.as_str()), "the {whose} credential in an answer: {text}");
    }
}
