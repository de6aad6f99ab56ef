//! Smoke tests of the Dex fixture against the real Dex: discovery through the
//! front, the CLI's authorization-code flow with PKCE ([`Dex::cli_tokens`])
//! and its refresh, a wrong
//! password, the device flow, what a restart does to keys and refresh tokens,
//! and the front's request counts.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lanyard_dex::{
    ALICE, BOB, CAROL, CLI_CLIENT_ID, CLI_REDIRECT_URI, Dex, Front, OTHER_APP_REDIRECT_URI, OTHER_CLIENT_ID, PASSWORD,
    SCOPES, Setup, SignInError, WEB_CLIENT_ID,
};
use lanyard_test_support::{Probe, wait_for};
use serde_json::Value;
use url::Url;

fn start() -> Result<Dex> {
    Dex::start(Front::bind()?, Setup::default())
}

fn http() -> Result<reqwest::blocking::Client> {
    Ok(reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()?)
}

fn discovery(dex: &Dex) -> Result<Value> {
    let url = format!("{}/.well-known/openid-configuration", dex.issuer());
    let response = http()?.get(&url).send()?;
    ensure!(response.status().is_success(), "{url} answered {}", response.status());
    Ok(response.json()?)
}

fn endpoint(document: &Value, name: &str) -> Result<String> {
    document[name].as_str().map(str::to_owned).with_context(|| format!("discovery has no {name}: {document}"))
}

/// POSTs `form` to the token endpoint; the status and the JSON answer.
fn token_request(dex: &Dex, form: &[(&str, &str)]) -> Result<(reqwest::StatusCode, Value)> {
    let token_endpoint = endpoint(&discovery(dex)?, "token_endpoint")?;
    let response = http()?.post(token_endpoint).form(form).send()?;
    let status = response.status();
    let body = response.text()?;
    let json = serde_json::from_str(&body).with_context(|| format!("the token endpoint answered {status}: {body}"))?;
    Ok((status, json))
}

/// The claims of a JWT (not verified: these tests are about the fixture).
fn claims_of(jwt: &str) -> Result<Value> {
    let payload = jwt.split('.').nth(1).context("the ID token is not a JWT")?;
    Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)?)
}

fn refresh(dex: &Dex, refresh_token: &str) -> Result<(reqwest::StatusCode, Value)> {
    token_request(
        dex,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("client_id", CLI_CLIENT_ID)],
    )
}

/// The key IDs of Dex's JWKS, fetched with `client` (kept alive between calls).
fn key_ids(dex: &Dex, client: &reqwest::blocking::Client) -> Result<BTreeSet<String>> {
    let jwks: Value = client.get(format!("{}/keys", dex.issuer())).send()?.error_for_status()?.json()?;
    let keys = jwks["keys"].as_array().with_context(|| format!("no keys in {jwks}"))?;
    keys.iter()
        .map(|key| key["kid"].as_str().map(str::to_owned).with_context(|| format!("a key has no kid: {key}")))
        .collect()
}

#[test]
fn discovery_names_the_fronts_issuer_and_every_endpoint() -> Result<()> {
    let dex = start()?;
    let document = discovery(&dex)?;
    assert_eq!(document["issuer"], dex.issuer().as_str());
    assert!(dex.issuer().starts_with("http://127.0.0.1:") && dex.issuer().ends_with("/dex"), "{}", dex.issuer());
    for name in ["authorization_endpoint", "token_endpoint", "jwks_uri", "device_authorization_endpoint"] {
        let url = endpoint(&document, name)?;
        assert!(url.starts_with(&dex.issuer()), "{name} {url} is not behind the front {}", dex.issuer());
    }
    Ok(())
}

