//! Short-lived cluster tokens, the JWKS and kubeconfigs, over HTTP.

use lanyard_api_tests::{App, ClusterFixture, Fixture, Options, unix_now};
use lanyard_core::ids::ClusterId;
use lanyard_core::token::{self, TokenError};
use serde_json::{Value, json};

struct Setup {
    app: App,
    admin: String,
    member: String,
    cluster: String,
}

fn setup(options: Options) -> Setup {
    let ClusterFixture { app, admin, cluster, .. } = Fixture::start_with(options).with_cluster("prod");
    let member = app.sign_in("dev@acme.example", "acme");
    Setup { app, admin, member, cluster }
}

impl Setup {
    fn mint(&self, token: &str) -> lanyard_api_tests::Resp {
        self.app.send("POST", &format!("/api/v1/clusters/{}/k8s-token", self.cluster), Some(token), None)
    }
    /// Grant the member `role` in `namespace`, or cluster-wide for `None`.
    fn grant(&self, role: &str, namespace: Option<&str>) -> String {
        self.app.grant_access(&self.admin, &self.cluster, "dev@acme.example", role, namespace)
    }
}

#[test]
fn a_member_with_a_grant_gets_a_verifiable_short_lived_token() {
    let s = setup(Options::default());
    s.mint(&s.member).expect_error(403, "forbidden");
    s.grant("view", Some("team-a"));
    let r = s.mint(&s.member);
    r.expect(200);
    assert_eq!(r.json["apiVersion"], "client.authentication.k8s.io/v1");
    assert_eq!(r.json["kind"], "ExecCredential");
    let jwt = r.json["status"]["token"].as_str().unwrap();
    let verified = token::verify(jwt, &s.app.jwks(), &cid(&s.cluster), 0, unix_now())
        .expect("the token verifies against the JWKS");
    assert_eq!(verified.claims.email, "dev@acme.example");
    assert_eq!(verified.claims.user, "lanyard:dev@acme.example");
    assert!(verified.member_id.as_str().starts_with("m_"));
    let lifetime = verified.expires_at as i64 - unix_now() as i64;
    assert!((890..=900).contains(&lifetime), "default lifetime is 15 minutes, got {lifetime}s");
    assert_eq!(verify_err(jwt, &s, "c_ffffffffffffffffffffffff", 0), TokenError::WrongCluster);
    // Revoke-all invalidates every token minted before it.
    s.app.send("POST", &format!("/api/v1/clusters/{}/access/revoke-all", s.cluster), Some(&s.admin), None).expect(200);
    assert_eq!(verify_err(jwt, &s, &s.cluster, 1), TokenError::Revoked);
    s.mint(&s.member).expect_error(403, "forbidden");
}

fn cid(id: &str) -> ClusterId {
    ClusterId::parse(id).unwrap()
}

fn verify_err(jwt: &str, s: &Setup, cluster: &str, epoch: i64) -> TokenError {
    token::verify(jwt, &s.app.jwks(), &cid(cluster), epoch, unix_now()).unwrap_err()
}

#[test]
fn managing_access_is_not_kubectl_access() {
    let s = setup(Options::default());
    let r = s.mint(&s.admin);
    r.expect_error(403, "forbidden");
    let message = r.json["error"]["message"].as_str().unwrap();
    assert!(message.contains("lanyard cluster access grant prod --email admin@acme.example"), "{message}");
    s.app
        .send("GET", &format!("/api/v1/clusters/{}/kubeconfig", s.cluster), Some(&s.admin), None)
        .expect_error(403, "forbidden");
}

#[test]
fn tokens_follow_the_cluster_rules() {
    let s = setup(Options::default());
    let sandbox = s.app.cluster(&s.admin, "play", "sandbox");
    s.app
        .send("POST", &format!("/api/v1/clusters/{sandbox}/k8s-token"), Some(&s.member), None)
        .expect_error(409, "cluster_access_unsupported");
    s.app
        .send("POST", "/api/v1/clusters/c_ffffffffffffffffffffffff/k8s-token", Some(&s.member), None)
        .expect_error(404, "not_found");
    s.app
        .send("POST", &format!("/api/v1/clusters/{}/k8s-token", s.cluster), None, None)
        .expect_error(401, "unauthenticated");
    let off = App::start_with(Options { gateway: false, ..Options::default() });
    off.send("POST", &format!("/api/v1/clusters/{}/k8s-token", s.cluster), Some(&off.admin("acme")), None)
        .expect_error(404, "access_unavailable");
    off.send("GET", "/.well-known/jwks.json", None, None).expect_error(404, "access_unavailable");
}

#[test]
fn minting_is_rate_limited_per_member() {
    let s = setup(Options::default());
    s.grant("view", None);
    let started = unix_now();
    let mut limited = None;
    for i in 0..61 {
        let r = s.mint(&s.member);
        if r.status == 429 {
            limited = Some((i, r));
            break;
        }
        r.expect(200);
    }
    // 30 per minute: the 31st in the same minute is refused (or, if the minute
    // turned during the loop, one of the next 30).
    let (i, r) = limited.expect("the limit is enforced");
    assert!(i == 30 || unix_now() / 60 != started / 60, "refused after {i} mints");
    r.expect_error(429, "rate_limited");
    let retry: u64 = r.headers.get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
}

