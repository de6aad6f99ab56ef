//! Signing in through a real OpenID Connect provider (Dex): the browser flow
//! over HTTP as a browser would drive it (redirects not followed, cookies kept
//! by hand), the CLI's discovery answer, sessions from Dex's own tokens, the
//! organisation and admin role from Dex's groups, and how the control plane
//! reads Dex's keys (rotation followed, floods of unknown keys not amplified,
//! nothing fetched where `allowed_outbound_hosts` does not allow it).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lanyard_api_tests::sso::{SsoEnv, SsoOptions};
use lanyard_api_tests::{TestIssuer, openapi};
use lanyard_dex::{ALICE, BOB, CAROL, OTHER_APP_REDIRECT_URI, OTHER_CLIENT_ID, PASSWORD, Setup};
use lanyard_test_support::{Probe, wait_for};
use reqwest::blocking::Client;
use serde_json::{Value, json};

/// One answer, as a browser sees it.
struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    /// The `Set-Cookie` header that sets `name`, if any.
    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    /// The value `name` is set to (empty when it is cleared).
    fn cookie_value(&self, name: &str) -> Option<String> {
        let header = self.set_cookie(name)?;
        Some(header[name.len() + 1..].split(';').next().unwrap_or_default().to_owned())
    }
}

fn browser() -> Client {
    Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(30)).build().unwrap()
}