#[test]
fn the_cli_signs_in_with_pkce_and_refreshes() -> Result<()> {
    let dex = start()?;
    let tokens = dex.cli_tokens(ALICE.email)?;
    let claims = claims_of(&tokens.id_token)?;
    assert_eq!(claims["iss"], dex.issuer().as_str());
    assert_eq!(claims["aud"], CLI_CLIENT_ID);
    assert_eq!(claims["email"], ALICE.email);
    assert_eq!(claims["email_verified"], true);
    let groups: Vec<&str> =
        claims["groups"].as_array().context("no groups")?.iter().filter_map(Value::as_str).collect();
    assert!(groups.contains(&"platform-admins"), "groups {groups:?}");
    assert_eq!(groups, ALICE.groups);
    let refresh_token = tokens.refresh_token.as_deref().context("no refresh_token")?;

    let (status, refreshed) = refresh(&dex, refresh_token)?;
    assert!(status.is_success(), "the refresh answered {status}: {refreshed}");
    let renewed = claims_of(refreshed["id_token"].as_str().context("no id_token after the refresh")?)?;
    assert_eq!(renewed["email"], ALICE.email);
    assert_eq!(renewed["sub"], claims["sub"]);
    let rotated = refreshed["refresh_token"].as_str().with_context(|| format!("no new refresh token: {refreshed}"))?;
    assert_ne!(rotated, refresh_token, "Dex did not rotate the refresh token");

    // Rotation with no reuse interval: the exchanged token is dead at once.
    let (status, reused) = refresh(&dex, refresh_token)?;
    assert_eq!((status.as_u16(), reused["error"].as_str()), (400, Some("invalid_request")), "{reused}");
    let (status, again) = refresh(&dex, rotated)?;
    assert!(status.is_success(), "the rotated refresh token answered {status}: {again}");
    Ok(())
}

#[test]
fn a_wrong_password_is_refused_by_name() -> Result<()> {
    let dex = start()?;
    let authorize = Url::parse_with_params(
        &format!("{}/auth", dex.issuer()),
        [
            ("client_id", CLI_CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", CLI_REDIRECT_URI),
            ("scope", "openid email"),
            ("state", "s"),
        ],
    )?;
    let error = dex.sign_in(authorize.as_str(), BOB.email, "not-the-password").unwrap_err();
    let message = format!("{error:#}");
    assert!(
        matches!(error.downcast_ref::<SignInError>(), Some(SignInError::WrongPassword { email, .. }) if email == BOB.email),
        "{message}"
    );
    assert!(message.contains("refused the password of bob@acme.example"), "{message}");
    assert!(message.contains("Invalid Email Address and password"), "{message}");
    Ok(())
}

#[test]
fn the_device_flow_yields_an_id_token_once_approved() -> Result<()> {
    let dex = start()?;
    let device_endpoint = endpoint(&discovery(&dex)?, "device_authorization_endpoint")?;
    let authorization: Value = http()?
        .post(device_endpoint)
        .form(&[("client_id", CLI_CLIENT_ID), ("scope", SCOPES)])
        .send()?
        .error_for_status()?
        .json()?;
    let field = |name: &str| {
        authorization[name].as_str().map(str::to_owned).with_context(|| format!("no {name} in {authorization}"))
    };
    let (device_code, user_code, verification_uri) =
        (field("device_code")?, field("user_code")?, field("verification_uri")?);
    let poll = || {
        token_request(
            &dex,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", &device_code),
                ("client_id", CLI_CLIENT_ID),
            ],
        )
    };
    let (status, pending) = poll()?;
    assert_eq!(pending["error"], "authorization_pending", "{status}: {pending}");

    dex.approve_device(&verification_uri, &user_code, ALICE.email, PASSWORD)?;
    let tokens = wait_for("the device's token", Duration::from_secs(20), || {
        let (status, answer) = poll()?;
        match answer["error"].as_str() {
            None if status.is_success() => Ok(Probe::Ready(answer)),
            Some("authorization_pending" | "slow_down") => Ok(Probe::NotYet(answer.to_string())),
            _ => bail!("the device token poll answered {status}: {answer}"),
        }
    })?;
    let claims = claims_of(tokens["id_token"].as_str().with_context(|| format!("no id_token in {tokens}"))?)?;
    assert_eq!(claims["email"], ALICE.email);
    assert_eq!(claims["aud"], CLI_CLIENT_ID);
    Ok(())
}

#[test]
fn an_unknown_user_code_is_refused_by_name() -> Result<()> {
    let dex = start()?;
    let error =
        dex.approve_device(&format!("{}/device", dex.issuer()), "BCDF-GHJK", ALICE.email, PASSWORD).unwrap_err();
    assert!(matches!(error.downcast_ref::<SignInError>(), Some(SignInError::UnknownUserCode { .. })), "{error:#}");
    Ok(())
}

