//! OpenID Connect as `lanyard login` speaks it to the organisation's identity
//! provider, as a public client (no client secret): discovery of the
//! provider's endpoints, PKCE (S256), the authorization URL, the code
//! exchange, the refresh grant and the device authorization grant (RFC 8628),
//! and the checks the CLI makes on an ID token's payload (`iss`, `aud`,
//! `nonce`; the control plane verifies the signature).
//!
//! Randomness comes from a [`Random`] the caller hands in, so every secret
//! here can be reproduced in a test. No token ever goes into an error
//! message: a provider's refusal is reported by its `error` code and
//! (escaped) description, a transport failure by the URL.

use std::time::Duration;

use lanyard_core::ids::ct_eq;
use lanyard_core::random::Random;
use reqwest::blocking::Client;
use serde::Deserialize;
use serde_json::Value;

use crate::config::decode_claims;
use crate::error::{CliError, Result};
use crate::output::escape;

/// The scopes asked for when discovery is bypassed (`--issuer`).
pub const DEFAULT_SCOPES: &[&str] = &["openid", "email", "profile", "groups", "offline_access"];

/// The provider's endpoints, from its discovery document.
#[derive(Debug, Clone, Deserialize)]
pub struct Provider {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
}

/// An HTTP client for the provider: timeouts, and no redirects (a token
/// endpoint that redirects is not followed with a code or refresh token).
pub fn http_client() -> Result<Client> {
    Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("lanyard-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| CliError::Transport(format!("cannot build the HTTP client: {e}")))
}

/// `url` if it may be a provider's URL, by the control plane's own rule
/// ([`lanyard_core::oidc::check_provider_url`]: `https://`, or `http://` to a
/// loopback host; no user, query or fragment); `what` names it in the error.
pub fn check_url(url: &str, what: &str) -> Result<String> {
    lanyard_core::oidc::check_provider_url(url)
        .map(|()| url.to_owned())
        .map_err(|problem| CliError::Usage(format!("{what}: {}", escape(&problem))))
}

/// Fetch `{issuer}/.well-known/openid-configuration`; its `issuer` must be
/// the one asked for, and its endpoints https (or loopback http).
pub fn discover(http: &Client, issuer: &str) -> Result<Provider> {
    let issuer = check_url(issuer.trim().trim_end_matches('/'), "the issuer")?;
    let url = format!("{issuer}/.well-known/openid-configuration");
    let resp = http.get(&url).send().map_err(|e| {
        CliError::Transport(format!("cannot reach the identity provider at {issuer}: {e}; check that it is up"))
    })?;
    if !resp.status().is_success() {
        return Err(CliError::Transport(format!(
            "{url} answered HTTP {}: is {issuer} an OpenID Connect issuer?",
            resp.status().as_u16()
        )));
    }
    let provider: Provider = resp
        .json()
        .map_err(|e| CliError::Transport(format!("{url} is not an OpenID Connect discovery document ({e})")))?;
    if provider.issuer.trim_end_matches('/') != issuer {
        return Err(CliError::Transport(format!(
            "{url} names another issuer ({:?}): refusing to sign in with it; check the issuer URL",
            escape(&provider.issuer)
        )));
    }
    check_url(&provider.authorization_endpoint, "the provider's authorization endpoint")?;
    check_url(&provider.token_endpoint, "the provider's token endpoint")?;
    if let Some(device) = &provider.device_authorization_endpoint {
        check_url(device, "the provider's device authorization endpoint")?;
    }
    Ok(provider)
}

/// 32 random bytes, base64url (43 characters): a `state`, a `nonce`, a PKCE
/// verifier ([`lanyard_core::oidc::random_value`], as the control plane makes them).
pub fn random_string(random: &dyn Random) -> Result<String> {
    lanyard_core::oidc::random_value(random).map_err(|e| CliError::Failed(format!("cannot sign in: {e}")))
}

/// A PKCE pair: the verifier stays here, the challenge goes in the URL.
#[derive(Clone)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new(random: &dyn Random) -> Result<Pkce> {
        let verifier = random_string(random)?;
        Ok(Pkce { challenge: lanyard_core::oidc::pkce_challenge(&verifier), verifier })
    }
}

/// What the authorization URL carries.
pub struct AuthRequest<'a> {
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub scopes: &'a [String],
    pub state: &'a str,
    pub nonce: &'a str,
    pub challenge: &'a str,
}

