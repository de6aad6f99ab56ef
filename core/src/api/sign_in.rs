//! Signing in through the organisation's identity provider: the public
//! discovery answer the CLI starts from (`GET /api/v1/login`), and the
//! browser's authorization-code flow with PKCE (`/auth/login`,
//! `/auth/callback`, `/auth/logout`).
//!
//! The browser flow, and what each step refuses:
//!
//! 1. `/auth/login` picks the issuer (the deployment's one, or the one bound
//!    to `?org=`), makes a random `state`, `nonce`, PKCE verifier and a
//!    browser binding, keeps them in the store ([`crate::store::sign_in`]),
//!    sets the binding as a short-lived `HttpOnly` cookie scoped to `/auth`,
//!    and redirects to the provider.
//! 2. `/auth/callback` takes the sign-in of `state` once (unknown, replayed
//!    or expired: a page saying so), requires the binding cookie of the
//!    browser that began it (a login link planted by someone else gets
//!    nothing), reports a provider `error`, exchanges the code (with the
//!    verifier, and the client secret of a confidential client), verifies the
//!    ID token exactly as a session is verified plus its `nonce` and the web
//!    client as audience, admits the member, and only then sets the
//!    `lanyard_session` cookie (`HttpOnly`, `SameSite=Lax`, `Path=/`,
//!    `Secure` unless the site is plain-HTTP loopback) until the token's expiry.
//! 3. `/auth/logout` clears it.
//!
//! Every page is `no-store` with `Referrer-Policy: no-referrer` (the callback
//! URL carries the code) and a CSP that allows nothing but the page itself;
//! no page shows a token or echoes input unescaped.

use serde::Serialize;

use crate::config::{Config, IssuerConfig, IssuerKeys};
use crate::endpoint::{Endpoint, Env};
use crate::error::ApiError;
use crate::http::{Request, Response, authority_host, is_loopback_host};
use crate::identity::{self, SESSION_COOKIE};
use crate::oidc::{Exchange, ExchangeError, Providers, detail, pkce_challenge, printable, random_value};
use crate::store::Store;
use crate::store::sign_in::{PendingSignIn, SIGN_IN_SECONDS};

/// The cookie that ties a sign-in to the browser that began it.
pub const SIGN_IN_COOKIE: &str = "lanyard_sign_in";
/// The callback's path, on the control plane's own origin.
pub const CALLBACK_PATH: &str = "/auth/callback";

/// What `GET /api/v1/login` answers: where the CLI signs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoginConfig {
    /// The issuer URL (the CLI reads its discovery document).
    pub issuer: String,
    /// The CLI's client id there (a public client: PKCE, no secret).
    pub client_id: String,
    /// The scopes to ask for.
    pub scopes: Vec<String>,
}

/// Serve one of the sign-in endpoints.
/// (The pipeline has checked the method.)
pub fn serve(endpoint: Endpoint, req: &Request, env: &Env, config: &Config) -> Result<Response, ApiError> {
    match endpoint {
        Endpoint::LoginConfig => login_config(req, config),
        Endpoint::AuthLogin => Ok(begin(req, env, config).unwrap_or_else(|page| page)),
        Endpoint::AuthCallback => Ok(callback(req, env, config).unwrap_or_else(|page| page)),
        _ => Ok(logout(req, config)),
    }
}

fn login_config(req: &Request, config: &Config) -> Result<Response, ApiError> {
    let issuers = config.issuers()?;
    let issuer = choose(&issuers, req.query_param("org").as_deref())?;
    Ok(Response::json(
        200,
        &LoginConfig {
            issuer: issuer.issuer.clone(),
            client_id: issuer.cli_client().to_owned(),
            scopes: issuer.scopes.clone(),
        },
    ))
}

/// The issuer people sign in with: the one bound to `org`, or the only one
/// that can sign people in.
fn choose<'a>(issuers: &'a [IssuerConfig], org: Option<&str>) -> Result<&'a IssuerConfig, ApiError> {
    let mut signing_in = issuers.iter().filter(|i| i.keys == IssuerKeys::Discovered);
    match org.map(str::trim).filter(|o| !o.is_empty()) {
        Some(org) => signing_in.find(|i| i.orgs.allows(org)).ok_or_else(|| {
            ApiError::NotFound(format!(
                "no identity provider signs people in to organisation {:?} here; check the organisation's name",
                printable(org, 64)
            ))
        }),
        None => match (signing_in.next(), signing_in.next()) {
            (Some(only), None) => Ok(only),
            (Some(_), Some(_)) => Err(ApiError::malformed(
                "this control plane serves several organisations: name yours (`lanyard login --org <name>`, or \
                 `?org=<name>`)",
            )),
            (None, _) => Err(ApiError::NotFound(
                "no identity provider is set up to sign people in here: every trusted issuer has static keys \
                 (a development deployment signs in with `lanyard login --dev`)"
                    .into(),
            )),
        },
    }
}