#[test]
fn a_restart_rotates_the_keys_and_forgets_the_refresh_tokens() -> Result<()> {
    let mut dex = start()?;
    let refresh_token = dex.cli_tokens(ALICE.email)?.refresh_token.context("no refresh_token")?;
    // One client throughout: its kept-alive connection to the front outlives
    // the front's connection to the first Dex.
    let client = http()?;
    let keys_before = key_ids(&dex, &client)?;
    ensure!(!keys_before.is_empty(), "Dex published no keys");

    dex.restart()?;
    let keys_after = key_ids(&dex, &client)?;
    assert!(keys_before.is_disjoint(&keys_after), "the keys did not rotate: {keys_before:?} then {keys_after:?}");
    let (status, answer) = refresh(&dex, &refresh_token)?;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{answer}");
    // Not `invalid_grant`, as RFC 6749 section 5.2 has it: Dex answers a
    // refresh token it does not know (or one already exchanged) with
    // `invalid_request`, and `invalid_grant` only for another client's.
    assert_eq!(answer["error"], "invalid_request", "{answer}");
    let description = answer["error_description"].as_str().unwrap_or_default();
    assert!(description.contains("Refresh token is invalid"), "{answer}");
    // The restarted Dex still signs people in.
    dex.cli_tokens(BOB.email)?;
    Ok(())
}

#[test]
fn the_front_counts_requests_by_path() -> Result<()> {
    let dex = start()?;
    let (keys, total) = (dex.requests_to("/dex/keys"), dex.total_requests());
    assert!(total >= 1, "the readiness probe went through the front, yet it counted {total}");
    let client = http()?;
    key_ids(&dex, &client)?;
    key_ids(&dex, &client)?;
    assert_eq!(dex.requests_to("/dex/keys"), keys + 2);
    assert_eq!(dex.total_requests(), total + 2);
    dex.front().reset_counts();
    assert_eq!(dex.requests_to("/dex/keys"), 0);
    Ok(())
}

/// Signs `email` in for the confidential client `client_id` (redirecting to
/// `redirect_uri`) and exchanges the code with `secret`: the ID token's claims.
fn confidential_sign_in(dex: &Dex, client_id: &str, secret: &str, redirect_uri: &str, email: &str) -> Result<Value> {
    claims_of(&dex.client_tokens(client_id, secret, redirect_uri, email)?.id_token)
}

#[test]
fn the_web_client_and_another_app_sign_in_with_their_secrets() -> Result<()> {
    let callback = "http://127.0.0.1:38124/auth/callback";
    let setup = Setup::default().web_redirect_uri(callback).with_other_app().id_token_lifetime(Duration::from_secs(5));
    let dex = Dex::start(Front::bind()?, setup)?;
    let web = confidential_sign_in(&dex, WEB_CLIENT_ID, dex.web_client_secret(), callback, CAROL.email)?;
    assert_eq!(web["aud"], WEB_CLIENT_ID);
    assert_eq!(web["groups"], serde_json::json!(CAROL.groups));
    let lifetime = web["exp"].as_i64().context("no exp")? - web["iat"].as_i64().context("no iat")?;
    assert_eq!(lifetime, 5, "the ID token lives {lifetime} s, not the Setup's 5 s: {web}");
    let other = confidential_sign_in(&dex, OTHER_CLIENT_ID, dex.other_app_secret(), OTHER_APP_REDIRECT_URI, BOB.email)?;
    assert_eq!(other["aud"], OTHER_CLIENT_ID);

    // The web client is confidential: a redirect it did not register is
    // refused on Dex's own error page, and a wrong secret at the token endpoint.
    let unregistered = Url::parse_with_params(
        &format!("{}/auth", dex.issuer()),
        [
            ("client_id", WEB_CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", "http://127.0.0.1:38125/elsewhere"),
            ("scope", "openid"),
        ],
    )?;
    let error = dex.sign_in(unregistered.as_str(), ALICE.email, PASSWORD).unwrap_err();
    assert!(matches!(error.downcast_ref::<SignInError>(), Some(SignInError::DexError { .. })), "{error:#}");
    let error = confidential_sign_in(&dex, WEB_CLIENT_ID, "not-the-secret", callback, ALICE.email).unwrap_err();
    assert!(format!("{error:#}").contains("invalid_client"), "{error:#}");
    Ok(())
}