/// The URL the browser opens.
pub fn authorize_url(provider: &Provider, req: &AuthRequest<'_>) -> Result<String> {
    let mut url = reqwest::Url::parse(&provider.authorization_endpoint)
        .map_err(|e| CliError::Transport(format!("the provider's authorization endpoint is not a URL ({e})")))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", req.client_id)
        .append_pair("redirect_uri", req.redirect_uri)
        .append_pair("scope", &req.scopes.join(" "))
        .append_pair("state", req.state)
        .append_pair("nonce", req.nonce)
        .append_pair("code_challenge", req.challenge)
        .append_pair("code_challenge_method", "S256");
    Ok(url.into())
}

/// The code of a callback's query string, if its `state` is ours (compared
/// in constant time) and the provider sent no `error`.
pub fn callback_code(query: &str, state: &str) -> Result<String> {
    let mut code = None;
    let mut got_state = None;
    let mut error = None;
    let mut description = None;
    for (k, v) in reqwest::Url::parse(&format!("http://x/?{query}"))
        .map(|u| u.query_pairs().into_owned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        match k.as_str() {
            "code" => code = Some(v),
            "state" => got_state = Some(v),
            "error" => error = Some(v),
            "error_description" => description = Some(v),
            _ => {}
        }
    }
    if !got_state.as_deref().is_some_and(|s| ct_eq(s, state)) {
        return Err(CliError::SignIn(
            "the sign-in answer does not belong to this login (its state does not match): run `lanyard login` again"
                .into(),
        ));
    }
    if let Some(error) = error {
        return Err(CliError::SignIn(format!(
            "the identity provider refused the sign-in: {}{}; run `lanyard login` again, or ask your administrator",
            escape(&error),
            description.map(|d| format!(" ({})", escape(&d))).unwrap_or_default()
        )));
    }
    match code {
        Some(code) if !code.is_empty() => Ok(code),
        _ => {
            Err(CliError::SignIn("the identity provider sent no authorization code: run `lanyard login` again".into()))
        }
    }
}

/// What the token endpoint answers (the access token is not used).
#[derive(Deserialize)]
pub struct Tokens {
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// A token endpoint's error answer (RFC 6749 §5.2).
#[derive(Debug, Deserialize)]
pub struct TokenError {
    pub error: String,
    #[serde(default)]
    pub error_description: Option<String>,
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", escape(&self.error))?;
        if let Some(d) = &self.error_description {
            write!(f, " ({})", escape(d))?;
        }
        Ok(())
    }
}

/// How a request to the token endpoint ended.
pub enum Answer {
    /// 200 with tokens.
    Tokens(Tokens),
    /// The provider's OAuth error (a 4xx with `{"error": …}`).
    Refused(TokenError),
}

/// A request to the token endpoint failed before the provider could say yes or no.
#[derive(Debug)]
pub struct Unreachable(pub String);

/// POST a form to the token (or device) endpoint and read the answer.
pub fn post_form(http: &Client, endpoint: &str, form: &[(&str, &str)]) -> Result<Value, Unreachable> {
    let resp = http
        .post(endpoint)
        .header("accept", "application/json")
        .form(form)
        .send()
        .map_err(|e| Unreachable(format!("cannot reach the identity provider at {}: {e}", url_origin(endpoint))))?;
    let status = resp.status().as_u16();
    let text = resp.text().map_err(|e| Unreachable(format!("reading the answer of {}: {e}", url_origin(endpoint))))?;
    match serde_json::from_str::<Value>(&text) {
        Ok(v) if (200..300).contains(&status) || v.get("error").is_some() => Ok(v),
        _ => Err(Unreachable(format!("{} answered HTTP {status} without an OAuth answer", url_origin(endpoint)))),
    }
}

/// The scheme, host and port of a URL (what a message may name).
fn url_origin(url: &str) -> String {
    reqwest::Url::parse(url).map(|u| u.origin().ascii_serialization()).unwrap_or_else(|_| "the provider".into())
}

/// An answer from [`post_form`] as tokens or the provider's refusal.
pub fn read_answer(value: Value) -> Result<Answer, Unreachable> {
    if value.get("error").is_some() {
        return TokenError::deserialize(&value)
            .map(Answer::Refused)
            .map_err(|_| Unreachable("the identity provider answered an unreadable error".into()));
    }
    Tokens::deserialize(&value)
        .map(Answer::Tokens)
        .map_err(|_| Unreachable("the identity provider answered an unreadable token response".into()))
}