/// Step 1: remember the sign-in and send the browser to the provider.
fn begin(req: &Request, env: &Env, config: &Config) -> Result<Response, Response> {
    let issuers = config.issuers().map_err(|e| failure_page(&e))?;
    let issuer = choose(&issuers, req.query_param("org").as_deref()).map_err(|e| failure_page(&e))?;
    let providers = Providers::new(env.kv, env.outbound, env.now);
    let meta = providers.metadata(issuer).map_err(|e| failure_page(&e))?;
    let site = site(req, config).map_err(|e| failure_page(&e))?;
    let redirect_uri = format!("{}{CALLBACK_PATH}", site.origin);
    let [state, nonce, verifier, browser] = random_values(env).map_err(|e| failure_page(&e))?;
    let pending = PendingSignIn {
        issuer: issuer.issuer.clone(),
        nonce: nonce.clone(),
        verifier: verifier.clone(),
        redirect_uri: redirect_uri.clone(),
        return_to: req.query_param("return_to").filter(|p| is_local_path(p)),
        browser: digest(&browser),
        began_at: env.now,
    };
    Store::new(env.kv, env.clock).begin_sign_in(&state, &pending).map_err(|e| failure_page(&e.into()))?;
    let scope: Vec<&str> = issuer.scopes.iter().map(String::as_str).filter(|s| *s != "offline_access").collect();
    let challenge = pkce_challenge(&verifier);
    let query = crate::outbound::form(&[
        ("response_type", "code"),
        ("client_id", &issuer.client_id),
        ("redirect_uri", &redirect_uri),
        ("scope", &scope.join(" ")),
        ("state", &state),
        ("nonce", &nonce),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    let separator = if meta.authorization_endpoint.contains('?') { '&' } else { '?' };
    let location = format!("{}{separator}{query}", meta.authorization_endpoint);
    let cookie = format!(
        "{SIGN_IN_COOKIE}={browser}; Path=/auth; Max-Age={SIGN_IN_SECONDS}; HttpOnly; SameSite=Lax{}",
        site.secure_attr()
    );
    Ok(redirect(&location).with_header("set-cookie", cookie))
}

/// Step 2: the provider sent the browser back.
fn callback(req: &Request, env: &Env, config: &Config) -> Result<Response, Response> {
    let site = site(req, config).map_err(|e| failure_page(&e))?;
    let clear_binding =
        format!("{SIGN_IN_COOKIE}=; Path=/auth; Max-Age=0; HttpOnly; SameSite=Lax{}", site.secure_attr());
    let fail = |status: u16, title: &str, message: &str| {
        page(status, title, message, Some(("/auth/login", "Sign in again"))).with_header("set-cookie", &clear_binding)
    };
    let state = req.query_param("state").filter(|s| !s.is_empty() && s.len() <= 256).ok_or_else(|| {
        fail(400, "This sign-in link is incomplete", "The identity provider's answer has no state. Start again.")
    })?;
    let store = Store::new(env.kv, env.clock);
    let pending = store.take_sign_in(&state, env.now).map_err(|e| failure_page(&e.into()))?.ok_or_else(|| {
        fail(
            400,
            "This sign-in has expired or was already used",
            &format!("A sign-in must be finished within {} minutes, and only once. Start again.", SIGN_IN_SECONDS / 60),
        )
    })?;
    let browser_ok = req.cookie(SIGN_IN_COOKIE).is_some_and(|b| crate::ids::ct_eq(&digest(b), &pending.browser));
    if !browser_ok {
        return Err(fail(
            400,
            "This sign-in was started in another browser",
            "Lanyard only finishes a sign-in in the browser that began it (a link someone sent you cannot sign you in). Start again here.",
        ));
    }
    if let Some(error) = req.query_param("error") {
        let detail =
            req.query_param("error_description").map(|d| format!(": {}", printable(&d, 200))).unwrap_or_default();
        return Err(fail(
            401,
            "The identity provider did not sign you in",
            &format!("It answered {}{detail}.", printable(&error, 64)),
        ));
    }
    let code = req.query_param("code").filter(|c| !c.is_empty() && c.len() <= 2048).ok_or_else(|| {
        fail(400, "This sign-in link is incomplete", "The identity provider's answer has no code. Start again.")
    })?;
    let issuers = config.issuers().map_err(|e| failure_page(&e))?;
    let issuer = issuers
        .iter()
        .find(|i| i.issuer == pending.issuer)
        .ok_or_else(|| fail(400, "This sign-in's identity provider is no longer trusted", "Start again."))?;
    let secret = config.client_secret(&issuer.issuer).map_err(|e| failure_page(&e))?;
    let providers = Providers::new(env.kv, env.outbound, env.now);
    let exchange = Exchange {
        code: &code,
        redirect_uri: &pending.redirect_uri,
        verifier: &pending.verifier,
        client_secret: secret.as_deref(),
    };
    let id_token = providers.exchange_code(issuer, &exchange).map_err(|e| match e {
        ExchangeError::Refused { error } => fail(
            401,
            "The identity provider did not accept this sign-in",
            &format!("Its token endpoint answered {error}. Start again."),
        ),
        ExchangeError::Unavailable(reason) => failure_page(&ApiError::unavailable(reason)),
    })?;
    let identity =
        identity::verify_id_token(&id_token, issuer, &providers, &[&issuer.client_id], Some(&pending.nonce), env.now)
            .map_err(|e| fail(e.status(), "Lanyard cannot accept this sign-in", &e.message()))?;
    store.admit(&identity, env.now).map_err(|e| {
        let e: ApiError = e.into();
        fail(e.status(), "Lanyard cannot accept this sign-in", &e.message())
    })?;
    let max_age = identity.expires_at.saturating_sub(env.now);
    let session_cookie =
        format!("{SESSION_COOKIE}={id_token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{}", site.secure_attr());
    let response = match &pending.return_to {
        Some(path) => redirect(path),
        None => page(
            200,
            "Signed in",
            &format!("You are signed in to Lanyard as {} ({}).", identity.email, identity.org),
            None,
        ),
    };
    Ok(response.with_header("set-cookie", session_cookie).with_header("set-cookie", clear_binding.clone()))
}

/// Step 3: forget the session cookie.
fn logout(req: &Request, config: &Config) -> Response {
    let secure = site(req, config).map(|s| s.secure_attr()).unwrap_or("; Secure");
    page(200, "Signed out", "You are signed out of Lanyard in this browser.", Some(("/auth/login", "Sign in")))
        .with_header("set-cookie", format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}"))
}

/// The control plane's own origin, as the browser reaches it.
struct Site {
    origin: String,
    secure: bool,
}

impl Site {
    fn secure_attr(&self) -> &'static str {
        if self.secure { "; Secure" } else { "" }
    }
}

fn site(req: &Request, config: &Config) -> Result<Site, ApiError> {
    let origin = match config.public_url()? {
        Some(url) => url,
        None => req.origin.clone().ok_or_else(|| {
            ApiError::unavailable("the host did not say how the browser reached it; set the public_url variable")
        })?,
    };
    let origin = origin.trim_end_matches('/').to_owned();
    let plain_loopback = origin
        .strip_prefix("http://")
        .is_some_and(|rest| is_loopback_host(authority_host(rest.split('/').next().unwrap_or_default())));
    if !plain_loopback && !origin.starts_with("https://") {
        return Err(ApiError::unavailable(format!(
            "browser sign-in needs an https:// site (plain http only on loopback), and this one is {origin}"
        )));
    }
    Ok(Site { origin, secure: !plain_loopback })
}

/// A path on this site: `/` and then no second `/` or `\` (which browsers
/// would read as another host).
fn is_local_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && path.len() <= 512
        && path.chars().all(|c| c.is_ascii_graphic())
}