#[test]
fn token_lifetime_is_configurable_up_to_an_hour() {
    let hour = setup(Options { extra: vec![("token_lifetime_seconds".into(), "3600".into())], ..Options::default() });
    hour.grant("view", None);
    let r = hour.mint(&hour.member);
    r.expect(200);
    let exp = token::verify(
        r.json["status"]["token"].as_str().unwrap(),
        &hour.app.jwks(),
        &cid(&hour.cluster),
        0,
        unix_now(),
    )
    .unwrap()
    .expires_at;
    assert!((3590..=3600).contains(&(exp - unix_now())));
    let too_long =
        setup(Options { extra: vec![("token_lifetime_seconds".into(), "7200".into())], ..Options::default() });
    too_long.grant("view", None);
    too_long.mint(&too_long.member).expect_error(503, "unavailable");
}

#[test]
fn the_jwks_publishes_every_key_during_a_rotation() {
    let old = lanyard_core::dev::new_key(&lanyard_core::random::SystemRandom).unwrap();
    let new = lanyard_core::dev::new_key(&lanyard_core::random::SystemRandom).unwrap();
    let keys = format!("[{},{}]", new.to_jwk(), old.to_jwk());
    let s = setup(Options {
        extra: vec![("token_jwks".into(), lanyard_api_tests::public_jwks(&keys)), ("token_signing_keys".into(), keys)],
        ..Options::default()
    });
    let jwks = s.app.jwks();
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids.len(), 2);
    assert!(jwks["keys"].as_array().unwrap().iter().all(|k| k.get("d").is_none()), "no private part");
    s.grant("view", None);
    let jwt = s.mint(&s.member).json["status"]["token"].as_str().unwrap().to_owned();
    let header = jwt.split('.').next().unwrap();
    use base64::Engine as _;
    let header: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    assert_eq!(header["kid"], kids[0], "the first key signs");
}

#[test]
fn kubeconfigs_point_at_the_proxy_and_carry_no_secret() {
    let s = setup(Options::default());
    s.grant("edit", Some("team-a"));
    let r = s.app.send("GET", &format!("/api/v1/clusters/{}/kubeconfig", s.cluster), Some(&s.member), None);
    r.expect(200);
    assert_eq!(r.headers.get("content-type").unwrap(), "application/yaml");
    let doc: Value = serde_norway::from_str(&r.body).unwrap();
    assert_eq!(doc["clusters"][0]["cluster"]["server"], "https://proxy.example:8443");
    assert_eq!(doc["contexts"][0]["context"]["namespace"], "team-a");
    let exec = &doc["users"][0]["user"]["exec"];
    assert_eq!(exec["command"], "lanyard");
    assert_eq!(exec["interactiveMode"], "Never");
    assert_eq!(exec["args"], json!(["cluster", "token", "--control-plane", s.app.url, "--cluster", s.cluster]));
    assert!(!r.body.contains(&s.member), "no session token");
    assert!(!r.body.to_lowercase().contains("token:"), "no token field");

    // A cluster-wide grant: no default namespace. POST works too.
    s.grant("view", None);
    let r = s.app.send("POST", &format!("/api/v1/clusters/{}/kubeconfig", s.cluster), Some(&s.member), None);
    r.expect(200);
    let doc: Value = serde_norway::from_str(&r.body).unwrap();
    assert!(doc["contexts"][0]["context"].get("namespace").is_none());

    // The portal twin, from a browser: POST with the session cookie and CSRF.
    let caps = App::finish(
        s.app
            .request("GET", &format!("/org/clusters/{}/access/capabilities", s.cluster))
            .header("cookie", format!("lanyard_session={}", s.member)),
    );
    let csrf = caps.json["csrf_token"].as_str().unwrap().to_owned();
    let portal = format!("/org/clusters/{}/access/kubeconfig", s.cluster);
    let cookie = format!("lanyard_session={}", s.member);
    App::finish(s.app.request("POST", &portal).header("cookie", &cookie)).expect_error(403, "csrf_required");
    App::finish(s.app.request("POST", &portal).header("cookie", &cookie).header("x-csrf-token", csrf)).expect(200);
}

#[test]
fn public_url_names_the_control_plane_in_kubeconfigs() {
    let s = setup(Options {
        extra: vec![("public_url".into(), "https://lanyard.example.com/".into())],
        ..Options::default()
    });
    s.grant("view", None);
    let r = s.app.send("GET", &format!("/api/v1/clusters/{}/kubeconfig", s.cluster), Some(&s.member), None);
    r.expect(200);
    let doc: Value = serde_norway::from_str(&r.body).unwrap();
    assert_eq!(doc["users"][0]["user"]["exec"]["args"][3], "https://lanyard.example.com");
}