/// Exchange an authorization code (with the PKCE verifier) for tokens.
pub fn exchange_code(
    http: &Client,
    provider: &Provider,
    client_id: &str,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<Tokens> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("client_id", client_id),
        ("code_verifier", verifier),
    ];
    let answer = post_form(http, &provider.token_endpoint, &form).and_then(read_answer);
    match answer {
        Ok(Answer::Tokens(t)) => Ok(t),
        Ok(Answer::Refused(e)) => Err(CliError::SignIn(format!(
            "the identity provider refused the sign-in code: {e}; run `lanyard login` again"
        ))),
        Err(Unreachable(why)) => Err(CliError::Transport(format!("{why}; retry `lanyard login`"))),
    }
}

/// The refresh grant: new tokens, the provider's refusal, or no answer.
pub fn refresh(
    http: &Client,
    token_endpoint: &str,
    client_id: &str,
    refresh_token: &str,
) -> Result<Answer, Unreachable> {
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("client_id", client_id)];
    post_form(http, token_endpoint, &form).and_then(read_answer)
}

/// Why an ID token's payload is not the one this login expects.
pub fn check_id_token(id_token: &str, issuer: &str, client_id: &str, nonce: Option<&str>) -> Result<(), String> {
    let claims = decode_claims(id_token).ok_or("the ID token is not a JWT")?;
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or_default();
    if iss.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(format!("the ID token was issued by {:?}, not by {issuer}", escape(iss)));
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == client_id,
        Some(Value::Array(auds)) => auds.iter().any(|a| a == client_id),
        _ => false,
    };
    if !aud_ok {
        return Err(format!("the ID token is not for the client {client_id:?}"));
    }
    if let Some(nonce) = nonce
        && !claims.get("nonce").and_then(Value::as_str).is_some_and(|n| ct_eq(n, nonce))
    {
        return Err("the ID token's nonce is not this login's".into());
    }
    Ok(())
}

/// The ID token of a token response, checked ([`check_id_token`]).
pub fn id_token_of(tokens: &Tokens, issuer: &str, client_id: &str, nonce: Option<&str>) -> Result<String> {
    let Some(id_token) = tokens.id_token.as_deref().filter(|t| !t.is_empty()) else {
        return Err(CliError::SignIn(
            "the identity provider sent no ID token: is the `openid` scope allowed for this client?".into(),
        ));
    };
    check_id_token(id_token, issuer, client_id, nonce)
        .map_err(|why| CliError::SignIn(format!("refusing the sign-in: {why}; run `lanyard login` again")))?;
    Ok(id_token.to_owned())
}

/// A device authorization (RFC 8628 §3.2).
#[derive(Debug, Deserialize)]
pub struct DeviceAuth {
    pub device_code: String,
    pub user_code: String,
    #[serde(alias = "verification_url")]
    pub verification_uri: String,
    #[serde(default)]
    pub verification_uri_complete: Option<String>,
    pub expires_in: u64,
    #[serde(default)]
    pub interval: Option<u64>,
}

/// Start a device authorization.
pub fn start_device(http: &Client, provider: &Provider, client_id: &str, scopes: &[String]) -> Result<DeviceAuth> {
    let Some(endpoint) = provider.device_authorization_endpoint.as_deref() else {
        return Err(CliError::SignIn(format!(
            "the identity provider {} does not offer the device flow: run `lanyard login` without --device \
             (with --no-browser, open the printed URL on any machine whose browser can reach this one's port)",
            provider.issuer
        )));
    };
    let scope = scopes.join(" ");
    let value = post_form(http, endpoint, &[("client_id", client_id), ("scope", &scope)])
        .map_err(|Unreachable(why)| CliError::Transport(format!("{why}; retry `lanyard login --device`")))?;
    if value.get("error").is_some() {
        let e = TokenError::deserialize(&value).map(|e| e.to_string()).unwrap_or_else(|_| "an error".into());
        return Err(CliError::SignIn(format!("the identity provider refused the device sign-in: {e}")));
    }
    DeviceAuth::deserialize(&value).map_err(|e| {
        CliError::Transport(format!("the identity provider answered an unreadable device authorization ({e})"))
    })
}

/// One poll of the token endpoint in the device flow.
pub enum Poll {
    Done(Tokens),
    Pending,
    SlowDown,
}