fn random_values(env: &Env) -> Result<[String; 4], ApiError> {
    let value = || random_value(env.random).map_err(|e| ApiError::unavailable(e.to_string()));
    Ok([value()?, value()?, value()?, value()?])
}

fn digest(value: &str) -> String {
    crate::ids::digest_hex(&["sign-in-browser", value])
}

fn redirect(location: &str) -> Response {
    with_page_headers(Response::redirect(location))
}

/// A page for an error that is not the person's to fix (configuration, the store, the provider).
fn failure_page(e: &ApiError) -> Response {
    let mut response =
        page(e.status(), "Signing in is not possible right now", &e.message(), Some(("/auth/login", "Try again")));
    response.log = Some(detail(e));
    response
}

/// A small HTML page: a title, a sentence, and maybe a link.
fn page(status: u16, title: &str, message: &str, link: Option<(&str, &str)>) -> Response {
    let link =
        link.map_or(String::new(), |(href, text)| format!("<p><a href=\"{}\">{}</a></p>", escape(href), escape(text)));
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>{title} · Lanyard</title></head>\n<body><main>\
         <h1>{title}</h1><p>{message}</p>{link}</main></body></html>\n",
        title = escape(title),
        message = escape(message),
    );
    with_page_headers(Response::text(status, "text/html; charset=utf-8", body))
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The headers every sign-in page carries: never cached, never framed, no
/// referrer (the callback URL carries a code), nothing loaded.
fn with_page_headers(response: Response) -> Response {
    response
        .no_store()
        .with_header("referrer-policy", "no-referrer")
        .with_header("x-frame-options", "DENY")
        .with_header("content-security-policy", "default-src 'none'; frame-ancestors 'none'")
        .with_header("x-content-type-options", "nosniff")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_site_are_returned_to() {
        for ok in ["/", "/clusters/c_1/access", "/a?b=c"] {
            assert!(is_local_path(ok), "{ok}");
        }
        for bad in ["//evil.example", "/\\evil.example", "https://evil.example", "evil", "/a b", ""] {
            assert!(!is_local_path(bad), "{bad}");
        }
    }

    #[test]
    fn pages_escape_what_they_show() {
        let p = page(400, "<t>", "a&b \"c\" <script>", Some(("/x?a=1&b=2", "go")));
        let body = String::from_utf8(p.body).unwrap();
        assert!(!body.contains("<script>") && body.contains("&lt;script&gt;") && body.contains("a=1&amp;b=2"));
        assert_eq!(p.headers.iter().find(|(k, _)| k == "cache-control").map(|(_, v)| v.as_str()), Some("no-store"));
    }
}