/// GET `url` with these cookies, checked against `openapi.yaml`.
#[track_caller]
fn get(url: &str, cookies: &[(&str, &str)]) -> Page {
    let mut req = browser().get(url);
    if !cookies.is_empty() {
        let header: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        req = req.header("cookie", header.join("; "));
    }
    let resp = req.send().expect("the control plane answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let path = resp.url().path().to_owned();
    let body = resp.text().unwrap_or_default();
    if let Err(problem) = openapi::spec().check("GET", &path, status, &headers, &body) {
        panic!("{problem}");
    }
    Page { status, headers, body }
}

/// `/auth/login`: the provider URL it sends the browser to, and the browser binding.
#[track_caller]
fn begin(env: &SsoEnv, query: &str) -> (String, String) {
    let page = get(&format!("{}/auth/login{query}", env.app.url), &[]);
    assert_eq!(page.status, 303, "{}", page.body);
    let binding = page.cookie_value("lanyard_sign_in").expect("the sign-in cookie");
    (page.location().to_owned(), binding)
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).unwrap();
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

#[test]
fn a_browser_signs_in_through_dex_and_its_cookie_is_the_session() {
    let env = SsoEnv::start();
    let (authorize, binding) = begin(&env, "?return_to=/api/v1/clusters");
    assert!(authorize.starts_with(&format!("{}/auth?", env.dex.issuer())), "{authorize}");
    assert_eq!(query_param(&authorize, "code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(query_param(&authorize, "client_id").as_deref(), Some("lanyard-web"));
    assert!(query_param(&authorize, "nonce").is_some_and(|n| n.len() >= 43));
    assert_eq!(
        query_param(&authorize, "redirect_uri"),
        Some(format!("{}/auth/callback", env.app.url)),
        "the callback on the control plane's own origin"
    );

    let callback = env.dex.sign_in(&authorize, ALICE.email, PASSWORD).expect("sign in at Dex");
    assert!(callback.starts_with(&format!("{}/auth/callback?", env.app.url)), "{callback}");
    let page = get(&callback, &[("lanyard_sign_in", &binding)]);
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location(), "/api/v1/clusters", "back where the sign-in began");
    let set = page.set_cookie("lanyard_session").expect("the session cookie is set");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/;", "Max-Age="] {
        assert!(set.contains(attribute), "{attribute} missing from {set}");
    }
    assert!(!set.contains("Secure"), "plain-HTTP loopback: no Secure attribute ({set})");
    assert_eq!(page.cookie_value("lanyard_sign_in").as_deref(), Some(""), "the binding is cleared");
    let session = page.cookie_value("lanyard_session").unwrap();

    // The cookie is the session: alice is an admin of acme, from Dex's groups.
    let clusters = get(&format!("{}/api/v1/clusters", env.app.url), &[("lanyard_session", &session)]);
    assert_eq!(clusters.status, 200, "{}", clusters.body);
    let members = env.app.get("/api/v1/members", &session);
    members.expect(200);
    let alice = members.json["members"].as_array().unwrap().iter().find(|m| m["email"] == ALICE.email).cloned();
    assert_eq!(alice.map(|m| m["role"].clone()), Some(json!("admin")), "{}", members.body);

    // The same callback again is a replay: a page, and no cookie.
    let replay = get(&callback, &[("lanyard_sign_in", &binding)]);
    assert_eq!(replay.status, 400, "{}", replay.body);
    assert!(replay.body.contains("expired or was already used"), "{}", replay.body);
    assert!(replay.cookie_value("lanyard_session").is_none());
    for header in ["cache-control", "referrer-policy", "x-frame-options", "content-security-policy"] {
        assert!(replay.headers.contains_key(header), "{header} missing on a sign-in page");
    }
}

#[test]
fn a_forged_state_another_browser_or_a_provider_error_gets_a_page_and_no_cookie() {
    let env = SsoEnv::start();
    let forged = get(&format!("{}/auth/callback?state=forged&code=anything", env.app.url), &[("lanyard_sign_in", "x")]);
    assert_eq!(forged.status, 400, "{}", forged.body);
    assert!(forged.cookie_value("lanyard_session").is_none());

    // A callback link opened in another browser (no binding cookie, or another one).
    let (authorize, _binding) = begin(&env, "");
    let callback = env.dex.sign_in(&authorize, ALICE.email, PASSWORD).unwrap();
    let elsewhere = get(&callback, &[("lanyard_sign_in", "someone-elses")]);
    assert_eq!(elsewhere.status, 400, "{}", elsewhere.body);
    assert!(elsewhere.body.contains("another browser"), "{}", elsewhere.body);
    assert!(elsewhere.cookie_value("lanyard_session").is_none());

    // The provider says no.
    let (authorize, binding) = begin(&env, "");
    let state = query_param(&authorize, "state").unwrap();
    let denied = get(
        &format!(
            "{}/auth/callback?state={state}&error=access_denied&error_description=%3Cb%3Enope%3C%2Fb%3E",
            env.app.url
        ),
        &[("lanyard_sign_in", &binding)],
    );
    assert_eq!(denied.status, 401, "{}", denied.body);
    assert!(denied.body.contains("access_denied") && !denied.body.contains("<b>"), "{}", denied.body);
    assert!(denied.cookie_value("lanyard_session").is_none());

    // A code that is not the provider's.
    let (authorize, binding) = begin(&env, "");
    let state = query_param(&authorize, "state").unwrap();
    let bad_code =
        get(&format!("{}/auth/callback?state={state}&code=not-a-code", env.app.url), &[("lanyard_sign_in", &binding)]);
    assert_eq!(bad_code.status, 401, "{}", bad_code.body);
    assert!(bad_code.cookie_value("lanyard_session").is_none());
}

#[test]
fn logging_out_clears_the_session_cookie() {
    let env = SsoEnv::start();
    let page = get(&format!("{}/auth/logout", env.app.url), &[("lanyard_session", "whatever")]);
    assert_eq!(page.status, 200);
    let set = page.set_cookie("lanyard_session").expect("the session cookie is cleared");
    assert!(set.starts_with("lanyard_session=;") && set.contains("Max-Age=0") && set.contains("Path=/"), "{set}");
}

#[test]
fn the_cli_learns_where_to_sign_in() {
    let env = SsoEnv::start();
    let answer = env.app.send("GET", "/api/v1/login", None, None);
    answer.expect(200);
    assert_eq!(answer.json["issuer"], json!(env.dex.issuer()));
    assert_eq!(answer.json["client_id"], json!("lanyard-cli"));
    assert!(answer.json["scopes"].as_array().unwrap().contains(&json!("offline_access")));
    env.app.send("GET", "/api/v1/login?org=globex", None, None).expect(200);
    env.app.send("GET", "/api/v1/login?org=initech", None, None).expect_error(404, "not_found");
}

#[test]
fn tokens_dex_issued_to_another_client_or_from_another_issuer_are_refused() {
    let env = SsoEnv::start_with(SsoOptions { setup: Setup::default().with_other_app(), ..SsoOptions::default() });
    let other = env
        .dex
        .client_tokens(OTHER_CLIENT_ID, env.dex.other_app_secret(), OTHER_APP_REDIRECT_URI, ALICE.email)
        .expect("sign in to the other app");
    let refused = env.app.get("/api/v1/clusters", &other.id_token);
    refused.expect_error(401, "unauthenticated");
    assert!(refused.json["error"]["message"].as_str().unwrap().contains("audience"), "{}", refused.body);

    let impostor = TestIssuer::new("https://impostor.example").token(ALICE.email, "acme", true);
    let refused = env.app.get("/api/v1/clusters", &impostor);
    refused.expect_error(401, "unauthenticated");
    assert!(refused.body.contains("not from a trusted issuer"), "{}", refused.body);

    // Dex's own token for Lanyard's CLI client is a session.
    env.app.get("/api/v1/clusters", &env.session(ALICE.email)).expect(200);
}

#[test]
fn the_organisation_and_the_admin_role_come_from_dexs_groups() {
    let env = SsoEnv::start();
    let (alice, bob, carol) = (env.session(ALICE.email), env.session(BOB.email), env.session(CAROL.email));
    let prod = env.app.cluster(&alice, "prod", "standard");
    let listed = env.app.get("/api/v1/clusters", &bob);
    listed.expect(200);
    assert!(listed.body.contains(&prod), "bob is in acme: {}", listed.body);
    env.app.registration(&bob, "mine", "standard").expect_error(403, "forbidden");
    let globex = env.app.get("/api/v1/clusters", &carol);
    globex.expect(200);
    assert!(!globex.body.contains(&prod), "carol is in globex and sees none of acme's clusters: {}", globex.body);
    let me = env.app.get("/api/v1/me", &carol);
    me.expect(200);
    assert_eq!(
        (me.json["organisation"].as_str(), me.json["member"]["role"].as_str()),
        (Some("globex"), Some("member"))
    );
    let me = env.app.get("/api/v1/me", &alice);
    assert_eq!((me.json["organisation"].as_str(), me.json["member"]["role"].as_str()), (Some("acme"), Some("admin")));
    let members = env.app.get("/api/v1/members", &alice);
    let carol_listed = members.json["members"].as_array().unwrap().iter().any(|m| m["email"] == CAROL.email);
    assert!(!carol_listed, "{}", members.body);
}

#[test]
fn a_key_rotation_at_dex_is_followed() {
    let mut env =
        SsoEnv::start_with(SsoOptions { entry: json!({"refetch_interval_seconds": 1}), ..SsoOptions::default() });
    let before = env.session(ALICE.email);
    env.app.get("/api/v1/clusters", &before).expect(200);
    env.dex.restart().expect("restart Dex: new signing keys");
    let after = env.session(ALICE.email);
    assert_ne!(kid(&before), kid(&after), "Dex signs with a new key");
    wait_for("a token of Dex's new key to be accepted", Duration::from_secs(15), || {
        let answer = env.app.get("/api/v1/clusters", &after);
        Ok(if answer.status == 200 { Probe::Ready(()) } else { Probe::NotYet(answer.body.clone()) })
    })
    .unwrap();
    // The old key is gone from the set the control plane now uses.
    env.app.get("/api/v1/clusters", &before).expect_error(401, "unauthenticated");
}

#[test]
fn a_flood_of_tokens_naming_unknown_keys_reads_dexs_keys_at_most_once_per_interval() {
    let env = SsoEnv::start();
    let session = env.session(ALICE.email);
    env.app.get("/api/v1/clusters", &session).expect(200);
    let reads_before = env.dex.requests_to("/dex/keys");
    assert!(reads_before >= 1, "the first session read the keys");
    for i in 0..100 {
        let forged = with_kid(&session, &format!("random-kid-{i}"));
        env.app.get("/api/v1/clusters", &forged).expect_error(401, "unauthenticated");
    }
    let reads = env.dex.requests_to("/dex/keys") - reads_before;
    assert!(reads <= 1, "100 unknown kids within the 60 s interval read Dex's keys {reads} times");
    env.app.get("/api/v1/clusters", &session).expect(200);
}

#[test]
fn nothing_is_fetched_from_a_provider_that_allowed_outbound_hosts_does_not_name() {
    let env = SsoEnv::start_with(SsoOptions { allow_outbound: false, ..SsoOptions::default() });
    let asked_before = env.dex.total_requests();
    let page = get(&format!("{}/auth/login", env.app.url), &[]);
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(page.cookie_value("lanyard_sign_in").is_none());
    let session = env.session(ALICE.email);
    let asked_by_the_test = env.dex.total_requests();
    env.app.get("/api/v1/clusters", &session).expect_error(503, "unavailable");
    assert_eq!(env.dex.total_requests(), asked_by_the_test, "the control plane asked Dex nothing");
    assert!(asked_by_the_test > asked_before, "the test's own sign-in went through the front");
}

/// A token's header `kid`.
fn kid(token: &str) -> String {
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// The same token with another `kid` in its header (so its signature no longer verifies).
fn with_kid(token: &str, kid: &str) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[0]).unwrap()).unwrap();
    header["kid"] = json!(kid);
    parts[0] = URL_SAFE_NO_PAD.encode(header.to_string());
    parts.join(".")
}