/// Poll the token endpoint once for a device authorization.
pub fn poll_device(http: &Client, provider: &Provider, client_id: &str, device_code: &str) -> Result<Poll> {
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", device_code),
        ("client_id", client_id),
    ];
    match post_form(http, &provider.token_endpoint, &form).and_then(read_answer) {
        Ok(Answer::Tokens(t)) => Ok(Poll::Done(t)),
        Ok(Answer::Refused(e)) => match e.error.as_str() {
            "authorization_pending" => Ok(Poll::Pending),
            "slow_down" => Ok(Poll::SlowDown),
            "access_denied" => Err(CliError::SignIn(
                "the sign-in was denied on the provider's page: run `lanyard login --device` again".into(),
            )),
            "expired_token" => Err(device_expired()),
            _ => Err(CliError::SignIn(format!("the identity provider refused the device sign-in: {e}"))),
        },
        Err(Unreachable(why)) => Err(CliError::Transport(format!("{why}; retry `lanyard login --device`"))),
    }
}

pub fn device_expired() -> CliError {
    CliError::SignIn(
        "the device code expired before the sign-in was approved: run `lanyard login --device` again".into(),
    )
}

/// Poll with `poll` until it is done, honouring the interval (5 s when the
/// provider gives none), `slow_down` (5 s more each time) and the deadline
/// (`expires_in`). Time is injected: `now` reads a clock in seconds since
/// any origin, `sleep` waits.
pub fn poll_until(
    interval: Option<u64>,
    expires_in: u64,
    mut now: impl FnMut() -> f64,
    mut sleep: impl FnMut(Duration),
    mut poll: impl FnMut() -> Result<Poll>,
) -> Result<Tokens> {
    let mut interval = interval.unwrap_or(5).max(1);
    let deadline = now() + expires_in as f64;
    loop {
        sleep(Duration::from_secs(interval));
        if now() >= deadline {
            return Err(device_expired());
        }
        match poll()? {
            Poll::Done(tokens) => return Ok(tokens),
            Poll::Pending => {}
            Poll::SlowDown => interval += 5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanyard_core::random::NoRandomness;

    struct Fixed(u8);
    impl Random for Fixed {
        fn fill(&self, buf: &mut [u8]) -> Result<(), NoRandomness> {
            buf.fill(self.0);
            Ok(())
        }
    }

    fn jwt(payload: Value) -> String {
        use base64::Engine as _;
        format!("e30.{}.sig", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.to_string()))
    }

    fn provider() -> Provider {
        Provider {
            issuer: "https://idp.example/dex".into(),
            authorization_endpoint: "https://idp.example/dex/auth?x=1".into(),
            token_endpoint: "https://idp.example/dex/token".into(),
            device_authorization_endpoint: None,
        }
    }

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        let pkce = Pkce::new(&Fixed(7)).unwrap();
        assert_eq!(pkce.verifier.len(), 43, "32 bytes, base64url");
        assert_eq!(pkce.challenge, lanyard_core::oidc::pkce_challenge(&pkce.verifier));
        assert_ne!(random_string(&Fixed(1)).unwrap(), random_string(&Fixed(2)).unwrap());
    }

    #[test]
    fn the_authorization_url_carries_every_parameter_encoded() {
        let scopes = vec!["openid".to_owned(), "offline_access".to_owned()];
        let req = AuthRequest {
            client_id: "lanyard-cli",
            redirect_uri: "http://127.0.0.1:4711/callback",
            scopes: &scopes,
            state: "st&te",
            nonce: "n",
            challenge: "ch",
        };
        let url = reqwest::Url::parse(&authorize_url(&provider(), &req).unwrap()).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(url.path(), "/dex/auth");
        assert_eq!(q["x"], "1", "the endpoint's own query is kept");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["redirect_uri"], "http://127.0.0.1:4711/callback");
        assert_eq!(q["scope"], "openid offline_access");
        assert_eq!(q["state"], "st&te");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"], "ch");
        assert_eq!(q["nonce"], "n");
    }

    #[test]
    fn callbacks_need_our_state_and_a_code() {
        assert_eq!(callback_code("code=abc&state=s1", "s1").unwrap(), "abc");
        let err = callback_code("code=abc&state=s2", "s1").unwrap_err().to_string();
        assert!(err.contains("state") && !err.contains("abc"), "{err}");
        assert!(callback_code("code=abc", "s1").is_err());
        let err = callback_code("error=access_denied&error_description=no%1b&state=s1", "s1").unwrap_err().to_string();
        assert!(err.contains("access_denied") && err.contains("\\u{1b}"), "{err}");
        assert!(callback_code("state=s1", "s1").unwrap_err().to_string().contains("no authorization code"));
        assert_eq!(callback_code("state=s1&code=", "s1").unwrap_err().exit_code(), crate::error::exit::UNAUTHENTICATED);
    }

    #[test]
    fn token_answers_are_tokens_refusals_or_unreadable() {
        let Ok(Answer::Tokens(t)) = read_answer(
            serde_json::json!({"id_token": "i", "refresh_token": "r", "access_token": "a", "token_type": "bearer", "expires_in": 5}),
        ) else {
            panic!("tokens")
        };
        assert_eq!((t.id_token.as_deref(), t.refresh_token.as_deref()), (Some("i"), Some("r")));
        let Ok(Answer::Refused(e)) =
            read_answer(serde_json::json!({"error": "invalid_grant", "error_description": "gone"}))
        else {
            panic!("refusal")
        };
        assert_eq!(e.to_string(), "invalid_grant (gone)");
        assert!(read_answer(serde_json::json!({"id_token": 5})).is_err());
        let device: DeviceAuth =
            serde_json::from_value(serde_json::json!({"device_code": "d", "user_code": "ABCD-EFGH",
            "verification_uri": "https://idp/device", "expires_in": 300}))
            .unwrap();
        assert_eq!((device.interval, device.verification_uri_complete), (None, None));
    }

    #[test]
    fn id_tokens_must_be_for_us_from_the_issuer_with_our_nonce() {
        let (iss, aud) = ("https://idp.example/dex", "lanyard-cli");
        let good = jwt(serde_json::json!({"iss": iss, "aud": aud, "nonce": "n1", "email": "a@x"}));
        assert_eq!(check_id_token(&good, iss, aud, Some("n1")), Ok(()));
        assert_eq!(check_id_token(&good, iss, aud, None), Ok(()), "a refreshed token need not repeat the nonce");
        assert!(check_id_token(&good, iss, aud, Some("n2")).unwrap_err().contains("nonce"));
        assert!(check_id_token(&good, "https://other", aud, None).unwrap_err().contains("issued by"));
        assert!(check_id_token(&good, iss, "other", None).unwrap_err().contains("client"));
        let many = jwt(serde_json::json!({"iss": iss, "aud": ["x", aud]}));
        assert_eq!(check_id_token(&many, iss, aud, None), Ok(()));
        assert!(check_id_token("not-a-jwt", iss, aud, None).is_err());
        let tokens = Tokens { id_token: None, refresh_token: Some("r".into()) };
        assert!(id_token_of(&tokens, iss, aud, None).unwrap_err().to_string().contains("no ID token"));
    }

    #[test]
    fn urls_are_https_or_loopback_http() {
        assert!(check_url("https://idp.example/dex", "x").is_ok());
        assert!(check_url("http://127.0.0.1:5556/dex", "x").is_ok());
        assert!(check_url("http://idp.example/dex", "x").is_err());
        assert!(check_url("ftp://idp.example", "x").is_err());
    }

    #[test]
    fn device_polling_honours_interval_slow_down_and_expiry() {
        use std::cell::{Cell, RefCell};
        let clock = Cell::new(0.0f64);
        let slept = RefCell::new(Vec::new());
        let answers = RefCell::new(vec![
            Poll::Pending,
            Poll::SlowDown,
            Poll::Pending,
            Poll::Done(Tokens { id_token: Some("i".into()), refresh_token: None }),
        ]);
        answers.borrow_mut().reverse();
        let tokens = poll_until(
            Some(2),
            600,
            || clock.get(),
            |d| {
                slept.borrow_mut().push(d.as_secs());
                clock.set(clock.get() + d.as_secs_f64());
            },
            || Ok(answers.borrow_mut().pop().unwrap()),
        )
        .unwrap();
        assert_eq!(tokens.id_token.as_deref(), Some("i"));
        assert_eq!(*slept.borrow(), vec![2, 2, 7, 7]);

        clock.set(0.0);
        let err =
            poll_until(None, 12, || clock.get(), |d| clock.set(clock.get() + d.as_secs_f64()), || Ok(Poll::Pending))
                .err()
                .unwrap();
        assert!(err.to_string().contains("expired"), "{err}");
        assert_eq!(clock.get(), 15.0, "polled at 5 and 10, gave up at 15");
    }
}
